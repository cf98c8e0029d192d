/* The command table and the one preamble (see commands.h). */
#include "cli/commands.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "cli/keycache.h"
#include "common/log.h"
#include "repo/lock.h"
#include "repo/reserve.h"

/* backup and restore (h1's) keep their argv-style entry points until they move to the
 * component interface; these adapters give them a table entry. */
static int run_backup(pf_cmd_ctx *c)
{
    return cmd_backup(c->argc, c->argv);
}

static int run_restore(pf_cmd_ctx *c)
{
    return cmd_restore(c->argc, c->argv);
}

#define REPO PF_CMD_REPO
#define INDEX PF_CMD_INDEX
#define NONE PF_CMD_LOCK_NONE
#define SHARED PF_CMD_LOCK_SHARED
#define EXCL PF_CMD_LOCK_EXCLUSIVE

/* Locks (docs/DECISIONS.md, "Which commands lock"): what reads packs or snapshots takes a
 * shared lock, so that prune and forget cannot remove them underneath; what removes or
 * rewrites takes an exclusive one. snapshots, unlock and key read or write only small
 * objects that no prune touches, and take none, so that they work beside any holder
 * (unlock exists for a repository that is locked). */
const pf_command pf_commands[] = {
    {"init", cmd_init, "create a repository", &pf_syntax_init, PF_CMD_STORE, NONE, NONE},
    {"backup", run_backup, "back up paths, or a whole Mastodon server with --live", NULL,
     PF_CMD_OWN_SETUP | REPO | INDEX, SHARED, SHARED},
    {"snapshots", cmd_snapshots, "list snapshots (id, time, host, tags, size)",
     &pf_syntax_snapshots, REPO, NONE, NONE},
    {"status", cmd_status, "is it protected? newest backup, last check and drill, repository",
     &pf_syntax_status, REPO, NONE, NONE},
    {"diff", cmd_diff, "what changed between two snapshots", &pf_syntax_diff, REPO | INDEX, SHARED,
     SHARED},
    {"stats", cmd_stats, "restore size, deduplication and compression of snapshots",
     &pf_syntax_stats, REPO | INDEX, SHARED, SHARED},
    {"find", cmd_find, "which snapshots hold a path matching a pattern", &pf_syntax_find,
     REPO | INDEX, SHARED, SHARED},
    {"drill", cmd_drill, "restore into scratch servers and prove it (the RTO, recorded)",
     &pf_syntax_drill, REPO | INDEX, SHARED, SHARED},
    {"ls", cmd_ls, "list the entries of a snapshot", &pf_syntax_ls, REPO | INDEX, SHARED, SHARED},
    {"restore", run_restore, "restore a snapshot to a directory, or a Mastodon server", NULL,
     PF_CMD_OWN_SETUP | REPO | INDEX, SHARED, SHARED},
    {"dump", cmd_dump, "write one file of a snapshot to stdout", &pf_syntax_dump, REPO | INDEX,
     SHARED, SHARED},
    {"check", cmd_check, "verify the repository's structure (and data with --read-data)",
     &pf_syntax_check, REPO, SHARED, SHARED},
    {"forget", cmd_forget, "remove snapshots by a retention policy (--prune to free space)",
     &pf_syntax_forget, REPO | PF_CMD_ROOM_FOR_LOCK, EXCL, NONE},
    {"prune", cmd_prune, "free the space of data no snapshot uses", &pf_syntax_prune,
     REPO | PF_CMD_ROOM_FOR_LOCK, EXCL, EXCL},
    {"unlock", cmd_unlock, "remove stale locks (--force: every lock)", &pf_syntax_unlock, REPO,
     NONE, NONE},
    {"copy", cmd_copy, "copy snapshots into another repository (--to URL)", &pf_syntax_copy, REPO,
     SHARED, SHARED},
    {"key", cmd_key, "list, add, remove, change passphrases; paper export/import", &pf_syntax_key,
     REPO | PF_CMD_PASSPHRASE, NONE, NONE},
    {"upgrade", cmd_upgrade, "move a repository of format 1 to format 2 (authenticated config)",
     &pf_syntax_upgrade, REPO | PF_CMD_PASSPHRASE, EXCL, EXCL},
    /* The server side of ssh:// (run by sshd): no repository opened for it, no config read
     * (a backup host need not have one). */
    {"serve", cmd_serve, "serve a repository over ssh (run by sshd; --append-only)",
     &pf_syntax_serve, PF_CMD_NO_CONFIG, NONE, NONE},
    {"config", cmd_config, "check a configuration file (config check [FILE]); list its keys",
     &pf_syntax_config, PF_CMD_NO_CONFIG, NONE, NONE},
    /* PostgreSQL's archive_command and restore_command: once per segment, so with the
     * cached key; no index (repo/wal.h). wal-fetch reads only what no prune rewrites
     * in place, and a fetch that loses a race with prune fails safe (exit 126). */
    {"wal-push", cmd_wal_push, "archive one PostgreSQL WAL file (archive_command)",
     &pf_syntax_wal_push, REPO | PF_CMD_CACHED_KEY, SHARED, SHARED},
    {"wal-fetch", cmd_wal_fetch, "fetch one archived WAL file (restore_command)",
     &pf_syntax_wal_fetch, REPO | PF_CMD_CACHED_KEY, NONE, NONE},
    /* Long-running: a shared lock for each store only, so that prune is not shut out.
     * The cached key as wal-push's: a restart (of the service, or after a lost
     * connection's backoff ran out) does not pay scrypt's 32 MiB again. */
    {"wal-stream", cmd_wal_stream, "receive WAL over streaming replication (a service)",
     &pf_syntax_wal_stream, REPO | PF_CMD_CACHED_KEY, NONE, NONE},
};
const size_t pf_ncommands = sizeof pf_commands / sizeof *pf_commands;

