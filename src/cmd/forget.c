#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "common/log.h"
#include "repo/lock.h"
#include "repo/prune.h"
#include "repo/reserve.h"
#include "repo/retention.h"

static const char forget_help[] =
    "usage: permafrost forget [--keep-last N] [--keep-hourly N] [--keep-daily N]\n"
    "         [--keep-weekly N] [--keep-monthly N] [--keep-yearly N] [--keep-within 1y2m3d4h]\n"
    "         [--keep-tag T]... [--group-by host,paths,tags,kind] [--dry-run]\n"
    "         [--prune [--max-unused P]]\n\n"
    "Removes the snapshots the policy does not keep (restic's semantics; see\n"
    "docs/RETENTION.md). The policy applies to each group of snapshots on its own; by\n"
    "default a group is one host, one set of paths and one kind (a partial --only\n"
    "snapshot never counts against whole-server ones). Without options the policy comes\n"
    "from the config file (keep_daily = 7, ...). --dry-run shows what would go and why\n"
    "each kept one stays.\n";

static const char prune_help[] =
    "usage: permafrost prune [--max-unused P] [--dry-run]\n\n"
    "Frees the space of data no snapshot uses: deletes unused packs and rewrites packs\n"
    "more than P%% unused (default 10). Crash-safe: run it again after an interruption.\n";

/* The exclusive lock, also when the repository's disk is full: a full disk must not leave
 * the operator without the one command that frees space. Writing the lock is the first
 * write; when it fails for lack of space, first the temporary files of killed writes are
 * removed (they belong to no live writer, whatever locks exist: see prune.h), then the
 * reserve object (repo/reserve.h), each followed by a new try. */
static struct pf_lock *lock_exclusive(pf_repo *r, const char *command, pf_err *err)
{
    struct pf_lock *l = pf_cli_lock(r, true, command, err);
    if (l || !pf_err_no_space(err))
        return l;
    pf_err e = {0};
    int64_t lease;
    uint64_t n = 0, bytes = 0;
    if (!pf_lock_longest_lease(r, &lease, &e) &&
        !pf_store_sweep_tmp(r->store, (int64_t)time(NULL) - lease, &n, &bytes, &e) && n) {
        pf_info("the repository's disk is full: removed %llu temporary file%s of interrupted "
                "writes (%llu bytes) to make room for the lock",
                (unsigned long long)n, n == 1 ? "" : "s", (unsigned long long)bytes);
        pf_err_clear(err);
        if ((l = pf_cli_lock(r, true, command, err)) || !pf_err_no_space(err))
            return l;
    }
    bool released = false;
    pf_err_clear(&e);
    if (!pf_reserve_release(r, &released, &e) && released) {
        pf_info("the repository's disk is full: released its %u KiB reserve to take the lock "
                "(prune writes it again)",
                PF_RESERVE_BYTES / 1024);
        pf_err_clear(err);
        if ((l = pf_cli_lock(r, true, command, err)) || !pf_err_no_space(err))
            return l;
    }
    pf_err_prefix(err,
                  "the disk holding the repository is full and there was no reserve %s to "
                  "free: free a few hundred KiB on it, then run prune",
                  released ? "left" : "or old temporary file");
    return NULL;
}

static int run_prune(pf_repo *r, double max_unused, bool dry_run)
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
        cJSON_AddNumberToObject(j, "bytes_before", (double)st.bytes_before);
        cJSON_AddNumberToObject(j, "bytes_after", (double)st.bytes_after);
        cJSON_AddNumberToObject(j, "bytes_freed", (double)st.bytes_freed);
        cJSON_AddNumberToObject(j, "bytes_removed", (double)st.bytes_removed);
        cJSON_AddNumberToObject(j, "bytes_copied", (double)st.bytes_copied);
        cJSON_AddNumberToObject(j, "bytes_repacked", (double)st.bytes_repacked);
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
    fprintf(stderr, "permafrost: --max-unused wants a percentage from 0 to 100, got \"%s\"\n", v);
    return -1;
}

