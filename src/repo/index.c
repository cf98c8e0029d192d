#include "repo/index.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz);
    if (!p) {
        fprintf(stderr, "permafrost: out of memory\n");
        abort();
    }
    return p;
}

static size_t id_hash(const uint8_t *id)
{
    return (size_t)pf_le64(id);
}

pf_index *pf_index_new(void)
{
    pf_index *ix = xcalloc(1, sizeof *ix);
    ix->nslots = 1024;
    ix->slots = xcalloc(ix->nslots, sizeof *ix->slots);
    ix->npack_slots = 256;
    ix->pack_slots = xcalloc(ix->npack_slots, sizeof *ix->pack_slots);
    return ix;
}

void pf_index_free(pf_index *ix)
{
    if (!ix)
        return;
    free(ix->entries);
    free(ix->slots);
    free(ix->packs);
    free(ix->pack_slots);
    free(ix);
}

/* The slot holding id, or the empty slot where it would go. */
static uint32_t *probe(const pf_index *ix, const uint8_t *id)
{
    size_t mask = ix->nslots - 1;
    for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
        uint32_t v = ix->slots[i];
        if (!v || !memcmp(ix->entries[v - 1].id, id, PF_ID_LEN))
            return &ix->slots[i];
    }
}

static void grow(pf_index *ix)
{
    free(ix->slots);
    ix->nslots *= 2;
    ix->slots = xcalloc(ix->nslots, sizeof *ix->slots);
    for (size_t i = 0; i < ix->nblobs; i++)
        *probe(ix, ix->entries[i].id) = (uint32_t)i + 1;
}

bool pf_index_add(pf_index *ix, const uint8_t id[PF_ID_LEN], const pf_blob_loc *loc)
{
    if ((ix->nblobs + 1) * 10 > ix->nslots * 7)
        grow(ix);
    uint32_t *s = probe(ix, id);
    if (*s) {
        pf_blob_loc *have = &ix->entries[*s - 1].loc;
        if (have->pack == PF_PACK_PENDING && loc->pack != PF_PACK_PENDING)
            *have = *loc;
        return false;
    }
    if (ix->nblobs == ix->entries_cap) {
        /* Doubling realloc: past the mmap threshold glibc moves the pages (mremap), it
         * does not copy them, so the old and the new array are never both resident. */
        size_t cap = ix->entries_cap ? ix->entries_cap * 2 : 1024;
        pf_index_entry *e = realloc(ix->entries, cap * sizeof *e);
        if (!e) {
            fprintf(stderr, "permafrost: out of memory\n");
            abort();
        }
        ix->entries = e;
        ix->entries_cap = cap;
    }
    pf_index_entry *e = &ix->entries[ix->nblobs];
    memset(e, 0, sizeof *e);
    memcpy(e->id, id, PF_ID_LEN);
    e->loc = *loc;
    *s = (uint32_t)++ix->nblobs;
    return true;
}

void pf_index_set(pf_index *ix, const uint8_t id[PF_ID_LEN], const pf_blob_loc *loc)
{
    if (!pf_index_add(ix, id, loc))
        ix->entries[*probe(ix, id) - 1].loc = *loc;
}

pf_blob_loc *pf_index_find(const pf_index *ix, const uint8_t id[PF_ID_LEN])
{
    uint32_t v = *probe(ix, id);
    return v ? &ix->entries[v - 1].loc : NULL;
}

long pf_index_pos(const pf_index *ix, const uint8_t id[PF_ID_LEN])
{
    uint32_t v = *probe(ix, id);
    return v ? (long)v - 1 : -1;
}

