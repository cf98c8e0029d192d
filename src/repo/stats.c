#include "repo/stats.h"

#include <stdbool.h>
#include <string.h>

#include "repo/idset.h"
#include "repo/index.h"
#include "repo/tree.h"

/* As deep as the restorer goes. */
#define STATS_MAX_DEPTH 4096

typedef struct walk {
    pf_repo *r;
    pf_stats *st;
    pf_idset blobs; /* every blob counted */
    /* Each subtree's own counts (files, dirs, others, restore bytes: 4 x u64), so a subtree
     * met again (in another snapshot, or twice in one) adds its sizes without being read. */
    pf_idset trees;
    pf_err *err;
} walk;

typedef struct counts {
    uint64_t files, dirs, others, bytes;
} counts;

static void count_blob(walk *w, const uint8_t id[PF_ID_LEN], pf_stats_part *part, bool tree)
{
    if (!pf_idset_add(&w->blobs, id))
        return;
    pthread_mutex_lock(&w->r->mu);
    pf_blob_loc *loc = pf_index_find(w->r->index, id);
    pf_blob_loc l = loc ? *loc : (pf_blob_loc){0};
    pthread_mutex_unlock(&w->r->mu);
    if (!loc) {
        w->st->missing_blobs++;
        return;
    }
    pf_stats_part *parts[2] = {&w->st->total, part};
    for (int i = 0; i < 2; i++) {
        pf_stats_part *p = parts[i];
        if (!p)
            continue;
        if (tree) {
            p->trees++;
            p->tree_stored_bytes += l.length;
        } else {
            p->blobs++;
            p->raw_bytes += l.raw_length;
            p->stored_bytes += l.length;
        }
    }
}

static void add_counts(pf_stats_part *p, const counts *c)
{
    p->files += c->files;
    p->dirs += c->dirs;
    p->others += c->others;
    p->restore_bytes += c->bytes;
}

/* Counts the tree id into *out (its entries and everything below them). */
static int walk_tree(walk *w, const uint8_t id[PF_ID_LEN], pf_stats_part *part, int depth,
                     counts *out)
{
    const counts *known = pf_idset_get(&w->trees, id);
    if (known) {
        *out = *known;
        return 0;
    }
    if (depth > STATS_MAX_DEPTH)
        return pf_err_set(w->err, PF_ECORRUPT, "directories nested deeper than %d",
                          STATS_MAX_DEPTH);
    count_blob(w, id, part, true);
    pf_tree t = {0};
    if (pf_repo_load_tree(w->r, id, &t, w->err) < 0)
        return -1;
    counts c = {0};
    int rc = 0;
    for (size_t i = 0; i < t.count && rc == 0; i++) {
        const pf_node *n = &t.nodes[i];
        if (n->type == PF_NODE_DIR) {
            c.dirs++;
            if (n->nblobs == 1) {
                counts sub;
                rc = walk_tree(w, n->blobs[0], part, depth + 1, &sub);
                c.files += sub.files;
                c.dirs += sub.dirs;
                c.others += sub.others;
                c.bytes += sub.bytes;
            }
            continue;
        }
        if (n->type == PF_NODE_FILE) {
            c.files++;
            c.bytes += n->size;
            for (size_t b = 0; b < n->nblobs; b++)
                count_blob(w, n->blobs[b], part, false);
        } else {
            c.others++;
        }
    }
    pf_tree_free(&t);
    if (rc == 0) {
        pf_idset_put(&w->trees, id, &c);
        *out = c;
    }
    return rc;
}

static pf_stats_part *part_named(pf_stats *st, const char *name, size_t len)
{
    for (size_t i = 0; i < st->nparts; i++)
        if (strlen(st->part_names[i]) == len && !memcmp(st->part_names[i], name, len))
            return &st->parts[i];
    if (st->nparts == PF_STATS_PARTS_MAX || len >= sizeof st->part_names[0])
        return NULL;
    memcpy(st->part_names[st->nparts], name, len);
    st->part_names[st->nparts][len] = '\0';
    return &st->parts[st->nparts++];
}

/* A whole-server snapshot's root holds exactly its component folders. */
static bool is_server_root(const pf_tree *t)
{
    static const char *const names[] = {"media", "postgres", "redis", "secrets"};
    if (t->count == 0)
        return false;
    for (size_t i = 0; i < t->count; i++) {
        bool known = false;
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            known |= !strcmp(t->nodes[i].name, names[k]);
        if (!known || t->nodes[i].type != PF_NODE_DIR)
            return false;
    }
    return true;
}

int pf_stats_collect(pf_repo *r, const uint8_t (*roots)[PF_ID_LEN], size_t n, pf_stats *st,
                     pf_err *err)
{
    walk w = {.r = r, .st = st, .err = err};
    pf_idset_init(&w.blobs, 0);
    pf_idset_init(&w.trees, sizeof(counts));
    int rc = 0;
    for (size_t i = 0; i < n && rc == 0; i++) {
        st->snapshots++;
        pf_tree top = {0};
        if (pf_repo_load_tree(r, roots[i], &top, err) < 0) {
            rc = -1;
            break;
        }
        if (!is_server_root(&top)) {
            counts c;
            rc = walk_tree(&w, roots[i], NULL, 0, &c);
            if (rc == 0)
                add_counts(&st->total, &c);
        } else {
            count_blob(&w, roots[i], NULL, true);
            st->total.dirs += top.count;
            for (size_t k = 0; k < top.count && rc == 0; k++) {
                const pf_node *d = &top.nodes[k];
                pf_stats_part *p = part_named(st, d->name, d->name_len);
                counts c = {0};
                if (d->nblobs == 1)
                    rc = walk_tree(&w, d->blobs[0], p, 1, &c);
                if (rc == 0) {
                    add_counts(&st->total, &c);
                    if (p) {
                        add_counts(p, &c);
                        p->dirs++;
                    }
                }
            }
        }
        pf_tree_free(&top);
    }
    pf_idset_free(&w.blobs);
    pf_idset_free(&w.trees);
    return rc;
}
