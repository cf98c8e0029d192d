/* permafrost wal-stream: a long-running receiver of a PostgreSQL server's WAL over the
 * replication protocol (component/walrecv.h), storing it in the repository as wal-push
 * does (repo/wal.h), plus the segment still being written as streamed partials
 * (docs/FORMAT.md §16, docs/DECISIONS.md). */
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "component/walrecv.h"
#include "repo/wal.h"

const pf_cmd_syntax pf_syntax_wal_stream = {
    .usage =
        "usage: permafrost wal-stream [--pg-conninfo CONNINFO] [--slot NAME] [--interval SECS]\n\n"
        "Receives a PostgreSQL 15+ server's WAL over the replication protocol, as a standby\n"
        "would, and stores each completed segment in the repository exactly as wal-push does.\n"
        "The segment still being written is stored too, every SECS seconds (default 1) while\n"
        "WAL arrives, so that a restore loses at most the last few seconds; wal-fetch uses it\n"
        "at the end of the archive. Through the physical replication slot NAME (default\n"
        "permafrost, created when missing) the server keeps whatever has not reached the\n"
        "repository while the receiver is down. Runs until SIGTERM, which stores what it\n"
        "has and exits 0; a timeline switch on the server is followed. A lost connection or\n"
        "an unreachable repository is tried again after 1, 2, 4 ... 30 s; it exits non-zero\n"
        "only for what a retry cannot fix (refused authentication, no slot possible, a\n"
        "repository refusing the data). CONNINFO is a libpq\n"
        "connection string (PG* variables fill in the rest); the role needs REPLICATION.\n"
        "contrib/systemd/permafrost-wal-stream.service runs it as a service.\n",
    .longopts = (const struct option[]){{"pg-conninfo", required_argument, 0, 'c'},
                                        {"slot", required_argument, 0, 's'},
                                        {"interval", required_argument, 0, 'i'},
                                        {0, 0, 0, 0}},
    .max_args = 0};

static volatile sig_atomic_t stop_requested;

/* The longest wait between two connection attempts. */
#define RECONNECT_MAX_S 30.0

/* The segment being received: seg_start is its first LSN; its first `have` bytes are in
 * buf, the first `stored` of them durable in the repository (as `last`). */
typedef struct stream {
    pf_repo *r;
    pf_walrecv *w;
    const char *slot;
    uint64_t seg_size;
    uint32_t tli;
    uint64_t seg_start;
    uint8_t *buf;
    size_t have, stored;
    char last[PF_WAL_NAME_MAX + 1];
    uint64_t flushed; /* everything before it is durable in the repository */
    double interval;
    bool started; /* the server accepted START_REPLICATION in this session */
} stream;

