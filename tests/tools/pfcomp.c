/* pfcomp: drives one component at a time, for tests/integration/components.sh.
 *
 *   pfcomp env LIVE                       print what .env.production means (no secrets)
 *   pfcomp pg-probe LIVE                  versions, superuser, row counts, chosen pg_dump
 *   pfcomp pg-dump LIVE DUMP GLOBALS      write the dump and globals.sql to files
 *   pfcomp pg-check [restore options]     would a restore be refused?
 *   pfcomp pg-restore [restore options] GLOBALS|- DUMP
 *       restore options: --host H --port P --admin U --db NAME --owner U --jobs N --force
 *                        --no-owner; passwords from $PFCOMP_ADMIN_PASSWORD and
 *                        $PFCOMP_OWNER_PASSWORD (never argv)
 *   pfcomp redis-fetch LIVE RDB           fetch an RDB like a replica (or BGSAVE fallback)
 *   pfcomp redis-check --host H --port P [--user U] [--force]
 *   pfcomp redis-load --host H --port P [--user U] RDB
 *       Redis password from $PFCOMP_REDIS_PASSWORD
 *   pfcomp s3media-list LIVE              list the media bucket of S3_ENABLED (key size)
 *
 * Exit status: 0 on success, 10 + pf_err code on failure (the message on stderr). */
#include <errno.h>
#include <libpq-fe.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/err.h"
#include "common/log.h"
#include "common/stream.h"
#include "component/postgres.h"
#include "component/redis.h"
#include "mastodon/env.h"
#include "mastodon/s3media.h"

typedef struct fd_stream {
    pf_sink sink;
    pf_source source;
    int fd;
} fd_stream;

