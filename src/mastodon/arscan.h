/* Finding ActiveRecord-encrypted values in Mastodon's database (see arkeys.h), so that a
 * backup can prove its keys decrypt them.
 *
 * First the columns Mastodon encrypts (users.otp_secret since 4.3, keypairs.private_key
 * since 4.6), where any row holding an envelope counts; then a sample of every other text
 * and varchar column of the public schema: the first few rows of each table, never a full
 * scan, within a time budget. A value counts when it parses as an envelope. Meant to run on
 * the dump's own connection inside its REPEATABLE READ transaction, so that what it finds is
 * what the dump holds: every query then runs in a savepoint that is rolled back, with a
 * statement timeout of its own, so that neither a failing query (a table we may not read)
 * nor a slow one disturbs the transaction. Outside a transaction (pgbouncer in statement
 * mode) the queries run as they are. */
#ifndef PF_MASTODON_ARSCAN_H
#define PF_MASTODON_ARSCAN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"

/* Rows read per table by the sampled scan, and its budget. */
#define PF_ARSCAN_ROWS 5
#define PF_ARSCAN_BUDGET_MS 5000
#define PF_ARSCAN_MAX_TABLES 1000

typedef struct pf_ar_found {
    bool found;
    char where[192]; /* "users.otp_secret": the column the sample came from */
    char *sample;    /* one envelope as stored (malloc'd, NUL-terminated) */
    size_t sample_len;
    int tables_sampled; /* tables the sampled scan read (0 when a known column matched) */
    bool budget_hit;    /* the scan stopped at the time or table cap */
} pf_ar_found;

/* Looks for encrypted values on c (connected to Mastodon's database, idle or in a
 * transaction). Returns 0 with *out filled (found false when there are none), or -1 with
 * err (PF_ECOMPONENT "cannot list the columns of the database: ...") when the catalog
 * cannot be read or the transaction is already aborted. A table that cannot be read is
 * skipped. Free *out with pf_ar_found_free() in every case. Messages never hold a value. */
int pf_ar_scan(PGconn *c, pf_ar_found *out, pf_err *err);
void pf_ar_found_free(pf_ar_found *f);

#endif
