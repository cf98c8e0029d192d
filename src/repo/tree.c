#include "repo/tree.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TREE_MAGIC "PFT1"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "permafrost: out of memory\n");
        abort();
    }
    return p;
}

static char *dup_bytes(const char *p, size_t n)
{
    char *s = xmalloc(n + 1);
    if (n)
        memcpy(s, p, n);
    s[n] = 0;
    return s;
}

void pf_node_copy(pf_node *dst, const pf_node *src)
{
    *dst = *src;
    dst->name = dup_bytes(src->name, src->name_len);
    dst->user = dup_bytes(src->user ? src->user : "", src->user ? strlen(src->user) : 0);
    dst->group = dup_bytes(src->group ? src->group : "", src->group ? strlen(src->group) : 0);
    dst->link = src->link ? dup_bytes(src->link, src->link_len) : NULL;
    dst->blobs = NULL;
    if (src->nblobs) {
        dst->blobs = xmalloc(src->nblobs * PF_ID_LEN);
        memcpy(dst->blobs, src->blobs, src->nblobs * PF_ID_LEN);
    }
}

void pf_node_free(pf_node *n)
{
    free(n->name);
    free(n->user);
    free(n->group);
    free(n->link);
    free(n->blobs);
    memset(n, 0, sizeof *n);
}

void pf_tree_add(pf_tree *t, const pf_node *n)
{
    if (t->count == t->cap) {
        t->cap = t->cap ? t->cap * 2 : 16;
        t->nodes = realloc(t->nodes, t->cap * sizeof *t->nodes);
        if (!t->nodes) {
            fprintf(stderr, "permafrost: out of memory\n");
            abort();
        }
    }
    pf_node_copy(&t->nodes[t->count++], n);
}

static int name_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    if (c)
        return c;
    return alen < blen ? -1 : alen > blen;
}

static int node_cmp(const void *x, const void *y)
{
    const pf_node *a = x, *b = y;
    return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

void pf_tree_sort(pf_tree *t)
{
    /* The walker adds a directory's entries in name order: one pass instead of a sort. */
    size_t i = 1;
    while (i < t->count && node_cmp(&t->nodes[i - 1], &t->nodes[i]) < 0)
        i++;
    if (i < t->count)
        qsort(t->nodes, t->count, sizeof *t->nodes, node_cmp);
}

/* The bytes put_short_str writes for s: at most 255 of them. */
static int short_str_eq(const char *a, const char *b)
{
    size_t an = a ? strlen(a) : 0, bn = b ? strlen(b) : 0;
    an = an > 255 ? 255 : an;
    bn = bn > 255 ? 255 : bn;
    return an == bn && (!an || !memcmp(a, b, an));
}

/* Every field pf_tree_encode writes, as it writes it. */
static int node_same(const pf_node *a, const pf_node *b)
{
    return a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len) &&
           a->type == b->type && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           short_str_eq(a->user, b->user) && short_str_eq(a->group, b->group) &&
           a->mtime_ns == b->mtime_ns && a->ctime_ns == b->ctime_ns && a->size == b->size &&
           a->inode == b->inode && a->dev == b->dev && a->rdev == b->rdev && a->nlink == b->nlink &&
           a->link_len == b->link_len && (!a->link_len || !memcmp(a->link, b->link, a->link_len)) &&
           a->nblobs == b->nblobs &&
           (!a->nblobs || !memcmp(a->blobs, b->blobs, a->nblobs * PF_ID_LEN));
}

int pf_tree_same(const pf_tree *a, const pf_tree *b)
{
    if (a->count != b->count)
        return 0;
    for (size_t i = 0; i < a->count; i++)
        if (!node_same(&a->nodes[i], &b->nodes[i]))
            return 0;
    return 1;
}

