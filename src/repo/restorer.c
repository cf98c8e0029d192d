#include "repo/restorer.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/log.h"
#include "repo/readplan.h"

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

/* A stream reads a file's blobs in order: those that follow each other in one pack come
 * with one read of at most this many bytes (each prefetch slot holds one such run). */
#define STREAM_RUN_MAX (4u << 20)

/* How many of blobs ids[0], ids[1], ... (at least one) lie side by side in one pack
 * within STREAM_RUN_MAX bytes, so that one read fetches them. */
static size_t run_extent(pf_repo *r, const uint8_t (*ids)[PF_ID_LEN], size_t n)
{
    uint32_t pack = 0;
    uint64_t start = 0, end = 0;
    size_t k = 0;
    pthread_mutex_lock(&r->mu);
    for (; k < n; k++) {
        const pf_blob_loc *l = pf_index_find(r->index, ids[k]);
        if (!l || l->pack == PF_PACK_PENDING)
            break;
        if (k == 0) {
            pack = l->pack;
            start = l->offset;
        } else if (l->pack != pack || l->offset != end ||
                   (uint64_t)l->offset + l->length - start > STREAM_RUN_MAX) {
            break;
        }
        end = (uint64_t)l->offset + l->length;
    }
    pthread_mutex_unlock(&r->mu);
    return k ? k : 1;
}

/* Appends the content of blobs ids[0 .. n) (a run_extent) to out, with one read; each
 * blob is verified as pf_repo_load_blob does. */
static int load_run(pf_repo *r, const uint8_t (*ids)[PF_ID_LEN], size_t n, pf_buf *out, pf_err *err)
{
    if (n == 1) /* one blob, or one the index lacks: the single read says why */
        return pf_repo_load_blob(r, ids[0], out, err);
    pthread_mutex_lock(&r->mu);
    const pf_blob_loc *fl = pf_index_find(r->index, ids[0]);
    const pf_blob_loc *ll = pf_index_find(r->index, ids[n - 1]);
    pf_blob_loc first = fl ? *fl : (pf_blob_loc){0}, last = ll ? *ll : (pf_blob_loc){0};
    pf_pack_info pack = {0};
    if (fl && ll && fl->pack != PF_PACK_PENDING)
        pack = r->index->packs[fl->pack];
    pthread_mutex_unlock(&r->mu);
    if (!fl || !ll || first.pack == PF_PACK_PENDING || last.pack != first.pack ||
        last.offset < first.offset)
        return pf_err_set(err, PF_ECORRUPT, "blobs moved while being read");
    uint64_t end = (uint64_t)last.offset + last.length;
    char name[80];
    uint8_t pk[PF_KEY_LEN];
    pf_buf sealed = PF_BUF_INIT;
    pf_pack_key_name(pack.id, name);
    int rc = pf_store_get(r->store, name, first.offset, end - first.offset, &sealed, err);
    if (!rc && sealed.len != end - first.offset)
        rc = pf_err_set(err, PF_ECORRUPT, "%s: short read", name);
    if (!rc)
        rc = pf_pack_keys_get(&r->pack_keys, &r->keys, pack.kind, pack.salt, pk, err);
    for (size_t i = 0; !rc && i < n; i++) {
        pthread_mutex_lock(&r->mu);
        const pf_blob_loc *l = pf_index_find(r->index, ids[i]);
        pf_blob_loc loc = l ? *l : (pf_blob_loc){0};
        pthread_mutex_unlock(&r->mu);
        pf_blob_entry be = {.type = loc.type,
                            .comp = loc.comp,
                            .offset = loc.offset,
                            .length = loc.length,
                            .raw_length = loc.raw_length};
        memcpy(be.id, ids[i], PF_ID_LEN);
        if (!l || loc.offset < first.offset || (uint64_t)loc.offset + loc.length > end)
            rc = pf_err_set(err, PF_ECORRUPT, "blob moved while being read");
        else
            rc = pf_blob_open(&r->keys, pk, &be, sealed.data + (loc.offset - first.offset), out,
                              err);
        if (rc) {
            char hex[PF_HEX_ID_LEN + 1];
            pf_hex(ids[i], PF_ID_LEN, hex);
            pf_err_prefix(err, "blob %.16s in pack %.16s", hex, name + 8);
        }
    }
    OPENSSL_cleanse(pk, sizeof pk);
    pf_buf_free(&sealed);
    return rc;
}

int pf_node_write(pf_repo *r, const pf_node *n, pf_sink *sink, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = 0;
    for (size_t i = 0, k = 0; i < n->nblobs && !rc; i += k) {
        pf_buf_reset(&b);
        k = run_extent(r, n->blobs + i, n->nblobs - i);
        rc = load_run(r, n->blobs + i, k, &b, err);
        if (!rc)
            rc = pf_sink_write(sink, b.data, b.len, err);
    }
    pf_buf_free(&b);
    return rc;
}

/* A file's content as a pull stream. Runs of blobs are fetched ahead by a few threads, so
 * a remote repository's latency overlaps with the consumer (pg_restore, Redis). */
#define PREFETCH 4

typedef struct prefetch_slot {
    size_t first, count; /* which blobs it holds or loads */
    int state;           /* 0 empty, 1 loading, 2 ready, 3 failed */
    pf_buf data;
    pf_err err;
} prefetch_slot;

typedef struct node_source {
    pf_source src; /* first member */
    pf_repo *r;
    pf_node node;
    pthread_t threads[PREFETCH];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    prefetch_slot slots[PREFETCH];
    size_t next_fetch;          /* next blob index to hand to a fetcher */
    size_t fetch_seq, read_seq; /* runs handed out, runs consumed (slot = seq % PREFETCH) */
    size_t blobs_read;          /* blobs of the runs consumed */
    size_t pos;                 /* read position inside the current run */
    int stop;
} node_source;

