/* Paper key sheets: the test vector of docs/PAPERKEY.md, round trips for every key length,
 * every one-character typo caught and blamed on its own line, two errors on a line always
 * caught, what a person may type differently (case, spaces, CRLF, comments), and short or
 * out-of-order sheets refused. */
#include <ctype.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repo/paperkey.h"

static const char SYMBOLS[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The example of docs/PAPERKEY.md: key bytes 3, 10, 17, ... (i * 7 + 3). */
static const char VECTOR32[] =
    "permafrost paper key v1  repo 0123456789abcdef  bytes 32  check 5MG6\n"
    " 1: 0C51 260Z 4RPK 8ET2  5E6T\n"
    " 2: 9585 EQK5 DHSQ N0C8  41EK\n"
    " 3: HYB9 V95B PAWW 1HYE  SZBF\n"
    " 4: TQE0                 3P0H\n"
    "total: NWFH 9J78\n";

static const char VECTOR41[] = "permafrost paper key v1  repo abc-def_0  bytes 41  check N3MD\n"
                               " 1: 0C51 260Z 4RPK 8ET2  5E6T\n"
                               " 2: 9585 EQK5 DHSQ N0C8  41EK\n"
                               " 3: HYB9 V95B PAWW 1HYE  SZBF\n"
                               " 4: TQEE 7TQH Z3ZG C38M  2550\n"
                               " 5: 3C                   HFV0\n"
                               "total: 1VJ2 WZ0H\n";

static void vector_key(uint8_t *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        k[i] = (uint8_t)(i * 7 + 3);
}

/* A deterministic pseudo-random key. */
static void random_key(uint8_t *k, size_t n, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < n; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        k[i] = (uint8_t)x;
    }
}

static char *encode(const uint8_t *k, size_t n, const char *id)
{
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    if (pf_paperkey_encode(k, n, id, &b, &err) != 0)
        fail_msg("encode: %s", err.msg);
    size_t len;
    return (char *)pf_buf_detach(&b, &len);
}

/* Decodes and expects success with key k[0..n) and id. */
static void expect_ok(const char *text, size_t len, const uint8_t *k, size_t n, const char *id)
{
    uint8_t out[PF_PAPERKEY_KEY_MAX];
    size_t outlen = sizeof out;
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    pf_err err = {0};
    if (pf_paperkey_decode(text, len, out, &outlen, rid, &err) != 0)
        fail_msg("decode failed: %s\n--- text:\n%.*s---", err.msg, (int)len, text);
    assert_int_equal(outlen, n);
    assert_memory_equal(out, k, n);
    assert_string_equal(rid, id);
}

/* Decodes and expects failure with a message starting with `prefix`. */
static void expect_err(const char *text, const char *prefix)
{
    uint8_t out[PF_PAPERKEY_KEY_MAX];
    size_t outlen = sizeof out;
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    pf_err err = {0};
    memset(out, 0xaa, sizeof out);
    if (pf_paperkey_decode(text, strlen(text), out, &outlen, rid, &err) == 0)
        fail_msg("accepted a bad sheet (wanted \"%s\"):\n%s", prefix, text);
    if (strncmp(err.msg, prefix, strlen(prefix)) != 0)
        fail_msg("message \"%s\" does not start with \"%s\"", err.msg, prefix);
    assert_int_equal(outlen, sizeof out); /* nothing written */
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0xaa);
}

/* ---- format ----------------------------------------------------------------------- */

static void test_vectors(void **state)
{
    (void)state;
    uint8_t k[64];
    vector_key(k, sizeof k);
    char *s = encode(k, 32, "0123456789abcdef");
    assert_string_equal(s, VECTOR32);
    free(s);
    s = encode(k, 41, "abc-def_0");
    assert_string_equal(s, VECTOR41);
    free(s);
    expect_ok(VECTOR32, strlen(VECTOR32), k, 32, "0123456789abcdef");
    expect_ok(VECTOR41, strlen(VECTOR41), k, 41, "abc-def_0");
}

