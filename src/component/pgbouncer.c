#include "component/pgbouncer.h"

#include <errno.h>
#include <ini.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/log.h"

/* Copies as much of src as fits, NUL-terminated. */
static void copy(char *dst, size_t n, const char *src)
{
    size_t l = strnlen(src, n - 1);
    memcpy(dst, src, l);
    dst[l] = 0;
}

static PGconn *connect_db(const pf_pg_conn *c, const char *dbname)
{
    char port[16];
    snprintf(port, sizeof port, "%d", c->port > 0 ? c->port : 5432);
    const char *keys[8], *vals[8];
    int n = 0;
#define KV(k, v)                                                                                   \
    do {                                                                                           \
        if (v) {                                                                                   \
            keys[n] = k;                                                                           \
            vals[n++] = v;                                                                         \
        }                                                                                          \
    } while (0)
    KV("host", c->host);
    keys[n] = "port";
    vals[n++] = port;
    KV("dbname", dbname);
    KV("user", c->user ? c->user : "mastodon");
    KV("password", c->password);
    KV("connect_timeout", "10");
    KV("application_name", "permafrost");
#undef KV
    keys[n] = vals[n] = NULL;
    return PQconnectdbParams(keys, vals, 0);
}

int pf_pgbouncer_probe(const pf_pg_conn *c, pf_pgbouncer_info *info, pf_err *err)
{
    memset(info, 0, sizeof *info);
    PGconn *a = connect_db(c, "pgbouncer");
    if (!a)
        return pf_err_set(err, PF_EGENERIC, "pgbouncer probe: out of memory");
    if (PQstatus(a) == CONNECTION_OK) {
        PGresult *r = PQexec(a, "SHOW VERSION");
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) >= 1 && PQnfields(r) >= 1 &&
            !strncmp(PQgetvalue(r, 0, 0), "PgBouncer", 9)) {
            info->detected = true;
            snprintf(info->version, sizeof info->version, "%s", PQgetvalue(r, 0, 0));
        }
        PQclear(r);
    } else {
        const char *m = PQerrorMessage(a);
        /* pgbouncer's refusal of a user who is neither admin nor stats user. */
        if (strstr(m, "FATAL:  not allowed"))
            info->detected = true;
        else if (!strstr(m, "FATAL") && !strstr(m, "authentication") && !strstr(m, "password")) {
            /* Nothing answered: not ours to judge; the caller's own connection says why. */
            char msg[512];
            snprintf(msg, sizeof msg, "%s", m);
            for (char *p = msg; *p; p++)
                if (*p == '\n')
                    *p = ' ';
            PQfinish(a);
            pf_err_set(err, PF_ECONN, "cannot connect to %s:%d: %s", c->host ? c->host : "(socket)",
                       c->port > 0 ? c->port : 5432, msg);
            err->retryable = true;
            return -1;
        }
    }
    PQfinish(a);
    if (!info->detected || !c->dbname)
        return 0;
    return pf_pgbouncer_statement_mode(c, &info->statement_mode, err);
}

int pf_pgbouncer_statement_mode(const pf_pg_conn *c, bool *refused, pf_err *err)
{
    (void)err;
    *refused = false;
    PGconn *d = connect_db(c, c->dbname ? c->dbname : "mastodon_production");
    if (d && PQstatus(d) == CONNECTION_OK) {
        PGresult *r = PQexec(d, "BEGIN");
        bool began = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (began) {
            r = PQexec(d, "SELECT 1");
            if (PQresultStatus(r) != PGRES_TUPLES_OK &&
                strstr(PQerrorMessage(d), "statement pooling"))
                *refused = true;
            PQclear(r);
            r = PQexec(d, "ROLLBACK");
            PQclear(r);
        } else if (strstr(PQerrorMessage(d), "statement pooling")) {
            *refused = true;
        }
    }
    PQfinish(d);
    return 0;
}

/* ---- pgbouncer.ini ---- */

typedef struct ini_ctx {
    const char *want;
    bool have_exact, have_star;
    char exact[4096], star[4096];
    char socket_dir[256];
    char pool_mode[16];
} ini_ctx;

static int on_ini(void *user, const char *section, const char *name, const char *value)
{
    ini_ctx *x = user;
    if (!strcmp(section, "databases")) {
        if (!strcmp(name, x->want)) {
            x->have_exact = true;
            snprintf(x->exact, sizeof x->exact, "%s", value);
        } else if (!strcmp(name, "*")) {
            x->have_star = true;
            snprintf(x->star, sizeof x->star, "%s", value);
        }
    } else if (!strcmp(section, "pgbouncer")) {
        if (!strcmp(name, "unix_socket_dir"))
            snprintf(x->socket_dir, sizeof x->socket_dir, "%s", value);
        else if (!strcmp(name, "pool_mode"))
            snprintf(x->pool_mode, sizeof x->pool_mode, "%s", value);
    }
    return 1;
}

/* The next key=value of a libpq-style connection string (values may be 'quoted', with
 * '' or \' for a quote). Returns false at the end or on a malformed string. */
