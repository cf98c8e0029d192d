/* A physical base backup of a PostgreSQL cluster, taken through the replication protocol
 * (BASE_BACKUP over a libpq replication connection, as pg_basebackup does) and streamed
 * into a snapshot as a tree of files: nothing is written to local disk, and relation files
 * that did not change deduplicate against the previous base backup through the chunker.
 *
 * Snapshot layout: postgres-physical/base/... (the data directory, backup_label
 * included) and postgres-physical/backup_manifest. The WAL it needs to become consistent
 * (start_wal .. end_wal) is not in it: it comes from the WAL archive (docs/FORMAT.md §16),
 * into which the server's archive_command must push. */
#ifndef PF_COMPONENT_PGPHYS_H
#define PF_COMPONENT_PGPHYS_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/archiver.h"

#define PF_PGPHYS_DIR "postgres-physical"

/* Streams a base backup of the server conninfo names (libpq keywords or a URI; PG*
 * variables fill the rest; replication is added) into parent/postgres-physical/. Fills
 * component with status, timeline, start/end LSN and WAL file names, the server version
 * and the time the backup ended. Tablespaces outside the data directory are refused (not
 * supported yet). PF_ECONN when the server cannot be reached, PF_ECOMPONENT when the
 * backup fails. */
int pf_pgphys_backup(pf_archiver *a, pf_dir *parent, const char *conninfo, cJSON *component,
                     pf_err *err);

/* The WAL file name holding lsn ("16/B374D848") on timeline tli, for segments of
 * seg_size bytes. -1 when lsn is malformed. */
int pf_pgphys_wal_name(const char *lsn, uint32_t tli, uint64_t seg_size, char out[25]);

#endif