static void *prefetcher(void *arg)
{
    node_source *ns = arg;
    pthread_mutex_lock(&ns->mu);
    for (;;) {
        prefetch_slot *slot = NULL;
        while (!ns->stop) {
            if (ns->next_fetch < ns->node.nblobs && ns->fetch_seq < ns->read_seq + PREFETCH) {
                slot = &ns->slots[ns->fetch_seq % PREFETCH];
                if (slot->state == 0)
                    break;
                slot = NULL;
            }
            pthread_cond_wait(&ns->cv, &ns->mu);
        }
        if (ns->stop)
            break;
        /* The run's extent is decided here, under the lock, so runs are handed out in
         * order; the read itself happens outside it. */
        size_t first = ns->next_fetch;
        size_t n = run_extent(ns->r, ns->node.blobs + first, ns->node.nblobs - first);
        ns->next_fetch = first + n;
        ns->fetch_seq++;
        slot->first = first;
        slot->count = n;
        slot->state = 1;
        pf_buf_reset(&slot->data);
        pthread_mutex_unlock(&ns->mu);
        pf_err e = {0};
        int rc = load_run(ns->r, ns->node.blobs + first, n, &slot->data, &e);
        pthread_mutex_lock(&ns->mu);
        slot->state = rc ? 3 : 2;
        slot->err = e;
        pthread_cond_broadcast(&ns->cv);
    }
    pthread_mutex_unlock(&ns->mu);
    return NULL;
}

static ssize_t node_read(pf_source *s, void *p, size_t n, pf_err *err)
{
    node_source *ns = (node_source *)s;
    pthread_mutex_lock(&ns->mu);
    for (;;) {
        if (ns->blobs_read >= ns->node.nblobs) {
            pthread_mutex_unlock(&ns->mu);
            return 0;
        }
        prefetch_slot *slot = &ns->slots[ns->read_seq % PREFETCH];
        while (slot->state != 2 && slot->state != 3)
            pthread_cond_wait(&ns->cv, &ns->mu);
        if (slot->state == 3) {
            *err = slot->err;
            pthread_mutex_unlock(&ns->mu);
            return -1;
        }
        if (ns->pos < slot->data.len) {
            size_t take = slot->data.len - ns->pos;
            if (take > n)
                take = n;
            memcpy(p, slot->data.data + ns->pos, take);
            ns->pos += take;
            pthread_mutex_unlock(&ns->mu);
            return (ssize_t)take;
        }
        ns->blobs_read += slot->count;
        slot->state = 0;
        ns->pos = 0;
        ns->read_seq++;
        pthread_cond_broadcast(&ns->cv);
    }
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
    pthread_mutex_init(&ns->mu, NULL);
    pthread_cond_init(&ns->cv, NULL);
    int want = n->nblobs < PREFETCH ? (int)n->nblobs : PREFETCH;
    for (int i = 0; i < want; i++)
        if (pthread_create(&ns->threads[ns->nthreads], NULL, prefetcher, ns) == 0)
            ns->nthreads++;
    if (want && !ns->nthreads) {
        pf_node_source_free(&ns->src);
        return NULL;
    }
    return &ns->src;
}

void pf_node_source_free(pf_source *s)
{
    if (!s)
        return;
    node_source *ns = (node_source *)s;
    pthread_mutex_lock(&ns->mu);
    ns->stop = 1;
    pthread_cond_broadcast(&ns->cv);
    pthread_mutex_unlock(&ns->mu);
    for (int i = 0; i < ns->nthreads; i++)
        pthread_join(ns->threads[i], NULL);
    for (int i = 0; i < PREFETCH; i++)
        pf_buf_free(&ns->slots[i].data);
    pthread_mutex_destroy(&ns->mu);
    pthread_cond_destroy(&ns->cv);
    pf_node_free(&ns->node);
    free(ns);
}

/* ---- restoring onto disk ---- */

typedef struct link_seen {
    uint64_t dev, ino;
    int fd; /* a duplicate of the descriptor the first copy was written through */
} link_seen;

/* File contents are written by a pool of threads at known offsets, so fetching,
 * decryption and decompression overlap (and, for a remote repository, several reads are in
 * flight). The walk itself (creating entries) stays on one thread. The walker gathers the
 * blobs it needs in a batch; the batch is planned into runs of neighbouring blobs of one
 * pack (repo/readplan.h), and each run is one read by one worker. */
#define RESTORE_QUEUE 64
#define RESTORE_MAX_WORKERS 16
/* A batch is planned when it holds this many blobs or sealed bytes, or early when the
 * workers run dry. A batch holds references only; bigger ones find longer runs, as a run
 * ends where a batch does (256 MiB is sixteen default packs: a restore of 256 MiB in 1 MiB
 * blobs took 58 reads, against 110 with 64 MiB batches and 254 blobs). */
#define RESTORE_BATCH_BLOBS 4096
#define RESTORE_BATCH_BYTES (256u << 20)
/* Files open at once (two descriptors each: the file and its directory). The walker stops
 * opening more at this many and goes on when half of them are done, so a batch still
 * holds many small files. */
#define RESTORE_MAX_OPEN 256
/* Run limits. A run is read whole into one buffer per worker: max_run bounds that memory.
 * The gap read and thrown away must cost less than the request it saves: on loopback an
 * s3rver GET costs ~2 ms of server CPU, the time ~600 KiB take to arrive; a local read
 * costs a system call, the time a page-cache copy of a few KiB takes. */
#define RESTORE_RUN_MAX (8u << 20)
#define RESTORE_GAP_REMOTE (256u << 10)
#define RESTORE_GAP_LOCAL (4u << 10)
/* Deeper trees than this are refused: a hostile tree could otherwise exhaust the stack
 * (each level is a recursion and an open directory). Far beyond what a backup reads. */
#define RESTORE_MAX_DEPTH 4096

/* What an entry gets once its content is in place. */
typedef struct meta {
    int owners;
    uint32_t uid, gid, mode;
    struct timespec ts[2];
} meta;

typedef struct file_job {
    int fd;
    int dirfd; /* its directory, to remove it by name (never by path) when it fails */
    char *name;
    pf_node node;
    meta m;
    char *path;
    size_t pending; /* blob jobs outstanding, plus one while the walker still adds */
    int failed;
} file_job;

typedef struct blob_job {
    file_job *f;
    uint8_t id[PF_ID_LEN];
    uint64_t off; /* in the file */
    pf_blob_loc loc;
} blob_job;

