/* The archiver builds a snapshot's trees: from directories on disk (walked with file
 * descriptors, so paths of any depth work), from byte streams (pg_dump, Redis) and from
 * virtual directories ("postgres/", "media/"). Directories are written depth-first, so
 * memory holds one directory listing per level (per walker, pf_archive_path), never the
 * whole tree.
 *
 * Change detection: given the matching tree of the parent snapshot, a regular file whose
 * size, mtime, ctime and inode are unchanged reuses the parent's blob list unread. */
#ifndef PF_ARCHIVER_H
#define PF_ARCHIVER_H

#include <stdint.h>
#include <sys/stat.h>

#include "common/err.h"
#include "common/stream.h"
#include "repo/repo.h"
#include "repo/saver.h"

typedef struct pf_archiver pf_archiver;
typedef struct pf_dir pf_dir;

typedef struct pf_archive_stats {
    uint64_t files, dirs, others; /* entries archived */
    uint64_t files_unchanged;     /* reused from the parent snapshot */
    uint64_t bytes;               /* content bytes of files and streams */
    uint64_t bytes_read;          /* actually read (not skipped as unchanged) */
    uint64_t errors;              /* entries that could not be read (warned) */
} pf_archive_stats;

typedef void (*pf_progress_fn)(const pf_archive_stats *st, const char *current, void *ctx);

/* parent_root may be NULL (no parent snapshot). */
pf_archiver *pf_archiver_new(pf_repo *r, pf_saver *s, const uint8_t *parent_root, pf_err *err);
void pf_archiver_free(pf_archiver *a);
void pf_archiver_set_progress(pf_archiver *a, pf_progress_fn fn, void *ctx);
/* Called for every regular file pf_archive_path stores (not for one it could not read),
 * with its path relative to the fs_path walked ("" for fs_path itself): what a snapshot
 * holds, as it is built (the media check compares it with what the database names).
 * NULL stops the calls. */
typedef void (*pf_archive_visit_fn)(const char *rel, void *ctx);
void pf_archiver_set_visit(pf_archiver *a, pf_archive_visit_fn fn, void *ctx);
void pf_archiver_stats(pf_archiver *a, pf_archive_stats *out);
/* How many entries that could not be read are named (the first PF_ARCHIVE_SKIPPED_MAX;
 * stats.errors counts them all): *paths gets their paths on disk, valid until
 * pf_archiver_free. A snapshot records them so an incomplete one says what it lacks. */
#define PF_ARCHIVE_SKIPPED_MAX 20
size_t pf_archiver_skipped(pf_archiver *a, const char *const **paths);

/* A second archiver of the same backup, for another thread: the same repository, saver
 * (which takes blobs from any thread) and parent snapshot, but its own chunk being filled,
 * statistics and root directory, so that the two threads share nothing they write. What
 * the fork adds to its root becomes a's with pf_archiver_join. Its progress goes to a's
 * callback as one line: the sums of what each archiver last published (a lock, taken at
 * most every 0.2 s per archiver). At most PF_ARCHIVE_FORKS_MAX forks at once; a fork
 * cannot fork. */
#define PF_ARCHIVE_FORKS_MAX 4
pf_archiver *pf_archiver_fork(pf_archiver *a, pf_err *err);
/* Moves the entries of fork's root into a's root and adds its statistics and unreadable
 * paths to a's, then frees fork. From a's thread, once fork's thread has finished with
 * it. NULL: nothing. */
void pf_archiver_join(pf_archiver *a, pf_archiver *fork);

/* How many threads pf_archive_path walks a directory tree with: n <= 0 takes the
 * environment's PERMAFROST_WALKERS or else the number of processors, at most
 * PF_ARCHIVE_WALKERS_MAX (1 walks on the calling thread only, for A/B comparisons).
 * A fork takes its main archiver's setting. */
#define PF_ARCHIVE_WALKERS_MAX 4
void pf_archiver_set_walkers(pf_archiver *a, int n);

