/* The media of a Mastodon server that keeps them in an S3 bucket (S3_ENABLED=true), mirrored
 * into a snapshot's media tree (issue 16), and written back from it into a bucket.
 *
 * Backup: every object of the bucket becomes a file of the tree at its key's path (Paperclip's
 * layout: media_attachments/files/000/000/001/original/x.jpg), as local media would be, so
 * restore, ls, diff, stats and the media check work on it unchanged. Each file's link field
 * records the object's ETag and Content-Type (docs/FORMAT.md, "Media mirrored from S3"): an
 * object whose size and ETag equal those of the parent snapshot's file is not read again.
 * Objects are read in ranges, a few at a time (bounded memory and concurrency), and a range
 * whose reply carries another ETag than the listing's (the object was replaced meanwhile) is
 * not mixed into the file: the object is left out and named, the snapshot incomplete.
 * The tree is built as the listing comes, one folder per level in memory: the listing must
 * keep each folder's keys together (S3 lists in byte order, s3rver and servers backed by a
 * file system depth first; a folder seen again after it was left stops the backup). An
 * object and a folder of one name ("a/x" and "a/x/y") cannot both be in a tree: the one
 * seen second is left out and named.
 *
 * Restore to a bucket: every file of a media tree is uploaded under its path, with the
 * Content-Type recorded at backup (or guessed from the name), the ACL and the Cache-Control
 * Mastodon gives its uploads; large files in parts, never whole in memory. */
#ifndef PF_COMPONENT_S3MIRROR_H
#define PF_COMPONENT_S3MIRROR_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/archiver.h"
#include "repo/repo.h"
#include "repo/tree.h"
#include "store/store.h"

typedef struct pf_s3mirror_opts {
    pf_repo *repo;             /* backup: where the parent snapshot's trees are read */
    pf_store *bucket;          /* an S3 driver without the retry layer (store/s3.h) */
    const char *label;         /* for messages: "bucket files at https://s3.example.com" */
    bool exclude_cache;        /* leave out cache/ (remote media Mastodon fetches again) */
    int connections;           /* objects read (or written) at once; 0: 4 */
    pf_archive_visit_fn visit; /* told every object stored, by its key; may be NULL */
    void *visit_ctx;
} pf_s3mirror_opts;

typedef struct pf_s3mirror_stats {
    uint64_t objects;    /* stored in the tree */
    uint64_t bytes;      /* their size */
    uint64_t unchanged;  /* of those, taken from the parent snapshot unread */
    uint64_t read;       /* read from the bucket */
    uint64_t bytes_read; /* bytes fetched */
    uint64_t gets;       /* GET requests made */
    uint64_t skipped;    /* left out: unreadable, replaced while read, a key no path fits */
    uint64_t excluded;   /* left out as cache/ */
} pf_s3mirror_stats;

/* Adds directory `name` to d holding the bucket's objects. Fails (nothing of it added) when
 * the bucket cannot be listed or read: a refusal of the credentials is PF_EAUTH naming the
 * bucket and .env.production's keys. */
int pf_s3mirror_backup(pf_archiver *a, pf_dir *d, const char *name, const pf_s3mirror_opts *o,
                       pf_s3mirror_stats *st, pf_err *err);

typedef struct pf_s3mirror_put {
    const char *acl;           /* x-amz-acl of every object; NULL or "": none (S3_PERMISSION) */
    const char *cache_control; /* NULL: Mastodon's "public, max-age=315576000, immutable" */
} pf_s3mirror_put;

/* Uploads every file below the directory node dir (a snapshot's media/) to the bucket, each
 * under its path relative to dir. Counts into *st (objects, bytes). */
int pf_s3mirror_restore(pf_repo *r, const pf_node *dir, const pf_s3mirror_opts *o,
                        const pf_s3mirror_put *p, pf_s3mirror_stats *st, pf_err *err);

/* Lists the first object of the bucket: a bucket that is missing or keys refused are found
 * before a restore changes anything (PF_EAUTH naming the target's .env.production). */
int pf_s3mirror_probe(const pf_s3mirror_opts *o, pf_err *err);

/* The ETag and Content-Type a mirrored file's link records ("" when not there). */
void pf_s3mirror_record(const pf_node *n, char *etag, size_t en, char *ctype, size_t cn);

#endif
