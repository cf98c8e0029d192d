#include "repo/idset.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"

#define IDSET_FIRST_CAP 1024

void pf_idset_init(pf_idset *s, size_t vlen)
{
    *s = (pf_idset)PF_IDSET_INIT;
    s->vlen = vlen;
}

/* The slot holding id, or the empty slot where it would go. */
static size_t probe(const pf_idset *s, const uint8_t *id)
{
    size_t mask = s->cap - 1;
    size_t i = (size_t)pf_le64(id) & mask;
    while (s->used[i] && memcmp(s->ids[i], id, PF_ID_LEN))
        i = (i + 1) & mask;
    return i;
}

/* Keeps the load under 70 % so probes stay short. */
static void grow(pf_idset *s)
{
    if (s->cap && (s->n + 1) * 10 <= s->cap * 7)
        return;
    pf_idset b = {.cap = s->cap ? s->cap * 2 : IDSET_FIRST_CAP, .vlen = s->vlen, .n = s->n};
    b.ids = pf_xmalloc(b.cap * PF_ID_LEN);
    b.used = pf_xcalloc(b.cap, 1);
    b.vals = s->vlen ? pf_xmalloc(b.cap * s->vlen) : NULL;
    for (size_t i = 0; i < s->cap; i++)
        if (s->used[i]) {
            size_t j = probe(&b, s->ids[i]);
            memcpy(b.ids[j], s->ids[i], PF_ID_LEN);
            if (s->vlen)
                memcpy(b.vals + j * s->vlen, s->vals + i * s->vlen, s->vlen);
            b.used[j] = 1;
        }
    free(s->ids);
    free(s->used);
    free(s->vals);
    *s = b;
}

/* Finds or inserts id; *fresh says which. */
static size_t slot_for(pf_idset *s, const uint8_t *id, int *fresh)
{
    grow(s);
    size_t i = probe(s, id);
    *fresh = !s->used[i];
    if (*fresh) {
        memcpy(s->ids[i], id, PF_ID_LEN);
        if (s->vlen)
            memset(s->vals + i * s->vlen, 0, s->vlen);
        s->used[i] = 1;
        s->n++;
    }
    return i;
}

int pf_idset_add(pf_idset *s, const uint8_t id[PF_ID_LEN])
{
    int fresh;
    slot_for(s, id, &fresh);
    return fresh;
}

bool pf_idset_has(const pf_idset *s, const uint8_t id[PF_ID_LEN])
{
    return s->cap && s->used[probe(s, id)];
}

void pf_idset_put(pf_idset *s, const uint8_t id[PF_ID_LEN], const void *val)
{
    int fresh;
    size_t i = slot_for(s, id, &fresh);
    if (s->vlen)
        memcpy(s->vals + i * s->vlen, val, s->vlen);
}

const void *pf_idset_get(const pf_idset *s, const uint8_t id[PF_ID_LEN])
{
    if (!s->cap)
        return NULL;
    size_t i = probe(s, id);
    return s->used[i] ? (s->vlen ? s->vals + i * s->vlen : s->ids[i]) : NULL;
}

void pf_idset_free(pf_idset *s)
{
    free(s->ids);
    free(s->used);
    free(s->vals);
    pf_idset_init(s, s->vlen);
}
