#include "repo/status.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repo/lock.h"
#include "repo/runs.h"
#include "repo/snapshot.h"
#include "store/store.h"

void pf_time_rfc3339(int64_t time_ns, char *out, size_t n)
{
    time_t t = (time_t)(time_ns / 1000000000);
    if (time_ns < 0 && time_ns % 1000000000)
        t--;
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void add_time(cJSON *o, const char *field, int64_t time_ns, int64_t now)
{
    char t[40];
    pf_time_rfc3339(time_ns, t, sizeof t);
    cJSON_AddStringToObject(o, field, t);
    cJSON_AddNumberToObject(o, "age_seconds", (double)(now - time_ns / 1000000000));
}

static cJSON *snapshot_summary(const pf_snapshot *s, int64_t now)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "id", s->id);
    add_time(o, "time", s->time_ns, now);
    cJSON_AddStringToObject(o, "kind", pf_snapshot_kind_name(s->kind));
    cJSON_AddBoolToObject(o, "complete", s->complete);
    if (s->components)
        cJSON_AddItemToObject(o, "components", cJSON_Duplicate(s->components, 1));
    cJSON *bytes = s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "bytes") : NULL;
    if (cJSON_IsNumber(bytes))
        cJSON_AddNumberToObject(o, "bytes", bytes->valuedouble);
    return o;
}

static cJSON *run_summary(const pf_run_record *rec, int64_t now)
{
    if (!rec)
        return cJSON_CreateNull();
    cJSON *o = cJSON_CreateObject();
    add_time(o, "time", rec->time_ns, now);
    cJSON_AddNumberToObject(o, "exit_code", rec->exit_code);
    cJSON_AddBoolToObject(o, "ok", rec->exit_code == 0);
    cJSON_AddStringToObject(o, "result", rec->result ? rec->result : "");
    cJSON_AddNumberToObject(o, "seconds", rec->seconds);
    if (rec->snapshot)
        cJSON_AddStringToObject(o, "snapshot", rec->snapshot);
    return o;
}

typedef struct size_ctx {
    uint64_t bytes, count;
} size_ctx;

static int add_size(const char *key, uint64_t size, void *arg, pf_err *err)
{
    (void)key;
    (void)err;
    size_ctx *c = arg;
    c->bytes += size;
    c->count++;
    return 0;
}

static void add_lock(const pf_lock_info *li, void *arg)
{
    cJSON *a = arg, *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "host", li->host);
    cJSON_AddStringToObject(o, "user", li->user);
    cJSON_AddStringToObject(o, "command", li->command);
    cJSON_AddNumberToObject(o, "pid", (double)li->pid);
    cJSON_AddBoolToObject(o, "exclusive", li->exclusive);
    char t[40];
    pf_time_rfc3339(li->created * 1000000000, t, sizeof t);
    cJSON_AddStringToObject(o, "created", t);
    cJSON_AddBoolToObject(o, "stale", li->stale);
    if (li->stale)
        cJSON_AddStringToObject(o, "stale_why", li->stale_why);
    cJSON_AddItemToArray(a, o);
}

