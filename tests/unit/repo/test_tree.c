/* Tree encoding: odd names survive, every field round trips, order is bytewise, and the
 * decoder refuses every name or field that could make a restore misbehave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "repo/crypto.h"
#include "repo/tree.h"

static pf_node node_named(const char *name, size_t len, uint8_t type)
{
    static uint8_t ids[3][PF_ID_LEN];
    for (int i = 0; i < 3; i++)
        memset(ids[i], 0x10 + i, PF_ID_LEN);
    pf_node n = {.name = (char *)name,
                 .name_len = len,
                 .type = type,
                 .mode = 0640,
                 .uid = 1000,
                 .gid = 100,
                 .user = "mastodon",
                 .group = "users",
                 .mtime_ns = 1700000000000000001LL,
                 .ctime_ns = 1700000000000000002LL,
                 .size = 0,
                 .inode = 1,
                 .dev = 2,
                 .nlink = 1};
    if (type == PF_NODE_FILE) {
        n.blobs = ids;
        n.nblobs = 3;
    } else if (type == PF_NODE_DIR) {
        n.blobs = ids;
        n.nblobs = 1;
    } else if (type == PF_NODE_SYMLINK) {
        n.link = "../target";
        n.link_len = 9;
    }
    return n;
}

static void expect_same_node(const pf_node *a, const pf_node *b)
{
    assert_int_equal(a->name_len, b->name_len);
    assert_memory_equal(a->name, b->name, a->name_len);
    assert_int_equal(a->name[a->name_len], 0);
    assert_int_equal(b->name[b->name_len], 0);
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->mode, b->mode);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_string_equal(a->user ? a->user : "", b->user ? b->user : "");
    assert_string_equal(a->group ? a->group : "", b->group ? b->group : "");
    assert_true(a->mtime_ns == b->mtime_ns);
    assert_true(a->ctime_ns == b->ctime_ns);
    assert_true(a->size == b->size);
    assert_true(a->inode == b->inode);
    assert_true(a->dev == b->dev);
    assert_true(a->rdev == b->rdev);
    assert_int_equal(a->nlink, b->nlink);
    assert_int_equal(a->link_len, b->link_len);
    if (a->link_len)
        assert_memory_equal(a->link, b->link, a->link_len);
    assert_int_equal(a->nblobs, b->nblobs);
    if (a->nblobs)
        assert_memory_equal(a->blobs, b->blobs, a->nblobs * PF_ID_LEN);
}

/* Encodes t, decodes it, and checks every node survived; returns the encoding's size. */
static size_t round_trip(pf_tree *t)
{
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    pf_tree back;
    if (pf_tree_encode(t, &b, &err))
        fail_msg("encode: %s", err.msg);
    if (pf_tree_decode(b.data, b.len, &back, &err))
        fail_msg("decode: %s", err.msg);
    assert_int_equal(back.count, t->count);
    for (size_t i = 0; i < t->count; i++)
        expect_same_node(&t->nodes[i], &back.nodes[i]);
    /* Canonical: re-encoding the decoded tree gives the same bytes. */
    pf_buf b2 = PF_BUF_INIT;
    assert_int_equal(pf_tree_encode(&back, &b2, &err), 0);
    assert_int_equal(b2.len, b.len);
    assert_memory_equal(b2.data, b.data, b.len);
    size_t n = b.len;
    pf_buf_free(&b);
    pf_buf_free(&b2);
    pf_tree_free(&back);
    return n;
}

