/* The component interface: every part of a server that a snapshot holds (secrets,
 * postgres, redis, media) implements the same small table, and the orchestration
 * (src/mastodon/) loops over the registry below, in its order.
 *
 * host is the one component a whole restore leaves out: the machine's files are written
 * back only when asked for (--only host, --host-files).
 *
 * A component's name is its folder in the snapshot (component/layout.h), its word for
 * --only and the prefix of its errors. The orchestrator adds that prefix, once
 * ("backup: postgres: pg_dump exited 1: ..."): a component's own messages say what
 * failed and never name the component. Components log progress with pf_info, starting
 * with their name.
 *
 * Adding a component: one file in src/component/ that defines a `const pf_component`,
 * one entry in the registry in component.c, its settings (if any) in
 * pf_component_settings, filled by the orchestration from .env.production. A check that
 * must run inside the database's own snapshot at backup time goes through postgres.h's
 * pf_pg_dump_opts.in_snapshot, not through a component of its own. */
#ifndef PF_COMPONENT_COMPONENT_H
#define PF_COMPONENT_COMPONENT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "component/owner.h"
#include "component/pgphys.h"
#include "component/postgres.h"
#include "component/redis.h"
#include "repo/archiver.h"
#include "repo/repo.h"
#include "repo/tree.h"

/* What every component may need, filled by the orchestration before the first one runs
 * and read-only to components. Strings are borrowed. */
typedef struct pf_component_settings {
    const char *live;          /* Mastodon's live/ directory */
    const char *env_path;      /* <live>/.env.production */
    bool force;                /* restore: replace what is there */
    int workers;               /* restore: parallel downloads, 0: the restorer's default */
    const pf_app_owner *owner; /* restore as root: who gets restored files; else NULL */

    /* secrets (restore): the file to write, and the settings that must differ from the
     * snapshot's so that Mastodon finds what was restored here. */
    pf_buf *env_text;
    const char *const *edit_key, *const *edit_val;
    int nedit;
    const char *const *stale; /* keys that still name the old server: warned about */
    int nstale;

    /* secrets (backup): more files for the secrets folder, added after .env.production
     * (the keys Mastodon uses and the systemd files they came from, mastodon/safety.h);
     * NULL: none. */
    int (*secrets_extra)(void *ctx, pf_archiver *a, pf_dir *secrets, pf_err *err);
    void *secrets_extra_ctx;

    /* postgres */
    pf_pg_conn pg;                  /* backup: the app's connection */
    const pf_pg_dump_opts *pg_dump; /* backup: what runs in the dump's snapshot; NULL: none */
    bool pg_fresh_dump;             /* backup: never reuse the parent's dump */
    int pg_dump_jobs;               /* backup: > 1: pg_dump -Fd -j N, file by file */
    const char *pg_password_from;   /* backup: who supplied pg.password, for a refusal
                                     * ("DB_PASS of /x/.env.production"); NULL: nobody */
    pf_pg_restore_opts pg_restore;

    /* postgres-physical (pgphys.h) */
    const char *pg_physical_conninfo;     /* backup: libpq conninfo of a role with REPLICATION;
                                           * NULL: pg above */
    const pf_pgphys_restore_opts *pgphys; /* restore: where, and to which time */
    const pf_snapshot *pgphys_snap;       /* restore: the snapshot whose base backup is used
                                           * (the newest that ended before the target) */

    /* redis */
    pf_redis_conn redis;
    const pf_redis_conn *sidekiq; /* Sidekiq's own Redis; NULL: it shares redis */

    /* media */
    const char *media_root;
    bool media_in_s3; /* S3_ENABLED: the uploads are in a bucket, not on this disk */
    bool exclude_cache;
    /* The media bucket (S3_ENABLED, component/s3mirror.h): at backup mirrored into media/
     * (--media-from-s3), at restore the target media/ is uploaded to (--media-to-s3); NULL:
     * none. label names it in messages; acl is S3_PERMISSION for uploads (NULL: none). */
    pf_store *media_bucket;
    const char *media_bucket_label;
    const char *media_acl;

    /* backup: what else looks at the media as they are saved (the media check,
     * mastodon/mediacheck.h): told every media file stored. NULL: nothing. (Its queries run
     * in the dump's snapshot through pg_dump above.) */
    pf_archive_visit_fn media_visit;
    void *media_visit_ctx;
    /* host */
    const char *host_root;    /* where /etc and /var are read and written; NULL: "/" */
    const char *host_exclude; /* space-separated globs of paths as on the host, or NULL */
    const char *local_domain; /* LOCAL_DOMAIN: the nginx sites that name it are kept */
} pf_component_settings;

