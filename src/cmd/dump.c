#include <getopt.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "common/fdsink.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

static const char dump_help[] =
    "usage: permafrost dump SNAPSHOT PATH\n\n"
    "Writes the bytes of one file of a snapshot to stdout, each block verified first,\n"
    "e.g. permafrost dump latest postgres/mastodon_production.dump | pg_restore ...\n";

int cmd_dump(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        if (c == 'h') {
            fputs(dump_help, stdout);
            return PF_EXIT_OK;
        }
        fputs(dump_help, stderr);
        return PF_EXIT_USAGE;
    }
    if (argc - optind != 2) {
        fputs(dump_help, stderr);
        return PF_EXIT_USAGE;
    }
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return pf_cli_fail(&err);
    pf_snapshot s;
    pf_node n = {0};
    int rc = PF_EXIT_OK;
    pf_snapshot_want want = pf_snapshot_want_for((const char *const *)(argv + optind + 1), 1);
    if (pf_repo_load_index(r, &err) || pf_snapshot_resolve(r, argv[optind], &want, &s, &err)) {
        pf_repo_free(r);
        return pf_cli_fail(&err);
    }
    pf_fd_sink out;
    pf_fd_sink_init(&out, STDOUT_FILENO, "stdout");
    if (pf_lookup_path(r, s.tree, argv[optind + 1], &n, &err))
        rc = pf_cli_fail(&err);
    else if (n.type != PF_NODE_FILE) {
        pf_err_set(&err, PF_EUSAGE, "%s is not a regular file: use 'restore' for directories",
                   argv[optind + 1]);
        rc = pf_cli_fail(&err);
    } else if (pf_node_write(r, &n, &out.sink, &err)) {
        pf_err_prefix(&err, "dump %s", argv[optind + 1]);
        rc = pf_cli_fail(&err);
    }
    pf_node_free(&n);
    pf_snapshot_free(&s);
    pf_repo_free(r);
    return rc;
}
