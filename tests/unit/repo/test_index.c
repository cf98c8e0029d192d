/* The in-memory index (open addressing with backward-shift deletion) and index files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"
#include "repo/index.h"

static void id_of(uint32_t n, uint8_t id[PF_ID_LEN])
{
    pf_sha256(&n, sizeof n, id);
}

static pf_blob_loc loc_of(uint32_t n)
{
    pf_blob_loc l = {.pack = n % 7,
                     .offset = n * 3,
                     .length = n + 16,
                     .raw_length = n,
                     .type = PF_BLOB_DATA,
                     .comp = (uint8_t)(n & 1)};
    return l;
}

static void expect_loc(const pf_index *ix, const uint8_t *id, uint32_t n)
{
    pf_blob_loc *l = pf_index_find(ix, id);
    if (!l)
        fail_msg("id %u not found", n);
    pf_blob_loc want = loc_of(n);
    assert_int_equal(l->pack, want.pack);
    assert_int_equal(l->offset, want.offset);
    assert_int_equal(l->length, want.length);
    assert_int_equal(l->raw_length, want.raw_length);
    assert_int_equal(l->comp, want.comp);
}

static void test_many(void **state)
{
    (void)state;
    enum { N = 100000 };
    pf_index *ix = pf_index_new();
    uint8_t id[PF_ID_LEN];
    for (uint32_t i = 0; i < N; i++) {
        id_of(i, id);
        pf_blob_loc l = loc_of(i);
        assert_true(pf_index_add(ix, id, &l));
    }
    assert_int_equal(ix->nblobs, N);
    for (uint32_t i = 0; i < N; i++) {
        id_of(i, id);
        expect_loc(ix, id, i);
        pf_blob_loc l = loc_of(i + 1);
        assert_false(pf_index_add(ix, id, &l)); /* present: kept as it was */
        expect_loc(ix, id, i);
    }
    for (uint32_t i = N; i < N + 1000; i++) {
        id_of(i, id);
        assert_null(pf_index_find(ix, id));
    }
    for (uint32_t i = 0; i < N; i += 2) {
        id_of(i, id);
        pf_index_remove(ix, id);
    }
    pf_index_remove(ix, id); /* absent: nothing happens */
    assert_int_equal(ix->nblobs, N / 2);
    /* Entries stay dense: every remaining id has its own position below nblobs, and the
     * entry there is its own. */
    uint8_t *seen = calloc(N / 2, 1);
    for (uint32_t i = 0; i < N; i++) {
        id_of(i, id);
        long pos = pf_index_pos(ix, id);
        if (i % 2) {
            expect_loc(ix, id, i);
            assert_true(pos >= 0 && (size_t)pos < ix->nblobs);
            assert_memory_equal(ix->entries[pos].id, id, PF_ID_LEN);
            assert_int_equal(seen[pos], 0);
            seen[pos] = 1;
        } else {
            assert_null(pf_index_find(ix, id));
            assert_int_equal(pos, -1);
        }
    }
    free(seen);
    pf_index_free(ix);
    pf_index_free(NULL);
}

/* Ids whose first 8 bytes (the hash) are equal or land on the same slot, including runs
 * that wrap around the end of the table, removed in various orders. */
static void collide(uint8_t id[PF_ID_LEN], uint64_t hash, uint32_t n)
{
    memset(id, 0, PF_ID_LEN);
    pf_put_le64(id, hash);
    pf_put_le32(id + 8, n);
    id[31] = 0x77;
}

