/* What a --live restore that failed half-way says: which components were restored, which
 * were not, and the exact command that restores the rest.
 *
 * Why a printed command and not a rerun that resumes by itself: a resume would have to
 * trust a marker left on the target (the restore may have died with it half-written, and
 * the operator may have changed the target since), and a rerun of the same command would
 * then mean different things on different days. The printed command is explicit: it names
 * the snapshot by its full id (a backup taken meanwhile changes what `latest` means), the
 * components left (--only), and --force only when the failed step wrote something that its
 * refusal checks would now stop at; the operator sees what it will do before running it. */
#ifndef PF_CLI_FINISH_H
#define PF_CLI_FINISH_H

#include <stdbool.h>
#include <stdio.h>

#include "common/buf.h"

/* Appends word to out, quoted for a POSIX shell when it holds anything but letters,
 * digits and -_./=:,@+% (then in single quotes, a ' written as '\''). */
void pf_shell_quote(pf_buf *out, const char *word);

/* The finishing command, malloc'd:
 *   permafrost [--repo R] [--config F] [--ssh-key K] restore ID ARGS --only ONLY [--force]
 * where the global options are those given to this run (pf_g), and ARGS are args[0..n)
 * (the restore's own arguments, without the command name) minus the one at ref_index (the
 * snapshot as given), every --only and its value, and --force. */
char *pf_restore_finish_command(const char *id, char *const *args, int n, int ref_index,
                                const char *only, bool force);

/* Prints, to out:
 *   permafrost: restore stopped in the <failed> step: restored: a, b; not restored: c, d
 *   permafrost: to finish, run:
 *     <command>
 * restored and left are comma-separated lists ("" for none). */
void pf_restore_finish_print(FILE *out, const char *failed, const char *restored, const char *left,
                             const char *command);

#endif
