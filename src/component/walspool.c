/* WAL fetched ahead for a recovery whose cluster cannot reach the repository: see
 * walspool.h. */
#include "component/walspool.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "repo/wal.h"

void pf_wal_spool_dir(const char *datadir, char *out, size_t n)
{
    size_t len = strlen(datadir);
    while (len > 1 && datadir[len - 1] == '/')
        len--;
    snprintf(out, n, "%.*s.permafrost-wal", (int)len, datadir);
}

typedef struct names {
    char (*v)[PF_WAL_NAME_MAX + 1];
    size_t n, cap;
    const char *start; /* 24 hex */
    int oom;
} names;

static void add(names *ns, const char *name, size_t len)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        void *v = realloc(ns->v, cap * sizeof *ns->v);
        if (!v) {
            ns->oom = 1;
            return;
        }
        ns->v = v;
        ns->cap = cap;
    }
    snprintf(ns->v[ns->n++], PF_WAL_NAME_MAX + 1, "%.*s", (int)len, name);
}

/* Which files recovery from start may ask for: every history file (it reads them to follow
 * timelines), and the segments at or after start's position on its timeline or a later
 * one. A streamed partial stands for its segment. Names are upper-case hex of fixed width,
 * so comparing the text compares the numbers. */
static int pick(const char *name, void *ctx)
{
    names *ns = ctx;
    pf_wal_kind k = pf_wal_name_kind(name);
    if (k == PF_WAL_HISTORY) {
        add(ns, name, strlen(name));
    } else if (k == PF_WAL_SEGMENT || k == PF_WAL_STREAMED) {
        if (strncmp(name, ns->start, 8) >= 0 && strncmp(name + 8, ns->start + 8, 16) >= 0)
            add(ns, name, 24);
    }
    return ns->oom ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

int pf_wal_spool_remove(const char *dir, pf_err *err)
{
    struct stat st;
    if (lstat(dir, &st)) {
        if (errno == ENOENT)
            return 0;
        return pf_err_sys(err, PF_EIO, "WAL spool %s", dir);
    }
    if (!S_ISDIR(st.st_mode))
        return pf_err_set(err, PF_EEXIST,
                          "%s is in the way of the WAL spool and not a directory: "
                          "move it away",
                          dir);
    if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS))
        return pf_err_sys(err, PF_EIO, "removing the WAL spool %s", dir);
    return 0;
}

int pf_wal_spool_fill(pf_repo *r, const char *dir, const char *start_wal, uint64_t seg_size,
                      uid_t uid, gid_t gid, pf_wal_spool_stats *st, pf_err *err)
{
    memset(st, 0, sizeof *st);
    if (!start_wal || pf_wal_name_kind(start_wal) != PF_WAL_SEGMENT)
        return pf_err_set(err, PF_ECORRUPT, "the base backup names no first WAL segment (%s)",
                          start_wal ? start_wal : "none");
    if (!seg_size)
        seg_size = 16u << 20;
    names ns = {.start = start_wal};
    int rc = -1;
    pf_buf b = PF_BUF_INIT;
    if (pf_wal_list(r, pick, &ns, err)) {
        if (ns.oom)
            pf_err_set(err, PF_EIO, "out of memory listing the WAL archive");
        pf_err_prefix(err, "listing the WAL archive");
        goto out;
    }
    if (ns.n)
        qsort(ns.v, ns.n, sizeof *ns.v, by_name);
    size_t m = 0;
    uint64_t need = 0;
    for (size_t i = 0; i < ns.n; i++) {
        if (m && !strcmp(ns.v[m - 1], ns.v[i]))
            continue;
        memmove(ns.v[m++], ns.v[i], sizeof *ns.v);
        need += pf_wal_name_kind(ns.v[i]) == PF_WAL_HISTORY ? 4096 : seg_size;
    }
    ns.n = m;
    if (pf_wal_spool_remove(dir, err))
        goto out;
    if (mkdir(dir, 0700)) {
        pf_err_sys(err, PF_EIO, "creating the WAL spool %s", dir);
        goto out;
    }
    if (chown(dir, uid, gid) && geteuid() == 0) {
        pf_err_sys(err, PF_EIO, "giving the WAL spool %s to the cluster's owner", dir);
        goto out;
    }
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
        pf_err_set(err, PF_EIO,
                   "the WAL spool %s needs %" PRIu64 " MiB for %zu WAL files, and only %" PRIu64
                   " MiB are free there: free space, or pass --restore-command with a command "
                   "the cluster's user can run",
                   dir, need >> 20, ns.n, ((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20);
        rmdir(dir);
        goto out;
    }
    pf_file_owner owner = {uid, gid, "the cluster's owner"};
    for (size_t i = 0; i < ns.n; i++) {
        const char *name = ns.v[i];
        char used[PF_WAL_NAME_MAX + 1] = "", path[4200];
        pf_buf_reset(&b);
        int frc = pf_wal_name_kind(name) == PF_WAL_HISTORY
                      ? pf_wal_fetch(r, name, &b, err)
                      : pf_wal_fetch_segment(r, name, &b, used, err);
        if (frc) {
            pf_err_prefix(err, "fetching WAL file %s into %s", name, dir);
            goto out;
        }
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (pf_write_file_atomic(path, b.data, b.len, 0600, &owner, err))
            goto out;
        st->files++;
        st->bytes += b.len;
    }
    rc = 0;
out:
    free(ns.v);
    pf_buf_free(&b);
    return rc;
}

void pf_wal_spool_command(const char *dir, pf_buf *cmd)
{
    pf_buf_append_str(cmd, "cp '");
    for (const char *s = dir; *s; s++) {
        if (*s == '\'')
            pf_buf_append_str(cmd, "'\\''");
        else if (*s == '%')
            pf_buf_append_str(cmd, "%%");
        else
            pf_buf_append(cmd, s, 1);
    }
    pf_buf_append_str(cmd, "/%f' '%p'");
}
