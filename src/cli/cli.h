/* The command line: global options, configuration, passphrase, output and exit codes.
 * Only the CLI prints to stdout or exits; library code reports through pf_err and pf_log. */
#ifndef PF_CLI_H
#define PF_CLI_H

#include <cjson/cJSON.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"
#include "store/store.h"

#define PF_VERSION "0.1.0"

/* Exit codes (documented in the README and the man page). */
enum pf_exit {
    PF_EXIT_OK = 0,
    PF_EXIT_ERROR = 1,      /* any other failure */
    PF_EXIT_USAGE = 2,      /* bad arguments, options or configuration */
    PF_EXIT_INCOMPLETE = 3, /* backup written, but some source files could not be read, or
                             * its encryption keys are missing or do not decrypt */
    PF_EXIT_DAMAGED = 4,    /* check found damage, or restore met corrupt data */
    PF_EXIT_COMPONENT = 5,  /* a Mastodon component failed: no snapshot was written */
    PF_EXIT_EXISTS = 6,     /* would overwrite: init on a repository, restore onto data */
    PF_EXIT_CONNECT = 7,    /* a server (database, redis, store) could not be reached */
    PF_EXIT_NOREPO = 10,    /* no repository at that location */
    PF_EXIT_LOCKED = 11,    /* repository locked by another process */
    PF_EXIT_AUTH = 12,      /* wrong passphrase or credentials, or refused by the server */
    PF_EXIT_NOTFOUND = 13,  /* snapshot or path not found */
};

typedef struct pf_cli {
    const char *repo_url;
    const char *config_file;
    bool json;
    int verbosity; /* -1 quiet, 0 normal, 1 verbose */
    bool tty;      /* stderr is a terminal: progress lines */
    pf_store_opts store_opts;
    const char *password_file;
    const char *password_env_name;
} pf_cli;

extern pf_cli pf_g;

/* Config file values ("key" in the file; sections are ignored). NULL when unset. Every
 * key read must be in the table of src/cli/conf.c, which checked the file when it was
 * loaded: a value here has the key's type. */
const char *pf_config_get(const char *key);
/* A yes/no key: true when set to true, yes or 1. */
bool pf_config_true(const char *key);
/* Loads and checks path (see pf_conf_read). A missing file is fine unless must_exist; any
 * problem fails the load (PF_EUSAGE) with the first one and a count of the others. */
int pf_config_load(const char *path, bool must_exist, pf_err *err);

/* Maps an error to an exit code, prints it and returns the code: "permafrost: <msg>"
 * through the log, or under --json one line on stderr,
 * {"error":{"kind":"locked","message":"...","exit_code":11}} (docs/JSON.md, "Errors"). */
int pf_cli_fail(const pf_err *err);
int pf_exit_code(const pf_err *err);
/* The stable name of an exit code in --json errors ("locked" for 11); "error" for any code
 * without its own. */
const char *pf_exit_kind(int exit_code);
/* A usage error found by the command line itself (not through a pf_err): prints the
 * message, then, in the human form, the usage text when there is one; returns
 * PF_EXIT_USAGE. */
