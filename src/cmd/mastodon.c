/* `backup --live` and `restore --live`: a whole Mastodon server as one snapshot.
 *
 * Snapshot layout: secrets/.env.production, postgres/globals.sql, postgres/<db>.dump,
 * redis/dump.rdb, media/... (the contents of public/system). Backup order is secrets,
 * database, Redis, media: a file uploaded during the backup is then at worst an orphan
 * in the snapshot, never a database row whose file is missing. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fdsink.h"
#include "common/log.h"
#include "component/postgres.h"
#include "component/redis.h"
#include "mastodon/env.h"
#include "repo/lock.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

enum { C_SECRETS = 1, C_DB = 2, C_REDIS = 4, C_MEDIA = 8, C_ALL = 15 };

static int parse_only(const char *v, unsigned *out)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", v);
    *out = 0;
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save)) {
        if (!strcmp(w, "secrets"))
            *out |= C_SECRETS;
        else if (!strcmp(w, "db") || !strcmp(w, "postgres") || !strcmp(w, "database"))
            *out |= C_DB;
        else if (!strcmp(w, "redis"))
            *out |= C_REDIS;
        else if (!strcmp(w, "media"))
            *out |= C_MEDIA;
        else {
            fprintf(stderr,
                    "permafrost: --only: unknown component \"%s\" (use db, secrets, redis, "
                    "media)\n",
                    w);
            return -1;
        }
    }
    if (!*out) {
        fprintf(stderr, "permafrost: --only needs at least one of db, secrets, redis, media\n");
        return -1;
    }
    return 0;
}

static const char *default_live(void)
{
    const char *v = pf_config_get("live");
    return v ? v : "/home/mastodon/live";
}

/* --live takes an optional DIR: "--live=DIR", "--live DIR" or "--live" alone (the
 * default). getopt attaches an optional argument only when written with '=', so argv is
 * rewritten first: a word after "--live" becomes its DIR when it is not an option and the
 * command still has its `npos` positional arguments without it (restore's SNAPSHOT).
 * `with_arg` lists the options that consume the next word. Returns a new argv (the
 * strings are borrowed or live in *owned, both freed by the caller) or NULL. */
static char **live_argv(int argc, char **argv, int npos, const char *const *with_arg, char **owned)
{
    char **out = calloc((size_t)argc + 1, sizeof *out);
    if (!out)
        return NULL;
    *owned = NULL;
    int at = -1, pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (argv[i][0] != '-') {
            pos++;
            continue;
        }
        if (!strcmp(argv[i], "--live")) {
            at = i;
            continue;
        }
        for (int k = 0; with_arg[k]; k++)
            if (!strcmp(argv[i], with_arg[k])) {
                i++;
                break;
            }
    }
    bool take = at > 0 && at + 1 < argc && argv[at + 1][0] != '-' && pos - 1 >= npos;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (take && i == at) {
            if (asprintf(owned, "--live=%s", argv[at + 1]) < 0) {
                free(out);
                return NULL;
            }
            out[n++] = *owned;
            i++;
            continue;
        }
        out[n++] = argv[i];
    }
    out[n] = NULL;
    return out;
}

/* Mastodon's version from lib/mastodon/version.rb (def major / minor / patch). */
static void mastodon_version(const char *live, char *out, size_t n)
{
    char path[4096];
    out[0] = 0;
    snprintf(path, sizeof path, "%s/lib/mastodon/version.rb", live);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    char line[512];
    int parts[3] = {-1, -1, -1}, want = -1;
    while (fgets(line, sizeof line, f)) {
        char *p = line;
        while (*p == ' ')
            p++;
        if (!strncmp(p, "def major", 9))
            want = 0;
        else if (!strncmp(p, "def minor", 9))
            want = 1;
        else if (!strncmp(p, "def patch", 9))
            want = 2;
        else if (want >= 0 && *p >= '0' && *p <= '9') {
            parts[want] = atoi(p);
            want = -1;
        }
    }
    fclose(f);
    if (parts[0] >= 0 && parts[1] >= 0)
        snprintf(out, n, "%d.%d.%d", parts[0], parts[1], parts[2] < 0 ? 0 : parts[2]);
}

/* Settings from the config file override what .env.production says, so an operator can
 * point the backup at a replica or a different socket. */
static void apply_overrides(pf_pg_conn *pg, pf_redis_conn *rc)
{
    const char *v;
    if ((v = pf_config_get("pg_host")))
        pg->host = v;
    if ((v = pf_config_get("pg_port")))
        pg->port = atoi(v);
    if ((v = pf_config_get("pg_user")))
        pg->user = v;
    if ((v = pf_config_get("pg_password")))
        pg->password = v;
    if ((v = pf_config_get("redis_host")))
        rc->host = (char *)v;
    if ((v = pf_config_get("redis_port")))
        rc->port = atoi(v);
    if ((v = pf_config_get("redis_password")))
        rc->password = (char *)v;
}

typedef int (*produce_fn)(void *ctx, pf_sink *sink, pf_err *err);

/* Adds file `name` to d with the bytes a component produces; the partial file is dropped
 * when the producer fails. */
static int stream_component(pf_archiver *a, pf_dir *d, const char *name, produce_fn produce,
                            void *ctx, pf_err *err)
{
    pf_sink *sink = pf_archive_stream_begin(a, d, name, 0600, err);
    if (!sink)
        return -1;
    if (produce(ctx, sink, err)) {
        pf_archive_stream_abort(sink);
        return -1;
    }
    return pf_archive_stream_end(a, sink, err);
}

typedef struct pg_job {
    pf_pg_conn *conn;
    pf_pg_info *info;
} pg_job;

static int produce_globals(void *ctx, pf_sink *sink, pf_err *err)
{
    pg_job *j = ctx;
    return pf_pg_dump_globals(j->conn, j->info, sink, err);
}

static int produce_dump(void *ctx, pf_sink *sink, pf_err *err)
{
    pg_job *j = ctx;
    return pf_pg_dump(j->conn, j->info, sink, err);
}

