/* repo/readplan: grouping the blobs a restore needs into ranged reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repo/readplan.h"

static pf_read_part part(uint32_t pack, uint32_t off, uint32_t len, size_t tag)
{
    return (pf_read_part){pack, off, len, tag};
}

/* Blobs side by side, given out of order: one run covering them, parts in pack order. */
static void test_adjacent(void **state)
{
    (void)state;
    pf_read_part p[4] = {part(0, 200, 100, 2), part(0, 0, 100, 0), part(0, 300, 50, 3),
                         part(0, 100, 100, 1)};
    pf_read_run r[4];
    assert_int_equal(pf_read_plan(p, 4, 0, 1 << 20, r), 1);
    assert_int_equal(r[0].pack, 0);
    assert_int_equal(r[0].offset, 0);
    assert_int_equal(r[0].length, 350);
    assert_int_equal(r[0].first, 0);
    assert_int_equal(r[0].count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_int_equal(p[i].tag, i);
}

/* A gap joins a run when it is at most max_gap, and splits it when it is one byte more. */
static void test_gaps(void **state)
{
    (void)state;
    pf_read_part p[3] = {part(0, 0, 100, 0), part(0, 164, 100, 1), part(0, 1000, 10, 2)};
    pf_read_run r[3];
    assert_int_equal(pf_read_plan(p, 3, 64, 1 << 20, r), 2);
    assert_int_equal(r[0].offset, 0);
    assert_int_equal(r[0].length, 264);
    assert_int_equal(r[0].count, 2);
    assert_int_equal(r[1].offset, 1000);
    assert_int_equal(r[1].length, 10);
    assert_int_equal(r[1].first, 2);
    assert_int_equal(pf_read_plan(p, 3, 63, 1 << 20, r), 3);
    assert_int_equal(pf_read_plan(p, 3, 736, 1 << 20, r), 1);
    assert_int_equal(r[0].length, 1010);
}

/* A run stops before it would pass max_run; a part bigger than max_run is a run alone. */
static void test_run_cap(void **state)
{
    (void)state;
    pf_read_part p[6];
    for (uint32_t i = 0; i < 5; i++)
        p[i] = part(0, i * 100, 100, i);
    p[5] = part(0, 500, 1000, 5);
    pf_read_run r[6];
    assert_int_equal(pf_read_plan(p, 6, 0, 200, r), 4);
    assert_int_equal(r[0].length, 200);
    assert_int_equal(r[1].offset, 200);
    assert_int_equal(r[1].length, 200);
    assert_int_equal(r[2].offset, 400);
    assert_int_equal(r[2].count, 1); /* 400..500 and the big one do not fit together */
    assert_int_equal(r[3].offset, 500);
    assert_int_equal(r[3].length, 1000);
    assert_int_equal(r[3].count, 1);
    for (size_t i = 0; i < 4; i++)
        assert_true(r[i].length <= 200 || r[i].count == 1);
}

/* Packs never share a run, even where their offsets would touch. */
static void test_packs(void **state)
{
    (void)state;
    pf_read_part p[4] = {part(3, 100, 100, 0), part(1, 0, 100, 1), part(3, 0, 100, 2),
                         part(1, 100, 100, 3)};
    pf_read_run r[4];
    assert_int_equal(pf_read_plan(p, 4, 1 << 20, 1 << 20, r), 2);
    assert_int_equal(r[0].pack, 1);
    assert_int_equal(r[0].count, 2);
    assert_int_equal(r[1].pack, 3);
    assert_int_equal(r[1].length, 200);
    assert_int_equal(p[r[1].first].tag, 2);
}

/* The same blob needed twice (two files, or twice in one) is read once in one run. */
static void test_duplicates(void **state)
{
    (void)state;
    pf_read_part p[3] = {part(0, 50, 100, 1), part(0, 0, 100, 0), part(0, 50, 100, 2)};
    pf_read_run r[3];
    assert_int_equal(pf_read_plan(p, 3, 0, 150, r), 1);
    assert_int_equal(r[0].length, 150);
    assert_int_equal(r[0].count, 3);
    assert_int_equal(pf_read_plan(p, 0, 0, 150, r), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_adjacent),   cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_run_cap),    cmocka_unit_test(test_packs),
        cmocka_unit_test(test_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
