/* libFuzzer: tree decoding. Whatever decodes must hold only valid, sorted, unique names,
 * must re-encode, and that encoding must decode to the same tree. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/tree.h"

static void check_tree(const pf_tree *t)
{
    for (size_t i = 0; i < t->count; i++) {
        const pf_node *n = &t->nodes[i];
        if (!pf_tree_name_ok(n->name, n->name_len) || n->name[n->name_len] != 0)
            abort();
        if (n->type < PF_NODE_FILE || n->type > PF_NODE_BLOCKDEV || n->mode > 07777)
            abort();
        if ((n->type == PF_NODE_DIR && n->nblobs != 1) ||
            (n->type != PF_NODE_FILE && n->type != PF_NODE_DIR && n->nblobs))
            abort();
        if (i) {
            const pf_node *p = &t->nodes[i - 1];
            size_t m = p->name_len < n->name_len ? p->name_len : n->name_len;
            int c = memcmp(p->name, n->name, m);
            if (c > 0 || (c == 0 && p->name_len >= n->name_len))
                abort();
        }
        if (pf_tree_find(t, n->name, n->name_len) != n)
            abort();
    }
}

static int same_node(const pf_node *a, const pf_node *b)
{
    return a->name_len == b->name_len && !memcmp(a->name, b->name, a->name_len) &&
           a->type == b->type && a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           !strcmp(a->user, b->user) && !strcmp(a->group, b->group) && a->mtime_ns == b->mtime_ns &&
           a->ctime_ns == b->ctime_ns && a->size == b->size && a->inode == b->inode &&
           a->dev == b->dev && a->rdev == b->rdev && a->nlink == b->nlink &&
           a->link_len == b->link_len && !memcmp(a->link, b->link, a->link_len) &&
           a->nblobs == b->nblobs &&
           (!a->nblobs || !memcmp(a->blobs, b->blobs, a->nblobs * PF_ID_LEN));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_tree t, back;
    pf_err err = {0};
    if (pf_tree_decode(data, size, &t, &err))
        return 0;
    check_tree(&t);
    pf_buf b = PF_BUF_INIT;
    if (pf_tree_encode(&t, &b, &err))
        abort(); /* everything decoded can be written back */
    if (pf_tree_decode(b.data, b.len, &back, &err) || back.count != t.count)
        abort();
    /* User and group names are C strings once decoded (a NUL inside cuts them). */
    for (size_t i = 0; i < t.count; i++)
        if (!same_node(&t.nodes[i], &back.nodes[i]))
            abort();
    pf_buf b2 = PF_BUF_INIT;
    if (pf_tree_encode(&back, &b2, &err) || b2.len != b.len || memcmp(b2.data, b.data, b.len))
        abort();
    pf_buf_free(&b2);
    pf_buf_free(&b);
    pf_tree_free(&back);
    pf_tree_free(&t);
    return 0;
}
