#include "repo/saver.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "repo/pack.h"

#define QUEUE_DEPTH 8
/* ... and at most this many bytes of blobs (one blob however large): with megabyte chunks
 * eight queued blobs were 8-16 MiB of a base backup's peak memory, more than keeps the
 * workers busy. */
#define QUEUE_BYTES (4u << 20)
#define MAX_WORKERS 16
/* An index file is written after this many new packs, so that an interrupted backup
 * leaves most of its work indexed. */
#define PACKS_PER_INDEX 64
/* ... or after this many blob entries, so that no index file (and no reader's decoding
 * of it) grows large when blobs are tiny. */
#define ENTRIES_PER_INDEX 100000
/* Batches waiting for the indexer before a worker waits for it: at PACKS_PER_INDEX packs of
 * 16 MiB each, the disk is then more than 2 GiB behind and waiting is right. */
#define BATCHES_MAX 2
/* Blob buffers go back to a pool instead of to free(): a blob is larger than malloc's mmap
 * threshold, so a fresh buffer per blob was an mmap, a page fault per 4 KiB, zeroing and
 * a munmap. The pool never holds more than the blobs in flight (the queue and one per
 * worker); a buffer grown past twice the average blob is freed rather than kept, so the pool holds
 * about what the blobs in flight did before. */
#define POOL_MAX (QUEUE_DEPTH + MAX_WORKERS + 1)

typedef struct job {
    uint8_t id[PF_ID_LEN];
    uint8_t type;
    pf_buf data;
    pf_blob_list *list; /* pf_saver_append: the id is computed by the worker, into list */
    size_t slot;
} job;

struct pf_saver {
    pf_repo *repo;
    int zstd_level;     /* the repository's, unless pf_saver_set_packing changed it */
    uint32_t pack_size; /* likewise */
    pthread_t threads[MAX_WORKERS];
    int nthreads;
    pthread_mutex_t mu;
    pthread_cond_t not_empty, not_full;
    pthread_cond_t hashed; /* a list's pending count went down */
    job queue[QUEUE_DEPTH];
    size_t head, count;
    size_t queued_bytes; /* of the blobs in the queue */
    int closing;
    int failed;
    pf_err first_err;
    pf_buf pool[POOL_MAX];
    size_t npool;
    pf_index_file pending; /* packs uploaded but not yet in an index file */
    size_t pending_entries;
    /* Full batches of pending, made durable and indexed by the indexer thread: a worker
     * that crossed PACKS_PER_INDEX used to wait for the batch's fsyncs itself (a second or
     * more for a GiB of packs), its core idle and the blobs behind it waiting. */
    pthread_t indexer;
    int has_indexer;
    pthread_cond_t batch_ready, batch_taken;
    pf_index_file batches[BATCHES_MAX];
    size_t nbatches;
    int workers_done; /* joined: no batch will be queued any more */
    int untracked;
    pf_saver_stats stats;
};

static void pool_give(pf_saver *s, pf_buf *b);

static void fail(pf_saver *s, const pf_err *e)
{
    /* caller holds s->mu */
    if (!s->failed) {
        s->failed = 1;
        s->first_err = *e;
    }
    /* No worker takes a job after a failure: the queued ones are dropped here, so that a
     * list waits only for the jobs workers hold. */
    s->queued_bytes = 0;
    for (; s->count; s->count--, s->head = (s->head + 1) % QUEUE_DEPTH) {
        job *j = &s->queue[s->head];
        if (j->list)
            j->list->pending--;
        pool_give(s, &j->data);
    }
    pthread_cond_broadcast(&s->not_full);
    pthread_cond_broadcast(&s->not_empty);
    pthread_cond_broadcast(&s->hashed);
    pthread_cond_broadcast(&s->batch_ready);
    pthread_cond_broadcast(&s->batch_taken);
}

static int queue_full(const pf_saver *s, size_t n)
{
    /* caller holds s->mu */
    return s->count == QUEUE_DEPTH || (s->count && s->queued_bytes + n > QUEUE_BYTES);
}

static pf_buf pool_take(pf_saver *s)
{
    /* caller holds s->mu */
    pf_buf b = PF_BUF_INIT;
    if (s->npool)
        b = s->pool[--s->npool];
    b.len = 0;
    return b;
}

static void pool_give(pf_saver *s, pf_buf *b)
{
    /* caller holds s->mu. Blob data is what the files hold: freed without a wipe
     * (docs/DECISIONS.md). */
    if (b->cap && s->npool < POOL_MAX && b->cap <= 2 * s->repo->chunker.avg + 1)
        s->pool[s->npool++] = *b;
    else
        free(b->data);
    *b = (pf_buf)PF_BUF_INIT;
}

