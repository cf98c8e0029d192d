/* Physical PostgreSQL backups and point-in-time restore (issue 12): reached from
 * `backup --pg-physical` and `restore SNAP --pg-physical-target DIR`. */
#ifndef PF_CMD_PGPHYS_H
#define PF_CMD_PGPHYS_H

/* permafrost backup --pg-physical [--pg-conninfo CONNINFO] [--tag TAG]... */
int cmd_backup_pgphys(int argc, char **argv);
/* permafrost restore SNAP --pg-physical-target DATADIR [--to "YYYY-MM-DD HH:MM:SS"|latest]
 * [--restore-command CMD] */
int cmd_restore_pgphys(int argc, char **argv);

#endif
