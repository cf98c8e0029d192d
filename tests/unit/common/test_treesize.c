/* common/treesize: the total of regular files under two paths, a symbolic link to a big
 * file not followed, and a stop before the end. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/treesize.h"

static char dir[64];

static void write_file(const char *name, size_t size)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    for (size_t i = 0; i < size; i++)
        fputc('x', f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pf-treesize-XXXXXX");
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/a", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/a/deep", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/b", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    write_file("a/one", 100);
    write_file("a/deep/two", 2000);
    write_file("b/three", 30000);
    write_file("outside", 400000);
    snprintf(path, sizeof path, "%s/b/link", dir);
    assert_int_equal(symlink("../outside", path), 0);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void sums_regular_files_and_not_links(void **state)
{
    (void)state;
    char a[128], b[128];
    snprintf(a, sizeof a, "%s/a", dir);
    snprintf(b, sizeof b, "%s/b", dir);
    char *paths[] = {a, b};
    pf_treesize *t = pf_treesize_start(paths, 2);
    assert_non_null(t);
    assert_true(pf_treesize_wait(t, 30));
    assert_int_equal(pf_treesize_total(t), 100 + 2000 + 30000);
    pf_treesize_stop(t);
}

static void a_file_path_counts_itself(void **state)
{
    (void)state;
    char f[128];
    snprintf(f, sizeof f, "%s/outside", dir);
    char *paths[] = {f};
    pf_treesize *t = pf_treesize_start(paths, 1);
    assert_true(pf_treesize_wait(t, 30));
    assert_int_equal(pf_treesize_total(t), 400000);
    pf_treesize_stop(t);
}

static void a_missing_path_counts_nothing(void **state)
{
    (void)state;
    char *paths[] = {"/nonexistent/pf-treesize"};
    pf_treesize *t = pf_treesize_start(paths, 1);
    assert_true(pf_treesize_wait(t, 30));
    assert_int_equal(pf_treesize_total(t), 0);
    pf_treesize_stop(t);
    pf_treesize_stop(NULL);
}

static void stop_at_once_is_clean(void **state)
{
    (void)state;
    char *paths[] = {"/usr"};
    pf_treesize *t = pf_treesize_start(paths, 1);
    assert_non_null(t);
    pf_treesize_stop(t); /* must return promptly and free (ASan checks the rest) */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(sums_regular_files_and_not_links),
        cmocka_unit_test(a_file_path_counts_itself),
        cmocka_unit_test(a_missing_path_counts_nothing),
        cmocka_unit_test(stop_at_once_is_clean),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
