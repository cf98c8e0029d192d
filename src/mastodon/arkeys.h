/* Rails' ActiveRecord encryption, as Mastodon (4.3+) uses it for users.otp_secret and
 * (4.6+) keypairs.private_key: enough of it to prove that a set of keys decrypts the
 * database, never to hand a decrypted value to anyone.
 *
 * A stored value is a JSON envelope
 *   {"p":"<base64 ciphertext>","h":{"iv":"<base64 12 bytes>","at":"<base64 16-byte tag>"}}
 * whose headers may also carry "e" (base64 of the plaintext's encoding name) and "c"
 * (the plaintext was deflated first). The cipher is AES-256-GCM without associated data.
 * The key is derived from ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY (or, for deterministic
 * attributes, ..._DETERMINISTIC_KEY) as ActiveSupport::KeyGenerator does:
 * PBKDF2-HMAC(secret, ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT, 65536 iterations, 32
 * bytes), with SHA-256 since Rails 7.1, and with SHA-1 for values written by the 7.0 bug
 * that Mastodon keeps readable (support_sha1_for_non_deterministic_encryption).
 *
 * Keys and plaintexts are secrets: no message ever contains one, nor any part of a value
 * that came from the database. Buffers that held them are wiped. */
#ifndef PF_MASTODON_ARKEYS_H
#define PF_MASTODON_ARKEYS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define PF_AR_KEY_LEN 32
#define PF_AR_IV_LEN 12
#define PF_AR_TAG_LEN 16
#define PF_AR_ITERATIONS 65536
/* The longest envelope considered: Mastodon's values are a few hundred bytes; a column
 * sampled by the scan may hold anything. */
#define PF_AR_MAX_VALUE (64 * 1024)

/* The names of the three variables, in the order Mastodon's initializer checks them. */
#define PF_AR_PRIMARY "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY"
#define PF_AR_DETERMINISTIC "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY"
#define PF_AR_SALT "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT"
extern const char *const pf_ar_key_names[3];

typedef struct pf_ar_envelope {
    uint8_t *ct; /* ciphertext, ct_len bytes (may be 0: an encrypted empty string) */
    size_t ct_len;
    uint8_t iv[PF_AR_IV_LEN];
    uint8_t tag[PF_AR_TAG_LEN];
    bool compressed; /* "c": the plaintext is deflated (we never inflate it) */
} pf_ar_envelope;

/* A cheap test of shape, for scanning columns: the text is a JSON object whose first
 * member is "p" (how Rails writes it), optionally after whitespace. No parsing. */
bool pf_ar_looks_encrypted(const char *text, size_t len);

/* Parses an envelope (len bytes, need not be NUL-terminated). Returns 0, or -1 with err
 * PF_ECORRUPT saying what is wrong ("not JSON", "\"h\".\"iv\" is not 12 bytes of base64",
 * ...) without quoting the value; envelopes that need a key we do not implement (an
 * encrypted data key "k") are PF_EUSAGE. Free *out with pf_ar_envelope_free() in every
 * case. */
int pf_ar_envelope_parse(const char *text, size_t len, pf_ar_envelope *out, pf_err *err);
void pf_ar_envelope_free(pf_ar_envelope *e);

typedef enum pf_ar_digest { PF_AR_SHA256, PF_AR_SHA1 } pf_ar_digest;

/* PBKDF2-HMAC-<digest>(secret, salt, 65536, 32) into key. Returns 0, or -1 (PF_EGENERIC)
 * when OpenSSL fails or an input is empty (Mastodon refuses to boot then). */
int pf_ar_derive_key(const char *secret, const char *salt, pf_ar_digest digest,
                     uint8_t key[PF_AR_KEY_LEN], pf_err *err);

/* AES-256-GCM-decrypts e with key into plain (appended; the caller wipes it with
 * pf_buf_free). Returns 0 when the tag verifies, else -1 with PF_EAUTH "the key does not
 * decrypt this value". */
int pf_ar_decrypt(const pf_ar_envelope *e, const uint8_t key[PF_AR_KEY_LEN], pf_buf *plain,
                  pf_err *err);

/* The three variables as a server has them (borrowed; NULL when unset). */
typedef struct pf_ar_keys {
    const char *primary;
    const char *deterministic;
    const char *salt;
} pf_ar_keys;

/* What pf_ar_keys_fit found: which secret and digest decrypt the value. */
typedef struct pf_ar_fit {
    bool deterministic; /* it was the deterministic key, not the primary one */
    pf_ar_digest digest;
} pf_ar_fit;

/* Proves that k decrypts `value` (an envelope read from the database): tries the primary
 * key with SHA-256, then SHA-1, then the deterministic key likewise. Returns 0 and fills
 * *fit (may be NULL) when one decrypts it. Otherwise -1 with err:
 *   PF_EUSAGE   a variable is unset or empty: "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY is
 *               not set";
 *   PF_ECORRUPT the value is not an envelope (as pf_ar_envelope_parse);
 *   PF_EAUTH    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY and ..._KEY_DERIVATION_SALT do not
 *               decrypt it (neither with SHA-256 nor SHA-1 key derivation)".
 * Nothing decrypted leaves this function. */
int pf_ar_keys_fit(const pf_ar_keys *k, const char *value, size_t len, pf_ar_fit *fit, pf_err *err);

#endif
