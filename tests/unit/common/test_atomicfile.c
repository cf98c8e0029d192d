/* common/atomicfile: a file replaced whole with its mode, a link planted at the temporary
 * name not followed, and a failure that leaves the old file as it was. */
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

#include "common/atomicfile.h"

static char dir[64];

static void slurp(const char *path, char *out, size_t n)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t got = fread(out, 1, n - 1, f);
    out[got] = 0;
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pf-atomicfile-XXXXXX");
    assert_non_null(mkdtemp(dir));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd);
}

static void replaces_whole_with_mode(void **state)
{
    (void)state;
    char path[128], got[64];
    snprintf(path, sizeof path, "%s/file", dir);
    FILE *f = fopen(path, "w");
    fputs("old contents, longer than the new", f);
    fclose(f);
    pf_err err = {0};
    assert_int_equal(pf_write_file_atomic(path, "new", 3, 0640, NULL, &err), 0);
    slurp(path, got, sizeof got);
    assert_string_equal(got, "new");
    struct stat st;
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
}

static void planted_link_not_followed(void **state)
{
    (void)state;
    char path[128], victim[128], tmp[200], got[64];
    snprintf(path, sizeof path, "%s/target", dir);
    snprintf(victim, sizeof victim, "%s/victim", dir);
    snprintf(tmp, sizeof tmp, "%s.permafrost-tmp-%ld", path, (long)getpid());
    FILE *f = fopen(victim, "w");
    fputs("intact", f);
    fclose(f);
    assert_int_equal(symlink(victim, tmp), 0);
    pf_err err = {0};
    assert_int_equal(pf_write_file_atomic(path, "data", 4, 0600, NULL, &err), 0);
    slurp(victim, got, sizeof got);
    assert_string_equal(got, "intact");
    slurp(path, got, sizeof got);
    assert_string_equal(got, "data");
    struct stat st;
    assert_int_equal(lstat(path, &st), 0);
    assert_true(S_ISREG(st.st_mode));
}

static void failure_leaves_old_file(void **state)
{
    (void)state;
    char path[128], got[64];
    /* A directory where the file should go: the rename fails, nothing is replaced. */
    snprintf(path, sizeof path, "%s/adir", dir);
    assert_int_equal(mkdir(path, 0700), 0);
    char inside[160];
    snprintf(inside, sizeof inside, "%s/keep", path);
    FILE *f = fopen(inside, "w");
    fputs("kept", f);
    fclose(f);
    pf_err err = {0};
    assert_int_not_equal(pf_write_file_atomic(path, "x", 1, 0600, NULL, &err), 0);
    assert_non_null(strstr(err.msg, path));
    slurp(inside, got, sizeof got);
    assert_string_equal(got, "kept");
    char tmp[200];
    snprintf(tmp, sizeof tmp, "%s.permafrost-tmp-%ld", path, (long)getpid());
    assert_int_not_equal(access(tmp, F_OK), 0);
    snprintf(path, sizeof path, "%s/no/such/dir/file", dir);
    assert_int_not_equal(pf_write_file_atomic(path, "x", 1, 0600, NULL, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(replaces_whole_with_mode),
        cmocka_unit_test(planted_link_not_followed),
        cmocka_unit_test(failure_leaves_old_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
