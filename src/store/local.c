/* The local driver: a key is a file under the repository directory, "data/ab/<id>" is
 * DIR/data/ab/<id>. put writes "<name>.tmp-<random>" in the same directory, fsyncs it,
 * renames it over the name and fsyncs the directory, so after put returns the object is
 * durable and a reader (or a crash) only ever sees the old object or the whole new one.
 * put_unsynced does the same without the two fsyncs (a reader, or a killed process, still
 * sees only whole objects: the rename comes after the last write) and asks the kernel to
 * start writing the file back, so that sync's fsyncs of the batch find little left to do.
 * Temporary files left by a crash are invisible to list; sweep_tmp removes old ones. Nothing is
 * shared between calls but the directory name, so every operation is safe from several threads. */
#include "store/store.h"
#include "store/internal.h"
#include "common/fdsink.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct local_store {
    char *dir; /* without a trailing '/' (except for "/" itself) */
} local_store;

/* DIR/key into a malloc'd string. */
static char *local_path(const local_store *ls, const char *key)
{
    size_t n = strlen(ls->dir) + 1 + strlen(key) + 1;
    char *p = malloc(n);
    if (!p)
        abort();
    snprintf(p, n, "%s/%s", ls->dir, key);
    return p;
}

static int fsync_dir(const char *dir, pf_err *err)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot open directory %s", dir);
    int rc = 0;
    if (fsync(fd) < 0 && errno != EINVAL)
        rc = pf_err_sys(err, PF_EIO, "cannot sync directory %s", dir);
    close(fd);
    return rc;
}

/* Creates every missing directory in path up to (not including) its last component. Other
 * threads may be creating the same directories: EEXIST is success. */
static int mkdir_parents(char *path, pf_err *err)
{
    char *slash = strrchr(path, '/');
    if (!slash || slash == path)
        return 0;
    *slash = 0;
    struct stat st;
    int rc = 0;
    if (stat(path, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            rc = pf_err_set(err, PF_EIO, "%s exists and is not a directory", path);
        goto out;
    }
    if (mkdir_parents(path, err) < 0) {
        rc = -1;
        goto out;
    }
    if (mkdir(path, 0700) < 0 && errno != EEXIST)
        rc = pf_err_sys(err, PF_EIO, "cannot create directory %s", path);
out:
    *slash = '/';
    return rc;
}

/* noreplace: fail with PF_EEXIST rather than replace an existing object (the append-only
 * server's put), deciding atomically so that two writers cannot both create it. */
static int put_mode(pf_store *s, const char *key, const void *data, size_t len, bool noreplace,
                    bool durable, pf_err *err)
{
    local_store *ls = s->impl;
    char *path = NULL, *tmp = NULL;
    int fd = -1, rc = -1;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    path = local_path(ls, key);
    if (mkdir_parents(path, err) < 0)
        goto out;
    char rnd[17];
    pf_store_rand_hex(rnd, 8);
    size_t tn = strlen(path) + 6 + sizeof rnd;
    tmp = malloc(tn);
    if (!tmp)
        abort();
    snprintf(tmp, tn, "%s.tmp-%s", path, rnd);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        pf_err_sys(err, PF_EIO, "cannot create %s", tmp);
        goto out;
    }
    if (pf_fd_write_all(fd, data, len) < 0) {
        pf_err_sys(err, PF_EIO, "cannot write %s", tmp);
        goto out;
    }
    if (durable && fsync(fd) < 0) {
        pf_err_sys(err, PF_EIO, "cannot sync %s", tmp);
        goto out;
    }
    /* Only a hint (the writeback starts now, while the next object is made): sync's fsync
     * reports what fails. */
    if (!durable)
        (void)sync_file_range(fd, 0, 0, SYNC_FILE_RANGE_WRITE);
    if (close(fd) < 0) {
        fd = -1;
        pf_err_sys(err, PF_EIO, "cannot write %s", tmp);
        goto out;
    }
    fd = -1;
    if (noreplace) {
        int r = renameat2(AT_FDCWD, tmp, AT_FDCWD, path, RENAME_NOREPLACE);
        if (r < 0 && (errno == EINVAL || errno == ENOSYS)) {
            /* A file system without RENAME_NOREPLACE: link() refuses an existing name too. */
            r = link(tmp, path);
            if (r == 0)
                unlink(tmp);
        }
        if (r < 0) {
            if (errno == EEXIST)
                pf_err_set(err, PF_EEXIST, "object %s exists in %s", key, s->location);
            else
                pf_err_sys(err, PF_EIO, "cannot rename %s to %s", tmp, path);
            goto out;
        }
    } else if (rename(tmp, path) < 0) {
        pf_err_sys(err, PF_EIO, "cannot rename %s to %s", tmp, path);
        goto out;
    }
    free(tmp);
    tmp = NULL;
    rc = 0;
    if (durable) {
        /* The rename is durable only once the directory entry is. */
        char *slash = strrchr(path, '/');
        *slash = 0;
        rc = fsync_dir(path, err);
        *slash = '/';
    }
out:
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    free(path);
    return rc;
}

