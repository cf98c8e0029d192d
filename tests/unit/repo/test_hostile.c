/* A store written by someone without the key (docs/SECURITY.md §1): the name validators,
 * config parsing and its MAC, downgrade to format 1, key files with costly scrypt
 * parameters or in excess, and the metadata cache (only authenticated objects are written
 * to it, and what is read back is authenticated again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "repo/config.h"
#include "repo/names.h"
#include "repo/repo.h"
#include "store/internal.h"
#include "store/store.h"

static char warned[32768];

static void keep_warnings(int level, const char *msg)
{
    if (level == PF_LOG_WARN)
        snprintf(warned + strlen(warned), sizeof warned - strlen(warned), "%s\n", msg);
}

#include "store_borrow.h"

static void put_str(pf_store *s, const char *key, const char *text)
{
    pf_err err = {0};
    assert_int_equal(pf_store_put(s, key, text, strlen(text), &err), 0);
}

static char *get_str(pf_store *s, const char *key)
{
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_store_get(s, key, 0, PF_STORE_ALL, &b, &err), 0);
    char *t = strndup((const char *)b.data, b.len);
    pf_buf_free(&b);
    return t;
}

static const char *ID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

static void test_names(void **state)
{
    (void)state;
    assert_true(pf_name_is_id(ID));
    const char *bad[] = {
        "",
        "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",  /* upper case */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde",   /* 63 */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef0", /* 65 */
        "../../../../../../../../../../../../../../../../../etc/cron.d/x0",  /* 64 chars */
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde/",
        "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdeg",
        NULL,
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        if (pf_name_is_id(bad[i]))
            fail_msg("accepted id \"%s\"", bad[i] ? bad[i] : "(null)");

    char key[128];
    snprintf(key, sizeof key, "snapshots/%s", ID);
    assert_ptr_equal(pf_name_object_id(key, "snapshots"), key + 10);
    assert_null(pf_name_object_id(key, "index"));
    assert_null(pf_name_object_id(key, "snapshot"));
    snprintf(key, sizeof key, "snapshots/%s.tmp-1", ID);
    assert_null(pf_name_object_id(key, "snapshots"));
    snprintf(key, sizeof key, "snapshots/x/%s", ID);
    assert_null(pf_name_object_id(key, "snapshots"));
    assert_null(pf_name_object_id("snapshots", "snapshots"));

    uint8_t id[PF_ID_LEN];
    snprintf(key, sizeof key, "data/01/%s", ID);
    assert_true(pf_name_pack_key(key, id));
    assert_int_equal(id[0], 0x01);
    assert_int_equal(id[31], 0xef);
    const char *bad_packs[] = {"data/02/",   "data/01", "data/0/",
                               "data/01/x/", "dat/01/", "data/01//"};
    for (size_t i = 0; i < sizeof bad_packs / sizeof *bad_packs; i++) {
        snprintf(key, sizeof key, "%s%s", bad_packs[i], ID);
        if (pf_name_pack_key(key, NULL))
            fail_msg("accepted pack key \"%s\"", key);
    }
    snprintf(key, sizeof key, "data/01/%.63s", ID);
    assert_false(pf_name_pack_key(key, NULL));
    snprintf(key, sizeof key, "data/01/%sA", ID);
    assert_false(pf_name_pack_key(key, NULL));

    /* A snapshot's parent is looked up among the snapshots' names: same shape. */
    char snap[512];
    pf_snapshot s;
    pf_err err = {0};
    snprintf(snap, sizeof snap,
             "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"%s\",\"parent\":\"%s\"}", ID, ID);
    assert_int_equal(pf_snapshot_decode(snap, strlen(snap), &s, &err), 0);
    assert_string_equal(s.parent, ID);
    pf_snapshot_free(&s);
    snprintf(snap, sizeof snap,
             "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"%s\",\"parent\":\"%s\"}", ID, bad[4]);
    assert_int_equal(pf_snapshot_decode(snap, strlen(snap), &s, &err), -1);
}

static int parse(const char *text, pf_repo_config *c, pf_err *err)
{
    return pf_config_parse(text, strlen(text), c, err);
}

