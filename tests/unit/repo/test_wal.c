/* The WAL archive on the in-memory store: file names and keys, push and fetch, the same
 * bytes twice, other bytes refused, objects bound to their name, stale location hints
 * (a rewritten pack) falling back to the index, and the blobs prune must keep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/repo.h"
#include "repo/wal.h"
#include "store/internal.h"
#include "store/store.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

#include "store_borrow.h"

static void test_names(void **state)
{
    (void)state;
    assert_int_equal(pf_wal_name_kind("000000010000000000000003"), PF_WAL_SEGMENT);
    assert_int_equal(pf_wal_name_kind("00000002.history"), PF_WAL_HISTORY);
    assert_int_equal(pf_wal_name_kind("000000010000000000000002.00000028.backup"), PF_WAL_BACKUP);
    assert_int_equal(pf_wal_name_kind("000000010000000000000003.partial"), PF_WAL_PARTIAL);
    assert_int_equal(pf_wal_name_kind("000000010000000000000003.00A3F000.partial"),
                     PF_WAL_STREAMED);
    char sn[PF_WAL_NAME_MAX + 1];
    assert_int_equal(pf_wal_streamed_name("000000010000000000000003", 0xA3F000, sn), 0);
    assert_string_equal(sn, "000000010000000000000003.00A3F000.partial");
    assert_int_equal(pf_wal_streamed_name("00000002.history", 1, sn), -1);
    const char *bad[] = {"",
                         "00000001000000000000000",   /* 23 digits */
                         "0000000100000000000000003", /* 25 */
                         "00000001000000000000000a",  /* lower case */
                         "../00000000000000000000000",
                         "00000002.History",
                         "000000010000000000000002.0000002.backup",
                         "000000010000000000000003.partial.x",
                         "000000010000000000000003.00a3f000.partial", /* lower case */
                         "000000010000000000000003.0A3F000.partial",  /* 7 digits */
                         "RECOVERYXLOG",
                         NULL};
    for (int i = 0; bad[i]; i++)
        assert_int_equal(pf_wal_name_kind(bad[i]), PF_WAL_NONE);
    assert_int_equal(pf_wal_name_kind(NULL), PF_WAL_NONE);

    char key[PF_WAL_KEY_MAX];
    pf_err err = {0};
    assert_int_equal(pf_wal_key("000000020000000100000003", key, &err), 0);
    assert_string_equal(key, "wal/00000002/000000020000000100000003");
    assert_int_equal(pf_wal_key("00000002.history", key, &err), 0);
    assert_string_equal(key, "wal/00000002/00000002.history");
    assert_int_equal(pf_wal_key("pg_wal/000000010000000000000003", key, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);

    assert_string_equal(pf_wal_name_of_key("wal/00000002/00000002.history"), "00000002.history");
    assert_null(pf_wal_name_of_key("wal/00000001/00000002.history")); /* wrong timeline */
    assert_null(pf_wal_name_of_key("wal/00000002/00000002.history.tmp-x"));
    assert_null(pf_wal_name_of_key("wal/0000002/000000020000000000000001"));
    assert_null(pf_wal_name_of_key("snapshots/00000002.history"));
}

static pf_repo *small_repo(pf_store *mem)
{
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_repo *r = pf_repo_init(borrow(mem), "wal", &o, &err);
    if (!r)
        fail_msg("init: %s", err.msg);
    return r;
}

static pf_repo *reopen(pf_store *mem)
{
    pf_err err = {0};
    pf_repo *r = pf_repo_open(borrow(mem), "wal", &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    return r;
}

static uint8_t *segment(size_t n, uint32_t seed)
{
    uint8_t *p = malloc(n);
    uint64_t x = seed;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(x >> 56);
    }
    return p;
}

static int count_blob(const uint8_t id[PF_ID_LEN], void *ctx)
{
    (void)id;
    (*(size_t *)ctx)++;
    return 0;
}

/* A batch: every file stored in one pass (chunks in shared packs, one index file), each
 * fetchable by itself in a fresh process; a file archived before with the same bytes is
 * "already", one with other bytes is refused alone while the rest are stored. */
