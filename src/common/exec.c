#include "common/exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define CHUNK 65536

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* Length of the key part of "KEY=value" (or of "KEY"). */
static size_t key_len(const char *kv)
{
    const char *eq = strchr(kv, '=');
    return eq ? (size_t)(eq - kv) : strlen(kv);
}

/* Whether our variable `kv` may pass to a child: the locale, the time zone, PATH and
 * TMPDIR say how to behave, never who we are or what we know. Everything else (the
 * repository passphrase, S3 keys, the operator's PG and Redis settings) stays with us;
 * a child that needs a setting gets it from its caller as an override. */
static bool allowed(const char *kv)
{
    static const char *const names[] = {"PATH", "LANG", "LANGUAGE", "TZ", "TMPDIR", NULL};
    size_t k = key_len(kv);
    if (k > 3 && memcmp(kv, "LC_", 3) == 0)
        return true;
    for (int i = 0; names[i]; i++)
        if (strlen(names[i]) == k && memcmp(names[i], kv, k) == 0)
            return true;
    return false;
}

/* The allowed part of environ, then HOME/USER/LOGNAME of the user the child runs as
 * (when `pw` is not NULL, else our HOME), then the entries of `env` in order, a later
 * entry replacing an earlier one of the same key and "KEY" alone removing it. The strings
 * are borrowed or live in `own` (freed by the caller); only the array is allocated. */
static char **build_env(const char *const *env, const struct passwd *pw, char *own[3])
{
    size_t n = 0, m = 0;
    while (environ[n])
        n++;
    while (env && env[m])
        m++;
    char **out = calloc(n + m + 4, sizeof *out);
    if (!out)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (allowed(environ[i]) || (!pw && strncmp(environ[i], "HOME=", 5) == 0))
            out[k++] = environ[i];
    if (pw) {
        if (asprintf(&own[0], "HOME=%s", pw->pw_dir) < 0 ||
            asprintf(&own[1], "USER=%s", pw->pw_name) < 0 ||
            asprintf(&own[2], "LOGNAME=%s", pw->pw_name) < 0) {
            free(out);
            return NULL;
        }
        out[k++] = own[0];
        out[k++] = own[1];
        out[k++] = own[2];
    }
    for (size_t i = 0; i < m; i++) {
        size_t kl = key_len(env[i]);
        size_t w = 0;
        for (size_t j = 0; j < k; j++)
            if (!(key_len(out[j]) == kl && memcmp(out[j], env[i], kl) == 0))
                out[w++] = out[j];
        k = w;
        if (strchr(env[i], '='))
            out[k++] = (char *)env[i];
    }
    out[k] = NULL;
    return out;
}

/* Keeps the last PF_EXEC_TAIL bytes of what the child wrote to stderr. */
typedef struct tail_buf {
    char data[PF_EXEC_TAIL];
    size_t len;
} tail_buf;

static void tail_add(tail_buf *t, const char *p, size_t n)
{
    if (n >= sizeof t->data) {
        memcpy(t->data, p + n - sizeof t->data, sizeof t->data);
        t->len = sizeof t->data;
        return;
    }
    if (t->len + n > sizeof t->data) {
        size_t drop = t->len + n - sizeof t->data;
        memmove(t->data, t->data + drop, t->len - drop);
        t->len -= drop;
    }
    memcpy(t->data + t->len, p, n);
    t->len += n;
}

/* The last non-empty lines of the tail joined with "; ", fitting in `out`. A single line
 * too long to fit is cut at its end: its beginning says what went wrong. */