static int fd_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    fd_stream *f = s->ctx;
    const char *c = p;
    while (n) {
        ssize_t w = write(f->fd, c, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return pf_err_sys(err, PF_EIO, "write");
        c += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t fd_read(pf_source *s, void *p, size_t n, pf_err *err)
{
    fd_stream *f = s->ctx;
    for (;;) {
        ssize_t r = read(f->fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return pf_err_sys(err, PF_EIO, "read");
        return r;
    }
}

static void fd_init(fd_stream *f, int fd)
{
    f->fd = fd;
    f->sink.write = fd_write;
    f->sink.ctx = f;
    f->source.read = fd_read;
    f->source.ctx = f;
}

static void log_stderr(int level, const char *msg)
{
    static const char *names[] = {"error", "warning", "info", "debug"};
    if (level <= PF_LOG_INFO)
        fprintf(stderr, "pfcomp: %s: %s\n", names[level], msg);
}

static int fail(const pf_err *err)
{
    fprintf(stderr, "pfcomp: %s\n", err->msg);
    return 10 + err->code;
}

static int usage(void)
{
    fprintf(stderr, "usage: see the comment at the top of tests/tools/pfcomp.c\n");
    return 2;
}

static const char *yes(bool b)
{
    return b ? "yes" : "no";
}

static void print_redis(const char *what, const pf_redis_conn *r)
{
    printf("%s.host=%s\n%s.port=%d\n%s.socket=%s\n%s.user=%s\n%s.password=%s\n%s.db=%d\n"
           "%s.tls=%s\n",
           what, r->host ? r->host : "(none)", what, r->port, what,
           r->socket ? r->socket : "(none)", what, r->user ? r->user : "(none)", what,
           r->password ? "set" : "unset", what, r->db, what, yes(r->tls));
}

static int cmd_env(int argc, char **argv)
{
    if (argc != 3)
        return usage();
    pf_mastodon_env e;
    pf_err err = {0};
    int rc = 0;
    if (pf_mastodon_env_load(argv[2], &e, &err) < 0) {
        rc = fail(&err);
        goto out;
    }
    printf("db.host=%s\ndb.port=%d\ndb.name=%s\ndb.user=%s\ndb.pass=%s\ndb.sslmode=%s\n",
           e.db_host ? e.db_host : "(socket)", e.db_port, e.db_name, e.db_user,
           e.db_pass ? "set" : "unset", e.db_sslmode);
    print_redis("redis", &e.redis);
    printf("sidekiq_redis_separate=%s\n", yes(e.sidekiq_redis_separate));
    if (e.sidekiq_redis_separate)
        print_redis("sidekiq_redis", &e.sidekiq_redis);
    printf("cache_redis_separate=%s\npaperclip_root=%s\ns3=%s\nes=%s\nlocal_domain=%s\n",
           yes(e.cache_redis_separate), e.paperclip_root, yes(e.s3_enabled), yes(e.es_enabled),
           e.local_domain);
out:
    pf_mastodon_env_free(&e);
    return rc;
}

static void pg_conn_from(const pf_mastodon_env *e, pf_pg_conn *c)
{
    memset(c, 0, sizeof *c);
    c->host = e->db_host;
    c->port = e->db_port;
    c->dbname = e->db_name;
    c->user = e->db_user;
    c->password = e->db_pass;
    c->sslmode = e->db_sslmode;
}

/* PFCOMP_IN_SNAPSHOT=show: the dump's in_snapshot hook prints what it sees (isolation,
 * read-only, the accounts it counts and the snapshot pg_dump will use); =fail: it refuses,
 * which must stop the dump before pg_dump runs. */
static int show_in_snapshot(PGconn *conn, void *ctx, pf_err *err)
{
    const char *mode = ctx;
    if (!strcmp(mode, "fail"))
        return pf_err_set(err, PF_ECOMPONENT, "the in-snapshot check refused");
    PGresult *r = PQexec(conn, "SELECT current_setting('transaction_isolation'), "
                               "current_setting('transaction_read_only'), "
                               "(SELECT count(*) FROM accounts)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pf_err_set(err, PF_ECOMPONENT, "in-snapshot query: %s", PQerrorMessage(conn));
        PQclear(r);
        return -1;
    }
    printf("in_snapshot_isolation=%s\nin_snapshot_read_only=%s\nin_snapshot_accounts=%s\n",
           PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2));
    fflush(stdout);
    PQclear(r);
    return 0;
}

static int cmd_pg(int argc, char **argv, bool dump)
{
    if (argc != (dump ? 5 : 3))
        return usage();
    pf_mastodon_env e;
    pf_err err = {0};
    pf_pg_info info;
    pf_pg_conn c;
    int rc = 0, fd1 = -1, fd2 = -1;
    if (pf_mastodon_env_load(argv[2], &e, &err) < 0) {
        rc = fail(&err);
        goto out;
    }
    pg_conn_from(&e, &c);
    if (pf_pg_probe(&c, &info, &err) < 0) {
        rc = fail(&err);
        goto out;
    }
    if (dump) {
        fd_stream s1, s2;
        fd1 = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        fd2 = open(argv[4], O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (fd1 < 0 || fd2 < 0) {
            pf_err_sys(&err, PF_EIO, "open");
            rc = fail(&err);
            goto out;
        }
        fd_init(&s1, fd1);
        fd_init(&s2, fd2);
        const char *hook = getenv("PFCOMP_IN_SNAPSHOT");
        pf_pg_dump_opts dopts = {.in_snapshot = hook && *hook ? show_in_snapshot : NULL,
                                 .ctx = (void *)hook};
        if (pf_pg_dump(&c, &info, &dopts, &s1.sink, &err) < 0 ||
            pf_pg_dump_globals(&c, &info, &s2.sink, &err) < 0) {
            rc = fail(&err);
            goto out;
        }
    }
    printf("server_version=%s\nserver_version_num=%d\nsuperuser=%s\naccounts=%lld\n"
           "statuses=%lld\nmedia_attachments=%lld\ncounts_in_dump_snapshot=%s\n"
           "client_version=%s\npg_dump=%s\n",
           info.server_version, info.server_version_num, yes(info.superuser),
           (long long)info.accounts, (long long)info.statuses, (long long)info.media_attachments,
           yes(info.counts_in_dump_snapshot), info.client_version, info.pg_dump);
    if (dump)
        printf("dump_bytes=%llu\nglobals_bytes=%llu\n", (unsigned long long)info.dump_bytes,
               (unsigned long long)info.globals_bytes);
out:
    if (fd1 >= 0)
        close(fd1);
    if (fd2 >= 0)
        close(fd2);
    pf_mastodon_env_free(&e);
    return rc;
}

/* Parses restore options; returns the index of the first operand, or -1. */
static int restore_opts(int argc, char **argv, pf_pg_restore_opts *o)
{
    memset(o, 0, sizeof *o);
    o->admin_password = getenv("PFCOMP_ADMIN_PASSWORD");
    o->owner_password = getenv("PFCOMP_OWNER_PASSWORD");
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--force"))
            o->force = true;
        else if (!strcmp(a, "--no-owner"))
            o->no_owner = true;
        else if (!strcmp(a, "--host") && v)
            o->host = argv[++i];
        else if (!strcmp(a, "--port") && v)
            o->port = atoi(argv[++i]);
        else if (!strcmp(a, "--admin") && v)
            o->admin_user = argv[++i];
        else if (!strcmp(a, "--db") && v)
            o->dbname = argv[++i];
        else if (!strcmp(a, "--owner") && v)
            o->owner = argv[++i];
        else if (!strcmp(a, "--jobs") && v)
            o->jobs = atoi(argv[++i]);
        else if (!strcmp(a, "--tmpdir") && v)
            o->tmpdir = argv[++i];
        else if (a[0] == '-' && a[1] == '-')
            return -1;
        else
            break;
    }
    return i;
}

static int cmd_pg_check(int argc, char **argv)
{
    pf_pg_restore_opts o;
    pf_err err = {0};
    int i = restore_opts(argc, argv, &o);
    if (i != argc)
        return usage();
    if (pf_pg_restore_check(&o, &err) < 0)
        return fail(&err);
    printf("restore possible\n");
    return 0;
}

static int cmd_pg_restore(int argc, char **argv)
{
    pf_pg_restore_opts o;
    pf_err err = {0};
    int i = restore_opts(argc, argv, &o);
    if (i < 0 || argc - i != 2)
        return usage();
    int gfd = -1, dfd = -1, rc = 0;
    fd_stream g, d;
    if (strcmp(argv[i], "-") != 0 && (gfd = open(argv[i], O_RDONLY)) < 0) {
        pf_err_sys(&err, PF_EIO, "open %s", argv[i]);
        return fail(&err);
    }
    if ((dfd = open(argv[i + 1], O_RDONLY)) < 0) {
        pf_err_sys(&err, PF_EIO, "open %s", argv[i + 1]);
        rc = fail(&err);
        goto out;
    }
    fd_init(&g, gfd);
    fd_init(&d, dfd);
    if (pf_pg_restore(&o, gfd >= 0 ? &g.source : NULL, &d.source, &err) < 0)
        rc = fail(&err);
    else
        printf("restored\n");
out:
    if (gfd >= 0)
        close(gfd);
    if (dfd >= 0)
        close(dfd);
    return rc;
}

static int cmd_redis_fetch(int argc, char **argv)
{
    if (argc != 4)
        return usage();
    pf_mastodon_env e;
    pf_err err = {0};
    pf_redis_info info;
    int rc = 0, fd = -1;
    if (pf_mastodon_env_load(argv[2], &e, &err) < 0) {
        rc = fail(&err);
        goto out;
    }
    fd = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0) {
        pf_err_sys(&err, PF_EIO, "open %s", argv[3]);
        rc = fail(&err);
        goto out;
    }
    fd_stream s;
    fd_init(&s, fd);
    if (pf_redis_fetch_rdb(&e.redis, &s.sink, &info, &err) < 0) {
        rc = fail(&err);
        goto out;
    }
    printf("redis_version=%s\nmethod=%s\nrdb_bytes=%llu\nkeys=%lld\n", info.version, info.method,
           (unsigned long long)info.rdb_bytes, (long long)info.keys);
out:
    if (fd >= 0)
        close(fd);
    pf_mastodon_env_free(&e);
    return rc;
}

static int redis_opts(int argc, char **argv, pf_redis_conn *c, bool *force)
{
    memset(c, 0, sizeof *c);
    c->port = 6379;
    c->password = getenv("PFCOMP_REDIS_PASSWORD");
    *force = false;
    int i = 2;
    for (; i < argc; i++) {
        const char *a = argv[i];
        bool has = i + 1 < argc;
        if (!strcmp(a, "--force"))
            *force = true;
        else if (!strcmp(a, "--host") && has)
            c->host = argv[++i];
        else if (!strcmp(a, "--port") && has)
            c->port = atoi(argv[++i]);
        else if (!strcmp(a, "--user") && has)
            c->user = argv[++i];
        else if (a[0] == '-' && a[1] == '-')
            return -1;
        else
            break;
    }
    if (!c->host)
        c->host = "127.0.0.1";
    return i;
}

static int cmd_redis_check(int argc, char **argv)
{
    pf_redis_conn c;
    bool force;
    pf_err err = {0};
    if (redis_opts(argc, argv, &c, &force) != argc)
        return usage();
    if (!force && pf_redis_check_empty(&c, &err) < 0)
        return fail(&err);
    printf("empty\n");
    return 0;
}

static int cmd_redis_load(int argc, char **argv)
{
    pf_redis_conn c;
    bool force;
    pf_err err = {0};
    int i = redis_opts(argc, argv, &c, &force);
    if (i < 0 || argc - i != 1)
        return usage();
    int fd = open(argv[i], O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        pf_err_sys(&err, PF_EIO, "open %s", argv[i]);
        if (fd >= 0)
            close(fd);
        return fail(&err);
    }
    fd_stream s;
    fd_init(&s, fd);
    int rc = 0;
    pf_redis_info info;
    /* A size of -1 exercises the EOF-marked transfer. */
    int64_t size = getenv("PFCOMP_UNKNOWN_SIZE") ? -1 : (int64_t)st.st_size;
    if (!force && pf_redis_check_empty(&c, &err) < 0)
        rc = fail(&err);
    else if (pf_redis_load_rdb(&c, &s.source, size, &info, &err) < 0)
        rc = fail(&err);
    else
        printf("loaded\nredis_version=%s\nrdb_bytes=%llu\nkeys=%lld\n", info.version,
               (unsigned long long)info.rdb_bytes, (long long)info.keys);
    close(fd);
    return rc;
}

static int list_line(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)ctx;
    (void)err;
    printf("%s %llu\n", key, (unsigned long long)size);
    return 0;
}

