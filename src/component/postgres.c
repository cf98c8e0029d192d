#include "component/postgres.h"

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/exec.h"
#include "common/fdsink.h"
#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "component/pgsql_filter.h"
#include "repo/restorer.h"

#define DEFAULT_DB "mastodon_production"
#define DEFAULT_USER "mastodon"
#define SECTION_MARK PF_PGSQL_SECTION_MARK
#define MAX_SQL_OUT (16u * 1024 * 1024)

/* ---- small helpers ------------------------------------------------------------------ */

/* Environment overrides for a child: "KEY=value" strings we own (one may be a password,
 * so they are wiped when freed). */
typedef struct envlist {
    char *item[24];
    int n;
} envlist;

static void env_add(envlist *e, const char *key, const char *val)
{
    if (e->n >= (int)(sizeof e->item / sizeof e->item[0]) - 1)
        abort(); /* a programming error: the lists here are fixed */
    char *s;
    if (val) {
        if (asprintf(&s, "%s=%s", key, val) < 0)
            abort();
    } else {
        s = strdup(key); /* no '=': remove the variable */
        if (!s)
            abort();
    }
    e->item[e->n++] = s;
    e->item[e->n] = NULL;
}

static void env_free(envlist *e)
{
    for (int i = 0; i < e->n; i++) {
        explicit_bzero(e->item[i], strlen(e->item[i]));
        free(e->item[i]);
    }
    e->n = 0;
    e->item[0] = NULL;
}

/* The libpq variables a child gets: exactly our connection, nothing from our own
 * environment that could point it elsewhere. */
static void env_conn(envlist *e, const char *host, int port, const char *user, const char *db,
                     const char *password, const char *sslmode)
{
    char portbuf[16];
    snprintf(portbuf, sizeof portbuf, "%d", port > 0 ? port : 5432);
    env_add(e, "PGHOST", host);
    env_add(e, "PGHOSTADDR", NULL);
    env_add(e, "PGPORT", portbuf);
    env_add(e, "PGUSER", user);
    env_add(e, "PGDATABASE", db);
    env_add(e, "PGPASSWORD", password);
    env_add(e, "PGSSLMODE", sslmode);
    env_add(e, "PGSERVICE", NULL);
    env_add(e, "PGOPTIONS", NULL);
    env_add(e, "PGCONNECT_TIMEOUT", "15");
    env_add(e, "PGAPPNAME", "permafrost");
    /* Children get none of our environment but these: where to find certificates and a
     * password file are the operator's to choose, and they hold no secret themselves. */
    static const char *const keep[] = {"PGSSLROOTCERT", "PGSSLCERT",  "PGSSLKEY",
                                       "PGSSLCRL",      "PGPASSFILE", NULL};
    for (int i = 0; keep[i]; i++) {
        const char *v = getenv(keep[i]);
        if (v && *v)
            env_add(e, keep[i], v);
    }
}

static const char *or_default(const char *s, const char *d)
{
    return s && *s ? s : d;
}

static const char *where(const char *host)
{
    return host ? host : "the local socket";
}

/* Turns a libpq/psql message into one line: newlines become "; ", blanks collapse. */
static void one_line(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    bool space = false;
    for (const char *p = in; *p && o + 3 < cap; p++) {
        if (*p == '\n' || *p == '\r') {
            if (o && !space) {
                out[o++] = ';';
                out[o++] = ' ';
                space = true;
            }
        } else if (*p == ' ' || *p == '\t') {
            if (o && !space) {
                out[o++] = ' ';
                space = true;
            }
        } else {
            out[o++] = *p;
            space = false;
        }
    }
    while (o && (out[o - 1] == ' ' || out[o - 1] == ';'))
        o--;
    out[o] = 0;
}

/* The error code a connection failure deserves, from the server's or libpq's words. */
static int classify(const char *msg)
{
    if (strstr(msg, "password authentication failed") || strstr(msg, "no password supplied") ||
        strstr(msg, "authentication failed") || strstr(msg, "no pg_hba.conf entry") ||
        strstr(msg, "pg_hba.conf rejects") || strstr(msg, "fe_sendauth"))
        return PF_EAUTH;
    if (strstr(msg, "database \"") && strstr(msg, "does not exist"))
        return PF_ENOTFOUND;
    if (strstr(msg, "Connection refused") || strstr(msg, "could not connect") ||
        strstr(msg, "could not translate host name") || strstr(msg, "timeout expired") ||
        strstr(msg, "No such file or directory") || strstr(msg, "Network is unreachable") ||
        strstr(msg, "server closed the connection") || strstr(msg, "No route to host") ||
        strstr(msg, "the database system is"))
        return PF_ECONN;
    return 0;
}

/* A major version as a number that orders: 906 for 9.6, 1500 for 15. */
static int major_of_num(int version_num)
{
    int major = version_num / 10000;
    return version_num >= 100000 ? major * 100 : major * 100 + (version_num / 100) % 100;
}

static void major_name(int major, char *out, size_t cap)
{
    if (major >= 1000)
        snprintf(out, cap, "%d", major / 100);
    else
        snprintf(out, cap, "%d.%d", major / 100, major % 100);
}

/* DIR/NAME into out; an over-long path becomes "" (and then fails to run). */
static void join_path(char *out, size_t cap, const char *dir, const char *name)
{
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        out[0] = 0;
}

/* nftw callbacks: remove a tree; give it to one user. */
static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path) < 0 && errno != ENOENT ? -1 : 0;
}

static uid_t chown_uid;
static gid_t chown_gid;
static pthread_mutex_t chown_mu = PTHREAD_MUTEX_INITIALIZER;
static int chown_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return lchown(path, chown_uid, chown_gid);
}