/* Sleeps up to secs, waking early for a stop. */
static void pause_for(double secs)
{
    double until = pf_now() + secs;
    while (!stop_requested && pf_now() < until) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* The segment buffer is a mapping of its own: its pages are resident only once WAL was
 * written into them, and are given back once the segment is stored whole, so that what
 * wal-stream holds is the current segment's bytes so far, not always 16 MiB. */
static uint8_t *buf_new(size_t n)
{
    void *p = mmap(NULL, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    return p == MAP_FAILED ? NULL : p;
}

static void buf_release(stream *s)
{
    if (s->buf)
        madvise(s->buf, s->seg_size, MADV_DONTNEED); /* reads as zeros again: have is 0 */
}

static void buf_free(stream *s)
{
    if (s->buf)
        munmap(s->buf, s->seg_size);
    s->buf = NULL;
}

static void seg_name(const stream *s, char out[25])
{
    uint64_t segno = s->seg_start / s->seg_size, per = 0x100000000ull / s->seg_size;
    snprintf(out, 25, "%08X%08X%08X", s->tli, (uint32_t)(segno / per), (uint32_t)(segno % per));
}

/* Stores the segment (whole: all of it, as wal-push; else its first `have` bytes as a
 * streamed partial) under a shared lock taken for this store only, so that a prune can run
 * between two. The chunks of what was last stored of this segment are named, not stored
 * again, when that object is still there (then prune, locked out now, kept its chunks). */
static int store(stream *s, bool whole, pf_err *err)
{
    char seg[25], name[PF_WAL_NAME_MAX + 1];
    seg_name(s, seg);
    struct pf_lock *l = pf_cli_lock(s->r, false, "wal-stream", err);
    if (!l)
        return -1;
    pf_wal_forget_chunks(s->r);
    pf_err e = {0};
    if (s->last[0] && pf_wal_remember(s->r, s->last, &e))
        pf_wal_forget_chunks(s->r);
    pf_wal_push_result res;
    int rc;
    if (whole) {
        snprintf(name, sizeof name, "%s", seg);
        rc = pf_wal_push(s->r, seg, s->buf, s->seg_size, pf_cli_workers(s->r), &res, err);
    } else {
        pf_wal_streamed_name(seg, (uint32_t)s->have, name);
        rc = pf_wal_push_streamed(s->r, seg, s->buf, s->have, s->seg_size, pf_cli_workers(s->r),
                                  &res, err);
    }
    pf_cli_unlock(l);
    if (rc) {
        pf_wal_forget_chunks(s->r);
        return pf_err_prefix(err, "storing %s", name);
    }
    snprintf(s->last, sizeof s->last, "%s", name);
    s->stored = whole ? s->seg_size : s->have;
    s->flushed = s->seg_start + s->stored;
    pf_debug("%s stored (%" PRIu64 " bytes new)", name, res.bytes_new);
    return 0;
}

/* Begins segment seg_start: the longest partial of it already stored is where uploads
 * resume (nothing shorter is stored again) and what the next store deduplicates against. */
static void begin_segment(stream *s, uint64_t seg_start)
{
    s->seg_start = seg_start;
    s->have = s->stored = 0;
    s->last[0] = 0;
    char seg[25], name[PF_WAL_NAME_MAX + 1];
    seg_name(s, seg);
    pf_err e = {0};
    if (pf_wal_newest_streamed(s->r, seg, name, &e) == 0) {
        snprintf(s->last, sizeof s->last, "%s", name);
        s->stored = strtoul(name + 25, NULL, 16);
    }
}

/* Stores timeline tli's history file (every one up to it, since recovery looks for each),
 * as wal-push would: the same bytes again are fine. */
static int store_histories(stream *s, uint32_t tli, pf_err *err)
{
    for (uint32_t t = 2; t <= tli; t++) {
        char name[64];
        pf_buf b = PF_BUF_INIT;
        if (pf_walrecv_history(s->w, t, name, &b, err)) {
            pf_buf_free(&b);
            if (t < tli) { /* an ancestor's file may be gone from the server */
                pf_warn("could not read timeline %u's history from the server: %s", t, err->msg);
                pf_err_clear(err);
                continue;
            }
            return -1;
        }
        struct pf_lock *l = pf_cli_lock(s->r, false, "wal-stream", err);
        pf_wal_push_result res;
        int rc = !l || pf_wal_push(s->r, name, b.data, b.len, 1, &res, err);
        pf_cli_unlock(l);
        pf_buf_free(&b);
        if (rc)
            return pf_err_prefix(err, "storing %s", name);
    }
    return 0;
}

typedef struct newest_ctx {
    uint32_t *tlis;
    uint64_t *segnos; /* the newest whole segment per timeline */
    size_t n, cap;
    uint64_t per;
} newest_ctx;

static int newest_one(const char *name, void *vctx)
{
    newest_ctx *c = vctx;
    if (pf_wal_name_kind(name) != PF_WAL_SEGMENT)
        return 0;
    char part[9] = {0};
    memcpy(part, name, 8);
    uint32_t tli = (uint32_t)strtoul(part, NULL, 16);
    memcpy(part, name + 8, 8);
    uint64_t no = strtoull(part, NULL, 16) * c->per;
    memcpy(part, name + 16, 8);
    no += strtoull(part, NULL, 16);
    for (size_t i = 0; i < c->n; i++)
        if (c->tlis[i] == tli) {
            if (no > c->segnos[i])
                c->segnos[i] = no;
            return 0;
        }
    if (c->n == c->cap) {
        c->cap = c->cap ? 2 * c->cap : 8;
        uint32_t *t = realloc(c->tlis, c->cap * sizeof *t);
        if (t)
            c->tlis = t;
        uint64_t *g = realloc(c->segnos, c->cap * sizeof *g);
        if (g)
            c->segnos = g;
        if (!t || !g)
            return 1;
    }
    c->tlis[c->n] = tli;
    c->segnos[c->n++] = no;
    return 0;
}

static bool newest_on(const newest_ctx *c, uint32_t tli, uint64_t *segno)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->tlis[i] == tli) {
            *segno = c->segnos[i];
            return true;
        }
    return false;
}