const pf_command *pf_cmd_find(const char *name)
{
    for (size_t i = 0; i < pf_ncommands; i++)
        if (!strcmp(pf_commands[i].name, name))
            return &pf_commands[i];
    return NULL;
}

pf_cmd_lock pf_cmd_lock_of(const pf_command *cmd, bool dry_run)
{
    return dry_run ? cmd->dry_run_lock : cmd->lock;
}

/* The exclusive lock, also when the repository's disk is full: a full disk must not leave
 * the operator without the one command that frees space. Writing the lock is the first
 * write; when it fails for lack of space, first the temporary files of killed writes are
 * removed (they belong to no live writer, whatever locks exist: see prune.h), then the
 * reserve object (repo/reserve.h), each followed by a new try. */
/* A write-only key adds backups and WAL, lists and adds keys (key.c decides which), and
 * removes stale locks; everything else reads what is stored. */
static bool write_only_may(const char *command)
{
    static const char *const ok[] = {"backup", "wal-push", "unlock", "key"};
    for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
        if (!strcmp(command, ok[i]))
            return true;
    return false;
}

static struct pf_lock *lock_exclusive(pf_repo *r, const char *command, pf_err *err)
{
    struct pf_lock *l = pf_cli_lock(r, true, command, err);
    if (l || !pf_err_no_space(err))
        return l;
    pf_err e = {0};
    int64_t lease;
    uint64_t n = 0, bytes = 0;
    if (!pf_lock_longest_lease(r, &lease, &e) &&
        !pf_store_sweep_tmp(r->store, (int64_t)time(NULL) - lease, &n, &bytes, &e) && n) {
        pf_info("the repository's disk is full: removed %llu temporary file%s of interrupted "
                "writes (%llu bytes) to make room for the lock",
                (unsigned long long)n, n == 1 ? "" : "s", (unsigned long long)bytes);
        pf_err_clear(err);
        if ((l = pf_cli_lock(r, true, command, err)) || !pf_err_no_space(err))
            return l;
    }
    bool released = false;
    pf_err_clear(&e);
    if (!pf_reserve_release(r, &released, &e) && released) {
        pf_info("the repository's disk is full: released its %u KiB reserve to take the lock "
                "(prune writes it again)",
                PF_RESERVE_BYTES / 1024);
        pf_err_clear(err);
        if ((l = pf_cli_lock(r, true, command, err)) || !pf_err_no_space(err))
            return l;
    }
    pf_err_prefix(err,
                  "the disk holding the repository is full and there was no reserve %s to "
                  "free: free a few hundred KiB on it, then run prune",
                  released ? "left" : "or old temporary file");
    return NULL;
}

