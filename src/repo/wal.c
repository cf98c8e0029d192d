#include "repo/wal.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "common/log.h"
#include "repo/names.h"
#include "repo/pack.h"
#include "repo/saver.h"

static bool upper_hex(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
            return false; /* also stops at a NUL */
    return true;
}

pf_wal_kind pf_wal_name_kind(const char *name)
{
    if (!name)
        return PF_WAL_NONE;
    size_t n = strnlen(name, PF_WAL_NAME_MAX + 1);
    if (n == 24 && upper_hex(name, 24))
        return PF_WAL_SEGMENT;
    if (n == 16 && upper_hex(name, 8) && !strcmp(name + 8, ".history"))
        return PF_WAL_HISTORY;
    if (n == 32 && upper_hex(name, 24) && !strcmp(name + 24, ".partial"))
        return PF_WAL_PARTIAL;
    if (n == 40 && upper_hex(name, 24) && name[24] == '.' && upper_hex(name + 25, 8) &&
        !strcmp(name + 33, ".backup"))
        return PF_WAL_BACKUP;
    if (n == 41 && upper_hex(name, 24) && name[24] == '.' && upper_hex(name + 25, 8) &&
        !strcmp(name + 33, ".partial"))
        return PF_WAL_STREAMED;
    return PF_WAL_NONE;
}

int pf_wal_key(const char *name, char key[PF_WAL_KEY_MAX], pf_err *err)
{
    if (pf_wal_name_kind(name) == PF_WAL_NONE)
        return pf_err_set(err, PF_EUSAGE,
                          "\"%.60s\" is not a WAL file name (24 hex digits, or a .history, "
                          ".backup or .partial file)",
                          name ? name : "");
    snprintf(key, PF_WAL_KEY_MAX, "wal/%.8s/%s", name, name);
    return 0;
}

int pf_wal_streamed_name(const char *segment, uint32_t bytes, char out[PF_WAL_NAME_MAX + 1])
{
    if (pf_wal_name_kind(segment) != PF_WAL_SEGMENT)
        return -1;
    snprintf(out, PF_WAL_NAME_MAX + 1, "%s.%08X.partial", segment, bytes);
    return 0;
}

int pf_lsn_parse(const char *s, uint64_t *lsn)
{
    unsigned hi, lo;
    char tail;
    if (!s || sscanf(s, "%X/%X%c", &hi, &lo, &tail) != 2)
        return -1;
    *lsn = ((uint64_t)hi << 32) | lo;
    return 0;
}

int pf_wal_history_switch(const char *text, size_t n, uint32_t tli, uint64_t *switch_lsn,
                          uint32_t *next_tli)
{
    /* Lines "<tli>\t<switch point>\t<reason>" in order, '#' comments, blank lines; the
     * timeline after the last line is the file's own. */
    bool found = false;
    size_t i = 0;
    while (i < n) {
        size_t e = i;
        while (e < n && text[e] != '\n')
            e++;
        char line[256];
        size_t len = e - i < sizeof line - 1 ? e - i : sizeof line - 1;
        memcpy(line, text + i, len);
        line[len] = 0;
        i = e + 1;
        unsigned t;
        char lsn[32];
        if (line[0] == '#' || sscanf(line, "%u %31s", &t, lsn) != 2)
            continue;
        if (found) {
            *next_tli = t;
            return 0;
        }
        if (t == tli) {
            if (pf_lsn_parse(lsn, switch_lsn))
                return -1;
            found = true;
        }
    }
    return found ? 1 : -1; /* 1: the next timeline is the file's own (the caller knows it) */
}

const char *pf_wal_name_of_key(const char *key)
{
    if (strncmp(key, "wal/", 4) || strnlen(key, PF_WAL_KEY_MAX) >= PF_WAL_KEY_MAX ||
        !upper_hex(key + 4, 8) || key[12] != '/')
        return NULL;
    const char *name = key + 13;
    if (pf_wal_name_kind(name) == PF_WAL_NONE || memcmp(name, key + 4, 8))
        return NULL;
    return name;
}

int pf_wal_seal(const pf_keys *keys, const char *name, const void *json, size_t n, pf_buf *out,
                pf_err *err)
{
    char key[PF_WAL_KEY_MAX];
    if (pf_wal_key(name, key, err))
        return -1;
    return pf_object_seal(keys, key, json, n, out, err);
}

int pf_wal_open(const pf_keys *keys, const char *name, const uint8_t *p, size_t n, pf_buf *out,
                pf_err *err)
{
    char key[PF_WAL_KEY_MAX];
    if (pf_wal_key(name, key, err))
        return -1;
    return pf_object_open(keys, key, p, n, out, err);
}

/* One chunk of a WAL file as its object records it. */
typedef struct wal_chunk {
    pf_blob_entry e;
    uint8_t pack[PF_ID_LEN], salt[PF_SALT_LEN];
    uint8_t kind; /* the pack's: "sealed":true when PF_PACK_SEALED (format 3) */
} wal_chunk;

typedef struct wal_obj {
    uint64_t size;
    uint64_t seg_size; /* a streamed partial's whole segment; 0 for other files */
    uint8_t sha[PF_ID_LEN];
    wal_chunk *chunks;
    size_t n;
} wal_obj;

static bool get_u32(const cJSON *o, const char *k, uint32_t max, uint32_t *v)
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!cJSON_IsNumber(x) || x->valuedouble < 0 || x->valuedouble > max ||
        x->valuedouble != (double)(uint32_t)x->valuedouble)
        return false;
    *v = (uint32_t)x->valuedouble;
    return true;
}

static bool get_hex(const cJSON *o, const char *k, uint8_t out[PF_ID_LEN])
{
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(x) && pf_name_is_id(x->valuestring) &&
           pf_unhex(x->valuestring, out, PF_ID_LEN) == 0;
}

/* Parses and checks every field before any is used: the plaintext authenticated, but a
 * bug in an older writer must not become an out-of-range read. */
