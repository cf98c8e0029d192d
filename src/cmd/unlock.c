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

static void said(const pf_lock_info *li, void *ctx)
{
    (void)ctx;
    printf("removed %s lock %.8s: %s by %s (pid %lld on %s)%s%s\n",
           li->exclusive ? "exclusive" : "shared", li->id, li->command, li->user,
           (long long)li->pid, li->host, li->stale ? ", stale: " : "", li->stale ? li->stale_why : "");
}

int cmd_unlock(pf_cmd_ctx *c)
{
    bool all = c->nopts > 0; /* --force */
    pf_err err = {0};
    if (pf_cmd_open(c, &err) || pf_lock_remove(c->repo, all, said, NULL, &err))
        return pf_cli_fail(&err);
    return PF_EXIT_OK;
}
