#include "drill/drill.h"

#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "drill/pitr.h"
#include "drill/scratch.h"
#include "mastodon/env.h"
#include "mastodon/mastodon.h"
#include "mastodon/safety.h"
#include "repo/resolve.h"
#include "repo/runs.h"
#include "repo/snapshot.h"
#include "repo/tree.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static pf_drill_check *add_check(pf_drill_result *res, const char *name, bool ok, const char *fmt,
                                 ...) __attribute__((format(printf, 4, 5)));
static pf_drill_check *add_check(pf_drill_result *res, const char *name, bool ok, const char *fmt,
                                 ...)
{
    if (res->nchecks == PF_DRILL_CHECKS_MAX)
        return NULL;
    pf_drill_check *c = &res->checks[res->nchecks++];
    snprintf(c->name, sizeof c->name, "%s", name);
    c->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
    return c;
}

/* ---- the database ---- */

static PGconn *scratch_db(const pf_scratch *sc, const char *dbname)
{
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    char port[16];
    snprintf(port, sizeof port, "%d", sc->pg_port);
    const char *vals[] = {sc->pg_socket_dir, port, sc->pg_superuser, dbname, NULL};
    return PQconnectdbParams(keys, vals, 0);
}

static int64_t one_number(PGconn *c, const char *sql, char *why, size_t n)
{
    PGresult *r = PQexec(c, sql);
    int64_t v = -1;
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        snprintf(why, n, "%s", PQresultErrorMessage(r));
    PQclear(r);
    why[strcspn(why, "\n")] = '\0';
    return v;
}

static void prove_database(const pf_scratch *sc, const pf_snapshot *s, const char *dbname,
                           pf_drill_result *res)
{
    PGconn *c = scratch_db(sc, dbname);
    if (PQstatus(c) != CONNECTION_OK) {
        char msg[300];
        snprintf(msg, sizeof msg, "%s", PQerrorMessage(c));
        msg[strcspn(msg, "\n")] = '\0';
        add_check(res, "database", false, "cannot connect to the restored %s: %s", dbname, msg);
        PQfinish(c);
        return;
    }
    /* The manifest's counts were taken in the dump's own snapshot: exact, and what the
     * restored database must hold. */
    static const char *const tables[] = {"accounts", "statuses", "media_attachments"};
    char detail[400] = "", why[300] = "";
    size_t used = 0;
    bool ok = true;
    for (size_t i = 0; i < sizeof tables / sizeof *tables; i++) {
        cJSON *want = s->manifest ? cJSON_GetObjectItemCaseSensitive(s->manifest, tables[i]) : NULL;
        if (!cJSON_IsNumber(want) || want->valuedouble < 0)
            continue;
        char sql[96];
        snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", tables[i]);
        int64_t got = one_number(c, sql, why, sizeof why);
        bool same = got == (int64_t)want->valuedouble;
        ok &= same;
        used += (size_t)snprintf(detail + used, sizeof detail - used, "%s%s %lld%s%s",
                                 used ? ", " : "", tables[i], (long long)got,
                                 same ? "" : " (snapshot: ", same ? "" : "differs)");
        if (used >= sizeof detail)
            break;
    }
    add_check(res, "row counts", ok && used > 0, "%s",
              used ? detail : "the manifest has no row counts");
    int64_t migrations = one_number(c, "SELECT count(*) FROM schema_migrations", why, sizeof why);
    char last[64] = "";
    PGresult *r = PQexec(c, "SELECT max(version) FROM schema_migrations");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
        snprintf(last, sizeof last, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if (migrations > 0)
        add_check(res, "schema migrations", true, "%lld applied, newest %s", (long long)migrations,
                  last);
    else
        add_check(res, "schema migrations", false, "none in the restored database%s%s",
                  why[0] ? ": " : "", why);
    PQfinish(c);
}

/* The encryption keys: the restored database's encrypted values (two-factor secrets)
 * decrypt with the keys the snapshot holds (mastodon/safety.h). */
static void prove_keys(pf_repo *r, const pf_scratch *sc, const pf_snapshot *s, const char *dbname,
                       pf_drill_result *res)
{
    PGconn *c = scratch_db(sc, dbname);
    if (PQstatus(c) == CONNECTION_OK) {
        bool ok;
        char detail[600];
        pf_safety_drill_keys(r, s->tree, c, &ok, detail, sizeof detail);
        add_check(res, "encryption keys", ok, "%s", detail);
    }
    PQfinish(c);
}

/* ---- media: a sample compared byte for byte with the snapshot ---- */

typedef struct media_walk {
    pf_repo *r;
    const char *root; /* the restored media folder */
    size_t want, seen, every, compared;
    char first_bad[300];
    pf_err *err;
} media_walk;

static int compare_file(media_walk *w, const char *rel, const pf_node *n)
{
    char path[8200];
    snprintf(path, sizeof path, "%.4000s/%.4000s", w->root, rel);
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        snprintf(w->first_bad, sizeof w->first_bad, "%.200s: not restored", rel);
        return 1;
    }
    int bad = 0;
    uint64_t total = 0;
    pf_buf blob = PF_BUF_INIT, disk = PF_BUF_INIT;
    for (size_t i = 0; i < n->nblobs && !bad; i++) {
        pf_buf_reset(&blob);
        if (pf_repo_load_blob(w->r, n->blobs[i], &blob, w->err) < 0) {
            snprintf(w->first_bad, sizeof w->first_bad, "%.200s: %.90s", rel, w->err->msg);
            bad = 1;
            break;
        }
        pf_buf_reset(&disk);
        pf_buf_reserve(&disk, blob.len);
        ssize_t got = pread(fd, disk.data, blob.len, (off_t)total);
        if (got != (ssize_t)blob.len || memcmp(disk.data, blob.data, blob.len)) {
            snprintf(w->first_bad, sizeof w->first_bad,
                     "%.200s: differs from the snapshot at byte %llu", rel,
                     (unsigned long long)total);
            bad = 1;
        }
        total += blob.len;
    }
    char extra;
    if (!bad && pread(fd, &extra, 1, (off_t)total) == 1) {
        snprintf(w->first_bad, sizeof w->first_bad, "%.200s: longer than in the snapshot", rel);
        bad = 1;
    }
    close(fd);
    pf_buf_free(&blob);
    pf_buf_free(&disk);
    w->compared += !bad;
    return bad;
}

