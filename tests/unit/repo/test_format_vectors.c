/* Known-answer vectors of docs/FORMAT.md: every hex string of its "Test vectors" section
 * is a literal here, checked against the code, and the document is checked to still
 * contain each of them. If a vector changes, the format changed: bump the version. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/chunker.h"
#include "repo/config.h"
#include "repo/crypto.h"
#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "repo/writekey.h"
#include "store/store.h"

#define V_MASTER "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"
#define V_SALT "a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebf"
#define V_PLAIN_HEX "68656c6c6f2c207065726d6166726f73740a"
#define V_ID_KEY "559f2d79fdf172e0b492970a4c31ac85725c8c511c8b79a3ec6decdcfb97b139"
#define V_PACK_KEY "d095f93e65e03dcaaa2fba2c20767ed3f9abba6b871c7650e0a6e0ff80d5344a"
#define V_OBJECT_KEY "20cefd6d0fc7ca1c9ac772727bb9fa7e535aa5b47380e6a5b1de6e16425dd98a"
#define V_BLOB_ID "30498e05206d76b56f5fa2050a91c54461c53e72ce978dcd03ccd8ff1165845a"
#define V_SEALED_BLOB "6e2265f4a673a958461d1141fad49197df077362eca2afaff771648208f6eb5eb305"
#define V_HEADER_PLAIN                                                                             \
    "5046483101000000010030498e05206d76b56f5fa2050a91c54461c53e72ce97"                             \
    "8dcd03ccd8ff1165845a000000002200000012000000"
#define V_PACK                                                                                     \
    "6e2265f4a673a958461d1141fad49197df077362eca2afaff771648208f6eb5e"                             \
    "b3055c9eb38763345b9ae651a03c15ae37a7b740afba23909c8da6cce57e2e8e"                             \
    "c5ce89ad21dbe2a02e14c85bbdca8e2730dd892c31c99b38ddc6dcdd5fd212fd"                             \
    "8c3d7d4887695162a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7"                             \
    "b8b9babbbcbdbebf4600000050465031"
#define V_PACK_ID "4873003c02d0c67012440ace80f0fb513b98ba5917d3728dda8174dfec3ad1a8"
#define V_INDEX                                                                                    \
    "5046493100000000010000004873003c02d0c67012440ace80f0fb513b98ba59"                             \
    "17d3728dda8174dfec3ad1a8a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3"                             \
    "b4b5b6b7b8b9babbbcbdbebf01000000010030498e05206d76b56f5fa2050a91"                             \
    "c54461c53e72ce978dcd03ccd8ff1165845a000000002200000012000000"
#define V_OBJECT_PLAIN "{\"hello\":\"permafrost\"}"
#define V_OBJECT                                                                                   \
    "50464f31a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babb"                             \
    "bcbdbebfbce466e855b3c14d25c86a978c6d800690a3ea04c5b3c82587f30f04"                             \
    "658fb7e1048c95bcad2beb9fc81791146dc1f5"
#define V_OBJECT_ID "f31abb2db4721216d93a2a09240d2325de948571e0e223808a3d0528eb071b18"
#define V_ZSTD_FRAME_HEAD "28b52ffd2016b10000"
#define V_PASS "correct horse battery staple"
#define V_KEY_SALT "c0c1c2c3c4c5c6c7c8c9cacbcccdcecfd0d1d2d3d4d5d6d7d8d9dadbdcdddedf"
#define V_KEK "4a4675909cb56ad086a70de9b856a5fe7b6d4baf534db4cecb8f6f50b5bf585f"
#define V_SEALED_MASTER                                                                            \
    "a2077af270ce2eedadf495296de77d8ceedf5ec3305525aeb82e013419defa62"                             \
    "bb92983379b381c091aabe07fe9474f3"
#define V_KEY_FILE                                                                                 \
    "{\"version\":1,\"created\":\"2026-01-01T00:00:00Z\",\"host\":\"vector\",\"user\":"            \
    "\"vector\",\"kdf\":\"scrypt\",\"N\":32768,\"r\":8,\"p\":1,\"salt\":\"" V_KEY_SALT             \
    "\",\"sealed\":\"" V_SEALED_MASTER "\"}"
#define V_REPO_ID "e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff"
#define V_CONFIG_MAC_KEY "6aa164054d0ffb1785ee32b76bdf22946e09a965ec39eaf6cdac57dd2152a43b"
#define V_CONFIG_MSG                                                                               \
    "5046433202000000e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7"                             \
    "f8f9fafbfcfdfeff00010000000400000010000000001000"
#define V_CONFIG_MAC "010cc9adc26175ae2d2509e25d65975b9dcf5a2efa83177f8903af1fcc0eaf3f"
#define V_CONFIG_V2                                                                                \
    "{\"version\":2,\"id\":\"" V_REPO_ID "\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":"       \
    "4096},\"pack_size\":1048576,\"mac\":\"" V_CONFIG_MAC "\"}"
#define V_SEALED_MASTER_V2                                                                         \
    "a2077af270ce2eedadf495296de77d8ceedf5ec3305525aeb82e013419defa62"                             \
    "7fa57df4abab721cc8c03e87c2d93fa7"
#define V_KEY_FILE_V2                                                                              \
    "{\"version\":2,\"created\":\"2026-01-01T00:00:00Z\",\"host\":\"vector\",\"user\":"            \
    "\"vector\",\"kdf\":\"scrypt\",\"N\":32768,\"r\":8,\"p\":1,\"salt\":\"" V_KEY_SALT             \
    "\",\"sealed\":\"" V_SEALED_MASTER_V2 "\"}"
#define V_WRITER_KEY "b9f3b4254e239f807bd2c98723b68215aca6f1850335541f9ecec319498a5412"
#define V_PRIV "f57819ed7d7d2dae7307f71d6183a705c05a3c16e168933d28e3e78334328fd1"
#define V_PUB "3071c342f271463bfd953da15762a937ad711e814d7b83fbc0acd7073e623555"
#define V_EPH "d0d1d2d3d4d5d6d7d8d9dadbdcdddedfe0e1e2e3e4e5e6e7e8e9eaebecedeeef"
#define V_EPH_PUB "6b3ee67463583cbe3dc08fe9d0765c2666ff5210dd527c9d8705e44927c80d55"
#define V_SEALED_PACK_KEY "2ccc9838b83ebf4fca2b4d66a5f637a50d2f87d935b601c701265b7cbc7a32e5"
#define V_SEALED_OBJECT_KEY "147975b765770d9ba01a39e25278bc70f0d4f1d156c4f0f54e7c49bce78d5886"
#define V_WRITER_OBJECT_KEY "d42b711899d0ca2ca5337f3278a37be80b2732942f4d9e29072a314467586c13"
#define V_SEALED_PACK                                                                              \
    "35ae475b504272acf8f4fd591a317be59378d88beb69541d0282d21a8022d58d"                             \
    "9fb1157dc20c904836df1bdc3326b9d17beb4faa2e9b0810b15e4642998a1f88"                             \
    "a8b4d6129f85ee35dfeee6e6fb7a6287c24fc33338dbe733c6e46dc67bed8fa3"                             \
    "079fb77fad928ba86b3ee67463583cbe3dc08fe9d0765c2666ff5210dd527c9d"                             \
    "8705e44927c80d554600000050465032"
#define V_SEALED_PACK_ID "714201f1c263d8ff522c58166d18132296987db57a5ef4cb17a50e03cdfa913f"
#define V_INDEX_KINDS                                                                              \
    "504649320000000001000000714201f1c263d8ff522c58166d18132296987db5"                             \
    "7a5ef4cb17a50e03cdfa913f6b3ee67463583cbe3dc08fe9d0765c2666ff5210"                             \
    "dd527c9d8705e44927c80d550201000000010030498e05206d76b56f5fa2050a"                             \
    "91c54461c53e72ce978dcd03ccd8ff1165845a000000002200000012000000"
#define V_WRITER_OBJECT                                                                            \
    "50464f57a0a1a2a3a4a5a6a7a8a9aaabacadaeafb0b1b2b3b4b5b6b7b8b9babb"                             \
    "bcbdbebf4bf14ddd1c34d27e57d6f1daf3aed11d799eeb2e553fede4f7d6c3d2"                             \
    "e43a9d13c0527b43125a80839eae1b43e3825b"
#define V_SEALED_OBJECT                                                                            \
    "50464f506b3ee67463583cbe3dc08fe9d0765c2666ff5210dd527c9d8705e449"                             \
    "27c80d5578bfd0f22fa1f23c5f254860cc884de363ff34abff7c126825c18423"                             \
    "09d048acb17d44beb4dd51ec9360bfa730625b"
#define V_SEALED_OBJECT_ID "a45be1f7ca14457ef30d5bf98590195b88c7567ed9caa074586028e876698a84"
#define V_CONFIG_MAC_V3 "ffccd889bd370fb5292a6a697a22404e6a6a98e0228c6d9566ffc7e1c6be9832"
#define V_CONFIG_V3                                                                                \
    "{\"version\":3,\"id\":\"" V_REPO_ID "\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":"       \
    "4096},\"pack_size\":1048576,\"mac\":\"" V_CONFIG_MAC_V3 "\"}"
#define V_GEAR0 "e5e6a40af1f9769e"
#define V_GEAR1 "75bb22b35741bb22"
#define V_GEAR2 "b4406d41f5a00259"
#define V_GEAR3 "6615de9591ed9eda"
#define V_GEAR255 "2a061cc033b1fd1d"
#define V_PRNG16 "141a9a66628f145b7b72a25d0c18e932"
#define V_CUTS "609 2036 3392 4628 5757 6864 8122 9164 10555 11632 13531 14947 16211 16384"
#define V_TREE                                                                                     \
    "504654310200000004000000646f637302ed010000e8030000e803000005616c"                             \
    "69636505737461666615cd853dfe9c971700cac471fe9c971700000000000000"                             \
    "002a000000000000000108000000000000000000000000000002000000000000"                             \
    "0001000000111111111111111111111111111111111111111111111111111111"                             \
    "11111111110900000068656c6c6f2e74787401a4010000e8030000e803000005"                             \
    "616c69636505737461666600945fadfe9c9717005efae8fe9c97171200000000"                             \
    "0000002b00000000000000010800000000000000000000000000000100000000"                             \
    "0000000100000030498e05206d76b56f5fa2050a91c54461c53e72ce978dcd03"                             \
    "ccd8ff1165845a"
#define V_TREE_ID "2774365fa2916f9d1255e15d91d4403ee9bff5e452ac365dcedf0cc73dfd7ce7"

static const char plain_text[] = "hello, permafrost\n";

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

/* Decodes a hex literal into a malloc'd buffer. */
static uint8_t *unhex(const char *s, size_t *n)
{
    size_t len = strlen(s);
    assert_int_equal(len % 2, 0);
    uint8_t *p = malloc(len / 2 + 1);
    assert_non_null(p);
    char tmp[3] = {0};
    for (size_t i = 0; i < len / 2; i++) {
        memcpy(tmp, s + 2 * i, 2);
        p[i] = (uint8_t)strtoul(tmp, NULL, 16);
    }
    *n = len / 2;
    return p;
}

