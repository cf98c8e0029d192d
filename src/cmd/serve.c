#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "serve/serve.h"

const pf_cmd_syntax pf_syntax_serve = {
    .usage = "usage: permafrost serve [--append-only] [--restrict-to-path DIR]\n\n"
             "Serves a repository on stdin/stdout for an ssh:// repository URL: run by sshd, best\n"
             "as a forced command in the backup host's authorized_keys:\n"
             "  command=\"permafrost serve --append-only --restrict-to-path /srv/pf/mastodon\","
             "restrict ssh-ed25519 AAAA...\n"
             "The client names the repository. --append-only: nothing is removed or replaced but\n"
             "locks (forget and prune must run from a trusted machine). --restrict-to-path: only\n"
             "that directory and what is beneath it, no '..', no symbolic links out.\n",
    .shortopts = "",
    .longopts = (const struct option[]){{"append-only", no_argument, 0, 'a'},
                                        {"restrict-to-path", required_argument, 0, 'r'},
                                        {0, 0, 0, 0}},
    .max_args = 0};

int cmd_serve(pf_cmd_ctx *c)
{
    pf_serve_opts o = {0};
    for (size_t i = 0; i < c->nopts; i++) {
        if (c->opts[i].c == 'a')
            o.append_only = true;
        else if (c->opts[i].c == 'r')
            o.restrict_to = c->opts[i].arg;
    }
    pf_err err = {0};
    if (isatty(STDIN_FILENO) || isatty(STDOUT_FILENO)) {
        pf_err_set(&err, PF_EUSAGE,
                   "serve speaks a binary protocol on stdin/stdout for an ssh:// repository: run "
                   "it from sshd, not on a terminal");
        return pf_cli_fail(&err);
    }
    /* A client that goes away is an EPIPE to handle, not a signal to die of. */
    signal(SIGPIPE, SIG_IGN);
    if (pf_serve(STDIN_FILENO, STDOUT_FILENO, &o, &err) < 0) {
        pf_err_prefix(&err, "serve");
        return pf_cli_fail(&err);
    }
    return PF_EXIT_OK;
}
