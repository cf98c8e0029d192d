#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/lock.h"

const pf_cmd_syntax pf_syntax_unlock = {
    .usage = "usage: permafrost unlock [--force]\n\n"
             "Removes stale locks (lease ran out, or holder dead on this host). With --force,\n"
             "removes every lock, naming each: only when you know no other permafrost runs.\n",
    .shortopts = "f",
    .longopts = (const struct option[]){{"force", no_argument, 0, 'f'}, {0, 0, 0, 0}},
    .max_args = -1};

/* --json: the removed locks, in the fields of status's "locks" (docs/JSON.md, "unlock"). */
static void said(const pf_lock_info *li, void *ctx)
{
    if (ctx) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", li->id);
        cJSON_AddStringToObject(o, "host", li->host);
        cJSON_AddStringToObject(o, "user", li->user);
        cJSON_AddStringToObject(o, "command", li->command);
        cJSON_AddNumberToObject(o, "pid", (double)li->pid);
        cJSON_AddBoolToObject(o, "exclusive", li->exclusive);
        pf_json_add_time(o, "created", li->created * 1000000000);
        cJSON_AddBoolToObject(o, "stale", li->stale);
        if (li->stale)
            cJSON_AddStringToObject(o, "stale_why", li->stale_why);
        cJSON_AddItemToArray(ctx, o);
        return;
    }
    printf("removed %s lock %.8s: %s by %s (pid %lld on %s)%s%s\n",
           li->exclusive ? "exclusive" : "shared", li->id, li->command, li->user,
           (long long)li->pid, li->host, li->stale ? ", stale: " : "",
           li->stale ? li->stale_why : "");
}

int cmd_unlock(pf_cmd_ctx *c)
{
    bool all = c->nopts > 0; /* --force */
    pf_err err = {0};
    cJSON *doc = pf_g.json ? cJSON_CreateObject() : NULL;
    cJSON *removed = doc ? cJSON_AddArrayToObject(doc, "removed") : NULL;
    if (doc)
        cJSON_AddBoolToObject(doc, "force", all);
    if (pf_cmd_open(c, &err) || pf_lock_remove(c->repo, all, said, removed, &err)) {
        cJSON_Delete(doc);
        return pf_cli_fail(&err);
    }
    if (doc)
        pf_out_json(doc);
    return PF_EXIT_OK;
}
