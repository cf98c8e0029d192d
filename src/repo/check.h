/* Repository verification. Structure: config and key (by opening), every index file,
 * every pack's header against the index, every snapshot's trees and the presence of
 * every blob they name, and the WAL archive (its objects, their blobs, the continuity of
 * the segment chain that physical base backups need: repo/wal.h). With read_data, every
 * selected pack is read whole, its name checked against its hash, and every blob in it
 * decrypted and authenticated. Each problem is reported naming the object; checking goes
 * on after a problem. */
#ifndef PF_CHECK_H
#define PF_CHECK_H

#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_check_opts {
    int read_data;
    /* Subset of packs to read with read_data: slice k of m (1 <= k <= m), or percent
     * (0 < percent <= 100, a random choice). Both zero: all packs. */
    uint32_t slice_k, slice_m;
    double percent;
    /* Packs no index lists (left by an interrupted backup) are harmless and can be many:
     * they are summed up in one warning, each named only when this is set. */
    int name_orphans;
} pf_check_opts;

typedef struct pf_check_result {
    uint64_t errors;   /* damage found */
    uint64_t warnings; /* harmless: unindexed packs, unused blobs */
    uint64_t snapshots, trees, packs, packs_read, blobs, blobs_read, bytes_read;
    uint64_t unused_blobs, duplicate_blobs;
    uint64_t orphan_packs, orphan_blobs, orphan_bytes; /* in packs no index lists */
    /* The WAL archive (docs/FORMAT.md §16): files, gaps in the chain, the newest segment
     * and when it was pushed (the recovery point a restore can reach now). */
    uint64_t wal_files, wal_gaps;
    char wal_newest[49];
    int64_t wal_newest_ns;
} pf_check_result;

/* is_error: 1 for damage, 0 for a warning. */
typedef void (*pf_check_report_fn)(int is_error, const char *msg, void *ctx);

/* Returns 0 when the check ran (look at res->errors), -1 when it could not run. */
int pf_check(pf_repo *r, const pf_check_opts *o, pf_check_report_fn report, void *ctx,
             pf_check_result *res, pf_err *err);

#endif
