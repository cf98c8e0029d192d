#include "cmd/pgphys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/exec.h"
#include "common/log.h"
#include "component/pgphys.h"
#include "repo/backup_run.h"
#include "repo/restorer.h"
#include "repo/wal.h"

static const char backup_help[] =
    "usage: permafrost backup --pg-physical [--pg-conninfo CONNINFO] [--tag TAG]...\n\n"
    "Takes a physical base backup of a PostgreSQL 15+ cluster through the replication\n"
    "protocol (BASE_BACKUP, as pg_basebackup does) and streams it into a snapshot of kind\n"
    "pg-physical, nothing written to local disk; unchanged relation files deduplicate\n"
    "against the previous base backup. CONNINFO is a libpq connection string (PG*\n"
    "variables fill in the rest); the role needs the REPLICATION attribute.\n"
    "The WAL the backup needs must be archived into the same repository by the server's\n"
    "archive_command = 'permafrost wal-push %p'; the backup waits up to\n"
    "$PERMAFROST_WAL_WAIT seconds (default 60) for its last segment to arrive.\n";

static const char restore_help[] =
    "usage: permafrost restore SNAPSHOT --pg-physical-target DATADIR\n"
    "                          [--to \"YYYY-MM-DD HH:MM:SS\" | --to latest]\n"
    "                          [--restore-command CMD] [--pg-start [--pg-ctl-options OPTS]]\n\n"
    "Writes a physical base backup into DATADIR (absent or empty) and sets it up for\n"
    "point-in-time recovery: restore_command = 'permafrost wal-fetch %f %p' (CMD replaces\n"
    "it), recovery_target_time (local time; 'latest', the default, recovers all archived\n"
    "WAL), recovery_target_action = promote, recovery.signal. With SNAPSHOT 'latest' the\n"
    "newest base backup that ended before the target is taken. Start the cluster\n"
    "afterwards; it fetches WAL from the repository, stops at the target and promotes.\n"
    "--pg-start does that: pg_ctl start (as DATADIR's owner, OPTS passed with -o, the log\n"
    "in DATADIR/log/permafrost-recovery.log), waits for the promotion and says which\n"
    "time recovery reached.\n";

static double wal_wait_seconds(void)
{
    const char *v = getenv("PERMAFROST_WAL_WAIT");
    return v && *v ? atof(v) : 60;
}

/* Waits (bounded) for the last WAL file the base backup needs: until it is archived the
 * snapshot cannot be restored. */