static void test_collisions(void **state)
{
    (void)state;
    pf_index *ix = pf_index_new();
    size_t nslots = ix->nslots;
    uint8_t id[PF_ID_LEN];
    /* 300 ids with the same hash, 300 more on the table's last slot (other hashes), so the
     * chains interleave and wrap to slot 0. Stay below the growth threshold. */
    for (uint32_t i = 0; i < 300; i++) {
        collide(id, 12345, i);
        pf_blob_loc l = loc_of(i);
        assert_true(pf_index_add(ix, id, &l));
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        l = loc_of(1000 + i);
        assert_true(pf_index_add(ix, id, &l));
    }
    assert_int_equal(ix->nslots, nslots);
    for (uint32_t i = 0; i < 300; i++) {
        collide(id, 12345, i);
        expect_loc(ix, id, i);
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        expect_loc(ix, id, 1000 + i);
    }
    /* Remove from the middle of the chains, then their heads, then check the rest. */
    for (uint32_t i = 100; i < 200; i++) {
        collide(id, 12345, i);
        pf_index_remove(ix, id);
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        pf_index_remove(ix, id);
    }
    for (uint32_t i = 0; i < 20; i++) {
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        pf_index_remove(ix, id);
    }
    for (uint32_t i = 0; i < 300; i++) {
        collide(id, 12345, i);
        if (i >= 100 && i < 200)
            assert_null(pf_index_find(ix, id));
        else
            expect_loc(ix, id, i);
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        if (i < 20 || (i >= 100 && i < 200))
            assert_null(pf_index_find(ix, id));
        else
            expect_loc(ix, id, 1000 + i);
    }
    assert_int_equal(ix->nblobs, 600 - 200 - 20);
    /* Now grow with the collisions in: everything is still found. */
    for (uint32_t i = 0; i < 5000; i++) {
        id_of(i, id);
        pf_blob_loc l = loc_of(i);
        pf_index_add(ix, id, &l);
    }
    assert_true(ix->nslots > nslots);
    for (uint32_t i = 200; i < 300; i++) {
        collide(id, 12345, i);
        expect_loc(ix, id, i);
        collide(id, (uint64_t)(nslots - 1) + ((uint64_t)i << 32), i);
        expect_loc(ix, id, 1000 + i);
    }
    pf_index_free(ix);
}

