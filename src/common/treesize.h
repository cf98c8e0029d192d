/* The bytes of the regular files under some paths, summed by a thread of its own, so that
 * a first backup (which has no parent snapshot to take its size from) can show a total and
 * an ETA without making the backup wait for a walk of its own. The walk only lstats (no
 * file is opened, symbolic links are not followed) and warms the inode cache the backup's
 * walk reads next. */
#ifndef PF_TREESIZE_H
#define PF_TREESIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct pf_treesize pf_treesize;

/* Starts summing the files under paths[0..n) (absolute; copied). NULL when no thread can
 * be started: callers then go without a total. */
pf_treesize *pf_treesize_start(char *const *paths, size_t n);

/* Waits at most `seconds` for the walk to end. Returns whether it has. */
bool pf_treesize_wait(pf_treesize *t, double seconds);

/* The total once the walk has ended, else 0 (a partial sum would make the percentage
 * run backwards). Entries that cannot be read count as 0 bytes. */
uint64_t pf_treesize_total(pf_treesize *t);

/* Stops the walk where it is, waits for the thread and frees t. NULL is a no-op. */
void pf_treesize_stop(pf_treesize *t);

#endif