static void test_config_parse(void **state)
{
    (void)state;
    pf_repo_config c;
    pf_err err = {0};
    char text[1024];
    snprintf(text, sizeof text,
             "{\"version\":1,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
             "\"pack_size\":1}",
             ID);
    assert_int_equal(parse(text, &c, &err), 0);
    assert_int_equal(c.version, 1);
    assert_string_equal(c.id, ID);
    assert_int_equal(c.pack_size, 16u << 20); /* format 1: out of range reads as the default */

    /* The id becomes a local folder name: only 64 lower-case hex digits. */
    const char *ids[] = {"../../../../../../../../../../../../../../../../../etc/cron.d/x0",
                         "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
                         "0123456789abcdef", ""};
    for (size_t i = 0; i < sizeof ids / sizeof *ids; i++) {
        snprintf(text, sizeof text,
                 "{\"version\":1,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":"
                 "4096}}",
                 ids[i]);
        assert_int_equal(parse(text, &c, &err), -1);
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_non_null(strstr(err.msg, "repository id"));
    }
    /* Numbers must be integers in range, before any cast. */
    const char *chunkers[] = {
        "{\"min\":256.5,\"avg\":1024,\"max\":4096}",     "{\"min\":256,\"avg\":1000,\"max\":4096}",
        "{\"min\":256,\"avg\":1024,\"max\":4294967296}", "{\"min\":-1,\"avg\":1024,\"max\":4096}",
        "{\"min\":\"256\",\"avg\":1024,\"max\":4096}",   "{\"min\":32,\"avg\":1024,\"max\":4096}",
        "{\"min\":256,\"avg\":1024,\"max\":536870912}"};
    for (size_t i = 0; i < sizeof chunkers / sizeof *chunkers; i++) {
        snprintf(text, sizeof text, "{\"version\":1,\"id\":\"%s\",\"chunker\":%s}", ID,
                 chunkers[i]);
        if (parse(text, &c, &err) == 0 || err.code != PF_ECORRUPT)
            fail_msg("accepted %s", text);
    }

    /* Format 2: exactly the known fields, each once, and a mac; pack_size in range. */
    char mac[65];
    memset(mac, 'a', 64);
    mac[64] = 0;
    snprintf(text, sizeof text,
             "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
             "\"pack_size\":1048576,\"mac\":\"%s\"}",
             ID, mac);
    assert_int_equal(parse(text, &c, &err), 0);
    assert_int_equal(c.version, 2);
    assert_int_equal(c.pack_size, 1u << 20);
    assert_int_equal(c.mac[0], 0xaa);
    const char *v2bad[] = {
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
        "\"pack_size\":1048576}",
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
        "\"pack_size\":1048576,\"mac\":\"%s\",\"extra\":1}",
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096,"
        "\"x\":1},\"pack_size\":1048576,\"mac\":\"%s\"}",
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
        "\"pack_size\":1024,\"mac\":\"%s\"}",
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
        "\"pack_size\":1048576,\"mac\":\"%s\",\"pack_size\":1048576}",
        "{\"version\":2,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096},"
        "\"mac\":\"%s\"}",
    };
    for (size_t i = 0; i < sizeof v2bad / sizeof *v2bad; i++) {
        snprintf(text, sizeof text, v2bad[i], ID, mac);
        if (parse(text, &c, &err) == 0 || err.code != PF_ECORRUPT)
            fail_msg("accepted %s", text);
    }
    snprintf(text, sizeof text,
             "{\"version\":4,\"id\":\"%s\",\"chunker\":{\"min\":256,\"avg\":1024,\"max\":4096}}",
             ID);
    assert_int_equal(parse(text, &c, &err), -1);
    assert_int_equal(err.code, PF_ENOREPO);
    assert_int_equal(parse("[]", &c, &err), -1);
    assert_int_equal(err.code, PF_ENOREPO);

    /* encode -> parse is the identity, MAC included. */
    pf_repo_config w = {
        .version = 2, .chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096, .pack_size = 1 << 20};
    memcpy(w.id, ID, sizeof w.id);
    uint8_t master[PF_KEY_LEN] = {1};
    assert_int_equal(pf_config_mac(master, &w, w.mac, &err), 0);
    char *enc = pf_config_encode(&w);
    assert_non_null(enc);
    assert_int_equal(parse(enc, &c, &err), 0);
    assert_memory_equal(&c, &w, sizeof c);
    assert_int_equal(pf_config_verify(master, &c, &err), 0);
    master[0] ^= 1;
    assert_int_equal(pf_config_verify(master, &c, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    free(enc);
}

/* Replaces the first occurrence of from by to in the store object key. */
static void edit(pf_store *s, const char *key, const char *from, const char *to)
{
    char *t = get_str(s, key);
    char *at = strstr(t, from);
    if (!at)
        fail_msg("%s has no \"%s\"", key, from);
    char out[8192];
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - t), t, to, at + strlen(from));
    put_str(s, key, out);
    free(t);
}

