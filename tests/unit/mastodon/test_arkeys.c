/* Rails' ActiveRecord encryption: envelope parsing, key derivation and decryption against
 * known answers computed independently (Python's hashlib.pbkdf2_hmac and the cryptography
 * package's AESGCM, not OpenSSL through our code). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mastodon/arkeys.h"

/* Test keys, shaped as `rails db:encryption:init` prints them. */
#define PK "hGqJBQyCxLnUE2xZ6WQo0uzSEbrRLkUa"
#define SALT "Tg3rJd8NwYkX4q1bVf7sLmPz2cHaE9oU"
#define DET "Wm5pQe8rT2yU4iO6aSdF1gHjK3lZxC7v"

/* hashlib.pbkdf2_hmac("sha256"/"sha1", PK, SALT, 65536, 32) */
static const char *const key256_hex =
    "11b90ebe19411285927572f8caa8dea6d18967a6ca8a73960c5663945dbc3780";
static const char *const key1_hex =
    "f69be3a1ad85a6ac430d36325116a6933b6227f6667ed38d9c0ae66c6409cef7";

/* AESGCM(key256).encrypt(bytes(1..12), b"JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP", None) */
#define V256                                                                                       \
    "{\"p\":\"hqwFgb9Bm9v3O59z4UGXqXT6BNV9MWfWOpdmyfqxG/c=\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\","  \
    "\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}"
#define V256_PLAIN "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
/* AESGCM(key1).encrypt(bytes(0x21..0x2c), b"sha1 secret", None), with "e": "UTF-8" */
#define V1                                                                                         \
    "{\"p\":\"JEwIw0k/zNT9jyY=\",\"h\":{\"iv\":\"ISIjJCUmJygpKiss\",\"at\":"                       \
    "\"RJdjsPDawk24Z+5BGQkw1A==\",\"e\":\"VVRGLTg=\"}}"
/* With pbkdf2_hmac("sha256", DET, SALT, ...): b"deterministic" */
#define VDET                                                                                       \
    "{\"p\":\"evEBOZLM8Z0AGhP3tQ==\",\"h\":{\"iv\":\"QUJDREVGR0hJSktM\",\"at\":"                   \
    "\"dIQoRIlwiA1CE53Pg2bOLw==\"}}"
/* key256, zlib.compress(b"x" * 300), "c": true */
#define VC                                                                                         \
    "{\"p\":\"BHmmtNOtihJIqA3ssQ==\",\"h\":{\"iv\":\"YWJjZGVmZ2hpamts\",\"at\":"                   \
    "\"TF0u9F254QRM3tNLvQFZVQ==\",\"c\":true}}"
/* key256, b"" */
#define VEMPTY                                                                                     \
    "{\"p\":\"\",\"h\":{\"iv\":\"cXJzdHV2d3h5ent8\",\"at\":\"UwjRsTJp9yd2CeuOb7D5tA==\"}}"

static void hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        sprintf(out + 2 * i, "%02x", p[i]);
}

static void test_derive_known_answers(void **state)
{
    (void)state;
    uint8_t k[PF_AR_KEY_LEN];
    char h[2 * PF_AR_KEY_LEN + 1];
    pf_err err = {0};
    assert_int_equal(pf_ar_derive_key(PK, SALT, PF_AR_SHA256, k, &err), 0);
    hex(k, sizeof k, h);
    assert_string_equal(h, key256_hex);
    assert_int_equal(pf_ar_derive_key(PK, SALT, PF_AR_SHA1, k, &err), 0);
    hex(k, sizeof k, h);
    assert_string_equal(h, key1_hex);
    assert_int_equal(pf_ar_derive_key("", SALT, PF_AR_SHA256, k, &err), -1);
    assert_int_equal(pf_ar_derive_key(PK, NULL, PF_AR_SHA256, k, &err), -1);
}

