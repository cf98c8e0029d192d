#include "mastodon/safety.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mastodon/arscan.h"
#include "mastodon/search.h"
#include "mastodon/units.h"
#include "repo/restorer.h"
#include "repo/tree.h"

int pf_safety_backup_prepare(pf_mastodon_safety *s, const pf_mastodon_env *env,
                             const char *env_path, const char *unit_path, const char *pgb_ini,
                             const char *cfg_host, int cfg_port, pf_pg_conn *pg, pf_err *err)
{
    memset(s, 0, sizeof *s);
    s->check.keys = &s->keys;
    if (pf_ar_keyset_find(env, env_path, unit_path, &s->keys, err))
        return pf_err_prefix(err, "looking for the ACTIVE_RECORD_ENCRYPTION_* keys");
    if (!pg)
        return 0; /* no dump this time */
    /* Root over a socket without a password (peer authentication, the standard install):
     * we could only knock as root, which PostgreSQL would log as a failed login, and a
     * pgbouncer is not set up that way. */
    pf_pg_conn as_db, as_su;
    if (pf_pg_peer_identities(pg, &as_db, &as_su))
        return 0;
    bool refused = false;
    pf_pgbouncer_statement_mode(pg, &refused, err);
    if (!refused)
        return 0;
    const char *from = NULL;
    pf_err e = {0};
    if (pf_pgbouncer_bypass(pg, cfg_host, cfg_port, pgb_ini, &s->real, &from, &e))
        return pf_err_set(err, PF_EUSAGE,
                          "%s:%d is a pgbouncer in statement pooling mode, which refuses the "
                          "dump's transaction, and PostgreSQL itself cannot be found: %s; set "
                          "pg_host and pg_port in permafrost.conf to PostgreSQL's own address "
                          "(or pgbouncer_ini to a readable pgbouncer.ini)",
                          pg->host ? pg->host : "(socket)", pg->port > 0 ? pg->port : 5432, e.msg);
    pf_info("postgres: %s:%d is a pgbouncer in statement pooling mode: dumping from PostgreSQL "
            "itself at %s:%d (from %s)",
            pg->host ? pg->host : "(socket)", pg->port > 0 ? pg->port : 5432, s->real.host,
            s->real.port, from);
    s->bypassed = true;
    pg->host = s->real.host;
    pg->port = s->real.port;
    return 0;
}

int pf_safety_in_snapshot(PGconn *conn, void *ctx, pf_err *err)
{
    pf_mastodon_safety *s = ctx;
    return pf_ar_check_in_snapshot(conn, &s->check, err);
}

/* ---- the systemd files, as a tree under secrets/systemd/ ---- */

