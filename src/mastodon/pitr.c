/* Which snapshots a point-in-time restore uses: see mastodon.h. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "component/layout.h"
#include "component/pgphys.h"
#include "mastodon/mastodon.h"
#include "repo/status.h"

bool pf_mastodon_has_physical(const pf_snapshot *s)
{
    return s->components && cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR);
}

bool pf_mastodon_has_logical(const pf_snapshot *s)
{
    return s->components && cJSON_GetObjectItemCaseSensitive(s->components, PF_LAYOUT_POSTGRES);
}

static void local_time(int64_t ns, char *out, size_t n)
{
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S", &tm);
}

/* An explicit snapshot: both parts from it, and its base backup must end before the target. */
static int pick_given(pf_repo *r, const pf_mastodon_restore_opts *o, const pf_snapshot_want *want,
                      pf_snapshot *rest, pf_snapshot *db, pf_err *err)
{
    if (pf_snapshot_resolve(r, o->snapshot, want, rest, err))
        return -1;
    if (!pf_mastodon_has_physical(rest))
        return pf_err_set(err, PF_EUSAGE,
                          "--to: snapshot %.8s holds only a logical dump (postgres = logical): a "
                          "point-in-time restore needs a base backup (postgres = physical or both)",
                          rest->id);
    if (pf_mastodon_has_physical(rest) && pf_pgphys_end_ns(rest) > o->to_ns)
        return pf_err_set(err, PF_EUSAGE,
                          "--to: the base backup of snapshot %.8s ended after the target time: "
                          "recovery cannot stop before it; pick an older snapshot (or 'latest')",
                          rest->id);
    return pf_repo_load_snapshot(r, rest->id, db, err);
}

int pf_mastodon_pitr_pick(pf_repo *r, const pf_mastodon_restore_opts *o,
                          const pf_snapshot_want *want, pf_snapshot *rest, pf_snapshot *db,
                          pf_err *err)
{
    pf_snapshot_init(rest);
    pf_snapshot_init(db);
    if (strcmp(o->snapshot, "latest"))
        return pick_given(r, o, want, rest, db, err);
    pf_snapshot *all = NULL;
    size_t n = 0;
    if (pf_repo_load_all_snapshots(r, &all, &n, err))
        return -1;
    ssize_t best_db = -1, best_rest = -1;
    int64_t oldest_end = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        const pf_snapshot *s = &all[i];
        if (s->kind != PF_SNAP_MASTODON || !s->complete)
            continue;
        if (s->time_ns <= o->to_ns && (best_rest < 0 || s->time_ns > all[best_rest].time_ns))
            best_rest = (ssize_t)i;
        if (!pf_mastodon_has_physical(s))
            continue;
        int64_t end = pf_pgphys_end_ns(s);
        if (end < oldest_end)
            oldest_end = end;
        if (end <= o->to_ns && (best_db < 0 || end > pf_pgphys_end_ns(&all[best_db])))
            best_db = (ssize_t)i;
    }
    int rc = 0;
    if (oldest_end == INT64_MAX) {
        rc = pf_err_set(err, PF_EUSAGE,
                        "--to: no whole-server snapshot in the repository holds a base backup "
                        "(they hold logical dumps only): a point-in-time restore needs postgres "
                        "= physical or both, with archive_command = 'permafrost wal-push %%p'");
    } else if (best_db < 0) {
        char t[32];
        local_time(oldest_end, t, sizeof t);
        rc = pf_err_set(err, PF_ENOTFOUND,
                        "--to: no base backup ended before the target time; the oldest ended at "
                        "%s",
                        t);
    } else {
        *db = all[best_db];
        pf_snapshot_init(&all[best_db]);
        if (best_rest < 0 || best_rest == best_db) {
            rc = pf_repo_load_snapshot(r, db->id, rest, err);
        } else {
            *rest = all[best_rest];
            pf_snapshot_init(&all[best_rest]);
        }
    }
    pf_snapshots_free(all, n);
    return rc;
}