static int walk_media(media_walk *w, const uint8_t tree[PF_ID_LEN], const char *prefix, int depth)
{
    if (depth > 64 || w->compared >= w->want || w->first_bad[0])
        return 0;
    pf_tree t = {0};
    if (pf_repo_load_tree(w->r, tree, &t, w->err) < 0)
        return -1;
    int rc = 0;
    for (size_t i = 0; i < t.count && rc == 0 && !w->first_bad[0] && w->compared < w->want; i++) {
        const pf_node *n = &t.nodes[i];
        char rel[4096];
        if (snprintf(rel, sizeof rel, "%s%s%.255s", prefix, *prefix ? "/" : "", n->name) >=
            (int)sizeof rel)
            continue; /* deeper than any path a restore writes */
        if (n->type == PF_NODE_DIR && n->nblobs == 1)
            rc = walk_media(w, n->blobs[0], rel, depth + 1);
        else if (n->type == PF_NODE_FILE && w->seen++ % w->every == 0)
            compare_file(w, rel, n);
    }
    pf_tree_free(&t);
    return rc;
}

static void prove_media(pf_repo *r, const pf_snapshot *s, const char *media_root, size_t want,
                        pf_drill_result *res)
{
    pf_tree top = {0};
    pf_err e = {0};
    if (pf_repo_load_tree(r, s->tree, &top, &e) < 0) {
        add_check(res, "media sample", false, "%s", e.msg);
        return;
    }
    const pf_node *m = pf_tree_find(&top, "media", 5);
    if (!m || m->type != PF_NODE_DIR || m->nblobs != 1) {
        add_check(res, "media sample", true, "the snapshot holds no media (S3, or skipped)");
        pf_tree_free(&top);
        return;
    }
    uint64_t files = 0;
    cJSON *st = s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "files") : NULL;
    if (cJSON_IsNumber(st))
        files = (uint64_t)st->valuedouble;
    /* Spread the sample over the tree: every k-th file, k from the snapshot's file count. */
    media_walk w = {.r = r, .root = media_root, .want = want, .every = files / want + 1, .err = &e};
    int rc = walk_media(&w, m->blobs[0], "", 0);
    pf_tree_free(&top);
    if (rc < 0)
        add_check(res, "media sample", false, "%s", e.msg);
    else if (w.first_bad[0])
        add_check(res, "media sample", false, "%s", w.first_bad);
    else
        add_check(res, "media sample", w.compared > 0 || w.seen == 0,
                  "%zu files byte-identical to the snapshot", w.compared);
}

