/* permafrost: argv -> command table. Global options may appear before or after the
 * command name; everything else belongs to the command. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/log.h"

struct cmd_struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *summary;
};

static const struct cmd_struct commands[] = {
    {"init", cmd_init, "create a repository"},
    {"backup", cmd_backup, "back up paths, or a whole Mastodon server with --live"},
    {"snapshots", cmd_snapshots, "list snapshots (id, time, host, tags, size)"},
    {"ls", cmd_ls, "list the entries of a snapshot"},
    {"restore", cmd_restore, "restore a snapshot to a directory, or a Mastodon server"},
    {"dump", cmd_dump, "write one file of a snapshot to stdout"},
    {"check", cmd_check, "verify the repository's structure (and data with --read-data)"},
    {"forget", cmd_forget, "remove snapshots by a retention policy (--prune to free space)"},
    {"prune", cmd_prune, "free the space of data no snapshot uses"},
    {"unlock", cmd_unlock, "remove stale locks (--force: every lock)"},
    {"copy", cmd_copy, "copy snapshots into another repository (--to URL)"},
    {"key", cmd_key, "list, add, remove, change passphrases; paper export/import"},
    {"upgrade", cmd_upgrade, "move a repository of format 1 to format 2 (authenticated config)"},
    {"serve", cmd_serve, "serve a repository over ssh (run by sshd; --append-only)"},
    {"config", cmd_config, "check a configuration file (config check [FILE]); list its keys"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: permafrost [--repo URL] [--config FILE] [--json] [-q|-v] COMMAND [ARGS]\n\n"
            "Backup and disaster recovery for Mastodon servers.\n\ncommands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\nglobal options:\n"
            "  --repo URL           repository: a directory, sftp://[user@]host[:port]/path,\n"
            "                       ssh://[user@]host[:port]/path (permafrost serve) or\n"
            "                       s3:https://endpoint/bucket[/prefix] (or $PERMAFROST_REPO)\n"
            "  --config FILE        configuration file (default /etc/permafrost.conf)\n"
            "  --json               machine-readable output\n"
            "  -q, --quiet          no progress or summaries\n"
            "  -v, --verbose        more detail\n"
            "  --ssh-key FILE       SSH private key for sftp:// repositories\n"
            "  --ssh-accept-new     accept an unknown SSH host key once and record it\n"
            "  --connections N      parallel connections to a remote repository\n"
            "\nThe passphrase comes from $PERMAFROST_PASSWORD_FILE, $PERMAFROST_PASSWORD or a\n"
            "prompt on the terminal; never from the command line.\n"
            "\nexit codes: 0 ok, 1 error, 2 usage, 3 backup incomplete (unreadable files),\n"
            "4 damaged data, 5 Mastodon component failed, 6 refusing to overwrite,\n"
            "7 cannot connect, 10 no repository, 11 locked, 12 wrong passphrase or\n"
            "credentials, 13 snapshot or path not found.\n"
            "\n'permafrost COMMAND --help' describes a command; 'man permafrost' all of them.\n");
}

static void log_handler(int level, const char *msg)
{
    if (level == PF_LOG_DEBUG && pf_g.verbosity < 1)
        return;
    if (level == PF_LOG_INFO && pf_g.verbosity < 0)
        return;
    pf_progress_done();
    fprintf(stderr, "permafrost: %s%s\n", level == PF_LOG_WARN ? "warning: " : "", msg);
}

/* Removes global options from argv (wherever they are, up to "--"); returns new argc,
 * or -1 after printing a usage error. */
static int take_globals(int argc, char **argv)
{
    int out = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **target = NULL;
        if (!strcmp(a, "--")) {
            while (i < argc)
                argv[out++] = argv[i++];
            break;
        }
        if (!strcmp(a, "--json")) {
            pf_g.json = true;
            continue;
        }
        if (!strcmp(a, "-q") || !strcmp(a, "--quiet")) {
            pf_g.verbosity = -1;
            continue;
        }
        if (!strcmp(a, "-v") || !strcmp(a, "--verbose")) {
            pf_g.verbosity = 1;
            continue;
        }
        if (!strcmp(a, "--ssh-accept-new")) {
            pf_g.store_opts.ssh_accept_new = 1;
            continue;
        }
        const char *conn = NULL;
        if (!strcmp(a, "--repo") || !strcmp(a, "-r"))
            target = &pf_g.repo_url;
        else if (!strcmp(a, "--config"))
            target = &pf_g.config_file;
        else if (!strcmp(a, "--ssh-key"))
            target = &pf_g.store_opts.ssh_key;
        else if (!strcmp(a, "--connections"))
            target = &conn;
        else if (!strncmp(a, "--repo=", 7)) {
            pf_g.repo_url = a + 7;
            continue;
        } else if (!strncmp(a, "--config=", 9)) {
            pf_g.config_file = a + 9;
            continue;
        }
        if (target) {
            if (i + 1 >= argc) {
                fprintf(stderr, "permafrost: %s needs a value\n", a);
                return -1;
            }
            *target = argv[++i];
            if (conn) {
                pf_g.store_opts.connections = atoi(conn);
                if (pf_g.store_opts.connections < 1 || pf_g.store_opts.connections > 64) {
                    fprintf(stderr, "permafrost: --connections wants a number from 1 to 64\n");
                    return -1;
                }
            }
            continue;
        }
        argv[out++] = argv[i];
    }
    argv[out] = NULL;
    return out;
}

static void apply_config_store_opts(void)
{
    const char *v;
    if (!pf_g.store_opts.ssh_key && (v = pf_config_get("ssh_key")))
        pf_g.store_opts.ssh_key = v;
    if ((v = pf_config_get("ssh_command")))
        pf_g.store_opts.ssh_command = v;
    if ((v = pf_config_get("s3_region")))
        pf_g.store_opts.s3_region = v;
    if (pf_config_get("s3_virtual_host"))
        pf_g.store_opts.s3_virtual_host = pf_config_true("s3_virtual_host");
    if (!pf_g.store_opts.connections && (v = pf_config_get("connections")))
        pf_g.store_opts.connections = atoi(v);
}

int main(int argc, char **argv)
{
    /* Pack and chunk buffers are megabytes each: a fixed mmap threshold returns them to
     * the system when freed (glibc's moving threshold would keep them in the heap), and
     * few arenas keep worker threads from each holding their own high-water mark. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_ARENA_MAX, 4);
    pf_g.tty = isatty(STDERR_FILENO);
    pf_cli_handle_signals();
    pf_log_set_handler(log_handler);
    argc = take_globals(argc, argv);
    if (argc < 0)
        return PF_EXIT_USAGE;
    if (argc < 2) {
        usage(stderr);
        return PF_EXIT_USAGE;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return PF_EXIT_OK;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "version")) {
        printf("permafrost %s\n", PF_VERSION);
        return PF_EXIT_OK;
    }
    pf_err err = {0};
    const char *cfg = pf_g.config_file ? pf_g.config_file : getenv("PERMAFROST_CONFIG");
    /* `config check` reads the file itself, to list every problem rather than the first. */
    if (strcmp(argv[1], "config") &&
        pf_config_load(cfg ? cfg : "/etc/permafrost.conf", cfg != NULL, &err))
        return pf_cli_fail(&err);
    apply_config_store_opts();
    for (size_t i = 0; i < sizeof commands / sizeof *commands; i++)
        if (!strcmp(argv[1], commands[i].name))
            return commands[i].fn(argc - 1, argv + 1);
    fprintf(stderr, "permafrost: unknown command \"%s\": see 'permafrost --help'\n", argv[1]);
    return PF_EXIT_USAGE;
}
