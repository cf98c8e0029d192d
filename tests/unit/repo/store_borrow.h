/* For unit tests: a store that forwards to another without owning it, so a test can open,
 * close and re-open repositories (which take ownership of their store) on one in-memory
 * store. borrow(inner) returns it; freeing it leaves inner alone. */
#ifndef PF_TEST_STORE_BORROW_H
#define PF_TEST_STORE_BORROW_H

#include "store/store.h"

static int b_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    return pf_store_put(s->impl, key, data, len, err);
}
static int b_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    return pf_store_get(s->impl, key, off, len, out, err);
}
static int b_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return pf_store_stat(s->impl, key, size, err);
}
static int b_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    return pf_store_list(s->impl, prefix, cb, ctx, err);
}
static int b_remove(pf_store *s, const char *key, pf_err *err)
{
    return pf_store_remove(s->impl, key, err);
}
static const struct pf_store_ops borrow_ops = {"borrow", b_put, b_get, b_stat, b_list,
                                               b_remove, NULL,  NULL,  NULL,   NULL};

static pf_store *borrow(pf_store *inner)
{
    return pf_store_alloc(&borrow_ops, inner, "memory");
}

#endif
