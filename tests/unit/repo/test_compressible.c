/* Which blobs are compressed (repo/compressible.h): random bytes and media-like data raw,
 * text, zeros, repeating patterns (even ones that use every byte value equally) and a
 * blob that is random only in part compressed; the packer follows the decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "repo/compressible.h"
#include "repo/crypto.h"
#include "repo/pack.h"

static uint64_t rng;

static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
    rng = seed | 1;
    for (size_t i = 0; i < n; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        p[i] = (uint8_t)(rng >> 32);
    }
}

static int decide(const uint8_t *p, size_t n)
{
    ZSTD_CCtx *z = ZSTD_createCCtx();
    assert_non_null(z);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *tmp = malloc(cap);
    assert_non_null(tmp);
    size_t frame;
    int yes = pf_compressible(z, tmp, cap, p, n, &frame);
    if (frame) { /* a whole blob's frame: it must decompress to the blob */
        assert_true(yes && n <= PF_COMPRESS_FRAME && frame < n);
        uint8_t *back = malloc(n);
        assert_non_null(back);
        assert_int_equal(ZSTD_decompress(back, n, tmp, frame), n);
        assert_memory_equal(back, p, n);
        free(back);
    }
    free(tmp);
    ZSTD_freeCCtx(z);
    return yes;
}

static const size_t sizes[] = {64,
                               100,
                               1000,
                               PF_COMPRESS_WINDOW,
                               PF_COMPRESS_WINDOW + 1,
                               5000,
                               PF_COMPRESS_SAMPLE,
                               PF_COMPRESS_SAMPLE + 1,
                               65536,
                               200000,
                               1u << 20,
                               3u << 20};

static void test_random_is_raw(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        uint8_t *p = malloc(sizes[i]);
        assert_non_null(p);
        fill_random(p, sizes[i], 1000 + i);
        if (decide(p, sizes[i]))
            fail_msg("%zu random bytes judged compressible", sizes[i]);
        free(p);
    }
}

/* A dump's COPY data: tab-separated rows with ids, timestamps and text. */
static size_t fill_copy_rows(uint8_t *p, size_t n)
{
    static const char *const words[] = {"mastodon", "toot", "federated", "timeline", "boost",
                                        "the",      "a",    "of",        "and",      "#fediverse"};
    size_t len = 0;
    uint64_t id = 109876543210987654ull;
    rng = 7;
    while (len < n) {
        char row[512];
        int k = snprintf(row, sizeof row, "%llu\t2026-11-%02u 12:%02u:%02u.%06u\t",
                         (unsigned long long)id, (unsigned)(id % 28) + 1, (unsigned)(id % 60),
                         (unsigned)(id / 7 % 60), (unsigned)(id % 999983));
        for (int w = 0; w < 12; w++) {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            k += snprintf(row + k, sizeof row - (size_t)k, "%s ", words[rng % 10]);
        }
        k += snprintf(row + k, sizeof row - (size_t)k, "\tf\t\\N\n");
        size_t take = (size_t)k < n - len ? (size_t)k : n - len;
        memcpy(p + len, row, take);
        len += take;
        id += 1 + rng % 65536;
    }
    return len;
}

static void test_text_zeros_patterns_compressed(void **state)
{
    (void)state;
    for (size_t i = 2; i < sizeof sizes / sizeof *sizes; i++) { /* from 1000 bytes: below,
                                                                   a frame eats the gain */
        size_t n = sizes[i];
        uint8_t *p = malloc(n);
        assert_non_null(p);
        fill_copy_rows(p, n);
        if (!decide(p, n))
            fail_msg("%zu bytes of COPY rows judged incompressible", n);
        memset(p, 0, n);
        if (!decide(p, n))
            fail_msg("%zu zero bytes judged incompressible", n);
        for (size_t j = 0; j < n; j++)
            p[j] = "{\"id\":\"109876\",\"type\":\"Note\",\"content\":\"<p>hi</p>\"},"[j % 50];
        if (!decide(p, n))
            fail_msg("%zu bytes of a repeated JSON object judged incompressible", n);
        free(p);
    }
}

/* Every byte value equally often: order-0 entropy 8 bits, so only the repeats-only trial
 * can tell; and a random block repeated, likewise. */
