/* What a snapshot says it is: kind, completeness and skipped paths written and read back;
 * snapshots from before these fields load with them inferred; times listed in the reader's
 * zone with the offset; and what each command's "latest" may stand for. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/resolve.h"
#include "repo/snapshot.h"

#define TREE "abababababababababababababababababababababababababababababababab"

static void load(const char *json, pf_snapshot *s)
{
    pf_err err = {0};
    assert_int_equal(pf_snapshot_decode(json, strlen(json), s, &err), 0);
}

static void test_round_trip(void **state)
{
    (void)state;
    pf_snapshot s, back;
    pf_snapshot_init(&s);
    s.time_ns = 1764013212123456789;
    s.kind = PF_SNAP_PATHS;
    pf_snapshot_add_path(&s, "/srv/a");
    memset(s.tree, 0xab, sizeof s.tree);
    assert_true(s.complete);
    for (int i = 0; i < PF_SNAPSHOT_SKIPPED_MAX + 5; i++) {
        char p[32];
        snprintf(p, sizeof p, "/srv/a/locked%d", i);
        pf_snapshot_add_skipped(&s, p);
    }
    assert_false(s.complete);
    assert_int_equal(s.nskipped, PF_SNAPSHOT_SKIPPED_MAX); /* bounded */
    assert_int_equal(s.skipped_count, PF_SNAPSHOT_SKIPPED_MAX + 5);
    char *text = pf_snapshot_encode(&s);
    assert_non_null(strstr(text, "\"kind\":\"paths\""));
    assert_non_null(strstr(text, "\"complete\":false"));
    assert_non_null(strstr(text, "\"skipped_count\":25"));
    load(text, &back);
    assert_int_equal(back.kind, PF_SNAP_PATHS);
    assert_false(back.kind_inferred);
    assert_false(back.complete);
    assert_int_equal(back.nskipped, PF_SNAPSHOT_SKIPPED_MAX);
    assert_string_equal(back.skipped[0], "/srv/a/locked0");
    assert_int_equal(back.skipped_count, PF_SNAPSHOT_SKIPPED_MAX + 5);
    free(text);
    pf_snapshot_free(&back);

    s.kind = PF_SNAP_MASTODON_PARTIAL;
    text = pf_snapshot_encode(&s);
    load(text, &back);
    assert_int_equal(back.kind, PF_SNAP_MASTODON_PARTIAL);
    assert_string_equal(pf_snapshot_kind_name(back.kind), "mastodon-partial");
    free(text);
    pf_snapshot_free(&back);
    pf_snapshot_free(&s);
}

/* Snapshots written before "kind" and "complete" existed. */
static void test_old_snapshots_infer(void **state)
{
    (void)state;
    pf_snapshot s;
    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"paths\":[\"/srv/a\"],"
         "\"stats\":{\"files\":3,\"errors\":0}}",
         &s);
    assert_int_equal(s.kind, PF_SNAP_PATHS);
    assert_true(s.kind_inferred);
    assert_true(s.complete);
    pf_snapshot_free(&s);

    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"paths\":[\"/srv/a\"],"
         "\"stats\":{\"files\":3,\"errors\":2}}",
         &s);
    assert_false(s.complete);
    assert_int_equal(s.skipped_count, 2);
    assert_int_equal(s.nskipped, 0); /* old ones never named them */
    pf_snapshot_free(&s);

    /* An absurd error count (found by fuzz_snapshot): the count it implies is bounded the
     * same way as a stored one, so the snapshot written back reads again. */
    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"paths\":[\"/srv/a\"],"
         "\"stats\":{\"files\":3,\"errors\":1e71}}",
         &s);
    assert_false(s.complete);
    char *again = pf_snapshot_encode(&s);
    pf_snapshot back;
    pf_err err = {0};
    assert_int_equal(pf_snapshot_decode(again, strlen(again), &back, &err), 0);
    assert_int_equal(back.skipped_count, s.skipped_count);
    cJSON_free(again);
    pf_snapshot_free(&back);
    pf_snapshot_free(&s);

    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"tags\":[\"mastodon\"],"
         "\"components\":{\"secrets\":{\"status\":\"ok\"},\"postgres\":{\"status\":\"ok\"},"
         "\"redis\":{\"status\":\"ok\"},\"media\":{\"status\":\"ok\"}}}",
         &s);
    assert_int_equal(s.kind, PF_SNAP_MASTODON);
    assert_true(s.complete);
    pf_snapshot_free(&s);

    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"tags\":[\"mastodon\"],"
         "\"components\":{\"postgres\":{\"status\":\"ok\"}}}",
         &s);
    assert_int_equal(s.kind, PF_SNAP_MASTODON_PARTIAL);
    pf_snapshot_free(&s);

    /* Tagged as a Mastodon snapshot but with nothing to tell what it holds. */
    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"tags\":[\"mastodon\"]}", &s);
    assert_int_equal(s.kind, PF_SNAP_UNKNOWN);
    pf_snapshot_free(&s);

    /* A kind from a newer version is not taken for one of ours. */
    load("{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"kind\":\"hologram\"}", &s);
    assert_int_equal(s.kind, PF_SNAP_UNKNOWN);
    assert_false(s.kind_inferred);
    pf_snapshot_free(&s);
}

