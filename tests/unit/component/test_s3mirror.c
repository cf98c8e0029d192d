/* The record a mirrored file's link keeps (docs/FORMAT.md, "Media mirrored from S3"): each
 * field found by name in any order, unknown lines passed over, "" for a field that is
 * absent or too long for the caller's buffer, and nothing for a file without a record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "component/s3mirror.h"

static void record_of(const char *link, char *etag, size_t en, char *ct, size_t cn)
{
    pf_node n = {.type = PF_NODE_FILE, .link = (char *)link, .link_len = link ? strlen(link) : 0};
    pf_s3mirror_record(&n, etag, en, ct, cn);
}

static void test_record(void **state)
{
    (void)state;
    char etag[64], ct[64];
    record_of("etag:\"9b2c\"\ncontent-type:image/png\n", etag, sizeof etag, ct, sizeof ct);
    assert_string_equal(etag, "\"9b2c\"");
    assert_string_equal(ct, "image/png");
    record_of("future:1\ncontent-type:video/mp4\netag:\"a-2\"", etag, sizeof etag, ct, sizeof ct);
    assert_string_equal(etag, "\"a-2\"");
    assert_string_equal(ct, "video/mp4");
    record_of(NULL, etag, sizeof etag, ct, sizeof ct);
    assert_string_equal(etag, "");
    assert_string_equal(ct, "");
    record_of("etag:\"0123456789\"\ncontent-type:\n", etag, 8, ct, sizeof ct);
    assert_string_equal(etag, "");
    assert_string_equal(ct, "");
    record_of("etags:\"x\"\n", etag, sizeof etag, ct, sizeof ct);
    assert_string_equal(etag, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_record)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
