/* The ready spool of wal-push (docs/DECISIONS.md, "wal-push pushes the segments after
 * it"): when PostgreSQL's archiver calls wal-push for one segment, the segments already
 * marked .ready after it are pushed in the same run, and each one durably stored gets an
 * entry here, so that the archiver's next calls, for those segments, return at once after
 * checking the entry against the file's bytes and the repository, without opening the
 * repository's key or writing anything to it.
 *
 * An entry is a claim "segment NAME with these bytes is durable in repository ID as an
 * object of this size". It is trusted only when all of it still holds: the folder is ours
 * and nobody else can write it, the file has the size and SHA-256 recorded, the store at
 * the configured URL is repository ID and holds the object with that size. PostgreSQL
 * never rewrites a segment it has marked .ready, but the same name can come back with
 * other bytes (a cluster initialised again, a data directory restored from a file-system
 * snapshot): the bytes, not the name, are what the entry vouches for. Entries need no
 * flush: one lost in a crash only means a full push, which finds the object there. */
#ifndef PF_CMD_WALREADY_H
#define PF_CMD_WALREADY_H

#include <stdbool.h>
#include <stdint.h>

#include "repo/crypto.h"

typedef struct pf_wal_ready_entry {
    char repo_id[2 * PF_ID_LEN + 1];
    uint64_t size;          /* of the file */
    uint8_t sha[PF_ID_LEN]; /* of the file */
    uint64_t object_size;   /* of its sealed object in the store */
} pf_wal_ready_entry;

/* The spool folder of the cluster whose WAL files are in wal_dir (their pg_wal): one
 * folder per cluster under $PERMAFROST_WAL_SPOOL (default: wal-ready in the key cache's
 * folder, see cli/keycache.h; "off", or the key cache off, turns batching off). Returns an
 * open folder descriptor (created, mode 0700, when create), or -1 when there is none or it
 * is not a folder of this user that nobody else can write (warned once). */
int pf_wal_ready_open(const char *wal_dir, bool create);
/* 0 and the entry of name when there is a well-formed one, else -1. */
int pf_wal_ready_read(int dfd, const char *name, pf_wal_ready_entry *e);
/* Best effort (see above): mode 0600, written beside and renamed into place. */
void pf_wal_ready_write(int dfd, const char *name, const pf_wal_ready_entry *e);
void pf_wal_ready_drop(int dfd, const char *name);
/* Removes the entries whose file is no longer .ready in status_dir (archived since, or
 * gone): PostgreSQL will not ask for them. */
void pf_wal_ready_sweep(int dfd, const char *status_dir);

#endif
