/* A repository: a store holding config, keys, snapshots, index files and packs, opened
 * with a passphrase. This module owns the keys, the in-memory index and the sealed
 * metadata objects; saver.c writes blobs, archiver.c and restorer.c walk trees. */
#ifndef PF_REPO_H
#define PF_REPO_H

#include <pthread.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/chunker.h"
#include "repo/crypto.h"
#include "repo/index.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/store.h"

#define PF_REPO_VERSION 1
#define PF_HEX_ID_LEN (2 * PF_ID_LEN)

typedef struct pf_repo {
    pf_store *store; /* owned */
    pf_keys keys;
    pf_chunker chunker;
    char id[PF_HEX_ID_LEN + 1];     /* repository id from config */
    char key_id[PF_HEX_ID_LEN + 1]; /* the key file that opened it */
    uint32_t pack_size;             /* target pack size in bytes */
    int zstd_level;
    pf_index *index;
    pthread_mutex_t mu; /* guards index */
    int index_loaded;
    /* When set (remote stores), index files and snapshots are kept here once fetched:
     * they never change, their names are their hashes, and a damaged copy is refetched. */
    char *cache_dir;
    /* Packs that only a damaged index file listed, re-read from their headers when the
     * index was loaded: the next index file written (by backup) must list them again. */
    pf_index_file recovered;
} pf_repo;

/* Uses <base>/<repository id>/ as the metadata cache (created as needed). */
void pf_repo_set_cache(pf_repo *r, const char *base);

typedef struct pf_repo_init_opts {
    /* When set, the new repository uses this master key (for `init --copy-key-from`, so
     * that `copy` can move blobs without re-encoding). Otherwise a random one. */
    const uint8_t *master;
    uint32_t chunk_min, chunk_avg, chunk_max; /* 0 = defaults */
} pf_repo_init_opts;

/* Creates config and the first key. Fails with PF_EEXIST when config exists.
 * Takes ownership of store in every case. */
pf_repo *pf_repo_init(pf_store *store, const char *pass, const pf_repo_init_opts *opts,
                      pf_err *err);
/* Opens with a passphrase: PF_ENOREPO when there is no config, PF_EAUTH when no key
 * opens with it. Takes ownership of store in every case. */
pf_repo *pf_repo_open(pf_store *store, const char *pass, pf_err *err);
/* Opens with the master key itself (key import --paper). The key is not verified here. */
pf_repo *pf_repo_open_master(pf_store *store, const uint8_t master[PF_KEY_LEN], pf_err *err);
void pf_repo_free(pf_repo *r);

/* Key files: seal the master key with a passphrase; id_out gets the new key's id. */
int pf_repo_add_key(pf_repo *r, const char *pass, char id_out[PF_HEX_ID_LEN + 1], pf_err *err);

/* Sealed metadata objects under dir/ ("snapshots", "index", "locks"), named by the
 * SHA-256 of their stored bytes; kind binds the content to its use. */
int pf_repo_save_object(pf_repo *r, const char *dir, const void *p, size_t n,
                        char id_out[PF_HEX_ID_LEN + 1], pf_err *err);
/* Loads, checks the name against the content, opens and decompresses. */
int pf_repo_load_object(pf_repo *r, const char *dir, const char *id, pf_buf *out, pf_err *err);
/* Calls cb with every object id under dir/. */
int pf_repo_list_objects(pf_repo *r, const char *dir, int (*cb)(const char *id, void *ctx),
                         void *ctx, pf_err *err);
/* Seals / opens the bytes of a metadata object (exposed for tests and fuzzing). */
int pf_object_seal(const pf_keys *keys, const char *kind, const void *p, size_t n, pf_buf *out,
                   pf_err *err);
int pf_object_open(const pf_keys *keys, const char *kind, const uint8_t *p, size_t n,
                   pf_buf *out, pf_err *err);
/* As pf_object_seal with a given salt instead of a random one. Exists only so that the
 * known-answer test vectors of docs/FORMAT.md can be reproduced; real objects always get
 * a fresh random salt (the object key, under which the nonce is always 0, depends on it). */
int pf_object_seal_salt(const pf_keys *keys, const char *kind, const uint8_t salt[PF_SALT_LEN],
                        const void *p, size_t n, pf_buf *out, pf_err *err);

/* Reads every index file into the in-memory index (once). */
int pf_repo_load_index(pf_repo *r, pf_err *err);
/* Adds to the index packs that no index file lists (left by an interrupted backup), by
 * reading their headers; appends them to found (may be NULL) so they get indexed. */
int pf_repo_index_orphan_packs(pf_repo *r, pf_index_file *found, pf_err *err);
/* Writes an index file for f's packs. */
int pf_repo_save_index(pf_repo *r, const pf_index_file *f, pf_err *err);

/* Store key of a pack: data/<2 hex>/<64 hex>. */
void pf_pack_key_name(const uint8_t id[PF_ID_LEN], char out[80]);

/* Loads one blob (any type) by id, verifying it; appends plaintext to out. */
int pf_repo_load_blob(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_buf *out, pf_err *err);
int pf_repo_load_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_tree *t, pf_err *err);
int pf_repo_has_blob(pf_repo *r, const uint8_t id[PF_ID_LEN]);

/* Snapshots: ref is "latest" or a unique id prefix. */
int pf_repo_resolve_snapshot(pf_repo *r, const char *ref, char id_out[PF_HEX_ID_LEN + 1],
                             pf_err *err);
int pf_repo_load_snapshot(pf_repo *r, const char *ref, pf_snapshot *s, pf_err *err);
int pf_repo_save_snapshot(pf_repo *r, pf_snapshot *s, pf_err *err);
/* Loads every snapshot, sorted oldest first. */
int pf_repo_load_all_snapshots(pf_repo *r, pf_snapshot **out, size_t *n, pf_err *err);
void pf_snapshots_free(pf_snapshot *s, size_t n);

#endif
