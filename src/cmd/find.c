#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/find.h"
#include "repo/resolve.h"
#include "repo/status.h"

const pf_cmd_syntax pf_syntax_find = {
    .usage =
        "usage: permafrost find PATTERN [--snapshot ID]... [--json]\n\n"
        "Which snapshots hold a path matching PATTERN, newest snapshot first, with size and\n"
        "modification time. A pattern without '/' matches names (\"*.env*\", \"*.dump\"); with\n"
        "'/' it matches whole paths inside the snapshot (\"media/accounts/*\"). Quote it.\n",
    .longopts = (const struct option[]){{"snapshot", required_argument, 0, 's'}, {0, 0, 0, 0}},
    .min_args = 1,
    .max_args = 1};

typedef struct hit_ctx {
    const pf_snapshot *s;
    pf_json_stream *json; /* --json: the list, streamed (docs/JSON.md, "find") */
    size_t hits;
} hit_ctx;

static int hit(const char *path, const pf_node *n, void *arg, pf_err *err)
{
    (void)err;
    hit_ctx *h = arg;
    h->hits++;
    char mtime[40];
    pf_time_rfc3339(n->mtime_ns, mtime, sizeof mtime);
    if (h->json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "snapshot", h->s->id);
        pf_json_add_path(o, "path", path);
        cJSON_AddStringToObject(o, "type",
                                n->type == PF_NODE_DIR    ? "dir"
                                : n->type == PF_NODE_FILE ? "file"
                                                          : "other");
        cJSON_AddNumberToObject(o, "size", (double)n->size);
        pf_json_add_file_time(o, "mtime", n->mtime_ns);
        pf_json_stream_item(h->json, o);
    } else {
        char when[64], size[32];
        pf_snapshot_time_local(h->s, when, sizeof when);
        pf_human_bytes(n->size, size, sizeof size);
        printf("%.8s  %s  %10s  %s  %s%s\n", h->s->id, when, n->type == PF_NODE_FILE ? size : "-",
               mtime, path, n->type == PF_NODE_DIR ? "/" : "");
    }
    return 0;
}

static int newest_first(const void *a, const void *b)
{
    const pf_snapshot *x = a, *y = b;
    return x->time_ns < y->time_ns ? 1 : x->time_ns > y->time_ns ? -1 : 0;
}

int cmd_find(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    pf_snapshot *snaps = NULL;
    size_t n = 0;
    size_t wanted = 0;
    for (size_t i = 0; i < c->nopts; i++)
        wanted += c->opts[i].c == 's';
    if (wanted) {
        snaps = calloc(wanted, sizeof *snaps);
        pf_snapshot_want any = {0};
        for (size_t i = 0; i < c->nopts; i++)
            if (c->opts[i].c == 's' &&
                pf_snapshot_resolve(c->repo, c->opts[i].arg, &any, &snaps[n++], &err)) {
                pf_snapshots_free(snaps, n - 1);
                return pf_cli_fail(&err);
            }
    } else if (pf_repo_load_all_snapshots(c->repo, &snaps, &n, &err)) {
        return pf_cli_fail(&err);
    }
    qsort(snaps, n, sizeof *snaps, newest_first);
    pf_finder *f = pf_finder_new(c->repo, c->argv[0]);
    pf_json_stream list = {0}, *json = pf_g.json ? &list : NULL;
    size_t hits = 0;
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        hit_ctx h = {.s = &snaps[i], .json = json};
        rc = pf_finder_search(f, snaps[i].tree, hit, &h, &err);
        hits += h.hits;
    }
    pf_finder_free(f);
    pf_snapshots_free(snaps, n);
    if (json)
        pf_json_stream_end(json);
    if (rc)
        return pf_cli_fail(&err);
    if (json && !hits) {
        /* --json: every failure ends stderr with its error object (docs/JSON.md). */
        pf_err_set(&err, PF_ENOTFOUND, "no path matches \"%s\" in %zu snapshot%s", c->argv[0], n,
                   n == 1 ? "" : "s");
        return pf_cli_fail(&err);
    }
    if (!json && pf_g.verbosity >= 0)
        fprintf(stderr, "%zu match%s in %zu snapshot%s\n", hits, hits == 1 ? "" : "es", n,
                n == 1 ? "" : "s");
    return hits ? PF_EXIT_OK : PF_EXIT_NOTFOUND;
}