static void remove_tree(const char *path)
{
    nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- finding the client binaries ------------------------------------------------------ */

typedef struct pg_clients {
    char dir[PATH_MAX];
    char version[64];
    int major;
} pg_clients;

/* Runs DIR/NAME --version and parses "NAME (PostgreSQL) 15.5 (Debian ...)". */
static int run_client_version(const char *path, char *ver, size_t cap, int *major)
{
    const char *argv[] = {path, "--version", NULL};
    pf_buf out = PF_BUF_INIT;
    pf_err e = {0};
    int rc = -1;
    if (pf_exec_capture(argv, NULL, NULL, NULL, 0, &out, 4096, NULL, &e) < 0 || !out.data)
        goto out;
    const char *p = strstr((const char *)out.data, "PostgreSQL) ");
    if (!p)
        goto out;
    p += strlen("PostgreSQL) ");
    int a = 0, b = 0;
    if (sscanf(p, "%d.%d", &a, &b) < 1 || a <= 0)
        goto out;
    size_t n = strcspn(p, " \n(");
    snprintf(ver, cap, "%.*s", (int)(n < cap ? n : cap - 1), p);
    *major = a >= 10 ? a * 100 : a * 100 + b;
    rc = 0;
out:
    pf_buf_free(&out);
    return rc;
}

/* What each binary (by its real path) said, for the life of the process: a restore looks
 * its clients up twice (the check, then the restore) and a backup once per run, and under
 * load each --version is a fork and an exec on the critical path. The binaries do not
 * change under a running backup. */
#define VERSION_CACHE 32
static struct {
    char *path;
    char ver[64];
    int major, rc;
} version_cache[VERSION_CACHE];
static size_t nversion_cache;
static pthread_mutex_t version_mu = PTHREAD_MUTEX_INITIALIZER;

static int client_version(const char *real, char *ver, size_t cap, int *major)
{
    pthread_mutex_lock(&version_mu);
    for (size_t i = 0; i < nversion_cache; i++)
        if (!strcmp(version_cache[i].path, real)) {
            int rc = version_cache[i].rc;
            snprintf(ver, cap, "%s", version_cache[i].ver);
            *major = version_cache[i].major;
            pthread_mutex_unlock(&version_mu);
            return rc;
        }
    pthread_mutex_unlock(&version_mu);
    char v[64] = "";
    int m = 0;
    int rc = run_client_version(real, v, sizeof v, &m);
    pthread_mutex_lock(&version_mu);
    char *copy = nversion_cache < VERSION_CACHE ? strdup(real) : NULL;
    if (copy) {
        version_cache[nversion_cache].path = copy;
        snprintf(version_cache[nversion_cache].ver, sizeof version_cache[0].ver, "%s", v);
        version_cache[nversion_cache].major = m;
        version_cache[nversion_cache++].rc = rc;
    }
    pthread_mutex_unlock(&version_mu);
    snprintf(ver, cap, "%s", v);
    *major = m;
    return rc;
}

/* Debian's postgresql-common puts pg_wrapper (a Perl script) on PATH as pg_dump, psql,
 * pg_restore: it only hands over to one of /usr/lib/postgresql/N/bin, which are candidates
 * of their own, and starting Perl costs more than the client it runs. */
static bool is_wrapper(const char *real)
{
    const char *base = strrchr(real, '/');
    return base && !strcmp(base + 1, "pg_wrapper");
}

static bool dir_has(const char *dir, const char *const *names)
{
    for (int i = 0; names[i]; i++) {
        char path[PATH_MAX];
        join_path(path, sizeof path, dir, names[i]);
        if (!path[0] || access(path, X_OK) != 0)
            return false;
    }
    return true;
}

/* Picks the directory holding all of `names` whose version is >= min_major: the lowest
 * such version when `lowest`, else the highest. Candidates: $PERMAFROST_PG_BINDIR only when
 * set; else /usr/lib/postgresql/N/bin, then the directories of PATH. */
static int find_clients(const char *const *names, int min_major, bool lowest, pg_clients *best,
                        pf_err *err)
{
    char *cands[64];
    int nc = 0, nlib = 0; /* cands[0..nlib) are /usr/lib/postgresql/N/bin */
    const char *forced = getenv("PERMAFROST_PG_BINDIR");
    if (forced && *forced) {
        cands[nc++] = strdup(forced);
    } else {
        glob_t g;
        if (glob("/usr/lib/postgresql/*/bin", GLOB_NOSORT, NULL, &g) == 0) {
            for (size_t i = 0; i < g.gl_pathc && nc < 48; i++)
                cands[nc++] = strdup(g.gl_pathv[i]);
            globfree(&g);
        }
        nlib = nc;
        const char *path = getenv("PATH");
        while (path && *path && nc < 64) {
            size_t l = strcspn(path, ":");
            if (l)
                cands[nc++] = strndup(path, l);
            path += l;
            if (*path == ':')
                path++;
        }
    }
    int newest = 0;
    char newest_dir[PATH_MAX] = "";
    char *seen[64];
    int nseen = 0;
    best->major = 0;
    for (int i = 0; i < nc; i++) {
        if (!cands[i] || !dir_has(cands[i], names))
            continue;
        char path[PATH_MAX], ver[64];
        int major;
        join_path(path, sizeof path, cands[i], names[0]);
        /* /bin and /usr/bin are one directory on a merged /usr: ask each binary once. */
        char *real = realpath(path, NULL);
        bool again = false;
        for (int k = 0; real && k < nseen && !again; k++)
            again = !strcmp(seen[k], real);
        if (!real || again || (i >= nlib && nlib > 0 && is_wrapper(real))) {
            free(real);
            continue;
        }
        seen[nseen++] = real;
        if (client_version(real, ver, sizeof ver, &major) < 0)
            continue;
        if (major > newest) {
            newest = major;
            snprintf(newest_dir, sizeof newest_dir, "%s", cands[i]);
        }
        if (major < min_major)
            continue;
        if (!best->major || (lowest ? major < best->major : major > best->major)) {
            best->major = major;
            snprintf(best->dir, sizeof best->dir, "%s", cands[i]);
            snprintf(best->version, sizeof best->version, "%s", ver);
        }
    }
    for (int i = 0; i < nc; i++)
        free(cands[i]);
    for (int i = 0; i < nseen; i++)
        free(seen[i]);
    if (best->major)
        return 0;
    char want[16];
    major_name(min_major ? min_major : 1500, want, sizeof want);
    if (!newest)
        return pf_err_set(err, PF_ECOMPONENT, "no %s found%s%s; install postgresql-client-%s",
                          names[0], forced ? " in PERMAFROST_PG_BINDIR=" : "", forced ? forced : "",
                          want);
    char have[16];
    major_name(newest, have, sizeof have);
    return pf_err_set(err, PF_ECOMPONENT,
                      "the server is PostgreSQL %s but the newest %s found is %s (%s); install "
                      "postgresql-client-%s",
                      want, names[0], have, newest_dir, want);
}

/* ---- libpq ------------------------------------------------------------------------------- */

static void kv_add(const char **keys, const char **vals, int *n, const char *k, const char *v)
{
    if (v) {
        keys[*n] = k;
        vals[*n] = v;
        (*n)++;
    }
}

/* Makes this thread, and only this thread, act as `user` (on) or as root again (off).
 * libpq connects from the calling thread and peer authentication reads the credentials
 * the kernel recorded at connect(), i.e. this thread's effective ids. The raw system
 * calls change only the calling thread; glibc's seteuid() would change every thread, and
 * the lock refresher or the savers may be writing to the repository meanwhile. */
static int thread_as(const struct passwd *pw, bool on)
{
    if (on) {
        if (syscall(SYS_setresgid, (gid_t)-1, pw->pw_gid, (gid_t)-1) != 0)
            return -1;
        if (syscall(SYS_setresuid, (uid_t)-1, pw->pw_uid, (uid_t)-1) != 0) {
            syscall(SYS_setresgid, (gid_t)-1, (gid_t)0, (gid_t)-1);
            return -1;
        }
        return 0;
    }
    if (syscall(SYS_setresuid, (uid_t)-1, (uid_t)0, (uid_t)-1) != 0 ||
        syscall(SYS_setresgid, (gid_t)-1, (gid_t)0, (gid_t)-1) != 0)
        abort(); /* cannot become root again: continuing would run as the wrong user */
    return 0;
}

static PGconn *pg_connect(const pf_pg_conn *c, pf_err *err)
{
    struct passwd *pw = NULL, pwbuf;
    char pwstr[4096];
    if (c->os_user) {
        if (getpwnam_r(c->os_user, &pwbuf, pwstr, sizeof pwstr, &pw) != 0)
            pw = NULL;
        if (!pw) {
            pf_err_set(err, PF_EUSAGE,
                       "cannot connect to PostgreSQL as the OS user \"%s\": no "
                       "such user",
                       c->os_user);
            return NULL;
        }
        if (geteuid() != 0) {
            pf_err_set(err, PF_EUSAGE, "connecting as the OS user \"%s\" needs root", c->os_user);
            return NULL;
        }
    }
    char port[16];
    snprintf(port, sizeof port, "%d", c->port > 0 ? c->port : 5432);
    const char *keys[10], *vals[10];
    int n = 0;
    kv_add(keys, vals, &n, "host", c->host);
    kv_add(keys, vals, &n, "port", port);
    kv_add(keys, vals, &n, "dbname", or_default(c->dbname, DEFAULT_DB));
    kv_add(keys, vals, &n, "user", or_default(c->user, DEFAULT_USER));
    kv_add(keys, vals, &n, "password", c->password);
    kv_add(keys, vals, &n, "sslmode", c->sslmode);
    kv_add(keys, vals, &n, "connect_timeout", "15");
    kv_add(keys, vals, &n, "application_name", "permafrost");
    keys[n] = vals[n] = NULL;
    if (pw && thread_as(pw, true) < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot act as the OS user \"%s\"", c->os_user);
        return NULL;
    }
    PGconn *conn = PQconnectdbParams(keys, vals, 0);
    if (pw)
        thread_as(pw, false);
    if (conn && PQstatus(conn) == CONNECTION_OK)
        return conn;
    char msg[700];
    one_line(conn ? PQerrorMessage(conn) : "out of memory", msg, sizeof msg);
    int code = classify(msg);
    pf_err_set(err, code ? code : PF_ECONN, "cannot connect to PostgreSQL at %s:%d as %s%s%s%s: %s",
               where(c->host), c->port > 0 ? c->port : 5432, or_default(c->user, DEFAULT_USER),
               c->os_user ? " (OS user " : "", c->os_user ? c->os_user : "", c->os_user ? ")" : "",
               msg);
    if (!code || code == PF_ECONN)
        err->retryable = true;
    PQfinish(conn);
    return NULL;
}

static int pg_exec_ok(PGconn *conn, const char *sql, pf_err *err)
{
    PGresult *r = PQexec(conn, sql);
    int st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char msg[700];
        one_line(PQerrorMessage(conn), msg, sizeof msg);
        PQclear(r);
        return pf_err_set(err, PF_ECOMPONENT, "%s", msg);
    }
    PQclear(r);
    return 0;
}

/* Row count of `table`, or -1 when it does not exist. When `estimate`, a large table is
 * counted from the planner's statistics (pg_class.reltuples) instead of a full scan: the
 * probe only needs an idea, the dump's own snapshot gets the exact numbers. */
#define EXACT_BELOW 200000
static int count_rows(PGconn *conn, const char *table, bool estimate, int64_t *out, pf_err *err)
{
    const char *params[1] = {table};
    PGresult *r = PQexecParams(conn,
                               "SELECT to_regclass($1) IS NOT NULL, coalesce((SELECT "
                               "reltuples::bigint FROM pg_class WHERE oid = to_regclass($1)), -1)",
                               1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char msg[700];
        one_line(PQerrorMessage(conn), msg, sizeof msg);
        PQclear(r);
        return pf_err_set(err, PF_ECOMPONENT, "counting %s: %s", table, msg);
    }
    bool exists = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    int64_t est = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    if (!exists) {
        *out = -1;
        return 0;
    }
    if (estimate && est >= EXACT_BELOW) {
        *out = est;
        return 0;
    }
    char *id = PQescapeIdentifier(conn, table, strlen(table));
    char sql[256];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", id ? id : "\"\"");
    PQfreemem(id);
    r = PQexec(conn, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char msg[700];
        one_line(PQerrorMessage(conn), msg, sizeof msg);
        PQclear(r);
        return pf_err_set(err, PF_ECOMPONENT, "counting %s: %s", table, msg);
    }
    *out = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return 0;
}

static int count_all(PGconn *conn, bool estimate, pf_pg_info *info, pf_err *err)
{
    if (count_rows(conn, "accounts", estimate, &info->accounts, err) < 0 ||
        count_rows(conn, "statuses", estimate, &info->statuses, err) < 0 ||
        count_rows(conn, "media_attachments", estimate, &info->media_attachments, err) < 0)
        return -1;
    return 0;
}