static void tail_lines(const tail_buf *t, char *out, size_t cap)
{
    out[0] = 0;
    size_t end = t->len, used = 0;
    /* Walk lines backwards, collecting their [start, end) ranges. */
    size_t starts[32], ends[32];
    int nl = 0;
    while (end > 0 && nl < 32) {
        while (end > 0 && (t->data[end - 1] == '\n' || t->data[end - 1] == '\r' ||
                           t->data[end - 1] == ' ' || t->data[end - 1] == '\t'))
            end--;
        if (end == 0)
            break;
        size_t start = end;
        while (start > 0 && t->data[start - 1] != '\n')
            start--;
        size_t len = end - start;
        size_t need = len + (nl ? 2 : 0);
        if (nl > 0 && used + need + 1 > cap)
            break;
        starts[nl] = start;
        ends[nl] = end;
        nl++;
        used += need;
        end = start;
    }
    size_t o = 0;
    for (int i = nl - 1; i >= 0 && o + 1 < cap; i--) {
        if (o && o + 3 < cap) {
            out[o++] = ';';
            out[o++] = ' ';
        }
        for (size_t j = starts[i]; j < ends[i] && o + 1 < cap; j++) {
            unsigned char c = (unsigned char)t->data[j];
            out[o++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        }
    }
    out[o] = 0;
}

static int set_nonblock(int fd)
{
    int fl = fcntl(fd, F_GETFL);
    return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

/* Asks the child to stop, then insists. Returns its wait status. */
static int stop_child(pid_t pid)
{
    int st = 0;
    kill(pid, SIGTERM);
    for (int i = 0; i < 500; i++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid || (r < 0 && errno != EINTR))
            return st;
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
        ;
    return st;
}

/* Who a child runs as: resolved before fork, so that the child only makes system calls. */
typedef struct as_user {
    bool set;
    uid_t uid;
    gid_t gid;
    gid_t groups[64];
    int ngroups;
} as_user;

static int resolve_user(const char *name, as_user *u, struct passwd *pwbuf, char *sbuf, size_t scap,
                        pf_err *err)
{
    struct passwd *pw = NULL;
    memset(u, 0, sizeof *u);
    if (getpwnam_r(name, pwbuf, sbuf, scap, &pw) != 0 || !pw)
        return pf_err_set(err, PF_EUSAGE, "cannot run a client as \"%s\": no such OS user", name);
    if (geteuid() != 0 && geteuid() != pw->pw_uid)
        return pf_err_set(err, PF_EUSAGE,
                          "cannot run a client as \"%s\": only root can switch to another user",
                          name);
    u->set = true;
    u->uid = pw->pw_uid;
    u->gid = pw->pw_gid;
    u->ngroups = (int)(sizeof u->groups / sizeof u->groups[0]);
    if (getgrouplist(pw->pw_name, pw->pw_gid, u->groups, &u->ngroups) < 0) {
        u->groups[0] = pw->pw_gid; /* more than 64 groups: the primary one is enough here */
        u->ngroups = 1;
    }
    return 0;
}

/* The child's side of fork: only async-signal-safe calls (we may have threads). On
 * failure the errno goes to the parent through `report` (close-on-exec, so a successful
 * exec closes it with nothing written). */
static _Noreturn void child_exec(const char *path, char *const *argv, char *const *envp, int in_fd,
                                 int out_fd, int err_fd, const char *cwd, const as_user *u,
                                 int report)
{
    int e = 0;
    struct sigaction dfl;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigaction(SIGPIPE, &dfl, NULL);
    sigset_t empty;
    sigemptyset(&empty);
    sigprocmask(SIG_SETMASK, &empty, NULL);
    int nullfd = -1;
    if (in_fd < 0 || out_fd < 0)
        nullfd = open("/dev/null", O_RDWR);
    if (dup2(in_fd >= 0 ? in_fd : nullfd, 0) < 0 || dup2(out_fd >= 0 ? out_fd : nullfd, 1) < 0 ||
        dup2(err_fd, 2) < 0)
        goto fail;
    if (u->set &&
        (setgroups((size_t)u->ngroups, u->groups) < 0 || setgid(u->gid) < 0 || setuid(u->uid) < 0))
        goto fail;
    if (cwd && chdir(cwd) < 0)
        goto fail;
    execve(path, argv, envp);
fail:
    e = errno;
    if (write(report, &e, sizeof e) < 0) {
        /* nothing more to do */
    }
    _exit(127);
}

int pf_exec_run(const pf_exec_opts *o, pf_exec_result *res, pf_err *err)
{
    int rc = -1;
    int in_p[2] = {-1, -1}, out_p[2] = {-1, -1}, err_p[2] = {-1, -1};
    char **envp = NULL;
    pid_t pid = -1;
    bool mask_set = false;
    int report[2] = {-1, -1};
    char *path = NULL, *own[3] = {NULL, NULL, NULL};
    as_user user = {0};
    struct passwd pwbuf;
    char pwstr[4096];
    sigset_t old_mask;
    unsigned char *pending = NULL;
    size_t pend_len = 0, pend_off = 0;
    bool in_eof = false, io_failed = false;
    tail_buf *tail = NULL;
    const char *name = o->name ? o->name : base_name(o->argv[0]);
    pf_exec_result local_res;
    if (!res)
        res = &local_res;
    memset(res, 0, sizeof *res);

    tail = calloc(1, sizeof *tail);
    pending = malloc(CHUNK);
    if (o->user && resolve_user(o->user, &user, &pwbuf, pwstr, sizeof pwstr, err) < 0)
        goto out;
    envp = build_env(o->env, o->user ? &pwbuf : NULL, own);
    if (!tail || !pending || !envp) {
        pf_err_set(err, PF_EGENERIC, "cannot run %s: out of memory", name);
        goto out;
    }
    if ((o->in && pipe2(in_p, O_CLOEXEC) < 0) || (o->out && pipe2(out_p, O_CLOEXEC) < 0) ||
        pipe2(err_p, O_CLOEXEC) < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot run %s: pipe", name);
        goto out;
    }

    /* A child that stops reading its stdin must give us EPIPE, not kill us. The child
     * starts with no blocked signals and default SIGPIPE, whatever we use. */
    sigset_t pipe_set;
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    if (pthread_sigmask(SIG_BLOCK, &pipe_set, &old_mask) == 0)
        mask_set = true;

    path = pf_exec_which(o->argv[0]);
    if (!path) {
        errno = ENOENT;
        pf_err_sys(err, PF_ENOTFOUND, "cannot run %s", o->argv[0]);
        goto out;
    }
    if (pipe2(report, O_CLOEXEC) < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot run %s: pipe", name);
        goto out;
    }
    pid = fork();
    if (pid < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot run %s: fork", name);
        goto out;
    }
    if (pid == 0)
        child_exec(path, (char *const *)o->argv, envp, in_p[0], out_p[1], err_p[1], o->cwd, &user,
                   report[1]);
    close_fd(&report[1]);
    int child_errno = 0;
    ssize_t got;
    while ((got = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
        ;
    close_fd(&report[0]);
    if (got == (ssize_t)sizeof child_errno) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        pid = -1;
        errno = child_errno;
        if (o->user)
            pf_err_sys(err, child_errno == ENOENT ? PF_ENOTFOUND : PF_EGENERIC,
                       "cannot run %s as %s", o->argv[0], o->user);
        else
            pf_err_sys(err, child_errno == ENOENT ? PF_ENOTFOUND : PF_EGENERIC, "cannot run %s",
                       o->argv[0]);
        goto out;
    }
    close_fd(&in_p[0]);
    close_fd(&out_p[1]);
    close_fd(&err_p[1]);
    if ((in_p[1] >= 0 && set_nonblock(in_p[1]) < 0) ||
        (out_p[0] >= 0 && set_nonblock(out_p[0]) < 0) || set_nonblock(err_p[0]) < 0) {
        pf_err_sys(err, PF_EGENERIC, "%s: fcntl", name);
        io_failed = true;
    }

    char rbuf[CHUNK];
    while (!io_failed && (in_p[1] >= 0 || out_p[0] >= 0 || err_p[0] >= 0)) {
        /* Refill before polling so that an exhausted source closes stdin promptly. */
        if (in_p[1] >= 0 && pend_off == pend_len && !in_eof) {
            ssize_t n = pf_source_read(o->in, pending, CHUNK, err);
            if (n < 0) {
                io_failed = true;
                break;
            }
            pend_off = 0;
            pend_len = (size_t)n;
            if (n == 0)
                in_eof = true;
        }
        if (in_p[1] >= 0 && in_eof && pend_off == pend_len)
            close_fd(&in_p[1]);

        struct pollfd pf[3];
        int np = 0, i_in = -1, i_out = -1, i_err = -1;
        if (in_p[1] >= 0) {
            pf[np] = (struct pollfd){.fd = in_p[1], .events = POLLOUT};
            i_in = np++;
        }
        if (out_p[0] >= 0) {
            pf[np] = (struct pollfd){.fd = out_p[0], .events = POLLIN};
            i_out = np++;
        }
        if (err_p[0] >= 0) {
            pf[np] = (struct pollfd){.fd = err_p[0], .events = POLLIN};
            i_err = np++;
        }
        if (np == 0)
            break;
        if (poll(pf, (nfds_t)np, -1) < 0) {
            if (errno == EINTR)
                continue;
            pf_err_sys(err, PF_EGENERIC, "%s: poll", name);
            io_failed = true;
            break;
        }
        if (i_in >= 0 && pf[i_in].revents) {
            ssize_t w = write(in_p[1], pending + pend_off, pend_len - pend_off);
            if (w > 0) {
                pend_off += (size_t)w;
            } else if (w < 0 && errno != EAGAIN && errno != EINTR) {
                /* EPIPE: the child stopped reading; its exit status tells whether that
                 * was fine. Eat the pending SIGPIPE so it never reaches us. */
                if (errno == EPIPE && mask_set) {
                    struct timespec zero = {0, 0};
                    sigtimedwait(&pipe_set, NULL, &zero);
                }
                close_fd(&in_p[1]);
            }
        }
        if (i_out >= 0 && pf[i_out].revents) {
            ssize_t r = read(out_p[0], rbuf, sizeof rbuf);
            if (r > 0) {
                if (pf_sink_write(o->out, rbuf, (size_t)r, err) < 0) {
                    io_failed = true;
                    break;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_fd(&out_p[0]);
            }
        }
        if (i_err >= 0 && pf[i_err].revents) {
            ssize_t r = read(err_p[0], rbuf, sizeof rbuf);
            if (r > 0) {
                tail_add(tail, rbuf, (size_t)r);
                if (o->stderr_passthrough) {
                    ssize_t ignored = write(2, rbuf, (size_t)r);
                    (void)ignored;
                }
            } else if (r == 0 || (errno != EAGAIN && errno != EINTR)) {
                close_fd(&err_p[0]);
            }
        }
    }

    int st = 0;
    if (io_failed) {
        st = stop_child(pid);
    } else {
        while (waitpid(pid, &st, 0) < 0) {
            if (errno != EINTR) {
                pf_err_sys(err, PF_EGENERIC, "%s: waitpid", name);
                pid = -1;
                goto out;
            }
        }
    }
    pid = -1;
    tail_lines(tail, res->tail, sizeof res->tail);
    if (WIFSIGNALED(st)) {
        res->exit_code = -1;
        res->signal = WTERMSIG(st);
    } else {
        res->exit_code = WEXITSTATUS(st);
    }
    if (io_failed)
        goto out; /* err already holds the sink's or source's error */
    if (res->signal) {
        pf_err_set(err, PF_ECOMPONENT, "%s killed by signal %d (%s)%s%s", name, res->signal,
                   strsignal(res->signal), res->tail[0] ? ": " : "", res->tail);
        goto out;
    }
    if (res->exit_code != 0) {
        pf_err_set(err, PF_ECOMPONENT, "%s exited %d%s%s", name, res->exit_code,
                   res->tail[0] ? ": " : "", res->tail[0] ? res->tail : "(no message)");
        goto out;
    }
    rc = 0;
out:
    if (pid > 0)
        stop_child(pid);
    for (int i = 0; i < 2; i++) {
        close_fd(&in_p[i]);
        close_fd(&out_p[i]);
        close_fd(&err_p[i]);
    }
    if (mask_set) {
        /* Drop a SIGPIPE still pending from our writes before unblocking it. */
        struct timespec zero = {0, 0};
        while (sigtimedwait(&pipe_set, NULL, &zero) > 0)
            ;
        pthread_sigmask(SIG_SETMASK, &old_mask, NULL);
    }
    close_fd(&report[0]);
    close_fd(&report[1]);
    free(envp);
    free(path);
    for (int i = 0; i < 3; i++)
        free(own[i]);
    if (pending) {
        explicit_bzero(pending, CHUNK); /* stdin may have carried a password */
        free(pending);
    }
    free(tail);
    return rc;
}

static int buf_sink_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    pf_buf_sink *bs = s->ctx;
    if (bs->buf->len + n > bs->max)
        return pf_err_set(err, PF_ECOMPONENT, "output larger than %zu bytes", bs->max);
    pf_buf_append(bs->buf, p, n);
    return 0;
}

void pf_buf_sink_init(pf_buf_sink *s, pf_buf *buf, size_t max)
{
    s->sink.write = buf_sink_write;
    s->sink.ctx = s;
    s->buf = buf;
    s->max = max;
}

static ssize_t mem_source_read(pf_source *s, void *p, size_t n, pf_err *err)
{
    (void)err;
    pf_mem_source *ms = s->ctx;
    size_t left = ms->len - ms->pos;
    if (n > left)
        n = left;
    if (n)
        memcpy(p, ms->p + ms->pos, n);
    ms->pos += n;
    return (ssize_t)n;
}

void pf_mem_source_init(pf_mem_source *s, const void *p, size_t len)
{
    s->source.read = mem_source_read;
    s->source.ctx = s;
    s->p = p;
    s->len = len;
    s->pos = 0;
}

int pf_exec_capture(const char *const *argv, const char *const *env, const char *cwd,
                    const void *in, size_t len, pf_buf *out, size_t max_out, pf_exec_result *res,
                    pf_err *err)
{
    pf_mem_source ms;
    pf_buf_sink bs;
    pf_exec_opts o = {.argv = argv, .env = env, .cwd = cwd};
    if (in) {
        pf_mem_source_init(&ms, in, len);
        o.in = &ms.source;
    }
    if (out) {
        pf_buf_sink_init(&bs, out, max_out);
        o.out = &bs.sink;
    }
    return pf_exec_run(&o, res, err);
}

char *pf_exec_which(const char *name)
{
    if (strchr(name, '/'))
        return access(name, X_OK) == 0 ? strdup(name) : NULL;
    const char *path = getenv("PATH");
    if (!path)
        path = "/usr/local/bin:/usr/bin:/bin";
    while (*path) {
        const char *colon = strchr(path, ':');
        size_t dl = colon ? (size_t)(colon - path) : strlen(path);
        char *cand = NULL;
        const char *dir = dl ? path : ".";
        if (asprintf(&cand, "%.*s/%s", dl ? (int)dl : 1, dir, name) < 0)
            return NULL;
        struct stat st;
        if (stat(cand, &st) == 0 && S_ISREG(st.st_mode) && access(cand, X_OK) == 0)
            return cand;
        free(cand);
        path += dl;
        if (*path == ':')
            path++;
    }
    return NULL;
}

/* ---- children that run beside us (pf_exec_spawn) ---- */

struct pf_exec_child {
    pid_t pid;
    int in_fd, out_fd, err_fd; /* our ends, non-blocking; -1 once closed */
    char name[64];
    tail_buf tail;
};

pf_exec_child *pf_exec_spawn(const pf_exec_opts *o, pf_err *err)
{
    int in_s[2] = {-1, -1}, out_s[2] = {-1, -1}, err_p[2] = {-1, -1}, report[2] = {-1, -1};
    char *path = NULL, *own[3] = {NULL, NULL, NULL}, **envp = NULL;
    as_user user = {0};
    struct passwd pwbuf;
    char pwstr[4096];
    const char *name = o->name ? o->name : base_name(o->argv[0]);
    pf_exec_child *c = calloc(1, sizeof *c);
    if (!c)
        abort();
    c->pid = -1;
    c->in_fd = c->out_fd = c->err_fd = -1;
    snprintf(c->name, sizeof c->name, "%s", name);
    if (o->user && resolve_user(o->user, &user, &pwbuf, pwstr, sizeof pwstr, err) < 0)
        goto fail;
    envp = build_env(o->env, o->user ? &pwbuf : NULL, own);
    if (!envp) {
        pf_err_set(err, PF_EGENERIC, "cannot run %s: out of memory", name);
        goto fail;
    }
    /* Sockets, not pipes: send(MSG_NOSIGNAL) makes a dead child an EPIPE, not a SIGPIPE
     * that would kill us. */
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, in_s) < 0 ||
        socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, out_s) < 0 ||
        pipe2(err_p, O_CLOEXEC) < 0 || pipe2(report, O_CLOEXEC) < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot run %s: socketpair", name);
        goto fail;
    }
    path = pf_exec_which(o->argv[0]);
    if (!path) {
        errno = ENOENT;
        pf_err_sys(err, PF_ENOTFOUND, "cannot run %s", o->argv[0]);
        goto fail;
    }
    c->pid = fork();
    if (c->pid < 0) {
        pf_err_sys(err, PF_EGENERIC, "cannot run %s: fork", name);
        goto fail;
    }
    if (c->pid == 0)
        child_exec(path, (char *const *)o->argv, envp, in_s[1], out_s[1], err_p[1], o->cwd, &user,
                   report[1]);
    close_fd(&report[1]);
    int child_errno = 0;
    ssize_t got;
    while ((got = read(report[0], &child_errno, sizeof child_errno)) < 0 && errno == EINTR)
        ;
    if (got == (ssize_t)sizeof child_errno) {
        int st;
        while (waitpid(c->pid, &st, 0) < 0 && errno == EINTR)
            ;
        c->pid = -1;
        errno = child_errno;
        pf_err_sys(err, child_errno == ENOENT ? PF_ENOTFOUND : PF_EGENERIC, "cannot run %s",
                   o->argv[0]);
        goto fail;
    }
    c->in_fd = in_s[0];
    c->out_fd = out_s[0];
    c->err_fd = err_p[0];
    in_s[0] = out_s[0] = err_p[0] = -1;
    set_nonblock(c->in_fd);
    set_nonblock(c->out_fd);
    set_nonblock(c->err_fd);
    goto done;
fail:
    pf_exec_child_end(c, true, NULL);
    c = NULL;
done:
    for (int i = 0; i < 2; i++) {
        close_fd(&in_s[i]);
        close_fd(&out_s[i]);
        close_fd(&err_p[i]);
        close_fd(&report[i]);
    }
    free(envp);
    free(path);
    for (int i = 0; i < 3; i++)
        free(own[i]);
    return c;
}