/* Removing in random order from a dense table keeps every probe chain intact. */
static void test_remove_random_order(void **state)
{
    (void)state;
    enum { N = 700 }; /* close to the 70% load of 1024 slots */
    pf_index *ix = pf_index_new();
    uint8_t id[PF_ID_LEN];
    uint32_t order[N];
    for (uint32_t i = 0; i < N; i++) {
        /* few distinct hashes: long interleaved chains */
        collide(id, (i * 2654435761u) % 64, i);
        pf_blob_loc l = loc_of(i);
        assert_true(pf_index_add(ix, id, &l));
        order[i] = i;
    }
    uint32_t seed = 42;
    for (uint32_t i = N - 1; i > 0; i--) {
        seed = seed * 1664525u + 1013904223u;
        uint32_t j = seed % (i + 1), t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (uint32_t k = 0; k < N; k++) {
        uint32_t victim = order[k];
        collide(id, (victim * 2654435761u) % 64, victim);
        pf_index_remove(ix, id);
        assert_null(pf_index_find(ix, id));
        if (k % 50 == 0)
            for (uint32_t m = k + 1; m < N; m++) {
                collide(id, (order[m] * 2654435761u) % 64, order[m]);
                expect_loc(ix, id, order[m]);
            }
    }
    assert_int_equal(ix->nblobs, 0);
    pf_index_free(ix);
}

static void test_pending(void **state)
{
    (void)state;
    pf_index *ix = pf_index_new();
    uint8_t id[PF_ID_LEN];
    id_of(1, id);
    pf_blob_loc pending = {.pack = PF_PACK_PENDING, .type = PF_BLOB_DATA};
    pf_blob_loc real = loc_of(5), other = loc_of(6);
    assert_true(pf_index_add(ix, id, &pending));
    assert_int_equal(pf_index_find(ix, id)->pack, PF_PACK_PENDING);
    assert_false(pf_index_add(ix, id, &pending));
    assert_false(pf_index_add(ix, id, &real)); /* pending -> real */
    expect_loc(ix, id, 5);
    assert_false(pf_index_add(ix, id, &pending)); /* real stays real */
    expect_loc(ix, id, 5);
    assert_false(pf_index_add(ix, id, &other)); /* first real location wins */
    expect_loc(ix, id, 5);
    pf_index_set(ix, id, &other); /* unless set */
    expect_loc(ix, id, 6);
    uint8_t id2[PF_ID_LEN];
    id_of(2, id2);
    pf_index_set(ix, id2, &real); /* set adds when absent */
    expect_loc(ix, id2, 5);
    assert_int_equal(ix->nblobs, 2);
    pf_index_free(ix);
}

static void test_packs(void **state)
{
    (void)state;
    pf_index *ix = pf_index_new();
    uint8_t id[PF_ID_LEN], salt[PF_SALT_LEN];
    for (uint32_t i = 0; i < 2000; i++) {
        id_of(i, id);
        id_of(i + 1000000, salt);
        assert_int_equal(pf_index_add_pack(ix, id, salt), i);
    }
    assert_int_equal(ix->npacks, 2000);
    for (uint32_t i = 0; i < 2000; i++) {
        id_of(i, id);
        assert_int_equal(pf_index_find_pack(ix, id), i);
        assert_int_equal(pf_index_add_pack(ix, id, salt), i); /* no duplicate */
        id_of(i + 1000000, salt);
        assert_memory_equal(ix->packs[i].salt, salt, PF_SALT_LEN);
    }
    assert_int_equal(ix->npacks, 2000);
    id_of(5000, id);
    assert_int_equal(pf_index_find_pack(ix, id), -1);
    pf_index_free(ix);
}

static void make_file(pf_index_file *f)
{
    memset(f, 0, sizeof *f);
    f->nsupersedes = 2;
    f->supersedes = calloc(2, PF_ID_LEN);
    assert_non_null(f->supersedes);
    id_of(900, f->supersedes[0]);
    id_of(901, f->supersedes[1]);
    f->npacks = 3;
    f->packs = calloc(3, sizeof *f->packs);
    assert_non_null(f->packs);
    uint32_t n = 0;
    for (size_t p = 0; p < 3; p++) {
        id_of(500 + (uint32_t)p, f->packs[p].info.id);
        id_of(600 + (uint32_t)p, f->packs[p].info.salt);
        f->packs[p].count = p == 1 ? 0 : 10 + p; /* an empty pack is allowed */
        f->packs[p].entries = calloc(f->packs[p].count + 1, sizeof(pf_blob_entry));
        assert_non_null(f->packs[p].entries);
        uint32_t off = 0;
        for (size_t j = 0; j < f->packs[p].count; j++, n++) {
            pf_blob_entry *e = &f->packs[p].entries[j];
            id_of(n, e->id);
            e->type = j % 3 ? PF_BLOB_DATA : PF_BLOB_TREE;
            e->comp = j % 2;
            e->offset = off;
            e->length = 16 + n;
            e->raw_length = 3 * n;
            off += e->length;
        }
    }
}

static void test_file_round_trip(void **state)
{
    (void)state;
    pf_index_file f, g;
    pf_err err = {0};
    make_file(&f);
    pf_buf b = PF_BUF_INIT;
    pf_index_file_encode(&f, &b);
    assert_int_equal(b.len, 4 + 4 + 2 * 32 + 4 + 3 * (32 + 32 + 4) + (10 + 12) * 46);
    assert_memory_equal(b.data, "PFI1", 4);
    assert_int_equal(pf_index_file_decode(b.data, b.len, &g, &err), 0);
    assert_int_equal(g.nsupersedes, 2);
    assert_memory_equal(g.supersedes, f.supersedes, 2 * PF_ID_LEN);
    assert_int_equal(g.npacks, 3);
    for (size_t p = 0; p < 3; p++) {
        assert_memory_equal(&g.packs[p].info, &f.packs[p].info, sizeof f.packs[p].info);
        assert_int_equal(g.packs[p].count, f.packs[p].count);
        for (size_t j = 0; j < f.packs[p].count; j++) {
            const pf_blob_entry *a = &f.packs[p].entries[j], *c = &g.packs[p].entries[j];
            assert_memory_equal(a->id, c->id, PF_ID_LEN);
            assert_int_equal(a->type, c->type);
            assert_int_equal(a->comp, c->comp);
            assert_int_equal(a->offset, c->offset);
            assert_int_equal(a->length, c->length);
            assert_int_equal(a->raw_length, c->raw_length);
        }
    }
    /* Re-encoding gives the same bytes. */
    pf_buf b2 = PF_BUF_INIT;
    pf_index_file_encode(&g, &b2);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);

    /* Merged into an index: each blob points at its pack's position. */
    pf_index *ix = pf_index_new();
    uint8_t other[PF_ID_LEN], salt[PF_SALT_LEN] = {0};
    id_of(7777, other);
    pf_index_add_pack(ix, other, salt); /* position 0 taken by another pack */
    pf_index_merge(ix, &g);
    assert_int_equal(ix->npacks, 4);
    assert_int_equal(ix->nblobs, 22);
    for (size_t p = 0; p < 3; p++) {
        long pos = pf_index_find_pack(ix, g.packs[p].info.id);
        assert_int_equal(pos, (long)p + 1);
        for (size_t j = 0; j < g.packs[p].count; j++) {
            pf_blob_loc *l = pf_index_find(ix, g.packs[p].entries[j].id);
            assert_non_null(l);
            assert_int_equal(l->pack, (uint32_t)pos);
            assert_int_equal(l->offset, g.packs[p].entries[j].offset);
            assert_int_equal(l->length, g.packs[p].entries[j].length);
        }
    }
    pf_index_merge(ix, &g); /* merging twice changes nothing */
    assert_int_equal(ix->npacks, 4);
    assert_int_equal(ix->nblobs, 22);
    pf_index_free(ix);

    pf_index_file empty = {0};
    pf_buf_reset(&b2);
    pf_index_file_encode(&empty, &b2);
    assert_int_equal(b2.len, 12);
    assert_int_equal(pf_index_file_decode(b2.data, b2.len, &empty, &err), 0);
    pf_index_file_free(&empty);

    pf_buf_free(&b);
    pf_buf_free(&b2);
    pf_index_file_free(&f);
    pf_index_file_free(&g);
    pf_index_file_free(&g); /* freeing twice is harmless: free leaves it empty */
}

