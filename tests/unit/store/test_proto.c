/* The repository server protocol (src/store/proto.c): the known-answer frames of
 * docs/PROTOCOL.md, every message encoded and decoded back, and the decoder refusing
 * frames that break a bound (length, key, path, object size, message), hold a NUL, end
 * short or carry stray bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "store/internal.h"
#include "store/proto.h"

/* The examples of docs/PROTOCOL.md, which must contain each of them. */
static const char kat_hello[] = "1b00000001504653560100000010002f7372762f70662f6d6173746f646f6e";
static const char kat_remove[] = "0f000000060c00736e617073686f74732f6162";
static const char kat_refused[] = "2a0000008f0d00250074686973207365727665722072656d6f766573206e"
                                  "6f7468696e6720627574206c6f636b73";

static char *hex(const pf_buf *b)
{
    char *s = malloc(b->len * 2 + 1);
    for (size_t i = 0; i < b->len; i++)
        sprintf(s + 2 * i, "%02x", b->data[i]);
    s[b->len * 2] = 0;
    return s;
}

/* Decodes a whole frame (length prefix checked against the body). */
static int decode_frame(const pf_buf *b, pf_proto_msg *m, pf_err *err)
{
    uint32_t n;
    if (b->len < 4 || pf_proto_frame_len(b->data, &n, err) < 0)
        return -1;
    assert_int_equal(n, b->len - 4);
    return pf_proto_decode(b->data + 4, n, m, err);
}

static void test_known_answers(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_proto_hello(&b, PF_PROTO_VERSION, "/srv/pf/mastodon");
    char *h = hex(&b);
    assert_string_equal(h, kat_hello);
    free(h);
    pf_buf_reset(&b);
    pf_proto_keyed(&b, PF_PT_REMOVE, "snapshots/ab", 0, 0);
    h = hex(&b);
    assert_string_equal(h, kat_remove);
    free(h);
    pf_buf_reset(&b);
    pf_err e = {0};
    pf_err_set(&e, PF_EREFUSED, "this server removes nothing but locks");
    pf_proto_error(&b, &e);
    h = hex(&b);
    assert_string_equal(h, kat_refused);
    free(h);
    pf_buf_free(&b);

    /* The document shows them (whitespace ignored). */
    FILE *f = fopen("docs/PROTOCOL.md", "rb");
    assert_non_null(f);
    pf_buf doc = PF_BUF_INIT;
    int c;
    while ((c = fgetc(f)) != EOF)
        if (c != ' ' && c != '\n')
            pf_buf_u8(&doc, (uint8_t)c);
    fclose(f);
    assert_non_null(strstr((char *)doc.data, kat_hello));
    assert_non_null(strstr((char *)doc.data, kat_remove));
    assert_non_null(strstr((char *)doc.data, kat_refused));
    pf_buf_free(&doc);
}

static void test_round_trips(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_proto_msg m;
    pf_err err = {0};

    pf_proto_keyed(&b, PF_PT_GET, "data/ab/cd", 7, PF_STORE_ALL);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_int_equal(m.type, PF_PT_GET);
    assert_string_equal(m.str, "data/ab/cd");
    assert_true(m.a == 7 && m.b == PF_STORE_ALL);

    pf_buf_reset(&b);
    pf_proto_keyed(&b, PF_PT_PUT, "index/x", 12345, 0);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_PUT && m.a == 12345);

    pf_buf_reset(&b);
    pf_proto_keyed(&b, PF_PT_LIST, "", 0, 0);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_LIST && m.str[0] == 0);

    pf_buf_reset(&b);
    pf_proto_hello_ok(&b, PF_PROTO_CAP_APPEND_ONLY, PF_PROTO_OBJECT_MAX);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_HELLO_OK && m.version == PF_PROTO_VERSION &&
                m.caps == PF_PROTO_CAP_APPEND_ONLY && m.a == PF_PROTO_OBJECT_MAX);

    pf_buf_reset(&b);
    pf_proto_swept(&b, 3, 4096);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_SWEPT && m.a == 3 && m.b == 4096);

    pf_buf_reset(&b);
    pf_proto_sweep(&b, -5);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_SWEEP && (int64_t)m.a == -5);

    pf_buf_reset(&b);
    pf_proto_data(&b, "abc", 3);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_DATA && m.data_len == 3 && !memcmp(m.data, "abc", 3));

    pf_buf_reset(&b);
    pf_err e = {0};
    pf_err_set(&e, PF_ENOTFOUND, "object x not found");
    e.retryable = true;
    pf_proto_error(&b, &e);
    assert_int_equal(decode_frame(&b, &m, &err), 0);
    assert_true(m.type == PF_PT_ERR && m.code == PF_ENOTFOUND && m.retryable);
    assert_string_equal(m.str, "object x not found");
    pf_buf_free(&b);
}

