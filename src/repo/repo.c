#include "repo/repo.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pwd.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zstd.h>

#include "common/alloc.h"
#include "common/log.h"
#include "repo/idset.h"
#include "repo/names.h"
#include "repo/pack.h"
#include "repo/writekey.h"

#define DEFAULT_CHUNK_MIN (512u << 10)
#define DEFAULT_CHUNK_AVG (1u << 20)
#define DEFAULT_CHUNK_MAX (8u << 20)
#define DEFAULT_PACK_SIZE (16u << 20)
#define KDF_N 32768
#define KDF_R 8
#define KDF_P 1
#define OBJECT_MAGIC "PFO1"
/* Metadata objects (snapshots, index files, locks) larger than this are refused. */
#define MAX_OBJECT (1u << 30)
#define KEY_AAD_V1 "permafrost key"
#define KEY_AAD_V2 "permafrost key v2 "
#define KEY_AAD_WRITE "permafrost write-only key "
/* Key file version 3: a write-only key (format 3 only). */
#define KEY_VERSION_WRITE 3
/* Sealed objects: under the master key, under the writers' key, sealed to the public key. */
#define OBJECT_MAGIC_WRITER "PFOW"
#define OBJECT_MAGIC_SEALED "PFOP"
#define WRITER_OBJECT_INFO "permafrost writer object key"

static pf_repo *repo_alloc(pf_store *store)
{
    pf_repo *r = calloc(1, sizeof *r);
    if (!r) {
        pf_store_free(store);
        return NULL;
    }
    r->store = store;
    r->index = pf_index_new();
    pthread_mutex_init(&r->mu, NULL);
    pf_pack_keys_init(&r->pack_keys);
    r->zstd_level = 3;
    r->cache_fd = -1;
    return r;
}

void pf_repo_free(pf_repo *r)
{
    if (!r)
        return;
    pf_store_free(r->store);
    pf_index_free(r->index);
    pf_index_file_free(&r->recovered);
    free(r->cache_dir);
    if (r->cache_fd >= 0)
        close(r->cache_fd);
    pthread_mutex_destroy(&r->mu);
    pf_pack_keys_free(&r->pack_keys);
    OPENSSL_cleanse(r, sizeof *r);
    free(r);
}

void pf_pack_key_name(const uint8_t id[PF_ID_LEN], char out[80])
{
    /* "data/xx/<hex id>", by hand: it is formatted for every blob loaded (one per
     * directory in a re-run), where snprintf cost more than the index lookup. */
    memcpy(out, "data/", 5);
    pf_hex(id, PF_ID_LEN, out + 8);
    out[5] = out[8];
    out[6] = out[9];
    out[7] = '/';
}

