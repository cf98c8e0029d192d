#include <getopt.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repo/names.h"
#include "repo/paperkey.h"

static const char key_help[] =
    "usage: permafrost key list\n"
    "       permafrost key add [--new-password-file FILE]\n"
    "       permafrost key remove ID\n"
    "       permafrost key passwd [--new-password-file FILE]\n"
    "       permafrost key export --paper\n"
    "       permafrost key import --paper [FILE] [--new-password-file FILE]\n\n"
    "Several passphrases can open one repository. 'export --paper' prints the master key\n"
    "as a recovery sheet with a checksum per line: print it and keep it with your other\n"
    "offline secrets. 'import --paper' types it back (from FILE or stdin) and adds a new\n"
    "passphrase, for when every passphrase is lost.\n";

static char *new_passphrase(const char *file, pf_err *err)
{
    if (file) {
        FILE *f = fopen(file, "r");
        if (!f) {
            pf_err_sys(err, PF_EUSAGE, "cannot read %s", file);
            return NULL;
        }
        char buf[4096];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = 0;
        buf[strcspn(buf, "\r\n")] = 0;
        if (!buf[0]) {
            pf_err_set(err, PF_EUSAGE, "new passphrase file %s is empty", file);
            return NULL;
        }
        char *p = strdup(buf);
        OPENSSL_cleanse(buf, sizeof buf);
        return p;
    }
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

typedef struct key_row {
    char id[PF_HEX_ID_LEN + 1];
} key_row;

typedef struct key_rows {
    key_row *v;
    size_t n;
} key_rows;

static int collect(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)size;
    key_rows *k = ctx;
    const char *id = pf_name_object_id(key, "keys");
    if (!id)
        return 0;
    key_row *v = realloc(k->v, (k->n + 1) * sizeof *v);
    if (!v)
        return 1;
    k->v = v;
    memcpy(k->v[k->n++].id, id, PF_HEX_ID_LEN + 1);
    return 0;
}

static int list_keys(pf_repo *r)
{
    key_rows k = {0};
    pf_err err = {0};
    if (pf_store_list(r->store, "keys/", collect, &k, &err))
        return pf_cli_fail(&err);
    cJSON *arr = pf_g.json ? cJSON_CreateArray() : NULL;
    for (size_t i = 0; i < k.n; i++) {
        char key[80];
        pf_buf b = PF_BUF_INIT;
        snprintf(key, sizeof key, "keys/%s", k.v[i].id);
        cJSON *o = NULL;
        if (!pf_store_get(r->store, key, 0, PF_STORE_ALL, &b, &err))
            o = cJSON_ParseWithLength((const char *)b.data, b.len);
        pf_buf_free(&b);
        const char *created = "", *host = "", *user = "";
        cJSON *v;
        if (o && cJSON_IsString(v = cJSON_GetObjectItem(o, "created")))
            created = v->valuestring;
        if (o && cJSON_IsString(v = cJSON_GetObjectItem(o, "host")))
            host = v->valuestring;
        if (o && cJSON_IsString(v = cJSON_GetObjectItem(o, "user")))
            user = v->valuestring;
        int current = !strcmp(k.v[i].id, r->key_id);
        if (arr) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "id", k.v[i].id);
            cJSON_AddBoolToObject(j, "current", current);
            cJSON_AddStringToObject(j, "created", created);
            cJSON_AddStringToObject(j, "host", host);
            cJSON_AddStringToObject(j, "user", user);
            cJSON_AddItemToArray(arr, j);
        } else {
            printf("%c %.8s  %-20s  %s@%s\n", current ? '*' : ' ', k.v[i].id, created, user,
                   host);
        }
        cJSON_Delete(o);
    }
    if (arr)
        pf_out_json(arr);
    free(k.v);
    return PF_EXIT_OK;
}

static int remove_key(pf_repo *r, const char *prefix)
{
    key_rows k = {0};
    pf_err err = {0};
    if (pf_store_list(r->store, "keys/", collect, &k, &err))
        return pf_cli_fail(&err);
    int match = -1, matches = 0;
    for (size_t i = 0; i < k.n; i++)
        if (!strncmp(k.v[i].id, prefix, strlen(prefix))) {
            match = (int)i;
            matches++;
        }
    int rc = PF_EXIT_OK;
    if (matches != 1 || !*prefix) {
        pf_err_set(&err, matches ? PF_EUSAGE : PF_ENOTFOUND,
                   matches ? "key id %s is ambiguous" : "no key %s: see 'permafrost key list'",
                   prefix);
        rc = pf_cli_fail(&err);
    } else if (k.n == 1) {
        pf_err_set(&err, PF_EUSAGE, "refusing to remove the last key: the repository would "
                                    "become unreadable");
        rc = pf_cli_fail(&err);
    } else if (!strcmp(k.v[match].id, r->key_id)) {
        pf_err_set(&err, PF_EUSAGE, "refusing to remove the key in use: open the repository "
                                    "with another passphrase to remove this one");
        rc = pf_cli_fail(&err);
    } else {
        char key[80];
        snprintf(key, sizeof key, "keys/%s", k.v[match].id);
        if (pf_store_remove(r->store, key, &err))
            rc = pf_cli_fail(&err);
        else if (pf_g.verbosity >= 0)
            printf("removed key %.8s\n", k.v[match].id);
    }
    free(k.v);
    return rc;
}

