/* Repository locks: sealed objects under locks/ naming host, pid, user, command and a
 * lease. Backups, restores and checks take shared locks; prune and forget an exclusive
 * one. A holder refreshes its lease from a background thread (writing a new lock object,
 * then removing the old one). A lock whose lease ran out, or whose holder ran on this host
 * and is dead, is stale: it is removed with a warning when met, so a timer is never stuck
 * behind a crashed run. */
#ifndef PF_LOCK_H
#define PF_LOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "common/err.h"
#include "repo/repo.h"

typedef struct pf_lock pf_lock;

typedef struct pf_lock_info {
    char id[PF_HEX_ID_LEN + 1];
    char host[256], user[64], command[64];
    int64_t pid;
    bool exclusive;
    int64_t created, expires; /* Unix seconds */
    bool stale;
    char stale_why[64];
} pf_lock_info;

/* Takes a lock, waiting up to wait_seconds for conflicting ones to go away.
 * PF_ELOCKED, naming the holder, when they do not. */
pf_lock *pf_lock_acquire(pf_repo *r, bool exclusive, const char *command, double wait_seconds,
                         pf_err *err);
/* Stops refreshing and removes the lock. NULL is fine. */
void pf_lock_release(pf_lock *l);

/* For a process about to exit on a signal: removes the lock object now, without
 * stopping the refresher (the process ends right after). */
void pf_lock_abandon(pf_lock *l);

/* The lease a lock gets (and is refreshed to), in seconds: 300, or PERMAFROST_LOCK_LEASE. */
int64_t pf_lock_lease_seconds(void);

/* The longest lease of any live lock in r (expires - created), at least our own lease: a
 * writer's temporary object untouched for that long belongs to no live writer. */
int pf_lock_longest_lease(pf_repo *r, int64_t *seconds, pf_err *err);

/* Lists the locks; cb gets each (stale ones flagged). */
int pf_lock_list(pf_repo *r, void (*cb)(const pf_lock_info *li, void *ctx), void *ctx,
                 pf_err *err);
/* Removes stale locks, or every lock with all; cb (may be NULL) hears of each removed. */
int pf_lock_remove(pf_repo *r, bool all, void (*cb)(const pf_lock_info *li, void *ctx),
                   void *ctx, pf_err *err);

#endif
