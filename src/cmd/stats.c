#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/resolve.h"
#include "repo/stats.h"

const pf_cmd_syntax pf_syntax_stats = {
    .usage = "usage: permafrost stats [SNAPSHOT...] [--json]\n\n"
             "How big the snapshots are and what deduplication and compression save: the\n"
             "restore size (what a restore writes), files, distinct data blobs, their size before and\n"
             "after compression, and the ratios. Without SNAPSHOT, every snapshot together (the\n"
             "whole repository's saving). For whole-server snapshots, a line per component.\n",
    .max_args = -1};

/* To 3 decimals: a ratio has no more meaningful digits, and --json has no float noise. */
static double ratio(uint64_t a, uint64_t b)
{
    return b ? (double)(int64_t)((double)a / (double)b * 1000 + 0.5) / 1000 : 0;
}

static cJSON *part_json(const pf_stats_part *p)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "files", (double)p->files);
    cJSON_AddNumberToObject(o, "dirs", (double)p->dirs);
    cJSON_AddNumberToObject(o, "restore_bytes", (double)p->restore_bytes);
    cJSON_AddNumberToObject(o, "blobs", (double)p->blobs);
    cJSON_AddNumberToObject(o, "raw_bytes", (double)p->raw_bytes);
    cJSON_AddNumberToObject(o, "stored_bytes", (double)p->stored_bytes);
    cJSON_AddNumberToObject(o, "trees", (double)p->trees);
    cJSON_AddNumberToObject(o, "tree_stored_bytes", (double)p->tree_stored_bytes);
    return o;
}

static void part_line(const char *name, const pf_stats_part *p)
{
    char restore[32], raw[32], stored[32];
    pf_human_bytes(p->restore_bytes, restore, sizeof restore);
    pf_human_bytes(p->raw_bytes, raw, sizeof raw);
    pf_human_bytes(p->stored_bytes, stored, sizeof stored);
    printf("%-10s %10s restore, %8llu files, %8llu blobs = %10s, stored %10s (dedup %.2fx, "
           "compression %.2fx)\n",
           name, restore, (unsigned long long)p->files, (unsigned long long)p->blobs, raw, stored,
           ratio(p->restore_bytes, p->raw_bytes), ratio(p->raw_bytes, p->stored_bytes));
}

typedef struct roots {
    uint8_t (*v)[PF_ID_LEN];
    size_t n;
} roots;

static int add_root(pf_repo *r, const char *ref, roots *out, pf_err *err)
{
    pf_snapshot s;
    pf_snapshot_want any = {0};
    if (pf_snapshot_resolve(r, ref, &any, &s, err))
        return -1;
    out->v = realloc(out->v, (out->n + 1) * sizeof *out->v);
    if (!out->v)
        abort();
    memcpy(out->v[out->n++], s.tree, PF_ID_LEN);
    pf_snapshot_free(&s);
    return 0;
}

int cmd_stats(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    roots rs = {0};
    if (c->argc == 0) {
        pf_snapshot *all;
        size_t n;
        if (pf_repo_load_all_snapshots(c->repo, &all, &n, &err))
            return pf_cli_fail(&err);
        rs.v = calloc(n ? n : 1, sizeof *rs.v);
        for (size_t i = 0; i < n; i++)
            memcpy(rs.v[rs.n++], all[i].tree, PF_ID_LEN);
        pf_snapshots_free(all, n);
    }
    for (int i = 0; i < c->argc; i++)
        if (add_root(c->repo, c->argv[i], &rs, &err)) {
            free(rs.v);
            return pf_cli_fail(&err);
        }
    pf_stats st = {0};
    int rc = pf_stats_collect(c->repo, (const uint8_t(*)[PF_ID_LEN])rs.v, rs.n, &st, &err);
    free(rs.v);
    if (rc)
        return pf_cli_fail(&err);
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "snapshots", (double)st.snapshots);
        cJSON_AddItemToObject(j, "total", part_json(&st.total));
        cJSON_AddNumberToObject(j, "dedup_ratio",
                                ratio(st.total.restore_bytes, st.total.raw_bytes));
        cJSON_AddNumberToObject(j, "compression_ratio",
                                ratio(st.total.raw_bytes, st.total.stored_bytes));
        cJSON_AddNumberToObject(j, "missing_blobs", (double)st.missing_blobs);
        cJSON *parts = cJSON_AddObjectToObject(j, "components");
        for (size_t i = 0; i < st.nparts; i++)
            cJSON_AddItemToObject(parts, st.part_names[i], part_json(&st.parts[i]));
        pf_out_json(j);
    } else {
        printf("%zu snapshot%s\n", st.snapshots, st.snapshots == 1 ? "" : "s");
        for (size_t i = 0; i < st.nparts; i++)
            part_line(st.part_names[i], &st.parts[i]);
        part_line("total", &st.total);
        if (st.missing_blobs)
            printf("%llu blobs are referenced but not in the index: run permafrost check\n",
                   (unsigned long long)st.missing_blobs);
    }
    return st.missing_blobs ? PF_EXIT_DAMAGED : PF_EXIT_OK;
}