static bool next_kv(const char **sp, char *key, size_t kn, char *val, size_t vn, bool *bad)
{
    const char *s = *sp;
    while (*s == ' ' || *s == '\t')
        s++;
    if (!*s)
        return false;
    size_t k = 0;
    while (*s && *s != '=' && *s != ' ' && *s != '\t') {
        if (k + 1 < kn)
            key[k++] = *s;
        s++;
    }
    key[k] = 0;
    while (*s == ' ' || *s == '\t')
        s++;
    if (*s != '=') {
        *bad = true;
        return false;
    }
    s++;
    while (*s == ' ' || *s == '\t')
        s++;
    size_t v = 0;
    if (*s == '\'') {
        for (s++;; s++) {
            if (!*s) {
                *bad = true;
                return false;
            }
            if ((*s == '\'' && s[1] == '\'') || (*s == '\\' && s[1])) {
                s++;
            } else if (*s == '\'') {
                s++;
                break;
            }
            if (v + 1 < vn)
                val[v++] = *s;
        }
    } else {
        while (*s && *s != ' ' && *s != '\t') {
            if (v + 1 < vn)
                val[v++] = *s;
            s++;
        }
    }
    val[v] = 0;
    *sp = s;
    return true;
}

int pf_pgbouncer_ini_parse(const char *text, const char *dbname, pf_pgbouncer_target *t,
                           pf_err *err)
{
    memset(t, 0, sizeof *t);
    ini_ctx x = {.want = dbname};
    /* Errors (lines without '=', %include) do not stop inih: the rest is still read. */
    if (ini_parse_string(text, on_ini, &x) < 0)
        return pf_err_set(err, PF_EGENERIC, "pgbouncer configuration: out of memory");
    if (!x.have_exact && !x.have_star)
        return pf_err_set(err, PF_ENOTFOUND,
                          "pgbouncer configuration has no [databases] entry for %s nor \"*\"",
                          dbname);
    const char *entry = x.have_exact ? x.exact : x.star;
    const char *label = x.have_exact ? dbname : "*";
    snprintf(t->dbname, sizeof t->dbname, "%s", dbname);
    t->port = 5432;
    snprintf(t->pool_mode, sizeof t->pool_mode, "%s", *x.pool_mode ? x.pool_mode : "session");
    bool have_host = false, bad = false;
    char key[64], val[1024];
    const char *s = entry;
    while (next_kv(&s, key, sizeof key, val, sizeof val, &bad)) {
        if (!strcmp(key, "host") && *val) {
            /* Several hosts (pgbouncer 1.17+): the first is as good as any for a restore. */
            char *comma = strchr(val, ',');
            if (comma)
                *comma = 0;
            copy(t->host, sizeof t->host, val);
            have_host = true;
        } else if (!strcmp(key, "port")) {
            char *end;
            errno = 0;
            long p = strtol(val, &end, 10);
            if (end == val || (*end && *end != ',') || errno || p < 1 || p > 65535)
                return pf_err_set(err, PF_EUSAGE,
                                  "pgbouncer configuration: the entry for %s: port is not a "
                                  "port number",
                                  label);
            t->port = (int)p;
        } else if (!strcmp(key, "dbname") && *val) {
            copy(t->dbname, sizeof t->dbname, val);
        } else if (!strcmp(key, "pool_mode") && *val) {
            copy(t->pool_mode, sizeof t->pool_mode, val);
        }
    }
    if (bad)
        return pf_err_set(err, PF_EUSAGE,
                          "pgbouncer configuration: the entry for %s is not a list of "
                          "key=value",
                          label);
    if (!have_host)
        snprintf(t->host, sizeof t->host, "%s", *x.socket_dir ? x.socket_dir : "/tmp");
    return 0;
}

int pf_pgbouncer_ini_load(const char *path, const char *dbname, pf_pgbouncer_target *t, pf_err *err)
{
    if (!path)
        path = PF_PGBOUNCER_DEFAULT_INI;
    FILE *f = fopen(path, "r");
    if (!f)
        return pf_err_sys(err, errno == ENOENT ? PF_ENOTFOUND : PF_EIO, "cannot read %s", path);
    pf_buf b = PF_BUF_INIT;
    char chunk[8192];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0 && b.len < 4 * 1024 * 1024)
        pf_buf_append(&b, chunk, n);
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        pf_buf_free(&b);
        return pf_err_set(err, PF_EIO, "cannot read %s", path);
    }
    pf_buf_u8(&b, 0);
    int rc = pf_pgbouncer_ini_parse((const char *)b.data, dbname, t, err);
    pf_buf_free(&b); /* auth lines may hold passwords: wiped */
    if (rc)
        pf_err_prefix(err, "%s", path);
    return rc;
}

int pf_pgbouncer_bypass(const pf_pg_conn *through, const char *cfg_host, int cfg_port,
                        const char *ini_path, pf_pgbouncer_target *t, const char **from,
                        pf_err *err)
{
    const char *db = through->dbname ? through->dbname : "mastodon_production";
    memset(t, 0, sizeof *t);
    if (cfg_host && cfg_port) {
        copy(t->host, sizeof t->host, cfg_host);
        t->port = cfg_port;
        copy(t->dbname, sizeof t->dbname, db);
        *from = "the configuration";
    } else {
        if (pf_pgbouncer_ini_load(ini_path, db, t, err))
            return -1;
        *from = ini_path ? ini_path : PF_PGBOUNCER_DEFAULT_INI;
        if (cfg_host)
            copy(t->host, sizeof t->host, cfg_host);
        if (cfg_port)
            t->port = cfg_port;
    }
    pf_pg_conn c = *through;
    c.host = t->host;
    c.port = t->port;
    c.dbname = NULL; /* the database may not exist yet (a restore) */
    pf_pgbouncer_info info;
    pf_err e = {0};
    if (pf_pgbouncer_probe(&c, &info, &e) == 0 && info.detected)
        return pf_err_set(err, PF_EUSAGE, "%s:%d, named by %s, is a pgbouncer too", t->host,
                          t->port, *from);
    return 0;
}
