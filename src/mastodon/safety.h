/* The Mastodon-specific ways a "successful" backup is useless on restore day (issue 16),
 * as the orchestration (backup.c, restore.c) meets them:
 *   - the ACTIVE_RECORD_ENCRYPTION_* keys: found (arsource.h), proven against the database
 *     inside the dump's snapshot (archeck.h), kept in the snapshot with the systemd files
 *     they came from, and compared with a restore target's own;
 *   - pgbouncer: the dump goes to PostgreSQL itself when pgbouncer runs in statement
 *     pooling mode, a restore always (pgbouncer.h);
 *   - search: ES_ENABLED's endpoint in the manifest, `tootctl search deploy` after a
 *     restore (search.h).
 *
 * In the snapshot (docs/FORMAT.md's layout of a Mastodon snapshot):
 *   secrets/active_record_encryption.env   the three keys Mastodon uses, NAME=value
 *                                          lines, 0600, whatever file they came from;
 *   secrets/systemd/<absolute path>        each unit, drop-in or EnvironmentFile= outside
 *                                          .env.production that sets one of them, as it
 *                                          was (mode and owner kept). */
#ifndef PF_MASTODON_SAFETY_H
#define PF_MASTODON_SAFETY_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/err.h"
#include "component/pgbouncer.h"
#include "component/postgres.h"
#include "mastodon/archeck.h"
#include "mastodon/arsource.h"
#include "mastodon/env.h"
#include "repo/archiver.h"
#include "repo/repo.h"

#define PF_SAFETY_SYSTEMD_DIR "systemd"

typedef struct pf_mastodon_safety {
    pf_ar_keyset keys;
    pf_ar_check check; /* check.keys = &keys; the hook's ctx */
    /* The dump's connection after a pgbouncer in statement mode was bypassed. */
    bool bypassed;
    pf_pgbouncer_target real;
} pf_mastodon_safety;

/* Backup, before any component runs: finds the keys (units in unit_path, NULL: the
 * default) and, when pg reaches a pgbouncer that refuses transaction blocks, points *pg at
 * PostgreSQL itself (cfg_host/cfg_port: the config's pg_host/pg_port when set, else
 * pgbouncer's ini at pgb_ini, NULL: the default), saying so with pf_info; pg NULL (the
 * database is not backed up this time) skips that. Returns 0, or -1
 * with err: a unit that cannot be read; statement mode with no way around it
 * (PF_EUSAGE, naming the settings). *s is the caller's, zeroed first; pf_safety_free it. */
int pf_safety_backup_prepare(pf_mastodon_safety *s, const pf_mastodon_env *env,
                             const char *env_path, const char *unit_path, const char *pgb_ini,
                             const char *cfg_host, int cfg_port, pf_pg_conn *pg, pf_err *err);

/* The in-snapshot hook and its context, for pf_pg_dump_opts. */
int pf_safety_in_snapshot(PGconn *conn, void *ctx, pf_err *err);

/* Adds the keys file and the systemd files to the secrets folder; says with pf_info where
 * the keys came from and where the files went. */
int pf_safety_backup_secrets(const pf_mastodon_safety *s, pf_archiver *a, pf_dir *secrets,
                             pf_err *err);

/* After the components: adds "encryption" and "search" to the manifest, prints the loud
 * line (pf_log error level) when the keys are missing or do not fit, and returns whether
 * that makes the backup incomplete. */
bool pf_safety_backup_describe(const pf_mastodon_safety *s, const pf_mastodon_env *env,
                               cJSON *manifest);

void pf_safety_free(pf_mastodon_safety *s);

/* Restore, before anything changes: refuses (PF_EEXIST, unless force) when target_env
 * exists and sets other ACTIVE_RECORD_ENCRYPTION_* keys than the snapshot's (its keys
 * file, else snap_env's), naming the keys that differ. */
int pf_safety_restore_keys_check(pf_repo *r, const uint8_t *tree, const pf_mastodon_env *snap_env,
                                 const char *target_env, bool force, pf_err *err);

/* Restore: when po's admin connection reaches a pgbouncer, points po at PostgreSQL itself
 * (pgbouncer's ini at pgb_ini), the host kept in hostbuf. Returns 0, or -1 with err
 * (PF_EUSAGE) naming the settings that would get around it. */
int pf_safety_restore_pg(pf_pg_restore_opts *po, const char *pgb_ini, char *hostbuf, size_t n,
                         pf_err *err);

/* The steps a restore adds to what is left to do, from the snapshot's manifest: put back
 * the systemd files the keys came from, rebuild the search index. Each a malloc'd line
 * appended to todo[ntodo..max); returns the new count. */
size_t pf_safety_restore_todo(const cJSON *manifest, char **todo, size_t ntodo, size_t max);

/* Drill: on c, a restored copy of the snapshot's database, looks for encrypted values and
 * decrypts one with the snapshot's own keys file. *ok and a line for the drill's report
 * (never a key or a value) in detail. */
void pf_safety_drill_keys(pf_repo *r, const uint8_t *tree, PGconn *c, bool *ok, char *detail,
                          size_t n);

#endif
