#include "repo/config.h"

#include <cjson/cJSON.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdlib.h>
#include <string.h>

#include "repo/names.h"
#include "repo/pack.h"

#define MIN_PACK_SIZE (1u << 20)
#define MAX_PACK_SIZE (1u << 30)
#define DEFAULT_PACK_SIZE (16u << 20)
#define MAC_INFO "permafrost config mac"
#define MAC_MAGIC "PFC2"

/* An integer in [0, 2^32): refuses fractions, negatives, NaN and anything larger, before
 * any cast. */
static int get_u32(const cJSON *o, const char *k, uint32_t *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 4294967295.0))
        return -1;
    uint32_t u = (uint32_t)v->valuedouble;
    if ((double)u != v->valuedouble)
        return -1;
    *out = u;
    return 0;
}

/* Format 2 holds exactly these fields, each once: nothing the MAC does not cover. */
static int only_fields(const cJSON *o, const char *const *names, size_t n)
{
    unsigned seen = 0, count = 0;
    for (const cJSON *c = o->child; c; c = c->next) {
        size_t i = 0;
        while (i < n && (!c->string || strcmp(c->string, names[i])))
            i++;
        if (i == n || (seen & (1u << i)))
            return -1;
        seen |= 1u << i;
        count++;
    }
    return count == n ? 0 : -1;
}

static int check_chunker(const pf_repo_config *c)
{
    uint32_t avg = c->chunk_avg;
    int pow2 = avg && !(avg & (avg - 1));
    /* Chunks larger than PF_MAX_BLOB would be written but could never be read back. */
    return c->chunk_min >= 64 && c->chunk_min < avg && avg < c->chunk_max &&
                   c->chunk_max <= PF_MAX_BLOB && pow2 && avg >= 256
               ? 0
               : -1;
}

int pf_config_parse(const void *text, size_t n, pf_repo_config *c, pf_err *err)
{
    static const char *const top_v2[] = {"version", "id", "chunker", "pack_size", "mac"};
    static const char *const chunker_fields[] = {"min", "avg", "max"};
    int rc = -1;
    memset(c, 0, sizeof *c);
    cJSON *o = cJSON_ParseWithLength(text, n);
    const cJSON *ch = cJSON_IsObject(o) ? cJSON_GetObjectItemCaseSensitive(o, "chunker") : NULL;
    const cJSON *ver = ch ? cJSON_GetObjectItemCaseSensitive(o, "version") : NULL;
    if (!cJSON_IsObject(ch) || !cJSON_IsNumber(ver)) {
        pf_err_set(err, PF_ENOREPO, "config is not a permafrost repository config");
        goto out;
    }
    if (ver->valuedouble != PF_CONFIG_V1 && ver->valuedouble != PF_CONFIG_V2 &&
        ver->valuedouble != PF_CONFIG_V3) {
        pf_err_set(err, PF_ENOREPO,
                   "repository format version %g is not supported by this permafrost (it reads "
                   "1, 2 and 3): use a newer permafrost",
                   ver->valuedouble);
        goto out;
    }
    c->version = (int)ver->valuedouble;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(o, "id");
    /* The id names a local cache folder: anything but 64 lower-case hex digits ("../..")
     * would put the cache, and what is written into it, elsewhere. */
    if (!cJSON_IsString(id) || !pf_name_is_id(id->valuestring)) {
        pf_err_set(err, PF_ECORRUPT,
                   "config has an invalid repository id (not 64 lower-case hex digits): "
                   "refusing the repository; its config was damaged or tampered with");
        goto out;
    }
    memcpy(c->id, id->valuestring, sizeof c->id);
    if (get_u32(ch, "min", &c->chunk_min) || get_u32(ch, "avg", &c->chunk_avg) ||
        get_u32(ch, "max", &c->chunk_max) || check_chunker(c)) {
        pf_err_set(err, PF_ECORRUPT, "config has invalid chunker parameters");
        goto out;
    }
    uint32_t ps = 0;
    int have_ps = get_u32(o, "pack_size", &ps) == 0;
    int ps_ok = have_ps && ps >= MIN_PACK_SIZE && ps <= MAX_PACK_SIZE;
    if (c->version == PF_CONFIG_V1) {
        c->pack_size = ps_ok ? ps : DEFAULT_PACK_SIZE;
        rc = 0;
        goto out;
    }
    const cJSON *mac = cJSON_GetObjectItemCaseSensitive(o, "mac");
    if (!cJSON_IsString(mac) || !pf_name_is_id(mac->valuestring) ||
        pf_unhex(mac->valuestring, c->mac, sizeof c->mac)) {
        pf_err_set(err, PF_ECORRUPT,
                   "config of format %d has no valid \"mac\": refusing the repository (its "
                   "config was damaged or tampered with)",
                   c->version);
        goto out;
    }
    if (!ps_ok || only_fields(o, top_v2, 5) || only_fields(ch, chunker_fields, 3)) {
        pf_err_set(err, PF_ECORRUPT,
                   "config of format 2 has an invalid pack_size, or a field it must not "
                   "have: refusing the repository");
        goto out;
    }
    c->pack_size = ps;
    rc = 0;
out:
    cJSON_Delete(o);
    return rc;
}

