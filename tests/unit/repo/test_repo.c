/* Repositories on the in-memory store: init and open, key files, sealed objects and
 * their tampering, snapshots, the saver across many packs, and re-indexing orphan packs. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/repo.h"
#include "repo/saver.h"
#include "store/internal.h"
#include "store/store.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

#include "store_borrow.h"

typedef struct keys_seen {
    char name[8][128];
    size_t n;
} keys_seen;

static int collect(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)size;
    keys_seen *k = ctx;
    if (k->n < 8)
        snprintf(k->name[k->n], sizeof k->name[0], "%s", key);
    k->n++;
    return 0;
}

static size_t count_keys(pf_store *s, const char *prefix)
{
    keys_seen k = {.n = 0};
    pf_err err = {0};
    assert_int_equal(pf_store_list(s, prefix, collect, &k, &err), 0);
    return k.n;
}

static void put_str(pf_store *s, const char *key, const char *text)
{
    pf_err err = {0};
    assert_int_equal(pf_store_put(s, key, text, strlen(text), &err), 0);
}

static void test_init_and_open(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo *r = pf_repo_init(borrow(mem), "correct horse", NULL, &err);
    if (!r)
        fail_msg("init: %s", err.msg);
    uint8_t master[PF_KEY_LEN];
    char id[PF_HEX_ID_LEN + 1], key_id[PF_HEX_ID_LEN + 1];
    memcpy(master, r->keys.master, PF_KEY_LEN);
    memcpy(id, r->id, sizeof id);
    memcpy(key_id, r->key_id, sizeof key_id);
    assert_int_equal(strlen(id), PF_HEX_ID_LEN);
    pf_repo_free(r);

    /* config: plain JSON with the defaults. */
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_store_get(mem, "config", 0, PF_STORE_ALL, &b, &err), 0);
    cJSON *o = cJSON_ParseWithLength((const char *)b.data, b.len);
    assert_non_null(o);
    assert_int_equal(cJSON_GetObjectItem(o, "version")->valuedouble, 2);
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, id);
    assert_int_equal(strlen(cJSON_GetObjectItem(o, "mac")->valuestring), 64);
    cJSON *ch = cJSON_GetObjectItem(o, "chunker");
    assert_int_equal(cJSON_GetObjectItem(ch, "min")->valuedouble, 512 << 10);
    assert_int_equal(cJSON_GetObjectItem(ch, "avg")->valuedouble, 1 << 20);
    assert_int_equal(cJSON_GetObjectItem(ch, "max")->valuedouble, 8 << 20);
    cJSON_Delete(o);
    pf_buf_reset(&b);

    /* One key file, named by the SHA-256 of its bytes, with the documented fields. */
    keys_seen k = {.n = 0};
    assert_int_equal(pf_store_list(mem, "keys/", collect, &k, &err), 0);
    assert_int_equal(k.n, 1);
    assert_int_equal(pf_store_get(mem, k.name[0], 0, PF_STORE_ALL, &b, &err), 0);
    uint8_t sum[PF_ID_LEN];
    char hex[PF_HEX_ID_LEN + 1];
    pf_sha256(b.data, b.len, sum);
    pf_hex(sum, PF_ID_LEN, hex);
    assert_string_equal(k.name[0] + 5, hex);
    assert_string_equal(key_id, hex);
    o = cJSON_ParseWithLength((const char *)b.data, b.len);
    assert_non_null(o);
    assert_string_equal(cJSON_GetObjectItem(o, "kdf")->valuestring, "scrypt");
    assert_int_equal(cJSON_GetObjectItem(o, "N")->valuedouble, 32768);
    assert_int_equal(strlen(cJSON_GetObjectItem(o, "sealed")->valuestring), 96);
    cJSON_Delete(o);
    pf_buf_free(&b);

    /* A second init is refused, and changes nothing. */
    assert_null(pf_repo_init(borrow(mem), "other", NULL, &err));
    assert_int_equal(err.code, PF_EEXIST);
    assert_int_equal(count_keys(mem, "keys/"), 1);

    r = pf_repo_open(borrow(mem), "correct horse", &err);
    if (!r)
        fail_msg("open: %s", err.msg);
    assert_memory_equal(r->keys.master, master, PF_KEY_LEN);
    assert_string_equal(r->id, id);
    assert_string_equal(r->key_id, key_id);
    assert_int_equal(r->pack_size, 16 << 20);

    /* A second passphrase for the same master key. */
    char second[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_add_key(r, "second one", second, &err), 0);
    assert_string_not_equal(second, key_id);
    pf_repo_free(r);
    r = pf_repo_open(borrow(mem), "second one", &err);
    assert_non_null(r);
    assert_memory_equal(r->keys.master, master, PF_KEY_LEN);
    assert_string_equal(r->key_id, second);
    pf_repo_free(r);

    assert_null(pf_repo_open(borrow(mem), "wrong", &err));
    assert_int_equal(err.code, PF_EAUTH);
    assert_null(pf_repo_open(borrow(mem), "correct horse ", &err));
    assert_int_equal(err.code, PF_EAUTH);

    /* A damaged key file is skipped; the other still opens. */
    put_str(mem, "keys/0000000000000000000000000000000000000000000000000000000000000000",
            "{\"kdf\":\"scrypt\",\"N\":1e300}");
    r = pf_repo_open(borrow(mem), "second one", &err);
    assert_non_null(r);
    pf_repo_free(r);
    pf_store_free(mem);

    assert_null(pf_repo_open(pf_store_mem_new(), "x", &err));
    assert_int_equal(err.code, PF_ENOREPO);
}

