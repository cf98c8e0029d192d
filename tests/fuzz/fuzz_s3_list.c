/* libFuzzer: an S3 ListObjectsV2 page comes from whoever controls the bucket. Reading one
 * must never crash, hang or leak, and every key it reports must be a valid store key under
 * the prefix (so no path built from it can leave the repository). The media mirror's reading
 * of it (pf_s3_objects_page) runs on the same input. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/s3.h"
#include "store/s3_list.h"

static int on_key(const char *key, uint64_t size, void *ctx, pf_err *list_err)
{
    (void)list_err;
    (void)size;
    pf_err err = {0};
    if (pf_store_check_key(key, &err) != 0)
        abort();
    (*(int *)ctx)++;
    return 0;
}

/* The media mirror's reading of the same page (store/s3.h): keys are passed on as listed,
 * but every string must be a terminated one. */
static int on_object(const pf_s3_object *o, void *ctx, pf_err *err)
{
    (void)err;
    if (!o->key || !o->etag)
        abort();
    *(size_t *)ctx += strlen(o->key) + strlen(o->etag);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_buf body = PF_BUF_INIT;
    pf_buf_append(&body, data, size);
    char *token = NULL;
    int n = 0;
    pf_err err = {0};
    int rc = pf_s3_list_page("repo/x/", &body, on_key, &n, &token, &err);
    if (rc != 0 && token)
        abort();
    if (token && !*token)
        abort();
    free(token);
    token = NULL;
    size_t chars = 0;
    rc = pf_s3_objects_page(&body, on_object, &chars, &token, &err);
    if ((rc != 0 && token) || (token && !*token))
        abort();
    free(token);
    pf_buf_free(&body);
    return 0;
}
