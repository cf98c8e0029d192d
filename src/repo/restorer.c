#include "repo/restorer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

int pf_lookup_path(pf_repo *r, const uint8_t root[PF_ID_LEN], const char *path, pf_node *out,
                   pf_err *err)
{
    pf_node cur = {0};
    cur.type = PF_NODE_DIR;
    cur.mode = 0755;
    cur.name = strdup("");
    cur.blobs = malloc(PF_ID_LEN);
    if (!cur.name || !cur.blobs) {
        pf_node_free(&cur);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    memcpy(cur.blobs[0], root, PF_ID_LEN);
    cur.nblobs = 1;
    const char *p = path;
    while (*p) {
        while (*p == '/')
            p++;
        if (!*p)
            break;
        const char *end = strchr(p, '/');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (cur.type != PF_NODE_DIR) {
            pf_node_free(&cur);
            return pf_err_set(err, PF_ENOTFOUND, "%s: %.*s is not a directory", path,
                              (int)(p - path - 1), path);
        }
        pf_tree t;
        if (pf_repo_load_tree(r, cur.blobs[0], &t, err)) {
            pf_node_free(&cur);
            return -1;
        }
        const pf_node *n = pf_tree_find(&t, p, len);
        if (!n) {
            pf_tree_free(&t);
            pf_node_free(&cur);
            return pf_err_set(err, PF_ENOTFOUND, "%s: no such file or directory in the snapshot",
                              path);
        }
        pf_node_free(&cur);
        pf_node_copy(&cur, n);
        pf_tree_free(&t);
        p += len;
    }
    *out = cur;
    return 0;
}

int pf_node_write(pf_repo *r, const pf_node *n, pf_sink *sink, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < n->nblobs && !rc; i++) {
        pf_buf_reset(&b);
        rc = pf_repo_load_blob(r, n->blobs[i], &b, err);
        if (!rc)
            rc = pf_sink_write(sink, b.data, b.len, err);
    }
    pf_buf_free(&b);
    return rc;
}

typedef struct node_source {
    pf_source src; /* first member */
    pf_repo *r;
    pf_node node;
    size_t next; /* next blob to load */
    pf_buf cur;
    size_t pos;
} node_source;

static ssize_t node_read(pf_source *s, void *p, size_t n, pf_err *err)
{
    node_source *ns = (node_source *)s;
    while (ns->pos == ns->cur.len) {
        if (ns->next == ns->node.nblobs)
            return 0;
        pf_buf_reset(&ns->cur);
        ns->pos = 0;
        if (pf_repo_load_blob(ns->r, ns->node.blobs[ns->next], &ns->cur, err))
            return -1;
        ns->next++;
    }
    size_t take = ns->cur.len - ns->pos;
    if (take > n)
        take = n;
    memcpy(p, ns->cur.data + ns->pos, take);
    ns->pos += take;
    return (ssize_t)take;
}

pf_source *pf_node_source_new(pf_repo *r, const pf_node *n)
{
    node_source *ns = calloc(1, sizeof *ns);
    if (!ns)
        return NULL;
    ns->src.read = node_read;
    ns->src.ctx = ns;
    ns->r = r;
    pf_node_copy(&ns->node, n);
    return &ns->src;
}

void pf_node_source_free(pf_source *s)
{
    if (!s)
        return;
    node_source *ns = (node_source *)s;
    pf_node_free(&ns->node);
    pf_buf_free(&ns->cur);
    free(ns);
}

/* ---- restoring onto disk ---- */

typedef struct link_seen {
    uint64_t dev, ino;
    int fd; /* O_PATH descriptor of the first restored copy */
} link_seen;

typedef struct rst {
    pf_repo *r;
    const pf_restore_opts *o;
    pf_restore_stats *st;
    pf_buf path;
    link_seen *links;
    size_t nlinks;
    struct timespec last;
} rst;

