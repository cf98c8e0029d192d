#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mastodon/mediacheck.h"
#include "repo/check.h"
#include "repo/lock.h"

static const char check_help[] =
    "usage: permafrost check [--read-data | --read-data-subset=N%|K/M]\n\n"
    "Verifies the repository: config, keys, index files against pack headers, and that\n"
    "every snapshot's trees and blobs are there. --read-data also reads every pack and\n"
    "authenticates every blob; --read-data-subset reads N% of the packs (chosen at\n"
    "random each run) or slice K of M (run K=1..M over M days to read everything).\n"
    "Exit code 0: healthy; 4: damage found (each problem is named above).\n";

static void report(int is_error, const char *msg, void *ctx)
{
    cJSON *arr = ctx;
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

int cmd_check(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"read-data", no_argument, 0, 'd'},
                                         {"read-data-subset", required_argument, 0, 's'},
                                         {0, 0, 0, 0}};
    pf_check_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(check_help, stdout);
            return PF_EXIT_OK;
        case 'd':
            o.read_data = 1;
            break;
        case 's':
            if (parse_subset(optarg, &o)) {
                fprintf(stderr,
                        "permafrost: --read-data-subset wants N%% (0 < N <= 100) or K/M "
                        "(1 <= K <= M), got \"%s\"\n",
                        optarg);
                return PF_EXIT_USAGE;
            }
            break;
        default:
            fputs(check_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(check_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    cJSON *problems = pf_g.json ? cJSON_CreateArray() : NULL;
    pf_check_result res;
    o.name_orphans = pf_g.verbosity > 0;
    struct pf_lock *lock = pf_cli_lock(r, false, "check", &err);
    if (!lock || pf_check(r, &o, report, problems, &res, &err)) {
        pf_cli_unlock(lock);
        cJSON_Delete(problems);
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    /* Not damage of the repository, but what a snapshot lacks: the media check of each
     * snapshot that recorded local files missing (the database names them). */
    pf_snapshot *all = NULL;
    size_t nall = 0;
    pf_err serr = {0};
    if (pf_repo_load_all_snapshots(r, &all, &nall, &serr))
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
        cJSON_AddItemToObject(j, "problems", problems);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0 || res.errors) {
        printf("checked %llu snapshots, %llu trees, %llu packs (%llu read, %llu blobs "
               "authenticated), %llu blobs\n",
               (unsigned long long)res.snapshots, (unsigned long long)res.trees,
               (unsigned long long)res.packs, (unsigned long long)res.packs_read,
               (unsigned long long)res.blobs_read, (unsigned long long)res.blobs);
        if (res.unused_blobs || res.duplicate_blobs)
            printf("%llu unused blobs, %llu duplicate blobs (prune frees them)\n",
                   (unsigned long long)res.unused_blobs, (unsigned long long)res.duplicate_blobs);
        printf(res.errors ? "repository DAMAGED: %llu problem%s\n" : "no damage found\n",
               (unsigned long long)res.errors, res.errors == 1 ? "" : "s");
    }
    pf_cli_unlock(lock);
    pf_repo_free(r);
    return res.errors ? PF_EXIT_DAMAGED : PF_EXIT_OK;
}