static int cmd_s3media_list(int argc, char **argv)
{
    if (argc != 3)
        return usage();
    pf_mastodon_env e;
    pf_err err = {0};
    int rc = 0;
    pf_store *s = NULL;
    if (pf_mastodon_env_load(argv[2], &e, &err) < 0 || !(s = pf_s3media_open(&e, &err)) ||
        pf_store_list(s, "", list_line, NULL, &err))
        rc = fail(&err);
    pf_store_free(s);
    pf_mastodon_env_free(&e);
    return rc;
}

int main(int argc, char **argv)
{
    pf_log_set_handler(log_stderr);
    if (argc < 2)
        return usage();
    const char *c = argv[1];
    if (!strcmp(c, "env"))
        return cmd_env(argc, argv);
    if (!strcmp(c, "pg-probe"))
        return cmd_pg(argc, argv, false);
    if (!strcmp(c, "pg-dump"))
        return cmd_pg(argc, argv, true);
    if (!strcmp(c, "pg-check"))
        return cmd_pg_check(argc, argv);
    if (!strcmp(c, "pg-restore"))
        return cmd_pg_restore(argc, argv);
    if (!strcmp(c, "redis-fetch"))
        return cmd_redis_fetch(argc, argv);
    if (!strcmp(c, "redis-check"))
        return cmd_redis_check(argc, argv);
    if (!strcmp(c, "redis-load"))
        return cmd_redis_load(argc, argv);
    if (!strcmp(c, "s3media-list"))
        return cmd_s3media_list(argc, argv);
    return usage();
}
