/* The key files under keys/ as the operator sees them: which there are, when, where and by
 * whom each was made, and removing one. Making them and opening the repository with them
 * is repo.c's (pf_repo_add_key, pf_repo_open); this module knows only how they are named
 * and described, so commands need not know that they live under keys/. */
#ifndef PF_REPO_KEYS_H
#define PF_REPO_KEYS_H

#include <stdbool.h>
#include <stddef.h>

#include "repo/repo.h"

typedef struct pf_keyfile_info {
    char id[PF_HEX_ID_LEN + 1];
    /* From the key file's description; "" when it has none or cannot be read (a listing
     * shows every key, even one that no longer parses). Owned by the array. */
    char *created, *host, *user;
    bool current;    /* the key that opened r */
    bool write_only; /* a write-only key ("kind": "write-only", format 3) */
} pf_keyfile_info;

/* Every key file of r (names that are not key ids are skipped), in the store's order.
 * *out is freed with pf_keyfile_free. -1 with err when the listing fails. */
int pf_keyfile_list(pf_repo *r, pf_keyfile_info **out, size_t *n, pf_err *err);
void pf_keyfile_free(pf_keyfile_info *v, size_t n);

/* Removes the one key whose id starts with prefix, and gives its id. Refuses, before
 * removing anything: PF_ENOTFOUND when no key matches; PF_EUSAGE when prefix is empty or
 * ambiguous, when it is the last key (the repository would become unreadable) or the key
 * that opened r. */
int pf_keyfile_remove(pf_repo *r, const char *prefix, char id_out[PF_HEX_ID_LEN + 1], pf_err *err);

/* Removes the key file that opened r: the end of a passphrase change, once
 * pf_repo_add_key has written its replacement. */
int pf_keyfile_remove_current(pf_repo *r, pf_err *err);

/* For a master key typed back from a recovery sheet: proves it belongs to r by opening one
 * of its sealed objects (a snapshot, else an index file). 0 also when r has none yet;
 * PF_EAUTH when the object does not open. */
int pf_keyfile_verify_master(pf_repo *r, pf_err *err);

#endif