static void rprogress(rst *x)
{
    if (!x->o->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((double)(now.tv_sec - x->last.tv_sec) + (double)(now.tv_nsec - x->last.tv_nsec) / 1e9 <
        0.2)
        return;
    x->last = now;
    x->o->progress(x->st, (const char *)x->path.data, x->o->progress_ctx);
}

/* 0: restore n and all below; 1: n is on the way to an included path (descend only);
 * -1: skip. rel is n's path in the snapshot. */
static int included(const pf_restore_opts *o, const char *rel)
{
    if (!o->include || !o->include[0])
        return 0;
    size_t rl = strlen(rel);
    int on_way = 0;
    for (size_t i = 0; o->include[i]; i++) {
        const char *inc = o->include[i];
        while (*inc == '/')
            inc++;
        size_t il = strlen(inc);
        while (il && inc[il - 1] == '/')
            il--;
        if (il == 0)
            return 0;
        if (rl >= il && !strncmp(rel, inc, il) && (rl == il || rel[il] == '/'))
            return 0;
        if (il > rl && !strncmp(inc, rel, rl) && inc[rl] == '/')
            on_way = 1;
    }
    return on_way ? 1 : -1;
}

static int is_zero(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (p[i])
            return 0;
    return 1;
}

static int write_content(rst *x, int fd, const pf_node *n, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    uint64_t off = 0;
    int rc = -1;
    for (size_t i = 0; i < n->nblobs; i++) {
        pf_buf_reset(&b);
        if (pf_repo_load_blob(x->r, n->blobs[i], &b, err))
            goto out;
        /* A chunk of zeros becomes a hole: sparse files stay sparse. */
        if (!is_zero(b.data, b.len)) {
            size_t done = 0;
            while (done < b.len) {
                ssize_t w = pwrite(fd, b.data + done, b.len - done, (off_t)(off + done));
                if (w < 0) {
                    if (errno == EINTR)
                        continue;
                    pf_err_sys(err, PF_EIO, "writing %s", x->path.data);
                    goto out;
                }
                done += (size_t)w;
            }
        }
        off += b.len;
        x->st->bytes += b.len;
        rprogress(x);
    }
    if (off != n->size)
        pf_warn("%s: restored %llu bytes, snapshot recorded %llu", x->path.data,
                (unsigned long long)off, (unsigned long long)n->size);
    if (ftruncate(fd, (off_t)off)) {
        pf_err_sys(err, PF_EIO, "sizing %s", x->path.data);
        goto out;
    }
    rc = 0;
out:
    pf_buf_free(&b);
    return rc;
}

static void set_meta(rst *x, int dirfd, const pf_node *n)
{
    const char *name = n->name;
    if (x->o->owners && fchownat(dirfd, name, n->uid, n->gid, AT_SYMLINK_NOFOLLOW))
        pf_warn("cannot set owner of %s: %s", x->path.data, strerror(errno));
    /* chown clears setuid/setgid, so the mode comes after it; symlinks have no mode. */
    if (n->type != PF_NODE_SYMLINK && fchmodat(dirfd, name, n->mode, 0))
        pf_warn("cannot set mode of %s: %s", x->path.data, strerror(errno));
    struct timespec ts[2];
    ts[0].tv_sec = ts[1].tv_sec = n->mtime_ns / 1000000000;
    ts[0].tv_nsec = ts[1].tv_nsec = n->mtime_ns % 1000000000;
    if (utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW))
        pf_warn("cannot set times of %s: %s", x->path.data, strerror(errno));
}

static int remove_existing(int dirfd, const char *name)
{
    struct stat st;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW))
        return 0;
    if (S_ISDIR(st.st_mode))
        return 0; /* a directory is reused, never removed */
    return unlinkat(dirfd, name, 0);
}

static int restore_dir_contents(rst *x, int fd, const uint8_t tree_id[PF_ID_LEN],
                                const char *rel, pf_err *err);

static int restore_node(rst *x, int dirfd, const pf_node *n, const char *rel, pf_err *err)
{
    int inc = included(x->o, rel);
    if (inc < 0)
        return 0;
    if (inc == 1 && n->type != PF_NODE_DIR)
        return 0;
    const char *name = n->name;
    if (n->type != PF_NODE_DIR && remove_existing(dirfd, name))
        return pf_err_sys(err, PF_EIO, "cannot replace %s", x->path.data);
    switch (n->type) {
    case PF_NODE_DIR: {
        if (mkdirat(dirfd, name, 0700) && errno != EEXIST)
            return pf_err_sys(err, PF_EIO, "cannot create directory %s", x->path.data);
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0)
            return pf_err_sys(err, PF_EIO, "cannot open directory %s", x->path.data);
        int rc = restore_dir_contents(x, fd, n->blobs[0], rel, err);
        close(fd);
        if (rc)
            return -1;
        if (inc == 0)
            set_meta(x, dirfd, n);
        x->st->dirs++;
        return 0;
    }
    case PF_NODE_FILE: {
        if (n->nlink > 1) {
            for (size_t i = 0; i < x->nlinks; i++) {
                if (x->links[i].dev == n->dev && x->links[i].ino == n->inode) {
                    char proc[64];
                    snprintf(proc, sizeof proc, "/proc/self/fd/%d", x->links[i].fd);
                    if (linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW) == 0) {
                        x->st->files++;
                        return 0;
                    }
                    pf_warn("cannot hardlink %s, writing a copy: %s", x->path.data,
                            strerror(errno));
                    break;
                }
            }
        }
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return pf_err_sys(err, PF_EIO, "cannot create %s", x->path.data);
        int rc = write_content(x, fd, n, err);
        if (!rc && fsync(fd) && errno != EINVAL)
            rc = pf_err_sys(err, PF_EIO, "syncing %s", x->path.data);
        close(fd);
        if (rc) {
            unlinkat(dirfd, name, 0); /* never leave a file with wrong bytes behind */
            return -1;
        }
        set_meta(x, dirfd, n);
        if (n->nlink > 1) {
            int pfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
            if (pfd >= 0) {
                link_seen *l = realloc(x->links, (x->nlinks + 1) * sizeof *l);
                if (!l) {
                    close(pfd);
                } else {
                    x->links = l;
                    x->links[x->nlinks++] = (link_seen){n->dev, n->inode, pfd};
                }
            }
        }
        x->st->files++;
        return 0;
    }
    case PF_NODE_SYMLINK:
        if (symlinkat(n->link, dirfd, name))
            return pf_err_sys(err, PF_EIO, "cannot create symlink %s", x->path.data);
        set_meta(x, dirfd, n);
        x->st->others++;
        return 0;
    case PF_NODE_FIFO:
        if (mkfifoat(dirfd, name, 0600))
            return pf_err_sys(err, PF_EIO, "cannot create fifo %s", x->path.data);
        set_meta(x, dirfd, n);
        x->st->others++;
        return 0;
    case PF_NODE_CHARDEV:
    case PF_NODE_BLOCKDEV:
        if (mknodat(dirfd, name, (n->type == PF_NODE_CHARDEV ? S_IFCHR : S_IFBLK) | 0600,
                    (dev_t)n->rdev)) {
            pf_warn("skipping device %s: %s", x->path.data, strerror(errno));
            x->st->errors++;
            return 0;
        }
        set_meta(x, dirfd, n);
        x->st->others++;
        return 0;
    case PF_NODE_SOCKET:
        /* A socket is created by the program that listens on it; nothing to restore. */
        pf_debug("not restoring socket %s", x->path.data);
        return 0;
    }
    return 0;
}

