#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "repo/reserve.h"

const pf_cmd_syntax pf_syntax_init = {
    .usage = "usage: permafrost [--repo URL] init\n\n"
             "Creates a repository at URL: a random master key sealed by the passphrase\n"
             "(scrypt), and the config. Refuses when a repository already exists there.\n",
    .max_args = 0};

int cmd_init(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    char *pass = pf_cli_passphrase(true, "New repository passphrase: ", &err);
    if (!pass)
        return pf_cli_fail(&err);
    /* pf_repo_init takes the store, also when it fails. */
    pf_store *st = c->store;
    c->store = NULL;
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