/* Configs that must be refused before any key is tried. */
static void test_bad_config(void **state)
{
    (void)state;
    static const char *id =
        "\"id\":\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"";
    static const struct {
        const char *chunker, *version;
        int code;
    } cases[] = {
        {"{\"min\":256,\"avg\":1024,\"max\":4096}", "4", PF_ENOREPO},
        {"{\"min\":256,\"avg\":1024,\"max\":4096}", "2", PF_ECORRUPT}, /* no mac */
        {"{\"min\":256,\"avg\":1024,\"max\":4096}", "\"1\"", PF_ENOREPO},
        {"{\"min\":1e300,\"avg\":1e301,\"max\":1e302}", "1", PF_ECORRUPT},
        {"{\"min\":256,\"avg\":1e300,\"max\":4096}", "1", PF_ECORRUPT},
        {"{\"min\":-5,\"avg\":1024,\"max\":4096}", "1", PF_ECORRUPT},
        {"{\"min\":256,\"avg\":1024,\"max\":536870912}", "1", PF_ECORRUPT},
        {"{\"min\":2048,\"avg\":1024,\"max\":4096}", "1", PF_ECORRUPT},
        {"{}", "1", PF_ECORRUPT},
        {"7", "1", PF_ECORRUPT},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        pf_store *mem = pf_store_mem_new();
        char config[512];
        snprintf(config, sizeof config, "{\"version\":%s,%s,\"chunker\":%s}", cases[i].version, id,
                 cases[i].chunker);
        put_str(mem, "config", config);
        put_str(mem, "keys/00", "{}");
        pf_err err = {0};
        pf_repo *r = pf_repo_open(mem, "x", &err);
        if (r)
            fail_msg("config accepted: %s", config);
        if (err.code != cases[i].code && !(cases[i].code == PF_ECORRUPT && err.code == PF_ENOREPO))
            fail_msg("config %s: code %d (%s)", config, err.code, err.msg);
    }
    pf_store *mem = pf_store_mem_new();
    put_str(mem, "config", "not json");
    pf_err err = {0};
    assert_null(pf_repo_open(mem, "x", &err));
    assert_int_equal(err.code, PF_ENOREPO);
}

