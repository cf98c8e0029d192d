/* Cryptographic primitives: AES-256-GCM round trips and tamper detection, and HKDF,
 * HMAC, SHA-256, scrypt and AES-GCM against their published test vectors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"

static void expect_hex(const uint8_t *p, size_t n, const char *want)
{
    char *got = malloc(2 * n + 1);
    assert_non_null(got);
    pf_hex(p, n, got);
    assert_string_equal(got, want);
    free(got);
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void test_aead_round_trip(void **state)
{
    (void)state;
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN], msg[5000];
    fill(key, sizeof key, 1);
    fill(msg, sizeof msg, 2);
    pf_nonce_from_counter(7, nonce);
    static const size_t lens[] = {0, 1, 15, 16, 17, 255, 4096, 5000};
    for (size_t i = 0; i < sizeof lens / sizeof *lens; i++) {
        pf_buf c = PF_BUF_INIT, p = PF_BUF_INIT;
        pf_err err = {0};
        pf_buf_append(&c, "xy", 2); /* seal appends */
        assert_int_equal(pf_aead_seal(key, nonce, "aad", 3, msg, lens[i], &c, &err), 0);
        assert_int_equal(c.len, 2 + lens[i] + PF_TAG_LEN);
        assert_memory_equal(c.data, "xy", 2);
        if (lens[i] >= 16)
            assert_memory_not_equal(c.data + 2, msg, 16);
        pf_buf_append(&p, "z", 1);
        assert_int_equal(pf_aead_open(key, nonce, "aad", 3, c.data + 2, c.len - 2, &p, &err), 0);
        assert_int_equal(p.len, 1 + lens[i]);
        assert_memory_equal(p.data, "z", 1);
        if (lens[i])
            assert_memory_equal(p.data + 1, msg, lens[i]);
        assert_int_equal(p.data[p.len], 0); /* the buffer stays NUL-terminated */
        pf_buf_free(&c);
        pf_buf_free(&p);
    }
}

/* Every single-bit change of ciphertext, tag, AAD, nonce or key is refused, and a refused
 * open leaves the output buffer as it was. */
static void test_aead_tamper(void **state)
{
    (void)state;
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN], msg[40], aad[20];
    fill(key, sizeof key, 3);
    fill(msg, sizeof msg, 4);
    fill(aad, sizeof aad, 5);
    pf_nonce_from_counter(12345, nonce);
    pf_buf c = PF_BUF_INIT, p = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_aead_seal(key, nonce, aad, sizeof aad, msg, sizeof msg, &c, &err), 0);
    pf_buf_append(&p, "keep", 4);

    for (size_t bit = 0; bit < c.len * 8; bit++) {
        c.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_int_equal(p.len, 4);
        c.data[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < sizeof aad * 8; bit++) {
        aad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), -1);
        aad[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < sizeof nonce * 8; bit++) {
        nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), -1);
        nonce[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t bit = 0; bit < sizeof key * 8; bit += 7) {
        key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), -1);
        key[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    /* Missing, extra or shortened AAD; truncated or extended ciphertext. */
    assert_int_equal(pf_aead_open(key, nonce, NULL, 0, c.data, c.len, &p, &err), -1);
    assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad - 1, c.data, c.len, &p, &err), -1);
    for (size_t n = 0; n < c.len; n++)
        assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, n, &p, &err), -1);
    pf_buf_u8(&c, 0);
    assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), -1);
    c.len--;
    assert_int_equal(p.len, 4);
    /* And intact, it opens. */
    assert_int_equal(pf_aead_open(key, nonce, aad, sizeof aad, c.data, c.len, &p, &err), 0);
    assert_int_equal(p.len, 4 + sizeof msg);
    pf_buf_free(&c);
    pf_buf_free(&p);
}

/* McGrew & Viega, "The Galois/Counter Mode of Operation", test cases 13 and 14. */
static void test_aead_known_answers(void **state)
{
    (void)state;
    uint8_t key[PF_KEY_LEN] = {0}, nonce[PF_NONCE_LEN] = {0}, zeros[16] = {0};
    pf_buf c = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_aead_seal(key, nonce, NULL, 0, NULL, 0, &c, &err), 0);
    expect_hex(c.data, c.len, "530f8afbc74536b9a963b4f1c4cb738b");
    pf_buf_reset(&c);
    assert_int_equal(pf_aead_seal(key, nonce, NULL, 0, zeros, sizeof zeros, &c, &err), 0);
    expect_hex(c.data, c.len, "cea7403d4d606b6e074ec5d3baf39d18d0d1c8a799996bf0265b98b5d48ab919");
    pf_buf_free(&c);
}

