#include "component/walrecv.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/select.h>
#include <time.h>

#include "repo/wal.h"

/* How long a connection attempt may take (libpq's connect_timeout is not applied to
 * PQconnectPoll). */
#define CONNECT_TIMEOUT_MS 30000
/* How often a connection attempt looks at the caller's stop flag. */
#define STOP_POLL_MS 100

struct pf_walrecv {
    PGconn *c;
    char *buf; /* the last CopyData message, freed on the next call */
};

void pf_lsn_format(uint64_t lsn, char out[24])
{
    snprintf(out, 24, "%X/%X", (unsigned)(lsn >> 32), (unsigned)lsn);
}

static uint64_t be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | p[i];
    return v;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        p[i] = (uint8_t)v;
        v >>= 8;
    }
}

int pf_walrecv_parse(const uint8_t *p, size_t n, pf_walrecv_msg *m)
{
    memset(m, 0, sizeof *m);
    if (n >= 25 && p[0] == 'w') { /* start, end of WAL, send time, then the bytes */
        m->kind = PF_WALRECV_DATA;
        m->lsn = be64(p + 1);
        m->wal_end = be64(p + 9);
        m->data = p + 25;
        m->n = n - 25;
        return 0;
    }
    if (n == 18 && p[0] == 'k') { /* end of WAL, send time, reply requested */
        m->kind = PF_WALRECV_KEEPALIVE;
        m->wal_end = be64(p + 1);
        m->reply = p[17] != 0;
        return 0;
    }
    return -1;
}

static void one_line(const char *msg, char *out, size_t n)
{
    /* libpq's messages run over lines, indented by tabs: one line, single spaces. */
    size_t k = 0;
    for (const char *c = msg ? msg : ""; *c && k + 1 < n; c++) {
        char ch = (*c == '\n' || *c == '\t') ? ' ' : *c;
        if (ch == ' ' && (k == 0 || out[k - 1] == ' '))
            continue;
        out[k++] = ch;
    }
    while (k && out[k - 1] == ' ')
        k--;
    out[k] = 0;
}

static int fail(pf_walrecv *w, int code, const char *what, pf_err *err)
{
    char msg[512];
    one_line(w && w->c ? PQerrorMessage(w->c) : "out of memory", msg, sizeof msg);
    if (w && w->c && PQstatus(w->c) != CONNECTION_OK)
        code = PF_ECONN;
    return pf_err_set(err, code, "%s: %s", what, msg);
}

/* Whether a SQLSTATE says that trying again later may work: classes 08 (connection
 * exception), 53 (too many connections, out of memory) but 53400 (max_replication_slots
 * reached: no slot until someone changes the configuration) and 57 (shutting down,
 * starting up), and 55006 (the slot still held by the walsender of a connection just
 * lost, until that one exits). */
static bool transient_state(const char *st)
{
    return !strncmp(st, "08", 2) || (!strncmp(st, "53", 2) && strcmp(st, "53400")) ||
           !strncmp(st, "57", 2) || !strcmp(st, "55006");
}

/* What a server's error means to a caller that would try again: a broken connection or a
 * transient state is PF_ECONN; anything else the server refused. */
static int code_of(pf_walrecv *w, const PGresult *res)
{
    const char *st = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    if (PQstatus(w->c) != CONNECTION_OK || (st && transient_state(st)))
        return PF_ECONN;
    return PF_ECOMPONENT;
}

/* Runs a command that answers with one result set; *res is the caller's to clear. */
static int query(pf_walrecv *w, const char *sql, PGresult **res, pf_err *err)
{
    *res = PQexec(w->c, sql);
    if (PQresultStatus(*res) != PGRES_TUPLES_OK) {
        char msg[512];
        one_line(PQresultErrorMessage(*res), msg, sizeof msg);
        int code = code_of(w, *res);
        PQclear(*res);
        *res = NULL;
        return pf_err_set(err, code, "%s: %s", sql, *msg ? msg : PQerrorMessage(w->c));
    }
    return 0;
}

static bool sqlstate_at(const char *p)
{
    for (int i = 0; i < 5; i++)
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'A' && p[i] <= 'Z')))
            return false;
    return p[5] == ':';
}

/* Connects, telling a refusal that trying again cannot fix (PF_EAUTH: authentication, no
 * REPLICATION privilege; PF_ECOMPONENT: no such database, a bad connection string) from one
 * it may (PF_ECONN: nothing listening, the server starting up or shutting down, too many
 * connections). The server's SQLSTATE is in the message only at the verbose level, so the
 * connection is made at that level and the code taken out of the message again. */
