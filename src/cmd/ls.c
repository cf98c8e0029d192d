#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "mastodon/mediacheck.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

const pf_cmd_syntax pf_syntax_ls = {
    .usage = "usage: permafrost ls SNAPSHOT [PATH]\n\n"
             "Lists the entries of a snapshot (below PATH), recursively.\n"
             "SNAPSHOT is an id prefix or 'latest'.\n",
    .min_args = 1,
    .max_args = 2};

static void mode_str(const pf_node *n, char out[11])
{
    static const char types[] = "?-dlpscb";
    out[0] = types[n->type < sizeof types - 1 ? n->type : 0];
    const char *rwx = "rwxrwxrwx";
    for (int i = 0; i < 9; i++)
        out[1 + i] = (n->mode & (0400u >> i)) ? rwx[i] : '-';
    if (n->mode & 04000)
        out[3] = (n->mode & 0100) ? 's' : 'S';
    if (n->mode & 02000)
        out[6] = (n->mode & 010) ? 's' : 'S';
    if (n->mode & 01000)
        out[9] = (n->mode & 01) ? 't' : 'T';
    out[10] = 0;
}

/* Prints a name so that a newline, a control character or invalid UTF-8 stays on one
 * line and can be told apart: C-style escapes, like `ls -b`; valid UTF-8 as it is. */
static void print_escaped(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int u = *p >= 0x80 ? pf_utf8_len(p) : 0;
        if (u) {
            fwrite(p, 1, (size_t)u, stdout);
            p += u - 1;
        } else if (*p == '\\')
            fputs("\\\\", stdout);
        else if (*p == '\n')
            fputs("\\n", stdout);
        else if (*p == '\t')
            fputs("\\t", stdout);
        else if (*p < 0x20 || *p >= 0x7f)
            printf("\\x%02x", *p);
        else
            putchar(*p);
    }
}

/* --json: the entries as one array, streamed (docs/JSON.md, "ls"). */
static pf_json_stream listing;

static void print_node(const pf_node *n, const char *path)
{
    if (pf_g.json) {
        static const char *names[] = {"?",    "file",   "dir",     "symlink",
                                      "fifo", "socket", "chardev", "blockdev"};
        cJSON *o = cJSON_CreateObject();
        pf_json_add_path(o, "path", path);
        cJSON_AddStringToObject(o, "type", names[n->type < 8 ? n->type : 0]);
        cJSON_AddNumberToObject(o, "mode", n->mode);
        cJSON_AddNumberToObject(o, "uid", n->uid);
        cJSON_AddNumberToObject(o, "gid", n->gid);
        cJSON_AddStringToObject(o, "user", n->user ? n->user : "");
        cJSON_AddStringToObject(o, "group", n->group ? n->group : "");
        cJSON_AddNumberToObject(o, "size", (double)n->size);
        char ns[32];
        snprintf(ns, sizeof ns, "%lld", (long long)n->mtime_ns);
        cJSON_AddStringToObject(o, "mtime_ns", ns); /* deprecated: docs/JSON.md */
        pf_json_add_file_time(o, "mtime", n->mtime_ns);
        if (n->type == PF_NODE_SYMLINK) {
            pf_json_add_path(o, "link", n->link);
        }
        pf_json_stream_item(&listing, o);
        return;
    }
    char m[11], t[32];
    mode_str(n, m);
    time_t secs = pf_ns_to_timespec(n->mtime_ns).tv_sec; /* rounded down before 1970 too */
    struct tm tm;
    localtime_r(&secs, &tm);
    strftime(t, sizeof t, "%Y-%m-%d %H:%M:%S", &tm);
    printf("%s %8s %8s %12llu %s ", m, n->user && *n->user ? n->user : "?",
           n->group && *n->group ? n->group : "?", (unsigned long long)n->size, t);
    print_escaped(path);
    if (n->type == PF_NODE_SYMLINK) {
        fputs(" -> ", stdout);
        print_escaped(n->link);
    }
    putchar('\n');
}

static int walk(pf_repo *r, const uint8_t tree[PF_ID_LEN], pf_buf *path, pf_err *err)
{
    pf_tree t;
    if (pf_repo_load_tree(r, tree, &t, err))
        return -1;
    size_t len = path->len;
    int rc = 0;
    for (size_t i = 0; i < t.count && !rc; i++) {
        path->len = len;
        pf_buf_printf(path, "/%s", t.nodes[i].name);
        print_node(&t.nodes[i], (const char *)path->data);
        if (t.nodes[i].type == PF_NODE_DIR)
            rc = walk(r, t.nodes[i].blobs[0], path, err);
    }
    path->len = len;
    path->data[len] = 0;
    pf_tree_free(&t);
    return rc;
}

int cmd_ls(pf_cmd_ctx *c)
{
    const char *ref = c->argv[0], *sub = c->argc == 2 ? c->argv[1] : "";
    pf_err err = {0};
    pf_snapshot s;
    pf_node n = {0};
    pf_buf path = PF_BUF_INIT;
    int rc = PF_EXIT_OK;
    pf_snapshot_want want = pf_snapshot_want_for(&sub, *sub ? 1 : 0);
    if (pf_cmd_open(c, &err) || pf_snapshot_resolve(c->repo, ref, &want, &s, &err))
        return pf_cli_fail(&err);
    pf_repo *r = c->repo;
    if (!pf_g.json) {
        char t[64], man[512];
        pf_snapshot_time_local(&s, t, sizeof t);
        printf("snapshot %.8s of %s at %s\n", s.id, s.host, t);
        pf_manifest_summary(&s, man, sizeof man);
        if (man[0])
            printf("manifest: %s\n", man);
        if (s.media_check.recorded)
            pf_mediacheck_print(&s.media_check, "", stdout);
    }
    if (pf_lookup_path(r, s.tree, sub, &n, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    while (*sub == '/')
        sub++;
    if (*sub)
        pf_buf_printf(&path, "/%s", sub);
    size_t l = path.len;
    while (l > 1 && path.data[l - 1] == '/')
        path.data[--l] = 0;
    path.len = l;
    if (*sub)
        print_node(&n, (const char *)path.data);
    if (n.type == PF_NODE_DIR && walk(r, n.blobs[0], &path, &err))
        rc = pf_cli_fail(&err);
    if (pf_g.json)
        pf_json_stream_end(&listing);
out:
    pf_buf_free(&path);
    pf_node_free(&n);
    pf_snapshot_free(&s);
    return rc;
}