static int decode(const char *name, const pf_buf *plain, wal_obj *w, pf_err *err)
{
    memset(w, 0, sizeof *w);
    cJSON *o = cJSON_ParseWithLength((const char *)plain->data, plain->len);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "version");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *sz = cJSON_GetObjectItemCaseSensitive(o, "size");
    const cJSON *bl = cJSON_GetObjectItemCaseSensitive(o, "blobs");
    int rc = -1;
    if (!cJSON_IsObject(o) || !cJSON_IsNumber(v) || v->valuedouble != 1 || !cJSON_IsString(nm) ||
        strcmp(nm->valuestring, name) || !cJSON_IsNumber(sz) || sz->valuedouble < 0 ||
        sz->valuedouble > (double)PF_WAL_MAX_FILE || !get_hex(o, "sha256", w->sha) ||
        !cJSON_IsArray(bl)) {
        pf_err_set(err, PF_ECORRUPT, "WAL object %s is malformed", name);
        goto out;
    }
    w->size = (uint64_t)sz->valuedouble;
    const cJSON *ss = cJSON_GetObjectItemCaseSensitive(o, "segment_size");
    if (ss && (!cJSON_IsNumber(ss) || ss->valuedouble < (double)w->size ||
               ss->valuedouble > (double)PF_WAL_MAX_FILE)) {
        pf_err_set(err, PF_ECORRUPT, "WAL object %s: bad segment_size", name);
        goto out;
    }
    w->seg_size = ss ? (uint64_t)ss->valuedouble : 0;
    if (pf_wal_name_kind(name) == PF_WAL_STREAMED && !w->seg_size) {
        pf_err_set(err, PF_ECORRUPT, "WAL object %s: a streamed partial without segment_size",
                   name);
        goto out;
    }
    int count = cJSON_GetArraySize(bl);
    w->chunks = calloc(count ? (size_t)count : 1, sizeof *w->chunks);
    if (!w->chunks) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    uint64_t total = 0;
    const cJSON *b;
    cJSON_ArrayForEach(b, bl)
    {
        wal_chunk *c = &w->chunks[w->n];
        uint32_t type, comp;
        if (!get_hex(b, "id", c->e.id) || !get_hex(b, "pack", c->pack) ||
            !get_hex(b, "salt", c->salt) || !get_u32(b, "type", 255, &type) ||
            type != PF_BLOB_DATA || !get_u32(b, "comp", 1, &comp) ||
            !get_u32(b, "offset", UINT32_MAX, &c->e.offset) ||
            !get_u32(b, "length", PF_MAX_BLOB + 1024, &c->e.length) || c->e.length < 16 ||
            !get_u32(b, "raw", PF_MAX_BLOB, &c->e.raw_length)) {
            pf_err_set(err, PF_ECORRUPT, "WAL object %s: chunk %zu is malformed", name, w->n);
            goto out;
        }
        c->e.type = (uint8_t)type;
        c->e.comp = (uint8_t)comp;
        c->kind = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(b, "sealed")) ? PF_PACK_SEALED
                                                                              : PF_PACK_MASTER;
        total += c->e.raw_length;
        w->n++;
    }
    if (total != w->size) {
        pf_err_set(err, PF_ECORRUPT, "WAL object %s: its chunks do not add up to its size", name);
        goto out;
    }
    rc = 0;
out:
    if (rc) {
        free(w->chunks);
        w->chunks = NULL;
    }
    cJSON_Delete(o);
    return rc;
}

/* Reads and opens the object of `name`; PF_ENOTFOUND when there is none. sealed_len (may
 * be NULL) gets the object's size in the store. */
static int load_sized(pf_repo *r, const char *name, wal_obj *w, uint64_t *sealed_len, pf_err *err)
{
    char key[PF_WAL_KEY_MAX];
    pf_buf sealed = PF_BUF_INIT, plain = PF_BUF_INIT;
    int rc = -1;
    if (pf_wal_key(name, key, err))
        return -1;
    if (pf_store_get(r->store, key, 0, PF_STORE_ALL, &sealed, err)) {
        if (err->code == PF_ENOTFOUND)
            pf_err_set(err, PF_ENOTFOUND, "WAL file %s is not in the repository", name);
        else
            pf_err_prefix(err, "reading %s", key);
        goto out;
    }
    if (pf_wal_open(&r->keys, name, sealed.data, sealed.len, &plain, err)) {
        pf_err_prefix(err, "%s", key);
        err->code = PF_ECORRUPT;
        goto out;
    }
    rc = decode(name, &plain, w, err);
    if (sealed_len)
        *sealed_len = sealed.len;
out:
    pf_buf_free(&sealed);
    pf_buf_free(&plain);
    return rc;
}

static int load(pf_repo *r, const char *name, wal_obj *w, pf_err *err)
{
    return load_sized(r, name, w, NULL, err);
}

static void hexs(const uint8_t *p, char out[PF_HEX_ID_LEN + 1])
{
    pf_hex(p, PF_ID_LEN, out);
}

static char *encode(const char *name, uint64_t size, uint64_t seg_size,
                    const uint8_t sha[PF_ID_LEN], const wal_chunk *c, size_t n)
{
    char hex[PF_HEX_ID_LEN + 1], ts[32];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    snprintf(ts, sizeof ts, "%" PRId64, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "version", 1);
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddNumberToObject(o, "size", (double)size);
    hexs(sha, hex);
    cJSON_AddStringToObject(o, "sha256", hex);
    cJSON_AddStringToObject(o, "time_ns", ts);
    if (seg_size)
        cJSON_AddNumberToObject(o, "segment_size", (double)seg_size);
    cJSON *arr = cJSON_AddArrayToObject(o, "blobs");
    for (size_t i = 0; i < n; i++) {
        cJSON *b = cJSON_CreateObject();
        hexs(c[i].e.id, hex);
        cJSON_AddStringToObject(b, "id", hex);
        hexs(c[i].pack, hex);
        cJSON_AddStringToObject(b, "pack", hex);
        hexs(c[i].salt, hex);
        cJSON_AddStringToObject(b, "salt", hex);
        if (c[i].kind == PF_PACK_SEALED)
            cJSON_AddBoolToObject(b, "sealed", 1);
        cJSON_AddNumberToObject(b, "type", c[i].e.type);
        cJSON_AddNumberToObject(b, "comp", c[i].e.comp);
        cJSON_AddNumberToObject(b, "offset", c[i].e.offset);
        cJSON_AddNumberToObject(b, "length", c[i].e.length);
        cJSON_AddNumberToObject(b, "raw", c[i].e.raw_length);
        cJSON_AddItemToArray(arr, b);
    }
    char *s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    return s;
}

