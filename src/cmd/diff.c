#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/diff.h"
#include "repo/resolve.h"

const pf_cmd_syntax pf_syntax_diff = {
    .usage = "usage: permafrost diff SNAPSHOT1 SNAPSHOT2 [--json]\n\n"
             "What changed from the first snapshot to the second: a line per path, '+' added,\n"
             "'-' removed, 'M' content changed, 'T' type changed, 'U' only metadata (mode, owner,\n"
             "time, link target), then a summary. For whole-server snapshots, a line per\n"
             "component: the database dump's size and row counts, Redis keys, media files.\n"
             "Unchanged folders are not read, so a diff of two nightly snapshots is quick.\n",
    .min_args = 2,
    .max_args = 2};

typedef struct totals {
    uint64_t n[5];       /* added, removed, modified, type, meta */
    int64_t bytes_delta; /* size of files after minus before */
    uint64_t media[2];   /* files added and removed under media/ */
    cJSON *changes;      /* --json: the list */
} totals;

static int slot(pf_diff_kind k)
{
    return k == PF_DIFF_ADDED      ? 0
           : k == PF_DIFF_REMOVED  ? 1
           : k == PF_DIFF_MODIFIED ? 2
           : k == PF_DIFF_TYPE     ? 3
                                   : 4;
}

static int64_t file_size(const pf_node *n)
{
    return n && n->type == PF_NODE_FILE ? (int64_t)n->size : 0;
}

static int one(pf_diff_kind kind, const char *path, const pf_node *a, const pf_node *b, void *ctx,
               pf_err *err)
{
    (void)err;
    totals *t = ctx;
    t->n[slot(kind)]++;
    t->bytes_delta += file_size(b) - file_size(a);
    bool media = !strncmp(path, "media/", 6);
    if (media && kind == PF_DIFF_ADDED && b->type == PF_NODE_FILE)
        t->media[0]++;
    if (media && kind == PF_DIFF_REMOVED && a->type == PF_NODE_FILE)
        t->media[1]++;
    if (t->changes) {
        cJSON *o = cJSON_CreateObject();
        char k[2] = {(char)kind, 0};
        cJSON_AddStringToObject(o, "change", k);
        pf_json_add_path(o, "path", path);
        if (a && a->type == PF_NODE_FILE)
            cJSON_AddNumberToObject(o, "size_before", (double)a->size);
        if (b && b->type == PF_NODE_FILE)
            cJSON_AddNumberToObject(o, "size_after", (double)b->size);
        cJSON_AddItemToArray(t->changes, o);
    } else {
        printf("%c %s%s\n", (char)kind, path, (b ? b : a)->type == PF_NODE_DIR ? "/" : "");
    }
    return 0;
}

static double field(cJSON *o, const char *a, const char *b)
{
    cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, a) : NULL;
    if (b)
        v = v ? cJSON_GetObjectItemCaseSensitive(v, b) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

/* A change of a counter recorded by both snapshots, e.g. "statuses 1200 -> 1250 (+50)". */
static void counter(cJSON *out, const char *name, double before, double after, bool print)
{
    if (before < 0 || after < 0)
        return;
    if (out) {
        cJSON *o = cJSON_AddObjectToObject(out, name);
        cJSON_AddNumberToObject(o, "before", before);
        cJSON_AddNumberToObject(o, "after", after);
    }
    if (print)
        printf("  %s %.0f -> %.0f (%+.0f)\n", name, before, after, after - before);
}

static void components(const pf_snapshot *a, const pf_snapshot *b, const totals *t, cJSON *json)
{
    if (!a->components || !b->components)
        return;
    bool print = json == NULL;
    cJSON *o = json ? cJSON_AddObjectToObject(json, "components") : NULL;
    if (print)
        printf("components:\n");
    counter(o, "postgres.dump_bytes", field(a->components, "postgres", "dump_bytes"),
            field(b->components, "postgres", "dump_bytes"), print);
    static const char *const rows[] = {"accounts", "statuses", "media_attachments"};
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "postgres.%s", rows[i]);
        counter(o, name, field(a->manifest, rows[i], NULL), field(b->manifest, rows[i], NULL),
                print);
    }
    counter(o, "redis.keys", field(a->components, "redis", "keys"),
            field(b->components, "redis", "keys"), print);
    /* the machine's files: how many paths were kept (host_exclude, a site removed) */
    counter(o, "host.count", field(a->components, "host", "count"),
            field(b->components, "host", "count"), print);
    if (o) {
        cJSON *m = cJSON_AddObjectToObject(o, "media");
        cJSON_AddNumberToObject(m, "files_added", (double)t->media[0]);
        cJSON_AddNumberToObject(m, "files_removed", (double)t->media[1]);
    }
    if (print)
        printf("  media files +%llu -%llu\n", (unsigned long long)t->media[0],
               (unsigned long long)t->media[1]);
}

int cmd_diff(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    pf_snapshot a, b;
    pf_snapshot_want any = {0};
    if (pf_snapshot_resolve(c->repo, c->argv[0], &any, &a, &err))
        return pf_cli_fail(&err);
    if (pf_snapshot_resolve(c->repo, c->argv[1], &any, &b, &err)) {
        pf_snapshot_free(&a);
        return pf_cli_fail(&err);
    }
    totals t = {0};
    cJSON *json = NULL;
    if (pf_g.json) {
        json = cJSON_CreateObject();
        cJSON_AddStringToObject(json, "from", a.id);
        cJSON_AddStringToObject(json, "to", b.id);
        t.changes = cJSON_AddArrayToObject(json, "changes");
    }
    int rc = pf_diff_trees(c->repo, a.tree, b.tree, one, &t, &err);
    if (rc == 0) {
        if (json) {
            cJSON *s = cJSON_AddObjectToObject(json, "summary");
            static const char *const names[] = {"added", "removed", "modified", "type_changed",
                                                "metadata_changed"};
            for (int i = 0; i < 5; i++)
                cJSON_AddNumberToObject(s, names[i], (double)t.n[i]);
            cJSON_AddNumberToObject(s, "bytes_delta", (double)t.bytes_delta);
            components(&a, &b, &t, json);
            pf_out_json(json);
            json = NULL;
        } else {
            char delta[32];
            pf_human_bytes((uint64_t)(t.bytes_delta < 0 ? -t.bytes_delta : t.bytes_delta), delta,
                           sizeof delta);
            printf(
                "%llu added, %llu removed, %llu modified, %llu type changed, %llu metadata only; "
                "files %s%s\n",
                (unsigned long long)t.n[0], (unsigned long long)t.n[1], (unsigned long long)t.n[2],
                (unsigned long long)t.n[3], (unsigned long long)t.n[4],
                t.bytes_delta < 0 ? "-" : "+", delta);
            components(&a, &b, &t, NULL);
        }
    }
    cJSON_Delete(json);
    pf_snapshot_free(&a);
    pf_snapshot_free(&b);
    return rc ? pf_cli_fail(&err) : PF_EXIT_OK;
}
