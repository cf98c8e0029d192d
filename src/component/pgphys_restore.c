/* A base backup written back as a data directory set up for point-in-time recovery:
 * see pgphys.h. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/exec.h"
#include "common/log.h"
#include "component/pgphys.h"
#include "component/walspool.h"
#include "repo/restorer.h"
#include "repo/wal.h"

const char *pf_pgphys_field(const pf_snapshot *s, const char *key)
{
    cJSON *c =
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL;
    cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, key) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int64_t pf_pgphys_end_ns(const pf_snapshot *s)
{
    const char *t = pf_pgphys_field(s, "end_time_ns");
    return t ? strtoll(t, NULL, 10) : INT64_MAX;
}

uint64_t pf_pgphys_end_offset(const cJSON *comp)
{
    cJSON *lsn = comp ? cJSON_GetObjectItemCaseSensitive(comp, "end_lsn") : NULL;
    cJSON *sz = comp ? cJSON_GetObjectItemCaseSensitive(comp, "wal_segment_size") : NULL;
    uint64_t pos;
    if (!cJSON_IsString(lsn) || !cJSON_IsNumber(sz) || sz->valuedouble < 1 ||
        pf_lsn_parse(lsn->valuestring, &pos))
        return 0;
    return pos % (uint64_t)sz->valuedouble;
}

static double now_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The owner the data directory gets (nftw's callback has no context). */
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

int pf_pgphys_restore_check(const pf_pgphys_restore_opts *o, pf_err *err)
{
    struct stat st;
    char pid[4096];
    snprintf(pid, sizeof pid, "%s/postmaster.pid", o->target);
    if (access(pid, F_OK) == 0)
        return pf_err_set(err, PF_EEXIST,
                          "a PostgreSQL cluster is running in %s: stop it first (and move it "
                          "away, or pass --force to have it moved aside)",
                          o->target);
    if (stat(o->target, &st) == 0 && (!S_ISDIR(st.st_mode) || dir_is_empty(o->target) != 1) &&
        !o->force)
        return pf_err_set(err, PF_EEXIST,
                          "%s is not an empty directory: refusing to restore a data directory "
                          "over it (stop and move away the old cluster first, or --force to "
                          "have a stopped one moved aside)",
                          o->target);
    return 0;
}

/* The line of the recovery log that says where recovery stopped, or "". */
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

int64_t pf_pgphys_log_time(const char *line)
{
    const char *p = line ? strstr(line, "time ") : NULL;
    if (!p)
        return 0;
    p += 5;
    int y, mo, d, h, mi, s, used = 0;
    if (sscanf(p, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d, &h, &mi, &s, &used) != 6)
        return 0;
    p += used;
    int64_t frac = 0, scale = 1000000000;
    if (*p == '.')
        for (p++; *p >= '0' && *p <= '9'; p++)
            if (scale > 1) {
                scale /= 10;
                frac += (*p - '0') * scale;
            }
    int off = 0;
    if (*p == '+' || *p == '-') {
        int oh = 0, om = 0;
        if (sscanf(p + 1, "%2d:%2d", &oh, &om) < 1)
            oh = 0;
        off = (oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    }
    struct tm tm = {.tm_year = y - 1900,
                    .tm_mon = mo - 1,
                    .tm_mday = d,
                    .tm_hour = h,
                    .tm_min = mi,
                    .tm_sec = s};
    int64_t secs = (int64_t)timegm(&tm) - off;
    return secs * 1000000000 + frac;
}

static double promote_wait_seconds(void)
{
    const char *v = getenv("PERMAFROST_PROMOTE_WAIT");
    return v && *v ? atof(v) : 3600;
}

/* The cluster state its control file records (global/pg_control: ControlFileData's `state`,
 * after system_identifier, pg_control_version and catalog_version_no, in every version
 * since 9.6), or -1 while it cannot be read. */
static int control_state(const char *target)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/global/pg_control", target);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    uint8_t head[20];
    ssize_t n = pread(fd, head, sizeof head, 0);
    close(fd);
    if (n != (ssize_t)sizeof head)
        return -1;
    uint32_t version;
    int32_t state;
    memcpy(&version, head + 8, sizeof version);
    memcpy(&state, head + 16, sizeof state);
    if (version < 960 || version >= 10000) /* not a pg_control of this machine's byte order */
        return -1;
    return state;
}

#define PG_DB_IN_PRODUCTION 6 /* DBState in catalog/pg_control.h */

