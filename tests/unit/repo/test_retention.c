/* Retention policy: a table of snapshot sets, policies and time zones with the expected
 * keep/remove decision and reasons for every snapshot, then the parsers, the validator
 * and the result bookkeeping (groups, ranks, input order). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "repo/retention.h"

/* The tables leave out trailing fields (paths, kind) that a case does not use. */
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"

#define MAX_SNAPS 12
#define MAX_TAGS 4

/* ---- helpers ---------------------------------------------------------------------- */

static void set_tz(const char *tz)
{
    setenv("TZ", tz, 1);
    tzset();
}

/* "YYYY-MM-DD HH:MM[:SS]" in the current local zone, or with a " UTC" suffix in UTC. */
static int64_t when(const char *s)
{
    struct tm tm = {0};
    int sec = 0;
    int n = sscanf(s, "%d-%d-%d %d:%d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                   &tm.tm_min, &sec);
    assert_true(n >= 5);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_sec = n == 6 ? sec : 0;
    tm.tm_isdst = -1;
    if (strstr(s, "UTC"))
        return (int64_t)timegm(&tm);
    return (int64_t)mktime(&tm);
}

typedef struct snap_spec {
    const char *id;
    const char *time;
    const char *host;
    const char *tags;  /* comma-separated, NULL = none */
    const char *paths; /* comma-separated, NULL = none */
    const char *kind;  /* NULL = none */
} snap_spec;

typedef struct retention_case {
    const char *name;
    const char *tz;
    const char *policy; /* "last=2 daily=7 within=2d tag=db group=host" */
    const char *now;    /* NULL = 2100 */
    snap_spec snaps[MAX_SNAPS];
    /* One per snapshot, in input order: "id: reason, reason" or "id: remove". */
    const char *expect[MAX_SNAPS];
} retention_case;

typedef struct built {
    pf_retention_snapshot s[MAX_SNAPS];
    char tagbuf[MAX_SNAPS][128];
    const char *tagv[MAX_SNAPS][MAX_TAGS];
    char pathbuf[MAX_SNAPS][128];
    const char *pathv[MAX_SNAPS][MAX_TAGS];
    size_t n;
    pf_retention_policy p;
    const char *keep_tags[MAX_TAGS];
    char keep_tag_buf[MAX_TAGS][32];
} built;

static void parse_policy(const char *spec, built *b)
{
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    pf_err err = {0};
    char copy[256];
    snprintf(copy, sizeof copy, "%s", spec);
    char *save = NULL;
    for (char *tok = strtok_r(copy, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(tok, '=');
        assert_non_null(eq);
        *eq = 0;
        const char *v = eq + 1;
        int *count = NULL;
        if (!strcmp(tok, "last"))
            count = &p.keep_last;
        else if (!strcmp(tok, "hourly"))
            count = &p.keep_hourly;
        else if (!strcmp(tok, "daily"))
            count = &p.keep_daily;
        else if (!strcmp(tok, "weekly"))
            count = &p.keep_weekly;
        else if (!strcmp(tok, "monthly"))
            count = &p.keep_monthly;
        else if (!strcmp(tok, "yearly"))
            count = &p.keep_yearly;
        if (count) {
            assert_int_equal(pf_retention_parse_count(v, count, &err), 0);
        } else if (!strcmp(tok, "within")) {
            assert_int_equal(pf_retention_parse_duration(v, &p.keep_within, &err), 0);
        } else if (!strcmp(tok, "group")) {
            assert_int_equal(pf_retention_parse_group_by(v, &p.group_by, &err), 0);
        } else if (!strcmp(tok, "tag")) {
            assert_true(p.n_keep_tags < MAX_TAGS);
            snprintf(b->keep_tag_buf[p.n_keep_tags], sizeof b->keep_tag_buf[0], "%s", v);
            b->keep_tags[p.n_keep_tags] = b->keep_tag_buf[p.n_keep_tags];
            p.n_keep_tags++;
        } else {
            fail_msg("bad policy token %s", tok);
        }
    }
    p.keep_tags = b->keep_tags;
    b->p = p;
}

static void build(const retention_case *c, built *b)
{
    memset(b, 0, sizeof *b);
    parse_policy(c->policy, b);
    for (size_t i = 0; i < MAX_SNAPS && c->snaps[i].id; i++) {
        pf_retention_snapshot *s = &b->s[i];
        s->id = c->snaps[i].id;
        s->time = when(c->snaps[i].time);
        s->host = c->snaps[i].host ? c->snaps[i].host : "mastodon";
        if (c->snaps[i].tags) {
            snprintf(b->tagbuf[i], sizeof b->tagbuf[i], "%s", c->snaps[i].tags);
            char *save = NULL;
            for (char *t = strtok_r(b->tagbuf[i], ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                assert_true(s->n_tags < MAX_TAGS);
                b->tagv[i][s->n_tags++] = t;
            }
            s->tags = b->tagv[i];
        }
        if (c->snaps[i].paths) {
            snprintf(b->pathbuf[i], sizeof b->pathbuf[i], "%s", c->snaps[i].paths);
            char *save = NULL;
            for (char *t = strtok_r(b->pathbuf[i], ",", &save); t; t = strtok_r(NULL, ",", &save)) {
                assert_true(s->n_paths < MAX_TAGS);
                b->pathv[i][s->n_paths++] = t;
            }
            s->paths = b->pathv[i];
        }
        s->kind = c->snaps[i].kind;
        b->n = i + 1;
    }
}

static void format_decision(const pf_retention_snapshot *s, const pf_retention_decision *d,
                            char *out, size_t cap)
{
    size_t n = (size_t)snprintf(out, cap, "%s: ", s->id);
    if (!d->keep) {
        snprintf(out + n, cap - n, "remove");
        return;
    }
    for (size_t j = 0; j < d->n_reasons; j++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", j ? ", " : "", d->reasons[j]);
}

static void run_case(const retention_case *c)
{
    set_tz(c->tz);
    built b;
    build(c, &b);
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    int64_t now = c->now ? when(c->now) : when("2100-01-01 00:00 UTC");
    int rc = pf_retention_apply(b.s, b.n, &b.p, now, &r, &err);
    if (rc != 0)
        fail_msg("%s: %s", c->name, err.msg);
    assert_int_equal(r.n, b.n);
    int bad = 0;
    size_t keep = 0;
    for (size_t i = 0; i < b.n; i++) {
        char got[512];
        format_decision(&b.s[i], &r.d[i], got, sizeof got);
        assert_non_null(c->expect[i]);
        if (strcmp(got, c->expect[i]) != 0) {
            print_message("[%s, TZ=%s] want \"%s\"\n%*s got \"%s\"\n", c->name, c->tz, c->expect[i],
                          (int)(strlen(c->name) + strlen(c->tz) + 7), "", got);
            bad++;
        }
        keep += r.d[i].keep;
        assert_int_equal(r.d[i].keep, r.d[i].n_reasons > 0);
    }
    assert_int_equal(r.n_keep, keep);
    assert_int_equal(r.n_remove, b.n - keep);
    pf_retention_result_free(&r);
    if (bad)
        fail_msg("case \"%s\": %d decision(s) differ", c->name, bad);
}

/* ---- the table -------------------------------------------------------------------- */

static const retention_case cases[] = {
    {"same day twice: only the newest of the day is kept by daily",
     "UTC",
     "daily=3",
     NULL,
     {{"a", "2024-05-01 08:00", NULL, NULL},
      {"b", "2024-05-01 20:00", NULL, NULL},
      {"c", "2024-05-02 08:00", NULL, NULL},
      {"d", "2024-05-03 08:00", NULL, NULL},
      {"e", "2024-05-03 09:00", NULL, NULL}},
     {"a: remove", "b: daily snapshot", "c: daily snapshot", "d: remove", "e: daily snapshot"}},

    {"input order does not matter",
     "UTC",
     "daily=3",
     NULL,
     {{"d", "2024-05-03 08:00", NULL, NULL},
      {"a", "2024-05-01 08:00", NULL, NULL},
      {"e", "2024-05-03 09:00", NULL, NULL},
      {"c", "2024-05-02 08:00", NULL, NULL},
      {"b", "2024-05-01 20:00", NULL, NULL}},
     {"d: remove", "a: remove", "e: daily snapshot", "c: daily snapshot", "b: daily snapshot"}},

    {"counts left: the oldest snapshot is kept too",
     "UTC",
     "daily=5",
     NULL,
     {{"x", "2024-05-01 08:00", NULL, NULL},
      {"y", "2024-05-01 20:00", NULL, NULL},
      {"z", "2024-05-02 08:00", NULL, NULL}},
     {"x: oldest daily snapshot", "y: daily snapshot", "z: daily snapshot"}},

    {"gaps: buckets count days that have snapshots, not calendar days",
     "UTC",
     "daily=3",
     NULL,
     {{"d01", "2024-05-01 03:00", NULL, NULL},
      {"d02", "2024-05-02 03:00", NULL, NULL},
      {"d10", "2024-05-10 03:00", NULL, NULL},
      {"d20", "2024-05-20 03:00", NULL, NULL},
      {"d21", "2024-05-21 03:00", NULL, NULL}},
     {"d01: remove", "d02: remove", "d10: daily snapshot", "d20: daily snapshot",
      "d21: daily snapshot"}},

    {"weekly: ISO week 53 of 2020 runs into January 2021",
     "UTC",
     "weekly=3",
     NULL,
     {{"w52", "2020-12-27 12:00", NULL, NULL},
      {"w53a", "2020-12-28 12:00", NULL, NULL},
      {"w53b", "2021-01-03 12:00", NULL, NULL},
      {"w01a", "2021-01-04 12:00", NULL, NULL},
      {"w01b", "2021-01-10 12:00", NULL, NULL},
      {"w02", "2021-01-11 12:00", NULL, NULL}},
     {"w52: remove", "w53a: remove", "w53b: weekly snapshot", "w01a: remove",
      "w01b: weekly snapshot", "w02: weekly snapshot"}},

    {"weekly: 30 December 2024 is in ISO week 1 of 2025",
     "UTC",
     "weekly=-1",
     NULL,
     {{"sun", "2024-12-29 12:00", NULL, NULL},
      {"mon", "2024-12-30 12:00", NULL, NULL},
      {"newyear", "2025-01-05 12:00", NULL, NULL},
      {"next", "2025-01-06 12:00", NULL, NULL}},
     {"sun: weekly snapshot", "mon: remove", "newyear: weekly snapshot", "next: weekly snapshot"}},

    {"monthly and yearly; the oldest fills a used yearly bucket",
     "UTC",
     "monthly=2 yearly=4",
     NULL,
     {{"y22a", "2022-01-01 00:00", NULL, NULL},
      {"y22b", "2022-06-15 00:00", NULL, NULL},
      {"y23a", "2023-03-01 00:00", NULL, NULL},
      {"y23b", "2023-11-05 00:00", NULL, NULL},
      {"y23c", "2023-12-01 00:00", NULL, NULL},
      {"y23d", "2023-12-20 00:00", NULL, NULL},
      {"y24", "2024-01-10 00:00", NULL, NULL}},
     {"y22a: oldest yearly snapshot", "y22b: yearly snapshot", "y23a: remove", "y23b: remove",
      "y23c: remove", "y23d: monthly snapshot, yearly snapshot",
      "y24: monthly snapshot, yearly snapshot"}},

    {"keep-last with daily: reasons are merged",
     "UTC",
     "last=2 daily=3",
     NULL,
     {{"a", "2024-05-01 10:00", NULL, NULL},
      {"b", "2024-05-02 10:00", NULL, NULL},
      {"c", "2024-05-02 12:00", NULL, NULL},
      {"d", "2024-05-03 10:00", NULL, NULL}},
     {"a: daily snapshot", "b: remove", "c: last snapshot, daily snapshot",
      "d: last snapshot, daily snapshot"}},

    {"keep-last: used up counts do not keep the oldest",
     "UTC",
     "last=2",
     NULL,
     {{"a", "2024-05-01 10:00", NULL, NULL},
      {"b", "2024-05-02 10:00", NULL, NULL},
      {"c", "2024-05-03 10:00", NULL, NULL}},
     {"a: remove", "b: last snapshot", "c: last snapshot"}},

    {"hourly with a count",
     "UTC",
     "hourly=2",
     NULL,
     {{"h1", "2024-05-01 10:05", NULL, NULL},
      {"h2", "2024-05-01 10:55", NULL, NULL},
      {"h3", "2024-05-01 11:05", NULL, NULL},
      {"h4", "2024-05-01 11:35", NULL, NULL}},
     {"h1: remove", "h2: hourly snapshot", "h3: remove", "h4: hourly snapshot"}},

    {"keep-within: strictly newer than latest - 2d",
     "UTC",
     "within=2d",
     NULL,
     {{"old", "2024-05-01 12:00", NULL, NULL},
      {"edge", "2024-05-08 12:00:00", NULL, NULL},
      {"in1", "2024-05-08 12:00:01", NULL, NULL},
      {"in2", "2024-05-09 00:00", NULL, NULL},
      {"latest", "2024-05-10 12:00", NULL, NULL}},
     {"old: remove", "edge: remove", "in1: within 2d", "in2: within 2d", "latest: within 2d"}},

    {"keep-within: a snapshot in the future is not the latest, and is kept",
     "UTC",
     "within=1d",
     "2024-05-10 13:00 UTC",
     {{"old", "2024-05-09 11:00", NULL, NULL},
      {"in", "2024-05-09 13:00", NULL, NULL},
      {"latest", "2024-05-10 12:00", NULL, NULL},
      {"future", "2024-06-01 00:00", NULL, NULL}},
     {"old: remove", "in: within 1d", "latest: within 1d", "future: within 1d"}},

    {"keep-within months: 31 March - 1 month is 2 March (2024 is a leap year)",
     "UTC",
     "within=1m",
     NULL,
     {{"feb", "2024-02-29 12:00", NULL, NULL},
      {"edge", "2024-03-02 10:00", NULL, NULL},
      {"in", "2024-03-02 10:30", NULL, NULL},
      {"latest", "2024-03-31 10:00", NULL, NULL}},
     {"feb: remove", "edge: remove", "in: within 1m", "latest: within 1m"}},

    {"keep-within with hours combined with daily",
     "UTC",
     "within=1d12h daily=1",
     NULL,
     {{"a", "2024-05-08 23:00", NULL, NULL},
      {"b", "2024-05-09 01:00", NULL, NULL},
      {"c", "2024-05-10 12:00", NULL, NULL}},
     {"a: remove", "b: within 1d12h", "c: within 1d12h, daily snapshot"}},

    {"keep-tag keeps every tagged snapshot, uncounted",
     "UTC",
     "tag=db daily=1 group=none",
     NULL,
     {{"a", "2024-05-01 10:00", NULL, "db"},
      {"b", "2024-05-02 10:00", NULL, NULL},
      {"c", "2024-05-03 10:00", NULL, "manual,db"}},
     {"a: tag db", "b: remove", "c: tag db, daily snapshot"}},

    {"two keep-tags: reasons for each tag, in policy order",
     "UTC",
     "tag=manual tag=db group=none",
     NULL,
     {{"a", "2024-05-01 10:00", NULL, "db"},
      {"b", "2024-05-02 10:00", NULL, "other"},
      {"c", "2024-05-03 10:00", NULL, "db,manual"}},
     {"a: tag db", "b: remove", "c: tag manual, tag db"}},

    {"group by host: each host keeps its own last snapshot",
     "UTC",
     "last=1 group=host",
     NULL,
     {{"a", "2024-05-01 10:00", "one", NULL},
      {"b", "2024-05-02 10:00", "one", NULL},
      {"c", "2024-05-01 11:00", "two", NULL},
      {"d", "2024-05-03 10:00", "two", "x"}},
     {"a: remove", "b: last snapshot", "c: remove", "d: last snapshot"}},

    {"group by host and tags: tag order does not split a group",
     "UTC",
     "last=1 group=host,tags",
     NULL,
     {{"a", "2024-05-01 10:00", "one", "b,a"},
      {"b", "2024-05-02 10:00", "one", "a,b"},
      {"c", "2024-05-01 11:00", "two", NULL},
      {"d", "2024-05-03 10:00", "two", "x"}},
     {"a: remove", "b: last snapshot", "c: last snapshot", "d: last snapshot"}},

    /* restic's default: backups of different paths never delete each other. */
    {"default grouping: daily backups of A and B each keep their own days",
     "UTC",
     "daily=2",
     NULL,
     {{"a1", "2024-05-01 10:00", NULL, NULL, "/srv/a", "paths"},
      {"b1", "2024-05-01 11:00", NULL, NULL, "/srv/b", "paths"},
      {"a2", "2024-05-02 10:00", NULL, NULL, "/srv/a", "paths"},
      {"b2", "2024-05-02 11:00", NULL, NULL, "/srv/b", "paths"},
      {"a3", "2024-05-03 10:00", NULL, NULL, "/srv/a", "paths"},
      {"b3", "2024-05-03 11:00", NULL, NULL, "/srv/b", "paths"}},
     {"a1: remove", "b1: remove", "a2: daily snapshot", "b2: daily snapshot", "a3: daily snapshot",
      "b3: daily snapshot"}},

    {"default grouping: the order of the paths does not split a group",
     "UTC",
     "last=1",
     NULL,
     {{"x", "2024-05-01 10:00", NULL, NULL, "/srv/a,/srv/b", "paths"},
      {"y", "2024-05-02 10:00", NULL, NULL, "/srv/b,/srv/a", "paths"}},
     {"x: remove", "y: last snapshot"}},

    {"group by host only: A and B compete (the old default's trap)",
     "UTC",
     "daily=2 group=host",
     NULL,
     {{"a1", "2024-05-01 10:00", NULL, NULL, "/srv/a", "paths"},
      {"b1", "2024-05-01 11:00", NULL, NULL, "/srv/b", "paths"},
      {"a2", "2024-05-02 10:00", NULL, NULL, "/srv/a", "paths"},
      {"b2", "2024-05-02 11:00", NULL, NULL, "/srv/b", "paths"}},
     {"a1: remove", "b1: daily snapshot", "a2: remove", "b2: daily snapshot"}},

    /* A partial --only db snapshot after the day's full one is newer in the same day: in
     * one group it would take the day's bucket and the full snapshot would go. */
    {"default grouping: a partial snapshot between full ones pushes none out",
     "UTC",
     "daily=2",
     NULL,
     {{"full1", "2024-05-01 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"},
      {"part1", "2024-05-01 12:00", NULL, "mastodon", "/home/mastodon/live", "mastodon-partial"},
      {"full2", "2024-05-02 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"},
      {"part2", "2024-05-02 12:00", NULL, "mastodon", "/home/mastodon/live", "mastodon-partial"},
      {"full3", "2024-05-03 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"}},
     {"full1: remove", "part1: daily snapshot", "full2: daily snapshot", "part2: daily snapshot",
      "full3: daily snapshot"}},

    {"grouping without kind: the partial snapshots take the days of the full ones",
     "UTC",
     "daily=2 group=host,paths",
     NULL,
     {{"full1", "2024-05-01 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"},
      {"part1", "2024-05-01 12:00", NULL, "mastodon", "/home/mastodon/live", "mastodon-partial"},
      {"full2", "2024-05-02 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"},
      {"part2", "2024-05-02 12:00", NULL, "mastodon", "/home/mastodon/live", "mastodon-partial"},
      {"full3", "2024-05-03 03:00", NULL, "mastodon", "/home/mastodon/live", "mastodon"}},
     {"full1: remove", "part1: remove", "full2: remove", "part2: daily snapshot",
      "full3: daily snapshot"}},

    {"group by every field: host, paths, tags and kind",
     "UTC",
     "last=1 group=host,paths,tags,kind",
     NULL,
     {{"a", "2024-05-01 10:00", "one", "x", "/p", "paths"},
      {"b", "2024-05-02 10:00", "one", "x", "/p", "paths"},
      {"c", "2024-05-03 10:00", "one", "y", "/p", "paths"},
      {"d", "2024-05-04 10:00", "one", "x", "/q", "paths"},
      {"e", "2024-05-05 10:00", "one", "x", "/p", "unknown"}},
     {"a: remove", "b: last snapshot", "c: last snapshot", "d: last snapshot", "e: last snapshot"}},

    {"group by tags only",
     "UTC",
     "last=1 group=tags",
     NULL,
     {{"a", "2024-05-01 10:00", "one", NULL},
      {"b", "2024-05-02 10:00", "one", NULL},
      {"c", "2024-05-01 11:00", "two", NULL},
      {"d", "2024-05-03 10:00", "two", "x"}},
     {"a: remove", "b: last snapshot", "c: remove", "d: last snapshot"}},

    {"no grouping: one group",
     "UTC",
     "last=1 group=none",
     NULL,
     {{"a", "2024-05-01 10:00", "one", NULL},
      {"b", "2024-05-02 10:00", "one", NULL},
      {"c", "2024-05-01 11:00", "two", NULL},
      {"d", "2024-05-03 10:00", "two", "x"}},
     {"a: remove", "b: remove", "c: remove", "d: last snapshot"}},

    {"equal times: input order decides which is newer",
     "UTC",
     "last=1 group=none",
     NULL,
     {{"first", "2024-05-01 10:00", NULL, NULL}, {"second", "2024-05-01 10:00", NULL, NULL}},
     {"first: last snapshot", "second: remove"}},

    /* 23:30 UTC on 30 March is 00:30 on 31 March in Berlin. */
    {"Berlin: 23:30 UTC belongs to the next day",
     "Europe/Berlin",
     "daily=2",
     NULL,
     {{"old", "2024-03-29 12:00 UTC", NULL, NULL},
      {"eve", "2024-03-30 22:30 UTC", NULL, NULL},
      {"late", "2024-03-30 23:30 UTC", NULL, NULL},
      {"noon", "2024-03-31 10:00 UTC", NULL, NULL}},
     {"old: remove", "eve: daily snapshot", "late: remove", "noon: daily snapshot"}},

    {"UTC: the same snapshots, 23:30 UTC is the same day",
     "UTC",
     "daily=2",
     NULL,
     {{"old", "2024-03-29 12:00 UTC", NULL, NULL},
      {"eve", "2024-03-30 22:30 UTC", NULL, NULL},
      {"late", "2024-03-30 23:30 UTC", NULL, NULL},
      {"noon", "2024-03-31 10:00 UTC", NULL, NULL}},
     {"old: remove", "eve: remove", "late: daily snapshot", "noon: daily snapshot"}},

    /* Clocks go forward at 01:00 UTC on 31 March 2024: 01:45 CET, then 03:15 CEST. */
    {"Berlin spring forward: 30 minutes apart, two local hours apart",
     "Europe/Berlin",
     "hourly=-1 daily=-1",
     NULL,
     {{"before", "2024-03-31 00:45 UTC", NULL, NULL},
      {"after", "2024-03-31 01:15 UTC", NULL, NULL},
      {"later", "2024-03-31 01:50 UTC", NULL, NULL}},
     {"before: hourly snapshot, oldest daily snapshot", "after: remove",
      "later: hourly snapshot, daily snapshot"}},

    /* Clocks go back at 01:00 UTC on 27 October 2024: 02:00-02:59 happens twice. */
    {"Berlin fall back: the repeated hour 02 is one bucket",
     "Europe/Berlin",
     "hourly=-1",
     NULL,
     {{"h01", "2024-10-26 23:30 UTC", NULL, NULL},
      {"cest15", "2024-10-27 00:15 UTC", NULL, NULL},
      {"cest45", "2024-10-27 00:45 UTC", NULL, NULL},
      {"cet15", "2024-10-27 01:15 UTC", NULL, NULL},
      {"cet45", "2024-10-27 01:45 UTC", NULL, NULL}},
     {"h01: hourly snapshot", "cest15: remove", "cest45: remove", "cet15: remove",
      "cet45: hourly snapshot"}},

    {"UTC: the same fall-back snapshots are in two hours",
     "UTC",
     "hourly=-1",
     NULL,
     {{"h01", "2024-10-26 23:30 UTC", NULL, NULL},
      {"cest15", "2024-10-27 00:15 UTC", NULL, NULL},
      {"cest45", "2024-10-27 00:45 UTC", NULL, NULL},
      {"cet15", "2024-10-27 01:15 UTC", NULL, NULL},
      {"cet45", "2024-10-27 01:45 UTC", NULL, NULL}},
     {"h01: hourly snapshot", "cest15: remove", "cest45: hourly snapshot", "cet15: remove",
      "cet45: hourly snapshot"}},

    /* 12:00 CEST on 31 March minus one calendar day is 12:00 CET on 30 March: only 23
     * hours of real time. */
    {"Berlin: keep-within 1d across the spring change is 23 hours",
     "Europe/Berlin",
     "within=1d",
     NULL,
     {{"out", "2024-03-30 10:30 UTC", NULL, NULL},
      {"edge", "2024-03-30 11:00 UTC", NULL, NULL},
      {"in", "2024-03-30 11:30 UTC", NULL, NULL},
      {"latest", "2024-03-31 10:00 UTC", NULL, NULL}},
     {"out: remove", "edge: remove", "in: within 1d", "latest: within 1d"}},

    {"UTC: keep-within 1d is 24 hours",
     "UTC",
     "within=1d",
     NULL,
     {{"out", "2024-03-30 10:30 UTC", NULL, NULL},
      {"edge", "2024-03-30 11:00 UTC", NULL, NULL},
      {"in", "2024-03-30 11:30 UTC", NULL, NULL},
      {"latest", "2024-03-31 10:00 UTC", NULL, NULL}},
     {"out: within 1d", "edge: within 1d", "in: within 1d", "latest: within 1d"}},

    {"New York: 03:00 UTC on New Year's Day is still the old year",
     "America/New_York",
     "yearly=-1",
     NULL,
     {{"dec", "2023-12-31 12:00 UTC", NULL, NULL},
      {"eve", "2024-01-01 03:00 UTC", NULL, NULL},
      {"jan", "2024-01-01 06:00 UTC", NULL, NULL}},
     {"dec: oldest yearly snapshot", "eve: yearly snapshot", "jan: yearly snapshot"}},

    {"recommended Mastodon policy: daily 7, weekly 5, monthly 12",
     "UTC",
     "daily=7 weekly=5 monthly=12",
     NULL,
     {{"0301", "2024-03-01 03:00", NULL, NULL},
      {"0331", "2024-03-31 03:00", NULL, NULL},
      {"0401", "2024-04-01 03:00", NULL, NULL},
      {"0407", "2024-04-07 03:00", NULL, NULL},
      {"0414", "2024-04-14 03:00", NULL, NULL},
      {"0415", "2024-04-15 03:00", NULL, NULL},
      {"0416", "2024-04-16 03:00", NULL, NULL},
      {"0417", "2024-04-17 03:00", NULL, NULL},
      {"0418", "2024-04-18 03:00", NULL, NULL},
      {"0419", "2024-04-19 03:00", NULL, NULL},
      {"0420", "2024-04-20 03:00", NULL, NULL},
      {"0421", "2024-04-21 03:00", NULL, NULL}},
     {"0301: weekly snapshot, oldest monthly snapshot", "0331: weekly snapshot, monthly snapshot",
      "0401: remove", "0407: weekly snapshot", "0414: weekly snapshot", "0415: daily snapshot",
      "0416: daily snapshot", "0417: daily snapshot", "0418: daily snapshot",
      "0419: daily snapshot", "0420: daily snapshot",
      "0421: daily snapshot, weekly snapshot, monthly snapshot"}},
};

static void test_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
}

/* ---- apply: bookkeeping ------------------------------------------------------------ */

static void test_empty_policy_refused(void **state)
{
    (void)state;
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    pf_retention_snapshot s = {"a", 1000, "h", NULL, 0};
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    assert_true(pf_retention_policy_empty(&p));
    assert_int_equal(pf_retention_apply(&s, 1, &p, 2000, &r, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_non_null(strstr(err.msg, "no policy given: would remove everything"));
    assert_null(r.d);
    /* Refused even with no snapshots at all. */
    assert_int_equal(pf_retention_apply(NULL, 0, &p, 2000, &r, &err), -1);
    /* keep-within 0d is no rule either. */
    p.keep_within.days = 0;
    assert_true(pf_retention_policy_empty(&p));
}

static void test_no_snapshots(void **state)
{
    (void)state;
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_daily = 7;
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    assert_int_equal(pf_retention_apply(NULL, 0, &p, 2000, &r, &err), 0);
    assert_int_equal(r.n, 0);
    assert_int_equal(r.n_groups, 0);
    pf_retention_result_free(&r);
    pf_retention_result_free(NULL);
}

static void test_groups_and_ranks(void **state)
{
    (void)state;
    set_tz("UTC");
    const char *tx[] = {"x"};
    pf_retention_snapshot s[] = {
        {"b2", 200, "b", NULL, 0}, {"a1", 100, "a", NULL, 0}, {"ax", 150, "a", tx, 1},
        {"a3", 300, "a", NULL, 0}, {"b1", 100, "b", NULL, 0}, {"a2", 200, "a", NULL, 0},
    };
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_last = 2;
    p.group_by = PF_RETENTION_GROUP_HOST | PF_RETENTION_GROUP_TAGS;
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    assert_int_equal(pf_retention_apply(s, 6, &p, 1000, &r, &err), 0);
    assert_int_equal(r.n_groups, 3);
    /* Groups in (host, tags) order: (a, []), (a, [x]), (b, []). */
    assert_int_equal(r.d[1].group, 0);
    assert_int_equal(r.d[3].group, 0);
    assert_int_equal(r.d[5].group, 0);
    assert_int_equal(r.d[2].group, 1);
    assert_int_equal(r.d[0].group, 2);
    assert_int_equal(r.d[4].group, 2);
    assert_int_equal(r.d[3].rank, 0); /* a3 newest */
    assert_int_equal(r.d[5].rank, 1);
    assert_int_equal(r.d[1].rank, 2);
    assert_int_equal(r.d[2].rank, 0);
    assert_int_equal(r.d[0].rank, 0);
    assert_int_equal(r.d[4].rank, 1);
    assert_false(r.d[1].keep);
    assert_int_equal(r.n_keep, 5);
    assert_int_equal(r.n_remove, 1);
    pf_retention_result_free(&r);
    assert_null(r.d);
    assert_int_equal(r.n, 0);
}

static void test_unlimited_keeps_one_per_bucket(void **state)
{
    (void)state;
    set_tz("UTC");
    /* 100 snapshots, one every 6 hours: daily=-1 keeps exactly one per day (25 days) plus
     * nothing else; the oldest is its day's only kept one only if it is the newest of it. */
    pf_retention_snapshot s[100];
    char ids[100][16];
    for (int i = 0; i < 100; i++) {
        snprintf(ids[i], sizeof ids[i], "s%d", i);
        s[i] = (pf_retention_snapshot){ids[i], 1700006400 + (int64_t)i * 6 * 3600, "h", NULL, 0};
    }
    /* 1700006400 is 2023-11-15 00:00 UTC: four snapshots a day, 00:00 to 18:00. */
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_daily = PF_RETENTION_UNLIMITED;
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    assert_int_equal(pf_retention_apply(s, 100, &p, INT64_MAX, &r, &err), 0);
    /* 25 newest-of-day (18:00) plus the oldest (00:00 on the first day). */
    assert_int_equal(r.n_keep, 26);
    for (int i = 0; i < 100; i++) {
        bool want = i % 4 == 3 || i == 0;
        assert_int_equal(r.d[i].keep, want);
    }
    assert_string_equal(r.d[0].reasons[0], "oldest daily snapshot");
    pf_retention_result_free(&r);
}

/* The example in docs/RETENTION.md: nightly at 03:00 from 1 April 2023 to 21 April 2024
 * with --keep-daily 7 --keep-weekly 5 --keep-monthly 12 keeps 21 snapshots. */
static void test_recommended_year(void **state)
{
    (void)state;
    set_tz("UTC");
    enum { DAYS = 387 };
    static pf_retention_snapshot s[DAYS];
    static char ids[DAYS][12];
    int64_t t0 = when("2023-04-01 03:00");
    for (int i = 0; i < DAYS; i++) {
        int64_t t = t0 + (int64_t)i * 86400;
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(ids[i], sizeof ids[i], "%Y-%m-%d", &tm);
        s[i] = (pf_retention_snapshot){ids[i], t, "mastodon", NULL, 0};
    }
    assert_string_equal(ids[DAYS - 1], "2024-04-21");
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_daily = 7;
    p.keep_weekly = 5;
    p.keep_monthly = 12;
    pf_retention_result r = PF_RETENTION_RESULT_INIT;
    pf_err err = {0};
    assert_int_equal(pf_retention_apply(s, DAYS, &p, INT64_MAX, &r, &err), 0);
    assert_int_equal(r.n_keep, 21);
    assert_int_equal(r.n_remove, DAYS - 21);
    static const char *const kept[] = {
        "2023-05-31", "2023-06-30", "2023-07-31", "2023-08-31", "2023-09-30", "2023-10-31",
        "2023-11-30", "2023-12-31", "2024-01-31", "2024-02-29", "2024-03-24", "2024-03-31",
        "2024-04-07", "2024-04-14", "2024-04-15", "2024-04-16", "2024-04-17", "2024-04-18",
        "2024-04-19", "2024-04-20", "2024-04-21",
    };
    size_t k = 0;
    for (int i = 0; i < DAYS; i++) {
        if (!r.d[i].keep)
            continue;
        assert_true(k < 21);
        assert_string_equal(ids[i], kept[k]);
        k++;
    }
    assert_int_equal(r.d[DAYS - 1].n_reasons, 3);
    pf_retention_result_free(&r);
}

/* ---- parsers and validator ---------------------------------------------------------- */

static void test_parse_duration(void **state)
{
    (void)state;
    pf_retention_duration d;
    pf_err err = {0};
    char buf[64];
    static const struct {
        const char *in;
        int y, m, d, h;
        const char *out;
    } ok[] = {
        {"7d", 0, 0, 7, 0, "7d"},     {"1y2m3d4h", 1, 2, 3, 4, "1y2m3d4h"},
        {"4h3d", 0, 0, 3, 4, "3d4h"}, {" 2d12h ", 0, 0, 2, 12, "2d12h"},
        {"1Y6M", 1, 6, 0, 0, "1y6m"}, {"0d", 0, 0, 0, 0, "0h"},
        {"007d", 0, 0, 7, 0, "7d"},   {"1000000h", 0, 0, 0, 1000000, "1000000h"},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        if (pf_retention_parse_duration(ok[i].in, &d, &err) != 0)
            fail_msg("\"%s\": %s", ok[i].in, err.msg);
        assert_int_equal(d.years, ok[i].y);
        assert_int_equal(d.months, ok[i].m);
        assert_int_equal(d.days, ok[i].d);
        assert_int_equal(d.hours, ok[i].h);
        size_t n = pf_retention_format_duration(&d, buf, sizeof buf);
        assert_string_equal(buf, ok[i].out);
        assert_int_equal(n, strlen(ok[i].out));
    }
    static const struct {
        const char *in;
        const char *msg;
    } bad[] = {
        {"", "empty duration"},
        {"   ", "empty duration"},
        {NULL, "empty duration"},
        {"7", "no unit after the number 7"},
        {"7w", "unknown unit 'w'"},
        {"d", "expected a number"},
        {"-1d", "negative values are not allowed"},
        {"1d2d", "unit 'd' given twice"},
        {"1d 2h", "expected a number"},
        {"1000001d", "number too large"},
        {"99999999999999999999d", "number too large"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        d = (pf_retention_duration){9, 9, 9, 9};
        assert_int_equal(pf_retention_parse_duration(bad[i].in, &d, &err), -1);
        assert_int_equal(err.code, PF_EUSAGE);
        if (!strstr(err.msg, bad[i].msg))
            fail_msg("\"%s\": message \"%s\" lacks \"%s\"", bad[i].in ? bad[i].in : "(null)",
                     err.msg, bad[i].msg);
        assert_int_equal(d.years, 9); /* untouched */
    }
    /* Truncation reports the needed length. */
    d = (pf_retention_duration){1, 2, 3, 4};
    assert_int_equal(pf_retention_format_duration(&d, buf, 4), 8);
    assert_string_equal(buf, "1y2");
}

static void test_parse_count(void **state)
{
    (void)state;
    int n;
    pf_err err = {0};
    assert_int_equal(pf_retention_parse_count("7", &n, &err), 0);
    assert_int_equal(n, 7);
    assert_int_equal(pf_retention_parse_count(" 0 ", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(pf_retention_parse_count("-1", &n, &err), 0);
    assert_int_equal(n, PF_RETENTION_UNLIMITED);
    assert_int_equal(pf_retention_parse_count("Unlimited", &n, &err), 0);
    assert_int_equal(n, PF_RETENTION_UNLIMITED);
    assert_int_equal(pf_retention_parse_count("all", &n, &err), 0);
    assert_int_equal(n, PF_RETENTION_UNLIMITED);
    n = 42;
    const char *bad[] = {"", "-2", "seven", "7d", "1.5", "1000001", "+3", NULL};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(pf_retention_parse_count(bad[i], &n, &err), -1);
        assert_int_equal(err.code, PF_EUSAGE);
        assert_int_equal(n, 42);
    }
}

static void test_parse_group_by(void **state)
{
    (void)state;
    unsigned g = 99;
    pf_err err = {0};
    const unsigned H = PF_RETENTION_GROUP_HOST, T = PF_RETENTION_GROUP_TAGS;
    static const struct {
        const char *in;
        unsigned want;
    } ok[] = {
        {"host", 1},        {"tags", 2},
        {"host,tags", 3},   {"tags, host", 3},
        {"hosts,tag", 3},   {"", 0},
        {"none", 0},        {"host,", 1},
        {"HOST", 1},        {"paths", 4},
        {"kind", 8},        {"host,paths", 5},
        {"path,kinds", 12}, {"host,paths,tags,kind", 15},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        assert_int_equal(pf_retention_parse_group_by(ok[i].in, &g, &err), 0);
        assert_int_equal(g, ok[i].want);
    }
    assert_int_equal(H | T, 3);
    assert_int_equal(PF_RETENTION_GROUP_DEFAULT, 13); /* host, paths, kind */
    g = 99;
    assert_int_equal(pf_retention_parse_group_by("host,colour", &g, &err), -1);
    assert_non_null(strstr(err.msg, "unknown grouping \"colour\""));
    assert_int_equal(g, 99);
}

static void test_validate(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_daily = 7;
    assert_int_equal(pf_retention_policy_validate(&p, &err), 0);

    p.keep_weekly = -2;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "keep-weekly: -2 is not allowed"));
    p.keep_weekly = 0;

    p.keep_yearly = PF_RETENTION_MAX_NUMBER + 1;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "keep-yearly"));
    p.keep_yearly = 0;

    p.keep_within.hours = -3;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "keep-within: negative"));
    p.keep_within.hours = 0;

    const char *tags[] = {"db", ""};
    p.keep_tags = tags;
    p.n_keep_tags = 2;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "keep-tag: empty tag"));
    p.n_keep_tags = 1;
    assert_int_equal(pf_retention_policy_validate(&p, &err), 0);

    p.group_by = 16;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_non_null(strstr(err.msg, "group-by"));
    p.group_by = 0;

    /* Only a tag rule is still a policy. */
    p.keep_daily = 0;
    assert_int_equal(pf_retention_policy_validate(&p, &err), 0);
    assert_false(pf_retention_policy_empty(&p));
    p.n_keep_tags = 0;
    assert_int_equal(pf_retention_policy_validate(&p, &err), -1);
    assert_string_equal(err.msg, "no policy given: would remove everything (give at least one "
                                 "of keep-last, keep-hourly, keep-daily, keep-weekly, "
                                 "keep-monthly, keep-yearly, keep-within, keep-tag)");
    /* Each rule alone makes the policy non-empty. */
    int *fields[] = {&p.keep_last,   &p.keep_hourly,  &p.keep_daily,
                     &p.keep_weekly, &p.keep_monthly, &p.keep_yearly};
    for (size_t i = 0; i < 6; i++) {
        *fields[i] = PF_RETENTION_UNLIMITED;
        assert_int_equal(pf_retention_policy_validate(&p, &err), 0);
        *fields[i] = 0;
    }
    p.keep_within.hours = 1;
    assert_int_equal(pf_retention_policy_validate(&p, &err), 0);
}

