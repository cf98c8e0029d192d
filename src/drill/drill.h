/* A restore drill: the newest complete whole-server snapshot (or one given) restored into
 * scratch servers (drill/scratch.h) with the real restore path, then proved: the database's
 * row counts equal the manifest's, Mastodon's schema migrations are there, a sample of media
 * files is byte-identical to the snapshot, the secrets parse and hold the keys Mastodon
 * needs, and the Redis snapshot loaded. The time the restore took is the restore time
 * objective (RTO) measured; it and the verdict are kept as a run record (repo/runs.h) for
 * `status`. The live servers are never touched. */
#ifndef PF_DRILL_H
#define PF_DRILL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_drill_opts {
    const char *snapshot;  /* an id, a prefix or "latest" (the newest complete whole server) */
    const char *tmp;       /* where the scratch folder goes; NULL: $TMPDIR or /var/tmp */
    const char *pg_bindir; /* PostgreSQL server binaries; NULL: the newest installed */
    size_t media_sample;   /* media files compared byte for byte (0: 20) */
    int workers;
    bool keep; /* leave the scratch servers running and say where (debugging) */
    /* A snapshot with a base backup is also recovered to a point in time (drill/pitr.c):
     * to_ns (0: the end of the archived WAL), fetching WAL with restore_command. */
    int64_t to_ns;
    const char *restore_command;
} pf_drill_opts;

#define PF_DRILL_CHECKS_MAX 16

/* One proof: what was checked, whether it held, and the detail (counts, the first
 * difference). */
typedef struct pf_drill_check {
    char name[48];
    bool ok;
    char detail[400];
} pf_drill_check;

typedef struct pf_drill_result {
    char snapshot[2 * 32 + 1];
    double restore_seconds; /* the RTO: restoring the whole server */
    double total_seconds;   /* with the scratch servers and the proofs */
    double pitr_seconds;    /* the point-in-time recovery's RTO; 0: none was drilled */
    pf_drill_check checks[PF_DRILL_CHECKS_MAX];
    size_t nchecks;
    bool ok; /* every check held */
} pf_drill_result;

/* Runs the drill on r (locked shared, index loaded). Returns 0 when the drill ran, whatever
 * its verdict (res->ok); -1 with err when it could not run (no scratch servers, no
 * snapshot, the restore itself failed: err says which). The run record is saved in both
 * cases where a restore was attempted. */
int pf_drill_run(pf_repo *r, const pf_drill_opts *o, pf_drill_result *res, pf_err *err);

#endif