static void now_str(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* The AAD that seals the master key in a key file. Format 2 binds the key to the
 * repository id and, because a format-1 reader uses another AAD, to format 2 itself: a key
 * that opens as format 2 proves the repository is of format 2, so a config replaced by a
 * format-1 one (which has no MAC) is noticed. */
static size_t key_aad(int version, const char *repo_id, char out[96])
{
    if (version < PF_CONFIG_V2)
        return (size_t)snprintf(out, 96, "%s", KEY_AAD_V1);
    if (version == KEY_VERSION_WRITE)
        return (size_t)snprintf(out, 96, "%s%s", KEY_AAD_WRITE, repo_id);
    return (size_t)snprintf(out, 96, "%s%s", KEY_AAD_V2, repo_id);
}

/* Writes a key file of version `version` sealing secret[0..n) under pass. */
static int write_key_file(pf_repo *r, int version, const char *pass, const uint8_t *secret,
                          size_t n, char id_out[PF_HEX_ID_LEN + 1], pf_err *err)
{
    int rc = -1;
    uint8_t salt[PF_SALT_LEN], kek[PF_KEY_LEN], nonce[PF_NONCE_LEN];
    char salt_hex[2 * PF_SALT_LEN + 1], when[32], host[256] = "", aad[96];
    pf_buf sealed = PF_BUF_INIT;
    char *hex = NULL, *text = NULL;
    cJSON *o = NULL;
    size_t aadlen = key_aad(version, r->id, aad);
    if (pf_random(salt, sizeof salt, err) ||
        pf_scrypt(pass, strlen(pass), salt, sizeof salt, KDF_N, KDF_R, KDF_P, kek, err))
        goto out;
    pf_nonce_from_counter(0, nonce);
    if (pf_aead_seal(kek, nonce, aad, aadlen, secret, n, &sealed, err))
        goto out;
    hex = malloc(2 * sealed.len + 1);
    if (!hex) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    pf_hex(sealed.data, sealed.len, hex);
    pf_hex(salt, sizeof salt, salt_hex);
    now_str(when, sizeof when);
    gethostname(host, sizeof host - 1);
    struct passwd *pw = getpwuid(getuid());
    o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", version);
    if (version == KEY_VERSION_WRITE)
        cJSON_AddStringToObject(o, "kind", "write-only");
    cJSON_AddStringToObject(o, "created", when);
    cJSON_AddStringToObject(o, "host", host);
    cJSON_AddStringToObject(o, "user", pw ? pw->pw_name : "");
    cJSON_AddStringToObject(o, "kdf", "scrypt");
    cJSON_AddNumberToObject(o, "N", KDF_N);
    cJSON_AddNumberToObject(o, "r", KDF_R);
    cJSON_AddNumberToObject(o, "p", KDF_P);
    cJSON_AddStringToObject(o, "salt", salt_hex);
    cJSON_AddStringToObject(o, "sealed", hex);
    text = cJSON_Print(o);
    uint8_t kid[PF_ID_LEN];
    pf_sha256(text, strlen(text), kid);
    char name[8 + PF_HEX_ID_LEN + 1];
    pf_hex(kid, PF_ID_LEN, id_out);
    snprintf(name, sizeof name, "keys/%s", id_out);
    if (pf_store_put(r->store, name, text, strlen(text), err)) {
        pf_err_prefix(err, "writing key");
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(kek, sizeof kek);
    pf_buf_free(&sealed);
    free(hex);
    free(text);
    cJSON_Delete(o);
    return rc;
}

int pf_repo_need_full_key(const pf_repo *r, const char *what, pf_err *err)
{
    if (!r->keys.write_only)
        return 0;
    return pf_err_set(err, PF_EAUTH,
                      "%s needs a full key: key %.8s is write-only (it adds backups but reads "
                      "nothing stored); run it on a trusted machine with a full key's "
                      "passphrase, or the paper key ('key import --paper')",
                      what, r->key_id);
}

int pf_repo_add_key(pf_repo *r, const char *pass, char id_out[PF_HEX_ID_LEN + 1], pf_err *err)
{
    if (pf_repo_need_full_key(r, "adding a key", err))
        return -1;
    int version = r->format >= PF_CONFIG_V2 ? 2 : 1;
    return write_key_file(r, version, pass, r->keys.master, PF_KEY_LEN, id_out, err);
}

static int derive_all(pf_repo *r, uint32_t cmin, uint32_t cavg, uint32_t cmax, pf_err *err)
{
    /* Chunks larger than PF_MAX_BLOB would be written but could never be read back. */
    if (cmin < 64 || cmax > PF_MAX_BLOB)
        return pf_err_set(err, PF_EUSAGE, "invalid chunker parameters min=%u max=%u", cmin, cmax);
    if (r->keys.write_only) {
        /* No master key to derive the gear table from: the key file carried it. */
        if (pf_chunker_init(&r->chunker, r->keys.id_key, cmin, cavg, cmax, err))
            return -1;
        for (int i = 0; i < 256; i++)
            r->chunker.gear[i] = pf_le64(r->gear + 8 * i);
        return 0;
    }
    if (pf_keys_derive(&r->keys, err) || (r->format >= PF_CONFIG_V3 && pf_wk_derive(&r->keys, err)))
        return -1;
    return pf_chunker_init(&r->chunker, r->keys.master, cmin, cavg, cmax, err);
}

/* Writes config from r's fields in r->format, with its MAC when that is format 2. */
static int write_config(pf_repo *r, pf_err *err)
{
    pf_repo_config c = {.version = r->format,
                        .chunk_min = (uint32_t)r->chunker.min,
                        .chunk_avg = (uint32_t)r->chunker.avg,
                        .chunk_max = (uint32_t)r->chunker.max,
                        .pack_size = r->pack_size};
    memcpy(c.id, r->id, sizeof c.id);
    if (c.version >= PF_CONFIG_V2 && pf_config_mac(r->keys.master, &c, c.mac, err))
        return -1;
    char *text = pf_config_encode(&c);
    if (!text)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    int rc = pf_store_put(r->store, "config", text, strlen(text), err);
    if (rc)
        pf_err_prefix(err, "writing config");
    free(text);
    return rc;
}

pf_repo *pf_repo_init(pf_store *store, const char *pass, const pf_repo_init_opts *opts, pf_err *err)
{
    pf_repo *r = repo_alloc(store);
    uint64_t sz;
    if (!r) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    pf_err probe = {0};
    if (pf_store_stat(store, "config", &sz, &probe) == 0) {
        pf_err_set(err, PF_EEXIST, "a repository already exists at %s", store->location);
        goto fail;
    }
    if (probe.code != PF_ENOTFOUND) {
        *err = probe;
        goto fail;
    }
    uint32_t cmin = opts && opts->chunk_min ? opts->chunk_min : DEFAULT_CHUNK_MIN;
    uint32_t cavg = opts && opts->chunk_avg ? opts->chunk_avg : DEFAULT_CHUNK_AVG;
    uint32_t cmax = opts && opts->chunk_max ? opts->chunk_max : DEFAULT_CHUNK_MAX;
    if (opts && opts->master)
        memcpy(r->keys.master, opts->master, PF_KEY_LEN);
    else if (pf_random(r->keys.master, PF_KEY_LEN, err))
        goto fail;
    uint8_t rid[PF_ID_LEN];
    if (pf_random(rid, sizeof rid, err) || derive_all(r, cmin, cavg, cmax, err))
        goto fail;
    pf_hex(rid, sizeof rid, r->id);
    r->format = PF_CONFIG_CURRENT;
    r->pack_size = DEFAULT_PACK_SIZE;
    /* The key goes first: a config without a key would be a repository nobody can open,
     * while a key without a config is ignored and init can simply be run again. */
    if (pf_repo_add_key(r, pass, r->key_id, err) || write_config(r, err))
        goto fail;
    return r;
fail:
    pf_repo_free(r);
    return NULL;
}

int pf_repo_upgrade(pf_repo *r, const char *pass, char new_key_id[PF_HEX_ID_LEN + 1], pf_err *err)
{
    if (r->format >= PF_CONFIG_V2)
        return pf_err_set(err, PF_EUSAGE, "repository %s is already of format %d",
                          r->store->location, r->format);
    char old_key[8 + PF_HEX_ID_LEN + 1];
    snprintf(old_key, sizeof old_key, "keys/%s", r->key_id);
    /* Config first: a format-2 config opens with format-1 keys, while a format-2 key next
     * to a format-1 config is refused as a downgrade. So a run killed between the steps
     * leaves a repository that opens, and running upgrade again finishes it. */
    r->format = PF_CONFIG_V2;
    if (write_config(r, err) || pf_repo_add_key(r, pass, new_key_id, err))
        return -1;
    if (r->key_id[0] && pf_store_remove(r->store, old_key, err))
        return pf_err_prefix(err, "removing the format-1 key %.8s (the new key %.8s works)",
                             r->key_id, new_key_id);
    memcpy(r->key_id, new_key_id, sizeof r->key_id);
    return 0;
}

typedef struct key_ids_list {
    char (*v)[PF_HEX_ID_LEN + 1];
    size_t n;
} key_ids_list;

typedef struct id_list {
    uint8_t (*v)[PF_ID_LEN];
    size_t n;
} id_list;

static int collect_id(const char *id, void *ctx)
{
    id_list *l = ctx;
    l->v = pf_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    pf_unhex(id, l->v[l->n++], PF_ID_LEN);
    return 0;
}

/* One index file listing every blob of the in-memory index, by pack. */
static void index_snapshot(const pf_index *ix, pf_index_file *f)
{
    *f = (pf_index_file){0};
    f->packs = pf_xcalloc(ix->npacks ? ix->npacks : 1, sizeof *f->packs);
    f->npacks = ix->npacks;
    for (size_t i = 0; i < ix->npacks; i++)
        f->packs[i].info = ix->packs[i];
    for (size_t i = 0; i < ix->nblobs; i++)
        if (ix->entries[i].loc.pack != PF_PACK_PENDING)
            f->packs[ix->entries[i].loc.pack].count++;
    for (size_t i = 0; i < ix->npacks; i++) {
        f->packs[i].entries =
            pf_xcalloc(f->packs[i].count ? f->packs[i].count : 1, sizeof *f->packs[i].entries);
        f->packs[i].count = 0;
    }
    for (size_t i = 0; i < ix->nblobs; i++) {
        const pf_index_entry *sl = &ix->entries[i];
        if (sl->loc.pack == PF_PACK_PENDING)
            continue;
        pf_index_file_pack *p = &f->packs[sl->loc.pack];
        pf_blob_entry *e = &p->entries[p->count++];
        memcpy(e->id, sl->id, PF_ID_LEN);
        e->type = sl->loc.type;
        e->comp = sl->loc.comp;
        e->offset = sl->loc.offset;
        e->length = sl->loc.length;
        e->raw_length = sl->loc.raw_length;
    }
}

/* Format 2 -> 3. Config first (a format-3 config opens with format-2 keys, and until then
 * nothing else differs), then one index file under the writers' key repeating all there
 * are, which writers could not read otherwise; nothing stored is changed. */
static int upgrade_v3(pf_repo *r, pf_err *err)
{
    id_list old = {0};
    pf_index_file f = {0};
    int rc = -1;
    if (pf_repo_load_index(r, err) || pf_repo_list_objects(r, "index", collect_id, &old, err))
        goto out;
    r->format = PF_CONFIG_V3;
    if (pf_wk_derive(&r->keys, err) || write_config(r, err))
        goto out;
    pthread_mutex_lock(&r->mu);
    index_snapshot(r->index, &f);
    pthread_mutex_unlock(&r->mu);
    f.supersedes = old.v;
    f.nsupersedes = old.n;
    old.v = NULL;
    if (f.npacks && pf_repo_save_index(r, &f, err)) {
        pf_err_prefix(err, "format 3: writing the index file writers read (the repository is "
                           "of format 3 now; a prune from a full key writes it too)");
        goto out;
    }
    rc = 0;
out:
    free(old.v);
    pf_index_file_free(&f);
    return rc;
}

int pf_repo_add_write_key(pf_repo *r, const char *pass, char id_out[PF_HEX_ID_LEN + 1], pf_err *err)
{
    if (pf_repo_need_full_key(r, "creating a write-only key", err))
        return -1;
    if (r->format < PF_CONFIG_V2)
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s has format 1: run 'permafrost upgrade' first, then add "
                          "the write-only key",
                          r->store->location);
    if (r->format < PF_CONFIG_V3 && upgrade_v3(r, err))
        return -1;
    uint8_t mac_key[PF_KEY_LEN], gear[PF_GEAR_LEN], material[PF_WRITE_MATERIAL_LEN];
    int rc = -1;
    if (pf_config_mac_key(r->keys.master, mac_key, err) ||
        pf_hkdf(r->keys.master, PF_KEY_LEN, NULL, 0, "permafrost chunker gear", gear, sizeof gear,
                err))
        goto out;
    pf_wk_material_encode(&r->keys, mac_key, gear, material);
    rc = write_key_file(r, KEY_VERSION_WRITE, pass, material, sizeof material, id_out, err);
out:
    OPENSSL_cleanse(mac_key, sizeof mac_key);
    OPENSSL_cleanse(gear, sizeof gear);
    OPENSSL_cleanse(material, sizeof material);
    return rc;
}

/* One key file, read and checked but not yet tried. */
typedef struct key_file {
    char name[8 + PF_HEX_ID_LEN + 1];
    uint64_t size;
    int version;
    uint64_t n;
    uint32_t r, p;
    uint8_t salt[PF_SALT_LEN];
    uint8_t sealed[PF_WRITE_MATERIAL_LEN + PF_TAG_LEN];
    size_t sealed_len; /* master key (full) or write material (write-only), tag included */
} key_file;

typedef struct key_list {
    key_file *v;
    size_t n;
    const char *location;
} key_list;

static int collect_key(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    key_list *l = ctx;
    if (!pf_name_object_id(key, "keys"))
        return 0; /* temporary or foreign files are not key files */
    if (l->n == PF_KEY_FILES_MAX)
        return pf_err_set(err, PF_ECORRUPT,
                          "%s has more than %d key files, more than permafrost tries: remove "
                          "the ones you did not make (keys/ in the repository)",
                          l->location, PF_KEY_FILES_MAX);
    key_file *v = pf_xrealloc(l->v, (l->n + 1) * sizeof *v);
    l->v = v;
    memset(&v[l->n], 0, sizeof *v);
    snprintf(v[l->n].name, sizeof v[l->n].name, "%s", key);
    v[l->n].size = size;
    l->n++;
    return 0;
}

static double num(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : -1;
}

static const char *str(cJSON *o, const char *k)
{
    cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* Reads one key file and checks its fields, and that its scrypt cost is within bounds:
 * -1 (err names the file) when it is not worth trying. */
static int read_key(pf_store *store, key_file *k, pf_err *err)
{
    pf_buf text = PF_BUF_INIT;
    cJSON *o = NULL;
    int rc = -1;
    if (k->size == 0 || k->size > PF_KEY_FILE_MAX_BYTES)
        return pf_err_set(err, PF_ECORRUPT,
                          "key file %s is %llu bytes, not 1 to %d: skipped (remove it if you "
                          "did not make it)",
                          k->name, (unsigned long long)k->size, PF_KEY_FILE_MAX_BYTES);
    /* A range, so a store that lies about the size cannot make us read more. */
    if (pf_store_get(store, k->name, 0, k->size, &text, err)) {
        pf_err_prefix(err, "reading key file %s", k->name);
        goto out;
    }
    o = cJSON_ParseWithLength((const char *)text.data, text.len);
    const char *salt_hex = o ? str(o, "salt") : NULL, *sealed_hex = o ? str(o, "sealed") : NULL;
    double ver = o ? num(o, "version") : -1;
    double n = o ? num(o, "N") : -1, rr = o ? num(o, "r") : -1, p = o ? num(o, "p") : -1;
    k->sealed_len =
        ver == KEY_VERSION_WRITE ? PF_WRITE_MATERIAL_LEN + PF_TAG_LEN : PF_KEY_LEN + PF_TAG_LEN;
    if (!salt_hex || !sealed_hex || pf_unhex(salt_hex, k->salt, sizeof k->salt) ||
        pf_unhex(sealed_hex, k->sealed, k->sealed_len) || (ver != 1 && ver != 2 && ver != 3)) {
        pf_err_set(err, PF_ECORRUPT, "key file %s is malformed: skipped", k->name);
        goto out;
    }
    /* The bounds come before any cast (an out-of-range double is undefined) and before any
     * work: nothing has authenticated this file yet. */
    if (!(n >= 1024 && n <= (double)PF_KDF_MAX_WORK && rr >= 1 && rr <= 32 && p >= 1 && p <= 16) ||
        (uint64_t)n != n || ((uint64_t)n & ((uint64_t)n - 1)) || (uint32_t)rr != rr ||
        (uint32_t)p != p || 128 * (uint64_t)n * (uint64_t)rr > PF_KDF_MAX_MEM ||
        (uint64_t)n * (uint64_t)rr * (uint64_t)p > PF_KDF_MAX_WORK) {
        pf_err_set(err, PF_ECORRUPT,
                   "key file %s asks for scrypt N=%.10g r=%.10g p=%.10g, beyond what permafrost "
                   "accepts (N a power of two, memory at most %llu MiB, N*r*p at most %llu "
                   "times the default): skipped; remove it if you did not make it",
                   k->name, n, rr, p, PF_KDF_MAX_MEM >> 20,
                   PF_KDF_MAX_WORK / ((uint64_t)KDF_N * KDF_R * KDF_P));
        goto out;
    }
    k->version = (int)ver;
    k->n = (uint64_t)n;
    k->r = (uint32_t)rr;
    k->p = (uint32_t)p;
    rc = 0;
out:
    pf_buf_free(&text);
    cJSON_Delete(o);
    return rc;
}

/* Tries one checked key file; 0 = opened (master filled), 1 = wrong passphrase,
 * -1 = error. */
static int try_key(pf_repo *r, const key_file *k, const char *pass, pf_err *err)
{
    pf_buf secret = PF_BUF_INIT;
    uint8_t kek[PF_KEY_LEN], nonce[PF_NONCE_LEN];
    char aad[96];
    size_t aadlen = key_aad(k->version, r->id, aad);
    int rc = -1;
    if (pf_scrypt(pass, strlen(pass), k->salt, sizeof k->salt, k->n, k->r, k->p, kek, err))
        goto out;
    pf_nonce_from_counter(0, nonce);
    pf_err ignored;
    if (pf_aead_open(kek, nonce, aad, aadlen, k->sealed, k->sealed_len, &secret, &ignored)) {
        rc = 1;
        goto out;
    }
    if (k->version == KEY_VERSION_WRITE)
        pf_wk_material_decode(secret.data, &r->keys, r->mac_key, r->gear);
    else
        memcpy(r->keys.master, secret.data, PF_KEY_LEN);
    rc = 0;
out:
    OPENSSL_cleanse(kek, sizeof kek);
    pf_buf_free(&secret);
    return rc;
}

/* Cheapest first: the keys permafrost writes open before any costly one is tried. Write-only
 * keys before full keys of the same cost: the backed-up server opens the repository for
 * every backup and every WAL segment, the trusted side seldom. */
static int key_cost_cmp(const void *a, const void *b)
{
    const key_file *x = a, *y = b;
    int wx = x->version == KEY_VERSION_WRITE, wy = y->version == KEY_VERSION_WRITE;
    uint64_t cx = x->n * x->r * x->p, cy = y->n * y->r * y->p;
    if (cx != cy)
        return cx < cy ? -1 : 1;
    if (wx != wy)
        return wy - wx;
    return strcmp(x->name, y->name);
}

/* Opens the master key with pass: 0, or -1 with err (PF_EAUTH when no key opens). */
static int open_keys(pf_repo *r, const char *pass, int *key_version, pf_err *err)
{
    pf_store *store = r->store;
    key_list keys = {.location = store->location};
    int rc = -1;
    if (pf_store_list(store, "keys/", collect_key, &keys, err))
        goto out;
    size_t usable = 0;
    for (size_t i = 0; i < keys.n; i++) {
        pf_err e = {0};
        if (read_key(store, &keys.v[i], &e)) {
            pf_log(PF_LOG_WARN, "%s", e.msg);
            continue;
        }
        keys.v[usable++] = keys.v[i];
    }
    if (keys.n == 0) {
        pf_err_set(err, PF_ECORRUPT, "%s: repository has no keys", store->location);
        goto out;
    }
    if (usable == 0) {
        pf_err_set(err, PF_EAUTH,
                   "%s: no key file can be tried (see the warnings above); 'permafrost key "
                   "import --paper' recovers access",
                   store->location);
        goto out;
    }
    qsort(keys.v, usable, sizeof *keys.v, key_cost_cmp);
    for (size_t i = 0; i < usable; i++) {
        int t = try_key(r, &keys.v[i], pass, err);
        if (t < 0) {
            pf_log(PF_LOG_WARN, "key file %s: %s", keys.v[i].name, err->msg);
            continue;
        }
        if (t == 0) {
            snprintf(r->key_id, sizeof r->key_id, "%s", keys.v[i].name + 5);
            *key_version = keys.v[i].version;
            rc = 0;
            goto out;
        }
    }
    pf_err_set(err, PF_EAUTH,
               "wrong passphrase for repository %s (or its key files are damaged: "
               "'permafrost key import --paper' recovers access)",
               store->location);
out:
    OPENSSL_cleanse(keys.v, keys.n * sizeof *keys.v);
    free(keys.v);
    return rc;
}

/* One of pass, master or write material (with its key id) opens the repository. */
typedef struct open_with {
    const char *pass;
    const uint8_t *master;
    const uint8_t *material;
    const char *key_id;
} open_with;

static pf_repo *open_common(pf_store *store, const open_with *w, pf_err *err);

pf_repo *pf_repo_open(pf_store *store, const char *pass, pf_err *err)
{
    return open_common(store, &(open_with){.pass = pass}, err);
}

pf_repo *pf_repo_open_master(pf_store *store, const uint8_t master[PF_KEY_LEN], pf_err *err)
{
    return open_common(store, &(open_with){.master = master}, err);
}

pf_repo *pf_repo_open_write_material(pf_store *store, const uint8_t *material,
                                     const char key_id[PF_HEX_ID_LEN + 1], pf_err *err)
{
    return open_common(store, &(open_with){.material = material, .key_id = key_id}, err);
}

int pf_repo_write_material(const pf_repo *r, uint8_t *out)
{
    if (!r->keys.write_only)
        return -1;
    pf_wk_material_encode(&r->keys, r->mac_key, r->gear, out);
    return 0;
}

static pf_repo *open_common(pf_store *store, const open_with *w, pf_err *err)
{
    const uint8_t *master = w->master ? w->master : w->material;
    pf_repo *r = repo_alloc(store);
    pf_buf text = PF_BUF_INIT;
    pf_repo_config c;
    if (!r) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    if (pf_store_get(store, "config", 0, PF_STORE_ALL, &text, err)) {
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOREPO,
                       "%s is not a permafrost repository (no config): check the path, or "
                       "create one with 'permafrost init'",
                       store->location);
        goto fail;
    }
    if (pf_config_parse(text.data, text.len, &c, err)) {
        pf_err_prefix(err, "%s", store->location);
        goto fail;
    }
    r->format = c.version;
    memcpy(r->id, c.id, sizeof r->id);
    r->pack_size = c.pack_size;
    int key_version = 0;
    if (w->material) {
        pf_wk_material_decode(w->material, &r->keys, r->mac_key, r->gear);
        snprintf(r->key_id, sizeof r->key_id, "%s", w->key_id);
        key_version = KEY_VERSION_WRITE;
    } else if (w->master) {
        memcpy(r->keys.master, w->master, PF_KEY_LEN);
    } else if (open_keys(r, w->pass, &key_version, err)) {
        goto fail;
    }
    /* Nothing of the config is acted on before this point but its shape. */
    if (key_version == KEY_VERSION_WRITE && c.version < PF_CONFIG_V3) {
        pf_err_set(err, PF_ECORRUPT,
                   "%s: config says format %d, but key %.8s is a write-only key, which only "
                   "format 3 has: config was replaced (tampered with, or restored from an old "
                   "copy); refusing the repository",
                   store->location, c.version, r->key_id);
        goto fail;
    }
    if (key_version >= PF_CONFIG_V2 && c.version < PF_CONFIG_V2) {
        pf_err_set(err, PF_ECORRUPT,
                   "%s: config says format 1, but key %.8s belongs to a repository of format "
                   "2: config was replaced by one without a MAC (tampered with, or restored "
                   "from an old copy); refusing the repository",
                   store->location, r->key_id);
        goto fail;
    }
    pf_err e = {0};
    if (r->keys.write_only ? pf_config_verify_key(r->mac_key, &c, &e)
                           : pf_config_verify(r->keys.master, &c, &e)) {
        if (master)
            pf_err_set(err, PF_EAUTH,
                       "%s: this master key does not authenticate the repository's config "
                       "(a sheet of another repository, or config was changed)",
                       store->location);
        else
            pf_err_set(err, PF_ECORRUPT,
                       "%s: config fails authentication: it was changed by someone without "
                       "the key, or damaged; refusing the repository",
                       store->location);
        goto fail;
    }
    if (c.version < PF_CONFIG_V2)
        pf_info("repository %s has format 1, whose config is not authenticated: 'permafrost "
                "upgrade' adds a MAC to it",
                store->location);
    if (derive_all(r, c.chunk_min, c.chunk_avg, c.chunk_max, err))
        goto fail;
    pf_buf_free(&text);
    return r;
fail:
    pf_buf_free(&text);
    pf_repo_free(r);
    return NULL;
}

/* Which key seals a new object: in format 3, what every writer must read (index files,
 * locks, WAL objects) goes under the writers' key, and snapshots and run records under the
 * master key, or sealed to the public key by a write-only key. */
static int object_mode(const pf_keys *keys, const char *kind)
{
    if (!keys->has_pair)
        return PF_OBJECT_MASTER;
    if (!strcmp(kind, "snapshots") || !strcmp(kind, "runs"))
        return keys->write_only ? PF_OBJECT_SEALED : PF_OBJECT_MASTER;
    return PF_OBJECT_WRITER;
}

int pf_object_seal(const pf_keys *keys, const char *kind, const void *p, size_t n, pf_buf *out,
                   pf_err *err)
{
    uint8_t secret[PF_SALT_LEN];
    if (pf_random(secret, sizeof secret, err))
        return -1;
    int rc = pf_object_seal_as(keys, object_mode(keys, kind), kind, secret, p, n, out, err);
    OPENSSL_cleanse(secret, sizeof secret);
    return rc;
}

/* For test vectors only (see repo.h): production code uses pf_object_seal. */
int pf_object_seal_salt(const pf_keys *keys, const char *kind, const uint8_t salt[PF_SALT_LEN],
                        const void *p, size_t n, pf_buf *out, pf_err *err)
{
    return pf_object_seal_as(keys, PF_OBJECT_MASTER, kind, salt, p, n, out, err);
}

static const char *object_magic(int mode)
{
    return mode == PF_OBJECT_SEALED   ? OBJECT_MAGIC_SEALED
           : mode == PF_OBJECT_WRITER ? OBJECT_MAGIC_WRITER
                                      : OBJECT_MAGIC;
}

/* The object key of mode from the 32 bytes after the magic (a salt, or for a sealed
 * object the ephemeral public key). */
static int object_key(const pf_keys *keys, int mode, const uint8_t head[PF_SALT_LEN],
                      uint8_t key[PF_KEY_LEN], pf_err *err)
{
    if (mode == PF_OBJECT_SEALED)
        return pf_wk_open_key(keys, head, PF_WK_OBJECT_INFO, key, err);
    if (mode == PF_OBJECT_WRITER) {
        if (!keys->has_pair)
            return pf_err_set(err, PF_ECORRUPT,
                              "sealed under a writers' key, which a repository of this format "
                              "does not have");
        return pf_hkdf(keys->writer_key, PF_KEY_LEN, head, PF_SALT_LEN, WRITER_OBJECT_INFO, key,
                       PF_KEY_LEN, err);
    }
    if (keys->write_only)
        return pf_err_set(err, PF_EAUTH, "sealed under the master key: only a full key opens it");
    return pf_hkdf(keys->master, PF_KEY_LEN, head, PF_SALT_LEN, "permafrost object key", key,
                   PF_KEY_LEN, err);
}

int pf_object_seal_as(const pf_keys *keys, int mode, const char *kind,
                      const uint8_t secret[PF_SALT_LEN], const void *p, size_t n, pf_buf *out,
                      pf_err *err)
{
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN], head[PF_SALT_LEN];
    size_t bound = ZSTD_compressBound(n);
    uint8_t *z = malloc(bound ? bound : 1);
    int rc = -1;
    if (!z)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    size_t zn = ZSTD_compress(z, bound, p, n, 3);
    if (ZSTD_isError(zn)) {
        pf_err_set(err, PF_EGENERIC, "compression failed");
        goto out;
    }
    if (mode == PF_OBJECT_SEALED) {
        if (pf_wk_seal_key(keys->pub, secret, PF_WK_OBJECT_INFO, head, key, err))
            goto out;
    } else {
        memcpy(head, secret, PF_SALT_LEN);
        if (object_key(keys, mode, head, key, err))
            goto out;
    }
    pf_nonce_from_counter(0, nonce);
    pf_buf_append(out, object_magic(mode), 4);
    pf_buf_append(out, head, PF_SALT_LEN);
    rc = pf_aead_seal(key, nonce, kind, strlen(kind), z, zn, out, err);
out:
    OPENSSL_cleanse(key, sizeof key);
    free(z);
    return rc;
}

