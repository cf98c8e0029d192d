/* pf_status_collect (src/repo/status.c) on an in-memory repository: per host the newest
 * complete whole-server snapshot (a newer partial or incomplete one does not replace it),
 * the last check and drill, the bytes added in the last 7 days. */
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
#include "repo/snapshot.h"
#include "repo/status.h"
#include "store/store.h"
#include "tree_build.h"

#define DAY 86400LL
#define NOW (1800000000LL)

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

static void snap(pf_repo *r, const uint8_t tree[PF_ID_LEN], const char *host, int64_t t,
                 pf_snapshot_kind kind, bool complete, double stored, char id[65])
{
    pf_snapshot s;
    pf_snapshot_init(&s);
    s.time_ns = t * 1000000000LL;
    s.host = strdup(host);
    s.kind = kind;
    s.complete = complete;
    memcpy(s.tree, tree, PF_ID_LEN);
    s.stats = cJSON_CreateObject();
    cJSON_AddNumberToObject(s.stats, "bytes_stored", stored);
    cJSON_AddNumberToObject(s.stats, "bytes", 1000);
    s.components = cJSON_CreateObject();
    cJSON *pg = cJSON_AddObjectToObject(s.components, "postgres");
    cJSON_AddStringToObject(pg, "status", "ok");
    pf_err err = {0};
    if (pf_repo_save_snapshot(r, &s, &err))
        fail_msg("%s", err.msg);
    memcpy(id, s.id, 65);
    pf_snapshot_free(&s);
}

static cJSON *host(cJSON *st, const char *name)
{
    cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItem(st, "hosts"))
    {
        if (!strcmp(cJSON_GetObjectItem(h, "host")->valuestring, name))
            return h;
    }
    fail_msg("no host %s", name);
    return NULL;
}

static void test_collect(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "status test", NULL, &err);
    assert_non_null(r);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    uint8_t tree[PF_ID_LEN];
    tb_save_tree(r, NULL, 0, tree);
    char full[65], partial[65], old[65], other[65];
    snap(r, tree, "a", NOW - 20 * DAY, PF_SNAP_MASTODON, true, 5000, old);
    snap(r, tree, "a", NOW - 2 * DAY, PF_SNAP_MASTODON, true, 300, full);
    snap(r, tree, "a", NOW - DAY, PF_SNAP_MASTODON_PARTIAL, true, 20, partial);
    snap(r, tree, "a", NOW - DAY / 2, PF_SNAP_MASTODON, false, 1, other); /* incomplete */
    snap(r, tree, "b", NOW - 3 * DAY, PF_SNAP_PATHS, true, 7, other);
    pf_run_record check = {.command = "check",
                           .host = "b",
                           .time_ns = (NOW - 3600) * 1000000000LL,
                           .exit_code = 4,
                           .result = "1 problem",
                           .seconds = 9};
    pf_run_record drill = {.command = "drill",
                           .host = "a",
                           .time_ns = (NOW - 7200) * 1000000000LL,
                           .exit_code = 0,
                           .result = "ok",
                           .seconds = 42.5,
                           .snapshot = full};
    assert_int_equal(pf_run_save(r, &check, &err), 0);
    assert_int_equal(pf_run_save(r, &drill, &err), 0);

    cJSON *st = pf_status_collect(r, NOW, &err);
    assert_non_null(st);
    cJSON *a = host(st, "a");
    cJSON *ls = cJSON_GetObjectItem(a, "latest_server");
    assert_string_equal(cJSON_GetObjectItem(ls, "id")->valuestring, full);
    assert_int_equal((int64_t)cJSON_GetObjectItem(ls, "age_seconds")->valuedouble, 2 * DAY);
    assert_string_equal(cJSON_GetObjectItem(ls, "time")->valuestring, "2027-01-13T08:00:00Z");
    assert_non_null(cJSON_GetObjectItem(cJSON_GetObjectItem(ls, "components"), "postgres"));
    /* The newest of any kind is the incomplete one. */
    cJSON *nw = cJSON_GetObjectItem(a, "newest");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(nw, "complete")));
    cJSON *d = cJSON_GetObjectItem(a, "last_drill");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(d, "ok")));
    assert_true(cJSON_GetObjectItem(d, "seconds")->valuedouble == 42.5);
    assert_string_equal(cJSON_GetObjectItem(d, "snapshot")->valuestring, full);
    /* The check ran on b but counts for every host. */
    cJSON *c = cJSON_GetObjectItem(a, "last_check");
    assert_int_equal(cJSON_GetObjectItem(c, "exit_code")->valueint, 4);
    cJSON *b = host(st, "b");
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "latest_server")));
    assert_true(cJSON_IsNull(cJSON_GetObjectItem(b, "last_drill")));
    cJSON *repo = cJSON_GetObjectItem(st, "repository");
    assert_int_equal(cJSON_GetObjectItem(repo, "snapshots")->valueint, 5);
    assert_int_equal(cJSON_GetObjectItem(repo, "added_7d_bytes")->valueint, 300 + 20 + 1 + 7);
    double bytes = cJSON_GetObjectItem(repo, "bytes")->valuedouble;
    assert_true(bytes > 0);
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(st, "locks")), 0);
    cJSON_Delete(st);

    /* The WAL archive is part of the repository's size. */
    static char segment[5000];
    assert_int_equal(pf_store_put(r->store, "wal/00000001/000000010000000000000001", segment,
                                  sizeof segment, &err),
                     0);
    st = pf_status_collect(r, NOW, &err);
    assert_non_null(st);
    repo = cJSON_GetObjectItem(st, "repository");
    assert_true(cJSON_GetObjectItem(repo, "bytes")->valuedouble == bytes + sizeof segment);
    cJSON_Delete(st);
    pf_repo_free(r);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_collect)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
