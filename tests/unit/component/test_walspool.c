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
#include <sys/wait.h>
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

/* Runs the spool's restore_command for name as PostgreSQL would (%f, %p and %% replaced,
 * through sh), returning its exit status. */
static int restore(const char *cmd, const char *name, const char *to)
{
    pf_buf sh = PF_BUF_INIT;
    for (const char *c = cmd; *c; c++) {
        if (c[0] == '%' && c[1] == 'f')
            pf_buf_append_str(&sh, name), c++;
        else if (c[0] == '%' && c[1] == 'p')
            pf_buf_append_str(&sh, to), c++;
        else if (c[0] == '%' && c[1] == '%')
            pf_buf_append_str(&sh, "%"), c++;
        else
            pf_buf_append(&sh, c, 1);
    }
    pf_buf_append(&sh, "", 1);
    int rc = system((const char *)sh.data);
    pf_buf_free(&sh);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static int segments_in(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));)
        n += strlen(e->d_name) == 24;
    if (d)
        closedir(d);
    return n;
}

/* The spool filled while recovery runs: files arrive in WAL order as restore_command asks,
 * never more than the window on disk, the ones recovery is past removed and fetched again
 * when asked for again, a name the archive lacks answered "not archived" (1) at once, and
 * nothing fetched far past the last request. */
static void test_live(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo_init_opts o = {.chunk_min = 256, .chunk_avg = 1024, .chunk_max = 4096};
    pf_repo *r = pf_repo_init(pf_store_mem_new(), "spool", &o, &err);
    assert_non_null(r);
    char name[32];
    for (int i = 3; i < 23; i++) {
        snprintf(name, sizeof name, "0000000100000000000000%02X", i);
        push(r, name, SEG, (uint8_t)i);
    }
    push(r, "00000002.history", 42, 'h');
    char tmpl[] = "/tmp/pf-walspool-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    char spool[4200], to[4200];
    snprintf(spool, sizeof spool, "%s/main.permafrost-wal", tmpl);
    snprintf(to, sizeof to, "%s/RECOVERYXLOG", tmpl);
    pf_wal_spool *sp = NULL;
    assert_int_equal(pf_wal_spool_open(r, spool, "000000010000000000000005", SEG, getuid(),
                                       getgid(), 3, &sp, &err),
                     0);
    assert_int_equal(segments_in(spool), 0); /* nothing fetched before it runs */
    pf_buf cmd = PF_BUF_INIT;
    pf_wal_spool_wait_command(spool, &cmd);
    pf_buf_append(&cmd, "", 1);
    assert_int_equal(pf_wal_spool_run(sp, &err), 0);
    assert_int_equal(restore((const char *)cmd.data, "00000002.history", to), 0);
    assert_int_equal(size_of(tmpl, "RECOVERYXLOG"), 42);
    assert_int_equal(restore((const char *)cmd.data, "00000003.history", to), 1);
    assert_int_equal(restore((const char *)cmd.data, "000000010000000000000004", to), 1);
    for (int i = 5; i < 12; i++) {
        snprintf(name, sizeof name, "0000000100000000000000%02X", i);
        assert_int_equal(restore((const char *)cmd.data, name, to), 0);
        assert_int_equal(size_of(tmpl, "RECOVERYXLOG"), SEG);
        assert_true(segments_in(spool) <= 3);
    }
    /* Asked for again (the end of recovery rereads where replay stopped). */
    assert_int_equal(restore((const char *)cmd.data, "000000010000000000000007", to), 0);
    assert_int_equal(size_of(tmpl, "RECOVERYXLOG"), SEG);
    assert_int_equal(restore((const char *)cmd.data, "000000010000000000000099", to), 1);
    pf_wal_spool_stats st;
    assert_int_equal(pf_wal_spool_stop(sp, &st, &err), 0);
    assert_int_equal(st.listed, 18);
    assert_true(st.max_held <= 3);
    /* 5..11, 7 again, and at most the window past 11. */
    assert_true(st.segments >= 8 && st.segments <= 8 + 3);
    assert_true(segments_in(spool) <= 3);
    /* Stopped, it tells a cluster still asking instead of leaving it waiting. */
    assert_int_equal(restore((const char *)cmd.data, "000000010000000000000015", to), 255);
    struct stat sd;
    assert_int_equal(stat(spool, &sd), 0);
    assert_int_equal(sd.st_mode & 0777, 0700);
    char names[4300];
    snprintf(names, sizeof names, "%s/.names", spool);
    assert_int_equal(stat(names, &sd), 0);
    assert_int_equal(sd.st_mode & 0777, 0600);
    pf_buf_free(&cmd);
    assert_int_equal(pf_wal_spool_remove(spool, &err), 0);
    unlink(to);
    rmdir(tmpl);
    pf_repo_free(r);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_fill), cmocka_unit_test(test_live)};
    return cmocka_run_group_tests_name("walspool", tests, NULL, NULL);
}