static bool wait_for_wal(pf_repo *r, const char *name)
{
    char key[PF_WAL_KEY_MAX];
    pf_err e = {0};
    if (pf_wal_key(name, key, &e))
        return false;
    double until = pf_now() + wal_wait_seconds();
    for (;;) {
        uint64_t size;
        if (pf_store_stat(r->store, key, &size, &e) == 0)
            return true;
        if (pf_now() >= until)
            return false;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

int cmd_backup_pgphys(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"pg-physical", no_argument, 0, 'P'},
                                         {"pg-conninfo", required_argument, 0, 'c'},
                                         {"tag", required_argument, 0, 't'},
                                         {0, 0, 0, 0}};
    const char *conninfo = NULL, *tags[64];
    size_t ntags = 0;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "ht:", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(backup_help, stdout);
            return PF_EXIT_OK;
        case 'P':
            break;
        case 'c':
            conninfo = optarg;
            break;
        case 't':
            if (ntags < 64)
                tags[ntags++] = optarg;
            break;
        default:
            fputs(backup_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        fputs(backup_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    pf_backup_run b = {0};
    char *paths[] = {PF_PGPHYS_DIR};
    int rc = PF_EXIT_OK;
    pf_backup_opts bo = {.workers = pf_cli_workers(r), .program = "permafrost " PF_VERSION};
    /* The lock before the run and released after it, so that a signal removes it. */
    struct pf_lock *lock = pf_cli_lock(r, false, "backup", &err);
    if (!lock || pf_backup_begin(&b, r, &bo, "pg-physical", paths, 1, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    b.snap.kind = PF_SNAP_PG_PHYSICAL;
    pf_snapshot_add_tag(&b.snap, "pg-physical");
    for (size_t i = 0; i < ntags; i++)
        pf_snapshot_add_tag(&b.snap, tags[i]);
    cJSON *comp = cJSON_CreateObject();
    if (pf_pgphys_backup(b.arch, pf_archiver_root(b.arch), conninfo, comp, &err)) {
        cJSON_Delete(comp);
        pf_backup_abandon(&b);
        pf_err_prefix(&err, "backup --pg-physical failed, no snapshot written");
        rc = pf_cli_fail(&err);
        goto out;
    }
    const char *end_wal = cJSON_GetObjectItem(comp, "end_wal")->valuestring;
    bool archived = wait_for_wal(r, end_wal);
    cJSON_AddBoolToObject(comp, "wal_archived", archived);
    if (!archived)
        pf_warn("WAL file %s, which this base backup needs, did not reach the repository "
                "within %.0f s: check the server's archive_command (permafrost wal-push %%p); "
                "the snapshot cannot be restored until it arrives",
                end_wal, wal_wait_seconds());
    cJSON_Delete(b.snap.components);
    b.snap.components = cJSON_CreateObject();
    cJSON_AddItemToObject(b.snap.components, PF_PGPHYS_DIR, comp);
    if (pf_backup_commit(&b, &err)) {
        pf_err_prefix(&err, "backup --pg-physical failed, no snapshot written");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (pf_g.json) {
        pf_out_json(pf_cli_snapshot_json(&b.snap));
    } else if (pf_g.verbosity >= 0) {
        cJSON *st = b.snap.stats;
        char hb[32], ha[32];
        pf_human_bytes((uint64_t)cJSON_GetObjectItem(st, "bytes")->valuedouble, hb, sizeof hb);
        pf_human_bytes((uint64_t)cJSON_GetObjectItem(st, "bytes_new")->valuedouble, ha, sizeof ha);
        printf("snapshot %.8s saved: base backup of %.0f files, %s (WAL %s .. %s); added %s in "
               "%.1f s\n",
               b.snap.id, cJSON_GetObjectItem(st, "files")->valuedouble, hb,
               cJSON_GetObjectItem(comp, "start_wal")->valuestring, end_wal, ha,
               cJSON_GetObjectItem(st, "seconds")->valuedouble);
    }
out:
    pf_backup_end(&b);
    pf_cli_unlock(lock);
    pf_repo_free(r);
    return rc;
}

static int64_t comp_end_ns(const pf_snapshot *s)
{
    cJSON *c =
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL;
    cJSON *t = c ? cJSON_GetObjectItemCaseSensitive(c, "end_time_ns") : NULL;
    return cJSON_IsString(t) ? strtoll(t->valuestring, NULL, 10) : INT64_MAX;
}

static const char *comp_str(const pf_snapshot *s, const char *k)
{
    cJSON *c =
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL;
    cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* The base backup to restore: ref as given, or for "latest" the newest complete one that
 * ended at or before target_ns. */
static int pick(pf_repo *r, const char *ref, int64_t target_ns, pf_snapshot *out, pf_err *err)
{
    if (strcmp(ref, "latest")) {
        if (pf_repo_load_snapshot(r, ref, out, err))
            return -1;
        if (out->kind != PF_SNAP_PG_PHYSICAL) {
            pf_snapshot_free(out);
            return pf_err_set(err, PF_ENOTFOUND,
                              "snapshot %.8s is not a physical base backup (kind %s)", ref,
                              pf_snapshot_kind_name(out->kind));
        }
        if (comp_end_ns(out) > target_ns) {
            pf_snapshot_free(out);
            return pf_err_set(err, PF_EUSAGE,
                              "base backup %.8s ended after the target time: recovery cannot "
                              "stop before it; pick an older one (or 'latest')",
                              ref);
        }
        return 0;
    }
    pf_snapshot *all = NULL;
    size_t n = 0;
    if (pf_repo_load_all_snapshots(r, &all, &n, err))
        return -1;
    ssize_t best = -1;
    for (size_t i = 0; i < n; i++)
        if (all[i].kind == PF_SNAP_PG_PHYSICAL && all[i].complete &&
            comp_end_ns(&all[i]) <= target_ns)
            best = (ssize_t)i;
    if (best < 0) {
        pf_snapshots_free(all, n);
        return pf_err_set(err, PF_ENOTFOUND,
                          "no physical base backup (backup --pg-physical) ended before the "
                          "target time");
    }
    *out = all[best];
    pf_snapshot_init(&all[best]);
    pf_snapshots_free(all, n);
    return 0;
}

typedef struct gap_ctx {
    const char *id;
    int gaps;
} gap_ctx;

static void gap_report(int is_error, const char *msg, void *ctx)
{
    gap_ctx *g = ctx;
    char short_id[9];
    snprintf(short_id, sizeof short_id, "%.8s", g->id);
    if (is_error && strstr(msg, short_id)) {
        pf_warn("%s", msg);
        g->gaps++;
    }
}

static uid_t fix_uid;
static gid_t fix_gid;
static int fix_errors;

/* PostgreSQL refuses a data directory others can read, and runs as its owner. */
static int fix_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)f;
    if (flag == FTW_SL)
        return 0;
    if (lchown(path, fix_uid, fix_gid) && geteuid() == 0)
        fix_errors++;
    if (chmod(path, S_ISDIR(st->st_mode) ? 0700 : 0600))
        fix_errors++;
    return 0;
}

/* Appends '...' with the quotes PostgreSQL's configuration syntax wants. */
static void conf_quote(pf_buf *b, const char *s)
{
    pf_buf_append_str(b, "'");
    for (; *s; s++) {
        if (*s == '\'')
            pf_buf_append_str(b, "''");
        else
            pf_buf_append(b, s, 1);
    }
    pf_buf_append_str(b, "'");
}

/* A shell word for /bin/sh. */
static void sh_quote(pf_buf *b, const char *s)
{
    pf_buf_append_str(b, "'");
    for (; *s; s++) {
        if (*s == '\'')
            pf_buf_append_str(b, "'\\''");
        else
            pf_buf_append(b, s, 1);
    }
    pf_buf_append_str(b, "'");
}

/* The restore_command that reaches this repository the way this run did. */
static void default_restore_command(pf_buf *cmd)
{
    char exe[4096];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    exe[n > 0 ? n : 0] = 0;
    if (n <= 0)
        snprintf(exe, sizeof exe, "permafrost");
    static const char *const vars[] = {"PERMAFROST_PASSWORD_FILE", "PERMAFROST_CONFIG",
                                       "PERMAFROST_KEY_CACHE", "PERMAFROST_CACHE_DIR"};
    int env = 0;
    for (size_t i = 0; i < sizeof vars / sizeof *vars; i++) {
        const char *v = getenv(vars[i]);
        if (!v || !*v)
            continue;
        if (!env++)
            pf_buf_append_str(cmd, "env ");
        pf_buf_printf(cmd, "%s=", vars[i]);
        sh_quote(cmd, v);
        pf_buf_append_str(cmd, " ");
    }
    sh_quote(cmd, exe);
    const char *url = pf_g.repo_url;
    if (!url || !*url)
        url = getenv("PERMAFROST_REPO");
    if (url && *url) {
        pf_buf_append_str(cmd, " --repo ");
        sh_quote(cmd, url);
    }
    pf_buf_append_str(cmd, " wal-fetch %f %p");
    if (!getenv("PERMAFROST_PASSWORD_FILE") && !pf_config_get("password_file"))
        pf_warn("the restore_command written relies on the passphrase reaching PostgreSQL's "
                "environment: set PERMAFROST_PASSWORD_FILE (or password_file in the config), "
                "or pass --restore-command");
}

static int write_file_at(const char *dir, const char *name, const pf_buf *b, int append,
                         pf_err *err)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | (append ? O_APPEND : O_TRUNC),
                  0600);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "opening %s", path);
    ssize_t w = b->len ? write(fd, b->data, b->len) : 0;
    if (w != (ssize_t)b->len || fsync(fd)) {
        close(fd);
        return pf_err_sys(err, PF_EIO, "writing %s", path);
    }
    close(fd);
    if (lchown(path, fix_uid, fix_gid) && geteuid() == 0)
        return pf_err_sys(err, PF_EIO, "giving %s to its owner", path);
    return 0;
}

static int dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return -1;
    struct dirent *e;
    int empty = 1;
    while ((e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) {
            empty = 0;
            break;
        }
    closedir(d);
    return empty;
}

/* The line of the recovery log that says where recovery stopped, or "" . */
static void recovery_reached(const char *log, char *out, size_t n)
{
    static const char *const marks[] = {"recovery stopping before", "recovery stopping after",
                                        "last completed transaction was at log time"};
    out[0] = 0;
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        for (size_t i = 0; i < sizeof marks / sizeof *marks; i++) {
            const char *m = strstr(line, marks[i]);
            if (m && !out[0]) {
                snprintf(out, n, "%s", m);
                out[strcspn(out, "\n")] = 0;
            }
        }
    }
    fclose(f);
}

