#include "repo/find.h"

#include <fnmatch.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "repo/idset.h"

#define FIND_MAX_DEPTH 4096
#define FIND_MAX_PATH 65536

struct pf_finder {
    pf_repo *r;
    char *pattern;
    bool whole_path;
    /* Subtrees that hold no match. Only with a name pattern: a path pattern's match depends
     * on where the subtree is, not only on what it holds. */
    pf_idset barren;
};

pf_finder *pf_finder_new(pf_repo *r, const char *pattern)
{
    pf_finder *f = pf_xcalloc(1, sizeof *f);
    f->r = r;
    f->pattern = pf_xstrdup(pattern);
    f->whole_path = strchr(pattern, '/') != NULL;
    pf_idset_init(&f->barren, 0);
    return f;
}

void pf_finder_free(pf_finder *f)
{
    if (!f)
        return;
    free(f->pattern);
    pf_idset_free(&f->barren);
    free(f);
}

typedef struct search {
    pf_finder *f;
    pf_find_fn fn;
    void *ctx;
    pf_err *err;
    char *path;
    size_t len, cap;
} search;

/* Returns -1 on error, the callback's non-zero to stop, else 0; *found counts matches. */
static int search_tree(search *s, const uint8_t id[PF_ID_LEN], int depth, size_t *found)
{
    if (!s->f->whole_path && pf_idset_has(&s->f->barren, id))
        return 0;
    if (depth > FIND_MAX_DEPTH)
        return pf_err_set(s->err, PF_ECORRUPT, "directories nested deeper than %d", FIND_MAX_DEPTH);
    pf_tree t = {0};
    if (pf_repo_load_tree(s->f->r, id, &t, s->err) < 0)
        return -1;
    size_t mine = 0;
    int rc = 0;
    for (size_t i = 0; i < t.count && rc == 0; i++) {
        const pf_node *n = &t.nodes[i];
        size_t old = s->len, need = s->len + 1 + n->name_len + 1;
        if (need > FIND_MAX_PATH) {
            rc = pf_err_set(s->err, PF_ECORRUPT, "a path longer than %d bytes", FIND_MAX_PATH);
            break;
        }
        if (need > s->cap) {
            s->cap = need * 2;
            s->path = pf_xrealloc(s->path, s->cap);
        }
        if (s->len)
            s->path[s->len++] = '/';
        memcpy(s->path + s->len, n->name, n->name_len);
        s->len += n->name_len;
        s->path[s->len] = '\0';
        const char *subject = s->f->whole_path ? s->path : n->name;
        if (fnmatch(s->f->pattern, subject, 0) == 0) {
            mine++;
            rc = s->fn(s->path, n, s->ctx, s->err);
        }
        if (rc == 0 && n->type == PF_NODE_DIR && n->nblobs == 1)
            rc = search_tree(s, n->blobs[0], depth + 1, &mine);
        s->len = old;
        s->path[old] = '\0';
    }
    pf_tree_free(&t);
    if (rc == 0 && mine == 0 && !s->f->whole_path)
        pf_idset_add(&s->f->barren, id);
    *found += mine;
    return rc;
}

int pf_finder_search(pf_finder *f, const uint8_t root[PF_ID_LEN], pf_find_fn fn, void *ctx,
                     pf_err *err)
{
    search s = {.f = f, .fn = fn, .ctx = ctx, .err = err, .cap = 256};
    s.path = pf_xmalloc(s.cap);
    s.path[0] = '\0';
    size_t found = 0;
    int rc = search_tree(&s, root, 0, &found);
    free(s.path);
    return rc;
}