int pf_pg_probe(const pf_pg_conn *c, pf_pg_info *info, pf_err *err)
{
    int rc = -1;
    memset(info, 0, sizeof *info);
    info->accounts = info->statuses = info->media_attachments = -1;
    PGconn *conn = pg_connect(c, err);
    if (!conn)
        goto out;
    info->server_version_num = PQserverVersion(conn);
    const char *sv = PQparameterStatus(conn, "server_version");
    snprintf(info->server_version, sizeof info->server_version, "%s", sv ? sv : "?");
    info->server_version[strcspn(info->server_version, " ")] = 0;
    const char *su = PQparameterStatus(conn, "is_superuser");
    info->superuser = su && strcmp(su, "on") == 0;
    if (count_all(conn, true, info, err) < 0)
        goto out;
    const char *dump_tools[] = {"pg_dump", "pg_dumpall", NULL};
    pg_clients cl;
    if (find_clients(dump_tools, major_of_num(info->server_version_num), true, &cl, err) < 0)
        goto out;
    snprintf(info->client_version, sizeof info->client_version, "%s", cl.version);
    join_path(info->pg_dump, sizeof info->pg_dump, cl.dir, "pg_dump");
    join_path(info->pg_dumpall, sizeof info->pg_dumpall, cl.dir, "pg_dumpall");
    rc = 0;
out:
    PQfinish(conn);
    return rc;
}

bool pf_pg_peer_identities(const pf_pg_conn *app, pf_pg_conn *db, pf_pg_conn *super)
{
    *db = *app;
    *super = *app;
    bool socket = !app->host || !app->host[0] || app->host[0] == '/';
    if (geteuid() != 0 || !socket || (app->password && *app->password) || app->os_user)
        return false;
    const char *user = or_default(app->user, DEFAULT_USER);
    bool have_postgres = getpwnam("postgres") != NULL;
    if (getpwnam(user)) {
        db->os_user = user;
    } else if (have_postgres) {
        db->user = "postgres";
        db->os_user = "postgres";
    } else {
        return false;
    }
    if (have_postgres) {
        super->user = "postgres";
        super->os_user = "postgres";
    } else {
        *super = *db;
    }
    return true;
}

/* ---- backup ------------------------------------------------------------------------------ */

typedef struct counting_sink {
    pf_sink sink;
    pf_sink *inner;
    uint64_t bytes;
} counting_sink;

static int counting_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    counting_sink *cs = s->ctx;
    if (pf_sink_write(cs->inner, p, n, err) < 0)
        return -1;
    cs->bytes += n;
    return 0;
}

static void counting_init(counting_sink *cs, pf_sink *inner)
{
    cs->sink.write = counting_write;
    cs->sink.ctx = cs;
    cs->inner = inner;
    cs->bytes = 0;
}

/* Runs a dump client as c's OS user with c's connection in its environment, its output
 * into out. */
static int run_dump_client(const pf_pg_conn *c, const envlist *env, const char *const *argv,
                           pf_sink *out, const char *name, pf_err *err)
{
    pf_exec_opts o = {.argv = argv,
                      .env = (const char *const *)env->item,
                      .user = c->os_user,
                      .cwd = "/",
                      .out = out,
                      .name = name};
    return pf_exec_run(&o, NULL, err);
}

/* ---- the state a dump is judged on for reuse (DECISIONS.md, "When a dump is reused") --- */

/* One text value of a one-row query, or "" when it fails (autocommit: nothing to undo). */
static void query_text(PGconn *conn, const char *sql, char *out, size_t n)
{
    PGresult *r = PQexec(conn, sql);
    out[0] = 0;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(out, n, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
}

/* Before the snapshot, outside any transaction: which cluster (its system identifier when
 * this user may read it, and the postmaster's start) and which database. "" on a standby
 * (its snapshots follow replay: not judged) or a server older than 10. */
static void state_before(PGconn *conn, char *out, size_t n)
{
    char rec[16], who[160], sysid[64];
    out[0] = 0;
    if (PQserverVersion(conn) < 100000)
        return;
    query_text(conn, "SELECT pg_is_in_recovery()::text", rec, sizeof rec);
    if (strcmp(rec, "false"))
        return;
    query_text(conn,
               "SELECT (SELECT oid FROM pg_database WHERE datname = current_database())::text "
               "|| '@' || pg_postmaster_start_time()::text",
               who, sizeof who);
    query_text(conn, "SELECT system_identifier::text FROM pg_control_system()", sysid,
               sizeof sysid);
    if (who[0])
        snprintf(out, n, "cluster=%s db=%s", sysid[0] ? sysid : "?", who);
}

/* Inside the snapshot: its xmax (one past the newest transaction id that had finished,
 * with its epoch) when no transaction below it is still in progress, and the sequences
 * (a nextval() has no transaction id); else "". Any transaction that writes anything
 * finishes with an id at or above that xmax and so moves it (DECISIONS.md). In a savepoint:
 * a failing query must not end the dump's transaction. */
static void state_in_snapshot(PGconn *conn, const char *before, const char *client, char *out,
                              size_t n)
{
    out[0] = 0;
    if (!before[0])
        return;
    PGresult *r = PQexec(conn, "SAVEPOINT pf_state");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return;
    bool v13 = PQserverVersion(conn) >= 130000;
    char sql[800];
    snprintf(sql, sizeof sql,
             "SELECT (SELECT count(*) FROM %s(%s)), %s(%s)::text, (SELECT md5(coalesce("
             "string_agg(format('%%I.%%I=%%s', schemaname, sequencename, last_value), ',' "
             "ORDER BY schemaname, sequencename), '')) FROM pg_sequences)",
             v13 ? "pg_snapshot_xip" : "txid_snapshot_xip",
             v13 ? "pg_current_snapshot()" : "txid_current_snapshot()",
             v13 ? "pg_snapshot_xmax" : "txid_snapshot_xmax",
             v13 ? "pg_current_snapshot()" : "txid_current_snapshot()");
    r = PQexec(conn, sql);
    ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok && !strcmp(PQgetvalue(r, 0, 0), "0"))
        snprintf(out, n, "%s xmax=%s seq=%s pg_dump=%s", before, PQgetvalue(r, 0, 1),
                 PQgetvalue(r, 0, 2), client);
    PQclear(r);
    r = PQexec(conn, ok ? "RELEASE SAVEPOINT pf_state"
                        : "ROLLBACK TO SAVEPOINT pf_state; RELEASE SAVEPOINT pf_state");
    PQclear(r);
}

/* ---- the parallel dump (pg_dump -Fd -j N) ----------------------------------------------- */

/* Bytes of the `jobs` largest tables (what the workers hold at once) and of all of them
 * with the large objects (the worst case, when storing falls behind), in the dump's
 * snapshot; a savepoint keeps the transaction whole if a query fails (both 0 then). */
static void dir_room(PGconn *conn, int jobs, uint64_t *at_once, uint64_t *all)
{
    *at_once = *all = 0;
    PGresult *r = PQexec(conn, "SAVEPOINT pf_room");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        return;
    char sql[700];
    snprintf(sql, sizeof sql,
             "SELECT coalesce(sum(s), 0)::bigint + pg_table_size('pg_largeobject'), "
             "coalesce(sum(s) FILTER (WHERE rn <= %d), 0)::bigint FROM (SELECT s, row_number() "
             "OVER (ORDER BY s DESC) rn FROM (SELECT pg_table_size(c.oid) s FROM pg_class c "
             "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'm') AND "
             "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE "
             "'pg_toast%%') x) t",
             jobs);
    r = PQexec(conn, sql);
    ok = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1;
    if (ok) {
        *all = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
        *at_once = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    }
    PQclear(r);
    r = PQexec(conn, ok ? "RELEASE SAVEPOINT pf_room"
                        : "ROLLBACK TO SAVEPOINT pf_room; RELEASE SAVEPOINT pf_room");
    PQclear(r);
}

static int hand_over(const pf_pg_dump_opts *o, const char *dir, const char *name, pf_err *err)
{
    char path[PATH_MAX];
    join_path(path, sizeof path, dir, name);
    if (o->file_done(o->file_ctx, path, name, err) < 0)
        return -1;
    if (unlink(path) < 0 && errno != ENOENT)
        return pf_err_sys(err, PF_EIO, "cannot remove %s", path);
    return 0;
}

/* Every file still in dir (after pg_dump exited), then dir itself. */
static int hand_over_rest(const pf_pg_dump_opts *o, const char *dir, pf_err *err)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort), rc = 0;
    if (n < 0)
        return pf_err_sys(err, PF_EIO, "cannot list %s", dir);
    for (int i = 0; i < n; i++) {
        if (!rc && names[i]->d_name[0] != '.')
            rc = hand_over(o, dir, names[i]->d_name, err);
        free(names[i]);
    }
    free(names);
    return rc;
}