static void test_layout(void **state)
{
    (void)state;
    uint8_t k[PF_PAPERKEY_KEY_MAX];
    random_key(k, sizeof k, 7);
    for (size_t n = PF_PAPERKEY_KEY_MIN; n <= PF_PAPERKEY_KEY_MAX; n++) {
        char *s = encode(k, n, "r");
        size_t rows = (n + 9) / 10, lines = 0;
        for (char *p = s; *p; p++) {
            assert_true(*p == '\n' || (*p >= 0x20 && *p < 0x7f));
            lines += *p == '\n';
        }
        assert_int_equal(lines, rows + 2);
        assert_int_equal(s[strlen(s) - 1], '\n');
        /* Every key line is "NN: " + 19 + 2 + 4 characters. */
        char *line = strchr(s, '\n') + 1;
        for (size_t r = 1; r <= rows; r++) {
            char *e = strchr(line, '\n');
            assert_int_equal(e - line, 4 + 19 + 2 + 4);
            char label[32];
            snprintf(label, sizeof label, "%2zu: ", r);
            assert_memory_equal(line, label, 4);
            line = e + 1;
        }
        assert_memory_equal(line, "total: ", 7);
        free(s);
    }
}

/* ---- round trips ------------------------------------------------------------------ */

static void test_round_trip_all_lengths(void **state)
{
    (void)state;
    const char *ids[] = {"0123456789abcdef", "x", "my-repo_2",
                         "0000000000000000000000000000000000000000000000000000000000000000"};
    uint8_t k[PF_PAPERKEY_KEY_MAX];
    for (size_t n = PF_PAPERKEY_KEY_MIN; n <= PF_PAPERKEY_KEY_MAX; n++) {
        for (uint32_t seed = 0; seed < 4; seed++) {
            random_key(k, n, (uint32_t)n * 31 + seed);
            if (seed == 3)
                memset(k, 0xff, n); /* all ones: the padding bits must still be 0 */
            const char *id = ids[seed];
            char *s = encode(k, n, id);
            expect_ok(s, strlen(s), k, n, id);
            free(s);
        }
        memset(k, 0, n);
        char *s = encode(k, n, "zero");
        expect_ok(s, strlen(s), k, n, "zero");
        free(s);
    }
}

