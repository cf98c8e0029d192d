/* How big snapshots are, and what deduplication and compression save: the numbers of
 * `permafrost stats`. Walks trees once each (a subtree shared by snapshots, or met twice, is
 * read once), and counts every blob once. */
#ifndef PF_STATS_H
#define PF_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_stats_part {
    uint64_t files, dirs, others;
    uint64_t restore_bytes; /* what a restore writes: the sum of file sizes */
    uint64_t blobs;         /* distinct data blobs first met in this part */
    uint64_t raw_bytes;     /* their size before compression */
    uint64_t stored_bytes;  /* their size in packs (compressed, encrypted) */
    uint64_t trees, tree_stored_bytes; /* distinct trees (the metadata) and their stored size */
} pf_stats_part;

#define PF_STATS_PARTS_MAX 8

typedef struct pf_stats {
    size_t snapshots;
    pf_stats_part total;
    /* Whole-server snapshots: one part per top-level folder (postgres, redis, secrets,
     * media), in the order met. A blob shared by two parts counts in the first. */
    char part_names[PF_STATS_PARTS_MAX][32];
    pf_stats_part parts[PF_STATS_PARTS_MAX];
    size_t nparts;
    uint64_t missing_blobs; /* referenced but not in the index (check names them) */
} pf_stats;

/* Adds the snapshot trees roots[0..n) to st (zero it first). The index must be loaded. A
 * tree that does not load fails (its error); a blob missing from the index is counted in
 * missing_blobs and the walk goes on. */
int pf_stats_collect(pf_repo *r, const uint8_t (*roots)[PF_ID_LEN], size_t n, pf_stats *st,
                     pf_err *err);

#endif
