/* Copying snapshots from one repository into another (3-2-1: a local repository every
 * night and an S3 copy of it), possibly with another driver, passphrase and master key.
 *
 * Blob ids are keyed by each repository's master key, so in general a blob's id in the
 * destination is only known after reading its plaintext from the source; trees are then
 * rewritten with the new ids. Only blobs the destination lacks are uploaded. When both
 * repositories share a master key (init --copy-key-from), ids are identical and blobs the
 * destination has are not even read. A copied snapshot records its source id
 * ("copied_from" in its stats), so a snapshot is never copied twice, and an interrupted
 * copy resumes, reusing what was uploaded (the destination's orphan packs). */
#ifndef PF_REPO_COPY_H
#define PF_REPO_COPY_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/repo.h"

typedef struct pf_copy_stats {
    uint64_t blobs_copied;  /* uploaded */
    uint64_t bytes_copied;  /* their plaintext bytes */
    uint64_t blobs_present; /* the destination had them already */
} pf_copy_stats;

typedef struct pf_copier pf_copier;

/* Starts copying from src into dst. The caller holds a lock on each and has loaded both
 * indexes; orphans are dst's packs that no index lists (pf_repo_index_orphan_packs), which
 * the copy reuses and indexes: taken over (and emptied) in every case. workers as for
 * pf_saver_new. Neither repository is owned. */
pf_copier *pf_copy_new(pf_repo *src, pf_repo *dst, pf_index_file *orphans, int workers,
                       pf_err *err);

/* True when dst's snapshots (have[0..nhave)) already hold s: one of them is s itself or
 * was copied from it. */
bool pf_copy_is_there(const pf_snapshot *s, const pf_snapshot *have, size_t nhave);

/* Copies snapshot s of src: every blob it needs is durable in dst before its snapshot is
 * written, so an interruption leaves no snapshot that names missing data. new_id gets
 * the id of the snapshot written into dst. A failure reading or re-keying its data says
 * "copy of snapshot <id>"; one writing into dst is the saver's or the store's. */
int pf_copy_snapshot(pf_copier *c, const pf_snapshot *s, char new_id[PF_HEX_ID_LEN + 1],
                     pf_err *err);

/* Flushes what is still pending (0 when nothing is). */
int pf_copy_finish(pf_copier *c, pf_err *err);
pf_copy_stats pf_copy_get_stats(const pf_copier *c);
/* NULL is fine. Does not finish: what was not finished is left to the next backup or copy
 * as orphan packs. */
void pf_copy_free(pf_copier *c);

#endif
