#include "repo/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The algorithms, fetched once for the process. Without a fetched algorithm OpenSSL 3
 * looks one up by name at every EVP_sha256(), EVP_aes_256_gcm() or HMAC() call, through
 * locks and hash tables, and makes and frees a context each time: that cost more than
 * opening a small blob (an unchanged re-run opens one tree of a few hundred bytes per
 * directory). The fetched objects are shared read-only by every thread and never freed:
 * a thread still running at exit (a lock's refresher) may be using them. */
static struct {
    EVP_CIPHER *gcm;
    EVP_MAC *hmac;
    EVP_MD *sha256;
    EVP_KDF *hkdf;
    int ok;
} alg;
static pthread_once_t alg_once = PTHREAD_ONCE_INIT;
static pthread_key_t ctx_key;

/* Each thread's reusable contexts, made on its first call and freed (wiped: they hold
 * key schedules) when it exits. Between calls they hold the last key used, as the
 * caller's own key buffers and the repository's keys do for longer. */
typedef struct thread_ctx {
    EVP_CIPHER_CTX *gcm; /* AES-256-GCM, re-keyed at every call */
    EVP_MAC_CTX *mac;    /* HMAC-SHA-256 under mac_key, when mac_keyed */
    uint8_t mac_key[PF_KEY_LEN];
    int mac_keyed;
    EVP_MD_CTX *md; /* SHA-256 */
} thread_ctx;

static void thread_ctx_free(void *p)
{
    thread_ctx *t = p;
    if (!t)
        return;
    EVP_CIPHER_CTX_free(t->gcm);
    EVP_MAC_CTX_free(t->mac);
    EVP_MD_CTX_free(t->md);
    OPENSSL_cleanse(t, sizeof *t);
    free(t);
}

/* No key destructor runs for the thread that calls exit (the main thread): free its
 * contexts here, so that they are wiped and leak checkers see nothing. Registered after
 * the fetches, which initialise OpenSSL, so this runs before OpenSSL's own cleanup. */
static void free_exit_thread_ctx(void)
{
    thread_ctx *t = pthread_getspecific(ctx_key);
    pthread_setspecific(ctx_key, NULL);
    thread_ctx_free(t);
}

static void alg_init(void)
{
    alg.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
    alg.hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    alg.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
    alg.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
    alg.ok = alg.gcm && alg.hmac && alg.sha256 && alg.hkdf &&
             pthread_key_create(&ctx_key, thread_ctx_free) == 0;
    if (alg.ok && atexit(free_exit_thread_ctx) != 0)
        alg.ok = 0;
}

static int alg_ready(void)
{
    return pthread_once(&alg_once, alg_init) == 0 && alg.ok;
}

/* This thread's contexts, or NULL when they cannot be made (out of memory, or OpenSSL
 * lacks an algorithm): the callers then take the one-shot calls, which say why if they
 * fail too. */
static thread_ctx *thread_ctx_get(void)
{
    if (!alg_ready())
        return NULL;
    thread_ctx *t = pthread_getspecific(ctx_key);
    if (t)
        return t;
    t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->gcm = EVP_CIPHER_CTX_new();
    t->mac = EVP_MAC_CTX_new(alg.hmac);
    t->md = EVP_MD_CTX_new();
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA2-256", 0),
        OSSL_PARAM_construct_end()};
    if (!t->gcm || !t->mac || !t->md ||
        EVP_CipherInit_ex2(t->gcm, alg.gcm, NULL, NULL, 1, NULL) != 1 ||
        EVP_MAC_CTX_set_params(t->mac, params) != 1 || pthread_setspecific(ctx_key, t) != 0) {
        thread_ctx_free(t);
        return NULL;
    }
    return t;
}

int pf_random(void *p, size_t n, pf_err *err)
{
    if (RAND_bytes(p, (int)n) != 1)
        return pf_err_set(err, PF_EGENERIC, "random number generator failed");
    return 0;
}

void pf_sha256(const void *p, size_t n, uint8_t out[PF_ID_LEN])
{
    thread_ctx *t = thread_ctx_get();
    if (t && EVP_DigestInit_ex2(t->md, alg.sha256, NULL) == 1 &&
        EVP_DigestUpdate(t->md, p, n) == 1 && EVP_DigestFinal_ex(t->md, out, NULL) == 1)
        return;
    SHA256(p, n, out);
}

/* Keys t->mac with key: a key it already holds is reused as is (HMAC's inner and outer
 * pad states are kept by OpenSSL, so only the message is hashed), another is set. */
static int mac_init(thread_ctx *t, const uint8_t key[PF_KEY_LEN])
{
    if (t->mac_keyed && CRYPTO_memcmp(t->mac_key, key, PF_KEY_LEN) == 0)
        return EVP_MAC_init(t->mac, NULL, 0, NULL) == 1;
    t->mac_keyed = 0;
    if (EVP_MAC_init(t->mac, key, PF_KEY_LEN, NULL) != 1)
        return 0;
    memcpy(t->mac_key, key, PF_KEY_LEN);
    t->mac_keyed = 1;
    return 1;
}

void pf_blob_id(const pf_keys *keys, const void *p, size_t n, uint8_t out[PF_ID_LEN])
{
    thread_ctx *t = thread_ctx_get();
    size_t mlen = 0;
    if (t && mac_init(t, keys->id_key) && EVP_MAC_update(t->mac, p, n) == 1 &&
        EVP_MAC_final(t->mac, out, &mlen, PF_ID_LEN) == 1 && mlen == PF_ID_LEN)
        return;
    if (t)
        t->mac_keyed = 0; /* in an unknown state: keyed afresh next time */
    unsigned int len = PF_ID_LEN;
    HMAC(EVP_sha256(), keys->id_key, PF_KEY_LEN, p, n, out, &len);
}

