/* Mastodon's files' owner: see owner.h. */
#include "component/owner.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"

void pf_app_owner_find(const char *live, const pf_node *recorded, pf_app_owner *o)
{
    struct stat st;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", live);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = 0;
    const char *cands[] = {live, parent};
    for (int i = 0; i < 2; i++) {
        if (stat(cands[i], &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != 0) {
            struct passwd *pw = getpwuid(st.st_uid);
            o->uid = st.st_uid;
            o->gid = pw ? pw->pw_gid : st.st_gid;
            snprintf(o->name, sizeof o->name, "%s", pw ? pw->pw_name : "?");
            return;
        }
    }
    struct passwd *pw =
        recorded && recorded->user && recorded->user[0] ? getpwnam(recorded->user) : NULL;
    if (pw) {
        o->uid = pw->pw_uid;
        o->gid = pw->pw_gid;
        snprintf(o->name, sizeof o->name, "%s", pw->pw_name);
        return;
    }
    o->uid = recorded ? recorded->uid : 0;
    o->gid = recorded ? recorded->gid : 0;
    snprintf(o->name, sizeof o->name, "uid %u", (unsigned)o->uid);
}

void pf_app_owner_give_dir(const char *path, const pf_app_owner *o, mode_t mode)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fchown(fd, o->uid, o->gid) || (mode && fchmod(fd, mode)))
        pf_warn("cannot give %s to %s: %s", path, o->name, strerror(errno));
    close(fd);
}

int pf_app_owner_mkdirs(const char *path, const pf_app_owner *o)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) == 0) {
                if (o)
                    pf_app_owner_give_dir(buf, o, 0);
            } else if (errno != EEXIST) {
                return -1;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}
