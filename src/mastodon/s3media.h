/* Media kept on S3 (S3_ENABLED=true), issue 16 part 4, first step: reaching the bucket the
 * way Mastodon does (config/initializers/paperclip.rb), with the store driver's S3 client.
 *
 *   endpoint  S3_ENDPOINT when set (a URL: http(s)://host[:port]), else
 *             S3_PROTOCOL (default https) :// S3_HOSTNAME (default s3-REGION.amazonaws.com)
 *   bucket    S3_BUCKET (required)
 *   region    S3_REGION (default us-east-1)
 *   keys      AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY of .env.production, never those of
 *             permafrost's own environment (which may be the repository's).
 *   style     path style (bucket in the path), or the bucket in the host name when
 *             S3_ENDPOINT is set with S3_OVERRIDE_PATH_STYLE=true, as Mastodon does.
 * S3_ALIAS_HOST (and S3_CLOUDFRONT_HOST) only name where browsers fetch the files, a CDN in
 * front of the bucket: never read from. S3_PERMISSION is the ACL uploads get (restore).
 * The mirror itself (backup --media-from-s3, incremental by ETag and size, restore to a
 * directory or a bucket) is component/s3mirror.h; this opens the bucket for it. */
#ifndef PF_MASTODON_S3MEDIA_H
#define PF_MASTODON_S3MEDIA_H

#include <stddef.h>

#include "common/err.h"
#include "mastodon/env.h"
#include "store/store.h"

/* The store URL of the media bucket ("s3:https://host/bucket") into url, and the region
 * into region. Returns 0, or -1 with err (PF_EUSAGE) naming the missing or bad setting:
 * "S3_ENABLED=true but S3_BUCKET is not set". */
int pf_s3media_url(const pf_mastodon_env *env, char *url, size_t n, char *region, size_t rn,
                   pf_err *err);

/* "bucket NAME at https://endpoint", for messages ("the media bucket" when the settings are
 * incomplete). */
void pf_s3media_label(const pf_mastodon_env *env, char *out, size_t n);

/* Opens the media bucket with .env.production's credentials (PF_EUSAGE when they are not
 * set there). The process's own AWS_* variables are put back before this returns. */
pf_store *pf_s3media_open(const pf_mastodon_env *env, pf_err *err);

#endif
