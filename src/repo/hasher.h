/* Blob ids of many chunks at once. Hashing (HMAC-SHA256) is most of the CPU a backup spends
 * outside the saver's workers, and the chunker cuts several chunks of a window before any
 * is saved: hashing them on helper threads as well as the caller's lets one stream (a
 * base backup's tar, a large file) go faster than one core hashes. The ids are the same
 * as pf_blob_id's, in the caller's order. */
#ifndef PF_HASHER_H
#define PF_HASHER_H

#include <stddef.h>
#include <stdint.h>

#include "repo/crypto.h"

typedef struct pf_hasher pf_hasher;

/* helpers threads besides the caller's; helpers <= 0 picks one per online CPU beyond the
 * first (at most 3). NULL when no thread can be started: the caller hashes alone. */
pf_hasher *pf_hasher_new(const pf_keys *keys, int helpers);
/* ids[i] = pf_blob_id(keys, p[i], n[i]) for i < k, on the helpers and the calling thread;
 * returns once all are done. One caller at a time. h may be NULL (hashes in the caller). */
void pf_hasher_ids(pf_hasher *h, const pf_keys *keys, const uint8_t *const *p, const size_t *n,
                   size_t k, uint8_t (*ids)[PF_ID_LEN]);
/* Stops and joins the helpers. NULL is fine. */
void pf_hasher_free(pf_hasher *h);

#endif
