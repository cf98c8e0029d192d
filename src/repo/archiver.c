#include "repo/archiver.h"
#include "common/alloc.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"

typedef struct subtask subtask;

struct pf_dir {
    pf_dir *parent;
    subtask *handed;           /* subdirectories walked by other threads, to be added at the end */
    pf_tree tree;              /* entries collected so far */
    pf_tree old;               /* the parent snapshot's tree for this directory; empty if none */
    uint8_t old_id[PF_ID_LEN]; /* old's blob id, when has_old */
    int has_old;
    size_t old_next; /* the walk adds entries in name order: old's entries before it are passed */
    pf_node meta;    /* this directory's own entry */
};

typedef struct hardlink {
    uint64_t dev, ino;
    uint8_t (*blobs)[PF_ID_LEN];
    size_t nblobs;
} hardlink;

typedef struct idname {
    uint32_t id;
    char *name;
} idname;

/* One content stream being chunked: a file read from disk or bytes pushed to a sink. */
typedef struct chunk_stream {
    pf_sink sink; /* first member: a pf_sink* is a chunk_stream* */
    pf_archiver *a;
    pf_dir *dir;
    pf_node node;
    pf_blob_list blobs; /* hashed by the saver's workers */
} chunk_stream;

/* Every archiver that may publish progress to one main one: the user's forks, and the
 * helper walkers of each of them and of the main one. */
#define ARCHIVERS_MAX                                                                              \
    (PF_ARCHIVE_FORKS_MAX + (PF_ARCHIVE_FORKS_MAX + 1) * (PF_ARCHIVE_WALKERS_MAX - 1))

struct pf_archiver {
    pf_repo *r;
    pf_saver *s;
    uint8_t parent_root[PF_ID_LEN];
    int has_parent;
    pf_dir *root;
    pf_archive_stats stats;
    pf_progress_fn progress;
    void *progress_ctx;
    pf_archive_visit_fn visit;
    void *visit_ctx;
    struct timespec last_progress;
    hardlink *links;
    size_t nlinks;
    idname *users, *groups;
    size_t nusers, ngroups;
    /* The chunk being filled: its bytes so far, and how far the chunker has scanned them.
     * A cut chunk's buffer goes to the saver as it is; only the bytes after the cut (less
     * than one feed) are copied, into the next chunk's buffer. */
    pf_buf cur;
    pf_chunk_scan scan;
    int stream_busy;
    char *skipped[PF_ARCHIVE_SKIPPED_MAX]; /* first unreadable paths, for the snapshot */
    size_t nskipped;
    /* Forks (pf_archiver_fork): the main archiver's progress line sums the statistics each
     * archiver last published under progress_mu; a fork points to its main. */
    pf_archiver *main;
    pf_archiver *forks[ARCHIVERS_MAX];
    size_t nforks, nuser_forks;
    int is_helper; /* a walker of pf_archive_path's parallel walk, not a user fork */
    int walkers;   /* threads pf_archive_path walks a tree with; 0: the default */
    pthread_mutex_t progress_mu;
    pf_archive_stats published;
};

static const char *lookup_name(idname **tab, size_t *n, uint32_t id, int is_group)
{
    for (size_t i = 0; i < *n; i++)
        if ((*tab)[i].id == id)
            return (*tab)[i].name;
    char *found = NULL;
    /* A group with many members needs a large buffer: grow it on ERANGE. */
    for (size_t cap = 16384; cap <= (1u << 24) && !found; cap *= 4) {
        char *buf = pf_xrealloc(NULL, cap);
        int rc;
        if (is_group) {
            struct group g, *res = NULL;
            rc = getgrgid_r(id, &g, buf, cap, &res);
            if (!rc && res)
                found = pf_xstrdup(res->gr_name);
        } else {
            struct passwd p, *res = NULL;
            rc = getpwuid_r(id, &p, buf, cap, &res);
            if (!rc && res)
                found = pf_xstrdup(res->pw_name);
        }
        free(buf);
        if (rc != ERANGE)
            break;
    }
    *tab = pf_xrealloc(*tab, (*n + 1) * sizeof **tab);
    (*tab)[*n].id = id;
    (*tab)[*n].name = found ? found : pf_xstrdup("");
    return (*tab)[(*n)++].name;
}

