#include "repo/writekey.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <string.h>

#define WRITER_INFO "permafrost writer key"
#define PAIR_INFO "permafrost repository x25519"

static int x25519_public(const uint8_t priv[PF_KEY_LEN], uint8_t pub[PF_KEY_LEN], pf_err *err)
{
    EVP_PKEY *k = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, PF_KEY_LEN);
    size_t len = PF_KEY_LEN;
    int ok = k && EVP_PKEY_get_raw_public_key(k, pub, &len) == 1 && len == PF_KEY_LEN;
    EVP_PKEY_free(k);
    return ok ? 0 : pf_err_set(err, PF_EGENERIC, "X25519 key generation failed");
}

/* X25519(priv, peer); an all-zero result (peer of small order, which only a forger sends)
 * is refused rather than used as a key everyone knows. */
static int x25519(const uint8_t priv[PF_KEY_LEN], const uint8_t peer[PF_KEY_LEN],
                  uint8_t out[PF_KEY_LEN], pf_err *err)
{
    int rc = -1;
    EVP_PKEY *a = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, PF_KEY_LEN);
    EVP_PKEY *b = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, PF_KEY_LEN);
    EVP_PKEY_CTX *ctx = a && b ? EVP_PKEY_CTX_new(a, NULL) : NULL;
    size_t len = PF_KEY_LEN;
    if (!ctx || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, b) != 1 ||
        EVP_PKEY_derive(ctx, out, &len) != 1 || len != PF_KEY_LEN) {
        pf_err_set(err, PF_ECORRUPT, "X25519 failed: the object's ephemeral key is invalid");
        goto out;
    }
    uint8_t zero[PF_KEY_LEN] = {0};
    if (CRYPTO_memcmp(out, zero, PF_KEY_LEN) == 0) {
        pf_err_set(err, PF_ECORRUPT, "the object's ephemeral key is of small order (forged)");
        goto out;
    }
    rc = 0;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(a);
    EVP_PKEY_free(b);
    return rc;
}

int pf_wk_derive(pf_keys *keys, pf_err *err)
{
    if (pf_hkdf(keys->master, PF_KEY_LEN, NULL, 0, WRITER_INFO, keys->writer_key, PF_KEY_LEN,
                err) ||
        pf_hkdf(keys->master, PF_KEY_LEN, NULL, 0, PAIR_INFO, keys->priv, PF_KEY_LEN, err) ||
        x25519_public(keys->priv, keys->pub, err))
        return -1;
    keys->has_pair = true;
    return 0;
}

static int derive(const uint8_t shared[PF_KEY_LEN], const uint8_t eph_pub[PF_KEY_LEN],
                  const uint8_t pub[PF_KEY_LEN], const char *info, uint8_t key[PF_KEY_LEN],
                  pf_err *err)
{
    uint8_t salt[2 * PF_KEY_LEN];
    memcpy(salt, eph_pub, PF_KEY_LEN);
    memcpy(salt + PF_KEY_LEN, pub, PF_KEY_LEN);
    return pf_hkdf(shared, PF_KEY_LEN, salt, sizeof salt, info, key, PF_KEY_LEN, err);
}

int pf_wk_seal_key(const uint8_t pub[PF_KEY_LEN], const uint8_t eph_priv[PF_KEY_LEN],
                   const char *info, uint8_t eph_pub[PF_KEY_LEN], uint8_t key[PF_KEY_LEN],
                   pf_err *err)
{
    uint8_t shared[PF_KEY_LEN];
    int rc = x25519_public(eph_priv, eph_pub, err) || x25519(eph_priv, pub, shared, err) ||
                     derive(shared, eph_pub, pub, info, key, err)
                 ? -1
                 : 0;
    OPENSSL_cleanse(shared, sizeof shared);
    return rc;
}

int pf_wk_open_key(const pf_keys *keys, const uint8_t eph_pub[PF_KEY_LEN], const char *info,
                   uint8_t key[PF_KEY_LEN], pf_err *err)
{
    if (keys->write_only || !keys->has_pair)
        return pf_err_set(err, PF_EAUTH,
                          "sealed to the repository's public key: only a full key opens it");
    uint8_t shared[PF_KEY_LEN];
    int rc = x25519(keys->priv, eph_pub, shared, err) ||
                     derive(shared, eph_pub, keys->pub, info, key, err)
                 ? -1
                 : 0;
    OPENSSL_cleanse(shared, sizeof shared);
    return rc;
}

void pf_wk_material_encode(const pf_keys *keys, const uint8_t mac_key[PF_KEY_LEN],
                           const uint8_t gear[PF_GEAR_LEN], uint8_t out[PF_WRITE_MATERIAL_LEN])
{
    memcpy(out, keys->id_key, PF_KEY_LEN);
    memcpy(out + PF_KEY_LEN, keys->writer_key, PF_KEY_LEN);
    memcpy(out + 2 * PF_KEY_LEN, mac_key, PF_KEY_LEN);
    memcpy(out + 3 * PF_KEY_LEN, keys->pub, PF_KEY_LEN);
    memcpy(out + 4 * PF_KEY_LEN, gear, PF_GEAR_LEN);
}

void pf_wk_material_decode(const uint8_t in[PF_WRITE_MATERIAL_LEN], pf_keys *keys,
                           uint8_t mac_key[PF_KEY_LEN], uint8_t gear[PF_GEAR_LEN])
{
    memset(keys, 0, sizeof *keys);
    memcpy(keys->id_key, in, PF_KEY_LEN);
    memcpy(keys->writer_key, in + PF_KEY_LEN, PF_KEY_LEN);
    memcpy(mac_key, in + 2 * PF_KEY_LEN, PF_KEY_LEN);
    memcpy(keys->pub, in + 3 * PF_KEY_LEN, PF_KEY_LEN);
    memcpy(gear, in + 4 * PF_KEY_LEN, PF_GEAR_LEN);
    keys->has_pair = true;
    keys->write_only = true;
}