/* A listing too long for one frame comes in several, each within the bound. */
static void test_entries_split(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_proto_entries e;
    char key[PF_STORE_KEY_MAX + 1];
    memset(key, 'k', PF_STORE_KEY_MAX);
    key[PF_STORE_KEY_MAX] = 0;
    int frames = 0, total = 0;
    pf_proto_entries_begin(&e, &b);
    for (int i = 0; i < 3000; i++) {
        key[0] = (char)('a' + i % 26);
        if (pf_proto_entries_add(&e, key, (uint64_t)i)) {
            pf_proto_entries_end(&e);
            assert_true(b.len - e.start - 4 <= PF_PROTO_FRAME_MAX);
            frames++;
            pf_proto_entries_begin(&e, &b);
        }
    }
    pf_proto_entries_end(&e);
    frames++;
    /* Walk the frames back. */
    size_t off = 0;
    pf_proto_msg m;
    pf_err err = {0};
    while (off < b.len) {
        uint32_t n;
        assert_int_equal(pf_proto_frame_len(b.data + off, &n, &err), 0);
        assert_int_equal(pf_proto_decode(b.data + off + 4, n, &m, &err), 0);
        assert_int_equal(m.type, PF_PT_ENTRIES);
        size_t pos = 0;
        char got[PF_STORE_KEY_MAX + 1];
        uint64_t size;
        while (pf_proto_entry_next(&m, &pos, got, &size)) {
            assert_int_equal(size, (uint64_t)total);
            assert_int_equal(strlen(got), PF_STORE_KEY_MAX);
            total++;
        }
        off += 4 + n;
        frames--;
    }
    assert_int_equal(total, 3000);
    assert_int_equal(frames, 0);
    pf_buf_free(&b);
}

/* Expects the body (hex, without length prefix) to be refused with a message holding
 * `what`. */
static void refused(const uint8_t *body, size_t n, const char *what)
{
    pf_proto_msg m;
    pf_err err = {0};
    assert_int_equal(pf_proto_decode(body, n, &m, &err), -1);
    if (!strstr(err.msg, what))
        fail_msg("decoding gave \"%s\", wanted \"%s\"", err.msg, what);
}