pf_archiver *pf_archiver_new(pf_repo *r, pf_saver *s, const uint8_t *parent_root, pf_err *err)
{
    pf_archiver *a = calloc(1, sizeof *a);
    if (!a) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    a->r = r;
    a->s = s;
    if (parent_root) {
        memcpy(a->parent_root, parent_root, PF_ID_LEN);
        a->has_parent = 1;
    }
    pthread_mutex_init(&a->progress_mu, NULL);
    a->root = calloc(1, sizeof *a->root);
    if (!a->root) {
        pf_archiver_free(a);
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    if (a->has_parent) {
        pf_err e = {0};
        if (pf_repo_load_tree(r, a->parent_root, &a->root->old, &e)) {
            pf_warn("parent snapshot unreadable, reading everything: %s", e.msg);
            a->has_parent = 0;
        } else {
            memcpy(a->root->old_id, a->parent_root, PF_ID_LEN);
            a->root->has_old = 1;
        }
    }
    return a;
}

void pf_archiver_free(pf_archiver *a)
{
    if (!a)
        return;
    if (a->root)
        pf_dir_abort(a->root);
    for (size_t i = 0; i < a->nskipped; i++)
        free(a->skipped[i]);
    for (size_t i = 0; i < a->nlinks; i++)
        free(a->links[i].blobs);
    free(a->links);
    for (size_t i = 0; i < a->nusers; i++)
        free(a->users[i].name);
    for (size_t i = 0; i < a->ngroups; i++)
        free(a->groups[i].name);
    free(a->users);
    free(a->groups);
    pf_buf_release(&a->cur);
    if (a->main) {
        pthread_mutex_lock(&a->main->progress_mu);
        for (size_t i = 0; i < a->main->nforks; i++)
            if (a->main->forks[i] == a) {
                a->main->forks[i] = a->main->forks[--a->main->nforks];
                if (!a->is_helper)
                    a->main->nuser_forks--;
                break;
            }
        pthread_mutex_unlock(&a->main->progress_mu);
    }
    pthread_mutex_destroy(&a->progress_mu);
    free(a);
}

pf_archiver *pf_archiver_fork(pf_archiver *a, pf_err *err)
{
    if (a->main || a->nuser_forks == PF_ARCHIVE_FORKS_MAX) {
        pf_err_set(err, PF_EGENERIC, "too many archivers at once");
        return NULL;
    }
    pf_archiver *f = pf_archiver_new(a->r, a->s, NULL, err);
    if (!f)
        return NULL;
    /* The same parent: a fork's directories find their old trees (change detection) as
     * the main archiver's would. The root's own old tree is copied, not reloaded. */
    if (a->has_parent) {
        memcpy(f->parent_root, a->parent_root, PF_ID_LEN);
        f->has_parent = 1;
        for (size_t i = 0; a->root && i < a->root->old.count; i++)
            pf_tree_add(&f->root->old, &a->root->old.nodes[i]);
    }
    f->main = a;
    f->walkers = a->walkers;
    pthread_mutex_lock(&a->progress_mu);
    a->forks[a->nforks++] = f;
    a->nuser_forks++;
    pthread_mutex_unlock(&a->progress_mu);
    return f;
}

static void stats_add(pf_archive_stats *to, const pf_archive_stats *s)
{
    to->files += s->files;
    to->dirs += s->dirs;
    to->others += s->others;
    to->files_unchanged += s->files_unchanged;
    to->bytes += s->bytes;
    to->bytes_read += s->bytes_read;
    to->errors += s->errors;
}

void pf_archiver_join(pf_archiver *a, pf_archiver *fork)
{
    if (!fork)
        return;
    for (size_t i = 0; fork->root && i < fork->root->tree.count; i++)
        pf_tree_add(&a->root->tree, &fork->root->tree.nodes[i]);
    stats_add(&a->stats, &fork->stats);
    for (size_t i = 0; i < fork->nskipped && a->nskipped < PF_ARCHIVE_SKIPPED_MAX; i++) {
        a->skipped[a->nskipped++] = fork->skipped[i];
        fork->skipped[i] = NULL;
    }
    pf_archiver_free(fork);
}

void pf_archiver_set_progress(pf_archiver *a, pf_progress_fn fn, void *ctx)
{
    a->progress = fn;
    a->progress_ctx = ctx;
}

void pf_archiver_set_visit(pf_archiver *a, pf_archive_visit_fn fn, void *ctx)
{
    a->visit = fn;
    a->visit_ctx = ctx;
}

void pf_archiver_stats(pf_archiver *a, pf_archive_stats *out)
{
    *out = a->stats;
}

size_t pf_archiver_skipped(pf_archiver *a, const char *const **paths)
{
    *paths = (const char *const *)a->skipped;
    return a->nskipped;
}

static void progress(pf_archiver *a, const char *current)
{
    pf_archiver *m = a->main ? a->main : a;
    if (!m->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    double dt = (double)(now.tv_sec - a->last_progress.tv_sec) +
                (double)(now.tv_nsec - a->last_progress.tv_nsec) / 1e9;
    if (dt < 0.2)
        return;
    a->last_progress = now;
    if (!a->main && !a->nforks) {
        a->progress(&a->stats, current, a->progress_ctx);
        return;
    }
    /* One line for all threads: each archiver's statistics as it last published them. */
    pthread_mutex_lock(&m->progress_mu);
    a->published = a->stats;
    pf_archive_stats sum = m->published;
    for (size_t i = 0; i < m->nforks; i++)
        stats_add(&sum, &m->forks[i]->published);
    m->progress(&sum, current, m->progress_ctx);
    pthread_mutex_unlock(&m->progress_mu);
}

pf_dir *pf_archiver_root(pf_archiver *a)
{
    return a->root;
}

static void dir_free(pf_dir *d)
{
    pf_tree_free(&d->tree);
    pf_tree_free(&d->old);
    pf_node_free(&d->meta);
    free(d);
}

void pf_dir_abort(pf_dir *d)
{
    if (d)
        dir_free(d);
}

/* Nanoseconds since the epoch; times outside what an i64 holds (before 1677-09-21 or
 * after 2262-04-11) are clamped to its ends rather than overflow. */
static int64_t ts_ns(const struct timespec *ts)
{
    int64_t ns;
    if (__builtin_mul_overflow((int64_t)ts->tv_sec, (int64_t)1000000000, &ns) ||
        __builtin_add_overflow(ns, (int64_t)ts->tv_nsec, &ns))
        return ts->tv_sec < 0 ? INT64_MIN : INT64_MAX;
    return ns;
}

static void node_from_stat(pf_archiver *a, pf_node *n, const char *name, size_t len,
                           const struct stat *st)
{
    memset(n, 0, sizeof *n);
    n->name = (char *)name;
    n->name_len = len;
    n->mode = st->st_mode & 07777;
    n->uid = st->st_uid;
    n->gid = st->st_gid;
    n->user = (char *)lookup_name(&a->users, &a->nusers, st->st_uid, 0);
    n->group = (char *)lookup_name(&a->groups, &a->ngroups, st->st_gid, 1);
    n->mtime_ns = ts_ns(&st->st_mtim);
    n->ctime_ns = ts_ns(&st->st_ctim);
    n->size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0;
    n->inode = st->st_ino;
    n->dev = st->st_dev;
    n->nlink = (uint32_t)st->st_nlink;
    if (S_ISCHR(st->st_mode) || S_ISBLK(st->st_mode))
        n->rdev = st->st_rdev;
    switch (st->st_mode & S_IFMT) {
    case S_IFREG:
        n->type = PF_NODE_FILE;
        break;
    case S_IFDIR:
        n->type = PF_NODE_DIR;
        break;
    case S_IFLNK:
        n->type = PF_NODE_SYMLINK;
        break;
    case S_IFIFO:
        n->type = PF_NODE_FIFO;
        break;
    case S_IFSOCK:
        n->type = PF_NODE_SOCKET;
        break;
    case S_IFCHR:
        n->type = PF_NODE_CHARDEV;
        break;
    case S_IFBLK:
        n->type = PF_NODE_BLOCKDEV;
        break;
    default:
        n->type = 0;
    }
}

/* The parent snapshot's entry `name` of d. The walk asks in name order, so the entry is
 * found by stepping on from the last one; a name asked out of order is searched for. */
static const pf_node *old_entry(pf_dir *d, const char *name, size_t len)
{
    const pf_tree *t = &d->old;
    while (d->old_next < t->count) {
        const pf_node *o = &t->nodes[d->old_next];
        size_t n = o->name_len < len ? o->name_len : len;
        int c = memcmp(o->name, name, n);
        if (!c)
            c = o->name_len < len ? -1 : o->name_len > len;
        if (c > 0)
            break;
        if (!c)
            return o;
        d->old_next++;
    }
    return pf_tree_find(t, name, len);
}

/* A directory whose parent snapshot's entry is old (or NULL). */
static pf_dir *dir_new_old(pf_archiver *a, pf_dir *parent, const char *name, size_t len,
                           const pf_node *old)
{
    pf_dir *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->parent = parent;
    d->meta.name = pf_xrealloc(NULL, len + 1);
    memcpy(d->meta.name, name, len);
    d->meta.name[len] = 0;
    d->meta.name_len = len;
    d->meta.type = PF_NODE_DIR;
    if (old && old->type == PF_NODE_DIR && old->nblobs == 1) {
        pf_err e = {0};
        if (pf_repo_load_tree(a->r, old->blobs[0], &d->old, &e)) {
            pf_debug("parent tree for %s unreadable: %s", d->meta.name, e.msg);
        } else {
            memcpy(d->old_id, old->blobs[0], PF_ID_LEN);
            d->has_old = 1;
        }
    }
    return d;
}

static pf_dir *dir_new(pf_archiver *a, pf_dir *parent, const char *name, size_t len)
{
    return dir_new_old(a, parent, name, len, parent ? old_entry(parent, name, len) : NULL);
}

pf_dir *pf_dir_begin(pf_archiver *a, pf_dir *parent, const char *name, pf_err *err)
{
    if (!pf_tree_name_ok(name, strlen(name))) {
        pf_err_set(err, PF_EUSAGE, "invalid entry name \"%s\"", name);
        return NULL;
    }
    pf_dir *d = dir_new(a, parent, name, strlen(name));
    if (!d) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    d->meta.mode = 0755;
    d->meta.uid = getuid();
    d->meta.gid = getgid();
    d->meta.user = pf_xstrdup(lookup_name(&a->users, &a->nusers, d->meta.uid, 0));
    d->meta.group = pf_xstrdup(lookup_name(&a->groups, &a->ngroups, d->meta.gid, 1));
    d->meta.mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    return d;
}

void pf_dir_take_meta(pf_archiver *a, pf_dir *d, const struct stat *st)
{
    free(d->meta.user);
    free(d->meta.group);
    d->meta.mode = st->st_mode & 07777;
    d->meta.uid = st->st_uid;
    d->meta.gid = st->st_gid;
    d->meta.user = pf_xstrdup(lookup_name(&a->users, &a->nusers, st->st_uid, 0));
    d->meta.group = pf_xstrdup(lookup_name(&a->groups, &a->ngroups, st->st_gid, 1));
    d->meta.mtime_ns = ts_ns(&st->st_mtim);
}

/* Writes d's tree (or finds it unchanged) and gives its id. */
static int dir_write(pf_archiver *a, pf_dir *d, uint8_t id[PF_ID_LEN], pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = -1;
    pf_tree_sort(&d->tree);
    /* Unchanged since the parent snapshot: the same bytes, so the same id, and the blob is
     * there already (a pruned one is written again below). */
    if (d->has_old && pf_tree_same(&d->tree, &d->old) && pf_repo_has_blob(a->r, d->old_id))
        memcpy(id, d->old_id, PF_ID_LEN);
    else if (pf_tree_encode(&d->tree, &b, err) ||
             pf_saver_save(a->s, PF_BLOB_TREE, b.data, b.len, id, err))
        goto out;
    a->stats.dirs++;
    rc = 0;
out:
    pf_buf_free(&b);
    return rc;
}

int pf_dir_end(pf_archiver *a, pf_dir *d, uint8_t *root_id, pf_err *err)
{
    uint8_t id[PF_ID_LEN];
    int rc = dir_write(a, d, id, err);
    if (!rc && d->parent) {
        d->meta.blobs = pf_xrealloc(d->meta.blobs, PF_ID_LEN);
        memcpy(d->meta.blobs[0], id, PF_ID_LEN);
        d->meta.nblobs = 1;
        pf_tree_add(&d->parent->tree, &d->meta);
    } else if (!rc && root_id) {
        memcpy(root_id, id, PF_ID_LEN);
    }
    if (d == a->root)
        a->root = NULL;
    dir_free(d);
    return rc;
}

/* Input goes into the chunk being filled at most this much at a time, and is scanned as it
 * arrives: the bytes past a cut, copied into the next chunk, are fewer than this. */
#define FEED (64u << 10)

/* Cuts and hands over to the saver every chunk of a->cur the chunker can decide; with eof,
 * all of it. */
static int cut_chunks(pf_archiver *a, chunk_stream *cs, int eof, pf_err *err)
{
    while (a->cur.len) {
        size_t n = pf_chunker_next(&a->r->chunker, &a->scan, a->cur.data, a->cur.len, eof);
        if (!n)
            break;
        pf_buf next = pf_saver_buffer(a->s);
        if (n < a->cur.len)
            pf_buf_append(&next, a->cur.data + n, a->cur.len - n);
        a->cur.len = n;
        a->scan = (pf_chunk_scan){0, 0};
        int rc = pf_saver_append(a->s, &cs->blobs, &a->cur, err);
        a->cur = next;
        if (rc)
            return -1;
    }
    return 0;
}

static int stream_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    chunk_stream *cs = (chunk_stream *)s;
    pf_archiver *a = cs->a;
    const uint8_t *src = p;
    while (n) {
        size_t take = n < FEED ? n : FEED;
        pf_buf_append(&a->cur, src, take);
        src += take;
        n -= take;
        cs->node.size += take;
        a->stats.bytes += take;
        a->stats.bytes_read += take;
        if (cut_chunks(a, cs, 0, err))
            return -1;
        progress(a, cs->node.name);
    }
    return 0;
}

static chunk_stream *stream_new(pf_archiver *a, pf_dir *d)
{
    chunk_stream *cs = calloc(1, sizeof *cs);
    if (!cs)
        return NULL;
    cs->sink.write = stream_write;
    cs->sink.ctx = cs;
    cs->a = a;
    cs->dir = d;
    a->stream_busy = 1;
    a->cur.len = 0;
    a->scan = (pf_chunk_scan){0, 0};
    return cs;
}

static void stream_free(chunk_stream *cs)
{
    pf_err ignored = {0};
    /* No worker may still write into the list once it is freed. */
    pf_saver_list_wait(cs->a->s, &cs->blobs, &ignored);
    cs->a->stream_busy = 0;
    cs->a->cur.len = 0;
    free(cs->blobs.ids);
    pf_node_free(&cs->node);
    free(cs);
}

pf_sink *pf_archive_stream_begin(pf_archiver *a, pf_dir *d, const char *name, uint32_t mode,
                                 pf_err *err)
{
    if (a->stream_busy) {
        pf_err_set(err, PF_EGENERIC, "one stream at a time");
        return NULL;
    }
    if (!pf_tree_name_ok(name, strlen(name))) {
        pf_err_set(err, PF_EUSAGE, "invalid entry name \"%s\"", name);
        return NULL;
    }
    chunk_stream *cs = stream_new(a, d);
    if (!cs) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    cs->node.name = pf_xstrdup(name);
    cs->node.name_len = strlen(name);
    cs->node.type = PF_NODE_FILE;
    cs->node.mode = mode & 07777;
    cs->node.uid = getuid();
    cs->node.gid = getgid();
    cs->node.user = pf_xstrdup(lookup_name(&a->users, &a->nusers, cs->node.uid, 0));
    cs->node.group = pf_xstrdup(lookup_name(&a->groups, &a->ngroups, cs->node.gid, 1));
    cs->node.mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
    cs->node.nlink = 1;
    return &cs->sink;
}

static int stream_finish(chunk_stream *cs, pf_err *err)
{
    if (cut_chunks(cs->a, cs, 1, err) || pf_saver_list_wait(cs->a->s, &cs->blobs, err))
        return -1;
    cs->node.blobs = cs->blobs.ids;
    cs->node.nblobs = cs->blobs.n;
    cs->blobs = (pf_blob_list){0};
    return 0;
}

int pf_archive_stream_end(pf_archiver *a, pf_sink *s, pf_err *err)
{
    chunk_stream *cs = (chunk_stream *)s;
    int rc = stream_finish(cs, err);
    if (!rc) {
        pf_tree_add(&cs->dir->tree, &cs->node);
        a->stats.files++;
    }
    stream_free(cs);
    return rc;
}

void pf_archive_stream_abort(pf_sink *s)
{
    if (s)
        stream_free((chunk_stream *)s);
}

const pf_node *pf_dir_parent_entry(const pf_dir *d, const char *name)
{
    return pf_tree_find(&d->old, name, strlen(name));
}

static int blobs_all_known(pf_archiver *a, const pf_node *n);

int pf_dir_reuse(pf_archiver *a, pf_dir *d, const pf_node *old)
{
    if (!old || old->type != PF_NODE_FILE || !blobs_all_known(a, old))
        return 0;
    pf_tree_add(&d->tree, old);
    a->stats.files++;
    a->stats.files_unchanged++;
    a->stats.bytes += old->size;
    return 1;
}

void pf_archive_stream_meta(pf_sink *s, int64_t mtime_ns, const char *link, size_t link_len)
{
    chunk_stream *cs = (chunk_stream *)s;
    cs->node.mtime_ns = mtime_ns;
    free(cs->node.link);
    cs->node.link = NULL;
    cs->node.link_len = 0;
    if (link_len) {
        cs->node.link = pf_xrealloc(NULL, link_len + 1);
        memcpy(cs->node.link, link, link_len);
        cs->node.link[link_len] = 0;
        cs->node.link_len = link_len;
    }
}

void pf_archiver_skip(pf_archiver *a, const char *path)
{
    a->stats.errors++;
    if (a->nskipped < PF_ARCHIVE_SKIPPED_MAX)
        a->skipped[a->nskipped++] = pf_xstrdup(path);
}

/* Reads an open file through the chunker into cs. */
static int read_file(pf_archiver *a, chunk_stream *cs, int fd, const char *path, pf_err *err)
{
    posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    for (;;) {
        pf_buf_reserve(&a->cur, FEED);
        ssize_t got = read(fd, a->cur.data + a->cur.len, FEED);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return pf_err_sys(err, PF_EIO, "reading %s", path);
        }
        if (got == 0)
            break;
        a->cur.len += (size_t)got;
        a->stats.bytes += (uint64_t)got;
        a->stats.bytes_read += (uint64_t)got;
        if (cut_chunks(a, cs, 0, err))
            return -1;
        progress(a, path);
    }
    return stream_finish(cs, err);
}

