/* Reading S3 listing pages for a bucket that is not a repository (store/s3.h): every key is
 * passed on as the bucket has it (the mirror judges it), with its size, its ETag decoded
 * and its LastModified as nanoseconds; a page that is not a listing, or an entry without a
 * usable Size, is an error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "store/s3.h"

static char seen[2048];

static int on_object(const pf_s3_object *o, void *ctx, pf_err *err)
{
    (void)err;
    (void)ctx;
    size_t l = strlen(seen);
    snprintf(seen + l, sizeof seen - l, "%s=%llu,%s,%lld;", o->key, (unsigned long long)o->size,
             o->etag, (long long)o->mtime_ns);
    return 0;
}

static int page(const char *xml, char **token, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, xml);
    seen[0] = 0;
    *token = NULL;
    int rc = pf_s3_objects_page(&b, on_object, NULL, token, err);
    pf_buf_free(&b);
    return rc;
}

static void test_objects_page(void **state)
{
    (void)state;
    char *token;
    pf_err err = {0};
    assert_int_equal(
        page("<ListBucketResult><IsTruncated>true</IsTruncated>"
             "<NextContinuationToken>t1</NextContinuationToken>"
             "<Contents><Key>media_attachments/files/000/000/001/original/a.jpg</Key>"
             "<LastModified>2026-12-01T16:34:17.250Z</LastModified>"
             "<ETag>&quot;9b2cf535f27731c974343645a3985328&quot;</ETag><Size>30000</Size>"
             "</Contents>"
             "<Contents><Key>a/../../b</Key><Size>5</Size></Contents>"
             "<Contents><Key>folder/</Key><Size>0</Size><ETag>&quot;x-2&quot;</ETag></Contents>"
             "</ListBucketResult>",
             &token, &err),
        0);
    assert_string_equal(seen, "media_attachments/files/000/000/001/original/a.jpg=30000,"
                              "\"9b2cf535f27731c974343645a3985328\",1796142857250000000;"
                              "a/../../b=5,,0;folder/=0,\"x-2\",0;");
    assert_string_equal(token, "t1");
    free(token);

    assert_int_equal(page("<Error><Code>AccessDenied</Code></Error>", &token, &err), -1);
    assert_int_equal(err.code, PF_EIO);
    assert_null(token);
    err = (pf_err){0};
    assert_int_equal(page("<ListBucketResult><Contents><Key>k</Key><Size>12x</Size></Contents>"
                          "</ListBucketResult>",
                          &token, &err),
                     -1);
    assert_non_null(strstr(err.msg, "bad Size for k"));
    err = (pf_err){0};
    assert_int_equal(
        page("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>", &token, &err),
        -1);
    assert_null(token);
}

/* A callback that returns non-zero stops the page there, and the page returns its value. */
static int stop_after_one(const pf_s3_object *o, void *ctx, pf_err *err)
{
    (void)o;
    (void)err;
    (*(int *)ctx)++;
    return 7;
}

static void test_callback_stops(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, "<ListBucketResult><Contents><Key>a</Key><Size>1</Size></Contents>"
                          "<Contents><Key>b</Key><Size>1</Size></Contents></ListBucketResult>");
    char *token = NULL;
    int n = 0;
    pf_err err = {0};
    assert_int_equal(pf_s3_objects_page(&b, stop_after_one, &n, &token, &err), 7);
    assert_int_equal(n, 1);
    assert_null(token);
    pf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_objects_page),
                                       cmocka_unit_test(test_callback_stops)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
