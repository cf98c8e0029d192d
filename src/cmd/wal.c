#include "cmd/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/log.h"
#include "repo/wal.h"

static const char push_help[] =
    "usage: permafrost wal-push PATH\n\n"
    "Archives one WAL file (archive_command = 'permafrost wal-push %p'). Exits 0 only once\n"
    "the file is durable in the repository, or was archived before with the same bytes;\n"
    "refuses (exit 6) a file archived before with other bytes.\n"
    "\nThe first run opens the repository with the passphrase and keeps the master key in\n"
    "$PERMAFROST_KEY_CACHE/<repository id>.key (default ~/.local/state/permafrost, mode\n"
    "0600), so later runs pay no key derivation; PERMAFROST_KEY_CACHE=off turns that off.\n";

static const char fetch_help[] =
    "usage: permafrost wal-fetch NAME DEST\n\n"
    "Writes archived WAL file NAME to DEST (restore_command = 'permafrost wal-fetch %f %p').\n"
    "Exits 1 when NAME is not in the repository, and 126 when it cannot tell (the\n"
    "repository unreachable, damaged data, a wrong key): PostgreSQL takes any code up to\n"
    "125 for \"not archived\" and would end recovery there, 126 stops it instead. Uses the\n"
    "key cache as wal-push does.\n";

/* The key cache folder, or NULL when turned off. */
static const char *key_cache_dir(char *buf, size_t n)
{
    const char *v = getenv("PERMAFROST_KEY_CACHE");
    if (v && !strcmp(v, "off"))
        return NULL;
    if (v && *v)
        return v;
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, n, "%s/permafrost", xdg);
    else
        snprintf(buf, n, "%s/.local/state/permafrost", home && *home ? home : "/nonexistent");
    return buf;
}

/* Opens the cache folder, creating it (mode 0700) when create is set; -1 unless it is a
 * folder of ours that nobody else can write. The master key it holds opens everything. */
static int open_cache_dir(bool create)
{
    char buf[4096];
    const char *dir = key_cache_dir(buf, sizeof buf);
    if (!dir)
        return -1;
    if (create) {
        char path[4096];
        snprintf(path, sizeof path, "%s", dir);
        for (char *p = path + 1; *p; p++)
            if (*p == '/') {
                *p = 0;
                mkdir(path, 0700);
                *p = '/';
            }
        mkdir(path, 0700);
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) || st.st_uid != geteuid() || (st.st_mode & 022)) {
        pf_warn("not using the key cache %s: it is not a folder that only this user can write",
                dir);
        close(fd);
        return -1;
    }
    return fd;
}

static void key_file_name(const char *repo_id, char out[96])
{
    snprintf(out, 96, "%s.key", repo_id);
}

/* 0 and the master key when the cache has one for repo_id. */
static int cache_read(const char *repo_id, uint8_t master[PF_KEY_LEN])
{
    char name[96], hex[2 * PF_KEY_LEN + 2];
    int dfd = open_cache_dir(false);
    if (dfd < 0)
        return -1;
    key_file_name(repo_id, name);
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        return -1;
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        pf_warn("ignoring the cached key %s: it must be a file of this user with mode 0600", name);
    } else if (read(fd, hex, sizeof hex) >= 2 * PF_KEY_LEN) {
        hex[2 * PF_KEY_LEN] = 0;
        rc = pf_unhex(hex, master, PF_KEY_LEN);
    }
    OPENSSL_cleanse(hex, sizeof hex);
    close(fd);
    return rc;
}

static void cache_drop(const char *repo_id)
{
    char name[96];
    int dfd = open_cache_dir(false);
    if (dfd < 0)
        return;
    key_file_name(repo_id, name);
    unlinkat(dfd, name, 0);
    close(dfd);
}

/* Best effort: without a cache every run derives the key from the passphrase again. */
static void cache_write(const pf_repo *r)
{
    char name[96], tmp[128], hex[2 * PF_KEY_LEN + 2];
    int dfd = open_cache_dir(true);
    if (dfd < 0)
        return;
    key_file_name(r->id, name);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", name, (int)getpid());
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        pf_hex(r->keys.master, PF_KEY_LEN, hex);
        hex[2 * PF_KEY_LEN] = '\n';
        int ok = write(fd, hex, 2 * PF_KEY_LEN + 1) == 2 * PF_KEY_LEN + 1 && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || renameat(dfd, tmp, dfd, name))
            unlinkat(dfd, tmp, 0);
        OPENSSL_cleanse(hex, sizeof hex);
    }
    close(dfd);
}

/* Opens the repository with the cached master key when there is one (a format-2 config's
 * MAC proves it is still the right one), else with the passphrase, caching the key. */
static pf_repo *open_repo(pf_err *err)
{
    pf_store *st = pf_cli_open_store(err);
    if (!st)
        return NULL;
    pf_buf text = PF_BUF_INIT;
    pf_repo_config c;
    uint8_t master[PF_KEY_LEN];
    pf_err e = {0};
    if (pf_store_get(st, "config", 0, PF_STORE_ALL, &text, &e) == 0 &&
        pf_config_parse(text.data, text.len, &c, &e) == 0 && cache_read(c.id, master) == 0) {
        pf_buf_free(&text);
        pf_repo *r = pf_repo_open_master(st, master, &e);
        OPENSSL_cleanse(master, sizeof master);
        if (r)
            return r;
        if (e.code != PF_EAUTH) {
            *err = e;
            return NULL;
        }
        pf_warn("the cached key of repository %.8s does not open it: removing it", c.id);
        cache_drop(c.id);
        st = NULL;
    } else {
        pf_buf_free(&text);
    }
    pf_store_free(st);
    pf_repo *r = pf_cli_open_repo(err);
    if (r)
        cache_write(r);
    return r;
}