const pf_node *pf_tree_find(const pf_tree *t, const char *name, size_t len)
{
    size_t lo = 0, hi = t->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = name_cmp(t->nodes[mid].name, t->nodes[mid].name_len, name, len);
        if (!c)
            return &t->nodes[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

int pf_tree_name_ok(const char *name, size_t len)
{
    if (len == 0 || len > 4096 || memchr(name, '/', len) || memchr(name, 0, len))
        return 0;
    if ((len == 1 && name[0] == '.') || (len == 2 && name[0] == '.' && name[1] == '.'))
        return 0;
    return 1;
}

struct timespec pf_ns_to_timespec(int64_t ns)
{
    int64_t sec = ns / 1000000000, rem = ns % 1000000000;
    if (rem < 0) {
        rem += 1000000000;
        sec--;
    }
    return (struct timespec){.tv_sec = (time_t)sec, .tv_nsec = (long)rem};
}

static void put_short_str(pf_buf *out, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n > 255)
        n = 255;
    pf_buf_u8(out, (uint8_t)n);
    pf_buf_append(out, s ? s : "", n);
}

/* What pf_tree_decode would refuse in a node, so that no unreadable tree is written. */
static const char *node_invalid(const pf_node *n)
{
    if (!pf_tree_name_ok(n->name, n->name_len))
        return "invalid entry name";
    if (n->type < PF_NODE_FILE || n->type > PF_NODE_BLOCKDEV || n->mode > 07777)
        return "invalid type or mode";
    if (n->link_len > 65536 || (n->link_len && !n->link))
        return "invalid symlink target";
    if ((n->type == PF_NODE_DIR && n->nblobs != 1) ||
        (n->type != PF_NODE_FILE && n->type != PF_NODE_DIR && n->nblobs) || n->nblobs > UINT32_MAX)
        return "invalid content list";
    return NULL;
}

int pf_tree_encode(const pf_tree *t, pf_buf *out, pf_err *err)
{
    pf_buf_append(out, TREE_MAGIC, 4);
    pf_buf_u32le(out, (uint32_t)t->count);
    for (size_t i = 0; i < t->count; i++) {
        const pf_node *n = &t->nodes[i];
        const char *why = node_invalid(n);
        if (why)
            return pf_err_set(err, PF_EUSAGE, "tree entry %zu: %s", i, why);
        int order = i ? node_cmp(&t->nodes[i - 1], n) : -1;
        if (!order)
            return pf_err_set(err, PF_EUSAGE, "two entries named \"%s\" in one directory", n->name);
        if (order > 0)
            return pf_err_set(err, PF_EUSAGE, "tree entries not sorted (pf_tree_sort first)");
        pf_buf_u32le(out, (uint32_t)n->name_len);
        pf_buf_append(out, n->name, n->name_len);
        pf_buf_u8(out, n->type);
        pf_buf_u32le(out, n->mode);
        pf_buf_u32le(out, n->uid);
        pf_buf_u32le(out, n->gid);
        put_short_str(out, n->user);
        put_short_str(out, n->group);
        pf_buf_u64le(out, (uint64_t)n->mtime_ns);
        pf_buf_u64le(out, (uint64_t)n->ctime_ns);
        pf_buf_u64le(out, n->size);
        pf_buf_u64le(out, n->inode);
        pf_buf_u64le(out, n->dev);
        pf_buf_u64le(out, n->rdev);
        pf_buf_u32le(out, n->nlink);
        pf_buf_u32le(out, (uint32_t)n->link_len);
        pf_buf_append(out, n->link ? n->link : "", n->link_len);
        pf_buf_u32le(out, (uint32_t)n->nblobs);
        pf_buf_append(out, n->blobs, n->nblobs * PF_ID_LEN);
    }
    return 0;
}

static int get_str(pf_reader *r, size_t len, char **out)
{
    const uint8_t *p;
    if (pf_reader_bytes(r, len, &p))
        return -1;
    *out = dup_bytes((const char *)p, len);
    return 0;
}

static int decode_node(pf_reader *r, pf_node *n)
{
    uint32_t name_len, link_len, nblobs;
    uint8_t ulen, glen;
    uint64_t mtime, ctime;
    if (pf_reader_u32le(r, &name_len) || name_len > 4096 || get_str(r, name_len, &n->name))
        return -1;
    n->name_len = name_len;
    if (!pf_tree_name_ok(n->name, name_len))
        return -1;
    if (pf_reader_u8(r, &n->type) || n->type < PF_NODE_FILE || n->type > PF_NODE_BLOCKDEV ||
        pf_reader_u32le(r, &n->mode) || n->mode > 07777 || pf_reader_u32le(r, &n->uid) ||
        pf_reader_u32le(r, &n->gid) || pf_reader_u8(r, &ulen) || get_str(r, ulen, &n->user) ||
        pf_reader_u8(r, &glen) || get_str(r, glen, &n->group) || pf_reader_u64le(r, &mtime) ||
        pf_reader_u64le(r, &ctime) || pf_reader_u64le(r, &n->size) ||
        pf_reader_u64le(r, &n->inode) || pf_reader_u64le(r, &n->dev) ||
        pf_reader_u64le(r, &n->rdev) || pf_reader_u32le(r, &n->nlink) ||
        pf_reader_u32le(r, &link_len) || link_len > 65536 || get_str(r, link_len, &n->link) ||
        pf_reader_u32le(r, &nblobs) || (uint64_t)nblobs * PF_ID_LEN > pf_reader_left(r))
        return -1;
    n->mtime_ns = (int64_t)mtime;
    n->ctime_ns = (int64_t)ctime;
    n->link_len = link_len;
    n->nblobs = nblobs;
    if ((n->type == PF_NODE_DIR && nblobs != 1) ||
        (n->type != PF_NODE_FILE && n->type != PF_NODE_DIR && nblobs))
        return -1;
    const uint8_t *ids;
    if (pf_reader_bytes(r, (size_t)nblobs * PF_ID_LEN, &ids))
        return -1;
    if (nblobs) {
        n->blobs = xmalloc((size_t)nblobs * PF_ID_LEN);
        memcpy(n->blobs, ids, (size_t)nblobs * PF_ID_LEN);
    }
    return 0;
}

int pf_tree_decode(const uint8_t *p, size_t n, pf_tree *t, pf_err *err)
{
    memset(t, 0, sizeof *t);
    pf_reader r;
    pf_reader_init(&r, p, n);
    const uint8_t *magic;
    uint32_t count;
    /* The smallest encoded node is well over 64 bytes: bound count before allocating. */
    if (pf_reader_bytes(&r, 4, &magic) || memcmp(magic, TREE_MAGIC, 4) ||
        pf_reader_u32le(&r, &count) || (uint64_t)count * 64 > pf_reader_left(&r))
        goto bad;
    t->nodes = calloc(count ? count : 1, sizeof *t->nodes);
    if (!t->nodes)
        goto bad;
    t->cap = count;
    for (uint32_t i = 0; i < count; i++) {
        t->count = i + 1;
        if (decode_node(&r, &t->nodes[i]))
            goto bad;
        if (i && node_cmp(&t->nodes[i - 1], &t->nodes[i]) >= 0)
            goto bad;
    }
    if (pf_reader_left(&r))
        goto bad;
    return 0;
bad:
    pf_tree_free(t);
    return pf_err_set(err, PF_ECORRUPT, "tree malformed");
}

void pf_tree_free(pf_tree *t)
{
    for (size_t i = 0; i < t->count; i++)
        pf_node_free(&t->nodes[i]);
    free(t->nodes);
    memset(t, 0, sizeof *t);
}