/* ---- secrets and Redis ---- */

static void prove_secrets(const char *live, pf_drill_result *res, char *dbname, size_t dbn)
{
    pf_mastodon_env env;
    pf_err e = {0};
    if (pf_mastodon_env_load(live, &env, &e) < 0) {
        add_check(res, "secrets", false, "%s", e.msg);
        return;
    }
    snprintf(dbname, dbn, "%s", env.db_name ? env.db_name : "mastodon_production");
    static const char *const need[] = {"SECRET_KEY_BASE", "OTP_SECRET"};
    char missing[200] = "";
    size_t used = 0;
    for (size_t i = 0; i < sizeof need / sizeof *need; i++) {
        const char *v = pf_mastodon_env_get(&env, need[i]);
        if (!v || !*v)
            used += (size_t)snprintf(missing + used, sizeof missing - used, "%s%s",
                                     used ? ", " : "", need[i]);
    }
    add_check(res, "secrets", used == 0, used ? "lacks %s" : "%s",
              used ? missing : "SECRET_KEY_BASE and OTP_SECRET present");
    pf_mastodon_env_free(&env);
}

static void prove_redis(const pf_scratch *sc, const pf_snapshot *s, pf_drill_result *res)
{
    struct timeval tv = {5, 0};
    redisContext *c = redisConnectUnixWithTimeout(sc->redis_socket, tv);
    if (!c || c->err) {
        add_check(res, "redis", false, "cannot reach the scratch Redis");
        redisFree(c);
        return;
    }
    redisReply *r = redisCommand(c, "INFO keyspace");
    long long keys = 0;
    if (r && r->type == REDIS_REPLY_STRING) {
        for (const char *p = r->str; (p = strstr(p, "keys=")); p += 5)
            keys += atoll(p + 5);
    }
    freeReplyObject(r);
    redisFree(c);
    cJSON *rc = s->components ? cJSON_GetObjectItemCaseSensitive(s->components, "redis") : NULL;
    cJSON *want = rc ? cJSON_GetObjectItemCaseSensitive(rc, "keys") : NULL;
    /* The recorded count was read just before the transfer, and a live server's queues
     * move meanwhile: near it is right, none when there were some is not. */
    if (cJSON_IsNumber(want) && want->valuedouble >= 0) {
        long long w = (long long)want->valuedouble, slack = w / 10 > 10 ? w / 10 : 10;
        bool ok = (w == 0 || keys > 0) && llabs(keys - w) <= slack;
        add_check(res, "redis", ok, "%lld keys loaded (the snapshot's server had %lld)", keys, w);
    } else
        add_check(res, "redis", true, "%lld keys loaded", keys);
}

/* ---- the run ---- */

