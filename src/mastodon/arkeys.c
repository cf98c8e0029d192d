#include "mastodon/arkeys.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>

const char *const pf_ar_key_names[3] = {PF_AR_PRIMARY, PF_AR_DETERMINISTIC, PF_AR_SALT};

bool pf_ar_looks_encrypted(const char *text, size_t len)
{
    size_t i = 0;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    if (i >= len || text[i++] != '{')
        return false;
    while (i < len && (text[i] == ' ' || text[i] == '\t' || text[i] == '\n' || text[i] == '\r'))
        i++;
    return len - i >= 4 && !memcmp(text + i, "\"p\"", 3) &&
           memchr(text + i, '}', len - i) != NULL && len - i < PF_AR_MAX_VALUE;
}

/* Base64 as Ruby's strict_encode64 writes it, decoded with OpenSSL. Returns the length,
 * or -1 when s is not base64 or does not fit in max bytes. */
static long b64_decode(const char *s, uint8_t *out, size_t max)
{
    size_t n = strlen(s);
    if (n % 4 || n / 4 * 3 > max + 2)
        return -1;
    if (n == 0)
        return 0;
    EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
    if (!ctx)
        return -1;
    /* EVP_DecodeUpdate may write up to 3/4 of its input rounded up: decode into a scratch
     * buffer of that size, then check the real length against max. */
    size_t cap = n / 4 * 3 + 3;
    uint8_t *tmp = malloc(cap);
    long ret = -1;
    int a = 0, b = 0;
    if (tmp) {
        EVP_DecodeInit(ctx);
        if (EVP_DecodeUpdate(ctx, tmp, &a, (const unsigned char *)s, (int)n) >= 0 &&
            EVP_DecodeFinal(ctx, tmp + a, &b) == 1 && (size_t)(a + b) <= max) {
            memcpy(out, tmp, (size_t)(a + b));
            ret = a + b;
        }
        OPENSSL_cleanse(tmp, cap);
        free(tmp);
    }
    EVP_ENCODE_CTX_free(ctx);
    return ret;
}

static const char *member_string(const cJSON *obj, const char *name)
{
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, name);
    return cJSON_IsString(m) ? m->valuestring : NULL;
}

int pf_ar_envelope_parse(const char *text, size_t len, pf_ar_envelope *out, pf_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > PF_AR_MAX_VALUE)
        return pf_err_set(err, PF_ECORRUPT, "encrypted value: longer than %d bytes",
                          PF_AR_MAX_VALUE);
    cJSON *doc = cJSON_ParseWithLength(text, len);
    if (!doc || !cJSON_IsObject(doc)) {
        cJSON_Delete(doc);
        return pf_err_set(err, PF_ECORRUPT, "encrypted value: not a JSON object");
    }
    int rc = -1;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(doc, "h");
    const char *p = member_string(doc, "p");
    const char *iv = cJSON_IsObject(h) ? member_string(h, "iv") : NULL;
    const char *at = cJSON_IsObject(h) ? member_string(h, "at") : NULL;
    if (!p) {
        pf_err_set(err, PF_ECORRUPT, "encrypted value: no \"p\" (payload) string");
        goto out;
    }
    if (!cJSON_IsObject(h)) {
        pf_err_set(err, PF_ECORRUPT, "encrypted value: no \"h\" (headers) object");
        goto out;
    }
    if (cJSON_GetObjectItemCaseSensitive(h, "k")) {
        /* Envelope encryption: a per-value data key, itself encrypted. Mastodon does not
         * use it; proving such keys would need that scheme too. */
        pf_err_set(err, PF_EUSAGE,
                   "encrypted value: uses envelope encryption (\"k\"), which "
                   "permafrost cannot verify");
        goto out;
    }
    if (!iv || b64_decode(iv, out->iv, sizeof out->iv) != PF_AR_IV_LEN) {
        pf_err_set(err, PF_ECORRUPT, "encrypted value: \"h\".\"iv\" is not %d bytes of base64",
                   PF_AR_IV_LEN);
        goto out;
    }
    if (!at || b64_decode(at, out->tag, sizeof out->tag) != PF_AR_TAG_LEN) {
        pf_err_set(err, PF_ECORRUPT, "encrypted value: \"h\".\"at\" is not %d bytes of base64",
                   PF_AR_TAG_LEN);
        goto out;
    }
    size_t plen = strlen(p);
    out->ct = malloc(plen / 4 * 3 + 1);
    if (!out->ct) {
        pf_err_set(err, PF_EGENERIC, "encrypted value: out of memory");
        goto out;
    }
    long n = b64_decode(p, out->ct, plen / 4 * 3 + 1);
    if (n < 0) {
        pf_err_set(err, PF_ECORRUPT, "encrypted value: \"p\" is not base64");
        goto out;
    }
    out->ct_len = (size_t)n;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(h, "c");
    out->compressed = cJSON_IsTrue(c);
    rc = 0;
