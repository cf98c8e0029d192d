#include <getopt.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/finish.h"
#include "cmd/live.h"
#include "cmd/pgphys.h"
#include "component/component.h"
#include "mastodon/mastodon.h"
#include "repo/lock.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

static const char restore_help[] =
    "usage: permafrost restore SNAPSHOT --target DIR [--keep-special] [--numeric-owner] "
    "[PATH...]\n"
    "       permafrost restore SNAPSHOT --live DIR [options]   (a Mastodon server)\n\n"
    "Restores a snapshot (or only PATHs inside it) into DIR exactly: content, modes,\n"
    "owners (when run as root), times in nanoseconds, symlinks, hardlinks and holes.\n"
    "Every block is authenticated first: corrupt data stops the restore (exit 4).\n\n"
    "  --keep-special   also create device nodes and FIFOs and keep setuid/setgid bits\n"
    "                   (by default they are left out, with one warning; -v names them)\n"
    "  --numeric-owner  give files their recorded numeric uid/gid; by default the\n"
    "                   recorded user and group names are looked up on this machine\n";

typedef struct restore_clock {
    double started;
    uint64_t total; /* the snapshot's recorded bytes, for the percentage and ETA; 0: unknown */
} restore_clock;

static void restore_progress(const pf_restore_stats *st, const char *current, void *ctx)
{
    const restore_clock *c = ctx;
    (void)current;
    pf_live_progress(c->started, st->files, st->bytes, st->bytes, c->total);
}

/* The JSON of every restore: the snapshot, what a plain restore wrote (st; NULL for a
 * whole server) and how long it took. */
static void print_restore_json(const char *id, const pf_restore_stats *st, double seconds,
                               cJSON *pitr)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "snapshot", id);
    if (pitr)
        cJSON_AddItemToObject(j, "pitr", pitr);
    if (st) {
        cJSON_AddNumberToObject(j, "files", (double)st->files);
        cJSON_AddNumberToObject(j, "dirs", (double)st->dirs);
        cJSON_AddNumberToObject(j, "bytes", (double)st->bytes);
    }
    cJSON_AddNumberToObject(j, "seconds", seconds);
    pf_out_json(j);
}