static void unhex_fixed(const char *s, uint8_t *out, size_t n)
{
    assert_int_equal(pf_unhex(s, out, n), 0);
}

static void expect_hex(const uint8_t *p, size_t n, const char *want)
{
    char *got = malloc(2 * n + 1);
    assert_non_null(got);
    pf_hex(p, n, got);
    assert_string_equal(got, want);
    free(got);
}

static void vector_keys(pf_keys *k)
{
    memset(k, 0, sizeof *k);
    pf_err err = {0};
    unhex_fixed(V_MASTER, k->master, PF_KEY_LEN);
    assert_int_equal(pf_keys_derive(k, &err), 0);
}

static void test_derived_keys(void **state)
{
    (void)state;
    pf_keys k;
    pf_err err = {0};
    uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN];
    vector_keys(&k);
    for (int i = 0; i < PF_KEY_LEN; i++)
        assert_int_equal(k.master[i], i);
    expect_hex(k.id_key, PF_KEY_LEN, V_ID_KEY);
    unhex_fixed(V_SALT, salt, PF_SALT_LEN);
    assert_int_equal(pf_pack_key(&k, salt, key, &err), 0);
    expect_hex(key, PF_KEY_LEN, V_PACK_KEY);
    assert_int_equal(pf_hkdf(k.master, PF_KEY_LEN, salt, PF_SALT_LEN, "permafrost object key", key,
                             PF_KEY_LEN, &err),
                     0);
    expect_hex(key, PF_KEY_LEN, V_OBJECT_KEY);
    /* "No salt" is the RFC's default: 32 zero bytes give the same key. */
    uint8_t zeros[32] = {0};
    assert_int_equal(pf_hkdf(k.master, PF_KEY_LEN, zeros, sizeof zeros, "permafrost blob id", key,
                             PF_KEY_LEN, &err),
                     0);
    expect_hex(key, PF_KEY_LEN, V_ID_KEY);
    pf_keys_wipe(&k);
}

