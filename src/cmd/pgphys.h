/* Physical PostgreSQL backups and point-in-time restore (issue 12): reached from
 * `backup --pg-physical` and `restore SNAP --pg-physical-target DIR`. */
#ifndef PF_CMD_PGPHYS_H
#define PF_CMD_PGPHYS_H

/* permafrost backup --pg-physical [--pg-conninfo CONNINFO] [--tag TAG]... */
int cmd_backup_pgphys(int argc, char **argv);
/* permafrost restore SNAP --pg-physical-target DATADIR [--to "YYYY-MM-DD HH:MM:SS"|latest]
 * [--restore-command CMD] */
int cmd_restore_pgphys(int argc, char **argv);

#include "common/buf.h"
/* Appends the restore_command that reaches this repository the way this run did: this
 * binary, the repository, and the PERMAFROST_* variables that name the passphrase file,
 * the config and the key cache (which the cluster's OS user must be able to read). */
void pf_pgphys_default_restore_command(pf_buf *cmd);

#endif
