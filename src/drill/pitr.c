/* The point-in-time part of a drill: see pitr.h. */
#include "drill/pitr.h"

#include <libpq-fe.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/exec.h"
#include "common/log.h"
#include "component/pgphys.h"
#include "mastodon/env.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(pf_drill_check *c, bool ok, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fill(pf_drill_check *c, bool ok, const char *fmt, ...)
{
    snprintf(c->name, sizeof c->name, "point in time");
    c->ok = ok;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->detail, sizeof c->detail, fmt, ap);
    va_end(ap);
}

/* The recovered cluster answers, promoted, as the app's role, with Mastodon's schema. */
static bool prove(const char *sock, int port, const char *live, char *why, size_t n)
{
    pf_mastodon_env env;
    pf_err e = {0};
    if (pf_mastodon_env_load(live, &env, &e) < 0) {
        snprintf(why, n, "%.250s", e.msg);
        return false;
    }
    char p[16];
    snprintf(p, sizeof p, "%d", port);
    const char *keys[] = {"host", "port", "user", "dbname", NULL};
    const char *vals[] = {sock, p, env.db_user, env.db_name, NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 0);
    bool ok = false;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(why, n, "cannot connect to the recovered %s: %s", env.db_name, PQerrorMessage(c));
    } else {
        PGresult *r = PQexec(c, "SELECT pg_is_in_recovery()::text, (SELECT count(*) FROM "
                                "schema_migrations)");
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1)
            snprintf(why, n, "the recovered database: %s", PQresultErrorMessage(r));
        else if (strcmp(PQgetvalue(r, 0, 0), "false"))
            snprintf(why, n, "the recovered cluster is still in recovery");
        else if (atoll(PQgetvalue(r, 0, 1)) < 1)
            snprintf(why, n, "the recovered database has no schema migrations");
        else
            ok = true;
        PQclear(r);
    }
    why[strcspn(why, "\n")] = 0;
    PQfinish(c);
    pf_mastodon_env_free(&env);
    return ok;
}

static void stop(const char *bindir, const char *data, const char *user)
{
    char pg_ctl[512];
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", bindir);
    const char *argv[] = {pg_ctl, "-D", data, "-m", "immediate", "-w", "stop", NULL};
    pf_exec_opts o = {.argv = argv, .user = user};
    pf_err e = {0};
    char pid[600];
    snprintf(pid, sizeof pid, "%s/postmaster.pid", data);
    FILE *f = fopen(pid, "r");
    if (!f)
        return;
    fclose(f);
    if (pf_exec_run(&o, NULL, &e) < 0)
        pf_warn("drill: stopping the recovered cluster: %s", e.msg);
}

void pf_drill_pitr(pf_repo *r, const pf_snapshot *s, const pf_scratch *sc, const pf_drill_opts *o,
                   pf_drill_check *check, double *seconds)
{
    if (o->to_ns && pf_pgphys_end_ns(s) > o->to_ns) {
        fill(check, false,
             "the base backup of snapshot %.8s ended after --to: recovery cannot stop before "
             "it (drill an older snapshot)",
             s->id);
        return;
    }
    char data[300], hba[300], ctl[900];
    snprintf(data, sizeof data, "%s/pitr", sc->dir);
    snprintf(hba, sizeof hba, "%s/pitr_hba.conf", sc->dir);
    FILE *f = fopen(hba, "w");
    if (!f || fputs("local all all trust\n", f) < 0 || fclose(f)) {
        fill(check, false, "cannot write %s", hba);
        return;
    }
    /* Its own socket file beside the scratch cluster's, no TCP, and no archiving: the
     * drill's timeline must never reach the repository. */
    int port = sc->pg_port + 1;
    snprintf(ctl, sizeof ctl,
             "-p %d -c listen_addresses= -c unix_socket_directories=%s -c hba_file=%s "
             "-c archive_mode=off -c fsync=off",
             port, sc->pg_socket_dir, hba);
    pf_pgphys_restore_opts po = {.target = data,
                                 .to_ns = o->to_ns ? o->to_ns : INT64_MAX,
                                 .restore_command = o->restore_command,
                                 .start = true,
                                 .ctl_options = ctl,
                                 .pg_bindir = o->pg_bindir,
                                 .refuse_gaps = true,
                                 .own_conf = true,
                                 .workers = o->workers};
    pf_pgphys_restored done;
    pf_err err = {0};
    double t0 = mono();
    int rc = pf_pgphys_restore(r, s, &po, &done, &err);
    *seconds = mono() - t0;
    char why[300] = "";
    if (rc < 0)
        fill(check, false, "%.390s", err.msg);
    else if (done.gaps)
        fill(check, false, "%s", done.gap);
    else if (!prove(sc->pg_socket_dir, port, sc->live_dir, why, sizeof why))
        fill(check, false, "%s", why);
    else {
        int64_t at = done.reached_ns ? done.reached_ns : done.end_ns;
        time_t t = (time_t)(at / 1000000000);
        struct tm tm;
        localtime_r(&t, &tm);
        char when[32];
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        fill(check, true, "recovered to %s (%s) in %.1f s", when,
             *done.reached ? done.reached : "the end of the base backup", *seconds);
    }
    stop(o->pg_bindir ? o->pg_bindir : sc->pg_bindir, data, sc->pg_os_user);
}