static int restore_dir_contents(rst *x, int fd, const uint8_t tree_id[PF_ID_LEN],
                                const char *rel, pf_err *err)
{
    pf_tree t;
    if (pf_repo_load_tree(x->r, tree_id, &t, err))
        return pf_err_prefix(err, "%s", x->path.len ? (const char *)x->path.data : "/");
    size_t plen = x->path.len;
    pf_buf childrel = PF_BUF_INIT;
    int rc = 0;
    for (size_t i = 0; i < t.count && !rc; i++) {
        const pf_node *n = &t.nodes[i];
        x->path.len = plen;
        pf_buf_printf(&x->path, "/%s", n->name);
        pf_buf_reset(&childrel);
        if (*rel)
            pf_buf_printf(&childrel, "%s/", rel);
        pf_buf_append(&childrel, n->name, n->name_len);
        rc = restore_node(x, fd, n, (const char *)childrel.data, err);
    }
    x->path.len = plen;
    x->path.data[plen] = 0;
    pf_buf_free(&childrel);
    pf_tree_free(&t);
    return rc;
}

static int restore_into(pf_repo *r, const uint8_t root[PF_ID_LEN], const pf_node *meta,
                        const char *target, const pf_restore_opts *opts,
                        pf_restore_stats *stats, pf_err *err);

int pf_restore_tree(pf_repo *r, const uint8_t root[PF_ID_LEN], const char *target,
                    const pf_restore_opts *opts, pf_restore_stats *stats, pf_err *err)
{
    return restore_into(r, root, NULL, target, opts, stats, err);
}

int pf_restore_dir_into(pf_repo *r, const pf_node *dir, const char *target,
                        const pf_restore_opts *opts, pf_restore_stats *stats, pf_err *err)
{
    if (dir->type != PF_NODE_DIR || dir->nblobs != 1)
        return pf_err_set(err, PF_EUSAGE, "%s is not a directory in the snapshot", dir->name);
    return restore_into(r, dir->blobs[0], dir, target, opts, stats, err);
}

static int restore_into(pf_repo *r, const uint8_t root[PF_ID_LEN], const pf_node *meta,
                        const char *target, const pf_restore_opts *opts,
                        pf_restore_stats *stats, pf_err *err)
{
    pf_restore_opts defaults = {0};
    pf_restore_stats local = {0};
    rst x = {r, opts ? opts : &defaults, stats ? stats : &local, PF_BUF_INIT, NULL, 0, {0, 0}};
    if (mkdir(target, 0700) && errno != EEXIST)
        return pf_err_sys(err, PF_EIO, "cannot create target directory %s", target);
    int fd = open(target, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot open target directory %s", target);
    pf_buf_append_str(&x.path, target);
    if (x.path.len > 1 && x.path.data[x.path.len - 1] == '/')
        x.path.data[--x.path.len] = 0;
    int rc = restore_dir_contents(&x, fd, root, "", err);
    if (!rc && meta) {
        /* The target itself takes the directory's recorded metadata. */
        pf_node self = *meta;
        self.name = ".";
        set_meta(&x, fd, &self);
    }
    close(fd);
    for (size_t i = 0; i < x.nlinks; i++)
        close(x.links[i].fd);
    free(x.links);
    pf_buf_free(&x.path);
    return rc;
}
