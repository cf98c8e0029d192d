/* Tree blobs: one per directory, entries sorted by name (bytewise), names any bytes but
 * '/' and NUL, never "." or "..". Decoding enforces all of that, so a damaged or hostile
 * tree can never make restore write outside its target. Bytes: docs/FORMAT.md. */
#ifndef PF_TREE_H
#define PF_TREE_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/buf.h"
#include "common/err.h"
#include "repo/crypto.h"

enum pf_node_type {
    PF_NODE_FILE = 1,
    PF_NODE_DIR = 2,
    PF_NODE_SYMLINK = 3,
    PF_NODE_FIFO = 4,
    PF_NODE_SOCKET = 5,
    PF_NODE_CHARDEV = 6,
    PF_NODE_BLOCKDEV = 7,
};

typedef struct pf_node {
    char *name; /* NUL-terminated for convenience; name_len is authoritative */
    size_t name_len;
    uint8_t type;
    uint32_t mode; /* permission bits, setuid/setgid/sticky included (07777) */
    uint32_t uid, gid;
    char *user, *group; /* may be empty when the id has no name */
    int64_t mtime_ns, ctime_ns;
    uint64_t size, inode, dev, rdev;
    uint32_t nlink;
    char *link; /* symlink target, NUL-terminated; link_len is authoritative */
    size_t link_len;
    uint8_t (*blobs)[PF_ID_LEN]; /* file content in order, or one subtree id for a dir */
    size_t nblobs;
} pf_node;

typedef struct pf_tree {
    pf_node *nodes;
    size_t count, cap;
} pf_tree;

/* Appends a copy of *n (strings and blob list are copied). */
void pf_tree_add(pf_tree *t, const pf_node *n);
/* Sorts by name; a tree already in order costs one pass. */
void pf_tree_sort(pf_tree *t);
/* 1 when pf_tree_encode writes the same bytes for a and b (both sorted): every field it
 * stores is equal, user and group names as far as it keeps them (255 bytes). A directory
 * whose entries are those of the parent snapshot's tree is that tree, so its id is known
 * without encoding and hashing it again. */
int pf_tree_same(const pf_tree *a, const pf_tree *b);
/* Fails (PF_EUSAGE) when two entries have the same name. */
int pf_tree_encode(const pf_tree *t, pf_buf *out, pf_err *err);
int pf_tree_decode(const uint8_t *p, size_t n, pf_tree *t, pf_err *err);
const pf_node *pf_tree_find(const pf_tree *t, const char *name, size_t len);
void pf_tree_free(pf_tree *t);
void pf_node_free(pf_node *n);
/* Deep copy. */
void pf_node_copy(pf_node *dst, const pf_node *src);
/* A time in nanoseconds since the epoch as a timespec: seconds rounded down, so that
 * tv_nsec is in [0, 1e9) for times before 1970 too (-0.5 s is -1 s + 500000000 ns). */
struct timespec pf_ns_to_timespec(int64_t ns);

/* True when name is a valid entry name (non-empty, no '/', no NUL, not "." or ".."). */
int pf_tree_name_ok(const char *name, size_t len);

#endif