void pf_mastodon_pitr_dirs(const pf_snapshot *s, char *data, size_t nd, char *conf, size_t nc)
{
    cJSON *c =
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL;
    cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, "server_version_num") : NULL;
    int major = cJSON_IsNumber(v) ? (int)v->valuedouble / 10000 : 15;
    snprintf(data, nd, "/var/lib/postgresql/%d/main", major);
    snprintf(conf, nc, "/etc/postgresql/%d/main", major);
}

int pf_mastodon_restore_pick(pf_repo *r, const pf_mastodon_restore_opts *o,
                             const pf_snapshot_want *want, pf_snapshot *rest, pf_snapshot *db,
                             bool *pitr, pf_err *err)
{
    *pitr = o->pitr == PF_PITR_ON;
    if (*pitr)
        return pf_mastodon_pitr_pick(r, o, want, rest, db, err);
    pf_snapshot_init(db);
    if (pf_snapshot_resolve(r, o->snapshot, want, rest, err))
        return -1;
    /* A base backup is what the snapshot holds for the database: recover it to the end of
     * the archive, unless the logical dump was asked for (--only db) or a drill says not. */
    if (o->pitr == PF_PITR_AUTO && pf_mastodon_has_physical(rest) &&
        (!o->only || (o->only & pf_component_bit(&pf_pgphys_component)))) {
        *pitr = true;
        return pf_repo_load_snapshot(r, rest->id, db, err);
    }
    return 0;
}

unsigned pf_mastodon_pitr_only(unsigned only, const pf_mastodon_restore_opts *o,
                               const pf_snapshot *s, bool pitr)
{
    const unsigned pg = pf_component_bit(&pf_postgres_component),
                   phys = pf_component_bit(&pf_pgphys_component);
    if (pitr)
        return !o->only || (o->only & (pg | phys)) ? (only & ~pg) | phys : only;
    only &= ~phys;
    if (!o->only && !pf_mastodon_has_logical(s) && pf_mastodon_has_physical(s))
        only &= ~pg; /* a base backup alone, not recovered (a drill recovers it itself) */
    return only;
}

int64_t pf_mastodon_pitr_reached(const pf_mastodon_restored *m)
{
    int64_t at = m->reached_ns ? m->reached_ns : m->db_end_ns;
    return at == INT64_MAX ? 0 : at;
}

static void add_time(cJSON *o, const char *key, int64_t ns)
{
    char t[40];
    pf_time_rfc3339(ns, t, sizeof t);
    cJSON_AddStringToObject(o, key, t);
}

cJSON *pf_mastodon_pitr_json(const pf_mastodon_restored *m, int64_t to_ns)
{
    cJSON *j = cJSON_CreateObject();
    if (to_ns && to_ns != INT64_MAX)
        add_time(j, "target", to_ns);
    else
        cJSON_AddStringToObject(j, "target", "latest");
    int64_t at = pf_mastodon_pitr_reached(m);
    if (at)
        add_time(j, "reached", at);
    else
        cJSON_AddNullToObject(j, "reached");
    /* What says so: the recovery's stop line, or none when no transaction followed the
     * base backup (then the reached time is the base backup's end). */
    cJSON_AddStringToObject(j, "reached_by", m->reached_ns ? "recovery" : "base_backup_end");
    if (*m->reached)
        cJSON_AddStringToObject(j, "recovery_line", m->reached);
    cJSON *b = cJSON_AddObjectToObject(j, "base_backup");
    cJSON_AddStringToObject(b, "snapshot", m->db_id);
    if (m->db_end_ns && m->db_end_ns != INT64_MAX)
        add_time(b, "ended", m->db_end_ns);
    cJSON_AddStringToObject(j, "data_dir", m->data_dir);
    cJSON *r = cJSON_AddObjectToObject(j, "rest");
    cJSON_AddStringToObject(r, "snapshot", m->id);
    add_time(r, "time", m->rest_ns);
    /* Positive: secrets, Redis and media are that much older than the database. */
    if (at)
        cJSON_AddNumberToObject(r, "older_than_database_seconds",
                                (double)((at - m->rest_ns) / 1000000) / 1000);
    else
        cJSON_AddNullToObject(r, "older_than_database_seconds");
    cJSON_AddNumberToObject(j, "wal_gaps", m->gaps);
    return j;
}
