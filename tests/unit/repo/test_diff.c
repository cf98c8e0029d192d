/* pf_diff_trees on trees built by hand in an in-memory repository: every kind of change,
 * directories added and removed with their contents, unchanged subtrees not read, a callback
 * that stops the walk, and a tree that nests too deep. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "repo/diff.h"
#include "repo/repo.h"
#include "store/store.h"
#include "tree_build.h"

static pf_repo *new_repo(void)
{
    pf_err err = {0};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "diff test", NULL, &err);
    assert_non_null(r);
    assert_int_equal(pf_repo_load_index(r, &err), 0);
    return r;
}

typedef struct seen {
    char lines[64][128];
    size_t n;
    size_t stop_after; /* 0: never */
} seen;

static int record(pf_diff_kind kind, const char *path, const pf_node *a, const pf_node *b,
                  void *ctx, pf_err *err)
{
    seen *s = ctx;
    assert_true(kind == PF_DIFF_ADDED ? !a && b : kind == PF_DIFF_REMOVED ? a && !b : a && b);
    assert_true(s->n < 64);
    snprintf(s->lines[s->n++], sizeof s->lines[0], "%c %s", (char)kind, path);
    if (s->stop_after && s->n == s->stop_after)
        return pf_err_set(err, PF_EGENERIC, "stopped at %s", path);
    return 0;
}

static void test_kinds(void **state)
{
    (void)state;
    pf_repo *r = new_repo();
    uint8_t blob[8][PF_ID_LEN], sub[4][PF_ID_LEN], root_a[PF_ID_LEN], root_b[PF_ID_LEN];

    /* a: keep/ (same subtree on both sides), gone/ (with x), file f, link l, t (a file) */
    pf_node keep_in[1] = {tb_file_node(r, "k", "kept", &blob[0])};
    tb_save_tree(r, keep_in, 1, sub[0]);
    pf_node gone_in[1] = {tb_file_node(r, "x", "x", &blob[1])};
    tb_save_tree(r, gone_in, 1, sub[1]);
    pf_node a[5] = {tb_dir_node("keep", 0755, &sub[0]), tb_dir_node("gone", 0755, &sub[1]),
                    tb_file_node(r, "f", "one", &blob[2]), tb_link_node("l", "target"),
                    tb_file_node(r, "t", "file", &blob[3])};
    tb_save_tree(r, a, 5, root_a);

    /* b: keep/ unchanged, new/ (with y), f changed, l retargeted, t now a directory, m new. */
    pf_node new_in[1] = {tb_file_node(r, "y", "y", &blob[4])};
    tb_save_tree(r, new_in, 1, sub[2]);
    pf_node b[6] = {tb_dir_node("keep", 0755, &sub[0]),    tb_dir_node("new", 0755, &sub[2]),
                    tb_file_node(r, "f", "two", &blob[5]), tb_link_node("l", "elsewhere"),
                    tb_dir_node("t", 0755, &sub[0]),       tb_file_node(r, "m", "m", &blob[6])};
    tb_save_tree(r, b, 6, root_b);

    seen s = {0};
    pf_err err = {0};
    assert_int_equal(pf_diff_trees(r, root_a, root_b, record, &s, &err), 0);
    const char *want[] = {"M f",   "- gone",  "- gone/x", "U l",  "+ m",
                          "+ new", "+ new/y", "T t",      "+ t/k"};
    assert_int_equal(s.n, sizeof want / sizeof want[0]);
    for (size_t i = 0; i < s.n; i++)
        assert_string_equal(s.lines[i], want[i]);

    /* The same root: nothing, and nothing read. */
    s.n = 0;
    assert_int_equal(pf_diff_trees(r, root_a, root_a, record, &s, &err), 0);
    assert_int_equal(s.n, 0);

    /* A callback's error stops the walk and comes back as it was set. */
    s = (seen){.stop_after = 2};
    assert_int_equal(pf_diff_trees(r, root_a, root_b, record, &s, &err), -1);
    assert_int_equal(s.n, 2);
    assert_string_equal(err.msg, "stopped at gone");
    pf_repo_free(r);
}

static void test_missing_tree(void **state)
{
    (void)state;
    pf_repo *r = new_repo();
    uint8_t root_a[PF_ID_LEN], root_b[PF_ID_LEN], absent[1][PF_ID_LEN];
    memset(absent[0], 0x5a, PF_ID_LEN);
    pf_node a[1] = {tb_link_node("d", "x")};
    tb_save_tree(r, a, 1, root_a);
    pf_node b[1] = {tb_dir_node("d", 0755, absent)};
    tb_save_tree(r, b, 1, root_b);
    seen s = {0};
    pf_err err = {0};
    assert_int_equal(pf_diff_trees(r, root_a, root_b, record, &s, &err), -1);
    assert_int_equal(s.n, 1); /* "T d" was reported before its tree was needed */
    assert_true(err.msg[0] != '\0');
    pf_repo_free(r);
}

int main(void)
{
    pf_log_set_handler(NULL);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kinds),
        cmocka_unit_test(test_missing_tree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