/* The packs an index file names must be durable before it is (docs/FORMAT.md): packs
 * are put without waiting for the disk, and the index's packs are made durable here in one
 * batch (the adopted packs of an interrupted backup too: they may not have reached the
 * disk before that backup died). */
static int sync_packs(pf_saver *s, const pf_index_file *f, pf_err *err)
{
    size_t n = f->npacks;
    char(*names)[80] = malloc(n * sizeof *names);
    const char **keys = malloc(n * sizeof *keys);
    if (!names || !keys) {
        free(names);
        free(keys);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        pf_pack_key_name(f->packs[i].info.id, names[i]);
        keys[i] = names[i];
    }
    int rc = pf_store_sync(s->repo->store, keys, n, err);
    free(names);
    free(keys);
    return rc ? pf_err_prefix(err, "making packs durable") : 0;
}

/* Makes the packs of f durable and writes the index file naming them. Called without
 * s->mu. */
static int write_batch(pf_saver *s, pf_index_file *f, pf_err *err)
{
    int rc = sync_packs(s, f, err);
    if (!rc)
        rc = pf_repo_save_index(s->repo, f, err);
    return rc;
}

/* Hands the pending packs to the indexer as one batch. The caller holds s->mu; it waits
 * while BATCHES_MAX batches are queued. */
static void queue_batch(pf_saver *s)
{
    while (s->nbatches == BATCHES_MAX && !s->failed)
        pthread_cond_wait(&s->batch_taken, &s->mu);
    if (s->failed)
        return; /* the pending packs stay for pf_saver_free */
    s->batches[s->nbatches++] = s->pending;
    s->pending = (pf_index_file){0};
    s->pending_entries = 0;
    pthread_cond_signal(&s->batch_ready);
}

/* The indexer: writes each queued batch in turn, s->mu released meanwhile, until the
 * workers are gone and the queue is empty, or the saver failed (no snapshot can then name
 * the batches' blobs). */