#define PF_COMPONENT_NODES 4

/* One component's part of one run. The orchestrator zeroes it, sets the inputs, and
 * frees state (free()) and the nodes (pf_node_free) afterwards. */
typedef struct pf_component_run {
    const pf_component_settings *set;
    /* backup */
    pf_archiver *arch;
    pf_dir *root; /* the snapshot's root: the component adds its folder */
    /* the repository: restored from, or (backup) written (a base backup waits for its WAL) */
    pf_repo *repo;
    const uint8_t *tree;              /* the snapshot's root tree */
    pf_node node[PF_COMPONENT_NODES]; /* found by restore_check, used by restore */
    /* backup: the component's entry in the parent snapshot's components (what it recorded
     * last time, e.g. the state its dump was judged on) and that snapshot's id; NULL when
     * there is no parent or it has no such entry. */
    const cJSON *parent;
    const char *parent_id;
    /* backup: a component marked `ready_early` calls ready(run) once, when the components
     * after it may start (postgres: its dump's snapshot exists). Set by the orchestrator;
     * NULL when it runs the components one after another. */
    void (*ready)(struct pf_component_run *run);
    void *ready_ctx;
    /* the component's own */
    void *state;      /* e.g. what a backup learned, for describe */
    const char *part; /* set on failure to name a part: "sidekiq" gives "redis (sidekiq)" */
} pf_component_run;

typedef struct pf_component {
    const char *name;
    const char *const *aliases; /* other --only words (NULL-terminated), or NULL */
    /* backup calls run->ready before it finishes, from its own thread: the orchestrator
     * may run it beside the components after it, with an archiver of its own
     * (pf_archiver_fork), starting them when ready is called. Its describe then runs after
     * they have. */
    bool ready_early;
    /* Adds the component's folder to run->root. On failure nothing of it is recorded
     * (the orchestrator writes no snapshot). */
    int (*backup)(pf_component_run *run, pf_err *err);
    /* After a backup that succeeded: what was saved, into the component's entry of the
     * snapshot's components ("status" first) and the snapshot's manifest. */
    void (*describe)(pf_component_run *run, cJSON *entry, cJSON *manifest);
    /* Looks up what the snapshot holds and refuses (PF_EEXIST unless force, PF_ECONN, ...)
     * before anything changes; every component's check runs before any restore. */
    int (*restore_check)(pf_component_run *run, pf_err *err);
    int (*restore)(pf_component_run *run, pf_err *err);
    /* Checks a restored (or live) server against the snapshot; NULL: nothing to check
     * yet. */
    int (*verify)(pf_component_run *run, pf_err *err);
} pf_component;

extern const pf_component pf_secrets_component, pf_postgres_component, pf_pgphys_component,
    pf_redis_component, pf_media_component, pf_host_component;

/* After the postgres-physical restore of run: how far recovery came; NULL before. */
const pf_pgphys_restored *pf_pgphys_component_result(const pf_component_run *run);

/* The registry, in backup order; NULL-terminated. Bit i of a component mask is
 * pf_components[i]. */
extern const pf_component *const pf_components[];
size_t pf_component_count(void);
/* Every component's bit. */
unsigned pf_component_all(void);
/* c's bit in a component mask (0 for a component not in the registry). */
unsigned pf_component_bit(const pf_component *c);
/* The component named, or aliased, word; NULL when none. */
const pf_component *pf_component_find(const char *word);
/* The mask of "db,secrets,...": each word a name or alias; repeats are fine. An unknown
 * word or an empty list is PF_EUSAGE, naming the valid words. */
int pf_component_parse_only(const char *list, unsigned *mask, pf_err *err);

/* Prefixes err with where it failed, once: "STAGE: NAME" or "STAGE: NAME (PART)". For the
 * orchestrator; components never name themselves. */
void pf_component_error(pf_err *err, const char *stage, const pf_component *c,
                        const pf_component_run *run);

/* Adds file `name` to d with the bytes produce writes; the partial file is dropped when
 * produce fails. */
typedef int (*pf_component_produce_fn)(void *ctx, pf_sink *sink, pf_err *err);
int pf_component_stream(pf_archiver *a, pf_dir *d, const char *name,
                        pf_component_produce_fn produce, void *ctx, pf_err *err);

#endif