static void test_key_out_too_small(void **state)
{
    (void)state;
    uint8_t out[32];
    size_t outlen = 31;
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    pf_err err = {0};
    assert_int_equal(pf_paperkey_decode(VECTOR32, strlen(VECTOR32), out, &outlen, rid, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_int_equal(outlen, 31);
    outlen = 32;
    assert_int_equal(pf_paperkey_decode(VECTOR32, strlen(VECTOR32), out, &outlen, rid, &err), 0);
    assert_int_equal(outlen, 32);
}

static void test_encode_refuses(void **state)
{
    (void)state;
    uint8_t k[PF_PAPERKEY_KEY_MAX + 1] = {0};
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_paperkey_encode(k, 31, "r", &b, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_int_equal(pf_paperkey_encode(k, 129, "r", &b, &err), -1);
    assert_int_equal(pf_paperkey_encode(NULL, 32, "r", &b, &err), -1);
    assert_int_equal(pf_paperkey_encode(k, 32, "", &b, &err), -1);
    assert_int_equal(pf_paperkey_encode(k, 32, NULL, &b, &err), -1);
    assert_int_equal(pf_paperkey_encode(k, 32, "Repo", &b, &err), -1);
    assert_non_null(strstr(err.msg, "0-9, a-z"));
    assert_int_equal(pf_paperkey_encode(k, 32, "my repo", &b, &err), -1);
    char longid[PF_PAPERKEY_REPO_ID_MAX + 2];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_int_equal(pf_paperkey_encode(k, 32, longid, &b, &err), -1);
    assert_int_equal(b.len, 0); /* nothing appended */
    longid[PF_PAPERKEY_REPO_ID_MAX] = 0;
    assert_int_equal(pf_paperkey_encode(k, 32, longid, &b, &err), 0);
    pf_buf_free(&b);
}

/* ---- typos ------------------------------------------------------------------------ */

static int symbol_value(int c)
{
    c = toupper(c);
    if (c == 'O')
        return 0;
    if (c == 'I' || c == 'L')
        return 1;
    const char *p = c ? strchr(SYMBOLS, c) : NULL;
    return p ? (int)(p - SYMBOLS) : -1;
}

/* Whether typing b where the sheet says a is no typo at all. */
static bool same_char(int a, int b)
{
    if (tolower(a) == tolower(b))
        return true;
    return symbol_value(a) >= 0 && symbol_value(a) == symbol_value(b);
}

/* Name of the sheet line that holds offset `off` of text, as messages print it. */
static void line_name(const char *text, size_t off, size_t rows, char *name, size_t cap)
{
    size_t line = 0;
    for (size_t i = 0; i < off; i++)
        line += text[i] == '\n';
    if (line == 0)
        snprintf(name, cap, "header line");
    else if (line <= rows)
        snprintf(name, cap, "line %zu", line);
    else
        snprintf(name, cap, "total line");
}

/* Replaces every printable non-blank character of the sheet by every printable character
 * that means something else. Each must be refused with a message that names the line the
 * typo is on, or, for the few characters that carry no information (the ':' after
 * "total"), decode to the very same key. */
static void check_every_typo(const uint8_t *k, size_t n, const char *id, size_t *tried)
{
    char *s = encode(k, n, id);
    size_t len = strlen(s), rows = (n + 9) / 10;
    char *t = malloc(len + 1);
    uint8_t out[PF_PAPERKEY_KEY_MAX];
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ' ' || s[i] == '\n')
            continue;
        char name[32];
        line_name(s, i, rows, name, sizeof name);
        for (int c = 0x21; c < 0x7f; c++) {
            if (same_char(s[i], c))
                continue;
            memcpy(t, s, len + 1);
            t[i] = (char)c;
            size_t outlen = sizeof out;
            pf_err err = {0};
            (*tried)++;
            int rc = pf_paperkey_decode(t, len, out, &outlen, rid, &err);
            if (rc == 0) {
                /* Harmless: same key, same id. Only separators may be harmless. */
                if (symbol_value(s[i]) >= 0 && symbol_value(c) >= 0 && s[i] != ':')
                    fail_msg("symbol typo '%c' -> '%c' at offset %zu accepted", s[i], c, i);
                assert_int_equal(outlen, n);
                assert_memory_equal(out, k, n);
                assert_string_equal(rid, id);
                continue;
            }
            assert_int_equal(err.code, PF_ECORRUPT);
            size_t nl = strlen(name);
            if (strncmp(err.msg, name, nl) != 0 || (err.msg[nl] != ':' && err.msg[nl] != ' '))
                fail_msg("typo '%c' -> '%c' on %s: message \"%s\" names another line", s[i], c,
                         name, err.msg);
        }
    }
    free(t);
    free(s);
}

static void test_every_single_typo_caught(void **state)
{
    (void)state;
    uint8_t k[PF_PAPERKEY_KEY_MAX];
    size_t tried = 0;
    const size_t lens[] = {32, 33, 41, 64, 128};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        random_key(k, lens[i], (uint32_t)i + 100);
        check_every_typo(k, lens[i], "5e1f0c2a9b7d4e38", &tried);
    }
    vector_key(k, 32);
    check_every_typo(k, 32, "0123456789abcdef", &tried);
    assert_true(tried > 50000);
}

/* Any two wrong symbols on one key line (data or check) are caught: the line code has
 * minimum distance 5. Exhaustive over line 2 of a 32-byte sheet. */