static void *indexer(void *arg)
{
    pf_saver *s = arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (!s->nbatches && !s->workers_done && !s->failed)
            pthread_cond_wait(&s->batch_ready, &s->mu);
        if (s->failed || !s->nbatches)
            break;
        pf_index_file batch = s->batches[0];
        memmove(s->batches, s->batches + 1, --s->nbatches * sizeof *s->batches);
        pthread_cond_broadcast(&s->batch_taken);
        pthread_mutex_unlock(&s->mu);
        pf_err e = {0};
        int rc = write_batch(s, &batch, &e);
        pf_index_file_free(&batch);
        pthread_mutex_lock(&s->mu);
        if (rc)
            fail(s, &e);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static int upload(pf_saver *s, pf_packer *pk, pf_err *err)
{
    uint8_t pack_id[PF_ID_LEN];
    char name[80];
    if (pf_packer_finish(pk, pack_id, err))
        return -1;
    pf_pack_key_name(pack_id, name);
    if (pf_store_put_unsynced(s->repo->store, name, pk->data.data, pk->data.len, err))
        return pf_err_prefix(err, "uploading pack");
    pf_index_file_pack p = {.count = pk->count, .entries = pk->entries};
    memcpy(p.info.id, pack_id, PF_ID_LEN);
    memcpy(p.info.salt, pk->salt, PF_SALT_LEN);
    p.info.kind = pk->kind;
    pf_index_file one = {.packs = &p, .npacks = 1};
    if (!s->untracked) {
        pthread_mutex_lock(&s->repo->mu);
        pf_index_merge(s->repo->index, &one);
        pthread_mutex_unlock(&s->repo->mu);
    }

    pthread_mutex_lock(&s->mu);
    pf_index_file_pack *np = realloc(s->pending.packs, (s->pending.npacks + 1) * sizeof *np);
    if (!np) {
        pthread_mutex_unlock(&s->mu);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    s->pending.packs = np;
    s->pending.packs[s->pending.npacks++] = p;
    s->pending_entries += p.count;
    pk->entries = NULL; /* now owned by pending */
    pk->count = pk->cap = 0;
    s->stats.packs++;
    s->stats.bytes_stored += pk->data.len;
    if (s->pending.npacks >= PACKS_PER_INDEX || s->pending_entries >= ENTRIES_PER_INDEX)
        queue_batch(s);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Computes the id of a pf_saver_append job into its list and deduplicates it: 1 when the
 * blob is new and must be packed. Called without s->mu. */
static int hash_job(pf_saver *s, job *j)
{
    pf_blob_id(&s->repo->keys, j->data.data, j->data.len, j->id);
    pf_blob_loc loc = {.pack = PF_PACK_PENDING, .type = j->type};
    int is_new = 1;
    if (!s->untracked) {
        pthread_mutex_lock(&s->repo->mu);
        is_new = pf_index_add(s->repo->index, j->id, &loc);
        pthread_mutex_unlock(&s->repo->mu);
    }
    pthread_mutex_lock(&s->mu);
    memcpy(j->list->ids[j->slot], j->id, PF_ID_LEN);
    j->list->pending--;
    pthread_cond_broadcast(&s->hashed);
    s->stats.blobs_seen++;
    s->stats.bytes_seen += j->data.len;
    if (is_new) {
        s->stats.blobs_new++;
        s->stats.bytes_new += j->data.len;
    }
    pthread_mutex_unlock(&s->mu);
    return is_new;
}

static void *worker(void *arg)
{
    pf_saver *s = arg;
    pf_packer pk;
    int have_packer = 0, pack_open = 0;
    pf_err e = {0};
    pf_buf done = PF_BUF_INIT; /* the last job's buffer, back to the pool under the lock */
    for (;;) {
        pthread_mutex_lock(&s->mu);
        pool_give(s, &done);
        while (!s->count && !s->closing && !s->failed)
            pthread_cond_wait(&s->not_empty, &s->mu);
        if (s->failed || (!s->count && s->closing)) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        job j = s->queue[s->head];
        s->head = (s->head + 1) % QUEUE_DEPTH;
        s->count--;
        s->queued_bytes -= j.data.len;
        pthread_cond_signal(&s->not_full);
        pthread_mutex_unlock(&s->mu);

        /* The caller's chunk, hashed here while it cuts the next ones. */
        if (j.list && !hash_job(s, &j)) {
            done = j.data;
            continue;
        }

        int rc = 0;
        if (!have_packer) {
            rc = pf_packer_init(&pk, &s->repo->keys, s->zstd_level, &e);
            have_packer = pack_open = rc == 0;
            /* A pack ends after the blob that crosses pack_size: room for that up front,
             * or the buffer would double past it. The buffer then serves every pack this
             * worker writes. */
            if (have_packer)
                pf_buf_reserve(&pk.data, s->pack_size + s->repo->chunker.max + 65536);
        } else if (!pack_open) {
            rc = pf_packer_next(&pk, &s->repo->keys, &e);
            pack_open = rc == 0;
        }
        if (!rc)
            rc = pf_packer_add(&pk, j.id, j.type, j.data.data, j.data.len, &e);
        done = j.data;
        if (!rc && pk.data.len >= s->pack_size) {
            rc = upload(s, &pk, &e);
            pack_open = 0;
        }
        if (rc) {
            pthread_mutex_lock(&s->mu);
            fail(s, &e);
            pthread_mutex_unlock(&s->mu);
            break;
        }
    }
    pthread_mutex_lock(&s->mu);
    pool_give(s, &done);
    int ok = !s->failed;
    pthread_mutex_unlock(&s->mu);
    if (have_packer && pack_open && ok && pk.count && upload(s, &pk, &e)) {
        pthread_mutex_lock(&s->mu);
        fail(s, &e);
        pthread_mutex_unlock(&s->mu);
    }
    if (have_packer)
        pf_packer_free(&pk);
    return NULL;
}

pf_saver *pf_saver_new(pf_repo *r, int workers, pf_err *err)
{
    pf_saver *s = calloc(1, sizeof *s);
    if (!s) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    if (workers <= 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        workers = n < 2 ? 2 : n > 8 ? 8 : (int)n;
    }
    if (workers > MAX_WORKERS)
        workers = MAX_WORKERS;
    s->repo = r;
    s->zstd_level = r->zstd_level;
    s->pack_size = r->pack_size;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->not_empty, NULL);
    pthread_cond_init(&s->not_full, NULL);
    pthread_cond_init(&s->hashed, NULL);
    pthread_cond_init(&s->batch_ready, NULL);
    pthread_cond_init(&s->batch_taken, NULL);
    if (pthread_create(&s->indexer, NULL, indexer, s)) {
        pf_err_set(err, PF_EGENERIC, "cannot start worker threads");
        pf_saver_free(s);
        return NULL;
    }
    s->has_indexer = 1;
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&s->threads[i], NULL, worker, s)) {
            pf_err_set(err, PF_EGENERIC, "cannot start worker threads");
            pf_saver_free(s);
            return NULL;
        }
        s->nthreads++;
    }
    return s;
}