static int local_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    return put_mode(s, key, data, len, false, true, err);
}

static int local_put_unsynced(pf_store *s, const char *key, const void *data, size_t len,
                              pf_err *err)
{
    return put_mode(s, key, data, len, false, false, err);
}

int pf_store_local_put_new(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    return put_mode(s, key, data, len, true, true, err);
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Every file first, then each directory once (sorted, so duplicates are neighbours): the
 * directories that name them, and theirs, which put may have created for them. */
static int local_sync(pf_store *s, const char *const *keys, size_t n, pf_err *err)
{
    local_store *ls = s->impl;
    char **dirs = calloc(2 * n + 1, sizeof *dirs);
    if (!dirs)
        abort();
    size_t nd = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        if (pf_store_check_key(keys[i], err) < 0) {
            rc = -1;
            break;
        }
        char *path = local_path(ls, keys[i]);
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
            rc = pf_err_sys(err, errno == ENOENT ? PF_ENOTFOUND : PF_EIO,
                            "cannot open %s to sync it", path);
        else if (fsync(fd) < 0)
            rc = pf_err_sys(err, PF_EIO, "cannot sync %s", path);
        if (fd >= 0)
            close(fd);
        for (int up = 0; up < 2 && !rc; up++) {
            char *slash = strrchr(path, '/');
            if (!slash || slash == path || (size_t)(slash - path) < strlen(ls->dir))
                break;
            *slash = 0;
            dirs[nd] = strdup(path);
            if (!dirs[nd])
                abort();
            nd++;
        }
        free(path);
    }
    qsort(dirs, nd, sizeof *dirs, cmp_str);
    for (size_t i = 0; i < nd && !rc; i++)
        if (i == 0 || strcmp(dirs[i], dirs[i - 1]))
            rc = fsync_dir(dirs[i], err);
    for (size_t i = 0; i < nd; i++)
        free(dirs[i]);
    free(dirs);
    return rc;
}

static int local_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                     pf_err *err)
{
    local_store *ls = s->impl;
    char *path = NULL;
    int fd = -1, rc = -1;
    size_t start = out->len;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    path = local_path(ls, key);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
        else
            pf_err_sys(err, PF_EIO, "cannot open %s", path);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        pf_err_sys(err, PF_EIO, "cannot stat %s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s (not a regular file)", key,
                   s->location);
        goto out;
    }
    uint64_t n;
    if (pf_store_check_range(key, (uint64_t)st.st_size, off, len, &n, err) < 0)
        goto out;
    if (n > SIZE_MAX - 1 - out->len) {
        pf_err_set(err, PF_EIO, "object %s: %llu bytes do not fit in memory", key,
                   (unsigned long long)n);
        goto out;
    }
    pf_buf_reserve(out, (size_t)n);
    uint64_t done = 0;
    while (done < n) {
        size_t chunk = n - done > (1u << 30) ? (1u << 30) : (size_t)(n - done);
        ssize_t r = pread(fd, out->data + out->len, chunk, (off_t)(off + done));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            pf_err_sys(err, PF_EIO, "cannot read %s", path);
            goto out;
        }
        if (r == 0) {
            pf_err_set(err, PF_ECORRUPT, "object %s shrank while being read", key);
            goto out;
        }
        out->len += (size_t)r;
        done += (uint64_t)r;
    }
    out->data[out->len] = 0;
    rc = 0;
