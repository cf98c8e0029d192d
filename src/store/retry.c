/* The retry layer: wraps any driver and tries an operation again while it fails with
 * err->retryable set, sleeping base * 2^n (capped) with jitter in between and logging one
 * warning per retry. Permanent errors return at once. All five operations are safe to
 * repeat: put (and put_unsynced) replaces the object whole; sync syncs the batch again; get drops
 * whatever a failed attempt appended; remove treats "not found" after a failed attempt as done (the
 * failed attempt may have removed it); list remembers the keys it has passed on so a listing
 * restarted after a failure still calls back once per key.
 *
 * PERMAFROST_RETRY_BASE_MS overrides the first delay (default 200 ms) so tests run fast. */
#include "store/store.h"
#include "store/internal.h"
#include "common/log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#define RETRY_DEFAULT_ATTEMPTS 6
#define RETRY_DEFAULT_BASE_MS 200
#define RETRY_CAP_MS 10000

typedef struct retry_store {
    pf_store *inner;
    int attempts;
    long base_ms;
} retry_store;

/* Sleeps before attempt `attempt + 1`: base * 2^(attempt-1), capped, then a random point
 * in [d/2, d] so that many clients failing together do not retry together. */
static long backoff_ms(const retry_store *r, int attempt)
{
    long d = r->base_ms;
    for (int i = 1; i < attempt && d < RETRY_CAP_MS; i++)
        d *= 2;
    if (d > RETRY_CAP_MS)
        d = RETRY_CAP_MS;
    if (d <= 1)
        return d;
    unsigned int rnd = 0;
    if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t)sizeof rnd)
        rnd = (unsigned int)time(NULL);
    return d / 2 + (long)(rnd % (unsigned long)(d / 2 + 1));
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
}

/* Decides after a failed attempt: returns 1 to try again (having slept), 0 to give up. */
static int again(retry_store *r, const char *op, const char *key, int attempt, pf_err *err)
{
    if (!err->retryable)
        return 0;
    if (attempt >= r->attempts) {
        if (r->attempts > 1) {
            size_t n = strlen(err->msg);
            snprintf(err->msg + n, sizeof err->msg - n, " (gave up after %d attempts)",
                     r->attempts);
        }
        return 0;
    }
    long ms = backoff_ms(r, attempt);
    /* Drivers often name the operation and key themselves ("put data/ab/..: ..."): say it
     * once. */
    char what[1100];
    snprintf(what, sizeof what, "%s %s: ", op, key ? key : "");
    pf_warn("%s%s (attempt %d of %d, retrying in %.1f s)",
            strncmp(err->msg, what, strlen(what)) ? what : "", err->msg, attempt, r->attempts,
            (double)ms / 1000.0);
    sleep_ms(ms);
    return 1;
}

static int retry_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    retry_store *r = s->impl;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_put(r->inner, key, data, len, err);
        if (rc == 0 || !again(r, "put", key, attempt, err))
            return rc;
    }
}

static int retry_put_unsynced(pf_store *s, const char *key, const void *data, size_t len,
                              pf_err *err)
{
    retry_store *r = s->impl;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_put_unsynced(r->inner, key, data, len, err);
        if (rc == 0 || !again(r, "put", key, attempt, err))
            return rc;
    }
}

/* Syncing again what is already durable costs little: the whole batch is repeated. */
static int retry_sync(pf_store *s, const char *const *keys, size_t n, pf_err *err)
{
    retry_store *r = s->impl;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_sync(r->inner, keys, n, err);
        if (rc == 0 || !again(r, "sync", NULL, attempt, err))
            return rc;
    }
}

static int retry_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                     pf_err *err)
{
    retry_store *r = s->impl;
    size_t start = out->len;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_get(r->inner, key, off, len, out, err);
        if (rc == 0)
            return 0;
        if (out->len > start) {
            out->len = start;
            out->data[start] = 0;
        }
        if (!again(r, "get", key, attempt, err))
            return rc;
    }
}

static int retry_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    retry_store *r = s->impl;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_stat(r->inner, key, size, err);
        if (rc == 0 || !again(r, "stat", key, attempt, err))
            return rc;
    }
}