static int dump_dir(const pf_pg_conn *c, PGconn *conn, const envlist *env, const char *snaparg,
                    pf_pg_info *info, const pf_pg_dump_opts *o, pf_err *err)
{
    const char *base = o->tmpdir && *o->tmpdir ? o->tmpdir : getenv("TMPDIR");
    if (!base || !*base)
        base = "/var/tmp";
    uint64_t at_once, all;
    dir_room(conn, o->jobs, &at_once, &all);
    struct statvfs vfs;
    uint64_t avail = statvfs(base, &vfs) == 0 ? (uint64_t)vfs.f_bavail * vfs.f_frsize : 0;
    (void)at_once;
    pf_info("postgres: pg_dump -Fd -j %d into %s: needs %.1f MiB there (the whole database, "
            "stored once pg_dump has ended); %.1f MiB free",
            o->jobs, base, (double)all / (1 << 20), (double)avail / (1 << 20));
    if (avail < all)
        return pf_err_set(err, PF_EIO,
                          "%s has %.1f MiB free, pg_dump -Fd -j %d needs %.1f MiB: free room, set "
                          "TMPDIR elsewhere, or pg_dump_jobs = 1 (one stream, nothing on disk)",
                          base, (double)avail / (1 << 20), o->jobs, (double)all / (1 << 20));
    char dir[PATH_MAX], jobs[32];
    snprintf(dir, sizeof dir, "%s/permafrost-pgdump-XXXXXX", base);
    if (!mkdtemp(dir))
        return pf_err_sys(err, PF_EIO, "cannot create a temporary directory in %s", base);
    int rc = -1;
    if (c->os_user) {
        struct passwd *pw = getpwnam(c->os_user);
        if (!pw || chown(dir, pw->pw_uid, pw->pw_gid) < 0) {
            pf_err_sys(err, PF_EIO, "cannot give %s to the OS user %s", dir, c->os_user);
            goto out;
        }
    }
    /* The files are stored once pg_dump has exited, not as each is closed: pg_dump may write
     * a table file it has closed once again (a second IN_CLOSE_WRITE of one file was seen),
     * and only its exit says that every file is whole. */
    snprintf(jobs, sizeof jobs, "--jobs=%d", o->jobs);
    const char *argv[] = {info->pg_dump, "--format=directory", "-Z0", jobs, "-f", dir, snaparg,
                          NULL};
    pf_exec_opts eo = {.argv = argv,
                       .env = (const char *const *)env->item,
                       .user = c->os_user,
                       .cwd = "/",
                       .name = "pg_dump"};
    if (pf_exec_run(&eo, NULL, err) < 0)
        goto out;
    if (hand_over_rest(o, dir, err) < 0)
        goto out;
    rc = 0;
out:
    remove_tree(dir);
    return rc;
}