int pf_cmd_open(pf_cmd_ctx *c, pf_err *err)
{
    const pf_command *cmd = c->cmd;
    if (cmd->flags & PF_CMD_STORE)
        return (c->store = pf_cli_open_store(err)) ? 0 : -1;
    if (!(cmd->flags & PF_CMD_REPO))
        return 0;
    if (cmd->flags & PF_CMD_PASSPHRASE) {
        pf_store *st = pf_cli_open_store(err);
        if (!st)
            return -1;
        if (!(c->passphrase = pf_cli_passphrase(false, NULL, err))) {
            pf_store_free(st);
            return -1;
        }
        c->repo = pf_repo_open(st, c->passphrase, err);
    } else if (cmd->flags & PF_CMD_CACHED_KEY) {
        c->repo = pf_cli_open_repo_cached(write_only_may(cmd->name), err);
    } else {
        c->repo = pf_cli_open_repo(err);
    }
    if (!c->repo)
        return -1;
    if (c->repo->keys.write_only && !write_only_may(cmd->name))
        return pf_repo_need_full_key(c->repo, cmd->name, err);
    pf_cmd_lock lk = pf_cmd_lock_of(cmd, c->dry_run);
    if (lk == PF_CMD_LOCK_EXCLUSIVE && (cmd->flags & PF_CMD_ROOM_FOR_LOCK) && !c->dry_run)
        c->lock = lock_exclusive(c->repo, cmd->name, err);
    else if (lk != PF_CMD_LOCK_NONE)
        c->lock = pf_cli_lock(c->repo, lk == PF_CMD_LOCK_EXCLUSIVE, cmd->name, err);
    if (lk != PF_CMD_LOCK_NONE && !c->lock)
        return -1;
    if ((cmd->flags & PF_CMD_INDEX) && pf_repo_load_index(c->repo, err))
        return -1;
    return 0;
}

static void close_ctx(pf_cmd_ctx *c)
{
    pf_cli_unlock(c->lock);
    pf_repo_free(c->repo);
    pf_store_free(c->store);
    pf_cli_passphrase_free(c->passphrase);
    free(c->opts);
}

/* getopt_long over the syntax's options plus -h/--help, collecting them into c. Returns
 * -1 to go on, or the exit code when --help or a usage error ends the command here. */
static int parse_options(pf_cmd_ctx *c, int argc, char **argv)
{
    const pf_cmd_syntax *sx = c->cmd->syntax;
    size_t nlong = 0;
    while (sx->longopts && sx->longopts[nlong].name)
        nlong++;
    struct option *lo = calloc(nlong + 2, sizeof *lo);
    char *so = malloc(strlen(sx->shortopts ? sx->shortopts : "") + 2);
    c->opts = calloc((size_t)argc + 1, sizeof *c->opts);
    if (!lo || !so || !c->opts) {
        free(lo);
        free(so);
        fprintf(stderr, "permafrost: out of memory\n");
        return PF_EXIT_ERROR;
    }
    lo[0] = (struct option){"help", no_argument, 0, 'h'};
    if (nlong)
        memcpy(lo + 1, sx->longopts, nlong * sizeof *lo);
    so[0] = 'h';
    strcpy(so + 1, sx->shortopts ? sx->shortopts : "");
    int rc = -1, o;
    optind = 1;
    opterr = !pf_g.json; /* --json: the error object alone on stderr, not getopt's line */
    while (rc < 0 && (o = getopt_long(argc, argv, so, lo, NULL)) != -1) {
        if (o == 'h') {
            fputs(sx->usage, stdout);
            rc = PF_EXIT_OK;
        } else if (o == '?' || o == ':') {
            if (pf_g.json)
                pf_cli_usage(NULL,
                             "%s: unknown option or missing argument in \"%s\" (see "
                             "'permafrost %s --help')",
                             argv[0], argv[optind - 1], argv[0]);
            else
                fputs(sx->usage, stderr);
            rc = PF_EXIT_USAGE;
        } else {
            c->opts[c->nopts++] = (pf_cmd_opt){o, optarg};
        }
    }
    free(lo);
    free(so);
    if (rc >= 0)
        return rc;
    c->argc = argc - optind;
    c->argv = argv + optind;
    if (c->argc < sx->min_args || (sx->max_args >= 0 && c->argc > sx->max_args)) {
        if (pf_g.json)
            return pf_cli_usage(NULL, "%s: %s arguments (see 'permafrost %s --help')", argv[0],
                                c->argc < sx->min_args ? "missing" : "too many", argv[0]);
        fputs(sx->usage, stderr);
        return PF_EXIT_USAGE;
    }
    return -1;
}

int pf_cmd_dispatch(int argc, char **argv)
{
    const pf_command *cmd = pf_cmd_find(argv[0]);
    if (!cmd)
        return pf_cli_usage(NULL, "unknown command \"%s\": see 'permafrost --help'", argv[0]);
    pf_cmd_ctx c = {.cmd = cmd, .argc = argc, .argv = argv};
    int rc = cmd->flags & PF_CMD_OWN_SETUP ? -1 : parse_options(&c, argc, argv);
    if (rc < 0)
        rc = cmd->run(&c);
    close_ctx(&c);
    return rc;
}
