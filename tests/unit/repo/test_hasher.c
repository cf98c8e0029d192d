/* pf_hasher_ids: the ids of a batch hashed on helper threads are pf_blob_id's, each in its
 * own slot, for batches of every size (none, one, fewer than the helpers, many), with one
 * and with several helpers, and with the same hasher used batch after batch. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/hasher.h"

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void check_batches(int helpers)
{
    pf_keys keys;
    memset(&keys, 0, sizeof keys);
    fill(keys.id_key, sizeof keys.id_key, 7);
    enum { MAXK = 40 };
    uint8_t *data = malloc(MAXK * 5000);
    assert_non_null(data);
    fill(data, MAXK * 5000, 99);
    pf_hasher *h = pf_hasher_new(&keys, helpers);
    assert_non_null(h);
    for (int round = 0; round < 200; round++) {
        size_t k = (size_t)(round % (MAXK + 1));
        const uint8_t *p[MAXK];
        size_t n[MAXK];
        uint8_t got[MAXK][PF_ID_LEN], want[PF_ID_LEN];
        memset(got, 0, sizeof got);
        for (size_t i = 0; i < k; i++) {
            /* Chunks of different lengths (one empty) at different places. */
            n[i] = (i * 131 + (size_t)round * 17) % 5000;
            p[i] = data + i * 5000;
        }
        pf_hasher_ids(h, &keys, p, n, k, got);
        for (size_t i = 0; i < k; i++) {
            pf_blob_id(&keys, p[i], n[i], want);
            assert_memory_equal(got[i], want, PF_ID_LEN);
        }
    }
    pf_hasher_free(h);
    free(data);
}

static void test_one_helper(void **state)
{
    (void)state;
    check_batches(1);
}

static void test_three_helpers(void **state)
{
    (void)state;
    check_batches(3);
}

static void test_no_hasher(void **state)
{
    (void)state;
    pf_keys keys;
    memset(&keys, 0, sizeof keys);
    const uint8_t a[] = "abc", b[] = "defg";
    const uint8_t *p[] = {a, b};
    size_t n[] = {3, 4};
    uint8_t got[2][PF_ID_LEN], want[PF_ID_LEN];
    pf_hasher_ids(NULL, &keys, p, n, 2, got);
    pf_blob_id(&keys, b, 4, want);
    assert_memory_equal(got[1], want, PF_ID_LEN);
    pf_hasher_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_one_helper),
                                       cmocka_unit_test(test_three_helpers),
                                       cmocka_unit_test(test_no_hasher)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