static int blobs_all_known(pf_archiver *a, const pf_node *n)
{
    for (size_t i = 0; i < n->nblobs; i++)
        if (!pf_repo_has_blob(a->r, n->blobs[i]))
            return 0;
    return 1;
}

int pf_archive_reuse(pf_archiver *a, pf_dir *d, const char *name, pf_err *err)
{
    const pf_node *old = pf_tree_find(&d->old, name, strlen(name));
    if (!old || (old->type != PF_NODE_FILE && old->type != PF_NODE_DIR))
        return pf_err_set(err, PF_ENOTFOUND, "the parent snapshot has no file %s", name);
    if (!blobs_all_known(a, old))
        return pf_err_set(err, PF_ENOTFOUND,
                          "the parent snapshot's %s names data the index does not have", name);
    pf_tree_add(&d->tree, old);
    if (old->type == PF_NODE_DIR) {
        a->stats.dirs++;
        return 0;
    }
    a->stats.files++;
    a->stats.files_unchanged++;
    a->stats.bytes += old->size;
    return 0;
}

static hardlink *find_link(pf_archiver *a, uint64_t dev, uint64_t ino)
{
    for (size_t i = 0; i < a->nlinks; i++)
        if (a->links[i].dev == dev && a->links[i].ino == ino)
            return &a->links[i];
    return NULL;
}

