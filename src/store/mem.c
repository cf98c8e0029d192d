/* The in-memory driver, for unit tests: a hash table of key -> bytes under one mutex.
 * Objects are immutable once stored (put swaps in a new one), so a get copies under the
 * lock and never sees a partial object. list snapshots the matching keys under the lock
 * and calls back without it, so a callback may itself use the store. */
#include "store/store.h"
#include "common/alloc.h"
#include "store/internal.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

typedef struct mem_obj {
    struct mem_obj *next;
    char *key;
    uint8_t *data;
    size_t len;
} mem_obj;

typedef struct mem_store {
    pthread_mutex_t mu;
    mem_obj **tab;
    size_t nbuckets; /* a power of two */
    size_t count;
} mem_store;

static uint64_t hash_key(const char *k)
{
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *k; k++)
        h = (h ^ (uint8_t)*k) * 1099511628211ull;
    return h;
}

static mem_obj **find_slot(mem_store *m, const char *key)
{
    mem_obj **pp = &m->tab[hash_key(key) & (m->nbuckets - 1)];
    while (*pp && strcmp((*pp)->key, key) != 0)
        pp = &(*pp)->next;
    return pp;
}

static void grow(mem_store *m)
{
    size_t nb = m->nbuckets * 2;
    mem_obj **tab = calloc(nb, sizeof *tab);
    if (!tab)
        abort();
    for (size_t i = 0; i < m->nbuckets; i++) {
        mem_obj *o = m->tab[i];
        while (o) {
            mem_obj *next = o->next;
            size_t b = hash_key(o->key) & (nb - 1);
            o->next = tab[b];
            tab[b] = o;
            o = next;
        }
    }
    free(m->tab);
    m->tab = tab;
    m->nbuckets = nb;
}

static void obj_free(mem_obj *o)
{
    if (!o)
        return;
    free(o->key);
    free(o->data);
    free(o);
}

static int mem_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    mem_store *m = s->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    /* Copy outside the lock; only the swap happens under it. */
    uint8_t *copy = pf_xmalloc(len);
    if (len)
        memcpy(copy, data, len);
    pthread_mutex_lock(&m->mu);
    mem_obj **pp = find_slot(m, key);
    if (*pp) {
        free((*pp)->data);
        (*pp)->data = copy;
        (*pp)->len = len;
    } else {
        mem_obj *o = pf_xmalloc(sizeof *o);
        o->next = NULL;
        o->key = strdup(key);
        if (!o->key)
            abort();
        o->data = copy;
        o->len = len;
        *pp = o;
        if (++m->count > m->nbuckets)
            grow(m);
    }
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                   pf_err *err)
{
    mem_store *m = s->impl;
    int rc = -1;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    mem_obj *o = *find_slot(m, key);
    uint64_t n;
    if (!o) {
        pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
        goto out;
    }
    if (pf_store_check_range(key, o->len, off, len, &n, err) < 0)
        goto out;
    pf_buf_append(out, o->data + off, (size_t)n);
    rc = 0;
out:
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    mem_store *m = s->impl;
    int rc = 0;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    mem_obj *o = *find_slot(m, key);
    if (o)
        *size = o->len;
    else
        rc = pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static int mem_remove(pf_store *s, const char *key, pf_err *err)
{
    mem_store *m = s->impl;
    int rc = 0;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pthread_mutex_lock(&m->mu);
    mem_obj **pp = find_slot(m, key);
    mem_obj *o = *pp;
    if (o) {
        *pp = o->next;
        m->count--;
        obj_free(o);
    } else {
        rc = pf_err_set(err, PF_ENOTFOUND, "object %s not found in %s", key, s->location);
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

struct snap_ent {
    char *key;
    uint64_t size;
};

static int mem_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    mem_store *m = s->impl;
    if (!prefix)
        prefix = "";
    if (pf_store_check_prefix(prefix, err) < 0)
        return -1;
    size_t plen = strlen(prefix), n = 0;
    pthread_mutex_lock(&m->mu);
    struct snap_ent *ents = pf_xmalloc(m->count * sizeof *ents);
    for (size_t i = 0; i < m->nbuckets; i++)
        for (mem_obj *o = m->tab[i]; o; o = o->next)
            if (strncmp(o->key, prefix, plen) == 0) {
                ents[n].key = strdup(o->key);
                if (!ents[n].key)
                    abort();
                ents[n].size = o->len;
                n++;
            }
    pthread_mutex_unlock(&m->mu);
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = cb(ents[i].key, ents[i].size, ctx, err);
    for (size_t i = 0; i < n; i++)
        free(ents[i].key);
    free(ents);
    return rc;
}

static void mem_free(pf_store *s)
{
    mem_store *m = s->impl;
    if (!m)
        return;
    for (size_t i = 0; i < m->nbuckets; i++) {
        mem_obj *o = m->tab[i];
        while (o) {
            mem_obj *next = o->next;
            obj_free(o);
            o = next;
        }
    }
    free(m->tab);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static const struct pf_store_ops mem_ops = {
    .name = "mem",
    .put = mem_put,
    .get = mem_get,
    .stat = mem_stat,
    .list = mem_list,
    .remove = mem_remove,
    .free = mem_free,
};

pf_store *pf_store_mem_new(void)
{
    mem_store *m = calloc(1, sizeof *m);
    if (!m)
        abort();
    pthread_mutex_init(&m->mu, NULL);
    m->nbuckets = 64;
    m->tab = calloc(m->nbuckets, sizeof *m->tab);
    if (!m->tab)
        abort();
    pf_store *s = pf_store_alloc(&mem_ops, m, "memory");
    s->props = (pf_store_props){.remote = false, .connections = 0};
    return s;
}
