#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/fdsink.h"
#include "repo/resolve.h"
#include "repo/restorer.h"

const pf_cmd_syntax pf_syntax_dump = {
    .usage = "usage: permafrost dump SNAPSHOT PATH\n\n"
             "Writes the bytes of one file of a snapshot to stdout, each block verified first,\n"
             "e.g. permafrost dump latest postgres/mastodon_production.dump | pg_restore ...\n",
    .min_args = 2,
    .max_args = 2};

int cmd_dump(pf_cmd_ctx *c)
{
    const char *ref = c->argv[0], *file = c->argv[1];
    pf_err err = {0};
    pf_snapshot s;
    pf_node n = {0};
    int rc = PF_EXIT_OK;
    pf_snapshot_want want = pf_snapshot_want_for(&file, 1);
    if (pf_cmd_open(c, &err) || pf_snapshot_resolve(c->repo, ref, &want, &s, &err))
        return pf_cli_fail(&err);
    pf_fd_sink out;
    pf_fd_sink_init(&out, STDOUT_FILENO, "stdout");
    if (pf_lookup_path(c->repo, s.tree, file, &n, &err))
        rc = pf_cli_fail(&err);
    else if (n.type != PF_NODE_FILE) {
        pf_err_set(&err, PF_EUSAGE, "%s is not a regular file: use 'restore' for directories",
                   file);
        rc = pf_cli_fail(&err);
    } else if (pf_node_write(c->repo, &n, &out.sink, &err)) {
        pf_err_prefix(&err, "dump %s", file);
        rc = pf_cli_fail(&err);
    }
    pf_node_free(&n);
    pf_snapshot_free(&s);
    return rc;
}