static void test_init_options(void **state)
{
    (void)state;
    uint8_t master[PF_KEY_LEN];
    memset(master, 0x5c, sizeof master);
    pf_repo_init_opts o = {
        .master = master, .chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_err err = {0};
    pf_store *mem = pf_store_mem_new();
    pf_repo *r = pf_repo_init(borrow(mem), "pw", &o, &err);
    assert_non_null(r);
    assert_memory_equal(r->keys.master, master, PF_KEY_LEN);
    assert_int_equal(r->chunker.min, 256);
    assert_int_equal(r->chunker.avg, 1024);
    assert_int_equal(r->chunker.max, 4096);
    pf_repo_free(r);
    pf_store_free(mem);

    /* Chunks larger than the largest readable blob would be unreadable: refused up front. */
    pf_repo_init_opts big = {.chunk_min = 1 << 20, .chunk_avg = 1 << 28, .chunk_max = 1u << 30};
    assert_null(pf_repo_init(pf_store_mem_new(), "pw", &big, &err));
    pf_repo_init_opts odd = {.chunk_min = 256, .chunk_avg = 1000, .chunk_max = 4096};
    assert_null(pf_repo_init(pf_store_mem_new(), "pw", &odd, &err));
}

/* Group fixture: one initialised repository (one scrypt) for the tests below. */
typedef struct fixture {
    pf_store *mem;
    pf_repo *r;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    pf_err err = {0};
    f->mem = pf_store_mem_new();
    pf_repo_init_opts o = {.chunk_min = 1024, .chunk_avg = 4096, .chunk_max = 16384};
    f->r = pf_repo_init(borrow(f->mem), "fixture", &o, &err);
    if (!f->r)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pf_repo_free(f->r);
    pf_store_free(f->mem);
    free(f);
    return 0;
}

static void test_objects(void **state)
{
    fixture *f = *state;
    pf_err err = {0};
    char id[PF_HEX_ID_LEN + 1], id2[PF_HEX_ID_LEN + 1];
    const char *text = "{\"lock\":\"me\"}";
    assert_int_equal(pf_repo_save_object(f->r, "locks", text, strlen(text), id, &err), 0);
    /* Same content, new salt: another object. */
    assert_int_equal(pf_repo_save_object(f->r, "locks", text, strlen(text), id2, &err), 0);
    assert_string_not_equal(id, id2);
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_repo_load_object(f->r, "locks", id, &b, &err), 0);
    assert_string_equal((const char *)b.data, text);
    pf_buf_reset(&b);

    /* Named by the SHA-256 of the stored bytes, which start "PFO1". */
    char key[128];
    snprintf(key, sizeof key, "locks/%s", id);
    pf_buf raw = PF_BUF_INIT;
    assert_int_equal(pf_store_get(f->mem, key, 0, PF_STORE_ALL, &raw, &err), 0);
    assert_memory_equal(raw.data, "PFO1", 4);
    uint8_t sum[PF_ID_LEN];
    char hex[PF_HEX_ID_LEN + 1];
    pf_sha256(raw.data, raw.len, sum);
    pf_hex(sum, PF_ID_LEN, hex);
    assert_string_equal(hex, id);
    assert_int_equal(count_keys(f->mem, "locks/"), 2);

    /* An empty object. */
    assert_int_equal(pf_repo_save_object(f->r, "locks", "", 0, id2, &err), 0);
    assert_int_equal(pf_repo_load_object(f->r, "locks", id2, &b, &err), 0);
    assert_int_equal(b.len, 0);

    assert_int_equal(
        pf_repo_load_object(f->r, "locks",
                            "0000000000000000000000000000000000000000000000000000000000000000", &b,
                            &err),
        -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_int_equal(pf_repo_load_object(f->r, "locks", "../config", &b, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);

    /* Tampering: every byte flipped in place is caught by the name check; stored under its
     * new true name it is caught by authentication (or the magic). */
    for (size_t i = 0; i < raw.len; i++) {
        raw.data[i] ^= 0x20;
        assert_int_equal(pf_store_put(f->mem, key, raw.data, raw.len, &err), 0);
        assert_int_equal(pf_repo_load_object(f->r, "locks", id, &b, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        pf_sha256(raw.data, raw.len, sum);
        pf_hex(sum, PF_ID_LEN, hex);
        char other[128];
        snprintf(other, sizeof other, "locks/%s", hex);
        assert_int_equal(pf_store_put(f->mem, other, raw.data, raw.len, &err), 0);
        assert_int_equal(pf_repo_load_object(f->r, "locks", hex, &b, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_int_equal(pf_store_remove(f->mem, other, &err), 0);
        raw.data[i] ^= 0x20;
    }
    assert_int_equal(b.len, 0);
    /* Truncated, under its true name. */
    for (size_t n = 0; n < raw.len; n += 5) {
        pf_sha256(raw.data, n, sum);
        pf_hex(sum, PF_ID_LEN, hex);
        char other[128];
        snprintf(other, sizeof other, "locks/%s", hex);
        assert_int_equal(pf_store_put(f->mem, other, raw.data, n, &err), 0);
        assert_int_equal(pf_repo_load_object(f->r, "locks", hex, &b, &err), -1);
        assert_int_equal(pf_store_remove(f->mem, other, &err), 0);
    }
    /* Moved to another folder: bound to its folder by the AAD. */
    assert_int_equal(pf_store_put(f->mem, key, raw.data, raw.len, &err), 0);
    char moved[128];
    snprintf(moved, sizeof moved, "snapshots/%s", id);
    assert_int_equal(pf_store_put(f->mem, moved, raw.data, raw.len, &err), 0);
    assert_int_equal(pf_repo_load_object(f->r, "snapshots", id, &b, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_int_equal(pf_store_remove(f->mem, moved, &err), 0);
    assert_int_equal(pf_repo_load_object(f->r, "locks", id, &b, &err), 0);
    assert_string_equal((const char *)b.data, text);

    /* Under another master key nothing opens. */
    pf_keys other = f->r->keys;
    other.master[0] ^= 1;
    pf_buf_reset(&b);
    assert_int_equal(pf_object_open(&other, "locks", raw.data, raw.len, &b, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);

    /* Clean up for the tests that follow. */
    snprintf(key, sizeof key, "locks/%s", id2);
    pf_store_remove(f->mem, key, &err);
    snprintf(key, sizeof key, "locks/%s", id);
    pf_store_remove(f->mem, key, &err);
    keys_seen k = {.n = 0};
    pf_store_list(f->mem, "locks/", collect, &k, &err);
    for (size_t i = 0; i < k.n && i < 8; i++)
        pf_store_remove(f->mem, k.name[i], &err);
    pf_buf_free(&raw);
    pf_buf_free(&b);
}

static void test_snapshots(void **state)
{
    fixture *f = *state;
    pf_err err = {0};
    pf_snapshot s, t;
    pf_snapshot_init(&s);
    s.time_ns = 1764013212123456789LL;
    s.tz_offset = 3600;
    s.host = strdup("mastodon.example");
    s.user = strdup("root");
    s.program = strdup("permafrost 0.1.0");
    pf_snapshot_add_tag(&s, "daily");
    pf_snapshot_add_tag(&s, "daily"); /* once */
    pf_snapshot_add_tag(&s, "t\"ag\n");
    pf_snapshot_add_path(&s, "/home/mastodon/live");
    memset(s.tree, 0xab, PF_ID_LEN);
    memset(s.parent, 'c', PF_HEX_ID_LEN);
    s.components = cJSON_Parse("{\"postgres\":{\"status\":\"ok\",\"bytes\":12345}}");
    s.manifest = cJSON_Parse("{\"accounts\":3,\"mastodon\":\"4.3.1\"}");
    s.stats = cJSON_Parse("{\"files\":10}");
    assert_int_equal(pf_repo_save_snapshot(f->r, &s, &err), 0);
    assert_int_equal(strlen(s.id), PF_HEX_ID_LEN);

    char prefix[9];
    memcpy(prefix, s.id, 8);
    prefix[8] = 0;
    const char *refs[] = {s.id, prefix, "latest"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pf_repo_load_snapshot(f->r, refs[i], &t, &err), 0);
        assert_string_equal(t.id, s.id);
        assert_true(t.time_ns == s.time_ns);
        assert_int_equal(t.tz_offset, 3600);
        assert_string_equal(t.host, "mastodon.example");
        assert_string_equal(t.user, "root");
        assert_string_equal(t.program, "permafrost 0.1.0");
        assert_int_equal(t.ntags, 2);
        assert_string_equal(t.tags[1], "t\"ag\n");
        assert_true(pf_snapshot_has_tag(&t, "daily"));
        assert_false(pf_snapshot_has_tag(&t, "weekly"));
        assert_int_equal(t.npaths, 1);
        assert_string_equal(t.paths[0], "/home/mastodon/live");
        assert_memory_equal(t.tree, s.tree, PF_ID_LEN);
        assert_string_equal(t.parent, s.parent);
        assert_true(cJSON_Compare(t.components, s.components, 1));
        assert_true(cJSON_Compare(t.manifest, s.manifest, 1));
        assert_true(cJSON_Compare(t.stats, s.stats, 1));
        pf_snapshot_free(&t);
    }
    char when[64];
    pf_snapshot_time_str(&s, when, sizeof when);
    assert_string_equal(when, "2025-11-24 20:40:12"); /* 19:40:12 UTC, one hour east */

    /* A later one becomes "latest"; both are listed, oldest first. */
    pf_snapshot u;
    pf_snapshot_init(&u);
    u.time_ns = s.time_ns + 1000;
    memset(u.tree, 0xcd, PF_ID_LEN);
    assert_int_equal(pf_repo_save_snapshot(f->r, &u, &err), 0);
    assert_int_equal(pf_repo_load_snapshot(f->r, "latest", &t, &err), 0);
    assert_string_equal(t.id, u.id);
    assert_string_equal(t.parent, "");
    assert_null(t.components);
    pf_snapshot_free(&t);
    pf_snapshot *all;
    size_t n;
    assert_int_equal(pf_repo_load_all_snapshots(f->r, &all, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_string_equal(all[0].id, s.id);
    assert_string_equal(all[1].id, u.id);
    pf_snapshots_free(all, n);

    assert_int_equal(pf_repo_load_snapshot(f->r, "ffffffffffffffff", &t, &err), -1);
    if (strncmp(s.id, "ffffffffffffffff", 16) && strncmp(u.id, "ffffffffffffffff", 16))
        assert_int_equal(err.code, PF_ENOTFOUND);
    assert_int_equal(pf_repo_load_snapshot(f->r, "", &t, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);

    /* Remove both for the tests that follow. */
    char key[128];
    snprintf(key, sizeof key, "snapshots/%s", s.id);
    assert_int_equal(pf_store_remove(f->mem, key, &err), 0);
    snprintf(key, sizeof key, "snapshots/%s", u.id);
    assert_int_equal(pf_store_remove(f->mem, key, &err), 0);
    assert_int_equal(pf_repo_load_snapshot(f->r, "latest", &t, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    pf_snapshot_free(&s);
    pf_snapshot_free(&u);
}

static void test_snapshot_decode(void **state)
{
    (void)state;
    pf_snapshot s;
    pf_err err = {0};
    const char *tree =
        "\"tree\":\"abababababababababababababababababababababababababababababababab\"";
    char j[512];
    snprintf(j, sizeof j, "{\"version\":1,\"time_ns\":\"5\",%s}", tree);
    assert_int_equal(pf_snapshot_decode(j, strlen(j), &s, &err), 0);
    assert_true(s.time_ns == 5);
    assert_string_equal(s.host, "");
    pf_snapshot_free(&s);
    static const char *bad[] = {
        "{\"version\":2,\"time_ns\":\"5\",%s}",
        "{\"time_ns\":\"5\",%s}",
        "{\"version\":1,%s}",
        "{\"version\":1,\"time_ns\":\"\",%s}",
        "{\"version\":1,\"time_ns\":\"5x\",%s}",
        "{\"version\":1,\"time_ns\":5,%s}",
        "{\"version\":1,\"time_ns\":\"5\",\"tz_offset\":1e300,%s}",
        "{\"version\":1,\"time_ns\":\"5\",\"tz_offset\":\"0\",%s}",
        "{\"version\":1,\"time_ns\":\"5\",\"tags\":[1],%s}",
        "{\"version\":1,\"time_ns\":\"5\",\"paths\":\"x\",%s}",
        "{\"version\":1,\"time_ns\":\"5\",\"parent\":\"abc\",%s}",
        "{\"version\":1,\"time_ns\":\"5\",%s,\"x\":}",
        "[%s]",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(j, sizeof j, bad[i], tree);
        if (pf_snapshot_decode(j, strlen(j), &s, &err) == 0)
            fail_msg("snapshot accepted: %s", j);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_null(s.host);
    }
    snprintf(j, sizeof j, "{\"version\":1,\"time_ns\":\"5\",\"tree\":\"abab\"}");
    assert_int_equal(pf_snapshot_decode(j, strlen(j), &s, &err), -1);
}

/* Deterministic blob content: compressible, random or tiny depending on i. */
static size_t blob_data(uint32_t i, uint8_t *out)
{
    size_t n = (i * 7919u) % 12000;
    if (i % 17 == 0)
        n = i % 5; /* tiny, even empty */
    uint32_t x = i * 2654435761u + 1;
    for (size_t k = 0; k < n; k++) {
        if (i % 3 == 0) {
            out[k] = (uint8_t)("mastodon toots "[k % 15] + (i & 7));
        } else {
            x = x * 1664525u + 1013904223u;
            out[k] = (uint8_t)(x >> 24);
        }
    }
    return n;
}

enum { NBLOBS = 600 };

static void expect_all_blobs(pf_repo *r, uint8_t ids[][PF_ID_LEN])
{
    static uint8_t want[12000];
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    for (uint32_t i = 0; i < NBLOBS; i++) {
        size_t n = blob_data(i, want);
        pf_buf_reset(&b);
        if (pf_repo_load_blob(r, ids[i], &b, &err))
            fail_msg("blob %u: %s", i, err.msg);
        assert_int_equal(b.len, n);
        if (n)
            assert_memory_equal(b.data, want, n);
        assert_true(pf_repo_has_blob(r, ids[i]));
    }
    pf_buf_free(&b);
}

static void reset_index(pf_repo *r)
{
    pf_index_free(r->index);
    r->index = pf_index_new();
    r->index_loaded = 0;
}

typedef struct key_list {
    char **v;
    size_t n;
} key_list;

static int list_all(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)size;
    key_list *l = ctx;
    l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
    assert_non_null(l->v);
    l->v[l->n++] = strdup(key);
    return 0;
}

static key_list keys_under(pf_store *s, const char *prefix)
{
    key_list l = {NULL, 0};
    pf_err err = {0};
    assert_int_equal(pf_store_list(s, prefix, list_all, &l, &err), 0);
    return l;
}

static void key_list_free(key_list *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i]);
    free(l->v);
}

static void test_saver_and_orphans(void **state)
{
    fixture *f = *state;
    pf_repo *r = f->r;
    pf_err err = {0};
    static uint8_t ids[NBLOBS][PF_ID_LEN], data[12000];
    r->pack_size = 64 << 10; /* many packs */
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    pf_saver *sv = pf_saver_new(r, 3, &err);
    assert_non_null(sv);
    for (uint32_t i = 0; i < NBLOBS; i++) {
        size_t n = blob_data(i, data);
        uint8_t type = i % 11 == 0 ? PF_BLOB_TREE : PF_BLOB_DATA;
        assert_int_equal(pf_saver_save(sv, type, data, n, ids[i], &err), 0);
        uint8_t want[PF_ID_LEN];
        pf_blob_id(&r->keys, data, n, want);
        assert_memory_equal(ids[i], want, PF_ID_LEN);
    }
    /* Everything again: all known already. */
    for (uint32_t i = 0; i < NBLOBS; i += 3) {
        size_t n = blob_data(i, data);
        uint8_t id[PF_ID_LEN];
        assert_int_equal(pf_saver_save(sv, PF_BLOB_DATA, data, n, id, &err), 0);
    }
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_saver_stats st;
    pf_saver_stats_get(sv, &st);
    pf_saver_free(sv);
    assert_true(st.packs >= 10);
    assert_true(st.blobs_seen > st.blobs_new);
    key_list packs = keys_under(f->mem, "data/");
    assert_int_equal(packs.n, st.packs);
    assert_true(count_keys(f->mem, "index/") >= 1);
    expect_all_blobs(r, ids);

    /* A fresh index, loaded from the index files. */
    reset_index(r);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_int_equal(r->index->npacks, st.packs);
    expect_all_blobs(r, ids);

    /* Index files lost (a backup killed before writing them): rebuilt from the packs. */
    key_list idx = keys_under(f->mem, "index/");
    for (size_t i = 0; i < idx.n; i++)
        assert_int_equal(pf_store_remove(f->mem, idx.v[i], &err), 0);
    key_list_free(&idx);
    reset_index(r);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_int_equal(r->index->nblobs, 0);
    assert_false(pf_repo_has_blob(r, ids[0]));
    /* Foreign, damaged and truncated packs are ignored, not fatal. */
    put_str(f->mem, "data/ff/ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff",
            "not a pack");
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_store_get(f->mem, packs.v[0], 0, PF_STORE_ALL, &b, &err), 0);
    assert_int_equal(
        pf_store_put(f->mem,
                     "data/ee/eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee",
                     b.data + 1, b.len - 1, &err),
        0);
    put_str(f->mem, "data/dd/short", "PFP1");
    pf_index_file found = {0};
    assert_int_equal(pf_repo_index_orphan_packs(r, &found, &err), 0);
    assert_int_equal(found.npacks, st.packs);
    expect_all_blobs(r, ids);
    /* Already indexed packs are not found again. */
    pf_index_file again = {0};
    assert_int_equal(pf_repo_index_orphan_packs(r, &again, &err), 0);
    assert_int_equal(again.npacks, 0);
    pf_index_file_free(&again);
    /* What was found can be written as an index file and read back. */
    assert_int_equal(pf_repo_save_index(r, &found, &err), 0);
    pf_index_file_free(&found);
    reset_index(r);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    assert_int_equal(r->index->npacks, st.packs);
    expect_all_blobs(r, ids);

    /* A damaged pack: the blobs in the damaged range no longer load, the others do. */
    pf_buf_reset(&b);
    assert_int_equal(pf_store_get(f->mem, packs.v[0], 0, PF_STORE_ALL, &b, &err), 0);
    b.data[0] ^= 1;
    assert_int_equal(pf_store_put(f->mem, packs.v[0], b.data, b.len, &err), 0);
    size_t bad = 0;
    const uint8_t *bad_id = NULL;
    pf_buf out = PF_BUF_INIT;
    for (uint32_t i = 0; i < NBLOBS; i++) {
        pf_buf_reset(&out);
        if (pf_repo_load_blob(r, ids[i], &out, &err)) {
            assert_int_equal(err.code, PF_ECORRUPT);
            /* one blob, perhaps named several times (equal contents) */
            if (bad_id)
                assert_memory_equal(ids[i], bad_id, PF_ID_LEN);
            bad_id = ids[i];
            bad++;
        }
    }
    assert_true(bad >= 1);
    uint8_t unknown[PF_ID_LEN] = {1};
    assert_int_equal(pf_repo_load_blob(r, unknown, &out, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    pf_buf_free(&out);
    pf_buf_free(&b);
    key_list_free(&packs);
}

/* A tree saved through the saver loads back through pf_repo_load_tree. */
static void test_tree_blob(void **state)
{
    fixture *f = *state;
    pf_err err = {0};
    uint8_t sub[1][PF_ID_LEN];
    memset(sub[0], 7, PF_ID_LEN);
    pf_node n = {.name = "postgres",
                 .name_len = 8,
                 .type = PF_NODE_DIR,
                 .mode = 0700,
                 .blobs = sub,
                 .nblobs = 1};
    pf_tree t = {0}, back;
    pf_tree_add(&t, &n);
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
    pf_saver *sv = pf_saver_new(f->r, 1, &err);
    uint8_t id[PF_ID_LEN];
    assert_int_equal(pf_saver_save(sv, PF_BLOB_TREE, b.data, b.len, id, &err), 0);
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_saver_free(sv);
    assert_int_equal(pf_repo_load_tree(f->r, id, &back, &err), 0);
    assert_int_equal(back.count, 1);
    assert_string_equal(back.nodes[0].name, "postgres");
    pf_tree_free(&back);
    pf_tree_free(&t);
    pf_buf_free(&b);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest alone[] = {
        cmocka_unit_test(test_init_and_open),
        cmocka_unit_test(test_bad_config),
        cmocka_unit_test(test_init_options),
        cmocka_unit_test(test_snapshot_decode),
    };
    const struct CMUnitTest shared[] = {
        cmocka_unit_test(test_objects),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_saver_and_orphans),
        cmocka_unit_test(test_tree_blob),
    };
    int failed = cmocka_run_group_tests_name("repo", alone, NULL, NULL);
    failed += cmocka_run_group_tests_name("repo on one repository", shared, setup, teardown);
    return failed;
}
