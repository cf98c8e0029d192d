/* Cryptographic primitives over OpenSSL libcrypto, with the repository's conventions.
 * All functions returning int give 0 on success and -1 on failure (err filled).
 *
 * Safe to call from several threads at once. The algorithms are fetched once per process
 * and each thread reuses its own AES-GCM, HMAC and SHA-256 contexts (a tree blob of a few
 * hundred bytes cost less to open than a fresh context and an implicit fetch); they are
 * wiped and freed when the thread exits, or at exit for the thread that calls exit. */
#ifndef PF_CRYPTO_H
#define PF_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define PF_KEY_LEN 32
#define PF_ID_LEN 32
#define PF_SALT_LEN 32
#define PF_NONCE_LEN 12
#define PF_TAG_LEN 16

/* Keys derived from the 32-byte master key. Wiped by pf_keys_wipe. */
typedef struct pf_keys {
    uint8_t master[PF_KEY_LEN];
    uint8_t id_key[PF_KEY_LEN]; /* HMAC key for blob ids */
    /* Format 3 (repo/writekey.h): the writers' key, and the repository's X25519 pair. */
    uint8_t writer_key[PF_KEY_LEN];
    uint8_t priv[PF_KEY_LEN];
    uint8_t pub[PF_KEY_LEN];
    bool has_pair;
    /* Opened with a write-only key: master and priv are unknown (zero). */
    bool write_only;
} pf_keys;

int pf_random(void *p, size_t n, pf_err *err);
void pf_sha256(const void *p, size_t n, uint8_t out[PF_ID_LEN]);
/* Blob id: HMAC-SHA256(keys->id_key, data). */
void pf_blob_id(const pf_keys *keys, const void *p, size_t n, uint8_t out[PF_ID_LEN]);
/* HKDF-SHA256(ikm, salt, info) -> out (outlen bytes). */
int pf_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
            const char *info, uint8_t *out, size_t outlen, pf_err *err);
/* Fills keys->id_key from keys->master. */
int pf_keys_derive(pf_keys *keys, pf_err *err);
void pf_keys_wipe(pf_keys *keys);
/* scrypt(pass, salt, N, r, p) -> 32 bytes. */
int pf_scrypt(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint64_t n,
              uint32_t r, uint32_t p, uint8_t out[PF_KEY_LEN], pf_err *err);

/* AES-256-GCM. The nonce is a 96-bit big-endian counter value. seal appends
 * ciphertext||tag (n + 16 bytes) to out; open appends the plaintext, and fails with
 * PF_ECORRUPT when authentication fails. */
void pf_nonce_from_counter(uint64_t counter, uint8_t nonce[PF_NONCE_LEN]);
int pf_aead_seal(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *p, size_t n, pf_buf *out, pf_err *err);
int pf_aead_open(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *c, size_t n, pf_buf *out, pf_err *err);

void pf_hex(const uint8_t *p, size_t n, char *out); /* out has 2n+1 bytes */
/* Parses exactly 2n hex digits; returns -1 on anything else. */
int pf_unhex(const char *s, uint8_t *out, size_t n);

#endif
