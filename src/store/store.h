/* A store is a flat key -> bytes space. Keys are '/'-separated ASCII paths such as
 * "config", "keys/<hex>", "data/ab/<hex>". Every driver implements the same five
 * operations with the same contract; retry is a wrapper (retry.c), not driver code.
 *
 * Contract, for every driver:
 * - put is atomic: afterwards the object is there whole, or (on failure) not at all, and a
 *   reader never sees a partial object. put over an existing key replaces it.
 * - get reads [off, off+len) (len == PF_STORE_ALL: to the end). Reading past the end is
 *   PF_ECORRUPT for a range (the caller asked for bytes that should be there); a missing
 *   key is PF_ENOTFOUND.
 * - stat fills the size; missing key is PF_ENOTFOUND.
 * - list calls cb once per key under prefix (a prefix ending in '/' names a folder; keys
 *   are full keys), in no particular order, paging as needed. A cb returning non-zero
 *   stops the listing and list returns that value. cb gets list's err: a cb that fails
 *   sets it (pf_err_set) and returns -1, and list returns the error as the cb left it,
 *   adding nothing, so the caller sees the cb's own message.
 * - remove of a missing key is PF_ENOTFOUND.
 * - Keys (and list prefixes) are '/'-separated components of [A-Za-z0-9._~-], at most 1024
 *   bytes, with no empty, "." or ".." component and no ".tmp-" (drivers' temporary files);
 *   every driver refuses other keys with PF_EUSAGE, so all backends accept the same keys.
 * - sweep_tmp is optional (NULL for drivers whose put leaves nothing behind when killed,
 *   as S3 and memory): it removes the driver's own temporary objects last modified before
 *   `before` (Unix seconds), which no key names and no list shows, and counts them.
 * - put_unsynced and sync are optional and go together (NULL for drivers whose put is
 *   durable when it returns, as S3, SFTP and ssh://, where the helpers below fall back to
 *   put and to nothing). put_unsynced is put without waiting for the disk: every reader,
 *   and a process killed at any moment, sees the object whole or not at all, but a crash
 *   of the machine may lose it or leave it damaged until a later sync naming it returned.
 *   sync makes the named objects durable (whichever put wrote them) with the directory
 *   entries that name them. Many puts behind one sync let the disk write them together
 *   instead of one flush per object.
 * - All operations may be called from several threads at once.
 * - Transient failures set err->retryable. */
#ifndef PF_STORE_H
#define PF_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define PF_STORE_ALL UINT64_MAX

typedef struct pf_store pf_store;
typedef int (*pf_store_list_cb)(const char *key, uint64_t size, void *ctx, pf_err *err);

struct pf_store_ops {
    const char *name;
    int (*put)(pf_store *s, const char *key, const void *data, size_t len, pf_err *err);
    /* Appends the bytes to out. */
    int (*get)(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err);
    int (*stat)(pf_store *s, const char *key, uint64_t *size, pf_err *err);
    int (*list)(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err);
    int (*remove)(pf_store *s, const char *key, pf_err *err);
    void (*free)(pf_store *s);
    int (*sweep_tmp)(pf_store *s, int64_t before, uint64_t *removed, uint64_t *bytes, pf_err *err);
    int (*put_unsynced)(pf_store *s, const char *key, const void *data, size_t len, pf_err *err);
    int (*sync)(pf_store *s, const char *const *keys, size_t n, pf_err *err);
};

/* What a store is, for callers that tune themselves to it (a local cache of index files,
 * how many transfers to run at once) without parsing its URL. Every driver sets its own
 * after pf_store_alloc; wrappers (retry) copy their inner store's, so the answer is the
 * driver's however the store is wrapped. Zero is a local store with no preference. */
typedef struct pf_store_props {
    bool remote;     /* reached over a network: worth caching what is read again */
    int connections; /* parallel transfers that suit it; 0 = the caller's default */
    /* The server refuses removals and replacements (ssh:// to `permafrost serve
     * --append-only`): commands that remove refuse to start. */
    bool append_only;
} pf_store_props;

struct pf_store {
    const struct pf_store_ops *ops;
    void *impl;
    char *location; /* for messages: a path or URL without credentials */
    pf_store_props props;
};

/* Options for drivers that need them; every field may be left zero/NULL. */
typedef struct pf_store_opts {
    const char *ssh_key;     /* sftp: private key file */
    int ssh_accept_new;      /* sftp: accept an unknown host key once, recording it */
    const char *known_hosts; /* sftp: default ~/.ssh/known_hosts */
    const char *s3_region;   /* s3: default $AWS_DEFAULT_REGION or us-east-1 */
    int s3_virtual_host;     /* s3: virtual-host addressing instead of path style */
    int connections;         /* parallel connections; 0 = driver default */
    int retries;             /* retry layer: attempts; 0 = default, -1 = no retry layer */
    const char *ssh_command; /* ssh: the ssh client's command line (default "ssh") */
} pf_store_opts;

/* Opens the store a repository URL names: a plain path (local directory),
 * sftp://[user@]host[:port]/path, ssh://[user@]host[:port]/path (`permafrost serve` through
 * the OpenSSH client) or s3:http(s)://endpoint/bucket[/prefix].
 * Wraps the driver in the retry layer unless opts->retries < 0. */
pf_store *pf_store_open(const char *url, const pf_store_opts *opts, pf_err *err);

pf_store *pf_store_local_new(const char *dir, pf_err *err);
pf_store *pf_store_mem_new(void);
pf_store *pf_store_sftp_new(const char *url, const pf_store_opts *opts, pf_err *err);
pf_store *pf_store_remote_new(const char *url, const pf_store_opts *opts, pf_err *err);
pf_store *pf_store_s3_new(const char *url, const pf_store_opts *opts, pf_err *err);
/* Takes ownership of inner. */
pf_store *pf_store_retry_new(pf_store *inner, int attempts);

static inline int pf_store_put(pf_store *s, const char *key, const void *data, size_t len,
                               pf_err *err)
{
    return s->ops->put(s, key, data, len, err);
}
static inline int pf_store_get(pf_store *s, const char *key, uint64_t off, uint64_t len,
                               pf_buf *out, pf_err *err)
{
    return s->ops->get(s, key, off, len, out, err);
}
static inline int pf_store_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return s->ops->stat(s, key, size, err);
}
static inline int pf_store_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx,
                                pf_err *err)
{
    return s->ops->list(s, prefix, cb, ctx, err);
}
static inline int pf_store_remove(pf_store *s, const char *key, pf_err *err)
{
    return s->ops->remove(s, key, err);
}
/* Removes temporary objects older than before; 0 with nothing counted when the driver
 * leaves none. */
static inline int pf_store_sweep_tmp(pf_store *s, int64_t before, uint64_t *removed,
                                     uint64_t *bytes, pf_err *err)
{
    *removed = *bytes = 0;
    return s->ops->sweep_tmp ? s->ops->sweep_tmp(s, before, removed, bytes, err) : 0;
}
/* put, durable only after pf_store_sync names the key (see the contract above). */
static inline int pf_store_put_unsynced(pf_store *s, const char *key, const void *data, size_t len,
                                        pf_err *err)
{
    return s->ops->put_unsynced ? s->ops->put_unsynced(s, key, data, len, err)
                                : s->ops->put(s, key, data, len, err);
}
static inline int pf_store_sync(pf_store *s, const char *const *keys, size_t n, pf_err *err)
{
    return s->ops->sync ? s->ops->sync(s, keys, n, err) : 0;
}
void pf_store_free(pf_store *s);

static inline pf_store_props pf_store_properties(const pf_store *s)
{
    return s->props;
}

#endif