/* Fills each chunk's location from where the saver left it in r->index. */
static int locate_chunks(pf_repo *r, const char *name, wal_chunk *chunks, size_t nc, pf_err *err)
{
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < nc; i++) {
        pf_blob_loc *l = pf_index_find(r->index, chunks[i].e.id);
        if (!l || l->pack == PF_PACK_PENDING) {
            pthread_mutex_unlock(&r->mu);
            return pf_err_set(err, PF_EGENERIC, "WAL file %s: a chunk was not stored", name);
        }
        chunks[i].e.type = l->type;
        chunks[i].e.comp = l->comp;
        chunks[i].e.offset = l->offset;
        chunks[i].e.length = l->length;
        memcpy(chunks[i].pack, r->index->packs[l->pack].id, PF_ID_LEN);
        memcpy(chunks[i].salt, r->index->packs[l->pack].salt, PF_SALT_LEN);
        chunks[i].kind = r->index->packs[l->pack].kind;
    }
    pthread_mutex_unlock(&r->mu);
    return 0;
}

static int push_file(pf_repo *r, const char *name, const void *data, size_t n, uint64_t seg_size,
                     int workers, pf_wal_push_result *res, pf_err *err)
{
    char key[PF_WAL_KEY_MAX];
    uint8_t sha[PF_ID_LEN];
    memset(res, 0, sizeof *res);
    res->bytes = n;
    if (pf_wal_key(name, key, err))
        return -1;
    if (n > PF_WAL_MAX_FILE)
        return pf_err_set(err, PF_EUSAGE, "WAL file %s is larger than 1 GiB", name);
    pf_sha256(data, n, sha);

    /* PostgreSQL pushes again whatever it did not see succeed: the same bytes are done. */
    wal_obj old;
    pf_err e = {0};
    if (load(r, name, &old, &e) == 0) {
        int same = old.size == n && !memcmp(old.sha, sha, PF_ID_LEN);
        free(old.chunks);
        if (!same)
            return pf_err_set(err, PF_EEXIST,
                              "WAL file %s is already archived with other content: refusing to "
                              "replace it (is another server archiving into this repository?)",
                              name);
        res->already = true;
        return 0;
    }
    if (e.code != PF_ENOTFOUND) {
        /* A damaged object is not a reason to overwrite what may be the only copy. */
        *err = e;
        return -1;
    }

    size_t cap = n / r->chunker.min + 2, nc = 0;
    wal_chunk *chunks = calloc(cap, sizeof *chunks);
    char *json = NULL;
    pf_buf sealed = PF_BUF_INIT;
    int rc = -1;
    if (!chunks)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    pf_saver *s = pf_saver_new(r, workers, err);
    if (!s)
        goto out;
    const uint8_t *p = data;
    for (size_t off = 0; off < n;) {
        size_t len = pf_chunker_cut(&r->chunker, p + off, n - off, true);
        if (nc == cap) {
            pf_err_set(err, PF_EGENERIC, "WAL file %s: more chunks than expected", name);
            goto out;
        }
        chunks[nc].e.raw_length = (uint32_t)len;
        if (pf_saver_save(s, PF_BLOB_DATA, p + off, len, chunks[nc].e.id, err))
            goto out;
        nc++;
        off += len;
    }
    if (pf_saver_finish(s, err))
        goto out;
    pf_saver_stats st;
    pf_saver_stats_get(s, &st);
    res->bytes_new = st.bytes_stored;
    if (locate_chunks(r, name, chunks, nc, err))
        goto out;
    json = encode(name, n, seg_size, sha, chunks, nc);
    if (!json) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    /* Last: only now that the packs and their index file are durable. */
    if (pf_wal_seal(&r->keys, name, json, strlen(json), &sealed, err) ||
        pf_store_put(r->store, key, sealed.data, sealed.len, err)) {
        pf_err_prefix(err, "writing %s", key);
        goto out;
    }
    rc = 0;
out:
    pf_saver_free(s);
    free(chunks);
    free(json);
    pf_buf_free(&sealed);
    return rc;
}

int pf_wal_push(pf_repo *r, const char *name, const void *data, size_t n, int workers,
                pf_wal_push_result *res, pf_err *err)
{
    return push_file(r, name, data, n, 0, workers, res, err);
}

int pf_wal_push_streamed(pf_repo *r, const char *segment, const void *data, size_t n,
                         uint64_t seg_size, int workers, pf_wal_push_result *res, pf_err *err)
{
    char name[PF_WAL_NAME_MAX + 1];
    if (n > seg_size || seg_size > PF_WAL_MAX_FILE ||
        pf_wal_streamed_name(segment, (uint32_t)n, name))
        return pf_err_set(err, PF_EUSAGE, "%.30s: not a segment name, or %zu bytes past its end",
                          segment ? segment : "", n);
    return push_file(r, name, data, n, seg_size, workers, res, err);
}

/* Whether files[i] is archived already: 1 (same bytes: done, f->rc 0), 0 (not there: to
 * be stored), -1 (f->rc -1: other bytes, or an object that does not open). */
static int batch_check_old(pf_repo *r, pf_wal_batch_file *f)
{
    wal_obj old;
    pf_err e = {0};
    uint64_t sealed_len = 0;
    if (load_sized(r, f->name, &old, &sealed_len, &e) == 0) {
        pf_sha256(f->data, f->len, f->sha);
        int same = old.size == f->len && !memcmp(old.sha, f->sha, PF_ID_LEN);
        free(old.chunks);
        if (!same) {
            f->rc = pf_err_set(&f->err, PF_EEXIST,
                               "WAL file %s is already archived with other content: refusing "
                               "to replace it (is another server archiving into this "
                               "repository?)",
                               f->name);
            return -1;
        }
        f->res.already = true;
        f->object_size = sealed_len;
        f->rc = 0;
        return 1;
    }
    if (e.code != PF_ENOTFOUND) {
        /* A damaged object is not a reason to overwrite what may be the only copy. */
        f->err = e;
        f->rc = -1;
        return -1;
    }
    return 0;
}

/* Hands one file's chunks to the saver, hashing the file on the way (one pass over the
 * bytes for both hashes, a page at a time in the cache). */
static int batch_save_file(pf_repo *r, pf_saver *s, pf_wal_batch_file *f, wal_chunk *chunks,
                           size_t *nc, pf_err *err)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    if (!md || !EVP_DigestInit_ex(md, EVP_sha256(), NULL)) {
        EVP_MD_CTX_free(md);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    size_t step = r->chunker.avg, page = (size_t)sysconf(_SC_PAGESIZE), dropped = 0;
    int rc = 0;
    *nc = 0;
    for (size_t off = 0; off < f->len && !rc; off += step) {
        size_t len = f->len - off < step ? f->len - off : step;
        EVP_DigestUpdate(md, f->data + off, len);
        chunks[*nc].e.raw_length = (uint32_t)len;
        rc = pf_saver_save(s, PF_BLOB_DATA, f->data + off, len, chunks[*nc].e.id, err);
        (*nc)++;
        /* The saver copied the chunk: its pages need not stay in this process. */
        size_t upto = (off + len) / page * page;
        if (f->mapped && upto > dropped) {
            madvise((void *)(f->data + dropped), upto - dropped, MADV_DONTNEED);
            dropped = upto;
        }
    }
    unsigned int hl = PF_ID_LEN;
    EVP_DigestFinal_ex(md, f->sha, &hl);
    EVP_MD_CTX_free(md);
    return rc;
}