static const char restore_live_help[] =
    "usage: permafrost restore SNAPSHOT --live [DIR] [--only db,secrets,redis,media,host]\n"
    "         [--force] [--host-files] [--pg-host H] [--pg-port P] [--pg-admin-user U]\n"
    "         [--jobs N] [--redis-host H] [--redis-port P] [--media-root PATH]\n"
    "         [--pg-restore-as-admin] [--media-to-s3]\n"
    "       permafrost restore [SNAPSHOT] --live [DIR] --to \"YYYY-MM-DD HH:MM:SS\"|latest\n"
    "         [--pg-physical-target DATADIR] [--pg-ctl-options OPTS] [--restore-command CMD]\n\n"
    "Rebuilds a Mastodon server from a snapshot on a machine where PostgreSQL and Redis\n"
    "are installed, running and empty: writes DIR/.env.production, creates the roles and\n"
    "the database and restores it with parallel pg_restore, restores the media with their\n"
    "metadata, and loads the Redis snapshot into the running server. It refuses to\n"
    "overwrite an existing .env.production, a database with tables, a non-empty media\n"
    "directory or a non-empty Redis unless --force; every check runs before anything\n"
    "changes. The admin connection defaults to DB_HOST's socket directory, else the local\n"
    "socket, as 'postgres' (as root: the postgres OS user, peer authentication);\n"
    "pg_restore runs as the owner (DB_USER), which bounds what the dump can do;\n"
    "--pg-restore-as-admin runs it as the admin, for a dump of objects of other roles.\n"
    "The media go to --media-root, else the target's own PAPERCLIP_ROOT_PATH, else\n"
    "DIR/public/system; a directory outside DIR must be named with --media-root.\n"
    "--media-to-s3 uploads them instead to the bucket the target's .env.production names\n"
    "(S3_BUCKET, S3_ENDPOINT or S3_HOSTNAME, S3_REGION, its AWS_* keys, S3_PERMISSION as\n"
    "the ACL): the file already there when this restore does not write secrets, else the\n"
    "snapshot's. Other\n"
    "hosts, ports or media directory than the snapshot's are written into the restored\n"
    ".env.production (nothing else in it changes). DIR defaults as for backup --live.\n"
    "The machine's files (host/) are written back only with --only host or --host-files,\n"
    "below host_root of the config file (default /), each listed first as new, the same or\n"
    "different; a different one is replaced only with --force.\n\n"
    "Point in time (a snapshot taken with postgres = physical or both): --to recovers the\n"
    "database to that time (local), or to the end of the archived WAL with 'latest', the\n"
    "default when the snapshot holds a base backup. The cluster must be stopped or absent:\n"
    "the newest base backup that ended before the target is written into DATADIR (config\n"
    "pg_physical_target; default /var/lib/postgresql/<major>/main, owned by postgres, the\n"
    "cluster's configuration taken from /etc/postgresql/<major>/main when the data directory\n"
    "has none), restore_command = 'permafrost wal-fetch %f %p' (CMD replaces it; the\n"
    "cluster's OS user must be able to read the passphrase file and the repository; as\n"
    "root the WAL is fetched ahead into DATADIR.permafrost-wal, owned by postgres, and\n"
    "copied from there; while the cluster recovers, a window of segments ahead of it),\n"
    "the recovery target and promote; the cluster is started (pg_ctl -o OPTS) and waited\n"
    "for until it promotes. Then the secrets, Redis and media of the snapshot nearest before\n"
    "the target are restored, and two lines say the time recovery reached and how much\n"
    "older those are than the database.\n";

static void print_restored(const pf_mastodon_restore_opts *o, const pf_mastodon_restored *m)
{
    if (pf_g.json) {
        print_restore_json(m->id, NULL, m->seconds,
                           m->pitr ? pf_mastodon_pitr_json(m, o->to_ns) : NULL);
        return;
    }
    if (pf_g.verbosity < 0)
        return;
    printf("restored snapshot %.8s (%s) into %s in %.1f s\n", m->id, m->domain ? m->domain : "?",
           o->live, m->seconds);
    printf("\nWhat is left to do:\n");
    for (size_t i = 0; i < m->ntodo; i++)
        printf("  %zu. %s\n", i + 1, m->todo[i]);
    if (m->media_in_s3)
        printf("  -  media lives in the S3 bucket: it was not in this snapshot\n");
}

/* A step failed after every check passed, so earlier ones are in place: say so, and how
 * to restore the rest (cli/finish.h says why a command rather than a resume). */
static void print_finish(const pf_mastodon_restore_opts *o, const pf_mastodon_restored *m, int argc,
                         char **argv, int ref)
{
    pf_buf restored = PF_BUF_INIT, left = PF_BUF_INIT, only = PF_BUF_INIT;
    const char *failed = "?";
    for (size_t i = 0; pf_components[i]; i++) {
        const pf_component *c = pf_components[i];
        unsigned bit = 1u << i;
        /* The word --only knows it by ("db" for postgres). */
        const char *w = c->aliases && c->aliases[0] ? c->aliases[0] : c->name;
        if (bit == m->failed)
            failed = c->name;
        if (!(m->selected & bit))
            continue;
        pf_buf *b = m->restored & bit ? &restored : &left;
        pf_buf_printf(b, "%s%s", b->len ? ", " : "", w);
        if (!(m->restored & bit))
            pf_buf_printf(&only, "%s%s", only.len ? "," : "", w);
    }
    /* The failed step may have written part of what it restores (a database created, media
     * files, keys): its check would now refuse the finishing run without --force. */
    bool force = o->force || !(m->failed & pf_component_bit(&pf_secrets_component));
    char *cmd = pf_restore_finish_command(m->id, argv + 1, argc - 1, ref - 1,
                                          only.len ? (const char *)only.data : "", force);
    pf_restore_finish_print(stderr, failed, restored.len ? (const char *)restored.data : "",
                            left.len ? (const char *)left.data : "", cmd);
    free(cmd);
    pf_buf_free(&restored);
    pf_buf_free(&left);
    pf_buf_free(&only);
}

