/* The command table: every command's name, summary, usage, options and what it needs set
 * up (repository, lock, index), in the manner of git's. The dispatcher parses the options
 * from the table, answers -h/--help from the usage text, and pf_cmd_open does the open ->
 * lock -> load index preamble the table describes; commands parse their values and print.
 *
 * Order of a run: pf_cmd_dispatch parses argv with the command's options (a usage error
 * or --help stops there, before anything is opened); the command checks its values and
 * calls pf_cmd_open, so that a usage error never asks for a passphrase; after the command
 * returns, the dispatcher releases the lock and closes the repository. */
#ifndef PF_CLI_COMMANDS_H
#define PF_CLI_COMMANDS_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "repo/repo.h"
#include "store/store.h"

typedef enum pf_cmd_lock {
    PF_CMD_LOCK_NONE = 0,
    PF_CMD_LOCK_SHARED,    /* reads: excludes only the exclusive holders */
    PF_CMD_LOCK_EXCLUSIVE, /* removes or rewrites what others may be reading */
} pf_cmd_lock;

enum pf_cmd_flags {
    PF_CMD_STORE = 1 << 0,      /* opens the store, not the repository (init) */
    PF_CMD_REPO = 1 << 1,       /* opens the repository with the passphrase */
    PF_CMD_PASSPHRASE = 1 << 2, /* keeps the passphrase in the context (upgrade re-seals) */
    PF_CMD_INDEX = 1 << 3,      /* loads the index, after the lock */
    /* When the repository's disk is full, frees temporary files of killed writes, then
     * the reserve (repo/reserve.h), to write the exclusive lock: prune must still run. */
    PF_CMD_ROOM_FOR_LOCK = 1 << 4,
    PF_CMD_NO_CONFIG = 1 << 5, /* main() does not load the config file (config check) */
    /* Parses argv (with its own --help) and does its preamble itself; the table's lock
     * says what it takes. backup and restore, until they move to the component
     * interface. */
    PF_CMD_OWN_SETUP = 1 << 6,
    /* With PF_CMD_REPO: opens with the cached master key (cli/keycache.h), the
     * passphrase only when there is none: wal-push and wal-fetch, once per segment. */
    PF_CMD_CACHED_KEY = 1 << 7,
};

/* One option as parsed: its getopt value and argument (NULL when it takes none). */
typedef struct pf_cmd_opt {
    int c;
    char *arg;
} pf_cmd_opt;

/* What a command accepts: getopt's short and long options (without -h/--help, which the
 * dispatcher adds) and how many operands. */
typedef struct pf_cmd_syntax {
    const char *usage; /* printed for --help (stdout) and for a usage error (stderr) */
    const char *shortopts;
    const struct option *longopts; /* NULL or ended by a zero entry */
    int min_args, max_args;        /* operands; max_args -1: any number */
} pf_cmd_syntax;

struct pf_cmd_ctx;

typedef struct pf_command {
    const char *name;
    int (*run)(struct pf_cmd_ctx *c); /* returns the exit code */
    const char *summary;              /* one line for 'permafrost --help' */
    const pf_cmd_syntax *syntax;      /* NULL with PF_CMD_OWN_SETUP */
    unsigned flags;                   /* enum pf_cmd_flags */
    pf_cmd_lock lock;
    pf_cmd_lock dry_run_lock; /* taken instead when the command set dry_run */
} pf_command;

/* A command's context. The dispatcher owns everything in it and frees it after run. */
typedef struct pf_cmd_ctx {
    const pf_command *cmd;
    int argc;         /* the operands (after the options); with PF_CMD_OWN_SETUP the */
    char **argv;      /* whole argv, starting at the command's name */
    pf_cmd_opt *opts; /* the options, in the order given */
    size_t nopts;
    bool dry_run;    /* set by the command before pf_cmd_open: dry_run_lock applies */
    pf_store *store; /* PF_CMD_STORE */
    pf_repo *repo;   /* PF_CMD_REPO */
    struct pf_lock *lock;
    char *passphrase; /* PF_CMD_PASSPHRASE */
} pf_cmd_ctx;

/* The table, in the order 'permafrost --help' lists it. */
extern const pf_command pf_commands[];
extern const size_t pf_ncommands;

/* The entry named name, or NULL. */
const pf_command *pf_cmd_find(const char *name);

/* Runs argv[0] (a command's name) with its operands and options; returns the exit code.
 * An unknown command, an unknown option or a wrong number of operands prints the usage
 * (or a pointer to it) on stderr and returns PF_EXIT_USAGE; -h/--help prints the usage on
 * stdout and returns PF_EXIT_OK. */
int pf_cmd_dispatch(int argc, char **argv);

/* The preamble the table gives for c->cmd: store or repository, lock (dry_run_lock when
 * c->dry_run), index. Fills c; what it opened stays in c on failure too (the dispatcher
 * frees it). Returns 0, or -1 with err set (the callee's message: the caller prints it). */
int pf_cmd_open(pf_cmd_ctx *c, pf_err *err);

/* The lock the table gives c's command, taking dry_run into account. */
pf_cmd_lock pf_cmd_lock_of(const pf_command *cmd, bool dry_run);

/* The commands' own parts (src/cmd/). */
int cmd_init(pf_cmd_ctx *c);
int cmd_snapshots(pf_cmd_ctx *c);
int cmd_ls(pf_cmd_ctx *c);
int cmd_dump(pf_cmd_ctx *c);
int cmd_check(pf_cmd_ctx *c);
int cmd_forget(pf_cmd_ctx *c);
int cmd_prune(pf_cmd_ctx *c);
int cmd_unlock(pf_cmd_ctx *c);
int cmd_key(pf_cmd_ctx *c);
int cmd_copy(pf_cmd_ctx *c);
int cmd_upgrade(pf_cmd_ctx *c);
int cmd_config(pf_cmd_ctx *c);
int cmd_status(pf_cmd_ctx *c);
int cmd_diff(pf_cmd_ctx *c);
int cmd_drill(pf_cmd_ctx *c);
int cmd_stats(pf_cmd_ctx *c);
int cmd_find(pf_cmd_ctx *c);
int cmd_wal_push(pf_cmd_ctx *c);
int cmd_wal_fetch(pf_cmd_ctx *c);
int cmd_wal_stream(pf_cmd_ctx *c);
int cmd_serve(pf_cmd_ctx *c);

extern const pf_cmd_syntax pf_syntax_init, pf_syntax_snapshots, pf_syntax_ls, pf_syntax_dump,
    pf_syntax_check, pf_syntax_forget, pf_syntax_prune, pf_syntax_unlock, pf_syntax_key,
    pf_syntax_copy, pf_syntax_upgrade, pf_syntax_config, pf_syntax_status, pf_syntax_diff,
    pf_syntax_drill, pf_syntax_stats, pf_syntax_find, pf_syntax_wal_push, pf_syntax_wal_fetch,
    pf_syntax_serve;
extern const pf_cmd_syntax pf_syntax_wal_stream;

#endif