/* Writes the object of a file whose chunks are durable: last, and durable itself. */
static int batch_write_object(pf_repo *r, pf_wal_batch_file *f, const wal_chunk *chunks, size_t nc,
                              pf_err *err)
{
    char key[PF_WAL_KEY_MAX];
    pf_buf sealed = PF_BUF_INIT;
    char *json = encode(f->name, f->len, 0, f->sha, chunks, nc);
    int rc = -1;
    if (!json) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
    } else if (pf_wal_key(f->name, key, err) ||
               pf_wal_seal(&r->keys, f->name, json, strlen(json), &sealed, err) ||
               pf_store_put(r->store, key, sealed.data, sealed.len, err)) {
        pf_err_prefix(err, "writing %s", key);
    } else {
        f->object_size = sealed.len;
        rc = 0;
    }
    free(json);
    pf_buf_free(&sealed);
    return rc;
}

int pf_wal_push_batch(pf_repo *r, pf_wal_batch_file *files, size_t n, int workers, pf_err *err)
{
    size_t step = r->chunker.avg, total = 0;
    bool *todo = calloc(n ? n : 1, sizeof *todo);
    size_t *first = calloc(n + 1, sizeof *first);
    if (!todo || !first) {
        free(todo);
        free(first);
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        pf_wal_batch_file *f = &files[i];
        char key[PF_WAL_KEY_MAX];
        memset(&f->res, 0, sizeof f->res);
        f->res.bytes = f->len;
        f->rc = -1;
        pf_err_clear(&f->err);
        if (pf_wal_key(f->name, key, &f->err))
            continue;
        if (f->len > PF_WAL_MAX_FILE) {
            pf_err_set(&f->err, PF_EUSAGE, "WAL file %s is larger than 1 GiB", f->name);
            continue;
        }
        if (batch_check_old(r, f) == 0) {
            todo[i] = true;
            first[i] = total;
            total += (f->len + step - 1) / step;
        }
    }
    wal_chunk *chunks = calloc(total ? total : 1, sizeof *chunks);
    size_t *counts = calloc(n ? n : 1, sizeof *counts);
    pf_saver *s = NULL;
    int rc = -1;
    if (!chunks || !counts) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    if (!total) {
        rc = 0;
        goto out;
    }
    if (!(s = pf_saver_new(r, workers, err)))
        goto out;
    /* WAL's own settings (docs/DECISIONS.md): zstd level 1, packs of 4 MiB. */
    pf_saver_set_packing(s, r->zstd_level < PF_WAL_ZSTD_LEVEL ? r->zstd_level : PF_WAL_ZSTD_LEVEL,
                         r->pack_size < PF_WAL_PACK_SIZE ? r->pack_size : PF_WAL_PACK_SIZE);
    int failed = 0;
    for (size_t i = 0; i < n && !failed; i++)
        if (todo[i] && batch_save_file(r, s, &files[i], chunks + first[i], &counts[i], err))
            failed = 1;
    /* The packs and the index file naming them are durable from here on. */
    if (!failed && pf_saver_finish(s, err))
        failed = 1;
    if (failed)
        goto out;
    pf_saver_stats st;
    pf_saver_stats_get(s, &st);
    for (size_t i = 0; i < n; i++) {
        if (!todo[i])
            continue;
        pf_wal_batch_file *f = &files[i];
        if (locate_chunks(r, f->name, chunks + first[i], counts[i], err) ||
            batch_write_object(r, f, chunks + first[i], counts[i], err))
            goto out;
        f->rc = 0;
        todo[i] = false;
        /* Packs are shared: the sealed bytes are told for the batch, on its first file. */
        f->res.bytes_new = st.bytes_stored;
        st.bytes_stored = 0;
    }
    rc = 0;
out:
    if (rc)
        for (size_t i = 0; i < n; i++)
            if (todo[i]) {
                files[i].rc = -1;
                files[i].err = *err;
            }
    pf_saver_free(s);
    free(chunks);
    free(counts);
    free(todo);
    free(first);
    return rc;
}

void pf_wal_forget_chunks(pf_repo *r)
{
    pthread_mutex_lock(&r->mu);
    pf_index_free(r->index);
    r->index = pf_index_new();
    r->index_loaded = false;
    pthread_mutex_unlock(&r->mu);
}

/* Reads every chunk through the locations the object recorded (hints == true) or through
 * the repository's index. */
static int read_chunks(pf_repo *r, const wal_obj *w, bool hints, pf_buf *out, pf_err *err)
{
    for (size_t i = 0; i < w->n; i++) {
        const wal_chunk *c = &w->chunks[i];
        if (hints) {
            pf_blob_loc loc = {.offset = c->e.offset,
                               .length = c->e.length,
                               .raw_length = c->e.raw_length,
                               .type = c->e.type,
                               .comp = c->e.comp};
            pthread_mutex_lock(&r->mu);
            pf_pack_info info = {.kind = c->kind};
            memcpy(info.id, c->pack, PF_ID_LEN);
            memcpy(info.salt, c->salt, PF_SALT_LEN);
            loc.pack = pf_index_add_pack_info(r->index, &info);
            pf_index_set(r->index, c->e.id, &loc);
            pthread_mutex_unlock(&r->mu);
        }
        if (pf_repo_load_blob(r, c->e.id, out, err))
            return -1;
    }
    return 0;
}

