#include "mastodon/s3media.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *get(const pf_mastodon_env *env, const char *key)
{
    const char *v = pf_mastodon_env_get(env, key);
    return v && *v ? v : NULL;
}

int pf_s3media_url(const pf_mastodon_env *env, char *url, size_t n, char *region, size_t rn,
                   pf_err *err)
{
    const char *bucket = get(env, "S3_BUCKET");
    if (!bucket)
        return pf_err_set(err, PF_EUSAGE, "S3_ENABLED=true but S3_BUCKET is not set");
    const char *reg = get(env, "S3_REGION");
    if (!reg)
        reg = "us-east-1";
    snprintf(region, rn, "%s", reg);
    const char *endpoint = get(env, "S3_ENDPOINT");
    int w;
    if (endpoint) {
        if (strncmp(endpoint, "https://", 8) && strncmp(endpoint, "http://", 7))
            return pf_err_set(err, PF_EUSAGE,
                              "S3_ENDPOINT is not an http(s):// URL (Mastodon's form: "
                              "https://s3.example.com)");
        size_t l = strlen(endpoint);
        while (l > 0 && endpoint[l - 1] == '/')
            l--;
        w = snprintf(url, n, "s3:%.*s/%s", (int)l, endpoint, bucket);
    } else {
        const char *proto = get(env, "S3_PROTOCOL");
        if (!proto)
            proto = "https";
        if (strcmp(proto, "https") && strcmp(proto, "http"))
            return pf_err_set(err, PF_EUSAGE, "S3_PROTOCOL is neither https nor http");
        const char *host = get(env, "S3_HOSTNAME");
        if (host)
            w = snprintf(url, n, "s3:%s://%s/%s", proto, host, bucket);
        else
            w = snprintf(url, n, "s3:%s://s3-%s.amazonaws.com/%s", proto, reg, bucket);
    }
    if (w < 0 || (size_t)w >= n)
        return pf_err_set(err, PF_EUSAGE, "S3_ENDPOINT and S3_BUCKET are too long");
    return 0;
}

/* Sets or removes name in the environment. */
static void put_env(const char *name, const char *value)
{
    if (value)
        setenv(name, value, 1);
    else
        unsetenv(name);
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

void pf_s3media_label(const pf_mastodon_env *env, char *out, size_t n)
{
    char url[2048], region[128];
    pf_err e = {0};
    if (pf_s3media_url(env, url, sizeof url, region, sizeof region, &e)) {
        snprintf(out, n, "the media bucket");
        return;
    }
    const char *b = strrchr(url, '/');
    snprintf(out, n, "bucket %s at %.*s", b + 1, (int)(b - (url + 3)), url + 3);
}

pf_store *pf_s3media_open(const pf_mastodon_env *env, pf_err *err)
{
    char url[2048], region[128];
    if (pf_s3media_url(env, url, sizeof url, region, sizeof region, err))
        return NULL;
    const char *ak = get(env, "AWS_ACCESS_KEY_ID"), *sk = get(env, "AWS_SECRET_ACCESS_KEY");
    if (!ak || !sk) {
        pf_err_set(err, PF_EUSAGE,
                   "S3_ENABLED=true but AWS_ACCESS_KEY_ID or AWS_SECRET_ACCESS_KEY is not set "
                   "in .env.production: the media bucket cannot be read");
        return NULL;
    }
    /* The driver reads its credentials from the environment when it opens; ours may be
     * the repository's. Swap them for the time of the call (we are single-threaded here:
     * before any saver or archiver thread starts). */
    static const char *const names[] = {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
                                        "AWS_SESSION_TOKEN"};
    char *saved[3];
    for (int i = 0; i < 3; i++)
        saved[i] = dup_or_null(getenv(names[i]));
    put_env(names[0], ak);
    put_env(names[1], sk);
    put_env(names[2], NULL);
    /* No retry layer: the mirror's client (store/s3.h) needs the driver itself, and retries
     * its reads. */
    pf_store_opts o = {.s3_region = region, .retries = -1};
    /* Mastodon talks to an S3_ENDPOINT in path style unless S3_OVERRIDE_PATH_STYLE=true. */
    const char *override = get(env, "S3_OVERRIDE_PATH_STYLE");
    o.s3_virtual_host = get(env, "S3_ENDPOINT") && override && !strcmp(override, "true");
    pf_store *s = pf_store_open(url, &o, err);
    for (int i = 0; i < 3; i++) {
        put_env(names[i], saved[i]);
        if (saved[i]) {
            memset(saved[i], 0, strlen(saved[i]));
            free(saved[i]);
        }
    }
    if (!s)
        pf_err_prefix(err, "media bucket %s", url);
    return s;
}
