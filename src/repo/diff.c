#include "repo/diff.h"

#include <stdlib.h>
#include <string.h>

/* As deep as the restorer goes: a tree that nests deeper cannot be restored either. */
#define DIFF_MAX_DEPTH 4096
#define DIFF_MAX_PATH 65536

typedef struct walk {
    pf_repo *r;
    pf_diff_fn fn;
    void *ctx;
    pf_err *err;
    char *path; /* the current directory's path, grown in place */
    size_t len, cap;
} walk;

static int tree_of(walk *w, const pf_node *n, pf_tree *t)
{
    memset(t, 0, sizeof *t);
    if (!n || n->type != PF_NODE_DIR)
        return 0;
    if (n->nblobs != 1)
        return pf_err_set(w->err, PF_ECORRUPT, "%s: a directory entry without its tree",
                          w->len ? w->path : "/");
    return pf_repo_load_tree(w->r, n->blobs[0], t, w->err);
}

/* Appends "/name" (or "name" at the top) to the path; returns the old length to restore. */
static int push(walk *w, const pf_node *n, size_t *old)
{
    size_t need = w->len + 1 + n->name_len + 1;
    if (need > DIFF_MAX_PATH)
        return pf_err_set(w->err, PF_ECORRUPT, "%.*s...: path longer than %d bytes", 200, w->path,
                          DIFF_MAX_PATH);
    if (need > w->cap) {
        w->cap = need * 2;
        w->path = realloc(w->path, w->cap);
        if (!w->path)
            abort();
    }
    *old = w->len;
    if (w->len)
        w->path[w->len++] = '/';
    memcpy(w->path + w->len, n->name, n->name_len);
    w->len += n->name_len;
    w->path[w->len] = '\0';
    return 0;
}

static void pop(walk *w, size_t old)
{
    w->len = old;
    w->path[old] = '\0';
}

static int same_blobs(const pf_node *a, const pf_node *b)
{
    return a->nblobs == b->nblobs &&
           (a->nblobs == 0 || memcmp(a->blobs, b->blobs, a->nblobs * sizeof a->blobs[0]) == 0);
}

static int same_meta(const pf_node *a, const pf_node *b)
{
    return a->mode == b->mode && a->uid == b->uid && a->gid == b->gid &&
           a->mtime_ns == b->mtime_ns && a->link_len == b->link_len &&
           (a->link_len == 0 || memcmp(a->link, b->link, a->link_len) == 0) && a->rdev == b->rdev;
}

static int diff_dirs(walk *w, const pf_tree *ta, const pf_tree *tb, int depth);

/* One name present on at least one side: report it, then descend where a directory is. */
static int diff_entry(walk *w, const pf_node *a, const pf_node *b, int depth)
{
    size_t old = 0;
    if (push(w, a ? a : b, &old) < 0)
        return -1;
    int rc = 0;
    pf_tree ta = {0}, tb = {0};
    if (a && b && a->type == b->type && a->type == PF_NODE_DIR && same_blobs(a, b)) {
        if (!same_meta(a, b))
            rc = w->fn(PF_DIFF_META, w->path, a, b, w->ctx, w->err);
        goto out; /* the same subtree: nothing below differs */
    }
    if (!a)
        rc = w->fn(PF_DIFF_ADDED, w->path, NULL, b, w->ctx, w->err);
    else if (!b)
        rc = w->fn(PF_DIFF_REMOVED, w->path, a, NULL, w->ctx, w->err);
    else if (a->type != b->type)
        rc = w->fn(PF_DIFF_TYPE, w->path, a, b, w->ctx, w->err);
    else if (a->type == PF_NODE_FILE && (!same_blobs(a, b) || a->size != b->size))
        rc = w->fn(PF_DIFF_MODIFIED, w->path, a, b, w->ctx, w->err);
    else if (!same_meta(a, b))
        rc = w->fn(PF_DIFF_META, w->path, a, b, w->ctx, w->err);
    if (rc)
        goto out;
    /* A directory on one side only (or replacing another type): everything below it is
     * added or removed. A directory on both sides with other trees: compare them. */
    const pf_node *da = a && a->type == PF_NODE_DIR ? a : NULL;
    const pf_node *db = b && b->type == PF_NODE_DIR ? b : NULL;
    if (!da && !db)
        goto out;
    if (depth >= DIFF_MAX_DEPTH) {
        rc = pf_err_set(w->err, PF_ECORRUPT, "%s: directories nested deeper than %d", w->path,
                        DIFF_MAX_DEPTH);
        goto out;
    }
    if (tree_of(w, da, &ta) < 0 || tree_of(w, db, &tb) < 0) {
        rc = -1;
        goto out;
    }
    rc = diff_dirs(w, &ta, &tb, depth + 1);
out:
    pf_tree_free(&ta);
    pf_tree_free(&tb);
    pop(w, old);
    return rc;
}

static int name_cmp(const pf_node *a, const pf_node *b)
{
    size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
    int c = memcmp(a->name, b->name, n);
    if (c)
        return c;
    return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

/* Both trees are sorted by name (the decoder enforces it): one merge pass. */
static int diff_dirs(walk *w, const pf_tree *ta, const pf_tree *tb, int depth)
{
    size_t i = 0, j = 0;
    while (i < ta->count || j < tb->count) {
        const pf_node *a = i < ta->count ? &ta->nodes[i] : NULL;
        const pf_node *b = j < tb->count ? &tb->nodes[j] : NULL;
        int c = !a ? 1 : !b ? -1 : name_cmp(a, b);
        int rc = diff_entry(w, c <= 0 ? a : NULL, c >= 0 ? b : NULL, depth);
        if (rc)
            return rc;
        i += c <= 0;
        j += c >= 0;
    }
    return 0;
}

int pf_diff_trees(pf_repo *r, const uint8_t a[PF_ID_LEN], const uint8_t b[PF_ID_LEN], pf_diff_fn fn,
                  void *ctx, pf_err *err)
{
    if (memcmp(a, b, PF_ID_LEN) == 0)
        return 0;
    walk w = {.r = r, .fn = fn, .ctx = ctx, .err = err, .cap = 256};
    w.path = malloc(w.cap);
    if (!w.path)
        abort();
    w.path[0] = '\0';
    pf_tree ta = {0}, tb = {0};
    int rc = -1;
    if (pf_repo_load_tree(r, a, &ta, err) == 0 && pf_repo_load_tree(r, b, &tb, err) == 0)
        rc = diff_dirs(&w, &ta, &tb, 0);
    pf_tree_free(&ta);
    pf_tree_free(&tb);
    free(w.path);
    return rc;
}
