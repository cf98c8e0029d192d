#include "repo/pack.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "repo/compressible.h"
#include "repo/writekey.h"

void pf_blob_entry_encode(const pf_blob_entry *e, pf_buf *out)
{
    pf_buf_u8(out, e->type);
    pf_buf_u8(out, e->comp);
    pf_buf_append(out, e->id, PF_ID_LEN);
    pf_buf_u32le(out, e->offset);
    pf_buf_u32le(out, e->length);
    pf_buf_u32le(out, e->raw_length);
}

int pf_blob_entry_decode(pf_reader *r, pf_blob_entry *e)
{
    const uint8_t *id;
    if (pf_reader_u8(r, &e->type) || pf_reader_u8(r, &e->comp) ||
        pf_reader_bytes(r, PF_ID_LEN, &id) || pf_reader_u32le(r, &e->offset) ||
        pf_reader_u32le(r, &e->length) || pf_reader_u32le(r, &e->raw_length))
        return -1;
    memcpy(e->id, id, PF_ID_LEN);
    if ((e->type != PF_BLOB_DATA && e->type != PF_BLOB_TREE) ||
        (e->comp != PF_COMP_NONE && e->comp != PF_COMP_ZSTD) || e->length < PF_TAG_LEN ||
        e->raw_length > PF_MAX_BLOB || e->length > PF_MAX_BLOB + 1024)
        return -1;
    return 0;
}

int pf_pack_key(const pf_keys *keys, const uint8_t salt[PF_SALT_LEN], uint8_t key[PF_KEY_LEN],
                pf_err *err)
{
    return pf_hkdf(keys->master, PF_KEY_LEN, salt, PF_SALT_LEN, "permafrost pack key", key,
                   PF_KEY_LEN, err);
}

int pf_pack_key_kind(const pf_keys *keys, uint8_t kind, const uint8_t salt[PF_SALT_LEN],
                     uint8_t key[PF_KEY_LEN], pf_err *err)
{
    if (kind == PF_PACK_SEALED)
        return pf_wk_open_key(keys, salt, PF_WK_PACK_INFO, key, err);
    if (keys->write_only)
        return pf_err_set(err, PF_EAUTH, "written under the master key: only a full key opens it");
    return pf_pack_key(keys, salt, key, err);
}

uint8_t pf_pack_trailer_kind(const uint8_t *trailer)
{
    return memcmp(trailer + PF_SALT_LEN + 4, PF_PACK_SEALED_MAGIC, 4) ? PF_PACK_MASTER
                                                                      : PF_PACK_SEALED;
}

int pf_packer_init(pf_packer *pk, const pf_keys *keys, int zstd_level, pf_err *err)
{
    uint8_t salt[PF_SALT_LEN];
    if (pf_random(salt, PF_SALT_LEN, err))
        return -1;
    int rc = keys->write_only ? pf_packer_init_sealed(pk, keys, zstd_level, salt, err)
                              : pf_packer_init_salt(pk, keys, zstd_level, salt, err);
    OPENSSL_cleanse(salt, sizeof salt);
    return rc;
}

/* For test vectors, and by pf_packer_init with a random key. */
int pf_packer_init_sealed(pf_packer *pk, const pf_keys *keys, int zstd_level,
                          const uint8_t eph_priv[PF_KEY_LEN], pf_err *err)
{
    memset(pk, 0, sizeof *pk);
    pk->zstd_level = zstd_level;
    pk->kind = PF_PACK_SEALED;
    return pf_wk_seal_key(keys->pub, eph_priv, PF_WK_PACK_INFO, pk->salt, pk->key, err);
}

/* For test vectors only (see pack.h): production code uses pf_packer_init. */
int pf_packer_init_salt(pf_packer *pk, const pf_keys *keys, int zstd_level,
                        const uint8_t salt[PF_SALT_LEN], pf_err *err)
{
    memset(pk, 0, sizeof *pk);
    pk->zstd_level = zstd_level;
    memcpy(pk->salt, salt, PF_SALT_LEN);
    return pf_pack_key(keys, pk->salt, pk->key, err);
}

static void blob_aad(const pf_blob_entry *e, uint8_t aad[PF_ID_LEN + 2])
{
    memcpy(aad, e->id, PF_ID_LEN);
    aad[PF_ID_LEN] = e->type;
    aad[PF_ID_LEN + 1] = e->comp;
}

int pf_packer_next(pf_packer *pk, const pf_keys *keys, pf_err *err)
{
    /* A new pack as pf_packer_init makes it (a fresh salt or ephemeral key, of the kind
     * the keys write), with this packer's buffers carried over. */
    pf_buf data = pk->data;
    void *zctx = pk->zctx;
    pf_blob_entry *entries = pk->entries;
    size_t cap = entries ? pk->cap : 0;
    OPENSSL_cleanse(pk->key, sizeof pk->key);
    int rc = pf_packer_init(pk, keys, pk->zstd_level, err);
    pk->data = data;
    pf_buf_reset(&pk->data);
    pk->zctx = zctx;
    pk->entries = entries;
    pk->cap = cap;
    return rc;
}

