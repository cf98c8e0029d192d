#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cmd/wal.h"
#include "repo/status.h"
#include "repo/wal.h"

const pf_cmd_syntax pf_syntax_status = {
    .usage =
        "usage: permafrost status [--json]\n\n"
        "Is this server protected? Per host: the newest complete whole-server snapshot, its\n"
        "age and its components (and the newest snapshot of any kind when that is newer), the\n"
        "last check and the last drill with their results and durations; for the repository:\n"
        "its size, its growth over 7 days, and its locks (stale ones marked). Reads only the\n"
        "repository, so it answers from any machine that has the passphrase.\n",
    .max_args = 0};

static const char *str(cJSON *o, const char *k)
{
    cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : "";
}

static double num(cJSON *o, const char *k)
{
    cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* "3 h ago", "2 d ago": how stale a thing is, at a glance. */
static void age(double s, char *out, size_t n)
{
    if (s < 120)
        snprintf(out, n, "%.0f s ago", s);
    else if (s < 2 * 3600)
        snprintf(out, n, "%.0f min ago", s / 60);
    else if (s < 2 * 86400)
        snprintf(out, n, "%.0f h ago", s / 3600);
    else
        snprintf(out, n, "%.0f d ago", s / 86400);
}

/* An RFC 3339 UTC time of the status document in this machine's zone, offset shown. */
static void local_time(const char *rfc3339, char *out, size_t n)
{
    struct tm tm = {0};
    if (!strptime(rfc3339, "%Y-%m-%dT%H:%M:%SZ", &tm)) {
        snprintf(out, n, "%s", rfc3339);
        return;
    }
    time_t t = timegm(&tm);
    localtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S %z", &tm);
}

static void print_snapshot(const char *label, cJSON *s)
{
    char when[64], ago[32], size[32];
    local_time(str(s, "time"), when, sizeof when);
    age(num(s, "age_seconds"), ago, sizeof ago);
    pf_human_bytes((uint64_t)num(s, "bytes"), size, sizeof size);
    printf("  %-24s %.8s  %s  (%s)  %s, %s%s\n", label, str(s, "id"), when, ago, str(s, "kind"),
           size,
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(s, "complete")) ? "" : ", INCOMPLETE");
    cJSON *comps = cJSON_GetObjectItemCaseSensitive(s, "components"), *c;
    if (!comps)
        return;
    printf("  %-24s", "");
    const char *sep = "";
    cJSON_ArrayForEach(c, comps)
    {
        printf("%s%s %s", sep, c->string, str(c, "status"));
        double dump = num(c, "dump_bytes");
        if (dump > 0) {
            pf_human_bytes((uint64_t)dump, size, sizeof size);
            printf(" (%s dump)", size);
        }
        sep = " · ";
    }
    printf("\n");
}

static void print_run(const char *label, cJSON *r, const char *never)
{
    if (!cJSON_IsObject(r)) {
        printf("  %-24s never: %s\n", label, never);
        return;
    }
    char when[64], ago[32];
    local_time(str(r, "time"), when, sizeof when);
    age(num(r, "age_seconds"), ago, sizeof ago);
    printf("  %-24s %s  (%s)  %s, took %.0f s\n", label, when, ago,
           cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")) ? "ok" : "FAILED",
           num(r, "seconds"));
    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(r, "ok")))
        printf("  %-24s %s\n", "", str(r, "result"));
}

int cmd_status(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    cJSON *st = pf_status_collect(c->repo, (int64_t)time(NULL), &err);
    if (!st)
        return pf_cli_fail(&err);
    /* The WAL archive's newest point: how much a restore would lose now (the RPO). */
    char newest[PF_WAL_NAME_MAX + 1];
    int64_t pushed_ns;
    if (pf_wal_newest(c->repo, newest, &pushed_ns, &err) == 0 && newest[0]) {
        cJSON *w = cJSON_AddObjectToObject(st, "wal");
        cJSON_AddStringToObject(w, "newest_segment", newest);
        /* A streamed partial: the point is that many bytes into its segment. */
        bool part = pf_wal_name_kind(newest) == PF_WAL_STREAMED;
        cJSON_AddBoolToObject(w, "partial", part);
        if (part)
            cJSON_AddNumberToObject(w, "partial_bytes", (double)strtoul(newest + 25, NULL, 16));
        pf_json_add_time(w, "time", pushed_ns); /* docs/JSON.md, "status" */
        cJSON_AddNumberToObject(w, "age_seconds", (double)(time(NULL) - pushed_ns / 1000000000));
    }
    pf_err_clear(&err);
    if (pf_g.json) {
        pf_out_json(st);
        return PF_EXIT_OK;
    }
    cJSON *repo = cJSON_GetObjectItemCaseSensitive(st, "repository");
    char size[32], added[32];
    pf_human_bytes((uint64_t)num(repo, "bytes"), size, sizeof size);
    pf_human_bytes((uint64_t)num(repo, "added_7d_bytes"), added, sizeof added);
    printf("repository %s: %s in %.0f packs, %.0f snapshots, %s added in the last 7 days\n",
           pf_g.repo_url ? pf_g.repo_url : "", size, num(repo, "packs"), num(repo, "snapshots"),
           added);
    cJSON *h;
    cJSON_ArrayForEach(h, cJSON_GetObjectItemCaseSensitive(st, "hosts"))
    {
        printf("host %s\n", str(h, "host"));
        cJSON *server = cJSON_GetObjectItemCaseSensitive(h, "latest_server");
        cJSON *newest = cJSON_GetObjectItemCaseSensitive(h, "newest");
        if (cJSON_IsObject(server))
            print_snapshot("last whole-server backup", server);
        else
            printf("  %-24s none: run `permafrost backup --live`\n", "last whole-server backup");
        if (cJSON_IsObject(newest) &&
            (!cJSON_IsObject(server) || strcmp(str(newest, "id"), str(server, "id"))))
            print_snapshot("newest snapshot", newest);
        print_run("last check", cJSON_GetObjectItemCaseSensitive(h, "last_check"),
                  "run `permafrost check --read-data-subset=1/4`");
        print_run("last drill", cJSON_GetObjectItemCaseSensitive(h, "last_drill"),
                  "run `permafrost drill`");
    }
    if (cJSON_GetObjectItemCaseSensitive(st, "wal"))
        pf_wal_print_newest(c->repo);
    cJSON *locks = cJSON_GetObjectItemCaseSensitive(st, "locks"), *l;
    if (cJSON_GetArraySize(locks) == 0)
        printf("locks: none\n");
    cJSON_ArrayForEach(l, locks)
    {
        printf("lock: %s %s by %s (pid %.0f on %s) since %s%s%s\n",
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "exclusive")) ? "exclusive"
                                                                              : "shared",
               str(l, "command"), str(l, "user"), num(l, "pid"), str(l, "host"), str(l, "created"),
               cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(l, "stale")) ? ", STALE: " : "",
               str(l, "stale_why"));
    }
    cJSON_Delete(st);
    return PF_EXIT_OK;
}