/* Takes in what the child wrote to stderr; closes it at its end. */
static void drain_stderr(pf_exec_child *c)
{
    char buf[4096];
    while (c->err_fd >= 0) {
        ssize_t r = read(c->err_fd, buf, sizeof buf);
        if (r > 0) {
            tail_add(&c->tail, buf, (size_t)r);
            continue;
        }
        if (r == 0 || (errno != EAGAIN && errno != EINTR))
            close_fd(&c->err_fd);
        break;
    }
}

/* Waits until fd is ready for `events` (or the child's stderr has something). 0, or -1. */
static int wait_fd(pf_exec_child *c, int fd, short events)
{
    for (;;) {
        struct pollfd pf[2] = {{.fd = fd, .events = events}, {.fd = c->err_fd, .events = POLLIN}};
        int r = poll(pf, c->err_fd >= 0 ? 2 : 1, -1);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (c->err_fd >= 0 && pf[1].revents)
            drain_stderr(c);
        if (pf[0].revents)
            return 0;
    }
}

int pf_exec_child_write(pf_exec_child *c, const void *p, size_t n, pf_err *err)
{
    const unsigned char *b = p;
    while (n > 0) {
        if (c->in_fd < 0)
            return pf_err_set(err, PF_ECONN, "%s: its input is closed", c->name);
        ssize_t w = send(c->in_fd, b, n, MSG_NOSIGNAL);
        if (w > 0) {
            b += w;
            n -= (size_t)w;
            continue;
        }
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && errno == EAGAIN) {
            if (wait_fd(c, c->in_fd, POLLOUT) == 0)
                continue;
        }
        return pf_err_sys(err, PF_ECONN, "%s: cannot write to it", c->name);
    }
    return 0;
}