/* Where to start: after the repository's newest whole segment on the server's timeline or
 * the newest of its ancestors that the repository has (going on to the next timeline when
 * the repository already holds that one's end), else at the slot's restart point, else at
 * the server's current position; always at a segment's start. */
static int choose_start(stream *s, const pf_walrecv_info *info, uint64_t restart_lsn,
                        uint32_t restart_tli, uint32_t *tli, uint64_t *lsn, pf_err *err)
{
    newest_ctx c = {.per = 0x100000000ull / s->seg_size};
    pf_buf hist = PF_BUF_INIT;
    char hname[64];
    int rc = 0;
    if (pf_wal_list(s->r, newest_one, &c, err))
        return -1;
    uint64_t segno;
    *tli = info->tli;
    *lsn = info->xlogpos;
    if (restart_lsn) {
        *tli = restart_tli ? restart_tli : info->tli;
        *lsn = restart_lsn;
    }
    if (newest_on(&c, info->tli, &segno)) {
        *tli = info->tli;
        *lsn = (segno + 1) * s->seg_size;
    } else if (info->tli > 1 && pf_walrecv_history(s->w, info->tli, hname, &hist, err) == 0) {
        /* The newest ancestor the repository has: stream the rest of it, or when the
         * repository has its end already, the timeline that followed from the switch. */
        for (uint32_t t = info->tli - 1; t >= 1; t--) {
            uint64_t sw;
            uint32_t next = info->tli;
            if (!newest_on(&c, t, &segno) ||
                pf_wal_history_switch((const char *)hist.data, hist.len, t, &sw, &next) < 0)
                continue;
            if ((segno + 1) * s->seg_size <= sw) {
                *tli = t;
                *lsn = (segno + 1) * s->seg_size;
            } else {
                *tli = next;
                *lsn = sw;
            }
            break;
        }
    } else {
        pf_err_clear(err);
    }
    *lsn -= *lsn % s->seg_size;
    pf_buf_free(&hist);
    free(c.tlis);
    free(c.segnos);
    return rc;
}

/* Streams from (tli, lsn) until a stop is asked for (0), the timeline ends (0 with *tli,
 * *lsn where the next one starts, *ended set) or something fails (-1). */
