#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "repo/runs.h"
#include "cli/commands.h"
#include "common/log.h"
#include "repo/prune.h"
#include "repo/reserve.h"
#include "repo/retention.h"

const pf_cmd_syntax pf_syntax_forget = {
    .usage =
        "usage: permafrost forget [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
        "         [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--keep-within 1y2m3d4h]\n"
        "         [--keep-tag T]... [--group-by host,paths,tags,kind] [--dry-run]\n"
        "         [--prune [--max-unused P]]\n\n"
        "Removes the snapshots the policy does not keep (restic's semantics; see\n"
        "docs/RETENTION.md). The policy applies to each group of snapshots on its own; by\n"
        "default a group is one host, one set of paths and one kind (a partial --only\n"
        "snapshot never counts against whole-server ones). Without options the policy comes\n"
        "from the config file (keep_daily = 7, ...). --dry-run shows what would go and why\n"
        "each kept one stays.\n",
    .shortopts = "n",
    .longopts = (const struct option[]){{"keep-last", required_argument, 0, 'l'},
                                        {"keep-hourly", required_argument, 0, 'H'},
                                        {"keep-daily", required_argument, 0, 'd'},
                                        {"keep-weekly", required_argument, 0, 'w'},
                                        {"keep-monthly", required_argument, 0, 'm'},
                                        {"keep-yearly", required_argument, 0, 'y'},
                                        {"keep-within", required_argument, 0, 'W'},
                                        {"keep-tag", required_argument, 0, 't'},
                                        {"group-by", required_argument, 0, 'g'},
                                        {"dry-run", no_argument, 0, 'n'},
                                        {"prune", no_argument, 0, 'p'},
                                        {"max-unused", required_argument, 0, 'M'},
                                        {0, 0, 0, 0}},
    .max_args = -1};

const pf_cmd_syntax pf_syntax_prune = {
    .usage = "usage: permafrost prune [--max-unused P] [--dry-run]\n\n"
             "Frees the space of data no snapshot uses: deletes unused packs and rewrites packs\n"
             "more than P% unused (default 10). Crash-safe: run it again after an interruption.\n",
    .shortopts = "n",
    .longopts = (const struct option[]){{"max-unused", required_argument, 0, 'm'},
                                        {"dry-run", no_argument, 0, 'n'},
                                        {0, 0, 0, 0}},
    .max_args = -1};

/* Prunes; the result goes into `into` under "prune" when given (forget --prune: one
 * document), else is printed. */
static int run_prune(pf_repo *r, double max_unused, bool dry_run, cJSON *into)
{
    pf_err err = {0};
    pf_prune_opts o = {max_unused, dry_run};
    pf_prune_stats st;
    if (pf_prune(r, &o, &st, &err))
        return pf_cli_fail(&err);
    if (!dry_run && pf_reserve_ensure(r, &err)) {
        pf_warn("%s (the next prune tries again)", err.msg);
        pf_err_clear(&err);
    }
    /* Run records (what status shows of checks and drills) only need the newest few. */
    size_t runs_removed = 0;
    if (!dry_run && pf_runs_trim(r, PF_RUNS_KEEP, &runs_removed, &err)) {
        pf_warn("%s (the next prune tries again)", err.msg);
        pf_err_clear(&err);
    }
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddBoolToObject(j, "dry_run", dry_run);
        cJSON_AddNumberToObject(j, "packs_total", (double)st.packs_total);
        cJSON_AddNumberToObject(j, "packs_deleted", (double)st.packs_deleted);
        cJSON_AddNumberToObject(j, "packs_rewritten", (double)st.packs_rewritten);
        cJSON_AddNumberToObject(j, "packs_unindexed", (double)st.packs_unindexed);
        cJSON_AddNumberToObject(j, "blobs_used", (double)st.blobs_used);
        cJSON_AddNumberToObject(j, "blobs_unused", (double)st.blobs_unused);
        cJSON_AddNumberToObject(j, "blobs_repacked", (double)st.blobs_repacked);
        cJSON_AddNumberToObject(j, "packs_written", (double)st.packs_written);
        cJSON_AddNumberToObject(j, "tmp_removed", (double)st.tmp_removed);
        cJSON_AddNumberToObject(j, "tmp_bytes", (double)st.tmp_bytes);
        cJSON_AddNumberToObject(j, "run_records_removed", (double)runs_removed);
        cJSON_AddNumberToObject(j, "bytes_before", (double)st.bytes_before);
        cJSON_AddNumberToObject(j, "bytes_after", (double)st.bytes_after);
        cJSON_AddNumberToObject(j, "bytes_freed", (double)st.bytes_freed);
        cJSON_AddNumberToObject(j, "bytes_removed", (double)st.bytes_removed);
        cJSON_AddNumberToObject(j, "bytes_copied", (double)st.bytes_copied);
        cJSON_AddNumberToObject(j, "bytes_repacked", (double)st.bytes_repacked);
        if (into)
            cJSON_AddItemToObject(into, "prune", j);
        else
            pf_out_json(j);
    } else if (pf_g.verbosity >= 0) {
        char before[32], after[32], freed[32], removed[32], copied[32];
        pf_human_bytes(st.bytes_before, before, sizeof before);
        pf_human_bytes(st.bytes_after, after, sizeof after);
        pf_human_bytes(st.bytes_freed, freed, sizeof freed);
        pf_human_bytes(st.bytes_removed, removed, sizeof removed);
        pf_human_bytes(st.bytes_copied, copied, sizeof copied);
        /* Freed is before - after: a rewritten pack's used blobs were copied, not freed. */
        printf("%s %llu of %llu packs, rewrote %llu, %llu unindexed (%s removed, %s copied%s); "
               "%s %s: %s -> %s\n",
               dry_run ? "would delete" : "deleted", (unsigned long long)st.packs_deleted,
               (unsigned long long)st.packs_total, (unsigned long long)st.packs_rewritten,
               (unsigned long long)st.packs_unindexed, removed, copied,
               dry_run ? ", estimated" : "", dry_run ? "would free" : "freed", freed, before,
               after);
    }
    return PF_EXIT_OK;
}

