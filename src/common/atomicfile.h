/* Replacing a small file in one step, for the files other programs read while permafrost
 * writes them (a restored .env.production, node_exporter's textfile, a WAL segment
 * PostgreSQL fetches): a reader sees the old file or the new one, never half of one, and
 * after a crash the new one is there only if it is whole. */
#ifndef PF_ATOMICFILE_H
#define PF_ATOMICFILE_H

#include <stddef.h>
#include <sys/types.h>

#include "common/err.h"

typedef struct pf_file_owner {
    uid_t uid;
    gid_t gid;
    const char *name; /* for the warning when it cannot be set */
} pf_file_owner;

/* Writes data to a temporary file beside path (path + ".permafrost-tmp-PID": never a name
 * ending like path's, so a collector of "*.prom" does not read it), gives it mode and,
 * when owner is not NULL, that owner (a failure to is a warning: a run that is not root
 * cannot give files away), fsyncs it, renames it over path and fsyncs the directory (a warning if
 * that fails: the file is in place by then). O_NOFOLLOW throughout: a link planted at the temporary
 * name is not followed. On error path is untouched and the temporary removed; err names path. */
int pf_write_file_atomic(const char *path, const void *data, size_t len, mode_t mode,
                         const pf_file_owner *owner, pf_err *err);

#endif
