/* `copy --to URL [SNAPSHOT...]`: copies snapshots into a second repository. The copy
 * itself (re-keying, resuming, never copying twice) is repo/copy.h's; this is the command
 * around it: the destination's passphrase, which snapshots, what to print. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "repo/lock.h"
#include "repo/copy.h"

const pf_cmd_syntax pf_syntax_copy = {
    .usage = "usage: permafrost copy --to URL [SNAPSHOT...]\n\n"
             "Copies all snapshots (or those named) into the repository at URL, which may use\n"
             "another driver and passphrase: that passphrase comes from\n"
             "$PERMAFROST_TO_PASSWORD_FILE or $PERMAFROST_TO_PASSWORD (or a prompt). Snapshots\n"
             "already copied are skipped; only data the destination lacks is uploaded.\n",
    .longopts = (const struct option[]){{"to", required_argument, 0, 't'}, {0, 0, 0, 0}},
    .max_args = -1};

static char *to_passphrase(pf_err *err)
{
    const char *f = getenv("PERMAFROST_TO_PASSWORD_FILE");
    if (!f || !*f)
        f = pf_config_get("copy_password_file");
    const char *saved_file = getenv("PERMAFROST_PASSWORD_FILE");
    const char *saved_pw = getenv("PERMAFROST_PASSWORD");
    char *keep_file = saved_file ? strdup(saved_file) : NULL;
    char *keep_pw = saved_pw ? strdup(saved_pw) : NULL;
    /* Reuse the passphrase reader with the destination's variables in place. */
    unsetenv("PERMAFROST_PASSWORD_FILE");
    unsetenv("PERMAFROST_PASSWORD");
    if (f && *f)
        setenv("PERMAFROST_PASSWORD_FILE", f, 1);
    const char *p = getenv("PERMAFROST_TO_PASSWORD");
    if (p && *p)
        setenv("PERMAFROST_PASSWORD", p, 1);
    const char *saved_g = pf_g.password_file;
    pf_g.password_file = NULL;
    char *pass = pf_cli_passphrase(false, "Destination repository passphrase: ", err);
    pf_g.password_file = saved_g;
    unsetenv("PERMAFROST_PASSWORD_FILE");
    unsetenv("PERMAFROST_PASSWORD");
    if (keep_file)
        setenv("PERMAFROST_PASSWORD_FILE", keep_file, 1);
    if (keep_pw)
        setenv("PERMAFROST_PASSWORD", keep_pw, 1);
    free(keep_file);
    if (keep_pw)
        pf_cli_passphrase_free(keep_pw);
    return pass;
}

int cmd_copy(pf_cmd_ctx *cx)
{
    const char *to = pf_config_get("copy_to");
    for (size_t i = 0; i < cx->nopts; i++)
        to = cx->opts[i].arg; /* --to */
    if (!to && !pf_g.json) {
        fputs(pf_syntax_copy.usage, stderr);
        return PF_EXIT_USAGE;
    }
    if (!to)
        return pf_cli_usage(NULL, "copy needs --to URL (or copy_to = in the config)");
    /* The snapshots named: getopt's names, so that the loop below reads as before. */
    int argc = cx->argc, optind = 0;
    char **argv = cx->argv;
    pf_err err = {0};
    pf_copier *cp = NULL;
    /* The source, opened and locked (shared) as the table says. */
    pf_repo *src = pf_cmd_open(cx, &err) ? NULL : cx->repo, *dst = NULL;
    struct pf_lock *ld = NULL;
    pf_snapshot *all = NULL, *have = NULL;
    size_t n = 0, nhave = 0;
    int rc = PF_EXIT_OK;
    if (!src) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_store *dst_store =
        pf_cli_check_repo_url(to, &err) < 0 ? NULL : pf_store_open(to, &pf_g.store_opts, &err);
    char *pass = dst_store ? to_passphrase(&err) : NULL;
    if (!pass) {
        pf_store_free(dst_store);
        pf_err_prefix(&err, "destination");
        rc = pf_cli_fail(&err);
        goto out;
    }
    dst = pf_repo_open(dst_store, pass, &err);
    pf_cli_passphrase_free(pass);
    if (!dst) {
        pf_err_prefix(&err, "destination");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (!strcmp(src->id, dst->id)) {
        pf_err_set(&err, PF_EUSAGE, "source and destination are the same repository");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_index_file orphans = {0};
    if (!(ld = pf_cli_lock(dst, false, "copy", &err)) || pf_repo_load_index(src, &err) ||
        pf_repo_load_index(dst, &err) || pf_repo_index_orphan_packs(dst, &orphans, &err) ||
        pf_repo_load_all_snapshots(src, &all, &n, &err) ||
        pf_repo_load_all_snapshots(dst, &have, &nhave, &err)) {
        pf_index_file_free(&orphans);
        rc = pf_cli_fail(&err);
        goto out;
    }
    cp = pf_copy_new(src, dst, &orphans, pf_cli_workers(dst), &err);
    if (!cp) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    size_t copied = 0, skipped = 0;
    cJSON *list = pf_g.json ? cJSON_CreateArray() : NULL; /* --json: {from, to} per copy */
    for (size_t i = 0; i < n; i++) {
        pf_snapshot *s = &all[i];
        if (optind < argc) {
            int wanted = 0;
            for (int a = optind; a < argc; a++)
                if (!strncmp(s->id, argv[a], strlen(argv[a])) ||
                    (!strcmp(argv[a], "latest") && i == n - 1))
                    wanted = 1;
            if (!wanted)
                continue;
        }
        if (pf_copy_is_there(s, have, nhave)) {
            skipped++;
            continue;
        }
        char new_id[PF_HEX_ID_LEN + 1];
        if (pf_copy_snapshot(cp, s, new_id, &err)) {
            cJSON_Delete(list);
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (pf_g.verbosity >= 0 && !pf_g.json)
            printf("copied snapshot %.8s -> %.8s\n", s->id, new_id);
        if (list) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "from", s->id);
            cJSON_AddStringToObject(o, "to", new_id);
            cJSON_AddItemToArray(list, o);
        }
        copied++;
    }
    if (pf_copy_finish(cp, &err)) {
        cJSON_Delete(list);
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_copy_stats st = pf_copy_get_stats(cp);
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "copied", (double)copied);
        cJSON_AddNumberToObject(j, "skipped", (double)skipped);
        cJSON_AddNumberToObject(j, "blobs_uploaded", (double)st.blobs_copied);
        cJSON_AddNumberToObject(j, "bytes_uploaded", (double)st.bytes_copied);
        cJSON_AddNumberToObject(j, "blobs_present", (double)st.blobs_present);
        cJSON_AddItemToObject(j, "snapshots", list);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0) {
        char b[32];
        pf_human_bytes(st.bytes_copied, b, sizeof b);
        printf("%zu snapshot%s copied, %zu already there; %llu blobs (%s) uploaded, %llu "
               "already present\n",
               copied, copied == 1 ? "" : "s", skipped, (unsigned long long)st.blobs_copied, b,
               (unsigned long long)st.blobs_present);
    }
out:
    pf_copy_free(cp);
    pf_snapshots_free(all, n);
    pf_snapshots_free(have, nhave);
    pf_cli_unlock(ld);
    pf_repo_free(dst);
    return rc;
}
