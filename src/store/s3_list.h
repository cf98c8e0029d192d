/* The S3 driver's reading of a ListObjectsV2 page, apart from the driver so that it can be
 * fuzzed: the page comes from the server, so from whoever controls the bucket. */
#ifndef PF_STORE_S3_LIST_H
#define PF_STORE_S3_LIST_H

#include "common/buf.h"
#include "store/store.h"

/* Parses one page `body`, calling cb(key relative to `prefix`, size, ctx, err) for each entry
 * under `prefix` whose relative key is a valid store key (pf_store_check_key); others
 * (folder markers, keys another tool wrote, hostile names such as "a/../../b") are
 * skipped. Sets *token to the continuation token (malloc'd) when the listing goes on.
 * Returns 0; -1 with PF_EIO for a body that is not a listing, an entry without Key or Size,
 * a Size that is not a decimal of at most 19 digits, or a truncated page without a token;
 * or the callback's non-zero value. */
int pf_s3_list_page(const char *prefix, const pf_buf *body, pf_store_list_cb cb, void *ctx,
                    char **token, pf_err *err);

#endif