static int is_excluded(const char *rel, const char *const *excludes)
{
    for (size_t i = 0; excludes && excludes[i]; i++)
        if (!strcmp(rel, excludes[i]))
            return 1;
    return 0;
}

/* ---- the walk, on one thread or several ----------------------------------------------- */

/* Helping while waiting nests walks on one thread's stack; past this depth a thread waits
 * without taking more, which keeps its memory to this many nested walks. */
#define HELP_DEPTH_MAX 8

typedef struct walk_pool walk_pool;

/* A subdirectory handed to another thread: what that thread needs to walk it without its
 * parent, and what it gives back. The parent waits for it before it ends (old points into
 * the parent's own parent-snapshot tree). */
struct subtask {
    subtask *next; /* in the parent's handed list */
    int fd;        /* the directory, open; the walk owns it */
    pf_node meta;  /* its entry from its stat (owned) */
    const pf_node *old;
    char *path, *rel;
    /* under the pool's lock */
    int done, rc;
    pf_err err;
    int has_result;
    pf_node result; /* its entry with its tree's id, when it was archived */
};

typedef struct walk_slot {
    walk_pool *pool;
    int index;
    pf_archiver *a; /* the thread's own archiver (the caller's for slot 0) */
    pthread_t thread;
    subtask *task; /* handed to this thread, not yet taken */
    int ready;     /* idle or waiting, and may take a task */
} walk_slot;

