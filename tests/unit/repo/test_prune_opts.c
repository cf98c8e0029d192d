/* repo/prune: the one reading of max_unused, shared by --max-unused and the config file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "repo/prune.h"

static void test_parse_max_unused(void **state)
{
    (void)state;
    double d = -1;
    assert_int_equal(pf_prune_parse_max_unused("10", &d), 0);
    assert_true(d == 10);
    assert_int_equal(pf_prune_parse_max_unused("2.5%", &d), 0);
    assert_true(d == 2.5);
    assert_int_equal(pf_prune_parse_max_unused("0", &d), 0);
    assert_true(d == 0);
    assert_int_equal(pf_prune_parse_max_unused("100%", &d), 0);
    assert_true(d == 100);
    static const char *bad[] = {"", "%", "abc", "10x", "10%%", "-1", "100.5", "nan", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = 42;
        assert_int_equal(pf_prune_parse_max_unused(bad[i], &d), -1);
        assert_true(d == 42); /* left alone */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_parse_max_unused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