static void test_config_mac_and_downgrade(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_repo *r = pf_repo_init(borrow(mem), "pw", &o, &err);
    assert_non_null(r);
    assert_int_equal(r->format, 2);
    uint8_t master[PF_KEY_LEN];
    memcpy(master, r->keys.master, sizeof master);
    pf_repo_free(r);
    char *good = get_str(mem, "config");

    /* Every field the MAC covers: a change is refused after the key opened. */
    const char *edits[][2] = {{"\"min\":\t256", "\"min\":\t512"},
                              {"\"max\":\t4096", "\"max\":\t8192"},
                              {"\"pack_size\":\t16777216", "\"pack_size\":\t1048576"},
                              {"\"id\":\t\"", "\"id\":\t\"0"}};
    for (size_t i = 0; i < sizeof edits / sizeof *edits; i++) {
        put_str(mem, "config", good);
        if (i == 3) {
            /* keep 64 digits: replace the first digit */
            char *t = get_str(mem, "config");
            char *at = strstr(t, "\"id\":\t\"") + 7;
            *at = *at == '0' ? '1' : '0';
            put_str(mem, "config", t);
            free(t);
        } else {
            edit(mem, "config", edits[i][0], edits[i][1]);
        }
        r = pf_repo_open(borrow(mem), "pw", &err);
        if (r)
            fail_msg("tampered config accepted (%s)", edits[i][1]);
        /* a changed id also changes what the key is bound to: no key opens */
        if (i == 3)
            assert_int_equal(err.code, PF_EAUTH);
        else {
            assert_int_equal(err.code, PF_ECORRUPT);
            assert_non_null(strstr(err.msg, "config fails authentication"));
        }
        /* With the master key itself (a paper key), the same. */
        r = pf_repo_open_master(borrow(mem), master, &err);
        assert_null(r);
        assert_int_equal(err.code, PF_EAUTH);
    }
    /* A wrong MAC, a missing one. */
    put_str(mem, "config", good);
    char *t = get_str(mem, "config");
    char *m = strstr(t, "\"mac\":\t\"") + 8;
    *m = *m == 'a' ? 'b' : 'a';
    put_str(mem, "config", t);
    free(t);
    assert_null(pf_repo_open(borrow(mem), "pw", &err));
    assert_int_equal(err.code, PF_ECORRUPT);

    /* Downgrade: the same values as format 1 (no MAC) are refused because the key is of
     * format 2. */
    put_str(mem, "config", good);
    t = get_str(mem, "config");
    pf_repo_config c;
    assert_int_equal(pf_config_parse(t, strlen(t), &c, &err), 0);
    free(t);
    c.version = 1;
    c.chunk_min = 512;
    char *v1 = pf_config_encode(&c);
    put_str(mem, "config", v1);
    free(v1);
    assert_null(pf_repo_open(borrow(mem), "pw", &err));
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_non_null(strstr(err.msg, "format 1"));

    put_str(mem, "config", good);
    r = pf_repo_open(borrow(mem), "pw", &err);
    assert_non_null(r);
    pf_repo_free(r);
    r = pf_repo_open_master(borrow(mem), master, &err);
    assert_non_null(r);
    pf_repo_free(r);
    free(good);
    pf_store_free(mem);
}

/* A format-1 repository as today's main writes it: config without a MAC, key of
 * version 1. It opens; upgrade makes it format 2; a downgrade is then refused. */
static void test_upgrade(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_repo *r = pf_repo_init(borrow(mem), "pw", &o, &err);
    assert_non_null(r);
    /* Make it format 1: a v1 config and a v1 key, as pf_repo_add_key writes for format 1. */
    r->format = 1;
    char v1key[PF_HEX_ID_LEN + 1], key[80];
    assert_int_equal(pf_repo_add_key(r, "old", v1key, &err), 0);
    snprintf(key, sizeof key, "keys/%s", r->key_id);
    assert_int_equal(pf_store_remove(mem, key, &err), 0);
    char *t = get_str(mem, "config");
    pf_repo_config c;
    assert_int_equal(pf_config_parse(t, strlen(t), &c, &err), 0);
    free(t);
    c.version = 1;
    char *v1 = pf_config_encode(&c);
    put_str(mem, "config", v1);
    pf_repo_free(r);

    r = pf_repo_open(borrow(mem), "old", &err);
    assert_non_null(r);
    assert_int_equal(r->format, 1);
    char v2key[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_upgrade(r, "old", v2key, &err), 0);
    assert_int_equal(pf_repo_upgrade(r, "old", v2key, &err), -1); /* already done */
    pf_repo_free(r);
    snprintf(key, sizeof key, "keys/%s", v1key);
    uint64_t sz;
    assert_int_equal(pf_store_stat(mem, key, &sz, &err), -1); /* the v1 key is gone */
    t = get_str(mem, "config");
    assert_non_null(strstr(t, "\"mac\""));
    free(t);
    r = pf_repo_open(borrow(mem), "old", &err);
    assert_non_null(r);
    assert_int_equal(r->format, 2);
    assert_string_equal(r->key_id, v2key);
    pf_repo_free(r);
    /* Put the old config back: refused now. */
    put_str(mem, "config", v1);
    assert_null(pf_repo_open(borrow(mem), "old", &err));
    assert_int_equal(err.code, PF_ECORRUPT);
    free(v1);
    pf_store_free(mem);
}

