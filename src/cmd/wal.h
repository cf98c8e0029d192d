/* The WAL archive commands (docs/FORMAT.md §16): archive_command and restore_command of a
 * PostgreSQL server archiving into the repository. */
#ifndef PF_CMD_WAL_H
#define PF_CMD_WAL_H

/* cmd_wal_push (wal-push PATH: 0 only once the file is durable in the repository) and
 * cmd_wal_fetch (wal-fetch NAME DEST: 1 when NAME was never archived, as restore_command
 * requires) are in the command table (cli/commands.h). */

struct pf_repo;
/* One line for `snapshots`: the newest archived WAL segment and when it was pushed (the
 * point a restore reaches now); nothing when the repository archives no WAL. */
void pf_wal_print_newest(struct pf_repo *r);

#endif
