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
#include "repo/config.h"
#include "repo/crypto.h"
#include "repo/index.h"
#include "repo/packkeys.h"
#include "repo/snapshot.h"
#include "repo/tree.h"
#include "store/store.h"

#define PF_HEX_ID_LEN (2 * PF_ID_LEN)
/* Key files: at most this many are tried when opening, each at most this many bytes, and
 * their scrypt parameters may ask for at most this much memory (128 * N * r bytes) and work
 * (N * r * p): eight times what permafrost writes (N = 2^15, r = 8, p = 1: 32 MiB). A key
 * file is read and tried before anything authenticates it, so these bound what a store
 * attacker can make an open cost. */
#define PF_KEY_FILES_MAX 64
#define PF_KEY_FILE_MAX_BYTES 8192
#define PF_KDF_MAX_MEM (256ull << 20)
#define PF_KDF_MAX_WORK (1ull << 21)

typedef struct pf_repo {
    pf_store *store; /* owned */
    pf_keys keys;
    pf_chunker chunker;
    int format;                     /* config format: PF_CONFIG_V1 or PF_CONFIG_V2 */
    char id[PF_HEX_ID_LEN + 1];     /* repository id from config (64 lower-case hex) */
    char key_id[PF_HEX_ID_LEN + 1]; /* the key file that opened it */
    uint32_t pack_size;             /* target pack size in bytes */
    int zstd_level;
    pf_index *index;
    pthread_mutex_t mu; /* guards index */
    int index_loaded;
    /* When set (remote stores), index files and snapshots are kept here once fetched:
     * they never change, their names are their hashes, and a damaged copy is refetched. */
    char *cache_dir;
    int cache_fd; /* cache_dir, held open (-1 when there is no cache) */
    /* Packs that only a damaged index file listed, re-read from their headers when the
     * index was loaded: the next index file written (by backup) must list them again. */
    pf_index_file recovered;
    /* Opened with a write-only key (keys.write_only): its config MAC key and gear table. */
    uint8_t mac_key[PF_KEY_LEN];
    uint8_t gear[2048];
    /* The keys of the packs blobs were loaded from (pf_repo_load_blob). */
    pf_pack_keys pack_keys;
} pf_repo;

/* Uses <base>/<repository id>/ as the metadata cache (created as needed). Only objects
 * that have authenticated are written there, and what is read back is authenticated again
 * (a damaged or planted file is removed and the object fetched from the store). The cache
 * is not used when <base>/<id> is not a directory of ours that only we can write. */
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
 * opens with it, PF_ECORRUPT when config is malformed or (format 2) fails its MAC, or when
 * a key of format 2 meets a config of format 1 (a downgraded config). Key files beyond
 * the bounds above are skipped with a warning naming them. Takes ownership of store in
 * every case. */
pf_repo *pf_repo_open(pf_store *store, const char *pass, pf_err *err);
/* Opens with the master key itself (key import --paper). A format-2 config verifies the
 * key (PF_EAUTH when its MAC does not match); a format-1 config cannot. */
pf_repo *pf_repo_open_master(pf_store *store, const uint8_t master[PF_KEY_LEN], pf_err *err);
/* Opens with the material of a write-only key (PF_WRITE_MATERIAL_LEN bytes, from
 * pf_repo_write_material) and that key's id, as the key file would: for the key cache of
 * wal-push, which must not pay scrypt per segment. The config's MAC verifies the material
 * (PF_EAUTH when it does not match). */
pf_repo *pf_repo_open_write_material(pf_store *store, const uint8_t *material,
                                     const char key_id[PF_HEX_ID_LEN + 1], pf_err *err);
/* The material of the write-only key r was opened with, into out (PF_WRITE_MATERIAL_LEN
 * bytes). -1 when r was opened with a full key. */
int pf_repo_write_material(const pf_repo *r, uint8_t *out);
void pf_repo_free(pf_repo *r);

/* Key files: seal the master key with a passphrase; id_out gets the new key's id. The key
 * file has the repository's format: in format 2 it is bound to the repository id, and a
 * key of format 2 refuses a config of format 1. */
int pf_repo_add_key(pf_repo *r, const char *pass, char id_out[PF_HEX_ID_LEN + 1], pf_err *err);

/* 0 when r was opened with a full key; else PF_EAUTH with one line saying that `what`
 * needs a full key, naming the write-only key that opened r and what to use instead. */
int pf_repo_need_full_key(const pf_repo *r, const char *what, pf_err *err);

/* Creates a write-only key (docs/FORMAT.md §18) sealed under pass, which must differ from
 * the passphrase that opened r. r must have been opened with a full key. A repository of
 * format 2 becomes format 3 first: config is written again as format 3, then an index file
 * that writers can read, repeating every index file there is (which stay as they are, as
 * does everything else stored). Format 1: PF_EUSAGE ('permafrost upgrade' first). */
