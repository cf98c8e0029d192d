/* `config check [FILE]` and `config keys`: the configuration file without running
 * anything. main() does not load the config for this command, so that a broken file can
 * still be checked and every one of its problems listed. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/conf.h"

const pf_cmd_syntax pf_syntax_config = {
    .usage =
        "usage: permafrost config check [FILE]\n"
        "       permafrost config keys\n\n"
        "check: reads FILE (default: --config, $PERMAFROST_CONFIG, else /etc/permafrost.conf)\n"
        "and checks every line: unknown keys (with the nearest known one), values of the wrong\n"
        "type, keys set twice. Prints \"FILE: ok\", or each problem as FILE:LINE: and exits 2.\n"
        "Nothing else is read or connected to.\n"
        "keys: lists the keys a config file may hold, their type and what they set\n"
        "(permafrost.conf(5) describes them).\n",
    .min_args = 1,
    .max_args = 2};

static int config_check(const char *path)
{
    pf_err err = {0};
    pf_conf_file f;
    if (pf_conf_read(path, &f, &err))
        return pf_cli_fail(&err);
    int rc = PF_EXIT_OK;
    if (pf_g.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "file", path);
        cJSON_AddBoolToObject(o, "ok", f.nproblems == 0);
        cJSON *a = cJSON_AddArrayToObject(o, "problems");
        for (size_t i = 0; i < f.nproblems; i++) {
            cJSON *p = cJSON_CreateObject();
            cJSON_AddNumberToObject(p, "line", f.problems[i].line);
            cJSON_AddStringToObject(p, "message", f.problems[i].text);
            cJSON_AddItemToArray(a, p);
        }
        pf_out_json(o);
    } else if (f.nproblems == 0) {
        printf("%s: ok\n", path);
    }
    for (size_t i = 0; !pf_g.json && i < f.nproblems; i++)
        fprintf(stderr, "%s\n", f.problems[i].text);
    if (f.nproblems) {
        if (!pf_g.json)
            fprintf(stderr, "permafrost: %s: %zu problem%s\n", path, f.nproblems,
                    f.nproblems == 1 ? "" : "s");
        else /* the document is on stdout; stderr ends with the error (docs/JSON.md) */
            pf_cli_usage(NULL, "%s: %zu problem%s", path, f.nproblems, f.nproblems == 1 ? "" : "s");
        rc = PF_EXIT_USAGE;
    }
    pf_conf_file_free(&f);
    return rc;
}

static int config_keys(void)
{
    if (pf_g.json) {
        cJSON *a = cJSON_CreateArray();
        for (size_t i = 0; i < pf_conf_nkeys; i++) {
            const pf_conf_key *k = &pf_conf_keys[i];
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "name", k->name);
            cJSON_AddStringToObject(o, "type", pf_conf_type_name(k->type));
            cJSON_AddStringToObject(o, "sets", k->sets);
            cJSON_AddStringToObject(o, "doc", k->doc);
            cJSON_AddItemToArray(a, o);
        }
        pf_out_json(a);
        return PF_EXIT_OK;
    }
    for (size_t i = 0; i < pf_conf_nkeys; i++) {
        const pf_conf_key *k = &pf_conf_keys[i];
        printf("%-19s %-10s %s%s%s%s\n", k->name, pf_conf_type_name(k->type), k->doc,
               *k->sets ? " [" : "", k->sets, *k->sets ? "]" : "");
    }
    return PF_EXIT_OK;
}

int cmd_config(pf_cmd_ctx *c)
{
    if (!strcmp(c->argv[0], "check")) {
        const char *path = c->argc == 2 ? c->argv[1] : pf_g.config_file;
        if (!path || !*path)
            path = getenv("PERMAFROST_CONFIG");
        if (!path || !*path)
            path = "/etc/permafrost.conf";
        return config_check(path);
    }
    if (!strcmp(c->argv[0], "keys") && c->argc == 1)
        return config_keys();
    fputs(pf_syntax_config.usage, stderr);
    return PF_EXIT_USAGE;
}
