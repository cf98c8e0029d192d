#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/monitor.h"
#include "cmd/live.h"
#include "cmd/pgphys.h"
#include "common/log.h"
#include "common/treesize.h"
#include "component/component.h"
#include "mastodon/mastodon.h"
#include "mastodon/mediacheck.h"
#include "repo/backup_run.h"
#include "repo/lock.h"

static const char backup_help[] =
    "usage: permafrost backup [--tag T]... [--time \"YYYY-MM-DD HH:MM:SS\"] PATH...\n"
    "       permafrost backup --live DIR [--only db,secrets,redis,media,host]\n"
    "                         [--exclude-cache]\n\n"
    "Backs up files and directories (each stored under its base name), reading only\n"
    "files that changed since the last snapshot of the same paths on this host.\n"
    "With --live, backs up a whole Mastodon server (see 'permafrost backup --live --help').\n"
    "Exit code 3: the snapshot was written but some files could not be read.\n";

/* A first backup of paths has no parent to take its size from: this walk sums them. */
static pf_treesize *first_total;

static void backup_progress(const pf_backup_run *b, const pf_archive_stats *st)
{
    uint64_t estimate = b->estimate;
    if (!estimate && first_total)
        estimate = pf_treesize_total(first_total);
    pf_live_progress(b->started, st->files, st->bytes, st->bytes_read, estimate);
}

/* The lock, then the run: taken before and released after it, so that a signal removes
 * the lock of a backup in progress. */
static int begin_locked(struct pf_lock **lock, pf_repo *r, pf_err *err)
{
    *lock = pf_cli_lock(r, false, "backup", err);
    return *lock ? 0 : -1;
}

static pf_backup_opts run_opts(pf_repo *r)
{
    return (pf_backup_opts){.workers = pf_cli_workers(r),
                            .progress = backup_progress,
                            .program = "permafrost " PF_VERSION};
}

/* Prints the summary of a committed backup (or JSON). */
/* What metrics_file and the pings report of this backup (cli/monitor.h). */
static void fill_monitor_report(const pf_backup_run *b)
{
    cJSON *st = b->snap.stats;
    const struct {
        const char *field;
        int64_t *into;
    } counters[] = {{"files", &pf_monitor_report.files},
                    {"bytes_read", &pf_monitor_report.bytes_read},
                    {"bytes_new", &pf_monitor_report.bytes_added},
                    {"bytes_stored", &pf_monitor_report.bytes_stored}};
    for (size_t i = 0; i < sizeof counters / sizeof *counters; i++) {
        cJSON *v = st ? cJSON_GetObjectItemCaseSensitive(st, counters[i].field) : NULL;
        if (cJSON_IsNumber(v))
            *counters[i].into = (int64_t)v->valuedouble;
    }
    cJSON *c;
    pf_monitor_report.ncomponents = 0;
    cJSON_ArrayForEach(c, b->snap.components)
    {
        size_t k = pf_monitor_report.ncomponents;
        if (k == sizeof pf_monitor_report.components / sizeof pf_monitor_report.components[0])
            break;
        cJSON *status = cJSON_GetObjectItemCaseSensitive(c, "status");
        pf_monitor_report.components[k].name = c->string;
        pf_monitor_report.components[k].ok =
            cJSON_IsString(status) && !strcmp(status->valuestring, "ok");
        pf_monitor_report.ncomponents++;
    }
}

static void backup_report(pf_backup_run *b)
{
    fill_monitor_report(b);
    pf_progress_done();
    if (pf_g.json) {
        pf_out_json(pf_cli_snapshot_json(&b->snap));
        return;
    }
    if (pf_g.verbosity < 0)
        return;
    cJSON *st = b->snap.stats;
    double files = cJSON_GetObjectItem(st, "files")->valuedouble;
    double unchanged = cJSON_GetObjectItem(st, "files_unchanged")->valuedouble;
    double bytes = cJSON_GetObjectItem(st, "bytes")->valuedouble;
    double added = cJSON_GetObjectItem(st, "bytes_new")->valuedouble;
    double stored = cJSON_GetObjectItem(st, "bytes_stored")->valuedouble;
    double secs = cJSON_GetObjectItem(st, "seconds")->valuedouble;
    char hb[32], ha[32], hs[32];
    pf_human_bytes((uint64_t)bytes, hb, sizeof hb);
    pf_human_bytes((uint64_t)added, ha, sizeof ha);
    pf_human_bytes((uint64_t)stored, hs, sizeof hs);
    printf("snapshot %.8s saved: %.0f files (%.0f unchanged), %s; added %s (%s stored) in "
           "%.1f s\n",
           b->snap.id, files, unchanged, hb, ha, hs, secs);
}