/* Starts the restored cluster and waits until recovery ends: until its control file says
 * "in production". The server writes that under the lock it updates the state
 * pg_is_in_recovery() reads with, after the end-of-recovery checkpoint; recovery.signal
 * goes before that checkpoint, and the log's "ready to accept connections" may be
 * elsewhere (logging_collector) or in another language (lc_messages). The postmaster
 * going away first means recovery failed. */
static int start_and_wait(const pf_pgphys_restore_opts *o, pf_pgphys_restored *out, pf_err *err)
{
    const char *target = o->target;
    char ver[16] = "", path[4096], ctl[4096];
    snprintf(path, sizeof path, "%s/PG_VERSION", target);
    FILE *f = fopen(path, "r");
    if (f) {
        if (fgets(ver, sizeof ver, f))
            ver[strcspn(ver, "\n")] = 0;
        fclose(f);
    }
    const char *bindir = o->pg_bindir ? o->pg_bindir : getenv("PERMAFROST_PG_BINDIR");
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
    snprintf(out->log, sizeof out->log, "%s/log/permafrost-recovery.log", target);
    /* Debian keeps postgresql.conf in /etc/postgresql/N/main, which names the data
     * directory: pg_ctl is pointed there when the data directory has none of its own. */
    snprintf(path, sizeof path, "%s/postgresql.conf", target);
    const char *dir = o->config_dir && access(path, F_OK) ? o->config_dir : target;
    const char *argv[12];
    int n = 0;
    argv[n++] = ctl;
    argv[n++] = "-D";
    argv[n++] = dir;
    argv[n++] = "-l";
    argv[n++] = out->log;
    argv[n++] = "-w";
    argv[n++] = "-t";
    argv[n++] = "600";
    if (o->ctl_options) {
        argv[n++] = "-o";
        argv[n++] = o->ctl_options;
    }
    argv[n++] = "start";
    argv[n] = NULL;
    struct passwd *pw = geteuid() == 0 && fix_uid != 0 ? getpwuid(fix_uid) : NULL;
    pf_exec_opts eo = {.argv = argv, .user = pw ? pw->pw_name : NULL, .cwd = "/"};
    pf_exec_result res;
    if (pf_exec_run(&eo, &res, err))
        return pf_err_prefix(err, "starting the restored cluster (see %s)", out->log);
    char signal_file[4096], pid_file[4096];
    snprintf(signal_file, sizeof signal_file, "%s/recovery.signal", target);
    snprintf(pid_file, sizeof pid_file, "%s/postmaster.pid", target);
    double until = now_mono() + promote_wait_seconds();
    /* Both: the base backup's own pg_control says "in production" until the server has
     * begun recovery. */
    while (access(signal_file, F_OK) == 0 || control_state(target) != PG_DB_IN_PRODUCTION) {
        if (access(pid_file, F_OK))
            return pf_err_set(err, PF_ECOMPONENT,
                              "the restored cluster stopped before recovery ended (a WAL file it "
                              "needs may be missing from the repository): see %s",
                              out->log);
        if (now_mono() > until)
            return pf_err_set(err, PF_ECOMPONENT,
                              "recovery did not end within %.0f s (PERMAFROST_PROMOTE_WAIT): "
                              "see %s",
                              promote_wait_seconds(), out->log);
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    recovery_reached(out->log, out->reached, sizeof out->reached);
    out->reached_ns = pf_pgphys_log_time(out->reached);
    /* Stopped before the first commit past the target: the database is as of the target. */
    if (strstr(out->reached, "stopping before") && o->to_ns != INT64_MAX &&
        (out->reached_ns == 0 || o->to_ns < out->reached_ns))
        out->reached_ns = o->to_ns;
    return 0;
}

typedef struct gap_ctx {
    const char *id;
    unsigned gaps;
    char *first;
} gap_ctx;

static void gap_report(int is_error, const char *msg, void *ctx)
{
    gap_ctx *g = ctx;
    char short_id[9];
    snprintf(short_id, sizeof short_id, "%.8s", g->id);
    if (is_error && strstr(msg, short_id)) {
        pf_warn("%s", msg);
        if (!g->gaps++)
            snprintf(g->first, 300, "%s", msg);
    }
}

/* The owner of target: its own when it exists, else (as root) postgres, else ourselves.
 * Creates its missing parents (Debian's /var/lib/postgresql/N) for that owner. */
static void find_owner(const char *target)
{
    struct stat st;
    if (stat(target, &st) == 0) {
        fix_uid = st.st_uid;
        fix_gid = st.st_gid;
        return;
    }
    struct passwd *pw = geteuid() == 0 ? getpwnam("postgres") : NULL;
    fix_uid = pw ? pw->pw_uid : geteuid();
    fix_gid = pw ? pw->pw_gid : getegid();
    char buf[4096];
    snprintf(buf, sizeof buf, "%s", target);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(buf, 0755) == 0 && lchown(buf, fix_uid, fix_gid) && geteuid() == 0)
            pf_warn("could not give %s to the cluster's owner", buf);
        *p = '/';
    }
}

