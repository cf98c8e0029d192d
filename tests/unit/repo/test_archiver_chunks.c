/* The archiver's chunk pipeline (chunks scanned as bytes arrive, hashed on the saver's
 * workers): a file's blob list is exactly what cutting the whole content at once with
 * pf_chunker_cut and hashing each chunk with pf_blob_id gives (the format's chunk ids,
 * docs/FORMAT.md), whatever the write sizes, the number of workers, or whether the bytes
 * come through a sink or from a file on disk; the blobs read back as the content; and a
 * tree of the same content is the same tree blob every time (the same snapshot bytes). A
 * saver that fails while a stream's chunks are queued ends the stream with its error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "repo/archiver.h"
#include "repo/chunker.h"
#include "repo/saver.h"
#include "store/internal.h"

#define MIN 1024
#define AVG 4096
#define MAX 16384

static uint64_t rng;

static uint64_t next_rand(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

/* Random bytes with runs of zeros (as relation files have) long enough to reach MAX. */
static uint8_t *content(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    rng = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(next_rand() >> 24);
    for (size_t at = n / 3; at + 3 * MAX < n && at < n / 3 + 3 * MAX; at++)
        p[at] = 0;
    return p;
}

/* The ids pf_chunker_cut and pf_blob_id give for the whole of p. */
static size_t reference_ids(pf_repo *r, const uint8_t *p, size_t n, uint8_t (**ids)[PF_ID_LEN])
{
    size_t k = 0, off = 0;
    *ids = malloc((n / MIN + 2) * PF_ID_LEN);
    assert_non_null(*ids);
    while (off < n) {
        size_t m = pf_chunker_cut(&r->chunker, p + off, n - off, true);
        assert_true(m > 0);
        pf_blob_id(&r->keys, p + off, m, (*ids)[k++]);
        off += m;
    }
    return k;
}

static pf_repo *small_chunk_repo(void)
{
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = MIN, .chunk_avg = AVG, .chunk_max = MAX};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "pw", &o, &err);
    assert_non_null(r);
    return r;
}

static void expect_blobs(pf_repo *r, const pf_node *f, const uint8_t *p, size_t n)
{
    uint8_t(*want)[PF_ID_LEN];
    size_t k = reference_ids(r, p, n, &want);
    assert_int_equal(f->nblobs, k);
    assert_memory_equal(f->blobs, want, k * PF_ID_LEN);
    free(want);
    pf_err err = {0};
    pf_buf b = PF_BUF_INIT;
    for (size_t i = 0; i < f->nblobs; i++)
        assert_int_equal(pf_repo_load_blob(r, f->blobs[i], &b, &err), 0);
    assert_int_equal(b.len, n);
    assert_memory_equal(b.data, p, n);
    pf_buf_free(&b);
}

/* Streams p in writes of random sizes up to max_write, into a fresh archiver of a saver with
 * `workers`; returns the root tree's id. */