static void test_odd_names(void **state)
{
    (void)state;
    char long255[255], long4096[4096];
    memset(long255, 'x', sizeof long255);
    memset(long4096, 'y', sizeof long4096);
    static const char newline[] = "line\nbreak", bad_utf8[] = "\xff\xfe\xc3(\x80",
                      spaces[] = " lead and trail ", dash[] = "-rf", high[] = "caf\xc3\xa9",
                      dots[] = "...", dotfile[] = ".env.production", tab[] = "a\tb",
                      backslash[] = "a\\b", ctrl[] = "\x01\x1b[31m";
    pf_tree t = {0};
    pf_node n;
#define ADD(s, len, type)                                                                          \
    n = node_named(s, len, type);                                                                  \
    pf_tree_add(&t, &n)
    ADD(newline, strlen(newline), PF_NODE_FILE);
    ADD(bad_utf8, strlen(bad_utf8), PF_NODE_FILE);
    ADD(spaces, strlen(spaces), PF_NODE_DIR);
    ADD(dash, strlen(dash), PF_NODE_SYMLINK);
    ADD(high, strlen(high), PF_NODE_FIFO);
    ADD(dots, strlen(dots), PF_NODE_FILE);
    ADD(dotfile, strlen(dotfile), PF_NODE_FILE);
    ADD(tab, strlen(tab), PF_NODE_SOCKET);
    ADD(backslash, strlen(backslash), PF_NODE_FILE);
    ADD(ctrl, strlen(ctrl), PF_NODE_FILE);
    ADD(long255, sizeof long255, PF_NODE_FILE);
    ADD(long4096, sizeof long4096, PF_NODE_DIR);
#undef ADD
    pf_tree_sort(&t);
    round_trip(&t);
    /* Each one can be found by its exact bytes, and only by them. */
    assert_non_null(pf_tree_find(&t, newline, strlen(newline)));
    assert_non_null(pf_tree_find(&t, bad_utf8, strlen(bad_utf8)));
    assert_non_null(pf_tree_find(&t, long4096, sizeof long4096));
    assert_null(pf_tree_find(&t, long4096, sizeof long4096 - 1));
    assert_null(pf_tree_find(&t, "line", 4));
    pf_tree_free(&t);
}

static void test_every_field(void **state)
{
    (void)state;
    uint8_t ids[5][PF_ID_LEN];
    for (int i = 0; i < 5; i++)
        for (int j = 0; j < PF_ID_LEN; j++)
            ids[i][j] = (uint8_t)(i * 40 + j);
    char user[300];
    memset(user, 'u', sizeof user - 1);
    user[sizeof user - 1] = 0;
    pf_node f = {.name = "file",
                 .name_len = 4,
                 .type = PF_NODE_FILE,
                 .mode = 07777,
                 .uid = UINT32_MAX,
                 .gid = 0x12345678,
                 .user = "u\xff",
                 .group = "",
                 .mtime_ns = INT64_MIN,
                 .ctime_ns = -1,
                 .size = UINT64_MAX,
                 .inode = 0x0102030405060708ull,
                 .dev = UINT64_MAX - 1,
                 .rdev = 0,
                 .nlink = UINT32_MAX,
                 .blobs = ids,
                 .nblobs = 5};
    pf_node l = {.name = "link",
                 .name_len = 4,
                 .type = PF_NODE_SYMLINK,
                 .mode = 0777,
                 .user = NULL,
                 .group = NULL,
                 .mtime_ns = INT64_MAX,
                 .link = "a\nb\xff/../c",
                 .link_len = 9};
    pf_node c = {.name = "tty",
                 .name_len = 3,
                 .type = PF_NODE_CHARDEV,
                 .mode = 0620,
                 .rdev = 0x0000000500000001ull,
                 .user = "root",
                 .group = "tty"};
    pf_node b = {.name = "sda", .name_len = 3, .type = PF_NODE_BLOCKDEV, .rdev = 8};
    pf_node e = {.name = "empty", .name_len = 5, .type = PF_NODE_FILE}; /* no blobs */
    pf_node longlink = {.name = "long", .name_len = 4, .type = PF_NODE_SYMLINK};
    char *target = malloc(65536);
    assert_non_null(target);
    memset(target, 't', 65536);
    longlink.link = target;
    longlink.link_len = 65536;
    pf_tree t = {0};
    pf_tree_add(&t, &f);
    pf_tree_add(&t, &l);
    pf_tree_add(&t, &c);
    pf_tree_add(&t, &b);
    pf_tree_add(&t, &e);
    pf_tree_add(&t, &longlink);
    pf_tree_sort(&t);
    round_trip(&t);

    /* A user name longer than 255 bytes is cut to 255, not refused. */
    pf_tree u = {0};
    pf_node un = node_named("u", 1, PF_NODE_FIFO);
    un.user = user;
    pf_tree_add(&u, &un);
    pf_buf buf = PF_BUF_INIT;
    pf_err err = {0};
    pf_tree back;
    assert_int_equal(pf_tree_encode(&u, &buf, &err), 0);
    assert_int_equal(pf_tree_decode(buf.data, buf.len, &back, &err), 0);
    assert_int_equal(strlen(back.nodes[0].user), 255);
    pf_tree_free(&back);
    pf_buf_free(&buf);
    pf_tree_free(&u);

    /* An empty tree. */
    pf_tree none = {0};
    assert_int_equal(round_trip(&none), 8);
    pf_tree_free(&t);
    free(target);
}