typedef struct redis_job {
    pf_redis_conn *conn;
    pf_redis_info *info;
} redis_job;

static int produce_rdb(void *ctx, pf_sink *sink, pf_err *err)
{
    redis_job *j = ctx;
    return pf_redis_fetch_rdb(j->conn, sink, j->info, err);
}

static cJSON *component_status(cJSON *components, const char *name, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    cJSON_AddItemToObject(components, name, o);
    return o;
}

/* Prefixes err with "STAGE: NAME", or only "STAGE" when the component already named
 * itself ("postgres: ..."), so no message reads "backup: postgres: postgres: ...". */
static void prefix_component(pf_err *err, const char *stage, const char *name)
{
    size_t n = strlen(name);
    if (!strncmp(err->msg, name, n) && err->msg[n] == ':')
        pf_err_prefix(err, "%s", stage);
    else
        pf_err_prefix(err, "%s: %s", stage, name);
}

static const char backup_live_help[] =
    "usage: permafrost backup --live [DIR] [--only db,secrets,redis,media] [--exclude-cache]\n"
    "                         [--tag T]... [--time \"YYYY-MM-DD HH:MM:SS\"]\n\n"
    "Backs up a Mastodon server as one snapshot: .env.production, the PostgreSQL database\n"
    "(pg_dump streamed, roles with pg_dumpall --globals-only), a consistent Redis snapshot\n"
    "taken over the replication protocol, and the uploaded media (public/system or\n"
    "PAPERCLIP_ROOT_PATH; --exclude-cache leaves out cache/, remote media that can be\n"
    "fetched again). DIR (Mastodon's live/ directory) defaults to 'live' in the config\n"
    "file, else /home/mastodon/live: '--live' alone takes it.\n\n"
    "As root with DB_HOST a socket directory and no DB_PASS (Mastodon's standard install),\n"
    "the database and the roles are dumped as postgres (peer authentication), or as the\n"
    "OS user named by DB_USER when postgres cannot connect. If any selected component\n"
    "fails, no snapshot is written; the exit code says why: 7 a server is unreachable,\n"
    "12 credentials refused, 13 something missing, 5 any other component failure.\n";

