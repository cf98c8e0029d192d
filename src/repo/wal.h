/* PostgreSQL's WAL archive inside a repository: one sealed object per WAL file under
 * wal/<timeline>/<name>, naming data blobs in the ordinary packs (docs/FORMAT.md §16).
 *
 * The object's key is PostgreSQL's file name, not a hash, so the seal binds it to its key
 * (AAD): an object moved to another name does not open. It is written last, after its
 * packs and their index file, and never replaced: a second push of the same name succeeds
 * when the bytes are the same and is refused (PF_EEXIST) when they differ.
 *
 * Neither push nor fetch needs the repository's index loaded: a push stores every chunk
 * (WAL does not deduplicate against other data) and records where each landed; a fetch
 * reads through those locations and loads the index only when a pack they name is gone
 * (prune rewrote it). */
#ifndef PF_WAL_H
#define PF_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/repo.h"

typedef enum pf_wal_kind {
    PF_WAL_NONE = 0,
    PF_WAL_SEGMENT, /* 24 hex */
    PF_WAL_HISTORY, /* 8 hex ".history" */
    PF_WAL_BACKUP,  /* 24 hex "." 8 hex ".backup" */
    PF_WAL_PARTIAL, /* 24 hex ".partial" */
    /* 24 hex "." 8 hex ".partial": the first <8 hex> bytes of a segment that wal-stream
     * is still receiving; a new name for each length, so none is ever replaced */
    PF_WAL_STREAMED,
} pf_wal_kind;

/* Longest name: a backup history file (24 + 1 + 8 + 7), with room to spare. */
#define PF_WAL_NAME_MAX 48
/* "wal/" + 8 + "/" + name */
#define PF_WAL_KEY_MAX (4 + 8 + 1 + PF_WAL_NAME_MAX + 1)
/* WAL segments are at most 1 GiB (initdb --wal-segsize); nothing larger is pushed. */
#define PF_WAL_MAX_FILE (1ull << 30)

/* The kind of a WAL file name (upper-case hex, as PostgreSQL writes them), PF_WAL_NONE
 * for anything else. */
pf_wal_kind pf_wal_name_kind(const char *name);
/* Fills key with "wal/<tli>/<name>"; -1 (PF_EUSAGE) when name is not a WAL file name. */
int pf_wal_key(const char *name, char key[PF_WAL_KEY_MAX], pf_err *err);
/* The streamed-partial name for the first `bytes` bytes of segment (24 hex) into out. */
int pf_wal_streamed_name(const char *segment, uint32_t bytes, char out[PF_WAL_NAME_MAX + 1]);
/* "16/B374D848" -> LSN; -1 when malformed. */
int pf_lsn_parse(const char *s, uint64_t *lsn);
/* In a timeline history file's text, where timeline tli ended (switched to the next one)
 * and that next timeline's id: 0, or 1 when tli is the file's last line (the next
 * timeline is the file's own, which the caller knows; next_tli is left alone). -1 when
 * tli is not in it. */
int pf_wal_history_switch(const char *text, size_t n, uint32_t tli, uint64_t *switch_lsn,
                          uint32_t *next_tli);
/* The name inside a store key of exactly that shape (tli matching the name), else NULL. */
const char *pf_wal_name_of_key(const char *key);

typedef struct pf_wal_push_result {
    bool already;       /* the same bytes were archived before: nothing written */
    uint64_t bytes;     /* file size */
    uint64_t bytes_new; /* sealed bytes written to packs */
} pf_wal_push_result;

/* Stores the n bytes of WAL file `name`. Returns 0 only once the object is durable (or an
 * object with the same bytes was there). PF_EEXIST when the name is archived with other
 * bytes. workers <= 0: the saver's default. */
int pf_wal_push(pf_repo *r, const char *name, const void *data, size_t n, int workers,
                pf_wal_push_result *res, pf_err *err);
/* One file of a batch (pf_wal_push_batch): name and bytes in, the outcome out. */
typedef struct pf_wal_batch_file {
    const char *name;
    const uint8_t *data;
    size_t len;
    /* data is a private file mapping of the caller's: each page is dropped from it
     * (MADV_DONTNEED) once the saver has copied it, so that a batch's memory does not grow
     * with the files it reads */
    bool mapped;
    int rc;                 /* 0: durable (stored now, or res.already); -1: see err */
    pf_err err;             /* PF_EEXIST: archived before with other bytes */
    uint8_t sha[PF_ID_LEN]; /* SHA-256 of the bytes, when rc == 0 */
    uint64_t object_size;   /* the sealed object's size in the store, when rc == 0 */
    pf_wal_push_result res;
} pf_wal_batch_file;

/* Stores n WAL files as pf_wal_push stores each, with one saver: their chunks share packs
 * and one index file, and the objects are written (each durable) only after all of these
 * are, so the store's flushes are paid once for the batch. Chunks are cut at fixed
 * offsets (r->chunker.avg bytes): WAL is not deduplicated, and fixed cuts cost nothing.
 * Returns -1 only when the batch as a whole failed (the saver, the store): then every file
 * not already archived has rc -1 with that error. Otherwise each file's rc says. */