/* A stopped cluster in the way, with force: moved to <target>.before-restore, never
 * removed. */
static int move_aside(const char *target, pf_err *err)
{
    if (dir_is_empty(target) != 0)
        return 0;
    char aside[4200];
    snprintf(aside, sizeof aside, "%s.before-restore", target);
    if (access(aside, F_OK) == 0)
        return pf_err_set(err, PF_EEXIST,
                          "%s is in the way and %s exists already: move one of them away", target,
                          aside);
    if (rename(target, aside))
        return pf_err_sys(err, PF_EIO, "moving the old cluster %s aside", target);
    pf_warn("the old cluster in %s was moved to %s", target, aside);
    return 0;
}

int pf_pgphys_restore(pf_repo *r, const pf_snapshot *s, const pf_pgphys_restore_opts *o,
                      pf_pgphys_restored *out, pf_err *err)
{
    memset(out, 0, sizeof *out);
    const char *target = o->target;
    out->end_ns = pf_pgphys_end_ns(s);
    if (pf_pgphys_restore_check(o, err))
        return -1;
    const char *end_wal = pf_pgphys_field(s, "end_wal");
    uint64_t offset = pf_pgphys_end_offset(
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL);
    if (!end_wal || !pf_wal_has_through(r, end_wal, offset ? offset : UINT64_MAX))
        return pf_err_set(err, PF_ENOTFOUND,
                          "base backup %.8s needs WAL file %s, which is not in the repository: "
                          "it cannot become consistent (was archive_command set when it was "
                          "taken?)",
                          s->id, end_wal ? end_wal : "?");
    /* A gap in the archive after this base backup ends recovery there, silently as far
     * as PostgreSQL is concerned: say so before anything is written. */
    gap_ctx g = {s->id, 0, out->gap};
    pf_wal_check_result wr;
    pf_err we = {0};
    if (pf_wal_check(r, NULL, gap_report, &g, &wr, &we))
        pf_warn("could not check the WAL archive for gaps: %s", we.msg);
    out->gaps = g.gaps;
    if (o->refuse_gaps && g.gaps)
        return pf_err_set(err, PF_ENOTFOUND, "%s", out->gap);
    if (o->force && move_aside(target, err))
        return -1;
    find_owner(target);
    pf_node base = {0};
    pf_buf conf = PF_BUF_INIT, empty = PF_BUF_INIT, spool_cmd = PF_BUF_INIT;
    int rc = -1;
    const char *restore_command = o->restore_command;
    char spool[4200] = "";
    pf_wal_spool *live = NULL;
    if (!restore_command) {
        /* Before the data directory is written: a spool that does not fit is refused with
         * nothing changed. */
        cJSON *comp =
            s->components ? cJSON_GetObjectItemCaseSensitive(s->components, PF_PGPHYS_DIR) : NULL;
        cJSON *sz = comp ? cJSON_GetObjectItemCaseSensitive(comp, "wal_segment_size") : NULL;
        pf_wal_spool_stats ss;
        pf_wal_spool_dir(target, spool, sizeof spool);
        /* Started here, the cluster recovers while a window of WAL is fetched ahead of it;
         * started later by someone else, it finds all of it there. */
        uint64_t seg = cJSON_IsNumber(sz) ? (uint64_t)sz->valuedouble : 0;
        const char *start_wal = pf_pgphys_field(s, "start_wal");
        if (o->start ? pf_wal_spool_open(r, spool, start_wal, seg, fix_uid, fix_gid, 0, &live, err)
                     : pf_wal_spool_fill(r, spool, start_wal, seg, fix_uid, fix_gid, &ss, err)) {
            pf_err_prefix(err, "fetching the WAL recovery needs ahead");
            goto out;
        }
        if (!o->start)
            pf_info("fetched %" PRIu64 " WAL files (%.1f MiB) into %s: the cluster's user "
                    "recovers from there, not from the repository",
                    ss.files, (double)ss.bytes / (1 << 20), spool);
        if (o->start)
            pf_wal_spool_wait_command(spool, &spool_cmd);
        else
            pf_wal_spool_command(spool, &spool_cmd);
        restore_command = (const char *)spool_cmd.data;
    }
    if (pf_lookup_path(r, s->tree, PF_PGPHYS_DIR "/base", &base, err)) {
        pf_err_prefix(err, "snapshot %.8s", s->id);
        goto out;
    }
    pf_restore_opts ro = {.workers = o->workers};
    pf_restore_stats rs = {0};
    if (pf_restore_dir_into(r, &base, target, &ro, &rs, err)) {
        pf_err_prefix(err, "restoring base backup %.8s into %s", s->id, target);
        goto out;
    }
    out->files = rs.files;
    /* A base backup taken on a standby holds its standby.signal (and primary_conninfo,
     * cleared below): the restored cluster recovers from the repository and promotes, it
     * does not become a standby of the old primary. */
    char p[4096];
    snprintf(p, sizeof p, "%s/standby.signal", target);
    if (unlink(p) && errno != ENOENT) {
        pf_err_sys(err, PF_EIO, "removing %s", p);
        goto out;
    }
    /* pg_wal is sent empty; its archive_status too, but make sure. */
    snprintf(p, sizeof p, "%s/pg_wal", target);
    mkdir(p, 0700);
    snprintf(p, sizeof p, "%s/pg_wal/archive_status", target);
    mkdir(p, 0700);
    fix_errors = 0;
    nftw(target, fix_one, 32, FTW_PHYS);
    if (fix_errors) {
        pf_err_set(err, PF_EIO, "%s: could not give %d entries mode 0700/0600 and their owner",
                   target, fix_errors);
        goto out;
    }
    pf_buf_append_str(&conf, "\n# Written by permafrost restore: point-in-time recovery from "
                             "the repository's WAL archive.\nrestore_command = ");
    conf_quote(&conf, restore_command);
    pf_buf_append_str(&conf, "\n");
    if (o->to_ns != INT64_MAX) {
        time_t secs = (time_t)(o->to_ns / 1000000000);
        struct tm tm;
        gmtime_r(&secs, &tm);
        char utc[48];
        strftime(utc, sizeof utc, "%Y-%m-%d %H:%M:%S+00", &tm);
        pf_buf_printf(&conf, "recovery_target_time = '%s'\nrecovery_target_action = 'promote'\n",
                      utc);
    }
    pf_buf_append_str(&conf, "recovery_target_timeline = 'latest'\nprimary_conninfo = ''\n"
                             "primary_slot_name = ''\n");
    if (write_file_at(target, "postgresql.auto.conf", &conf, 1, err) ||
        write_file_at(target, "recovery.signal", &empty, 0, err))
        goto out;
    snprintf(p, sizeof p, "%s/postgresql.conf", target);
    if (o->own_conf && access(p, F_OK) && write_file_at(target, "postgresql.conf", &empty, 0, err))
        goto out;
    if (live && pf_wal_spool_run(live, err))
        goto out;
    if (o->start && start_and_wait(o, out, err)) {
        pf_err fe = {0};
        if (pf_wal_spool_stop(live, NULL, &fe)) {
            /* Recovery stopped at the file that could not be fetched, not at the target. */
            *err = fe;
            pf_err_prefix(err, "recovery stopped before its target (see %s)", out->log);
        }
        live = NULL;
        if (*spool)
            pf_warn("the WAL spool %s stays: the cluster may still be recovering from it", spool);
        *spool = 0;
        goto out;
    }
    if (live) {
        pf_wal_spool_stats ss;
        pf_err fe = {0};
        if (pf_wal_spool_stop(live, &ss, &fe))
            pf_warn("%s (recovery had reached its target without it)", fe.msg);
        live = NULL;
        pf_info("fetched %" PRIu64 " of the %" PRIu64 " WAL segments archived from the base "
                "backup on (%.1f MiB, at most %" PRIu64 " at once in %s) while the cluster "
                "recovered: its user recovers from there, not from the repository",
                ss.segments, ss.listed, (double)ss.bytes / (1 << 20), ss.max_held, spool);
    }
    if (*spool && !o->start)
        pf_info("the WAL spool %s must stay until the cluster has recovered and promoted; "
                "remove it then",
                spool);
    rc = 0;
out:
    if (live) {
        pf_err fe = {0};
        pf_wal_spool_stop(live, NULL, &fe);
    }
    /* Promoted, the cluster fetches no more WAL (a restore_command left in
     * postgresql.auto.conf is not run again); not started, it still needs all of it. A
     * failure leaves nothing to recover from it. */
    if (*spool && (rc || o->start)) {
        pf_err re = {0};
        if (pf_wal_spool_remove(spool, &re))
            pf_warn("%s", re.msg);
    }
    pf_node_free(&base);
    pf_buf_free(&conf);
    pf_buf_free(&spool_cmd);
    return rc;
}