static void test_batch(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    const char *names[] = {"000000010000000000000010", "000000010000000000000011",
                           "000000010000000000000012", "000000010000000000000013"};
    size_t n = 40 * 1024 + 17; /* not a multiple of the chunk size */
    uint8_t *seg[4];
    for (int i = 0; i < 4; i++)
        seg[i] = segment(n, 100 + (uint32_t)i);
    pf_wal_push_result res;
    pf_err err = {0};
    /* 11 is there with its bytes, 12 with other bytes. */
    assert_int_equal(pf_wal_push(r, names[1], seg[1], n, 1, &res, &err), 0);
    uint8_t *other = segment(n, 999);
    assert_int_equal(pf_wal_push(r, names[2], other, n, 1, &res, &err), 0);
    pf_repo_free(r);

    r = reopen(mem);
    pf_wal_batch_file f[4];
    memset(f, 0, sizeof f);
    for (int i = 0; i < 4; i++)
        f[i] = (pf_wal_batch_file){.name = names[i], .data = seg[i], .len = n};
    int level = r->zstd_level;
    uint32_t pack_size = r->pack_size;
    assert_int_equal(pf_wal_push_batch(r, f, 4, 2, &err), 0);
    /* WAL's own packing is the batch's saver's, not the repository's. */
    assert_int_equal(r->zstd_level, level);
    assert_int_equal(r->pack_size, pack_size);
    assert_int_equal(f[0].rc, 0);
    assert_false(f[0].res.already);
    assert_true(f[0].res.bytes_new > 0);
    assert_true(f[0].object_size > 0);
    assert_int_equal(f[1].rc, 0);
    assert_true(f[1].res.already);
    assert_true(f[1].object_size > 0);
    assert_int_equal(f[2].rc, -1);
    assert_int_equal(f[2].err.code, PF_EEXIST);
    assert_int_equal(f[3].rc, 0);
    assert_false(f[3].res.already);
    for (int i = 0; i < 4; i++) {
        if (f[i].rc)
            continue;
        uint8_t sha[PF_ID_LEN];
        pf_sha256(seg[i], n, sha);
        assert_memory_equal(f[i].sha, sha, PF_ID_LEN);
    }
    pf_repo_free(r);

    r = reopen(mem);
    pf_buf out = PF_BUF_INIT;
    for (int i = 0; i < 4; i++) {
        pf_buf_reset(&out);
        assert_int_equal(pf_wal_fetch(r, names[i], &out, &err), 0);
        assert_int_equal(out.len, n);
        assert_memory_equal(out.data, i == 2 ? other : seg[i], n);
    }
    /* The objects' sizes are what the store holds: the spool compares them. */
    char key[PF_WAL_KEY_MAX];
    uint64_t size = 0;
    assert_int_equal(pf_wal_key(names[3], key, &err), 0);
    assert_int_equal(pf_store_stat(mem, key, &size, &err), 0);
    assert_int_equal(size, f[3].object_size);
    pf_buf_free(&out);
    pf_repo_free(r);
    for (int i = 0; i < 4; i++)
        free(seg[i]);
    free(other);
    pf_store_free(mem);
}