static void test_blob_id(void **state)
{
    (void)state;
    pf_keys k;
    uint8_t id[PF_ID_LEN];
    vector_keys(&k);
    expect_hex((const uint8_t *)plain_text, strlen(plain_text), V_PLAIN_HEX);
    pf_blob_id(&k, plain_text, strlen(plain_text), id);
    expect_hex(id, PF_ID_LEN, V_BLOB_ID);
}

static void test_nonces(void **state)
{
    (void)state;
    uint8_t n[PF_NONCE_LEN];
    pf_nonce_from_counter(0, n);
    expect_hex(n, sizeof n, "000000000000000000000000");
    pf_nonce_from_counter(1, n);
    expect_hex(n, sizeof n, "000000000000000000000001");
    pf_nonce_from_counter(0x0102030405060708ull, n);
    expect_hex(n, sizeof n, "000000000102030405060708");
}

static void test_pack(void **state)
{
    (void)state;
    pf_keys k;
    pf_err err = {0};
    pf_packer pk;
    uint8_t salt[PF_SALT_LEN], id[PF_ID_LEN], pack_id[PF_ID_LEN];
    vector_keys(&k);
    unhex_fixed(V_SALT, salt, PF_SALT_LEN);
    unhex_fixed(V_BLOB_ID, id, PF_ID_LEN);

    /* zstd level 0: never compress, so the stored form is P itself. */
    assert_int_equal(pf_packer_init_salt(&pk, &k, 0, salt, &err), 0);
    expect_hex(pk.key, PF_KEY_LEN, V_PACK_KEY);
    assert_int_equal(pf_packer_add(&pk, id, PF_BLOB_DATA, plain_text, strlen(plain_text), &err), 0);
    expect_hex(pk.data.data, pk.data.len, V_SEALED_BLOB);
    assert_int_equal(pk.count, 1);
    assert_int_equal(pk.entries[0].offset, 0);
    assert_int_equal(pk.entries[0].length, 34);
    assert_int_equal(pk.entries[0].raw_length, 18);
    assert_int_equal(pk.entries[0].comp, PF_COMP_NONE);

    pf_buf hdr = PF_BUF_INIT;
    pf_buf_append(&hdr, PF_PACK_HEADER_MAGIC, 4);
    pf_buf_u32le(&hdr, 1);
    pf_blob_entry_encode(&pk.entries[0], &hdr);
    assert_int_equal(hdr.len, 8 + PF_PACK_ENTRY_LEN);
    expect_hex(hdr.data, hdr.len, V_HEADER_PLAIN);
    pf_buf_free(&hdr);

    assert_int_equal(pf_packer_finish(&pk, pack_id, &err), 0);
    expect_hex(pk.data.data, pk.data.len, V_PACK);
    expect_hex(pack_id, PF_ID_LEN, V_PACK_ID);
    char name[80];
    pf_pack_key_name(pack_id, name);
    assert_string_equal(name, "data/48/" V_PACK_ID);
    pf_packer_free(&pk);

    /* And read back from the frozen bytes alone. */
    size_t n;
    uint8_t *pack = unhex(V_PACK, &n);
    assert_int_equal(n, 144);
    uint8_t got_salt[PF_SALT_LEN], key[PF_KEY_LEN];
    uint32_t hl;
    assert_int_equal(pf_pack_parse_trailer(pack + n - PF_PACK_TRAILER_LEN, n, got_salt, &hl, &err),
                     0);
    assert_memory_equal(got_salt, salt, PF_SALT_LEN);
    assert_int_equal(hl, 70);
    assert_int_equal(pf_pack_key(&k, got_salt, key, &err), 0);
    pf_blob_entry *es = NULL;
    size_t count = 0;
    uint64_t area = n - PF_PACK_TRAILER_LEN - hl;
    assert_int_equal(area, 34);
    assert_int_equal(pf_pack_decode_header(key, pack + area, hl, area, &es, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_memory_equal(es[0].id, id, PF_ID_LEN);
    assert_int_equal(es[0].type, PF_BLOB_DATA);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_blob_open(&k, key, &es[0], pack + es[0].offset, &out, &err), 0);
    assert_int_equal(out.len, strlen(plain_text));
    assert_memory_equal(out.data, plain_text, out.len);
    free(es);

    size_t pn;
    uint8_t *plain_hdr = unhex(V_HEADER_PLAIN, &pn);
    assert_int_equal(pf_pack_header_parse(plain_hdr, pn, area, &es, &count, &err), 0);
    assert_int_equal(count, 1);
    assert_int_equal(es[0].length, 34);
    free(es);
    free(plain_hdr);
    pf_buf_free(&out);
    free(pack);
}

static void test_index_file(void **state)
{
    (void)state;
    size_t n;
    uint8_t *p = unhex(V_INDEX, &n);
    pf_err err = {0};
    pf_index_file f;
    assert_int_equal(n, 126);
    assert_int_equal(pf_index_file_decode(p, n, &f, &err), 0);
    assert_int_equal(f.nsupersedes, 0);
    assert_int_equal(f.npacks, 1);
    expect_hex(f.packs[0].info.id, PF_ID_LEN, V_PACK_ID);
    expect_hex(f.packs[0].info.salt, PF_SALT_LEN, V_SALT);
    assert_int_equal(f.packs[0].count, 1);
    expect_hex(f.packs[0].entries[0].id, PF_ID_LEN, V_BLOB_ID);
    assert_int_equal(f.packs[0].entries[0].length, 34);
    assert_int_equal(f.packs[0].entries[0].raw_length, 18);
    pf_buf b = PF_BUF_INIT;
    pf_index_file_encode(&f, &b);
    expect_hex(b.data, b.len, V_INDEX);
    pf_buf_free(&b);
    pf_index_file_free(&f);
    free(p);
}

static void test_sealed_object(void **state)
{
    (void)state;
    pf_keys k;
    pf_err err = {0};
    uint8_t salt[PF_SALT_LEN], id[PF_ID_LEN];
    vector_keys(&k);
    unhex_fixed(V_SALT, salt, PF_SALT_LEN);
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_object_seal_salt(&k, "snapshots", salt, V_OBJECT_PLAIN,
                                         strlen(V_OBJECT_PLAIN), &b, &err),
                     0);
    expect_hex(b.data, b.len, V_OBJECT);
    pf_sha256(b.data, b.len, id);
    expect_hex(id, PF_ID_LEN, V_OBJECT_ID);
    pf_buf_free(&b);

    /* The frame inside, opened by hand with the object key: header as documented. */
    size_t n;
    uint8_t *obj = unhex(V_OBJECT, &n);
    assert_int_equal(n, 83);
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN];
    unhex_fixed(V_OBJECT_KEY, key, PF_KEY_LEN);
    pf_nonce_from_counter(0, nonce);
    pf_buf z = PF_BUF_INIT;
    assert_int_equal(pf_aead_open(key, nonce, "snapshots", 9, obj + 36, n - 36, &z, &err), 0);
    assert_int_equal(z.len, 9 + strlen(V_OBJECT_PLAIN));
    expect_hex(z.data, 9, V_ZSTD_FRAME_HEAD);
    assert_memory_equal(z.data + 9, V_OBJECT_PLAIN, strlen(V_OBJECT_PLAIN));
    pf_buf_free(&z);

    /* Through pf_object_open; and bound to its folder. */
    assert_int_equal(pf_object_open(&k, "snapshots", obj, n, &b, &err), 0);
    assert_string_equal((const char *)b.data, V_OBJECT_PLAIN);
    pf_buf_free(&b);
    assert_int_equal(pf_object_open(&k, "index", obj, n, &b, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    pf_buf_free(&b);
    free(obj);
}

static void make_prng_input(uint8_t *p, size_t n)
{
    uint64_t x = 0;
    for (size_t i = 0; i < n; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        p[i] = (uint8_t)(x >> 56);
    }
}

static void test_chunker(void **state)
{
    (void)state;
    pf_keys k;
    pf_err err = {0};
    pf_chunker c;
    vector_keys(&k);
    assert_int_equal(pf_chunker_init(&c, k.master, 256, 1024, 4096, &err), 0);
    const char *want_gear[] = {V_GEAR0, V_GEAR1, V_GEAR2, V_GEAR3};
    char hex[17];
    for (int i = 0; i < 4; i++) {
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)c.gear[i]);
        assert_string_equal(hex, want_gear[i]);
    }
    snprintf(hex, sizeof hex, "%016llx", (unsigned long long)c.gear[255]);
    assert_string_equal(hex, V_GEAR255);
    assert_true(c.mask_small == 0xfff0000000000000ull);
    assert_true(c.mask_large == 0xff00000000000000ull);

    pf_chunker d;
    assert_int_equal(pf_chunker_init(&d, k.master, 512u << 10, 1u << 20, 8u << 20, &err), 0);
    assert_true(d.mask_small == 0xfffffc0000000000ull);
    assert_true(d.mask_large == 0xffffc00000000000ull);

    static uint8_t in[16384];
    make_prng_input(in, sizeof in);
    expect_hex(in, 16, V_PRNG16);

    /* All at once, with the end of the stream known. */
    char cuts[512] = "";
    size_t off = 0;
    while (off < sizeof in) {
        size_t m = pf_chunker_cut(&c, in + off, sizeof in - off, true);
        assert_true(m > 0);
        off += m;
        snprintf(cuts + strlen(cuts), sizeof cuts - strlen(cuts), "%s%zu", *cuts ? " " : "", off);
    }
    assert_string_equal(cuts, V_CUTS);

    /* Fed 100 bytes at a time: the same chunks. */
    char cuts2[512] = "";
    size_t start = 0, avail = 0;
    while (start < sizeof in) {
        int eof = start + avail == sizeof in;
        size_t m = pf_chunker_cut(&c, in + start, avail, eof);
        if (m == 0) {
            assert_false(eof);
            avail += 100;
            if (start + avail > sizeof in)
                avail = sizeof in - start;
            continue;
        }
        start += m;
        avail -= m;
        snprintf(cuts2 + strlen(cuts2), sizeof cuts2 - strlen(cuts2), "%s%zu", *cuts2 ? " " : "",
                 start);
    }
    assert_string_equal(cuts2, V_CUTS);
}