int cmd_prune(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"max-unused", required_argument, 0, 'm'},
                                         {"dry-run", no_argument, 0, 'n'},
                                         {0, 0, 0, 0}};
    double max_unused = 10;
    bool dry = false;
    const char *cfg = pf_config_get("max_unused");
    if (cfg && parse_max_unused(cfg, &max_unused))
        return PF_EXIT_USAGE;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn", opts, NULL)) != -1) {
        switch (c) {
        case 'h': printf(prune_help); return PF_EXIT_OK;
        case 'm':
            if (parse_max_unused(optarg, &max_unused))
                return PF_EXIT_USAGE;
            break;
        case 'n': dry = true; break;
        default: fprintf(stderr, prune_help); return PF_EXIT_USAGE;
        }
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    struct pf_lock *l =
        dry ? pf_cli_lock(r, true, "prune", &err) : lock_exclusive(r, "prune", &err);
    if (!l) {
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    int rc = run_prune(r, max_unused, dry);
    pf_cli_unlock(l);
    pf_repo_free(r);
    return rc;
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
        fprintf(stderr, "permafrost: %s\n", err.msg);
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
            fprintf(stderr, "permafrost: config keep_within: %s\n", err.msg);
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

int cmd_forget(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"keep-last", required_argument, 0, 'l'},
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
                                         {0, 0, 0, 0}};
    policy_args pa = {.p = PF_RETENTION_POLICY_INIT};
    bool dry = false, prune = false;
    double max_unused = 10;
    pf_err err = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hn", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(forget_help, stdout); return PF_EXIT_OK;
        case 'l': if (set_count(optarg, &pa.p.keep_last, &pa)) return PF_EXIT_USAGE; break;
        case 'H': if (set_count(optarg, &pa.p.keep_hourly, &pa)) return PF_EXIT_USAGE; break;
        case 'd': if (set_count(optarg, &pa.p.keep_daily, &pa)) return PF_EXIT_USAGE; break;
        case 'w': if (set_count(optarg, &pa.p.keep_weekly, &pa)) return PF_EXIT_USAGE; break;
        case 'm': if (set_count(optarg, &pa.p.keep_monthly, &pa)) return PF_EXIT_USAGE; break;
        case 'y': if (set_count(optarg, &pa.p.keep_yearly, &pa)) return PF_EXIT_USAGE; break;
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
        case 'n': dry = true; break;
        case 'p': prune = true; break;
        case 'M':
            if (parse_max_unused(optarg, &max_unused))
                return PF_EXIT_USAGE;
            break;
        default: fputs(forget_help, stderr); return PF_EXIT_USAGE;
        }
    }
    if (!pa.any && policy_from_config(&pa))
        return PF_EXIT_USAGE;
    pa.p.keep_tags = pa.tags;
    if (pf_retention_policy_empty(&pa.p)) {
        pf_err_set(&err, PF_EUSAGE, "no retention policy given (e.g. --keep-daily 7): refusing "
                                    "to remove every snapshot");
        return pf_cli_fail(&err);
    }
    if (pf_retention_policy_validate(&pa.p, &err))
        return pf_cli_fail(&err);
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    struct pf_lock *l = NULL;
    if (!dry && !(l = lock_exclusive(r, "forget", &err))) {
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
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
    cJSON *arr = pf_g.json ? cJSON_CreateArray() : NULL;
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
            cJSON_AddStringToObject(o, "time", t);
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
                cJSON_Delete(arr);
                rc = pf_cli_fail(&err);
                goto out;
            }
        }
    }
    if (arr)
        pf_out_json(arr);
    else if (pf_g.verbosity >= 0)
        printf("%zu kept, %zu %s\n", res.n_keep, res.n_remove, dry ? "would be removed" : "removed");
    if (prune && !dry)
        rc = run_prune(r, max_unused, false);
out:
    free(rs);
    pf_retention_result_free(&res);
    pf_snapshots_free(all, n);
    pf_cli_unlock(l);
    pf_repo_free(r);
    return rc;
}