/* One read of a pack's range, and the blobs in it (in pack order). */
typedef struct run_job {
    uint32_t pack;
    uint64_t off, len;
    size_t n;
    blob_job blobs[];
} run_job;

typedef struct owner_name {
    char *name;
    int group;
    int found;
    uint32_t id;
} owner_name;

typedef struct rst {
    pf_repo *r;
    const pf_restore_opts *o;
    pf_restore_stats *st;
    pf_buf path;
    link_seen *links;
    size_t nlinks;
    owner_name *names; /* name lookups, cached: the walker's thread only */
    size_t nnames;
    int depth;
    struct timespec last;
    /* the writer pool */
    pthread_t threads[RESTORE_MAX_WORKERS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full, idle;
    run_job *queue[RESTORE_QUEUE];
    size_t head, count, active;
    size_t open_files; /* file_jobs not yet finished */
    int stop, failed;
    pf_err first_err;
    /* the walker's batch, and the planner's scratch (RESTORE_BATCH_BLOBS each) */
    blob_job *batch;
    size_t nbatch;
    uint64_t batch_bytes;
    pf_read_part *parts;
    pf_read_run *runs;
    uint64_t max_gap, max_run;
    /* reads issued, for tests and the debug log */
    uint64_t reads;
} rst;

static void rprogress(rst *x)
{
    if (!x->o->progress)
        return;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    if ((double)(now.tv_sec - x->last.tv_sec) + (double)(now.tv_nsec - x->last.tv_nsec) / 1e9 < 0.2)
        return;
    x->last = now;
    pthread_mutex_lock(&x->mu);
    pf_restore_stats snap = *x->st;
    pthread_mutex_unlock(&x->mu);
    x->o->progress(&snap, (const char *)x->path.data, x->o->progress_ctx);
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

/* The id a recorded name has on this machine, or fallback when the name is empty or
 * unknown here: files come back owned by the same users, whatever their ids are. */
static uint32_t owner_id(rst *x, int group, const char *name, uint32_t fallback)
{
    if (x->o->numeric_owner || !name || !*name)
        return fallback;
    for (size_t i = 0; i < x->nnames; i++)
        if (x->names[i].group == group && !strcmp(x->names[i].name, name))
            return x->names[i].found ? x->names[i].id : fallback;
    int found = 0;
    uint32_t id = 0;
    /* A group with many members needs a large buffer: grow it on ERANGE. */
    for (size_t cap = 16384; cap <= (1u << 24); cap *= 4) {
        char *buf = malloc(cap);
        if (!buf)
            break;
        int rc;
        if (group) {
            struct group g, *res = NULL;
            rc = getgrnam_r(name, &g, buf, cap, &res);
            if (!rc && res) {
                found = 1;
                id = res->gr_gid;
            }
        } else {
            struct passwd p, *res = NULL;
            rc = getpwnam_r(name, &p, buf, cap, &res);
            if (!rc && res) {
                found = 1;
                id = res->pw_uid;
            }
        }
        free(buf);
        if (rc != ERANGE)
            break;
    }
    char *copy = strdup(name);
    owner_name *grown = copy ? realloc(x->names, (x->nnames + 1) * sizeof *grown) : NULL;
    if (!grown) {
        free(copy);
    } else {
        x->names = grown;
        x->names[x->nnames++] = (owner_name){copy, group, found, id};
    }
    if (!found)
        pf_debug("%s %s is unknown here: using the recorded id %u", group ? "group" : "user", name,
                 fallback);
    return found ? id : fallback;
}

static void meta_of(rst *x, const pf_node *n, meta *m)
{
    m->owners = x->o->owners;
    m->uid = m->owners ? owner_id(x, 0, n->user, n->uid) : n->uid;
    m->gid = m->owners ? owner_id(x, 1, n->group, n->gid) : n->gid;
    m->mode = n->mode;
    m->ts[0] = m->ts[1] = pf_ns_to_timespec(n->mtime_ns);
}

/* Attributes through a real descriptor of a regular file or directory the restore
 * created or opened with O_NOFOLLOW: whatever happens to its name meanwhile, these land
 * on that inode and nowhere else. */
static void meta_fd(int fd, const meta *m, const char *path)
{
    if (m->owners && fchown(fd, m->uid, m->gid))
        pf_warn("cannot set owner of %s: %s", path, strerror(errno));
    /* after chown, which clears setuid/setgid */
    if (fchmod(fd, m->mode))
        pf_warn("cannot set mode of %s: %s", path, strerror(errno));
    if (futimens(fd, m->ts))
        pf_warn("cannot set times of %s: %s", path, strerror(errno));
}

/* The same through an O_PATH descriptor, for symlinks, FIFOs and devices (opening those
 * for real would follow the link, block, or talk to the device). fchmod does not work on
 * O_PATH descriptors; chmod of /proc/self/fd/N reaches exactly the inode the descriptor
 * holds. Symlinks have no mode of their own. */
/* utimensat with AT_EMPTY_PATH needs Linux 5.8; before, a symlink's times are set by
 * name, and only while that name still is the inode fd holds. */
static int times_pathfd(int fd, int dirfd, const char *name, const struct timespec ts[2])
{
    if (utimensat(fd, "", ts, AT_EMPTY_PATH) == 0)
        return 0;
    if (errno != EINVAL)
        return -1;
    struct stat mine, there;
    if (fstat(fd, &mine) || fstatat(dirfd, name, &there, AT_SYMLINK_NOFOLLOW))
        return -1;
    if (mine.st_dev != there.st_dev || mine.st_ino != there.st_ino) {
        errno = ESTALE;
        return -1;
    }
    return utimensat(dirfd, name, ts, AT_SYMLINK_NOFOLLOW);
}

static void meta_pathfd(int fd, int dirfd, const char *name, const meta *m, int is_link,
                        const char *path)
{
    if (m->owners && fchownat(fd, "", m->uid, m->gid, AT_EMPTY_PATH))
        pf_warn("cannot set owner of %s: %s", path, strerror(errno));
    if (!is_link) {
        char proc[64];
        snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
        if (chmod(proc, m->mode))
            pf_warn("cannot set mode of %s (is /proc mounted?): %s", path, strerror(errno));
    }
    if (times_pathfd(fd, dirfd, name, m->ts))
        pf_warn("cannot set times of %s: %s", path, strerror(errno));
}

/* Gives a finished file its size, metadata, and closes it; a failed one is emptied
 * and removed, so no file with wrong bytes is left behind. */
static void file_finish(rst *x, file_job *f)
{
    const pf_node *n = &f->node;
    if (!f->failed) {
        if (ftruncate(f->fd, (off_t)n->size))
            pf_warn("cannot size %s: %s", f->path, strerror(errno));
        meta_fd(f->fd, &f->m, f->path);
    } else {
        if (ftruncate(f->fd, 0)) {
            /* unlinking below is what matters */
        }
        /* Only if the name still is this file: never through a path, never another's. */
        struct stat mine, there;
        if (!fstat(f->fd, &mine) && !fstatat(f->dirfd, f->name, &there, AT_SYMLINK_NOFOLLOW) &&
            mine.st_dev == there.st_dev && mine.st_ino == there.st_ino)
            unlinkat(f->dirfd, f->name, 0);
    }
    close(f->fd);
    close(f->dirfd);
    pthread_mutex_lock(&x->mu);
    x->open_files--;
    pthread_cond_broadcast(&x->not_full);
    pthread_mutex_unlock(&x->mu);
    pf_node_free(&f->node);
    free(f->name);
    free(f->path);
    free(f);
}

static file_job *file_release(file_job *f)
{
    return --f->pending == 0 ? f : NULL;
}

/* Opens, verifies and writes the blobs of one run read whole into run; returns the first
 * failure, after which the rest of the run is skipped. A blob not written, for whatever
 * reason, fails its file: a file is finished (sized, kept) only when all of it is there. */
static int write_run(rst *x, const run_job *j, const pf_buf *run, const uint8_t pk[PF_KEY_LEN],
                     const char *pack_name, pf_buf *b, uint64_t *bytes, pf_err *e)
{
    int rc = 0;
    for (size_t i = 0; i < j->n; i++) {
        const blob_job *bj = &j->blobs[i];
        pthread_mutex_lock(&x->mu);
        int skip = rc || x->failed || bj->f->failed;
        if (skip)
            bj->f->failed = 1;
        pthread_mutex_unlock(&x->mu);
        if (skip)
            continue;
        pf_blob_entry be = {.type = bj->loc.type,
                            .comp = bj->loc.comp,
                            .offset = bj->loc.offset,
                            .length = bj->loc.length,
                            .raw_length = bj->loc.raw_length};
        memcpy(be.id, bj->id, PF_ID_LEN);
        pf_buf_reset(b);
        rc = pf_blob_open(&x->r->keys, pk, &be, run->data + (bj->loc.offset - j->off), b, e);
        if (rc) {
            char hex[PF_HEX_ID_LEN + 1];
            pf_hex(bj->id, PF_ID_LEN, hex);
            pf_err_prefix(e, "blob %.16s in pack %.16s", hex, pack_name + 8);
        }
        /* A chunk of zeros becomes a hole: sparse files stay sparse. */
        for (size_t done = 0; !rc && done < b->len && !is_zero(b->data, b->len);) {
            ssize_t w = pwrite(bj->f->fd, b->data + done, b->len - done, (off_t)(bj->off + done));
            if (w < 0 && errno != EINTR)
                rc = pf_err_sys(e, PF_EIO, "writing %s", bj->f->path);
            else if (w > 0)
                done += (size_t)w;
        }
        if (rc) {
            pf_err_prefix(e, "%s", bj->f->path);
            pthread_mutex_lock(&x->mu);
            bj->f->failed = 1;
            pthread_mutex_unlock(&x->mu);
            continue;
        }
        *bytes += b->len;
    }
    return rc ? -1 : 0;
}

/* Reads one run with one request and writes its blobs. */
static int do_run(rst *x, const run_job *j, pf_buf *run, pf_buf *b, uint64_t *bytes, pf_err *e)
{
    char name[80];
    uint8_t pk[PF_KEY_LEN];
    pthread_mutex_lock(&x->r->mu);
    pf_pack_info pack = x->r->index->packs[j->pack];
    pthread_mutex_unlock(&x->r->mu);
    pf_pack_key_name(pack.id, name);
    pf_buf_reset(run);
    int rc = pf_store_get(x->r->store, name, j->off, j->len, run, e);
    if (!rc && run->len != j->len)
        rc = pf_err_set(e, PF_ECORRUPT, "%s: short read", name);
    if (!rc)
        rc = pf_pack_keys_get(&x->r->pack_keys, &x->r->keys, pack.kind, pack.salt, pk, e);
    if (rc) {
        /* The read failed for every blob in it: name the first and its file. */
        char hex[PF_HEX_ID_LEN + 1];
        pf_hex(j->blobs[0].id, PF_ID_LEN, hex);
        pf_err_prefix(e, "%s: blob %.16s in pack %.16s", j->blobs[0].f->path, hex, name + 8);
        pthread_mutex_lock(&x->mu);
        for (size_t i = 0; i < j->n; i++)
            j->blobs[i].f->failed = 1;
        pthread_mutex_unlock(&x->mu);
    } else {
        rc = write_run(x, j, run, pk, name, b, bytes, e);
    }
    OPENSSL_cleanse(pk, sizeof pk);
    return rc;
}

static void *writer(void *arg)
{
    rst *x = arg;
    pf_buf b = PF_BUF_INIT, run = PF_BUF_INIT;
    pthread_mutex_lock(&x->mu);
    for (;;) {
        while (!x->count && !x->stop)
            pthread_cond_wait(&x->not_empty, &x->mu);
        if (!x->count && x->stop)
            break;
        run_job *j = x->queue[x->head];
        x->head = (x->head + 1) % RESTORE_QUEUE;
        x->count--;
        x->active++;
        pthread_cond_signal(&x->not_full);
        int skip = x->failed;
        if (!skip)
            x->reads++;
        for (size_t i = 0; skip && i < j->n; i++)
            j->blobs[i].f->failed = 1; /* not written: not kept */
        pthread_mutex_unlock(&x->mu);

        pf_err e = {0};
        uint64_t bytes = 0;
        int rc = skip ? 0 : do_run(x, j, &run, &b, &bytes, &e);
        /* A run buffer is as big as a run: keep it only while it is of a usual size. */
        if (run.cap > 2 * (size_t)x->max_run)
            pf_buf_free(&run);

        pthread_mutex_lock(&x->mu);
        if (rc && !x->failed) {
            x->failed = 1;
            x->first_err = e;
        }
        x->st->bytes += bytes;
        for (size_t i = 0; i < j->n; i++) {
            file_job *done = file_release(j->blobs[i].f);
            if (done) {
                pthread_mutex_unlock(&x->mu);
                file_finish(x, done);
                pthread_mutex_lock(&x->mu);
            }
        }
        free(j);
        x->active--;
        if (!x->count && !x->active)
            pthread_cond_broadcast(&x->idle);
    }
    pthread_mutex_unlock(&x->mu);
    pf_buf_free(&b);
    pf_buf_free(&run);
    return NULL;
}

static int pool_failed(rst *x, pf_err *err)
{
    pthread_mutex_lock(&x->mu);
    int f = x->failed;
    if (f)
        *err = x->first_err;
    pthread_mutex_unlock(&x->mu);
    return f;
}

/* Plans the batch into runs and queues them (or, once the restore has failed, drops them,
 * releasing their files). Called by the walker with x->mu held. */
static int flush_batch(rst *x, pf_err *err)
{
    size_t n = x->nbatch;
    x->nbatch = 0;
    x->batch_bytes = 0;
    if (!n)
        return 0;
    for (size_t i = 0; i < n; i++)
        x->parts[i] =
            (pf_read_part){x->batch[i].loc.pack, x->batch[i].loc.offset, x->batch[i].loc.length, i};
    size_t nr = pf_read_plan(x->parts, n, x->max_gap, x->max_run, x->runs);
    int rc = 0;
    for (size_t r = 0; r < nr; r++) {
        const pf_read_run *pr = &x->runs[r];
        run_job *j = x->failed ? NULL : malloc(sizeof *j + pr->count * sizeof j->blobs[0]);
        if (j) {
            j->pack = pr->pack;
            j->off = pr->offset;
            j->len = pr->length;
            j->n = pr->count;
            for (size_t k = 0; k < pr->count; k++)
                j->blobs[k] = x->batch[x->parts[pr->first + k].tag];
        }
        while (j && x->count == RESTORE_QUEUE && !x->failed)
            pthread_cond_wait(&x->not_full, &x->mu);
        if (j && !x->failed) {
            x->queue[(x->head + x->count) % RESTORE_QUEUE] = j;
            x->count++;
            pthread_cond_signal(&x->not_empty);
            continue;
        }
        free(j);
        if (!rc) {
            if (x->failed)
                *err = x->first_err;
            else
                pf_err_set(err, PF_EGENERIC, "out of memory");
            rc = -1;
        }
        for (size_t k = 0; k < pr->count; k++) {
            file_job *f = x->batch[x->parts[pr->first + k].tag].f;
            f->failed = 1;
            file_job *done = file_release(f);
            if (done) {
                pthread_mutex_unlock(&x->mu);
                file_finish(x, done);
                pthread_mutex_lock(&x->mu);
            }
        }
    }
    return rc;
}

/* Queues the content of a created file; the pool writes it and finishes the file. */
static int write_file_async(rst *x, int dirfd, int fd, const pf_node *n, const meta *m, pf_err *err)
{
    file_job *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    f->fd = fd;
    f->dirfd = fcntl(dirfd, F_DUPFD_CLOEXEC, 0);
    f->name = strdup(n->name);
    f->path = strdup((const char *)x->path.data);
    if (f->dirfd < 0 || !f->name || !f->path) {
        if (f->dirfd >= 0)
            close(f->dirfd);
        close(fd);
        free(f->name);
        free(f->path);
        free(f);
        return pf_err_sys(err, PF_EGENERIC, "restoring %s", x->path.data);
    }
    f->m = *m;
    pf_node_copy(&f->node, n);
    f->pending = 1;
    pthread_mutex_lock(&x->mu);
    x->open_files++;
    pthread_mutex_unlock(&x->mu);
    uint64_t off = 0;
    int rc = 0;
    for (size_t i = 0; i < n->nblobs && !rc; i++) {
        pthread_mutex_lock(&x->r->mu);
        pf_blob_loc *l = pf_index_find(x->r->index, n->blobs[i]);
        pf_blob_loc loc = l ? *l : (pf_blob_loc){0};
        pthread_mutex_unlock(&x->r->mu);
        if (!l || loc.pack == PF_PACK_PENDING) {
            char hex[PF_HEX_ID_LEN + 1];
            pf_hex(n->blobs[i], PF_ID_LEN, hex);
            rc = pf_err_set(err, PF_ECORRUPT, "%s: blob %.16s is missing from the repository",
                            f->path, hex);
            break;
        }
        pthread_mutex_lock(&x->mu);
        if (x->failed) {
            *err = x->first_err;
            rc = -1;
        } else {
            blob_job *j = &x->batch[x->nbatch++];
            j->f = f;
            memcpy(j->id, n->blobs[i], PF_ID_LEN);
            j->off = off;
            j->loc = loc;
            f->pending++;
            x->batch_bytes += loc.length;
            /* Plan when the batch is full, or early when nothing is queued and there is a
             * whole run for every worker (the saver fills packs in parallel, so a
             * batch's blobs alternate between packs: a smaller batch makes short runs). */
            if (x->nbatch == RESTORE_BATCH_BLOBS || x->batch_bytes >= RESTORE_BATCH_BYTES ||
                (x->count == 0 && x->batch_bytes >= (uint64_t)x->nthreads * x->max_run))
                rc = flush_batch(x, err);
        }
        pthread_mutex_unlock(&x->mu);
        off += loc.raw_length;
    }
    pthread_mutex_lock(&x->mu);
    if (rc)
        f->failed = 1;
    file_job *done = file_release(f);
    if (!rc && !done && x->open_files >= RESTORE_MAX_OPEN) {
        /* Too many files open: let the workers finish half of them. */
        rc = flush_batch(x, err);
        while (!rc && x->open_files > RESTORE_MAX_OPEN / 2 && !x->failed)
            pthread_cond_wait(&x->not_full, &x->mu);
    }
    pthread_mutex_unlock(&x->mu);
    if (done)
        file_finish(x, done);
    rprogress(x);
    return rc;
}

static int pool_start(rst *x, int workers)
{
    pthread_mutex_init(&x->mu, NULL);
    pthread_cond_init(&x->not_empty, NULL);
    pthread_cond_init(&x->not_full, NULL);
    pthread_cond_init(&x->idle, NULL);
    x->batch = malloc(RESTORE_BATCH_BLOBS * sizeof *x->batch);
    x->parts = malloc(RESTORE_BATCH_BLOBS * sizeof *x->parts);
    x->runs = malloc(RESTORE_BATCH_BLOBS * sizeof *x->runs);
    if (!x->batch || !x->parts || !x->runs) {
        free(x->batch);
        free(x->parts);
        free(x->runs);
        return -1;
    }
    if (workers <= 0)
        workers = 4;
    if (workers > RESTORE_MAX_WORKERS)
        workers = RESTORE_MAX_WORKERS;
    for (int i = 0; i < workers; i++)
        if (pthread_create(&x->threads[x->nthreads], NULL, writer, x) == 0)
            x->nthreads++;
    if (x->nthreads)
        return 0;
    free(x->batch);
    free(x->parts);
    free(x->runs);
    return -1;
}

/* Queues what the batch holds, waits for every queued write, stops the pool; returns the
 * first write error. */
static int pool_stop(rst *x, pf_err *err)
{
    pf_err ferr = {0};
    pthread_mutex_lock(&x->mu);
    int frc = flush_batch(x, &ferr);
    while (x->count || x->active)
        pthread_cond_wait(&x->idle, &x->mu);
    x->stop = 1;
    pthread_cond_broadcast(&x->not_empty);
    pthread_mutex_unlock(&x->mu);
    for (int i = 0; i < x->nthreads; i++)
        pthread_join(x->threads[i], NULL);
    int failed = x->failed;
    if (err) {
        if (failed)
            *err = x->first_err;
        else if (frc)
            *err = ferr;
    }
    pthread_mutex_destroy(&x->mu);
    pthread_cond_destroy(&x->not_empty);
    pthread_cond_destroy(&x->not_full);
    pthread_cond_destroy(&x->idle);
    free(x->batch);
    free(x->parts);
    free(x->runs);
    return failed || frc ? -1 : 0;
}

/* True when a symlink target, read from a link depth directories below the restore
 * root, can only lead to entries of the restored tree: relative, with its ".."
 * components all at the start and no more of them than depth. A ".." after a name is
 * refused as well: the name may itself be a link ("s/../x" with s -> "." climbs out). */
static int link_inside(const char *t, size_t len, size_t depth)
{
    if (!len || t[0] == '/')
        return 0;
    int names = 0;
    for (size_t i = 0; i < len;) {
        size_t j = i;
        while (j < len && t[j] != '/')
            j++;
        size_t cl = j - i;
        if (cl == 2 && t[i] == '.' && t[i + 1] == '.') {
            if (names || depth == 0)
                return 0;
            depth--;
        } else if (cl && !(cl == 1 && t[i] == '.')) {
            names = 1;
        }
        i = j + 1;
    }
    return 1;
}

/* Opens, O_PATH and without following, what the restore has just created at name, and
 * refuses anything that is not that fresh entry (of type fmt, one link, ours): a local
 * user who can write the directory may have swapped it meanwhile. */
static int open_created(rst *x, int dirfd, const char *name, mode_t fmt)
{
    int fd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd >= 0 && !fstat(fd, &st) && (st.st_mode & S_IFMT) == fmt && st.st_nlink == 1 &&
        st.st_uid == geteuid())
        return fd;
    if (fd >= 0)
        close(fd);
    pf_warn("%s was replaced while restoring: its owner, mode and times are not set", x->path.data);
    x->st->errors++;
    return -1;
}

/* A hardlink to the inode behind fd (a file this restore wrote), by descriptor. */
static int link_to(int fd, int dirfd, const char *name)
{
    if (linkat(fd, "", dirfd, name, AT_EMPTY_PATH) == 0) /* needs CAP_DAC_READ_SEARCH */
        return 0;
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    return linkat(AT_FDCWD, proc, dirfd, name, AT_SYMLINK_FOLLOW);
}

static const char *special_kind(uint8_t type)
{
    switch (type) {
    case PF_NODE_FIFO:
        return "FIFO";
    case PF_NODE_CHARDEV:
        return "character device";
    case PF_NODE_BLOCKDEV:
        return "block device";
    default:
        return NULL;
    }
}

static int restore_dir_contents(rst *x, int fd, const uint8_t tree_id[PF_ID_LEN], const char *rel,
                                pf_err *err);

static int restore_node(rst *x, int dirfd, const pf_node *n, const char *rel, pf_err *err)
{
    int inc = included(x->o, rel);
    if (inc < 0)
        return 0;
    if (inc == 1 && n->type != PF_NODE_DIR)
        return 0;
    const char *name = n->name;
    const char *path = (const char *)x->path.data;
    meta m;
    meta_of(x, n, &m);
    if (!x->o->keep_special) {
        const char *kind = special_kind(n->type);
        if (kind) {
            pf_debug("not restoring %s %s", kind, path);
            x->st->skipped_special++;
            return 0;
        }
        if (n->type == PF_NODE_FILE && (m.mode & 06000)) {
            pf_debug("clearing setuid/setgid of %s", path);
            m.mode &= ~06000u;
            x->st->stripped_setid++;
        }
    }
    if (n->type == PF_NODE_SYMLINK) {
        size_t depth = 0;
        for (const char *p = rel; *p; p++)
            depth += *p == '/';
        if (!n->link_len || memchr(n->link, 0, n->link_len)) {
            pf_warn("not restoring symlink %s: its recorded target is invalid", path);
            x->st->errors++;
            return 0;
        }
        if (!x->o->outside_links && !link_inside(n->link, n->link_len, depth)) {
            pf_debug("not restoring symlink %s: its target %s is outside", path, n->link);
            x->st->skipped_links++;
            return 0;
        }
    }
    if (n->type == PF_NODE_SOCKET) {
        /* A socket is created by the program that listens on it; nothing to restore. */
        pf_debug("not restoring socket %s", path);
        return 0;
    }
    /* Whatever is in the way goes, except a directory where one belongs: it is reused.
     * A symlink in the way is removed, never followed. */
    struct stat st;
    if (!fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) &&
        !(n->type == PF_NODE_DIR && S_ISDIR(st.st_mode))) {
        if (S_ISDIR(st.st_mode))
            return pf_err_set(err, PF_EIO, "cannot replace %s: it is a directory on disk", path);
        if (unlinkat(dirfd, name, 0))
            return pf_err_sys(err, PF_EIO, "cannot replace %s", path);
    }
    switch (n->type) {
    case PF_NODE_DIR: {
        if (x->depth >= RESTORE_MAX_DEPTH)
            return pf_err_set(err, PF_ECORRUPT,
                              "tree more than %d directories deep (hostile or damaged) at %s",
                              RESTORE_MAX_DEPTH, path);
        bool made = mkdirat(dirfd, name, 0700) == 0;
        if (!made && errno != EEXIST)
            return pf_err_sys(err, PF_EIO, "cannot create directory %s", path);
        /* O_NOFOLLOW: a symlink swapped in since is refused, not entered. */
        int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0)
            return pf_err_sys(err, PF_EIO, "cannot open directory %s", path);
        x->depth++;
        int rc = restore_dir_contents(x, fd, n->blobs[0], rel, err);
        x->depth--;
        /* A directory only on the way to what is restored keeps what it has here; one
         * the restore had to make gets its recorded mode and owner (a cron spool made
         * 0700 root would lock crontab(1) out). */
        if (!rc && (inc == 0 || made))
            meta_fd(fd, &m, (const char *)x->path.data);
        close(fd);
        if (rc)
            return -1;
        x->st->dirs++;
        return 0;
    }
    case PF_NODE_FILE: {
        if (n->nlink > 1) {
            for (size_t i = 0; i < x->nlinks; i++) {
                if (x->links[i].dev == n->dev && x->links[i].ino == n->inode) {
                    if (link_to(x->links[i].fd, dirfd, name) == 0) {
                        pthread_mutex_lock(&x->mu);
                        x->st->files++;
                        pthread_mutex_unlock(&x->mu);
                        return 0;
                    }
                    pf_warn("cannot hardlink %s, writing a copy: %s", path, strerror(errno));
                    break;
                }
            }
        }
        if (pool_failed(x, err))
            return -1;
        int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
            return pf_err_sys(err, PF_EIO, "cannot create %s", path);
        if (n->nlink > 1) {
            int dup = fcntl(fd, F_DUPFD_CLOEXEC, 0);
            link_seen *l = dup >= 0 ? realloc(x->links, (x->nlinks + 1) * sizeof *l) : NULL;
            if (!l) {
                if (dup >= 0)
                    close(dup);
            } else {
                x->links = l;
                x->links[x->nlinks++] = (link_seen){n->dev, n->inode, dup};
            }
        }
        pthread_mutex_lock(&x->mu);
        x->st->files++;
        pthread_mutex_unlock(&x->mu);
        return write_file_async(x, dirfd, fd, n, &m, err);
    }
    case PF_NODE_SYMLINK: {
        if (symlinkat(n->link, dirfd, name))
            return pf_err_sys(err, PF_EIO, "cannot create symlink %s", path);
        int fd = open_created(x, dirfd, name, S_IFLNK);
        if (fd >= 0) {
            meta_pathfd(fd, dirfd, name, &m, 1, path);
            close(fd);
        }
        x->st->others++;
        return 0;
    }
    case PF_NODE_FIFO: {
        if (mkfifoat(dirfd, name, 0600))
            return pf_err_sys(err, PF_EIO, "cannot create fifo %s", path);
        int fd = open_created(x, dirfd, name, S_IFIFO);
        if (fd >= 0) {
            meta_pathfd(fd, dirfd, name, &m, 0, path);
            close(fd);
        }
        x->st->others++;
        return 0;
    }
    case PF_NODE_CHARDEV:
    case PF_NODE_BLOCKDEV: {
        mode_t fmt = n->type == PF_NODE_CHARDEV ? S_IFCHR : S_IFBLK;
        if (mknodat(dirfd, name, fmt | 0600, (dev_t)n->rdev)) {
            pf_warn("skipping device %s: %s", path, strerror(errno));
            x->st->errors++;
            return 0;
        }
        int fd = open_created(x, dirfd, name, fmt);
        if (fd >= 0) {
            meta_pathfd(fd, dirfd, name, &m, 0, path);
            close(fd);
        }
        x->st->others++;
        return 0;
    }
    }
    return 0;
}

