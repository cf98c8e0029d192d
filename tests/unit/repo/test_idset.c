/* repo/idset: a set of 32-byte ids, with or without a value per id. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repo/idset.h"

/* Distinct ids; many share their first 8 bytes (the hash) so that probing past
 * collisions is exercised, not only the easy case. */
static void make_id(uint8_t id[PF_ID_LEN], uint32_t i)
{
    memset(id, 0, PF_ID_LEN);
    id[0] = (uint8_t)(i % 7);
    memcpy(id + 8, &i, sizeof i);
    id[31] = 0xA5;
}

static void test_empty(void **state)
{
    (void)state;
    pf_idset s = PF_IDSET_INIT;
    uint8_t id[PF_ID_LEN];
    make_id(id, 1);
    assert_false(pf_idset_has(&s, id));
    assert_null(pf_idset_get(&s, id));
    assert_int_equal(pf_idset_count(&s), 0);
    pf_idset_free(&s);
}

static void test_add_has_grow(void **state)
{
    (void)state;
    pf_idset s = PF_IDSET_INIT;
    uint8_t id[PF_ID_LEN];
    const uint32_t n = 20000; /* several doublings past the first table */
    for (uint32_t i = 0; i < n; i += 2) {
        make_id(id, i);
        assert_int_equal(pf_idset_add(&s, id), 1);
    }
    for (uint32_t i = 0; i < n; i += 2) {
        make_id(id, i);
        assert_int_equal(pf_idset_add(&s, id), 0); /* already there */
    }
    assert_int_equal(pf_idset_count(&s), n / 2);
    for (uint32_t i = 0; i < n; i++) {
        make_id(id, i);
        assert_int_equal(pf_idset_has(&s, id), i % 2 == 0);
    }
    /* The all-zero id is an id like any other. */
    uint8_t zero[PF_ID_LEN] = {0};
    assert_false(pf_idset_has(&s, zero));
    assert_int_equal(pf_idset_add(&s, zero), 1);
    assert_true(pf_idset_has(&s, zero));
    pf_idset_free(&s);
    make_id(id, 0);
    assert_false(pf_idset_has(&s, id));
    assert_int_equal(pf_idset_add(&s, id), 1); /* usable after free */
    pf_idset_free(&s);
}

static void test_values(void **state)
{
    (void)state;
    pf_idset m;
    pf_idset_init(&m, PF_ID_LEN);
    uint8_t k[PF_ID_LEN], v[PF_ID_LEN];
    for (uint32_t i = 0; i < 5000; i++) {
        make_id(k, i);
        make_id(v, i + 1000000);
        pf_idset_put(&m, k, v);
    }
    /* Replacing keeps one entry and the new value. */
    make_id(k, 42);
    memset(v, 0x42, PF_ID_LEN);
    pf_idset_put(&m, k, v);
    assert_int_equal(pf_idset_count(&m), 5000);
    assert_memory_equal(pf_idset_get(&m, k), v, PF_ID_LEN);
    for (uint32_t i = 0; i < 5000; i++) {
        if (i == 42)
            continue;
        make_id(k, i);
        make_id(v, i + 1000000);
        const void *got = pf_idset_get(&m, k);
        assert_non_null(got);
        assert_memory_equal(got, v, PF_ID_LEN);
    }
    make_id(k, 5000);
    assert_null(pf_idset_get(&m, k));
    /* add gives a zeroed value. */
    assert_int_equal(pf_idset_add(&m, k), 1);
    uint8_t zero[PF_ID_LEN] = {0};
    assert_memory_equal(pf_idset_get(&m, k), zero, PF_ID_LEN);
    pf_idset_free(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_add_has_grow),
        cmocka_unit_test(test_values),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
