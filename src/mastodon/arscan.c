#include "mastodon/arscan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "common/log.h"
#include "mastodon/arkeys.h"

static long now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

typedef struct scan {
    PGconn *c;
    bool in_tx; /* use savepoints */
} scan;

/* Runs one read-only query, isolated: in a transaction inside a savepoint that is rolled
 * back afterwards (which also undoes the SET LOCAL of the timeout). Returns the result
 * (PGRES_TUPLES_OK) or NULL. */
static PGresult *query(scan *s, const char *sql, int nparams, const char *const *params,
                       long timeout_ms)
{
    if (s->in_tx) {
        char pre[128];
        snprintf(pre, sizeof pre, "SAVEPOINT pf_arscan; SET LOCAL statement_timeout = %ld",
                 timeout_ms > 0 ? timeout_ms : 1);
        PGresult *r = PQexec(s->c, pre);
        bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
        PQclear(r);
        if (!ok)
            return NULL;
    }
    PGresult *r = PQexecParams(s->c, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        pf_debug("encrypted values: a query failed (skipped): %s", PQerrorMessage(s->c));
        PQclear(r);
        r = NULL;
    }
    if (s->in_tx) {
        PGresult *e = PQexec(s->c, "ROLLBACK TO SAVEPOINT pf_arscan; RELEASE SAVEPOINT pf_arscan");
        PQclear(e);
    }
    return r;
}

static bool take_sample(pf_ar_found *out, const char *table, const char *column, const char *v,
                        size_t len)
{
    if (!pf_ar_looks_encrypted(v, len))
        return false;
    pf_ar_envelope e;
    pf_err err = {0};
    int rc = pf_ar_envelope_parse(v, len, &e, &err);
    pf_ar_envelope_free(&e);
    /* An envelope of a scheme we cannot verify is still an encrypted value. */
    if (rc && err.code != PF_EUSAGE)
        return false;
    out->sample = malloc(len + 1);
    if (!out->sample)
        return false;
    memcpy(out->sample, v, len);
    out->sample[len] = 0;
    out->sample_len = len;
    out->found = true;
    snprintf(out->where, sizeof out->where, "%s.%s", table, column);
    return true;
}

static char *ident(PGconn *c, const char *name)
{
    return PQescapeIdentifier(c, name, strlen(name));
}

/* The columns Mastodon encrypts: any envelope anywhere in them counts. */
static const char *const known[][2] = {{"users", "otp_secret"}, {"keypairs", "private_key"}};

static const char *const column_sql =
    "SELECT 1 FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
    "AND c.relname = $1 AND a.attname = $2 AND a.attnum > 0 AND NOT a.attisdropped "
    "AND has_column_privilege(c.oid, a.attnum, 'SELECT')";

static int scan_known(scan *s, pf_ar_found *out, long deadline)
{
    for (size_t i = 0; i < sizeof known / sizeof *known && !out->found; i++) {
        PGresult *r = query(s, column_sql, 2, known[i], deadline - now_ms());
        bool exists = r && PQntuples(r) == 1;
        PQclear(r);
        if (!exists)
            continue;
        char *t = ident(s->c, known[i][0]), *col = ident(s->c, known[i][1]);
        pf_buf q = PF_BUF_INIT;
        if (t && col)
            pf_buf_printf(&q,
                          "SELECT %s::text FROM public.%s WHERE left(%s::text, 5) = '{\"p\":' "
                          "LIMIT 1",
                          col, t, col);
        PQfreemem(t);
        PQfreemem(col);
        if (!q.len)
            continue;
        /* A full scan of users is fine; the budget guards a huge table. */
        r = query(s, (const char *)q.data, 0, NULL, deadline - now_ms());
        pf_buf_free(&q);
        if (r && PQntuples(r) == 1 && !PQgetisnull(r, 0, 0))
            take_sample(out, known[i][0], known[i][1], PQgetvalue(r, 0, 0),
                        (size_t)PQgetlength(r, 0, 0));
        PQclear(r);
    }
    return 0;
}