/* Removes name (below dirfd) and, for a directory, all it holds. Never follows a symlink:
 * each directory is entered through O_NOFOLLOW, a symlink is unlinked as itself. */
static int remove_entry(rst *x, int parent, const char *name, const char *path, int depth,
                        pf_err *err)
{
    struct stat st;
    if (fstatat(parent, name, &st, AT_SYMLINK_NOFOLLOW))
        return errno == ENOENT ? 0 : pf_err_sys(err, PF_EIO, "cannot remove %s", path);
    if (S_ISDIR(st.st_mode)) {
        if (depth >= RESTORE_MAX_DEPTH)
            return pf_err_set(err, PF_EIO, "cannot remove %s: more than %d directories deep", path,
                              RESTORE_MAX_DEPTH);
        int fd = openat(parent, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
            if (fd >= 0)
                close(fd);
            return pf_err_sys(err, PF_EIO, "cannot open %s to remove it", path);
        }
        pf_buf sub = PF_BUF_INIT;
        struct dirent *e;
        int rc = 0;
        while (!rc && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            pf_buf_reset(&sub);
            pf_buf_printf(&sub, "%s/%s", path, e->d_name);
            rc = remove_entry(x, dirfd(d), e->d_name, (const char *)sub.data, depth + 1, err);
        }
        pf_buf_free(&sub);
        closedir(d);
        if (rc)
            return -1;
        if (unlinkat(parent, name, AT_REMOVEDIR))
            return pf_err_sys(err, PF_EIO, "cannot remove directory %s", path);
    } else if (unlinkat(parent, name, 0)) {
        return pf_err_sys(err, PF_EIO, "cannot remove %s", path);
    }
    pf_debug("removed %s (not in the snapshot)", path);
    x->st->removed++;
    return 0;
}

