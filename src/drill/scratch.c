#include "drill/scratch.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/exec.h"
#include "common/log.h"

#define PG_ROOT "/usr/lib/postgresql"

static bool executable(const char *dir, const char *name)
{
    char p[1024];
    snprintf(p, sizeof p, "%.500s/%.100s", dir, name);
    return access(p, X_OK) == 0;
}

int pf_scratch_find_pg(const char *bindir, char out[256], pf_err *err)
{
    if (bindir && *bindir) {
        if (!executable(bindir, "initdb") || !executable(bindir, "pg_ctl"))
            return pf_err_set(err, PF_ENOTFOUND,
                              "drill_pg_bindir %s: no initdb and pg_ctl there: point it at a "
                              "PostgreSQL server's bin folder",
                              bindir);
        if (strlen(bindir) >= 256)
            return pf_err_set(err, PF_EUSAGE, "drill_pg_bindir: longer than 255 bytes");
        memcpy(out, bindir, strlen(bindir) + 1);
        return 0;
    }
    DIR *d = opendir(PG_ROOT);
    long best = -1;
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            char *end;
            long v = strtol(e->d_name, &end, 10);
            char bin[256];
            snprintf(bin, sizeof bin, PG_ROOT "/%.64s/bin", e->d_name);
            if (*end || end == e->d_name || v <= best || !executable(bin, "initdb") ||
                !executable(bin, "pg_ctl"))
                continue;
            best = v;
            snprintf(out, 256, "%s", bin);
        }
        closedir(d);
    }
    if (best < 0)
        return pf_err_set(err, PF_ENOTFOUND,
                          "no PostgreSQL server binaries in " PG_ROOT "/*/bin: a drill starts a "
                          "scratch cluster with them (apt-get install postgresql), or set "
                          "drill_pg_bindir");
    return 0;
}

