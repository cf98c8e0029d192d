/* The retry layer over a driver that fails on purpose: transient failures are retried
 * until they pass or the attempts run out, permanent ones return at once, a failed get
 * leaves nothing behind, a restarted list calls back once per key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/log.h"
#include "store/store.h"

/* A wrapper over mem that fails the next `fail` operations, transiently or not. For list,
 * it fails after passing on `list_before_fail` keys. For get, it appends junk first. */
typedef struct flaky {
    pf_store *mem;
    int fail;
    int transient;
    int code;
    int calls;
    int list_before_fail;
    int remove_then_fail; /* remove really removes, then reports a transient failure */
} flaky;

static int fail_now(flaky *f, pf_err *err)
{
    f->calls++;
    if (f->fail <= 0)
        return 0;
    f->fail--;
    pf_err_set(err, f->code, "injected failure");
    err->retryable = f->transient;
    return -1;
}

static int f_put(pf_store *s, const char *key, const void *d, size_t n, pf_err *err)
{
    flaky *f = s->impl;
    if (fail_now(f, err))
        return -1;
    return pf_store_put(f->mem, key, d, n, err);
}

static int f_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    flaky *f = s->impl;
    if (f->fail > 0)
        pf_buf_append_str(out, "junk");
    if (fail_now(f, err))
        return -1;
    return pf_store_get(f->mem, key, off, len, out, err);
}

static int f_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    flaky *f = s->impl;
    if (fail_now(f, err))
        return -1;
    return pf_store_stat(f->mem, key, size, err);
}

struct fl_ctx {
    flaky *f;
    pf_store_list_cb cb;
    void *ctx;
    int passed;
};

static int f_list_cb(const char *key, uint64_t size, void *p, pf_err *err)
{
    (void)err;
    struct fl_ctx *c = p;
    if (c->f->fail > 0 && c->passed >= c->f->list_before_fail)
        return -2; /* our marker: stop here and fail */
    c->passed++;
    return c->cb(key, size, c->ctx, err);
}

static int f_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    flaky *f = s->impl;
    struct fl_ctx c = {f, cb, ctx, 0};
    f->calls++;
    int rc = pf_store_list(f->mem, prefix, f_list_cb, &c, err);
    if (rc == -2) {
        f->fail--;
        pf_err_set(err, PF_ECONN, "injected list failure");
        err->retryable = true;
        return -1;
    }
    return rc;
}

static int f_remove(pf_store *s, const char *key, pf_err *err)
{
    flaky *f = s->impl;
    if (f->remove_then_fail) {
        f->remove_then_fail = 0;
        f->calls++;
        pf_store_remove(f->mem, key, err);
        pf_err_set(err, PF_ECONN, "connection reset after remove");
        err->retryable = true;
        return -1;
    }
    if (fail_now(f, err))
        return -1;
    return pf_store_remove(f->mem, key, err);
}

static void f_free(pf_store *s)
{
    flaky *f = s->impl;
    pf_store_free(f->mem);
}

static const struct pf_store_ops flaky_ops = {"flaky",  f_put,  f_get, f_stat, f_list,
                                              f_remove, f_free, NULL,  NULL,   NULL};

static int warnings;
static void count_log(int level, const char *msg)
{
    (void)msg;
    if (level == PF_LOG_WARN)
        warnings++;
}

static pf_store *make(flaky *f, int attempts)
{
    memset(f, 0, sizeof *f);
    f->mem = pf_store_mem_new();
    f->code = PF_ECONN;
    f->transient = 1;
    pf_store *s = calloc(1, sizeof *s);
    s->ops = &flaky_ops;
    s->impl = f;
    s->location = strdup("flaky");
    warnings = 0;
    return pf_store_retry_new(s, attempts);
}

static void test_transient_then_ok(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 4);
    pf_err err = {0};
    f.fail = 3;
    assert_int_equal(pf_store_put(s, "a", "xyz", 3, &err), 0);
    assert_int_equal(f.calls, 4);
    assert_int_equal(warnings, 3);

    f.fail = 2;
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, "pre:");
    assert_int_equal(pf_store_get(s, "a", 0, PF_STORE_ALL, &b, &err), 0);
    assert_int_equal(b.len, 7);
    assert_memory_equal(b.data, "pre:xyz", 7);
    pf_buf_free(&b);

    uint64_t size = 0;
    f.fail = 1;
    assert_int_equal(pf_store_stat(s, "a", &size, &err), 0);
    assert_int_equal(size, 3);
    pf_store_free(s);
}

