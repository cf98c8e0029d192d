/* Sets of 32-byte ids (blob, tree and pack ids), optionally with a fixed-size value per id:
 * the "seen", "used", "kept" and "listed" sets of prune and check, and copy's map from a
 * source blob id to its destination id. Open addressing; ids are uniformly random (hashes
 * or keyed hashes), so their first bytes are the hash and hostile ids cost nothing worse
 * than an honest collision would (the repository's keys are not the attacker's).
 *
 * Allocation follows common/alloc.h: running out of memory aborts, so adding never fails.
 * Not thread-safe: callers that share a set lock around it. */
#ifndef PF_REPO_IDSET_H
#define PF_REPO_IDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/crypto.h"

typedef struct pf_idset {
    uint8_t (*ids)[PF_ID_LEN];
    uint8_t *vals; /* cap * vlen bytes, NULL when vlen is 0 */
    uint8_t *used; /* one byte per slot */
    size_t n, cap, vlen;
} pf_idset;

/* An empty set without values: `pf_idset s = PF_IDSET_INIT;`. Nothing is allocated
 * until the first add. */
#define PF_IDSET_INIT                                                                              \
    {                                                                                              \
        NULL, NULL, NULL, 0, 0, 0                                                                  \
    }

/* An empty set whose ids each carry vlen bytes (0: a plain set). */
void pf_idset_init(pf_idset *s, size_t vlen);
/* Adds id (its value, if the set has values, zeroed): 1 when it was new, 0 when already
 * there. */
int pf_idset_add(pf_idset *s, const uint8_t id[PF_ID_LEN]);
bool pf_idset_has(const pf_idset *s, const uint8_t id[PF_ID_LEN]);
/* Adds id or finds it, and sets its value to the vlen bytes at val. */
void pf_idset_put(pf_idset *s, const uint8_t id[PF_ID_LEN], const void *val);
/* The value stored with id (vlen bytes, valid until the next add or put), or NULL when id
 * is not in the set. */
const void *pf_idset_get(const pf_idset *s, const uint8_t id[PF_ID_LEN]);
static inline size_t pf_idset_count(const pf_idset *s)
{
    return s->n;
}
/* Frees the set; it is empty (and usable, with the same vlen) afterwards. */
void pf_idset_free(pf_idset *s);

#endif
