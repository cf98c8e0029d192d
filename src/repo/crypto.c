#include "repo/crypto.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <string.h>

int pf_random(void *p, size_t n, pf_err *err)
{
    if (RAND_bytes(p, (int)n) != 1)
        return pf_err_set(err, PF_EGENERIC, "random number generator failed");
    return 0;
}

void pf_sha256(const void *p, size_t n, uint8_t out[PF_ID_LEN])
{
    SHA256(p, n, out);
}

void pf_blob_id(const pf_keys *keys, const void *p, size_t n, uint8_t out[PF_ID_LEN])
{
    unsigned int len = PF_ID_LEN;
    HMAC(EVP_sha256(), keys->id_key, PF_KEY_LEN, p, n, out, &len);
}

int pf_hkdf(const uint8_t *ikm, size_t ikmlen, const uint8_t *salt, size_t saltlen,
            const char *info, uint8_t *out, size_t outlen, pf_err *err)
{
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
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    pf_buf_reserve(out, body + PF_TAG_LEN);
    uint8_t *dst = out->data + out->len;
    if (EVP_CipherInit_ex(ctx, EVP_aes_256_gcm(), NULL, key, nonce, enc) != 1)
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
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int pf_aead_seal(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *p, size_t n, pf_buf *out,
                 pf_err *err)
{
    return aead(1, key, nonce, aad, aadlen, p, n, out, err);
}

int pf_aead_open(const uint8_t key[PF_KEY_LEN], const uint8_t nonce[PF_NONCE_LEN],
                 const void *aad, size_t aadlen, const void *c, size_t n, pf_buf *out,
                 pf_err *err)
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
