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
#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/archiver.h"
#include "repo/repo.h"
#include "repo/snapshot.h"

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

/* How a base backup becomes a cluster again: the data directory written from the snapshot,
 * set up for point-in-time recovery, and (start) started and waited for until it promotes.
 * Strings are borrowed. */
typedef struct pf_pgphys_restore_opts {
    const char *target;          /* the data directory: absent or empty */
    int64_t to_ns;               /* recovery_target_time; INT64_MAX: all the archived WAL */
    const char *restore_command; /* the restore_command written (cmd/pgphys.h makes one) */
    bool start;                  /* pg_ctl start, then wait for the promotion */
    bool force;                  /* a stopped cluster in target is moved aside, not refused */
    const char *ctl_options;     /* pg_ctl -o, or NULL */
    const char *pg_bindir;       /* NULL: $PERMAFROST_PG_BINDIR, the PG_VERSION's, or PATH */
    const char *config_dir;      /* started with pg_ctl -D config_dir (Debian's
                                  * /etc/postgresql/N/main) when the data directory has no
                                  * postgresql.conf of its own; NULL: none */
    bool refuse_gaps;            /* a gap in the archive after the base backup is an error
                                  * (PF_ENOTFOUND, naming it) before anything is written */
    bool own_conf;               /* a data directory without postgresql.conf gets an empty
                                  * one (a scratch cluster: the settings come with -o) */
    int workers;
} pf_pgphys_restore_opts;

/* What a restore of a base backup did. */
typedef struct pf_pgphys_restored {
    uint64_t files;
    unsigned gaps;      /* WAL gaps after the base backup (warned about): recovery stops
                         * before the target */
    char gap[300];      /* the first of them, as check says it */
    char reached[256];  /* the recovery log's line saying where it stopped, or "" */
    int64_t reached_ns; /* the time in it; 0 when the log names none */
    int64_t end_ns;     /* when the base backup ended (consistent from there) */
    char log[4096];     /* the recovery log (start) */
} pf_pgphys_restored;

/* The base backup's "postgres-physical" entry of s's components: a string field, or NULL. */
const char *pf_pgphys_field(const pf_snapshot *s, const char *key);
/* When s's base backup ended (ns since the epoch); INT64_MAX when s holds none. */
int64_t pf_pgphys_end_ns(const pf_snapshot *s);

/* Refuses (before anything changes) a target that is a running cluster (PF_EEXIST), or a
 * non-empty directory unless force (then a stopped cluster is moved aside by restore). */
int pf_pgphys_restore_check(const pf_pgphys_restore_opts *o, pf_err *err);

/* Writes s's base backup into o->target (its owner, or as root the postgres user, gets
 * it, modes 0700/0600), appends restore_command and the recovery target to
 * postgresql.auto.conf, writes recovery.signal; with start, starts the cluster and waits
 * until it promotes, and fills out->reached from its log. A WAL file the base backup needs
 * to become consistent missing from the repository is PF_ENOTFOUND before anything is
 * written; a gap in the archive after it is warned about (out->gaps). */
int pf_pgphys_restore(pf_repo *r, const pf_snapshot *s, const pf_pgphys_restore_opts *o,
                      pf_pgphys_restored *out, pf_err *err);

/* The time of a recovery log line ("... time 2026-12-01 16:40:01.123456+00"): ns since the
 * epoch, 0 when it holds none. */
int64_t pf_pgphys_log_time(const char *line);

#endif
