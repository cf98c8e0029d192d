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
#include "repo/idset.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/prune.h"
#include "repo/repo.h"
#include "repo/tree.h"
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

/* Six files of 150000 pseudo-random bytes each (xorshift from seed + i) in dir: enough
 * for several packs. */
static void write_files(const char *dir, uint32_t seed)
{
    for (int i = 0; i < 6; i++) {
        char path[256];
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        uint32_t x = seed + (uint32_t)i;
        for (int j = 0; j < 150000; j++) {
            x ^= x << 13, x ^= x >> 17, x ^= x << 5;
            fputc((int)(x & 0xff), f);
        }
        fclose(f);
    }
}

/* A repository on mem (listed in order) with small chunks and 256 KiB packs. */
static pf_repo *small_repo(pf_store *mem)
{
    pf_err err = {0};
    pf_repo_init_opts io = {.chunk_min = 4096, .chunk_avg = 16384, .chunk_max = 65536};
    pf_repo *r = pf_repo_init(ordered(mem), "pw", &io, &err);
    assert_non_null(r);
    r->pack_size = 256 << 10;
    return r;
}

static void backup(pf_repo *r, const char *dir)
{
    pf_err err = {0};
    pf_backup_run b = {0};
    pf_backup_opts bo = {.workers = 1, .program = "test"};
    char *paths[] = {(char *)dir};
    assert_int_equal(pf_backup_begin(&b, r, &bo, NULL, paths, 1, &err), 0);
    assert_int_equal(pf_archive_path(b.arch, pf_archiver_root(b.arch), "src", dir, NULL, &err), 0);
    assert_int_equal(pf_backup_commit(&b, &err), 0);
    pf_backup_end(&b);
}

/* A directory of write_files(seed) backed up into a small_repo() on a memory store. */
typedef struct fixture {
    char dir[64];
    pf_store *mem;
    pf_repo *r;
} fixture;

static void fixture_up(fixture *fx, const char *name, uint32_t seed)
{
    snprintf(fx->dir, sizeof fx->dir, "/tmp/pf-prune-%s-XXXXXX", name);
    assert_non_null(mkdtemp(fx->dir));
    write_files(fx->dir, seed);
    fx->mem = pf_store_mem_new();
    fx->r = small_repo(fx->mem);
    backup(fx->r, fx->dir);
}

static void fixture_down(fixture *fx)
{
    pf_repo_free(fx->r);
    pf_store_free(fx->mem);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", fx->dir);
    assert_int_equal(system(cmd), 0);
}

static void test_forged_index_first(void **state)
{
    (void)state;
    pf_err err = {0};
    fixture fx;
    fixture_up(&fx, "forged", 2463534242u);
    pf_store *mem = fx.mem;
    pf_repo *r = fx.r;
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

    fixture_down(&fx);
}

/* Every blob of the tree id reads back and matches its id; returns how many there are.
 * With used, the data blobs' ids are added to it. */
static int read_all(pf_repo *r, const uint8_t tree[PF_ID_LEN], pf_idset *used)
{
    pf_tree t = {0};
    pf_err err = {0};
    int n = 0;
    if (pf_repo_load_tree(r, tree, &t, &err))
        fail_msg("tree: %s", err.msg);
    for (size_t i = 0; i < t.count; i++) {
        const pf_node *nd = &t.nodes[i];
        if (nd->type == PF_NODE_DIR) {
            n += read_all(r, nd->blobs[0], used);
            continue;
        }
        for (size_t j = 0; j < nd->nblobs; j++) {
            pf_buf b = PF_BUF_INIT;
            if (pf_repo_load_blob(r, nd->blobs[j], &b, &err))
                fail_msg("blob of %s: %s", nd->name, err.msg);
            if (used)
                pf_idset_add(used, nd->blobs[j]);
            pf_buf_free(&b);
            n++;
        }
    }
    pf_tree_free(&t);
    return n;
}

/* Adds the ids the sealed header of every genuine pack lists (a pack that does not open is
 * not one). */
static void genuine_blobs(pf_repo *r, pf_idset *out)
{
    pf_pack_list l;
    pf_err err = {0};
    assert_int_equal(pf_repo_list_packs(r, &l, &err), 0);
    for (size_t i = 0; i < l.n; i++) {
        pf_buf t = PF_BUF_INIT;
        uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN];
        uint32_t hl;
        pf_blob_entry *es = NULL;
        size_t n = 0;
        uint64_t size = l.sizes[i];
        if (size >= PF_PACK_TRAILER_LEN &&
            !pf_store_get(r->store, l.keys[i], size - PF_PACK_TRAILER_LEN, PF_PACK_TRAILER_LEN, &t,
                          &err) &&
            !pf_pack_parse_trailer(t.data, size, salt, &hl, &err)) {
            uint8_t kind = pf_pack_trailer_kind(t.data);
            pf_buf_reset(&t);
            if (!pf_store_get(r->store, l.keys[i], size - PF_PACK_TRAILER_LEN - hl, hl, &t, &err) &&
                !pf_pack_key_kind(&r->keys, kind, salt, key, &err) &&
                !pf_pack_decode_header(key, t.data, t.len, size - PF_PACK_TRAILER_LEN - hl, &es, &n,
                                       &err))
                for (size_t j = 0; j < n; j++)
                    pf_idset_add(out, es[j].id);
        }
        free(es);
        pf_buf_free(&t);
    }
    pf_pack_list_free(&l);
}

