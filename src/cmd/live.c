/* The command line of backup --live and restore --live: see live.h. */
#include "cmd/live.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "component/component.h"

const char *pf_live_default(void)
{
    const char *v = pf_config_get("live");
    return v ? v : "/home/mastodon/live";
}

/* The argv of pf_live_run (live.h): the strings borrowed, the rewritten one in *owned;
 * NULL when out of memory. */
static char **live_argv(int argc, char **argv, int npos, const char *const *with_arg, char **owned)
{
    char **out = calloc((size_t)argc + 1, sizeof *out);
    if (!out)
        return NULL;
    *owned = NULL;
    int at = -1, pos = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--"))
            break;
        if (argv[i][0] != '-') {
            pos++;
            continue;
        }
        if (!strcmp(argv[i], "--live")) {
            at = i;
            continue;
        }
        for (int k = 0; with_arg[k]; k++)
            if (!strcmp(argv[i], with_arg[k])) {
                i++;
                break;
            }
    }
    bool take = at > 0 && at + 1 < argc && argv[at + 1][0] != '-' && pos - 1 >= npos;
    int n = 0;
    for (int i = 0; i < argc; i++) {
        if (take && i == at) {
            if (asprintf(owned, "--live=%s", argv[at + 1]) < 0) {
                free(out);
                return NULL;
            }
            out[n++] = *owned;
            i++;
            continue;
        }
        out[n++] = argv[i];
    }
    out[n] = NULL;
    return out;
}

int pf_live_run(int argc, char **argv, int npos, const char *const *with_arg,
                int (*fn)(int, char **))
{
    char *owned = NULL;
    char **av = live_argv(argc, argv, npos, with_arg, &owned);
    if (!av) {
        fprintf(stderr, "permafrost: out of memory\n");
        return PF_EXIT_ERROR;
    }
    int ac = 0;
    while (av[ac])
        ac++;
    int rc = fn(ac, av);
    free(av);
    free(owned);
    return rc;
}

void pf_live_progress(double started, uint64_t files, uint64_t bytes, uint64_t bytes_read,
                      uint64_t estimate)
{
    double el = pf_now() - started;
    char done[96], rate[32], eta[32] = "";
    pf_human_bytes(bytes, done, sizeof done);
    pf_human_bytes(el > 0 ? (uint64_t)((double)bytes_read / el) : 0, rate, sizeof rate);
    if (estimate > 0) {
        char total[32];
        pf_human_bytes(estimate, total, sizeof total);
        size_t len = strlen(done);
        snprintf(done + len, sizeof done - len, " of %s (%.0f%%)", total,
                 bytes >= estimate ? 100.0 : 100.0 * (double)bytes / (double)estimate);
    }
    if (estimate > bytes && el > 1 && bytes > 0) {
        double left = (double)(estimate - bytes) / ((double)bytes / el);
        snprintf(eta, sizeof eta, "  ETA %d:%02d", (int)left / 60, (int)left % 60);
    }
    pf_progress_line("[%d:%02d] %llu files, %s, %s/s%s", (int)el / 60, (int)el % 60,
                     (unsigned long long)files, done, rate, eta);
}

int pf_live_option(int c, const char *arg, const char **live, unsigned *only)
{
    if (c == 'L') {
        *live = arg ? arg : pf_live_default();
        return 0;
    }
    pf_err err = {0};
    return pf_component_parse_only(arg, only, &err) ? pf_cli_fail(&err) : 0;
}

int pf_live_usage(const char *help, const char *command)
{
    if (pf_g.json)
        return pf_cli_usage(NULL, "%s: bad option or missing value (see 'permafrost %s --help')",
                            command, command);
    fputs(help, stderr);
    return PF_EXIT_USAGE;
}