/* As pf_wal_fetch; seg_size gets the object's segment_size (0 but for streamed partials). */
static int fetch(pf_repo *r, const char *name, pf_buf *out, uint64_t *seg_size, pf_err *err)
{
    wal_obj w;
    size_t start = out->len;
    if (load(r, name, &w, err))
        return -1;
    *seg_size = w.seg_size;
    int rc = -1;
    if (!r->index_loaded && read_chunks(r, &w, true, out, err) == 0) {
        rc = 0;
    } else {
        /* A pack the hints name is gone (prune rewrote it): find the chunks by id. */
        if (!r->index_loaded) {
            pf_debug("WAL file %s: %s; reading through the index", name, err->msg);
            pthread_mutex_lock(&r->mu);
            pf_index_free(r->index);
            r->index = pf_index_new();
            pthread_mutex_unlock(&r->mu);
        }
        out->len = start;
        pf_err_clear(err);
        if (pf_repo_load_index(r, err) == 0 && read_chunks(r, &w, false, out, err) == 0)
            rc = 0;
    }
    if (rc == 0) {
        uint8_t sha[PF_ID_LEN];
        pf_sha256(out->data + start, out->len - start, sha);
        if (out->len - start != w.size || memcmp(sha, w.sha, PF_ID_LEN)) {
            rc = pf_err_set(err, PF_ECORRUPT, "WAL file %s does not match its recorded hash", name);
        }
    }
    if (rc) {
        out->len = start;
        pf_err_prefix(err, "WAL file %s", name);
    }
    free(w.chunks);
    return rc;
}

int pf_wal_fetch(pf_repo *r, const char *name, pf_buf *out, pf_err *err)
{
    uint64_t seg_size;
    return fetch(r, name, out, &seg_size, err);
}

int pf_wal_remember(pf_repo *r, const char *name, pf_err *err)
{
    wal_obj w;
    if (load(r, name, &w, err))
        return -1;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < w.n; i++) {
        const wal_chunk *c = &w.chunks[i];
        pf_blob_loc loc = {.offset = c->e.offset,
                           .length = c->e.length,
                           .raw_length = c->e.raw_length,
                           .type = c->e.type,
                           .comp = c->e.comp};
        loc.pack = pf_index_add_pack(r->index, c->pack, c->salt);
        pf_index_set(r->index, c->e.id, &loc);
    }
    pthread_mutex_unlock(&r->mu);
    free(w.chunks);
    return 0;
}

typedef struct streamed_ctx {
    const char *segment;
    char *best;
} streamed_ctx;

static int streamed_one(const char *key, uint64_t size, void *vctx, pf_err *err)
{
    (void)size;
    (void)err;
    streamed_ctx *c = vctx;
    const char *name = pf_wal_name_of_key(key);
    /* Same width, upper-case hex: the longest sorts last. */
    if (name && pf_wal_name_kind(name) == PF_WAL_STREAMED && !strncmp(name, c->segment, 24) &&
        strcmp(name, c->best) > 0)
        snprintf(c->best, PF_WAL_NAME_MAX + 1, "%s", name);
    return 0;
}

int pf_wal_newest_streamed(pf_repo *r, const char *segment, char name[PF_WAL_NAME_MAX + 1],
                           pf_err *err)
{
    name[0] = 0;
    if (pf_wal_name_kind(segment) != PF_WAL_SEGMENT)
        return pf_err_set(err, PF_EUSAGE, "\"%.30s\" is not a WAL segment name", segment);
    char folder[16];
    snprintf(folder, sizeof folder, "wal/%.8s/", segment);
    streamed_ctx c = {segment, name};
    pf_err_clear(err);
    int rc = pf_store_list(r->store, folder, streamed_one, &c, err);
    if (rc && err->code != PF_ENOTFOUND) {
        if (!err->code)
            pf_err_set(err, PF_EGENERIC, "listing %s stopped", folder);
        return -1;
    }
    if (!name[0])
        return pf_err_set(err, PF_ENOTFOUND, "WAL file %s is not in the repository", segment);
    return 0;
}

bool pf_wal_has_through(pf_repo *r, const char *segment, uint64_t bytes)
{
    char key[PF_WAL_KEY_MAX], name[PF_WAL_NAME_MAX + 1];
    uint64_t size;
    pf_err e = {0};
    if (pf_wal_key(segment, key, &e))
        return false;
    if (pf_store_stat(r->store, key, &size, &e) == 0)
        return true;
    return pf_wal_newest_streamed(r, segment, name, &e) == 0 &&
           strtoull(name + 25, NULL, 16) >= bytes;
}

int pf_wal_fetch_segment(pf_repo *r, const char *segment, pf_buf *out,
                         char used[PF_WAL_NAME_MAX + 1], pf_err *err)
{
    used[0] = 0;
    if (pf_wal_fetch(r, segment, out, err) == 0)
        return 0;
    if (err->code != PF_ENOTFOUND || pf_wal_name_kind(segment) != PF_WAL_SEGMENT)
        return -1;
    pf_err e = {0};
    char name[PF_WAL_NAME_MAX + 1];
    if (pf_wal_newest_streamed(r, segment, name, &e)) {
        if (e.code != PF_ENOTFOUND)
            *err = e;
        return -1; /* err still says the segment is not there */
    }
    pf_err_clear(err);
    size_t start = out->len;
    uint64_t seg_size;
    if (fetch(r, name, out, &seg_size, err))
        return -1;
    /* The segment's unwritten rest: zeros, where recovery finds no next record. */
    size_t have = out->len - start;
    if (seg_size > have) {
        pf_buf_reserve(out, (size_t)(seg_size - have));
        memset(out->data + out->len, 0, (size_t)(seg_size - have));
        out->len += (size_t)(seg_size - have);
    }
    snprintf(used, PF_WAL_NAME_MAX + 1, "%s", name);
    return 0;
}

typedef struct list_ctx {
    int (*cb)(const char *name, void *ctx);
    void *ctx;
} list_ctx;

static int list_one(const char *key, uint64_t size, void *vctx, pf_err *err)
{
    (void)err;
    (void)size;
    list_ctx *c = vctx;
    const char *name = pf_wal_name_of_key(key);
    return name ? c->cb(name, c->ctx) : 0;
}

int pf_wal_list(pf_repo *r, int (*cb)(const char *name, void *ctx), void *ctx, pf_err *err)
{
    list_ctx c = {cb, ctx};
    pf_err_clear(err);
    int rc = pf_store_list(r->store, "wal/", list_one, &c, err);
    if (rc > 0) {
        if (!err->code)
            pf_err_set(err, PF_EGENERIC, "listing wal/ stopped");
        return -1;
    }
    return rc;
}

