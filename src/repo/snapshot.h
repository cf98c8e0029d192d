/* Snapshots: JSON documents (sealed like every metadata object) naming the root tree,
 * when and where it was taken, and what each Mastodon component recorded. */
#ifndef PF_SNAPSHOT_H
#define PF_SNAPSHOT_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/crypto.h"

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
    cJSON *components; /* object: name -> {"status": "ok"|..., ...}; may be NULL */
    cJSON *manifest;   /* object: versions and row counts; may be NULL */
    cJSON *stats;      /* object: files, bytes, new bytes, ... ; may be NULL */
} pf_snapshot;

void pf_snapshot_init(pf_snapshot *s);
void pf_snapshot_free(pf_snapshot *s);
void pf_snapshot_add_tag(pf_snapshot *s, const char *tag);
void pf_snapshot_add_path(pf_snapshot *s, const char *path);
int pf_snapshot_has_tag(const pf_snapshot *s, const char *tag);
char *pf_snapshot_encode(const pf_snapshot *s); /* malloc'd JSON text */
int pf_snapshot_decode(const char *json, size_t n, pf_snapshot *s, pf_err *err);
/* "2026-11-24 19:40:12" in the snapshot's own time zone. */
void pf_snapshot_time_str(const pf_snapshot *s, char *out, size_t n);
/* Parses "YYYY-MM-DD HH:MM:SS" as local time into Unix nanoseconds and the zone offset. */
int pf_parse_local_time(const char *s, int64_t *time_ns, int32_t *tz_offset, pf_err *err);

#endif