static int stream_timeline(stream *s, uint32_t *tli, uint64_t *lsn, bool *ended, pf_err *err)
{
    *ended = false;
    s->tli = *tli;
    begin_segment(s, *lsn - *lsn % s->seg_size);
    if (s->flushed < s->seg_start)
        s->flushed = s->seg_start;
    if (pf_walrecv_start(s->w, s->slot, *tli, s->seg_start, err))
        return -1;
    s->started = true;
    char at[24];
    pf_lsn_format(s->seg_start, at);
    pf_info("streaming timeline %u from %s%s%s", *tli, at, s->slot ? " through slot " : "",
            s->slot ? s->slot : "");
    double next_store = pf_now() + s->interval, next_status = pf_now() + 10, last_status = 0;
    uint64_t reported = 0;
    for (;;) {
        pf_walrecv_msg m;
        bool reply = false;
        if (stop_requested)
            break;
        /* Signals arrive in another thread: look at the flag twice a second. */
        double wait = next_store - pf_now();
        if (wait > 0.5)
            wait = 0.5;
        if (pf_walrecv_next(s->w, wait > 0 ? wait : 0, &m, err)) {
            /* The server went away: keep what did arrive. */
            pf_err e = {0};
            if (s->have > s->stored && store(s, false, &e))
                pf_warn("%s", e.msg);
            return -1;
        }
        if (m.kind == PF_WALRECV_END) {
            if (s->have > s->stored && store(s, false, err))
                return -1;
            *ended = true;
            *tli = m.next_tli;
            *lsn = m.next_lsn;
            char nat[24];
            pf_lsn_format(m.next_lsn, nat);
            pf_info("timeline %u ended; timeline %u starts at %s", s->tli, m.next_tli, nat);
            return 0;
        }
        if (m.kind == PF_WALRECV_KEEPALIVE)
            reply = m.reply;
        if (m.kind == PF_WALRECV_DATA) {
            uint64_t at_lsn = s->seg_start + s->have;
            if (m.lsn > at_lsn) {
                char want[24], got[24];
                pf_lsn_format(at_lsn, want);
                pf_lsn_format(m.lsn, got);
                return pf_err_set(err, PF_ECOMPONENT,
                                  "the server sent WAL from %s where %s was next: a gap", got,
                                  want);
            }
            const uint8_t *p = m.data;
            size_t n = m.n;
            if (m.lsn < at_lsn) { /* already have it */
                uint64_t skip = at_lsn - m.lsn;
                p += skip < n ? skip : n;
                n -= skip < n ? skip : n;
            }
            while (n) {
                size_t k = s->seg_size - s->have;
                if (k > n)
                    k = n;
                memcpy(s->buf + s->have, p, k);
                s->have += k;
                p += k;
                n -= k;
                if (s->have < s->seg_size)
                    break;
                /* Whole: stored as wal-push would, before anything of the next one. */
                while (store(s, true, err)) {
                    if (err->code == PF_EEXIST || stop_requested)
                        return -1;
                    pf_warn("%s; trying again in %.0f s", err->msg, s->interval);
                    pf_err_clear(err);
                    pause_for(s->interval);
                }
                begin_segment(s, s->seg_start + s->seg_size);
                buf_release(s);
                reply = true;
            }
        }
        if (pf_now() >= next_store) {
            if (s->have > s->stored) {
                uint64_t before = s->flushed;
                if (store(s, false, err)) {
                    if (err->code == PF_EEXIST)
                        return -1;
                    pf_warn("%s; trying again", err->msg);
                    pf_err_clear(err);
                }
                reply = reply || s->flushed != before;
            }
            next_store = pf_now() + s->interval;
        }
        /* The server hears what arrived within a second (pg_stat_replication's write_lsn),
         * what is durable as soon as it is, and every 10 s that we are alive. */
        uint64_t written = s->seg_start + s->have;
        if (reply || pf_now() >= next_status ||
            (written != reported && pf_now() >= last_status + 1)) {
            if (pf_walrecv_status(s->w, written, s->flushed, err))
                return -1;
            reported = written;
            last_status = pf_now();
            next_status = last_status + 10;
        }
    }
    /* SIGTERM: what has arrived goes into the repository, then the server hears of it. */
    if (s->have > s->stored && store(s, false, err))
        return -1;
    if (pf_walrecv_status(s->w, s->seg_start + s->have, s->flushed, err) ||
        pf_walrecv_stop(s->w, err))
        return -1;
    return 0;
}

/* One connection's worth: connects, reads the slot, stores the history files and streams,
 * following timeline switches, until a stop is asked for (0) or something fails (-1).
 * s->started says whether the server began streaming, which resets the caller's backoff. */
