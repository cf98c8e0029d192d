#include "cli/keycache.h"

#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli/cli.h"
#include "common/log.h"

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
pf_repo *pf_cli_open_repo_cached(pf_err *err)
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
    /* A write-only key has no master key to cache: it opens with its passphrase each run. */
    if (r && !r->keys.write_only)
        cache_write(r);
    return r;
}
