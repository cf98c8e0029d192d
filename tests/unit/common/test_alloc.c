/* common/alloc: the abort-on-OOM allocators' ordinary results. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/alloc.h"

static void test_alloc(void **state)
{
    (void)state;
    char *s = pf_xstrdup("abc");
    assert_string_equal(s, "abc");
    free(s);
    s = pf_xstrdup(NULL); /* optional strings copy as "" */
    assert_string_equal(s, "");
    free(s);
    s = pf_xstrndup("abcdef", 3);
    assert_string_equal(s, "abc");
    free(s);
    s = pf_xstrndup(NULL, 0);
    assert_string_equal(s, "");
    free(s);
    unsigned char *z = pf_xcalloc(16, 4);
    for (int i = 0; i < 64; i++)
        assert_int_equal(z[i], 0);
    z = pf_xrealloc(z, 0); /* still a valid pointer */
    assert_non_null(z);
    free(z);
    void *p = pf_xmalloc(0);
    assert_non_null(p);
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_alloc)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
