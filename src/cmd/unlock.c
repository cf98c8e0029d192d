#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "repo/lock.h"

static const char unlock_help[] =
    "usage: permafrost unlock [--force]\n\n"
    "Removes stale locks (lease ran out, or holder dead on this host). With --force,\n"
    "removes every lock, naming each: only when you know no other permafrost runs.\n";

static void said(const pf_lock_info *li, void *ctx)
{
    (void)ctx;
    printf("removed %s lock %.8s: %s by %s (pid %lld on %s)%s%s\n",
           li->exclusive ? "exclusive" : "shared", li->id, li->command, li->user,
           (long long)li->pid, li->host, li->stale ? ", stale: " : "", li->stale ? li->stale_why : "");
}

int cmd_unlock(int argc, char **argv)
{
    static const struct option opts[] = {
        {"help", no_argument, 0, 'h'}, {"force", no_argument, 0, 'f'}, {0, 0, 0, 0}};
    bool all = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hf", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(unlock_help, stdout); return PF_EXIT_OK;
        case 'f': all = true; break;
        default: fputs(unlock_help, stderr); return PF_EXIT_USAGE;
        }
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    int rc = pf_lock_remove(r, all, said, NULL, &err) ? pf_cli_fail(&err) : PF_EXIT_OK;
    pf_repo_free(r);
    return rc;
}
