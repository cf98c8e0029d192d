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
#include "common/alloc.h"
#include "common/log.h"
#include "repo/writekey.h"

const char *pf_cli_key_cache_dir(char *buf, size_t n)
{
    const char *v = getenv("PERMAFROST_KEY_CACHE");
    if (v && !strcmp(v, "off"))
        return NULL;
    if (v && *v)
        return v;
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    if (xdg && *xdg)
        snprintf(buf, n, "%s/permafrost", xdg);
    else if (home && *home)
        snprintf(buf, n, "%s/.local/state/permafrost", home);
    else
        return NULL;
    return buf;
}

/* Opens the cache folder, creating it (mode 0700) when create is set; -1 unless it is a
 * folder of ours that nobody else can write. The master key it holds opens everything. */
static int open_cache_dir(bool create)
{
    char buf[4096];
    const char *dir = pf_cli_key_cache_dir(buf, sizeof buf);
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

/* What a cache file holds: a full key's master key (<id>.key), or a write-only key's id
 * and material (<id>.wkey: the id, as text, then the material). Both as hex. */
typedef struct cached_kind {
    const char *suffix;
    size_t len;
} cached_kind;

static const cached_kind full_key = {"key", PF_KEY_LEN};
static const cached_kind write_key = {"wkey", PF_HEX_ID_LEN + PF_WRITE_MATERIAL_LEN};

static void key_file_name(const char *repo_id, const cached_kind *k, char out[96])
{
    snprintf(out, 96, "%s.%s", repo_id, k->suffix);
}

/* 0 and the cached bytes (k->len) when the cache has them for repo_id. */
static int cache_read(const char *repo_id, const cached_kind *k, uint8_t *out)
{
    char name[96];
    int dfd = open_cache_dir(false);
    if (dfd < 0)
        return -1;
    key_file_name(repo_id, k, name);
    int fd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    close(dfd);
    if (fd < 0)
        return -1;
    size_t cap = 2 * k->len + 2;
    char *hex = pf_xcalloc(1, cap);
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_uid != geteuid() || (st.st_mode & 077)) {
        pf_warn("ignoring the cached key %s: it must be a file of this user with mode 0600", name);
    } else if (read(fd, hex, cap) >= (ssize_t)(2 * k->len)) {
        hex[2 * k->len] = 0;
        rc = pf_unhex(hex, out, k->len);
    }
    OPENSSL_cleanse(hex, cap);
    free(hex);
    close(fd);
    return rc;
}

static void cache_drop(const char *repo_id, const cached_kind *k)
{
    char name[96];
    int dfd = open_cache_dir(false);
    if (dfd < 0)
        return;
    key_file_name(repo_id, k, name);
    unlinkat(dfd, name, 0);
    close(dfd);
}

/* Best effort: without a cache every run derives the key from the passphrase again. */
static void cache_write(const char *repo_id, const cached_kind *k, const uint8_t *bytes)
{
    char name[96], tmp[128];
    int dfd = open_cache_dir(true);
    if (dfd < 0)
        return;
    key_file_name(repo_id, k, name);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", name, (int)getpid());
    int fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd >= 0) {
        size_t n = 2 * k->len + 1;
        char *hex = pf_xcalloc(1, n + 1);
        pf_hex(bytes, k->len, hex);
        hex[2 * k->len] = '\n';
        int ok = write(fd, hex, n) == (ssize_t)n && fsync(fd) == 0;
        ok = close(fd) == 0 && ok;
        if (!ok || renameat(dfd, tmp, dfd, name))
            unlinkat(dfd, tmp, 0);
        OPENSSL_cleanse(hex, n + 1);
        free(hex);
    }
    close(dfd);
}

/* The repository opened from what the cache holds for it (a full key first; a write-only
 * key only when write_only_ok), else NULL;
 * st is consumed either way. A cached key that no longer opens it is dropped. */
static pf_repo *open_from_cache(pf_store *st, const char *repo_id, bool write_only_ok, pf_err *err,
                                bool *failed)
{
    uint8_t master[PF_KEY_LEN];
    uint8_t *wkey = pf_xcalloc(1, write_key.len);
    pf_repo *r = NULL;
    pf_err e = {0};
    const cached_kind *used = NULL;
    if (cache_read(repo_id, &full_key, master) == 0) {
        used = &full_key;
        r = pf_repo_open_master(st, master, &e);
    } else if (write_only_ok && cache_read(repo_id, &write_key, wkey) == 0) {
        char key_id[PF_HEX_ID_LEN + 1];
        memcpy(key_id, wkey, PF_HEX_ID_LEN);
        key_id[PF_HEX_ID_LEN] = 0;
        used = &write_key;
        r = pf_repo_open_write_material(st, wkey + PF_HEX_ID_LEN, key_id, &e);
    } else {
        pf_store_free(st);
    }
    OPENSSL_cleanse(master, sizeof master);
    OPENSSL_cleanse(wkey, write_key.len);
    free(wkey);
    if (!r && used) {
        if (e.code != PF_EAUTH) {
            *err = e;
            *failed = true;
        } else {
            pf_warn("the cached key of repository %.8s does not open it: removing it", repo_id);
            cache_drop(repo_id, used);
        }
    }
    return r;
}

/* Caches the key r was opened with: its master key, or a write-only key's material. */
static void cache_key_of(const pf_repo *r)
{
    if (!r->keys.write_only) {
        cache_write(r->id, &full_key, r->keys.master);
        return;
    }
    uint8_t *wkey = pf_xcalloc(1, write_key.len);
    memcpy(wkey, r->key_id, PF_HEX_ID_LEN);
    if (pf_repo_write_material(r, wkey + PF_HEX_ID_LEN) == 0)
        cache_write(r->id, &write_key, wkey);
    OPENSSL_cleanse(wkey, write_key.len);
    free(wkey);
}

/* Opens the repository with the cached master key when there is one (a format-2 config's
 * MAC proves it is still the right one), else with the passphrase, caching the key. */
pf_repo *pf_cli_open_repo_cached(bool write_only_ok, pf_err *err)
{
    pf_store *st = pf_cli_open_store(err);
    if (!st)
        return NULL;
    pf_buf text = PF_BUF_INIT;
    pf_repo_config c;
    pf_err e = {0};
    if (pf_store_get(st, "config", 0, PF_STORE_ALL, &text, &e) == 0 &&
        pf_config_parse(text.data, text.len, &c, &e) == 0) {
        pf_buf_free(&text);
        bool failed = false;
        pf_repo *r = open_from_cache(st, c.id, write_only_ok, err, &failed);
        if (r || failed)
            return r;
    } else {
        pf_buf_free(&text);
        pf_store_free(st);
    }
    pf_repo *r = pf_cli_open_repo(err);
    if (r)
        cache_key_of(r);
    return r;
}