/* Commits b and prints what it saved. `what` names what an unreadable entry is ("",
 * "media "). Returns the exit code. */
static int commit_and_report(pf_backup_run *b, const char *what)
{
    pf_err err = {0};
    if (pf_backup_commit(b, &err)) {
        pf_err_prefix(&err, "backup failed, no snapshot written");
        return pf_cli_fail(&err);
    }
    backup_report(b);
    pf_archive_stats st;
    pf_archiver_stats(b->arch, &st);
    if (st.errors) {
        pf_err_set(&err, PF_EINCOMPLETE,
                   "snapshot %.8s is incomplete: %llu %sentr%s could not be read (see the "
                   "warnings above)",
                   b->snap.id, (unsigned long long)st.errors, what, st.errors == 1 ? "y" : "ies");
        return pf_cli_fail(&err); /* PF_EXIT_INCOMPLETE */
    }
    char *missing = pf_mediacheck_missing_line(&b->snap.media_check);
    if (missing) {
        fprintf(stderr, "permafrost: snapshot %.8s is incomplete: %s\n", b->snap.id, missing);
        free(missing);
        return PF_EXIT_INCOMPLETE;
    }
    if (!b->snap.complete) {
        /* Nothing unreadable, yet something it must hold is missing (the encryption keys):
         * the reason was the loud line above. */
        fprintf(stderr, "permafrost: snapshot %.8s is incomplete (see the error above)\n",
                b->snap.id);
        return PF_EXIT_INCOMPLETE;
    }
    return PF_EXIT_OK;
}

static const char backup_live_help[] =
    "usage: permafrost backup --live [DIR] [--only db,physical,secrets,redis,media,host]\n"
    "                         [--exclude-cache] [--media-from-s3] [--fresh-dump]\n"
    "                         [--pg-dump-jobs N] [--tag T]... [--time \"YYYY-MM-DD HH:MM:SS\"]\n"
    "                         [--postgres logical|physical|both]\n\n"
    "Backs up a Mastodon server as one snapshot: .env.production, the PostgreSQL database\n"
    "(pg_dump streamed, roles with pg_dumpall --globals-only), a consistent Redis snapshot\n"
    "taken over the replication protocol, and the uploaded media (public/system or\n"
    "PAPERCLIP_ROOT_PATH; --exclude-cache leaves out cache/, remote media that can be\n"
    "fetched again). With S3_ENABLED=true the media are in a bucket and left out, unless\n"
    "--media-from-s3 (config media_from_s3 = true): then the bucket .env.production names\n"
    "is read with its AWS_* keys into the snapshot's media/; objects whose ETag and size\n"
    "equal the parent snapshot's are not read again. DIR (Mastodon's live/ directory)\n"
    "defaults to 'live' in the config file, else /home/mastodon/live: '--live' alone takes\n"
    "it. The machine's files go in too (host/: /etc/letsencrypt, the nginx sites naming\n"
    "LOCAL_DOMAIN, the mastodon-*.service units and drop-ins, the mastodon crontab)\n"
    "unless the config file says host = no.\n"
    "--postgres (config: postgres) takes the database as the logical dump (the default),\n"
    "a physical base backup through the replication protocol (postgres-physical/, for\n"
    "point-in-time restore with the WAL that archive_command = 'permafrost wal-push %p'\n"
    "archives; the role needs REPLICATION, pg_physical_conninfo names another), or both.\n"
    "The media walk starts as soon as the dump's snapshot exists and runs beside the dump.\n"
    "When the database has not changed since the last snapshot (no transaction ended,\n"
    "none in progress, the same sequences), its dump is reused unread; --fresh-dump (or\n"
    "pg_fresh_dump = yes) always runs pg_dump. --pg-dump-jobs N (pg_dump_jobs) dumps a big\n"
    "database with pg_dump -Fd -j N into TMPDIR, storing its files once pg_dump has ended\n"
    "(it says how much room that needs first); restore reads either kind.\n\n"
    "As root with DB_HOST a socket directory and no DB_PASS (Mastodon's standard install),\n"
    "the database and the roles are dumped as postgres (peer authentication), or as the\n"
    "OS user named by DB_USER when postgres cannot connect. If any selected component\n"
    "fails, no snapshot is written; the exit code says why: 7 a server is unreachable,\n"
    "12 credentials refused, 13 something missing, 5 any other component failure.\n";