static void stream_once(pf_repo *r, int workers, const uint8_t *p, size_t n, size_t max_write,
                        uint8_t root[PF_ID_LEN])
{
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(r, workers, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
    assert_non_null(a);
    pf_sink *k = pf_archive_stream_begin(a, pf_archiver_root(a), "f", 0600, &err);
    assert_non_null(k);
    for (size_t off = 0; off < n;) {
        size_t w = 1 + (size_t)(next_rand() % max_write);
        if (w > n - off)
            w = n - off;
        assert_int_equal(pf_sink_write(k, p + off, w, &err), 0);
        off += w;
    }
    assert_int_equal(pf_archive_stream_end(a, k, &err), 0);
    assert_int_equal(pf_dir_end(a, pf_archiver_root(a), root, &err), 0);
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_saver_free(sv);
    pf_archiver_free(a);
}

static void test_stream_ids(void **state)
{
    (void)state;
    size_t n = 40 * MAX + 123;
    uint8_t *p = content(n, 42);
    uint8_t first[PF_ID_LEN], root[PF_ID_LEN];
    const size_t writes[] = {1, 100, 5000, 3 * MAX, 200000};
    const int workers[] = {1, 2, 4, 3, 2};
    for (size_t i = 0; i < sizeof writes / sizeof writes[0]; i++) {
        pf_repo *r = small_chunk_repo();
        stream_once(r, workers[i], p, n, writes[i], i == 0 ? first : root);
        pf_err err = {0};
        pf_tree t;
        assert_int_equal(pf_repo_load_tree(r, i == 0 ? first : root, &t, &err), 0);
        assert_int_equal(t.count, 1);
        assert_int_equal(t.nodes[0].size, n);
        expect_blobs(r, &t.nodes[0], p, n);
        pf_tree_free(&t);
        pf_repo_free(r);
    }
    free(p);
}

/* One repository, many rounds with different workers and writes: the same chunk ids and
 * the same tree blob (the stream's time fixed) each round, so later rounds store nothing. */
static void test_same_tree_each_round(void **state)
{
    (void)state;
    size_t n = 25 * MAX + 7;
    uint8_t *p = content(n, 7);
    pf_repo *r = small_chunk_repo();
    uint8_t(*want)[PF_ID_LEN];
    size_t k = reference_ids(r, p, n, &want);
    for (int round = 0; round < 6; round++) {
        pf_err err = {0};
        pf_saver *sv = pf_saver_new(r, 1 + round % 3, &err);
        assert_non_null(sv);
        pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
        assert_non_null(a);
        pf_sink *s = pf_archive_stream_begin(a, pf_archiver_root(a), "f", 0600, &err);
        assert_non_null(s);
        pf_archive_stream_meta(s, 1764013212000000000LL, NULL, 0);
        for (size_t off = 0; off < n; off += 777)
            assert_int_equal(pf_sink_write(s, p + off, off + 777 < n ? 777 : n - off, &err), 0);
        assert_int_equal(pf_archive_stream_end(a, s, &err), 0);
        uint8_t root[PF_ID_LEN];
        assert_int_equal(pf_dir_end(a, pf_archiver_root(a), root, &err), 0);
        assert_int_equal(pf_saver_finish(sv, &err), 0);
        pf_saver_stats st;
        pf_saver_stats_get(sv, &st);
        /* Round 0 stores every distinct chunk; later rounds find them all. */
        if (round > 0)
            assert_int_equal(st.blobs_new, 0);
        assert_int_equal(st.blobs_seen, k + 1);
        pf_tree t;
        assert_int_equal(pf_repo_load_tree(r, root, &t, &err), 0);
        expect_blobs(r, &t.nodes[0], p, n);
        pf_tree_free(&t);
        pf_saver_free(sv);
        pf_archiver_free(a);
    }
    free(want);
    pf_repo_free(r);
    free(p);
}

/* A file on disk read through the archiver gives the blobs of the same bytes streamed. */
static void test_file_ids(void **state)
{
    (void)state;
    size_t n = 33 * MAX + 5;
    uint8_t *p = content(n, 99);
    char dir[] = "/tmp/pf_archiver_chunks_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/data", dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(p, 1, n, f), n);
    assert_int_equal(fclose(f), 0);

    pf_repo *r = small_chunk_repo();
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(r, 2, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
    assert_non_null(a);
    assert_int_equal(pf_archive_path(a, pf_archiver_root(a), "data", path, NULL, &err), 0);
    uint8_t root[PF_ID_LEN];
    assert_int_equal(pf_dir_end(a, pf_archiver_root(a), root, &err), 0);
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_tree t;
    assert_int_equal(pf_repo_load_tree(r, root, &t, &err), 0);
    assert_int_equal(t.count, 1);
    expect_blobs(r, &t.nodes[0], p, n);
    pf_tree_free(&t);
    pf_saver_free(sv);
    pf_archiver_free(a);
    pf_repo_free(r);
    unlink(path);
    rmdir(dir);
    free(p);
}

/* A stream abandoned midway (its chunks still with the workers) frees cleanly. */
static void test_abort_midway(void **state)
{
    (void)state;
    size_t n = 20 * MAX;
    uint8_t *p = content(n, 5);
    pf_repo *r = small_chunk_repo();
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(r, 2, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
    assert_non_null(a);
    pf_sink *s = pf_archive_stream_begin(a, pf_archiver_root(a), "f", 0600, &err);
    assert_non_null(s);
    assert_int_equal(pf_sink_write(s, p, n, &err), 0);
    pf_archive_stream_abort(s);
    pf_saver_free(sv);
    pf_archiver_free(a);
    pf_repo_free(r);
    free(p);
}

/* A store whose pack uploads fail once fail_packs is set (the repository's own objects
 * still go through). */
static int fail_packs;

static int f_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    if (fail_packs && !strncmp(key, "data/", 5))
        return pf_err_set(err, PF_EIO, "disk full (test)");
    return pf_store_put(s->impl, key, data, len, err);
}
static int f_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    return pf_store_get(s->impl, key, off, len, out, err);
}
static int f_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return pf_store_stat(s->impl, key, size, err);
}
static int f_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    return pf_store_list(s->impl, prefix, cb, ctx, err);
}
static int f_remove(pf_store *s, const char *key, pf_err *err)
{
    return pf_store_remove(s->impl, key, err);
}
static const struct pf_store_ops failing_ops = {"failing", f_put, f_get, f_stat, f_list,
                                                f_remove,  NULL,  NULL,  NULL,   NULL};

static void test_saver_fails_midway(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = MIN, .chunk_avg = AVG, .chunk_max = MAX};
    fail_packs = 0;
    pf_repo *r = pf_repo_init(pf_store_alloc(&failing_ops, mem, "memory"), "pw", &o, &err);
    assert_non_null(r);
    fail_packs = 1;
    /* More than a pack (16 MiB), so that an upload fails while chunks are queued. */
    size_t n = 40u << 20;
    uint8_t *p = content(n, 3);
    pf_saver *sv = pf_saver_new(r, 2, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
    assert_non_null(a);
    pf_sink *k = pf_archive_stream_begin(a, pf_archiver_root(a), "f", 0600, &err);
    assert_non_null(k);
    int rc = 0;
    for (size_t off = 0; off < n && !rc; off += 65536)
        rc = pf_sink_write(k, p + off, 65536, &err);
    if (!rc) {
        rc = pf_archive_stream_end(a, k, &err);
    } else {
        pf_archive_stream_abort(k);
    }
    assert_int_not_equal(rc, 0);
    assert_non_null(strstr(err.msg, "disk full (test)"));
    pf_err e2 = {0};
    assert_int_not_equal(pf_saver_finish(sv, &e2), 0);
    pf_saver_free(sv);
    pf_archiver_free(a);
    pf_repo_free(r);
    pf_store_free(mem);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_ids),         cmocka_unit_test(test_same_tree_each_round),
        cmocka_unit_test(test_file_ids),           cmocka_unit_test(test_abort_midway),
        cmocka_unit_test(test_saver_fails_midway),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
