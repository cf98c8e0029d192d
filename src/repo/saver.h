/* The saver turns blobs into packs: the caller hashes (ids are needed at once, in order), or
 * hands whole blobs to pf_saver_append for the workers to hash, and worker threads compress,
 * encrypt, fill packs and upload them. Memory is bounded by
 * the queue depth and one open pack per worker. Packs become visible in the index only
 * after their upload finished; the index file is written by pf_saver_finish. */
#ifndef PF_SAVER_H
#define PF_SAVER_H

#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_saver pf_saver;

typedef struct pf_saver_stats {
    uint64_t blobs_new, bytes_new;   /* blobs stored by this saver, plaintext bytes */
    uint64_t blobs_seen, bytes_seen; /* every blob handed in */
    uint64_t bytes_stored;           /* sealed bytes written to packs */
    uint64_t packs;
} pf_saver_stats;

/* workers <= 0 picks a default for the machine. */
pf_saver *pf_saver_new(pf_repo *r, int workers, pf_err *err);
/* This saver's zstd level and target pack size instead of the repository's (WAL's own,
 * docs/DECISIONS.md). Before the first blob is handed in. */
void pf_saver_set_packing(pf_saver *s, int zstd_level, uint32_t pack_size);
/* Computes the id (written to id_out) and stores the blob unless the repository or this
 * saver already has it. The data is copied when needed. */
int pf_saver_save(pf_saver *s, uint8_t type, const void *p, size_t n, uint8_t id_out[PF_ID_LEN],
                  pf_err *err);
/* pf_saver_save for a blob whose id the caller computed already (pf_blob_id): id_out holds
 * it. */
int pf_saver_save_hashed(pf_saver *s, uint8_t type, const void *p, size_t n,
                         uint8_t id_out[PF_ID_LEN], pf_err *err);
/* The blob list of one stream whose blobs are hashed on the workers (pf_saver_append): the
 * caller's thread only chunks, and hashing, compression and encryption of earlier chunks
 * run meanwhile on the workers. ids[i] is the id of the i-th blob appended, valid once
 * pf_saver_list_wait returned 0. Zero it to start; free ids when done. */
typedef struct pf_blob_list {
    uint8_t (*ids)[PF_ID_LEN];
    size_t n, cap;
    size_t pending; /* appended, not yet hashed (under the saver's lock) */
} pf_blob_list;
/* An empty buffer for the next blob, from the saver's pool of blob buffers (pf_buf_release
 * or pf_saver_append gives it back). */
pf_buf pf_saver_buffer(pf_saver *s);
/* Appends a data blob to l and hands *data over (it is left empty): a worker computes its
 * id into l, then stores it unless the repository or this saver already has it. Waits
 * while the queue is full. On error (the saver failed) *data is freed and l may lack ids. */
int pf_saver_append(pf_saver *s, pf_blob_list *l, pf_buf *data, pf_err *err);
/* Waits until every blob appended to l has its id in l->ids: 0, or the saver's first error.
 * Returns only once no worker will write to l again, so l may be freed afterwards even after
 * an error. */
int pf_saver_list_wait(pf_saver *s, pf_blob_list *l, pf_err *err);
/* Makes the saver store every blob handed in without consulting or filling the
 * repository's in-memory index (the caller dedups, as prune does), so memory does not
 * grow with the blobs saved. Call before the first save. */
void pf_saver_set_untracked(pf_saver *s);
/* Adds packs found by pf_repo_index_orphan_packs to the index file this saver writes.
 * Takes ownership of f's packs. */
void pf_saver_adopt(pf_saver *s, pf_index_file *f);
/* Adopts the packs that loading the repository's index re-read from their headers because
 * only a damaged index file listed them (pf_repo.recovered), so that the index file this
 * saver writes lists them again. A backup calls it once, before its first save; commands
 * then need not know where the repository keeps them. */
void pf_saver_adopt_recovered(pf_saver *s);
/* Waits for every blob to be uploaded, then writes the index file. After a failure,
 * returns the first error. The saver can not be used afterwards but must be freed. */
int pf_saver_finish(pf_saver *s, pf_err *err);
void pf_saver_stats_get(pf_saver *s, pf_saver_stats *out);
/* Stops the workers (abandoning unfinished packs) and frees everything. */
void pf_saver_free(pf_saver *s);

#endif