static void test_bounds(void **state)
{
    (void)state;
    pf_err err = {0};
    uint32_t n;
    uint8_t hdr[4];
    pf_put_le32(hdr, 0);
    assert_int_equal(pf_proto_frame_len(hdr, &n, &err), -1);
    pf_put_le32(hdr, PF_PROTO_FRAME_MAX + 1);
    assert_int_equal(pf_proto_frame_len(hdr, &n, &err), -1);
    assert_non_null(strstr(err.msg, "not a permafrost server"));
    pf_put_le32(hdr, PF_PROTO_FRAME_MAX);
    assert_int_equal(pf_proto_frame_len(hdr, &n, &err), 0);

    uint8_t *big = calloc(1, PF_PROTO_FRAME_MAX + 8);
    /* A key one byte too long. */
    big[0] = PF_PT_STAT;
    big[1] = (PF_STORE_KEY_MAX + 1) & 0xff;
    big[2] = (PF_STORE_KEY_MAX + 1) >> 8;
    memset(big + 3, 'a', PF_STORE_KEY_MAX + 1);
    refused(big, 3 + PF_STORE_KEY_MAX + 1, "key of 1025 bytes");
    /* The longest key is fine. */
    big[1] = PF_STORE_KEY_MAX & 0xff;
    big[2] = PF_STORE_KEY_MAX >> 8;
    pf_proto_msg m;
    assert_int_equal(pf_proto_decode(big, 3 + PF_STORE_KEY_MAX, &m, &err), 0);
    /* A repository path one byte too long. */
    memset(big, 0, 32);
    big[0] = PF_PT_HELLO;
    memcpy(big + 1, PF_PROTO_MAGIC, 4);
    big[5] = 1;
    big[9] = (PF_PROTO_PATH_MAX + 1) & 0xff;
    big[10] = (PF_PROTO_PATH_MAX + 1) >> 8;
    memset(big + 11, '/', PF_PROTO_PATH_MAX + 1);
    refused(big, 11 + PF_PROTO_PATH_MAX + 1, "repository path of 4097 bytes");
    /* DATA: empty, and one byte over. */
    big[0] = PF_PT_DATA;
    refused(big, 1, "DATA frame of 0 bytes");
    refused(big, 1 + PF_PROTO_DATA_MAX + 1, "DATA frame of 1048577 bytes");
    assert_int_equal(pf_proto_decode(big, 1 + PF_PROTO_DATA_MAX, &m, &err), 0);
    free(big);

    /* A put larger than any object a repository writes. */
    pf_buf b = PF_BUF_INIT;
    pf_proto_keyed(&b, PF_PT_PUT, "data/ab/x", PF_PROTO_OBJECT_MAX + 1, 0);
    refused(b.data + 4, b.len - 4, "larger than");
    pf_buf_free(&b);

    /* A NUL inside a key (a C string would see another key). */
    static const uint8_t nul[] = {PF_PT_REMOVE, 3, 0, 'a', 0, 'b'};
    refused(nul, sizeof nul, "NUL");
    /* Short, long, unknown, bad magic. */
    static const uint8_t shortget[] = {PF_PT_GET, 1, 0, 'a', 1, 2, 3};
    refused(shortget, sizeof shortget, "too short");
    static const uint8_t stray[] = {PF_PT_OK, 0};
    refused(stray, sizeof stray, "stray");
    static const uint8_t unknown[] = {0x42};
    refused(unknown, sizeof unknown, "unknown frame type 0x42");
    static const uint8_t magic[] = {PF_PT_HELLO, 'X', 'F', 'S', 'V', 1, 0, 0, 0, 1, 0, '/'};
    refused(magic, sizeof magic, "magic");
    refused(magic, 0, "empty frame");
    /* ENTRIES with no entry, or ending inside one. */
    static const uint8_t none[] = {PF_PT_ENTRIES, 0, 0};
    refused(none, sizeof none, "no entry");
    static const uint8_t cut[] = {PF_PT_ENTRIES, 1, 0, 1, 0, 'a', 1, 2};
    refused(cut, sizeof cut, "listed size");
    /* A message one byte over its bound. */
    uint8_t errf[4 + 2 + PF_PROTO_MSG_MAX + 1];
    errf[0] = PF_PT_ERR;
    errf[1] = PF_EIO;
    errf[2] = 0;
    errf[3] = (PF_PROTO_MSG_MAX + 1) & 0xff;
    errf[4] = (PF_PROTO_MSG_MAX + 1) >> 8;
    memset(errf + 5, 'x', PF_PROTO_MSG_MAX + 1);
    refused(errf, 5 + PF_PROTO_MSG_MAX + 1, "error message of 1001 bytes");
    /* An error code this version does not know is still an error. */
    static const uint8_t newer[] = {PF_PT_ERR, 200, 0, 0, 0};
    assert_int_equal(pf_proto_decode(newer, sizeof newer, &m, &err), 0);
    assert_int_equal(m.code, PF_EGENERIC);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_known_answers),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_entries_split),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
