/* Child processes: exit status, signals, stdin/stdout streaming, environment overrides,
 * the stderr tail, and a sink that fails. */
#include <pwd.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/exec.h"

static int run_sh(const char *script, const char *const *env, const void *in, size_t len,
                  pf_buf *out, pf_exec_result *res, pf_err *err)
{
    const char *argv[] = {"sh", "-c", script, NULL};
    return pf_exec_capture(argv, env, NULL, in, len, out, 64u << 20, res, err);
}

static void test_ok_and_output(void **state)
{
    (void)state;
    pf_buf out = PF_BUF_INIT;
    pf_exec_result res;
    pf_err err = {0};
    assert_int_equal(run_sh("printf hello; echo warn >&2", NULL, NULL, 0, &out, &res, &err), 0);
    assert_int_equal(out.len, 5);
    assert_memory_equal(out.data, "hello", 5);
    assert_int_equal(res.exit_code, 0);
    assert_string_equal(res.tail, "warn");
    pf_buf_free(&out);
}

static void test_exit_code_and_tail(void **state)
{
    (void)state;
    pf_exec_result res;
    pf_err err = {0};
    const char *argv[] = {"sh", "-c", "echo one >&2; echo; echo two >&2; exit 3", NULL};
    pf_exec_opts o = {.argv = argv, .name = "tool"};
    assert_int_equal(pf_exec_run(&o, &res, &err), -1);
    assert_int_equal(err.code, PF_ECOMPONENT);
    assert_int_equal(res.exit_code, 3);
    assert_string_equal(err.msg, "tool exited 3: one; two");
}

static void test_signal(void **state)
{
    (void)state;
    pf_exec_result res;
    pf_err err = {0};
    assert_int_equal(run_sh("echo bye >&2; kill -9 $$", NULL, NULL, 0, NULL, &res, &err), -1);
    assert_int_equal(res.signal, SIGKILL);
    assert_non_null(strstr(err.msg, "killed by signal 9"));
    assert_non_null(strstr(err.msg, "bye"));
}