int pf_object_open(const pf_keys *keys, const char *kind, const uint8_t *p, size_t n, pf_buf *out,
                   pf_err *err)
{
    uint8_t key[PF_KEY_LEN], nonce[PF_NONCE_LEN];
    pf_buf z = PF_BUF_INIT;
    int rc = -1, mode = 0;
    if (n >= 4 + PF_SALT_LEN + PF_TAG_LEN)
        mode = !memcmp(p, OBJECT_MAGIC, 4)          ? PF_OBJECT_MASTER
               : !memcmp(p, OBJECT_MAGIC_WRITER, 4) ? PF_OBJECT_WRITER
               : !memcmp(p, OBJECT_MAGIC_SEALED, 4) ? PF_OBJECT_SEALED
                                                    : 0;
    if (!mode)
        return pf_err_set(err, PF_ECORRUPT, "not a permafrost object");
    if (object_key(keys, mode, p + 4, key, err))
        return -1;
    pf_nonce_from_counter(0, nonce);
    if (pf_aead_open(key, nonce, kind, strlen(kind), p + 4 + PF_SALT_LEN, n - 4 - PF_SALT_LEN, &z,
                     err))
        goto out;
    unsigned long long sz = ZSTD_getFrameContentSize(z.data, z.len);
    if (sz == ZSTD_CONTENTSIZE_ERROR || sz == ZSTD_CONTENTSIZE_UNKNOWN || sz > MAX_OBJECT) {
        pf_err_set(err, PF_ECORRUPT, "object content malformed");
        goto out;
    }
    size_t start = out->len;
    pf_buf_reserve(out, (size_t)sz);
    size_t d = ZSTD_decompress(out->data + start, (size_t)sz, z.data, z.len);
    if (ZSTD_isError(d) || d != sz) {
        pf_err_set(err, PF_ECORRUPT, "object does not decompress");
        goto out;
    }
    out->len += d;
    out->data[out->len] = 0;
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof key);
    pf_buf_free(&z);
    return rc;
}