int pf_exec_child_read(pf_exec_child *c, void *p, size_t n, pf_err *err)
{
    unsigned char *b = p;
    size_t got = 0;
    while (got < n) {
        ssize_t r = c->out_fd >= 0 ? read(c->out_fd, b + got, n - got) : 0;
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0) {
            if (got == 0)
                return 1;
            return pf_err_set(err, PF_ECONN, "%s: its output ended in the middle of a message",
                              c->name);
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN && wait_fd(c, c->out_fd, POLLIN) == 0)
            continue;
        return pf_err_sys(err, PF_ECONN, "%s: cannot read from it", c->name);
    }
    return 0;
}

void pf_exec_child_tail(pf_exec_child *c, char *out, size_t cap)
{
    drain_stderr(c);
    tail_lines(&c->tail, out, cap);
}

int pf_exec_child_end(pf_exec_child *c, bool kill_it, pf_exec_result *res)
{
    if (!c)
        return 0;
    int st = 0, rc = 0;
    close_fd(&c->in_fd);
    close_fd(&c->out_fd);
    if (c->pid > 0) {
        if (kill_it) {
            st = stop_child(c->pid);
        } else {
            /* Its input is closed: it ends by itself; give it the grace stop_child gives. */
            pid_t r = 0;
            for (int i = 0; i < 500 && r == 0; i++) {
                r = waitpid(c->pid, &st, WNOHANG);
                if (r == 0) {
                    struct timespec ts = {0, 10 * 1000 * 1000};
                    nanosleep(&ts, NULL);
                } else if (r < 0 && errno == EINTR) {
                    r = 0;
                }
            }
            if (r == 0)
                st = stop_child(c->pid);
        }
        rc = WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
    }
    drain_stderr(c);
    if (res) {
        memset(res, 0, sizeof *res);
        res->exit_code = WIFSIGNALED(st) ? -1 : WEXITSTATUS(st);
        res->signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
        tail_lines(&c->tail, res->tail, sizeof res->tail);
    }
    close_fd(&c->err_fd);
    free(c);
    return rc;
}