static void key_file(pf_store *mem, const char *name, const char *n, const char *r, const char *p)
{
    char text[1024];
    snprintf(text, sizeof text,
             "{\"version\":1,\"kdf\":\"scrypt\",\"N\":%s,\"r\":%s,\"p\":%s,\"salt\":\"%s\","
             "\"sealed\":\"%s%.32s\"}",
             n, r, p, ID, ID, ID);
    put_str(mem, name, text);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void test_key_bounds(void **state)
{
    (void)state;
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo *r = pf_repo_init(borrow(mem), "pw", NULL, &err);
    assert_non_null(r);
    pf_repo_free(r);
    /* Costly or odd parameters: each is skipped, named in a warning, without running
     * scrypt (the open below takes the time of one default key, not of 4 GiB ones). */
    const char *params[][3] = {{"4194304", "32", "16"}, /* 16 GiB: the old bound */
                               {"4194304", "8", "1"},   /* 4 GiB */
                               {"4194304", "1", "1"},   /* 512 MiB, 2x the work bound */
                               {"262144", "16", "1"},   /* 512 MiB */
                               {"32768", "8", "16"},    /* 16x the work */
                               {"32769", "8", "1"},     /* not a power of two */
                               {"1e300", "8", "1"},     {"32768.5", "8", "1"}, {"512", "8", "1"}};
    char name[80];
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        snprintf(name, sizeof name, "keys/%063zx%c", i, 'a');
        key_file(mem, name, params[i][0], params[i][1], params[i][2]);
    }
    /* A key file too large to be one, and names of the wrong shape (never read). */
    char big[PF_KEY_FILE_MAX_BYTES + 2];
    memset(big, ' ', sizeof big - 1);
    big[sizeof big - 1] = 0;
    snprintf(name, sizeof name, "keys/%064d", 0);
    put_str(mem, name, big);
    put_str(mem, "keys/x", "{}");
    warned[0] = 0;
    double t0 = now();
    r = pf_repo_open(borrow(mem), "pw", &err);
    double dt = now() - t0;
    assert_non_null(r);
    pf_repo_free(r);
    if (dt > 5)
        fail_msg("open with costly key files took %.1f s", dt);
    for (size_t i = 0; i < sizeof params / sizeof *params; i++) {
        snprintf(name, sizeof name, "keys/%063zx%c", i, 'a');
        if (!strstr(warned, name))
            fail_msg("no warning names %s:\n%s", name, warned);
    }
    snprintf(name, sizeof name, "keys/%064d", 0);
    assert_non_null(strstr(warned, name));
    assert_null(strstr(warned, "keys/x"));
    /* The writer's own parameters are within the bounds. */
    assert_true(128ull * 32768 * 8 <= PF_KDF_MAX_MEM);
    assert_true(32768ull * 8 * 1 <= PF_KDF_MAX_WORK);

    /* Only costly keys and a wrong passphrase: refused, quickly. */
    assert_null(pf_repo_open(borrow(mem), "wrong", &err));
    assert_int_equal(err.code, PF_EAUTH);

    /* More key files than are ever tried: refused with a message saying so. */
    for (int i = 0; i < PF_KEY_FILES_MAX; i++) {
        snprintf(name, sizeof name, "keys/%064x", 0x100 + i);
        key_file(mem, name, "1024", "1", "1");
    }
    assert_null(pf_repo_open(borrow(mem), "pw", &err));
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_non_null(strstr(err.msg, "key files"));
    pf_store_free(mem);
}