static int backup_mastodon(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"live", optional_argument, 0, 'L'},
                                         {"only", required_argument, 0, 'o'},
                                         {"exclude-cache", no_argument, 0, 'x'},
                                         {"tag", required_argument, 0, 't'},
                                         {"time", required_argument, 0, 'T'},
                                         {0, 0, 0, 0}};
    const char *live = NULL, *when = NULL, *tags[32];
    size_t ntags = 0;
    unsigned only = C_ALL;
    bool exclude_cache = pf_config_true("exclude_cache");
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(backup_live_help, stdout);
            return PF_EXIT_OK;
        case 'L':
            live = optarg ? optarg : default_live();
            break;
        case 'o':
            if (parse_only(optarg, &only))
                return PF_EXIT_USAGE;
            break;
        case 'x':
            exclude_cache = true;
            break;
        case 't':
            if (ntags < 32)
                tags[ntags++] = optarg;
            break;
        case 'T':
            when = optarg;
            break;
        default:
            fputs(backup_live_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fprintf(stderr, "permafrost: backup --live takes no paths (got \"%s\")\n", argv[optind]);
        return PF_EXIT_USAGE;
    }
    if (!live)
        live = default_live();
    pf_err err = {0};
    int64_t time_ns = 0;
    int32_t tz = 0;
    if (when && pf_parse_local_time(when, &time_ns, &tz, &err))
        return pf_cli_fail(&err);

    pf_mastodon_env env = {0};
    if (pf_mastodon_env_load(live, &env, &err)) {
        pf_mastodon_env_free(&env);
        if (err.code == PF_ENOTFOUND)
            snprintf(err.msg + strlen(err.msg), sizeof err.msg - strlen(err.msg),
                     " (--live DIR is Mastodon's live/ directory, the one holding "
                     ".env.production)");
        pf_err_prefix(&err, "backup");
        return pf_cli_fail(&err);
    }
    pf_pg_conn pg = {env.db_host, env.db_port,    env.db_name, env.db_user,
                     env.db_pass, env.db_sslmode, NULL};
    pf_redis_conn rconn = env.redis;
    apply_overrides(&pg, &rconn);

    pf_repo *r = pf_cli_open_repo(&err);
    pf_backup_run b = {0};
    int rc = PF_EXIT_OK;
    const char *failed = NULL;
    char envpath[4096];
    snprintf(envpath, sizeof envpath, "%s/.env.production", live);
    if (!r || pf_backup_begin(&b, r, "mastodon", (char **)&live, 1, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (when) {
        b.snap.time_ns = time_ns;
        b.snap.tz_offset = tz;
    }
    pf_snapshot_add_tag(&b.snap, "mastodon");
    b.snap.kind = only == C_ALL ? PF_SNAP_MASTODON : PF_SNAP_MASTODON_PARTIAL;
    for (size_t i = 0; i < ntags; i++)
        pf_snapshot_add_tag(&b.snap, tags[i]);
    b.snap.components = cJSON_CreateObject();
    b.snap.manifest = cJSON_CreateObject();
    char ver[64];
    mastodon_version(live, ver, sizeof ver);
    if (ver[0])
        cJSON_AddStringToObject(b.snap.manifest, "mastodon", ver);
    if (env.local_domain)
        cJSON_AddStringToObject(b.snap.manifest, "domain", env.local_domain);
    pf_dir *root = pf_archiver_root(b.arch);

    if (only & C_SECRETS) {
        pf_info("secrets: %s", envpath);
        pf_dir *d = pf_dir_begin(b.arch, root, "secrets", &err);
        if (!d || pf_archive_path(b.arch, d, ".env.production", envpath, NULL, &err) ||
            pf_dir_end(b.arch, d, NULL, &err)) {
            failed = "secrets";
            goto component_failed;
        }
        component_status(b.snap.components, "secrets", "ok");
    }
    if (only & C_DB) {
        pf_pg_info info;
        memset(&info, 0, sizeof info);
        /* As root on a standard install: the superuser over the socket when it gets in
         * (it reads every table and the roles' passwords), else the app's own user. */
        pf_pg_conn pg_db, pg_su;
        bool peer = pf_pg_peer_identities(&pg, &pg_db, &pg_su);
        pf_pg_conn *use = &pg_db;
        if (peer && strcmp(pg_su.os_user, pg_db.os_user)) {
            pf_err serr = {0};
            pf_info("postgres: probing %s as the OS user postgres", env.db_name);
            if (pf_pg_probe(&pg_su, &info, &serr) == 0 && info.superuser)
                use = &pg_su;
            else
                pf_warn("postgres: cannot connect as the superuser postgres (%s); dumping as the "
                        "OS user %s: tables it cannot read fail the dump, roles lose their "
                        "passwords",
                        serr.msg[0] ? serr.msg : "not a superuser", pg_db.os_user);
        }
        if (use == &pg_db) {
            pf_info("postgres: probing %s%s%s", env.db_name, peer ? " as the OS user " : "",
                    peer ? pg_db.os_user : "");
            if (pf_pg_probe(&pg_db, &info, &err)) {
                if (err.code == PF_EAUTH && pg.password && pg.password == env.db_pass)
                    pf_err_prefix(&err, "DB_PASS of %s was refused", envpath);
                else if (err.code == PF_EAUTH && pg.password)
                    pf_err_prefix(&err, "pg_password of the config file was refused");
                failed = "postgres";
                goto component_failed;
            }
        }
        pg_job gjob = {use, &info};
        pf_dir *d = pf_dir_begin(b.arch, root, "postgres", &err);
        if (!d) {
            failed = "postgres";
            goto component_failed;
        }
        char name[512];
        snprintf(name, sizeof name, "%s.dump", env.db_name);
        pg_job job = {use, &info};
        if (stream_component(b.arch, d, "globals.sql", produce_globals, &gjob, &err)) {
            pf_dir_abort(d);
            failed = "postgres";
            goto component_failed;
        }
        pf_info("postgres: pg_dump %s (server %s, client %s)", env.db_name, info.server_version,
                info.client_version);
        if (stream_component(b.arch, d, name, produce_dump, &job, &err)) {
            pf_dir_abort(d);
            failed = "postgres";
            goto component_failed;
        }
        if (pf_dir_end(b.arch, d, NULL, &err)) {
            failed = "postgres";
            goto component_failed;
        }
        cJSON *o = component_status(b.snap.components, "postgres", "ok");
        cJSON_AddStringToObject(o, "database", env.db_name);
        cJSON_AddNumberToObject(o, "dump_bytes", (double)info.dump_bytes);
        cJSON_AddStringToObject(b.snap.manifest, "postgres", info.server_version);
        cJSON_AddStringToObject(b.snap.manifest, "pg_dump", info.client_version);
        cJSON_AddNumberToObject(b.snap.manifest, "accounts", (double)info.accounts);
        cJSON_AddNumberToObject(b.snap.manifest, "statuses", (double)info.statuses);
        cJSON_AddNumberToObject(b.snap.manifest, "media_attachments",
                                (double)info.media_attachments);
    }
    if (only & C_REDIS) {
        pf_redis_info rinfo;
        memset(&rinfo, 0, sizeof rinfo);
        pf_info("redis: snapshot over replication");
        pf_dir *d = pf_dir_begin(b.arch, root, "redis", &err);
        redis_job job = {&rconn, &rinfo};
        if (!d || stream_component(b.arch, d, "dump.rdb", produce_rdb, &job, &err)) {
            pf_dir_abort(d);
            failed = "redis";
            goto component_failed;
        }
        /* Sidekiq's queues may live in a Redis of their own: that one matters most. */
        pf_redis_info sinfo;
        memset(&sinfo, 0, sizeof sinfo);
        redis_job sjob = {&env.sidekiq_redis, &sinfo};
        if (env.sidekiq_redis_separate &&
            stream_component(b.arch, d, "sidekiq.rdb", produce_rdb, &sjob, &err)) {
            pf_dir_abort(d);
            failed = "redis (sidekiq)";
            goto component_failed;
        }
        if (pf_dir_end(b.arch, d, NULL, &err)) {
            failed = "redis";
            goto component_failed;
        }
        cJSON *o = component_status(b.snap.components, "redis", "ok");
        cJSON_AddStringToObject(o, "method", rinfo.method);
        cJSON_AddStringToObject(b.snap.manifest, "redis", rinfo.version);
    }
    if (only & C_MEDIA) {
        if (env.s3_enabled) {
            pf_log(PF_LOG_WARN, "media: S3_ENABLED=true: uploads live in the S3 bucket and are "
                                "NOT in this snapshot; back the bucket up separately");
            component_status(b.snap.components, "media", "skipped: S3_ENABLED=true");
        } else {
            static const char *const no_cache[] = {"cache", NULL};
            pf_info("media: %s%s", env.paperclip_root, exclude_cache ? " (without cache/)" : "");
            if (pf_archive_path(b.arch, root, "media", env.paperclip_root,
                                exclude_cache ? no_cache : NULL, &err)) {
                if (err.code == PF_ENOTFOUND)
                    pf_err_prefix(&err, "%s (use --only to leave media out)", env.paperclip_root);
                failed = "media";
                goto component_failed;
            }
            pf_archive_stats ms;
            pf_archiver_stats(b.arch, &ms);
            cJSON *o =
                component_status(b.snap.components, "media", ms.errors ? "incomplete" : "ok");
            cJSON_AddBoolToObject(o, "exclude_cache", exclude_cache);
        }
    }
    if (pf_backup_commit(&b, &err)) {
        pf_err_prefix(&err, "backup failed, no snapshot written");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_backup_report(&b);
    pf_archive_stats st;
    pf_archiver_stats(b.arch, &st);
    if (st.errors) {
        fprintf(stderr,
                "permafrost: snapshot %.8s is incomplete: %llu media entr%s could not be "
                "read (see the warnings above)\n",
                b.snap.id, (unsigned long long)st.errors, st.errors == 1 ? "y" : "ies");
        rc = PF_EXIT_INCOMPLETE;
    }
    goto out;

component_failed:
    /* What was uploaded stays indexed for the next run to reuse; no snapshot names it. */
    {
        pf_err ignored = {0};
        pf_saver_finish(b.saver, &ignored);
    }
    prefix_component(&err, "backup", failed);
    /* The cause decides the exit code, not the stage: unreachable 7, refused 12, missing
     * 13; 5 is for a component that failed in any other way. */
    if (err.code != PF_ECONN && err.code != PF_EAUTH && err.code != PF_ENOTFOUND &&
        err.code != PF_EUSAGE)
        err.code = PF_ECOMPONENT;
    rc = pf_cli_fail(&err);
    fprintf(stderr, "permafrost: no snapshot was written; earlier snapshots are intact\n");
out:
    pf_backup_end(&b);
    pf_repo_free(r);
    pf_mastodon_env_free(&env);
    return rc;
}

/* ---- restore ---- */

static const char restore_live_help[] =
    "usage: permafrost restore SNAPSHOT --live [DIR] [--only db,secrets,redis,media] [--force]\n"
    "         [--pg-host H] [--pg-port P] [--pg-admin-user U] [--jobs N]\n"
    "         [--redis-host H] [--redis-port P] [--media-root PATH] [--pg-restore-as-admin]\n\n"
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
    "DIR/public/system; a directory outside DIR must be named with --media-root. Other\n"
    "hosts, ports or media directory than the snapshot's are written into the restored\n"
    ".env.production (nothing else in it changes). DIR defaults as for backup --live.\n";

/* Who owns Mastodon's files on this machine: the owner of DIR, else of its parent (the
 * install guide's /home/mastodon), when that is not root; else the OS user of the name
 * the snapshot recorded; else the recorded ids. Only used as root. */
typedef struct app_owner {
    uid_t uid;
    gid_t gid;
    char name[64];
} app_owner;

static void find_app_owner(const char *live, const pf_node *recorded, app_owner *o)
{
    struct stat st;
    char parent[4096];
    snprintf(parent, sizeof parent, "%s", live);
    char *slash = strrchr(parent, '/');
    if (slash && slash != parent)
        *slash = 0;
    const char *cands[] = {live, parent};
    for (int i = 0; i < 2; i++) {
        if (stat(cands[i], &st) == 0 && S_ISDIR(st.st_mode) && st.st_uid != 0) {
            struct passwd *pw = getpwuid(st.st_uid);
            o->uid = st.st_uid;
            o->gid = pw ? pw->pw_gid : st.st_gid;
            snprintf(o->name, sizeof o->name, "%s", pw ? pw->pw_name : "?");
            return;
        }
    }
    struct passwd *pw =
        recorded && recorded->user && recorded->user[0] ? getpwnam(recorded->user) : NULL;
    if (pw) {
        o->uid = pw->pw_uid;
        o->gid = pw->pw_gid;
        snprintf(o->name, sizeof o->name, "%s", pw->pw_name);
        return;
    }
    o->uid = recorded ? recorded->uid : 0;
    o->gid = recorded ? recorded->gid : 0;
    snprintf(o->name, sizeof o->name, "uid %u", (unsigned)o->uid);
}

/* Gives an existing directory (never through a symlink) to the app owner. */
static void give_dir(const char *path, const app_owner *o, mode_t mode)
{
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return;
    if (fchown(fd, o->uid, o->gid) || (mode && fchmod(fd, mode)))
        pf_warn("cannot give %s to %s: %s", path, o->name, strerror(errno));
    close(fd);
}

/* mkdir -p, the directories it creates given to the app owner (as root): what Mastodon's
 * user must be able to write into later (git checkout, uploads). */
static int make_dirs(const char *path, const app_owner *o)
{
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) == 0) {
                if (o)
                    give_dir(buf, o, 0);
            } else if (errno != EEXIST) {
                return -1;
            }
            *p = c;
            if (!c)
                break;
        }
    }
    return 0;
}

