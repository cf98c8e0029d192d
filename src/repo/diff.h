/* What changed between two snapshot trees: every path added, removed or changed, in path
 * order. Subtrees with the same id are equal and are not read, so a diff of two snapshots
 * of a mostly unchanged server costs the changed directories only. */
#ifndef PF_DIFF_H
#define PF_DIFF_H

#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"
#include "repo/tree.h"

typedef enum pf_diff_kind {
    PF_DIFF_ADDED = '+',    /* only in the second tree (b is set, a is NULL) */
    PF_DIFF_REMOVED = '-',  /* only in the first tree (a is set, b is NULL) */
    PF_DIFF_MODIFIED = 'M', /* a file whose content differs */
    PF_DIFF_TYPE = 'T',     /* the same name, another type (a file became a directory...) */
    PF_DIFF_META = 'U',     /* same content, other mode, owner, time or link target */
} pf_diff_kind;

/* Called once per difference with the path relative to the roots ("media/a/b.png") and the
 * node on each side. A non-zero return stops the walk, and pf_diff_trees returns it (with
 * err as the callback filled it). Everything below an added or removed directory is
 * reported too, each entry after its directory. */
typedef int (*pf_diff_fn)(pf_diff_kind kind, const char *path, const pf_node *a, const pf_node *b,
                          void *ctx, pf_err *err);

/* Compares the trees rooted at a and b (ids of tree blobs). Fails (PF_ECORRUPT) on a tree
 * that does not decode or nests deeper than the restorer accepts. */
int pf_diff_trees(pf_repo *r, const uint8_t a[PF_ID_LEN], const uint8_t b[PF_ID_LEN], pf_diff_fn fn,
                  void *ctx, pf_err *err);

#endif
