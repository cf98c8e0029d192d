/* Reading snapshots back: finding entries by path, streaming a file's bytes, and
 * restoring trees onto disk exactly (content, type, mode, owner, mtime in ns, symlinks,
 * hardlinks as hardlinks, holes kept as holes). Every blob is authenticated before a
 * byte of it is written; corrupt data stops the restore with an error naming it. */
#ifndef PF_RESTORER_H
#define PF_RESTORER_H

#include <stdint.h>

#include "common/err.h"
#include "common/stream.h"
#include "repo/repo.h"

typedef struct pf_restore_stats {
    uint64_t files, dirs, others, bytes, errors;
    /* What the safe defaults left out (see pf_restore_opts): device nodes and FIFOs not
     * created, files whose setuid/setgid bits were cleared, symlinks pointing outside. */
    uint64_t skipped_special, stripped_setid, skipped_links;
    uint64_t removed; /* entries that were not in the snapshot, removed (opts.exact) */
} pf_restore_stats;

typedef void (*pf_restore_progress_fn)(const pf_restore_stats *st, const char *current, void *ctx);

/* Every field's zero is the safe choice for a restore run as root from a snapshot that
 * may have been written by someone else (a compromised old server). */
typedef struct pf_restore_opts {
    /* Snapshot paths to restore ("media/accounts"); NULL or empty: everything. */
    const char *const *include;
    /* Give entries their recorded owners (default: when running as root). The recorded
     * user and group names are looked up on this machine; the recorded numeric id is
     * used only when a name is empty or unknown here. */
    int owners;
    /* With owners: use the recorded numeric ids, never the names. */
    int numeric_owner;
    /* Create device nodes and FIFOs and keep setuid/setgid bits on files. Off, they are
     * skipped and cleared (counted in the stats, one warning, names at -v). */
    int keep_special;
    /* Create symlinks whose target is absolute or climbs out of the restored tree. Off,
     * they are skipped: a web server serving the restored media would follow them. The
     * restorer itself never follows any symlink either way. */
    int outside_links;
    /* Appended to the warning about what was left out ("--keep-special keeps them"). */
    const char *left_out_hint;
    /* The restored tree is the snapshot's: below target, whatever the snapshot does not
     * hold (a file uploaded since, a stray) is removed, directories with all they contain,
     * each named at -v (pf_debug) and counted in stats->removed. Removal goes through
     * directory descriptors opened with O_NOFOLLOW: a symlink is removed itself, never
     * followed, so nothing outside target is touched. Only in directories restored whole
     * (not those that merely lead to an `include`d path). */
    int exact;
    int workers; /* threads writing file contents; 0 = default (4) */
    /* Reads: blobs of a pack that lie side by side are fetched together, with one read of
     * at most run_max bytes (each worker holds one run in memory), skipping over at most
     * gap_max unneeded bytes between two of them (cheaper than a second request).
     * 0 = defaults: 8 MiB; 256 KiB for a remote store, 4 KiB for a local one. */
    uint64_t run_max, gap_max;
    pf_restore_progress_fn progress;
    void *progress_ctx;
} pf_restore_opts;

/* Finds path ("a/b/c", "" for the root) under the tree root; a copy of the node goes to
 * *out (free with pf_node_free). PF_ENOTFOUND when absent. */
int pf_lookup_path(pf_repo *r, const uint8_t root[PF_ID_LEN], const char *path, pf_node *out,
                   pf_err *err);
/* Writes a regular file's content to a sink, blob by blob, each verified. */
int pf_node_write(pf_repo *r, const pf_node *n, pf_sink *sink, pf_err *err);
/* A pull-style reader of a file's content; free with pf_node_source_free. */
pf_source *pf_node_source_new(pf_repo *r, const pf_node *n);
void pf_node_source_free(pf_source *s);
/* Restores the tree (or the included parts) into target, which is created if needed.
 * Existing entries are replaced (directories are reused). Below target, every entry is
 * reached through directory descriptors opened with O_NOFOLLOW and every attribute is set
 * through a descriptor of the entry the restore itself created: a symlink or other entry
 * planted by a local user, before or during the restore, is replaced or left alone, never
 * followed. target itself is opened as given (symlinks in it are followed). */
int pf_restore_tree(pf_repo *r, const uint8_t root[PF_ID_LEN], const char *target,
                    const pf_restore_opts *opts, pf_restore_stats *stats, pf_err *err);

/* Restores the contents of directory node dir into target (created if needed), and gives
 * target dir's recorded mode, owner and times: "put media/ back as public/system". */
int pf_restore_dir_into(pf_repo *r, const pf_node *dir, const char *target,
                        const pf_restore_opts *opts, pf_restore_stats *stats, pf_err *err);

#endif
