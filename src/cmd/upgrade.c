/* `upgrade`: format 1 -> 2, which authenticates config with a MAC (docs/FORMAT.md §2).
 * An explicit command rather than something every write does: it changes what older
 * permafrost binaries can open, and it vouches for config as it is now (format 1 could
 * have been changed on the store), so it prints the values it seals for the operator to
 * compare with what they set up. */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"

const pf_cmd_syntax pf_syntax_upgrade = {
    .usage = "usage: permafrost upgrade\n\n"
             "Moves a repository of format 1 to format 2: writes config again with a MAC under a\n"
             "key derived from the master key, so that someone who can write the store but has no\n"
             "passphrase can no longer change it, and re-seals the key file of the passphrase\n"
             "given in format 2 (bound to the repository). Other passphrases keep working; run\n"
             "'permafrost key passwd' with each to re-seal it too. The values sealed are printed:\n"
             "check them (defaults: chunker 524288/1048576/8388608, pack size 16777216).\n"
             "Permafrost older than format 2 cannot open the repository afterwards.\n",
    .max_args = 0};

/* --json: docs/JSON.md, "upgrade". key is NULL when there was nothing to do. */
static void upgrade_json(const pf_repo *r, const char *key)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "repository", r->id);
    cJSON_AddBoolToObject(o, "upgraded", key != NULL);
    cJSON_AddNumberToObject(o, "format", r->format);
    if (key)
        cJSON_AddStringToObject(o, "key", key);
    else
        cJSON_AddNullToObject(o, "key");
    cJSON *ch = cJSON_AddObjectToObject(o, "chunker");
    cJSON_AddNumberToObject(ch, "min", (double)r->chunker.min);
    cJSON_AddNumberToObject(ch, "avg", (double)r->chunker.avg);
    cJSON_AddNumberToObject(ch, "max", (double)r->chunker.max);
    cJSON_AddNumberToObject(o, "pack_size", r->pack_size);
    pf_out_json(o);
}

int cmd_upgrade(pf_cmd_ctx *c)
{
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    pf_repo *r = c->repo;
    int rc = PF_EXIT_OK;
    char id[PF_HEX_ID_LEN + 1];
    if (r->format >= PF_CONFIG_V2) {
        if (pf_g.json)
            upgrade_json(r, NULL);
        else if (pf_g.verbosity >= 0)
            printf("repository %.8s is already of format %d: nothing to do\n", r->id, r->format);
    } else if (pf_repo_upgrade(r, c->passphrase, id, &err)) {
        rc = pf_cli_fail(&err);
    } else if (pf_g.json) {
        upgrade_json(r, id);
    } else if (pf_g.verbosity >= 0) {
        printf("repository %.8s is now of format 2: config sealed with id %s, chunker "
               "%zu/%zu/%zu, pack size %u\n",
               r->id, r->id, r->chunker.min, r->chunker.avg, r->chunker.max, r->pack_size);
        printf("key %.8s (format 2) replaces the key this passphrase opened\n", id);
    }
    return rc;
}