static double promote_wait_seconds(void)
{
    const char *v = getenv("PERMAFROST_PROMOTE_WAIT");
    return v && *v ? atof(v) : 3600;
}

/* Starts the restored cluster and waits until recovery ends: recovery.signal goes away
 * when the server promotes; the postmaster going away first means recovery failed. */
static int start_and_wait(const char *target, const char *ctl_opts, pf_err *err)
{
    char ver[16] = "", path[4096], ctl[4096], log[4096];
    snprintf(path, sizeof path, "%s/PG_VERSION", target);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(ver, sizeof ver, f))
            ver[strcspn(ver, "\n")] = 0;
        fclose(f);
    }
    const char *bindir = getenv("PERMAFROST_PG_BINDIR");
    if (bindir && *bindir)
        snprintf(ctl, sizeof ctl, "%s/pg_ctl", bindir);
    else
        snprintf(ctl, sizeof ctl, "/usr/lib/postgresql/%s/bin/pg_ctl", ver);
    if (!(bindir && *bindir) && (!*ver || access(ctl, X_OK)))
        snprintf(ctl, sizeof ctl, "pg_ctl");
    snprintf(path, sizeof path, "%s/log", target);
    mkdir(path, 0700);
    if (lchown(path, fix_uid, fix_gid) && geteuid() == 0)
        return pf_err_sys(err, PF_EIO, "giving %s to the cluster's owner", path);
    snprintf(log, sizeof log, "%s/log/permafrost-recovery.log", target);
    const char *argv[12];
    int n = 0;
    argv[n++] = ctl;
    argv[n++] = "-D";
    argv[n++] = target;
    argv[n++] = "-l";
    argv[n++] = log;
    argv[n++] = "-w";
    argv[n++] = "-t";
    argv[n++] = "600";
    if (ctl_opts) {
        argv[n++] = "-o";
        argv[n++] = ctl_opts;
    }
    argv[n++] = "start";
    argv[n] = NULL;
    struct passwd *pw = geteuid() == 0 && fix_uid != 0 ? getpwuid(fix_uid) : NULL;
    pf_exec_opts o = {.argv = argv, .user = pw ? pw->pw_name : NULL, .cwd = "/"};
    pf_exec_result res;
    if (pf_exec_run(&o, &res, err))
        return pf_err_prefix(err, "starting the restored cluster (see %s)", log);
    char signal_file[4096], pid_file[4096];
    snprintf(signal_file, sizeof signal_file, "%s/recovery.signal", target);
    snprintf(pid_file, sizeof pid_file, "%s/postmaster.pid", target);
    double until = pf_now() + promote_wait_seconds();
    while (access(signal_file, F_OK) == 0) {
        if (access(pid_file, F_OK))
            return pf_err_set(err, PF_ECOMPONENT,
                              "the restored cluster stopped before recovery ended: see %s", log);
        if (pf_now() > until)
            return pf_err_set(err, PF_ECOMPONENT,
                              "recovery did not end within %.0f s (PERMAFROST_PROMOTE_WAIT): "
                              "see %s",
                              promote_wait_seconds(), log);
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char reached[512];
    recovery_reached(log, reached, sizeof reached);
    if (pf_g.verbosity >= 0)
        printf("the cluster recovered and promoted: %s\n",
               *reached ? reached : "(the log does not say where recovery stopped)");
    return 0;
}