/* opts.exact: what the directory at fd holds beyond tree t goes. */
static int remove_extra(rst *x, int fd, const pf_tree *t, pf_err *err)
{
    const char *dir = (const char *)x->path.data;
    /* A descriptor of its own: readdir keeps a position in it. */
    int lfd = openat(fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    DIR *d = lfd >= 0 ? fdopendir(lfd) : NULL;
    if (!d) {
        if (lfd >= 0)
            close(lfd);
        return pf_err_sys(err, PF_EIO, "cannot list %s", dir);
    }
    pf_buf sub = PF_BUF_INIT;
    struct dirent *e;
    int rc = 0;
    while (!rc && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..") ||
            pf_tree_find(t, e->d_name, strlen(e->d_name)))
            continue;
        pf_buf_reset(&sub);
        pf_buf_printf(&sub, "%s/%s", dir, e->d_name);
        rc = remove_entry(x, fd, e->d_name, (const char *)sub.data, x->depth, err);
    }
    pf_buf_free(&sub);
    closedir(d);
    return rc;
}

static int restore_dir_contents(rst *x, int fd, const uint8_t tree_id[PF_ID_LEN], const char *rel,
                                pf_err *err)
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
    if (!rc && x->o->exact && included(x->o, rel) == 0)
        rc = remove_extra(x, fd, &t, err);
    pf_buf_free(&childrel);
    pf_tree_free(&t);
    return rc;
}