static void vector_tree(pf_tree *t)
{
    uint8_t sub[1][PF_ID_LEN], blob[1][PF_ID_LEN];
    memset(sub[0], 0x11, PF_ID_LEN);
    unhex_fixed(V_BLOB_ID, blob[0], PF_ID_LEN);
    pf_node file = {.name = "hello.txt",
                    .name_len = 9,
                    .type = PF_NODE_FILE,
                    .mode = 0644,
                    .uid = 1000,
                    .gid = 1000,
                    .user = "alice",
                    .group = "staff",
                    .mtime_ns = 1700000002000000000LL,
                    .ctime_ns = 1700000003000000000LL,
                    .size = 18,
                    .inode = 43,
                    .dev = 2049,
                    .nlink = 1,
                    .blobs = blob,
                    .nblobs = 1};
    pf_node dir = {.name = "docs",
                   .name_len = 4,
                   .type = PF_NODE_DIR,
                   .mode = 0755,
                   .uid = 1000,
                   .gid = 1000,
                   .user = "alice",
                   .group = "staff",
                   .mtime_ns = 1700000000123456789LL,
                   .ctime_ns = 1700000001000000000LL,
                   .inode = 42,
                   .dev = 2049,
                   .nlink = 2,
                   .blobs = sub,
                   .nblobs = 1};
    memset(t, 0, sizeof *t);
    pf_tree_add(t, &file);
    pf_tree_add(t, &dir);
    pf_tree_sort(t);
}