/* pg_ctl hands -o to a shell: the scratch path goes in unquoted, so it must be plain. */
static bool plain_path(const char *p)
{
    for (; *p; p++)
        if (!(*p == '/' || *p == '.' || *p == '_' || *p == '-' || (*p >= '0' && *p <= '9') ||
              (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            return false;
    return true;
}

static const char *user_if_root(const char *name, struct passwd *pw_out)
{
    if (geteuid() != 0)
        return NULL;
    struct passwd *pw = getpwnam(name);
    if (!pw)
        return NULL;
    *pw_out = *pw;
    return name;
}

static int make_dir(const char *path, mode_t mode, const struct passwd *owner, pf_err *err)
{
    if (mkdir(path, mode) < 0)
        return pf_err_sys(err, PF_EIO, "drill: cannot create %s", path);
    if (owner && chown(path, owner->pw_uid, owner->pw_gid) < 0)
        return pf_err_sys(err, PF_EIO, "drill: cannot give %s to %s", path, owner->pw_name);
    return 0;
}

/* The last lines of a server's log, for the error message. */
static void log_tail(const char *path, char *out, size_t n)
{
    out[0] = '\0';
    FILE *f = fopen(path, "re");
    if (!f)
        return;
    char buf[4096];
    size_t got = 0;
    if (fseek(f, -(long)(sizeof buf - 1), SEEK_END) < 0)
        rewind(f);
    got = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[got] = '\0';
    char *start = buf;
    int lines = 0;
    for (char *p = buf + got; p > buf; p--)
        if (p[-1] == '\n' && ++lines > 3) {
            start = p;
            break;
        }
    size_t len = strlen(start);
    if (len >= n)
        len = n - 1;
    memcpy(out, start, len);
    out[len] = '\0';
    for (char *p = out; *p; p++)
        if (*p == '\n')
            *p = ' ';
}

static int start_pg(pf_scratch *s, pf_err *err)
{
    char data[512], logf[512], opts[512];
    snprintf(data, sizeof data, "%s/pg", s->dir);
    snprintf(logf, sizeof logf, "%s/pglog/postgresql.log", s->dir);
    char initdb[512], pg_ctl[512];
    snprintf(initdb, sizeof initdb, "%s/initdb", s->pg_bindir);
    snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", s->pg_bindir);
    const char *init_argv[] = {initdb, "-D",    data, "-U",   s->pg_superuser,
                               "-A",   "trust", "-E", "UTF8", "--locale=C.UTF-8",
                               NULL};
    pf_exec_opts io = {.argv = init_argv, .user = s->pg_os_user};
    pf_exec_result res;
    if (pf_exec_run(&io, &res, err) < 0)
        return pf_err_prefix(err, "drill: scratch PostgreSQL");
    /* No TCP at all; the socket directory is reachable by its owner (and root) only. */
    snprintf(opts, sizeof opts, "-c listen_addresses= -c unix_socket_directories=%s -p %d",
             s->pg_socket_dir, s->pg_port);
    const char *start_argv[] = {pg_ctl, "-D",  data, "-l", logf,    "-w",
                                "-t",   "120", "-o", opts, "start", NULL};
    pf_exec_opts so = {.argv = start_argv, .user = s->pg_os_user};
    if (pf_exec_run(&so, &res, err) < 0) {
        char tail[400];
        log_tail(logf, tail, sizeof tail);
        return pf_err_set(err, PF_ECOMPONENT, "drill: scratch PostgreSQL did not start: %.400s",
                          tail[0] ? tail : err->msg);
    }
    s->pg_started = true;
    return 0;
}

static bool redis_answers(const char *sock)
{
    struct timeval tv = {1, 0};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    bool ok = false;
    if (c && !c->err) {
        redisReply *r = redisCommand(c, "PING");
        ok = r && r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

static int start_redis(pf_scratch *s, const struct passwd *owner, pf_err *err)
{
    char rdir[512], pidf[512], logf[512];
    snprintf(rdir, sizeof rdir, "%s/redis", s->dir);
    snprintf(pidf, sizeof pidf, "%s/redis/redis.pid", s->dir);
    snprintf(logf, sizeof logf, "%s/redis/redis.log", s->dir);
    const char *argv[] = {"redis-server",
                          "--port",
                          "0",
                          "--unixsocket",
                          s->redis_socket,
                          "--unixsocketperm",
                          "700",
                          "--dir",
                          rdir,
                          "--daemonize",
                          "yes",
                          "--pidfile",
                          pidf,
                          "--logfile",
                          logf,
                          "--save",
                          "",
                          "--appendonly",
                          "no",
                          NULL};
    pf_exec_opts o = {.argv = argv, .user = owner ? owner->pw_name : NULL};
    pf_exec_result res;
    if (pf_exec_run(&o, &res, err) < 0)
        return pf_err_prefix(err, "drill: scratch Redis");
    s->redis_started = true;
    for (int i = 0; i < 600; i++) { /* up to 30 s */
        if (redis_answers(s->redis_socket))
            return 0;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    char tail[512];
    log_tail(logf, tail, sizeof tail);
    return pf_err_set(err, PF_ECOMPONENT, "drill: scratch Redis did not answer on %s: %s",
                      s->redis_socket, tail);
}

int pf_scratch_start(pf_scratch *s, const char *tmp, const char *pg_bindir, pf_err *err)
{
    memset(s, 0, sizeof *s);
    if (pf_scratch_find_pg(pg_bindir, s->pg_bindir, err) < 0)
        return -1;
    if (!tmp || !*tmp)
        tmp = getenv("TMPDIR");
    if (!tmp || !*tmp)
        tmp = "/var/tmp";
    if (!plain_path(tmp) || strlen(tmp) > 48)
        return pf_err_set(err, PF_EUSAGE,
                          "drill: temporary folder %s: use a path of letters, digits and ./_- "
                          "(at most 48 bytes), e.g. TMPDIR=/var/tmp",
                          tmp);
    struct stat tst;
    if (geteuid() == 0 && stat(tmp, &tst) == 0 && !(tst.st_mode & S_IXOTH))
        return pf_err_set(err, PF_EUSAGE,
                          "drill: temporary folder %s is closed to other users, and the scratch "
                          "servers run as postgres and redis: chmod o+x it, or use --tmp /var/tmp",
                          tmp);
    snprintf(s->dir, sizeof s->dir, "%s/permafrost-drill.XXXXXX", tmp);
    if (!mkdtemp(s->dir)) {
        int e = errno;
        s->dir[0] = '\0';
        errno = e;
        return pf_err_sys(err, PF_EIO, "drill: cannot create a folder in %s", tmp);
    }
    struct passwd pg_pw, redis_pw;
    s->pg_superuser = "postgres";
    s->pg_os_user = user_if_root("postgres", &pg_pw);
    const char *redis_user = user_if_root("redis", &redis_pw);
    s->pg_port = 5432;
    /* The cluster trusts every local connection that reaches its socket, and the clients of
     * a restore run as the database's owner (peer authentication on real servers), so the
     * socket's folder must be reachable by them: it is, by a name nobody can list or guess
     * (0711 parents, 12 random hex digits). */
    unsigned char rnd[6];
    if (RAND_bytes(rnd, sizeof rnd) != 1) {
        pf_scratch_stop(s);
        return pf_err_set(err, PF_EGENERIC, "drill: no random bytes for the socket folder");
    }
    snprintf(s->pg_socket_dir, sizeof s->pg_socket_dir, "%s/%02x%02x%02x%02x%02x%02x", s->dir,
             rnd[0], rnd[1], rnd[2], rnd[3], rnd[4], rnd[5]);
    snprintf(s->redis_socket, sizeof s->redis_socket, "%s/redis/sock", s->dir);
    snprintf(s->live_dir, sizeof s->live_dir, "%s/live", s->dir);
    char pg[512], pglog[512], redis[512];
    snprintf(pg, sizeof pg, "%s/pg", s->dir);
    snprintf(pglog, sizeof pglog, "%s/pglog", s->dir);
    snprintf(redis, sizeof redis, "%s/redis", s->dir);
    /* 0711: the servers' users may pass through to their own folders, and see nothing. */
    if (chmod(s->dir, 0711) < 0 || make_dir(pg, 0700, s->pg_os_user ? &pg_pw : NULL, err) < 0 ||
        make_dir(s->pg_socket_dir, 0711, s->pg_os_user ? &pg_pw : NULL, err) < 0 ||
        make_dir(pglog, 0700, s->pg_os_user ? &pg_pw : NULL, err) < 0 ||
        make_dir(redis, 0700, redis_user ? &redis_pw : NULL, err) < 0 ||
        make_dir(s->live_dir, 0755, NULL, err) < 0 || start_pg(s, err) < 0 ||
        start_redis(s, redis_user ? &redis_pw : NULL, err) < 0) {
        if (!err->code)
            pf_err_sys(err, PF_EIO, "drill: cannot prepare %s", s->dir);
        pf_scratch_stop(s);
        return -1;
    }
    return 0;
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (flag == FTW_DP ? rmdir(path) : unlink(path))
        pf_warn("drill: cannot remove %s: %s", path, strerror(errno));
    return 0;
}

static void stop_redis(pf_scratch *s)
{
    char pidf[512];
    snprintf(pidf, sizeof pidf, "%s/redis/redis.pid", s->dir);
    FILE *f = fopen(pidf, "re");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid <= 1)
        return;
    kill((pid_t)pid, SIGTERM);
    for (int i = 0; i < 100 && kill((pid_t)pid, 0) == 0; i++) {
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (kill((pid_t)pid, 0) == 0)
        kill((pid_t)pid, SIGKILL);
}

void pf_scratch_stop(pf_scratch *s)
{
    if (!s->dir[0])
        return;
    if (s->pg_started) {
        char data[512], pg_ctl[512];
        snprintf(data, sizeof data, "%s/pg", s->dir);
        snprintf(pg_ctl, sizeof pg_ctl, "%s/pg_ctl", s->pg_bindir);
        const char *argv[] = {pg_ctl, "-D", data, "-m", "immediate", "-w", "stop", NULL};
        pf_exec_opts o = {.argv = argv, .user = s->pg_os_user};
        pf_err e = {0};
        if (pf_exec_run(&o, NULL, &e) < 0)
            pf_warn("drill: stopping the scratch PostgreSQL: %s", e.msg);
        s->pg_started = false;
    }
    if (s->redis_started) {
        stop_redis(s);
        s->redis_started = false;
    }
    nftw(s->dir, remove_one, 16, FTW_DEPTH | FTW_PHYS);
    s->dir[0] = '\0';
}