static int restore_into(pf_repo *r, const uint8_t root[PF_ID_LEN], const pf_node *meta,
                        const char *target, const pf_restore_opts *opts, pf_restore_stats *stats,
                        pf_err *err);

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

/* One line for what the safe defaults left out; the names went to the debug log. */
static void report_left_out(const char *target, const char *hint, const pf_restore_stats *before,
                            const pf_restore_stats *after)
{
    uint64_t special = after->skipped_special - before->skipped_special;
    uint64_t setid = after->stripped_setid - before->stripped_setid;
    uint64_t links = after->skipped_links - before->skipped_links;
    if (!special && !setid && !links)
        return;
    pf_buf b = PF_BUF_INIT;
    if (special)
        pf_buf_printf(&b, "%llu device node%s or FIFO%s not created", (unsigned long long)special,
                      special == 1 ? "" : "s", special == 1 ? "" : "s");
    if (setid)
        pf_buf_printf(&b, "%ssetuid/setgid cleared on %llu file%s", b.len ? ", " : "",
                      (unsigned long long)setid, setid == 1 ? "" : "s");
    if (links)
        pf_buf_printf(&b, "%s%llu symlink%s pointing outside not created", b.len ? ", " : "",
                      (unsigned long long)links, links == 1 ? "" : "s");
    pf_warn("%s: %s (a snapshot must not plant these; -v names them%s%s)", target, b.data,
            hint ? ", " : "", hint ? hint : "");
    pf_buf_free(&b);
}