/* Writes the secrets file atomically: `text` is the snapshot's, with the edits already
 * made. Mode as recorded (permission bits only); owner the app owner, as root. */
static int restore_secrets(const pf_buf *text, const pf_node *n, const char *live,
                           const app_owner *owner, pf_err *err)
{
    char path[4096], tmp[4200];
    snprintf(path, sizeof path, "%s/.env.production", live);
    snprintf(tmp, sizeof tmp, "%s/.env.production.permafrost-tmp", live);
    unlink(tmp);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "cannot create %s", tmp);
    int rc = 0;
    for (size_t off = 0; off < text->len && !rc;) {
        ssize_t w = write(fd, text->data + off, text->len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            rc = pf_err_sys(err, PF_EIO, "writing %s", tmp);
        else
            off += (size_t)w;
    }
    if (!rc && owner && fchown(fd, owner->uid, owner->gid))
        pf_warn("cannot give %s to %s: %s", path, owner->name, strerror(errno));
    if (!rc && fchmod(fd, n->mode & 0777))
        rc = pf_err_sys(err, PF_EIO, "chmod %s", tmp);
    if (!rc && fsync(fd))
        rc = pf_err_sys(err, PF_EIO, "fsync %s", tmp);
    close(fd);
    if (!rc && rename(tmp, path))
        rc = pf_err_sys(err, PF_EIO, "rename to %s", path);
    if (rc)
        unlink(tmp);
    return rc;
}

/* Length of the key that line [p, end) assigns ("KEY=", "export KEY=", "KEY: "), and
 * where its value starts; 0 when it assigns none. */
