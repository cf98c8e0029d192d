/* The cryptography of write-only keys (format 3, docs/FORMAT.md §18, docs/SECURITY.md §6).
 *
 * A repository of format 3 has an X25519 key pair derived from the master key, and a
 * writers' key (for index files, locks and WAL objects, which every writer must read). A
 * write-only key holds what a backup needs and nothing that opens what is stored: the blob
 * id key, the chunker's gear table, the config MAC key, the writers' key and the public
 * half of the pair. What it writes (packs, snapshots) is sealed to the public key: each
 * object gets a fresh ephemeral X25519 key, and its AES key is HKDF of the shared secret,
 * so only the holder of the private half (a full key) opens it, the writer included. */
#ifndef PF_WRITEKEY_H
#define PF_WRITEKEY_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/crypto.h"

#define PF_GEAR_LEN 2048
/* What a write-only key file seals: id key, writers' key, config MAC key, public key,
 * gear table, in that order. */
#define PF_WRITE_MATERIAL_LEN (4 * PF_KEY_LEN + PF_GEAR_LEN)

/* HKDF info strings of the keys sealed to the public key. */
#define PF_WK_PACK_INFO "permafrost sealed pack key"
#define PF_WK_OBJECT_INFO "permafrost sealed object key"

/* Fills keys->writer_key, priv and pub from keys->master, and sets has_pair. */
int pf_wk_derive(pf_keys *keys, pf_err *err);

/* A fresh key sealed to pub: eph_priv is the ephemeral private key (32 random bytes from
 * the caller; given only by the known-answer tests), eph_pub gets its public half (stored
 * in the object), key = HKDF(X25519(eph_priv, pub), eph_pub || pub, info). */
int pf_wk_seal_key(const uint8_t pub[PF_KEY_LEN], const uint8_t eph_priv[PF_KEY_LEN],
                   const char *info, uint8_t eph_pub[PF_KEY_LEN], uint8_t key[PF_KEY_LEN],
                   pf_err *err);
/* The same key from the other side, with keys->priv. PF_EAUTH when keys are write-only
 * (they cannot: that is the point), PF_ECORRUPT when eph_pub is a point of small order. */
int pf_wk_open_key(const pf_keys *keys, const uint8_t eph_pub[PF_KEY_LEN], const char *info,
                   uint8_t key[PF_KEY_LEN], pf_err *err);

/* The material of a write-only key, from a full key's keys (and its config MAC key and
 * gear table); and back, into keys (write_only set, master and priv zero). */
void pf_wk_material_encode(const pf_keys *keys, const uint8_t mac_key[PF_KEY_LEN],
                           const uint8_t gear[PF_GEAR_LEN], uint8_t out[PF_WRITE_MATERIAL_LEN]);
void pf_wk_material_decode(const uint8_t in[PF_WRITE_MATERIAL_LEN], pf_keys *keys,
                           uint8_t mac_key[PF_KEY_LEN], uint8_t gear[PF_GEAR_LEN]);

#endif