static void record(pf_repo *r, const pf_drill_result *res, int exit_code, const char *why)
{
    char host[256] = "", result[500];
    gethostname(host, sizeof host - 1);
    if (why)
        snprintf(result, sizeof result, "%s", why);
    else if (res->ok)
        snprintf(result, sizeof result, "ok");
    else {
        size_t used = 0;
        result[0] = '\0';
        for (size_t i = 0; i < res->nchecks && used < sizeof result; i++)
            if (!res->checks[i].ok)
                used +=
                    (size_t)snprintf(result + used, sizeof result - used, "%s%s: %s",
                                     used ? "; " : "", res->checks[i].name, res->checks[i].detail);
    }
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    pf_run_record rec = {.command = "drill",
                         .host = host,
                         .time_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec,
                         .seconds = res->restore_seconds,
                         .exit_code = exit_code,
                         .result = result,
                         .snapshot = res->snapshot[0] ? (char *)res->snapshot : NULL};
    rec.detail = cJSON_CreateObject();
    cJSON_AddNumberToObject(rec.detail, "total_seconds",
                            (double)(int64_t)(res->total_seconds * 1000) / 1000);
    if (res->pitr_seconds > 0)
        cJSON_AddNumberToObject(rec.detail, "pitr_seconds",
                                (double)(int64_t)(res->pitr_seconds * 1000) / 1000);
    for (size_t i = 0; i < res->nchecks; i++)
        cJSON_AddBoolToObject(rec.detail, res->checks[i].name, res->checks[i].ok);
    pf_err e = {0};
    if (pf_run_save(r, &rec, &e) < 0)
        pf_warn("drill: the result was not recorded in the repository: %s", e.msg);
    cJSON_Delete(rec.detail);
}

int pf_drill_run(pf_repo *r, const pf_drill_opts *o, pf_drill_result *res, pf_err *err)
{
    memset(res, 0, sizeof *res);
    double t0 = mono();
    pf_snapshot s;
    pf_snapshot_want want = {.kind = PF_SNAP_MASTODON, .complete = true};
    if (pf_snapshot_resolve(r, o->snapshot ? o->snapshot : "latest", &want, &s, err) < 0)
        return pf_err_prefix(err, "drill");
    snprintf(res->snapshot, sizeof res->snapshot, "%s", s.id);
    pf_scratch sc;
    if (pf_scratch_start(&sc, o->tmp, o->pg_bindir, err) < 0) {
        pf_snapshot_free(&s);
        return -1;
    }
    char media_root[300];
    snprintf(media_root, sizeof media_root, "%s/public/system", sc.live_dir);
    pf_mastodon_restore_opts ro = {.live = sc.live_dir,
                                   .snapshot = s.id,
                                   .pg_host = sc.pg_socket_dir,
                                   .pg_port = sc.pg_port,
                                   .pg_admin = sc.pg_superuser,
                                   .redis_socket = sc.redis_socket,
                                   .no_sidekiq = true,
                                   .media_root = media_root,
                                   .workers = o->workers,
                                   .pitr = PF_PITR_OFF};
    pf_mastodon_restored done = {0};
    double r0 = mono();
    int rc = pf_mastodon_restore(r, &ro, &done, err);
    res->restore_seconds = mono() - r0;
    pf_mastodon_restored_free(&done);
    if (rc < 0) {
        pf_err_prefix(err, "drill: the restore failed");
        res->total_seconds = mono() - t0;
        record(r, res, 1, err->msg);
        if (!o->keep)
            pf_scratch_stop(&sc);
        pf_snapshot_free(&s);
        return -1;
    }
    char dbname[256] = "mastodon_production";
    prove_secrets(sc.live_dir, res, dbname, sizeof dbname);
    if (pf_mastodon_has_logical(&s)) {
        prove_database(&sc, &s, dbname, res);
        prove_keys(r, &sc, &s, dbname, res);
    }
    prove_media(r, &s, media_root, o->media_sample ? o->media_sample : 20, res);
    prove_redis(&sc, &s, res);
    if (pf_mastodon_has_physical(&s) && res->nchecks < PF_DRILL_CHECKS_MAX)
        pf_drill_pitr(r, &s, &sc, o, &res->checks[res->nchecks++], &res->pitr_seconds);
    res->ok = true;
    for (size_t i = 0; i < res->nchecks; i++)
        res->ok &= res->checks[i].ok;
    res->total_seconds = mono() - t0;
    record(r, res, res->ok ? 0 : 4, NULL);
    if (o->keep)
        pf_info("drill: the scratch servers stay up in %s (PostgreSQL socket %s, Redis %s)", sc.dir,
                sc.pg_socket_dir, sc.redis_socket);
    else
        pf_scratch_stop(&sc);
    pf_snapshot_free(&s);
    return 0;
}