static int parse_max_unused(const char *v, double *out)
{
    if (pf_prune_parse_max_unused(v, out) == 0)
        return 0;
    pf_cli_usage(NULL, "--max-unused wants a percentage from 0 to 100, got \"%s\"", v);
    return -1;
}

int cmd_prune(pf_cmd_ctx *c)
{
    double max_unused = 10;
    const char *cfg = pf_config_get("max_unused");
    if (cfg && parse_max_unused(cfg, &max_unused))
        return PF_EXIT_USAGE;
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].c == 'n')
            c->dry_run = true;
        else if (parse_max_unused(c->opts[i].arg, &max_unused))
            return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    return run_prune(c->repo, max_unused, c->dry_run, NULL);
}

typedef struct policy_args {
    pf_retention_policy p;
    const char *tags[64];
    bool any;
} policy_args;

static int set_count(const char *v, int *dst, policy_args *pa)
{
    pf_err err = {0};
    if (pf_retention_parse_count(v, dst, &err)) {
        pf_cli_usage(NULL, "%s", err.msg);
        return -1;
    }
    pa->any = true;
    return 0;
}

static int policy_from_config(policy_args *pa)
{
    static const struct {
        const char *key;
        size_t off;
    } counts[] = {
        {"keep_last", offsetof(pf_retention_policy, keep_last)},
        {"keep_hourly", offsetof(pf_retention_policy, keep_hourly)},
        {"keep_daily", offsetof(pf_retention_policy, keep_daily)},
        {"keep_weekly", offsetof(pf_retention_policy, keep_weekly)},
        {"keep_monthly", offsetof(pf_retention_policy, keep_monthly)},
        {"keep_yearly", offsetof(pf_retention_policy, keep_yearly)},
    };
    for (size_t i = 0; i < sizeof counts / sizeof *counts; i++) {
        const char *v = pf_config_get(counts[i].key);
        if (v && set_count(v, (int *)((char *)&pa->p + counts[i].off), pa))
            return -1;
    }
    const char *v = pf_config_get("keep_within");
    pf_err err = {0};
    if (v) {
        if (pf_retention_parse_duration(v, &pa->p.keep_within, &err)) {
            pf_cli_usage(NULL, "config keep_within: %s", err.msg);
            return -1;
        }
        pa->any = true;
    }
    if ((v = pf_config_get("keep_tag"))) {
        pa->tags[pa->p.n_keep_tags++] = v;
        pa->any = true;
    }
    return 0;
}