static void test_two_errors_on_a_line_caught(void **state)
{
    (void)state;
    uint8_t k[32];
    vector_key(k, 32);
    char *s = encode(k, 32, "r");
    size_t len = strlen(s);
    char *line2 = strstr(s, "\n 2: ") + 5;
    size_t pos[20], np = 0;
    for (char *p = line2; *p != '\n'; p++)
        if (*p != ' ')
            pos[np++] = (size_t)(p - s);
    assert_int_equal(np, 20);
    char *t = malloc(len + 1);
    uint8_t out[32];
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    size_t tried = 0;
    for (size_t a = 0; a < np; a++)
        for (size_t b = a + 1; b < np; b++)
            for (int va = 1; va < 32; va++)
                for (int vb = 1; vb < 32; vb++) {
                    memcpy(t, s, len + 1);
                    t[pos[a]] = SYMBOLS[(symbol_value(s[pos[a]]) + va) % 32];
                    t[pos[b]] = SYMBOLS[(symbol_value(s[pos[b]]) + vb) % 32];
                    size_t outlen = sizeof out;
                    pf_err err = {0};
                    tried++;
                    if (pf_paperkey_decode(t, len, out, &outlen, rid, &err) == 0)
                        fail_msg("two errors at %zu and %zu accepted", pos[a], pos[b]);
                    if (strncmp(err.msg, "line 2: checksum does not match", 31) != 0)
                        fail_msg("unexpected message: %s", err.msg);
                }
    assert_int_equal(tried, 190 * 31 * 31);
    free(t);
    free(s);
}

/* Swapping two neighbouring different characters, dropping one or adding one on a key
 * line is caught and blamed on that line. */
static void test_swaps_drops_and_inserts(void **state)
{
    (void)state;
    uint8_t k[64];
    random_key(k, 64, 5);
    char *s = encode(k, 64, "r");
    size_t len = strlen(s);
    char *t = malloc(len + 2);
    const char *p = strchr(s, '\n') + 1;
    for (unsigned row = 1; row <= 7; row++) {
        const char *data = p + 4, *end = strchr(p, '\n');
        char name[32];
        snprintf(name, sizeof name, "line %u:", row);
        for (const char *q = data; q < end; q++) {
            if (*q == ' ')
                continue;
            size_t i = (size_t)(q - s);
            /* Swap with the next symbol (skipping blanks). */
            const char *r2 = q + 1;
            while (r2 < end && *r2 == ' ')
                r2++;
            if (r2 < end && *r2 != *q) {
                memcpy(t, s, len + 1);
                t[i] = *r2;
                t[r2 - s] = *q;
                expect_err(t, name);
            }
            /* Drop it. */
            memcpy(t, s, i);
            memcpy(t + i, s + i + 1, len - i);
            expect_err(t, name);
            /* Insert a symbol before it. */
            memcpy(t, s, i);
            t[i] = 'Q';
            memcpy(t + i + 1, s + i, len - i + 1);
            expect_err(t, name);
        }
        p = end + 1;
    }
    free(t);
    free(s);
}

/* ---- what people type -------------------------------------------------------------- */

/* The sheet s as a person might type it; see the comment of each mode. */
static char *transform(const char *s, int mode)
{
    size_t len = strlen(s);
    char *t = malloc(len * 4 + 64);
    size_t n = 0, col = 0;
    bool key_line = false;
    for (size_t i = 0; i < len; i++, col++) {
        char c = s[i];
        if (i == 0 || s[i - 1] == '\n') {
            col = 0;
            key_line = c == ' ' || isdigit((unsigned char)c);
        }
        bool data = key_line && col >= 4 && c != '\n'; /* after "NN: " */
        switch (mode) {
        case 0: /* all lower case */
            t[n++] = (char)tolower((unsigned char)c);
            break;
        case 1: /* CRLF, trailing blanks, blank and comment lines in between */
            if (c == '\n') {
                static const char gap[] = " \t\r\n\r\n# checked by J.\r\n   \r\n";
                memcpy(t + n, gap, sizeof gap - 1);
                n += sizeof gap - 1;
            } else {
                t[n++] = c;
            }
            break;
        case 2: /* no spaces inside key lines */
            if (!(data && c == ' '))
                t[n++] = c;
            break;
        case 3: /* a space after every character of key lines, tabs for spaces */
            t[n++] = c == ' ' ? '\t' : c;
            if (data)
                t[n++] = ' ';
            break;
        case 4: /* O for 0, l for 1, '-' between groups, every line but the first indented */
            if (data && c == '0')
                t[n++] = 'O';
            else if (data && c == '1')
                t[n++] = 'l';
            else if (data && c == ' ' && s[i - 1] != ' ' && s[i + 1] != ' ')
                t[n++] = '-';
            else if (c == '\n') {
                memcpy(t + n, "\n    ", 5);
                n += 5;
            } else
                t[n++] = c;
            break;
        default: /* "01:" line numbers, "total" without its colon, no final newline */
            if (key_line && col == 0 && c == ' ')
                t[n++] = '0';
            else if (c == ':' && !key_line)
                t[n++] = ' ';
            else if (!(c == '\n' && i == len - 1))
                t[n++] = c;
            break;
        }
    }
    t[n] = 0;
    return t;
}