int cmd_restore_pgphys(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"pg-physical-target", required_argument, 0, 'D'},
                                         {"to", required_argument, 0, 'T'},
                                         {"restore-command", required_argument, 0, 'R'},
                                         {"pg-start", no_argument, 0, 'S'},
                                         {"pg-ctl-options", required_argument, 0, 'O'},
                                         {0, 0, 0, 0}};
    const char *target = NULL, *to = "latest", *restore_cmd = NULL, *ctl_opts = NULL;
    bool start = false;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(restore_help, stdout);
            return PF_EXIT_OK;
        case 'D':
            target = optarg;
            break;
        case 'T':
            to = optarg;
            break;
        case 'R':
            restore_cmd = optarg;
            break;
        case 'S':
            start = true;
            break;
        case 'O':
            ctl_opts = optarg;
            break;
        default:
            fputs(restore_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    if (argc - optind != 1 || !target) {
        fputs(restore_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    int64_t target_ns = INT64_MAX;
    int32_t tz;
    bool latest = !strcmp(to, "latest");
    if (!latest && pf_parse_local_time(to, &target_ns, &tz, &err)) {
        pf_err_prefix(&err, "--to");
        return pf_cli_fail(&err);
    }
    /* The data directory: absent or empty; its owner (or postgres, as root) gets it. */
    struct stat st;
    if (stat(target, &st) == 0) {
        if (!S_ISDIR(st.st_mode) || dir_is_empty(target) != 1) {
            fprintf(stderr,
                    "permafrost: %s is not an empty directory: refusing to restore a data "
                    "directory over it (stop and move away the old cluster first)\n",
                    target);
            return PF_EXIT_EXISTS;
        }
        fix_uid = st.st_uid;
        fix_gid = st.st_gid;
    } else {
        struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
        fix_uid = pw ? pw->pw_uid : geteuid();
        fix_gid = pw ? pw->pw_gid : getegid();
    }
    pf_repo *r = pf_cli_open_repo(&err);
    if (r && pf_repo_need_full_key(r, "restore", &err)) {
        pf_repo_free(r);
        r = NULL;
    }
    if (!r)
        return pf_cli_fail(&err);
    int rc = PF_EXIT_OK;
    pf_snapshot s;
    pf_node base = {0};
    pf_buf conf = PF_BUF_INIT, cmd = PF_BUF_INIT, empty = PF_BUF_INIT;
    struct pf_lock *l = pf_cli_lock(r, false, "restore", &err);
    if (!l || pf_repo_load_index(r, &err) || pick(r, argv[optind], target_ns, &s, &err)) {
        rc = pf_cli_fail(&err);
        goto out_nosnap;
    }
    const char *end_wal = comp_str(&s, "end_wal");
    char key[PF_WAL_KEY_MAX];
    uint64_t size;
    if (!end_wal || pf_wal_key(end_wal, key, &err) || pf_store_stat(r->store, key, &size, &err)) {
        pf_err_set(&err, PF_ENOTFOUND,
                   "base backup %.8s needs WAL file %s, which is not in the repository: it "
                   "cannot become consistent (was archive_command set when it was taken?)",
                   s.id, end_wal ? end_wal : "?");
        rc = pf_cli_fail(&err);
        goto out;
    }
    /* A gap in the archive after this base backup ends recovery there, silently as far
     * as PostgreSQL is concerned: say so before anything is written. */
    gap_ctx g = {s.id, 0};
    pf_wal_check_result wr;
    pf_err we = {0};
    if (pf_wal_check(r, NULL, gap_report, &g, &wr, &we))
        pf_warn("could not check the WAL archive for gaps: %s", we.msg);
    if (pf_lookup_path(r, s.tree, PF_PGPHYS_DIR "/base", &base, &err)) {
        pf_err_prefix(&err, "snapshot %.8s", s.id);
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_restore_opts o = {.workers = pf_cli_workers(r)};
    pf_restore_stats rs = {0};
    if (pf_restore_dir_into(r, &base, target, &o, &rs, &err)) {
        pf_err_prefix(&err, "restoring base backup %.8s into %s", s.id, target);
        rc = pf_cli_fail(&err);
        goto out;
    }
    /* pg_wal is sent empty; its archive_status too, but make sure. */
    char p[4096];
    snprintf(p, sizeof p, "%s/pg_wal", target);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/pg_wal/archive_status", target);
    mkdir(p, 0700);
    fix_errors = 0;
    nftw(target, fix_one, 32, FTW_PHYS);
    if (fix_errors) {
        pf_err_set(&err, PF_EIO, "%s: could not give %d entries mode 0700/0600 and their owner",
                   target, fix_errors);
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (restore_cmd)
        pf_buf_append_str(&cmd, restore_cmd);
    else
        default_restore_command(&cmd);
    pf_buf_append_str(&conf, "\n# Written by permafrost restore: point-in-time recovery from "
                             "the repository's WAL archive.\nrestore_command = ");
    conf_quote(&conf, (const char *)cmd.data);
    pf_buf_append_str(&conf, "\n");
    char when[64] = "the end of the archived WAL";
    if (!latest) {
        time_t secs = (time_t)(target_ns / 1000000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char utc[48];
        strftime(utc, sizeof utc, "%Y-%m-%d %H:%M:%S+00", &tm);
        pf_buf_printf(&conf, "recovery_target_time = '%s'\nrecovery_target_action = 'promote'\n",
                      utc);
        snprintf(when, sizeof when, "%s", to);
    }
    pf_buf_append_str(&conf, "recovery_target_timeline = 'latest'\n");
    if (write_file_at(target, "postgresql.auto.conf", &conf, 1, &err) ||
        write_file_at(target, "recovery.signal", &empty, 0, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (pf_g.verbosity >= 0) {
        char t[64];
        pf_snapshot_time_local(&s, t, sizeof t);
        printf("restored base backup %.8s (%s, WAL from %s) into %s: %" PRIu64 " files\n"
               "%s: it recovers to %s from the repository and promotes.\n",
               s.id, t, comp_str(&s, "start_wal") ? comp_str(&s, "start_wal") : "?", target,
               rs.files, start ? "Starting the cluster" : "Start the cluster", when);
        fflush(stdout);
    }
    /* The lock is not needed while the server fetches WAL (wal-fetch reads only). */
    pf_cli_unlock(l);
    l = NULL;
    if (start && start_and_wait(target, ctl_opts, &err))
        rc = pf_cli_fail(&err);
out:
    pf_snapshot_free(&s);
out_nosnap:
    pf_node_free(&base);
    pf_buf_free(&conf);
    pf_buf_free(&cmd);
    pf_cli_unlock(l);
    pf_repo_free(r);
    return rc;
}