/* --to: a time or latest (a point-in-time restore); without it, one happens only when the
 * snapshot holds a base backup. */
static int pitr_options(pf_mastodon_restore_opts *o, const char *to, pf_err *err)
{
    if (!to)
        return 0;
    o->pitr = PF_PITR_ON;
    o->to_ns = INT64_MAX;
    int32_t tz;
    if (strcmp(to, "latest") && pf_parse_local_time(to, &o->to_ns, &tz, err))
        return pf_err_prefix(err, "--to");
    return 0;
}

/* After a point-in-time restore: where the database got to, and how far the other
 * components are from it. */
static void print_pitr(const pf_mastodon_restored *m)
{
    char when[32] = "", rest[32];
    time_t t;
    struct tm tm;
    int64_t at = pf_mastodon_pitr_reached(m);
    if (at) {
        t = (time_t)(at / 1000000000);
        localtime_r(&t, &tm);
        strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
    }
    t = (time_t)(m->rest_ns / 1000000000);
    localtime_r(&t, &tm);
    strftime(rest, sizeof rest, "%Y-%m-%d %H:%M:%S", &tm);
    printf("database recovered to %s from base backup %.8s into %s (%s)\n",
           *when ? when : "an unknown time", m->db_id, m->data_dir,
           *m->reached ? m->reached : "the end of the base backup: no later transaction archived");
    double stale = at ? (double)(at - m->rest_ns) / 1e9 : 0;
    printf("secrets, Redis and media are from snapshot %.8s (%s): %.0f s %s than the database\n",
           m->id, rest, stale < 0 ? -stale : stale, stale < 0 ? "newer" : "older");
}

