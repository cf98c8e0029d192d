/* A backup in progress, shared by plain and Mastodon backups: index loaded, parent found,
 * saver and archiver running. Commit writes the snapshot last, so a backup that fails
 * before it leaves no snapshot (what was uploaded stays indexed for the next run).
 *
 * The caller holds the repository lock from before pf_backup_begin until after
 * pf_backup_end: locking (and removing the lock on a signal) is the command line's job. */
#ifndef PF_REPO_BACKUP_RUN_H
#define PF_REPO_BACKUP_RUN_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/archiver.h"
#include "repo/repo.h"
#include "repo/saver.h"
#include "repo/snapshot.h"

typedef struct pf_backup_run pf_backup_run;

/* Called as the archiver makes progress (from the archiving thread). */
typedef void (*pf_backup_progress_fn)(const pf_backup_run *b, const pf_archive_stats *st);

typedef struct pf_backup_opts {
    int workers;                    /* parallel uploads; 0: the saver's default for the machine */
    pf_backup_progress_fn progress; /* NULL: none */
    void *ctx;                      /* for progress, as b->ctx */
    const char *program;            /* recorded as the snapshot's program, "permafrost 0.1.0" */
} pf_backup_opts;

struct pf_backup_run {
    pf_repo *repo;
    pf_saver *saver;
    pf_archiver *arch;
    pf_snapshot snap;
    double started;    /* monotonic seconds, as pf_backup_now */
    uint64_t estimate; /* bytes of the parent snapshot, for an ETA */
    /* The parent snapshot's components (a copy; NULL: no parent, or it recorded none):
     * what each component learned last time, e.g. the state a dump was judged on. */
    cJSON *parent_components;
    pf_backup_progress_fn progress;
    void *ctx;
};

/* Fills the snapshot's metadata (host from $PERMAFROST_HOST or the host name, user, time,
 * paths; kind PF_SNAP_PATHS, which a Mastodon backup changes afterwards), loads the index,
 * adopts packs an interrupted backup left, finds the parent and starts the saver and the
 * archiver. parent_tag: when set, the parent is the latest snapshot of this host with
 * that tag; otherwise the latest of this host with the same paths. Returns 0 or -1 with
 * err; pf_backup_end is needed in both cases (b may be zeroed or half-filled). */
int pf_backup_begin(pf_backup_run *b, pf_repo *r, const pf_backup_opts *o, const char *parent_tag,
                    char **paths, size_t npaths, pf_err *err);
/* Closes the root directory, makes every pack and index durable, records the statistics
 * and what could not be read, then writes the snapshot. */
int pf_backup_commit(pf_backup_run *b, pf_err *err);
/* Stops the saver without writing a snapshot: what was uploaded stays indexed for the
 * next run to reuse. Errors are ignored (the run has failed already). */
void pf_backup_abandon(pf_backup_run *b);
/* Frees everything; the snapshot's id stays readable until then. Zeroed b is fine. */
void pf_backup_end(pf_backup_run *b);

/* Monotonic seconds (the clock of b->started). */
double pf_backup_now(void);

#endif
