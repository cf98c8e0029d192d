/* The WAL a point-in-time recovery needs, fetched ahead into a directory the cluster's OS
 * user owns, for a restore run as root: PostgreSQL runs restore_command as its own user,
 * which cannot read a root-only passphrase file, config or repository, so a restore_command
 * of `permafrost wal-fetch` would fail on every file and recovery would stop at the base
 * backup's end. The spool holds every file recovery may ask for, and restore_command only
 * copies out of it. */
#ifndef PF_WALSPOOL_H
#define PF_WALSPOOL_H

#include <stdint.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_wal_spool_stats {
    uint64_t files;
    uint64_t bytes;
} pf_wal_spool_stats;

/* The spool directory of data directory datadir: its sibling "<datadir>.permafrost-wal". */
void pf_wal_spool_dir(const char *datadir, char *out, size_t n);

/* Fills dir (created 0700 for uid:gid; one left by an earlier run is removed first) with
 * every timeline history file in r's archive and every segment from start_wal on
 * (any name at or after its position, on its timeline or a later one): the archived
 * segment, or the longest streamed partial padded to seg_size (pf_wal_fetch_segment).
 * Each file is written atomically, 0600, for uid:gid. The whole archive from there, even
 * for a recovery target time: when a segment was pushed bounds only when its WAL ended,
 * never when it began (archive_command may lag), so no cut-off by time is safe.
 * Refuses (PF_EIO, before fetching) when the file system lacks room for all of it. */
int pf_wal_spool_fill(pf_repo *r, const char *dir, const char *start_wal, uint64_t seg_size,
                      uid_t uid, gid_t gid, pf_wal_spool_stats *st, pf_err *err);

/* Appends the restore_command that copies %f out of dir ('cp DIR/%f %p', quoted for the
 * shell and PostgreSQL's % escapes): a file not in the spool makes cp fail, which recovery
 * reads as "not archived". */
void pf_wal_spool_command(const char *dir, pf_buf *cmd);

/* Removes dir and the files in it (once the cluster has promoted). */
int pf_wal_spool_remove(const char *dir, pf_err *err);

#endif