static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return -1;
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static void test_cache(void **state)
{
    (void)state;
    char base[] = "/tmp/pf-cache-test.XXXXXX";
    assert_non_null(mkdtemp(base));
    pf_store *mem = pf_store_mem_new();
    pf_err err = {0};
    pf_repo *r = pf_repo_init(borrow(mem), "pw", NULL, &err);
    assert_non_null(r);
    pf_repo_set_cache(r, base);
    assert_non_null(r->cache_dir);
    char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", base, r->id);
    assert_string_equal(r->cache_dir, dir);

    /* An object that does not authenticate, under its true name: refused, not cached. */
    uint8_t junk[100], sum[PF_ID_LEN];
    memset(junk, 0x41, sizeof junk);
    memcpy(junk, "PFO1", 4);
    char id[PF_HEX_ID_LEN + 1], key[128];
    pf_sha256(junk, sizeof junk, sum);
    pf_hex(sum, PF_ID_LEN, id);
    snprintf(key, sizeof key, "snapshots/%s", id);
    assert_int_equal(pf_store_put(mem, key, junk, sizeof junk, &err), 0);
    pf_buf b = PF_BUF_INIT;
    assert_int_equal(pf_repo_load_object(r, "snapshots", id, &b, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_int_equal(count_files(dir), 0);

    /* A real one is cached once it opened. */
    char good[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_save_object(r, "snapshots", "{}", 2, good, &err), 0);
    assert_int_equal(pf_repo_load_object(r, "snapshots", good, &b, &err), 0);
    assert_int_equal(count_files(dir), 1);
    pf_buf_reset(&b);

    /* A planted cache file with the right name but not authenticating (the junk above,
     * named as junk) is not trusted: the load fails as the store's copy would, and the
     * cached file is removed. */
    char path[1024];
    snprintf(path, sizeof path, "%s/snapshots-%s", dir, id);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    assert_int_equal(pf_repo_load_object(r, "snapshots", id, &b, &err), -1);
    assert_int_equal(access(path, F_OK), -1);

    /* A cached copy of a good object replaced by another authentic object of the same
     * repository (a swap): its name no longer matches, so it is refetched and replaced. */
    char other[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_save_object(r, "snapshots", "{\"x\":1}", 7, other, &err), 0);
    snprintf(key, sizeof key, "snapshots/%s", other);
    pf_buf raw = PF_BUF_INIT;
    assert_int_equal(pf_store_get(mem, key, 0, PF_STORE_ALL, &raw, &err), 0);
    snprintf(path, sizeof path, "%s/snapshots-%s", dir, good);
    f = fopen(path, "wb");
    fwrite(raw.data, 1, raw.len, f);
    fclose(f);
    assert_int_equal(pf_repo_load_object(r, "snapshots", good, &b, &err), 0);
    assert_string_equal((const char *)b.data, "{}");
    pf_buf_free(&raw);
    pf_buf_free(&b);

    /* The folder is held open: swapping its path for a symlink afterwards (a parent others
     * could write) does not send cache files through it. */
    char moved[600], elsewhere[600];
    snprintf(moved, sizeof moved, "%s/moved", base);
    snprintf(elsewhere, sizeof elsewhere, "%s/elsewhere", base);
    assert_int_equal(mkdir(elsewhere, 0700), 0);
    assert_int_equal(rename(dir, moved), 0);
    assert_int_equal(symlink(elsewhere, dir), 0);
    char third[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_repo_save_object(r, "snapshots", "{\"y\":2}", 7, third, &err), 0);
    assert_int_equal(pf_repo_load_object(r, "snapshots", third, &b, &err), 0);
    assert_int_equal(count_files(elsewhere), 0);
    snprintf(path, sizeof path, "%s/snapshots-%s", moved, third);
    assert_int_equal(access(path, F_OK), 0);
    pf_buf_free(&b);
    assert_int_equal(unlink(dir), 0);
    assert_int_equal(rename(moved, dir), 0);

    /* A cache folder others can write is not used. */
    pf_repo_free(r);
    r = pf_repo_open(borrow(mem), "pw", &err);
    assert_non_null(r);
    chmod(dir, 0777);
    warned[0] = 0;
    pf_repo_set_cache(r, base);
    assert_null(r->cache_dir);
    assert_non_null(strstr(warned, "not using the cache"));
    pf_repo_free(r);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
    assert_int_equal(system(cmd), 0);
    pf_store_free(mem);
}

int main(void)
{
    pf_log_set_handler(keep_warnings);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_config_parse),
        cmocka_unit_test(test_config_mac_and_downgrade),
        cmocka_unit_test(test_upgrade),
        cmocka_unit_test(test_key_bounds),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests_name("hostile store", tests, NULL, NULL);
}