static PGconn *connect_classified(const char *const *keys, const char *const *vals,
                                  const volatile sig_atomic_t *stop, pf_err *err)
{
    PGconn *c = PQconnectStartParams(keys, vals, 1);
    if (!c) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    bool timed_out = false;
    if (PQstatus(c) != CONNECTION_BAD) {
        PQsetErrorVerbosity(c, PQERRORS_VERBOSE);
        struct timespec t0, t;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        PostgresPollingStatusType st = PGRES_POLLING_WRITING;
        while (st != PGRES_POLLING_OK && st != PGRES_POLLING_FAILED) {
            clock_gettime(CLOCK_MONOTONIC, &t);
            long left = CONNECT_TIMEOUT_MS -
                        ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000);
            if (left <= 0) {
                timed_out = true;
                break;
            }
            if (stop && *stop) {
                pf_err_set(err, PF_ECONN, "cannot connect: stopped while connecting");
                PQfinish(c);
                return NULL;
            }
            /* Signals arrive in another thread: the stop flag is looked at every 100 ms. */
            if (left > STOP_POLL_MS)
                left = STOP_POLL_MS;
            struct pollfd p = {PQsocket(c), st == PGRES_POLLING_READING ? POLLIN : POLLOUT, 0};
            int ready = poll(&p, 1, (int)left);
            if (ready < 0 && errno != EINTR) {
                pf_err_sys(err, PF_ECONN, "cannot connect: waiting for the server");
                PQfinish(c);
                return NULL;
            }
            if (ready <= 0)
                continue; /* nothing yet: PQconnectPoll is called only once the socket is ready */
            st = PQconnectPoll(c);
        }
        PQsetErrorVerbosity(c, PQERRORS_DEFAULT);
    }
    if (!timed_out && PQstatus(c) == CONNECTION_OK)
        return c;
    /* The message without its SQLSTATE and LOCATION line, as libpq says it by default. */
    char msg[512], state[6] = "";
    size_t n = 0;
    for (const char *p = PQerrorMessage(c); *p && n + 1 < sizeof msg;) {
        if (!strncmp(p, "LOCATION:", 9)) {
            p += strcspn(p, "\n");
            p += *p == '\n';
            continue;
        }
        if (!strncmp(p, "FATAL:  ", 8) && sqlstate_at(p + 8)) {
            if (n + 8 >= sizeof msg)
                break;
            memcpy(msg + n, p, 8);
            n += 8;
            if (!*state)
                memcpy(state, p + 8, 5);
            p += 8 + 7;
            continue;
        }
        msg[n++] = *p == '\n' ? ' ' : *p;
        p++;
    }
    while (n && msg[n - 1] == ' ')
        n--;
    msg[n] = 0;
    int code = PF_ECONN;
    if (PQconnectionNeedsPassword(c) || !strncmp(state, "28", 2) || !strcmp(state, "42501"))
        code = PF_EAUTH;
    else if (*state && !transient_state(state))
        code = PF_ECOMPONENT;
    if (timed_out)
        pf_err_set(err, code, "cannot connect: no answer within %d s", CONNECT_TIMEOUT_MS / 1000);
    else
        pf_err_set(err, code, "cannot connect: %s", msg);
    PQfinish(c);
    return NULL;
}

pf_walrecv *pf_walrecv_connect(const char *conninfo, const volatile sig_atomic_t *stop,
                               pf_walrecv_info *info, pf_err *err)
{
    const char *keys[] = {"dbname", "replication", "application_name", NULL};
    const char *vals[] = {conninfo ? conninfo : "", "true", "permafrost-wal-stream", NULL};
    pf_walrecv *w = calloc(1, sizeof *w);
    memset(info, 0, sizeof *info);
    if (!w) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        return NULL;
    }
    /* A connection string that does not parse is no reason to try again. */
    const char *cs = conninfo ? conninfo : "";
    if (strchr(cs, '=') || !strncmp(cs, "postgres://", 11) || !strncmp(cs, "postgresql://", 13)) {
        char *why = NULL;
        PQconninfoOption *o = PQconninfoParse(cs, &why);
        if (!o) {
            char msg[512];
            one_line(why ? why : "out of memory", msg, sizeof msg);
            PQfreemem(why);
            pf_err_set(err, PF_EUSAGE, "the connection string does not parse: %s", msg);
            pf_walrecv_close(w);
            return NULL;
        }
        PQconninfoFree(o);
    }
    if (!(w->c = connect_classified(keys, vals, stop, err))) {
        pf_walrecv_close(w);
        return NULL;
    }
    info->version = PQserverVersion(w->c);
    if (info->version < 150000) {
        pf_err_set(err, PF_ECOMPONENT,
                   "the server runs PostgreSQL %d.%d; wal-stream needs 15 or newer (use "
                   "archive_command = 'permafrost wal-push %%p')",
                   info->version / 10000, info->version % 10000);
        pf_walrecv_close(w);
        return NULL;
    }
    PGresult *res;
    if (query(w, "IDENTIFY_SYSTEM", &res, err)) {
        pf_walrecv_close(w);
        return NULL;
    }
    if (PQntuples(res) != 1 || PQnfields(res) < 3 ||
        pf_lsn_parse(PQgetvalue(res, 0, 2), &info->xlogpos)) {
        PQclear(res);
        pf_err_set(err, PF_ECOMPONENT, "IDENTIFY_SYSTEM: an answer of an unknown shape");
        pf_walrecv_close(w);
        return NULL;
    }
    snprintf(info->systemid, sizeof info->systemid, "%s", PQgetvalue(res, 0, 0));
    info->tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
    PQclear(res);
    info->seg_size = 16u << 20;
    if (query(w, "SHOW wal_segment_size", &res, err) == 0) {
        if (PQntuples(res) == 1) {
            char *end;
            unsigned long long v = strtoull(PQgetvalue(res, 0, 0), &end, 10);
            if (!strcmp(end, "MB"))
                info->seg_size = v << 20;
            else if (!strcmp(end, "GB"))
                info->seg_size = v << 30;
        }
        PQclear(res);
    }
    pf_err_clear(err);
    return w;
}