int pf_wal_blobs(pf_repo *r, const char *name, int (*cb)(const uint8_t id[PF_ID_LEN], void *ctx),
                 void *ctx, pf_err *err)
{
    wal_obj w;
    if (load(r, name, &w, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < w.n && !rc; i++)
        rc = cb(w.chunks[i].e.id, ctx);
    free(w.chunks);
    if (rc && !err->code)
        pf_err_set(err, PF_EGENERIC, "WAL file %s: stopped", name);
    return rc ? -1 : 0;
}

typedef struct seg {
    uint32_t tli;
    uint64_t no; /* segment number: log * (2^32 / segment size) + seg */
} seg;

typedef struct names_ctx {
    char **names;
    size_t n, cap;
} names_ctx;

static int collect_name(const char *name, void *vctx)
{
    names_ctx *c = vctx;
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 256;
        char **p = realloc(c->names, c->cap * sizeof *p);
        if (!p)
            return 1;
        c->names = p;
    }
    c->names[c->n++] = strdup(name);
    return 0;
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int seg_cmp(const void *a, const void *b)
{
    const seg *x = a, *y = b;
    if (x->tli != y->tli)
        return x->tli < y->tli ? -1 : 1;
    return x->no < y->no ? -1 : x->no > y->no;
}

static seg seg_of(const char *name, uint64_t per)
{
    char part[9] = {0};
    seg s;
    memcpy(part, name, 8);
    s.tli = (uint32_t)strtoul(part, NULL, 16);
    memcpy(part, name + 8, 8);
    uint64_t log = strtoull(part, NULL, 16);
    memcpy(part, name + 16, 8);
    s.no = log * per + strtoull(part, NULL, 16);
    return s;
}

static void seg_name(seg s, uint64_t per, char out[25])
{
    snprintf(out, 25, "%08X%08X%08X", s.tli, (uint32_t)(s.no / per), (uint32_t)(s.no % per));
}

static void say(void (*report)(int, const char *, void *), void *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void say(void (*report)(int, const char *, void *), void *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    report(1, msg, ctx);
}

/* The base backups' needs, from their snapshots' "postgres-physical" component. */
typedef struct base_need {
    char id[9];
    seg start, end;
    uint64_t end_off; /* how far into its end segment the backup ends (0: unknown) */
} base_need;

/* Where a timeline forked from its parent, from its history file's last line. */
typedef struct fork_pt {
    uint32_t tli, parent;
    seg at; /* the segment holding the switch point, numbered as on the new timeline */
} fork_pt;

/* The forks of every timeline whose history file the repository holds. */
static int load_forks(pf_repo *r, char **names, size_t n, uint64_t per, fork_pt **out, size_t *nout)
{
    *nout = 0;
    *out = calloc(n + 1, sizeof **out);
    if (!*out)
        return -1;
    uint64_t seg_size = 0x100000000ull / per;
    for (size_t i = 0; i < n; i++) {
        if (pf_wal_name_kind(names[i]) != PF_WAL_HISTORY)
            continue;
        pf_buf b = PF_BUF_INIT;
        pf_err e = {0};
        uint32_t tli = (uint32_t)strtoul(names[i], NULL, 16), parent = 0;
        uint64_t sw = 0;
        if (pf_wal_fetch(r, names[i], &b, &e) == 0) {
            /* The last "<parent> <switch point>" line is where this timeline began. */
            const char *p = (const char *)b.data, *end = p + b.len;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
                char line[128], lsn[32];
                unsigned t;
                snprintf(line, sizeof line, "%.*s", (int)(len < 127 ? len : 127), p);
                uint64_t v;
                if (line[0] != '#' && sscanf(line, "%u %31s", &t, lsn) == 2 &&
                    pf_lsn_parse(lsn, &v) == 0) {
                    parent = t;
                    sw = v;
                }
                p += len + 1;
            }
        }
        pf_buf_free(&b);
        if (!parent || parent >= tli)
            continue;
        (*out)[*nout].tli = tli;
        (*out)[*nout].parent = parent;
        (*out)[*nout].at = (seg){tli, sw / seg_size};
        (*nout)++;
    }
    return 0;
}

static const char *comp_str(const pf_snapshot *s, const char *k)
{
    cJSON *c =
        s->components ? cJSON_GetObjectItemCaseSensitive(s->components, "postgres-physical") : NULL;
    cJSON *v = c ? cJSON_GetObjectItemCaseSensitive(c, k) : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* When WAL file name was pushed (its object's time_ns), 0 when unknown. */
static int64_t pushed_at(pf_repo *r, const char *name)
{
    pf_err e = {0};
    char key[PF_WAL_KEY_MAX];
    int64_t t = 0;
    if (pf_wal_key(name, key, &e))
        return 0;
    pf_buf sealed = PF_BUF_INIT, plain = PF_BUF_INIT;
    if (pf_store_get(r->store, key, 0, PF_STORE_ALL, &sealed, &e) == 0 &&
        pf_wal_open(&r->keys, name, sealed.data, sealed.len, &plain, &e) == 0) {
        cJSON *o = cJSON_ParseWithLength((const char *)plain.data, plain.len);
        cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "time_ns");
        if (cJSON_IsString(v))
            t = strtoll(v->valuestring, NULL, 10);
        cJSON_Delete(o);
    }
    pf_buf_free(&sealed);
    pf_buf_free(&plain);
    return t;
}

typedef struct newest_ctx {
    char *newest;
    char streamed[PF_WAL_NAME_MAX + 1];
} newest_ctx;

static int newest_one(const char *name, void *vctx)
{
    newest_ctx *c = vctx;
    pf_wal_kind k = pf_wal_name_kind(name);
    if (k == PF_WAL_SEGMENT && strcmp(name, c->newest) > 0)
        snprintf(c->newest, PF_WAL_NAME_MAX + 1, "%s", name);
    if (k == PF_WAL_STREAMED && strcmp(name, c->streamed) > 0)
        snprintf(c->streamed, sizeof c->streamed, "%s", name);
    return 0;
}

int pf_wal_newest(pf_repo *r, char newest[PF_WAL_NAME_MAX + 1], int64_t *pushed_ns, pf_err *err)
{
    newest[0] = 0;
    *pushed_ns = 0;
    newest_ctx c = {newest, ""};
    if (pf_wal_list(r, newest_one, &c, err))
        return -1;
    /* wal-stream's part of a later segment is further than any whole one. */
    if (c.streamed[0] && strncmp(c.streamed, newest, 24) > 0)
        snprintf(newest, PF_WAL_NAME_MAX + 1, "%s", c.streamed);
    if (newest[0])
        *pushed_ns = pushed_at(r, newest);
    return 0;
}

/* What each physical base backup among snaps needs, and the segments per 4 GiB of WAL
 * (from their segment size). -1 when out of memory. */
static int base_needs(const pf_snapshot *snaps, size_t nsnaps, base_need **out, size_t *n,
                      uint64_t *per)
{
    uint64_t seg_size = 16u << 20;
    base_need *needs = calloc(nsnaps + 1, sizeof *needs);
    *out = needs;
    *n = 0;
    if (!needs)
        return -1;
    for (size_t i = 0; i < nsnaps; i++) {
        cJSON *c = snaps[i].components
                       ? cJSON_GetObjectItemCaseSensitive(snaps[i].components, "postgres-physical")
                       : NULL;
        cJSON *sz = c ? cJSON_GetObjectItemCaseSensitive(c, "wal_segment_size") : NULL;
        if (cJSON_IsNumber(sz) && sz->valuedouble >= (1 << 20) && sz->valuedouble <= (1 << 30))
            seg_size = (uint64_t)sz->valuedouble;
    }
    *per = 0x100000000ull / seg_size;
    for (size_t i = 0; i < nsnaps; i++) {
        const char *a = comp_str(&snaps[i], "start_wal"), *b = comp_str(&snaps[i], "end_wal");
        /* A base backup of its own (pg-physical) or a whole server's postgres-physical. */
        if (pf_wal_name_kind(a) != PF_WAL_SEGMENT || pf_wal_name_kind(b) != PF_WAL_SEGMENT)
            continue;
        snprintf(needs[*n].id, sizeof needs[*n].id, "%.8s", snaps[i].id);
        needs[*n].start = seg_of(a, *per);
        needs[*n].end = seg_of(b, *per);
        const char *el = comp_str(&snaps[i], "end_lsn");
        uint64_t lsn;
        if (el && pf_lsn_parse(el, &lsn) == 0)
            needs[*n].end_off = lsn % (0x100000000ull / *per);
        (*n)++;
    }
    return 0;
}

/* Whether pack id, which the loaded index does not list, is in the store: then a WAL file
 * was pushed (pack, index file, object) after the caller loaded the index, as wal-push and
 * wal-stream do beside a check (both take shared locks); prune, which could have removed
 * the pack, cannot run meanwhile. */
static bool newer_pack(pf_repo *r, const uint8_t id[PF_ID_LEN])
{
    pthread_mutex_lock(&r->mu);
    long pos = pf_index_find_pack(r->index, id);
    pthread_mutex_unlock(&r->mu);
    if (pos >= 0)
        return false;
    char key[80];
    uint64_t size;
    pf_err e = {0};
    pf_pack_key_name(id, key);
    return pf_store_stat(r->store, key, &size, &e) == 0;
}

/* Whether segment no of base backup b's span, missing whole on its timeline, is there in
 * another form recovery reads: the end segment as a streamed partial reaching the backup's
 * end, or the first segment of a timeline that forked there (it holds the parent's bytes
 * up to the switch, and recovery crosses over to it). */
static bool reached(pf_repo *r, const base_need *b, uint64_t no, const seg *segs, size_t nsegs,
                    const fork_pt *forks, size_t nforks, uint64_t per)
{
    char n[25];
    seg_name((seg){b->start.tli, no}, per, n);
    if (no == b->end.no && b->end_off && pf_wal_has_through(r, n, b->end_off))
        return true;
    for (size_t k = 0; k < nforks; k++) {
        seg child = {forks[k].tli, no};
        if (forks[k].parent == b->start.tli && forks[k].at.no == no &&
            bsearch(&child, segs, nsegs, sizeof *segs, seg_cmp))
            return true;
    }
    return false;
}

int pf_wal_check(pf_repo *r, void (*mark)(const uint8_t id[PF_ID_LEN], void *ctx),
                 void (*report)(int is_error, const char *msg, void *ctx), void *ctx,
                 pf_wal_check_result *res, pf_err *err)
{
    memset(res, 0, sizeof *res);
    names_ctx nc = {0};
    pf_snapshot *snaps = NULL;
    size_t nsnaps = 0;
    seg *segs = NULL;
    base_need *needs = NULL;
    size_t nsegs = 0, nneeds = 0, nforks = 0;
    fork_pt *forks = NULL;
    int rc = -1;
    if (pf_wal_list(r, collect_name, &nc, err) ||
        pf_repo_load_all_snapshots(r, &snaps, &nsnaps, err))
        goto out;
    uint64_t per;
    segs = calloc(nc.n + 1, sizeof *segs);
    if (!segs || base_needs(snaps, nsnaps, &needs, &nneeds, &per)) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }

    /* Every object opens and its chunks are in the index. Without mark (a restore asking
     * only about gaps) the names are enough: one listing, not one read per file. */
    for (size_t i = 0; i < nc.n; i++) {
        wal_obj w;
        pf_err e = {0};
        res->files++;
        if (!mark) {
            if (pf_wal_name_kind(nc.names[i]) == PF_WAL_SEGMENT) {
                segs[nsegs++] = seg_of(nc.names[i], per);
                res->segments++;
            }
            continue;
        }
        if (load(r, nc.names[i], &w, &e)) {
            say(report, ctx, "WAL file %s: %s", nc.names[i], e.msg);
            continue;
        }
        for (size_t j = 0; j < w.n; j++) {
            if (mark)
                mark(w.chunks[j].e.id, ctx);
            pthread_mutex_lock(&r->mu);
            int has = pf_index_find(r->index, w.chunks[j].e.id) != NULL;
            pthread_mutex_unlock(&r->mu);
            if (!has && newer_pack(r, w.chunks[j].pack))
                break; /* pushed after this check loaded the index: not its to judge */
            if (!has) {
                char hex[PF_HEX_ID_LEN + 1];
                pf_hex(w.chunks[j].e.id, PF_ID_LEN, hex);
                say(report, ctx, "WAL file %s: blob %.16s is missing", nc.names[i], hex);
                break;
            }
        }
        free(w.chunks);
        if (pf_wal_name_kind(nc.names[i]) == PF_WAL_SEGMENT) {
            segs[nsegs++] = seg_of(nc.names[i], per);
            res->segments++;
        }
    }
    if (nsegs)
        qsort(segs, nsegs, sizeof *segs, seg_cmp);
    if (load_forks(r, nc.names, nc.n, per, &forks, &nforks)) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }

    /* The chain: on each timeline, continuous from where something needs it to its
     * newest segment. Below the oldest base backup of a timeline, nothing needs WAL;
     * a timeline with no base backup (one a promotion started) is needed from its
     * first segment. */
    for (size_t i = 0; i < nsegs;) {
        size_t j = i;
        while (j + 1 < nsegs && segs[j + 1].tli == segs[i].tli)
            j++;
        uint32_t tli = segs[i].tli;
        bool any = false;
        uint64_t from = segs[i].no;
        for (size_t k = 0; k < nneeds; k++)
            if (needs[k].start.tli == tli && (!any || needs[k].start.no < from)) {
                from = needs[k].start.no;
                any = true;
            }
        /* A timeline a promotion started is needed from its fork on: the segment holding
         * the switch point is its first (recovery crosses over there). */
        const fork_pt *fk = NULL;
        for (size_t k = 0; k < nforks; k++)
            if (forks[k].tli == tli)
                fk = &forks[k];
        if (!any && fk && fk->at.no < from)
            from = fk->at.no;
        if (segs[i].no > from) {
            char an[25], bn[25];
            seg_name((seg){tli, from}, per, an);
            seg_name((seg){tli, segs[i].no - 1}, per, bn);
            res->gaps++;
            if (fk && !any)
                say(report, ctx,
                    "WAL gap on timeline %u: %s%s%s missing; timeline %u forks from timeline %u "
                    "in %s, so recovery cannot cross over to it",
                    tli, an, from + 1 == segs[i].no ? "" : " .. ", from + 1 == segs[i].no ? "" : bn,
                    tli, fk->parent, an);
            else
                say(report, ctx, "WAL gap on timeline %u: %s%s%s missing before its first segment",
                    tli, an, from + 1 == segs[i].no ? "" : " .. ",
                    from + 1 == segs[i].no ? "" : bn);
        }
        for (size_t k = i; k < j; k++) {
            if (segs[k + 1].no == segs[k].no + 1 || segs[k + 1].no <= from)
                continue;
            seg a = {tli, segs[k].no + 1 > from ? segs[k].no + 1 : from},
                b = {tli, segs[k + 1].no - 1};
            char an[25], bn[25], last[25];
            seg_name(a, per, an);
            seg_name(b, per, bn);
            seg_name((seg){tli, a.no - 1}, per, last);
            res->gaps++;
            char who[256] = "";
            size_t wl = 0;
            for (size_t m = 0; m < nneeds && wl < sizeof who - 16; m++)
                if (needs[m].start.tli == tli && needs[m].start.no < a.no)
                    wl += (size_t)snprintf(who + wl, sizeof who - wl, "%s%s", wl ? ", " : "",
                                           needs[m].id);
            say(report, ctx, "WAL gap on timeline %u: %s%s%s missing; recovery stops at %s%s%s",
                tli, an, a.no == b.no ? "" : " .. ", a.no == b.no ? "" : bn, last,
                *who ? " for base backup " : "", who);
        }
        i = j + 1;
    }
    /* A base backup whose own span (start .. end) is not all there cannot be restored. */
    for (size_t k = 0; k < nneeds; k++) {
        for (uint64_t no = needs[k].start.no; no <= needs[k].end.no; no++) {
            seg want = {needs[k].start.tli, no};
            if (!bsearch(&want, segs, nsegs, sizeof *segs, seg_cmp) &&
                !reached(r, &needs[k], no, segs, nsegs, forks, nforks, per)) {
                char n[25];
                seg_name(want, per, n);
                say(report, ctx,
                    "base backup %s cannot be restored: WAL file %s, which it needs to become "
                    "consistent, is not in the repository",
                    needs[k].id, n);
                break;
            }
        }
    }
    if (nsegs) {
        /* Newest: the highest segment on the highest timeline. */
        seg_name(segs[nsegs - 1], per, res->newest);
        res->newest_pushed_ns = pushed_at(r, res->newest);
    }
    rc = 0;
out:
    for (size_t i = 0; i < nc.n; i++)
        free(nc.names[i]);
    free(nc.names);
    pf_snapshots_free(snaps, nsnaps);
    free(segs);
    free(forks);
    free(needs);
    return rc;
}

