#include "cli/cli.h"

#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "cli/conf.h"
#include "cli/monitor.h"
#include "common/buf.h"
#include "common/log.h"
#include "repo/lock.h"
#include "repo/snapshot.h"
#include "repo/status.h"

pf_cli pf_g;

/* The file's checked entries; later loads (none today) would replace them. */
static pf_conf_file config;

int pf_config_load(const char *path, bool must_exist, pf_err *err)
{
    pf_conf_file f;
    if (pf_conf_read(path, &f, err)) {
        if (!must_exist && err->sys_errno == ENOENT) {
            pf_err_clear(err);
            return 0;
        }
        return -1;
    }
    if (f.nproblems) {
        /* One line: the first problem, and where to see them all. */
        if (f.nproblems == 1)
            pf_err_set(err, PF_EUSAGE, "%s", f.problems[0].text);
        else
            pf_err_set(err, PF_EUSAGE, "%s (and %zu more: 'permafrost config check %s')",
                       f.problems[0].text, f.nproblems - 1, path);
        pf_conf_file_free(&f);
        return -1;
    }
    pf_conf_file_free(&config);
    config = f;
    return 0;
}

const char *pf_config_get(const char *key)
{
    /* A key missing from the table could never be set: a file setting it is refused. */
    if (!pf_conf_find(key))
        pf_warn("bug: config key \"%s\" is read but not in the table of src/cli/conf.c", key);
    for (size_t i = 0; i < config.nentries; i++)
        if (!strcmp(config.entries[i].key, key))
            return config.entries[i].value;
    return NULL;
}

bool pf_config_true(const char *key)
{
    return pf_conf_true(pf_config_get(key));
}

int pf_exit_code(const pf_err *err)
{
    switch (err->code) {
    case PF_OK:
        return PF_EXIT_OK;
    case PF_EUSAGE:
        return PF_EXIT_USAGE;
    case PF_ENOTFOUND:
        return PF_EXIT_NOTFOUND;
    case PF_EEXIST:
        return PF_EXIT_EXISTS;
    case PF_ECORRUPT:
        return PF_EXIT_DAMAGED;
    case PF_EAUTH:
        return PF_EXIT_AUTH;
    case PF_EREFUSED:
        return PF_EXIT_AUTH;
    case PF_ENOREPO:
        return PF_EXIT_NOREPO;
    case PF_ELOCKED:
        return PF_EXIT_LOCKED;
    case PF_ECOMPONENT:
        return PF_EXIT_COMPONENT;
    case PF_EINCOMPLETE:
        return PF_EXIT_INCOMPLETE;
    case PF_ECONN:
        return PF_EXIT_CONNECT;
    default:
        return PF_EXIT_ERROR;
    }
}

const char *pf_exit_kind(int exit_code)
{
    /* Stable names: a reader switches on these (docs/JSON.md, "Errors"), never on messages. */
    switch (exit_code) {
    case PF_EXIT_USAGE:
        return "usage";
    case PF_EXIT_INCOMPLETE:
        return "incomplete";
    case PF_EXIT_DAMAGED:
        return "damaged";
    case PF_EXIT_COMPONENT:
        return "component";
    case PF_EXIT_EXISTS:
        return "exists";
    case PF_EXIT_CONNECT:
        return "connect";
    case PF_EXIT_NOREPO:
        return "no_repository";
    case PF_EXIT_LOCKED:
        return "locked";
    case PF_EXIT_AUTH:
        return "auth";
    case PF_EXIT_NOTFOUND:
        return "not_found";
    default:
        return "error";
    }
}

/* The one printer of errors. Under --json, stderr gets the error object alone (a reader
 * parses the line); the log tail still gets the human line, for the failure ping. */
static int fail_with(int code, const char *msg)
{
    if (!pf_g.json) {
        /* Through the log handler: the journal's priority prefix, and the failure ping's tail. */
        pf_log(PF_LOG_ERROR, "%s", msg);
        return code;
    }
    char line[1200];
    snprintf(line, sizeof line, "permafrost: %s", msg);
    pf_monitor_log_line(line);
    pf_progress_done();
    cJSON *o = cJSON_CreateObject(), *e = cJSON_AddObjectToObject(o, "error");
    cJSON_AddStringToObject(e, "kind", pf_exit_kind(code));
    cJSON_AddStringToObject(e, "message", msg);
    cJSON_AddNumberToObject(e, "exit_code", code);
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fprintf(stderr, "%s\n", s);
        cJSON_free(s);
    }
    cJSON_Delete(o);
    return code;
}

