/* Which snapshots hold a path matching a pattern: `permafrost find`. A pattern without '/'
 * matches entry names (fnmatch(3): "*.env", "avatar?.png"); with '/' it matches the whole
 * path inside the snapshot (media/accounts/ then anything). A subtree known to hold no
 * match (from an
 * earlier snapshot) is not read again, so searching years of nightly snapshots of a server
 * reads each distinct directory once. */
#ifndef PF_FIND_H
#define PF_FIND_H

#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"
#include "repo/tree.h"

/* Called for each match with the in-snapshot path and its node; non-zero stops the search
 * and is returned (with err as the callback set it). */
typedef int (*pf_find_fn)(const char *path, const pf_node *n, void *ctx, pf_err *err);

typedef struct pf_finder pf_finder;

/* A finder for pattern, sharing what it learns across the snapshots it searches. */
pf_finder *pf_finder_new(pf_repo *r, const char *pattern);
/* Searches the tree root (a snapshot's), calling fn for every match in path order. */
int pf_finder_search(pf_finder *f, const uint8_t root[PF_ID_LEN], pf_find_fn fn, void *ctx,
                     pf_err *err);
void pf_finder_free(pf_finder *f);

#endif