int pf_pg_dump(const pf_pg_conn *c, pf_pg_info *info, const pf_pg_dump_opts *dopts, pf_sink *sink,
               pf_err *err)
{
    int rc = -1;
    envlist env = {0};
    PGconn *conn = NULL;
    char snapshot[128] = "";
    char snaparg[160];
    counting_sink cs;
    counting_init(&cs, sink);
    info->dump_bytes = 0;
    info->state[0] = 0;
    info->reused = false;
    char before[320] = "";
    if (!info->pg_dump[0]) {
        pf_err_set(err, PF_EUSAGE, "pf_pg_dump needs the info of pf_pg_probe");
        goto out;
    }
    /* Hold a REPEATABLE READ transaction open and let pg_dump share its snapshot: the
     * counts below then describe exactly the rows in the dump. */
    conn = pg_connect(c, err);
    if (!conn)
        goto out;
    state_before(conn, before, sizeof before);
    if (pg_exec_ok(conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", err) < 0)
        goto out;
    PGresult *r = PQexec(conn, "SELECT pg_export_snapshot()");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        snprintf(snapshot, sizeof snapshot, "%s", PQgetvalue(r, 0, 0));
        PQclear(r);
        if (count_all(conn, false, info, err) < 0)
            goto out;
        info->counts_in_dump_snapshot = true;
        if (dopts && dopts->in_snapshot && dopts->in_snapshot(conn, dopts->ctx, err) < 0)
            goto out;
        char client[96];
        snprintf(client, sizeof client, "%s%s", info->client_version,
                 dopts && dopts->jobs > 1 && dopts->file_done ? " -Fd" : "");
        state_in_snapshot(conn, before, client, info->state, sizeof info->state);
    } else {
        char msg[700];
        one_line(PQerrorMessage(conn), msg, sizeof msg);
        PQclear(r);
        /* The hook was promised the dump's own view: a later one would be a lie. */
        if (dopts && dopts->in_snapshot) {
            pf_err_set(err, PF_ECOMPONENT, "cannot export the dump's snapshot (%s)", msg);
            goto out;
        }
        pf_warn("postgres: cannot export a snapshot (%s); row counts are approximate", msg);
        info->counts_in_dump_snapshot = false;
    }

    if (dopts && dopts->ready)
        dopts->ready(dopts->ready_ctx);
    if (dopts && dopts->reuse && dopts->reuse_state && info->state[0] &&
        !strcmp(dopts->reuse_state, info->state) && dopts->reuse(dopts->reuse_ctx)) {
        info->reused = true;
        rc = 0;
        goto out;
    }
    env_conn(&env, c->host, c->port, or_default(c->user, DEFAULT_USER),
             or_default(c->dbname, DEFAULT_DB), c->password, c->sslmode);
    snprintf(snaparg, sizeof snaparg, "--snapshot=%s", snapshot);
    if (dopts && dopts->jobs > 1 && dopts->file_done) {
        if (dump_dir(c, conn, &env, snapshot[0] ? snaparg : NULL, info, dopts, err) < 0)
            goto out;
        rc = 0;
        goto out;
    }
    const char *argv[] = {info->pg_dump, "--format=custom", "-Z0", snapshot[0] ? snaparg : NULL,
                          NULL};
    if (run_dump_client(c, &env, argv, &cs.sink, "pg_dump", err) < 0)
        goto out;
    info->dump_bytes = cs.bytes;
    rc = 0;
out:
    if (conn) {
        PGresult *r2 = PQexec(conn, "COMMIT");
        PQclear(r2);
        PQfinish(conn);
    }
    env_free(&env);
    return rc;
}

static bool starts(const char *s, size_t n, const char *prefix)
{
    size_t l = strlen(prefix);
    return n >= l && strncmp(s, prefix, l) == 0;
}

int pf_pg_dump_globals(const pf_pg_conn *c, pf_pg_info *info, pf_sink *sink, pf_err *err)
{
    int rc = -1;
    envlist env = {0};
    pf_buf dbl = PF_BUF_INIT, section = PF_BUF_INIT;
    counting_sink cs;
    counting_init(&cs, sink);
    info->globals_bytes = 0;
    if (!info->pg_dumpall[0]) {
        pf_err_set(err, PF_EUSAGE, "pf_pg_dump_globals needs the info of pf_pg_probe");
        goto out;
    }
    const char *db = or_default(c->dbname, DEFAULT_DB);
    env_conn(&env, c->host, c->port, or_default(c->user, DEFAULT_USER), db, c->password,
             c->sslmode);
    /* -l: connect to Mastodon's database, which the user can surely reach. */
    const char *argv[] = {info->pg_dumpall,
                          "--globals-only",
                          "-l",
                          db,
                          info->superuser ? NULL : "--no-role-passwords",
                          NULL};
    if (run_dump_client(c, &env, argv, &cs.sink, "pg_dumpall", err) < 0)
        goto out;

    /* Database-level settings: pg_dump --create of no schema at all holds them. */
    const char *argv2[] = {info->pg_dump,
                           "--create",
                           "--schema-only",
                           "--exclude-schema=*",
                           "--no-publications",
                           "--no-subscriptions",
                           NULL};
    pf_buf_sink bs;
    pf_buf_sink_init(&bs, &dbl, MAX_SQL_OUT);
    if (run_dump_client(c, &env, argv2, &bs.sink, "pg_dump", err) < 0)
        goto out;
    pf_buf_printf(&section, "\n%s (applied by permafrost after CREATE DATABASE)\n", SECTION_MARK);
    pf_pgsql_db_level(dbl.data ? (const char *)dbl.data : "", dbl.len, &section);
    if (pf_sink_write(&cs.sink, section.data, section.len, err) < 0)
        goto out;
    info->globals_bytes = cs.bytes;
    rc = 0;
out:
    env_free(&env);
    pf_buf_free(&dbl);
    pf_buf_free(&section);
    return rc;
}

/* ---- restore ----------------------------------------------------------------------------- */

typedef struct rctx {
    const pf_pg_restore_opts *o;
    const char *admin;
    const char *admin_os; /* OS user the admin's clients run as (peer), or NULL */
    /* Who runs pg_restore: the owner role when we can authenticate as it, else the admin. */
    const char *restore_role, *restore_os, *restore_password;
    pg_clients cl;
    char psql[PATH_MAX];
    char pg_restore[PATH_MAX];
} rctx;

/* Backslash-safe whatever standard_conforming_strings says (see pgsql_filter.h). */
static void sql_literal(pf_buf *b, const char *s)
{
    pf_pgsql_literal(b, s);
}

static void sql_ident(pf_buf *b, const char *s)
{
    pf_pgsql_ident(b, s);
}

/* Runs `sql` (a secret may be in it: it goes through stdin) with psql as the admin in
 * database `db`, stopping at the first error. Output (unaligned, tuples only) goes to
 * `out` when not NULL. */
static int run_psql(const rctx *r, const char *db, const char *sql, size_t len, pf_buf *out,
                    pf_err *err)
{
    envlist env = {0};
    const char *argv[] = {r->psql,           "-X", "-q", "-A", "-t", "-v",
                          "ON_ERROR_STOP=1", "-f", "-",  NULL};
    env_conn(&env, r->o->host, r->o->port, r->admin, db, r->o->admin_password, NULL);
    pf_mem_source ms;
    pf_mem_source_init(&ms, sql, len);
    pf_buf_sink bs;
    pf_buf dummy = PF_BUF_INIT;
    pf_buf_sink_init(&bs, out ? out : &dummy, MAX_SQL_OUT);
    pf_exec_result res;
    pf_exec_opts o = {.argv = argv,
                      .env = (const char *const *)env.item,
                      .user = r->admin_os,
                      .cwd = "/",
                      .in = &ms.source,
                      .out = &bs.sink,
                      .name = "psql"};
    int rc = pf_exec_run(&o, &res, err);
    if (rc < 0 && res.exit_code == 2) {
        /* psql exits 2 when it cannot connect: give that the right code. */
        int code = classify(res.tail);
        if (code) {
            err->code = code;
            err->retryable = code == PF_ECONN;
        }
    }
    pf_buf_free(&dummy);
    env_free(&env);
    return rc;
}

static int run_psql_str(const rctx *r, const char *db, pf_buf *sql, pf_buf *out, pf_err *err)
{
    return run_psql(r, db, sql->data ? (const char *)sql->data : "", sql->len, out, err);
}

static int rctx_init(rctx *r, const pf_pg_restore_opts *o, pf_err *err)
{
    memset(r, 0, sizeof *r);
    r->o = o;
    r->admin = or_default(o->admin_user, "postgres");
    bool socket = !o->host || !o->host[0] || o->host[0] == '/';
    bool root = geteuid() == 0;
    if (root && socket && strcmp(r->admin, "postgres") == 0 && !o->admin_password)
        r->admin_os = "postgres";
    if (!o->dbname || !*o->dbname || !o->owner || !*o->owner)
        return pf_err_set(err, PF_EUSAGE, "restore needs a database name and its owner");
    const char *tools[] = {"pg_restore", "psql", NULL};
    if (find_clients(tools, 0, false, &r->cl, err) < 0)
        return -1;
    join_path(r->psql, sizeof r->psql, r->cl.dir, "psql");
    join_path(r->pg_restore, sizeof r->pg_restore, r->cl.dir, "pg_restore");
    if (r->admin_os && !getpwnam("postgres"))
        return pf_err_set(err, PF_EUSAGE,
                          "no postgres OS user to connect as over the local socket; give "
                          "--pg-host and a password instead");
    /* pg_restore runs what the dump says: as the owner, that is at most what the owner
     * may do (a superuser could be made to run anything). */
    if (o->as_admin) {
        r->restore_role = r->admin;
        r->restore_os = r->admin_os;
        r->restore_password = o->admin_password;
    } else if (root && socket && !o->no_owner && getpwnam(o->owner)) {
        r->restore_role = o->owner;
        r->restore_os = o->owner;
    } else if (!socket && o->owner_password && *o->owner_password && !o->no_owner) {
        r->restore_role = o->owner;
        r->restore_password = o->owner_password;
    } else {
        r->restore_role = r->admin;
        r->restore_os = r->admin_os;
        r->restore_password = o->admin_password;
    }
    return 0;
}

/* -1 on error, else 0 with *exists and *tables (tables outside the system schemas). */
static int db_state(const rctx *r, bool *exists, long *tables, pf_err *err)
{
    pf_buf sql = PF_BUF_INIT, out = PF_BUF_INIT;
    int rc = -1;
    *exists = false;
    *tables = 0;
    pf_buf_append_str(&sql, "SELECT count(*) FROM pg_database WHERE datname = ");
    sql_literal(&sql, r->o->dbname);
    pf_buf_append_str(&sql, ";\n");
    if (run_psql_str(r, "postgres", &sql, &out, err) < 0)
        goto out;
    *exists = out.data && atoi((const char *)out.data) > 0;
    if (!*exists) {
        rc = 0;
        goto out;
    }
    pf_buf_reset(&out);
    pf_buf_reset(&sql);
    pf_buf_append_str(&sql, "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = "
                            "c.relnamespace WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN "
                            "('pg_catalog', 'information_schema') AND n.nspname NOT LIKE "
                            "'pg_toast%';\n");
    if (run_psql_str(r, r->o->dbname, &sql, &out, err) < 0)
        goto out;
    *tables = out.data ? atol((const char *)out.data) : 0;
    rc = 0;
out:
    pf_buf_free(&sql);
    pf_buf_free(&out);
    return rc;
}

static int check_with(const rctx *r, bool *exists, pf_err *err)
{
    long tables = 0;
    if (db_state(r, exists, &tables, err) < 0)
        return -1;
    if (*exists && tables > 0 && !r->o->force)
        return pf_err_set(err, PF_EEXIST,
                          "database \"%s\" at %s:%d already holds %ld tables; refusing to restore "
                          "over it (--force drops it first)",
                          r->o->dbname, where(r->o->host), r->o->port > 0 ? r->o->port : 5432,
                          tables);
    return 0;
}

int pf_pg_restore_check(const pf_pg_restore_opts *o, pf_err *err)
{
    rctx r;
    bool exists;
    if (rctx_init(&r, o, err) < 0 || check_with(&r, &exists, err) < 0)
        return -1;
    return 0;
}

typedef struct roles_ctx {
    pf_buf existing; /* "\n<name>\t<s|->\n..." of the target's roles */
    int created, skipped;
} roles_ctx;

/* Reads a whole source into memory, up to max bytes. */
static int slurp(pf_source *src, pf_buf *b, size_t max, const char *what, pf_err *err)
{
    for (;;) {
        pf_buf_reserve(b, 65536);
        ssize_t n = pf_source_read(src, b->data + b->len, 65536, err);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        b->len += (size_t)n;
        b->data[b->len] = 0;
        if (b->len > max)
            return pf_err_set(err, PF_ECORRUPT, "%s is larger than %zu bytes", what, max);
    }
}

static int apply_roles(const rctx *r, const pf_pgsql_globals *g, pf_err *err)
{
    int rc = -1;
    pf_buf sql = PF_BUF_INIT, q = PF_BUF_INIT;
    roles_ctx c = {.existing = PF_BUF_INIT};
    pf_buf_append_str(&q, "SELECT rolname || E'\\t' || CASE WHEN rolsuper THEN 's' ELSE '-' END "
                          "FROM pg_roles;\n");
    if (run_psql_str(r, "postgres", &q, &c.existing, err) < 0)
        goto out;
    /* The literals of the filter are escaped for these two settings: set them first. */
    pf_buf_append_str(&sql,
                      "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n");
    for (size_t i = 0; i < g->nroles; i++) {
        const pf_pgsql_stmt *st = &g->roles[i];
        if (!pf_pgsql_keep_role(st, r->admin, (const char *)c.existing.data, &c.created,
                                &c.skipped))
            continue;
        if (st->superuser)
            pf_warn("postgres: role \"%s\" is a superuser in the snapshot and is restored as "
                    "one (globals.sql line %u)",
                    st->role, st->line);
        pf_buf_append_str(&sql, st->sql);
    }
    if (run_psql_str(r, "postgres", &sql, NULL, err) < 0) {
        pf_err_prefix(err, "applying the roles of globals.sql");
        goto out;
    }
    pf_info("postgres: roles restored (%d created, %d left as the target has them)", c.created,
            c.skipped);
    rc = 0;
out:
    pf_buf_free(&sql);
    pf_buf_free(&q);
    pf_buf_free(&c.existing);
    return rc;
}

/* Makes sure the owner role exists (globals.sql may be absent) and sets its password. */
static int owner_role(const rctx *r, bool create_if_missing, pf_err *err)
{
    int rc = -1;
    pf_buf sql = PF_BUF_INIT, out = PF_BUF_INIT;
    if (create_if_missing) {
        pf_buf_append_str(&sql, "SELECT count(*) FROM pg_roles WHERE rolname = ");
        sql_literal(&sql, r->o->owner);
        pf_buf_append_str(&sql, ";\n");
        if (run_psql_str(r, "postgres", &sql, &out, err) < 0)
            goto out;
        pf_buf_reset(&sql);
        if (!out.data || atoi((const char *)out.data) == 0) {
            pf_buf_append_str(&sql, "CREATE ROLE ");
            sql_ident(&sql, r->o->owner);
            pf_buf_append_str(&sql, " LOGIN;\n");
        }
    }
    if (r->o->owner_password && *r->o->owner_password) {
        pf_buf_append_str(&sql, "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = "
                                "on;\nALTER ROLE ");
        sql_ident(&sql, r->o->owner);
        pf_buf_append_str(&sql, " WITH LOGIN PASSWORD ");
        sql_literal(&sql, r->o->owner_password);
        pf_buf_append_str(&sql, ";\n");
    }
    if (sql.len && run_psql_str(r, "postgres", &sql, NULL, err) < 0) {
        pf_err_prefix(err, "setting up role \"%s\"", r->o->owner);
        goto out;
    }
    rc = 0;
out:
    pf_buf_free(&sql);
    pf_buf_free(&out);
    return rc;
}

/* A private temporary directory for a spooled dump: in o->tmpdir, else TMPDIR, else
 * /var/tmp. dir is empty when none could be made. */
static int make_spool_dir(const rctx *r, char *dir, size_t dcap, pf_err *err)
{
    const char *base = r->o->tmpdir;
    if (!base || !*base)
        base = getenv("TMPDIR");
    if (!base || !*base)
        base = "/var/tmp";
    snprintf(dir, dcap, "%s/permafrost-pg-XXXXXX", base);
    if (!mkdtemp(dir)) {
        int e = errno;
        dir[0] = 0;
        errno = e;
        return pf_err_sys(err, PF_EIO, "cannot create a temporary directory in %s", base);
    }
    return 0;
}

/* Spools a source into a private directory readable by whoever runs pg_restore. */
static int spool(const rctx *r, pf_source *src, char *dir, size_t dcap, char *file, size_t fcap,
                 pf_err *err)
{
    if (make_spool_dir(r, dir, dcap, err))
        return -1;
    join_path(file, fcap, dir, "database.dump");
    int fd = open(file, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot create %s", file);
    if (r->restore_os) {
        struct passwd *pw = getpwnam(r->restore_os);
        if (!pw || fchown(fd, pw->pw_uid, pw->pw_gid) < 0 ||
            chown(dir, pw->pw_uid, pw->pw_gid) < 0) {
            close(fd);
            return pf_err_sys(err, PF_EIO, "cannot give %s to the OS user %s", dir, r->restore_os);
        }
    }
    enum { BUFSZ = 1 << 20 };
    char *buf = malloc(BUFSZ);
    if (!buf)
        abort();
    int rc = 0;
    for (;;) {
        ssize_t n = pf_source_read(src, buf, BUFSZ, err);
        if (n < 0) {
            rc = -1;
            break;
        }
        if (n == 0)
            break;
        if (pf_fd_write_all(fd, buf, (size_t)n) < 0) {
            rc = pf_err_sys(err, PF_EIO, "writing %s", file);
            break;
        }
    }
    free(buf);
    if (close(fd) < 0 && rc == 0)
        rc = pf_err_sys(err, PF_EIO, "writing %s", file);
    return rc;
}

/* A directory-format dump written out by o->fill_dir into DIR/database.dir, readable by
 * whoever runs pg_restore. */
static int spool_dir(const rctx *r, char *dir, size_t dcap, char *file, size_t fcap, pf_err *err)
{
    if (make_spool_dir(r, dir, dcap, err))
        return -1;
    join_path(file, fcap, dir, "database.dir");
    if (mkdir(file, 0700) < 0)
        return pf_err_sys(err, PF_EIO, "cannot create %s", file);
    if (r->o->fill_dir(r->o->fill_ctx, file, err) < 0)
        return -1;
    if (r->restore_os) {
        struct passwd *pw = getpwnam(r->restore_os);
        int rc = -1;
        if (pw) {
            pthread_mutex_lock(&chown_mu);
            chown_uid = pw->pw_uid;
            chown_gid = pw->pw_gid;
            rc =
                chown(dir, pw->pw_uid, pw->pw_gid) < 0 ? -1 : nftw(file, chown_entry, 16, FTW_PHYS);
            pthread_mutex_unlock(&chown_mu);
        }
        if (rc != 0)
            return pf_err_sys(err, PF_EIO, "cannot give %s to the OS user %s", dir, r->restore_os);
    }
    return 0;
}

/* The spool in a thread of its own: it reads the repository and writes a file, the steps
 * before pg_restore (DROP, roles, CREATE DATABASE: each a psql) wait on the server, and
 * neither needs the other until pg_restore starts. */
typedef struct spool_job {
    const rctx *r;
    pf_source *src; /* NULL: a directory-format dump (o->fill_dir) */
    char dir[PATH_MAX], file[PATH_MAX];
    pthread_t thread;
    bool started;
    int rc;
    pf_err err;
} spool_job;

static void *spool_main(void *arg)
{
    spool_job *j = arg;
    j->rc = j->src ? spool(j->r, j->src, j->dir, sizeof j->dir, j->file, sizeof j->file, &j->err)
                   : spool_dir(j->r, j->dir, sizeof j->dir, j->file, sizeof j->file, &j->err);
    return NULL;
}

/* Starts the spool; without a thread it runs here (then spool_wait only reports it). */
static void spool_start(spool_job *j, const rctx *r, pf_source *src)
{
    memset(j, 0, sizeof *j);
    j->r = r;
    j->src = src;
    j->started = pthread_create(&j->thread, NULL, spool_main, j) == 0;
    if (!j->started)
        spool_main(j);
}

static int spool_wait(spool_job *j, pf_err *err)
{
    if (j->started)
        pthread_join(j->thread, NULL);
    j->started = false;
    if (j->rc < 0 && err)
        *err = j->err;
    return j->rc;
}

/* An identifier as pg_dump writes it: lower-case plain, or double-quoted without quotes
 * inside. Anything else is refused: these names end up in SQL we run as the admin. */
static bool plain_ident(const char *s, size_t n)
{
    if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
        for (size_t i = 1; i + 1 < n; i++)
            if (s[i] == '"' || (unsigned char)s[i] < 0x20)
                return false;
        return n > 2;
    }
    if (!n || !(islower((unsigned char)s[0]) || s[0] == '_'))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '_'))
            return false;
    return true;
}

