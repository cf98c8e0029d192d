/* The S3 driver's client for a bucket that is not a repository: Mastodon's media (issue 16),
 * where keys are whatever the application wrote, objects are compared by ETag, and an upload
 * carries the headers a web server needs (Content-Type, ACL, Cache-Control). The same
 * connections, signing and error messages as the store driver (s3.c); nothing of the store
 * contract (key rules, atomic replace) is promised here beyond what S3 itself does.
 *
 * st must come from pf_store_s3_new (pf_store_open with retries < 0): anything else is
 * PF_EUSAGE. Keys are 1..1024 bytes without NUL and without "." or ".." segments (which would
 * change the URL's path); they are relative to the bucket, never to a prefix of the URL.
 * Transient failures set err->retryable; the caller decides whether to try again. All calls
 * may run from several threads at once. */
#ifndef PF_STORE_S3_H
#define PF_STORE_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"
#include "store/store.h"

typedef struct pf_s3_object {
    const char *key;  /* as the bucket has it, XML entities decoded */
    uint64_t size;    /* bytes */
    const char *etag; /* as listed, quotes included ("\"9b2c...\""); "" when none */
    int64_t mtime_ns; /* LastModified; 0 when absent or unreadable */
} pf_s3_object;

/* Called once per object; the strings are valid during the call. Non-zero stops the
 * listing, as for pf_store_list. */
typedef int (*pf_s3_object_cb)(const pf_s3_object *o, void *ctx, pf_err *err);

/* Every object whose key starts with prefix ("" or NULL: the whole bucket), in the order S3
 * lists them (byte order of the keys on AWS), paging with continuation tokens. Folder
 * markers and any other key are passed on: the caller judges them. */
int pf_s3_list_objects(pf_store *st, const char *prefix, pf_s3_object_cb cb, void *ctx,
                       pf_err *err);

/* One page of ListObjectsV2, for pf_s3_list_objects and the fuzzer: calls cb per entry,
 * sets *token (malloc'd) when the listing goes on. -1 with PF_EIO for a body that is not a
 * listing, an entry without Key or Size or with a bad Size, a truncated page without token. */
int pf_s3_objects_page(const pf_buf *body, pf_s3_object_cb cb, void *ctx, char **token,
                       pf_err *err);

/* What a GET's reply said of the object. */
typedef struct pf_s3_reply {
    char etag[256];         /* "" when the reply had none */
    char content_type[256]; /* "" when none */
} pf_s3_reply;

/* Appends bytes [off, off+len) of key to out (len == PF_STORE_ALL: to the end), as the
 * store's get does (PF_ENOTFOUND, PF_ECORRUPT past the end); reply (may be NULL) gets the
 * reply's ETag and Content-Type, so the caller can tell a range of another version of the
 * object from one of the version it listed. */
int pf_s3_get_object(pf_store *st, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                     pf_s3_reply *reply, pf_err *err);

/* Headers of an upload; each NULL or "": not sent (Content-Type then
 * application/octet-stream). */
typedef struct pf_s3_put_opts {
    const char *content_type;
    const char *acl;           /* x-amz-acl, e.g. "public-read" */
    const char *cache_control; /* e.g. "public, max-age=315576000, immutable" */
} pf_s3_put_opts;

/* Puts the object in one request (S3 allows up to 5 GiB; callers keep it to a part's size). */
int pf_s3_put_object(pf_store *st, const char *key, const void *data, size_t len,
                     const pf_s3_put_opts *o, pf_err *err);

/* The part size of the driver's own multipart uploads (PERMAFROST_S3_PART_SIZE, default 16
 * MiB), for callers streaming an object in parts; 0 for a store that is not S3. */
size_t pf_s3_part_size(pf_store *st);

/* A multipart upload, for an object streamed in parts of at least 5 MiB (but the last): the
 * object appears only when pf_s3_upload_end succeeds. abort (or a failed end) removes the
 * parts from the bucket; both free up. */
typedef struct pf_s3_upload pf_s3_upload;
pf_s3_upload *pf_s3_upload_begin(pf_store *st, const char *key, const pf_s3_put_opts *o,
                                 pf_err *err);
int pf_s3_upload_part(pf_s3_upload *up, const void *data, size_t len, pf_err *err);
int pf_s3_upload_end(pf_s3_upload *up, pf_err *err);
void pf_s3_upload_abort(pf_s3_upload *up);

#endif