int pf_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
            const char *info, uint8_t *out, size_t outlen, pf_err *err)
{
    if (alg_ready()) {
        EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(alg.hkdf);
        OSSL_PARAM params[5], *q = params;
        *q++ = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA2-256", 0);
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen);
        if (saltlen)
            *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen);
        *q++ = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, strlen(info));
        *q = OSSL_PARAM_construct_end();
        int ok = kctx && EVP_KDF_derive(kctx, out, outlen, params) == 1;
        EVP_KDF_CTX_free(kctx);
        return ok ? 0 : pf_err_set(err, PF_EGENERIC, "HKDF failed");
    }
    int rc = -1;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
    if (!ctx || EVP_PKEY_derive_init(ctx) <= 0 ||
        EVP_PKEY_CTX_set_hkdf_md(ctx, EVP_sha256()) <= 0 ||
        EVP_PKEY_CTX_set1_hkdf_key(ctx, ikm, (int)ikmlen) <= 0 ||
        (saltlen && EVP_PKEY_CTX_set1_hkdf_salt(ctx, salt, (int)saltlen) <= 0) ||
        EVP_PKEY_CTX_add1_hkdf_info(ctx, (const unsigned char *)info, (int)strlen(info)) <= 0 ||
        EVP_PKEY_derive(ctx, out, &outlen) <= 0) {
        pf_err_set(err, PF_EGENERIC, "HKDF failed");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

int pf_keys_derive(pf_keys *keys, pf_err *err)
{
    return pf_hkdf(keys->master, PF_KEY_LEN, NULL, 0, "permafrost blob id", keys->id_key,
                   PF_KEY_LEN, err);
}

void pf_keys_wipe(pf_keys *keys)
{
    OPENSSL_cleanse(keys, sizeof *keys);
}

int pf_scrypt(const char *pass, size_t passlen, const uint8_t *salt, size_t saltlen, uint64_t n,
              uint32_t r, uint32_t p, uint8_t out[PF_KEY_LEN], pf_err *err)
{
    /* maxmem must cover 128 * N * r bytes plus slack, or OpenSSL refuses. */
    uint64_t maxmem = 128 * n * r * 2 + (1u << 20);
    if (EVP_PBE_scrypt(pass, passlen, salt, saltlen, n, r, p, maxmem, out, PF_KEY_LEN) != 1)
        return pf_err_set(err, PF_EGENERIC, "scrypt failed (N=%llu r=%u p=%u)",
                          (unsigned long long)n, r, p);
    return 0;
}

void pf_nonce_from_counter(uint64_t counter, uint8_t nonce[PF_NONCE_LEN])
{
    memset(nonce, 0, PF_NONCE_LEN);
    for (int i = 0; i < 8; i++)
        nonce[PF_NONCE_LEN - 1 - i] = (uint8_t)(counter >> (8 * i));
}

static int aead(int enc, const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN],
                const void *aad, size_t aadlen, const uint8_t *in, size_t n, pf_buf *out,
                pf_err *err)
{
    int rc = -1, len = 0;
    if (!enc && n < PF_TAG_LEN)
        return pf_err_set(err, PF_ECORRUPT, "ciphertext shorter than its tag");
    if (n > INT32_MAX)
        return pf_err_set(err, PF_EGENERIC, "object too large to encrypt");
    size_t body = enc ? n : n - PF_TAG_LEN;
    /* This thread's context, re-initialised with the key and the nonce (its cipher kept):
     * that resets all its state, a failed authentication's included. */
    thread_ctx *t = thread_ctx_get();
    EVP_CIPHER_CTX *ctx = t ? t->gcm : EVP_CIPHER_CTX_new();
    if (!ctx)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    pf_buf_reserve(out, body + PF_TAG_LEN);
    uint8_t *dst = out->data + out->len;
    if ((t ? EVP_CipherInit_ex2(ctx, NULL, key, nonce, enc, NULL)
           : EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc)) != 1)
        goto fail;
    if (aadlen && EVP_CipherUpdate(ctx, NULL, &len, aad, (int)aadlen) != 1)
        goto fail;
    if (body && EVP_CipherUpdate(ctx, dst, &len, in, (int)body) != 1)
        goto fail;
    if (enc) {
        if (EVP_CipherFinal_ex(ctx, dst + body, &len) != 1 ||
            EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, PF_TAG_LEN, dst + body) != 1)
            goto fail;
        out->len += body + PF_TAG_LEN;
    } else {
        if (EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PF_TAG_LEN, (void *)(in + body)) != 1)
            goto fail;
        if (EVP_CipherFinal_ex(ctx, dst + body, &len) != 1) {
            OPENSSL_cleanse(dst, body);
            pf_err_set(err, PF_ECORRUPT, "authentication failed: data damaged or wrong key");
            goto out;
        }
        out->len += body;
    }
    out->data[out->len] = 0;
    rc = 0;
    goto out;
fail:
    pf_err_set(err, PF_EGENERIC, "AES-GCM failed");
out:
    if (!t)
        EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int pf_aead_seal(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *p, size_t n, pf_buf *out, pf_err *err)
{
    return aead(1, key, nonce, aad, aadlen, p, n, out, err);
}

int pf_aead_open(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN], const void *aad,
                 size_t aadlen, const void *c, size_t n, pf_buf *out, pf_err *err)
{
    return aead(0, key, nonce, aad, aadlen, c, n, out, err);
}

void pf_hex(const uint8_t *p, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int pf_unhex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hexval(s[2 * i]), lo = hi < 0 ? -1 : hexval(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return s[2 * n] == 0 ? 0 : -1;
}
