/* FastCDC chunker: deterministic, within its bounds, independent of buffering,
 * re-synchronising after insertions, and keyed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/chunker.h"
#include "repo/crypto.h"

#define MIN 2048
#define AVG 8192
#define MAX 65536

typedef struct cuts {
    size_t *end; /* end offset of each chunk */
    size_t n;
} cuts;

static uint64_t rng_state;

static uint8_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (uint8_t)(rng_state >> 24);
}

static uint8_t *random_data(size_t n, uint64_t seed)
{
    uint8_t *p = malloc(n);
    assert_non_null(p);
    rng_state = seed;
    for (size_t i = 0; i < n; i++)
        p[i] = rnd();
    return p;
}

static void seed_of(uint8_t seed[32], uint8_t v)
{
    memset(seed, v, 32);
}

static pf_chunker *chunker(uint8_t key_byte, size_t min, size_t avg, size_t max)
{
    static pf_chunker c[4];
    static int next;
    pf_chunker *ch = &c[next++ % 4];
    uint8_t seed[32];
    pf_err err = {0};
    seed_of(seed, key_byte);
    assert_int_equal(pf_chunker_init(ch, seed, min, avg, max, &err), 0);
    return ch;
}

/* Chunks a whole buffer, end of stream known. */
static cuts chunk_all(const pf_chunker *c, const uint8_t *p, size_t n)
{
    cuts r = {NULL, 0};
    size_t off = 0, cap = 0;
    while (off < n) {
        size_t m = pf_chunker_cut(c, p + off, n - off, true);
        assert_true(m > 0);
        off += m;
        if (r.n == cap) {
            cap = cap ? cap * 2 : 64;
            r.end = realloc(r.end, cap * sizeof *r.end);
            assert_non_null(r.end);
        }
        r.end[r.n++] = off;
    }
    return r;
}

static size_t chunk_len(const cuts *c, size_t i)
{
    return c->end[i] - (i ? c->end[i - 1] : 0);
}

static void test_deterministic(void **state)
{
    (void)state;
    size_t n = 1 << 20;
    uint8_t *p = random_data(n, 1);
    cuts a = chunk_all(chunker(7, MIN, AVG, MAX), p, n);
    cuts b = chunk_all(chunker(7, MIN, AVG, MAX), p, n);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.end, b.end, a.n * sizeof *a.end);
    assert_int_equal(a.end[a.n - 1], n);
    free(a.end);
    free(b.end);
    free(p);
}

static void check_bounds(size_t min, size_t avg, size_t max, size_t n, uint64_t seed)
{
    uint8_t *p = random_data(n, seed);
    cuts c = chunk_all(chunker(1, min, avg, max), p, n);
    for (size_t i = 0; i < c.n; i++) {
        size_t len = chunk_len(&c, i);
        assert_true(len <= max);
        if (i + 1 < c.n)
            assert_true(len > min);
    }
    double mean = (double)n / (double)c.n;
    if (mean < (double)avg / 2 || mean > (double)avg * 2)
        fail_msg("mean chunk %.0f for avg %zu", mean, avg);
    free(c.end);
    free(p);
}

static void test_bounds_and_average(void **state)
{
    (void)state;
    check_bounds(MIN, AVG, MAX, 8 << 20, 2);
    check_bounds(256, 1024, 4096, 1 << 20, 3);
    /* The repository's defaults. */
    check_bounds(512 << 10, 1 << 20, 8 << 20, 32 << 20, 4);
}

/* Input whose gear hash never matches is cut at exactly max. */
static void test_max_cut(void **state)
{
    (void)state;
    pf_chunker c;
    pf_err err = {0};
    uint8_t seed[32];
    seed_of(seed, 1);
    assert_int_equal(pf_chunker_init(&c, seed, MIN, AVG, MAX, &err), 0);
    for (int i = 0; i < 256; i++)
        c.gear[i] = UINT64_C(1) << 63; /* h stays 2^63: never a cut point */
    size_t n = 5 * MAX + 100;
    uint8_t *p = random_data(n, 5);
    cuts r = chunk_all(&c, p, n);
    assert_int_equal(r.n, 6);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(chunk_len(&r, i), MAX);
    assert_int_equal(chunk_len(&r, 5), 100);
    /* Without the end of the stream, a short tail is not decided. */
    assert_int_equal(pf_chunker_cut(&c, p, MAX - 1, false), 0);
    assert_int_equal(pf_chunker_cut(&c, p, MAX, false), MAX);
    free(r.end);
    free(p);
}