int cmd_forget(pf_cmd_ctx *cx)
{
    policy_args pa = {.p = PF_RETENTION_POLICY_INIT};
    bool dry = false, prune = false;
    double max_unused = 10;
    pf_err err = {0};
    for (size_t i = 0; i < cx->nopts; i++) {
        char *optarg = cx->opts[i].arg; /* getopt's name: the cases read as before */
        switch (cx->opts[i].c) {
        case 'l':
            if (set_count(optarg, &pa.p.keep_last, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'H':
            if (set_count(optarg, &pa.p.keep_hourly, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'd':
            if (set_count(optarg, &pa.p.keep_daily, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'w':
            if (set_count(optarg, &pa.p.keep_weekly, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'm':
            if (set_count(optarg, &pa.p.keep_monthly, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'y':
            if (set_count(optarg, &pa.p.keep_yearly, &pa))
                return PF_EXIT_USAGE;
            break;
        case 'W':
            if (pf_retention_parse_duration(optarg, &pa.p.keep_within, &err))
                return pf_cli_fail(&err);
            pa.any = true;
            break;
        case 't':
            if (pa.p.n_keep_tags < 64)
                pa.tags[pa.p.n_keep_tags++] = optarg;
            pa.any = true;
            break;
        case 'g':
            if (pf_retention_parse_group_by(optarg, &pa.p.group_by, &err))
                return pf_cli_fail(&err);
            break;
        case 'n':
            dry = true;
            break;
        case 'p':
            prune = true;
            break;
        case 'M':
            if (parse_max_unused(optarg, &max_unused))
                return PF_EXIT_USAGE;
            break;
        }
    }
    if (!pa.any && policy_from_config(&pa))
        return PF_EXIT_USAGE;
    pa.p.keep_tags = pa.tags;
    if (pf_retention_policy_empty(&pa.p)) {
        pf_err_set(&err, PF_EUSAGE,
                   "no retention policy given (e.g. --keep-daily 7): refusing "
                   "to remove every snapshot");
        return pf_cli_fail(&err);
    }
    if (pf_retention_policy_validate(&pa.p, &err))
        return pf_cli_fail(&err);
    cx->dry_run = dry;
    if (pf_cmd_open(cx, &err))
        return pf_cli_fail(&err);
    pf_repo *r = cx->repo;
    pf_snapshot *all = NULL;
    size_t n = 0;
    int rc = PF_EXIT_OK;
    pf_retention_result res = PF_RETENTION_RESULT_INIT;
    pf_retention_snapshot *rs = NULL;
    if (pf_repo_load_all_snapshots(r, &all, &n, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    /* Newest first: within the same second, input order decides which is newer. */
    for (size_t i = 0; i < n / 2; i++) {
        pf_snapshot t = all[i];
        all[i] = all[n - 1 - i];
        all[n - 1 - i] = t;
    }
    rs = calloc(n ? n : 1, sizeof *rs);
    for (size_t i = 0; i < n; i++) {
        rs[i].id = all[i].id;
        rs[i].time = all[i].time_ns / 1000000000;
        rs[i].host = all[i].host;
        rs[i].tags = (const char *const *)all[i].tags;
        rs[i].n_tags = all[i].ntags;
        rs[i].paths = (const char *const *)all[i].paths;
        rs[i].n_paths = all[i].npaths;
        rs[i].kind = pf_snapshot_kind_name(all[i].kind);
    }
    if (pf_retention_apply(rs, n, &pa.p, (int64_t)time(NULL), &res, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    cJSON *doc = NULL, *arr = NULL;
    if (pf_g.json) {
        doc = cJSON_CreateObject();
        cJSON_AddBoolToObject(doc, "dry_run", dry);
        cJSON_AddNumberToObject(doc, "groups", (double)res.n_groups);
        cJSON_AddNumberToObject(doc, "kept", (double)res.n_keep);
        cJSON_AddNumberToObject(doc, "removed", (double)res.n_remove);
        arr = cJSON_AddArrayToObject(doc, "snapshots");
    }
    if (!arr && pf_g.verbosity >= 0) {
        pf_buf desc = PF_BUF_INIT;
        pf_retention_policy_describe(&pa.p, &desc);
        printf("policy: %.*s (%zu group%s)\n", (int)desc.len, (const char *)desc.data, res.n_groups,
               res.n_groups == 1 ? "" : "s");
        pf_buf_free(&desc);
    }
    for (size_t i = 0; i < n; i++) {
        pf_retention_decision *d = &res.d[i];
        char t[64];
        pf_snapshot_time_local(&all[i], t, sizeof t);
        if (arr) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "id", all[i].id);
            pf_json_add_time(o, "time", all[i].time_ns);
            cJSON_AddStringToObject(o, "host", all[i].host);
            cJSON_AddStringToObject(o, "kind", pf_snapshot_kind_name(all[i].kind));
            cJSON_AddNumberToObject(o, "group", (double)d->group);
            cJSON_AddBoolToObject(o, "keep", d->keep);
            cJSON *why = cJSON_AddArrayToObject(o, "reasons");
            for (size_t k = 0; k < d->n_reasons; k++)
                cJSON_AddItemToArray(why, cJSON_CreateString(d->reasons[k]));
            cJSON_AddItemToArray(arr, o);
        } else if (pf_g.verbosity >= 0) {
            printf("%s %.8s  %s  %-12s  %-16s",
                   d->keep ? "keep  " : (dry ? "would remove" : "remove"), all[i].id, t,
                   all[i].host, pf_snapshot_kind_name(all[i].kind));
            for (size_t k = 0; k < d->n_reasons; k++)
                printf("%s%s", k ? ", " : "  ", d->reasons[k]);
            printf("\n");
        }
        if (!d->keep && !dry) {
            if (pf_repo_forget_snapshot(r, all[i].id, &err)) {
                cJSON_Delete(doc);
                rc = pf_cli_fail(&err);
                goto out;
            }
        }
    }
    if (!doc && pf_g.verbosity >= 0)
        printf("%zu kept, %zu %s\n", res.n_keep, res.n_remove,
               dry ? "would be removed" : "removed");
    if (prune && !dry)
        rc = run_prune(r, max_unused, false, doc);
    if (doc && rc == PF_EXIT_OK) {
        if (!cJSON_GetObjectItemCaseSensitive(doc, "prune"))
            cJSON_AddNullToObject(doc, "prune");
        pf_out_json(doc);
    } else {
        cJSON_Delete(doc);
    }
out:
    free(rs);
    pf_retention_result_free(&res);
    pf_snapshots_free(all, n);
    return rc;
}
