/* A whole Mastodon server as one snapshot: which components (component/component.h), in
 * which order, with which settings from live/.env.production. The command line parses
 * argv into the options below and prints; everything between is here.
 *
 * Errors name the component once, as "backup: postgres: <what failed>"; the exit code
 * follows the cause (pf_err code). */
#ifndef PF_MASTODON_MASTODON_H
#define PF_MASTODON_MASTODON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/err.h"
#include "component/component.h"
#include "mastodon/env.h"
#include "mastodon/safety.h"
#include "repo/backup_run.h"
#include "repo/repo.h"
#include "repo/resolve.h"

typedef struct pf_mastodon_backup_opts {
    const char *live; /* Mastodon's live/ directory */
    unsigned only;    /* component mask (pf_component_parse_only); 0: all */
    bool exclude_cache;
    bool media_from_s3; /* S3_ENABLED: mirror the bucket into media/ (component/s3mirror.h) */
    bool fresh_dump;    /* never reuse the parent's dump (DECISIONS.md) */
    int dump_jobs;      /* > 1: pg_dump -Fd -j N, stored file by file */
    const char *const *tags;
    size_t ntags;
    bool set_time; /* record time_ns / tz_offset instead of now */
    int64_t time_ns;
    int32_t tz_offset;
    /* The config file's settings over .env.production's (a replica, another socket);
     * NULL / 0: none. */
    const char *pg_host, *pg_user, *pg_password, *redis_host, *redis_password;
    int pg_port, redis_port;
    /* Where Mastodon's systemd units are (NULL: /etc/systemd/system and
     * /lib/systemd/system) and pgbouncer's configuration (NULL: the default): issue 16. */
    const char *systemd_unit_path, *pgbouncer_ini;
    /* host component: left out (host = no), its root and its excludes; NULL: "/", none */
    bool no_host;
    const char *host_root, *host_exclude;
    /* The database as a logical dump, a physical base backup or both (config `postgres`);
     * 0: logical. With only set, only decides. */
    unsigned postgres_mode;
    const char *pg_physical_conninfo; /* the base backup's connection; NULL: the app's */
} pf_mastodon_backup_opts;

#define PF_POSTGRES_LOGICAL 1u
#define PF_POSTGRES_PHYSICAL 2u
/* "logical", "physical" or "both" into *mode; -1 (PF_EUSAGE) for anything else. */
int pf_mastodon_postgres_mode(const char *word, unsigned *mode, pf_err *err);

typedef struct pf_mastodon_backup {
    const pf_mastodon_backup_opts *o;
    unsigned only;
    pf_mastodon_env env;
    char env_path[4096];
    char pg_password_from[4200];
    pf_component_settings set;
    /* Does the media match the database (mastodon/mediacheck.h)? Made when the run backs
     * up both; its result goes into the snapshot's media_check. */
    struct pf_mediacheck *media_check;
    pf_mastodon_safety safety; /* the keys, pgbouncer, search (mastodon/safety.h) */
    pf_pg_dump_opts dump_opts; /* runs both of the above in the dump's snapshot */
    pf_store *media_bucket;    /* --media-from-s3 with S3_ENABLED: the bucket; else NULL */
    char media_label[2200];    /* "bucket NAME at ENDPOINT", for messages */
    /* The run in progress (set by pf_mastodon_backup_run): a first backup, which has no
     * parent to measure against, gets its progress total from the database. */
    pf_backup_run *run;
    /* After a failed pf_mastodon_backup_run: a component failed (rather than the
     * repository), so no snapshot was written and earlier ones are intact. */
    bool component_failed;
} pf_mastodon_backup;

/* Reads the server's settings (before the repository is opened: a wrong DIR is the
 * likeliest mistake). Returns 0 or -1 with err ("backup: ..."); free m in both cases. */
int pf_mastodon_backup_prepare(pf_mastodon_backup *m, const pf_mastodon_backup_opts *o,
                               pf_err *err);
/* Begins b on r (which the caller has locked), records what the snapshot is, and backs up
 * every selected component in order. With both the database and the media selected, it
 * compares the files the dumped rows name with the media stored (b->snap.media_check): a
 * local file missing makes the snapshot incomplete, and its media component "incomplete".
 * The caller commits b. On failure b holds no snapshot: pf_backup_end it. */
int pf_mastodon_backup_run(pf_mastodon_backup *m, pf_repo *r, const pf_backup_opts *bo,
                           pf_backup_run *b, pf_err *err);
void pf_mastodon_backup_free(pf_mastodon_backup *m);

typedef struct pf_mastodon_restore_opts {
    const char *live;     /* where to rebuild the server */
    const char *snapshot; /* an id, a prefix or "latest" */
    unsigned only;        /* component mask; 0: all */
    bool force;           /* replace what is there */
    const char *pg_host;  /* admin connection; NULL: DB_HOST's socket, else libpq's */
    int pg_port;
    const char *pg_admin, *pg_admin_password;
    bool pg_restore_as_admin;
    int jobs; /* pg_restore -j */
    const char *redis_host;
    int redis_port;
    const char *redis_socket; /* a unix socket instead of host and port (drills) */
    /* Leave a separate Sidekiq Redis alone (its sidekiq.rdb is not restored): a drill has one
     * scratch Redis, and the snapshot's Sidekiq Redis is somebody's live server. */
    bool no_sidekiq;
    const char *media_root; /* absolute; NULL: the target's PAPERCLIP_ROOT_PATH or default */
    int workers;
    const char *pgbouncer_ini; /* NULL: the default (component/pgbouncer.h) */
    /* The host component is restored only when only names it or host_files is set; it
     * writes below host_root (NULL: "/"). */
    bool host_files;
    const char *host_root;
    /* Point-in-time restore (mastodon/pitr.c): the database from the newest base backup
     * that ended before to_ns, recovered from the WAL archive, and the other components
     * from the snapshot nearest before to_ns. PF_PITR_AUTO does it (to the end of the
     * archive) when the snapshot holds a base backup, PF_PITR_ON always (--to), and
     * PF_PITR_OFF never (the logical dump, if any). */
    int pitr;
    int64_t to_ns;               /* PF_PITR_ON: the target; INT64_MAX: the end of the archive */
    const char *pg_data_dir;     /* NULL: /var/lib/postgresql/<major>/main (Debian's) */
    const char *restore_command; /* what the cluster runs to fetch WAL (cmd/pgphys.h) */
    const char *pg_ctl_options;  /* pg_ctl -o for the recovering cluster, or NULL */
    const char *pg_bindir;       /* NULL: the PG_VERSION's binaries */
    /* Upload the media to the bucket of the target's .env.production (the existing file when
     * secrets are not restored, else the snapshot's) instead of writing a directory. */
    bool media_to_s3;
} pf_mastodon_restore_opts;

