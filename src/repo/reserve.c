#include "repo/reserve.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"

int pf_reserve_ensure(pf_repo *r, pf_err *err)
{
    uint64_t size;
    pf_err e = {0};
    if (pf_store_stat(r->store, PF_RESERVE_KEY, &size, &e) == 0 && size == PF_RESERVE_BYTES)
        return 0;
    if (e.code && e.code != PF_ENOTFOUND) {
        *err = e;
        return -1;
    }
    unsigned char *b = malloc(PF_RESERVE_BYTES);
    if (!b)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    int rc = pf_random(b, PF_RESERVE_BYTES, err);
    if (!rc)
        rc = pf_store_put(r->store, PF_RESERVE_KEY, b, PF_RESERVE_BYTES, err);
    free(b);
    if (rc)
        pf_err_prefix(err, "cannot write the repository's space reserve");
    return rc;
}

int pf_reserve_release(pf_repo *r, bool *released, pf_err *err)
{
    *released = false;
    if (pf_store_remove(r->store, PF_RESERVE_KEY, err) == 0) {
        *released = true;
        return 0;
    }
    if (err->code == PF_ENOTFOUND) {
        pf_err_clear(err);
        return 0;
    }
    return -1;
}

bool pf_err_no_space(const pf_err *e)
{
    return e->sys_errno == ENOSPC || e->sys_errno == EDQUOT ||
           strstr(e->msg, "No space left") != NULL || strstr(e->msg, "quota") != NULL;
}
