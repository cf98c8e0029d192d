/* Packs: many encrypted blobs in one store object, followed by an encrypted header that
 * lists them, and a fixed-size trailer. See docs/FORMAT.md for the bytes.
 *
 *   blob_0 ... blob_n-1 | header ciphertext | salt[32] | header_len u32le | "PFP1"
 *
 * Each pack has its own key HKDF-SHA256(master, salt, "permafrost pack key"). A blob at
 * offset o is sealed with nonce = 96-bit big-endian (o + 1) and AAD id||type||compression;
 * the header with nonce 0. Offsets are distinct, so no nonce repeats under a key. */
#ifndef PF_PACK_H
#define PF_PACK_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/crypto.h"

enum { PF_BLOB_DATA = 1, PF_BLOB_TREE = 2 };
enum { PF_COMP_NONE = 0, PF_COMP_ZSTD = 1 };

#define PF_PACK_TRAILER_LEN (PF_SALT_LEN + 4 + 4)
#define PF_PACK_ENTRY_LEN 46
#define PF_PACK_MAGIC "PFP1"
/* A pack sealed to the repository's public key (format 3, written with a write-only key):
 * the trailer's 32 bytes are the ephemeral public key instead of a salt. */
#define PF_PACK_SEALED_MAGIC "PFP2"
/* A pack's kind; 0 (zeroed memory) reads as PF_PACK_MASTER. */
enum { PF_PACK_MASTER = 1, PF_PACK_SEALED = 2 };
#define PF_PACK_HEADER_MAGIC "PFH1"
/* A header larger than this is refused before anything is allocated from it. */
#define PF_PACK_MAX_HEADER (64u << 20)
/* No blob is larger than this, so a damaged size never drives a huge allocation. */
#define PF_MAX_BLOB (256u << 20)

typedef struct pf_blob_entry {
    uint8_t id[PF_ID_LEN];
    uint8_t type;
    uint8_t comp;
    uint32_t offset;     /* of the sealed blob inside the pack */
    uint32_t length;     /* sealed length, tag included */
    uint32_t raw_length; /* plaintext length after decompression */
} pf_blob_entry;

/* Serialises / parses one 46-byte entry (shared by pack headers and index files). */
void pf_blob_entry_encode(const pf_blob_entry *e, pf_buf *out);
int pf_blob_entry_decode(pf_reader *r, pf_blob_entry *e);

typedef struct pf_packer {
    pf_buf data;
    uint8_t salt[PF_SALT_LEN];
    uint8_t key[PF_KEY_LEN];
    uint8_t kind; /* PF_PACK_MASTER, or PF_PACK_SEALED (salt holds the ephemeral key) */
    pf_blob_entry *entries;
    size_t count, cap;
    int zstd_level;
    /* Kept from blob to blob and pack to pack: a fresh zstd context per blob cost more
     * (zeroed tables, page faults) than a compression trial on a medium's bytes. Blobs are
     * compressed straight into data and sealed there in place. */
    void *zctx; /* ZSTD_CCtx, made on first use */
} pf_packer;

/* A pack under the master key, or, when keys are write-only, one sealed to the repository's
 * public key. */
int pf_packer_init(pf_packer *pk, const pf_keys *keys, int zstd_level, pf_err *err);
/* A sealed pack with a given ephemeral private key: for the known-answer tests only. */
int pf_packer_init_sealed(pf_packer *pk, const pf_keys *keys, int zstd_level,
                          const uint8_t eph_priv[PF_KEY_LEN], pf_err *err);
/* As pf_packer_init with a given salt instead of a random one. Exists only so that the
 * known-answer test vectors of docs/FORMAT.md can be reproduced; a real pack must always
 * get a fresh random salt (its key, and so its nonces, depend on it). */
int pf_packer_init_salt(pf_packer *pk, const pf_keys *keys, int zstd_level,
                        const uint8_t salt[PF_SALT_LEN], pf_err *err);
/* Compresses (unless it does not pay), seals and appends one blob. */
int pf_packer_add(pf_packer *pk, const uint8_t id[PF_ID_LEN], uint8_t type, const void *p, size_t n,
                  pf_err *err);
/* Appends header and trailer and computes the pack id (SHA-256 of all its bytes). The
 * packer's data and entries are then the finished pack. */
int pf_packer_finish(pf_packer *pk, uint8_t pack_id[PF_ID_LEN], pf_err *err);
/* Starts the next pack in the same packer after the finished one was stored: a new salt
 * and key, no blobs, the buffers kept for reuse. entries must have been taken (set to
 * NULL) or are reused. */
int pf_packer_next(pf_packer *pk, const pf_keys *keys, pf_err *err);
void pf_packer_free(pf_packer *pk);

int pf_pack_key(const pf_keys *keys, const uint8_t salt[PF_SALT_LEN], uint8_t key[PF_KEY_LEN],
                pf_err *err);
/* The key of a pack of either kind: for PF_PACK_SEALED, salt is the ephemeral public key
 * and only a full key opens it (PF_EAUTH with write-only keys); a PF_PACK_MASTER pack
 * needs the master key as well. */
int pf_pack_key_kind(const pf_keys *keys, uint8_t kind, const uint8_t salt[PF_SALT_LEN],
                     uint8_t key[PF_KEY_LEN], pf_err *err);
/* PF_PACK_MASTER or PF_PACK_SEALED from a trailer's magic (one that
 * pf_pack_parse_trailer accepted). */
uint8_t pf_pack_trailer_kind(const uint8_t *trailer);

/* Parses the trailer (the last PF_PACK_TRAILER_LEN bytes of a pack of pack_size bytes):
 * gives the salt and the header's sealed length, checked against the pack size. */
int pf_pack_parse_trailer(const uint8_t *trailer, uint64_t pack_size, uint8_t salt[PF_SALT_LEN],
                          uint32_t *header_len, pf_err *err);
/* Opens a sealed header and decodes its entries (malloc'd array, caller frees), checking
 * every entry lies inside the pack's blob area [0, blob_area). */
int pf_pack_decode_header(const uint8_t key[PF_KEY_LEN], const uint8_t *sealed, size_t n,
                          uint64_t blob_area, pf_blob_entry **entries, size_t *count, pf_err *err);
/* The parser inside pf_pack_decode_header, on the header's plaintext ("PFH1", count,
 * entries). Exposed for tests and fuzzing: this is where untrusted bytes are parsed. */
int pf_pack_header_parse(const uint8_t *plain, size_t n, uint64_t blob_area,
                         pf_blob_entry **entries, size_t *count, pf_err *err);

/* Opens one sealed blob, decompresses it and checks its id; appends plaintext to out.
 * Refuses (PF_ECORRUPT) anything that does not authenticate or match. */
int pf_blob_open(const pf_keys *keys, const uint8_t pack_key[PF_KEY_LEN], const pf_blob_entry *e,
                 const uint8_t *sealed, pf_buf *out, pf_err *err);

#endif