static size_t line_key(const char *p, const char *end, const char **key, const char **val)
{
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    if (end - p > 7 && !strncmp(p, "export ", 7))
        for (p += 7; p < end && *p == ' ';)
            p++;
    const char *k = p;
    while (p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '.'))
        p++;
    size_t kl = (size_t)(p - k);
    const char *q = p;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    if (!kl || q >= end || (*q != '=' && *q != ':'))
        return 0;
    q++;
    while (q < end && (*q == ' ' || *q == '\t'))
        q++;
    *key = k;
    *val = q;
    return kl;
}

/* Sets KEY to value in the text of a .env file, keeping every other byte: the value of
 * the last line that assigns KEY is replaced (up to the end of that line), or a line
 * "KEY=value" is appended. The value is written double-quoted when it needs quotes. */
static void env_text_set(pf_buf *text, const char *key, const char *value)
{
    const char *d = text->data ? (const char *)text->data : "";
    size_t n = text->len, kl = strlen(key);
    size_t vstart = 0, vend = 0;
    bool found = false;
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && d[e] != '\n')
            e++;
        const char *k = NULL, *v = NULL;
        size_t l = line_key(d + i, d + e, &k, &v);
        if (l == kl && !memcmp(k, key, kl)) {
            found = true;
            vstart = (size_t)(v - d);
            vend = e > i && d[e - 1] == '\r' ? e - 1 : e;
        }
        i = e + 1;
    }
    pf_buf val = PF_BUF_INIT;
    bool quote = strpbrk(value, " \t#'\"\\$") != NULL;
    if (quote) {
        pf_buf_u8(&val, '"');
        for (const char *p = value; *p; p++) {
            if (*p == '"' || *p == '\\' || *p == '$')
                pf_buf_u8(&val, '\\');
            pf_buf_u8(&val, (uint8_t)*p);
        }
        pf_buf_u8(&val, '"');
    } else {
        pf_buf_append_str(&val, value);
    }
    pf_buf out = PF_BUF_INIT;
    if (found) {
        pf_buf_append(&out, d, vstart);
        pf_buf_append(&out, val.data, val.len);
        pf_buf_append(&out, d + vend, n - vend);
    } else {
        pf_buf_append(&out, d, n);
        if (n && d[n - 1] != '\n')
            pf_buf_u8(&out, '\n');
        pf_buf_append_str(&out, key);
        pf_buf_u8(&out, '=');
        pf_buf_append(&out, val.data, val.len);
        pf_buf_u8(&out, '\n');
    }
    pf_buf_free(&val);
    if (text->data)
        explicit_bzero(text->data, text->len); /* the file holds secrets */
    pf_buf_free(text);
    *text = out;
}

/* The first existing component of `path` below `dir` that is a symlink, or NULL: a
 * directory inside DIR replaced by a link would take the media somewhere else. Returns a
 * malloc'd path. */
static char *symlink_below(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + dl; *p; p++) {
        if (*p != '/' || p == buf + dl)
            continue;
        *p = 0;
        struct stat st;
        bool link = lstat(buf, &st) == 0 && S_ISLNK(st.st_mode);
        char *hit = link ? strdup(buf) : NULL;
        *p = '/';
        if (link)
            return hit;
    }
    struct stat st;
    return lstat(path, &st) == 0 && S_ISLNK(st.st_mode) ? strdup(path) : NULL;
}

/* Whether `path` is `dir` or lies under it, read literally: no ".." component. */
static bool path_under(const char *path, const char *dir)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    if (strncmp(path, dir, dl) || (path[dl] != '/' && path[dl] != 0))
        return false;
    for (const char *p = path; (p = strstr(p, "..")); p += 2)
        if ((p == path || p[-1] == '/') && (p[2] == '/' || p[2] == 0))
            return false;
    return true;
}

static int dir_nonempty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    int found = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..")) {
            found = 1;
            break;
        }
    closedir(d);
    return found;
}

static char *resolve_media_root(const pf_mastodon_env *env, const char *live)
{
    const char *p = env->paperclip_root;
    char *out = NULL;
    if (!p || !*p) {
        if (asprintf(&out, "%s/public/system", live) < 0)
            return NULL;
    } else if (!strncmp(p, ":rails_root", 11)) {
        if (asprintf(&out, "%s%s", live, p + 11) < 0)
            return NULL;
    } else if (p[0] != '/') {
        if (asprintf(&out, "%s/%s", live, p) < 0)
            return NULL;
    } else {
        out = strdup(p);
    }
    return out;
}

/* Loads the file n (at most max bytes) into *out. A snapshot from a compromised server
 * can name a huge file cheaply (one deduplicated blob, repeated), so the size is checked
 * before anything is read, and again as blobs come in. */
static int load_text(pf_repo *r, const pf_node *n, size_t max, pf_buf *out, pf_err *err)
{
    pf_buf tmp = PF_BUF_INIT;
    if (n->size > max)
        return pf_err_set(err, PF_ECORRUPT,
                          "is %llu bytes, more than the %zu a settings file may have: refusing it",
                          (unsigned long long)n->size, max);
    for (size_t i = 0; i < n->nblobs; i++) {
        if (pf_repo_load_blob(r, n->blobs[i], &tmp, err)) {
            pf_buf_free(&tmp);
            return -1;
        }
        if (tmp.len > max) {
            pf_buf_free(&tmp);
            return pf_err_set(err, PF_ECORRUPT,
                              "holds more than its recorded size: refusing it (damaged or forged)");
        }
    }
    *out = tmp;
    return 0;
}

