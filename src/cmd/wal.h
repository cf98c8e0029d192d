/* The WAL archive commands (docs/FORMAT.md §16): archive_command and restore_command of a
 * PostgreSQL server archiving into the repository. */
#ifndef PF_CMD_WAL_H
#define PF_CMD_WAL_H

/* permafrost wal-push PATH: 0 only once the file is durable in the repository. */
int cmd_wal_push(int argc, char **argv);
/* permafrost wal-fetch NAME DEST: 1 when NAME was never archived, as restore_command
 * requires. */
int cmd_wal_fetch(int argc, char **argv);

struct pf_repo;
/* One line for `snapshots`: the newest archived WAL segment and when it was pushed (the
 * point a restore reaches now); nothing when the repository archives no WAL. */
void pf_wal_print_newest(struct pf_repo *r);

#endif