int pf_cli_fail(const pf_err *err)
{
    return fail_with(pf_exit_code(err), err->msg[0] ? err->msg : "failed");
}

int pf_cli_usage(const char *usage, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fail_with(PF_EXIT_USAGE, msg);
    if (usage && !pf_g.json)
        fputs(usage, stderr);
    return PF_EXIT_USAGE;
}

char *pf_cli_passphrase_file(const char *path, const char *what, pf_err *err)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        pf_err_sys(err, PF_EUSAGE, "cannot read %s %s", what, path);
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    buf[strcspn(buf, "\r\n")] = 0;
    char *p = strdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    if (p && !*p) {
        free(p);
        pf_err_set(err, PF_EUSAGE, "%s %s is empty", what, path);
        return NULL;
    }
    return p;
}

static char *prompt_tty(const char *prompt, pf_err *err)
{
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        pf_err_set(err, PF_EUSAGE,
                   "no passphrase: set PERMAFROST_PASSWORD_FILE (or PERMAFROST_PASSWORD), or run "
                   "on a terminal");
        return NULL;
    }
    struct termios old, quiet;
    int have = tcgetattr(fd, &old) == 0;
    if (have) {
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(fd, TCSAFLUSH, &quiet);
    }
    if (write(fd, prompt, strlen(prompt)) < 0) {
        /* the prompt is a courtesy */
    }
    char buf[4096];
    size_t n = 0;
    char c;
    while (n < sizeof buf - 1 && read(fd, &c, 1) == 1 && c != '\n')
        buf[n++] = c;
    buf[n] = 0;
    if (have)
        tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0) {
    }
    close(fd);
    char *p = strdup(buf);
    OPENSSL_cleanse(buf, sizeof buf);
    return p;
}

char *pf_cli_passphrase(bool confirm, const char *prompt, pf_err *err)
{
    const char *file = getenv("PERMAFROST_PASSWORD_FILE");
    if (!file || !*file)
        file = pf_g.password_file ? pf_g.password_file : pf_config_get("password_file");
    if (file && *file)
        return pf_cli_passphrase_file(file, "passphrase file", err);
    const char *env = getenv("PERMAFROST_PASSWORD");
    if (env && *env)
        return strdup(env);
    char *p = prompt_tty(prompt ? prompt : "Repository passphrase: ", err);
    if (!p)
        return NULL;
    if (!*p) {
        pf_cli_passphrase_free(p);
        pf_err_set(err, PF_EUSAGE, "empty passphrase refused");
        return NULL;
    }
    if (confirm) {
        char *again = prompt_tty("Repeat passphrase: ", err);
        if (!again || strcmp(again, p)) {
            pf_cli_passphrase_free(p);
            pf_cli_passphrase_free(again);
            pf_err_set(err, PF_EUSAGE, "the passphrases do not match");
            return NULL;
        }
        pf_cli_passphrase_free(again);
    }
    return p;
}

void pf_cli_passphrase_free(char *p)
{
    if (p) {
        OPENSSL_cleanse(p, strlen(p));
        free(p);
    }
}

int pf_cli_check_repo_url(const char *url, pf_err *err)
{
    if (!strncmp(url, "sftp:", 5) && strncmp(url, "sftp://", 7))
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s: an SFTP URL is sftp://USER@HOST[:PORT]/PATH (two "
                          "slashes after sftp:)",
                          url);
    if (!strncmp(url, "s3:", 3) && strncmp(url, "s3:https://", 11) &&
        strncmp(url, "s3:http://", 10))
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s: an S3 URL is s3:https://ENDPOINT/BUCKET[/PREFIX] (or "
                          "s3:http:// for a local test server)",
                          url);
    /* "word:" before any '/' and not followed by "//": a URL with a typo, which would
     * otherwise become a local directory named "word:". */
    size_t n = 0;
    while (url[n] &&
           (isalnum((unsigned char)url[n]) || url[n] == '+' || url[n] == '-' || url[n] == '.'))
        n++;
    if (n > 0 && isalpha((unsigned char)url[0]) && url[n] == ':' && strncmp(url + n + 1, "//", 2) &&
        strncmp(url, "s3:", 3))
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s looks like a mistyped URL (use sftp://USER@HOST/PATH or "
                          "s3:https://ENDPOINT/BUCKET); for a local directory of that name write "
                          "./%s",
                          url, url);
    return 0;
}