char *pf_config_encode(const pf_repo_config *c)
{
    cJSON *o = cJSON_CreateObject();
    char *text = NULL, hex[2 * PF_ID_LEN + 1];
    if (!o)
        return NULL;
    cJSON *ch = NULL;
    if (!cJSON_AddNumberToObject(o, "version", c->version) ||
        !cJSON_AddStringToObject(o, "id", c->id) || !(ch = cJSON_AddObjectToObject(o, "chunker")) ||
        !cJSON_AddNumberToObject(ch, "min", c->chunk_min) ||
        !cJSON_AddNumberToObject(ch, "avg", c->chunk_avg) ||
        !cJSON_AddNumberToObject(ch, "max", c->chunk_max) ||
        !cJSON_AddNumberToObject(o, "pack_size", c->pack_size))
        goto out;
    if (c->version >= PF_CONFIG_V2) {
        pf_hex(c->mac, sizeof c->mac, hex);
        if (!cJSON_AddStringToObject(o, "mac", hex))
            goto out;
    }
    char *p = cJSON_Print(o);
    if (p) {
        text = strdup(p);
        cJSON_free(p);
    }
out:
    cJSON_Delete(o);
    return text;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

void pf_config_mac_message(const pf_repo_config *c, uint8_t msg[PF_CONFIG_MAC_MSG_LEN])
{
    memcpy(msg, MAC_MAGIC, 4);
    put_u32(msg + 4, (uint32_t)c->version);
    /* c->id was checked to be 64 hex digits; an unparsable one gives zero bytes. */
    if (pf_unhex(c->id, msg + 8, PF_ID_LEN))
        memset(msg + 8, 0, PF_ID_LEN);
    put_u32(msg + 40, c->chunk_min);
    put_u32(msg + 44, c->chunk_avg);
    put_u32(msg + 48, c->chunk_max);
    put_u32(msg + 52, c->pack_size);
}

int pf_config_mac_key(const uint8_t master[PF_KEY_LEN], uint8_t key[PF_KEY_LEN], pf_err *err)
{
    return pf_hkdf(master, PF_KEY_LEN, NULL, 0, MAC_INFO, key, PF_KEY_LEN, err);
}

static int mac_with(const uint8_t key[PF_KEY_LEN], const pf_repo_config *c, uint8_t mac[PF_ID_LEN],
                    pf_err *err)
{
    uint8_t msg[PF_CONFIG_MAC_MSG_LEN];
    unsigned int len = PF_ID_LEN;
    pf_config_mac_message(c, msg);
    int ok = HMAC(EVP_sha256(), key, PF_KEY_LEN, msg, sizeof msg, mac, &len) != NULL;
    return ok ? 0 : pf_err_set(err, PF_EGENERIC, "HMAC failed");
}

int pf_config_mac(const uint8_t master[PF_KEY_LEN], const pf_repo_config *c, uint8_t mac[PF_ID_LEN],
                  pf_err *err)
{
    uint8_t key[PF_KEY_LEN];
    int rc = pf_config_mac_key(master, key, err) ? -1 : mac_with(key, c, mac, err);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}

int pf_config_verify_key(const uint8_t mac_key[PF_KEY_LEN], const pf_repo_config *c, pf_err *err)
{
    uint8_t want[PF_ID_LEN];
    if (c->version < PF_CONFIG_V2)
        return 0;
    if (mac_with(mac_key, c, want, err))
        return -1;
    if (CRYPTO_memcmp(want, c->mac, sizeof want))
        return pf_err_set(err, PF_ECORRUPT, "config fails authentication (its MAC is wrong)");
    return 0;
}

int pf_config_verify(const uint8_t master[PF_KEY_LEN], const pf_repo_config *c, pf_err *err)
{
    uint8_t key[PF_KEY_LEN];
    if (c->version < PF_CONFIG_V2)
        return 0;
    int rc = pf_config_mac_key(master, key, err) ? -1 : pf_config_verify_key(key, c, err);
    OPENSSL_cleanse(key, sizeof key);
    return rc;
}
