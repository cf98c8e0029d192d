/* Packs: round trip through the trailer, the header and every blob; any damaged byte
 * and any truncation is detected; malformed headers and entries are refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"
#include "repo/pack.h"

static pf_keys keys;

static int setup(void **state)
{
    (void)state;
    pf_err err = {0};
    memset(&keys, 0, sizeof keys);
    for (int i = 0; i < PF_KEY_LEN; i++)
        keys.master[i] = (uint8_t)(0x40 + i);
    return pf_keys_derive(&keys, &err);
}

static void fill_random(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (uint8_t)(seed >> 24);
    }
}

static void expect_entry(const pf_blob_entry *a, const pf_blob_entry *b)
{
    assert_memory_equal(a->id, b->id, PF_ID_LEN);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->comp, b->comp);
    assert_int_equal(a->offset, b->offset);
    assert_int_equal(a->length, b->length);
    assert_int_equal(a->raw_length, b->raw_length);
}

typedef struct blob {
    uint8_t type;
    uint8_t *data;
    size_t len;
    uint8_t id[PF_ID_LEN];
} blob;

/* Reads a whole pack the way check --read-data does: trailer, header, every blob.
 * Returns 0 when everything authenticates and matches `want` (may be NULL). */
static int read_pack(const uint8_t *p, size_t n, const blob *want, size_t nwant)
{
    pf_err err = {0};
    uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN];
    uint32_t hl;
    if (n < PF_PACK_TRAILER_LEN)
        return pf_pack_parse_trailer(p, n, salt, &hl, &err);
    if (pf_pack_parse_trailer(p + n - PF_PACK_TRAILER_LEN, n, salt, &hl, &err))
        return -1;
    uint64_t area = n - PF_PACK_TRAILER_LEN - hl;
    pf_blob_entry *es = NULL;
    size_t count = 0;
    if (pf_pack_key(&keys, salt, key, &err) ||
        pf_pack_decode_header(key, p + area, hl, area, &es, &count, &err))
        return -1;
    int rc = 0;
    if (want && count != nwant)
        rc = -1;
    for (size_t i = 0; i < count && !rc; i++) {
        pf_buf out = PF_BUF_INIT;
        if (pf_blob_open(&keys, key, &es[i], p + es[i].offset, &out, &err))
            rc = -1;
        else if (want && (out.len != want[i].len || es[i].type != want[i].type ||
                          memcmp(es[i].id, want[i].id, PF_ID_LEN) ||
                          (out.len && memcmp(out.data, want[i].data, out.len))))
            rc = -1;
        pf_buf_free(&out);
    }
    free(es);
    return rc;
}

static void make_blob(blob *b, uint8_t type, size_t len, int compressible, uint32_t seed)
{
    b->type = type;
    b->len = len;
    b->data = malloc(len ? len : 1);
    assert_non_null(b->data);
    if (compressible)
        for (size_t i = 0; i < len; i++)
            b->data[i] = "permafrost keeps mastodon safe. "[i % 32];
    else
        fill_random(b->data, len, seed);
    pf_blob_id(&keys, b->data, len, b->id);
}

static void free_blobs(blob *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(b[i].data);
}