int pf_packer_add(pf_packer *pk, const uint8_t id[PF_ID_LEN], uint8_t type, const void *p, size_t n,
                  pf_err *err)
{
    if (n > UINT32_MAX - 1024 || pk->data.len + n + 1024 > UINT32_MAX)
        return pf_err_set(err, PF_EGENERIC, "blob too large for a pack");
    pf_blob_entry e = {.type = type, .comp = PF_COMP_NONE, .raw_length = (uint32_t)n};
    memcpy(e.id, id, PF_ID_LEN);
    const void *plain = p;
    size_t plain_len = n;
    if (pk->zstd_level > 0 && !pk->zctx && !(pk->zctx = ZSTD_createCCtx()))
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    /* Compressed into the pack's own buffer, where the blob's ciphertext goes, and sealed
     * there in place: no scratch buffer as large as the largest blob per packer. */
    size_t bound = ZSTD_compressBound(n);
    if (pk->zstd_level > 0)
        pf_buf_reserve(&pk->data, bound + PF_TAG_LEN);
    uint8_t *at = pk->data.data + pk->data.len;
    size_t frame = 0;
    if (pk->zstd_level > 0 && pf_compressible(pk->zctx, at, bound, p, n, &frame)) {
        size_t c = frame ? frame : ZSTD_compressCCtx(pk->zctx, at, bound, p, n, pk->zstd_level);
        if (!ZSTD_isError(c) && c < n) {
            plain = at;
            plain_len = c;
            e.comp = PF_COMP_ZSTD;
        }
    }
    e.offset = (uint32_t)pk->data.len;
    uint8_t nonce[PF_NONCE_LEN], aad[PF_ID_LEN + 2];
    pf_nonce_from_counter((uint64_t)e.offset + 1, nonce);
    blob_aad(&e, aad);
    int rc = pf_aead_seal(pk->key, nonce, aad, sizeof aad, plain, plain_len, &pk->data, err);
    if (rc)
        return -1;
    e.length = (uint32_t)(pk->data.len - e.offset);
    if (pk->count == pk->cap) {
        size_t cap = pk->cap ? pk->cap * 2 : 64;
        pf_blob_entry *ne = realloc(pk->entries, cap * sizeof *ne);
        if (!ne)
            return pf_err_set(err, PF_EGENERIC, "out of memory");
        pk->entries = ne;
        pk->cap = cap;
    }
    pk->entries[pk->count++] = e;
    return 0;
}

int pf_packer_finish(pf_packer *pk, uint8_t pack_id[PF_ID_LEN], pf_err *err)
{
    pf_buf hdr = PF_BUF_INIT;
    pf_buf_append(&hdr, PF_PACK_HEADER_MAGIC, 4);
    pf_buf_u32le(&hdr, (uint32_t)pk->count);
    for (size_t i = 0; i < pk->count; i++)
        pf_blob_entry_encode(&pk->entries[i], &hdr);
    uint8_t nonce[PF_NONCE_LEN];
    pf_nonce_from_counter(0, nonce);
    size_t before = pk->data.len;
    static const char aad[] = "permafrost pack header";
    int rc = pf_aead_seal(pk->key, nonce, aad, sizeof aad - 1, hdr.data, hdr.len, &pk->data, err);
    pf_buf_release(&hdr);
    if (rc)
        return -1;
    pf_buf_append(&pk->data, pk->salt, PF_SALT_LEN);
    pf_buf_u32le(&pk->data, (uint32_t)(pk->data.len - PF_SALT_LEN - before));
    pf_buf_append(&pk->data, pk->kind == PF_PACK_SEALED ? PF_PACK_SEALED_MAGIC : PF_PACK_MAGIC, 4);
    pf_sha256(pk->data.data, pk->data.len, pack_id);
    return 0;
}

void pf_packer_free(pf_packer *pk)
{
    /* The pack holds only ciphertext (what the store receives): no need to wipe it, and
     * pf_buf_free's wipe of the whole capacity would fault in the untouched half of a
     * buffer that doubled past the pack size (+16 MiB resident per worker). */
    free(pk->data.data);
    free(pk->entries);
    ZSTD_freeCCtx(pk->zctx);
    OPENSSL_cleanse(pk->key, sizeof pk->key);
    memset(pk, 0, sizeof *pk);
}