static void test_small_inputs(void **state)
{
    (void)state;
    const pf_chunker *c = chunker(1, MIN, AVG, MAX);
    uint8_t buf[MIN + 1] = {0};
    assert_int_equal(pf_chunker_cut(c, buf, 0, true), 0);
    assert_int_equal(pf_chunker_cut(c, buf, 1, true), 1);
    assert_int_equal(pf_chunker_cut(c, buf, MIN, true), MIN);
    assert_int_equal(pf_chunker_cut(c, buf, 1, false), 0);
    assert_int_equal(pf_chunker_cut(c, buf, MIN, false), 0);
    /* With the end known, never 0 for a non-empty input. */
    uint8_t *p = random_data(3 * MAX, 6);
    for (size_t n = 1; n < 3 * MAX; n += 997)
        assert_true(pf_chunker_cut(c, p, n, true) > 0);
    free(p);
}

/* Feeding the stream in pieces of any size gives the same chunks. */
static void test_streaming_equivalence(void **state)
{
    (void)state;
    size_t n = 2 << 20;
    uint8_t *p = random_data(n, 7);
    const pf_chunker *c = chunker(9, MIN, AVG, MAX);
    cuts whole = chunk_all(c, p, n);
    rng_state = 99;
    size_t start = 0, avail = 0, k = 0;
    while (start < n) {
        int eof = start + avail == n;
        size_t m = pf_chunker_cut(c, p + start, avail, eof);
        if (!m) {
            assert_false(eof);
            avail += 1 + (size_t)rnd() * 37;
            if (start + avail > n)
                avail = n - start;
            continue;
        }
        assert_true(k < whole.n);
        start += m;
        avail -= m;
        assert_int_equal(start, whole.end[k]);
        k++;
    }
    assert_int_equal(k, whole.n);
    free(whole.end);
    free(p);
}

/* How many chunks of b (by content) also occur in a. */
static size_t shared_chunks(const uint8_t *a, const cuts *ca, const uint8_t *b, const cuts *cb)
{
    size_t shared = 0;
    for (size_t j = 0; j < cb->n; j++) {
        size_t bs = j ? cb->end[j - 1] : 0, bl = chunk_len(cb, j);
        for (size_t i = 0; i < ca->n; i++) {
            size_t as = i ? ca->end[i - 1] : 0;
            if (chunk_len(ca, i) == bl && !memcmp(a + as, b + bs, bl)) {
                shared++;
                break;
            }
        }
    }
    return shared;
}

static void test_resynchronises(void **state)
{
    (void)state;
    size_t n = 2 << 20;
    uint8_t *a = random_data(n, 8);
    const pf_chunker *c = chunker(3, MIN, AVG, MAX);
    cuts ca = chunk_all(c, a, n);
    assert_true(ca.n > 100);

    /* One byte prefixed. */
    uint8_t *b = malloc(n + 1);
    assert_non_null(b);
    b[0] = 0x42;
    memcpy(b + 1, a, n);
    cuts cb = chunk_all(c, b, n + 1);
    size_t s = shared_chunks(a, &ca, b, &cb);
    if (s + 3 < ca.n)
        fail_msg("prefix: only %zu of %zu chunks shared", s, ca.n);

    /* One byte removed, one inserted and one changed in the middle. */
    memcpy(b, a, n);
    memmove(b + 1000, b + 1001, n - 1001);
    cuts cc = chunk_all(c, b, n - 1);
    s = shared_chunks(a, &ca, b, &cc);
    if (s + 3 < ca.n)
        fail_msg("deletion: only %zu of %zu chunks shared", s, ca.n);
    memcpy(b, a, n);
    b[n / 2] ^= 0xff;
    cuts cd = chunk_all(c, b, n);
    s = shared_chunks(a, &ca, b, &cd);
    if (s + 3 < ca.n)
        fail_msg("change: only %zu of %zu chunks shared", s, ca.n);
    free(ca.end);
    free(cb.end);
    free(cc.end);
    free(cd.end);
    free(a);
    free(b);
}