static int cmp_path(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds files[lo, hi) (absolute paths, sorted, all sharing their first `skip` bytes, which
 * end with '/') to d: the next component names a file, or a directory holding the ones
 * that share it. */
static int add_tree(pf_archiver *a, pf_dir *d, char **files, size_t lo, size_t hi, size_t skip,
                    pf_err *err)
{
    for (size_t i = lo; i < hi;) {
        const char *rest = files[i] + skip;
        const char *slash = strchr(rest, '/');
        if (!slash) {
            if (pf_archive_path(a, d, rest, files[i], NULL, err))
                return -1;
            i++;
            continue;
        }
        size_t cl = (size_t)(slash - rest);
        size_t j = i + 1;
        while (j < hi && !strncmp(files[j] + skip, rest, cl + 1))
            j++;
        char name[256];
        if (cl >= sizeof name)
            return pf_err_set(err, PF_EUSAGE, "%s: a path component is too long", files[i]);
        memcpy(name, rest, cl);
        name[cl] = 0;
        pf_dir *sub = pf_dir_begin(a, d, name, err);
        if (!sub)
            return -1;
        if (add_tree(a, sub, files, i, j, skip + cl + 1, err)) {
            pf_dir_abort(sub);
            return -1;
        }
        if (pf_dir_end(a, sub, NULL, err))
            return -1;
        i = j;
    }
    return 0;
}

int pf_safety_backup_secrets(const pf_mastodon_safety *s, pf_archiver *a, pf_dir *secrets,
                             pf_err *err)
{
    const pf_ar_keyset *ks = &s->keys;
    if (pf_ar_keyset_count(ks)) {
        pf_buf text = PF_BUF_INIT;
        pf_ar_keyset_env_text(ks, &text);
        pf_sink *sink = pf_archive_stream_begin(a, secrets, PF_AR_KEYS_FILE, 0600, err);
        if (!sink) {
            pf_buf_free(&text);
            return -1;
        }
        if (sink->write(sink, text.data, text.len, err)) {
            pf_buf_free(&text);
            pf_archive_stream_abort(sink);
            return -1;
        }
        pf_buf_free(&text);
        if (pf_archive_stream_end(a, sink, err))
            return -1;
    }
    for (int i = 0; i < 3; i++)
        if (ks->from_systemd[i])
            pf_info("secrets: %s comes from %s (Mastodon's %s), not .env.production",
                    pf_ar_key_names[i], ks->source[i], ks->unit ? ks->unit : "unit");
    if (!ks->nfiles)
        return 0;
    char **files = malloc(ks->nfiles * sizeof *files);
    if (!files)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    size_t n = 0;
    for (size_t i = 0; i < ks->nfiles; i++)
        if (ks->files[i][0] == '/')
            files[n++] = ks->files[i];
    qsort(files, n, sizeof *files, cmp_path);
    int rc = 0;
    pf_dir *d = pf_dir_begin(a, secrets, PF_SAFETY_SYSTEMD_DIR, err);
    if (!d)
        rc = -1;
    else if (add_tree(a, d, files, 0, n, 1, err)) {
        pf_dir_abort(d);
        rc = -1;
    } else {
        rc = pf_dir_end(a, d, NULL, err);
    }
    for (size_t i = 0; i < n && !rc; i++)
        pf_info("secrets: %s backed up as secrets/%s%s", files[i], PF_SAFETY_SYSTEMD_DIR, files[i]);
    free(files);
    return rc;
}

bool pf_safety_backup_describe(const pf_mastodon_safety *s, const pf_mastodon_env *env,
                               cJSON *manifest)
{
    pf_ar_check_describe(&s->check, manifest);
    cJSON *enc = cJSON_GetObjectItemCaseSensitive(manifest, "encryption");
    if (enc && s->keys.nfiles) {
        cJSON *files = cJSON_AddArrayToObject(enc, "systemd_files");
        for (size_t i = 0; files && i < s->keys.nfiles; i++)
            cJSON_AddItemToArray(files, cJSON_CreateString(s->keys.files[i]));
    }
    if (env)
        pf_mastodon_search_describe(env, manifest);
    if (s->check.verdict == PF_AR_DECRYPT)
        pf_info("postgres: the ACTIVE_RECORD_ENCRYPTION_* keys decrypt the database's encrypted "
                "values (%s)",
                s->check.where);
    else if (s->check.verdict == PF_AR_UNVERIFIED)
        pf_warn("postgres: %s", s->check.problem);
    if (!pf_ar_check_incomplete(&s->check))
        return false;
    pf_log(PF_LOG_ERROR, "backup incomplete: %s", s->check.problem);
    return true;
}

void pf_safety_free(pf_mastodon_safety *s)
{
    if (!s)
        return;
    pf_ar_keyset_free(&s->keys);
    memset(s, 0, sizeof *s);
}

/* ---- restore ---- */

/* The snapshot's keys file, at most 64 KiB: a forged snapshot may name a huge one. */
static int load_keys_file(pf_repo *r, const uint8_t *tree, pf_unit_env *u, pf_err *err)
{
    pf_node n = {0};
    char path[128];
    snprintf(path, sizeof path, "secrets/%s", PF_AR_KEYS_FILE);
    if (pf_lookup_path(r, tree, path, &n, err))
        return -1;
    int rc = 0;
    pf_buf b = PF_BUF_INIT;
    if (n.size > 65536)
        rc = pf_err_set(err, PF_ECORRUPT, "%s is %llu bytes: refusing it", path,
                        (unsigned long long)n.size);
    for (size_t i = 0; !rc && i < n.nblobs; i++) {
        rc = pf_repo_load_blob(r, n.blobs[i], &b, err);
        if (!rc && b.len > 65536)
            rc = pf_err_set(err, PF_ECORRUPT, "%s holds more than its size: refusing it", path);
    }
    if (!rc)
        pf_units_apply_envfile(u, b.data ? (const char *)b.data : "", b.len, path);
    pf_buf_free(&b);
    pf_node_free(&n);
    return rc;
}

int pf_safety_restore_keys_check(pf_repo *r, const uint8_t *tree, const pf_mastodon_env *snap_env,
                                 const char *target_env, bool force, pf_err *err)
{
    if (force)
        return 0;
    FILE *f = fopen(target_env, "r");
    if (!f)
        return 0; /* nothing there to disagree with */
    fclose(f);
    char live[4096];
    snprintf(live, sizeof live, "%s", target_env);
    char *slash = strrchr(live, '/');
    if (slash)
        *slash = 0;
    pf_mastodon_env tenv;
    pf_err e = {0};
    if (pf_mastodon_env_load(slash ? live : ".", &tenv, &e)) {
        pf_mastodon_env_free(&tenv);
        return 0; /* unreadable or not Mastodon's: the secrets component says so */
    }
    pf_unit_env u = {0};
    const char *snap[3] = {NULL, NULL, NULL};
    pf_err le = {0};
    if (load_keys_file(r, tree, &u, &le) == 0) {
        for (int i = 0; i < 3; i++)
            snap[i] = pf_unit_env_get(&u, pf_ar_key_names[i], NULL);
    } else if (le.code == PF_ENOTFOUND && snap_env) {
        for (int i = 0; i < 3; i++)
            snap[i] = pf_mastodon_env_get(snap_env, pf_ar_key_names[i]);
    } else if (le.code != PF_ENOTFOUND) {
        *err = le;
        pf_unit_env_free(&u);
        pf_mastodon_env_free(&tenv);
        return -1;
    }
    char names[300];
    int n = pf_ar_keys_differ(snap, &tenv, names, sizeof names);
    pf_unit_env_free(&u);
    pf_mastodon_env_free(&tenv);
    if (!n)
        return 0;
    return pf_err_set(err, PF_EEXIST,
                      "%s sets other %s than the snapshot: the restored database's encrypted "
                      "values (two-factor secrets) would not decrypt with them (was "
                      "mastodon:setup run again?); put the snapshot's values there "
                      "(permafrost dump SNAPSHOT secrets/%s) or use --force",
                      target_env, names, PF_AR_KEYS_FILE);
}

int pf_safety_restore_pg(pf_pg_restore_opts *po, const char *pgb_ini, char *hostbuf, size_t n,
                         pf_err *err)
{
    pf_pg_conn c = {.host = po->host,
                    .port = po->port,
                    .dbname = po->dbname,
                    .user = po->admin_user ? po->admin_user : "postgres",
                    .password = po->admin_password};
    pf_pgbouncer_info info;
    pf_err e = {0};
    if (pf_pgbouncer_probe(&c, &info, &e) || !info.detected)
        return 0; /* not a pgbouncer, or nothing there: the restore's own check says why */
    char what[160];
    snprintf(what, sizeof what, "%s:%d is %s", po->host ? po->host : "(socket)",
             po->port > 0 ? po->port : 5432, *info.version ? info.version : "a pgbouncer");
    pf_pgbouncer_target t;
    const char *from = NULL;
    if (pf_pgbouncer_bypass(&c, NULL, 0, pgb_ini, &t, &from, &e))
        return pf_err_set(err, PF_EUSAGE,
                          "%s: creating the roles and the database and pg_restore need "
                          "PostgreSQL itself, and it cannot be found: %s; give PostgreSQL's own "
                          "address with --pg-host and --pg-port, or make pgbouncer.ini readable "
                          "(pgbouncer_ini in permafrost.conf)",
                          what, e.msg);
    snprintf(hostbuf, n, "%s", t.host);
    pf_info("postgres: %s: restoring into PostgreSQL itself at %s:%d (from %s); the restored "
            ".env.production keeps pointing Mastodon at pgbouncer",
            what, t.host, t.port, from);
    po->host = hostbuf;
    po->port = t.port;
    return 0;
}

void pf_safety_drill_keys(pf_repo *r, const uint8_t *tree, PGconn *c, bool *ok, char *detail,
                          size_t n)
{
    pf_ar_found f;
    pf_err e = {0};
    *ok = false;
    if (pf_ar_scan(c, &f, &e)) {
        snprintf(detail, n, "cannot look for encrypted values: %s", e.msg);
        pf_ar_found_free(&f);
        return;
    }
    if (!f.found) {
        *ok = true;
        snprintf(detail, n, "no ActiveRecord-encrypted values in the restored database");
        pf_ar_found_free(&f);
        return;
    }
    pf_unit_env u = {0};
    if (load_keys_file(r, tree, &u, &e)) {
        snprintf(detail, n,
                 "the restored database holds encrypted values (%s) but the snapshot holds no "
                 "ACTIVE_RECORD_ENCRYPTION_* keys (%s)",
                 f.where, e.msg);
    } else {
        pf_ar_keys k = {pf_unit_env_get(&u, PF_AR_PRIMARY, NULL),
                        pf_unit_env_get(&u, PF_AR_DETERMINISTIC, NULL),
                        pf_unit_env_get(&u, PF_AR_SALT, NULL)};
        if (pf_ar_keys_fit(&k, f.sample, f.sample_len, NULL, &e) == 0) {
            *ok = true;
            snprintf(detail, n, "the snapshot's keys decrypt the restored %s", f.where);
        } else {
            snprintf(detail, n, "the snapshot's keys do not decrypt the restored %s: %s", f.where,
                     e.msg);
        }
    }
    pf_unit_env_free(&u);
    pf_ar_found_free(&f);
}

size_t pf_safety_restore_todo(const cJSON *manifest, char **todo, size_t ntodo, size_t max)
{
    const cJSON *enc = cJSON_GetObjectItemCaseSensitive(manifest, "encryption");
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(enc, "systemd_files");
    if (cJSON_IsArray(files) && cJSON_GetArraySize(files) > 0 && ntodo < max) {
        pf_buf b = PF_BUF_INIT;
        pf_buf_append_str(&b, "Put back the files that held ACTIVE_RECORD_ENCRYPTION_* keys "
                              "(they are not in .env.production), then systemctl daemon-reload:");
        const cJSON *f;
        cJSON_ArrayForEach(f, files)
        {
            if (cJSON_IsString(f) && f->valuestring[0] == '/')
                pf_buf_printf(&b, "\n     permafrost dump SNAPSHOT secrets/%s%.1000s > %.1000s",
                              PF_SAFETY_SYSTEMD_DIR, f->valuestring, f->valuestring);
        }
        size_t len;
        todo[ntodo++] = (char *)pf_buf_detach(&b, &len);
    }
    char buf[600];
    if (ntodo < max && pf_mastodon_search_todo(manifest, buf, sizeof buf)) {
        char *t = strdup(buf);
        if (t)
            todo[ntodo++] = t;
    }
    return ntodo;
}