static void test_not_found(void **state)
{
    (void)state;
    pf_err err = {0};
    const char *argv[] = {"/nonexistent/permafrost-tool", NULL};
    pf_exec_opts o = {.argv = argv};
    assert_int_equal(pf_exec_run(&o, NULL, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
}

static void test_stdin_roundtrip(void **state)
{
    (void)state;
    /* More than any pipe buffer in both directions at once: needs the poll loop. */
    size_t n = 3u << 20;
    uint8_t *in = malloc(n);
    for (size_t i = 0; i < n; i++)
        in[i] = (uint8_t)(i * 131 + (i >> 9));
    pf_buf out = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(run_sh("cat", NULL, in, n, &out, NULL, &err), 0);
    assert_int_equal(out.len, n);
    assert_memory_equal(out.data, in, n);
    /* A child that stops reading early: no SIGPIPE for us, its status decides. */
    pf_buf_reset(&out);
    assert_int_equal(run_sh("head -c 10", NULL, in, n, &out, NULL, &err), 0);
    assert_int_equal(out.len, 10);
    pf_buf_free(&out);
    free(in);
}

static void test_env(void **state)
{
    (void)state;
    setenv("PF_TEST_REMOVE_ME", "present", 1);
    setenv("PF_TEST_REPLACE", "old", 1);
    const char *env[] = {"PF_TEST_REMOVE_ME", "PF_TEST_REPLACE=first", "PF_TEST_REPLACE=new",
                         "PF_TEST_NEW=x y", NULL};
    pf_buf out = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(run_sh("printf '%s|%s|%s' \"${PF_TEST_REMOVE_ME-unset}\" \"$PF_TEST_REPLACE\" "
                            "\"$PF_TEST_NEW\"",
                            env, NULL, 0, &out, NULL, &err),
                     0);
    pf_buf_u8(&out, 0);
    assert_string_equal((char *)out.data, "unset|new|x y");
    pf_buf_free(&out);
}

/* Only the allow-list of ours reaches a child: secrets held in our environment do not. */
static void test_env_allow_list(void **state)
{
    (void)state;
    setenv("PERMAFROST_PASSWORD", "repo-secret", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "s3-secret", 1);
    setenv("PGPASSWORD", "db-secret", 1);
    setenv("REDISCLI_AUTH", "redis-secret", 1);
    setenv("LC_TIME", "C", 1);
    setenv("TZ", "UTC", 1);
    const char *env[] = {"PGPASSWORD=given", NULL};
    pf_buf out = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(run_sh("env | sort", env, NULL, 0, &out, NULL, &err), 0);
    pf_buf_u8(&out, 0);
    const char *o = (const char *)out.data;
    assert_null(strstr(o, "secret"));
    assert_null(strstr(o, "PERMAFROST_PASSWORD"));
    assert_null(strstr(o, "AWS_"));
    assert_non_null(strstr(o, "PGPASSWORD=given\n"));
    assert_non_null(strstr(o, "LC_TIME=C\n"));
    assert_non_null(strstr(o, "TZ=UTC\n"));
    assert_non_null(strstr(o, "PATH="));
    pf_buf_free(&out);
    unsetenv("PERMAFROST_PASSWORD");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    unsetenv("PGPASSWORD");
    unsetenv("REDISCLI_AUTH");
}

/* As root, a child can run as another user, with that user's ids and HOME. */
static void test_user(void **state)
{
    (void)state;
    pf_buf out = PF_BUF_INIT;
    pf_err err = {0};
    const char *argv[] = {"/bin/sh", "-c", "printf '%s %s %s' \"$(id -u)\" \"$(id -g)\" \"$HOME\"",
                          NULL};
    pf_buf_sink bs;
    pf_buf_sink_init(&bs, &out, 4096);
    pf_exec_opts o = {.argv = argv, .user = "nobody", .out = &bs.sink};
    struct passwd *pw = getpwnam("nobody");
    assert_non_null(pw);
    if (geteuid() != 0) {
        /* Not root: refused before anything runs. */
        assert_int_equal(pf_exec_run(&o, NULL, &err), -1);
        assert_int_equal(err.code, PF_EUSAGE);
        return;
    }
    assert_int_equal(pf_exec_run(&o, NULL, &err), 0);
    pf_buf_u8(&out, 0);
    char want[512];
    snprintf(want, sizeof want, "%u %u %s", (unsigned)pw->pw_uid, (unsigned)pw->pw_gid, pw->pw_dir);
    assert_string_equal((char *)out.data, want);
    pf_buf_free(&out);
    o.user = "no-such-user-permafrost";
    assert_int_equal(pf_exec_run(&o, NULL, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
}

static int failing_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    (void)p;
    size_t *seen = s->ctx;
    *seen += n;
    if (*seen > 100000)
        return pf_err_set(err, PF_EIO, "repository full");
    return 0;
}

static void test_sink_failure_stops_child(void **state)
{
    (void)state;
    size_t seen = 0;
    pf_sink sink = {.write = failing_write, .ctx = &seen};
    const char *argv[] = {"sh", "-c", "exec cat /dev/zero", NULL};
    pf_exec_opts o = {.argv = argv, .out = &sink};
    pf_err err = {0};
    assert_int_equal(pf_exec_run(&o, NULL, &err), -1);
    assert_int_equal(err.code, PF_EIO);
    assert_string_equal(err.msg, "repository full");
}

static void test_which(void **state)
{
    (void)state;
    char *p = pf_exec_which("sh");
    assert_non_null(p);
    assert_true(p[0] == '/');
    free(p);
    assert_null(pf_exec_which("permafrost-no-such-tool-xyz"));
}

/* A child beside us (pf_exec_spawn): a conversation through its stdin and stdout, its
 * stderr kept, a child that dies an error rather than a SIGPIPE, an unknown program. */
static void test_spawn(void **state)
{
    (void)state;
    pf_err err = {0};
    const char *argv[] = {"sh", "-c", "echo starting >&2; while read l; do echo \"got $l\"; done",
                          NULL};
    pf_exec_opts o = {.argv = argv};
    pf_exec_child *c = pf_exec_spawn(&o, &err);
    assert_non_null(c);
    char buf[32] = {0};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(pf_exec_child_write(c, "ping\n", 5, &err), 0);
        assert_int_equal(pf_exec_child_read(c, buf, 9, &err), 0);
        assert_memory_equal(buf, "got ping\n", 9);
    }
    char tail[128];
    pf_exec_child_tail(c, tail, sizeof tail);
    assert_string_equal(tail, "starting");
    pf_exec_result res;
    assert_int_equal(pf_exec_child_end(c, false, &res), 0); /* its input closed: it ends */
    assert_int_equal(res.exit_code, 0);

    /* A child that exits: reading says so, writing is an error, not a SIGPIPE. (It closes
     * its stdin first, so that the end of its stdout means its stdin is gone too.) */
    const char *dies[] = {"sh", "-c", "exec 0<&-; exit 3", NULL};
    o.argv = dies;
    c = pf_exec_spawn(&o, &err);
    assert_non_null(c);
    assert_int_equal(pf_exec_child_read(c, buf, 4, &err), 1);
    int rc = 0;
    for (int i = 0; i < 100 && rc == 0; i++)
        rc = pf_exec_child_write(c, "x\n", 2, &err);
    assert_int_equal(rc, -1);
    assert_int_equal(err.code, PF_ECONN);
    assert_int_equal(pf_exec_child_end(c, false, &res), -1);
    assert_int_equal(res.exit_code, 3);

    const char *none[] = {"no-such-program-pf", NULL};
    o.argv = none;
    assert_null(pf_exec_spawn(&o, &err));
    assert_int_equal(err.code, PF_ENOTFOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ok_and_output),
        cmocka_unit_test(test_exit_code_and_tail),
        cmocka_unit_test(test_signal),
        cmocka_unit_test(test_not_found),
        cmocka_unit_test(test_stdin_roundtrip),
        cmocka_unit_test(test_env),
        cmocka_unit_test(test_env_allow_list),
        cmocka_unit_test(test_user),
        cmocka_unit_test(test_sink_failure_stops_child),
        cmocka_unit_test(test_which),
        cmocka_unit_test(test_spawn),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
