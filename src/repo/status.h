/* What `permafrost status` reports, gathered from the repository alone (snapshots, run
 * records, locks, the store's listing), so that any machine with the passphrase can answer
 * "is this server protected?" — not only the one that runs the backups. The result is one
 * JSON document (docs/JSON.md, "status"); the command's human table is printed from it. */
#ifndef PF_STATUS_H
#define PF_STATUS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

/* Seconds within which the growth of the repository is summed ("added in the last 7 days"). */
#define PF_STATUS_GROWTH_WINDOW (7 * 86400)

/* Collects the status as of now (Unix seconds). Per host: the newest complete whole-server
 * snapshot (and the newest snapshot of any kind when that is newer), its age, its
 * components; the last check and the last drill with their results and durations. For the
 * repository: bytes stored (by listing), snapshots, bytes added by the snapshots of the last
 * 7 days, and every lock with whether it is stale. Returns a new object, or NULL with err. */
cJSON *pf_status_collect(pf_repo *r, int64_t now, pf_err *err);

/* "2026-12-01T07:26:24Z" for a Unix time in nanoseconds: the one time format of --json. */
void pf_time_rfc3339(int64_t time_ns, char *out, size_t n);

#endif
