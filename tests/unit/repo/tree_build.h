/* For unit tests: builds trees in a repository by hand (nodes, file contents, directories,
 * symlinks), so a test can make any tree, including ones the archiver never would. Each
 * function fails the test on an error. The nodes point at the caller's strings and blob
 * arrays: keep them alive until the tree is saved. */
#ifndef PF_TEST_TREE_BUILD_H
#define PF_TEST_TREE_BUILD_H

#include <string.h>
#include <unistd.h>

#include "repo/repo.h"
#include "repo/saver.h"
#include "repo/tree.h"

static inline void tb_save(pf_repo *r, uint8_t type, const void *p, size_t n, uint8_t id[PF_ID_LEN])
{
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(r, 1, &err);
    assert_non_null(sv);
    if (pf_saver_save(sv, type, p, n, id, &err) || pf_saver_finish(sv, &err))
        fail_msg("save: %s", err.msg);
    pf_saver_free(sv);
}

static inline pf_node tb_node(const char *name, uint8_t type, uint32_t mode, int64_t mtime_ns)
{
    pf_node n = {0};
    n.name = (char *)name;
    n.name_len = strlen(name);
    n.type = type;
    n.mode = mode;
    n.uid = getuid();
    n.gid = getgid();
    n.user = "";
    n.group = "";
    n.mtime_ns = mtime_ns;
    n.nlink = 1;
    return n;
}

/* Encodes and saves a directory of n entries; its id goes to id. */
static inline void tb_save_tree(pf_repo *r, const pf_node *nodes, size_t n, uint8_t id[PF_ID_LEN])
{
    pf_tree t = {0};
    for (size_t i = 0; i < n; i++)
        pf_tree_add(&t, &nodes[i]);
    pf_tree_sort(&t);
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    if (pf_tree_encode(&t, &b, &err))
        fail_msg("encode: %s", err.msg);
    tb_save(r, PF_BLOB_TREE, b.data, b.len, id);
    pf_buf_free(&b);
    pf_tree_free(&t);
}

/* A file node with content text (one blob). */
static inline pf_node tb_file_node(pf_repo *r, const char *name, const char *text,
                                   uint8_t (*blob)[PF_ID_LEN])
{
    pf_node n = tb_node(name, PF_NODE_FILE, 0644, 1000000000);
    tb_save(r, PF_BLOB_DATA, text, strlen(text), blob[0]);
    n.blobs = blob;
    n.nblobs = 1;
    n.size = strlen(text);
    return n;
}

static inline pf_node tb_dir_node(const char *name, uint32_t mode, uint8_t (*sub)[PF_ID_LEN])
{
    pf_node n = tb_node(name, PF_NODE_DIR, mode, 2000000000);
    n.blobs = sub;
    n.nblobs = 1;
    return n;
}

static inline pf_node tb_link_node(const char *name, const char *target)
{
    pf_node n = tb_node(name, PF_NODE_SYMLINK, 0777, 3000000000);
    n.link = (char *)target;
    n.link_len = strlen(target);
    return n;
}

#endif