out:
    cJSON_Delete(doc);
    return rc;
}

void pf_ar_envelope_free(pf_ar_envelope *e)
{
    if (!e)
        return;
    free(e->ct);
    memset(e, 0, sizeof *e);
}

int pf_ar_derive_key(const char *secret, const char *salt, pf_ar_digest digest,
                     uint8_t key[PF_AR_KEY_LEN], pf_err *err)
{
    if (!secret || !*secret || !salt || !*salt)
        return pf_err_set(err, PF_EUSAGE, "key derivation: empty secret or salt");
    const EVP_MD *md = digest == PF_AR_SHA1 ? EVP_sha1() : EVP_sha256();
    if (PKCS5_PBKDF2_HMAC(secret, (int)strlen(secret), (const unsigned char *)salt,
                          (int)strlen(salt), PF_AR_ITERATIONS, md, PF_AR_KEY_LEN, key) != 1)
        return pf_err_set(err, PF_EGENERIC, "key derivation: OpenSSL's PBKDF2 failed");
    return 0;
}

int pf_ar_decrypt(const pf_ar_envelope *e, const uint8_t key[PF_AR_KEY_LEN], pf_buf *plain,
                  pf_err *err)
{
    EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
    if (!ctx)
        return pf_err_set(err, PF_EGENERIC, "decryption: out of memory");
    int rc = -1, n = 0, fin = 0;
    pf_buf_reserve(plain, e->ct_len + 16);
    uint8_t *dst = plain->data + plain->len;
    uint8_t tag[PF_AR_TAG_LEN];
    memcpy(tag, e->tag, sizeof tag);
    if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, PF_AR_IV_LEN, NULL) != 1 ||
        EVP_DecryptInit_ex(ctx, NULL, NULL, key, e->iv) != 1 ||
        (e->ct_len && EVP_DecryptUpdate(ctx, dst, &n, e->ct, (int)e->ct_len) != 1) ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, PF_AR_TAG_LEN, tag) != 1) {
        pf_err_set(err, PF_EGENERIC, "decryption: OpenSSL's AES-256-GCM failed");
        goto out;
    }
    if (EVP_DecryptFinal_ex(ctx, dst + n, &fin) != 1) {
        OPENSSL_cleanse(dst, e->ct_len + 16);
        pf_err_set(err, PF_EAUTH, "the key does not decrypt this value");
        goto out;
    }
    plain->len += (size_t)(n + fin);
    plain->data[plain->len] = 0;
    rc = 0;
out:
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

/* Whether the key derived from secret with digest decrypts e. */
static int try_key(const pf_ar_envelope *e, const char *secret, const char *salt,
                   pf_ar_digest digest, pf_err *err)
{
    uint8_t key[PF_AR_KEY_LEN];
    if (pf_ar_derive_key(secret, salt, digest, key, err))
        return -1;
    pf_buf plain = PF_BUF_INIT;
    int rc = pf_ar_decrypt(e, key, &plain, err);
    OPENSSL_cleanse(key, sizeof key);
    pf_buf_free(&plain);
    return rc;
}

int pf_ar_keys_fit(const pf_ar_keys *k, const char *value, size_t len, pf_ar_fit *fit, pf_err *err)
{
    const char *vals[3] = {k->primary, k->deterministic, k->salt};
    for (int i = 0; i < 3; i++)
        if (!vals[i] || !*vals[i])
            return pf_err_set(err, PF_EUSAGE, "%s is not set", pf_ar_key_names[i]);
    pf_ar_envelope e;
    if (pf_ar_envelope_parse(value, len, &e, err)) {
        pf_ar_envelope_free(&e);
        return -1;
    }
    static const struct {
        bool det;
        pf_ar_digest d;
    } tries[] = {
        {false, PF_AR_SHA256}, {false, PF_AR_SHA1}, {true, PF_AR_SHA256}, {true, PF_AR_SHA1}};
    int rc = -1;
    bool other = false; /* a failure that is not "wrong key": already in err */
    for (size_t i = 0; i < sizeof tries / sizeof *tries; i++) {
        pf_err e2 = {0};
        if (!try_key(&e, tries[i].det ? k->deterministic : k->primary, k->salt, tries[i].d, &e2)) {
            if (fit)
                *fit = (pf_ar_fit){.deterministic = tries[i].det, .digest = tries[i].d};
            rc = 0;
            break;
        }
        if (e2.code != PF_EAUTH) {
            *err = e2;
            other = true;
            break;
        }
    }
    if (rc && !other)
        pf_err_set(err, PF_EAUTH,
                   "%s, %s and %s do not decrypt it (with neither SHA-256 nor SHA-1 key "
                   "derivation)",
                   PF_AR_PRIMARY, PF_AR_DETERMINISTIC, PF_AR_SALT);
    pf_ar_envelope_free(&e);
    return rc;
}
