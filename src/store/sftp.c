/* The SFTP driver (libssh2). Not written yet: opening an sftp:// URL fails clearly. */
#include "store/store.h"

pf_store *pf_store_sftp_new(const char *url, const pf_store_opts *opts, pf_err *err)
{
    (void)opts;
    pf_err_set(err, PF_EUSAGE, "repository %s: the sftp store is not available yet", url);
    return NULL;
}