/* The rewrite: a pack with used and unused blobs is rewritten, and a used blob that a kept
 * pack holds is not copied again. An attacker's index file that claims every real blob for
 * a pack of garbage that only it lists made prune delete the only real copies (every
 * rewritten pack's used blobs were lost); prune now reads the kept copy before relying on
 * it. */
static void test_forged_kept_copy(void **state)
{
    (void)state;
    pf_err err = {0};
    fixture fx;
    fixture_up(&fx, "kept", 91u);
    pf_store *mem = fx.mem;
    pf_repo *r = fx.r;
    const char *dir = fx.dir;
    struct ids first_snap = {0};
    assert_int_equal(pf_repo_list_objects(r, "snapshots", add_id, &first_snap, &err), 0);
    /* The second snapshot keeps half of the files; the first is forgotten, so the packs
     * that held both halves are rewritten. */
    for (int i = 1; i < 6; i += 2) {
        char path[256];
        snprintf(path, sizeof path, "%s/f%d", dir, i);
        unlink(path);
    }
    backup(r, dir);
    assert_int_equal(pf_repo_forget_snapshot(r, first_snap.v[0], &err), 0);
    pf_idset used = PF_IDSET_INIT;
    pf_snapshot s;
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_int_equal(pf_repo_load_snapshot(r, "latest", &s, &err), 0);
    read_all(r, s.tree, &used);
    pf_snapshot_free(&s);

    /* The attacker's pack: garbage, named by its hash; its index file claims every real
     * data blob for it. */
    struct ids real = {0};
    assert_int_equal(pf_repo_list_objects(r, "index", add_id, &real, &err), 0);
    uint8_t garbage[4096], gid[PF_ID_LEN];
    memset(garbage, 0x42, sizeof garbage);
    pf_sha256(garbage, sizeof garbage, gid);
    char gkey[80];
    pf_pack_key_name(gid, gkey);
    assert_int_equal(pf_store_put(mem, gkey, garbage, sizeof garbage, &err), 0);
    pf_index_file forged = {0};
    forged.packs = calloc(1, sizeof *forged.packs);
    forged.npacks = 1;
    pf_index_file_pack *fp = &forged.packs[0];
    memcpy(fp->info.id, gid, PF_ID_LEN);
    for (int i = 0; i < real.n; i++) {
        pf_index_file f;
        assert_int_equal(pf_repo_load_index_file(r, real.v[i], &f, &err), 0);
        for (size_t j = 0; j < f.npacks; j++)
            for (size_t k = 0; k < f.packs[j].count; k++) {
                /* Claimed trees or unused blobs only make prune stop (it cannot walk, or
                 * cannot rewrite the garbage): the attack lists what is used. */
                if (!pf_idset_has(&used, f.packs[j].entries[k].id))
                    continue;
                fp->entries = realloc(fp->entries, (fp->count + 1) * sizeof *fp->entries);
                fp->entries[fp->count] = f.packs[j].entries[k];
                fp->entries[fp->count].offset = 0;
                fp->count++;
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

    pf_prune_opts po = {.max_unused = 5};
    pf_prune_stats st;
    if (pf_prune(r, &po, &st, &err))
        fail_msg("prune: %s", err.msg);
    assert_true(st.packs_rewritten > 0); /* the case this test is about happened */

    /* Every blob the real snapshot uses is still in a genuine pack (the forged index file
     * stays, and may still send a reader to the garbage first: check --read-data reports
     * that, see SECURITY.md). */
    pf_idset have = PF_IDSET_INIT;
    genuine_blobs(r, &have);
    assert_true(used.n > 10);
    size_t missing = 0;
    for (size_t i = 0; i < used.cap; i++)
        if (used.used[i] && !pf_idset_has(&have, used.ids[i]))
            missing++;
    assert_int_equal(missing, 0);
    pf_idset_free(&have);
    pf_idset_free(&used);
    pf_snapshot_free(&s);
    fixture_down(&fx);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_forged_index_first),
                                       cmocka_unit_test(test_forged_kept_copy)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
