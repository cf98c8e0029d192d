/* Content-defined chunking: FastCDC (gear rolling hash, normalized chunking, level 2).
 * The gear table is derived from the repository's master key, so chunk boundaries do
 * not fingerprint known files across repositories. */
#ifndef PF_CHUNKER_H
#define PF_CHUNKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

typedef struct pf_chunker {
    uint64_t gear[256];
    size_t min, avg, max;
    uint64_t mask_small; /* used before avg: harder to match (avg_bits + 2 bits) */
    uint64_t mask_large; /* used after avg: easier to match (avg_bits - 2 bits) */
} pf_chunker;

/* avg must be a power of two, min < avg < max. seed is 32 bytes of key material
 * (the gear table is HKDF(seed, "permafrost chunker gear")). */
int pf_chunker_init(pf_chunker *c, const uint8_t seed[32], size_t min, size_t avg, size_t max,
                    pf_err *err);

/* Length of the next chunk at the start of p[0..n), or 0 when more input is needed to
 * decide (only possible when !eof and n < max). With eof, never returns 0 for n > 0. */
size_t pf_chunker_cut(const pf_chunker *c, const uint8_t *p, size_t n, bool eof);

/* pf_chunker_cut for a chunk that grows at its end, 64 KiB at a time: st remembers how far
 * p was scanned and the rolling hash there, so no byte is looked at twice however the
 * input arrives. Zero st for each new chunk (p at the chunk's first byte). Returns what
 * pf_chunker_cut(c, p, n, eof) returns for the same bytes. */
typedef struct pf_chunk_scan {
    size_t pos; /* bytes of the chunk scanned so far (0: none) */
    uint64_t h; /* the rolling hash at pos */
} pf_chunk_scan;
size_t pf_chunker_next(const pf_chunker *c, pf_chunk_scan *st, const uint8_t *p, size_t n,
                       bool eof);

#endif
