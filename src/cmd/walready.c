#include "cmd/walready.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/keycache.h"
#include "common/log.h"
#include "repo/names.h"
#include "repo/wal.h"

#define ENTRY_MAGIC "permafrost wal-ready 1\n"

/* The spool's root, or NULL when batching is off. */
static const char *spool_root(char *buf, size_t n)
{
    const char *v = getenv("PERMAFROST_WAL_SPOOL");
    if (v && !strcmp(v, "off"))
        return NULL;
    if (v && *v)
        return v;
    /* Beside the cached key: the same user's state for the same commands. */
    char kc[4096];
    const char *dir = pf_cli_key_cache_dir(kc, sizeof kc);
    if (!dir || snprintf(buf, n, "%s/wal-ready", dir) >= (int)n)
        return NULL;
    return buf;
}

static int mkdirs(const char *dir)
{
    char path[PATH_MAX];
    if (snprintf(path, sizeof path, "%s", dir) >= (int)sizeof path)
        return -1;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
    return mkdir(path, 0700) == 0 || errno == EEXIST ? 0 : -1;
}

int pf_wal_ready_open(const char *wal_dir, bool create)
{
    char buf[PATH_MAX], real[PATH_MAX], dir[PATH_MAX], tag[PF_HEX_ID_LEN + 1];
    const char *root = spool_root(buf, sizeof buf);
    if (!root || !realpath(wal_dir, real))
        return -1;
    /* One folder per cluster: two clusters of one OS user have the same segment names. */
    uint8_t h[PF_ID_LEN];
    pf_sha256(real, strlen(real), h);
    pf_hex(h, PF_ID_LEN, tag);
    tag[16] = 0;
    if (snprintf(dir, sizeof dir, "%s/%s", root, tag) >= (int)sizeof dir)
        return -1;
    if (create && mkdirs(dir))
        return -1;
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    /* An entry lets a segment go unpushed: only this user may write them. */
    struct stat st;
    if (fstat(fd, &st) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        pf_warn("not using the WAL spool %s: it is not a folder that only this user can write",
                dir);
        close(fd);
        return -1;
    }
    return fd;
}

int pf_wal_ready_read(int dfd, const char *name, pf_wal_ready_entry *e)
{
    if (pf_wal_name_kind(name) == PF_WAL_NONE)
        return -1;
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    char text[512];
    struct stat st;
    ssize_t n = -1;
    if (!fstat(fd, &st) && S_ISREG(st.st_mode) && st.st_uid == geteuid() && !(st.st_mode & 022))
        n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n <= 0)
        return -1;
    text[n] = 0;
    char got_name[PF_WAL_NAME_MAX + 1], sha[PF_HEX_ID_LEN + 1];
    uint64_t size, object_size;
    int used = 0;
    memset(e, 0, sizeof *e);
    if (strncmp(text, ENTRY_MAGIC, strlen(ENTRY_MAGIC)) ||
        sscanf(text + strlen(ENTRY_MAGIC),
               "name %48s\nrepository %64s\nsize %" SCNu64 "\nsha256 %64s\nobject %" SCNu64 "\n%n",
               got_name, e->repo_id, &size, sha, &object_size, &used) != 5 ||
        (size_t)used != strlen(text + strlen(ENTRY_MAGIC)) || strcmp(got_name, name) ||
        !pf_name_is_id(e->repo_id) || !pf_name_is_id(sha) || pf_unhex(sha, e->sha, PF_ID_LEN))
        return -1;
    e->size = size;
    e->object_size = object_size;
    return 0;
}

void pf_wal_ready_write(int dfd, const char *name, const pf_wal_ready_entry *e)
{
    char text[512], sha[PF_HEX_ID_LEN + 1], tmp[PF_WAL_NAME_MAX + 32];
    pf_hex(e->sha, PF_ID_LEN, sha);
    int n = snprintf(text, sizeof text,
                     ENTRY_MAGIC "name %s\nrepository %s\nsize %" PRIu64
                                 "\nsha256 %s\nobject %" PRIu64 "\n",
                     name, e->repo_id, e->size, sha, e->object_size);
    snprintf(tmp, sizeof tmp, ".%s.tmp%d", name, (int)getpid());
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    int ok = write(fd, text, (size_t)n) == n;
    ok = close(fd) == 0 && ok;
    if (!ok || renameat(dfd, tmp, dfd, name))
        unlinkat(dfd, tmp, 0);
}

void pf_wal_ready_drop(int dfd, const char *name)
{
    unlinkat(dfd, name, 0);
}

void pf_wal_ready_sweep(int dfd, const char *status_dir)
{
    int fd = dup(dfd);
    DIR *d = fd < 0 ? NULL : fdopendir(fd);
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    /* Unlinking while reading the folder may skip an entry; the next sweep gets it. */
    struct dirent *de;
    while ((de = readdir(d))) {
        char ready[PATH_MAX];
        struct stat st;
        if (de->d_name[0] == '.') {
            /* a temporary of a killed writer: no reader takes it for an entry */
            if (strstr(de->d_name, ".tmp") && fstatat(dfd, de->d_name, &st, 0) == 0 &&
                st.st_mtime < time(NULL) - 3600)
                unlinkat(dfd, de->d_name, 0);
            continue;
        }
        if (snprintf(ready, sizeof ready, "%s/%s.ready", status_dir, de->d_name) <
                (int)sizeof ready &&
            stat(ready, &st) != 0)
            unlinkat(dfd, de->d_name, 0);
    }
    closedir(d);
}
