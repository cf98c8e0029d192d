/* Prune: frees the space of blobs no snapshot references.
 *
 * Packs with no used blob are deleted; packs whose unused share exceeds max_unused
 * (percent of the pack) are rewritten (their used blobs saved into new packs); the rest
 * stay. Crash safety comes from order: new packs, then new index files covering every
 * pack that stays, are durable before any old index file and then any old pack is
 * removed. A kill at any moment leaves every kept snapshot restorable; packs left behind
 * unindexed are removed by the next prune.
 *
 * Temporary objects a killed writer left ("<key>.tmp-<random>", which no list shows) are
 * removed first when they were last written longer ago than the longest lease of any live
 * lock (see pf_lock_longest_lease): a live writer refreshes its lock every third of its
 * lease and writes its temporary object as it goes, so one untouched for a whole lease
 * has no live writer.
 *
 * Memory: one set of used blob ids (32 bytes each), an index of tree blobs only, and one
 * index file at a time. The caller holds an exclusive lock. */
#ifndef PF_PRUNE_H
#define PF_PRUNE_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_prune_opts {
    double max_unused; /* percent; default 10 */
    bool dry_run;
} pf_prune_opts;

/* Reads max_unused as the operator writes it (--max-unused, max_unused in the config
 * file): a number from 0 to 100, optionally followed by '%'. -1 for anything else (empty,
 * trailing text, NaN, out of range), leaving *out alone. */
int pf_prune_parse_max_unused(const char *v, double *out);

/* Sizes are of the packs under data/. bytes_freed is what the repository really lost,
 * bytes_before - bytes_after: a rewritten pack frees only its unused share, because its
 * used blobs are copied (bytes_copied) into new packs. A dry run estimates bytes_after
 * and bytes_copied from the index. */
typedef struct pf_prune_stats {
    uint64_t packs_total, packs_deleted, packs_rewritten, packs_kept, packs_unindexed;
    uint64_t packs_written; /* new packs holding the copies */
    uint64_t blobs_used, blobs_unused, blobs_repacked;
    uint64_t bytes_before, bytes_after, bytes_freed;
    uint64_t bytes_removed;  /* size of the packs deleted (dropped, rewritten, unindexed) */
    uint64_t bytes_copied;   /* sealed bytes written into new packs */
    uint64_t bytes_repacked; /* plaintext bytes of the blobs copied */
    uint64_t index_files_replaced;
    uint64_t tmp_removed, tmp_bytes; /* temporary objects of killed writers */
} pf_prune_stats;

int pf_prune(pf_repo *r, const pf_prune_opts *o, pf_prune_stats *st, pf_err *err);

#endif
