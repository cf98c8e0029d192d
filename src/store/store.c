/* Opening a store by URL, and the helpers every driver shares. */
#include "store/store.h"
#include "store/internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

pf_store *pf_store_open(const char *url, const pf_store_opts *opts, pf_err *err)
{
    static const pf_store_opts none;
    pf_store *s = NULL;
    if (!opts)
        opts = &none;
    if (!url || !*url) {
        pf_err_set(err, PF_EUSAGE, "no repository given: pass a directory, sftp:// or s3: URL");
        return NULL;
    }
    if (strncmp(url, "sftp://", 7) == 0)
        s = pf_store_sftp_new(url, opts, err);
    else if (strncmp(url, "ssh://", 6) == 0)
        s = pf_store_remote_new(url, opts, err);
    else if (strncmp(url, "s3:", 3) == 0)
        s = pf_store_s3_new(url, opts, err);
    else if (strstr(url, "://")) {
        pf_err_set(err, PF_EUSAGE,
                   "repository %s: unknown URL scheme (use a directory, sftp://, ssh:// or s3:)", url);
        return NULL;
    } else
        s = pf_store_local_new(url, err);
    if (!s)
        return NULL;
    if (opts->retries >= 0)
        s = pf_store_retry_new(s, opts->retries);
    return s;
}

/* A driver's ops->free releases s->impl; the struct itself and location are freed here. */
void pf_store_free(pf_store *s)
{
    if (!s)
        return;
    if (s->ops && s->ops->free)
        s->ops->free(s);
    free(s->location);
    free(s);
}

pf_store *pf_store_alloc(const struct pf_store_ops *ops, void *impl, const char *location)
{
    pf_store *s = calloc(1, sizeof *s);
    char *loc = strdup(location ? location : "");
    if (!s || !loc) {
        fprintf(stderr, "permafrost: out of memory\n");
        abort();
    }
    s->ops = ops;
    s->impl = impl;
    s->location = loc;
    return s;
}

static int key_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-' || c == '~';
}

/* Validates '/'-separated components; a trailing '/' is allowed only for prefixes. */
static int check_path(const char *what, const char *key, int is_prefix, pf_err *err)
{
    size_t n = strlen(key);
    if (n > PF_STORE_KEY_MAX)
        return pf_err_set(err, PF_EUSAGE, "store %s is longer than %d bytes", what,
                          PF_STORE_KEY_MAX);
    if (n == 0 && !is_prefix)
        return pf_err_set(err, PF_EUSAGE, "store key is empty");
    const char *p = key;
    while (*p) {
        const char *end = strchr(p, '/');
        size_t clen = end ? (size_t)(end - p) : strlen(p);
        if (clen == 0)
            return pf_err_set(err, PF_EUSAGE, "store %s '%.200s' has an empty path component", what,
                              key);
        for (size_t i = 0; i < clen; i++)
            if (!key_char_ok(p[i]))
                return pf_err_set(err, PF_EUSAGE,
                                  "store %s '%.200s' has a character outside [A-Za-z0-9._~-/]",
                                  what, key);
        /* A partial last component of a prefix ("data/a") is fine; "." or ".." never is. */
        if ((clen == 1 && p[0] == '.') || (clen == 2 && p[0] == '.' && p[1] == '.'))
            return pf_err_set(err, PF_EUSAGE, "store %s '%.200s' contains '.' or '..'", what, key);
        if (memmem(p, clen, ".tmp-", 5))
            return pf_err_set(err, PF_EUSAGE,
                              "store %s '%.200s' contains '.tmp-', reserved for temporary files",
                              what, key);
        if (!end)
            break;
        if (!end[1]) {
            if (!is_prefix)
                return pf_err_set(err, PF_EUSAGE, "store key '%.200s' ends in '/'", key);
            break;
        }
        p = end + 1;
    }
    return 0;
}

int pf_store_check_key(const char *key, pf_err *err)
{
    if (!key)
        return pf_err_set(err, PF_EUSAGE, "store key is missing");
    return check_path("key", key, 0, err);
}

int pf_store_check_prefix(const char *prefix, pf_err *err)
{
    if (!prefix)
        return 0;
    return check_path("prefix", prefix, 1, err);
}

int pf_store_is_tmp_name(const char *name)
{
    return strstr(name, ".tmp-") != NULL;
}

int pf_store_check_range(const char *key, uint64_t size, uint64_t off, uint64_t len, uint64_t *n,
                         pf_err *err)
{
    if (off > size)
        return pf_err_set(err, PF_ECORRUPT,
                          "object %s: read at offset %llu is past its end (%llu bytes)", key,
                          (unsigned long long)off, (unsigned long long)size);
    if (len == PF_STORE_ALL) {
        *n = size - off;
        return 0;
    }
    if (len > size - off)
        return pf_err_set(err, PF_ECORRUPT,
                          "object %s: read of %llu bytes at offset %llu is past its end (%llu "
                          "bytes)",
                          key, (unsigned long long)len, (unsigned long long)off,
                          (unsigned long long)size);
    *n = len;
    return 0;
}

void pf_store_rand_hex(char *buf, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char raw[32];
    if (n > sizeof raw)
        n = sizeof raw;
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom(raw + got, n - got, 0);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            /* No entropy source at all: fall back to something unique enough for a name. */
            for (size_t i = got; i < n; i++)
                raw[i] = (unsigned char)(rand() ^ (int)(uintptr_t)buf);
            break;
        }
        got += (size_t)r;
    }
    for (size_t i = 0; i < n; i++) {
        buf[2 * i] = hex[raw[i] >> 4];
        buf[2 * i + 1] = hex[raw[i] & 15];
    }
    buf[2 * n] = 0;
}

long pf_store_env_long(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || x < 0)
        return def;
    return x;
}
