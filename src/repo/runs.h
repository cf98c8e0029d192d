/* Run records: what check and drill found, kept in the repository (runs/<id>, sealed like
 * every metadata object) so that `status` on any machine with the passphrase can say when
 * the data was last verified and how long a restore took, without the machine that ran it.
 * Bytes: docs/FORMAT.md §17. */
#ifndef PF_RUNS_H
#define PF_RUNS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/crypto.h"
#include "repo/repo.h"

/* Strings longer than this in a stored record are refused when read back. */
#define PF_RUN_STR_MAX 4096
/* At most this many records are read by pf_runs_load (newest first); more means a
 * repository nobody trimmed, or one filled by a hostile writer. */
#define PF_RUNS_LOAD_MAX 10000
/* Prune keeps this many records of each host and command (docs/FORMAT.md §17). */
#define PF_RUNS_KEEP 20

typedef struct pf_run_record {
    char id[2 * PF_ID_LEN + 1]; /* filled when loaded or saved */
    char *command;              /* "check", "drill" */
    char *host;
    int64_t time_ns; /* when the run finished, Unix nanoseconds */
    double seconds;  /* how long it took (a drill's: the restore time objective met) */
    int exit_code;   /* as the command exited */
    char *result;    /* one line for people: "ok", "2 problems: ..." */
    char *snapshot;  /* 64 hex: the snapshot it was about; NULL when none */
    cJSON *detail;   /* command-specific facts; may be NULL */
} pf_run_record;

/* Encodes rec (without id) as the JSON text of §17; malloc'd. */
char *pf_run_encode(const pf_run_record *rec);
/* Decodes and checks a record: required fields present and typed, strings bounded. */
int pf_run_decode(const char *json, size_t n, pf_run_record *rec, pf_err *err);
void pf_run_record_free(pf_run_record *rec);

/* Saves rec as a new object; rec->id gets its id. */
int pf_run_save(pf_repo *r, pf_run_record *rec, pf_err *err);
/* Every record (at most PF_RUNS_LOAD_MAX), newest first. A record that does not open or
 * decode is skipped with a warning naming it; *out is malloc'd (free with pf_runs_free). */
int pf_runs_load(pf_repo *r, pf_run_record **out, size_t *n, pf_err *err);
void pf_runs_free(pf_run_record *v, size_t n);
/* The newest record of host and command among v (as pf_runs_load returns it), or NULL. */
const pf_run_record *pf_runs_newest(const pf_run_record *v, size_t n, const char *host,
                                    const char *command);
/* Removes all but the newest keep records of each host and command; *removed counts them.
 * Records that do not decode are left alone (check reports them). */
int pf_runs_trim(pf_repo *r, size_t keep, size_t *removed, pf_err *err);

#endif
