/* The saver's index batches: a batch's fsyncs do not hold up the workers (they keep
 * packing and uploading while the disk flushes), every index file names only packs made
 * durable before it, and everything saved is indexed once pf_saver_finish returns. A
 * caller waiting for a queued chunk's id hashes it itself rather than wait for a worker. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/repo.h"
#include "repo/saver.h"
#include "store/internal.h"
#include "store/store.h"

/* A store over the in-memory one whose sync waits while the gate is closed, and which
 * checks that an index file is put only after a sync of at least as many packs finished. */
typedef struct gate {
    pf_store *inner;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int closed;
    int hold_packs;         /* puts of data/ objects wait while set */
    int holding;            /* puts waiting */
    int syncing;            /* syncs waiting at the gate */
    size_t packs_put;       /* data/ objects put */
    size_t packs_synced;    /* keys of finished syncs */
    size_t index_puts;      /* index/ objects put */
    size_t synced_at_index; /* packs_synced when the last index file was put */
    int index_before_sync;  /* an index file was put before its packs could have been synced */
} gate;

static int g_put_any(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    gate *g = s->impl;
    pthread_mutex_lock(&g->mu);
    if (!strncmp(key, "data/", 5)) {
        g->holding++;
        pthread_cond_broadcast(&g->cv);
        while (g->hold_packs)
            pthread_cond_wait(&g->cv, &g->mu);
        g->holding--;
        g->packs_put++;
    }
    if (!strncmp(key, "index/", 6)) {
        g->index_puts++;
        if (g->packs_synced == g->synced_at_index) /* no sync since the last index file */
            g->index_before_sync = 1;
        g->synced_at_index = g->packs_synced;
    }
    pthread_cond_broadcast(&g->cv);
    pthread_mutex_unlock(&g->mu);
    return pf_store_put(g->inner, key, data, len, err);
}
static int g_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    return pf_store_get(((gate *)s->impl)->inner, key, off, len, out, err);
}
static int g_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return pf_store_stat(((gate *)s->impl)->inner, key, size, err);
}
static int g_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    return pf_store_list(((gate *)s->impl)->inner, prefix, cb, ctx, err);
}
static int g_remove(pf_store *s, const char *key, pf_err *err)
{
    return pf_store_remove(((gate *)s->impl)->inner, key, err);
}
static int g_sync(pf_store *s, const char *const *keys, size_t n, pf_err *err)
{
    (void)keys;
    (void)err;
    gate *g = s->impl;
    pthread_mutex_lock(&g->mu);
    g->syncing++;
    pthread_cond_broadcast(&g->cv);
    while (g->closed)
        pthread_cond_wait(&g->cv, &g->mu);
    g->syncing--;
    g->packs_synced += n;
    pthread_mutex_unlock(&g->mu);
    return 0;
}
static const struct pf_store_ops gate_ops = {"gate",   g_put_any, g_get, g_stat,    g_list,
                                             g_remove, NULL,      NULL,  g_put_any, g_sync};

/* Waits (20 s at most) until pred holds under g->mu. */
static int wait_for(gate *g, int (*pred)(gate *, size_t), size_t arg)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&g->mu);
    int ok;
    while (!(ok = pred(g, arg)))
        if (pthread_cond_timedwait(&g->cv, &g->mu, &until))
            break;
    ok = pred(g, arg);
    pthread_mutex_unlock(&g->mu);
    return ok;
}
static int sync_waiting(gate *g, size_t n)
{
    (void)n;
    return g->syncing > 0;
}
static int packs_put_at_least(gate *g, size_t n)
{
    return g->packs_put >= n;
}

static int put_holding(gate *g, size_t n)
{
    (void)n;
    return g->holding > 0;
}

