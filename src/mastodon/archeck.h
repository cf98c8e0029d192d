/* The backup's proof that its ACTIVE_RECORD_ENCRYPTION_* keys fit its database: run
 * inside the dump's own snapshot (postgres.h's pf_pg_dump_opts.in_snapshot), it looks for
 * encrypted values (arscan.h) and decrypts one with the keys (arkeys.h, arsource.h).
 *
 * Keys missing or not decrypting do not stop the dump: the snapshot is still worth
 * having, but it is incomplete (exit 3), with one loud line naming the problem and what to
 * do. The verdict goes into the manifest, where `check` reads it:
 *   "encryption": {"values": "users.otp_secret" | null,
 *                  "keys": "decrypt" | "missing" | "do not decrypt" | "not needed"
 *                          | "unverified",
 *                  "sources": {"ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY": "/path", ...}}
 * Values, keys and plaintexts are never printed nor recorded. */
#ifndef PF_MASTODON_ARCHECK_H
#define PF_MASTODON_ARCHECK_H

#include <cjson/cJSON.h>
#include <libpq-fe.h>
#include <stdbool.h>

#include "common/err.h"
#include "mastodon/arkeys.h"
#include "mastodon/arsource.h"

typedef enum pf_ar_verdict {
    PF_AR_NOT_RUN = 0,
    PF_AR_NOT_NEEDED, /* no encrypted value found */
    PF_AR_DECRYPT,    /* the keys decrypt a sample */
    PF_AR_MISSING,    /* encrypted values, and one or more keys unset */
    PF_AR_NO_FIT,     /* encrypted values the keys do not decrypt */
    PF_AR_UNVERIFIED, /* the scan could not run, or the sample uses a scheme we cannot check */
} pf_ar_verdict;

typedef struct pf_ar_check {
    const pf_ar_keyset *keys; /* input: borrowed */
    pf_ar_verdict verdict;
    char where[192];   /* the column of the sample */
    pf_ar_fit fit;     /* PF_AR_DECRYPT: which key and digest */
    char problem[900]; /* MISSING / NO_FIT / UNVERIFIED: the line to print */
} pf_ar_check;

/* The hook: ctx is a pf_ar_check with keys set. Always returns 0 (what it finds is
 * recorded, it never stops the dump). */
int pf_ar_check_in_snapshot(PGconn *conn, void *ctx, pf_err *err);

/* Whether the verdict makes the backup incomplete. */
bool pf_ar_check_incomplete(const pf_ar_check *c);

/* Adds "encryption" to manifest (nothing when the check did not run). */
void pf_ar_check_describe(const pf_ar_check *c, cJSON *manifest);

/* For `check`: the manifest's verdict as one line ("keys decrypt the database's encrypted
 * values (users.otp_secret)", ...), and whether it is a problem. NULL when the manifest
 * has no "encryption" (a snapshot older than this check, or without the database). */
const char *pf_ar_check_report(const cJSON *manifest, bool *problem, char *buf, size_t n);

#endif
