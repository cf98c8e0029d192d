#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "common/log.h"
#include "repo/reserve.h"

static const char init_help[] =
    "usage: permafrost [--repo URL] init\n\n"
    "Creates a repository at URL: a random master key sealed by the passphrase\n"
    "(scrypt), and the config. Refuses when a repository already exists there.\n";

int cmd_init(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(init_help, stdout);
            return PF_EXIT_OK;
        }
        fputs(init_help, stderr);
        return PF_EXIT_USAGE;
    }
    if (optind != argc) {
        fputs(init_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_store *st = pf_cli_open_store(&err);
    if (!st)
        return pf_cli_fail(&err);
    char *pass = pf_cli_passphrase(true, "New repository passphrase: ", &err);
    if (!pass) {
        pf_store_free(st);
        return pf_cli_fail(&err);
    }
    pf_repo *r = pf_repo_init(st, pass, NULL, &err);
    pf_cli_passphrase_free(pass);
    if (!r)
        return pf_cli_fail(&err);
    /* Room for prune's lock when the disk fills up one day (repo/reserve.h). */
    if (pf_reserve_ensure(r, &err)) {
        pf_warn("%s (prune writes it later)", err.msg);
        pf_err_clear(&err);
    }
    if (pf_g.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "id", r->id);
        cJSON_AddStringToObject(o, "location", r->store->location);
        pf_out_json(o);
    } else if (pf_g.verbosity >= 0) {
        printf("created repository %.8s at %s\n", r->id, r->store->location);
        printf("Keep the passphrase safe: without it the backups cannot be read.\n");
    }
    pf_repo_free(r);
    return PF_EXIT_OK;
}