static void test_flat_histogram_repeats_compressed(void **state)
{
    (void)state;
    size_t n = 1u << 20;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(i * 167);
    assert_true(pf_entropy_estimate(p, PF_COMPRESS_SAMPLE) >= PF_COMPRESS_H_HIGH);
    assert_true(decide(p, n));
    static const size_t periods[] = {256, 700, 1500};
    for (size_t k = 0; k < sizeof periods / sizeof *periods; k++) {
        fill_random(p, periods[k], 77 + k);
        for (size_t i = periods[k]; i < n; i++)
            p[i] = p[i - periods[k]];
        if (!decide(p, n))
            fail_msg("a random block of %zu bytes repeated judged incompressible", periods[k]);
    }
    free(p);
}

/* A baseline JPEG's markers and tables (what a camera or Mastodon's resizer writes
 * before the scan), then an entropy-coded scan: random bytes with 0xFF stuffed as JPEG
 * does, then the end marker. */
static size_t fill_jpeg_like(uint8_t *p, size_t n)
{
    static const uint8_t soi_app0[] = {0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, 'J',  'F',  'I',  'F',
                                       0x00, 0x01, 0x01, 0x00, 0x00, 0x48, 0x00, 0x48, 0x00, 0x00};
    size_t len = 0;
    memcpy(p, soi_app0, sizeof soi_app0);
    len += sizeof soi_app0;
    for (int t = 0; t < 2; t++) { /* DQT: two 8x8 tables of small steps */
        uint8_t dqt[] = {0xFF, 0xDB, 0x00, 0x43, (uint8_t)t};
        memcpy(p + len, dqt, sizeof dqt);
        len += sizeof dqt;
        for (int i = 0; i < 64; i++)
            p[len++] = (uint8_t)(2 + (i / 8 + i % 8) * (t + 1));
    }
    static const uint8_t sof[] = {0xFF, 0xC0, 0x00, 0x11, 0x08, 0x04, 0x38, 0x07, 0x80, 0x03,
                                  0x01, 0x22, 0x00, 0x02, 0x11, 0x01, 0x03, 0x11, 0x01};
    memcpy(p + len, sof, sizeof sof);
    len += sizeof sof;
    for (int t = 0; t < 4; t++) { /* DHT: counts, then symbols */
        uint8_t dht[] = {0xFF, 0xC4, 0x00, 0xB5, (uint8_t)(t < 2 ? t : 0x10 + t - 2)};
        memcpy(p + len, dht, sizeof dht);
        len += sizeof dht;
        for (int i = 0; i < 16; i++)
            p[len++] = (uint8_t)(i < 2 ? 0 : i < 10 ? 5 : 12);
        for (int i = 0; i < 162; i++)
            p[len++] = (uint8_t)(i * 3 + t);
    }
    static const uint8_t sos[] = {0xFF, 0xDA, 0x00, 0x0C, 0x03, 0x01, 0x00,
                                  0x02, 0x11, 0x03, 0x11, 0x00, 0x3F, 0x00};
    memcpy(p + len, sos, sizeof sos);
    len += sizeof sos;
    uint8_t r;
    rng = 4242;
    while (len < n - 2) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        r = (uint8_t)(rng >> 32);
        p[len++] = r;
        if (r == 0xFF && len < n - 2)
            p[len++] = 0x00;
    }
    p[len++] = 0xFF;
    p[len++] = 0xD9;
    return len;
}

static void test_jpeg_like_raw(void **state)
{
    (void)state;
    /* The tables are about 900 bytes: 3% of a 30 KB thumbnail. */
    static const size_t jsizes[] = {40000, 150000, 2u << 20};
    for (size_t i = 0; i < sizeof jsizes / sizeof *jsizes; i++) {
        uint8_t *p = malloc(jsizes[i]);
        assert_non_null(p);
        size_t n = fill_jpeg_like(p, jsizes[i]);
        if (decide(p, n))
            fail_msg("a JPEG-like blob of %zu bytes judged compressible", n);
        free(p);
    }
}

/* Random, then long runs of zeros (a preallocated file, a sparse image): compressible
 * although its first 64 KiB are not (the rule before this one stored it raw). */