static void test_tolerates_what_people_type(void **state)
{
    (void)state;
    uint8_t k[PF_PAPERKEY_KEY_MAX];
    const size_t lens[] = {32, 57, 128};
    for (size_t li = 0; li < 3; li++) {
        random_key(k, lens[li], 42 + (uint32_t)li);
        char *s = encode(k, lens[li], "0123456789abcdef");
        for (int mode = 0; mode <= 5; mode++) {
            char *t = transform(s, mode);
            assert_string_not_equal(t, s);
            expect_ok(t, strlen(t), k, lens[li], "0123456789abcdef");
            free(t);
        }
        free(s);
    }
    /* The repository id comes back in lower case whatever was typed. */
    char up[sizeof VECTOR32];
    memcpy(up, VECTOR32, sizeof up);
    for (char *p = up; *p; p++)
        *p = (char)toupper((unsigned char)*p);
    uint8_t v[32];
    vector_key(v, 32);
    expect_ok(up, strlen(up), v, 32, "0123456789abcdef");
    /* A comment after the total line is fine; a NUL-free text that is cut by len is too. */
    char more[sizeof VECTOR32 + 32];
    snprintf(more, sizeof more, "%s# printed 2024-05-01\n\n", VECTOR32);
    expect_ok(more, strlen(more), v, 32, "0123456789abcdef");
}

/* ---- short, long and shuffled sheets ----------------------------------------------- */

static char *drop_line(const char *s, int which)
{
    char *t = strdup(s);
    char *p = t;
    for (int i = 0; i < which; i++)
        p = strchr(p, '\n') + 1;
    char *e = strchr(p, '\n') + 1;
    memmove(p, e, strlen(e) + 1);
    return t;
}

