#include "common/atomicfile.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fdsink.h"
#include "common/log.h"

/* The rename is durable once the directory that holds both names is. */
static int sync_parent(const char *path)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

int pf_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         const pf_file_owner *owner, pf_err *err)
{
    char tmp[4200];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.permafrost-tmp-%ld", path, (long)getpid()) >=
        sizeof tmp)
        return pf_err_set(err, PF_EUSAGE, "%s: path too long", path);
    unlink(tmp); /* left by a run killed at this point with the same pid */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot create %s", tmp);
    int rc = 0;
    if (pf_fd_write_all(fd, data, len))
        rc = pf_err_sys(err, PF_EIO, "cannot write %s", tmp);
    if (!rc && owner && fchown(fd, owner->uid, owner->gid))
        pf_warn("cannot give %s to %s: %s", path, owner->name ? owner->name : "its owner",
                strerror(errno));
    /* after fchown, which clears setuid and setgid */
    if (!rc && fchmod(fd, mode))
        rc = pf_err_sys(err, PF_EIO, "cannot set the mode of %s", tmp);
    if (!rc && fsync(fd))
        rc = pf_err_sys(err, PF_EIO, "cannot write %s", tmp);
    if (close(fd) && !rc)
        rc = pf_err_sys(err, PF_EIO, "cannot write %s", tmp);
    if (!rc && rename(tmp, path))
        rc = pf_err_sys(err, PF_EIO, "cannot rename %s over %s", tmp, path);
    if (rc) {
        unlink(tmp);
        return rc;
    }
    /* path is replaced now: an error here would say it is not */
    if (sync_parent(path))
        pf_warn("cannot sync the directory of %s: %s", path, strerror(errno));
    return 0;
}
