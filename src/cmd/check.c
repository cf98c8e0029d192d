#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "mastodon/archeck.h"
#include "mastodon/mediacheck.h"
#include "repo/check.h"
#include "repo/runs.h"

const pf_cmd_syntax pf_syntax_check = {
    .usage = "usage: permafrost check [--read-data | --read-data-subset=N%|K/M]\n\n"
             "Verifies the repository: config, keys, index files against pack headers, and that\n"
             "every snapshot's trees and blobs are there. --read-data also reads every pack and\n"
             "authenticates every blob; --read-data-subset reads N% of the packs (chosen at\n"
             "random each run) or slice K of M (run K=1..M over M days to read everything).\n"
             "Exit code 0: healthy; 4: damage found (each problem is named above).\n",
    .longopts = (const struct option[]){{"read-data", no_argument, 0, 'd'},
                                        {"read-data-subset", required_argument, 0, 's'},
                                        {0, 0, 0, 0}},
    .max_args = 0};

typedef struct report_ctx {
    cJSON *arr;      /* --json: the problems */
    char first[300]; /* the first error, for the run record */
} report_ctx;

static void report(int is_error, const char *msg, void *ctx)
{
    report_ctx *rc = ctx;
    cJSON *arr = rc->arr;
    if (is_error && !rc->first[0])
        snprintf(rc->first, sizeof rc->first, "%s", msg);
    if (arr) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "severity", is_error ? "error" : "warning");
        cJSON_AddStringToObject(o, "message", msg);
        cJSON_AddItemToArray(arr, o);
        return;
    }
    pf_progress_done();
    if (is_error || pf_g.verbosity >= 0)
        fprintf(stderr, "%s: %s\n", is_error ? "error" : "warning", msg);
}

static int parse_subset(const char *v, pf_check_opts *o)
{
    char *end;
    o->read_data = 1;
    if (strchr(v, '/')) {
        unsigned long k = strtoul(v, &end, 10), m;
        if (*end != '/')
            return -1;
        m = strtoul(end + 1, &end, 10);
        if (*end || k < 1 || m < 1 || k > m || m > 100000)
            return -1;
        o->slice_k = (uint32_t)k;
        o->slice_m = (uint32_t)m;
        return 0;
    }
    double p = strtod(v, &end);
    if (strcmp(end, "%") || !(p > 0 && p <= 100))
        return -1;
    o->percent = p;
    return 0;
}

/* Whether the newest Mastodon snapshot's encryption keys decrypt its database, as its
 * backup found (mastodon/archeck.h), and how many others' do not. */
static void report_keys(pf_repo *r)
{
    pf_snapshot *all = NULL;
    size_t n = 0;
    pf_err err = {0};
    if (pf_repo_load_all_snapshots(r, &all, &n, &err))
        return;
    bool shown = false;
    size_t bad = 0;
    for (size_t i = n; i-- > 0;) {
        bool problem;
        char line[512];
        if (!all[i].manifest || !pf_ar_check_report(all[i].manifest, &problem, line, sizeof line))
            continue;
        if (!shown)
            printf("snapshot %.8s: %s\n", all[i].id, line);
        else
            bad += problem;
        shown = true;
    }
    if (bad)
        printf("%zu older snapshot%s: encryption keys missing or not decrypting (permafrost "
               "snapshots shows keys=)\n",
               bad, bad == 1 ? "" : "s");
    pf_snapshots_free(all, n);
}

/* What status shows as "last check". A repository that refuses the write (an append-only
 * server does not, a full disk may) loses only the record: a warning, the check stands. */
static void save_run(pf_repo *r, const pf_check_opts *o, const pf_check_result *res,
                     const char *first, double seconds)
{
    char host[256] = "", result[400];
    gethostname(host, sizeof host - 1);
    if (res->errors)
        snprintf(result, sizeof result, "%llu problem%s: %s", (unsigned long long)res->errors,
                 res->errors == 1 ? "" : "s", first);
    else
        snprintf(result, sizeof result, "ok");
    pf_run_record rec = {.command = "check",
                         .host = host,
                         .time_ns = (int64_t)(pf_wall_time() * 1e9),
                         .seconds = seconds,
                         .exit_code = res->errors ? PF_EXIT_DAMAGED : PF_EXIT_OK,
                         .result = result};
    rec.detail = cJSON_CreateObject();
    cJSON_AddBoolToObject(rec.detail, "read_data", o->read_data);
    cJSON_AddNumberToObject(rec.detail, "packs", (double)res->packs);
    cJSON_AddNumberToObject(rec.detail, "packs_read", (double)res->packs_read);
    cJSON_AddNumberToObject(rec.detail, "snapshots", (double)res->snapshots);
    pf_err e = {0};
    if (pf_run_save(r, &rec, &e))
        pf_warn("check: the result was not recorded in the repository: %s", e.msg);
    cJSON_Delete(rec.detail);
}