static void test_truncated_and_shuffled_refused(void **state)
{
    (void)state;
    expect_err("", "the paper key is empty");
    expect_err("\n\n  \r\n# only a comment\n", "the paper key is empty");

    /* Cut after each line, and in the middle of each line. */
    const char *v = VECTOR32;
    const char *want_after[] = {
        "the sheet ends after the header line: line 1 onwards",
        "the sheet ends early: line 2 onwards",
        "the sheet ends early: line 3 onwards",
        "the sheet ends early: line 4 and the total line are missing",
        "total line: missing: the sheet ends after line 4",
    };
    const char *p = v;
    for (int line = 0; line < 5; line++) {
        p = strchr(p, '\n') + 1;
        char *t = strndup(v, (size_t)(p - v));
        expect_err(t, want_after[line]);
        free(t);
    }
    const char *want_mid[] = {
        "header line", "line 1:", "line 2:", "line 3:", "line 4:", "total line:"};
    p = v;
    for (int line = 0; line < 6; line++) {
        const char *e = strchr(p, '\n');
        char *t = strndup(v, (size_t)(p - v) + (size_t)(e - p) / 2 + 3);
        expect_err(t, want_mid[line]);
        free(t);
        p = e + 1;
    }

    /* A missing line in the middle, and lines out of order. */
    char *t = drop_line(v, 2);
    expect_err(t, "line 2 is missing: found line 3 where line 2 should be");
    free(t);
    t = drop_line(v, 4);
    expect_err(t, "line 4 is missing: the sheet has 4 numbered lines before the total line");
    free(t);
    t = drop_line(v, 0);
    expect_err(t, "header line: the first line should read");
    free(t);

    /* Line 3's characters typed under line 2's number: the line number is checked. */
    t = strdup(v);
    char *l2 = strstr(t, "\n 2: ") + 5, *l3 = strstr(t, "\n 3: ") + 5;
    char tmp[25];
    memcpy(tmp, l2, 25);
    memcpy(l2, l3, 25);
    memcpy(l3, tmp, 25);
    expect_err(t, "line 2: checksum does not match: check the characters on that line");
    free(t);
    t = strdup(v);
    strstr(t, "\n 3: ")[2] = '2';
    expect_err(t, "line 3: found the number 2 where line 3 should be");
    free(t);

    /* A line too many, and text after the total line. */
    char more[sizeof VECTOR32 + 64];
    snprintf(more, sizeof more, "%s 5: 0000  0000\n", v);
    expect_err(more, "unexpected text after the total line");
    t = strdup(v);
    strstr(t, "bytes 32")[7] = '0'; /* 30: too short */
    expect_err(t, "header line: key length 30 is not 32..128");
    free(t);
}

static void test_header_errors(void **state)
{
    (void)state;
    const char *rest = " 1: 0C51 260Z 4RPK 8ET2  5E6T\n";
    char t[512];
    snprintf(t, sizeof t, "permafrost paper key v2  repo x  bytes 32  check 0000\n%s", rest);
    expect_err(t, "header line: sheet version \"v2\" is not one this permafrost reads");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x  bytes 32\n%s", rest);
    expect_err(t, "header line: expected");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x  bytes 3x2  check 0000\n%s", rest);
    expect_err(t, "header line: \"3x2\" after \"bytes\" is not a key length");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x  bytes 99999999999999  check 0\n");
    expect_err(t, "header line: \"99999999999999\" after \"bytes\"");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x.y  bytes 32  check 0000\n");
    expect_err(t, "header line: '.' is not a character used on the sheet");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x  bytes 32  check 00000\n");
    expect_err(t, "header line: the check code has 5 characters instead of 4");
    snprintf(t, sizeof t, "permafrost paper key v1  repo x  bytes 32  check 0U00\n");
    expect_err(t, "header line: 'U' is not a character used on the sheet");
    snprintf(t, sizeof t, "hello world\n");
    expect_err(t, "header line: the first line should read");
    char nul[] = "permafrost paper key v1  repo 0123456789abcdef  bytes 32  check 5MG6\n 1: 0C\0";
    uint8_t out[64];
    size_t outlen = sizeof out;
    char rid[PF_PAPERKEY_REPO_ID_MAX + 1];
    pf_err err = {0};
    assert_int_equal(pf_paperkey_decode(nul, sizeof nul - 1, out, &outlen, rid, &err), -1);
    assert_string_equal(err.msg, "line 1: byte 0x00 is not a character used on the sheet: check "
                                 "the characters on that line");
    outlen = sizeof out;
    assert_int_equal(pf_paperkey_decode(NULL, 0, out, &outlen, rid, &err), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_round_trip_all_lengths),
        cmocka_unit_test(test_key_out_too_small),
        cmocka_unit_test(test_encode_refuses),
        cmocka_unit_test(test_every_single_typo_caught),
        cmocka_unit_test(test_two_errors_on_a_line_caught),
        cmocka_unit_test(test_swaps_drops_and_inserts),
        cmocka_unit_test(test_tolerates_what_people_type),
        cmocka_unit_test(test_truncated_and_shuffled_refused),
        cmocka_unit_test(test_header_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