int pf_wal_expire(pf_repo *r, bool dry_run, uint64_t *removed, pf_err *err)
{
    names_ctx nc = {0};
    pf_snapshot *snaps = NULL;
    base_need *needs = NULL;
    size_t nsnaps = 0, nneeds = 0;
    uint64_t per;
    int rc = -1;
    *removed = 0;
    if (pf_wal_list(r, collect_name, &nc, err) ||
        pf_repo_load_all_snapshots(r, &snaps, &nsnaps, err))
        goto out;
    if (base_needs(snaps, nsnaps, &needs, &nneeds, &per)) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    /* Sorted, a segment comes right before its streamed partials, shortest first. */
    if (nc.n) /* qsort of NULL is undefined, even for no elements */
        qsort(nc.names, nc.n, sizeof *nc.names, name_cmp);
    for (size_t i = 0; i < nc.n; i++) {
        const char *name = nc.names[i];
        if (pf_wal_name_kind(name) == PF_WAL_HISTORY)
            continue; /* tiny, and recovery reads every timeline's history */
        bool superseded = false;
        if (pf_wal_name_kind(name) == PF_WAL_STREAMED) {
            /* The whole segment or a longer partial of it is there: this one is redundant. */
            char full[25];
            snprintf(full, sizeof full, "%.24s", name);
            const char *want = full;
            superseded = bsearch(&want, nc.names, nc.n, sizeof *nc.names, name_cmp) ||
                         (i + 1 < nc.n && pf_wal_name_kind(nc.names[i + 1]) == PF_WAL_STREAMED &&
                          !strncmp(nc.names[i + 1], name, 24));
        }
        /* No base backup at all: the archive may be waiting for its first one. */
        bool needed = !superseded && nneeds == 0;
        seg s = seg_of(name, per);
        for (size_t k = 0; k < nneeds && !needed && !superseded; k++)
            needed = s.tli >= needs[k].start.tli && s.no >= needs[k].start.no;
        if (needed)
            continue;
        char key[PF_WAL_KEY_MAX];
        if (pf_wal_key(name, key, err))
            goto out;
        if (!dry_run && pf_store_remove(r->store, key, err) && err->code != PF_ENOTFOUND) {
            pf_err_prefix(err, "removing %s", key);
            goto out;
        }
        pf_err_clear(err);
        (*removed)++;
    }
    if (*removed)
        pf_info("%s %llu archived WAL file%s that no kept base backup needs",
                dry_run ? "would remove" : "removed", (unsigned long long)*removed,
                *removed == 1 ? "" : "s");
    rc = 0;
out:
    for (size_t i = 0; i < nc.n; i++)
        free(nc.names[i]);
    free(nc.names);
    pf_snapshots_free(snaps, nsnaps);
    free(needs);
    return rc;
}