int cmd_check(pf_cmd_ctx *c)
{
    pf_check_opts o = {0};
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].c == 'd') {
            o.read_data = 1;
        } else if (parse_subset(c->opts[i].arg, &o)) {
            fprintf(stderr,
                    "permafrost: --read-data-subset wants N%% (0 < N <= 100) or K/M "
                    "(1 <= K <= M), got \"%s\"\n",
                    c->opts[i].arg);
            return PF_EXIT_USAGE;
        }
    }
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    cJSON *problems = pf_g.json ? cJSON_CreateArray() : NULL;
    report_ctx rctx = {.arr = problems};
    pf_check_result res;
    o.name_orphans = pf_g.verbosity > 0;
    double started = pf_now();
    if (pf_check(c->repo, &o, report, &rctx, &res, &err)) {
        cJSON_Delete(problems);
        return pf_cli_fail(&err);
    }
    save_run(c->repo, &o, &res, rctx.first, pf_now() - started);
    /* Not damage of the repository, but what a snapshot lacks: the media check of each
     * snapshot that recorded local files missing (the database names them). */
    pf_snapshot *all = NULL;
    size_t nall = 0;
    pf_err serr = {0};
    if (pf_repo_load_all_snapshots(c->repo, &all, &nall, &serr))
        nall = 0;
    cJSON *media = pf_g.json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < nall; i++) {
        char *line = pf_mediacheck_missing_line(&all[i].media_check);
        if (!line)
            continue;
        if (media) {
            cJSON *m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "snapshot", all[i].id);
            cJSON_AddItemToObject(m, "media_check", pf_media_check_to_json(&all[i].media_check));
            cJSON_AddItemToArray(media, m);
        } else if (pf_g.verbosity >= 0) {
            printf("snapshot %.8s: %s\n", all[i].id, line);
        }
        free(line);
    }
    pf_snapshots_free(all, nall);
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddItemToObject(j, "media_missing", media);
        cJSON_AddBoolToObject(j, "healthy", res.errors == 0);
        cJSON_AddNumberToObject(j, "errors", (double)res.errors);
        cJSON_AddNumberToObject(j, "warnings", (double)res.warnings);
        cJSON_AddNumberToObject(j, "snapshots", (double)res.snapshots);
        cJSON_AddNumberToObject(j, "trees", (double)res.trees);
        cJSON_AddNumberToObject(j, "packs", (double)res.packs);
        cJSON_AddNumberToObject(j, "packs_read", (double)res.packs_read);
        cJSON_AddNumberToObject(j, "blobs", (double)res.blobs);
        cJSON_AddNumberToObject(j, "blobs_read", (double)res.blobs_read);
        cJSON_AddNumberToObject(j, "unused_blobs", (double)res.unused_blobs);
        cJSON_AddNumberToObject(j, "duplicate_blobs", (double)res.duplicate_blobs);
        cJSON_AddNumberToObject(j, "orphan_packs", (double)res.orphan_packs);
        cJSON_AddNumberToObject(j, "orphan_blobs", (double)res.orphan_blobs);
        cJSON_AddNumberToObject(j, "wal_files", (double)res.wal_files);
        cJSON_AddNumberToObject(j, "wal_gaps", (double)res.wal_gaps);
        cJSON_AddStringToObject(j, "wal_newest", res.wal_newest);
        cJSON_AddItemToObject(j, "problems", problems);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0 || res.errors) {
        printf("checked %llu snapshots, %llu trees, %llu packs (%llu read, %llu blobs "
               "authenticated), %llu blobs\n",
               (unsigned long long)res.snapshots, (unsigned long long)res.trees,
               (unsigned long long)res.packs, (unsigned long long)res.packs_read,
               (unsigned long long)res.blobs_read, (unsigned long long)res.blobs);
        if (res.wal_files) {
            char when[64] = "?";
            time_t t = (time_t)(res.wal_newest_ns / 1000000000);
            struct tm tm;
            if (res.wal_newest_ns && localtime_r(&t, &tm))
                strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S %z", &tm);
            printf("WAL archive: %llu files, newest segment %s (pushed %s), %llu gap%s\n",
                   (unsigned long long)res.wal_files, res.wal_newest[0] ? res.wal_newest : "none",
                   when, (unsigned long long)res.wal_gaps, res.wal_gaps == 1 ? "" : "s");
        }
        if (res.unused_blobs || res.duplicate_blobs)
            printf("%llu unused blobs, %llu duplicate blobs (prune frees them)\n",
                   (unsigned long long)res.unused_blobs, (unsigned long long)res.duplicate_blobs);
        printf(res.errors ? "repository DAMAGED: %llu problem%s\n" : "no damage found\n",
               (unsigned long long)res.errors, res.errors == 1 ? "" : "s");
    }
    if (!pf_g.json && pf_g.verbosity >= 0)
        report_keys(c->repo);
    if (res.errors && pf_g.json) {
        /* --json: every failure ends stderr with its error object (docs/JSON.md). */
        pf_err_set(&err, PF_ECORRUPT, "repository damaged: %llu problem%s (see \"problems\")",
                   (unsigned long long)res.errors, res.errors == 1 ? "" : "s");
        return pf_cli_fail(&err);
    }
    return res.errors ? PF_EXIT_DAMAGED : PF_EXIT_OK;
}
