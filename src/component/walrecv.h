/* The receiving end of PostgreSQL's physical streaming replication, over a libpq
 * replication connection: IDENTIFY_SYSTEM, a physical replication slot (READ_ / CREATE_),
 * TIMELINE_HISTORY, START_REPLICATION, then the CopyBoth stream of XLogData and keepalive
 * messages, answered with standby status updates. It knows nothing of repositories: what
 * the WAL becomes is the caller's (cmd/walstream.c).
 *
 * Positions are LSNs as 64-bit integers. Every call returns 0, or -1 with err set:
 * PF_ECONN when the server cannot be reached, the connection broke or the server is
 * starting up, shutting down or full (trying again later may work), PF_EAUTH when it
 * refused us (authentication, no REPLICATION privilege), PF_EUSAGE for a connection
 * string that does not parse, PF_ECOMPONENT when the server refused a command. */
#ifndef PF_COMPONENT_WALRECV_H
#define PF_COMPONENT_WALRECV_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

typedef struct pf_walrecv pf_walrecv;

typedef struct pf_walrecv_info {
    char systemid[32];
    uint32_t tli;      /* the server's current timeline */
    uint64_t xlogpos;  /* its flush position */
    uint64_t seg_size; /* wal_segment_size */
    int version;       /* server_version_num */
} pf_walrecv_info;

/* Connects to conninfo (libpq keywords or a URI; replication is added) and identifies
 * the server. Needs PostgreSQL 15 or newer (READ_REPLICATION_SLOT). A server that does not
 * answer is given 30 s; stop (NULL: none) ends the wait within 100 ms of becoming non-zero
 * (PF_ECONN, "stopped while connecting"). */
pf_walrecv *pf_walrecv_connect(const char *conninfo, const volatile sig_atomic_t *stop,
                               pf_walrecv_info *info, pf_err *err);
void pf_walrecv_close(pf_walrecv *w);

/* The physical slot `slot`: its restart point (0 when it has none yet) and timeline;
 * created (reserving WAL from now on) when missing, which *created says. */
int pf_walrecv_slot(pf_walrecv *w, const char *slot, uint64_t *restart_lsn, uint32_t *restart_tli,
                    bool *created, pf_err *err);

/* The history file of timeline tli (> 1): its file name and bytes. */
int pf_walrecv_history(pf_walrecv *w, uint32_t tli, char name[64], pf_buf *content, pf_err *err);

/* Starts streaming timeline tli from lsn, through slot (NULL: none). */
int pf_walrecv_start(pf_walrecv *w, const char *slot, uint32_t tli, uint64_t lsn, pf_err *err);

typedef enum pf_walrecv_kind {
    PF_WALRECV_NONE = 0, /* nothing arrived in time (or a signal came) */
    PF_WALRECV_DATA,     /* WAL bytes: data, n, at lsn */
    PF_WALRECV_KEEPALIVE,
    PF_WALRECV_END, /* the timeline ended: next_tli starts at next_lsn; start again */
} pf_walrecv_kind;

typedef struct pf_walrecv_msg {
    pf_walrecv_kind kind;
    uint64_t lsn;     /* DATA: where data starts */
    uint64_t wal_end; /* DATA, KEEPALIVE: the server's end of WAL */
    const uint8_t *data;
    size_t n;
    bool reply; /* KEEPALIVE: the server wants a status update now */
    uint32_t next_tli;
    uint64_t next_lsn;
} pf_walrecv_msg;

/* Waits up to timeout seconds for the next message. DATA's bytes stay valid until the
 * next call. */
int pf_walrecv_next(pf_walrecv *w, double timeout, pf_walrecv_msg *m, pf_err *err);

/* A standby status update: received up to write, durable up to flush (the slot's restart
 * point follows flush, so the server keeps what is not yet durable). */
int pf_walrecv_status(pf_walrecv *w, uint64_t write, uint64_t flush, pf_err *err);

/* Ends the stream from our side (SIGTERM) and waits for the server to agree. */
int pf_walrecv_stop(pf_walrecv *w, pf_err *err);

/* Parses one CopyData message of the stream into m (exposed for tests). -1 when it is
 * malformed or of an unknown type. */
int pf_walrecv_parse(const uint8_t *p, size_t n, pf_walrecv_msg *m);

/* An LSN as PostgreSQL writes it ("16/B374D848"); pf_lsn_parse is in repo/wal.h. */
void pf_lsn_format(uint64_t lsn, char out[24]);

#endif