static void test_tree(void **state)
{
    (void)state;
    pf_keys k;
    pf_err err = {0};
    pf_tree t, back;
    uint8_t id[PF_ID_LEN];
    vector_keys(&k);
    vector_tree(&t);
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
    assert_int_equal(b.len, 263);
    expect_hex(b.data, b.len, V_TREE);
    pf_blob_id(&k, b.data, b.len, id);
    expect_hex(id, PF_ID_LEN, V_TREE_ID);

    size_t n;
    uint8_t *p = unhex(V_TREE, &n);
    assert_int_equal(pf_tree_decode(p, n, &back, &err), 0);
    assert_int_equal(back.count, 2);
    assert_string_equal(back.nodes[0].name, "docs");
    assert_int_equal(back.nodes[0].type, PF_NODE_DIR);
    assert_int_equal(back.nodes[0].mode, 0755);
    assert_true(back.nodes[0].mtime_ns == 1700000000123456789LL);
    assert_string_equal(back.nodes[1].name, "hello.txt");
    assert_string_equal(back.nodes[1].user, "alice");
    assert_string_equal(back.nodes[1].group, "staff");
    assert_int_equal(back.nodes[1].size, 18);
    assert_int_equal(back.nodes[1].nblobs, 1);
    expect_hex(back.nodes[1].blobs[0], PF_ID_LEN, V_BLOB_ID);
    pf_tree_free(&back);
    free(p);
    pf_buf_free(&b);
    pf_tree_free(&t);
}

static void put_hex(pf_store *s, const char *key, const char *hex)
{
    size_t n;
    pf_err err = {0};
    uint8_t *p = unhex(hex, &n);
    assert_int_equal(pf_store_put(s, key, p, n, &err), 0);
    free(p);
}

static void test_key_file_and_repository(void **state)
{
    (void)state;
    pf_err err = {0};
    uint8_t salt[PF_SALT_LEN], kek[PF_KEY_LEN], nonce[PF_NONCE_LEN], master[PF_KEY_LEN];
    unhex_fixed(V_KEY_SALT, salt, PF_SALT_LEN);
    unhex_fixed(V_MASTER, master, PF_KEY_LEN);
    assert_int_equal(pf_scrypt(V_PASS, strlen(V_PASS), salt, sizeof salt, 32768, 8, 1, kek, &err),
                     0);
    expect_hex(kek, PF_KEY_LEN, V_KEK);
    pf_nonce_from_counter(0, nonce);
    pf_buf sealed = PF_BUF_INIT;
    assert_int_equal(
        pf_aead_seal(kek, nonce, "permafrost key", 14, master, PF_KEY_LEN, &sealed, &err), 0);
    expect_hex(sealed.data, sealed.len, V_SEALED_MASTER);
    pf_buf_free(&sealed);

    /* A whole repository from frozen bytes: config, the key file, the pack, an object. */
    pf_store *s = pf_store_mem_new();
    const char *config = "{\"version\":1,\"id\":"
                         "\"e0e1e2e3e4e5e6e7e8e9eaebecedeeeff0f1f2f3f4f5f6f7f8f9fafbfcfdfeff\","
                         "\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
                         "\"pack_size\":1048576}";
    assert_int_equal(pf_store_put(s, "config", config, strlen(config), &err), 0);
    uint8_t kid[PF_ID_LEN];
    char key_name[80] = "keys/";
    pf_sha256(V_KEY_FILE, strlen(V_KEY_FILE), kid);
    pf_hex(kid, PF_ID_LEN, key_name + 5);
    assert_int_equal(pf_store_put(s, key_name, V_KEY_FILE, strlen(V_KEY_FILE), &err), 0);
    put_hex(s, "data/48/" V_PACK_ID, V_PACK);
    put_hex(s, "snapshots/" V_OBJECT_ID, V_OBJECT);

    pf_repo *r = pf_repo_open(s, V_PASS, &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    assert_memory_equal(r->keys.master, master, PF_KEY_LEN);
    expect_hex(r->keys.id_key, PF_KEY_LEN, V_ID_KEY);
    assert_string_equal(r->key_id, key_name + 5);
    assert_int_equal(r->chunker.min, 256);
    assert_int_equal(r->chunker.max, 4096);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    pf_index_file found = {0};
    assert_int_equal(pf_repo_index_orphan_packs(r, &found, &err), 0);
    assert_int_equal(found.npacks, 1);
    expect_hex(found.packs[0].info.id, PF_ID_LEN, V_PACK_ID);
    pf_index_file_free(&found);
    uint8_t id[PF_ID_LEN];
    unhex_fixed(V_BLOB_ID, id, PF_ID_LEN);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_repo_load_blob(r, id, &out, &err), 0);
    assert_string_equal((const char *)out.data, plain_text);
    pf_buf_reset(&out);
    assert_int_equal(pf_repo_load_object(r, "snapshots", V_OBJECT_ID, &out, &err), 0);
    assert_string_equal((const char *)out.data, V_OBJECT_PLAIN);
    pf_buf_free(&out);
    pf_repo_free(r);
}

