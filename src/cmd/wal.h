/* The WAL archive commands (docs/FORMAT.md §16): archive_command and restore_command of a
 * PostgreSQL server archiving into the repository. */
#ifndef PF_CMD_WAL_H
#define PF_CMD_WAL_H

/* permafrost wal-push PATH: 0 only once the file is durable in the repository. */
int cmd_wal_push(int argc, char **argv);
/* permafrost wal-fetch NAME DEST: 1 when NAME was never archived, as restore_command
 * requires. */
int cmd_wal_fetch(int argc, char **argv);

#endif