static void test_push_fetch(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    const char *name = "000000010000000000000007";
    size_t n = 64 * 1024;
    uint8_t *seg = segment(n, 7);
    pf_wal_push_result res;
    pf_err err = {0};
    assert_int_equal(pf_wal_push(r, name, seg, n, 1, &res, &err), 0);
    assert_false(res.already);
    assert_true(res.bytes_new > 0);
    pf_repo_free(r);

    /* A fresh process: no index loaded, the hints find the chunks. */
    r = reopen(mem);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_wal_fetch(r, name, &out, &err), 0);
    assert_false(r->index_loaded);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, seg, n);
    pf_buf_reset(&out);

    /* The same bytes again: nothing written; other bytes: refused. */
    assert_int_equal(pf_wal_push(r, name, seg, n, 1, &res, &err), 0);
    assert_true(res.already);
    seg[100] ^= 1;
    assert_int_equal(pf_wal_push(r, name, seg, n, 1, &res, &err), -1);
    assert_int_equal(err.code, PF_EEXIST);
    assert_non_null(strstr(err.msg, "already archived with other content"));
    seg[100] ^= 1;

    /* Never archived: PF_ENOTFOUND, for restore_command's exit 1. */
    pf_err_clear(&err);
    assert_int_equal(pf_wal_fetch(r, "000000010000000000000008", &out, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_int_equal(out.len, 0);

    size_t nblobs = 0;
    assert_int_equal(pf_wal_blobs(r, name, count_blob, &nblobs, &err), 0);
    assert_true(nblobs > 1); /* 64 KiB over a 1 KiB average */

    /* An object renamed to another segment's key does not open there. */
    pf_buf sealed = PF_BUF_INIT;
    assert_int_equal(
        pf_store_get(mem, "wal/00000001/000000010000000000000007", 0, PF_STORE_ALL, &sealed, &err),
        0);
    assert_int_equal(
        pf_store_put(mem, "wal/00000001/000000010000000000000009", sealed.data, sealed.len, &err),
        0);
    assert_int_equal(pf_wal_fetch(r, "000000010000000000000009", &out, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    pf_buf_free(&sealed);
    pf_buf_free(&out);
    pf_repo_free(r);
    free(seg);
    pf_store_free(mem);
}

/* Rewrites the object of name with every chunk's pack hint pointing at a pack that does
 * not exist: what a prune that rewrote the pack leaves. */
static void break_hints(pf_repo *r, const char *name)
{
    char key[PF_WAL_KEY_MAX];
    pf_err err = {0};
    pf_buf sealed = PF_BUF_INIT, plain = PF_BUF_INIT, resealed = PF_BUF_INIT;
    assert_int_equal(pf_wal_key(name, key, &err), 0);
    assert_int_equal(pf_store_get(r->store, key, 0, PF_STORE_ALL, &sealed, &err), 0);
    assert_int_equal(pf_wal_open(&r->keys, name, sealed.data, sealed.len, &plain, &err), 0);
    cJSON *o = cJSON_ParseWithLength((const char *)plain.data, plain.len);
    cJSON *b;
    cJSON_ArrayForEach(b, cJSON_GetObjectItem(o, "blobs"))
    {
        cJSON_ReplaceItemInObject(
            b, "pack",
            cJSON_CreateString("00000000000000000000000000000000000000000000000000000000000000aa"));
    }
    char *text = cJSON_PrintUnformatted(o);
    assert_int_equal(pf_wal_seal(&r->keys, name, text, strlen(text), &resealed, &err), 0);
    assert_int_equal(pf_store_put(r->store, key, resealed.data, resealed.len, &err), 0);
    free(text);
    cJSON_Delete(o);
    pf_buf_free(&sealed);
    pf_buf_free(&plain);
    pf_buf_free(&resealed);
}

static void test_stale_hints(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    const char *name = "00000003.history";
    size_t n = 20000;
    uint8_t *seg = segment(n, 3);
    pf_wal_push_result res;
    pf_err err = {0};
    assert_int_equal(pf_wal_push(r, name, seg, n, 2, &res, &err), 0);
    break_hints(r, name);
    pf_repo_free(r);

    r = reopen(mem);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_wal_fetch(r, name, &out, &err), 0);
    assert_true(r->index_loaded); /* it had to look the chunks up */
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, seg, n);
    pf_buf_free(&out);
    pf_repo_free(r);
    free(seg);
    pf_store_free(mem);
}

static void test_empty_file(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    pf_wal_push_result res;
    pf_err err = {0};
    assert_int_equal(pf_wal_push(r, "00000002.history", "", 0, 1, &res, &err), 0);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_wal_fetch(r, "00000002.history", &out, &err), 0);
    assert_int_equal(out.len, 0);
    pf_buf_free(&out);
    pf_repo_free(r);
    pf_store_free(mem);
}

/* The segment in progress, stored as wal-stream does: each length under its own name, the
 * leading chunks of the previous partial named again rather than stored; a fetch of the
 * segment gives the longest partial padded to the segment size until the whole segment
 * is there; prune's expiry removes the superseded partials only. */