/* The kind string binds an object's content to its folder. */
static const char *kind_of(const char *dir)
{
    return dir;
}

int pf_repo_save_object(pf_repo *r, const char *dir, const void *p, size_t n,
                        char id_out[PF_HEX_ID_LEN + 1], pf_err *err)
{
    pf_buf sealed = PF_BUF_INIT;
    uint8_t id[PF_ID_LEN];
    char name[128];
    int rc = -1;
    if (pf_object_seal(&r->keys, kind_of(dir), p, n, &sealed, err))
        goto out;
    pf_sha256(sealed.data, sealed.len, id);
    pf_hex(id, PF_ID_LEN, id_out);
    snprintf(name, sizeof name, "%s/%s", dir, id_out);
    if (pf_store_put(r->store, name, sealed.data, sealed.len, err)) {
        pf_err_prefix(err, "writing %s", name);
        goto out;
    }
    rc = 0;
out:
    pf_buf_free(&sealed);
    return rc;
}

void pf_repo_set_cache(pf_repo *r, const char *base)
{
    free(r->cache_dir);
    r->cache_dir = NULL;
    if (r->cache_fd >= 0)
        close(r->cache_fd);
    r->cache_fd = -1;
    if (!base || !*base)
        return;
    /* Guaranteed by pf_config_parse; checked again because the id becomes a path. */
    if (!pf_name_is_id(r->id))
        return;
    char path[4096];
    if ((size_t)snprintf(path, sizeof path, "%s/%s", base, r->id) >= sizeof path)
        return;
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
    mkdir(path, 0700);
    /* The folder of this repository must be ours alone: cached files are trusted only
     * after they authenticate again, but a folder others can write would let them swap
     * files under us. It is held open, and every file is reached from that descriptor,
     * so a path swapped after this check (a parent others can write) cannot point the
     * cache elsewhere. */
    int fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || !S_ISDIR(st.st_mode) || st.st_uid != geteuid() ||
        (st.st_mode & 022)) {
        pf_warn("not using the cache %s: it is not a folder that only this user can write", path);
        if (fd >= 0)
            close(fd);
        return;
    }
    r->cache_fd = fd;
    r->cache_dir = strdup(path);
}