/* The root directory of the snapshot. */
pf_dir *pf_archiver_root(pf_archiver *a);
/* A virtual subdirectory (mode 0755 owned by the current user unless set later). */
pf_dir *pf_dir_begin(pf_archiver *a, pf_dir *parent, const char *name, pf_err *err);
/* Gives d the mode, owner and times of st (by default a directory begun here is 0755,
 * the process's own, made now): for a directory that stands for one on disk. */
void pf_dir_take_meta(pf_archiver *a, pf_dir *d, const struct stat *st);
/* Writes the directory's tree and adds it to its parent (or, for the root, returns its id
 * in root_id, which may be NULL otherwise). Frees d. */
int pf_dir_end(pf_archiver *a, pf_dir *d, uint8_t *root_id, pf_err *err);
/* Abandons a directory without adding it anywhere. */
void pf_dir_abort(pf_dir *d);

/* Archives fs_path (file, directory tree, symlink, ...) as entry `name` of d.
 * excludes: NULL-terminated list of paths relative to fs_path that are left out.
 * Unreadable entries below fs_path are warned about and counted in stats.errors; an
 * unreadable fs_path itself is an error.
 *
 * A directory tree is walked by several threads (pf_archiver_set_walkers): a thread that
 * meets a subdirectory while another walker is idle hands it over, and a thread waiting
 * for the subdirectories it handed over walks what is handed to it meanwhile. The trees
 * are the bytes a walk on one thread writes (entries are sorted by name when a directory
 * ends), so the snapshot's ids do not depend on the number of walkers. Each walker has its
 * own chunk buffer, statistics and hard-link table (a file linked from subtrees that two
 * walkers take is read by both: the same bytes give the same blobs); the visit callback
 * is called under a lock, one call at a time, in no fixed order. Memory grows with the
 * walkers: each holds one listing and one parent tree per level it is in. */
int pf_archive_path(pf_archiver *a, pf_dir *d, const char *name, const char *fs_path,
                    const char *const *excludes, pf_err *err);

/* Adds the parent snapshot's file (or directory) `name` of d to d as it was (same blobs,
 * same metadata), unread: for a producer that knows its output would be the same (an
 * unchanged database's dump). PF_ENOTFOUND when the parent has no such entry or the index
 * lacks a blob of it (of a directory: its tree; what the tree names is the parent's, which
 * a snapshot keeps). */
int pf_archive_reuse(pf_archiver *a, pf_dir *d, const char *name, pf_err *err);

/* A regular file whose bytes arrive through a sink. */
pf_sink *pf_archive_stream_begin(pf_archiver *a, pf_dir *d, const char *name, uint32_t mode,
                                 pf_err *err);
/* Finishes the stream and adds the file (abort: drops it). Frees the sink. */
int pf_archive_stream_end(pf_archiver *a, pf_sink *s, pf_err *err);
void pf_archive_stream_abort(pf_sink *s);

/* For trees built from something other than a disk (the media mirrored from an S3 bucket,
 * component/s3mirror.h), which decides itself what changed:
 * - the entry `name` of the parent snapshot's directory that d stands for (found as
 *   pf_dir_begin found it), or NULL; valid until pf_dir_end(d);
 * - adding such an entry unread: returns 1 when its content is in the repository (its blobs
 *   are reused, counted as unchanged), 0 when it is not and must be read again;
 * - a stream's file time and link (its record of where the bytes came from) before its end;
 * - an entry that could not be read, warned about by the caller: counted in stats.errors and
 *   named in the snapshot's skipped list. */
const pf_node *pf_dir_parent_entry(const pf_dir *d, const char *name);
int pf_dir_reuse(pf_archiver *a, pf_dir *d, const pf_node *old);
void pf_archive_stream_meta(pf_sink *s, int64_t mtime_ns, const char *link, size_t link_len);
void pf_archiver_skip(pf_archiver *a, const char *path);

#endif