out:
    if (rc < 0 && out->data) {
        out->len = start;
        out->data[start] = 0;
    }
    if (fd >= 0)
        close(fd);
    free(path);
    return rc;
}

static int local_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    local_store *ls = s->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    char *path = local_path(ls, key);
    struct stat st;
    int rc = 0;
    if (stat(path, &st) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
        else
            rc = pf_err_sys(err, PF_EIO, "cannot stat %s", path);
    } else if (!S_ISREG(st.st_mode)) {
        rc = pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s (not a regular file)", key,
                        s->location);
    } else {
        *size = (uint64_t)st.st_size;
    }
    free(path);
    return rc;
}

static int local_remove(pf_store *s, const char *key, pf_err *err)
{
    local_store *ls = s->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    char *path = local_path(ls, key);
    int rc = 0;
    if (unlink(path) < 0) {
        if (errno == ENOENT || errno == ENOTDIR)
            rc = pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
        else
            rc = pf_err_sys(err, PF_EIO, "cannot remove %s", path);
    }
    free(path);
    return rc;
}

struct walk {
    const char *prefix; /* full-key prefix to match */
    size_t prefix_len;
    pf_store_list_cb cb;
    void *ctx;
    const char *location;
    pf_err *err;
};

/* Walks directory `path` whose keys start with `rel` ("" or "a/b/"). Returns 0, -1 on error
 * or the callback's non-zero value. */
static int walk_dir(struct walk *w, pf_buf *path, pf_buf *rel)
{
    DIR *d = opendir((char *)path->data);
    int rc = 0;
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return 0;
        return pf_err_sys(w->err, PF_EIO, "cannot list %s", (char *)path->data);
    }
    size_t plen = path->len, rlen = rel->len;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rc = pf_err_sys(w->err, PF_EIO, "cannot list %s", (char *)path->data);
            break;
        }
        const char *name = de->d_name;
        if (!strcmp(name, ".") || !strcmp(name, "..") || pf_store_is_tmp_name(name))
            continue;
        path->len = plen;
        rel->len = rlen;
        pf_buf_printf(path, "/%s", name);
        pf_buf_append_str(rel, name);
        /* Prune subtrees that cannot hold a matching key. */
        size_t cmp = rel->len < w->prefix_len ? rel->len : w->prefix_len;
        if (memcmp(rel->data, w->prefix, cmp) != 0)
            continue;
        struct stat st;
        if (lstat((char *)path->data, &st) < 0) {
            if (errno == ENOENT)
                continue; /* removed while we listed */
            rc = pf_err_sys(w->err, PF_EIO, "cannot stat %s", (char *)path->data);
            break;
        }
        if (S_ISDIR(st.st_mode)) {
            pf_buf_append_str(rel, "/");
            rc = walk_dir(w, path, rel);
            if (rc != 0)
                break;
        } else if (S_ISREG(st.st_mode) && rel->len >= w->prefix_len) {
            rc = w->cb((char *)rel->data, (uint64_t)st.st_size, w->ctx, w->err);
            if (rc != 0)
                break;
        }
    }
    path->len = plen;
    path->data[plen] = 0;
    rel->len = rlen;
    if (rel->data)
        rel->data[rlen] = 0;
    closedir(d);
    return rc;
}