static int backup_live(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"live", optional_argument, 0, 'L'},
                                         {"only", required_argument, 0, 'o'},
                                         {"exclude-cache", no_argument, 0, 'x'},
                                         {"media-from-s3", no_argument, 0, 'S'},
                                         {"fresh-dump", no_argument, 0, 'F'},
                                         {"pg-dump-jobs", required_argument, 0, 'J'},
                                         {"tag", required_argument, 0, 't'},
                                         {"time", required_argument, 0, 'T'},
                                         {"postgres", required_argument, 0, 'G'},
                                         {0, 0, 0, 0}};
    const char *when = NULL, *tags[32], *pg_mode = pf_config_get("postgres");
    pf_mastodon_backup_opts o = {
        .exclude_cache = pf_config_true("exclude_cache"),
        .media_from_s3 = pf_config_true("media_from_s3"),
        .fresh_dump = pf_config_true("pg_fresh_dump"),
        .dump_jobs = pf_config_get("pg_dump_jobs") ? atoi(pf_config_get("pg_dump_jobs")) : 1,
        .tags = tags};
    pf_err err = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(backup_live_help, stdout);
            return PF_EXIT_OK;
        case 'L':
        case 'o':
            if (pf_live_option(c, optarg, &o.live, &o.only))
                return PF_EXIT_USAGE;
            break;
        case 'x':
            o.exclude_cache = true;
            break;
        case 'S':
            o.media_from_s3 = true;
            break;
        case 'F':
            o.fresh_dump = true;
            break;
        case 'J':
            o.dump_jobs = atoi(optarg);
            if (o.dump_jobs < 1 || o.dump_jobs > 64)
                return pf_cli_usage(NULL, "--pg-dump-jobs takes 1 to 64 (got \"%s\")", optarg);
            break;
        case 't':
            if (o.ntags < 32)
                tags[o.ntags++] = optarg;
            break;
        case 'T':
            when = optarg;
            break;
        case 'G':
            pg_mode = optarg;
            break;
        default:
            return pf_live_usage(backup_live_help, "backup");
        }
    }
    if (optind != argc) {
        return pf_cli_usage(NULL, "backup --live takes no paths (got \"%s\")", argv[optind]);
    }
    if (!o.live)
        o.live = pf_live_default();
    if (when && pf_parse_local_time(when, &o.time_ns, &o.tz_offset, &err))
        return pf_cli_fail(&err);
    o.set_time = when != NULL;
    if (pg_mode && pf_mastodon_postgres_mode(pg_mode, &o.postgres_mode, &err))
        return pf_cli_fail(&err);
    o.pg_physical_conninfo = pf_config_get("pg_physical_conninfo");
    const char *v;
    o.pg_host = pf_config_get("pg_host");
    o.pg_port = (v = pf_config_get("pg_port")) ? atoi(v) : 0;
    o.pg_user = pf_config_get("pg_user");
    o.pg_password = pf_config_get("pg_password");
    o.redis_host = pf_config_get("redis_host");
    o.redis_port = (v = pf_config_get("redis_port")) ? atoi(v) : 0;
    o.redis_password = pf_config_get("redis_password");
    o.systemd_unit_path = pf_config_get("systemd_unit_path");
    o.pgbouncer_ini = pf_config_get("pgbouncer_ini");
    o.no_host = pf_config_get("host") && !pf_config_true("host");
    o.host_root = pf_config_get("host_root");
    o.host_exclude = pf_config_get("host_exclude");

    pf_mastodon_backup m;
    if (pf_mastodon_backup_prepare(&m, &o, &err)) {
        pf_mastodon_backup_free(&m);
        return pf_cli_fail(&err);
    }
    pf_repo *r = pf_cli_open_repo(&err);
    struct pf_lock *lock = NULL;
    pf_backup_run b = {0};
    int rc;
    if (!r || begin_locked(&lock, r, &err)) {
        rc = pf_cli_fail(&err);
    } else {
        pf_backup_opts bo = run_opts(r);
        if (pf_mastodon_backup_run(&m, r, &bo, &b, &err)) {
            rc = pf_cli_fail(&err);
            if (m.component_failed)
                fprintf(stderr,
                        "permafrost: no snapshot was written; earlier snapshots are intact\n");
        } else {
            rc = commit_and_report(&b, "media ");
        }
    }
    pf_backup_end(&b);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    pf_mastodon_backup_free(&m);
    return rc;
}