static void blob(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

/* 64 packs make a batch (saver.c's PACKS_PER_INDEX); a 5000-byte blob fills a 4096-byte
 * pack, so every blob is a pack of its own. */
#define BATCH 64
#define EXTRA 6

/* g's lock, and a repository on g with a saver of the given workers that packs small
 * (4 KiB packs, no compression) so packs complete after a few blobs. */
static pf_saver *gate_saver(gate *g, int workers, pf_repo **r)
{
    pthread_mutex_init(&g->mu, NULL);
    pthread_cond_init(&g->cv, NULL);
    pf_err err = {0};
    *r = pf_repo_init(pf_store_alloc(&gate_ops, g, "gate"), "pw", NULL, &err);
    if (!*r)
        fail_msg("init: %s", err.msg);
    pf_saver *s = pf_saver_new(*r, workers, &err);
    assert_non_null(s);
    pf_saver_set_packing(s, 0, 4096);
    return s;
}

static void gate_free(gate *g)
{
    pf_store_free(g->inner);
    pthread_mutex_destroy(&g->mu);
    pthread_cond_destroy(&g->cv);
}

static void test_workers_go_on_while_a_batch_syncs(void **state)
{
    (void)state;
    gate g = {.inner = pf_store_mem_new(), .closed = 1};
    pf_repo *r;
    pf_saver *s = gate_saver(&g, 1, &r);
    pf_err err = {0};
    uint8_t data[5000], ids[BATCH + EXTRA][PF_ID_LEN];
    for (int i = 0; i < BATCH; i++) {
        blob(data, sizeof data, (uint32_t)i);
        assert_int_equal(pf_saver_save(s, PF_BLOB_DATA, data, sizeof data, ids[i], &err), 0);
    }
    /* The batch of the first 64 packs waits at the gate ... */
    assert_true(wait_for(&g, sync_waiting, 0));
    /* ... while the one worker packs and uploads what comes next. */
    for (int i = BATCH; i < BATCH + EXTRA; i++) {
        blob(data, sizeof data, (uint32_t)i);
        assert_int_equal(pf_saver_save(s, PF_BLOB_DATA, data, sizeof data, ids[i], &err), 0);
    }
    int went_on = wait_for(&g, packs_put_at_least, BATCH + EXTRA);
    pthread_mutex_lock(&g.mu);
    size_t put = g.packs_put, indexed = g.index_puts;
    g.closed = 0;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    if (!went_on)
        fail_msg("the worker stopped while a batch synced: %zu packs of %d put", put,
                 BATCH + EXTRA);
    assert_int_equal(indexed, 0); /* no index file before its packs are durable */

    assert_int_equal(pf_saver_finish(s, &err), 0);
    pf_saver_free(s);
    assert_false(g.index_before_sync);
    assert_int_equal(g.packs_put, BATCH + EXTRA);
    assert_int_equal(g.packs_synced, BATCH + EXTRA);
    assert_int_equal(g.index_puts, 2);
    pf_repo_free(r);

    /* Everything saved is found through the index files alone. */
    pf_repo *again = pf_repo_open(pf_store_alloc(&gate_ops, &g, "gate"), "pw", &err);
    assert_non_null(again);
    assert_int_equal(pf_repo_load_index(again, &err), 0);
    for (int i = 0; i < BATCH + EXTRA; i++)
        assert_true(pf_repo_has_blob(again, ids[i]));
    pf_repo_free(again);
    gate_free(&g);
}

/* A saver freed without finishing (a failed backup) does not wait for a batch forever and
 * writes no index file after it was abandoned. */
static void test_abandoned_while_syncing(void **state)
{
    (void)state;
    gate g = {.inner = pf_store_mem_new(), .closed = 1};
    pf_repo *r;
    pf_saver *s = gate_saver(&g, 2, &r);
    pf_err err = {0};
    uint8_t data[5000], id[PF_ID_LEN];
    for (int i = 0; i < BATCH + 3; i++) {
        blob(data, sizeof data, (uint32_t)(1000 + i));
        assert_int_equal(pf_saver_save(s, PF_BLOB_DATA, data, sizeof data, id, &err), 0);
    }
    assert_true(wait_for(&g, sync_waiting, 0));
    pthread_mutex_lock(&g.mu);
    g.closed = 0; /* the sync in flight completes; nothing after the abandonment is indexed */
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pf_saver_free(s);
    assert_true(g.index_puts <= 1);
    assert_false(g.index_before_sync);
    pf_repo_free(r);
    gate_free(&g);
}

typedef struct waiter {
    pf_saver *s;
    pf_blob_list *l;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done, rc;
} waiter;

static void *wait_list(void *arg)
{
    waiter *w = arg;
    pf_err err = {0};
    int rc = pf_saver_list_wait(w->s, w->l, &err);
    pthread_mutex_lock(&w->mu);
    w->rc = rc;
    w->done = 1;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

/* A stream's last chunk waits in the queue while every worker is busy (here: the one
 * worker's upload is held): the caller waiting for its id hashes it itself, and the chunk
 * is still packed and stored under that id. */
static void test_waiting_caller_hashes_queued_chunk(void **state)
{
    (void)state;
    gate g = {.inner = pf_store_mem_new(), .hold_packs = 1};
    pf_repo *r;
    pf_saver *s = gate_saver(&g, 1, &r);
    pf_err err = {0};
    uint8_t data[5000], id[PF_ID_LEN], want[PF_ID_LEN];
    blob(data, sizeof data, 1);
    assert_int_equal(pf_saver_save(s, PF_BLOB_DATA, data, sizeof data, id, &err), 0);
    assert_true(wait_for(&g, put_holding, 0)); /* the worker is stuck in its upload */

    pf_blob_list l = {0};
    pf_buf b = pf_saver_buffer(s);
    blob(data, sizeof data, 2);
    pf_buf_append(&b, data, sizeof data);
    pf_blob_id(&r->keys, data, sizeof data, want);
    assert_int_equal(pf_saver_append(s, &l, &b, &err), 0);
    waiter w = {.s = s, .l = &l};
    pthread_mutex_init(&w.mu, NULL);
    pthread_cond_init(&w.cv, NULL);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_list, &w), 0);
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 20;
    pthread_mutex_lock(&w.mu);
    while (!w.done && !pthread_cond_timedwait(&w.cv, &w.mu, &until))
        ;
    int done = w.done;
    pthread_mutex_unlock(&w.mu);
    pthread_mutex_lock(&g.mu);
    g.hold_packs = 0;
    pthread_cond_broadcast(&g.cv);
    pthread_mutex_unlock(&g.mu);
    pthread_join(t, NULL);
    if (!done)
        fail_msg("the caller waited for a busy worker to hash its chunk");
    assert_int_equal(w.rc, 0);
    assert_int_equal(l.n, 1);
    assert_memory_equal(l.ids[0], want, PF_ID_LEN);

    assert_int_equal(pf_saver_finish(s, &err), 0);
    pf_saver_stats st;
    pf_saver_stats_get(s, &st);
    assert_int_equal(st.blobs_new, 2);
    assert_int_equal(st.packs, 2);
    pf_saver_free(s);
    pf_repo_free(r);
    pf_repo *again = pf_repo_open(pf_store_alloc(&gate_ops, &g, "gate"), "pw", &err);
    assert_non_null(again);
    assert_int_equal(pf_repo_load_index(again, &err), 0);
    assert_true(pf_repo_has_blob(again, want));
    assert_true(pf_repo_has_blob(again, id));
    pf_repo_free(again);
    free(l.ids);
    pthread_mutex_destroy(&w.mu);
    pthread_cond_destroy(&w.cv);
    gate_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_workers_go_on_while_a_batch_syncs),
        cmocka_unit_test(test_abandoned_while_syncing),
        cmocka_unit_test(test_waiting_caller_hashes_queued_chunk),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
