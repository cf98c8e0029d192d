/* crypto.c reuses fetched algorithms and per-thread contexts. These tests hold the reused
 * contexts to OpenSSL's one-shot calls with fresh contexts: the same outputs for many
 * sizes and keys (keys changing from call to call), from several threads at once, and a
 * context that just refused a damaged ciphertext still seals and opens correctly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"

static uint32_t next(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void fill(uint8_t *p, size_t n, uint32_t *seed)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)next(seed);
}

/* The references: what crypto.c did before, a fresh context and an implicit fetch. */
static void ref_hmac(const uint8_t key[PF_KEY_LEN], const uint8_t *p, size_t n, uint8_t *out)
{
    unsigned int len = PF_ID_LEN;
    assert_non_null(HMAC(EVP_sha256(), key, PF_KEY_LEN, p, n, out, &len));
}

static int ref_gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                   size_t aadlen, const uint8_t *in, size_t n, uint8_t *out)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    int len, ok = ctx && EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) == 1;
    size_t body = enc ? n : n - PF_TAG_LEN;
    ok = ok && (!aadlen || EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) == 1);
    ok = ok && (!body || EVP_CipherUpdate(ctx, out, &len, in, (int)body) == 1);
    if (enc)
        ok = ok && EVP_CipherFinal_ex(ctx, out + body, &len) == 1 &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PF_TAG_LEN, out + body) == 1;
    else
        ok = ok &&
             EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PF_TAG_LEN, (void *)(in + body)) == 1 &&
             EVP_CipherFinal_ex(ctx, out + body, &len) == 1;
    EVP_CIPHER_CTX_free(ctx);
    return ok;
}

/* One round of every primitive on a size and keys drawn from seed, against the references.
 * Returns the number of mismatches (not asserting: it also runs in threads). */
static int one_round(uint32_t *seed, uint8_t *buf, size_t cap)
{
    int bad = 0;
    size_t n = next(seed) % 4 ? next(seed) % 1200 : next(seed) % cap;
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN], aad[40], got[PF_ID_LEN], want[PF_ID_LEN];
    size_t aadlen = next(seed) % sizeof aad;
    /* Few keys, so that both the kept key and a changed one are exercised. */
    uint32_t kseed = next(seed) % 3;
    fill(key, sizeof key, &kseed);
    fill(nonce, sizeof nonce, seed);
    fill(aad, aadlen, seed);
    fill(buf, n, seed);

    pf_keys k = {0};
    memcpy(k.id_key, key, PF_KEY_LEN);
    pf_blob_id(&k, buf, n, got);
    ref_hmac(key, buf, n, want);
    bad += memcmp(got, want, PF_ID_LEN) != 0;

    pf_sha256(buf, n, got);
    SHA256(buf, n, want);
    bad += memcmp(got, want, PF_ID_LEN) != 0;

    pf_buf c = PF_BUF_INIT, p = PF_BUF_INIT;
    pf_err err = {0};
    uint8_t *ref = malloc(n + PF_TAG_LEN);
    bad += pf_aead_seal(key, nonce, aad, aadlen, buf, n, &c, &err) != 0;
    bad += !ref_gcm(1, key, nonce, aad, aadlen, buf, n, ref);
    bad += c.len != n + PF_TAG_LEN || memcmp(c.data, ref, n + PF_TAG_LEN) != 0;
    bad += pf_aead_open(key, nonce, aad, aadlen, c.data, c.len, &p, &err) != 0;
    bad += p.len != n || (n && memcmp(p.data, buf, n) != 0);
    bad += !ref_gcm(0, key, nonce, aad, aadlen, c.data, c.len, ref) || (n && memcmp(ref, buf, n));
    if (next(seed) % 4 == 0) { /* damaged: refused the same way, then the next call works */
        c.data[next(seed) % c.len] ^= (uint8_t)(1u << (next(seed) % 8));
        pf_buf_reset(&p);
        bad += pf_aead_open(key, nonce, aad, aadlen, c.data, c.len, &p, &err) != -1;
        bad += err.code != PF_ECORRUPT || p.len != 0;
    }
    free(ref);
    pf_buf_free(&c);
    pf_buf_free(&p);
    return bad;
}

static void test_same_as_one_shot(void **state)
{
    (void)state;
    size_t cap = 300000;
    uint8_t *buf = malloc(cap);
    uint32_t seed = 42;
    int bad = 0;
    for (int i = 0; i < 600; i++)
        bad += one_round(&seed, buf, cap);
    assert_int_equal(bad, 0);
    free(buf);
}

/* A refused ciphertext leaves this thread's context usable: the same good ciphertext opens
 * before and after, and a seal after it is the reference's bytes. */
static void test_after_auth_failure(void **state)
{
    (void)state;
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN], msg[777], ref[777 + PF_TAG_LEN];
    uint32_t seed = 7;
    fill(key, sizeof key, &seed);
    fill(msg, sizeof msg, &seed);
    pf_nonce_from_counter(3, nonce);
    pf_buf c = PF_BUF_INIT, bad = PF_BUF_INIT, p = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_aead_seal(key, nonce, "a", 1, msg, sizeof msg, &c, &err), 0);
    pf_buf_append(&bad, c.data, c.len);
    bad.data[bad.len - 1] ^= 1; /* the tag */
    for (int i = 0; i < 3; i++) {
        pf_buf_reset(&p);
        assert_int_equal(pf_aead_open(key, nonce, "a", 1, bad.data, bad.len, &p, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_int_equal(p.len, 0);
        assert_int_equal(pf_aead_open(key, nonce, "a", 1, c.data, c.len, &p, &err), 0);
        assert_int_equal(p.len, sizeof msg);
        assert_memory_equal(p.data, msg, sizeof msg);
        /* The same key and nonce, but the AAD differs: refused too. */
        assert_int_equal(pf_aead_open(key, nonce, "b", 1, c.data, c.len, &p, &err), -1);
        pf_buf c2 = PF_BUF_INIT;
        assert_int_equal(pf_aead_seal(key, nonce, "a", 1, msg, sizeof msg, &c2, &err), 0);
        assert_true(ref_gcm(1, key, nonce, (const uint8_t *)"a", 1, msg, sizeof msg, ref));
        assert_int_equal(c2.len, sizeof ref);
        assert_memory_equal(c2.data, ref, sizeof ref);
        pf_buf_free(&c2);
    }
    pf_buf_free(&c);
    pf_buf_free(&bad);
    pf_buf_free(&p);
}

typedef struct worker_arg {
    uint32_t seed;
    int bad;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    size_t cap = 70000;
    uint8_t *buf = malloc(cap);
    for (int i = 0; buf && i < 250; i++)
        a->bad += one_round(&a->seed, buf, cap);
    if (!buf)
        a->bad++;
    free(buf);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    enum { N = 6 };
    pthread_t t[N];
    worker_arg a[N];
    for (int i = 0; i < N; i++) {
        a[i] = (worker_arg){(uint32_t)(1000 + i), 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_as_one_shot),
        cmocka_unit_test(test_after_auth_failure),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
