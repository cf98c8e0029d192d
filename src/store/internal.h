/* Helpers shared by the store drivers; not part of the public interface. */
#ifndef PF_STORE_INTERNAL_H
#define PF_STORE_INTERNAL_H

#include <stdint.h>
#include <stddef.h>

#include "store/store.h"

/* Longest key any driver accepts (S3 allows 1024 bytes). */
#define PF_STORE_KEY_MAX 1024

/* Checks that key is a valid store key: 1..PF_STORE_KEY_MAX bytes of [A-Za-z0-9._~-] in
 * '/'-separated components, none empty, "." or "..", none containing ".tmp-" (the marker of
 * the drivers' temporary files), no leading or trailing '/'. Returns 0, or -1 with
 * PF_EUSAGE in err. Drivers call it first so every backend refuses the same keys. */
int pf_store_check_key(const char *key, pf_err *err);

/* As pf_store_check_key for a list prefix: may be empty, may end in '/'. */
int pf_store_check_prefix(const char *prefix, pf_err *err);

/* True when a file name is one of the drivers' temporary files (skipped by list). */
int pf_store_is_tmp_name(const char *name);

/* Checks a range request against an object of `size` bytes and computes how many bytes
 * to read into *n. PF_ECORRUPT when [off, off+len) is not inside the object. */
int pf_store_check_range(const char *key, uint64_t size, uint64_t off, uint64_t len, uint64_t *n,
                         pf_err *err);

/* Allocates a store with a copy of location. Aborts on out-of-memory like pf_buf. */
pf_store *pf_store_alloc(const struct pf_store_ops *ops, void *impl, const char *location);

/* Fills buf with n random bytes rendered as lowercase hex (2n chars + NUL); for temporary
 * names, not for secrets. */
void pf_store_rand_hex(char *buf, size_t n);

/* Reads a non-negative integer from the environment, or def when unset or invalid. Used for
 * test overrides (PERMAFROST_RETRY_BASE_MS, PERMAFROST_S3_MAX_KEYS, ...). */
long pf_store_env_long(const char *name, long def);

/* The local driver's put that never replaces: PF_EEXIST when key exists (decided atomically,
 * by the rename). s must come from pf_store_local_new. For the append-only server. */
int pf_store_local_put_new(pf_store *s, const char *key, const void *data, size_t len, pf_err *err);

#endif
