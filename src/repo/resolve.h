/* What a snapshot reference means: an id prefix names one snapshot; "latest" names the
 * newest snapshot that can serve the command, which depends on what the command needs.
 * Every command resolves references here, so `latest` means the same everywhere:
 *   - a whole Mastodon server (restore --live, and ls/dump of secrets/, postgres/,
 *     redis/, media/): the newest complete snapshot of kind "mastodon" (a partial
 *     --only snapshot or an incomplete one cannot stand for the server);
 *   - plain paths (restore --target, ls/dump of other paths): the newest snapshot of
 *     kind "paths" that holds the paths asked for (their first component is the base
 *     name of one of the snapshot's paths);
 *   - some components of a server (restore --live --only ...): the newest complete
 *     snapshot, whole or partial, that holds every component asked for;
 *   - anything (ls with no path): the newest snapshot.
 * The choice is told on one info line: which snapshot, and why newer ones were passed
 * over. */
#ifndef PF_RESOLVE_H
#define PF_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "repo/repo.h"
#include "repo/snapshot.h"

typedef struct pf_snapshot_want {
    pf_snapshot_kind kind;     /* PF_SNAP_UNKNOWN: any kind */
    bool complete;             /* only complete snapshots */
    const char *const *inside; /* paths inside the snapshot it must hold; may be NULL */
    size_t ninside;
    /* With kind PF_SNAP_MASTODON: when not NULL, the components (secrets, postgres, redis,
     * media) the command needs, and a partial --only snapshot that holds all of them fits
     * too (restore --live --only db takes the newest snapshot that has the database). */
    const char *const *components;
    size_t ncomponents;
} pf_snapshot_want;

/* The need of a command that reads the paths inside[0..n) of a snapshot (ls, dump): a
 * whole server when the first one is under secrets/, postgres/, redis/ or media/, a
 * physical base backup under postgres-physical/, plain paths otherwise, anything when n
 * is 0. */
pf_snapshot_want pf_snapshot_want_for(const char *const *inside, size_t n);

/* Loads the snapshot ref names ("latest" or a unique id prefix) into *s. An id is taken
 * as given, whatever want says. PF_ENOTFOUND, saying what was looked for, when no
 * snapshot fits "latest". */
int pf_snapshot_resolve(pf_repo *r, const char *ref, const pf_snapshot_want *want, pf_snapshot *s,
                        pf_err *err);

/* True when s holds the in-snapshot path p: p's first component is the base name under
 * which one of s's paths was stored (a plain backup stores each path under it). */
bool pf_snapshot_holds(const pf_snapshot *s, const char *p);

#endif