static int restore_live(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"live", optional_argument, 0, 'L'},
                                         {"only", required_argument, 0, 'o'},
                                         {"force", no_argument, 0, 'f'},
                                         {"pg-host", required_argument, 0, 'H'},
                                         {"pg-port", required_argument, 0, 'P'},
                                         {"pg-admin-user", required_argument, 0, 'U'},
                                         {"jobs", required_argument, 0, 'j'},
                                         {"redis-host", required_argument, 0, 'R'},
                                         {"redis-port", required_argument, 0, 'Q'},
                                         {"media-root", required_argument, 0, 'M'},
                                         {"pg-restore-as-admin", no_argument, 0, 'A'},
                                         {"host-files", no_argument, 0, 'F'},
                                         {"to", required_argument, 0, 'T'},
                                         {"pg-physical-target", required_argument, 0, 'D'},
                                         {"pg-ctl-options", required_argument, 0, 'O'},
                                         {"restore-command", required_argument, 0, 'C'},
                                         {"media-to-s3", no_argument, 0, 'S'},
                                         {0, 0, 0, 0}};
    pf_mastodon_restore_opts o = {.pgbouncer_ini = pf_config_get("pgbouncer_ini"),
                                  .host_root = pf_config_get("host_root"),
                                  .pg_data_dir = pf_config_get("pg_physical_target")};
    const char *to = NULL;
    pf_err err = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hfj:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_live_help, stdout);
            return PF_EXIT_OK;
        case 'L':
        case 'o':
            if (pf_live_option(c, optarg, &o.live, &o.only))
                return PF_EXIT_USAGE;
            break;
        case 'f':
            o.force = true;
            break;
        case 'H':
            o.pg_host = optarg;
            break;
        case 'P':
            o.pg_port = atoi(optarg);
            break;
        case 'U':
            o.pg_admin = optarg;
            break;
        case 'j':
            o.jobs = atoi(optarg);
            break;
        case 'R':
            o.redis_host = optarg;
            break;
        case 'Q':
            o.redis_port = atoi(optarg);
            break;
        case 'M':
            o.media_root = optarg;
            break;
        case 'A':
            o.pg_restore_as_admin = true;
            break;
        case 'F':
            o.host_files = true;
            break;
        case 'T':
            to = optarg;
            break;
        case 'D':
            o.pg_data_dir = optarg;
            break;
        case 'O':
            o.pg_ctl_options = optarg;
            break;
        case 'C':
            o.restore_command = optarg;
            break;
        case 'S':
            o.media_to_s3 = true;
            break;
        default:
            return pf_live_usage(restore_live_help, "restore");
        }
    }
    if (to && optind == argc && o.live)
        o.snapshot = "latest"; /* with --to, the snapshot is chosen by time */
    else if (optind != argc - 1 || !o.live) {
        if (pf_g.json)
            return pf_cli_usage(NULL, "restore --live needs one SNAPSHOT and --live DIR");
        fputs(restore_live_help, stderr);
        return PF_EXIT_USAGE;
    }
    if (o.media_root && o.media_root[0] != '/') {
        return pf_cli_usage(NULL, "--media-root needs an absolute path (got \"%s\")", o.media_root);
    }
    if (!o.snapshot)
        o.snapshot = argv[optind];
    const int ref = optind; /* getopt moved the snapshot after the options */
    if (pitr_options(&o, to, &err))
        return pf_cli_fail(&err);
    pf_buf restore_cmd = PF_BUF_INIT;
    if (!o.restore_command && !pf_pgphys_spool_wal()) {
        pf_pgphys_default_restore_command(&restore_cmd);
        o.restore_command = (const char *)restore_cmd.data;
    }
    if (!o.pg_host)
        o.pg_host = pf_config_get("restore_pg_host");
    o.pg_admin_password = getenv("PERMAFROST_PG_ADMIN_PASSWORD");
    pf_repo *r = pf_cli_open_repo(&err);
    if (r && pf_repo_need_full_key(r, "restore", &err)) {
        pf_repo_free(r);
        r = NULL;
    }
    if (!r) {
        pf_buf_free(&restore_cmd);
        return pf_cli_fail(&err);
    }
    o.workers = pf_cli_workers(r);
    pf_mastodon_restored done = {0};
    int rc = PF_EXIT_OK;
    struct pf_lock *lock = pf_cli_lock(r, false, "restore", &err);
    if (!lock || pf_repo_load_index(r, &err) || pf_mastodon_restore(r, &o, &done, &err)) {
        rc = pf_cli_fail(&err);
        if (done.failed)
            print_finish(&o, &done, argc, argv, ref);
    } else {
        pf_progress_done();
        if (done.pitr && !pf_g.json && pf_g.verbosity >= 0)
            print_pitr(&done);
        print_restored(&o, &done);
    }
    pf_mastodon_restored_free(&done);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    pf_buf_free(&restore_cmd);
    return rc;
}

static int cmd_restore_live(int argc, char **argv)
{
    static const char *const with_arg[] = {"--only",
                                           "--pg-host",
                                           "--pg-port",
                                           "--pg-admin-user",
                                           "--jobs",
                                           "-j",
                                           "--redis-host",
                                           "--redis-port",
                                           "--media-root",
                                           "--to",
                                           "--pg-physical-target",
                                           "--pg-ctl-options",
                                           "--restore-command",
                                           NULL};
    /* With --to the snapshot operand may be left out: restore --live DIR --to TIME. */
    int npos = 1;
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--to") || !strncmp(argv[i], "--to=", 5))
            npos = 0;
    return pf_live_run(argc, argv, npos, with_arg, restore_live);
}