pf_store *pf_cli_open_store(pf_err *err)
{
    const char *url = pf_g.repo_url;
    if (!url || !*url)
        url = getenv("PERMAFROST_REPO");
    if (!url || !*url)
        url = pf_config_get("repository");
    if (!url || !*url) {
        pf_err_set(err, PF_EUSAGE,
                   "no repository given: use --repo, PERMAFROST_REPO or 'repository =' in the "
                   "config file");
        return NULL;
    }
    if (pf_cli_check_repo_url(url, err) < 0)
        return NULL;
    return pf_store_open(url, &pf_g.store_opts, err);
}

pf_repo *pf_cli_open_repo(pf_err *err)
{
    pf_store *st = pf_cli_open_store(err);
    if (!st)
        return NULL;
    char *pass = pf_cli_passphrase(false, NULL, err);
    if (!pass) {
        pf_store_free(st);
        return NULL;
    }
    pf_repo *r = pf_repo_open(st, pass, err);
    pf_cli_passphrase_free(pass);
    /* Remote repositories keep index files and snapshots in a local cache; a write-only
     * key keeps its own trees and snapshots there, whatever the store. */
    if (r && (pf_store_properties(r->store).remote || r->keys.write_only)) {
        const char *base = getenv("PERMAFROST_CACHE_DIR");
        char path[4096];
        if (!base || !*base) {
            const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
            if (xdg && *xdg)
                snprintf(path, sizeof path, "%s/permafrost", xdg);
            else
                snprintf(path, sizeof path, "%s/.cache/permafrost", home ? home : "/tmp");
            base = path;
        }
        if (strcmp(base, "off"))
            pf_repo_set_cache(r, base);
    }
    return r;
}

/* Durations are the only non-integers: three decimals are a millisecond, and more are
 * the noise of binary fractions (0.0040787170000839978). Integers are left alone. */
static void tidy_numbers(cJSON *o)
{
    for (cJSON *c = o; c; c = c->next) {
        if (cJSON_IsNumber(c)) {
            double v = c->valuedouble;
            if (v == v && v > -1e15 && v < 1e15 && v != (double)(int64_t)v)
                cJSON_SetNumberValue(c, (double)(int64_t)(v * 1000 + (v < 0 ? -0.5 : 0.5)) / 1000);
        } else if (c->child) {
            tidy_numbers(c->child);
        }
    }
}

static void print_json(cJSON *o, const char *before, const char *after)
{
    tidy_numbers(o);
    char *s = cJSON_PrintUnformatted(o);
    if (s) {
        fputs(before, stdout);
        fputs(s, stdout);
        fputs(after, stdout);
        cJSON_free(s);
    }
    cJSON_Delete(o);
}

void pf_out_json(cJSON *o)
{
    print_json(o, "", "\n");
}

void pf_json_add_time(cJSON *o, const char *key, int64_t time_ns)
{
    char t[40];
    pf_time_rfc3339(time_ns, t, sizeof t);
    cJSON_AddStringToObject(o, key, t);
}

void pf_json_add_file_time(cJSON *o, const char *key, int64_t time_ns)
{
    char t[48];
    pf_time_rfc3339(time_ns, t, sizeof t);
    int64_t frac = time_ns % 1000000000;
    if (frac < 0)
        frac += 1000000000; /* before 1970: the second was rounded down */
    if (frac) {
        char f[16];
        snprintf(f, sizeof f, "%09lld", (long long)frac);
        size_t n = strlen(f);
        while (n && f[n - 1] == '0')
            f[--n] = 0;
        size_t z = strlen(t) - 1; /* the 'Z' */
        snprintf(t + z, sizeof t - z, ".%sZ", f);
    }
    cJSON_AddStringToObject(o, key, t);
}

int pf_utf8_len(const unsigned char *p)
{
    int n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
    if (p[0] > 0xf4)
        return 0;
    for (int i = 1; i < n; i++)
        if ((p[i] & 0xc0) != 0x80)
            return 0;
    return n;
}

/* Valid UTF-8 is kept, and each invalid byte b becomes the escape \udcXX (the
 * "surrogateescape" convention, which Python's os.fsencode turns back into the same byte),
 * so names round-trip exactly; cJSON would copy the byte raw, which is not JSON. */