static void test_round_trip(void **state)
{
    (void)state;
    blob b[6];
    make_blob(&b[0], PF_BLOB_DATA, 200000, 1, 0); /* compresses */
    make_blob(&b[1], PF_BLOB_DATA, 70000, 0, 1);  /* random: stored raw */
    make_blob(&b[2], PF_BLOB_DATA, 10, 1, 0);     /* tiny: never compressed */
    make_blob(&b[3], PF_BLOB_DATA, 0, 0, 2);      /* empty */
    make_blob(&b[4], PF_BLOB_TREE, 5000, 1, 0);
    make_blob(&b[5], PF_BLOB_DATA, 64, 1, 0);
    pf_packer pk;
    pf_err err = {0};
    uint8_t pack_id[PF_ID_LEN], check[PF_ID_LEN];
    assert_int_equal(pf_packer_init(&pk, &keys, 3, &err), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(pf_packer_add(&pk, b[i].id, b[i].type, b[i].data, b[i].len, &err), 0);
    assert_int_equal(pk.entries[0].comp, PF_COMP_ZSTD);
    assert_true(pk.entries[0].length < 200000 / 10);
    assert_int_equal(pk.entries[1].comp, PF_COMP_NONE);
    assert_int_equal(pk.entries[1].length, 70000 + PF_TAG_LEN);
    assert_int_equal(pk.entries[2].comp, PF_COMP_NONE);
    assert_int_equal(pk.entries[3].length, PF_TAG_LEN);
    assert_int_equal(pk.entries[4].comp, PF_COMP_ZSTD);
    assert_int_equal(pk.entries[4].type, PF_BLOB_TREE);
    for (int i = 0; i < 6; i++)
        assert_int_equal(pk.entries[i].raw_length, b[i].len);
    assert_int_equal(pf_packer_finish(&pk, pack_id, &err), 0);
    pf_sha256(pk.data.data, pk.data.len, check);
    assert_memory_equal(pack_id, check, PF_ID_LEN);
    assert_int_equal(read_pack(pk.data.data, pk.data.len, b, 6), 0);

    /* The header lists what the packer's entries say. */
    uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN];
    uint32_t hl;
    size_t n = pk.data.len;
    assert_int_equal(
        pf_pack_parse_trailer(pk.data.data + n - PF_PACK_TRAILER_LEN, n, salt, &hl, &err), 0);
    assert_memory_equal(salt, pk.salt, PF_SALT_LEN);
    assert_int_equal(hl, 8 + 6 * PF_PACK_ENTRY_LEN + PF_TAG_LEN);
    assert_int_equal(pf_pack_key(&keys, salt, key, &err), 0);
    assert_memory_equal(key, pk.key, PF_KEY_LEN);
    pf_blob_entry *es;
    size_t count;
    uint64_t area = n - PF_PACK_TRAILER_LEN - hl;
    assert_int_equal(pf_pack_decode_header(key, pk.data.data + area, hl, area, &es, &count, &err),
                     0);
    assert_int_equal(count, 6);
    for (int i = 0; i < 6; i++)
        expect_entry(&es[i], &pk.entries[i]);
    free(es);

    /* A second pack gets another salt, so another key. */
    pf_packer pk2;
    assert_int_equal(pf_packer_init(&pk2, &keys, 3, &err), 0);
    assert_memory_not_equal(pk2.salt, pk.salt, PF_SALT_LEN);
    assert_memory_not_equal(pk2.key, pk.key, PF_KEY_LEN);
    pf_packer_free(&pk2);
    pf_packer_free(&pk);
    free_blobs(b, 6);
}

/* An entry that does not describe the sealed bytes exactly does not open. */
static void test_blob_bound_to_entry(void **state)
{
    (void)state;
    blob b[2];
    make_blob(&b[0], PF_BLOB_DATA, 1000, 0, 3);
    make_blob(&b[1], PF_BLOB_DATA, 3000, 1, 0);
    pf_packer pk;
    pf_err err = {0};
    assert_int_equal(pf_packer_init(&pk, &keys, 3, &err), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pf_packer_add(&pk, b[i].id, b[i].type, b[i].data, b[i].len, &err), 0);
    pf_buf out = PF_BUF_INIT;
    for (int i = 0; i < 2; i++) {
        pf_blob_entry e = pk.entries[i];
        const uint8_t *at = pk.data.data + e.offset;
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), 0);
        assert_int_equal(out.len, b[i].len);
        pf_buf_reset(&out);

        e.type = PF_BLOB_TREE; /* AAD */
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        e = pk.entries[i];
        e.comp ^= 1; /* AAD */
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        e = pk.entries[i];
        e.id[5] ^= 1; /* AAD */
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        e = pk.entries[i];
        e.offset += 1; /* nonce */
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        e = pk.entries[i];
        e.raw_length += 1;
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        e = pk.entries[i];
        e.length -= 1;
        assert_int_equal(pf_blob_open(&keys, pk.key, &e, at, &out, &err), -1);
        assert_int_equal(out.len, 0); /* nothing appended on failure */
    }
    /* Under another pack's key. */
    pf_packer other;
    assert_int_equal(pf_packer_init(&other, &keys, 3, &err), 0);
    assert_int_equal(pf_blob_open(&keys, other.key, &pk.entries[0], pk.data.data, &out, &err), -1);
    pf_packer_free(&other);

    /* Sealed fine but its content does not hash to the id it was stored under. */
    uint8_t wrong[PF_ID_LEN];
    memcpy(wrong, b[0].id, PF_ID_LEN);
    wrong[0] ^= 0x80;
    assert_int_equal(pf_packer_add(&pk, wrong, PF_BLOB_DATA, b[0].data, b[0].len, &err), 0);
    assert_int_equal(pf_blob_open(&keys, pk.key, &pk.entries[2],
                                  pk.data.data + pk.entries[2].offset, &out, &err),
                     -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    pf_buf_free(&out);
    pf_packer_free(&pk);
    free_blobs(b, 2);
}

