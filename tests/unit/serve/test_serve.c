/* The repository server (src/serve/serve.c) spoken to directly through pipes: the HELLO
 * (version mismatch, paths outside --restrict-to-path, '..'), what append-only refuses and
 * what it still does (new keys, identical re-puts, locks), symbolic links inside the
 * repository, and frames that break the protocol. */
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

#include "serve/serve.h"
#include "store/proto.h"

static char dir[256];
static const char lock_key[] =
    "locks/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/* Feeds the requests to a server and collects what it answers. Returns pf_serve's result. */
static int session(const pf_buf *req, const pf_serve_opts *o, pf_buf *answer, pf_err *err)
{
    int in[2], out[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    assert_true(req->len < 60000); /* fits in the pipe: no writer thread needed */
    assert_int_equal(write(in[1], req->data, req->len), (ssize_t)req->len);
    close(in[1]);
    int rc = pf_serve(in[0], out[1], o, err);
    close(in[0]);
    close(out[1]);
    uint8_t buf[4096];
    ssize_t n;
    pf_buf_reset(answer);
    while ((n = read(out[0], buf, sizeof buf)) > 0)
        pf_buf_append(answer, buf, (size_t)n);
    close(out[0]);
    return rc;
}

/* The next answer frame, decoded. */
static void next(const pf_buf *a, size_t *off, pf_proto_msg *m)
{
    uint32_t n;
    pf_err err = {0};
    assert_true(*off + 4 <= a->len);
    assert_int_equal(pf_proto_frame_len(a->data + *off, &n, &err), 0);
    assert_true(*off + 4 + n <= a->len);
    if (pf_proto_decode(a->data + *off + 4, n, m, &err) < 0)
        fail_msg("bad answer: %s", err.msg);
    *off += 4 + n;
}

static void expect_err(const pf_buf *a, size_t *off, int code, const char *what)
{
    pf_proto_msg m;
    next(a, off, &m);
    assert_int_equal(m.type, PF_PT_ERR);
    assert_int_equal(m.code, code);
    if (!strstr(m.str, what))
        fail_msg("error \"%s\" lacks \"%s\"", m.str, what);
}

static void expect_type(const pf_buf *a, size_t *off, uint8_t type)
{
    pf_proto_msg m;
    next(a, off, &m);
    if (m.type != type)
        fail_msg("answer type 0x%02x (%s), wanted 0x%02x", m.type, m.str, type);
}

static void put(pf_buf *b, const char *key, const char *data)
{
    pf_proto_keyed(b, PF_PT_PUT, key, strlen(data), 0);
    if (*data)
        pf_proto_data(b, data, strlen(data));
}

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    static char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/pf-serve-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_version_mismatch(void **state)
{
    (void)state;
    pf_buf req = PF_BUF_INIT, ans = PF_BUF_INIT;
    pf_proto_hello(&req, 2, dir);
    pf_serve_opts o = {0};
    pf_err err = {0};
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    size_t off = 0;
    expect_err(&ans, &off, PF_EUSAGE, "protocol version 2 is not spoken by this server");
    assert_int_equal(off, ans.len);
    /* Something that is not a HELLO at all. */
    pf_buf_reset(&req);
    pf_proto_keyed(&req, PF_PT_STAT, "config", 0, 0);
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    off = 0;
    expect_err(&ans, &off, PF_ECORRUPT, "expected HELLO");
    pf_buf_free(&req);
    pf_buf_free(&ans);
}

static void test_append_only(void **state)
{
    (void)state;
    char repo[512], path[600];
    snprintf(repo, sizeof repo, "%s/repo", dir);
    pf_buf req = PF_BUF_INIT, ans = PF_BUF_INIT;
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    put(&req, "data/ab/x", "hello");                       /* new: created */
    put(&req, "data/ab/x", "hello");                       /* the same bytes again: fine */
    put(&req, "data/ab/x", "HELLO");                       /* other bytes: refused */
    pf_proto_keyed(&req, PF_PT_REMOVE, "data/ab/x", 0, 0); /* refused */
    put(&req, lock_key, "lock 1");
    put(&req, lock_key, "lock 2"); /* locks are refreshed in place */
    pf_proto_keyed(&req, PF_PT_REMOVE, lock_key, 0, 0);
    pf_proto_sweep(&req, 1LL << 40); /* refused: it removes */
    pf_proto_keyed(&req, PF_PT_GET, "data/ab/x", 1, 3);
    pf_proto_keyed(&req, PF_PT_LIST, "data/", 0, 0);
    pf_proto_keyed(&req, PF_PT_STAT, "data/ab/missing", 0, 0);
    pf_proto_empty(&req, PF_PT_BYE);
    pf_serve_opts o = {.append_only = true};
    pf_err err = {0};
    assert_int_equal(session(&req, &o, &ans, &err), 0);

    size_t off = 0;
    pf_proto_msg m;
    next(&ans, &off, &m);
    assert_int_equal(m.type, PF_PT_HELLO_OK);
    assert_int_equal(m.caps, PF_PROTO_CAP_APPEND_ONLY);
    expect_type(&ans, &off, PF_PT_OK);
    expect_type(&ans, &off, PF_PT_OK);
    expect_err(&ans, &off, PF_EREFUSED, "exists with other content");
    expect_err(&ans, &off, PF_EREFUSED, "removes nothing but locks");
    expect_type(&ans, &off, PF_PT_OK);
    expect_type(&ans, &off, PF_PT_OK);
    expect_type(&ans, &off, PF_PT_OK);
    expect_err(&ans, &off, PF_EREFUSED, "removes nothing but locks");
    next(&ans, &off, &m);
    assert_true(m.type == PF_PT_SIZE && m.a == 3);
    next(&ans, &off, &m);
    assert_true(m.type == PF_PT_DATA && m.data_len == 3 && !memcmp(m.data, "ell", 3));
    next(&ans, &off, &m);
    assert_int_equal(m.type, PF_PT_ENTRIES);
    char key[1100];
    uint64_t size;
    size_t pos = 0;
    assert_int_equal(pf_proto_entry_next(&m, &pos, key, &size), 1);
    assert_string_equal(key, "data/ab/x");
    assert_int_equal(size, 5);
    assert_int_equal(pf_proto_entry_next(&m, &pos, key, &size), 0);
    expect_type(&ans, &off, PF_PT_OK);
    expect_err(&ans, &off, PF_ENOTFOUND, "not found");
    assert_int_equal(off, ans.len);

    /* Intact: the first bytes, and no lock left. */
    snprintf(path, sizeof path, "%s/data/ab/x", repo);
    assert_string_equal(slurp(path), "hello");
    snprintf(path, sizeof path, "%s/%s", repo, lock_key);
    assert_int_equal(access(path, F_OK), -1);
    pf_buf_free(&req);
    pf_buf_free(&ans);
}

/* Without --append-only the same requests replace and remove. */
static void test_not_append_only(void **state)
{
    (void)state;
    char repo[512], path[600];
    snprintf(repo, sizeof repo, "%s/repo2", dir);
    pf_buf req = PF_BUF_INIT, ans = PF_BUF_INIT;
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    put(&req, "data/ab/x", "hello");
    put(&req, "data/ab/x", "HELLO");
    put(&req, "index/y", "");
    pf_proto_keyed(&req, PF_PT_REMOVE, "index/y", 0, 0);
    pf_proto_sweep(&req, 0);
    pf_serve_opts o = {0};
    pf_err err = {0};
    assert_int_equal(session(&req, &o, &ans, &err), 0);
    size_t off = 0;
    pf_proto_msg m;
    next(&ans, &off, &m);
    assert_true(m.type == PF_PT_HELLO_OK && m.caps == 0);
    for (int i = 0; i < 4; i++)
        expect_type(&ans, &off, PF_PT_OK);
    expect_type(&ans, &off, PF_PT_SWEPT);
    snprintf(path, sizeof path, "%s/data/ab/x", repo);
    assert_string_equal(slurp(path), "HELLO");
    pf_buf_free(&req);
    pf_buf_free(&ans);
}

static void test_restrict_to_path(void **state)
{
    (void)state;
    char root[512], outside[512], path[700];
    snprintf(root, sizeof root, "%s/root", dir);
    snprintf(outside, sizeof outside, "%s/outside", dir);
    mkdir(root, 0700);
    mkdir(outside, 0700);
    pf_serve_opts o = {.append_only = true, .restrict_to = root};
    pf_buf req = PF_BUF_INIT, ans = PF_BUF_INIT;
    pf_err err = {0};
    size_t off;
    const char *bad[3];
    char dotdot[600], link[600];
    snprintf(dotdot, sizeof dotdot, "%s/../outside/repo", root);
    snprintf(link, sizeof link, "%s/link/repo", root);
    snprintf(path, sizeof path, "%s/link", root);
    assert_int_equal(symlink(outside, path), 0);
    bad[0] = outside;
    bad[1] = dotdot;
    bad[2] = link;
    for (int i = 0; i < 3; i++) {
        pf_buf_reset(&req);
        pf_proto_hello(&req, PF_PROTO_VERSION, bad[i]);
        assert_int_equal(session(&req, &o, &ans, &err), -1);
        off = 0;
        expect_err(&ans, &off, PF_EREFUSED, i == 1 ? "'..'" : "outside");
    }
    /* A link inside the repository, pointing out: not followed. */
    char repo[600];
    snprintf(repo, sizeof repo, "%s/repo", root);
    mkdir(repo, 0700);
    snprintf(path, sizeof path, "%s/data", repo);
    assert_int_equal(symlink(outside, path), 0);
    pf_buf_reset(&req);
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    put(&req, "data/ab/x", "hello");
    pf_proto_keyed(&req, PF_PT_STAT, "data", 0, 0);
    put(&req, "index/ok", "fine");
    assert_int_equal(session(&req, &o, &ans, &err), 0);
    off = 0;
    expect_type(&ans, &off, PF_PT_HELLO_OK);
    expect_err(&ans, &off, PF_EREFUSED, "symbolic link");
    expect_err(&ans, &off, PF_EREFUSED, "symbolic link");
    expect_type(&ans, &off, PF_PT_OK);
    snprintf(path, sizeof path, "%s/ab", outside);
    assert_int_equal(access(path, F_OK), -1);
    pf_buf_free(&req);
    pf_buf_free(&ans);
}

static void test_bad_frames(void **state)
{
    (void)state;
    char repo[512];
    snprintf(repo, sizeof repo, "%s/repo3", dir);
    pf_serve_opts o = {0};
    pf_err err = {0};
    pf_buf req = PF_BUF_INIT, ans = PF_BUF_INIT;
    size_t off;
    /* A put that announces 10 bytes and sends another request instead. */
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    pf_proto_keyed(&req, PF_PT_PUT, "data/ab/x", 10, 0);
    pf_proto_keyed(&req, PF_PT_STAT, "config", 0, 0);
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    off = 0;
    expect_type(&ans, &off, PF_PT_HELLO_OK);
    expect_err(&ans, &off, PF_ECORRUPT, "inside a put");
    /* More data than announced. */
    pf_buf_reset(&req);
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    pf_proto_keyed(&req, PF_PT_PUT, "data/ab/x", 2, 0);
    pf_proto_data(&req, "abc", 3);
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    assert_non_null(strstr(err.msg, "more than it announced"));
    /* A length prefix past the bound. */
    pf_buf_reset(&req);
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    pf_buf_u32le(&req, PF_PROTO_FRAME_MAX + 1);
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    assert_non_null(strstr(err.msg, "frame of"));
    /* An answer type sent as a request. */
    pf_buf_reset(&req);
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    pf_proto_size(&req, 5);
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    assert_non_null(strstr(err.msg, "not a request"));
    /* Input that ends inside a frame. */
    pf_buf_reset(&req);
    pf_proto_hello(&req, PF_PROTO_VERSION, repo);
    pf_proto_keyed(&req, PF_PT_STAT, "config", 0, 0);
    req.len -= 2;
    assert_int_equal(session(&req, &o, &ans, &err), -1);
    assert_non_null(strstr(err.msg, "ends inside a frame"));
    pf_buf_free(&req);
    pf_buf_free(&ans);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_mismatch), cmocka_unit_test(test_append_only),
        cmocka_unit_test(test_not_append_only),  cmocka_unit_test(test_restrict_to_path),
        cmocka_unit_test(test_bad_frames),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