int cmd_restore(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--live") || !strncmp(argv[i], "--live=", 7))
            return cmd_restore_live(argc, argv);
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--pg-physical-target") ||
            !strncmp(argv[i], "--pg-physical-target=", 21))
            return cmd_restore_pgphys(argc, argv);
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"target", required_argument, 0, 't'},
                                         {"keep-special", no_argument, 0, 'S'},
                                         {"numeric-owner", no_argument, 0, 'N'},
                                         {0, 0, 0, 0}};
    const char *target = NULL;
    int keep_special = 0, numeric_owner = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_help, stdout);
            return PF_EXIT_OK;
        case 't':
            target = optarg;
            break;
        case 'S':
            keep_special = 1;
            break;
        case 'N':
            numeric_owner = 1;
            break;
        default:
            return pf_live_usage(restore_help, "restore");
        }
    }
    if (optind >= argc || !target) {
        if (pf_g.json)
            return pf_cli_usage(NULL, "restore needs a SNAPSHOT and --target DIR (or --live DIR)");
        fputs(restore_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (r && pf_repo_need_full_key(r, "restore", &err)) {
        pf_repo_free(r);
        r = NULL;
    }
    if (!r)
        return pf_cli_fail(&err);
    pf_snapshot s;
    /* "latest" of a plain restore: the newest plain backup (that holds the PATHs asked
     * for), or the newest whole server when the PATHs are a Mastodon snapshot's (media). */
    const char *const *include = (const char *const *)(argv + optind + 1);
    size_t ninclude = (size_t)(argc - optind - 1);
    pf_snapshot_want want = {.kind = PF_SNAP_PATHS};
    if (ninclude)
        want = pf_snapshot_want_for(include, ninclude);
    struct pf_lock *lock = pf_cli_lock(r, false, "restore", &err);
    if (!lock || pf_repo_load_index(r, &err) ||
        pf_snapshot_resolve(r, argv[optind], &want, &s, &err)) {
        pf_cli_unlock(lock);
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    /* A whole snapshot's size is known (its stats): the progress shows a total, a percentage
     * and an ETA. Part of one (include paths) has no recorded size and shows bytes only. */
    cJSON *recorded = s.stats ? cJSON_GetObjectItemCaseSensitive(s.stats, "bytes") : NULL;
    restore_clock clock = {pf_now(),
                           !ninclude && cJSON_IsNumber(recorded) && recorded->valuedouble > 0
                               ? (uint64_t)recorded->valuedouble
                               : 0};
    double started = clock.started;
    pf_restore_opts o = {.include = (const char *const *)(argv + optind + 1),
                         .owners = geteuid() == 0,
                         .numeric_owner = numeric_owner,
                         .keep_special = keep_special,
                         /* an exact copy: the restorer never follows a link itself */
                         .outside_links = 1,
                         .left_out_hint = "--keep-special keeps them",
                         .workers = pf_cli_workers(r),
                         .progress = restore_progress,
                         .progress_ctx = &clock};
    pf_restore_stats st = {0};
    int rc = PF_EXIT_OK;
    /* An include path that names nothing is a mistake worth stopping for. */
    for (int i = optind + 1; i < argc; i++) {
        pf_node n;
        if (pf_lookup_path(r, s.tree, argv[i], &n, &err)) {
            rc = pf_cli_fail(&err);
            goto out;
        }
        pf_node_free(&n);
    }
    if (pf_restore_tree(r, s.tree, target, &o, &st, &err)) {
        pf_err_prefix(&err, "restore");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_progress_done();
    if (pf_g.json) {
        print_restore_json(s.id, &st, pf_now() - started, NULL);
    } else if (pf_g.verbosity >= 0) {
        char b[32];
        pf_human_bytes(st.bytes, b, sizeof b);
        printf("restored snapshot %.8s to %s: %llu files, %llu directories, %s in %.1f s\n", s.id,
               target, (unsigned long long)st.files, (unsigned long long)st.dirs, b,
               pf_now() - started);
    }
    if (st.errors)
        rc = PF_EXIT_INCOMPLETE;
out:
    pf_snapshot_free(&s);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    return rc;
}
