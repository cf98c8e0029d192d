#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "repo/keys.h"
#include "repo/names.h"
#include "repo/paperkey.h"

const pf_cmd_syntax pf_syntax_key = {
    .usage = "usage: permafrost key list\n"
             "       permafrost key add [--write-only] [--new-password-file FILE]\n"
             "       permafrost key remove ID\n"
             "       permafrost key passwd [--new-password-file FILE]\n"
             "       permafrost key export --paper\n"
             "       permafrost key import --paper [FILE] [--new-password-file FILE]\n\n"
             "Several passphrases can open one repository. 'export --paper' prints the master key\n"
             "as a recovery sheet with a checksum per line: print it and keep it with your other\n"
             "offline secrets. 'import --paper' types it back (from FILE or stdin) and adds a new\n"
             "passphrase, for when every passphrase is lost.\n\n"
             "'add --write-only' makes a key for the server being backed up: with it backups\n"
             "and wal-push work and deduplicate, but nothing stored can be read (restore, ls,\n"
             "check --read-data, prune need a full key). It moves a repository to format 3.\n",
    .longopts = (const struct option[]){{"new-password-file", required_argument, 0, 'N'},
                                        {"paper", no_argument, 0, 'P'},
                                        {"write-only", no_argument, 0, 'W'},
                                        {0, 0, 0, 0}},
    .min_args = 1,
    .max_args = -1};

static char *new_passphrase(const char *file, pf_err *err)
{
    if (file)
        return pf_cli_passphrase_file(file, "new passphrase file", err);
    const char *saved = getenv("PERMAFROST_PASSWORD_FILE");
    const char *saved_pw = getenv("PERMAFROST_PASSWORD");
    if ((saved && *saved) || (saved_pw && *saved_pw)) {
        pf_err_set(err, PF_EUSAGE,
                   "give the new passphrase with --new-password-file FILE (the environment "
                   "holds the current one)");
        return NULL;
    }
    return pf_cli_passphrase(true, "New passphrase: ", err);
}

static int list_keys(pf_repo *r)
{
    pf_keyfile_info *k;
    size_t n;
    pf_err err = {0};
    if (pf_keyfile_list(r, &k, &n, &err))
        return pf_cli_fail(&err);
    cJSON *arr = pf_g.json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < n; i++) {
        if (arr) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "id", k[i].id);
            cJSON_AddBoolToObject(j, "current", k[i].current);
            cJSON_AddBoolToObject(j, "write_only", k[i].write_only);
            cJSON_AddStringToObject(j, "created", k[i].created);
            cJSON_AddStringToObject(j, "host", k[i].host);
            cJSON_AddStringToObject(j, "user", k[i].user);
            cJSON_AddItemToArray(arr, j);
        } else {
            printf("%c %.8s  %-20s  %s@%s%s\n", k[i].current ? '*' : ' ', k[i].id, k[i].created,
                   k[i].user, k[i].host, k[i].write_only ? "  write-only" : "");
        }
    }
    if (arr)
        pf_out_json(arr);
    pf_keyfile_free(k, n);
    return PF_EXIT_OK;
}

/* --json: what key add, remove, passwd and import did (docs/JSON.md, "key"). */
static void key_result(const char *added, const char *removed)
{
    cJSON *o = cJSON_CreateObject();
    if (added)
        cJSON_AddStringToObject(o, "added", added);
    else
        cJSON_AddNullToObject(o, "added");
    if (removed)
        cJSON_AddStringToObject(o, "removed", removed);
    else
        cJSON_AddNullToObject(o, "removed");
    pf_out_json(o);
}

static int remove_key(pf_repo *r, const char *prefix)
{
    pf_err err = {0};
    char id[PF_HEX_ID_LEN + 1];
    if (pf_keyfile_remove(r, prefix, id, &err))
        return pf_cli_fail(&err);
    if (pf_g.json)
        key_result(NULL, id);
    else if (pf_g.verbosity >= 0)
        printf("removed key %.8s\n", id);
    return PF_EXIT_OK;
}

static int import_paper(const char *file, const char *newfile)
{
    pf_err err = {0};
    FILE *in = stdin;
    if (file && !(in = fopen(file, "r"))) {
        pf_err_sys(&err, PF_EUSAGE, "cannot read %s", file);
        return pf_cli_fail(&err);
    }
    pf_buf text = PF_BUF_INIT;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, in)) > 0)
        pf_buf_append(&text, chunk, n);
    if (in != stdin)
        fclose(in);
    uint8_t master[PF_PAPERKEY_KEY_MAX];
    size_t mlen = sizeof master;
    char repo_id[PF_PAPERKEY_REPO_ID_MAX + 1];
    int rc = pf_paperkey_decode((const char *)text.data, text.len, master, &mlen, repo_id, &err);
    pf_buf_free(&text);
    if (rc)
        return pf_cli_fail(&err);
    if (mlen != PF_KEY_LEN) {
        pf_err_set(&err, PF_EUSAGE, "the sheet holds a %zu-byte key, not a permafrost master key",
                   mlen);
        return pf_cli_fail(&err);
    }
    pf_store *st = pf_cli_open_store(&err);
    pf_repo *r = st ? pf_repo_open_master(st, master, &err) : NULL;
    OPENSSL_cleanse(master, sizeof master);
    if (!r)
        return pf_cli_fail(&err);
    rc = PF_EXIT_OK;
    char *pass = NULL, id[PF_HEX_ID_LEN + 1];
    if (strncmp(r->id, repo_id, strlen(repo_id))) {
        pf_err_set(&err, PF_EAUTH, "this sheet is for repository %s, not %.16s", repo_id, r->id);
        rc = pf_cli_fail(&err);
    } else if (pf_keyfile_verify_master(r, &err) || !(pass = new_passphrase(newfile, &err)) ||
               pf_repo_add_key(r, pass, id, &err)) {
        rc = pf_cli_fail(&err);
    } else if (pf_g.json) {
        key_result(id, NULL);
    } else if (pf_g.verbosity >= 0) {
        printf("added key %.8s: the repository opens with the new passphrase\n", id);
    }
    pf_cli_passphrase_free(pass);
    pf_repo_free(r);
    return rc;
}