/* Proves a master key belongs to the repository by opening one of its objects. */
static int first_object(const char *id, void *ctx)
{
    snprintf(ctx, PF_HEX_ID_LEN + 1, "%s", id);
    return 1;
}

static int verify_master(pf_repo *r, pf_err *err)
{
    static const char *dirs[] = {"snapshots", "index"};
    for (size_t i = 0; i < 2; i++) {
        char id[PF_HEX_ID_LEN + 1] = "";
        pf_err e = {0};
        pf_repo_list_objects(r, dirs[i], first_object, id, &e);
        if (!id[0])
            continue;
        pf_buf b = PF_BUF_INIT;
        int rc = pf_repo_load_object(r, dirs[i], id, &b, err);
        pf_buf_free(&b);
        if (rc)
            return pf_err_set(err, PF_EAUTH,
                              "the recovery sheet's key does not open this repository's data");
        return 0;
    }
    return 0;
}

static int import_paper(int argc, char **argv, const char *newfile)
{
    pf_err err = {0};
    FILE *in = stdin;
    if (optind < argc && !(in = fopen(argv[optind], "r"))) {
        pf_err_sys(&err, PF_EUSAGE, "cannot read %s", argv[optind]);
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
    } else if (verify_master(r, &err) || !(pass = new_passphrase(newfile, &err)) ||
               pf_repo_add_key(r, pass, id, &err)) {
        rc = pf_cli_fail(&err);
    } else if (pf_g.verbosity >= 0) {
        printf("added key %.8s: the repository opens with the new passphrase\n", id);
    }
    pf_cli_passphrase_free(pass);
    pf_repo_free(r);
    return rc;
}

int cmd_key(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"new-password-file", required_argument, 0, 'N'},
                                         {"paper", no_argument, 0, 'P'},
                                         {0, 0, 0, 0}};
    const char *newfile = NULL;
    bool paper = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h': fputs(key_help, stdout); return PF_EXIT_OK;
        case 'N': newfile = optarg; break;
        case 'P': paper = true; break;
        default: fputs(key_help, stderr); return PF_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        fputs(key_help, stderr);
        return PF_EXIT_USAGE;
    }
    const char *sub = argv[optind++];
    if (!strcmp(sub, "import")) {
        if (!paper) {
            fprintf(stderr, "permafrost: key import needs --paper\n");
            return PF_EXIT_USAGE;
        }
        return import_paper(argc, argv, newfile);
    }
    if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "remove") &&
        strcmp(sub, "passwd") && strcmp(sub, "export")) {
        fprintf(stderr, "permafrost: unknown key command \"%s\"\n", sub);
        return PF_EXIT_USAGE;
    }
    if (!strcmp(sub, "remove") && optind >= argc) {
        fprintf(stderr, "permafrost: key remove needs a key ID (see 'permafrost key list')\n");
        return PF_EXIT_USAGE;
    }
    if (!strcmp(sub, "export") && !paper) {
        fprintf(stderr, "permafrost: key export needs --paper\n");
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    int rc = PF_EXIT_OK;
    char id[PF_HEX_ID_LEN + 1];
    if (!strcmp(sub, "list")) {
        rc = list_keys(r);
    } else if (!strcmp(sub, "remove")) {
        rc = remove_key(r, argv[optind]);
    } else if (!strcmp(sub, "export")) {
        pf_buf sheet = PF_BUF_INIT;
        if (pf_paperkey_encode(r->keys.master, PF_KEY_LEN, r->id, &sheet, &err))
            rc = pf_cli_fail(&err);
        else
            fwrite(sheet.data, 1, sheet.len, stdout);
        pf_buf_free(&sheet);
    } else {
        char *pass = new_passphrase(newfile, &err);
        if (!pass || pf_repo_add_key(r, pass, id, &err)) {
            rc = pf_cli_fail(&err);
        } else if (!strcmp(sub, "passwd")) {
            char key[80];
            snprintf(key, sizeof key, "keys/%s", r->key_id);
            if (pf_store_remove(r->store, key, &err))
                rc = pf_cli_fail(&err);
            else if (pf_g.verbosity >= 0)
                printf("passphrase changed (key %.8s replaces %.8s)\n", id, r->key_id);
        } else if (pf_g.verbosity >= 0) {
            printf("added key %.8s\n", id);
        }
        pf_cli_passphrase_free(pass);
    }
    pf_repo_free(r);
    return rc;
}