int pf_cli_usage(const char *usage, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Reads the passphrase (file, env, or a no-echo prompt on a terminal; confirm asks twice).
 * Returns a malloc'd string or NULL with err filled. */
char *pf_cli_passphrase(bool confirm, const char *prompt, pf_err *err);
void pf_cli_passphrase_free(char *p);
/* The passphrase in the first line of path (a trailing newline is not part of it); what
 * names the file in errors ("passphrase file", "new passphrase file"). Returns a malloc'd
 * string for pf_cli_passphrase_free, or NULL with err set (PF_EUSAGE: unreadable, empty). */
char *pf_cli_passphrase_file(const char *path, const char *what, pf_err *err);

pf_store *pf_cli_open_store(pf_err *err);
/* Refuses (PF_EUSAGE, naming the right form) a repository string that looks like a
 * mistyped URL: "sftp:" without "//", "s3:" not followed by http(s)://, or any other
 * "word:" prefix without "//". Such a string would otherwise become a local directory
 * named "sftp:". "./sftp:x" is a local path. Returns 0 or -1. */
int pf_cli_check_repo_url(const char *url, pf_err *err);
/* Opens the repository from --repo / $PERMAFROST_REPO / config with the passphrase. */
pf_repo *pf_cli_open_repo(pf_err *err);

/* Takes the repository lock; waits up to $PERMAFROST_LOCK_WAIT / config lock_wait seconds
 * (default 30) for a conflicting holder. */
struct pf_lock *pf_cli_lock(pf_repo *r, bool exclusive, const char *command, pf_err *err);
/* Releases a lock taken with pf_cli_lock. NULL is fine. */
void pf_cli_unlock(struct pf_lock *l);
/* SIGINT/SIGTERM/SIGHUP: remove held locks, say what happened, exit 128+signal. */
void pf_cli_handle_signals(void);
/* From now on the first SIGINT/SIGTERM/SIGHUP only sets *flag (a long-running command
 * polls it and stops cleanly); a second one exits as above. */
void pf_cli_signals_stop(volatile sig_atomic_t *flag);

/* Parallel transfers for r: --connections, else what the store suits (4 for sftp and
 * s3), else 0 (the saver's and restorer's own default for the machine). */
int pf_cli_workers(const pf_repo *r);

/* --json output, schema version PF_JSON_SCHEMA (docs/JSON.md). One document per command on
 * stdout: an object, or for the commands whose result is a list, an array. */
#define PF_JSON_SCHEMA 1
/* Prints o on one line and deletes it. Numbers that are not integers (durations) are
 * rounded to 3 decimals first: no float noise reaches a reader. */
void pf_out_json(cJSON *o);
/* A time as RFC 3339 in UTC with whole seconds, "2026-12-01T07:26:24Z" (snapshot, lock,
 * record times). */
void pf_json_add_time(cJSON *o, const char *key, int64_t time_ns);
/* A file time as RFC 3339 in UTC with the nanoseconds the file system gave, trailing
 * zeros dropped: "2020-01-02T03:04:05.1234Z", "2020-01-02T03:04:05Z". */
void pf_json_add_file_time(cJSON *o, const char *key, int64_t time_ns);
/* A path (or link target) that may not be UTF-8, exact: docs/JSON.md, "Paths". */
void pf_json_add_path(cJSON *o, const char *key, const char *s);
/* Length of the valid UTF-8 sequence (2..4 bytes) at p, or 0. */
int pf_utf8_len(const unsigned char *p);
/* A list printed as a JSON array one element at a time, so that a long list (ls) is never
 * held whole: each element on its own line, "[" before the first, "]" after the last
 * ("[]" when empty). Zero-initialise; pf_json_stream_end always closes the array, so
 * stdout is valid JSON also when the command then fails (its exit code says so). */
typedef struct pf_json_stream {
    size_t n;
} pf_json_stream;
void pf_json_stream_item(pf_json_stream *st, cJSON *o); /* prints and deletes */
void pf_json_stream_end(pf_json_stream *st);
/* A snapshot's --json object: pf_snapshot_to_json with "time" in RFC 3339 (UTC). */
cJSON *pf_cli_snapshot_json(const pf_snapshot *s);

/* Output helpers. */
void pf_human_bytes(uint64_t n, char *out, size_t len);
void pf_progress_line(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void pf_progress_done(void);
double pf_now(void);       /* monotonic seconds: for durations */
double pf_wall_time(void); /* Unix seconds: for times recorded or reported */

/* Snapshot presentation shared by snapshots, ls and backup (the JSON form is
 * pf_snapshot_to_json, repo/snapshot.h). */
void pf_manifest_summary(const pf_snapshot *s, char *out, size_t n);

/* backup and restore parse their own argv (starting at the command name); the other
 * commands are run through the table of cli/commands.h. */
int cmd_backup(int argc, char **argv);
int cmd_restore(int argc, char **argv);

#endif