/* A restore as the owner cannot create extensions that only a superuser may create, and
 * it would make the owner own the ones it can (the source had them owned by the admin).
 * So the extensions are created here, as the admin, by name and schema only (the scripts
 * that run are the target's own, never SQL from the dump), and the dump's EXTENSION and
 * COMMENT ON EXTENSION entries are left out of the list pg_restore then follows.
 * Writes that list to `list` (in the spool directory, given to the restoring user). */
static int prepare_extensions(const rctx *r, const char *file, const char *list, pf_err *err)
{
    int rc = -1;
    pf_buf toc = PF_BUF_INIT, keep = PF_BUF_INIT, ext = PF_BUF_INIT, sql = PF_BUF_INIT,
           create = PF_BUF_INIT;
    const char *argv[] = {r->pg_restore, "--list", file, NULL};
    if (pf_exec_capture(argv, NULL, "/", NULL, 0, &toc, MAX_SQL_OUT, NULL, err) < 0)
        goto out;
    const char *d = toc.data ? (const char *)toc.data : "";
    for (const char *p = d; *p;) {
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        bool is_ext = false;
        if (n && p[0] != ';') {
            /* "ID; TABLEOID OID TYPE SCHEMA NAME OWNER" */
            const char *t = memchr(p, ' ', n);
            for (int skip = 0; t && skip < 2; skip++)
                t = memchr(t + 1, ' ', n - (size_t)(t + 1 - p));
            if (t) {
                size_t rest = n - (size_t)(t + 1 - p);
                if (starts(t + 1, rest, "EXTENSION - ")) {
                    is_ext = true;
                    pf_buf_append(&ext, p, n);
                    pf_buf_u8(&ext, '\n');
                } else if (starts(t + 1, rest, "COMMENT - EXTENSION ")) {
                    is_ext = true;
                }
            }
        }
        if (!is_ext) {
            pf_buf_append(&keep, p, n);
            pf_buf_u8(&keep, '\n');
        }
        p += n + (e ? 1 : 0);
    }
    if (ext.len) {
        /* The schema of each: pg_restore prints its CREATE EXTENSION statements. */
        char extlist[PATH_MAX + 8];
        snprintf(extlist, sizeof extlist, "%s.ext", list);
        FILE *f = fopen(extlist, "wxe");
        bool wrote = f && fwrite(ext.data, 1, ext.len, f) == ext.len;
        if (!f || fclose(f) != 0 || !wrote) {
            pf_err_sys(err, PF_EIO, "writing %s", extlist);
            unlink(extlist);
            goto out;
        }
        const char *argv2[] = {r->pg_restore, "--use-list", extlist, "--file", "-", file, NULL};
        int x = pf_exec_capture(argv2, NULL, "/", NULL, 0, &sql, MAX_SQL_OUT, NULL, err);
        unlink(extlist);
        if (x < 0)
            goto out;
        const char *q = sql.data ? (const char *)sql.data : "";
        const char *pfx = "CREATE EXTENSION IF NOT EXISTS ";
        while ((q = strstr(q, pfx))) {
            q += strlen(pfx);
            size_t nl = strcspn(q, " ");
            const char *w = q + nl;
            if (strncmp(w, " WITH SCHEMA ", 13) || !plain_ident(q, nl)) {
                pf_err_set(err, PF_ECORRUPT,
                           "the dump's CREATE EXTENSION statement is not one "
                           "pg_dump writes; refusing it");
                goto out;
            }
            const char *sch = w + 13;
            size_t sl = strcspn(sch, ";\n");
            if (sch[sl] != ';' || !plain_ident(sch, sl)) {
                pf_err_set(err, PF_ECORRUPT,
                           "the dump's CREATE EXTENSION statement is not one "
                           "pg_dump writes; refusing it");
                goto out;
            }
            pf_buf_append_str(&create, pfx);
            pf_buf_append(&create, q, nl);
            pf_buf_append_str(&create, " WITH SCHEMA ");
            pf_buf_append(&create, sch, sl);
            pf_buf_append_str(&create, ";\n");
            q = sch + sl;
        }
        if (create.len && run_psql_str(r, r->o->dbname, &create, NULL, err) < 0) {
            pf_err_prefix(err, "creating the extensions");
            goto out;
        }
    }
    int fd = open(list, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        pf_err_sys(err, PF_EIO, "cannot create %s", list);
        goto out;
    }
    bool ok = write(fd, keep.data ? (const char *)keep.data : "", keep.len) == (ssize_t)keep.len;
    if (r->restore_os) {
        struct passwd *pw = getpwnam(r->restore_os);
        ok = ok && pw && fchown(fd, pw->pw_uid, pw->pw_gid) == 0;
    }
    if (close(fd) < 0 || !ok) {
        pf_err_sys(err, PF_EIO, "writing %s", list);
        goto out;
    }
    rc = 0;
out:
    pf_buf_free(&toc);
    pf_buf_free(&keep);
    pf_buf_free(&ext);
    pf_buf_free(&sql);
    pf_buf_free(&create);
    return rc;
}