/* Format 2: the config MAC, and a key file sealed with the AAD that binds it to format 2
 * and to the repository id; then a repository from frozen bytes of format 2. */
static void test_config_mac(void **state)
{
    (void)state;
    pf_err err = {0};
    uint8_t master[PF_KEY_LEN], key[PF_KEY_LEN], msg[PF_CONFIG_MAC_MSG_LEN], mac[PF_ID_LEN];
    unhex_fixed(V_MASTER, master, PF_KEY_LEN);
    assert_int_equal(
        pf_hkdf(master, PF_KEY_LEN, NULL, 0, "permafrost config mac", key, sizeof key, &err), 0);
    expect_hex(key, PF_KEY_LEN, V_CONFIG_MAC_KEY);
    pf_repo_config c;
    assert_int_equal(pf_config_parse(V_CONFIG_V2, strlen(V_CONFIG_V2), &c, &err), 0);
    assert_int_equal(c.version, 2);
    assert_string_equal(c.id, V_REPO_ID);
    assert_int_equal(c.pack_size, 1048576);
    pf_config_mac_message(&c, msg);
    expect_hex(msg, sizeof msg, V_CONFIG_MSG);
    assert_int_equal(pf_config_mac(master, &c, mac, &err), 0);
    expect_hex(mac, sizeof mac, V_CONFIG_MAC);
    assert_int_equal(pf_config_verify(master, &c, &err), 0);

    uint8_t salt[PF_SALT_LEN], kek[PF_KEY_LEN], nonce[PF_NONCE_LEN];
    unhex_fixed(V_KEY_SALT, salt, PF_SALT_LEN);
    unhex_fixed(V_KEK, kek, PF_KEY_LEN);
    pf_nonce_from_counter(0, nonce);
    pf_buf sealed = PF_BUF_INIT;
    const char *aad = "permafrost key v2 " V_REPO_ID;
    assert_int_equal(pf_aead_seal(kek, nonce, aad, strlen(aad), master, PF_KEY_LEN, &sealed, &err),
                     0);
    expect_hex(sealed.data, sealed.len, V_SEALED_MASTER_V2);
    pf_buf_free(&sealed);

    pf_store *s = pf_store_mem_new();
    assert_int_equal(pf_store_put(s, "config", V_CONFIG_V2, strlen(V_CONFIG_V2), &err), 0);
    uint8_t kid[PF_ID_LEN];
    char key_name[80] = "keys/";
    pf_sha256(V_KEY_FILE_V2, strlen(V_KEY_FILE_V2), kid);
    pf_hex(kid, PF_ID_LEN, key_name + 5);
    assert_int_equal(pf_store_put(s, key_name, V_KEY_FILE_V2, strlen(V_KEY_FILE_V2), &err), 0);
    put_hex(s, "data/48/" V_PACK_ID, V_PACK);
    pf_repo *r = pf_repo_open(s, V_PASS, &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    assert_int_equal(r->format, 2);
    assert_memory_equal(r->keys.master, master, PF_KEY_LEN);
    assert_int_equal(r->pack_size, 1048576);
    pf_index_file found = {0};
    assert_int_equal(pf_repo_index_orphan_packs(r, &found, &err), 0);
    assert_int_equal(found.npacks, 1);
    pf_index_file_free(&found);
    uint8_t id[PF_ID_LEN];
    unhex_fixed(V_BLOB_ID, id, PF_ID_LEN);
    pf_buf out = PF_BUF_INIT;
    assert_int_equal(pf_repo_load_blob(r, id, &out, &err), 0);
    assert_string_equal((const char *)out.data, plain_text);
    pf_buf_free(&out);
    pf_repo_free(r);
}

/* Format 3 (write-only keys): the key pair and the writers' key from M, a pack and objects
 * sealed with a fixed ephemeral key, the index file with kinds; then a repository of
 * format 3 from frozen bytes, opened with a full key and with a write-only key. */
static void test_write_only(void **state)
{
    (void)state;
    pf_keys k, w;
    pf_err err = {0};
    uint8_t eph[PF_KEY_LEN], eph_pub[PF_KEY_LEN], key[PF_KEY_LEN], salt[PF_SALT_LEN];
    uint8_t id[PF_ID_LEN], pack_id[PF_ID_LEN];
    vector_keys(&k);
    assert_int_equal(pf_wk_derive(&k, &err), 0);
    expect_hex(k.writer_key, PF_KEY_LEN, V_WRITER_KEY);
    expect_hex(k.priv, PF_KEY_LEN, V_PRIV);
    expect_hex(k.pub, PF_KEY_LEN, V_PUB);
    unhex_fixed(V_EPH, eph, PF_KEY_LEN);
    unhex_fixed(V_SALT, salt, PF_SALT_LEN);
    unhex_fixed(V_BLOB_ID, id, PF_ID_LEN);
    assert_int_equal(pf_wk_seal_key(k.pub, eph, PF_WK_PACK_INFO, eph_pub, key, &err), 0);
    expect_hex(eph_pub, PF_KEY_LEN, V_EPH_PUB);
    expect_hex(key, PF_KEY_LEN, V_SEALED_PACK_KEY);
    assert_int_equal(pf_wk_open_key(&k, eph_pub, PF_WK_PACK_INFO, key, &err), 0);
    expect_hex(key, PF_KEY_LEN, V_SEALED_PACK_KEY);
    assert_int_equal(pf_wk_seal_key(k.pub, eph, PF_WK_OBJECT_INFO, eph_pub, key, &err), 0);
    expect_hex(key, PF_KEY_LEN, V_SEALED_OBJECT_KEY);
    assert_int_equal(pf_hkdf(k.writer_key, PF_KEY_LEN, salt, PF_SALT_LEN,
                             "permafrost writer object key", key, PF_KEY_LEN, &err),
                     0);
    expect_hex(key, PF_KEY_LEN, V_WRITER_OBJECT_KEY);

    pf_packer pk;
    assert_int_equal(pf_packer_init_sealed(&pk, &k, 0, eph, &err), 0);
    assert_int_equal(pf_packer_add(&pk, id, PF_BLOB_DATA, plain_text, strlen(plain_text), &err), 0);
    assert_int_equal(pf_packer_finish(&pk, pack_id, &err), 0);
    expect_hex(pk.data.data, pk.data.len, V_SEALED_PACK);
    expect_hex(pack_id, PF_ID_LEN, V_SEALED_PACK_ID);
    pf_index_file_pack fp = {.count = pk.count, .entries = pk.entries};
    memcpy(fp.info.id, pack_id, PF_ID_LEN);
    memcpy(fp.info.salt, pk.salt, PF_SALT_LEN);
    fp.info.kind = PF_PACK_SEALED;
    pf_index_file f = {.packs = &fp, .npacks = 1}, g;
    pf_buf b = PF_BUF_INIT;
    pf_index_file_encode(&f, &b);
    expect_hex(b.data, b.len, V_INDEX_KINDS);
    assert_int_equal(pf_index_file_decode(b.data, b.len, &g, &err), 0);
    assert_int_equal(g.packs[0].info.kind, PF_PACK_SEALED);
    pf_index_file_free(&g);
    b.data[4 + 4 + 4 + 64] = 7; /* an unknown kind */
    assert_int_equal(pf_index_file_decode(b.data, b.len, &g, &err), -1);
    pf_buf_reset(&b);

    assert_int_equal(pf_object_seal_as(&k, PF_OBJECT_WRITER, "index", salt, V_OBJECT_PLAIN,
                                       strlen(V_OBJECT_PLAIN), &b, &err),
                     0);
    expect_hex(b.data, b.len, V_WRITER_OBJECT);
    pf_buf_reset(&b);
    assert_int_equal(pf_object_seal_as(&k, PF_OBJECT_SEALED, "snapshots", eph, V_OBJECT_PLAIN,
                                       strlen(V_OBJECT_PLAIN), &b, &err),
                     0);
    expect_hex(b.data, b.len, V_SEALED_OBJECT);
    uint8_t oid[PF_ID_LEN];
    pf_sha256(b.data, b.len, oid);
    expect_hex(oid, PF_ID_LEN, V_SEALED_OBJECT_ID);
    pf_buf_reset(&b);

    /* A write-only key's material: what it can open and what it cannot. */
    uint8_t mac_key[PF_KEY_LEN], gear[PF_GEAR_LEN], m[PF_WRITE_MATERIAL_LEN], mk2[PF_KEY_LEN];
    uint8_t gear2[PF_GEAR_LEN];
    assert_int_equal(pf_config_mac_key(k.master, mac_key, &err), 0);
    expect_hex(mac_key, PF_KEY_LEN, V_CONFIG_MAC_KEY);
    assert_int_equal(
        pf_hkdf(k.master, PF_KEY_LEN, NULL, 0, "permafrost chunker gear", gear, sizeof gear, &err),
        0);
    pf_wk_material_encode(&k, mac_key, gear, m);
    pf_wk_material_decode(m, &w, mk2, gear2);
    assert_true(w.write_only);
    assert_memory_equal(w.id_key, k.id_key, PF_KEY_LEN);
    assert_memory_equal(w.pub, k.pub, PF_KEY_LEN);
    uint8_t zero[PF_KEY_LEN] = {0};
    assert_memory_equal(w.master, zero, PF_KEY_LEN);
    assert_memory_equal(w.priv, zero, PF_KEY_LEN);
    size_t n;
    uint8_t *obj = unhex(V_WRITER_OBJECT, &n);
    assert_int_equal(pf_object_open(&w, "index", obj, n, &b, &err), 0);
    assert_string_equal((const char *)b.data, V_OBJECT_PLAIN);
    pf_buf_reset(&b);
    free(obj);
    obj = unhex(V_SEALED_OBJECT, &n);
    assert_int_equal(pf_object_open(&w, "snapshots", obj, n, &b, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_int_equal(pf_object_open(&k, "snapshots", obj, n, &b, &err), 0);
    assert_string_equal((const char *)b.data, V_OBJECT_PLAIN);
    pf_buf_reset(&b);
    obj[40] ^= 1;
    assert_int_equal(pf_object_open(&k, "snapshots", obj, n, &b, &err), -1);
    free(obj);
    obj = unhex(V_OBJECT, &n);
    assert_int_equal(pf_object_open(&w, "snapshots", obj, n, &b, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    free(obj);
    assert_int_equal(pf_pack_key_kind(&w, PF_PACK_SEALED, eph_pub, key, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_int_equal(pf_pack_key_kind(&w, PF_PACK_MASTER, salt, key, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    /* An ephemeral key of small order (here 0) gives no key at all. */
    assert_int_equal(pf_pack_key_kind(&k, PF_PACK_SEALED, zero, key, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);

    /* The repository: format-3 config, the format-2 key file, the sealed pack and an index
     * file for writers that lists it. */
    pf_store *s = pf_store_mem_new();
    assert_int_equal(pf_store_put(s, "config", V_CONFIG_V3, strlen(V_CONFIG_V3), &err), 0);
    char key_name[80] = "keys/", name[128];
    pf_sha256(V_KEY_FILE_V2, strlen(V_KEY_FILE_V2), oid);
    pf_hex(oid, PF_ID_LEN, key_name + 5);
    assert_int_equal(pf_store_put(s, key_name, V_KEY_FILE_V2, strlen(V_KEY_FILE_V2), &err), 0);
    put_hex(s, "data/71/" V_SEALED_PACK_ID, V_SEALED_PACK);
    pf_buf plain = PF_BUF_INIT;
    pf_index_file_encode(&f, &plain);
    assert_int_equal(
        pf_object_seal_as(&k, PF_OBJECT_WRITER, "index", salt, plain.data, plain.len, &b, &err), 0);
    pf_sha256(b.data, b.len, oid);
    strcpy(name, "index/");
    pf_hex(oid, PF_ID_LEN, name + 6);
    assert_int_equal(pf_store_put(s, name, b.data, b.len, &err), 0);
    pf_buf_reset(&b);
    pf_packer_free(&pk);

    pf_repo *r = pf_repo_open(s, V_PASS, &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    assert_int_equal(r->format, 3);
    assert_false(r->keys.write_only);
    expect_hex(r->keys.pub, PF_KEY_LEN, V_PUB);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_int_equal(pf_repo_load_blob(r, id, &b, &err), 0);
    assert_string_equal((const char *)b.data, plain_text);
    pf_buf_reset(&b);
    char wid[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_add_write_key(r, V_PASS " (write-only)", wid, &err), 0);
    pf_chunker full_chunker = r->chunker;
    r->store = NULL; /* the store goes on to the next open */
    pf_repo_free(r);

    r = pf_repo_open(s, V_PASS " (write-only)", &err);
    if (!r)
        fail_msg("open write-only: %s", err.msg);
    assert_true(r->keys.write_only);
    assert_string_equal(r->key_id, wid);
    expect_hex(r->keys.id_key, PF_KEY_LEN, V_ID_KEY);
    assert_memory_equal(r->chunker.gear, full_chunker.gear, sizeof full_chunker.gear);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_true(pf_repo_has_blob(r, id)); /* deduplicates */
    assert_int_equal(pf_repo_load_blob(r, id, &b, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_int_equal(pf_repo_need_full_key(r, "restore", &err), -1);
    assert_non_null(strstr(err.msg, "write-only"));
    assert_int_equal(pf_repo_add_key(r, "x", wid, &err), -1);
    assert_int_equal(pf_repo_add_write_key(r, "x", wid, &err), -1);
    pf_repo_free(r);
    pf_buf_free(&b);
    pf_buf_free(&plain);
}

/* Every vector above must appear in docs/FORMAT.md (whitespace ignored, so wrapped hex
 * counts). Skipped when the tests do not run from the source tree. */
static void test_document_agrees(void **state)
{
    (void)state;
    FILE *f = fopen("docs/FORMAT.md", "rb");
    if (!f)
        skip();
    pf_buf doc = PF_BUF_INIT;
    int c;
    while ((c = fgetc(f)) != EOF)
        if (c != ' ' && c != '\n' && c != '\t' && c != '\r')
            pf_buf_u8(&doc, (uint8_t)c);
    fclose(f);
    const char *vectors[] = {
        V_MASTER,
        V_SALT,
        V_PLAIN_HEX,
        V_ID_KEY,
        V_PACK_KEY,
        V_OBJECT_KEY,
        V_BLOB_ID,
        V_SEALED_BLOB,
        V_HEADER_PLAIN,
        V_PACK,
        V_PACK_ID,
        V_INDEX,
        V_OBJECT_PLAIN,
        V_OBJECT,
        V_OBJECT_ID,
        V_PASS,
        V_KEY_SALT,
        V_KEK,
        V_SEALED_MASTER,
        V_KEY_FILE,
        V_REPO_ID,
        V_CONFIG_MAC_KEY,
        V_CONFIG_MSG,
        V_CONFIG_MAC,
        V_CONFIG_V2,
        V_SEALED_MASTER_V2,
        V_KEY_FILE_V2,
        "permafrost config mac",
        "permafrost key v2 ",
        V_GEAR0,
        V_GEAR1,
        V_GEAR2,
        V_GEAR3,
        V_GEAR255,
        V_PRNG16,
        V_CUTS,
        V_TREE,
        V_TREE_ID,
        "28b52ffd2016b10000",
        "0xfff0000000000000",
        "0xff00000000000000",
        "0xfffffc0000000000",
        "0xffffc00000000000",
        "permafrost blob id",
        "permafrost pack key",
        "permafrost object key",
        "permafrost chunker gear",
        "permafrost pack header",
        V_WRITER_KEY,
        V_PRIV,
        V_PUB,
        V_EPH,
        V_EPH_PUB,
        V_SEALED_PACK_KEY,
        V_SEALED_OBJECT_KEY,
        V_WRITER_OBJECT_KEY,
        V_SEALED_PACK,
        V_SEALED_PACK_ID,
        V_INDEX_KINDS,
        V_WRITER_OBJECT,
        V_SEALED_OBJECT,
        V_SEALED_OBJECT_ID,
        V_CONFIG_MAC_V3,
        V_CONFIG_V3,
        "permafrost writer key",
        "permafrost repository x25519",
        "permafrost sealed pack key",
        "permafrost sealed object key",
        "permafrost writer object key",
        "permafrost write-only key ",
        "6364136223846793005",
        "1442695040888963407",
    };
    for (size_t i = 0; i < sizeof vectors / sizeof *vectors; i++) {
        /* Compare without whitespace on both sides. */
        char *v = strdup(vectors[i]), *w = v;
        assert_non_null(v);
        for (const char *q = vectors[i]; *q; q++)
            if (*q != ' ')
                *w++ = *q;
        *w = 0;
        if (!memmem(doc.data, doc.len, v, strlen(v)))
            fail_msg("docs/FORMAT.md does not contain vector %zu: %s", i, vectors[i]);
        free(v);
    }
    pf_buf_free(&doc);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derived_keys),
        cmocka_unit_test(test_blob_id),
        cmocka_unit_test(test_nonces),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_index_file),
        cmocka_unit_test(test_sealed_object),
        cmocka_unit_test(test_chunker),
        cmocka_unit_test(test_tree),
        cmocka_unit_test(test_key_file_and_repository),
        cmocka_unit_test(test_config_mac),
        cmocka_unit_test(test_write_only),
        cmocka_unit_test(test_document_agrees),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