enum { PF_PITR_AUTO = 0, PF_PITR_OFF, PF_PITR_ON };

#define PF_MASTODON_TODO_MAX 16

/* What a restore did, and the steps left to the operator, for the command to print. */
typedef struct pf_mastodon_restored {
    char id[2 * PF_ID_LEN + 1];
    char *domain; /* LOCAL_DOMAIN, or NULL */
    double seconds;
    char *todo[PF_MASTODON_TODO_MAX]; /* numbered steps; may hold indented lines */
    size_t ntodo;
    bool media_in_s3; /* the media were not in the snapshot: say so after the steps */
    /* When a component's restore failed (after every check passed): its bit, and the bits
     * of those restored before it, so the command can say what is left and how to finish
     * (cli/finish.h). id names the snapshot then too. 0 when nothing failed that way. */
    unsigned failed, restored, selected;
    /* A point-in-time restore: the base backup's snapshot, where recovery stopped (the log's
     * line and its time, 0 when it names none), when the base backup ended, and the time of
     * the snapshot the other components came from. */
    bool pitr;
    char db_id[2 * PF_ID_LEN + 1];
    char reached[256];
    int64_t reached_ns, db_end_ns, rest_ns;
    unsigned gaps;
    char data_dir[4096], conf_dir[4096]; /* the cluster's data and configuration directories */
} pf_mastodon_restored;

/* Resolves the snapshot in r (locked, index loaded), checks every selected component
 * (nothing changes when one refuses), then restores them in order. With force the media
 * tree becomes the snapshot's (what it lacks is removed). After a restore of media whose
 * snapshot lacks cached remote files, the steps left say which tootctl commands fetch them
 * again. On a failed restore step, out->failed/restored say where it stopped. */
int pf_mastodon_restore(pf_repo *r, const pf_mastodon_restore_opts *o, pf_mastodon_restored *out,
                        pf_err *err);
void pf_mastodon_restored_free(pf_mastodon_restored *out);

/* After a point-in-time restore: the time the database reached (recovery's stop, else the
 * base backup's end; 0 unknown), and every fact the restore reports as JSON: "target"
 * (RFC 3339, or "latest" when to_ns is 0 or INT64_MAX), "reached", "reached_by"
 * (recovery | base_backup_end), "recovery_line", "base_backup" {snapshot, ended},
 * "data_dir", "rest" {snapshot, time, older_than_database_seconds: positive when the secrets,
 * Redis and media are older than the database}, "wal_gaps". */
int64_t pf_mastodon_pitr_reached(const pf_mastodon_restored *m);
cJSON *pf_mastodon_pitr_json(const pf_mastodon_restored *m, int64_t to_ns);

/* Whether s holds a base backup (a postgres-physical component) / a logical dump. */
bool pf_mastodon_has_physical(const pf_snapshot *s);
bool pf_mastodon_has_logical(const pf_snapshot *s);
/* The snapshots of a point-in-time restore to o->to_ns: *db, the newest complete
 * whole-server snapshot whose base backup ended at or before it, and *rest, the newest
 * complete whole-server snapshot taken at or before it (o->snapshot other than "latest":
 * both that one). A repository whose whole-server snapshots hold no base backup is one
 * clear PF_EUSAGE line. Free both in every case. */
int pf_mastodon_pitr_pick(pf_repo *r, const pf_mastodon_restore_opts *o,
                          const pf_snapshot_want *want, pf_snapshot *rest, pf_snapshot *db,
                          pf_err *err);
/* The snapshots of a restore: as pf_mastodon_pitr_pick when o->pitr says so (*pitr set),
 * else o->snapshot resolved into *rest (and *db only when it holds a base backup that
 * PF_PITR_AUTO recovers). */
int pf_mastodon_restore_pick(pf_repo *r, const pf_mastodon_restore_opts *o,
                             const pf_snapshot_want *want, pf_snapshot *rest, pf_snapshot *db,
                             bool *pitr, pf_err *err);
/* The components a restore of s takes: a point-in-time restore recovers the base backup in
 * place of the logical dump; otherwise a base backup is left out. */
unsigned pf_mastodon_pitr_only(unsigned only, const pf_mastodon_restore_opts *o,
                               const pf_snapshot *s, bool pitr);
/* Debian's data directory of a cluster of s's major version: /var/lib/postgresql/N/main,
 * and its configuration directory /etc/postgresql/N/main. */
void pf_mastodon_pitr_dirs(const pf_snapshot *s, char *data, size_t nd, char *conf, size_t nc);

/* Mastodon's version from <live>/lib/mastodon/version.rb ("4.2.1"), or "" when unknown. */
void pf_mastodon_version(const char *live, char *out, size_t n);

#endif