static int retry_remove(pf_store *s, const char *key, pf_err *err)
{
    retry_store *r = s->impl;
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_remove(r->inner, key, err);
        if (rc == 0)
            return 0;
        if (attempt > 1 && err->code == PF_ENOTFOUND) {
            pf_err_clear(err);
            return 0;
        }
        if (!again(r, "remove", key, attempt, err))
            return rc;
    }
}

/* The keys a listing has passed on: an open-addressing set of strings. */
typedef struct seen_set {
    char **slot;
    size_t cap; /* a power of two, or 0 */
    size_t n;
} seen_set;

static uint64_t str_hash(const char *k)
{
    uint64_t h = 1469598103934665603ull;
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h;
}

static char **seen_find(seen_set *s, const char *key)
{
    size_t i = str_hash(key) & (s->cap - 1);
    while (s->slot[i] && strcmp(s->slot[i], key) != 0)
        i = (i + 1) & (s->cap - 1);
    return &s->slot[i];
}

/* Adds key; returns 1 when it was new, 0 when seen before. */
static int seen_add(seen_set *s, const char *key)
{
    if ((s->n + 1) * 2 > s->cap) {
        seen_set g = {calloc(s->cap ? s->cap * 2 : 256, sizeof(char *)), s->cap ? s->cap * 2 : 256,
                      0};
        if (!g.slot)
            abort();
        for (size_t i = 0; i < s->cap; i++)
            if (s->slot[i]) {
                *seen_find(&g, s->slot[i]) = s->slot[i];
                g.n++;
            }
        free(s->slot);
        *s = g;
    }
    char **p = seen_find(s, key);
    if (*p)
        return 0;
    *p = strdup(key);
    if (!*p)
        abort();
    s->n++;
    return 1;
}

static void seen_free(seen_set *s)
{
    for (size_t i = 0; i < s->cap; i++)
        free(s->slot[i]);
    free(s->slot);
}

struct list_ctx {
    pf_store_list_cb cb;
    void *ctx;
    seen_set seen;
    int track;   /* only when a retry could happen */
    int stopped; /* the callback returned non-zero: never retry, keep its error */
};

static int list_cb(const char *key, uint64_t size, void *p, pf_err *err)
{
    struct list_ctx *lc = p;
    if (lc->track && !seen_add(&lc->seen, key))
        return 0;
    int rc = lc->cb(key, size, lc->ctx, err);
    if (rc != 0)
        lc->stopped = 1;
    return rc;
}

static int retry_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    retry_store *r = s->impl;
    struct list_ctx lc = {cb, ctx, {NULL, 0, 0}, r->attempts > 1, 0};
    int rc;
    for (int attempt = 1;; attempt++) {
        pf_err_clear(err);
        rc = pf_store_list(r->inner, prefix, list_cb, &lc, err);
        if (rc == 0 || lc.stopped || !again(r, "list", prefix, attempt, err))
            break;
    }
    seen_free(&lc.seen);
    return rc;
}

/* Not retried: a sweep that fails leaves garbage for the next one, nothing worse. */
static int retry_sweep_tmp(pf_store *s, int64_t before, uint64_t *removed, uint64_t *bytes,
                           pf_err *err)
{
    retry_store *r = s->impl;
    return pf_store_sweep_tmp(r->inner, before, removed, bytes, err);
}

static void retry_free(pf_store *s)
{
    retry_store *r = s->impl;
    if (!r)
        return;
    pf_store_free(r->inner);
    free(r);
}

static const struct pf_store_ops retry_ops = {
    .name = "retry",
    .put = retry_put,
    .get = retry_get,
    .stat = retry_stat,
    .list = retry_list,
    .remove = retry_remove,
    .free = retry_free,
    .sweep_tmp = retry_sweep_tmp,
    .put_unsynced = retry_put_unsynced,
    .sync = retry_sync,
};

pf_store *pf_store_retry_new(pf_store *inner, int attempts)
{
    if (!inner)
        return NULL;
    retry_store *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    r->inner = inner;
    r->attempts = attempts > 0 ? attempts : RETRY_DEFAULT_ATTEMPTS;
    r->base_ms = pf_store_env_long("PERMAFROST_RETRY_BASE_MS", RETRY_DEFAULT_BASE_MS);
    pf_store *s = pf_store_alloc(&retry_ops, r, inner->location);
    s->props = inner->props;
    return s;
}