static int session(stream *s, const char *conninfo, pf_err *err)
{
    pf_walrecv_info info;
    uint64_t restart_lsn = 0, lsn;
    uint32_t restart_tli = 0, tli;
    bool created = false, ended;
    s->started = false;
    if (!(s->w = pf_walrecv_connect(conninfo, &stop_requested, &info, err))) {
        if (!stop_requested)
            return -1;
        pf_err_clear(err); /* a stop while connecting is a stop, not a failure */
        return 0;
    }
    if (pf_walrecv_slot(s->w, s->slot, &restart_lsn, &restart_tli, &created, err))
        goto fail;
    if (created)
        pf_info("created the physical replication slot %s: the server keeps the WAL that has not "
                "reached the repository",
                s->slot);
    if (s->buf && s->seg_size != info.seg_size)
        buf_free(s);
    s->seg_size = info.seg_size;
    if (!s->buf && !(s->buf = buf_new(s->seg_size))) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto fail;
    }
    if (choose_start(s, &info, restart_lsn, restart_tli, &tli, &lsn, err) ||
        store_histories(s, info.tli, err))
        goto fail;
    bool retried = false;
    while (!stop_requested) {
        if (stream_timeline(s, &tli, &lsn, &ended, err)) {
            if (!retried && s->have == 0 && strstr(err->msg, "has already been removed")) {
                /* The server recycled WAL that never reached the repository (no slot then,
                 * or one dropped): that part is lost to the archive whatever we do; go on
                 * from what the server has, and check names the gap. */
                retried = true;
                pf_warn("%s: WAL is missing from the archive from here on until streaming "
                        "resumes (check names the gap); streaming from the server's %s",
                        err->msg, restart_lsn ? "slot's restart point" : "current position");
                pf_err_clear(err);
                tli = restart_lsn && restart_tli ? restart_tli : info.tli;
                lsn = restart_lsn ? restart_lsn : info.xlogpos;
                continue;
            }
            goto fail;
        }
        if (!ended)
            break;
        if (store_histories(s, tli, err))
            goto fail;
    }
    pf_walrecv_close(s->w);
    s->w = NULL;
    return 0;
fail:
    pf_walrecv_close(s->w);
    s->w = NULL;
    return -1;
}

/* Whether connecting again may fix it: the server gone, restarting or full, the network,
 * a repository that is unreachable or locked for now. Refusals (authentication, a slot
 * that cannot be created, a logical slot, different bytes under a stored name, a
 * damaged or wrong repository) stay. */
static bool worth_retrying(const pf_err *err)
{
    return err->code == PF_ECONN || err->code == PF_EIO || err->code == PF_ELOCKED ||
           err->retryable;
}

int cmd_wal_stream(pf_cmd_ctx *c)
{
    const char *conninfo = NULL, *slot = "permafrost";
    double interval = 1;
    for (size_t i = 0; i < c->nopts; i++) {
        const char *v = c->opts[i].arg;
        if (c->opts[i].c == 'c')
            conninfo = v;
        else if (c->opts[i].c == 's')
            slot = v;
        else if (c->opts[i].c == 'i') {
            char *end;
            interval = strtod(v, &end);
            if (*end || !(interval >= 0.1 && interval <= 3600))
                return pf_cli_usage(c->cmd->syntax->usage,
                                    "--interval %s: give seconds between 0.1 and 3600", v);
        }
    }
    pf_err err = {0};
    if (pf_cmd_open(c, &err))
        return pf_cli_fail(&err);
    pf_cli_signals_stop(&stop_requested);

    stream s = {.r = c->repo, .slot = slot, .interval = interval};
    int rc = PF_EXIT_OK;
    /* A lost connection is met here, not by a restart of the service: what arrived is
     * stored, then the next session resumes at the repository's newest segment, the slot
     * having kept the rest. The wait doubles from 1 s to RECONNECT_MAX_S and starts over
     * once streaming resumes. */
    unsigned attempt = 0;
    for (;;) {
        if (session(&s, conninfo, &err) == 0)
            break;
        if (!worth_retrying(&err) || stop_requested) {
            pf_err_prefix(&err, "wal-stream");
            rc = pf_cli_fail(&err);
            break;
        }
        if (s.started)
            attempt = 0;
        attempt++;
        double wait = attempt > 5 ? RECONNECT_MAX_S : (double)(1u << (attempt - 1));
        if (wait > RECONNECT_MAX_S)
            wait = RECONNECT_MAX_S;
        pf_warn("wal-stream: %s; connecting again in %.0f s (attempt %u)", err.msg, wait, attempt);
        pf_err_clear(&err);
        pause_for(wait);
        if (stop_requested)
            break;
    }
    if (rc == PF_EXIT_OK && s.flushed) {
        char at[24];
        pf_lsn_format(s.flushed, at);
        pf_info("stopped: the repository holds the WAL up to %s", at);
    } else if (rc == PF_EXIT_OK) {
        pf_info("stopped before the server streamed anything");
    }
    buf_free(&s);
    return rc;
}