void pf_index_remove(pf_index *ix, const uint8_t id[PF_ID_LEN])
{
    uint32_t *s = probe(ix, id);
    if (!*s)
        return;
    size_t pos = *s - 1;
    /* Backward-shift deletion keeps every remaining probe chain unbroken. */
    size_t mask = ix->nslots - 1;
    size_t i = (size_t)(s - ix->slots);
    for (size_t j = (i + 1) & mask; ix->slots[j]; j = (j + 1) & mask) {
        size_t home = id_hash(ix->entries[ix->slots[j] - 1].id) & mask;
        if (((j - home) & mask) >= ((j - i) & mask)) {
            ix->slots[i] = ix->slots[j];
            i = j;
        }
    }
    ix->slots[i] = 0;
    /* The last entry fills the hole, so entries stay dense. */
    size_t last = --ix->nblobs;
    if (pos != last) {
        ix->entries[pos] = ix->entries[last];
        *probe(ix, ix->entries[pos].id) = (uint32_t)pos + 1;
    }
}

static uint32_t *pack_probe(const pf_index *ix, const uint8_t *id)
{
    size_t mask = ix->npack_slots - 1;
    for (size_t i = id_hash(id) & mask;; i = (i + 1) & mask) {
        uint32_t v = ix->pack_slots[i];
        if (!v || !memcmp(ix->packs[v - 1].id, id, PF_ID_LEN))
            return &ix->pack_slots[i];
    }
}

long pf_index_find_pack(const pf_index *ix, const uint8_t id[PF_ID_LEN])
{
    uint32_t v = *pack_probe(ix, id);
    return v ? (long)v - 1 : -1;
}

uint32_t pf_index_add_pack(pf_index *ix, const uint8_t id[PF_ID_LEN],
                           const uint8_t salt[PF_SALT_LEN])
{
    long have = pf_index_find_pack(ix, id);
    if (have >= 0)
        return (uint32_t)have;
    if ((ix->npacks + 1) * 2 > ix->npack_slots) {
        free(ix->pack_slots);
        ix->npack_slots *= 2;
        ix->pack_slots = xcalloc(ix->npack_slots, sizeof *ix->pack_slots);
        for (size_t i = 0; i < ix->npacks; i++)
            *pack_probe(ix, ix->packs[i].id) = (uint32_t)i + 1;
    }
    if (ix->npacks == ix->packs_cap) {
        ix->packs_cap = ix->packs_cap ? ix->packs_cap * 2 : 64;
        ix->packs = realloc(ix->packs, ix->packs_cap * sizeof *ix->packs);
        if (!ix->packs) {
            fprintf(stderr, "permafrost: out of memory\n");
            abort();
        }
    }
    memcpy(ix->packs[ix->npacks].id, id, PF_ID_LEN);
    memcpy(ix->packs[ix->npacks].salt, salt, PF_SALT_LEN);
    ix->packs[ix->npacks].kind = PF_PACK_MASTER;
    ix->npacks++;
    *pack_probe(ix, id) = (uint32_t)ix->npacks;
    return (uint32_t)ix->npacks - 1;
}

uint32_t pf_index_add_pack_info(pf_index *ix, const pf_pack_info *info)
{
    uint32_t pos = pf_index_add_pack(ix, info->id, info->salt);
    if (info->kind == PF_PACK_SEALED)
        ix->packs[pos].kind = PF_PACK_SEALED;
    return pos;
}

#define INDEX_MAGIC "PFI1"
/* Format 3: a kind byte after each pack's salt. */
#define INDEX_MAGIC_KINDS "PFI2"

static int any_sealed(const pf_index_file *f)
{
    for (size_t i = 0; i < f->npacks; i++)
        if (f->packs[i].info.kind == PF_PACK_SEALED)
            return 1;
    return 0;
}

void pf_index_file_encode(const pf_index_file *f, pf_buf *out)
{
    int kinds = any_sealed(f);
    pf_buf_append(out, kinds ? INDEX_MAGIC_KINDS : INDEX_MAGIC, 4);
    pf_buf_u32le(out, (uint32_t)f->nsupersedes);
    for (size_t i = 0; i < f->nsupersedes; i++)
        pf_buf_append(out, f->supersedes[i], PF_ID_LEN);
    pf_buf_u32le(out, (uint32_t)f->npacks);
    for (size_t i = 0; i < f->npacks; i++) {
        const pf_index_file_pack *p = &f->packs[i];
        pf_buf_append(out, p->info.id, PF_ID_LEN);
        pf_buf_append(out, p->info.salt, PF_SALT_LEN);
        if (kinds)
            pf_buf_u8(out, p->info.kind == PF_PACK_SEALED ? PF_PACK_SEALED : PF_PACK_MASTER);
        pf_buf_u32le(out, (uint32_t)p->count);
        for (size_t j = 0; j < p->count; j++)
            pf_blob_entry_encode(&p->entries[j], out);
    }
}

