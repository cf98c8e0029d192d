/* The point-in-time part of a restore drill: a snapshot that holds a base backup is also
 * recovered, as restore --live --to would, into a second scratch cluster beside the first
 * (its data directory in the scratch folder, its own socket file there, no TCP, archiving
 * off so that nothing of the drill reaches the repository), to the drill's target or the
 * end of the archived WAL, fetching WAL from the repository. Then it must have promoted and
 * hold Mastodon's schema for the app's role. A WAL file missing from the archive after
 * the base backup (recovery would silently stop short) fails the check, naming it. */
#ifndef PF_DRILL_PITR_H
#define PF_DRILL_PITR_H

#include "drill/drill.h"
#include "drill/scratch.h"
#include "repo/snapshot.h"

/* Fills check ("point in time") and *seconds (the recovery's RTO); the cluster it started
 * is stopped again. Never fails otherwise: what went wrong is the check's detail. */
void pf_drill_pitr(pf_repo *r, const pf_snapshot *s, const pf_scratch *sc, const pf_drill_opts *o,
                   pf_drill_check *check, double *seconds);

#endif
