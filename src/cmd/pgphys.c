#include "cmd/pgphys.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <malloc.h>
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
#include "repo/status.h"
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
    "it; as root, a copy from DATADIR.permafrost-wal, into which the WAL is fetched first,\n"
    "removed after --pg-start's promotion), recovery_target_time (local time; 'latest', the "
    "default, recovers all archived\n"
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
 * snapshot cannot be restored. wal-stream's partial of it does, once it reaches the end
 * position (a backup on a standby ends where no segment switch follows). */
static bool wait_for_wal(pf_repo *r, const char *name, uint64_t offset)
{
    double until = pf_now() + wal_wait_seconds();
    for (;;) {
        if (pf_wal_has_through(r, name, offset ? offset : UINT64_MAX))
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
    /* Gigabytes pass through chunk-sized buffers freed on other threads: with glibc's
     * defaults the heap is trimmed and refaulted again and again (page zeroing was ~8% of a
     * base backup's CPU). Fixed thresholds keep those pages for reuse. */
    mallopt(M_MMAP_THRESHOLD, 64 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
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
    bool archived = wait_for_wal(r, end_wal, pf_pgphys_end_offset(comp));
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

#define comp_end_ns pf_pgphys_end_ns

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

bool pf_pgphys_spool_wal(void)
{
    return geteuid() == 0;
}

/* The restore_command that reaches this repository the way this run did. */
void pf_pgphys_default_restore_command(pf_buf *cmd)
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

static void add_time(cJSON *o, const char *key, int64_t ns)
{
    char t[40];
    pf_time_rfc3339(ns, t, sizeof t);
    cJSON_AddStringToObject(o, key, t);
}

/* restore's JSON (docs/JSON.md) for a base backup written into a data directory: its pitr
 * object is the one of restore --live --to without the rest (nothing else is restored);
 * the point reached is known only once the cluster ran (started). */
static void print_json(const pf_snapshot *s, const pf_pgphys_restored *d, const char *data_dir,
                       int64_t to_ns, bool started, double seconds)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "snapshot", s->id);
    cJSON_AddNumberToObject(j, "files", (double)d->files);
    cJSON_AddNumberToObject(j, "seconds", (double)(int64_t)(seconds * 1000) / 1000);
    cJSON *p = cJSON_AddObjectToObject(j, "pitr");
    if (to_ns != INT64_MAX)
        add_time(p, "target", to_ns);
    else
        cJSON_AddStringToObject(p, "target", "latest");
    bool ended = d->end_ns && d->end_ns != INT64_MAX;
    if (started && (d->reached_ns || ended))
        add_time(p, "reached", d->reached_ns ? d->reached_ns : d->end_ns);
    else
        cJSON_AddNullToObject(p, "reached");
    cJSON_AddStringToObject(p, "reached_by",
                            !started        ? "not_started"
                            : d->reached_ns ? "recovery"
                                            : "base_backup_end");
    if (*d->reached)
        cJSON_AddStringToObject(p, "recovery_line", d->reached);
    cJSON *b = cJSON_AddObjectToObject(p, "base_backup");
    cJSON_AddStringToObject(b, "snapshot", s->id);
    if (ended)
        add_time(b, "ended", d->end_ns);
    const char *lsn = pf_pgphys_field(s, "end_lsn"), *wal = pf_pgphys_field(s, "end_wal");
    if (lsn)
        cJSON_AddStringToObject(b, "end_lsn", lsn);
    if (wal)
        cJSON_AddStringToObject(b, "end_wal", wal);
    cJSON_AddStringToObject(p, "data_dir", data_dir);
    cJSON_AddNumberToObject(p, "wal_gaps", d->gaps);
    pf_out_json(j);
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
    pf_pgphys_restore_opts po = {.target = target,
                                 .to_ns = latest ? INT64_MAX : target_ns,
                                 .start = start,
                                 .ctl_options = ctl_opts};
    if (pf_pgphys_restore_check(&po, &err))
        return pf_cli_fail(&err); /* PF_EEXIST: exit 6, as JSON too */
    double t0 = pf_now();
    pf_repo *r = pf_cli_open_repo(&err);
    if (r && pf_repo_need_full_key(r, "restore", &err)) {
        pf_repo_free(r);
        r = NULL;
    }
    if (!r)
        return pf_cli_fail(&err);
    int rc = PF_EXIT_OK;
    pf_snapshot s;
    pf_buf cmd = PF_BUF_INIT;
    struct pf_lock *l = pf_cli_lock(r, false, "restore", &err);
    if (!l || pf_repo_load_index(r, &err) || pick(r, argv[optind], target_ns, &s, &err)) {
        rc = pf_cli_fail(&err);
        goto out_nosnap;
    }
    if (restore_cmd)
        pf_buf_append_str(&cmd, restore_cmd);
    else if (!pf_pgphys_spool_wal())
        pf_pgphys_default_restore_command(&cmd);
    po.restore_command = cmd.len ? (const char *)cmd.data : NULL;
    po.workers = pf_cli_workers(r);
    pf_pgphys_restored done;
    char when[64] = "the end of the archived WAL";
    if (!latest)
        snprintf(when, sizeof when, "%s", to);
    if (!pf_g.json && pf_g.verbosity >= 0) {
        char t[64];
        pf_snapshot_time_local(&s, t, sizeof t);
        printf("restoring base backup %.8s (%s, WAL from %s) into %s\n", s.id, t,
               pf_pgphys_field(&s, "start_wal") ? pf_pgphys_field(&s, "start_wal") : "?", target);
        fflush(stdout);
    }
    if (pf_pgphys_restore(r, &s, &po, &done, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (pf_g.json)
        print_json(&s, &done, target, po.to_ns, start, pf_now() - t0);
    else if (pf_g.verbosity >= 0) {
        printf("restored %" PRIu64 " files; %s: it recovers to %s from the repository and "
               "promotes.\n",
               done.files, start ? "the cluster started" : "Start the cluster", when);
        if (start)
            printf("the cluster recovered and promoted: %s\n",
                   *done.reached ? done.reached : "(the log does not say where recovery stopped)");
    }
out:
    pf_snapshot_free(&s);
out_nosnap:
    pf_buf_free(&cmd);
    pf_cli_unlock(l);
    pf_repo_free(r);
    return rc;
}
