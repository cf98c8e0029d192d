/* Reading S3 listing pages: keys a hostile bucket lists are never reported unless they are
 * valid store keys under the prefix. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/s3_list.h"

static char seen[1024];

static int on_key(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)ctx;
    size_t l = strlen(seen);
    snprintf(seen + l, sizeof seen - l, "%s=%llu;", key, (unsigned long long)size);
    return 0;
}

static int page(const char *xml, char **token, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, xml);
    seen[0] = 0;
    *token = NULL;
    int rc = pf_s3_list_page("repo/x/", &b, on_key, NULL, token, err);
    pf_buf_free(&b);
    return rc;
}

static void test_list_page(void **state)
{
    (void)state;
    char *token;
    pf_err err = {0};
    assert_int_equal(
        page("<ListBucketResult><IsTruncated>true</IsTruncated>"
             "<NextContinuationToken>t&amp;1</NextContinuationToken>"
             "<Contents><Key>repo/x/snapshots/3f2a</Key><Size>1234</Size></Contents>"
             "<Contents><Key>repo/x/snapshots/../../../etc/cron.d/x</Key><Size>5</Size>"
             "</Contents><Contents><Key>repo/x/a&#47;&#47;b</Key><Size>1</Size></Contents>"
             "<Contents><Key>repo/x/</Key><Size>0</Size></Contents>"
             "<Contents><Key>other/k</Key><Size>1</Size></Contents>"
             "<Contents><Key>repo/x/data/a&#x2d;b</Key><Size>0</Size></Contents>"
             "</ListBucketResult>",
             &token, &err),
        0);
    assert_string_equal(seen, "snapshots/3f2a=1234;data/a-b=0;");
    assert_string_equal(token, "t&1");
    free(token);

    assert_int_equal(
        page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", &token, &err),
        -1);
    assert_non_null(strstr(err.msg, "no NextContinuationToken"));
    assert_null(token);
    assert_int_equal(page("<ListBucketResult><Contents><Key>repo/x/k</Key><Size>12a</Size>"
                          "</Contents></ListBucketResult>",
                          &token, &err),
                     -1);
    assert_non_null(strstr(err.msg, "bad Size"));
    assert_int_equal(page("<Error><Code>AccessDenied</Code></Error>", &token, &err), -1);
    assert_non_null(strstr(err.msg, "not a listing"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_list_page)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