static const char *const columns_sql =
    "SELECT c.relname, a.attname FROM pg_catalog.pg_attribute a "
    "JOIN pg_catalog.pg_class c ON c.oid = a.attrelid "
    "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
    "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND a.attnum > 0 "
    "AND NOT a.attisdropped AND a.atttypid IN ('text'::regtype, 'varchar'::regtype) "
    "AND has_column_privilege(c.oid, a.attnum, 'SELECT') ORDER BY c.relname, a.attnum";

/* One query per table: the first PF_ARSCAN_ROWS rows, each text column shipped only when
 * it starts like an envelope. */
static void sample_table(scan *s, PGresult *cols, int first, int end, pf_ar_found *out,
                         long deadline)
{
    const char *table = PQgetvalue(cols, first, 0);
    char *t = ident(s->c, table);
    if (!t)
        return;
    pf_buf q = PF_BUF_INIT;
    pf_buf_append_str(&q, "SELECT ");
    for (int i = first; i < end; i++) {
        char *col = ident(s->c, PQgetvalue(cols, i, 1));
        if (!col) {
            pf_buf_free(&q);
            PQfreemem(t);
            return;
        }
        pf_buf_printf(&q, "%sCASE WHEN left(%s::text, 5) = '{\"p\":' THEN %s::text END",
                      i > first ? ", " : "", col, col);
        PQfreemem(col);
    }
    pf_buf_printf(&q, " FROM (SELECT * FROM public.%s LIMIT %d) s", t, PF_ARSCAN_ROWS);
    PQfreemem(t);
    PGresult *r = query(s, (const char *)q.data, 0, NULL, deadline - now_ms());
    pf_buf_free(&q);
    for (int row = 0; r && row < PQntuples(r) && !out->found; row++)
        for (int f = 0; f < PQnfields(r) && !out->found; f++)
            if (!PQgetisnull(r, row, f))
                take_sample(out, table, PQgetvalue(cols, first + f, 1), PQgetvalue(r, row, f),
                            (size_t)PQgetlength(r, row, f));
    PQclear(r);
}

int pf_ar_scan(PGconn *c, pf_ar_found *out, pf_err *err)
{
    memset(out, 0, sizeof *out);
    PGTransactionStatusType ts = PQtransactionStatus(c);
    if (ts != PQTRANS_IDLE && ts != PQTRANS_INTRANS)
        return pf_err_set(err, PF_ECOMPONENT,
                          "cannot look for encrypted values: the connection is not usable "
                          "(transaction aborted or busy)");
    scan s = {.c = c, .in_tx = ts == PQTRANS_INTRANS};
    long deadline = now_ms() + PF_ARSCAN_BUDGET_MS;
    scan_known(&s, out, deadline);
    if (out->found)
        return 0;
    PGresult *cols = query(&s, columns_sql, 0, NULL, PF_ARSCAN_BUDGET_MS);
    if (!cols)
        return pf_err_set(err, PF_ECOMPONENT,
                          "cannot list the columns of the database to look for encrypted "
                          "values: %s",
                          PQerrorMessage(c));
    int n = PQntuples(cols);
    for (int i = 0; i < n && !out->found;) {
        int end = i + 1;
        while (end < n && !strcmp(PQgetvalue(cols, end, 0), PQgetvalue(cols, i, 0)))
            end++;
        if (now_ms() >= deadline || out->tables_sampled >= PF_ARSCAN_MAX_TABLES) {
            out->budget_hit = true;
            break;
        }
        sample_table(&s, cols, i, end, out, deadline);
        out->tables_sampled++;
        i = end;
    }
    PQclear(cols);
    if (out->budget_hit)
        pf_info("encrypted values: the sampled scan stopped after %d tables (time or table "
                "cap)",
                out->tables_sampled);
    return 0;
}

void pf_ar_found_free(pf_ar_found *f)
{
    if (!f)
        return;
    if (f->sample) {
        memset(f->sample, 0, f->sample_len);
        free(f->sample);
    }
    memset(f, 0, sizeof *f);
}