void pf_walrecv_close(pf_walrecv *w)
{
    if (!w)
        return;
    if (w->buf)
        PQfreemem(w->buf);
    PQfinish(w->c);
    free(w);
}

/* A slot name goes into a command unquoted: only what PostgreSQL allows in one. */
static bool slot_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

int pf_walrecv_slot(pf_walrecv *w, const char *slot, uint64_t *restart_lsn, uint32_t *restart_tli,
                    bool *created, pf_err *err)
{
    *restart_lsn = 0;
    *restart_tli = 0;
    *created = false;
    if (!slot_name_ok(slot))
        return pf_err_set(err, PF_EUSAGE,
                          "slot name \"%.80s\": use 1 to 63 lower-case letters, digits and _",
                          slot);
    char sql[128];
    PGresult *res;
    snprintf(sql, sizeof sql, "READ_REPLICATION_SLOT %s", slot);
    if (query(w, sql, &res, err))
        return -1;
    bool exists = PQntuples(res) == 1 && !PQgetisnull(res, 0, 0);
    if (exists && strcmp(PQgetvalue(res, 0, 0), "physical")) {
        PQclear(res);
        return pf_err_set(err, PF_ECOMPONENT,
                          "replication slot %s is a %s slot: wal-stream needs a physical one "
                          "(--slot NAME)",
                          slot, "logical");
    }
    if (exists && PQnfields(res) >= 3 && !PQgetisnull(res, 0, 1)) {
        pf_lsn_parse(PQgetvalue(res, 0, 1), restart_lsn);
        *restart_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 2), NULL, 10);
    }
    PQclear(res);
    if (exists)
        return 0;
    snprintf(sql, sizeof sql, "CREATE_REPLICATION_SLOT %s PHYSICAL (RESERVE_WAL)", slot);
    if (query(w, sql, &res, err))
        return -1;
    PQclear(res);
    *created = true;
    return 0;
}

int pf_walrecv_history(pf_walrecv *w, uint32_t tli, char name[64], pf_buf *content, pf_err *err)
{
    char sql[64];
    PGresult *res;
    snprintf(sql, sizeof sql, "TIMELINE_HISTORY %u", tli);
    if (query(w, sql, &res, err))
        return -1;
    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        PQclear(res);
        return pf_err_set(err, PF_ECOMPONENT, "%s: an answer of an unknown shape", sql);
    }
    snprintf(name, 64, "%s", PQgetvalue(res, 0, 0));
    /* The file's bytes as they are, although the column says bytea. */
    pf_buf_append(content, PQgetvalue(res, 0, 1), (size_t)PQgetlength(res, 0, 1));
    PQclear(res);
    return 0;
}

int pf_walrecv_start(pf_walrecv *w, const char *slot, uint32_t tli, uint64_t lsn, pf_err *err)
{
    char sql[160], at[24];
    pf_lsn_format(lsn, at);
    if (slot)
        snprintf(sql, sizeof sql, "START_REPLICATION SLOT %s PHYSICAL %s TIMELINE %u", slot, at,
                 tli);
    else
        snprintf(sql, sizeof sql, "START_REPLICATION PHYSICAL %s TIMELINE %u", at, tli);
    PGresult *res = PQexec(w->c, sql);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        char msg[512];
        one_line(PQresultErrorMessage(res), msg, sizeof msg);
        int code = code_of(w, res);
        PQclear(res);
        return pf_err_set(err, code, "%s: %s", sql, *msg ? msg : PQerrorMessage(w->c));
    }
    PQclear(res);
    return 0;
}