static void test_random_then_zeros_compressed(void **state)
{
    (void)state;
    size_t n = 600000;
    uint8_t *p = calloc(1, n);
    assert_non_null(p);
    fill_random(p, n / 2, 5);
    assert_true(decide(p, n));

    pf_keys keys;
    pf_err err = {0};
    memset(&keys, 0, sizeof keys);
    for (int i = 0; i < PF_KEY_LEN; i++)
        keys.master[i] = (uint8_t)(0x40 + i);
    assert_int_equal(pf_keys_derive(&keys, &err), 0);
    pf_packer pk;
    uint8_t id[PF_ID_LEN];
    assert_int_equal(pf_packer_init(&pk, &keys, 3, &err), 0);
    pf_blob_id(&keys, p, n, id);
    assert_int_equal(pf_packer_add(&pk, id, PF_BLOB_DATA, p, n, &err), 0);
    fill_random(p, n, 6); /* the same size, random throughout */
    pf_blob_id(&keys, p, n, id);
    assert_int_equal(pf_packer_add(&pk, id, PF_BLOB_DATA, p, n, &err), 0);
    assert_int_equal(pk.entries[0].comp, PF_COMP_ZSTD);
    assert_true(pk.entries[0].length < n / 2 + n / 50);
    assert_int_equal(pk.entries[1].comp, PF_COMP_NONE);
    assert_int_equal(pk.entries[1].length, n + PF_TAG_LEN);
    pf_packer_free(&pk);
    free(p);
}

/* A small blob (a directory's tree) is stored as the level-1 trial made it: one zstd call
 * per blob, not a trial and then level 3. */
static void test_small_blob_keeps_trial_frame(void **state)
{
    (void)state;
    pf_keys keys;
    pf_err err = {0};
    memset(&keys, 0, sizeof keys);
    assert_int_equal(pf_keys_derive(&keys, &err), 0);
    size_t n = PF_COMPRESS_FRAME - 100;
    uint8_t *p = malloc(n);
    assert_non_null(p);
    fill_copy_rows(p, n);
    size_t cap = ZSTD_compressBound(n);
    uint8_t *l1 = malloc(cap), *l3 = malloc(cap);
    assert_non_null(l1);
    assert_non_null(l3);
    size_t c1 = ZSTD_compress(l1, cap, p, n, 1), c3 = ZSTD_compress(l3, cap, p, n, 3);
    assert_true(c1 != c3); /* else this test could not tell the two apart */
    pf_packer pk;
    uint8_t id[PF_ID_LEN];
    pf_blob_id(&keys, p, n, id);
    assert_int_equal(pf_packer_init(&pk, &keys, 3, &err), 0);
    assert_int_equal(pf_packer_add(&pk, id, PF_BLOB_TREE, p, n, &err), 0);
    assert_int_equal(pk.entries[0].comp, PF_COMP_ZSTD);
    assert_int_equal(pk.entries[0].length, c1 + PF_TAG_LEN);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_blob_open(&keys, pk.key, &pk.entries[0], pk.data.data, &out, &err), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, p, n);
    pf_buf_free(&out);
    pf_packer_free(&pk);
    free(l1);
    free(l3);
    free(p);
}

static void test_tiny_never(void **state)
{
    (void)state;
    uint8_t z[63] = {0};
    assert_false(decide(z, sizeof z));
    assert_false(decide(z, 0));
}

static void test_entropy_estimate(void **state)
{
    (void)state;
    uint8_t *p = malloc(PF_COMPRESS_SAMPLE);
    assert_non_null(p);
    fill_random(p, PF_COMPRESS_SAMPLE, 9);
    double h = pf_entropy_estimate(p, PF_COMPRESS_SAMPLE);
    assert_true(h > 7.97 && h < 8.03);
    memset(p, 'x', PF_COMPRESS_SAMPLE);
    assert_true(pf_entropy_estimate(p, PF_COMPRESS_SAMPLE) < 0.001);
    for (size_t i = 0; i < PF_COMPRESS_SAMPLE; i++)
        p[i] = (uint8_t)(i & 1);
    h = pf_entropy_estimate(p, PF_COMPRESS_SAMPLE);
    assert_true(h > 0.999 && h < 1.001);
    for (size_t i = 0; i < PF_COMPRESS_SAMPLE; i++) /* 16 values, evenly, an odd length */
        p[i] = (uint8_t)(i % 16 * 16);
    h = pf_entropy_estimate(p, PF_COMPRESS_SAMPLE - 3);
    assert_true(h > 3.99 && h < 4.01);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_is_raw),
        cmocka_unit_test(test_text_zeros_patterns_compressed),
        cmocka_unit_test(test_flat_histogram_repeats_compressed),
        cmocka_unit_test(test_jpeg_like_raw),
        cmocka_unit_test(test_random_then_zeros_compressed),
        cmocka_unit_test(test_small_blob_keeps_trial_frame),
        cmocka_unit_test(test_tiny_never),
        cmocka_unit_test(test_entropy_estimate),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