static int restore_mastodon(int argc, char **argv)
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
                                         {0, 0, 0, 0}};
    const char *live = NULL, *pg_host = NULL, *admin = NULL, *redis_host = NULL, *media_opt = NULL;
    int pg_port = 0, redis_port = 0, jobs = 0;
    unsigned only = C_ALL;
    bool force = false, restore_as_admin = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "hfj:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_live_help, stdout);
            return PF_EXIT_OK;
        case 'L':
            live = optarg ? optarg : default_live();
            break;
        case 'o':
            if (parse_only(optarg, &only))
                return PF_EXIT_USAGE;
            break;
        case 'f':
            force = true;
            break;
        case 'H':
            pg_host = optarg;
            break;
        case 'P':
            pg_port = atoi(optarg);
            break;
        case 'U':
            admin = optarg;
            break;
        case 'j':
            jobs = atoi(optarg);
            break;
        case 'R':
            redis_host = optarg;
            break;
        case 'Q':
            redis_port = atoi(optarg);
            break;
        case 'M':
            media_opt = optarg;
            break;
        case 'A':
            restore_as_admin = true;
            break;
        default:
            fputs(restore_live_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1 || !live) {
        fputs(restore_live_help, stderr);
        return PF_EXIT_USAGE;
    }
    if (media_opt && media_opt[0] != '/') {
        fprintf(stderr, "permafrost: --media-root needs an absolute path (got \"%s\")\n",
                media_opt);
        return PF_EXIT_USAGE;
    }
    const char *admin_pw = getenv("PERMAFROST_PG_ADMIN_PASSWORD");
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    pf_snapshot s;
    pf_node n_env = {0}, n_globals = {0}, n_dump = {0}, n_rdb = {0}, n_media = {0}, n_sidekiq = {0};
    pf_mastodon_env env = {0};
    pf_buf envtext = PF_BUF_INIT;
    pf_source *src_g = NULL, *src_d = NULL, *src_r = NULL;
    char *media_root = NULL;
    app_owner owner = {0};
    int rc = PF_EXIT_OK;
    struct pf_lock *lock = pf_cli_lock(r, false, "restore", &err);
    /* latest: the whole server, or with --only the newest snapshot with those parts */
    const char *wanted[4];
    size_t nwanted = 0;
    if (only != C_ALL) {
        if (only & C_SECRETS)
            wanted[nwanted++] = "secrets";
        if (only & C_DB)
            wanted[nwanted++] = "postgres";
        if (only & C_REDIS)
            wanted[nwanted++] = "redis";
        if (only & C_MEDIA)
            wanted[nwanted++] = "media";
    }
    pf_snapshot_want whole = {.kind = PF_SNAP_MASTODON,
                              .complete = true,
                              .components = nwanted ? wanted : NULL,
                              .ncomponents = nwanted};
    if (!lock || pf_repo_load_index(r, &err) ||
        pf_snapshot_resolve(r, argv[optind], &whole, &s, &err)) {
        pf_cli_unlock(lock);
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    double started = pf_now();
    /* The restored server's settings come from the snapshot's own .env.production; a
     * snapshot taken with --only (no secrets) uses the one already in the target. */
    int have_secrets = pf_lookup_path(r, s.tree, "secrets/.env.production", &n_env, &err) == 0;
    if (have_secrets) {
        if (load_text(r, &n_env, PF_MASTODON_ENV_MAX_FILE, &envtext, &err) ||
            pf_mastodon_env_parse((const char *)envtext.data, envtext.len, &env, &err)) {
            pf_err_prefix(&err, "snapshot's .env.production");
            rc = pf_cli_fail(&err);
            goto out;
        }
    } else {
        pf_mastodon_env_free(&env);
        memset(&env, 0, sizeof env);
        if (pf_mastodon_env_load(live, &env, &err)) {
            pf_err_prefix(&err,
                          "snapshot %.8s holds no secrets (taken with --only) and "
                          "the target has no .env.production to take the settings from",
                          s.id);
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (only & C_SECRETS) {
            pf_info("snapshot %.8s holds no secrets: using %s/.env.production", s.id, live);
            only &= ~(unsigned)C_SECRETS;
        }
    }
    /* The media go where this machine says, never where the snapshot says: its
     * PAPERCLIP_ROOT_PATH could name any directory (finding 4 of issue 10). */
    {
        pf_mastodon_env tenv = {0};
        pf_err terr = {0};
        const char *from = NULL;
        if (media_opt) {
            media_root = strdup(media_opt);
        } else if (pf_mastodon_env_load(live, &tenv, &terr) == 0 && tenv.paperclip_root) {
            media_root = strdup(tenv.paperclip_root);
            from = "PAPERCLIP_ROOT_PATH of the target's .env.production";
        } else if (asprintf(&media_root, "%s/public/system", live) < 0) {
            media_root = NULL;
        }
        pf_mastodon_env_free(&tenv);
        if (!media_root) {
            pf_err_set(&err, PF_EGENERIC, "out of memory");
            rc = pf_cli_fail(&err);
            goto out;
        }
        char *link = path_under(media_root, live) ? symlink_below(media_root, live) : NULL;
        if (link) {
            pf_err_set(&err, PF_EUSAGE,
                       "%s is a symbolic link: refusing to restore the media through it (name "
                       "the real directory with --media-root)",
                       link);
            free(link);
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (!media_opt && !path_under(media_root, live)) {
            pf_err_set(&err, PF_EUSAGE,
                       "the media directory %s (%s) is outside %s: name it with --media-root "
                       "%s to restore there",
                       media_root, from ? from : "default", live, media_root);
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    /* What the restored .env.production must say differently from the snapshot's, so that
     * Mastodon finds what was restored here: every other byte is kept. */
    const char *edit_key[8], *edit_val[8], *stale[8];
    char edit_buf[4][32];
    int nedit = 0, nstale = 0;
    {
        char *snap_media = resolve_media_root(&env, live);
        if (snap_media && strcmp(snap_media, media_root)) {
            edit_key[nedit] = "PAPERCLIP_ROOT_PATH";
            edit_val[nedit++] = media_root;
        }
        free(snap_media);
        bool db_url = pf_mastodon_env_get(&env, "DATABASE_URL") != NULL;
        bool redis_url = pf_mastodon_env_get(&env, "REDIS_URL") != NULL;
        const char *ph = pg_host ? pg_host : pf_config_get("restore_pg_host");
        if (ph && (!env.db_host || strcmp(ph, env.db_host))) {
            if (db_url)
                stale[nstale++] = "DATABASE_URL (host)";
            edit_key[nedit] = "DB_HOST";
            edit_val[nedit++] = ph;
        }
        if (pg_port && pg_port != (env.db_port ? env.db_port : 5432)) {
            if (db_url)
                stale[nstale++] = "DATABASE_URL (port)";
            snprintf(edit_buf[0], sizeof edit_buf[0], "%d", pg_port);
            edit_key[nedit] = "DB_PORT";
            edit_val[nedit++] = edit_buf[0];
        }
        if (redis_host && (!env.redis.host || strcmp(redis_host, env.redis.host))) {
            if (redis_url)
                stale[nstale++] = "REDIS_URL (host)";
            edit_key[nedit] = "REDIS_HOST";
            edit_val[nedit++] = redis_host;
        }
        if (redis_port && redis_port != env.redis.port) {
            if (redis_url)
                stale[nstale++] = "REDIS_URL (port)";
            snprintf(edit_buf[1], sizeof edit_buf[1], "%d", redis_port);
            edit_key[nedit] = "REDIS_PORT";
            edit_val[nedit++] = edit_buf[1];
        }
    }
    char name[512];
    snprintf(name, sizeof name, "postgres/%s.dump", env.db_name);
    if ((only & C_DB) && (pf_lookup_path(r, s.tree, "postgres/globals.sql", &n_globals, &err) ||
                          pf_lookup_path(r, s.tree, name, &n_dump, &err))) {
        pf_err_prefix(&err, "database");
        rc = pf_cli_fail(&err);
        goto out;
    }
    {
        pf_err ignored = {0};
        if (!(only & C_REDIS) || !env.sidekiq_redis_separate ||
            pf_lookup_path(r, s.tree, "redis/sidekiq.rdb", &n_sidekiq, &ignored))
            memset(&n_sidekiq, 0, sizeof n_sidekiq);
    }
    if ((only & C_REDIS) && pf_lookup_path(r, s.tree, "redis/dump.rdb", &n_rdb, &err)) {
        pf_err_prefix(&err, "redis");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if ((only & C_MEDIA) && !env.s3_enabled && pf_lookup_path(r, s.tree, "media", &n_media, &err)) {
        pf_err_prefix(&err, "media");
        rc = pf_cli_fail(&err);
        goto out;
    }

    /* The admin connects where the app will: its socket directory, when DB_HOST names one;
     * otherwise libpq's default socket (a TCP DB_HOST would need an admin password). */
    const char *admin_host = pg_host ? pg_host : pf_config_get("restore_pg_host");
    if (!admin_host && env.db_host && env.db_host[0] == '/')
        admin_host = env.db_host;
    pf_pg_restore_opts po = {.host = admin_host,
                             .port = pg_port,
                             .admin_user = admin,
                             .admin_password = admin_pw,
                             .dbname = env.db_name,
                             .owner = env.db_user,
                             .owner_password = env.db_pass,
                             .jobs = jobs,
                             .force = force,
                             .as_admin = restore_as_admin};
    pf_redis_conn rconn = env.redis;
    if (redis_host) {
        rconn.host = (char *)redis_host;
        rconn.socket = NULL;
    }
    if (redis_port)
        rconn.port = redis_port;

    /* Every check before any change. */
    char envpath[4096];
    snprintf(envpath, sizeof envpath, "%s/.env.production", live);
    struct stat st;
    if ((only & C_SECRETS) && !force && lstat(envpath, &st) == 0) {
        pf_err_set(&err, PF_EEXIST, "%s exists: refusing to overwrite it (use --force)", envpath);
        rc = pf_cli_fail(&err);
        goto out;
    }
    if ((only & C_MEDIA) && n_media.type && !force && dir_nonempty(media_root)) {
        pf_err_set(&err, PF_EEXIST,
                   "%s is not empty: refusing to restore media over it (use "
                   "--force)",
                   media_root);
        rc = pf_cli_fail(&err);
        goto out;
    }
    if ((only & C_DB) && pf_pg_restore_check(&po, &err)) {
        prefix_component(&err, "restore", "postgres");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (n_sidekiq.type && !force && pf_redis_check_empty(&env.sidekiq_redis, &err)) {
        prefix_component(&err, "restore", "redis (sidekiq)");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if ((only & C_REDIS) && !force && pf_redis_check_empty(&rconn, &err)) {
        prefix_component(&err, "restore", "redis");
        rc = pf_cli_fail(&err);
        goto out;
    }

    find_app_owner(live, have_secrets ? &n_env : NULL, &owner);
    const app_owner *as_root = geteuid() == 0 ? &owner : NULL;
    if (make_dirs(live, as_root)) {
        pf_err_sys(&err, PF_EIO, "cannot create %s", live);
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (!(only & C_SECRETS))
        for (int i = 0; i < nedit && nstale < 8; i++) {
            /* Not ours to write this time: say what the file should say. */
            pf_warn("secrets: this restore used %s=%s; check that %s says the same", edit_key[i],
                    edit_val[i], envpath);
            stale[nstale++] = edit_key[i];
        }
    if (only & C_SECRETS) {
        pf_info("secrets: writing %s", envpath);
        for (int i = 0; i < nedit; i++) {
            env_text_set(&envtext, edit_key[i], edit_val[i]);
            pf_info("secrets: %s set to %s in %s (the snapshot's value is not this "
                    "machine's)",
                    edit_key[i], edit_val[i], envpath);
        }
        for (int i = 0; i < nstale; i++)
            pf_warn("secrets: %s in %s still names the old server: edit it", stale[i], envpath);
        if (restore_secrets(&envtext, &n_env, live, as_root, &err)) {
            pf_err_prefix(&err, "restore: secrets");
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    if (only & C_DB) {
        pf_info("postgres: restoring %s", env.db_name);
        src_g = pf_node_source_new(r, &n_globals);
        src_d = pf_node_source_new(r, &n_dump);
        if (!src_g || !src_d || pf_pg_restore(&po, src_g, src_d, &err)) {
            prefix_component(&err, "restore", "postgres");
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    if ((only & C_MEDIA) && n_media.type) {
        pf_info("media: restoring into %s", media_root);
        pf_restore_opts ro = {.owners = geteuid() == 0, .workers = pf_cli_workers(r)};
        pf_restore_stats rs = {0};
        if (make_dirs(media_root, as_root)) {
            pf_err_sys(&err, PF_EIO, "cannot create %s", media_root);
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (pf_restore_dir_into(r, &n_media, media_root, &ro, &rs, &err)) {
            pf_err_prefix(&err, "restore: media");
            rc = pf_cli_fail(&err);
            goto out;
        }
        /* Mastodon writes new uploads there as its own user. */
        if (as_root)
            give_dir(media_root, as_root, n_media.mode & 0777);
    }
    if (only & C_REDIS) {
        pf_info("redis: loading the snapshot into %s:%d", rconn.host ? rconn.host : rconn.socket,
                rconn.port);
        pf_redis_info rinfo_restore;
        memset(&rinfo_restore, 0, sizeof rinfo_restore);
        src_r = pf_node_source_new(r, &n_rdb);
        if (!src_r || pf_redis_load_rdb(&rconn, src_r, (int64_t)n_rdb.size, &rinfo_restore, &err)) {
            prefix_component(&err, "restore", "redis");
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (n_sidekiq.type) {
            pf_source *src_s = pf_node_source_new(r, &n_sidekiq);
            pf_info("redis: loading Sidekiq's own Redis");
            int failed = !src_s || pf_redis_load_rdb(&env.sidekiq_redis, src_s,
                                                     (int64_t)n_sidekiq.size, &rinfo_restore, &err);
            pf_node_source_free(src_s);
            if (failed) {
                prefix_component(&err, "restore", "redis (sidekiq)");
                rc = pf_cli_fail(&err);
                goto out;
            }
        }
    }
    pf_progress_done();
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "snapshot", s.id);
        cJSON_AddNumberToObject(j, "seconds", pf_now() - started);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0) {
        printf("restored snapshot %.8s (%s) into %s in %.1f s\n", s.id,
               env.local_domain ? env.local_domain : "?", live, pf_now() - started);
        printf("\nWhat is left to do:\n");
        cJSON *mver = s.manifest ? cJSON_GetObjectItem(s.manifest, "mastodon") : NULL;
        bool known = cJSON_IsString(mver) && mver->valuestring[0];
        const char *v = known ? mver->valuestring : NULL;
        char here[64], gemfile[4200];
        mastodon_version(live, here, sizeof here);
        snprintf(gemfile, sizeof gemfile, "%s/Gemfile", live);
        bool code = access(gemfile, F_OK) == 0;
        int step = 1;
        if (!code) {
            /* DIR is not empty any more: `git clone` into it would fail. */
            printf("  %d. install Mastodon's code into %s (it now holds .env.production and the "
                   "media, so clone in place), as %s:\n"
                   "       cd %s && git init -q && git remote add origin "
                   "https://github.com/mastodon/mastodon.git\n"
                   "       git fetch -q --tags origin && git checkout %s%s\n"
                   "     then bundle install and yarn install as the install guide says\n",
                   step++, live, geteuid() == 0 ? owner.name : "Mastodon's user", live,
                   v ? "v" : "<the old server's version tag>", v ? v : "");
        } else if (v && here[0] && strcmp(v, here)) {
            printf("  %d. the code in %s is Mastodon %s but the snapshot is of %s: check out "
                   "v%s, or run RAILS_ENV=production bundle exec rails db:migrate\n",
                   step++, live, here, v, v);
        }
        for (int i = 0; i < nstale; i++)
            printf("  %d. edit %s in %s/.env.production: it still names the old server\n", step++,
                   stale[i], live);
        printf("  %d. start the services: systemctl start mastodon-web mastodon-sidekiq "
               "mastodon-streaming\n",
               step++);
        printf("  %d. rebuild home feeds: RAILS_ENV=production bin/tootctl feeds build\n", step++);
        if (env.es_enabled)
            printf("  %d. rebuild the search index: RAILS_ENV=production bin/tootctl search "
                   "deploy\n",
                   step++);
        if (env.s3_enabled)
            printf("  -  media lives in the S3 bucket: it was not in this snapshot\n");
    }
out:
    pf_node_source_free(src_g);
    pf_node_source_free(src_d);
    pf_node_source_free(src_r);
    free(media_root);
    pf_buf_free(&envtext);
    pf_mastodon_env_free(&env);
    pf_node_free(&n_env);
    pf_node_free(&n_globals);
    pf_node_free(&n_dump);
    pf_node_free(&n_rdb);
    pf_node_free(&n_media);
    pf_node_free(&n_sidekiq);
    pf_snapshot_free(&s);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    return rc;
}

static int with_live_argv(int argc, char **argv, int npos, const char *const *with_arg,
                          int (*fn)(int, char **))
{
    char *owned = NULL;
    char **av = live_argv(argc, argv, npos, with_arg, &owned);
    if (!av) {
        fprintf(stderr, "permafrost: out of memory\n");
        return PF_EXIT_ERROR;
    }
    int ac = 0;
    while (av[ac])
        ac++;
    int rc = fn(ac, av);
    free(av);
    free(owned);
    return rc;
}

int cmd_backup_mastodon(int argc, char **argv)
{
    static const char *const with_arg[] = {"--only", "--tag", "-t", "--time", NULL};
    return with_live_argv(argc, argv, 0, with_arg, backup_mastodon);
}

int cmd_restore_mastodon(int argc, char **argv)
{
    static const char *const with_arg[] = {
        "--only", "--pg-host",    "--pg-port",    "--pg-admin-user", "--jobs",
        "-j",     "--redis-host", "--redis-port", "--media-root",    NULL};
    return with_live_argv(argc, argv, 1, with_arg, restore_mastodon);
}