static int cacheable(const char *dir)
{
    return !strcmp(dir, "index") || !strcmp(dir, "snapshots");
}

/* The file name of an object in the cache folder; dir is one of ours, id of the exact
 * shape (checked by the caller). */
static void cache_name(const char *dir, const char *id, char *out, size_t n)
{
    snprintf(out, n, "%s-%s", dir, id);
}

static int cache_read(pf_repo *r, const char *dir, const char *id, pf_buf *out)
{
    char name[128];
    cache_name(dir, id, name, sizeof name);
    int fd = openat(r->cache_fd, name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_OBJECT) {
        close(fd);
        return -1;
    }
    char chunk[65536];
    ssize_t n;
    while ((n = read(fd, chunk, sizeof chunk)) > 0)
        pf_buf_append(out, chunk, (size_t)n);
    close(fd);
    return n < 0 ? -1 : 0;
}

static void cache_drop(pf_repo *r, const char *dir, const char *id)
{
    char name[128];
    cache_name(dir, id, name, sizeof name);
    unlinkat(r->cache_fd, name, 0);
}

/* Only called with bytes that have just authenticated (see pf_repo_load_object). */
static void cache_write(pf_repo *r, const char *dir, const char *id, const pf_buf *b)
{
    char name[128], tmp[160];
    cache_name(dir, id, name, sizeof name);
    snprintf(tmp, sizeof tmp, "%s.tmp%d", name, (int)getpid());
    /* O_EXCL: another thread of this process writing the same object skips it. */
    int fd = openat(r->cache_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0)
        return;
    size_t done = 0;
    while (done < b->len) {
        ssize_t w = write(fd, b->data + done, b->len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        done += (size_t)w;
    }
    int ok = done == b->len;
    ok = (close(fd) == 0) && ok;
    if (!ok || renameat(r->cache_fd, tmp, r->cache_fd, name))
        unlinkat(r->cache_fd, tmp, 0);
}

/* Checks sealed bytes against their name (1 when they do not match), then opens them
 * (-1 with err when they do not authenticate). */
static int open_named(pf_repo *r, const char *dir, const uint8_t want[PF_ID_LEN],
                      const pf_buf *sealed, pf_buf *out, pf_err *err)
{
    uint8_t got[PF_ID_LEN];
    pf_sha256(sealed->data, sealed->len, got);
    if (memcmp(want, got, PF_ID_LEN))
        return 1;
    return pf_object_open(&r->keys, kind_of(dir), sealed->data, sealed->len, out, err);
}

int pf_repo_load_object(pf_repo *r, const char *dir, const char *id, pf_buf *out, pf_err *err)
{
    pf_buf sealed = PF_BUF_INIT;
    char name[128];
    uint8_t want[PF_ID_LEN];
    int rc = -1;
    size_t start = out->len;
    if (!pf_name_is_id(id) || pf_unhex(id, want, PF_ID_LEN))
        return pf_err_set(err, PF_EUSAGE, "%s/%.80s: not an object id", dir, id);
    snprintf(name, sizeof name, "%s/%s", dir, id);
    int use_cache = r->cache_fd >= 0 && cacheable(dir);
    if (use_cache && cache_read(r, dir, id, &sealed) == 0) {
        /* A cached copy is trusted no more than the store: it must authenticate again. */
        pf_err e = {0};
        if (open_named(r, dir, want, &sealed, out, &e) == 0) {
            rc = 0;
            goto out;
        }
        pf_debug("cached %s does not open (%s): fetching it again", name,
                 e.msg[0] ? e.msg : "content does not match its name");
        out->len = start;
        cache_drop(r, dir, id);
        pf_buf_reset(&sealed);
    }
    if (pf_store_get(r->store, name, 0, PF_STORE_ALL, &sealed, err)) {
        pf_err_prefix(err, "reading %s", name);
        goto out;
    }
    int o = open_named(r, dir, want, &sealed, out, err);
    if (o) {
        out->len = start;
        if (o > 0)
            pf_err_set(err, PF_ECORRUPT, "%s is damaged: its content does not match its name",
                       name);
        else
            pf_err_prefix(err, "%s", name);
        goto out;
    }
    /* Cached only now that it has authenticated: nothing from the store reaches the disk
     * before that. */
    if (use_cache)
        cache_write(r, dir, id, &sealed);
    rc = 0;
out:
    pf_buf_free(&sealed);
    return rc;
}

typedef struct list_ctx {
    const char *dir;
    int (*cb)(const char *id, void *ctx);
    void *ctx;
} list_ctx;

static int list_one(const char *key, uint64_t size, void *vctx, pf_err *err)
{
    (void)err;
    (void)size;
    list_ctx *c = vctx;
    const char *id = pf_name_object_id(key, c->dir);
    if (!id)
        return 0; /* temporary or foreign files are not objects */
    return c->cb(id, c->ctx);
}

int pf_repo_list_objects(pf_repo *r, const char *dir, int (*cb)(const char *id, void *ctx),
                         void *ctx, pf_err *err)
{
    char prefix[64];
    snprintf(prefix, sizeof prefix, "%s/", dir);
    list_ctx c = {dir, cb, ctx};
    if (err)
        pf_err_clear(err);
    int rc = pf_store_list(r->store, prefix, list_one, &c, err);
    if (rc > 0) {
        /* The callback stopped the listing; it filled err when it had a reason. */
        if (err && !err->code)
            pf_err_set(err, PF_EGENERIC, "listing %s stopped", dir);
        return -1;
    }
    return rc;
}

int pf_repo_load_index_file(pf_repo *r, const char *id, pf_index_file *f, pf_err *err)
{
    pf_buf plain = PF_BUF_INIT;
    int rc = pf_repo_load_object(r, "index", id, &plain, err);
    if (!rc)
        rc = pf_index_file_decode(plain.data, plain.len, f, err);
    pf_buf_free(&plain);
    return rc;
}

static int collect_pack(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    pf_pack_list *l = ctx;
    l->keys = pf_xrealloc(l->keys, (l->n + 1) * sizeof *l->keys);
    l->sizes = pf_xrealloc(l->sizes, (l->n + 1) * sizeof *l->sizes);
    l->keys[l->n] = pf_xstrdup(key);
    l->sizes[l->n++] = size;
    return 0;
}

int pf_repo_list_packs(pf_repo *r, pf_pack_list *out, pf_err *err)
{
    *out = (pf_pack_list){0};
    return pf_store_list(r->store, "data/", collect_pack, out, err);
}

void pf_pack_list_free(pf_pack_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->keys[i]);
    free(l->keys);
    free(l->sizes);
    *l = (pf_pack_list){0};
}

