/* Run records (src/repo/runs.c): round trip through a repository, newest first, the newest
 * per host and command, trimming, and refusing malformed records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/repo.h"
#include "repo/runs.h"
#include "store/store.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

static void save(pf_repo *r, const char *command, const char *host, int64_t t, int code)
{
    pf_run_record rec = {.command = (char *)command,
                         .host = (char *)host,
                         .time_ns = t,
                         .seconds = 12.3456,
                         .exit_code = code,
                         .result = code ? "2 problems" : "ok"};
    pf_err err = {0};
    assert_int_equal(pf_run_save(r, &rec, &err), 0);
    assert_int_equal(strlen(rec.id), 64);
}

static void test_round_trip_and_trim(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "runs test", NULL, &err);
    assert_non_null(r);
    save(r, "check", "a", 100, 0);
    save(r, "check", "a", 300, 4);
    save(r, "drill", "a", 200, 0);
    save(r, "check", "b", 250, 0);
    save(r, "check", "a", 50, 0);

    pf_run_record *v;
    size_t n;
    assert_int_equal(pf_runs_load(r, &v, &n, &err), 0);
    assert_int_equal(n, 5);
    for (size_t i = 1; i < n; i++)
        assert_true(v[i - 1].time_ns >= v[i].time_ns);
    const pf_run_record *c = pf_runs_newest(v, n, "a", "check");
    assert_non_null(c);
    assert_int_equal(c->time_ns, 300);
    assert_int_equal(c->exit_code, 4);
    assert_string_equal(c->result, "2 problems");
    assert_true(c->seconds > 12.345 && c->seconds < 12.347); /* kept to the millisecond */
    assert_null(pf_runs_newest(v, n, "b", "drill"));
    assert_int_equal(pf_runs_newest(v, n, NULL, "check")->time_ns, 300);
    pf_runs_free(v, n);

    size_t removed;
    assert_int_equal(pf_runs_trim(r, 1, &removed, &err), 0);
    assert_int_equal(removed, 2); /* host a's checks at 100 and 50 */
    assert_int_equal(pf_runs_load(r, &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(pf_runs_newest(v, n, "a", "check")->time_ns, 300);
    pf_runs_free(v, n);
    pf_repo_free(r);
}

static void test_decode_refuses(void **state)
{
    (void)state;
    const char *bad[] = {
        "[]",
        "{\"version\":2,\"command\":\"check\",\"host\":\"h\",\"time_ns\":\"1\",\"exit_code\":0}",
        "{\"version\":1,\"host\":\"h\",\"time_ns\":\"1\",\"exit_code\":0}",
        "{\"version\":1,\"command\":\"check\",\"host\":\"h\",\"time_ns\":\"1x\",\"exit_code\":0}",
        "{\"version\":1,\"command\":\"check\",\"host\":\"h\",\"time_ns\":\"1\",\"exit_code\":256}",
        "{\"version\":1,\"command\":\"check\",\"host\":\"h\",\"time_ns\":\"1\",\"exit_code\":0,"
        "\"snapshot\":\"../../etc\"}",
        "{\"version\":1,\"command\":7,\"host\":\"h\",\"time_ns\":\"1\",\"exit_code\":0}",
    };
    pf_run_record rec;
    pf_err err = {0};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pf_run_decode(bad[i], strlen(bad[i]), &rec, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_non_null(strstr(err.msg, "run record"));
    }
    /* A string over the bound. */
    size_t big = PF_RUN_STR_MAX + 100;
    char *j = malloc(big + 200);
    int w = snprintf(j, big + 200,
                     "{\"version\":1,\"command\":\"check\",\"host\":\"h\",\"time_ns\":\"1\","
                     "\"exit_code\":0,\"result\":\"");
    memset(j + w, 'x', big);
    strcpy(j + w + big, "\"}");
    assert_int_equal(pf_run_decode(j, strlen(j), &rec, &err), -1);
    free(j);

    const char *good = "{\"version\":1,\"command\":\"drill\",\"host\":\"h\",\"time_ns\":\"-5\","
                       "\"exit_code\":0,\"seconds\":3.5,\"snapshot\":"
                       "\"00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\","
                       "\"detail\":{\"rows\":3},\"later\":true}";
    assert_int_equal(pf_run_decode(good, strlen(good), &rec, &err), 0);
    assert_int_equal(rec.time_ns, -5);
    assert_non_null(rec.detail);
    char *again = pf_run_encode(&rec);
    assert_non_null(strstr(again, "\"detail\":{\"rows\":3}"));
    assert_non_null(strstr(again, "\"seconds\":3.5"));
    free(again);
    pf_run_record_free(&rec);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_and_trim),
        cmocka_unit_test(test_decode_refuses),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