static void test_malformed_fields_refused(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"kind\":7}",
        "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"complete\":\"yes\"}",
        "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"skipped\":[1]}",
        "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE "\",\"skipped_count\":-1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pf_snapshot s;
        pf_err err = {0};
        assert_int_equal(pf_snapshot_decode(bad[i], strlen(bad[i]), &s, &err), -1);
    }
}

/* One taken at 08:34 in Berlin (07:34 UTC) lists after one taken at 07:33 UTC. */
static void test_time_in_readers_zone(void **state)
{
    (void)state;
    pf_snapshot utc, berlin;
    pf_snapshot_init(&utc);
    pf_snapshot_init(&berlin);
    utc.time_ns = (int64_t)1764574380 * 1000000000; /* 2025-12-01 07:33:00 UTC */
    berlin.time_ns = (int64_t)1764574440 * 1000000000;
    berlin.tz_offset = 3600;
    char a[64], b[64];
    setenv("TZ", "UTC", 1);
    tzset();
    pf_snapshot_time_local(&utc, a, sizeof a);
    pf_snapshot_time_local(&berlin, b, sizeof b);
    assert_string_equal(a, "2025-12-01 07:33:00 +0000");
    assert_string_equal(b, "2025-12-01 07:34:00 +0000");
    setenv("TZ", "Europe/Berlin", 1);
    tzset();
    pf_snapshot_time_local(&utc, a, sizeof a);
    assert_string_equal(a, "2025-12-01 08:33:00 +0100");
    /* The stored "time" stays the taker's own wall clock. */
    pf_snapshot_time_str(&berlin, b, sizeof b);
    assert_string_equal(b, "2025-12-01 08:34:00");
}

static void test_latest_wants(void **state)
{
    (void)state;
    const char *media[] = {"media/accounts/a.png"};
    pf_snapshot_want w = pf_snapshot_want_for(media, 1);
    assert_int_equal(w.kind, PF_SNAP_MASTODON);
    assert_true(w.complete);
    const char *db[] = {"/postgres/mastodon_production.dump"};
    assert_int_equal(pf_snapshot_want_for(db, 1).kind, PF_SNAP_MASTODON);
    const char *host[] = {"host/etc/letsencrypt"};
    assert_int_equal(pf_snapshot_want_for(host, 1).kind, PF_SNAP_MASTODON);
    const char *plain[] = {"data/f1"};
    w = pf_snapshot_want_for(plain, 1);
    assert_int_equal(w.kind, PF_SNAP_PATHS);
    assert_int_equal(w.ninside, 1);
    assert_int_equal(pf_snapshot_want_for(NULL, 0).kind, PF_SNAP_UNKNOWN);

    pf_snapshot s;
    pf_snapshot_init(&s);
    pf_snapshot_add_path(&s, "/srv/data/");
    pf_snapshot_add_path(&s, "/");
    assert_true(pf_snapshot_holds(&s, "data/f1"));
    assert_true(pf_snapshot_holds(&s, "/data"));
    assert_true(pf_snapshot_holds(&s, "root/etc"));
    assert_false(pf_snapshot_holds(&s, "dat/f1"));
    assert_false(pf_snapshot_holds(&s, "srv/data"));
    pf_snapshot_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_old_snapshots_infer),
        cmocka_unit_test(test_malformed_fields_refused),
        cmocka_unit_test(test_time_in_readers_zone),
        cmocka_unit_test(test_latest_wants),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