static void test_sort_order(void **state)
{
    (void)state;
    /* Bytewise and unsigned: uppercase before lowercase, a prefix before its extensions,
     * 0x7f before 0x80 and 0xff last. */
    static const char *want[] = {"\x01", "B", "a", "a\x01", "ab", "b", "\x7f", "\x80", "\xff"};
    size_t n = sizeof want / sizeof *want;
    pf_tree t = {0};
    for (size_t i = n; i-- > 0;) {
        pf_node x = node_named(want[(i * 5) % n], strlen(want[(i * 5) % n]), PF_NODE_FIFO);
        pf_tree_add(&t, &x);
    }
    pf_tree_sort(&t);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(t.nodes[i].name, want[i]);
    for (size_t i = 0; i < n; i++)
        assert_ptr_equal(pf_tree_find(&t, want[i], strlen(want[i])), &t.nodes[i]);
    assert_null(pf_tree_find(&t, "aa", 2));
    assert_null(pf_tree_find(&t, "", 0));
    round_trip(&t);
    pf_tree_free(&t);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    pf_tree t = {0};
    pf_node x = node_named("same", 4, PF_NODE_FILE);
    pf_tree_add(&t, &x);
    pf_tree_add(&t, &x);
    assert_int_equal(pf_tree_encode(&t, &b, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    pf_tree_free(&t);

    /* Unsorted: would not decode, so it is not written. */
    pf_node y = node_named("b", 1, PF_NODE_FILE), z = node_named("a", 1, PF_NODE_FILE);
    pf_tree_add(&t, &y);
    pf_tree_add(&t, &z);
    pf_buf_reset(&b);
    assert_int_equal(pf_tree_encode(&t, &b, &err), -1);
    pf_tree_sort(&t);
    pf_buf_reset(&b);
    assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
    pf_tree_free(&t);

    static const struct {
        const char *name;
        size_t len;
    } bad[] = {{"", 0}, {".", 1}, {"..", 2}, {"a/b", 3}, {"/", 1}, {"a\0b", 3}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pf_node v = node_named(bad[i].name, bad[i].len, PF_NODE_FILE);
        pf_tree_add(&t, &v);
        pf_buf_reset(&b);
        assert_int_equal(pf_tree_encode(&t, &b, &err), -1);
        pf_tree_free(&t);
        assert_false(pf_tree_name_ok(bad[i].name, bad[i].len));
    }
    pf_node v = node_named("d", 1, PF_NODE_DIR);
    v.nblobs = 2; /* a directory has exactly one subtree */
    pf_tree_add(&t, &v);
    pf_buf_reset(&b);
    assert_int_equal(pf_tree_encode(&t, &b, &err), -1);
    pf_tree_free(&t);
    v = node_named("m", 1, PF_NODE_FILE);
    v.mode = 010000;
    pf_tree_add(&t, &v);
    pf_buf_reset(&b);
    assert_int_equal(pf_tree_encode(&t, &b, &err), -1);
    pf_tree_free(&t);
    pf_buf_free(&b);
    assert_true(pf_tree_name_ok("...", 3));
    assert_true(pf_tree_name_ok(".a", 2));
    assert_false(pf_tree_name_ok("x", 0));
}

/* A node written field by field as docs/FORMAT.md describes, so that the decoder can be
 * fed what the encoder refuses to write. */
typedef struct raw {
    const char *name;
    uint32_t name_len;
    uint8_t type;
    uint32_t mode;
    uint32_t link_len;
    uint32_t nblobs;
} raw;

static void raw_node(pf_buf *b, const raw *r)
{
    pf_buf_u32le(b, r->name_len);
    pf_buf_append(b, r->name, r->name_len);
    pf_buf_u8(b, r->type);
    pf_buf_u32le(b, r->mode);
    pf_buf_u32le(b, 0);
    pf_buf_u32le(b, 0);
    pf_buf_u8(b, 0);
    pf_buf_u8(b, 1);
    pf_buf_u8(b, 'g');
    for (int i = 0; i < 6; i++)
        pf_buf_u64le(b, 0);
    pf_buf_u32le(b, 1);
    pf_buf_u32le(b, r->link_len);
    for (uint32_t i = 0; i < r->link_len; i++)
        pf_buf_u8(b, 'l');
    pf_buf_u32le(b, r->nblobs);
    for (uint32_t i = 0; i < r->nblobs * PF_ID_LEN; i++)
        pf_buf_u8(b, (uint8_t)i);
}

static int decode_raw(const raw *nodes, size_t n, uint32_t count)
{
    pf_buf b = PF_BUF_INIT;
    pf_buf_append(&b, "PFT1", 4);
    pf_buf_u32le(&b, count);
    for (size_t i = 0; i < n; i++)
        raw_node(&b, &nodes[i]);
    /* An exact-size copy, so ASan sees any read past the end. */
    uint8_t *p = malloc(b.len);
    assert_non_null(p);
    memcpy(p, b.data, b.len);
    pf_tree t;
    pf_err err = {0};
    int rc = pf_tree_decode(p, b.len, &t, &err);
    if (rc == 0)
        pf_tree_free(&t);
    else
        assert_int_equal(err.code, PF_ECORRUPT);
    free(p);
    pf_buf_free(&b);
    return rc;
}

#define FILE_NODE(n)                                                                               \
    {                                                                                              \
        n, sizeof n - 1, PF_NODE_FILE, 0644, 0, 1                                                  \
    }

static void test_decode_refuses(void **state)
{
    (void)state;
    raw ok[] = {FILE_NODE("a"), FILE_NODE("b")};
    assert_int_equal(decode_raw(ok, 2, 2), 0);

    static const char *bad_names[] = {"", ".", "..", "a/b", "/", "../x", "x/"};
    for (size_t i = 0; i < sizeof bad_names / sizeof *bad_names; i++) {
        raw r = {bad_names[i], (uint32_t)strlen(bad_names[i]), PF_NODE_FILE, 0644, 0, 0};
        if (decode_raw(&r, 1, 1) == 0)
            fail_msg("name \"%s\" accepted", bad_names[i]);
    }
    raw nul = {"a\0b", 3, PF_NODE_FILE, 0644, 0, 0};
    assert_int_equal(decode_raw(&nul, 1, 1), -1);
    static char big[4097];
    memset(big, 'n', sizeof big);
    raw toolong = {big, 4097, PF_NODE_FILE, 0644, 0, 0};
    assert_int_equal(decode_raw(&toolong, 1, 1), -1);
    raw longest = {big, 4096, PF_NODE_FILE, 0644, 0, 0};
    assert_int_equal(decode_raw(&longest, 1, 1), 0);

    raw dup[] = {FILE_NODE("a"), FILE_NODE("a")};
    assert_int_equal(decode_raw(dup, 2, 2), -1);
    raw unsorted[] = {FILE_NODE("b"), FILE_NODE("a")};
    assert_int_equal(decode_raw(unsorted, 2, 2), -1);
    raw prefix[] = {FILE_NODE("ab"), FILE_NODE("a")};
    assert_int_equal(decode_raw(prefix, 2, 2), -1);

    raw type0 = {"a", 1, 0, 0644, 0, 0}, type8 = {"a", 1, 8, 0644, 0, 0};
    assert_int_equal(decode_raw(&type0, 1, 1), -1);
    assert_int_equal(decode_raw(&type8, 1, 1), -1);
    raw mode = {"a", 1, PF_NODE_FILE, 010000, 0, 0};
    assert_int_equal(decode_raw(&mode, 1, 1), -1);
    raw dir0 = {"d", 1, PF_NODE_DIR, 0755, 0, 0}, dir2 = {"d", 1, PF_NODE_DIR, 0755, 0, 2},
        dir1 = {"d", 1, PF_NODE_DIR, 0755, 0, 1};
    assert_int_equal(decode_raw(&dir0, 1, 1), -1);
    assert_int_equal(decode_raw(&dir2, 1, 1), -1);
    assert_int_equal(decode_raw(&dir1, 1, 1), 0);
    raw link_blobs = {"l", 1, PF_NODE_SYMLINK, 0777, 3, 1};
    assert_int_equal(decode_raw(&link_blobs, 1, 1), -1);
    raw link_long = {"l", 1, PF_NODE_SYMLINK, 0777, 65537, 0};
    assert_int_equal(decode_raw(&link_long, 1, 1), -1);

    /* Counts that do not match the bytes. */
    assert_int_equal(decode_raw(ok, 2, 3), -1);
    assert_int_equal(decode_raw(ok, 2, 1), -1); /* trailing bytes */
    assert_int_equal(decode_raw(ok, 0, UINT32_MAX), -1);
    raw many = {"a", 1, PF_NODE_FILE, 0644, 0, UINT32_MAX};
    pf_buf b = PF_BUF_INIT;
    pf_buf_append(&b, "PFT1", 4);
    pf_buf_u32le(&b, 1);
    many.nblobs = 0;
    raw_node(&b, &many);
    pf_put_le32(b.data + b.len - 4, UINT32_MAX); /* blob count far beyond the bytes */
    pf_tree t;
    pf_err err = {0};
    assert_int_equal(pf_tree_decode(b.data, b.len, &t, &err), -1);

    /* Truncated anywhere, or with a bad magic. */
    pf_buf_reset(&b);
    pf_buf_append(&b, "PFT1", 4);
    pf_buf_u32le(&b, 2);
    raw_node(&b, &ok[0]);
    raw_node(&b, &ok[1]);
    assert_int_equal(pf_tree_decode(b.data, b.len, &t, &err), 0);
    pf_tree_free(&t);
    for (size_t n = 0; n < b.len; n++) {
        uint8_t *p = malloc(n ? n : 1);
        assert_non_null(p);
        memcpy(p, b.data, n);
        if (pf_tree_decode(p, n, &t, &err) == 0)
            fail_msg("tree truncated to %zu of %zu bytes accepted", n, b.len);
        assert_int_equal(t.count, 0);
        free(p);
    }
    b.data[0] = 'X';
    assert_int_equal(pf_tree_decode(b.data, b.len, &t, &err), -1);
    pf_buf_free(&b);
}

static void test_node_copy(void **state)
{
    (void)state;
    pf_node a = node_named("orig", 4, PF_NODE_FILE), c;
    pf_node_copy(&c, &a);
    assert_ptr_not_equal(c.name, a.name);
    assert_ptr_not_equal(c.blobs, a.blobs);
    expect_same_node(&a, &c);
    c.name[0] = 'X';
    assert_int_equal(a.name[0], 'o');
    pf_node_free(&c);
    assert_null(c.name);
    pf_node s = node_named("s", 1, PF_NODE_SYMLINK);
    pf_node_copy(&c, &s);
    assert_string_equal(c.link, "../target");
    pf_node_free(&c);
}

/* Encodes a one-entry tree holding n. */
static void encode_one(const pf_node *n, pf_buf *out)
{
    pf_tree t = {0};
    pf_err err = {0};
    pf_tree_add(&t, n);
    pf_buf_free(out);
    assert_int_equal(pf_tree_encode(&t, out, &err), 0);
    pf_tree_free(&t);
}

/* pf_tree_same says "same" exactly when the encodings are the same bytes: each field the
 * encoder writes changed alone makes both differ; a user name longer than the encoder
 * keeps compares as far as it keeps it. The archiver reuses a parent tree's id on it. */
static void test_same_is_same_bytes(void **state)
{
    (void)state;
    static uint8_t other[3][PF_ID_LEN];
    memset(other, 0x77, sizeof other);
    char long_a[300], long_b[300];
    memset(long_a, 'u', sizeof long_a - 1);
    long_a[sizeof long_a - 1] = 0;
    memcpy(long_b, long_a, sizeof long_b);
    long_b[280] = 'v'; /* past the 255 bytes kept */
    pf_buf ea = PF_BUF_INIT, eb = PF_BUF_INIT;
    for (int field = 0; field <= 19; field++) {
        uint8_t type = field == 15 || field == 16 ? PF_NODE_SYMLINK : PF_NODE_FILE;
        pf_node a = node_named("entry", 5, type), b = a;
        int differ = 1;
        switch (field) {
        case 0:
            differ = 0;
            break;
        case 1:
            b.name = "entrz";
            break;
        case 2:
            b.type = PF_NODE_FIFO;
            b.nblobs = 0;
            break;
        case 3:
            b.mode = 0644;
            break;
        case 4:
            b.uid++;
            break;
        case 5:
            b.gid++;
            break;
        case 6:
            b.user = "mastodom";
            break;
        case 7:
            b.group = "user";
            break;
        case 8:
            b.mtime_ns++;
            break;
        case 9:
            b.ctime_ns--;
            break;
        case 10:
            b.size = 1;
            break;
        case 11:
            b.inode = 7;
            break;
        case 12:
            b.dev = 3;
            break;
        case 13:
            b.type = PF_NODE_CHARDEV;
            a.type = PF_NODE_CHARDEV;
            a.nblobs = b.nblobs = 0;
            b.rdev = 5;
            break;
        case 14:
            b.nlink = 2;
            break;
        case 15:
            b.link = "../targes";
            break;
        case 16:
            b.link = "../targe";
            b.link_len = 8;
            break;
        case 17:
            b.blobs = other;
            break;
        case 18:
            b.nblobs = 2;
            break;
        case 19:
            a.user = long_a;
            b.user = long_b;
            differ = 0;
            break;
        }
        encode_one(&a, &ea);
        encode_one(&b, &eb);
        int bytes_same = ea.len == eb.len && !memcmp(ea.data, eb.data, ea.len);
        pf_tree ta = {0}, tb = {0};
        pf_tree_add(&ta, &a);
        pf_tree_add(&tb, &b);
        if (differ != !bytes_same)
            fail_msg("field %d: the encodings are %s", field, bytes_same ? "equal" : "different");
        if (pf_tree_same(&ta, &tb) != !differ)
            fail_msg("field %d: pf_tree_same says %d", field, pf_tree_same(&ta, &tb));
        pf_tree_free(&ta);
        pf_tree_free(&tb);
    }
    /* A tree with one more entry is not the same. */
    pf_tree one = {0}, two = {0};
    pf_node x = node_named("x", 1, PF_NODE_FILE), y = node_named("y", 1, PF_NODE_FILE);
    pf_tree_add(&one, &x);
    pf_tree_add(&two, &x);
    pf_tree_add(&two, &y);
    assert_false(pf_tree_same(&one, &two));
    assert_true(pf_tree_same(&two, &two));
    pf_tree_free(&one);
    pf_tree_free(&two);
    pf_buf_free(&ea);
    pf_buf_free(&eb);
}

/* A tree already in order is left as it is; one out of order is sorted. */
static void test_sort_presorted(void **state)
{
    (void)state;
    pf_tree t = {0};
    const char *names[] = {"a", "ab", "b", "c\xff", "c"};
    for (int i = 0; i < 5; i++) {
        pf_node n = node_named(names[i], strlen(names[i]), PF_NODE_FILE);
        pf_tree_add(&t, &n);
    }
    pf_tree_sort(&t);
    const char *want[] = {"a", "ab", "b", "c", "c\xff"};
    for (int i = 0; i < 5; i++)
        assert_string_equal(t.nodes[i].name, want[i]);
    pf_tree_sort(&t);
    for (int i = 0; i < 5; i++)
        assert_string_equal(t.nodes[i].name, want[i]);
    pf_tree_free(&t);
}

/* Times before 1970 are negative nanosecond counts, two's complement little-endian; the
 * bytes of docs/FORMAT.md's example, and the round trip of 1901..2262. */
static void test_negative_times(void **state)
{
    (void)state;
    static const int64_t times[] = {INT64_C(-2147472000) * 1000000000 + 1, -500000000, -1,
                                    INT64_MAX, INT64_MIN};
    for (size_t i = 0; i < sizeof times / sizeof *times; i++) {
        pf_node n = node_named("a", 1, PF_NODE_SYMLINK);
        n.user = n.group = "";
        n.link = "t";
        n.link_len = 1;
        n.mtime_ns = times[i];
        pf_tree t = {0}, back;
        pf_tree_add(&t, &n);
        pf_buf b = PF_BUF_INIT;
        pf_err err = {0};
        assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
        /* header 8, name_len 4, name 1, type 1, mode 4, uid 4, gid 4, two empty names 2 */
        if (times[i] == -500000000) {
            static const uint8_t want[8] = {0x00, 0x9b, 0x32, 0xe2, 0xff, 0xff, 0xff, 0xff};
            assert_memory_equal(b.data + 28, want, 8);
        }
        assert_int_equal(pf_tree_decode(b.data, b.len, &back, &err), 0);
        assert_true(back.nodes[0].mtime_ns == times[i]);
        pf_tree_free(&back);
        pf_tree_free(&t);
        pf_buf_free(&b);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_odd_names),      cmocka_unit_test(test_every_field),
        cmocka_unit_test(test_sort_order),     cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_decode_refuses), cmocka_unit_test(test_node_copy),
        cmocka_unit_test(test_negative_times), cmocka_unit_test(test_same_is_same_bytes),
        cmocka_unit_test(test_sort_presorted),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
