/* What `backup --live` and `restore --live` share on the command line: the optional DIR
 * of --live, and the progress line. The work itself is in src/mastodon/. */
#ifndef PF_CMD_LIVE_H
#define PF_CMD_LIVE_H

#include <stdint.h>

/* DIR when --live has none: 'live' in the config file, else /home/mastodon/live. */
const char *pf_live_default(void);

/* The options of every --live command: c 'L' is --live[=DIR] (arg NULL: the default),
 * 'o' is --only LIST (a mask of component/component.h's registry). Returns 0, or
 * PF_EXIT_USAGE after printing why LIST is wrong. */
int pf_live_option(int c, const char *arg, const char **live, unsigned *only);

/* Runs fn with argv rewritten so that "--live DIR" reads as "--live=DIR" (getopt attaches
 * an optional argument only when written with '='): the word after "--live" becomes its
 * DIR when it is not an option and the command still has its `npos` positional arguments
 * without it (restore's SNAPSHOT). `with_arg` lists the options that consume the next
 * word (NULL-terminated). Returns fn's exit code. */
int pf_live_run(int argc, char **argv, int npos, const char *const *with_arg,
                int (*fn)(int, char **));

/* "[m:ss] N files, X, Y/s" and "  ETA m:ss" when estimate (bytes) says how far there is
 * to go: the progress line of backups and restores. */
void pf_live_progress(double started, uint64_t files, uint64_t bytes, uint64_t bytes_read,
                      uint64_t estimate);

/* A usage error of backup's or restore's own option parser (getopt has said what was wrong):
 * the command's help on stderr, as always; under --json the error object of docs/JSON.md
 * instead. Returns PF_EXIT_USAGE. */
int pf_live_usage(const char *help, const char *command);

#endif