static void expect_refused(const uint8_t *p, size_t n, const char *what)
{
    pf_index_file f;
    pf_err err = {0};
    /* An exact-size copy, so ASan sees any read past the end. */
    uint8_t *copy = malloc(n ? n : 1);
    assert_non_null(copy);
    if (n)
        memcpy(copy, p, n);
    if (pf_index_file_decode(copy, n, &f, &err) == 0)
        fail_msg("malformed index file accepted: %s (%zu bytes)", what, n);
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_int_equal(f.npacks, 0);
    assert_null(f.packs);
    free(copy);
}

static void test_file_malformed(void **state)
{
    (void)state;
    pf_index_file f;
    make_file(&f);
    pf_buf b = PF_BUF_INIT;
    pf_index_file_encode(&f, &b);
    pf_index_file_free(&f);
    for (size_t n = 0; n < b.len; n++)
        expect_refused(b.data, n, "truncated");
    pf_buf_u8(&b, 0);
    expect_refused(b.data, b.len, "trailing byte");
    b.len--;
    b.data[3] = '2';
    expect_refused(b.data, b.len, "magic");
    b.data[3] = '1';
    /* Counts far beyond the bytes: refused before anything is allocated from them. */
    pf_put_le32(b.data + 4, UINT32_MAX);
    expect_refused(b.data, b.len, "supersedes count");
    pf_put_le32(b.data + 4, 2);
    size_t np_at = 8 + 2 * PF_ID_LEN;
    pf_put_le32(b.data + np_at, UINT32_MAX);
    expect_refused(b.data, b.len, "pack count");
    pf_put_le32(b.data + np_at, 4);
    expect_refused(b.data, b.len, "one pack too many");
    pf_put_le32(b.data + np_at, 3);
    size_t cnt_at = np_at + 4 + 2 * PF_ID_LEN;
    pf_put_le32(b.data + cnt_at, UINT32_MAX);
    expect_refused(b.data, b.len, "entry count");
    pf_put_le32(b.data + cnt_at, 10);
    size_t e0 = cnt_at + 4;
    b.data[e0] = 9;
    expect_refused(b.data, b.len, "entry type");
    b.data[e0] = PF_BLOB_TREE;
    b.data[e0 + 1] = 7;
    expect_refused(b.data, b.len, "entry compression");
    b.data[e0 + 1] = 0;
    pf_put_le32(b.data + e0 + 38, 3);
    expect_refused(b.data, b.len, "entry length");
    pf_put_le32(b.data + e0 + 38, 16);
    pf_put_le32(b.data + e0 + 42, UINT32_MAX);
    expect_refused(b.data, b.len, "entry raw length");
    pf_put_le32(b.data + e0 + 42, 0);
    pf_index_file g;
    pf_err err = {0};
    assert_int_equal(pf_index_file_decode(b.data, b.len, &g, &err), 0); /* all restored */
    pf_index_file_free(&g);
    pf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_many),
        cmocka_unit_test(test_collisions),
        cmocka_unit_test(test_remove_random_order),
        cmocka_unit_test(test_pending),
        cmocka_unit_test(test_packs),
        cmocka_unit_test(test_file_round_trip),
        cmocka_unit_test(test_file_malformed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