static int restore_into(pf_repo *r, const uint8_t root[PF_ID_LEN], const pf_node *meta_node,
                        const char *target, const pf_restore_opts *opts, pf_restore_stats *stats,
                        pf_err *err)
{
    pf_restore_opts defaults = {0};
    pf_restore_stats local = {0};
    static rst zero;
    rst x = zero;
    x.r = r;
    x.o = opts ? opts : &defaults;
    x.st = stats ? stats : &local;
    pf_restore_stats before = *x.st;
    if (mkdir(target, 0700) && errno != EEXIST)
        return pf_err_sys(err, PF_EIO, "cannot create target directory %s", target);
    int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot open target directory %s", target);
    pf_buf_append_str(&x.path, target);
    if (x.path.len > 1 && x.path.data[x.path.len - 1] == '/')
        x.path.data[--x.path.len] = 0;
    pf_store_props props = pf_store_properties(r->store);
    x.max_run = x.o->run_max ? x.o->run_max : RESTORE_RUN_MAX;
    x.max_gap =
        x.o->gap_max ? x.o->gap_max : (props.remote ? RESTORE_GAP_REMOTE : RESTORE_GAP_LOCAL);
    if (pool_start(&x, x.o->workers)) {
        close(fd);
        pf_buf_free(&x.path);
        return pf_err_set(err, PF_EGENERIC, "cannot start restore threads");
    }
    int rc = restore_dir_contents(&x, fd, root, "", err);
    pf_err perr = {0};
    if (pool_stop(&x, &perr) && !rc) {
        *err = perr;
        rc = -1;
    }
    pf_debug("restore of %s: %llu reads", target, (unsigned long long)x.reads);
    /* Directory times last: creating entries inside a directory changes its mtime. */
    if (!rc && syncfs(fd))
        rc = pf_err_sys(err, PF_EIO, "syncing %s", target);
    if (!rc && meta_node) {
        /* The target itself takes the directory's recorded metadata. */
        meta m;
        meta_of(&x, meta_node, &m);
        meta_fd(fd, &m, target);
    }
    report_left_out(target, x.o->left_out_hint, &before, x.st);
    close(fd);
    for (size_t i = 0; i < x.nlinks; i++)
        close(x.links[i].fd);
    free(x.links);
    for (size_t i = 0; i < x.nnames; i++)
        free(x.names[i].name);
    free(x.names);
    pf_buf_free(&x.path);
    return rc;
}
