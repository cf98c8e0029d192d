#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "mastodon/mediacheck.h"

static const char snapshots_help[] =
    "usage: permafrost snapshots [--tag T] [--host H]\n\n"
    "Lists snapshots, oldest first: id, time (in this machine's zone, offset shown), host,\n"
    "kind (paths, mastodon = a whole server, mastodon-partial = taken with --only), tags,\n"
    "size, the paths of plain backups, \"INCOMPLETE\" when entries could not be read, and\n"
    "for Mastodon snapshots what they hold (components, versions, row counts).\n";

static double stat_num(cJSON *o, const char *k)
{
    cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, k) : NULL;
    return cJSON_IsNumber(v) ? v->valuedouble : 0;
}

cJSON *pf_snapshot_to_json(const pf_snapshot *s)
{
    cJSON *o = cJSON_CreateObject();
    char t[64], hex[PF_HEX_ID_LEN + 1];
    cJSON_AddStringToObject(o, "id", s->id);
    pf_snapshot_time_str(s, t, sizeof t);
    cJSON_AddStringToObject(o, "time", t);
    cJSON_AddNumberToObject(o, "tz_offset", s->tz_offset);
    pf_snapshot_time_local(s, t, sizeof t);
    cJSON_AddStringToObject(o, "time_local", t);
    cJSON_AddStringToObject(o, "kind", pf_snapshot_kind_name(s->kind));
    if (s->kind_inferred)
        cJSON_AddBoolToObject(o, "kind_inferred", true);
    cJSON_AddBoolToObject(o, "complete", s->complete);
    if (!s->complete) {
        cJSON *sk = cJSON_AddArrayToObject(o, "skipped");
        for (size_t i = 0; i < s->nskipped; i++)
            cJSON_AddItemToArray(sk, cJSON_CreateString(s->skipped[i]));
        cJSON_AddNumberToObject(o, "skipped_count", (double)s->skipped_count);
    }
    cJSON_AddStringToObject(o, "host", s->host);
    cJSON_AddStringToObject(o, "user", s->user);
    cJSON *tags = cJSON_AddArrayToObject(o, "tags");
    for (size_t i = 0; i < s->ntags; i++)
        cJSON_AddItemToArray(tags, cJSON_CreateString(s->tags[i]));
    cJSON *paths = cJSON_AddArrayToObject(o, "paths");
    for (size_t i = 0; i < s->npaths; i++)
        cJSON_AddItemToArray(paths, cJSON_CreateString(s->paths[i]));
    pf_hex(s->tree, PF_ID_LEN, hex);
    cJSON_AddStringToObject(o, "tree", hex);
    if (s->parent[0])
        cJSON_AddStringToObject(o, "parent", s->parent);
    if (s->components)
        cJSON_AddItemToObject(o, "components", cJSON_Duplicate(s->components, 1));
    if (s->manifest)
        cJSON_AddItemToObject(o, "manifest", cJSON_Duplicate(s->manifest, 1));
    if (s->stats)
        cJSON_AddItemToObject(o, "stats", cJSON_Duplicate(s->stats, 1));
    if (s->media_check.recorded)
        cJSON_AddItemToObject(o, "media_check", pf_media_check_to_json(&s->media_check));
    return o;
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
        if (len >= n)
            len = n - 1;
    }
}

int cmd_snapshots(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"tag", required_argument, 0, 't'},
                                         {"host", required_argument, 0, 'H'},
                                         {0, 0, 0, 0}};
    const char *tag = NULL, *host = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(snapshots_help, stdout);
            return PF_EXIT_OK;
        case 't':
            tag = optarg;
            break;
        case 'H':
            host = optarg;
            break;
        default:
            fputs(snapshots_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    pf_snapshot *all;
    size_t n;
    if (pf_repo_load_all_snapshots(r, &all, &n, &err)) {
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
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
            cJSON_AddItemToArray(arr, pf_snapshot_to_json(s));
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
    pf_snapshots_free(all, n);
    pf_repo_free(r);
    return PF_EXIT_OK;
}