int pf_pack_parse_trailer(const uint8_t *trailer, uint64_t pack_size, uint8_t salt[PF_SALT_LEN],
                          uint32_t *header_len, pf_err *err)
{
    if (pack_size < PF_PACK_TRAILER_LEN ||
        (memcmp(trailer + PF_SALT_LEN + 4, PF_PACK_MAGIC, 4) &&
         memcmp(trailer + PF_SALT_LEN + 4, PF_PACK_SEALED_MAGIC, 4)))
        return pf_err_set(err, PF_ECORRUPT, "not a pack (bad trailer)");
    memcpy(salt, trailer, PF_SALT_LEN);
    uint32_t hl = pf_le32(trailer + PF_SALT_LEN);
    if (hl < PF_TAG_LEN + 8 || hl > PF_PACK_MAX_HEADER || hl > pack_size - PF_PACK_TRAILER_LEN)
        return pf_err_set(err, PF_ECORRUPT, "pack header length %u out of range", hl);
    *header_len = hl;
    return 0;
}

int pf_pack_header_parse(const uint8_t *plain, size_t n, uint64_t blob_area,
                         pf_blob_entry **entries, size_t *count, pf_err *err)
{
    pf_reader r;
    pf_reader_init(&r, plain, n);
    const uint8_t *magic;
    uint32_t cnt;
    if (pf_reader_bytes(&r, 4, &magic) || memcmp(magic, PF_PACK_HEADER_MAGIC, 4) ||
        pf_reader_u32le(&r, &cnt) || (uint64_t)cnt * PF_PACK_ENTRY_LEN != pf_reader_left(&r))
        return pf_err_set(err, PF_ECORRUPT, "pack header malformed");
    pf_blob_entry *es = calloc(cnt ? cnt : 1, sizeof *es);
    if (!es)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    uint64_t expect = 0;
    for (uint32_t i = 0; i < cnt; i++) {
        if (pf_blob_entry_decode(&r, &es[i]) || es[i].offset != expect ||
            (uint64_t)es[i].offset + es[i].length > blob_area) {
            free(es);
            return pf_err_set(err, PF_ECORRUPT, "pack header entry %u malformed", i);
        }
        expect = (uint64_t)es[i].offset + es[i].length;
    }
    *entries = es;
    *count = cnt;
    return 0;
}

int pf_pack_decode_header(const uint8_t key[PF_KEY_LEN], const uint8_t *sealed, size_t n,
                          uint64_t blob_area, pf_blob_entry **entries, size_t *count, pf_err *err)
{
    pf_buf plain = PF_BUF_INIT;
    uint8_t nonce[PF_NONCE_LEN];
    pf_nonce_from_counter(0, nonce);
    static const char aad[] = "permafrost pack header";
    int rc = pf_aead_open(key, nonce, aad, sizeof aad - 1, sealed, n, &plain, err);
    if (!rc)
        rc = pf_pack_header_parse(plain.data, plain.len, blob_area, entries, count, err);
    pf_buf_release(&plain);
    return rc;
}

int pf_blob_open(const pf_keys *keys, const uint8_t pack_key[PF_KEY_LEN], const pf_blob_entry *e,
                 const uint8_t *sealed, pf_buf *out, pf_err *err)
{
    int rc = -1;
    uint8_t nonce[PF_NONCE_LEN], aad[PF_ID_LEN + 2], id[PF_ID_LEN];
    pf_nonce_from_counter((uint64_t)e->offset + 1, nonce);
    blob_aad(e, aad);
    pf_buf plain = PF_BUF_INIT;
    size_t start = out->len;
    if (pf_aead_open(pack_key, nonce, aad, sizeof aad, sealed, e->length, &plain, err))
        goto out;
    if (e->comp == PF_COMP_ZSTD) {
        unsigned long long sz = ZSTD_getFrameContentSize(plain.data, plain.len);
        if (sz != e->raw_length) {
            pf_err_set(err, PF_ECORRUPT, "blob size does not match its entry");
            goto out;
        }
        pf_buf_reserve(out, e->raw_length);
        size_t d = ZSTD_decompress(out->data + start, e->raw_length, plain.data, plain.len);
        if (ZSTD_isError(d) || d != e->raw_length) {
            pf_err_set(err, PF_ECORRUPT, "blob does not decompress");
            goto out;
        }
        out->len += d;
        out->data[out->len] = 0;
    } else {
        if (plain.len != e->raw_length) {
            pf_err_set(err, PF_ECORRUPT, "blob size does not match its entry");
            goto out;
        }
        pf_buf_append(out, plain.data, plain.len);
    }
    pf_blob_id(keys, out->data + start, out->len - start, id);
    if (memcmp(id, e->id, PF_ID_LEN)) {
        pf_err_set(err, PF_ECORRUPT, "blob content does not match its id");
        goto out;
    }
    rc = 0;
out:
    if (rc)
        out->len = start;
    pf_buf_release(&plain); /* the blob's bytes, as restored */
    return rc;
}
