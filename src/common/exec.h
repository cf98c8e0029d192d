/* Child processes: pg_dump, pg_restore, psql, ...
 *
 * A child gets an argv (never put secrets in it: /proc/PID/cmdline is world-readable) and
 * an environment built from nothing: of ours only PATH, LANG, LANGUAGE, LC_*, TZ and
 * TMPDIR pass; HOME is ours, or the home of the user it runs as (with USER and LOGNAME);
 * then the caller's overrides. Whatever else we hold (PERMAFROST_PASSWORD, AWS keys, the
 * operator's PG* and REDIS* settings) never reaches a child, so the only secret a child
 * sees is the one its caller hands it on purpose (e.g. PGPASSWORD: /proc/PID/environ is
 * readable only by the child's user and root). A child may run as another OS user
 * (`user`, we must be root): its uid, primary group and supplementary groups, set between
 * fork and exec, so that peer authentication sees that user. Its stdin comes from
 * a pf_source or /dev/null, its stdout goes to a pf_sink or /dev/null, and the last
 * lines of its stderr are kept for the error message, so a failure reads
 * "pg_dump exited 1: pg_dump: error: connection to server ... failed".
 *
 * Memory is bounded: stdout is handed to the sink in chunks of at most 64 KiB and only
 * the last PF_EXEC_TAIL bytes of stderr are kept. */
#ifndef PF_EXEC_H
#define PF_EXEC_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/stream.h"

#define PF_EXEC_TAIL 4096

typedef struct pf_exec_opts {
    /* argv[0] is a path, or a name looked up in PATH. NULL-terminated. */
    const char *const *argv;
    /* Name used in messages ("pg_dump exited 1: ..."); NULL: the basename of argv[0]. */
    const char *name;
    /* What the child gets beyond the allow-list above, NULL-terminated, may be NULL:
     * "KEY=value" sets KEY, "KEY" alone removes it. Later entries win. */
    const char *const *env;
    /* Run as this OS user (uid, gid, groups, HOME); NULL: as ourselves. Anyone but root
     * asking for another user gets PF_EUSAGE before anything runs. */
    const char *user;
    /* Working directory of the child, or NULL for ours. */
    const char *cwd;
    /* Where stdin comes from (read to its end, then the pipe is closed); NULL: /dev/null. */
    pf_source *in;
    /* Where stdout goes; NULL: discarded. */
    pf_sink *out;
    /* When true, stderr is passed through to ours as well as kept for the message. */
    bool stderr_passthrough;
} pf_exec_opts;

typedef struct pf_exec_result {
    int exit_code;  /* exit status, or -1 when killed by a signal */
    int signal;     /* the signal that killed it, or 0 */
    char tail[512]; /* last lines of stderr, newlines turned into "; ", NUL-terminated */
} pf_exec_result;

/* Runs a child to completion, feeding stdin from o->in and stdout to o->out. argv[0] is
 * looked up in our PATH. Returns 0 when it exited with status 0. Otherwise -1 with err:
 *   - cannot start (not found, not executable, no such user, cannot become it):
 *     PF_ENOTFOUND / PF_EUSAGE / PF_EGENERIC, "cannot run NAME: No such file or directory";
 *   - exited non-zero or killed: PF_ECOMPONENT, "NAME exited 2: <stderr tail>" or
 *     "NAME killed by signal 9 (Killed): <stderr tail>";
 *   - o->in or o->out failed: their error, unchanged; the child is then killed (SIGTERM,
 *     then SIGKILL after 5 s) and reaped.
 * `res` (may be NULL) receives the exit status and stderr tail in every case where the
 * child ran. SIGPIPE from a child that stops reading is handled, not fatal. */
int pf_exec_run(const pf_exec_opts *o, pf_exec_result *res, pf_err *err);

/* Convenience: runs argv with env, stdin from `in` (len bytes, may be NULL), and
 * collects stdout into `out` (may be NULL), failing with PF_ECOMPONENT when stdout would
 * exceed max_out bytes. Same errors as pf_exec_run. */
int pf_exec_capture(const char *const *argv, const char *const *env, const char *cwd,
                    const void *in, size_t len, pf_buf *out, size_t max_out, pf_exec_result *res,
                    pf_err *err);

/* A sink that appends to a pf_buf, up to `max` bytes (then fails with PF_ECOMPONENT). */
typedef struct pf_buf_sink {
    pf_sink sink;
    pf_buf *buf;
    size_t max;
} pf_buf_sink;
void pf_buf_sink_init(pf_buf_sink *s, pf_buf *buf, size_t max);

/* A source that reads from memory. */
typedef struct pf_mem_source {
    pf_source source;
    const unsigned char *p;
    size_t len;
    size_t pos;
} pf_mem_source;
void pf_mem_source_init(pf_mem_source *s, const void *p, size_t len);

/* A child that runs beside us for a conversation over its stdin and stdout (the ssh
 * client of the ssh:// store), started as pf_exec_run starts one (same environment, user,
 * cwd; o->in, o->out and o->stderr_passthrough are not used). Its stdin and stdout are
 * sockets, so a write to a child that died is an error (PF_ECONN), never a SIGPIPE. Its
 * stderr is kept (the last PF_EXEC_TAIL bytes), read whenever we wait on it, so a chatty
 * child cannot block. Not for several threads at once: one conversation, one caller. */
typedef struct pf_exec_child pf_exec_child;
/* NULL with err (as pf_exec_run's "cannot start") when it cannot be started. */
pf_exec_child *pf_exec_spawn(const pf_exec_opts *o, pf_err *err);
/* Writes all of p to its stdin: 0, or -1 with PF_ECONN. */
int pf_exec_child_write(pf_exec_child *c, const void *p, size_t n, pf_err *err);
/* Reads exactly n bytes of its stdout: 0; 1 when it ended before the first byte; -1 with
 * PF_ECONN when it ended inside, or failed. */
int pf_exec_child_read(pf_exec_child *c, void *p, size_t n, pf_err *err);
/* The last lines of its stderr so far, joined with "; " (as pf_exec_result.tail). */
void pf_exec_child_tail(pf_exec_child *c, char *out, size_t cap);
/* Closes its stdin and stdout, waits up to 5 s for it to exit (at once SIGTERM, then
 * SIGKILL, with kill_it), fills res (may be NULL) and frees c. 0 when it exited 0. NULL is
 * fine. */
int pf_exec_child_end(pf_exec_child *c, bool kill_it, pf_exec_result *res);

/* Finds an executable named `name` in PATH (or returns a copy of `name` when it contains
 * a '/' and is executable). Returns a malloc'd path or NULL. */
char *pf_exec_which(const char *name);

#endif