/* Another key, other boundaries: chunk sizes do not fingerprint content. */
static void test_keyed(void **state)
{
    (void)state;
    size_t n = 2 << 20;
    uint8_t *p = random_data(n, 10);
    const pf_chunker *c1 = chunker(1, MIN, AVG, MAX), *c2 = chunker(2, MIN, AVG, MAX);
    assert_memory_not_equal(c1->gear, c2->gear, sizeof c1->gear);
    cuts a = chunk_all(c1, p, n), b = chunk_all(c2, p, n);
    size_t common = 0;
    for (size_t i = 0, j = 0; i < a.n && j < b.n;) {
        if (a.end[i] == b.end[j]) {
            common++;
            i++;
            j++;
        } else if (a.end[i] < b.end[j]) {
            i++;
        } else {
            j++;
        }
    }
    /* Only the end of the stream is bound to coincide; allow a few chance matches. */
    if (common > a.n / 10)
        fail_msg("%zu of %zu boundaries shared across keys", common, a.n);
    free(a.end);
    free(b.end);
    free(p);
}

static void test_invalid_parameters(void **state)
{
    (void)state;
    pf_chunker c;
    pf_err err = {0};
    uint8_t seed[32] = {0};
    assert_int_equal(pf_chunker_init(&c, seed, 100, 1000, 4000, &err), -1); /* not 2^k */
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_int_equal(pf_chunker_init(&c, seed, 1024, 1024, 4096, &err), -1); /* min = avg */
    assert_int_equal(pf_chunker_init(&c, seed, 256, 1024, 1024, &err), -1);  /* avg = max */
    assert_int_equal(pf_chunker_init(&c, seed, 16, 128, 1024, &err), -1);    /* avg < 2^8 */
    assert_int_equal(pf_chunker_init(&c, seed, 0, 0, 0, &err), -1);
    assert_int_equal(pf_chunker_init(&c, seed, 64, 256, 257, &err), 0);
}

/* FastCDC as its definition reads, one byte a step: what the unrolled scan must equal. */
static size_t naive_cut(const pf_chunker *c, const uint8_t *p, size_t n, bool eof)
{
    if (n <= c->min)
        return eof ? n : 0;
    size_t limit = n < c->max ? n : c->max;
    uint64_t h = 0;
    for (size_t i = c->min; i < limit; i++) {
        h = (h << 1) + c->gear[p[i]];
        if (!(h & (i < c->avg ? c->mask_small : c->mask_large)))
            return i + 1;
    }
    return limit == c->max || eof ? limit : 0;
}

/* pf_chunker_cut and pf_chunker_next (fed 1 to 300 bytes at a time) against the naive
 * loop, on random data and on data whose gear hash cuts often (few distinct bytes). */
static void test_naive_equivalence(void **state)
{
    (void)state;
    const size_t sizes[][3] = {{64, 256, 1024}, {2048, 8192, 65536}, {100, 256, 300}};
    for (size_t v = 0; v < 3; v++) {
        pf_chunker *c = chunker((uint8_t)(3 + v), sizes[v][0], sizes[v][1], sizes[v][2]);
        size_t n = 300000;
        uint8_t *p = random_data(n, 11 + v);
        if (v == 2)
            for (size_t i = 0; i < n; i++)
                p[i] &= 3;
        size_t off = 0;
        while (off < n) {
            size_t want = naive_cut(c, p + off, n - off, true);
            assert_int_equal(pf_chunker_cut(c, p + off, n - off, true), want);
            pf_chunk_scan st = {0, 0};
            size_t have = 0, got = 0;
            while (!got) {
                have += 1 + (size_t)rnd() % 300;
                if (have > n - off)
                    have = n - off;
                got = pf_chunker_next(c, &st, p + off, have, have == n - off);
                if (!got)
                    assert_int_equal(naive_cut(c, p + off, have, false), 0);
            }
            assert_int_equal(got, want);
            off += want;
        }
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deterministic),
        cmocka_unit_test(test_bounds_and_average),
        cmocka_unit_test(test_max_cut),
        cmocka_unit_test(test_small_inputs),
        cmocka_unit_test(test_streaming_equivalence),
        cmocka_unit_test(test_resynchronises),
        cmocka_unit_test(test_keyed),
        cmocka_unit_test(test_invalid_parameters),
        cmocka_unit_test(test_naive_equivalence),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