typedef struct load_index_ctx {
    pf_repo *r;
    pf_err *err;
    int failed;
    int damaged;
    pf_idset *superseded; /* write-only: ids that loaded index files repeat */
} load_index_ctx;

static int load_one_index(const char *id, void *vctx)
{
    load_index_ctx *c = vctx;
    pf_index_file f;
    pf_err e = {0};
    if (pf_repo_load_index_file(c->r, id, &f, &e)) {
        if (e.code == PF_EAUTH && c->r->keys.write_only) {
            /* Written under the master key before the upgrade to format 3: the index
             * file the upgrade wrote repeats it for writers. */
            pf_debug("index %.12s: %s; skipped", id, e.msg);
            return 0;
        }
        if (e.code == PF_ECORRUPT) {
            /* A damaged index file must not stop every backup: its packs still carry
             * their own headers, from which the index is rebuilt below. */
            pf_warn("index %.12s is damaged (%s); rebuilding from pack headers (run "
                    "'permafrost check')",
                    id, e.msg);
            c->damaged = 1;
            return 0;
        }
        *c->err = e;
        pf_err_prefix(c->err, "index %.12s", id);
        c->failed = 1;
        return 1;
    }
    pthread_mutex_lock(&c->r->mu);
    pf_index_merge(c->r->index, &f);
    pthread_mutex_unlock(&c->r->mu);
    for (size_t i = 0; c->superseded && i < f.nsupersedes; i++)
        pf_idset_add(c->superseded, f.supersedes[i]);
    pf_index_file_free(&f);
    return 0;
}

static int collect_hex(const char *id, void *ctx)
{
    key_ids_list *l = ctx;
    l->v = pf_xrealloc(l->v, (l->n + 1) * sizeof *l->v);
    memcpy(l->v[l->n++], id, PF_HEX_ID_LEN + 1);
    return 0;
}

/* A write-only key cannot open the index files written under the master key before format
 * 3, which the upgrade's index file repeats (its supersedes). Those it has cached (the
 * ones it can open) go first, so the others named there are not fetched at every backup
 * only to be skipped. */