static void test_describe(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_retention_policy p = PF_RETENTION_POLICY_INIT;
    p.keep_daily = 7;
    p.keep_weekly = 5;
    p.keep_monthly = 12;
    pf_retention_policy_describe(&p, &b);
    assert_string_equal((char *)b.data,
                        "keep 7 daily, 5 weekly, 12 monthly snapshots, grouped by host, paths "
                        "and kind");
    pf_buf_reset(&b);

    const char *tags[] = {"db", "manual"};
    pf_retention_policy q = PF_RETENTION_POLICY_INIT;
    q.keep_last = PF_RETENTION_UNLIMITED;
    q.keep_tags = tags;
    q.n_keep_tags = 2;
    q.keep_within.days = 2;
    q.group_by = PF_RETENTION_GROUP_HOST;
    pf_retention_policy_describe(&q, &b);
    assert_string_equal((char *)b.data, "keep all last snapshots and all snapshots tagged db or "
                                        "manual and all snapshots within 2d of the newest, "
                                        "grouped by host");
    pf_buf_reset(&b);
    q.group_by = PF_RETENTION_GROUP_HOST | PF_RETENTION_GROUP_TAGS;
    pf_retention_policy_describe(&q, &b);
    assert_non_null(strstr((char *)b.data, ", grouped by host and tags"));
    pf_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_empty_policy_refused),
        cmocka_unit_test(test_no_snapshots),
        cmocka_unit_test(test_groups_and_ranks),
        cmocka_unit_test(test_unlimited_keeps_one_per_bucket),
        cmocka_unit_test(test_recommended_year),
        cmocka_unit_test(test_parse_duration),
        cmocka_unit_test(test_parse_count),
        cmocka_unit_test(test_parse_group_by),
        cmocka_unit_test(test_validate),
        cmocka_unit_test(test_describe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
