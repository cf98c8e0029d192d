#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <unistd.h>

#include "cli/cli.h"
#include "serve/serve.h"

static const char serve_help[] =
    "usage: permafrost serve [--append-only] [--restrict-to-path DIR]\n\n"
    "Serves a repository on stdin/stdout for an ssh:// repository URL: run by sshd, best as\n"
    "a forced command in the backup host's authorized_keys:\n"
    "  command=\"permafrost serve --append-only --restrict-to-path /srv/pf/mastodon\",restrict "
    "ssh-ed25519 AAAA...\n"
    "The client names the repository. --append-only: nothing is removed or replaced but\n"
    "locks (forget and prune must run from a trusted machine). --restrict-to-path: only\n"
    "that directory and what is beneath it, no '..', no symbolic links out.\n";

int cmd_serve(int argc, char **argv)
{
    static const struct option opts[] = {{"help", no_argument, 0, 'h'},
                                         {"append-only", no_argument, 0, 'a'},
                                         {"restrict-to-path", required_argument, 0, 'r'},
                                         {0, 0, 0, 0}};
    pf_serve_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'h':
            fputs(serve_help, stdout);
            return PF_EXIT_OK;
        case 'a':
            o.append_only = true;
            break;
        case 'r':
            o.restrict_to = optarg;
            break;
        default:
            fputs(serve_help, stderr);
            return PF_EXIT_USAGE;
        }
    }
    pf_err err = {0};
    if (optind < argc) {
        pf_err_set(&err, PF_EUSAGE,
                   "serve: the client names the repository, not the command line (\"%s\"): "
                   "confine it with --restrict-to-path",
                   argv[optind]);
        return pf_cli_fail(&err);
    }
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