int cmd_key(pf_cmd_ctx *c)
{
    const char *newfile = NULL;
    bool paper = false, write_only = false;
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].c == 'N')
            newfile = c->opts[i].arg;
        else if (c->opts[i].c == 'W')
            write_only = true;
        else
            paper = true;
    }
    const char *sub = c->argv[0], *arg = c->argc > 1 ? c->argv[1] : NULL;
    if (!strcmp(sub, "import")) {
        if (!paper) {
            return pf_cli_usage(NULL, "key import needs --paper");
        }
        /* The master key from the sheet opens the repository, not a passphrase. */
        return import_paper(arg, newfile);
    }
    if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "remove") &&
        strcmp(sub, "passwd") && strcmp(sub, "export")) {
        return pf_cli_usage(NULL, "unknown key command \"%s\"", sub);
    }
    if (!strcmp(sub, "remove") && !arg) {
        return pf_cli_usage(NULL, "key remove needs a key ID (see 'permafrost key list')");
    }
    if (!strcmp(sub, "export") && !paper) {
        return pf_cli_usage(NULL, "key export needs --paper");
    }
    if (write_only && strcmp(sub, "add")) {
        return pf_cli_usage(NULL, "--write-only goes with 'key add'");
    }
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    pf_repo *r = c->repo;
    int rc = PF_EXIT_OK;
    char id[PF_HEX_ID_LEN + 1];
    if (strcmp(sub, "list") &&
        pf_repo_need_full_key(r, strcmp(sub, "export") ? "key changes" : "key export --paper",
                              &err))
        return pf_cli_fail(&err);
    if (write_only) {
        char *pass = new_passphrase(newfile, &err);
        int was = r->format;
        if (pass && c->passphrase && !strcmp(pass, c->passphrase))
            pf_err_set(&err, PF_EUSAGE,
                       "the write-only key needs a passphrase of its own: this one opens a full "
                       "key");
        else if (pass && !pf_repo_add_write_key(r, pass, id, &err)) {
            if (pf_g.json)
                key_result(id, NULL);
            else if (pf_g.verbosity >= 0)
                printf("added write-only key %.8s%s: give the server being backed up this "
                       "passphrase only; keep the full key's off it\n",
                       id, was < r->format ? " (the repository is now of format 3)" : "");
            pf_cli_passphrase_free(pass);
            return PF_EXIT_OK;
        }
        pf_cli_passphrase_free(pass);
        return pf_cli_fail(&err);
    }
    if (!strcmp(sub, "list")) {
        rc = list_keys(r);
    } else if (!strcmp(sub, "remove")) {
        rc = remove_key(r, arg);
    } else if (!strcmp(sub, "export")) {
        pf_buf sheet = PF_BUF_INIT;
        if (pf_paperkey_encode(r->keys.master, PF_KEY_LEN, r->id, &sheet, &err))
            rc = pf_cli_fail(&err);
        else if (pf_g.json) {
            cJSON *o = cJSON_CreateObject();
            cJSON_AddStringToObject(o, "repository", r->id);
            cJSON_AddStringToObject(o, "sheet", (const char *)sheet.data);
            pf_out_json(o);
        } else
            fwrite(sheet.data, 1, sheet.len, stdout);
        pf_buf_free(&sheet);
    } else {
        char *pass = new_passphrase(newfile, &err);
        if (!pass || pf_repo_add_key(r, pass, id, &err)) {
            rc = pf_cli_fail(&err);
        } else if (!strcmp(sub, "passwd")) {
            if (pf_keyfile_remove_current(r, &err))
                rc = pf_cli_fail(&err);
            else if (pf_g.json)
                key_result(id, r->key_id);
            else if (pf_g.verbosity >= 0)
                printf("passphrase changed (key %.8s replaces %.8s)\n", id, r->key_id);
        } else if (pf_g.json) {
            key_result(id, NULL);
        } else if (pf_g.verbosity >= 0) {
            printf("added key %.8s\n", id);
        }
        pf_cli_passphrase_free(pass);
    }
    return rc;
}
