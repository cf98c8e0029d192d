#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cmd/wal.h"
#include "mastodon/mediacheck.h"

const pf_cmd_syntax pf_syntax_snapshots = {
    .usage =
        "usage: permafrost snapshots [--tag T] [--host H]\n\n"
        "Lists snapshots, oldest first: id, time (in this machine's zone, offset shown), host,\n"
        "kind (paths, mastodon = a whole server, mastodon-partial = taken with --only), tags,\n"
        "size, the paths of plain backups, \"INCOMPLETE\" when entries could not be read, and\n"
        "for Mastodon snapshots what they hold (components, versions, row counts).\n",
    .longopts = (const struct option[]){{"tag", required_argument, 0, 't'},
                                        {"host", required_argument, 0, 'H'},
                                        {0, 0, 0, 0}},
    .max_args = -1};

static double stat_num(cJSON *o, const char *k)
{
    cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

/* One line describing a Mastodon snapshot's manifest, or "" for plain ones. */
void pf_manifest_summary(const pf_snapshot *s, char *out, size_t n)
{
    out[0] = 0;
    if (!s->manifest)
        return;
    size_t len = 0;
    cJSON *it;
    cJSON_ArrayForEach(it, s->manifest)
    {
        if (len + 2 >= n)
            break;
        if (cJSON_IsString(it))
            len += (size_t)snprintf(out + len, n - len, "%s%s=%s", len ? " " : "", it->string,
                                    it->valuestring);
        else if (cJSON_IsNumber(it))
            len += (size_t)snprintf(out + len, n - len, "%s%s=%.0f", len ? " " : "", it->string,
                                    it->valuedouble);
        else if (!strcmp(it->string, "encryption") &&
                 cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "keys"))) {
            /* One word, as the rest of the line: "do not decrypt" becomes do-not-decrypt. */
            size_t at = len + (len ? 1 : 0) + 5;
            len += (size_t)snprintf(out + len, n - len, "%skeys=%s", len ? " " : "",
                                    cJSON_GetObjectItemCaseSensitive(it, "keys")->valuestring);
            for (size_t k = at; k < len && k + 1 < n; k++)
                if (out[k] == ' ')
                    out[k] = '-';
        } else if (!strcmp(it->string, "search") &&
                   cJSON_IsString(cJSON_GetObjectItemCaseSensitive(it, "host")))
            len += (size_t)snprintf(out + len, n - len, "%ssearch=%s", len ? " " : "",
                                    cJSON_GetObjectItemCaseSensitive(it, "host")->valuestring);
        if (len >= n)
            len = n - 1;
    }
}

int cmd_snapshots(pf_cmd_ctx *c)
{
    const char *tag = NULL, *host = NULL;
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].c == 't')
            tag = c->opts[i].arg;
        else
            host = c->opts[i].arg;
    }
    pf_err err = {0};
    pf_snapshot *all;
    size_t n;
    if (pf_cmd_open(c, &err) || pf_repo_load_all_snapshots(c->repo, &all, &n, &err))
        return pf_cli_fail(&err);
    cJSON *arr = pf_g.json ? cJSON_CreateArray() : NULL;
    if (!pf_g.json)
        printf("%-8s  %-25s  %-16s  %-16s  %-20s  %10s\n", "ID", "Time", "Host", "Kind", "Tags",
               "Size");
    size_t shown = 0;
    for (size_t i = 0; i < n; i++) {
        pf_snapshot *s = &all[i];
        if ((tag && !pf_snapshot_has_tag(s, tag)) || (host && strcmp(s->host, host)))
            continue;
        shown++;
        if (arr) {
            cJSON_AddItemToArray(arr, pf_cli_snapshot_json(s));
            continue;
        }
        char t[64], tags[256] = "", size[32], man[512];
        pf_snapshot_time_local(s, t, sizeof t);
        for (size_t j = 0; j < s->ntags; j++)
            snprintf(tags + strlen(tags), sizeof tags - strlen(tags), "%s%s", j ? "," : "",
                     s->tags[j]);
        pf_human_bytes((uint64_t)stat_num(s->stats, "bytes"), size, sizeof size);
        printf("%.8s  %-25s  %-16s  %-16s  %-20s  %10s%s\n", s->id, t, s->host,
               pf_snapshot_kind_name(s->kind), tags, size, s->complete ? "" : "  INCOMPLETE");
        if (s->kind == PF_SNAP_PATHS || s->kind == PF_SNAP_UNKNOWN) {
            printf("          paths:");
            for (size_t j = 0; j < s->npaths; j++)
                printf(" %s", s->paths[j]);
            printf("\n");
        }
        char *mline = pf_mediacheck_missing_line(&s->media_check);
        if (mline)
            printf("          incomplete: %s\n", mline);
        free(mline);
        if (!s->complete && (s->skipped_count || !s->media_check.missing)) {
            printf("          incomplete: %llu entr%s could not be read",
                   (unsigned long long)s->skipped_count, s->skipped_count == 1 ? "y" : "ies");
            for (size_t j = 0; j < s->nskipped; j++)
                printf("%s%s", j ? ", " : ": ", s->skipped[j]);
            printf("%s\n", s->skipped_count > s->nskipped && s->nskipped ? ", ..." : "");
        }
        pf_manifest_summary(s, man, sizeof man);
        if (man[0])
            printf("          %s\n", man);
        if (s->media_check.recorded)
            pf_mediacheck_print(&s->media_check, "          ", stdout);
    }
    if (arr)
        pf_out_json(arr);
    else
        printf("%zu snapshot%s\n", shown, shown == 1 ? "" : "s");
    if (!arr)
        pf_wal_print_newest(c->repo);
    pf_snapshots_free(all, n);
    return PF_EXIT_OK;
}