static int load_index_writer(pf_repo *r, load_index_ctx *c, pf_err *err)
{
    key_ids_list l = {0};
    pf_idset sup = PF_IDSET_INIT;
    c->superseded = &sup;
    int rc = pf_repo_list_objects(r, "index", collect_hex, &l, err);
    for (int pass = 0; pass < 2 && !rc && !c->failed; pass++)
        for (size_t i = 0; i < l.n && !c->failed; i++) {
            char name[128];
            uint8_t id[PF_ID_LEN];
            cache_name("index", l.v[i], name, sizeof name);
            int cached =
                r->cache_fd >= 0 && faccessat(r->cache_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
            if (cached != (pass == 0) || pf_unhex(l.v[i], id, PF_ID_LEN) ||
                (pass == 1 && pf_idset_has(&sup, id)))
                continue;
            load_one_index(l.v[i], c);
        }
    free(l.v);
    pf_idset_free(&sup);
    c->superseded = NULL;
    return rc;
}

int pf_repo_load_index(pf_repo *r, pf_err *err)
{
    if (r->index_loaded)
        return 0;
    load_index_ctx c = {r, err, 0, 0, NULL};
    if ((r->keys.write_only ? load_index_writer(r, &c, err)
                            : pf_repo_list_objects(r, "index", load_one_index, &c, err)) ||
        c.failed)
        return -1;
    if (c.damaged && pf_repo_index_orphan_packs(r, &r->recovered, err))
        return -1;
    r->index_loaded = 1;
    return 0;
}

int pf_repo_save_index(pf_repo *r, const pf_index_file *f, pf_err *err)
{
    pf_buf plain = PF_BUF_INIT;
    char id[PF_HEX_ID_LEN + 1];
    pf_index_file_encode(f, &plain);
    int rc = pf_repo_save_object(r, "index", plain.data, plain.len, id, err);
    pf_buf_free(&plain);
    return rc;
}

typedef struct orphan_ctx {
    pf_repo *r;
    pf_index_file *found;
    pf_err *err;
} orphan_ctx;

static int check_orphan(const char *key, uint64_t size, void *vctx, pf_err *err)
{
    (void)err; /* a pack that cannot be read is skipped, not an error of the listing */
    orphan_ctx *c = vctx;
    uint8_t id[PF_ID_LEN], salt[PF_SALT_LEN], pk[PF_KEY_LEN];
    if (!pf_name_pack_key(key, id))
        return 0; /* not a pack (a temporary file, or a name of the wrong shape) */
    pthread_mutex_lock(&c->r->mu);
    long have = pf_index_find_pack(c->r->index, id);
    pthread_mutex_unlock(&c->r->mu);
    if (have >= 0)
        return 0;
    pf_buf tail = PF_BUF_INIT;
    pf_blob_entry *es = NULL;
    size_t n = 0;
    uint32_t hl;
    pf_err e = {0};
    uint8_t sum[PF_ID_LEN];
    /* Packs are made durable in a batch before the index that names them: one that no
     * index names may have been cut short or damaged by a crash of the machine, with a
     * header that still reads. Only a pack whose bytes hash to its name is reused (this
     * reads what one interrupted backup wrote since its last index, once). */
    if (size < PF_PACK_TRAILER_LEN || pf_store_get(c->r->store, key, 0, PF_STORE_ALL, &tail, &e))
        goto skip;
    pf_sha256(tail.data, tail.len, sum);
    if (tail.len != size || memcmp(sum, id, PF_ID_LEN)) {
        pf_err_set(&e, PF_ECORRUPT, "content does not match its name");
        goto skip;
    }
    const uint8_t *trailer = tail.data + size - PF_PACK_TRAILER_LEN;
    uint8_t kind = pf_pack_trailer_kind(trailer);
    if (pf_pack_parse_trailer(trailer, size, salt, &hl, &e) ||
        pf_pack_key_kind(&c->r->keys, kind, salt, pk, &e) ||
        pf_pack_decode_header(pk, trailer - hl, hl, size - PF_PACK_TRAILER_LEN - hl, &es, &n, &e))
        goto skip;
    pf_index_file_pack p = {.count = n, .entries = es};
    memcpy(p.info.id, id, PF_ID_LEN);
    memcpy(p.info.salt, salt, PF_SALT_LEN);
    p.info.kind = kind;
    pf_index_file one = {.packs = &p, .npacks = 1};
    pthread_mutex_lock(&c->r->mu);
    pf_index_merge(c->r->index, &one);
    pthread_mutex_unlock(&c->r->mu);
    if (c->found) {
        pf_index_file *f = c->found;
        f->packs = pf_xrealloc(f->packs, (f->npacks + 1) * sizeof *f->packs);
        f->packs[f->npacks++] = p;
        es = NULL;
    }
    free(es);
    pf_buf_release(&tail); /* a whole pack: ciphertext */
    return 0;
skip:
    /* A pack that cannot be read is not reused; check reports it. */
    pf_debug("ignoring unindexed pack %s: %s", key, e.msg);
    free(es);
    pf_buf_release(&tail);
    return 0;
}

int pf_repo_index_orphan_packs(pf_repo *r, pf_index_file *found, pf_err *err)
{
    orphan_ctx c = {r, found, err};
    return pf_store_list(r->store, "data/", check_orphan, &c, err);
}

int pf_repo_forget_snapshot(pf_repo *r, const char *id, pf_err *err)
{
    char key[128];
    snprintf(key, sizeof key, "snapshots/%s", id);
    return pf_store_remove(r->store, key, err);
}

int pf_repo_has_blob(pf_repo *r, const uint8_t id[PF_ID_LEN])
{
    pthread_mutex_lock(&r->mu);
    pf_blob_loc *l = pf_index_find(r->index, id);
    int has = l && l->pack != PF_PACK_PENDING;
    pthread_mutex_unlock(&r->mu);
    return has;
}

int pf_repo_load_blob(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_buf *out, pf_err *err)
{
    char hex[PF_HEX_ID_LEN + 1], name[80];
    pf_buf sealed = PF_BUF_INIT;
    uint8_t pk[PF_KEY_LEN];
    int rc = -1;
    pthread_mutex_lock(&r->mu);
    pf_blob_loc *l = pf_index_find(r->index, id);
    pf_blob_loc loc = l ? *l : (pf_blob_loc){0};
    pf_pack_info pack = {0};
    if (l && l->pack != PF_PACK_PENDING)
        pack = r->index->packs[l->pack];
    pthread_mutex_unlock(&r->mu);
    /* The id in hex only for a message: formatted on failure, not for every tree. */
    if (!l || loc.pack == PF_PACK_PENDING) {
        pf_hex(id, PF_ID_LEN, hex);
        return pf_err_set(err, PF_ENOTFOUND, "blob %.16s is not in the index", hex);
    }
    pf_pack_key_name(pack.id, name);
    pf_blob_entry e = {.type = loc.type,
                       .comp = loc.comp,
                       .offset = loc.offset,
                       .length = loc.length,
                       .raw_length = loc.raw_length};
    memcpy(e.id, id, PF_ID_LEN);
    if (pf_store_get(r->store, name, loc.offset, loc.length, &sealed, err) ||
        pf_pack_keys_get(&r->pack_keys, &r->keys, pack.kind, pack.salt, pk, err) ||
        pf_blob_open(&r->keys, pk, &e, sealed.data, out, err)) {
        pf_hex(id, PF_ID_LEN, hex);
        pf_err_prefix(err, "blob %.16s in pack %.16s", hex, name + 8);
        goto out;
    }
    rc = 0;
out:
    OPENSSL_cleanse(pk, sizeof pk);
    pf_buf_release(&sealed);
    return rc;
}

/* The writer's own trees and snapshots (write-only keys): it cannot read them back from
 * the store, so it keeps their plaintext in its cache folder for change detection. A tree
 * is named by its id, which is the HMAC of its bytes under the id key; a snapshot's file
 * carries an HMAC under the writers' key. Both are checked when read. */
static void cache_put(pf_repo *r, const char *dir, const char *id, const void *a, size_t an,
                      const void *b, size_t bn)
{
    pf_buf buf = PF_BUF_INIT;
    pf_buf_append(&buf, a, an);
    pf_buf_append(&buf, b, bn);
    cache_write(r, dir, id, &buf);
    pf_buf_free(&buf);
}

void pf_repo_cache_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], const void *p, size_t n)
{
    if (!r->keys.write_only || r->cache_fd < 0)
        return;
    char hex[PF_HEX_ID_LEN + 1], name[128];
    pf_hex(id, PF_ID_LEN, hex);
    cache_name("wtree", hex, name, sizeof name);
    if (faccessat(r->cache_fd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
        return;
    cache_put(r, "wtree", hex, p, n, NULL, 0);
}

static int cached_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_buf *out, pf_err *err)
{
    char hex[PF_HEX_ID_LEN + 1];
    uint8_t got[PF_ID_LEN];
    pf_hex(id, PF_ID_LEN, hex);
    if (r->cache_fd < 0 || cache_read(r, "wtree", hex, out))
        return pf_repo_need_full_key(r, "reading a tree this machine did not write", err);
    pf_blob_id(&r->keys, out->data, out->len, got);
    if (CRYPTO_memcmp(got, id, PF_ID_LEN)) {
        cache_drop(r, "wtree", hex);
        return pf_err_set(err, PF_ECORRUPT, "cached tree %.16s is damaged: removed", hex);
    }
    return 0;
}

static void snapshot_mac(const pf_repo *r, const char *id, const void *p, size_t n,
                         uint8_t mac[PF_ID_LEN])
{
    unsigned int len = PF_ID_LEN;
    pf_buf m = PF_BUF_INIT;
    pf_buf_append(&m, "permafrost cached snapshot ", 27);
    pf_buf_append(&m, id, PF_HEX_ID_LEN);
    pf_buf_append(&m, p, n);
    HMAC(EVP_sha256(), r->keys.writer_key, PF_KEY_LEN, m.data, m.len, mac, &len);
    pf_buf_free(&m);
}

static void cache_snapshot(pf_repo *r, const char *id, const char *text)
{
    if (!r->keys.write_only || r->cache_fd < 0)
        return;
    uint8_t mac[PF_ID_LEN];
    snapshot_mac(r, id, text, strlen(text), mac);
    cache_put(r, "wsnap", id, mac, sizeof mac, text, strlen(text));
}

/* 0 with the plaintext, or -1 (err PF_EAUTH) when it is not this writer's own. */
static int cached_snapshot(pf_repo *r, const char *id, pf_buf *out, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    uint8_t mac[PF_ID_LEN];
    int rc = -1;
    if (r->cache_fd < 0 || cache_read(r, "wsnap", id, &b) || b.len < PF_ID_LEN) {
        pf_repo_need_full_key(r, "reading a snapshot this machine did not write", err);
        goto out;
    }
    snapshot_mac(r, id, b.data + PF_ID_LEN, b.len - PF_ID_LEN, mac);
    if (CRYPTO_memcmp(mac, b.data, PF_ID_LEN)) {
        cache_drop(r, "wsnap", id);
        pf_repo_need_full_key(r, "reading a snapshot this machine did not write", err);
        goto out;
    }
    pf_buf_append(out, b.data + PF_ID_LEN, b.len - PF_ID_LEN);
    rc = 0;
out:
    pf_buf_free(&b);
    return rc;
}

typedef struct cached_snap {
    char id[PF_HEX_ID_LEN + 1];
    pf_snapshot s;
    bool keep;
} cached_snap;

/* What makes a snapshot a candidate parent of another (backup_run.c): host, paths, tags. */
static bool same_lineage(const pf_snapshot *a, const pf_snapshot *b)
{
    if (strcmp(a->host ? a->host : "", b->host ? b->host : "") || a->npaths != b->npaths ||
        a->ntags != b->ntags)
        return false;
    for (size_t i = 0; i < a->npaths; i++)
        if (strcmp(a->paths[i], b->paths[i]))
            return false;
    for (size_t i = 0; i < a->ntags; i++)
        if (strcmp(a->tags[i], b->tags[i]))
            return false;
    return true;
}

static void reach_trees(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_idset *seen)
{
    if (pf_idset_has(seen, id))
        return;
    pf_idset_add(seen, id);
    pf_buf b = PF_BUF_INIT;
    pf_tree t = {0};
    pf_err e = {0};
    if (!cached_tree(r, id, &b, &e) && !pf_tree_decode(b.data, b.len, &t, &e))
        for (size_t i = 0; i < t.count; i++)
            if (t.nodes[i].type == PF_NODE_DIR && t.nodes[i].nblobs == 1)
                reach_trees(r, t.nodes[i].blobs[0], seen);
    pf_tree_free(&t);
    pf_buf_free(&b);
}

/* Keeps the writer's cache to what change detection uses: the newest snapshot of each
 * host, path list and tags (a backup's parent is the newest of its own), and the trees
 * they reach; the rest is removed, so the cache does not grow with every backup. */
static void trim_writer_cache(pf_repo *r)
{
    int fd = dup(r->cache_fd);
    DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
    if (!d) {
        if (fd >= 0)
            close(fd);
        return;
    }
    cached_snap *v = NULL;
    size_t n = 0;
    char(*trees)[PF_HEX_ID_LEN + 1] = NULL;
    size_t ntrees = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (!strncmp(de->d_name, "wtree-", 6) && pf_name_is_id(de->d_name + 6)) {
            trees = pf_xrealloc(trees, (ntrees + 1) * sizeof *trees);
            memcpy(trees[ntrees++], de->d_name + 6, PF_HEX_ID_LEN + 1);
        } else if (!strncmp(de->d_name, "wsnap-", 6) && pf_name_is_id(de->d_name + 6)) {
            pf_buf b = PF_BUF_INIT;
            pf_err e = {0};
            v = pf_xrealloc(v, (n + 1) * sizeof *v);
            memset(&v[n], 0, sizeof v[n]);
            memcpy(v[n].id, de->d_name + 6, PF_HEX_ID_LEN + 1);
            if (!cached_snapshot(r, v[n].id, &b, &e) &&
                !pf_snapshot_decode((const char *)b.data, b.len, &v[n].s, &e))
                n++;
            pf_buf_free(&b);
        }
    }
    closedir(d);
    pf_idset seen = PF_IDSET_INIT;
    for (size_t i = 0; i < n; i++) {
        v[i].keep = true;
        for (size_t j = 0; j < n && v[i].keep; j++)
            if (j != i && same_lineage(&v[i].s, &v[j].s) &&
                (v[j].s.time_ns > v[i].s.time_ns ||
                 (v[j].s.time_ns == v[i].s.time_ns && strcmp(v[j].id, v[i].id) > 0)))
                v[i].keep = false;
    }
    for (size_t i = 0; i < n; i++) {
        if (v[i].keep)
            reach_trees(r, v[i].s.tree, &seen);
        else
            cache_drop(r, "wsnap", v[i].id);
        pf_snapshot_free(&v[i].s);
    }
    for (size_t i = 0; i < ntrees; i++) {
        uint8_t id[PF_ID_LEN];
        if (!pf_unhex(trees[i], id, PF_ID_LEN) && !pf_idset_has(&seen, id))
            cache_drop(r, "wtree", trees[i]);
    }
    pf_idset_free(&seen);
    free(v);
    free(trees);
}

