#include "repo/packkeys.h"

#include <openssl/crypto.h>
#include <string.h>

#include "repo/pack.h"

void pf_pack_keys_init(pf_pack_keys *c)
{
    memset(c, 0, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
}

static int slot_is(const struct pf_pack_key_slot *s, uint8_t kind, const uint8_t *salt)
{
    return s->kind == kind && memcmp(s->salt, salt, PF_SALT_LEN) == 0;
}

/* The slot holding (kind, salt), or -1. Called with mu held. */
static int find(const pf_pack_keys *c, uint8_t kind, const uint8_t *salt)
{
    if (slot_is(&c->slot[c->last], kind, salt))
        return (int)c->last;
    for (unsigned i = 0; i < PF_PACK_KEYS_SLOTS; i++)
        if (slot_is(&c->slot[i], kind, salt))
            return (int)i;
    return -1;
}

int pf_pack_keys_get(pf_pack_keys *c, const pf_keys *keys, uint8_t kind,
                     const uint8_t salt[PF_SALT_LEN], uint8_t key[PF_KEY_LEN], pf_err *err)
{
    /* 0 (zeroed memory) reads as a master pack, as in pf_pack_key_kind. */
    kind = kind == PF_PACK_SEALED ? PF_PACK_SEALED : PF_PACK_MASTER;
    pthread_mutex_lock(&c->mu);
    int i = find(c, kind, salt);
    if (i >= 0) {
        memcpy(key, c->slot[i].key, PF_KEY_LEN);
        c->last = (unsigned)i;
    }
    pthread_mutex_unlock(&c->mu);
    if (i >= 0)
        return 0;
    /* Derived outside the lock so that walking threads do not queue behind one
     * derivation; two threads missing the same pack both derive it, and one slot wins. */
    if (pf_pack_key_kind(keys, kind, salt, key, err))
        return -1;
    pthread_mutex_lock(&c->mu);
    if (find(c, kind, salt) < 0) {
        struct pf_pack_key_slot *s = &c->slot[c->next];
        OPENSSL_cleanse(s, sizeof *s);
        s->kind = kind;
        memcpy(s->salt, salt, PF_SALT_LEN);
        memcpy(s->key, key, PF_KEY_LEN);
        c->last = c->next;
        c->next = (c->next + 1) % PF_PACK_KEYS_SLOTS;
    }
    pthread_mutex_unlock(&c->mu);
    return 0;
}

void pf_pack_keys_free(pf_pack_keys *c)
{
    pthread_mutex_destroy(&c->mu);
    OPENSSL_cleanse(c->slot, sizeof c->slot);
    c->last = c->next = 0;
}