static void test_streamed(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    const char *name = "000000010000000000000005";
    size_t seg_size = 64 * 1024;
    uint8_t *seg = segment(seg_size, 5);
    pf_wal_push_result res;
    pf_err err = {0};
    char newest[PF_WAL_NAME_MAX + 1], used[PF_WAL_NAME_MAX + 1];
    pf_buf out = PF_BUF_INIT;

    /* Nothing yet: not found, as for restore_command's exit 1. */
    assert_int_equal(pf_wal_fetch_segment(r, name, &out, used, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_false(pf_wal_has_through(r, name, 1));

    pf_wal_forget_chunks(r);
    assert_int_equal(pf_wal_push_streamed(r, name, seg, 20000, seg_size, 1, &res, &err), 0);
    uint64_t first = res.bytes_new;
    /* The next, longer partial: only what changed at the tail is stored again. */
    pf_wal_forget_chunks(r);
    assert_int_equal(pf_wal_remember(r, "000000010000000000000005.00004E20.partial", &err), 0);
    assert_int_equal(pf_wal_push_streamed(r, name, seg, 30000, seg_size, 1, &res, &err), 0);
    assert_true(res.bytes_new < first);
    assert_int_equal(pf_wal_push_streamed(r, name, seg, seg_size + 1, seg_size, 1, &res, &err), -1);
    pf_repo_free(r);

    r = reopen(mem);
    assert_int_equal(pf_wal_newest_streamed(r, name, newest, &err), 0);
    assert_string_equal(newest, "000000010000000000000005.00007530.partial");
    assert_true(pf_wal_has_through(r, name, 30000));
    assert_false(pf_wal_has_through(r, name, 30001));
    assert_int_equal(pf_wal_fetch_segment(r, name, &out, used, &err), 0);
    assert_string_equal(used, "000000010000000000000005.00007530.partial");
    assert_int_equal(out.len, seg_size);
    assert_memory_equal(out.data, seg, 30000);
    for (size_t i = 30000; i < seg_size; i++)
        if (out.data[i])
            fail_msg("byte %zu of the padding is %u", i, out.data[i]);
    pf_buf_reset(&out);

    /* No base backup: only the shorter partial (superseded by the longer) goes. */
    uint64_t removed;
    assert_int_equal(pf_wal_expire(r, false, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(pf_wal_newest_streamed(r, name, newest, &err), 0);
    assert_string_equal(newest, "000000010000000000000005.00007530.partial");

    /* The whole segment: it wins, and the partial left is superseded. */
    assert_int_equal(pf_wal_push(r, name, seg, seg_size, 1, &res, &err), 0);
    assert_int_equal(pf_wal_fetch_segment(r, name, &out, used, &err), 0);
    assert_string_equal(used, "");
    assert_memory_equal(out.data, seg, seg_size);
    assert_int_equal(pf_wal_expire(r, false, &removed, &err), 0);
    assert_int_equal(removed, 1);
    assert_int_equal(pf_wal_newest_streamed(r, name, newest, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    pf_buf_free(&out);
    pf_repo_free(r);
    free(seg);
    pf_store_free(mem);
}

static void count_error(int is_error, const char *msg, void *ctx)
{
    (void)msg;
    if (is_error)
        (*(int *)ctx)++;
}

static void mark_none(const uint8_t id[PF_ID_LEN], void *ctx)
{
    (void)id;
    (void)ctx;
}

/* A check runs beside wal-push and wal-stream (all take shared locks): a WAL file pushed
 * after the check loaded the index names blobs that index lacks, in a pack it does not
 * list. That is not damage; a blob missing from a pack the index does list is. */
static void test_check_beside_push(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = small_repo(mem);
    pf_err err = {0};
    pf_wal_push_result res;
    uint8_t *seg = segment(8192, 9);
    assert_int_equal(pf_wal_push(r, "000000010000000000000001", seg, 8192, 1, &res, &err), 0);
    pf_repo_free(r);

    pf_repo *checker = reopen(mem);
    assert_int_equal(pf_repo_load_index(checker, &err), 0);
    pf_repo *pusher = reopen(mem);
    assert_int_equal(pf_wal_push(pusher, "000000010000000000000002", seg + 1, 8000, 1, &res, &err),
                     0);
    pf_repo_free(pusher);
    int errors = 0;
    pf_wal_check_result wr;
    assert_int_equal(pf_wal_check(checker, mark_none, count_error, &errors, &wr, &err), 0);
    assert_int_equal(errors, 0);
    assert_int_equal(wr.segments, 2);
    pf_repo_free(checker);
    free(seg);
    pf_store_free(mem);
}

static void test_history(void **state)
{
    (void)state;
    const char *h = "1\t0/5000000\tno recovery target specified\n\n"
                    "# a comment\n2\t0/9A0C1D8\tat restore point\n";
    uint64_t lsn;
    uint32_t next = 0;
    assert_int_equal(pf_wal_history_switch(h, strlen(h), 1, &lsn, &next), 0);
    assert_int_equal(lsn, 0x5000000);
    assert_int_equal(next, 2);
    next = 0;
    assert_int_equal(pf_wal_history_switch(h, strlen(h), 2, &lsn, &next), 1);
    assert_int_equal(lsn, 0x9A0C1D8);
    assert_int_equal(next, 0); /* the file's own timeline follows: the caller knows it */
    assert_int_equal(pf_wal_history_switch(h, strlen(h), 3, &lsn, &next), -1);
    assert_int_equal(pf_lsn_parse("16/B374D848", &lsn), 0);
    assert_int_equal(lsn, 0x16B374D848ull);
    assert_int_equal(pf_lsn_parse("16/B374D848x", &lsn), -1);
    assert_int_equal(pf_lsn_parse("16", &lsn), -1);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),       cmocka_unit_test(test_push_fetch),
        cmocka_unit_test(test_stale_hints), cmocka_unit_test(test_empty_file),
        cmocka_unit_test(test_batch),       cmocka_unit_test(test_streamed),
        cmocka_unit_test(test_history),     cmocka_unit_test(test_check_beside_push),
    };
    return cmocka_run_group_tests_name("wal", tests, NULL, NULL);
}