static void test_gives_up(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 3);
    pf_err err = {0};
    f.fail = 10;
    assert_int_equal(pf_store_put(s, "a", "x", 1, &err), -1);
    assert_int_equal(f.calls, 3);
    assert_true(err.retryable);
    assert_int_equal(err.code, PF_ECONN);
    assert_non_null(strstr(err.msg, "gave up after 3 attempts"));
    pf_store_free(s);
}

static void test_permanent_at_once(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 5);
    pf_err err = {0};
    f.fail = 1;
    f.transient = 0;
    f.code = PF_EAUTH;
    assert_int_equal(pf_store_put(s, "a", "x", 1, &err), -1);
    assert_int_equal(f.calls, 1);
    assert_int_equal(err.code, PF_EAUTH);
    assert_int_equal(warnings, 0);
    /* Not found is permanent too. */
    assert_int_equal(pf_store_stat(s, "missing", &(uint64_t){0}, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_int_equal(f.calls, 2);
    pf_store_free(s);
}

static int collect(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)size;
    int *seen = ctx;
    seen[key[1] - '0']++;
    return 0;
}

static void test_list_restart_once_per_key(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 4);
    pf_err err = {0};
    char key[3] = "k0";
    for (int i = 0; i < 10; i++) {
        key[1] = (char)('0' + i);
        assert_int_equal(pf_store_put(s, key, "x", 1, &err), 0);
    }
    f.fail = 2;
    f.list_before_fail = 4;
    int seen[10] = {0};
    assert_int_equal(pf_store_list(s, "", collect, seen, &err), 0);
    for (int i = 0; i < 10; i++)
        assert_int_equal(seen[i], 1);
    assert_int_equal(f.calls, 3 + 10);
    pf_store_free(s);
}

static int stop_at_3(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    (void)key;
    (void)size;
    return ++*(int *)ctx == 3 ? 42 : 0;
}

static void test_list_stop(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 4);
    pf_err err = {0};
    char key[3] = "k0";
    for (int i = 0; i < 5; i++) {
        key[1] = (char)('0' + i);
        assert_int_equal(pf_store_put(s, key, "x", 1, &err), 0);
    }
    int n = 0;
    assert_int_equal(pf_store_list(s, "", stop_at_3, &n, &err), 42);
    assert_int_equal(n, 3);
    pf_store_free(s);
}

static void test_remove_lost_reply(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 4);
    pf_err err = {0};
    assert_int_equal(pf_store_put(s, "a", "x", 1, &err), 0);
    f.remove_then_fail = 1;
    assert_int_equal(pf_store_remove(s, "a", &err), 0);
    assert_int_equal(pf_store_remove(s, "a", &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    pf_store_free(s);
}

/* What an append-only server refuses is refused again on every attempt: never retried, and
 * the refusal comes back as it is. The store's append-only flag shows through the layer. */
static void test_refused_at_once(void **state)
{
    (void)state;
    flaky f;
    pf_store *s = make(&f, 5);
    pf_err err = {0};
    assert_int_equal(pf_store_put(s, "a", "x", 1, &err), 0);
    f.calls = 0;
    f.fail = 2;
    f.transient = 0;
    f.code = PF_EREFUSED;
    assert_int_equal(pf_store_remove(s, "a", &err), -1);
    assert_int_equal(err.code, PF_EREFUSED);
    assert_int_equal(pf_store_put(s, "a", "y", 1, &err), -1);
    assert_int_equal(err.code, PF_EREFUSED);
    assert_int_equal(f.calls, 2);
    assert_int_equal(warnings, 0);
    pf_store_free(s);

    pf_store *inner = pf_store_mem_new();
    inner->props.append_only = true;
    s = pf_store_retry_new(inner, 0);
    assert_true(pf_store_properties(s).append_only);
    pf_store_free(s);
}

int main(void)
{
    setenv("PERMAFROST_RETRY_BASE_MS", "1", 1);
    pf_log_set_handler(count_log);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transient_then_ok), cmocka_unit_test(test_gives_up),
        cmocka_unit_test(test_permanent_at_once), cmocka_unit_test(test_list_restart_once_per_key),
        cmocka_unit_test(test_list_stop),         cmocka_unit_test(test_remove_lost_reply),
        cmocka_unit_test(test_refused_at_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
