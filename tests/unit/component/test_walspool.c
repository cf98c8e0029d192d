/* The WAL spool of a root restore: which archived files it holds (every history file, the
 * segments from the base backup's first one on, on its timeline and later ones, a streamed
 * partial as its segment padded to the segment size; nothing before, no .backup or
 * .partial files), their owner-only mode, the restore_command's quoting, and removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "component/walspool.h"
#include "repo/repo.h"
#include "repo/wal.h"
#include "store/store.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

#define SEG (64 * 1024)

static void push(pf_repo *r, const char *name, size_t n, uint8_t fill)
{
    uint8_t *p = malloc(n ? n : 1);
    memset(p, fill, n);
    pf_wal_push_result res;
    pf_err err = {0};
    if (pf_wal_push(r, name, p, n, 1, &res, &err))
        fail_msg("push %s: %s", name, err.msg);
    free(p);
}

static off_t size_of(const char *dir, const char *name)
{
    char path[4400];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    return stat(path, &st) ? -1 : st.st_size;
}

static void test_fill(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "spool", &o, &err);
    assert_non_null(r);
    push(r, "000000010000000000000002", SEG, 2); /* before the base backup */
    push(r, "000000010000000000000003", SEG, 3); /* its first segment */
    push(r, "000000010000000000000003.00000028.backup", 300, 9);
    push(r, "000000010000000000000004", SEG, 4);
    push(r, "000000010000000000000005.partial", SEG, 5); /* the old timeline's last */
    push(r, "00000002.history", 42, 'h');
    push(r, "000000020000000000000005", SEG, 6);
    pf_wal_push_result res;
    uint8_t part[1000];
    memset(part, 7, sizeof part);
    assert_int_equal(
        pf_wal_push_streamed(r, "000000020000000000000006", part, 500, SEG, 1, &res, &err), 0);
    assert_int_equal(
        pf_wal_push_streamed(r, "000000020000000000000006", part, 1000, SEG, 1, &res, &err), 0);

    char tmpl[] = "/tmp/pf-walspool-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char data[4096], spool[4200];
    snprintf(data, sizeof data, "%s/main", tmpl);
    pf_wal_spool_dir(data, spool, sizeof spool);
    char want_dir[4200];
    snprintf(want_dir, sizeof want_dir, "%s/main.permafrost-wal", tmpl);
    assert_string_equal(spool, want_dir);
    mkdir(spool, 0755); /* left by an earlier run: replaced */
    char stale[4300];
    snprintf(stale, sizeof stale, "%s/000000010000000000000002", spool);
    fclose(fopen(stale, "w"));

    pf_wal_spool_stats st;
    assert_int_equal(
        pf_wal_spool_fill(r, spool, "000000010000000000000003", SEG, getuid(), getgid(), &st, &err),
        0);
    assert_int_equal(st.files, 5);
    assert_int_equal(st.bytes, 4 * SEG + 42);
    assert_int_equal(size_of(spool, "00000002.history"), 42);
    assert_int_equal(size_of(spool, "000000010000000000000003"), SEG);
    assert_int_equal(size_of(spool, "000000010000000000000004"), SEG);
    assert_int_equal(size_of(spool, "000000020000000000000005"), SEG);
    assert_int_equal(size_of(spool, "000000020000000000000006"), SEG); /* padded */
    assert_int_equal(size_of(spool, "000000010000000000000002"), -1);
    DIR *d = opendir(spool);
    int n = 0;
    for (struct dirent *e; (e = readdir(d));)
        n += e->d_name[0] != '.';
    closedir(d);
    assert_int_equal(n, 5);
    struct stat sd;
    assert_int_equal(stat(spool, &sd), 0);
    assert_int_equal(sd.st_mode & 0777, 0700);

    pf_buf cmd = PF_BUF_INIT;
    pf_wal_spool_command("/x/it's 100%", &cmd);
    assert_string_equal((const char *)cmd.data, "cp '/x/it'\\''s 100%%/%f' '%p'");
    pf_buf_free(&cmd);

    assert_int_equal(pf_wal_spool_remove(spool, &err), 0);
    assert_int_equal(access(spool, F_OK), -1);
    assert_int_equal(pf_wal_spool_remove(spool, &err), 0); /* gone already: fine */
    rmdir(tmpl);
    pf_repo_free(r);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fill)};
    return cmocka_run_group_tests_name("walspool", tests, NULL, NULL);
}
