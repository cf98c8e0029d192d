/* permafrost: global options, configuration and logging; then the command table
 * (cli/commands.h). Global options may appear before or after the command name;
 * everything else belongs to the command. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "cli/journal.h"
#include "cli/monitor.h"
#include "common/log.h"

/* --ping URL: a healthchecks-style ping for this run, whatever the command. */
static const char *ping_flag;
/* stderr is the journal: lines carry their syslog priority ("<3>..."). */
static bool to_journal;

static void usage(FILE *f)
{
    fprintf(f, "usage: permafrost [--repo URL] [--config FILE] [--json] [-q|-v] COMMAND [ARGS]\n\n"
               "Backup and disaster recovery for Mastodon servers.\n\ncommands:\n");
    for (size_t i = 0; i < pf_ncommands; i++)
        fprintf(f, "  %-10s %s\n", pf_commands[i].name, pf_commands[i].summary);
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
            "  --ping URL           ping URL/start, URL and URL/fail (healthchecks.io style)\n"
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
    char line[1200];
    snprintf(line, sizeof line, "permafrost: %s%s", level == PF_LOG_WARN ? "warning: " : "", msg);
    pf_monitor_log_line(line);
    fprintf(stderr, "%s%s\n", to_journal ? pf_journal_prefix(level) : "", line);
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
        else if (!strcmp(a, "--ping"))
            target = &ping_flag;
        else if (!strncmp(a, "--repo=", 7)) {
            pf_g.repo_url = a + 7;
            continue;
        } else if (!strncmp(a, "--config=", 9)) {
            pf_g.config_file = a + 9;
            continue;
        }
        if (target) {
            if (i + 1 >= argc) {
                pf_cli_usage(NULL, "%s needs a value", a);
                return -1;
            }
            *target = argv[++i];
            if (conn) {
                pf_g.store_opts.connections = atoi(conn);
                if (pf_g.store_opts.connections < 1 || pf_g.store_opts.connections > 64) {
                    pf_cli_usage(NULL, "--connections wants a number from 1 to 64");
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

/* The commands that run as jobs from timers: they ping, notify and write metrics. */
static bool is_job(const char *name)
{
    static const char *const jobs[] = {"backup", "restore", "check", "drill",
                                       "forget", "prune",   "copy"};
    for (size_t i = 0; i < sizeof jobs / sizeof *jobs; i++)
        if (!strcmp(name, jobs[i]))
            return true;
    return false;
}

/* The ping URL for this run: --ping, else the config's key for the command. */
static const char *ping_url_for(const char *name)
{
    if (ping_flag)
        return ping_flag;
    if (!strcmp(name, "backup"))
        return pf_config_get("ping_url");
    if (!strcmp(name, "check"))
        return pf_config_get("check_ping_url");
    if (!strcmp(name, "drill"))
        return pf_config_get("drill_ping_url");
    return NULL;
}

/* Monitoring never fails the job: a ping that does not get through is a warning. */
static void ping(const char *url, enum pf_ping_event ev, const char *body)
{
    pf_err e = {0};
    if (url && pf_ping_send(url, ev, body, 10, &e) < 0)
        pf_warn("ping: %s", e.msg);
}

static int run_job(int argc, char **argv)
{
    const char *name = argv[0];
    const char *url = ping_url_for(name);
    if (url && strncmp(url, "http://", 7) && strncmp(url, "https://", 8)) {
        return pf_cli_usage(NULL, "--ping %s: not an http:// or https:// URL", url);
    }
    pf_run_report_init(&pf_monitor_report, name, pf_wall_time());
    ping(url, PF_PING_START, NULL);
    int rc = pf_cmd_dispatch(argc, argv);
    pf_monitor_report.exit_code = rc;
    pf_monitor_report.finished = pf_wall_time();
    char tail[PF_MONITOR_TAIL_LINES * 520];
    pf_monitor_log_tail(tail, sizeof tail);
    ping(url, rc == 0 ? PF_PING_SUCCESS : PF_PING_FAIL, rc == 0 ? NULL : tail);
    const char *notify = pf_config_get("notify_url");
    if (notify && (rc != 0 || pf_config_true("notify_success"))) {
        char host[256] = "", title[400];
        gethostname(host, sizeof host - 1);
        snprintf(title, sizeof title, "permafrost %s %s on %s (exit %d)", name,
                 rc == 0 ? "succeeded" : "FAILED", host, rc);
        pf_err e = {0};
        if (pf_notify_send(notify, title, rc == 0 ? title : tail, 10, &e) < 0)
            pf_warn("notify: %s", e.msg);
    }
    const char *metrics = pf_config_get("metrics_file");
    pf_err e = {0};
    if (metrics && pf_metrics_write(metrics, &pf_monitor_report, &e) < 0)
        pf_warn("%s", e.msg);
    return rc;
}

int main(int argc, char **argv)
{
    /* Pack and chunk buffers are megabytes each: a fixed mmap threshold returns them to
     * the system when freed (glibc's moving threshold would keep them in the heap), and
     * few arenas keep worker threads from each holding their own high-water mark. */
    mallopt(M_MMAP_THRESHOLD, 1 << 20);
    mallopt(M_ARENA_MAX, 4);
    pf_g.tty = isatty(STDERR_FILENO);
    to_journal = pf_journal_is_stream(STDERR_FILENO);
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
    const pf_command *cmd = pf_cmd_find(argv[1]);
    if (!(cmd && (cmd->flags & PF_CMD_NO_CONFIG)) &&
        pf_config_load(cfg ? cfg : "/etc/permafrost.conf", cfg != NULL, &err))
        return pf_cli_fail(&err);
    apply_config_store_opts();
    if (cmd && is_job(cmd->name))
        return run_job(argc - 1, argv + 1);
    if (ping_flag) {
        fprintf(stderr,
                "permafrost: --ping is for jobs (backup, restore, check, drill, forget, "
                "prune, copy), not %s\n",
                argv[1]);
        return PF_EXIT_USAGE;
    }
    return pf_cmd_dispatch(argc - 1, argv + 1);
}
