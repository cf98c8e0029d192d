/* The S3 driver (libcurl). Not written yet: opening an s3: URL fails clearly. */
#include "store/store.h"

pf_store *pf_store_s3_new(const char *url, const pf_store_opts *opts, pf_err *err)
{
    (void)opts;
    pf_err_set(err, PF_EUSAGE, "repository %s: the s3 store is not available yet", url);
    return NULL;
}