int pf_repo_add_write_key(pf_repo *r, const char *pass, char id_out[PF_HEX_ID_LEN + 1],
                          pf_err *err);

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
int pf_object_open(const pf_keys *keys, const char *kind, const uint8_t *p, size_t n, pf_buf *out,
                   pf_err *err);
/* As pf_object_seal with a given salt instead of a random one. Exists only so that the
 * known-answer test vectors of docs/FORMAT.md can be reproduced; real objects always get
 * a fresh random salt (the object key, under which the nonce is always 0, depends on it). */
int pf_object_seal_salt(const pf_keys *keys, const char *kind, const uint8_t salt[PF_SALT_LEN],
                        const void *p, size_t n, pf_buf *out, pf_err *err);
/* The three ways an object is sealed (docs/FORMAT.md §8, §18): "PFO1" under the master key,
 * "PFOW" under the writers' key, "PFOP" to the repository's public key. pf_object_seal
 * picks one by the object's folder and the keys; pf_object_open reads any of them that
 * the keys can (PF_EAUTH when they cannot: a write-only key and "PFO1" or "PFOP"). */
enum { PF_OBJECT_MASTER = 1, PF_OBJECT_WRITER = 2, PF_OBJECT_SEALED = 3 };
/* As pf_object_seal in a given mode, with secret the salt (master, writer) or the
 * ephemeral private key (sealed). For the known-answer tests. */
int pf_object_seal_as(const pf_keys *keys, int mode, const char *kind,
                      const uint8_t secret[PF_SALT_LEN], const void *p, size_t n, pf_buf *out,
                      pf_err *err);

/* Format 1 -> 2: writes config with its MAC (from the values it has now), then a key file
 * of format 2 for pass (the passphrase that opened r), then removes the key file of format
 * 1 that pass opened. Other key files stay as they are (they still open the repository;
 * 'key passwd' with each re-seals it in format 2). Permafrost before format 2 can no
 * longer open the repository afterwards. new_key_id gets the new key's id. */
int pf_repo_upgrade(pf_repo *r, const char *pass, char new_key_id[PF_HEX_ID_LEN + 1], pf_err *err);

/* Loads and decodes index file `id` into f (freed with pf_index_file_free). The error
 * is the object's (PF_ECORRUPT when it fails to authenticate or decode); callers decide
 * whether a damaged index file is fatal and add where they were. */
int pf_repo_load_index_file(pf_repo *r, const char *id, pf_index_file *f, pf_err *err);

/* Every key under data/ with its size, in the store's order. Names that are not packs
 * (pf_name_pack_key) are included: check reports them, others skip them. */
typedef struct pf_pack_list {
    char **keys;
    uint64_t *sizes;
    size_t n;
} pf_pack_list;
int pf_repo_list_packs(pf_repo *r, pf_pack_list *out, pf_err *err);
void pf_pack_list_free(pf_pack_list *l);

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
/* With a write-only key, trees come from the cache of the writer's own (below): the only
 * ones it can read. */
int pf_repo_load_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], pf_tree *t, pf_err *err);
/* A tree the writer saves (p the encoding, id its blob id): with a write-only key and a
 * cache folder, kept there so that the next backup can compare against it. A no-op with a
 * full key. */
void pf_repo_cache_tree(pf_repo *r, const uint8_t id[PF_ID_LEN], const void *p, size_t n);
int pf_repo_has_blob(pf_repo *r, const uint8_t id[PF_ID_LEN]);

/* Snapshots: ref is "latest" (here simply the newest) or a unique id prefix. Commands
 * resolve what the operator typed with pf_snapshot_resolve (repo/resolve.h), which gives
 * "latest" the meaning the command needs. */
int pf_repo_resolve_snapshot(pf_repo *r, const char *ref, char id_out[PF_HEX_ID_LEN + 1],
                             pf_err *err);
int pf_repo_load_snapshot(pf_repo *r, const char *ref, pf_snapshot *s, pf_err *err);
int pf_repo_save_snapshot(pf_repo *r, pf_snapshot *s, pf_err *err);
/* Removes snapshot id (the whole id, as pf_repo_load_all_snapshots gives it). The data it
 * used stays until prune. */
int pf_repo_forget_snapshot(pf_repo *r, const char *id, pf_err *err);
/* Loads every snapshot, sorted oldest first. */
int pf_repo_load_all_snapshots(pf_repo *r, pf_snapshot **out, size_t *n, pf_err *err);
void pf_snapshots_free(pf_snapshot *s, size_t n);

#endif
