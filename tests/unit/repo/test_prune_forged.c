/* Prune against objects an attacker added with the repository key, through a store that
 * only adds (docs/SECURITY.md §5): an index file listing every real pack with a made-up
 * blob only, listed before the real index files, must not make prune delete a pack that a
 * real snapshot needs. The store lists the forged index file first on purpose: a prune
 * that believed the first index file listing a pack deleted them all. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "repo/backup_run.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/prune.h"
#include "repo/repo.h"
#include "store/store.h"

/* Over a borrowed store: lists `first` (a key) before every other key. */
static char first[128];

static int o_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    return pf_store_put(s->impl, key, data, len, err);
}
static int o_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    return pf_store_get(s->impl, key, off, len, out, err);
}
static int o_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return pf_store_stat(s->impl, key, size, err);
}
static int o_remove(pf_store *s, const char *key, pf_err *err)
{
    return pf_store_remove(s->impl, key, err);
}

struct later {
    char keys[256][128];
    uint64_t sizes[256];
    int n;
    bool saw_first;
    uint64_t first_size;
};

static int collect(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    struct later *l = ctx;
    if (!strcmp(key, first)) {
        l->saw_first = true;
        l->first_size = size;
        return 0;
    }
    assert_true(l->n < 256);
    snprintf(l->keys[l->n], sizeof l->keys[0], "%s", key);
    l->sizes[l->n++] = size;
    return 0;
}

static int o_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    struct later *l = calloc(1, sizeof *l);
    int rc = pf_store_list(s->impl, prefix, collect, l, err);
    if (rc == 0 && l->saw_first)
        rc = cb(first, l->first_size, ctx, err);
    for (int i = 0; rc == 0 && i < l->n; i++)
        rc = cb(l->keys[i], l->sizes[i], ctx, err);
    free(l);
    return rc;
}

static const struct pf_store_ops ordered_ops = {"ordered", o_put, o_get, o_stat, o_list,
                                                o_remove,  NULL,  NULL,  NULL,   NULL};

static pf_store *ordered(pf_store *inner)
{
    pf_store *s = calloc(1, sizeof *s);
    s->ops = &ordered_ops;
    s->impl = inner;
    s->location = strdup("ordered");
    return s;
}

static int count_cb(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)key, (void)size, (void)err;
    (*(int *)ctx)++;
    return 0;
}

static int count(pf_store *s, const char *prefix)
{
    int n = 0;
    pf_err err = {0};
    assert_int_equal(pf_store_list(s, prefix, count_cb, &n, &err), 0);
    return n;
}

struct ids {
    char v[64][PF_HEX_ID_LEN + 1];
    int n;
};

static int add_id(const char *id, void *ctx)
{
    struct ids *l = ctx;
    snprintf(l->v[l->n++], sizeof l->v[0], "%s", id);
    return 0;
}

static void quiet(int level, const char *msg)
{
    (void)level, (void)msg;
}

static void test_forged_index_first(void **state)
{
    (void)state;
    pf_err err = {0};
    char dir[] = "/tmp/pf-prune-forged-XXXXXX";
    assert_non_null(mkdtemp(dir));
    /* Files that need several packs. */
    for (int i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        uint32_t x = 2463534242u + (uint32_t)i;
        for (int j = 0; j < 150000; j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            fputc((int)(x & 0xff), f);
        }
        fclose(f);
    }
    pf_store *mem = pf_store_mem_new();
    pf_repo_init_opts io = {.chunk_min = 4096, .chunk_avg = 16384, .chunk_max = 65536};
    pf_repo *r = pf_repo_init(ordered(mem), "pw", &io, &err);
    assert_non_null(r);
    r->pack_size = 256 << 10;
    pf_backup_run b = {0};
    pf_backup_opts bo = {.workers = 1, .program = "test"};
    char *paths[] = {dir};
    assert_int_equal(pf_backup_begin(&b, r, &bo, NULL, paths, 1, &err), 0);
    assert_int_equal(pf_archive_path(b.arch, pf_archiver_root(b.arch), "src", dir, NULL, &err), 0);
    assert_int_equal(pf_backup_commit(&b, &err), 0);
    pf_backup_end(&b);
    int packs = count(mem, "data/");
    assert_true(packs >= 2);

    /* The attacker's index file: every real pack, with one made-up blob each. */
    struct ids real = {0};
    assert_int_equal(pf_repo_list_objects(r, "index", add_id, &real, &err), 0);
    pf_index_file forged = {0};
    forged.packs = calloc((size_t)packs, sizeof *forged.packs);
    for (int i = 0; i < real.n; i++) {
        pf_index_file f;
        assert_int_equal(pf_repo_load_index_file(r, real.v[i], &f, &err), 0);
        for (size_t j = 0; j < f.npacks; j++) {
            pf_index_file_pack *pk = &forged.packs[forged.npacks++];
            pk->info = f.packs[j].info;
            pk->entries = calloc(1, sizeof *pk->entries);
            pk->count = 1;
            memset(pk->entries[0].id, 0x5a, PF_ID_LEN);
            pk->entries[0].type = PF_BLOB_DATA;
            pk->entries[0].length = pk->entries[0].raw_length = 17;
        }
        pf_index_file_free(&f);
    }
    pf_buf plain = PF_BUF_INIT;
    char id[PF_HEX_ID_LEN + 1];
    pf_index_file_encode(&forged, &plain);
    assert_int_equal(pf_repo_save_object(r, "index", plain.data, plain.len, id, &err), 0);
    pf_buf_free(&plain);
    pf_index_file_free(&forged);
    snprintf(first, sizeof first, "index/%s", id);

    /* The trusted prune: nothing a real snapshot needs may go. */
    pf_prune_opts po = {.max_unused = 10};
    pf_prune_stats st;
    int rc = pf_prune(r, &po, &st, &err);
    if (rc)
        fail_msg("prune: %s", err.msg);
    assert_int_equal(st.packs_deleted, 0);
    assert_int_equal(count(mem, "data/"), packs);
    /* And the index it wrote finds every blob again: a second prune keeps everything. */
    assert_int_equal(pf_prune(r, &po, &st, &err), 0);
    assert_int_equal(st.packs_deleted, 0);
    assert_int_equal(count(mem, "data/"), packs);

    pf_repo_free(r);
    pf_store_free(mem);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_forged_index_first)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