struct walk_pool {
    pthread_mutex_t mu;
    pthread_cond_t cond; /* a task was handed over or finished, or the pool stops */
    walk_slot slots[PF_ARCHIVE_WALKERS_MAX];
    int nslots, started; /* slot 0 is the calling thread; started helper threads */
    atomic_int nready;   /* slots ready without a task: a cheap look before the lock */
    atomic_int failed;   /* a walker met an error that stops the walk */
    int stop;
    pf_err first_err;
    const char *const *excludes;
    pf_archive_visit_fn visit;
    void *visit_ctx;
    pthread_mutex_t out_mu; /* one visit call or warning at a time */
};

typedef struct walk {
    pf_archiver *a;
    const char *const *excludes;
    pf_buf path; /* display path of the current entry */
    pf_buf rel;  /* path relative to the top, for excludes */
    pf_archive_visit_fn visit;
    void *visit_ctx;
    walk_pool *pool; /* NULL: one thread */
    int slot, depth;
} walk;

static int archive_entry(walk *w, pf_dir *d, int dirfd, const char *fsname, const char *name,
                         size_t name_len, int top, pf_err *err);

/* Bytewise, as tree entries are sorted (strcmp compares unsigned chars). */
static int name_order(const void *x, const void *y)
{
    return strcmp(*(char *const *)x, *(char *const *)y);
}