int pf_repo_load_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_tree *t, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = r->keys.write_only ? cached_tree(r, id, &b, err) : pf_repo_load_blob(r, id, &b, err);
    if (!rc)
        rc = pf_tree_decode(b.data, b.len, t, err);
    pf_buf_free(&b);
    return rc;
}

typedef struct resolve_ctx {
    const char *prefix;
    size_t plen;
    char found[PF_HEX_ID_LEN + 1];
    int matches;
} resolve_ctx;

static int resolve_one(const char *id, void *vctx)
{
    resolve_ctx *c = vctx;
    if (!strncmp(id, c->prefix, c->plen)) {
        c->matches++;
        memcpy(c->found, id, sizeof c->found);
    }
    return 0;
}

int pf_repo_resolve_snapshot(pf_repo *r, const char *ref, char id_out[PF_HEX_ID_LEN + 1],
                             pf_err *err)
{
    if (!strcmp(ref, "latest")) {
        pf_snapshot *all;
        size_t n;
        if (pf_repo_load_all_snapshots(r, &all, &n, err))
            return -1;
        if (n == 0) {
            pf_snapshots_free(all, n);
            return pf_err_set(err, PF_ENOTFOUND, "the repository has no snapshots yet");
        }
        memcpy(id_out, all[n - 1].id, PF_HEX_ID_LEN + 1);
        pf_snapshots_free(all, n);
        return 0;
    }
    resolve_ctx c = {ref, strlen(ref), "", 0};
    if (c.plen == 0 || c.plen > PF_HEX_ID_LEN)
        return pf_err_set(err, PF_EUSAGE, "\"%s\" is not a snapshot id", ref);
    if (pf_repo_list_objects(r, "snapshots", resolve_one, &c, err))
        return -1;
    if (c.matches == 0)
        return pf_err_set(err, PF_ENOTFOUND,
                          "no snapshot %s: see 'permafrost snapshots' for the ids", ref);
    if (c.matches > 1)
        return pf_err_set(err, PF_EUSAGE, "snapshot id prefix %s is ambiguous: give more digits",
                          ref);
    memcpy(id_out, c.found, sizeof c.found);
    return 0;
}

static int load_snapshot_id(pf_repo *r, const char *id, pf_snapshot *s, pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    int rc = r->keys.write_only ? cached_snapshot(r, id, &b, err)
                                : pf_repo_load_object(r, "snapshots", id, &b, err);
    if (!rc && pf_snapshot_decode((const char *)b.data, b.len, s, err)) {
        pf_err_prefix(err, "snapshot %.12s", id);
        rc = -1;
    }
    if (!rc)
        memcpy(s->id, id, PF_HEX_ID_LEN + 1);
    pf_buf_free(&b);
    return rc;
}

int pf_repo_load_snapshot(pf_repo *r, const char *ref, pf_snapshot *s, pf_err *err)
{
    char id[PF_HEX_ID_LEN + 1];
    if (pf_repo_resolve_snapshot(r, ref, id, err))
        return -1;
    return load_snapshot_id(r, id, s, err);
}

int pf_repo_save_snapshot(pf_repo *r, pf_snapshot *s, pf_err *err)
{
    char *text = pf_snapshot_encode(s);
    if (!text)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    int rc = pf_repo_save_object(r, "snapshots", text, strlen(text), s->id, err);
    if (!rc && r->keys.write_only && r->cache_fd >= 0) {
        cache_snapshot(r, s->id, text);
        trim_writer_cache(r);
    }
    cJSON_free(text);
    return rc;
}

typedef struct all_ctx {
    pf_repo *r;
    pf_snapshot *v;
    size_t n, cap;
    pf_err *err;
    int failed;
} all_ctx;

static int load_all_one(const char *id, void *vctx)
{
    all_ctx *c = vctx;
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 16;
        pf_snapshot *v = realloc(c->v, cap * sizeof *v);
        if (!v)
            return 1;
        c->v = v;
        c->cap = cap;
    }
    pf_err e = {0};
    if (load_snapshot_id(c->r, id, &c->v[c->n], &e)) {
        if (e.code == PF_EAUTH && c->r->keys.write_only)
            return 0; /* not this writer's own: it has no way to read it, and needs not */
        if (e.code == PF_ECORRUPT) {
            /* One damaged snapshot must not hide the others or stop the next backup. */
            pf_warn("skipping damaged snapshot %.8s: %s (run 'permafrost check')", id, e.msg);
            return 0;
        }
        *c->err = e;
        c->failed = 1;
        return 1;
    }
    c->n++;
    return 0;
}

static int snap_cmp(const void *a, const void *b)
{
    const pf_snapshot *x = a, *y = b;
    if (x->time_ns != y->time_ns)
        return x->time_ns < y->time_ns ? -1 : 1;
    return strcmp(x->id, y->id);
}

int pf_repo_load_all_snapshots(pf_repo *r, pf_snapshot **out, size_t *n, pf_err *err)
{
    all_ctx c = {r, NULL, 0, 0, err, 0};
    int rc = pf_repo_list_objects(r, "snapshots", load_all_one, &c, err);
    if (rc || c.failed) {
        pf_snapshots_free(c.v, c.n);
        return -1;
    }
    if (c.n > 1)
        qsort(c.v, c.n, sizeof *c.v, snap_cmp);
    *out = c.v;
    *n = c.n;
    return 0;
}

void pf_snapshots_free(pf_snapshot *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        pf_snapshot_free(&s[i]);
    free(s);
}
