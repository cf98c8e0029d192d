#include "mastodon/archeck.h"

#include <stdio.h>
#include <string.h>

#include "common/log.h"
#include "mastodon/arscan.h"

int pf_ar_check_in_snapshot(PGconn *conn, void *ctx, pf_err *err)
{
    (void)err;
    pf_ar_check *c = ctx;
    pf_ar_found f;
    pf_err e = {0};
    if (pf_ar_scan(conn, &f, &e)) {
        c->verdict = PF_AR_UNVERIFIED;
        snprintf(c->problem, sizeof c->problem,
                 "could not look for ActiveRecord-encrypted values: %.600s", e.msg);
        pf_ar_found_free(&f);
        return 0;
    }
    if (!f.found) {
        c->verdict = PF_AR_NOT_NEEDED;
        pf_ar_found_free(&f);
        return 0;
    }
    snprintf(c->where, sizeof c->where, "%s", f.where);
    int have = c->keys ? pf_ar_keyset_count(c->keys) : 0;
    if (have < 3) {
        char missing[300] = "";
        for (int i = 0; i < 3; i++)
            if (!c->keys || !c->keys->value[i])
                snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                         *missing ? ", " : "", pf_ar_key_names[i]);
        c->verdict = PF_AR_MISSING;
        snprintf(c->problem, sizeof c->problem,
                 "the database holds ActiveRecord-encrypted values (%s) but %s %s not set in "
                 ".env.production nor in Mastodon's systemd units: without %s a restored "
                 "server cannot decrypt them (two-factor sign-in breaks); put the running "
                 "server's values into .env.production",
                 c->where, missing, strchr(missing, ',') ? "are" : "is",
                 strchr(missing, ',') ? "them" : "it");
        pf_ar_found_free(&f);
        return 0;
    }
    pf_ar_keys k = pf_ar_keyset_keys(c->keys);
    if (pf_ar_keys_fit(&k, f.sample, f.sample_len, &c->fit, &e) == 0) {
        c->verdict = PF_AR_DECRYPT;
    } else if (e.code == PF_EAUTH) {
        c->verdict = PF_AR_NO_FIT;
        snprintf(c->problem, sizeof c->problem,
                 "the ACTIVE_RECORD_ENCRYPTION_* keys of %s do not decrypt the database's "
                 "encrypted values (%s): a restore with them breaks two-factor sign-in; find "
                 "the keys the running Mastodon uses (its systemd units or environment) and "
                 "put them into .env.production",
                 c->keys->source[0], c->where);
    } else {
        c->verdict = PF_AR_UNVERIFIED;
        snprintf(c->problem, sizeof c->problem, "cannot verify the keys against %s: %.500s",
                 c->where, e.msg);
    }
    pf_ar_found_free(&f);
    return 0;
}

bool pf_ar_check_incomplete(const pf_ar_check *c)
{
    return c->verdict == PF_AR_MISSING || c->verdict == PF_AR_NO_FIT;
}

static const char *verdict_word(pf_ar_verdict v)
{
    switch (v) {
    case PF_AR_NOT_NEEDED:
        return "not needed";
    case PF_AR_DECRYPT:
        return "decrypt";
    case PF_AR_MISSING:
        return "missing";
    case PF_AR_NO_FIT:
        return "do not decrypt";
    case PF_AR_UNVERIFIED:
    case PF_AR_NOT_RUN:
        break;
    }
    return "unverified";
}

void pf_ar_check_describe(const pf_ar_check *c, cJSON *manifest)
{
    if (c->verdict == PF_AR_NOT_RUN)
        return;
    cJSON *e = cJSON_AddObjectToObject(manifest, "encryption");
    if (!e)
        return;
    if (*c->where)
        cJSON_AddStringToObject(e, "values", c->where);
    else
        cJSON_AddNullToObject(e, "values");
    cJSON_AddStringToObject(e, "keys", verdict_word(c->verdict));
    if (c->keys && pf_ar_keyset_count(c->keys)) {
        cJSON *s = cJSON_AddObjectToObject(e, "sources");
        for (int i = 0; s && i < 3; i++)
            if (c->keys->source[i])
                cJSON_AddStringToObject(s, pf_ar_key_names[i], c->keys->source[i]);
    }
}

const char *pf_ar_check_report(const cJSON *manifest, bool *problem, char *buf, size_t n)
{
    *problem = false;
    const cJSON *e = cJSON_GetObjectItemCaseSensitive(manifest, "encryption");
    const cJSON *k = cJSON_GetObjectItemCaseSensitive(e, "keys");
    if (!cJSON_IsString(k))
        return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, "values");
    const char *where = cJSON_IsString(v) ? v->valuestring : NULL;
    const char *kw = k->valuestring;
    if (!strcmp(kw, "not needed"))
        snprintf(buf, n, "encryption keys: the database held no ActiveRecord-encrypted values");
    else if (!strcmp(kw, "decrypt"))
        snprintf(buf, n, "encryption keys: they decrypt the database's encrypted values (%s)",
                 where ? where : "?");
    else {
        *problem = true;
        if (!strcmp(kw, "missing"))
            snprintf(buf, n,
                     "encryption keys: MISSING from the snapshot, and the database holds "
                     "encrypted values (%s)",
                     where ? where : "?");
        else if (!strcmp(kw, "do not decrypt"))
            snprintf(buf, n,
                     "encryption keys: they do NOT decrypt the database's encrypted values (%s)",
                     where ? where : "?");
        else
            snprintf(buf, n, "encryption keys: not verified at backup (%s)", where ? where : "?");
    }
    return buf;
}