static void small_pack(pf_packer *pk, blob *b)
{
    pf_err err = {0};
    make_blob(&b[0], PF_BLOB_DATA, 30, 0, 7);
    make_blob(&b[1], PF_BLOB_TREE, 200, 1, 0); /* compressed */
    make_blob(&b[2], PF_BLOB_DATA, 0, 0, 0);
    assert_int_equal(pf_packer_init(pk, &keys, 3, &err), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(pf_packer_add(pk, b[i].id, b[i].type, b[i].data, b[i].len, &err), 0);
    assert_int_equal(pk->entries[1].comp, PF_COMP_ZSTD);
    uint8_t id[PF_ID_LEN];
    assert_int_equal(pf_packer_finish(pk, id, &err), 0);
}

static void test_every_byte_flip_detected(void **state)
{
    (void)state;
    blob b[3];
    pf_packer pk;
    small_pack(&pk, b);
    uint8_t *p = pk.data.data;
    size_t n = pk.data.len;
    assert_int_equal(read_pack(p, n, b, 3), 0);
    static const uint8_t masks[] = {0x01, 0x80, 0xff};
    for (size_t i = 0; i < n; i++) {
        for (size_t m = 0; m < sizeof masks; m++) {
            p[i] ^= masks[m];
            if (read_pack(p, n, b, 3) == 0)
                fail_msg("flipping byte %zu of %zu (mask %02x) went unnoticed", i, n, masks[m]);
            p[i] ^= masks[m];
        }
    }
    assert_int_equal(read_pack(p, n, b, 3), 0);
    pf_packer_free(&pk);
    free_blobs(b, 3);
}

static void test_truncated_refused(void **state)
{
    (void)state;
    blob b[3];
    pf_packer pk;
    small_pack(&pk, b);
    for (size_t n = 0; n < pk.data.len; n++) {
        /* A copy of exactly n bytes, so ASan sees any read past it. */
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, pk.data.data, n);
        if (read_pack(p, n, NULL, 0) == 0)
            fail_msg("pack truncated to %zu of %zu bytes accepted", n, pk.data.len);
        free(p);
    }
    /* Cut at the front (the trailer intact, offsets now wrong). */
    for (size_t k = 1; k < pk.data.len; k += 7)
        assert_int_not_equal(read_pack(pk.data.data + k, pk.data.len - k, NULL, 0), 0);
    pf_packer_free(&pk);
    free_blobs(b, 3);
}

