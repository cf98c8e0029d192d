/* Telling the outside world how a command went: healthchecks.io-style pings, a webhook
 * notification (ntfy or any URL that takes a POSTed text) and a Prometheus textfile for
 * node_exporter's textfile collector. None of these may fail the command they report on:
 * the functions here return -1 with err filled, and the caller only warns. */
#ifndef PF_MONITOR_H
#define PF_MONITOR_H

#include <stddef.h>
#include <stdint.h>

#include "common/err.h"

/* What a finished command reports. Counters that a command does not have stay at -1 and
 * are not written. */
typedef struct pf_run_report {
    const char *command; /* "backup", "check", ... (a Prometheus label value) */
    int exit_code;
    double started, finished; /* Unix seconds */
    int64_t files, bytes_read, bytes_added, bytes_stored;
    int64_t repo_bytes; /* the repository's stored size, when the command knows it */
    /* Whole-server backups: each component's name and whether it succeeded. */
    size_t ncomponents;
    struct {
        const char *name;
        int ok;
    } components[8];
} pf_run_report;

/* A report with every counter unknown (-1). */
void pf_run_report_init(pf_run_report *r, const char *command, double started);

/* The report of this process's command: the dispatcher initialises it, a command fills
 * what it knows (a backup its counters and components), and the dispatcher finishes and
 * writes it. */
extern pf_run_report pf_monitor_report;

/* Keeps the last PF_MONITOR_TAIL_LINES log lines of this process, the body of a failure
 * ping. Called by the CLI's log handler for every line it prints. */
#define PF_MONITOR_TAIL_LINES 20
void pf_monitor_log_line(const char *line);
/* The kept lines, oldest first, '\n'-terminated, into out (truncated to n, NUL-terminated). */
void pf_monitor_log_tail(char *out, size_t n);

enum pf_ping_event { PF_PING_START, PF_PING_SUCCESS, PF_PING_FAIL };

/* The healthchecks.io convention: base + "/start", base, base + "/fail" (one trailing '/'
 * of base is dropped). Returns 0, or -1 when out is too small. */
int pf_ping_url(const char *base, enum pf_ping_event ev, char *out, size_t n);
/* POSTs body (may be NULL: an empty body) to the ping URL of ev, with timeout_s seconds
 * for the whole request. Fails (-1, PF_ECONN or PF_EIO) when the server cannot be reached
 * or answers with a status of 400 or more. */
int pf_ping_send(const char *base, enum pf_ping_event ev, const char *body, long timeout_s,
                 pf_err *err);
/* POSTs a text message to url (ntfy takes the body as the notification; a title header
 * gives it a heading). Same failure rules as pf_ping_send. */
int pf_notify_send(const char *url, const char *title, const char *body, long timeout_s,
                   pf_err *err);

/* Writes the report into the Prometheus textfile at path, atomically (a temporary file in
 * the same directory, then rename), mode 0644. Samples of other commands already in the file
 * are kept, so the backup timer and the check timer can share one file; for this command the
 * file's last success time is kept when this run failed. Metric names and meanings are in
 * docs/permafrost.conf.5 (metrics_file). */
int pf_metrics_write(const char *path, const pf_run_report *r, pf_err *err);

#endif