void pf_saver_set_packing(pf_saver *s, int zstd_level, uint32_t pack_size)
{
    /* Under the lock: a worker reads them when its first blob (handed over under the same
     * lock) opens its packer. */
    pthread_mutex_lock(&s->mu);
    s->zstd_level = zstd_level;
    s->pack_size = pack_size;
    pthread_mutex_unlock(&s->mu);
}

int pf_saver_save(pf_saver *s, uint8_t type, const void *p, size_t n, uint8_t id_out[PF_ID_LEN],
                  pf_err *err)
{
    pf_blob_id(&s->repo->keys, p, n, id_out);
    return pf_saver_save_hashed(s, type, p, n, id_out, err);
}

int pf_saver_save_hashed(pf_saver *s, uint8_t type, const void *p, size_t n,
                         uint8_t id_out[PF_ID_LEN], pf_err *err)
{
    if (type == PF_BLOB_TREE)
        pf_repo_cache_tree(s->repo, id_out, p, n);
    pf_blob_loc pending = {.pack = PF_PACK_PENDING, .type = type};
    int is_new = 1;
    if (!s->untracked) {
        pthread_mutex_lock(&s->repo->mu);
        is_new = pf_index_add(s->repo->index, id_out, &pending);
        pthread_mutex_unlock(&s->repo->mu);
    }

    pthread_mutex_lock(&s->mu);
    s->stats.blobs_seen++;
    s->stats.bytes_seen += n;
    if (!is_new) {
        int failed = s->failed;
        if (failed)
            *err = s->first_err;
        pthread_mutex_unlock(&s->mu);
        return failed ? -1 : 0;
    }
    s->stats.blobs_new++;
    s->stats.bytes_new += n;
    pf_buf copy = pool_take(s);
    pthread_mutex_unlock(&s->mu);

    /* The caller's buffer is its read window, refilled as soon as this returns. */
    pf_buf_append(&copy, p, n);
    pthread_mutex_lock(&s->mu);
    while (queue_full(s, n) && !s->failed)
        pthread_cond_wait(&s->not_full, &s->mu);
    if (s->failed) {
        *err = s->first_err;
        pool_give(s, &copy);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    job *j = &s->queue[(s->head + s->count) % QUEUE_DEPTH];
    memcpy(j->id, id_out, PF_ID_LEN);
    j->type = type;
    j->data = copy;
    j->list = NULL;
    s->queued_bytes += n;
    s->count++;
    pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

pf_buf pf_saver_buffer(pf_saver *s)
{
    pthread_mutex_lock(&s->mu);
    pf_buf b = pool_take(s);
    pthread_mutex_unlock(&s->mu);
    return b;
}

int pf_saver_append(pf_saver *s, pf_blob_list *l, pf_buf *data, pf_err *err)
{
    pthread_mutex_lock(&s->mu);
    /* The list grows under the lock: workers write ids into it under the same lock. */
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 8;
        uint8_t(*ids)[PF_ID_LEN] = realloc(l->ids, cap * PF_ID_LEN);
        if (!ids) {
            pool_give(s, data);
            pthread_mutex_unlock(&s->mu);
            return pf_err_set(err, PF_EGENERIC, "out of memory");
        }
        l->ids = ids;
        l->cap = cap;
    }
    while (queue_full(s, data->len) && !s->failed)
        pthread_cond_wait(&s->not_full, &s->mu);
    if (s->failed) {
        *err = s->first_err;
        pool_give(s, data);
        pthread_mutex_unlock(&s->mu);
        return -1;
    }
    job *j = &s->queue[(s->head + s->count) % QUEUE_DEPTH];
    j->type = PF_BLOB_DATA;
    j->data = *data;
    j->list = l;
    j->slot = l->n++;
    l->pending++;
    s->queued_bytes += data->len;
    *data = (pf_buf)PF_BUF_INIT;
    s->count++;
    pthread_cond_signal(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
    return 0;
}

/* Takes a job of l out of the queue into *j (caller holds s->mu): 0 when none is queued. */
static int take_queued(pf_saver *s, const pf_blob_list *l, job *j)
{
    for (size_t i = 0; i < s->count; i++) {
        if (s->queue[(s->head + i) % QUEUE_DEPTH].list != l)
            continue;
        *j = s->queue[(s->head + i) % QUEUE_DEPTH];
        for (size_t k = i; k + 1 < s->count; k++)
            s->queue[(s->head + k) % QUEUE_DEPTH] = s->queue[(s->head + k + 1) % QUEUE_DEPTH];
        s->count--;
        s->queued_bytes -= j->data.len;
        pthread_cond_signal(&s->not_full);
        return 1;
    }
    return 0;
}

int pf_saver_list_wait(pf_saver *s, pf_blob_list *l, pf_err *err)
{
    pthread_mutex_lock(&s->mu);
    while (l->pending) {
        /* A chunk of l still queued (every worker busy) is hashed by the waiting caller
         * itself instead of waited for: its id is what the caller waits for, its bytes
         * are still in this core's cache, and no wake-up is paid. The new blob goes back
         * to the head of the queue, hashed, for a worker to pack. */
        job j;
        if (s->failed || !take_queued(s, l, &j)) {
            pthread_cond_wait(&s->hashed, &s->mu);
            continue;
        }
        pthread_mutex_unlock(&s->mu);
        int is_new = hash_job(s, &j);
        pthread_mutex_lock(&s->mu);
        while (is_new && s->count == QUEUE_DEPTH && !s->failed)
            pthread_cond_wait(&s->not_full, &s->mu);
        if (!is_new || s->failed) {
            pool_give(s, &j.data);
            continue;
        }
        j.list = NULL;
        s->head = (s->head + QUEUE_DEPTH - 1) % QUEUE_DEPTH;
        s->queue[s->head] = j;
        s->count++;
        s->queued_bytes += j.data.len;
        pthread_cond_signal(&s->not_empty);
    }
    int rc = 0;
    if (s->failed) {
        *err = s->first_err;
        rc = -1;
    }
    pthread_mutex_unlock(&s->mu);
    return rc;
}

void pf_saver_set_untracked(pf_saver *s)
{
    s->untracked = 1;
}

void pf_saver_adopt_recovered(pf_saver *s)
{
    pf_saver_adopt(s, &s->repo->recovered);
}

void pf_saver_adopt(pf_saver *s, pf_index_file *f)
{
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < f->npacks; i++) {
        pf_index_file_pack *np = realloc(s->pending.packs, (s->pending.npacks + 1) * sizeof *np);
        if (!np)
            break;
        s->pending.packs = np;
        s->pending.packs[s->pending.npacks++] = f->packs[i];
        f->packs[i].entries = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    pf_index_file_free(f);
}

static void join_all(pf_saver *s)
{
    pthread_mutex_lock(&s->mu);
    s->closing = 1;
    pthread_cond_broadcast(&s->not_empty);
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < s->nthreads; i++)
        pthread_join(s->threads[i], NULL);
    s->nthreads = 0;
    /* Then the indexer: it writes what is queued, or stops at once after a failure. */
    if (s->has_indexer) {
        pthread_mutex_lock(&s->mu);
        s->workers_done = 1;
        pthread_cond_broadcast(&s->batch_ready);
        pthread_mutex_unlock(&s->mu);
        pthread_join(s->indexer, NULL);
        s->has_indexer = 0;
    }
}

int pf_saver_finish(pf_saver *s, pf_err *err)
{
    join_all(s);
    /* Every thread is gone and the indexer wrote every batch: the last, partial one is
     * written here (no lock needed any more). */
    if (s->failed) {
        *err = s->first_err;
        return -1;
    }
    if (s->pending.npacks && write_batch(s, &s->pending, err)) {
        fail(s, err);
        return -1;
    }
    pf_index_file_free(&s->pending);
    s->pending_entries = 0;
    return 0;
}

void pf_saver_stats_get(pf_saver *s, pf_saver_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

void pf_saver_free(pf_saver *s)
{
    if (!s)
        return;
    if (s->nthreads || s->has_indexer) {
        pthread_mutex_lock(&s->mu);
        if (!s->failed) {
            pf_err e;
            pf_err_set(&e, PF_EGENERIC, "saver abandoned");
            fail(s, &e);
        }
        pthread_mutex_unlock(&s->mu);
        join_all(s);
    }
    for (size_t i = 0; i < s->count; i++)
        free(s->queue[(s->head + i) % QUEUE_DEPTH].data.data);
    for (size_t i = 0; i < s->npool; i++)
        free(s->pool[i].data);
    pf_index_file_free(&s->pending);
    for (size_t i = 0; i < s->nbatches; i++)
        pf_index_file_free(&s->batches[i]);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->not_empty);
    pthread_cond_destroy(&s->not_full);
    pthread_cond_destroy(&s->hashed);
    pthread_cond_destroy(&s->batch_ready);
    pthread_cond_destroy(&s->batch_taken);
    free(s);
}
