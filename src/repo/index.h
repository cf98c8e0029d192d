/* The in-memory index: blob id -> where it lives (pack, offset, lengths), and the list
 * of known packs with their salts. Entries are kept dense, in one array (52 bytes each);
 * a table of 4-byte positions, open addressing over the (uniformly random) ids, finds
 * them. So a million blobs take ~60 MB, not the ~120 MB of a table of whole entries at
 * its load factor, and growing the table copies positions, not entries.
 * Not thread-safe by itself: the repository serialises access. */
#ifndef PF_INDEX_H
#define PF_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/pack.h"

#define PF_PACK_PENDING UINT32_MAX

typedef struct pf_blob_loc {
    uint32_t pack; /* index into the pack table, or PF_PACK_PENDING while being written */
    uint32_t offset, length, raw_length;
    uint8_t type, comp;
} pf_blob_loc;

typedef struct pf_pack_info {
    uint8_t id[PF_ID_LEN];
    uint8_t salt[PF_SALT_LEN];
    uint8_t kind; /* PF_PACK_MASTER or PF_PACK_SEALED (repo/pack.h) */
} pf_pack_info;

typedef struct pf_index_entry {
    pf_blob_loc loc;
    uint8_t id[PF_ID_LEN];
} pf_index_entry;

typedef struct pf_index {
    /* entries[0 .. nblobs): every blob, in no particular order (removal moves the last
     * one into the hole); positions stay valid until the next add or remove */
    pf_index_entry *entries;
    size_t nblobs, entries_cap;
    uint32_t *slots; /* 0 = empty, else position + 1 */
    size_t nslots;
    pf_pack_info *packs;
    size_t npacks, packs_cap;
    /* pack id -> position in packs, for de-duplicating packs */
    uint32_t *pack_slots;
    size_t npack_slots;
} pf_index;

pf_index *pf_index_new(void);
void pf_index_free(pf_index *ix);
/* Returns the pack's position, adding it when new. */
uint32_t pf_index_add_pack(pf_index *ix, const uint8_t id[PF_ID_LEN],
                           const uint8_t salt[PF_SALT_LEN]);
/* As pf_index_add_pack, keeping the pack's kind. */
uint32_t pf_index_add_pack_info(pf_index *ix, const pf_pack_info *info);
/* Returns the pack's position or -1. */
long pf_index_find_pack(const pf_index *ix, const uint8_t id[PF_ID_LEN]);
/* Adds a blob; when it is already present, keeps the existing location unless that one
 * is pending and this one is not. Returns true when the id was new. */
bool pf_index_add(pf_index *ix, const uint8_t id[PF_ID_LEN], const pf_blob_loc *loc);
/* Replaces a blob's location unconditionally (used when a pending blob lands). */
void pf_index_set(pf_index *ix, const uint8_t id[PF_ID_LEN], const pf_blob_loc *loc);
pf_blob_loc *pf_index_find(const pf_index *ix, const uint8_t id[PF_ID_LEN]);
/* The blob's position in entries, or -1: for callers that keep a byte per blob beside
 * the index (check's marks) instead of a set of ids of their own. */
long pf_index_pos(const pf_index *ix, const uint8_t id[PF_ID_LEN]);
void pf_index_remove(pf_index *ix, const uint8_t id[PF_ID_LEN]);

/* An index file's content (before sealing): the packs it describes, each with its
 * entries, and the ids of index files it supersedes (written by prune). */
typedef struct pf_index_file_pack {
    pf_pack_info info;
    pf_blob_entry *entries;
    size_t count;
} pf_index_file_pack;

typedef struct pf_index_file {
    pf_index_file_pack *packs;
    size_t npacks;
    uint8_t (*supersedes)[PF_ID_LEN];
    size_t nsupersedes;
} pf_index_file;

/* "PFI1" when every pack is PF_PACK_MASTER, else "PFI2", which gives each pack its kind. */
void pf_index_file_encode(const pf_index_file *f, pf_buf *out);
int pf_index_file_decode(const uint8_t *p, size_t n, pf_index_file *f, pf_err *err);
void pf_index_file_free(pf_index_file *f);
/* Adds every pack and blob of f to ix. */
void pf_index_merge(pf_index *ix, const pf_index_file *f);

#endif