static void test_decrypt_known_answer(void **state)
{
    (void)state;
    pf_ar_envelope e;
    pf_err err = {0};
    assert_int_equal(pf_ar_envelope_parse(V256, strlen(V256), &e, &err), 0);
    assert_int_equal(e.ct_len, strlen(V256_PLAIN));
    assert_false(e.compressed);
    uint8_t k[PF_AR_KEY_LEN];
    assert_int_equal(pf_ar_derive_key(PK, SALT, PF_AR_SHA256, k, &err), 0);
    pf_buf plain = PF_BUF_INIT;
    assert_int_equal(pf_ar_decrypt(&e, k, &plain, &err), 0);
    assert_int_equal(plain.len, strlen(V256_PLAIN));
    assert_memory_equal(plain.data, V256_PLAIN, plain.len);
    pf_buf_free(&plain);
    /* The SHA-1 key is another key: the tag fails, nothing is appended. */
    assert_int_equal(pf_ar_derive_key(PK, SALT, PF_AR_SHA1, k, &err), 0);
    assert_int_equal(pf_ar_decrypt(&e, k, &plain, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_int_equal(plain.len, 0);
    pf_buf_free(&plain);
    /* One flipped bit of the ciphertext fails the tag too. */
    assert_int_equal(pf_ar_derive_key(PK, SALT, PF_AR_SHA256, k, &err), 0);
    e.ct[3] ^= 1;
    assert_int_equal(pf_ar_decrypt(&e, k, &plain, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    pf_buf_free(&plain);
    pf_ar_envelope_free(&e);
}

static const pf_ar_keys good = {.primary = PK, .deterministic = DET, .salt = SALT};

static void test_fit_each_scheme(void **state)
{
    (void)state;
    pf_ar_fit fit;
    pf_err err = {0};
    assert_int_equal(pf_ar_keys_fit(&good, V256, strlen(V256), &fit, &err), 0);
    assert_false(fit.deterministic);
    assert_int_equal(fit.digest, PF_AR_SHA256);
    assert_int_equal(pf_ar_keys_fit(&good, V1, strlen(V1), &fit, &err), 0);
    assert_false(fit.deterministic);
    assert_int_equal(fit.digest, PF_AR_SHA1);
    assert_int_equal(pf_ar_keys_fit(&good, VDET, strlen(VDET), &fit, &err), 0);
    assert_true(fit.deterministic);
    assert_int_equal(fit.digest, PF_AR_SHA256);
    assert_int_equal(pf_ar_keys_fit(&good, VC, strlen(VC), &fit, &err), 0);
    assert_int_equal(pf_ar_keys_fit(&good, VEMPTY, strlen(VEMPTY), &fit, &err), 0);

    pf_ar_envelope e;
    assert_int_equal(pf_ar_envelope_parse(VC, strlen(VC), &e, &err), 0);
    assert_true(e.compressed);
    pf_ar_envelope_free(&e);
}

/* No message may hold a key, a salt or a decrypted value. */
static void assert_clean(const char *msg)
{
    assert_null(strstr(msg, PK));
    assert_null(strstr(msg, SALT));
    assert_null(strstr(msg, DET));
    assert_null(strstr(msg, "hGqJBQ")); /* nor a part of one */
    assert_null(strstr(msg, V256_PLAIN));
    assert_null(strstr(msg, "JBSWY3"));
    assert_null(strstr(msg, "hqwFgb9B")); /* nor the ciphertext */
}

static void test_wrong_keys_named_not_shown(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_ar_keys other_salt = {.primary = PK, .deterministic = DET, .salt = PK};
    assert_int_equal(pf_ar_keys_fit(&other_salt, V256, strlen(V256), NULL, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_non_null(strstr(err.msg, PF_AR_PRIMARY));
    assert_non_null(strstr(err.msg, PF_AR_SALT));
    assert_clean(err.msg);

    /* Primary and deterministic swapped: the deterministic vector still fits (it is the
     * primary now), the others do not. */
    pf_ar_keys swapped = {.primary = DET, .deterministic = PK, .salt = SALT};
    pf_ar_fit fit;
    assert_int_equal(pf_ar_keys_fit(&swapped, VDET, strlen(VDET), &fit, &err), 0);
    assert_false(fit.deterministic);
    assert_int_equal(pf_ar_keys_fit(&swapped, V256, strlen(V256), &fit, &err), 0);
    assert_true(fit.deterministic);
    pf_ar_keys bad = {.primary = DET, .deterministic = DET, .salt = SALT};
    assert_int_equal(pf_ar_keys_fit(&bad, V1, strlen(V1), &fit, &err), -1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_clean(err.msg);

    pf_ar_keys missing = {.primary = PK, .deterministic = DET, .salt = ""};
    assert_int_equal(pf_ar_keys_fit(&missing, V256, strlen(V256), NULL, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_string_equal(err.msg, PF_AR_SALT " is not set");
    missing = (pf_ar_keys){.primary = NULL, .deterministic = DET, .salt = SALT};
    assert_int_equal(pf_ar_keys_fit(&missing, V256, strlen(V256), NULL, &err), -1);
    assert_string_equal(err.msg, PF_AR_PRIMARY " is not set");
}

static void test_malformed_envelopes(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "",
        "not json",
        "[1,2]",
        "{\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":\"hqwF\"}",
        "{\"p\":\"hqwF\",\"h\":\"x\"}",
        "{\"p\":\"hqwF\",\"h\":{\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":\"hqwF\",\"h\":{\"iv\":\"AQIDBAUG\",\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":\"hqwF\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":\"IPM0tOJE\"}}",
        "{\"p\":\"hq!F\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":\"hqw\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":7,\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":\"IPM0tOJEpXgwdnGy5d8ZSQ==\"}}",
        "{\"p\":\"hqwFgb9Bm9v3O59z4UGXqXT6BNV9MWfWOpdmyfqxG/"
        "c=\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\"",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pf_ar_envelope e;
        pf_err err = {0};
        if (pf_ar_envelope_parse(bad[i], strlen(bad[i]), &e, &err) == 0)
            fail_msg("accepted bad envelope %zu", i);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_clean(err.msg);
        assert_null(strstr(err.msg, "hqwF"));
        pf_ar_envelope_free(&e);
        assert_int_equal(pf_ar_keys_fit(&good, bad[i], strlen(bad[i]), NULL, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
    }
    /* An encrypted data key is a scheme we do not verify: said so, not "corrupt". */
    const char *k = "{\"p\":\"hqwF\",\"h\":{\"iv\":\"AQIDBAUGBwgJCgsM\",\"at\":"
                    "\"IPM0tOJEpXgwdnGy5d8ZSQ==\",\"k\":{\"p\":\"x\"}}}";
    pf_ar_envelope e;
    pf_err err = {0};
    assert_int_equal(pf_ar_envelope_parse(k, strlen(k), &e, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    pf_ar_envelope_free(&e);
    /* Not NUL-terminated: only len bytes are read. */
    char buf[sizeof V256 + 8];
    memcpy(buf, V256, strlen(V256));
    memset(buf + strlen(V256), 'Z', 8);
    assert_int_equal(pf_ar_keys_fit(&good, buf, strlen(V256), NULL, &err), 0);
}

static void test_looks_encrypted(void **state)
{
    (void)state;
    assert_true(pf_ar_looks_encrypted(V256, strlen(V256)));
    assert_true(pf_ar_looks_encrypted(" { \"p\":\"\",\"h\":{}}", 18));
    assert_false(pf_ar_looks_encrypted("{\"h\":{},\"p\":\"\"}", 15));
    assert_false(pf_ar_looks_encrypted("{\"p\"", 4));
    assert_false(pf_ar_looks_encrypted("JBSWY3DPEHPK3PXP", 16));
    assert_false(pf_ar_looks_encrypted("", 0));
    assert_false(pf_ar_looks_encrypted("{", 1));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_derive_known_answers),
        cmocka_unit_test(test_decrypt_known_answer),
        cmocka_unit_test(test_fit_each_scheme),
        cmocka_unit_test(test_wrong_keys_named_not_shown),
        cmocka_unit_test(test_malformed_envelopes),
        cmocka_unit_test(test_looks_encrypted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