int pf_index_file_decode(const uint8_t *p, size_t n, pf_index_file *f, pf_err *err)
{
    memset(f, 0, sizeof *f);
    pf_reader r;
    pf_reader_init(&r, p, n);
    const uint8_t *b;
    uint32_t ns, np;
    int kinds = 0;
    if (pf_reader_bytes(&r, 4, &b) ||
        (memcmp(b, INDEX_MAGIC, 4) && !(kinds = !memcmp(b, INDEX_MAGIC_KINDS, 4))) ||
        pf_reader_u32le(&r, &ns) || (uint64_t)ns * PF_ID_LEN > pf_reader_left(&r))
        goto bad;
    f->supersedes = xcalloc(ns, PF_ID_LEN);
    f->nsupersedes = ns;
    for (uint32_t i = 0; i < ns; i++) {
        if (pf_reader_bytes(&r, PF_ID_LEN, &b))
            goto bad;
        memcpy(f->supersedes[i], b, PF_ID_LEN);
    }
    if (pf_reader_u32le(&r, &np) || (uint64_t)np * (2 * PF_ID_LEN + 4) > pf_reader_left(&r))
        goto bad;
    f->packs = xcalloc(np, sizeof *f->packs);
    for (uint32_t i = 0; i < np; i++) {
        pf_index_file_pack *pk = &f->packs[i];
        const uint8_t *id, *salt;
        uint32_t cnt;
        uint8_t kind = 0; /* PFI1: every pack is PF_PACK_MASTER, which 0 reads as */
        if (pf_reader_bytes(&r, PF_ID_LEN, &id) || pf_reader_bytes(&r, PF_SALT_LEN, &salt) ||
            (kinds &&
             (pf_reader_u8(&r, &kind) || (kind != PF_PACK_MASTER && kind != PF_PACK_SEALED))) ||
            pf_reader_u32le(&r, &cnt) || (uint64_t)cnt * PF_PACK_ENTRY_LEN > pf_reader_left(&r))
            goto bad;
        f->npacks = i + 1;
        memcpy(pk->info.id, id, PF_ID_LEN);
        memcpy(pk->info.salt, salt, PF_SALT_LEN);
        pk->info.kind = kind;
        pk->entries = xcalloc(cnt, sizeof *pk->entries);
        pk->count = cnt;
        for (uint32_t j = 0; j < cnt; j++)
            if (pf_blob_entry_decode(&r, &pk->entries[j]))
                goto bad;
    }
    if (pf_reader_left(&r) != 0)
        goto bad;
    return 0;
bad:
    pf_index_file_free(f);
    return pf_err_set(err, PF_ECORRUPT, "index file malformed");
}

void pf_index_file_free(pf_index_file *f)
{
    for (size_t i = 0; i < f->npacks; i++)
        free(f->packs[i].entries);
    free(f->packs);
    free(f->supersedes);
    memset(f, 0, sizeof *f);
}

void pf_index_merge(pf_index *ix, const pf_index_file *f)
{
    for (size_t i = 0; i < f->npacks; i++) {
        const pf_index_file_pack *p = &f->packs[i];
        uint32_t pos = pf_index_add_pack_info(ix, &p->info);
        for (size_t j = 0; j < p->count; j++) {
            const pf_blob_entry *e = &p->entries[j];
            pf_blob_loc loc = {pos, e->offset, e->length, e->raw_length, e->type, e->comp};
            pf_index_add(ix, e->id, &loc);
        }
    }
}