static int default_jobs(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    if (n < 1)
        n = 1;
    return n > 8 ? 8 : (int)n;
}

int pf_pg_restore(const pf_pg_restore_opts *o, pf_source *globals, pf_source *dump, pf_err *err)
{
    int rc = -1;
    rctx r;
    pf_buf gl = PF_BUF_INIT, sql = PF_BUF_INIT;
    pf_pgsql_globals pg = {0};
    char dir[PATH_MAX] = "", file[PATH_MAX] = "", list[PATH_MAX] = "";
    envlist env = {0};
    bool exists = false, spooling = false;
    spool_job sp;
    if (rctx_init(&r, o, err) < 0 || check_with(&r, &exists, err) < 0)
        goto out;
    if (globals && slurp(globals, &gl, 64u * 1024 * 1024, "globals.sql", err) < 0)
        goto out;
    /* Before anything changes on the target: a file we refuse leaves it as it was. */
    if (globals && pf_pgsql_globals_parse(gl.data ? (const char *)gl.data : "", gl.len, o->dbname,
                                          &pg, err) < 0) {
        pf_err_prefix(err, "refusing the snapshot's globals.sql (the database was not touched)");
        goto out;
    }

    spool_start(&sp, &r, dump);
    spooling = true;
    if (exists) {
        /* Empty, or force: start from a clean CREATE DATABASE either way. */
        pf_buf_append_str(&sql, "DROP DATABASE ");
        sql_ident(&sql, o->dbname);
        pf_buf_append_str(&sql, o->force ? " WITH (FORCE);\n" : ";\n");
        if (run_psql_str(&r, "postgres", &sql, NULL, err) < 0) {
            pf_err_prefix(err, "dropping database \"%s\"", o->dbname);
            goto out;
        }
        pf_info("postgres: dropped the existing database \"%s\"", o->dbname);
    }
    if (globals && apply_roles(&r, &pg, err) < 0)
        goto out;
    if (owner_role(&r, true, err) < 0)
        goto out;

    pf_buf_reset(&sql);
    pf_buf_append_str(&sql, "CREATE DATABASE ");
    sql_ident(&sql, o->dbname);
    pf_buf_append_str(&sql, " WITH TEMPLATE = template0 ENCODING = 'UTF8' OWNER = ");
    sql_ident(&sql, o->owner);
    pf_buf_append_str(&sql, ";\n");
    if (run_psql_str(&r, "postgres", &sql, NULL, err) < 0) {
        pf_err_prefix(err, "creating database \"%s\"", o->dbname);
        goto out;
    }

    spooling = false;
    int spooled = spool_wait(&sp, err);
    snprintf(dir, sizeof dir, "%s", sp.dir);
    snprintf(file, sizeof file, "%s", sp.file);
    if (spooled < 0)
        goto out;
    bool as_owner = strcmp(r.restore_role, r.admin) != 0;
    if (as_owner) {
        join_path(list, sizeof list, dir, "restore.list");
        if (prepare_extensions(&r, file, list, err) < 0)
            goto out;
    }
    char jobs[32], target[PATH_MAX + 32], role[PATH_MAX + 16];
    snprintf(jobs, sizeof jobs, "--jobs=%d", o->jobs > 0 ? o->jobs : default_jobs());
    pf_buf_reset(&sql);
    /* A conninfo string, so that any database name is taken literally. */
    pf_buf_append_str(&sql, "dbname=");
    pf_buf_u8(&sql, '\'');
    for (const char *p = o->dbname; *p; p++) {
        if (*p == '\'' || *p == '\\')
            pf_buf_u8(&sql, '\\');
        pf_buf_u8(&sql, (uint8_t)*p);
    }
    pf_buf_u8(&sql, '\'');
    snprintf(target, sizeof target, "%s", (const char *)sql.data);
    snprintf(role, sizeof role, "--role=%s", o->owner);
    const char *args[] = {jobs,
                          "--exit-on-error",
                          "--dbname",
                          target,
                          o->no_owner ? "--no-owner" : file,
                          o->no_owner ? role : NULL,
                          o->no_owner ? file : NULL,
                          NULL};
    const char *argv[16];
    int na = 0;
    argv[na++] = r.pg_restore;
    if (as_owner) {
        argv[na++] = "--use-list";
        argv[na++] = list;
    }
    for (int i = 0; args[i] && na < 15; i++)
        argv[na++] = args[i];
    argv[na] = NULL;
    env_conn(&env, o->host, o->port, r.restore_role, o->dbname, r.restore_password, NULL);
    pf_info("postgres: pg_restore as %s%s%s%s", r.restore_role, r.restore_os ? " (OS user " : "",
            r.restore_os ? r.restore_os : "", r.restore_os ? ")" : "");
    pf_exec_opts eo = {.argv = argv,
                       .env = (const char *const *)env.item,
                       .user = r.restore_os,
                       .cwd = "/",
                       .name = "pg_restore"};
    if (pf_exec_run(&eo, NULL, err) < 0) {
        if (as_owner &&
            (strstr(err->msg, "must be member of role") || strstr(err->msg, "must be owner of") ||
             strstr(err->msg, "permission denied")))
            pf_err_prefix(err,
                          "restoring as the owner %s, not a superuser (the dump holds "
                          "objects it may not create; if it comes from a server you "
                          "trust, run again with --force --pg-restore-as-admin)",
                          r.restore_role);
        goto out;
    }

    pf_buf_reset(&sql);
    pf_buf_append_str(&sql,
                      "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n");
    for (size_t i = 0; i < pg.ndb; i++)
        pf_buf_append_str(&sql, pg.db[i].sql);
    /* Statistics: every restored row counts as inserted since the last analyze, so
     * autovacuum analyzes each table within autovacuum_naptime of the restore, on its own
     * time, and pg_restore's CREATE INDEX has set the row estimates already. An ANALYZE of
     * our own is the last step of the restore's critical path (seconds at size m): only
     * where autovacuum is off, and no one else would (docs/DECISIONS.md). */
    pf_buf_append_str(&sql, "SELECT current_setting('autovacuum') = 'off' AS pf_analyze \\gset\n"
                            "\\if :pf_analyze\nANALYZE;\n\\endif\n");
    if (run_psql_str(&r, o->dbname, &sql, NULL, err) < 0) {
        pf_err_prefix(err, "applying the database-level settings");
        goto out;
    }
    rc = 0;
out:
    if (spooling) { /* a step before pg_restore failed: its error is the one reported */
        spool_wait(&sp, NULL);
        snprintf(dir, sizeof dir, "%s", sp.dir);
        snprintf(file, sizeof file, "%s", sp.file);
    }
    if (file[0] && dump)
        unlink(file);
    else if (file[0])
        remove_tree(file);
    if (list[0])
        unlink(list);
    if (dir[0])
        rmdir(dir);
    env_free(&env);
    pf_buf_free(&gl);
    pf_buf_free(&sql);
    pf_pgsql_globals_free(&pg);
    return rc;
}

/* ---- the component (component.h) ------------------------------------------------------ */

typedef struct pg_job {
    const pf_pg_conn *conn;
    pf_pg_info *info;
    pf_pg_dump_opts dump_opts;
    pf_component_run *run;
    pf_dir *dir;
    const char *name;
    pf_dir *files; /* a parallel dump: the folder its files go into */
} pg_job;

/* What a backup learned, for describe. */
typedef struct pg_state {
    pf_pg_info info;
    char reused_from[2 * PF_ID_LEN + 1]; /* the snapshot whose pg_dump is reused; "" */
} pg_state;

static int produce_globals(void *ctx, pf_sink *sink, pf_err *err)
{
    pg_job *j = ctx;
    return pf_pg_dump_globals(j->conn, j->info, sink, err);
}

static void dump_ready(void *ctx)
{
    pf_component_run *run = ctx;
    if (run->ready)
        run->ready(run);
}

/* The parent's dump goes into this snapshot unread; the snapshot it names is the one that
 * ran pg_dump (a parent that reused one passes its origin on). */