static void test_trailer(void **state)
{
    (void)state;
    uint8_t t[PF_PACK_TRAILER_LEN], salt[PF_SALT_LEN];
    uint32_t hl;
    pf_err err = {0};
    memset(t, 0xab, PF_SALT_LEN);
    memcpy(t + PF_SALT_LEN + 4, PF_PACK_MAGIC, 4);
    pf_put_le32(t + PF_SALT_LEN, 24);
    assert_int_equal(pf_pack_parse_trailer(t, 64, salt, &hl, &err), 0);
    assert_int_equal(hl, 24);
    assert_memory_equal(salt, t, PF_SALT_LEN);
    assert_int_equal(pf_pack_parse_trailer(t, 63, salt, &hl, &err), -1); /* no room */
    assert_int_equal(pf_pack_parse_trailer(t, 39, salt, &hl, &err), -1);
    pf_put_le32(t + PF_SALT_LEN, 23); /* shorter than an empty sealed header */
    assert_int_equal(pf_pack_parse_trailer(t, 1000, salt, &hl, &err), -1);
    pf_put_le32(t + PF_SALT_LEN, PF_PACK_MAX_HEADER + 1);
    assert_int_equal(pf_pack_parse_trailer(t, UINT64_MAX, salt, &hl, &err), -1);
    pf_put_le32(t + PF_SALT_LEN, UINT32_MAX);
    assert_int_equal(pf_pack_parse_trailer(t, UINT64_MAX, salt, &hl, &err), -1);
    pf_put_le32(t + PF_SALT_LEN, 100);
    assert_int_equal(pf_pack_trailer_kind(t), PF_PACK_MASTER);
    t[PF_PACK_TRAILER_LEN - 1] = '2'; /* "PFP2": sealed to the public key (format 3) */
    assert_int_equal(pf_pack_parse_trailer(t, 1000, salt, &hl, &err), 0);
    assert_int_equal(pf_pack_trailer_kind(t), PF_PACK_SEALED);
    t[PF_PACK_TRAILER_LEN - 1] = '3';
    assert_int_equal(pf_pack_parse_trailer(t, 1000, salt, &hl, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
}

static void entry(pf_buf *b, uint8_t type, uint8_t comp, uint32_t off, uint32_t len, uint32_t raw)
{
    pf_blob_entry e = {.type = type, .comp = comp, .offset = off, .length = len, .raw_length = raw};
    memset(e.id, 0x5a, PF_ID_LEN);
    pf_blob_entry_encode(&e, b);
}

static int parse(const pf_buf *b, uint64_t area, size_t *count)
{
    pf_blob_entry *es = NULL;
    pf_err err = {0};
    size_t c = 0;
    int rc = pf_pack_header_parse(b->data, b->len, area, &es, &c, &err);
    if (!rc)
        free(es);
    else
        assert_int_equal(err.code, PF_ECORRUPT);
    if (count)
        *count = c;
    return rc;
}

static void header(pf_buf *b, const char *magic, uint32_t count)
{
    pf_buf_reset(b);
    pf_buf_append(b, magic, 4);
    pf_buf_u32le(b, count);
}

static void test_header_parse(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    size_t count;
    header(&b, "PFH1", 0);
    assert_int_equal(parse(&b, 0, &count), 0);
    assert_int_equal(count, 0);
    header(&b, "PFH1", 2);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, 100, 84);
    entry(&b, PF_BLOB_TREE, PF_COMP_ZSTD, 100, 50, 1000);
    assert_int_equal(parse(&b, 150, &count), 0);
    assert_int_equal(count, 2);
    assert_int_equal(parse(&b, 149, NULL), -1); /* beyond the blob area */
    pf_buf_u8(&b, 0);
    assert_int_equal(parse(&b, 150, NULL), -1); /* trailing byte */
    b.len--;
    for (size_t n = 0; n < b.len; n++) {
        pf_buf cut = PF_BUF_INIT;
        pf_buf_append(&cut, b.data, n);
        assert_int_equal(parse(&cut, 150, NULL), -1);
        pf_buf_free(&cut);
    }
    header(&b, "PFH2", 0);
    assert_int_equal(parse(&b, 0, NULL), -1);
    header(&b, "PFH1", UINT32_MAX); /* count far beyond the bytes: refused before allocating */
    assert_int_equal(parse(&b, UINT64_MAX, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, 3, PF_COMP_NONE, 0, 100, 84); /* unknown type */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, 0, PF_COMP_NONE, 0, 100, 84);
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, 2, 0, 100, 84); /* unknown compression */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, 15, 0); /* shorter than a tag */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, PF_COMP_ZSTD, 0, 100, PF_MAX_BLOB + 1);
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, UINT32_MAX, 0);
    assert_int_equal(parse(&b, UINT64_MAX, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 1, 100, 84); /* not at 0 */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 2);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, 100, 84);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 90, 100, 84); /* overlaps */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 2);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, 100, 84);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 110, 100, 84); /* gap */
    assert_int_equal(parse(&b, 1000, NULL), -1);
    header(&b, "PFH1", 1);
    entry(&b, PF_BLOB_DATA, PF_COMP_NONE, 0, 100, 84);
    assert_int_equal(parse(&b, 1000, NULL), 0);
    pf_buf_free(&b);
}

