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
    uint64_t files; /* WAL files fetched into the spool */
    uint64_t bytes;
    uint64_t segments; /* of them segments */
    uint64_t listed;   /* segments the archive holds from the start on */
    uint64_t max_held; /* most segments in the spool at once */
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

/* A spool filled while the cluster recovers from it, for a restore that starts the
 * cluster itself: fetching overlaps replay, and only a window of segments is ever on disk
 * and fetched past what recovery asked for, so a target an hour after the base backup
 * costs an hour of WAL, not the week the archive holds. */
typedef struct pf_wal_spool pf_wal_spool;

/* Lists what pf_wal_spool_fill would fetch and creates dir as it does (refused when
 * window segments do not fit), with the list of names in dir/.names; fetches nothing.
 * The restore_command is pf_wal_spool_wait_command's. */
/* window 0: PERMAFROST_RESTORE_WAL_WINDOW, else 16. */
int pf_wal_spool_open(pf_repo *r, const char *dir, const char *start_wal, uint64_t seg_size,
                      uid_t uid, gid_t gid, unsigned window, pf_wal_spool **out, pf_err *err);

/* Starts a thread that fetches the listed files in WAL order, holding at most window
 * segments: it waits for recovery to ask past the oldest before fetching more, and removes
 * the segments recovery is past (fetching one again when recovery asks for it again). It alone uses
 * the repository until pf_wal_spool_stop. A fetch that fails stops it and is written where
 * restore_command reads it. */
int pf_wal_spool_run(pf_wal_spool *sp, pf_err *err);

/* Stops the thread (at once, or after the fetch under way), fills st and frees sp; dir
 * stays, and a cluster still recovering from it gets the failure, not a wait. Returns -1
 * with the fetch's error when one failed (recovery cannot have gone past it). NULL: 0. */
int pf_wal_spool_stop(pf_wal_spool *sp, pf_wal_spool_stats *st, pf_err *err);

/* Appends the restore_command for a spool being filled: it copies %f out of dir once it is
 * there (polling, at most 600 s); exits 1 ("not archived": recovery ends) only for a name
 * not in dir/.names, and 255 (PostgreSQL stops recovery with the message in its log) when
 * the fetch failed or the file did not come. */
void pf_wal_spool_wait_command(const char *dir, pf_buf *cmd);

/* Removes dir and the files in it (once the cluster has promoted). */
int pf_wal_spool_remove(const char *dir, pf_err *err);

#endif
