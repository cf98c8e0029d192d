/* libFuzzer: pack trailers and headers, whatever the bytes. The input is read three ways:
 *  - as a whole pack: its last 40 bytes are the trailer, then the sealed header under a
 *    fixed key (authentication fails, but every length check before it runs);
 *  - as [blob_area u64le][header plaintext]: the parser that runs after decryption;
 *  - the same plaintext sealed under the fixed key (salt of zeros), through
 *    pf_pack_decode_header, and the first entries it accepts opened against the input.
 * Accepted headers must satisfy the invariants the rest of the code relies on. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/pack.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

static void check_entries(const pf_blob_entry *es, size_t count, uint64_t area, size_t plain_len)
{
    if ((uint64_t)count * PF_PACK_ENTRY_LEN + 8 != plain_len)
        abort();
    uint64_t expect = 0;
    for (size_t i = 0; i < count; i++) {
        const pf_blob_entry *e = &es[i];
        if (e->offset != expect || (uint64_t)e->offset + e->length > area ||
            e->length < PF_TAG_LEN || e->raw_length > PF_MAX_BLOB ||
            (e->type != PF_BLOB_DATA && e->type != PF_BLOB_TREE) ||
            (e->comp != PF_COMP_NONE && e->comp != PF_COMP_ZSTD))
            abort();
        expect = (uint64_t)e->offset + e->length;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pf_keys keys;
    static uint8_t key[PF_KEY_LEN];
    static int ready;
    pf_err err = {0};
    if (!ready) {
        pf_log_set_handler(quiet);
        for (int i = 0; i < PF_KEY_LEN; i++)
            keys.master[i] = (uint8_t)i;
        uint8_t salt[PF_SALT_LEN] = {0};
        if (pf_keys_derive(&keys, &err) || pf_pack_key(&keys, salt, key, &err))
            abort();
        ready = 1;
    }

    /* 1. The whole input as a pack. */
    uint8_t salt[PF_SALT_LEN];
    uint32_t hl;
    pf_blob_entry *es = NULL;
    size_t count = 0;
    if (size >= PF_PACK_TRAILER_LEN &&
        pf_pack_parse_trailer(data + size - PF_PACK_TRAILER_LEN, size, salt, &hl, &err) == 0) {
        if (hl < PF_TAG_LEN + 8 || hl > size - PF_PACK_TRAILER_LEN)
            abort();
        uint64_t area = size - PF_PACK_TRAILER_LEN - hl;
        if (pf_pack_decode_header(key, data + area, hl, area, &es, &count, &err) == 0) {
            check_entries(es, count, area, hl - PF_TAG_LEN);
            free(es);
        }
    }
    if (size < 8)
        return 0;

    /* 2. The parser on plaintext. */
    uint64_t area = pf_le64(data);
    const uint8_t *plain = data + 8;
    size_t n = size - 8;
    if (pf_pack_header_parse(plain, n, area, &es, &count, &err) == 0) {
        check_entries(es, count, area, n);
        free(es);
    }

    /* 3. Sealed, then decoded; accepted entries opened against the input's bytes. */
    pf_buf sealed = PF_BUF_INIT;
    uint8_t nonce[PF_NONCE_LEN];
    static const char aad[] = "permafrost pack header";
    pf_nonce_from_counter(0, nonce);
    if (pf_aead_seal(key, nonce, aad, sizeof aad - 1, plain, n, &sealed, &err))
        abort();
    if (area > size)
        area = size; /* the blob area is the input itself */
    if (pf_pack_decode_header(key, sealed.data, sealed.len, area, &es, &count, &err) == 0) {
        check_entries(es, count, area, n);
        pf_buf out = PF_BUF_INIT;
        for (size_t i = 0; i < count && i < 16; i++) {
            pf_buf_reset(&out);
            (void)pf_blob_open(&keys, key, &es[i], data + es[i].offset, &out, &err);
        }
        pf_buf_free(&out);
        free(es);
    }
    pf_buf_free(&sealed);
    return 0;
}