int pf_wal_push_batch(pf_repo *r, pf_wal_batch_file *files, size_t n, int workers, pf_err *err);
/* What a batch compresses and packs with (docs/DECISIONS.md, "WAL at zstd level 1"): the
 * archiver waits on every push while pg_wal fills, WAL is kept only for the PITR window,
 * and level 1 costs a quarter less CPU than 3 for a few per cent more bytes; packs of at
 * most 4 MiB hold a few segments each, so that a batch's buffers stay small and prune
 * frees expired WAL in whole packs. */
#define PF_WAL_ZSTD_LEVEL 1
#define PF_WAL_PACK_SIZE (4u << 20)
/* Stores the first n bytes of segment (24 hex) of seg_size bytes as the streamed partial
 * named by its length (pf_wal_streamed_name), as pf_wal_push stores a file. Chunks r->index
 * already holds are named, not stored again: seed it with pf_wal_remember. */
int pf_wal_push_streamed(pf_repo *r, const char *segment, const void *data, size_t n,
                         uint64_t seg_size, int workers, pf_wal_push_result *res, pf_err *err);
/* Puts the chunk locations of WAL file `name` into r->index, so that the next push names
 * them instead of storing them again. Only safe under a lock that keeps prune away, from
 * taking it until the push is done: the object being there proves its chunks are. */
int pf_wal_remember(pf_repo *r, const char *name, pf_err *err);
/* Empties r->index (after a failed push, or when what it held may be gone). */
void pf_wal_forget_chunks(pf_repo *r);
/* The longest streamed partial of segment into name; PF_ENOTFOUND when there is none. */
int pf_wal_newest_streamed(pf_repo *r, const char *segment, char name[PF_WAL_NAME_MAX + 1],
                           pf_err *err);
/* Whether the repository holds segment `segment` whole, or a streamed partial of at least
 * its first `bytes` bytes (recovery can reach that far into it). */
bool pf_wal_has_through(pf_repo *r, const char *segment, uint64_t bytes);
/* Segment `segment` for recovery: the archived segment, or when there is none the longest
 * streamed partial of it, padded with zeros to its segment size (recovery reads the zeros
 * as the end of WAL). used gets the partial's name, "" when the whole segment was there.
 * PF_ENOTFOUND when neither is. */
int pf_wal_fetch_segment(pf_repo *r, const char *segment, pf_buf *out,
                         char used[PF_WAL_NAME_MAX + 1], pf_err *err);
/* Appends WAL file `name` to out, checked against its size and SHA-256. PF_ENOTFOUND
 * when it was never archived (or was removed). */
int pf_wal_fetch(pf_repo *r, const char *name, pf_buf *out, pf_err *err);

/* Calls cb with every WAL file name in the repository (any order). */
int pf_wal_list(pf_repo *r, int (*cb)(const char *name, void *ctx), void *ctx, pf_err *err);
/* Calls cb with every blob id that WAL file `name` names (for prune and check). */
int pf_wal_blobs(pf_repo *r, const char *name, int (*cb)(const uint8_t id[PF_ID_LEN], void *ctx),
                 void *ctx, pf_err *err);

/* What check learns of the archive. */
typedef struct pf_wal_check_result {
    uint64_t files, segments, gaps;
    char newest[PF_WAL_NAME_MAX + 1]; /* the newest segment ("" when none) */
    int64_t newest_pushed_ns;         /* when it was pushed */
} pf_wal_check_result;

/* Checks the archive against the index r holds (loaded by the caller): every WAL object
 * opens and names blobs the index has (each handed to mark, so check counts them used;
 * with mark NULL only the names are looked at, for the chain alone),
 * and the chain of segments is continuous from every physical base backup's first
 * segment to the newest segment of its timeline, and on every later timeline from its
 * first segment to its newest. Each problem goes to report (is_error 1) naming the
 * missing files and the base backup they cut short. */
int pf_wal_check(pf_repo *r, void (*mark)(const uint8_t id[PF_ID_LEN], void *ctx),
                 void (*report)(int is_error, const char *msg, void *ctx), void *ctx,
                 pf_wal_check_result *res, pf_err *err);

/* The newest archived segment (the highest name: names sort as timeline, then position)
 * into newest ("" when none) and when it was pushed (0 when unknown): the point a restore
 * can reach now, the recovery point objective as it stands. A streamed partial of a later
 * segment than the newest whole one is further, and named instead. */
int pf_wal_newest(pf_repo *r, char newest[PF_WAL_NAME_MAX + 1], int64_t *pushed_ns, pf_err *err);

/* Removes the archived WAL files no physical base backup in the repository needs: a
 * segment (or .partial, .backup file) is kept when some base backup started at or before
 * it on its timeline or an earlier one; history files always stay. Nothing is removed
 * while the repository holds no base backup (the archive may be waiting for its first),
 * except streamed partials that are superseded (the whole segment is there, or a longer
 * partial of it).
 * Called by prune before it decides what is used, so the chunks of what goes are freed in
 * the same run. removed counts the files (that would be) removed. */
int pf_wal_expire(pf_repo *r, bool dry_run, uint64_t *removed, pf_err *err);

/* Sealed object bytes <-> JSON plaintext (exposed for tests and fuzzing). */
int pf_wal_seal(const pf_keys *keys, const char *name, const void *json, size_t n, pf_buf *out,
                pf_err *err);
int pf_wal_open(const pf_keys *keys, const char *name, const uint8_t *p, size_t n, pf_buf *out,
                pf_err *err);

#endif