static int one_arg_parse(int argc, char **argv, const char *help, int nargs)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(help, stdout);
            return PF_EXIT_OK;
        }
        fputs(help, stderr);
        return PF_EXIT_USAGE;
    }
    if (argc - optind != nargs) {
        fputs(help, stderr);
        return PF_EXIT_USAGE;
    }
    return -1;
}

static int read_file(const char *path, pf_buf *out, pf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > PF_WAL_MAX_FILE) {
        close(fd);
        return pf_err_set(err, PF_EUSAGE,
                          "%s is not a WAL file (not a regular file of at most "
                          "1 GiB)",
                          path);
    }
    pf_buf_reserve(out, (size_t)st.st_size);
    for (;;) {
        char chunk[1 << 16];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            close(fd);
            return pf_err_sys(err, PF_EIO, "reading %s", path);
        }
        if (n == 0)
            break;
        pf_buf_append(out, chunk, (size_t)n);
    }
    close(fd);
    return 0;
}

int cmd_wal_push(int argc, char **argv)
{
    int a = one_arg_parse(argc, argv, push_help, 1);
    if (a >= 0)
        return a;
    const char *path = argv[optind];
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    pf_err err = {0};
    char key[PF_WAL_KEY_MAX];
    pf_buf data = PF_BUF_INIT;
    if (pf_wal_key(name, key, &err) || read_file(path, &data, &err))
        return pf_cli_fail(&err);
    pf_repo *r = open_repo(&err);
    if (!r) {
        pf_buf_free(&data);
        pf_err_prefix(&err, "wal-push %s", name);
        return pf_cli_fail(&err);
    }
    int rc = PF_EXIT_OK;
    pf_wal_push_result res;
    struct pf_lock *l = pf_cli_lock(r, false, "wal-push", &err);
    if (!l || pf_wal_push(r, name, data.data, data.len, pf_cli_workers(r), &res, &err)) {
        pf_err_prefix(&err, "wal-push %s", name);
        rc = pf_cli_fail(&err);
    } else if (res.already) {
        pf_info("%s was already archived with the same content", name);
    } else {
        char h[32];
        pf_human_bytes(res.bytes_new, h, sizeof h);
        pf_debug("%s archived (%s stored)", name, h);
    }
    pf_cli_unlock(l);
    pf_repo_free(r);
    pf_buf_free(&data);
    return rc;
}

/* Writes the file next to dest and renames it: PostgreSQL must never read half a
 * segment. */
static int write_dest(const char *dest, const pf_buf *b, pf_err *err)
{
    char tmp[4096];
    if ((size_t)snprintf(tmp, sizeof tmp, "%s.permafrost-tmp", dest) >= sizeof tmp)
        return pf_err_set(err, PF_EUSAGE, "%s: path too long", dest);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "creating %s", tmp);
    size_t done = 0;
    while (done < b->len) {
        ssize_t w = write(fd, b->data + done, b->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    if (done != b->len || fsync(fd)) {
        pf_err_sys(err, PF_EIO, "writing %s", tmp);
        close(fd);
        unlink(tmp);
        return -1;
    }
    if (close(fd) || rename(tmp, dest)) {
        pf_err_sys(err, PF_EIO, "writing %s", dest);
        unlink(tmp);
        return -1;
    }
    return 0;
}

/* PostgreSQL reads an exit status above 125 as a failure of the command itself and stops
 * recovery; anything lower means "not archived", after which it ends recovery and promotes.
 * A fetch that could not tell must not pass for the end of the archive. */
#define WAL_FETCH_UNKNOWN 126

int cmd_wal_fetch(int argc, char **argv)
{
    int a = one_arg_parse(argc, argv, fetch_help, 2);
    if (a >= 0)
        return a;
    const char *name = argv[optind], *dest = argv[optind + 1];
    pf_err err = {0};
    char key[PF_WAL_KEY_MAX];
    if (pf_wal_key(name, key, &err))
        return pf_cli_fail(&err);
    pf_repo *r = open_repo(&err);
    if (!r) {
        pf_err_prefix(&err, "wal-fetch %s", name);
        pf_cli_fail(&err);
        return WAL_FETCH_UNKNOWN;
    }
    pf_buf b = PF_BUF_INIT;
    int rc = PF_EXIT_OK;
    if (pf_wal_fetch(r, name, &b, &err) || write_dest(dest, &b, &err)) {
        if (err.code == PF_ENOTFOUND) {
            /* Recovery asks for files past the end of the archive as a matter of course:
             * 1 tells it "not there", and the line says so without alarm. */
            if (pf_g.verbosity >= 0)
                fprintf(stderr, "permafrost: wal-fetch: %s is not in the repository\n", name);
            rc = PF_EXIT_ERROR;
        } else {
            pf_err_prefix(&err, "wal-fetch %s", name);
            pf_cli_fail(&err);
            rc = WAL_FETCH_UNKNOWN;
        }
    }
    pf_buf_free(&b);
    pf_repo_free(r);
    return rc;
}

void pf_wal_print_newest(pf_repo *r)
{
    char newest[PF_WAL_NAME_MAX + 1], when[64] = "at an unknown time";
    int64_t ns;
    pf_err err = {0};
    if (pf_wal_newest(r, newest, &ns, &err)) {
        pf_warn("could not list the WAL archive: %s", err.msg);
        return;
    }
    if (!newest[0])
        return;
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    if (ns && localtime_r(&t, &tm))
        strftime(when, sizeof when, "pushed %Y-%m-%d %H:%M:%S %z", &tm);
    printf("WAL archived up to segment %s (%s)\n", newest, when);
}
