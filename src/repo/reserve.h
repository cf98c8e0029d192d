/* The reserve: an object "reserve" of PF_RESERVE_BYTES random bytes at the root of the
 * repository, written by init and by every prune that finds it missing. When the disk
 * holding the repository is full, prune (and forget) cannot write their lock, and without
 * a lock nothing may be removed safely. Removing the reserve gives back enough room for
 * the lock and its refreshes; prune then frees what is certainly unreferenced before it
 * writes anything else (see prune.h), and writes a new reserve at the end. The bytes are
 * random, so a compressing or deduplicating file system keeps them whole; they say
 * nothing about the repository. */
#ifndef PF_RESERVE_H
#define PF_RESERVE_H

#include <stdbool.h>

#include "common/err.h"
#include "repo/repo.h"

#define PF_RESERVE_KEY "reserve"
#define PF_RESERVE_BYTES (256u * 1024u)

/* Writes the reserve when it is missing. */
int pf_reserve_ensure(pf_repo *r, pf_err *err);

/* Removes the reserve; *released says whether there was one. */
int pf_reserve_release(pf_repo *r, bool *released, pf_err *err);

/* True when e says a write failed for lack of space (ENOSPC, EDQUOT). */
bool pf_err_no_space(const pf_err *e);

#endif
