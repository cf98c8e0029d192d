#include "repo/keys.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "repo/names.h"

typedef struct key_ids {
    char (*v)[PF_HEX_ID_LEN + 1];
    size_t n;
} key_ids;

static int collect(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)size;
    (void)err;
    key_ids *k = ctx;
    const char *id = pf_name_object_id(key, "keys");
    if (!id)
        return 0; /* temporary or foreign files are not key files */
    k->v = pf_xrealloc(k->v, (k->n + 1) * sizeof *k->v);
    memcpy(k->v[k->n++], id, PF_HEX_ID_LEN + 1);
    return 0;
}

static int list_ids(pf_repo *r, key_ids *k, pf_err *err)
{
    *k = (key_ids){0};
    if (pf_store_list(r->store, "keys/", collect, k, err)) {
        free(k->v);
        *k = (key_ids){0};
        return -1;
    }
    return 0;
}

static char *field(cJSON *o, const char *name)
{
    cJSON *v = o ? cJSON_GetObjectItem(o, name) : NULL;
    return pf_xstrdup(cJSON_IsString(v) ? v->valuestring : "");
}

int pf_keyfile_list(pf_repo *r, pf_keyfile_info **out, size_t *n, pf_err *err)
{
    key_ids k;
    *out = NULL;
    *n = 0;
    if (list_ids(r, &k, err))
        return -1;
    pf_keyfile_info *v = pf_xcalloc(k.n, sizeof *v);
    for (size_t i = 0; i < k.n; i++) {
        char key[80];
        pf_buf b = PF_BUF_INIT;
        pf_err e = {0};
        snprintf(key, sizeof key, "keys/%s", k.v[i]);
        cJSON *o = NULL;
        if (!pf_store_get(r->store, key, 0, PF_STORE_ALL, &b, &e))
            o = cJSON_ParseWithLength((const char *)b.data, b.len);
        pf_buf_free(&b);
        memcpy(v[i].id, k.v[i], sizeof v[i].id);
        v[i].created = field(o, "created");
        v[i].host = field(o, "host");
        v[i].user = field(o, "user");
        v[i].current = !strcmp(k.v[i], r->key_id);
        cJSON *kind = o ? cJSON_GetObjectItem(o, "kind") : NULL;
        v[i].write_only = cJSON_IsString(kind) && !strcmp(kind->valuestring, "write-only");
        cJSON_Delete(o);
    }
    *out = v;
    *n = k.n;
    free(k.v);
    return 0;
}

void pf_keyfile_free(pf_keyfile_info *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].created);
        free(v[i].host);
        free(v[i].user);
    }
    free(v);
}

static int remove_id(pf_repo *r, const char *id, pf_err *err)
{
    char key[80];
    snprintf(key, sizeof key, "keys/%s", id);
    return pf_store_remove(r->store, key, err);
}

int pf_keyfile_remove(pf_repo *r, const char *prefix, char id_out[PF_HEX_ID_LEN + 1], pf_err *err)
{
    key_ids k;
    if (list_ids(r, &k, err))
        return -1;
    size_t match = 0, matches = 0;
    for (size_t i = 0; i < k.n; i++)
        if (!strncmp(k.v[i], prefix, strlen(prefix))) {
            match = i;
            matches++;
        }
    int rc = -1;
    if (matches != 1 || !*prefix)
        pf_err_set(err, matches ? PF_EUSAGE : PF_ENOTFOUND,
                   matches ? "key id %s is ambiguous" : "no key %s: see 'permafrost key list'",
                   prefix);
    else if (k.n == 1)
        pf_err_set(err, PF_EUSAGE,
                   "refusing to remove the last key: the repository would become unreadable");
    else if (!strcmp(k.v[match], r->key_id))
        pf_err_set(err, PF_EUSAGE,
                   "refusing to remove the key in use: open the repository "
                   "with another passphrase to remove this one");
    else if (!(rc = remove_id(r, k.v[match], err)))
        memcpy(id_out, k.v[match], PF_HEX_ID_LEN + 1);
    free(k.v);
    return rc;
}

int pf_keyfile_remove_current(pf_repo *r, pf_err *err)
{
    return remove_id(r, r->key_id, err);
}

static int first_object(const char *id, void *ctx)
{
    snprintf(ctx, PF_HEX_ID_LEN + 1, "%s", id);
    return 1;
}

int pf_keyfile_verify_master(pf_repo *r, pf_err *err)
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