static bool reuse_parent_dump(void *ctx)
{
    pg_job *j = ctx;
    pf_err e = {0};
    if (pf_archive_reuse(j->run->arch, j->dir, j->name, &e)) {
        pf_info("postgres: the parent's dump cannot be reused (%s); dumping", e.msg);
        return false;
    }
    pg_state *st = j->run->state;
    const cJSON *from = cJSON_GetObjectItemCaseSensitive(j->run->parent, "dump_reused_from");
    const cJSON *bytes = cJSON_GetObjectItemCaseSensitive(j->run->parent, "dump_bytes");
    snprintf(st->reused_from, sizeof st->reused_from, "%s",
             cJSON_IsString(from) ? from->valuestring : j->run->parent_id);
    st->info.dump_bytes = cJSON_IsNumber(bytes) ? (uint64_t)bytes->valuedouble : 0;
    pf_info("postgres: the database has not changed since snapshot %.8s: its dump is reused",
            st->reused_from);
    return true;
}

static void dump_name(const char *dbname, bool dir, char *out, size_t n)
{
    snprintf(out, n, "%s%s", or_default(dbname, DEFAULT_DB),
             dir ? PF_LAYOUT_PG_DIR_SUFFIX : PF_LAYOUT_PG_DUMP_SUFFIX);
}

static int store_file(void *ctx, const char *path, const char *name, pf_err *err)
{
    pg_job *j = ctx;
    struct stat st;
    if (stat(path, &st) == 0)
        j->info->dump_bytes += (uint64_t)st.st_size;
    return pf_archive_path(j->run->arch, j->files, name, path, NULL, err);
}

/* A parallel dump: its files into the folder <db>.dir as pg_dump closes them. */
static int add_dump_dir(pg_job *j, pf_err *err)
{
    j->files = pf_dir_begin(j->run->arch, j->dir, j->name, err);
    if (!j->files)
        return -1;
    j->dump_opts.jobs = j->run->set->pg_dump_jobs;
    j->dump_opts.file_done = store_file;
    j->dump_opts.file_ctx = j;
    if (pf_pg_dump(j->conn, j->info, &j->dump_opts, NULL, err)) {
        pf_dir_abort(j->files);
        return -1;
    }
    if (j->info->reused) {
        pf_dir_abort(j->files);
        return 0;
    }
    return pf_dir_end(j->run->arch, j->files, NULL, err);
}

/* The dump, or the parent's when opts->reuse_state says nothing changed. */
static int add_dump(pg_job *j, pf_err *err)
{
    if (j->run->set->pg_dump_jobs > 1)
        return add_dump_dir(j, err);
    pf_sink *sink = pf_archive_stream_begin(j->run->arch, j->dir, j->name, 0600, err);
    if (!sink)
        return -1;
    if (pf_pg_dump(j->conn, j->info, &j->dump_opts, sink, err)) {
        pf_archive_stream_abort(sink);
        return -1;
    }
    if (j->info->reused) {
        pf_archive_stream_abort(sink);
        return 0;
    }
    return pf_archive_stream_end(j->run->arch, sink, err);
}

static int postgres_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    const pf_pg_conn *pg = &set->pg;
    pg_state *st = calloc(1, sizeof *st);
    if (!st)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    run->state = st;
    pf_pg_info *info = &st->info;
    /* As root on a standard install: the superuser over the socket when it gets in (it
     * reads every table and the roles' passwords), else the app's own user. */
    pf_pg_conn pg_db, pg_su;
    bool peer = pf_pg_peer_identities(pg, &pg_db, &pg_su);
    const pf_pg_conn *use = &pg_db;
    if (peer && strcmp(pg_su.os_user, pg_db.os_user)) {
        pf_err serr = {0};
        pf_info("postgres: probing %s as the OS user postgres", pg->dbname);
        if (pf_pg_probe(&pg_su, info, &serr) == 0 && info->superuser)
            use = &pg_su;
        else
            pf_warn("postgres: cannot connect as the superuser postgres (%s); dumping as the "
                    "OS user %s: tables it cannot read fail the dump, roles lose their "
                    "passwords",
                    serr.msg[0] ? serr.msg : "not a superuser", pg_db.os_user);
    }
    if (use == &pg_db) {
        pf_info("postgres: probing %s%s%s", pg->dbname, peer ? " as the OS user " : "",
                peer ? pg_db.os_user : "");
        if (pf_pg_probe(&pg_db, info, err)) {
            if (err->code == PF_EAUTH && pg->password && set->pg_password_from)
                pf_err_prefix(err, "%s was refused", set->pg_password_from);
            return -1;
        }
    }
    char name[512];
    dump_name(pg->dbname, set->pg_dump_jobs > 1, name, sizeof name);
    pg_job job = {.conn = use, .info = info, .run = run, .name = name};
    if (set->pg_dump)
        job.dump_opts = *set->pg_dump;
    job.dump_opts.ready = dump_ready;
    job.dump_opts.ready_ctx = run;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(run->parent, "dump_state");
    if (cJSON_IsString(ps) && run->parent_id && !set->pg_fresh_dump) {
        job.dump_opts.reuse_state = ps->valuestring;
        job.dump_opts.reuse = reuse_parent_dump;
        job.dump_opts.reuse_ctx = &job;
    }
    pf_dir *d = pf_dir_begin(run->arch, run->root, PF_LAYOUT_POSTGRES, err);
    if (!d)
        return -1;
    job.dir = d;
    if (pf_component_stream(run->arch, d, PF_LAYOUT_PG_GLOBALS, produce_globals, &job, err))
        goto fail;
    pf_info("postgres: pg_dump %s (server %s, client %s)", pg->dbname, info->server_version,
            info->client_version);
    if (add_dump(&job, err))
        goto fail;
    return pf_dir_end(run->arch, d, NULL, err);
fail:
    pf_dir_abort(d);
    return -1;
}

static void postgres_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    const pg_state *st = run->state;
    const pf_pg_info *info = &st->info;
    cJSON_AddStringToObject(entry, "status", "ok");
    cJSON_AddStringToObject(entry, "database", run->set->pg.dbname);
    cJSON_AddNumberToObject(entry, "dump_bytes", (double)info->dump_bytes);
    if (info->state[0])
        cJSON_AddStringToObject(entry, "dump_state", info->state);
    if (st->reused_from[0])
        cJSON_AddStringToObject(entry, "dump_reused_from", st->reused_from);
    cJSON_AddStringToObject(manifest, "postgres", info->server_version);
    cJSON_AddStringToObject(manifest, "pg_dump", info->client_version);
    cJSON_AddNumberToObject(manifest, "accounts", (double)info->accounts);
    cJSON_AddNumberToObject(manifest, "statuses", (double)info->statuses);
    cJSON_AddNumberToObject(manifest, "media_attachments", (double)info->media_attachments);
}

static int postgres_restore_check(pf_component_run *run, pf_err *err)
{
    char name[512], path[600];
    if (pf_lookup_path(run->repo, run->tree, PF_LAYOUT_POSTGRES "/" PF_LAYOUT_PG_GLOBALS,
                       &run->node[0], err))
        return -1;
    /* The dump is one file, or the folder of a parallel dump's files. */
    dump_name(run->set->pg_restore.dbname, false, name, sizeof name);
    snprintf(path, sizeof path, "%s/%s", PF_LAYOUT_POSTGRES, name);
    pf_err e1 = {0};
    if (pf_lookup_path(run->repo, run->tree, path, &run->node[1], &e1)) {
        /* Not found: the missing .dump is what is reported when there is no folder either. */
        dump_name(run->set->pg_restore.dbname, true, name, sizeof name);
        snprintf(path, sizeof path, "%s/%s", PF_LAYOUT_POSTGRES, name);
        pf_err e2 = {0};
        if (e1.code != PF_ENOTFOUND ||
            pf_lookup_path(run->repo, run->tree, path, &run->node[1], &e2) ||
            run->node[1].type != PF_NODE_DIR) {
            *err = e1;
            return -1;
        }
    }
    return pf_pg_restore_check(&run->set->pg_restore, err);
}

/* A parallel dump's folder, written out for pg_restore -j. */
static int fill_dump_dir(void *ctx, const char *dir, pf_err *err)
{
    pf_component_run *run = ctx;
    pf_restore_opts ro = {.workers = run->set->workers};
    pf_restore_stats rs = {0};
    return pf_restore_dir_into(run->repo, &run->node[1], dir, &ro, &rs, err);
}

static int postgres_restore(pf_component_run *run, pf_err *err)
{
    pf_info("postgres: restoring %s", run->set->pg_restore.dbname);
    bool is_dir = run->node[1].type == PF_NODE_DIR;
    pf_pg_restore_opts o = run->set->pg_restore;
    if (is_dir) {
        o.fill_dir = fill_dump_dir;
        o.fill_ctx = run;
    }
    pf_source *g = pf_node_source_new(run->repo, &run->node[0]);
    pf_source *d = is_dir ? NULL : pf_node_source_new(run->repo, &run->node[1]);
    int rc = -1;
    if (!g || (!d && !is_dir))
        pf_err_set(err, PF_EGENERIC, "out of memory");
    else
        rc = pf_pg_restore(&o, g, d, err);
    pf_node_source_free(g);
    pf_node_source_free(d);
    return rc;
}

static const char *const postgres_aliases[] = {"db", "database", NULL};

const pf_component pf_postgres_component = {.name = PF_LAYOUT_POSTGRES,
                                            .aliases = postgres_aliases,
                                            .ready_early = true,
                                            .backup = postgres_backup,
                                            .describe = postgres_describe,
                                            .restore_check = postgres_restore_check,
                                            .restore = postgres_restore};