cJSON *pf_status_collect(pf_repo *r, int64_t now, pf_err *err)
{
    pf_snapshot *snaps = NULL;
    size_t nsnaps = 0;
    pf_run_record *runs = NULL;
    size_t nruns = 0;
    if (pf_repo_load_all_snapshots(r, &snaps, &nsnaps, err) < 0)
        return NULL;
    if (pf_runs_load(r, &runs, &nruns, err) < 0) {
        pf_snapshots_free(snaps, nsnaps);
        return NULL;
    }
    cJSON *out = cJSON_CreateObject(), *hosts = cJSON_CreateArray();
    cJSON_AddNumberToObject(out, "version", 1);
    char t[40];
    pf_time_rfc3339(now * 1000000000, t, sizeof t);
    cJSON_AddStringToObject(out, "time", t);

    /* Per host: the index of its newest snapshot and of its newest complete whole-server
     * snapshot (-1: none). Hosts known only from run records (a drill run elsewhere) count. */
    size_t nhosts = 0;
    struct host_best {
        const char *host;
        long newest, server;
    } *best = calloc(nsnaps + nruns + 1, sizeof *best);
    if (!best)
        abort();
    uint64_t added = 0;
    for (size_t i = 0; i < nsnaps + nruns; i++) {
        const char *host =
            i < nsnaps ? (snaps[i].host ? snaps[i].host : "") : runs[i - nsnaps].host;
        size_t k = 0;
        while (k < nhosts && strcmp(best[k].host, host))
            k++;
        if (k == nhosts)
            best[nhosts++] = (struct host_best){host, -1, -1};
        if (i >= nsnaps)
            continue;
        const pf_snapshot *s = &snaps[i];
        if (best[k].newest < 0 || s->time_ns > snaps[best[k].newest].time_ns)
            best[k].newest = (long)i;
        if (s->kind == PF_SNAP_MASTODON && s->complete &&
            (best[k].server < 0 || s->time_ns > snaps[best[k].server].time_ns))
            best[k].server = (long)i;
        cJSON *stored =
            s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "bytes_stored") : NULL;
        if (cJSON_IsNumber(stored) && stored->valuedouble > 0 &&
            s->time_ns / 1000000000 >= now - PF_STATUS_GROWTH_WINDOW)
            added += (uint64_t)stored->valuedouble;
    }
    for (size_t k = 0; k < nhosts; k++) {
        cJSON *h = cJSON_CreateObject();
        cJSON_AddStringToObject(h, "host", best[k].host);
        cJSON_AddItemToObject(h, "latest_server",
                              best[k].server < 0 ? cJSON_CreateNull()
                                                 : snapshot_summary(&snaps[best[k].server], now));
        cJSON_AddItemToObject(h, "newest",
                              best[k].newest < 0 ? cJSON_CreateNull()
                                                 : snapshot_summary(&snaps[best[k].newest], now));
        /* A check reads the whole repository: the newest one from any host counts. */
        cJSON_AddItemToObject(h, "last_check",
                              run_summary(pf_runs_newest(runs, nruns, NULL, "check"), now));
        cJSON_AddItemToObject(h, "last_drill",
                              run_summary(pf_runs_newest(runs, nruns, best[k].host, "drill"), now));
        cJSON_AddItemToArray(hosts, h);
    }
    free(best);
    cJSON_AddItemToObject(out, "hosts", hosts);

    cJSON *repo = cJSON_CreateObject();
    static const char *const prefixes[] = {"data/", "index/", "snapshots/",
                                           "keys/", "runs/",  "wal/"};
    size_ctx total = {0}, packs = {0};
    int rc = 0;
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0] && rc == 0; i++) {
        size_ctx c = {0};
        rc = pf_store_list(r->store, prefixes[i], add_size, &c, err);
        total.bytes += c.bytes;
        total.count += c.count;
        if (i == 0)
            packs = c;
    }
    cJSON *locks = cJSON_CreateArray();
    if (rc == 0)
        rc = pf_lock_list(r, add_lock, locks, err);
    if (rc) {
        cJSON_Delete(out);
        cJSON_Delete(repo);
        cJSON_Delete(locks);
        pf_snapshots_free(snaps, nsnaps);
        pf_runs_free(runs, nruns);
        return NULL;
    }
    cJSON_AddNumberToObject(repo, "bytes", (double)total.bytes);
    cJSON_AddNumberToObject(repo, "packs", (double)packs.count);
    cJSON_AddNumberToObject(repo, "snapshots", (double)nsnaps);
    cJSON_AddNumberToObject(repo, "added_7d_bytes", (double)added);
    cJSON_AddItemToObject(out, "repository", repo);
    cJSON_AddItemToObject(out, "locks", locks);
    pf_snapshots_free(snaps, nsnaps);
    pf_runs_free(runs, nruns);
    return out;
}
