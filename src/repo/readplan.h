/* Read planning: which ranged reads fetch a set of blobs. A restore needs many blobs, most
 * of them lying side by side in a few packs; one request per blob costs a remote store a
 * round trip and the server's per-request work each (S3 bills every GET). The planner
 * sorts the blobs by pack and offset and merges neighbours into runs, each fetched with
 * one ranged read.
 *
 * Pure: no I/O, no locking, no allocation.
 *
 * A run is a byte range [offset, offset + length) of one pack that covers its parts whole.
 * Two parts share a run when the bytes between them (the gap, read and thrown away) are at
 * most max_gap, and the run would not grow beyond max_run bytes; a single part larger
 * than max_run is a run of its own. Parts that overlap (the same blob needed twice) always
 * share a run when the run has room. The caller reads each run, then opens and verifies
 * each part inside it exactly as it would a blob read on its own. */
#ifndef PF_REPO_READPLAN_H
#define PF_REPO_READPLAN_H

#include <stddef.h>
#include <stdint.h>

typedef struct pf_read_part {
    uint32_t pack;           /* which pack (a position in the index's pack table) */
    uint32_t offset, length; /* the sealed blob's bytes in it */
    size_t tag;              /* the caller's: what the part is for */
} pf_read_part;

typedef struct pf_read_run {
    uint32_t pack;
    uint64_t offset, length; /* the one read */
    size_t first, count;     /* its parts: parts[first .. first + count) after planning */
} pf_read_run;

/* Sorts parts (by pack, then offset) and groups them into runs written to runs, which has
 * room for n; returns the number of runs. Parts of a run are consecutive in parts. */
size_t pf_read_plan(pf_read_part *parts, size_t n, uint64_t max_gap, uint64_t max_run,
                    pf_read_run *runs);

#endif