static int is_live_option(const char *a)
{
    return !strcmp(a, "--live") || !strncmp(a, "--live=", 7) || !strcmp(a, "--only") ||
           !strncmp(a, "--only=", 7);
}

static int cmd_backup_live(int argc, char **argv)
{
    static const char *const with_arg[] = {"--only", "--tag", "-t", "--time", "--postgres", NULL};
    return pf_live_run(argc, argv, 0, with_arg, backup_live);
}

static const char *base_name(const char *path, char *buf, size_t n)
{
    snprintf(buf, n, "%s", path);
    size_t len = strlen(buf);
    while (len > 1 && buf[len - 1] == '/')
        buf[--len] = 0;
    const char *slash = strrchr(buf, '/');
    return slash ? slash + 1 : buf;
}

int cmd_backup(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (is_live_option(argv[i]))
            return cmd_backup_live(argc, argv);
        else if (!strcmp(argv[i], "--pg-physical"))
            return cmd_backup_pgphys(argc, argv);
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"tag", required_argument, 0, 't'},
                                         {"time", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    const char *tags[64];
    size_t ntags = 0;
    const char *when = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(backup_help, stdout);
            return PF_EXIT_OK;
        case 't':
            if (ntags < 64)
                tags[ntags++] = optarg;
            break;
        case 'T':
            when = optarg;
            break;
        default:
            return pf_live_usage(backup_help, "backup");
        }
    }
    if (optind == argc) {
        /* Plain `permafrost backup` with a configured Mastodon server, as a timer runs it. */
        if (pf_config_get("live"))
            return cmd_backup_live(argc, argv);
        return pf_cli_usage(NULL, "backup needs at least one PATH, or --live DIR");
    }
    pf_err err = {0};
    int64_t time_ns = 0;
    int32_t tz = 0;
    if (when && pf_parse_local_time(when, &time_ns, &tz, &err))
        return pf_cli_fail(&err);
    char **paths = argv + optind;
    size_t npaths = (size_t)(argc - optind);
    char **abs = calloc(npaths, sizeof *abs);
    for (size_t i = 0; i < npaths; i++) {
        abs[i] = realpath(paths[i], NULL);
        if (!abs[i]) {
            pf_err_sys(&err, PF_ENOTFOUND, "cannot back up %s", paths[i]);
            for (size_t j = 0; j < i; j++)
                free(abs[j]);
            free(abs);
            return pf_cli_fail(&err);
        }
    }
    pf_repo *r = pf_cli_open_repo(&err);
    struct pf_lock *lock = NULL;
    pf_backup_run b = {0};
    int rc = PF_EXIT_OK;
    pf_backup_opts bo = r ? run_opts(r) : (pf_backup_opts){0};
    if (!r || begin_locked(&lock, r, &err) ||
        pf_backup_begin(&b, r, &bo, NULL, abs, npaths, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (when) {
        b.snap.time_ns = time_ns;
        b.snap.tz_offset = tz;
    }
    for (size_t i = 0; i < ntags; i++)
        pf_snapshot_add_tag(&b.snap, tags[i]);
    if (!b.estimate && pf_g.tty && pf_g.verbosity >= 0) {
        /* A small tree is summed before the first progress line; a big one goes on being
         * summed beside the backup, and its total shows when it is known. */
        first_total = pf_treesize_start(abs, npaths);
        if (first_total)
            pf_treesize_wait(first_total, 1.0);
    }
    for (size_t i = 0; i < npaths; i++) {
        char buf[PATH_MAX];
        const char *name = base_name(abs[i], buf, sizeof buf);
        if (!strcmp(name, "/") || !*name)
            name = "root";
        if (pf_archive_path(b.arch, pf_archiver_root(b.arch), name, abs[i], NULL, &err)) {
            pf_err_prefix(&err, "backup failed, no snapshot written");
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    rc = commit_and_report(&b, "");
out:
    pf_treesize_stop(first_total);
    first_total = NULL;
    pf_backup_end(&b);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    for (size_t i = 0; i < npaths; i++)
        free(abs[i]);
    free(abs);
    return rc;
}