/* After the server's CopyDone: ours, then the result set naming the next timeline. */
static int end_of_stream(pf_walrecv *w, pf_walrecv_msg *m, pf_err *err)
{
    PGresult *res;
    if (PQputCopyEnd(w->c, NULL) <= 0 || PQflush(w->c)) {
        /* No COPY left to end: the server ended it with an error (a WAL segment it no
         * longer has, say), which the results hold. */
        char msg[512] = "";
        int code = PF_ECONN;
        while ((res = PQgetResult(w->c))) {
            if (PQresultStatus(res) == PGRES_FATAL_ERROR && !*msg) {
                one_line(PQresultErrorMessage(res), msg, sizeof msg);
                code = code_of(w, res);
            }
            PQclear(res);
        }
        if (*msg)
            return pf_err_set(err, code, "the stream ended: %s", msg);
        return fail(w, PF_ECONN, "ending the stream", err);
    }
    int rc = 0;
    m->kind = PF_WALRECV_END;
    while ((res = PQgetResult(w->c))) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 2) {
            m->next_tli = (uint32_t)strtoul(PQgetvalue(res, 0, 0), NULL, 10);
            if (pf_lsn_parse(PQgetvalue(res, 0, 1), &m->next_lsn))
                rc = pf_err_set(err, PF_ECOMPONENT, "the stream ended at an unreadable position");
        } else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK && st != PGRES_COPY_OUT &&
                   st != PGRES_COPY_BOTH && !rc) {
            char msg[512];
            one_line(PQresultErrorMessage(res), msg, sizeof msg);
            rc = pf_err_set(err, code_of(w, res), "the stream ended: %s", msg);
        }
        PQclear(res);
    }
    return rc;
}

int pf_walrecv_next(pf_walrecv *w, double timeout, pf_walrecv_msg *m, pf_err *err)
{
    memset(m, 0, sizeof *m);
    if (w->buf) {
        PQfreemem(w->buf);
        w->buf = NULL;
    }
    for (int waited = 0;; waited = 1) {
        int n = PQgetCopyData(w->c, &w->buf, 1);
        if (n > 0) {
            if (pf_walrecv_parse((const uint8_t *)w->buf, (size_t)n, m))
                return pf_err_set(err, PF_ECOMPONENT,
                                  "the stream sent a message of unknown type %d (%d bytes)",
                                  w->buf[0], n);
            return 0;
        }
        if (n == -1)
            return end_of_stream(w, m, err);
        if (n < -1)
            return fail(w, PF_ECONN, "reading the stream", err);
        if (waited)
            return 0; /* nothing yet */
        int fd = PQsocket(w->c);
        fd_set rd;
        FD_ZERO(&rd);
        FD_SET(fd, &rd);
        struct timeval tv = {(time_t)timeout,
                             (suseconds_t)((timeout - (double)(time_t)timeout) * 1e6)};
        int s = select(fd + 1, &rd, NULL, NULL, &tv);
        if (s < 0 && errno != EINTR)
            return pf_err_sys(err, PF_ECONN, "waiting for the stream");
        if (s <= 0)
            return 0;
        if (!PQconsumeInput(w->c))
            return fail(w, PF_ECONN, "reading the stream", err);
    }
}

/* Microseconds since 2000-01-01, PostgreSQL's epoch. */
static int64_t pg_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ((int64_t)ts.tv_sec - 946684800) * 1000000 + ts.tv_nsec / 1000;
}

int pf_walrecv_status(pf_walrecv *w, uint64_t write, uint64_t flush, pf_err *err)
{
    uint8_t msg[34];
    msg[0] = 'r';
    put64(msg + 1, write);
    put64(msg + 9, flush);
    put64(msg + 17, 0); /* applied: nothing is applied here */
    put64(msg + 25, (uint64_t)pg_now());
    msg[33] = 0;
    if (PQputCopyData(w->c, (const char *)msg, sizeof msg) <= 0 || PQflush(w->c))
        return fail(w, PF_ECONN, "sending a status update", err);
    return 0;
}

int pf_walrecv_stop(pf_walrecv *w, pf_err *err)
{
    if (PQputCopyEnd(w->c, NULL) <= 0 || PQflush(w->c))
        return fail(w, PF_ECONN, "ending the stream", err);
    /* The server may still send WAL before its CopyDone: what we did not store, its slot
     * keeps. */
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(w->c, &buf, 0);
        if (buf)
            PQfreemem(buf);
        if (n < 0)
            break;
    }
    PGresult *res;
    while ((res = PQgetResult(w->c)))
        PQclear(res);
    return 0;
}