void pf_json_add_path(cJSON *o, const char *key, const char *s)
{
    pf_buf b = PF_BUF_INIT;
    pf_buf_u8(&b, '"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int u = *p >= 0x80 ? pf_utf8_len(p) : 0;
        if (u) {
            pf_buf_append(&b, p, (size_t)u);
            p += u - 1;
        } else if (*p == '"' || *p == '\\') {
            pf_buf_u8(&b, '\\');
            pf_buf_u8(&b, *p);
        } else if (*p < 0x20 || *p == 0x7f) {
            pf_buf_printf(&b, "\\u%04x", *p);
        } else if (*p >= 0x80) {
            pf_buf_printf(&b, "\\udc%02x", *p);
        } else {
            pf_buf_u8(&b, *p);
        }
    }
    pf_buf_u8(&b, '"');
    char *lit = (char *)pf_buf_detach(&b, NULL);
    cJSON_AddRawToObject(o, key, lit);
    free(lit);
}

void pf_json_stream_item(pf_json_stream *st, cJSON *o)
{
    print_json(o, st->n++ ? ",\n" : "[\n", "");
}

void pf_json_stream_end(pf_json_stream *st)
{
    fputs(st->n ? "\n]\n" : "[]\n", stdout);
    st->n = 0;
}

cJSON *pf_cli_snapshot_json(const pf_snapshot *s)
{
    cJSON *o = pf_snapshot_to_json(s);
    char t[40];
    pf_time_rfc3339(s->time_ns, t, sizeof t);
    cJSON_ReplaceItemInObjectCaseSensitive(o, "time", cJSON_CreateString(t));
    return o;
}

void pf_human_bytes(uint64_t n, char *out, size_t len)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(out, len, "%llu B", (unsigned long long)n);
    else
        snprintf(out, len, "%.1f %s", v, units[u]);
}

static int progress_shown;

void pf_progress_line(const char *fmt, ...)
{
    if (!pf_g.tty || pf_g.verbosity < 0)
        return;
    char line[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\r\033[K%s", line);
    fflush(stderr);
    progress_shown = 1;
}

void pf_progress_done(void)
{
    if (progress_shown) {
        fprintf(stderr, "\r\033[K");
        fflush(stderr);
        progress_shown = 0;
    }
}

double pf_wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

double pf_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Locks this process holds, so that an interrupted run (Ctrl-C, systemctl stop) removes
 * them instead of leaving them to go stale. Released locks stay listed: abandoning a
 * released lock removes an object that is already gone, which is harmless... except that
 * the pointer is freed, so release goes through pf_cli_unlock. */
#define MAX_HELD 4
static struct pf_lock *held[MAX_HELD];
static pthread_mutex_t held_mu = PTHREAD_MUTEX_INITIALIZER;

struct pf_lock *pf_cli_lock(pf_repo *r, bool exclusive, const char *command, pf_err *err)
{
    const char *v = getenv("PERMAFROST_LOCK_WAIT");
    if (!v || !*v)
        v = pf_config_get("lock_wait");
    double wait = v && *v ? atof(v) : 30;
    struct pf_lock *l = pf_lock_acquire(r, exclusive, command, wait, err);
    pthread_mutex_lock(&held_mu);
    for (int i = 0; l && i < MAX_HELD; i++)
        if (!held[i]) {
            held[i] = l;
            break;
        }
    pthread_mutex_unlock(&held_mu);
    return l;
}

void pf_cli_unlock(struct pf_lock *l)
{
    if (!l)
        return;
    pthread_mutex_lock(&held_mu);
    for (int i = 0; i < MAX_HELD; i++)
        if (held[i] == l)
            held[i] = NULL;
    pthread_mutex_unlock(&held_mu);
    pf_lock_release(l);
}

static void *signal_waiter(void *arg)
{
    sigset_t *set = arg;
    int sig = 0;
    if (sigwait(set, &sig))
        return NULL;
    pthread_mutex_lock(&held_mu);
    for (int i = 0; i < MAX_HELD; i++)
        pf_lock_abandon(held[i]);
    pf_progress_done();
    fprintf(stderr,
            "permafrost: interrupted by %s: no snapshot was written by this run; "
            "what was uploaded is reused next time\n",
            strsignal(sig));
    _exit(128 + sig);
}

void pf_cli_handle_signals(void)
{
    static sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGHUP);
    /* Every thread started later inherits the mask; children get a clean one (exec.c). */
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    pthread_t t;
    if (pthread_create(&t, NULL, signal_waiter, &set) == 0)
        pthread_detach(t);
}

int pf_cli_workers(const pf_repo *r)
{
    if (pf_g.store_opts.connections > 0)
        return pf_g.store_opts.connections;
    return pf_store_properties(r->store).connections;
}