static void test_entry_encoding(void **state)
{
    (void)state;
    pf_blob_entry e = {.type = PF_BLOB_TREE,
                       .comp = PF_COMP_ZSTD,
                       .offset = 0x01020304,
                       .length = 0x00a0b0c0,
                       .raw_length = 0x00203040};
    for (int i = 0; i < PF_ID_LEN; i++)
        e.id[i] = (uint8_t)i;
    pf_buf b = PF_BUF_INIT;
    pf_blob_entry_encode(&e, &b);
    assert_int_equal(b.len, PF_PACK_ENTRY_LEN);
    assert_int_equal(b.data[0], PF_BLOB_TREE);
    assert_int_equal(b.data[1], PF_COMP_ZSTD);
    assert_memory_equal(b.data + 2, e.id, PF_ID_LEN);
    assert_int_equal(pf_le32(b.data + 34), 0x01020304);
    assert_int_equal(pf_le32(b.data + 38), 0x00a0b0c0);
    assert_int_equal(pf_le32(b.data + 42), 0x00203040);
    pf_reader r;
    pf_blob_entry d;
    pf_reader_init(&r, b.data, b.len);
    assert_int_equal(pf_blob_entry_decode(&r, &d), 0);
    expect_entry(&d, &e);
    assert_int_equal(pf_reader_left(&r), 0);
    pf_reader_init(&r, b.data, b.len - 1);
    assert_int_equal(pf_blob_entry_decode(&r, &d), -1);
    pf_buf_free(&b);
}

/* The sealed header is bound to its AAD and nonce: a blob's bytes cannot pass for it. */
static void test_header_sealing(void **state)
{
    (void)state;
    blob b[3];
    pf_packer pk;
    pf_err err = {0};
    small_pack(&pk, b);
    size_t n = pk.data.len;
    uint32_t hl = pf_le32(pk.data.data + n - 8);
    uint64_t area = n - PF_PACK_TRAILER_LEN - hl;
    pf_blob_entry *es;
    size_t count;
    uint8_t other[PF_KEY_LEN];
    memcpy(other, pk.key, PF_KEY_LEN);
    other[0] ^= 1;
    assert_int_equal(pf_pack_decode_header(other, pk.data.data + area, hl, area, &es, &count, &err),
                     -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_int_equal(
        pf_pack_decode_header(pk.key, pk.data.data + area, hl - 1, area, &es, &count, &err), -1);
    /* A sealed blob is never a valid header (nonce and AAD differ). */
    assert_int_equal(pf_pack_decode_header(pk.key, pk.data.data + pk.entries[1].offset,
                                           pk.entries[1].length, area, &es, &count, &err),
                     -1);
    /* The header checks entries against the blob area it is given. */
    assert_int_equal(
        pf_pack_decode_header(pk.key, pk.data.data + area, hl, area - 1, &es, &count, &err), -1);
    assert_int_equal(
        pf_pack_decode_header(pk.key, pk.data.data + area, hl, area, &es, &count, &err), 0);
    assert_int_equal(count, 3);
    free(es);
    pf_packer_free(&pk);
    free_blobs(b, 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_blob_bound_to_entry),
        cmocka_unit_test(test_every_byte_flip_detected),
        cmocka_unit_test(test_truncated_refused),
        cmocka_unit_test(test_trailer),
        cmocka_unit_test(test_header_parse),
        cmocka_unit_test(test_entry_encoding),
        cmocka_unit_test(test_header_sealing),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