static int local_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    local_store *ls = s->impl;
    if (!prefix)
        prefix = "";
    if (pf_store_check_prefix(prefix, err) < 0)
        return -1;
    struct walk w = {prefix, strlen(prefix), cb, ctx, s->location, err};
    pf_buf path = PF_BUF_INIT, rel = PF_BUF_INIT;
    /* Start at the deepest directory the prefix names completely. */
    const char *slash = strrchr(prefix, '/');
    pf_buf_append_str(&path, ls->dir);
    pf_buf_append_str(&rel, "");
    if (slash) {
        pf_buf_printf(&path, "/%.*s", (int)(slash - prefix), prefix);
        pf_buf_append(&rel, prefix, (size_t)(slash - prefix + 1));
    }
    int rc = walk_dir(&w, &path, &rel);
    pf_buf_free(&path);
    pf_buf_free(&rel);
    return rc;
}

/* Walks dir (with its subdirectories: data/ab/ holds packs) removing "*.tmp-*" files whose
 * mtime is before `before`. A writer rewrites its file as it goes, so an old mtime means
 * no writer is at work on it. */
static int sweep_dir(pf_buf *path, int64_t before, uint64_t *removed, uint64_t *bytes, int depth,
                     pf_err *err)
{
    DIR *d = opendir((char *)path->data);
    if (!d)
        return errno == ENOENT ? 0 : pf_err_sys(err, PF_EIO, "cannot list %s", (char *)path->data);
    size_t plen = path->len;
    int rc = 0;
    struct dirent *de;
    while (rc == 0 && (de = readdir(d))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        path->len = plen;
        pf_buf_printf(path, "/%s", de->d_name);
        struct stat st;
        if (lstat((char *)path->data, &st) < 0)
            continue; /* gone meanwhile */
        if (S_ISDIR(st.st_mode) && depth < 3) {
            rc = sweep_dir(path, before, removed, bytes, depth + 1, err);
        } else if (S_ISREG(st.st_mode) && pf_store_is_tmp_name(de->d_name) &&
                   (int64_t)st.st_mtime < before) {
            if (unlink((char *)path->data) == 0) {
                (*removed)++;
                *bytes += (uint64_t)st.st_size;
            } else if (errno != ENOENT) {
                rc = pf_err_sys(err, PF_EIO, "cannot remove %s", (char *)path->data);
            }
        }
    }
    path->len = plen;
    path->data[plen] = 0;
    closedir(d);
    return rc;
}

static int local_sweep_tmp(pf_store *s, int64_t before, uint64_t *removed, uint64_t *bytes,
                           pf_err *err)
{
    local_store *ls = s->impl;
    pf_buf path = PF_BUF_INIT;
    pf_buf_append_str(&path, ls->dir);
    int rc = sweep_dir(&path, before, removed, bytes, 0, err);
    pf_buf_free(&path);
    return rc;
}

static void local_free(pf_store *s)
{
    local_store *ls = s->impl;
    if (ls) {
        free(ls->dir);
        free(ls);
    }
}

static const struct pf_store_ops local_ops = {
    .name = "local",
    .put = local_put,
    .get = local_get,
    .stat = local_stat,
    .list = local_list,
    .remove = local_remove,
    .free = local_free,
    .sweep_tmp = local_sweep_tmp,
    .put_unsynced = local_put_unsynced,
    .sync = local_sync,
};

/* The directory need not exist yet (init creates it with the first put); a path that
 * exists and is not a directory is refused. */
pf_store *pf_store_local_new(const char *dir, pf_err *err)
{
    if (!dir || !*dir) {
        pf_err_set(err, PF_EUSAGE, "repository directory is empty");
        return NULL;
    }
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode)) {
        pf_err_set(err, PF_ENOREPO, "repository %s is not a directory", dir);
        return NULL;
    }
    local_store *ls = calloc(1, sizeof *ls);
    if (!ls)
        abort();
    ls->dir = strdup(dir);
    if (!ls->dir)
        abort();
    size_t n = strlen(ls->dir);
    while (n > 1 && ls->dir[n - 1] == '/')
        ls->dir[--n] = 0;
    pf_store *s = pf_store_alloc(&local_ops, ls, dir);
    s->props = (pf_store_props){.remote = false, .connections = 0};
    return s;
}