static void pool_fail(walk_pool *p, const pf_err *e)
{
    pthread_mutex_lock(&p->mu);
    if (!atomic_load(&p->failed)) {
        p->first_err = *e;
        atomic_store(&p->failed, 1);
    }
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

static void skip_entry(walk_pool *p, pf_archiver *a, const char *path, const pf_err *e)
{
    if (p)
        pthread_mutex_lock(&p->out_mu);
    pf_warn("%s", e->msg);
    if (p)
        pthread_mutex_unlock(&p->out_mu);
    a->stats.errors++;
    if (a->nskipped < PF_ARCHIVE_SKIPPED_MAX)
        a->skipped[a->nskipped++] = pf_xstrdup(path);
}

static void subtask_free(subtask *t)
{
    pf_node_free(&t->meta);
    pf_node_free(&t->result);
    free(t->path);
    free(t->rel);
    free(t);
}

/* Hands the subdirectory open as fd (entry n of d) to a thread that is ready for it: 1 when
 * one took it (it owns fd then), 0 when none was. */
static int hand_over(walk *w, pf_dir *d, int fd, const pf_node *n)
{
    walk_pool *p = w->pool;
    if (!p || !atomic_load_explicit(&p->nready, memory_order_relaxed) || atomic_load(&p->failed))
        return 0;
    pthread_mutex_lock(&p->mu);
    walk_slot *to = NULL;
    for (int i = 0; i < p->nslots && !to; i++)
        if (p->slots[i].ready && !p->slots[i].task && i != w->slot)
            to = &p->slots[i];
    if (!to) {
        pthread_mutex_unlock(&p->mu);
        return 0;
    }
    subtask *t = pf_xcalloc(1, sizeof *t);
    t->fd = fd;
    pf_node_copy(&t->meta, n);
    /* Looked up here, in name order on d's own thread, as dir_new would. */
    t->old = old_entry(d, n->name, n->name_len);
    t->path = pf_xstrdup((const char *)w->path.data);
    t->rel = pf_xstrdup((const char *)w->rel.data);
    t->next = d->handed;
    d->handed = t;
    to->task = t;
    to->ready = 0;
    atomic_fetch_sub(&p->nready, 1);
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    return 1;
}

static int walk_dir(walk *w, pf_dir *child, int fd, pf_err *err);

/* Walks a handed-over subdirectory on this thread (slot, at nesting depth) and reports. */
static void run_task(walk_pool *p, int slot, int depth, subtask *t)
{
    pf_archiver *a = p->slots[slot].a;
    walk w = {.a = a,
              .excludes = p->excludes,
              .path = PF_BUF_INIT,
              .rel = PF_BUF_INIT,
              .visit = p->visit,
              .visit_ctx = p->visit_ctx,
              .pool = p,
              .slot = slot,
              .depth = depth};
    pf_buf_append_str(&w.path, t->path);
    pf_buf_append_str(&w.rel, t->rel);
    pf_err e = {0};
    int rc = -1;
    uint8_t id[PF_ID_LEN];
    pf_dir *child = dir_new_old(a, NULL, t->meta.name, t->meta.name_len, t->old);
    if (!child) {
        close(t->fd);
        pf_err_set(&e, PF_EGENERIC, "out of memory");
    } else {
        char *keep_name = child->meta.name;
        pf_node_copy(&child->meta, &t->meta);
        free(child->meta.name);
        child->meta.name = keep_name;
        rc = walk_dir(&w, child, t->fd, &e);
        if (!rc)
            rc = dir_write(a, child, id, &e);
        if (!rc) {
            child->meta.blobs = pf_xrealloc(child->meta.blobs, PF_ID_LEN);
            memcpy(child->meta.blobs[0], id, PF_ID_LEN);
            child->meta.nblobs = 1;
            t->result = child->meta;
            child->meta = (pf_node){0};
        }
        dir_free(child);
    }
    int has_result = !rc;
    /* As the parent's own loop would: an unreadable directory is skipped, anything else
     * stops every walker. */
    if (rc && e.code == PF_EIO) {
        skip_entry(p, a, t->path, &e);
        rc = 0;
    } else if (rc) {
        pool_fail(p, &e);
    }
    pf_buf_free(&w.path);
    pf_buf_free(&w.rel);
    pthread_mutex_lock(&p->mu);
    t->rc = rc;
    t->err = e;
    t->has_result = has_result;
    t->done = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
}

/* Waits until every subdirectory of d handed over is done, walking what is handed to this
 * thread meanwhile, then adds their entries to d. -1 with the first error of theirs. */
static int wait_handed(walk *w, pf_dir *d, pf_err *err)
{
    walk_pool *p = w->pool;
    if (!d->handed)
        return 0;
    walk_slot *me = &p->slots[w->slot];
    pthread_mutex_lock(&p->mu);
    for (;;) {
        if (me->task) {
            subtask *t = me->task;
            me->task = NULL;
            pthread_mutex_unlock(&p->mu);
            run_task(p, w->slot, w->depth + 1, t);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        int all = 1;
        for (subtask *t = d->handed; t && all; t = t->next)
            all = t->done;
        if (all)
            break;
        if (!me->ready && w->depth < HELP_DEPTH_MAX) {
            me->ready = 1;
            atomic_fetch_add(&p->nready, 1);
        }
        pthread_cond_wait(&p->cond, &p->mu);
    }
    if (me->ready) {
        me->ready = 0;
        atomic_fetch_sub(&p->nready, 1);
    }
    pthread_mutex_unlock(&p->mu);
    int rc = 0;
    while (d->handed) {
        subtask *t = d->handed;
        d->handed = t->next;
        if (t->rc && !rc) {
            *err = t->err;
            rc = -1;
        } else if (t->has_result) {
            pf_tree_add(&d->tree, &t->result);
        }
        subtask_free(t);
    }
    return rc;
}

/* A helper thread: takes what is handed to it until the pool stops. */
static void *walker_main(void *arg)
{
    walk_slot *me = arg;
    walk_pool *p = me->pool;
    pthread_mutex_lock(&p->mu);
    while (!p->stop) {
        if (me->task) {
            subtask *t = me->task;
            me->task = NULL;
            pthread_mutex_unlock(&p->mu);
            run_task(p, me->index, 0, t);
            pthread_mutex_lock(&p->mu);
            continue;
        }
        if (!me->ready) {
            me->ready = 1;
            atomic_fetch_add(&p->nready, 1);
            pthread_cond_broadcast(&p->cond);
        }
        pthread_cond_wait(&p->cond, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

static int walk_dir(walk *w, pf_dir *child, int fd, pf_err *err)
{
    pf_archiver *a = w->a;
    DIR *dir = NULL;
    char **names = NULL;
    size_t nnames = 0;
    int rc = -1;
    dir = fdopendir(fd);
    if (!dir) {
        close(fd);
        pf_err_sys(err, PF_EIO, "opening directory %s", w->path.data);
        goto out;
    }
    struct dirent *de;
    errno = 0;
    while ((de = readdir(dir))) {
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        names = pf_xrealloc(names, (nnames + 1) * sizeof *names);
        names[nnames++] = pf_xstrdup(de->d_name);
        errno = 0;
    }
    if (errno) {
        pf_err_sys(err, PF_EIO, "listing %s", w->path.data);
        goto out;
    }
    /* In name order: the tree needs no sort and the parent's entries are met in turn. */
    if (nnames > 1)
        qsort(names, nnames, sizeof *names, name_order);
    size_t path_len = w->path.len, rel_len = w->rel.len;
    for (size_t i = 0; i < nnames; i++) {
        if (w->pool && atomic_load_explicit(&w->pool->failed, memory_order_relaxed)) {
            pf_err_set(err, PF_EGENERIC, "the walk stopped");
            goto out;
        }
        w->path.len = path_len;
        w->rel.len = rel_len;
        pf_buf_u8(&w->path, '/');
        pf_buf_append_str(&w->path, names[i]);
        if (rel_len)
            pf_buf_u8(&w->rel, '/');
        pf_buf_append_str(&w->rel, names[i]);
        if (is_excluded((const char *)w->rel.data, w->excludes))
            continue;
        pf_err e = {0};
        if (archive_entry(w, child, dirfd(dir), names[i], names[i], strlen(names[i]), 0, &e)) {
            if (e.code != PF_EIO) { /* out of memory, repository failure: stop */
                *err = e;
                if (w->pool)
                    pool_fail(w->pool, &e);
                goto out;
            }
            skip_entry(w->pool, a, (const char *)w->path.data, &e);
        }
    }
    w->path.len = path_len;
    w->rel.len = rel_len;
    w->path.data[path_len] = 0;
    w->rel.data[rel_len] = 0;
    rc = 0;
out:
    for (size_t i = 0; i < nnames; i++)
        free(names[i]);
    free(names);
    if (dir)
        closedir(dir);
    /* Even after an error: what was handed over refers to child's parent tree. */
    pf_err e = {0};
    if (wait_handed(w, child, &e) && !rc) {
        *err = e;
        rc = -1;
    }
    return rc;
}

static int archive_dir(walk *w, pf_dir *d, int fd, const char *name, size_t name_len,
                       const pf_node *meta, pf_err *err)
{
    pf_archiver *a = w->a;
    pf_dir *child = dir_new(a, d, name, name_len);
    if (!child) {
        close(fd);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    char *keep_name = child->meta.name;
    pf_node_copy(&child->meta, meta);
    free(child->meta.name);
    child->meta.name = keep_name;
    child->meta.name_len = name_len;
    if (walk_dir(w, child, fd, err)) {
        dir_free(child);
        return -1;
    }
    return pf_dir_end(a, child, NULL, err);
}

static int archive_file(walk *w, pf_dir *d, int dirfd, const char *fsname, pf_node *n, pf_err *err)
{
    pf_archiver *a = w->a;
    const pf_node *old = old_entry(d, n->name, n->name_len);
    if (old && old->type == PF_NODE_FILE && old->size == n->size && old->mtime_ns == n->mtime_ns &&
        old->ctime_ns == n->ctime_ns && old->inode == n->inode && blobs_all_known(a, old)) {
        n->blobs = old->blobs;
        n->nblobs = old->nblobs;
        pf_tree_add(&d->tree, n);
        a->stats.files++;
        a->stats.files_unchanged++;
        a->stats.bytes += n->size;
        return 0;
    }
    hardlink *hl = n->nlink > 1 ? find_link(a, n->dev, n->inode) : NULL;
    if (hl) {
        n->blobs = hl->blobs;
        n->nblobs = hl->nblobs;
        pf_tree_add(&d->tree, n);
        a->stats.files++;
        return 0;
    }
    int fd = openat(dirfd, fsname, O_RDONLY | O_NOFOLLOW | O_NOCTTY | O_NOATIME);
    if (fd < 0 && errno == EPERM)
        fd = openat(dirfd, fsname, O_RDONLY | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot read %s", w->path.data);
    chunk_stream *cs = stream_new(a, d);
    if (!cs) {
        close(fd);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    int rc = read_file(a, cs, fd, (const char *)w->path.data, err);
    close(fd);
    if (!rc) {
        n->blobs = cs->node.blobs;
        n->nblobs = cs->node.nblobs;
        pf_tree_add(&d->tree, n);
        a->stats.files++;
        if (n->nlink > 1) {
            a->links = pf_xrealloc(a->links, (a->nlinks + 1) * sizeof *a->links);
            hardlink *h = &a->links[a->nlinks++];
            h->dev = n->dev;
            h->ino = n->inode;
            h->nblobs = n->nblobs;
            h->blobs = pf_xrealloc(NULL, n->nblobs * PF_ID_LEN);
            memcpy(h->blobs, n->blobs, n->nblobs * PF_ID_LEN);
        }
    }
    n->blobs = NULL;
    n->nblobs = 0;
    stream_free(cs);
    return rc;
}

static int archive_entry(walk *w, pf_dir *d, int dirfd, const char *fsname, const char *name,
                         size_t name_len, int top, pf_err *err)
{
    pf_archiver *a = w->a;
    struct stat st;
    if (fstatat(dirfd, fsname, &st, AT_SYMLINK_NOFOLLOW))
        return pf_err_sys(err, PF_EIO, "cannot stat %s", w->path.data);
    pf_node n;
    node_from_stat(a, &n, name, name_len, &st);
    int rc = 0;
    switch (n.type) {
    case PF_NODE_DIR: {
        int fd = openat(dirfd, fsname, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
        if (fd < 0)
            return pf_err_sys(err, PF_EIO, "cannot open directory %s", w->path.data);
        if (!top && hand_over(w, d, fd, &n))
            return 0;
        return archive_dir(w, d, fd, name, name_len, &n, err);
    }
    case PF_NODE_FILE:
        rc = archive_file(w, d, dirfd, fsname, &n, err);
        if (!rc && w->visit) {
            if (w->pool)
                pthread_mutex_lock(&w->pool->out_mu);
            w->visit((const char *)w->rel.data, w->visit_ctx);
            if (w->pool)
                pthread_mutex_unlock(&w->pool->out_mu);
        }
        return rc;
    case PF_NODE_SYMLINK: {
        size_t cap = (size_t)st.st_size + 2;
        char *target = pf_xrealloc(NULL, cap);
        ssize_t len = readlinkat(dirfd, fsname, target, cap);
        if (len < 0 || (size_t)len >= cap) {
            free(target);
            return pf_err_sys(err, PF_EIO, "cannot read link %s", w->path.data);
        }
        target[len] = 0;
        n.link = target;
        n.link_len = (size_t)len;
        pf_tree_add(&d->tree, &n);
        free(target);
        a->stats.others++;
        break;
    }
    case PF_NODE_FIFO:
    case PF_NODE_SOCKET:
    case PF_NODE_CHARDEV:
    case PF_NODE_BLOCKDEV:
        pf_tree_add(&d->tree, &n);
        a->stats.others++;
        break;
    default:
        if (top)
            return pf_err_set(err, PF_EUSAGE, "%s: unsupported file type", w->path.data);
        if (w->pool)
            pthread_mutex_lock(&w->pool->out_mu);
        pf_warn("skipping %s: unsupported file type", w->path.data);
        if (w->pool)
            pthread_mutex_unlock(&w->pool->out_mu);
        break;
    }
    return rc;
}

void pf_archiver_set_walkers(pf_archiver *a, int n)
{
    a->walkers = n;
}

static int walkers_for(pf_archiver *a)
{
    int n = a->walkers;
    const char *v = getenv("PERMAFROST_WALKERS");
    if (n <= 0 && v && *v) {
        char *end;
        long l = strtol(v, &end, 10);
        if (*end || l < 1)
            pf_warn("PERMAFROST_WALKERS=%s is not a number of threads: using the default", v);
        else
            n = l > PF_ARCHIVE_WALKERS_MAX ? PF_ARCHIVE_WALKERS_MAX : (int)l;
    }
    if (n <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c < 1 ? 1 : c > PF_ARCHIVE_WALKERS_MAX ? PF_ARCHIVE_WALKERS_MAX : (int)c;
    }
    return n > PF_ARCHIVE_WALKERS_MAX ? PF_ARCHIVE_WALKERS_MAX : n;
}

/* A walker's own archiver: a's repository and saver, publishing progress to a's main. */
static pf_archiver *helper_new(pf_archiver *a)
{
    pf_err e = {0};
    pf_archiver *h = pf_archiver_new(a->r, a->s, NULL, &e);
    if (!h)
        return NULL;
    h->is_helper = 1;
    pf_archiver *m = a->main ? a->main : a;
    pthread_mutex_lock(&m->progress_mu);
    if (m->nforks < ARCHIVERS_MAX) {
        m->forks[m->nforks++] = h;
        h->main = m;
    }
    pthread_mutex_unlock(&m->progress_mu);
    return h;
}

/* Moves what a walker's archiver collected into a, then frees it. */
static void helper_join(pf_archiver *a, pf_archiver *h)
{
    stats_add(&a->stats, &h->stats);
    for (size_t i = 0; i < h->nskipped && a->nskipped < PF_ARCHIVE_SKIPPED_MAX; i++) {
        a->skipped[a->nskipped++] = h->skipped[i];
        h->skipped[i] = NULL;
    }
    if (h->nlinks) {
        a->links = pf_xrealloc(a->links, (a->nlinks + h->nlinks) * sizeof *a->links);
        memcpy(a->links + a->nlinks, h->links, h->nlinks * sizeof *h->links);
        a->nlinks += h->nlinks;
        h->nlinks = 0;
    }
    pf_archiver_free(h);
}

static void pool_free(walk_pool *p, pf_archiver *a)
{
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->nslots; i++)
        if (i <= p->started)
            pthread_join(p->slots[i].thread, NULL);
    for (int i = 1; i < p->nslots; i++)
        if (p->slots[i].a)
            helper_join(a, p->slots[i].a);
    pthread_mutex_destroy(&p->out_mu);
    pthread_cond_destroy(&p->cond);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

/* n walkers for a walk by a: the calling thread and n - 1 helpers; NULL (walk on one
 * thread) when not one helper could start. */
static walk_pool *pool_new(pf_archiver *a, int n, const char *const *excludes)
{
    walk_pool *p = pf_xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cond, NULL);
    pthread_mutex_init(&p->out_mu, NULL);
    p->excludes = excludes;
    p->visit = a->visit;
    p->visit_ctx = a->visit_ctx;
    p->slots[0].pool = p;
    p->slots[0].a = a;
    p->nslots = 1;
    for (int i = 1; i < n; i++) {
        walk_slot *s = &p->slots[i];
        s->pool = p;
        s->index = i;
        s->a = helper_new(a);
        if (!s->a)
            break;
        p->nslots++;
        if (pthread_create(&s->thread, NULL, walker_main, s)) {
            pf_debug("walking on %d threads: %s", i, strerror(errno));
            break;
        }
        p->started = i;
    }
    if (!p->started) {
        pool_free(p, a);
        return NULL;
    }
    /* The first subdirectory goes to a helper, whatever the scheduler does meanwhile. */
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->nready) < p->started)
        pthread_cond_wait(&p->cond, &p->mu);
    pthread_mutex_unlock(&p->mu);
    return p;
}

int pf_archive_path(pf_archiver *a, pf_dir *d, const char *name, const char *fs_path,
                    const char *const *excludes, pf_err *err)
{
    if (!pf_tree_name_ok(name, strlen(name)))
        return pf_err_set(err, PF_EUSAGE, "invalid entry name \"%s\" for %s", name, fs_path);
    if (pf_tree_find(&d->tree, name, strlen(name)))
        return pf_err_set(err, PF_EUSAGE, "two paths would both be stored as \"%s\"", name);
    walk w = {.a = a,
              .excludes = excludes,
              .path = PF_BUF_INIT,
              .rel = PF_BUF_INIT,
              .visit = a->visit,
              .visit_ctx = a->visit_ctx};
    pf_buf_append_str(&w.path, fs_path);
    pf_buf_reserve(&w.rel, 1);
    w.rel.data[0] = 0;
    /* Threads only for a tree: a file or a link is one entry. */
    int n = walkers_for(a);
    struct stat st;
    if (n > 1 && !lstat(fs_path, &st) && S_ISDIR(st.st_mode))
        w.pool = pool_new(a, n, excludes);
    /* The entries of d are sorted at the end; lookups in d->tree above are linear-safe
     * only because pf_tree_find is used on the parent snapshot's sorted trees, so sort. */
    int rc = archive_entry(&w, d, AT_FDCWD, fs_path, name, strlen(name), 1, err);
    if (w.pool) {
        /* The first error of any walker, not the others' "stopped". */
        if (rc && atomic_load(&w.pool->failed))
            *err = w.pool->first_err;
        pool_free(w.pool, a);
    }
    pf_tree_sort(&d->tree);
    if (rc && err->code == PF_EIO)
        err->code = PF_ENOTFOUND;
    pf_buf_free(&w.path);
    pf_buf_free(&w.rel);
    return rc;
}
