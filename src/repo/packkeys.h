/* A bounded cache of pack keys for one open repository. Every pack has its own key
 * (HKDF of the master key and the pack's salt, or X25519 + HKDF for a sealed pack), and
 * deriving it costs far more than opening a small blob: an unchanged re-run loads one
 * parent tree per directory, a few hundred bytes each, from a handful of packs. The cache
 * derives each pack's key once.
 *
 * Safe for several threads at once. Only keys that were derived successfully are kept
 * (a write-only key's refusal is asked again each time, and says the same). The slots are
 * wiped when replaced and by pf_pack_keys_free; the keys are no more exposed than the
 * master key they come from, which the repository holds for as long. */
#ifndef PF_PACKKEYS_H
#define PF_PACKKEYS_H

#include <pthread.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/crypto.h"

/* Enough for the tree packs of a large snapshot (an unchanged re-run of 25,000 directories
 * reads its trees from a few dozen packs); a miss only costs one derivation. */
#define PF_PACK_KEYS_SLOTS 64

typedef struct pf_pack_keys {
    pthread_mutex_t mu;
    struct pf_pack_key_slot {
        uint8_t kind; /* 0: empty; else PF_PACK_MASTER or PF_PACK_SEALED */
        uint8_t salt[PF_SALT_LEN];
        uint8_t key[PF_KEY_LEN];
    } slot[PF_PACK_KEYS_SLOTS];
    unsigned last; /* the slot hit or filled last: the next lookup tries it first */
    unsigned next; /* the slot a new key replaces (round robin) */
} pf_pack_keys;

void pf_pack_keys_init(pf_pack_keys *c);
/* As pf_pack_key_kind (repo/pack.h), from the cache when it holds the key. keys must be
 * the same for every call on one cache (those of the repository that owns it). */
int pf_pack_keys_get(pf_pack_keys *c, const pf_keys *keys, uint8_t kind,
                     const uint8_t salt[PF_SALT_LEN], uint8_t key[PF_KEY_LEN], pf_err *err);
/* Wipes every slot. The cache can be used again after pf_pack_keys_init. */
void pf_pack_keys_free(pf_pack_keys *c);

#endif
