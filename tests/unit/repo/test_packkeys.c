/* The pack key cache: it gives the key pf_pack_key_kind derives, for both kinds of pack,
 * past its capacity (replacing slots), from several threads at once; a write-only key's
 * refusal of a master pack stays a refusal; and pf_pack_keys_free wipes the keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>

#include "repo/pack.h"
#include "repo/packkeys.h"
#include "repo/writekey.h"

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        p[i] = (uint8_t)(seed >> 16);
    }
}

static void full_keys(pf_keys *k)
{
    pf_err err = {0};
    memset(k, 0, sizeof *k);
    fill(k->master, PF_KEY_LEN, 99);
    assert_int_equal(pf_keys_derive(k, &err), 0);
    assert_int_equal(pf_wk_derive(k, &err), 0);
}

/* A sealed pack's "salt" is an ephemeral public key: a real one, so X25519 accepts it. */
static void sealed_salt(const pf_keys *k, uint32_t seed, uint8_t salt[PF_SALT_LEN])
{
    uint8_t eph[PF_KEY_LEN], key[PF_KEY_LEN];
    pf_err err = {0};
    fill(eph, sizeof eph, seed);
    assert_int_equal(pf_wk_seal_key(k->pub, eph, PF_WK_PACK_INFO, salt, key, &err), 0);
}

static void expect_key(pf_pack_keys *c, const pf_keys *k, uint8_t kind, const uint8_t *salt)
{
    uint8_t want[PF_KEY_LEN], got[PF_KEY_LEN];
    pf_err err = {0};
    assert_int_equal(pf_pack_key_kind(k, kind, salt, want, &err), 0);
    memset(got, 0xa5, sizeof got);
    assert_int_equal(pf_pack_keys_get(c, k, kind, salt, got, &err), 0);
    assert_memory_equal(got, want, PF_KEY_LEN);
}

static void test_same_keys_past_capacity(void **state)
{
    (void)state;
    pf_keys k;
    full_keys(&k);
    pf_pack_keys c;
    pf_pack_keys_init(&c);
    /* Three times the slots, twice over: hits, misses and replaced slots all agree. */
    for (int round = 0; round < 2; round++)
        for (uint32_t i = 0; i < 3 * PF_PACK_KEYS_SLOTS; i++) {
            uint8_t salt[PF_SALT_LEN];
            fill(salt, sizeof salt, i);
            expect_key(&c, &k, PF_PACK_MASTER, salt);
            expect_key(&c, &k, 0, salt); /* zeroed kind reads as master */
            if (i % 16 == 0) {
                sealed_salt(&k, 1000 + i, salt);
                expect_key(&c, &k, PF_PACK_SEALED, salt);
            }
        }
    /* The same 32 bytes as a master salt and as a sealed pack's key are two keys. */
    uint8_t salt[PF_SALT_LEN], a[PF_KEY_LEN], b[PF_KEY_LEN];
    pf_err err = {0};
    sealed_salt(&k, 7, salt);
    assert_int_equal(pf_pack_keys_get(&c, &k, PF_PACK_MASTER, salt, a, &err), 0);
    assert_int_equal(pf_pack_keys_get(&c, &k, PF_PACK_SEALED, salt, b, &err), 0);
    assert_memory_not_equal(a, b, PF_KEY_LEN);
    pf_pack_keys_free(&c);
    pf_keys_wipe(&k);
}

static void test_write_only_refusal_not_cached(void **state)
{
    (void)state;
    pf_keys k;
    full_keys(&k);
    pf_keys wo = k;
    memset(wo.master, 0, PF_KEY_LEN);
    memset(wo.priv, 0, PF_KEY_LEN);
    wo.write_only = true;
    pf_pack_keys c;
    pf_pack_keys_init(&c);
    uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN];
    fill(salt, sizeof salt, 5);
    for (int i = 0; i < 2; i++) {
        pf_err err = {0};
        assert_int_equal(pf_pack_keys_get(&c, &wo, PF_PACK_MASTER, salt, key, &err), -1);
        assert_int_equal(err.code, PF_EAUTH);
    }
    pf_pack_keys_free(&c);
    pf_keys_wipe(&k);
    pf_keys_wipe(&wo);
}

static void test_free_wipes(void **state)
{
    (void)state;
    pf_keys k;
    full_keys(&k);
    pf_pack_keys c;
    pf_pack_keys_init(&c);
    uint8_t salt[PF_SALT_LEN], key[PF_KEY_LEN], zero[sizeof c.slot] = {0};
    fill(salt, sizeof salt, 3);
    pf_err err = {0};
    assert_int_equal(pf_pack_keys_get(&c, &k, PF_PACK_MASTER, salt, key, &err), 0);
    assert_memory_not_equal(c.slot, zero, sizeof c.slot);
    pf_pack_keys_free(&c);
    assert_memory_equal(c.slot, zero, sizeof c.slot);
    pf_keys_wipe(&k);
}

typedef struct worker_arg {
    pf_pack_keys *c;
    const pf_keys *k;
    uint32_t seed;
    int bad;
} worker_arg;

static void *worker(void *p)
{
    worker_arg *a = p;
    for (uint32_t i = 0; i < 400; i++) {
        uint8_t salt[PF_SALT_LEN], want[PF_KEY_LEN], got[PF_KEY_LEN];
        pf_err err = {0};
        /* Overlapping salts across threads, more of them than slots. */
        fill(salt, sizeof salt, (a->seed * 7 + i) % (2 * PF_PACK_KEYS_SLOTS));
        if (pf_pack_key_kind(a->k, PF_PACK_MASTER, salt, want, &err) ||
            pf_pack_keys_get(a->c, a->k, PF_PACK_MASTER, salt, got, &err) ||
            memcmp(want, got, PF_KEY_LEN))
            a->bad++;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    pf_keys k;
    full_keys(&k);
    pf_pack_keys c;
    pf_pack_keys_init(&c);
    pthread_t t[6];
    worker_arg a[6];
    for (int i = 0; i < 6; i++) {
        a[i] = (worker_arg){&c, &k, (uint32_t)i, 0};
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 6; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(a[i].bad, 0);
    }
    pf_pack_keys_free(&c);
    pf_keys_wipe(&k);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_keys_past_capacity),
        cmocka_unit_test(test_write_only_refusal_not_cached),
        cmocka_unit_test(test_free_wipes),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
