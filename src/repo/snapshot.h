/* Snapshots: JSON documents (sealed like every metadata object) naming the root tree,
 * when and where it was taken, and what each Mastodon component recorded. */
#ifndef PF_SNAPSHOT_H
#define PF_SNAPSHOT_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/crypto.h"

/* What a snapshot holds. Recorded as "kind" since this field exists; older snapshots get
 * it inferred when loaded (see pf_snapshot_decode). */
typedef enum pf_snapshot_kind {
    PF_SNAP_UNKNOWN = 0,      /* an old snapshot whose contents cannot be told apart */
    PF_SNAP_PATHS,            /* "paths": plain `backup PATH...` */
    PF_SNAP_MASTODON,         /* "mastodon": a whole server (`backup --live`) */
    PF_SNAP_MASTODON_PARTIAL, /* "mastodon-partial": `backup --live --only ...` */
    PF_SNAP_PG_PHYSICAL,      /* "pg-physical": `backup --pg-physical`, a base backup */
} pf_snapshot_kind;

/* At most this many skipped paths are named in a snapshot; skipped_count counts them all. */
#define PF_SNAPSHOT_SKIPPED_MAX 20

typedef struct pf_snapshot {
    char id[2 * PF_ID_LEN + 1]; /* filled when loaded or saved */
    int64_t time_ns;            /* Unix time in nanoseconds */
    int32_t tz_offset;          /* seconds east of UTC where it was taken */
    char *host, *user;
    char **tags;
    size_t ntags;
    char **paths;
    size_t npaths;
    uint8_t tree[PF_ID_LEN];
    char parent[2 * PF_ID_LEN + 1]; /* empty when none */
    char *program;                  /* "permafrost 0.1.0" */
    cJSON *components;              /* object: name -> {"status": "ok"|..., ...}; may be NULL */
    cJSON *manifest;                /* object: versions and row counts; may be NULL */
    cJSON *stats;                   /* object: files, bytes, new bytes, ... ; may be NULL */
    pf_snapshot_kind kind;
    bool kind_inferred; /* kind was not recorded but guessed from the other fields */
    bool complete;      /* every entry was read (false: exit 3 at backup) */
    char **skipped;     /* the first PF_SNAPSHOT_SKIPPED_MAX unreadable paths */
    size_t nskipped;
    uint64_t skipped_count; /* every unreadable entry */
} pf_snapshot;

void pf_snapshot_init(pf_snapshot *s);
void pf_snapshot_free(pf_snapshot *s);
void pf_snapshot_add_tag(pf_snapshot *s, const char *tag);
void pf_snapshot_add_path(pf_snapshot *s, const char *path);
int pf_snapshot_has_tag(const pf_snapshot *s, const char *tag);
/* Records one unreadable path (named while fewer than PF_SNAPSHOT_SKIPPED_MAX are) and
 * marks the snapshot incomplete. */
void pf_snapshot_add_skipped(pf_snapshot *s, const char *path);
/* "paths", "mastodon", "mastodon-partial", "pg-physical" or "unknown". */
const char *pf_snapshot_kind_name(pf_snapshot_kind k);
/* The kind a name stands for; PF_SNAP_UNKNOWN for any other name. */
pf_snapshot_kind pf_snapshot_kind_parse(const char *name);
char *pf_snapshot_encode(const pf_snapshot *s); /* malloc'd JSON text */
/* The snapshot as the operator sees it in JSON (snapshots --json, backup --json): its id,
 * time in UTC and in its own zone, kind, completeness, and what the stored form holds
 * except the program. The caller deletes it. */
cJSON *pf_snapshot_to_json(const pf_snapshot *s);
int pf_snapshot_decode(const char *json, size_t n, pf_snapshot *s, pf_err *err);
/* "2026-11-24 19:40:12" in the snapshot's own time zone (its "time" field). */
void pf_snapshot_time_str(const pf_snapshot *s, char *out, size_t n);
/* "2026-11-24 18:40:12 +0000": the reader's local time zone (TZ applies) with its offset,
 * so snapshots taken in different zones list in order and compare at a glance. */
void pf_snapshot_time_local(const pf_snapshot *s, char *out, size_t n);
/* Parses "YYYY-MM-DD HH:MM:SS" as local time into Unix nanoseconds and the zone offset. */
int pf_parse_local_time(const char *s, int64_t *time_ns, int32_t *tz_offset, pf_err *err);

#endif
