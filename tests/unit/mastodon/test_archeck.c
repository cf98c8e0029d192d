/* The encryption verdict: recorded in the manifest at backup, read back by check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mastodon/archeck.h"

static void roundtrip(pf_ar_verdict v, const char *word, bool want_problem, const char *want)
{
    pf_ar_keyset ks = {0};
    char src[] = "/home/mastodon/live/.env.production";
    char val[] = "secret-value-not-recorded";
    ks.value[0] = val;
    ks.source[0] = src;
    pf_ar_check c = {.keys = &ks, .verdict = v};
    if (v != PF_AR_NOT_NEEDED)
        strcpy(c.where, "users.otp_secret");
    cJSON *m = cJSON_CreateObject();
    pf_ar_check_describe(&c, m);
    char *text = cJSON_PrintUnformatted(m);
    assert_non_null(strstr(text, word));
    assert_null(strstr(text, "secret-value"));
    assert_non_null(strstr(text, src));
    cJSON_free(text);
    char buf[512];
    bool problem = !want_problem;
    const char *line = pf_ar_check_report(m, &problem, buf, sizeof buf);
    assert_non_null(line);
    assert_int_equal(problem, want_problem);
    if (!strstr(line, want))
        fail_msg("report \"%s\" lacks \"%s\"", line, want);
    cJSON_Delete(m);
}

static void test_verdicts(void **state)
{
    (void)state;
    roundtrip(PF_AR_NOT_NEEDED, "\"keys\":\"not needed\"", false, "no ActiveRecord-encrypted");
    roundtrip(PF_AR_DECRYPT, "\"keys\":\"decrypt\"", false,
              "decrypt the database's encrypted values (users.otp_secret)");
    roundtrip(PF_AR_MISSING, "\"keys\":\"missing\"", true, "MISSING");
    roundtrip(PF_AR_NO_FIT, "\"keys\":\"do not decrypt\"", true, "do NOT decrypt");
    roundtrip(PF_AR_UNVERIFIED, "\"keys\":\"unverified\"", true, "not verified");
    pf_ar_check c = {0};
    assert_true(!pf_ar_check_incomplete(&c));
    c.verdict = PF_AR_NO_FIT;
    assert_true(pf_ar_check_incomplete(&c));
    c.verdict = PF_AR_MISSING;
    assert_true(pf_ar_check_incomplete(&c));
    c.verdict = PF_AR_DECRYPT;
    assert_false(pf_ar_check_incomplete(&c));
    /* Not run: nothing recorded, and an old manifest reports nothing. */
    cJSON *m = cJSON_CreateObject();
    c.verdict = PF_AR_NOT_RUN;
    pf_ar_check_describe(&c, m);
    assert_null(cJSON_GetObjectItem(m, "encryption"));
    char buf[256];
    bool problem;
    assert_null(pf_ar_check_report(m, &problem, buf, sizeof buf));
    cJSON_Delete(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_verdicts)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