/* RFC 5869, appendix A, test cases 1 to 3 (SHA-256). */
static void test_hkdf_rfc5869(void **state)
{
    (void)state;
    uint8_t ikm[80], salt[80], out[82];
    char info[81];
    pf_err err = {0};

    memset(ikm, 0x0b, 22);
    for (int i = 0; i < 13; i++)
        salt[i] = (uint8_t)i;
    for (int i = 0; i < 10; i++)
        info[i] = (char)(0xf0 + i);
    info[10] = 0;
    assert_int_equal(pf_hkdf(ikm, 22, salt, 13, info, out, 42, &err), 0);
    expect_hex(out, 42,
               "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887"
               "185865");

    for (int i = 0; i < 80; i++) {
        ikm[i] = (uint8_t)i;
        salt[i] = (uint8_t)(0x60 + i);
        info[i] = (char)(0xb0 + i);
    }
    info[80] = 0;
    assert_int_equal(pf_hkdf(ikm, 80, salt, 80, info, out, 82, &err), 0);
    expect_hex(out, 82,
               "b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac782"
               "7271cb41c65e590e09da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3"
               "434f1d87");

    memset(ikm, 0x0b, 22);
    assert_int_equal(pf_hkdf(ikm, 22, NULL, 0, "", out, 42, &err), 0);
    expect_hex(out, 42,
               "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b6"
               "1a96c8");
}

/* RFC 4231 test cases 1 and 2. pf_blob_id keys HMAC with a 32-byte key; HMAC pads a
 * shorter key with zeros, so the RFC's keys padded to 32 bytes give the same MACs. */
static void test_hmac_rfc4231(void **state)
{
    (void)state;
    pf_keys k;
    uint8_t mac[PF_ID_LEN];
    memset(&k, 0, sizeof k);
    memset(k.id_key, 0x0b, 20);
    pf_blob_id(&k, "Hi There", 8, mac);
    expect_hex(mac, sizeof mac, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    memset(&k, 0, sizeof k);
    memcpy(k.id_key, "Jefe", 4);
    const char *data = "what do ya want for nothing?";
    pf_blob_id(&k, data, strlen(data), mac);
    expect_hex(mac, sizeof mac, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
}

static void test_sha256(void **state)
{
    (void)state;
    uint8_t d[PF_ID_LEN];
    pf_sha256("", 0, d);
    expect_hex(d, sizeof d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    pf_sha256("abc", 3, d);
    expect_hex(d, sizeof d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

/* RFC 7914 section 12, second vector; pf_scrypt gives the first 32 of its 64 bytes. */
static void test_scrypt_rfc7914(void **state)
{
    (void)state;
    uint8_t out[PF_KEY_LEN];
    pf_err err = {0};
    assert_int_equal(pf_scrypt("password", 8, (const uint8_t *)"NaCl", 4, 1024, 8, 16, out, &err),
                     0);
    expect_hex(out, sizeof out, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
    /* N must be a power of two: an error, not a crash. */
    assert_int_equal(pf_scrypt("password", 8, (const uint8_t *)"NaCl", 4, 1000, 8, 1, out, &err),
                     -1);
}

static void test_keys_derive_and_wipe(void **state)
{
    (void)state;
    pf_keys a, b;
    pf_err err = {0};
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    b.master[0] = 1;
    assert_int_equal(pf_keys_derive(&a, &err), 0);
    assert_int_equal(pf_keys_derive(&b, &err), 0);
    assert_memory_not_equal(a.id_key, b.id_key, PF_KEY_LEN);
    pf_keys_wipe(&b);
    uint8_t zero[sizeof b] = {0};
    assert_memory_equal(&b, zero, sizeof b);
}

static void test_nonce_and_random(void **state)
{
    (void)state;
    uint8_t n[PF_NONCE_LEN];
    pf_nonce_from_counter(UINT64_MAX, n);
    expect_hex(n, sizeof n, "00000000ffffffffffffffff");
    pf_nonce_from_counter(0x1234, n);
    expect_hex(n, sizeof n, "000000000000000000001234");
    uint8_t r1[32], r2[32];
    pf_err err = {0};
    assert_int_equal(pf_random(r1, sizeof r1, &err), 0);
    assert_int_equal(pf_random(r2, sizeof r2, &err), 0);
    assert_memory_not_equal(r1, r2, sizeof r1);
}

static void test_hex(void **state)
{
    (void)state;
    uint8_t in[4] = {0x00, 0x9f, 0xa0, 0xff}, out[4];
    char s[9];
    pf_hex(in, 4, s);
    assert_string_equal(s, "009fa0ff");
    assert_int_equal(pf_unhex("009fa0ff", out, 4), 0);
    assert_memory_equal(in, out, 4);
    assert_int_equal(pf_unhex("009FA0FF", out, 4), 0);
    assert_memory_equal(in, out, 4);
    assert_int_equal(pf_unhex("009fa0f", out, 4), -1);   /* short */
    assert_int_equal(pf_unhex("009fa0ff0", out, 4), -1); /* long */
    assert_int_equal(pf_unhex("009fa0fg", out, 4), -1);
    assert_int_equal(pf_unhex("", out, 4), -1);
    assert_int_equal(pf_unhex(" 09fa0ff", out, 4), -1);
    assert_int_equal(pf_unhex("", out, 0), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aead_round_trip),    cmocka_unit_test(test_aead_tamper),
        cmocka_unit_test(test_aead_known_answers), cmocka_unit_test(test_hkdf_rfc5869),
        cmocka_unit_test(test_hmac_rfc4231),       cmocka_unit_test(test_sha256),
        cmocka_unit_test(test_scrypt_rfc7914),     cmocka_unit_test(test_keys_derive_and_wipe),
        cmocka_unit_test(test_nonce_and_random),   cmocka_unit_test(test_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
