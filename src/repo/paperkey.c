#include "repo/paperkey.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* ---- symbols ---------------------------------------------------------------------- */

static const char ALPHABET[33] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

#define ROW_BYTES 10
#define ROW_SYMBOLS 16 /* ROW_BYTES * 8 / 5 */
#define CHECK_SYMBOLS 4
#define TOTAL_SYMBOLS 8 /* 40 bits */
#define MAX_ROWS ((PF_PAPERKEY_KEY_MAX + ROW_BYTES - 1) / ROW_BYTES)
#define TITLE "permafrost paper key v1"

/* Symbol value of a typed character, -1 when it is not one. */
static int sym_value(unsigned char c)
{
    c = (unsigned char)toupper(c);
    if (c == 'O')
        return 0;
    if (c == 'I' || c == 'L')
        return 1;
    const char *p = c ? strchr(ALPHABET, c) : NULL;
    return p ? (int)(p - ALPHABET) : -1;
}

/* Symbols needed for n bytes. */
static size_t symbols_for(size_t n)
{
    return (n * 8 + 4) / 5;
}

/* Big-endian bit packing: bytes -> 5-bit symbols, the last one zero-padded. */
static void bytes_to_symbols(const uint8_t *in, size_t n, uint8_t *sym)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | in[i];
        bits += 8;
        while (bits >= 5) {
            sym[k++] = (uint8_t)((acc >> (bits - 5)) & 31);
            bits -= 5;
        }
    }
    if (bits > 0)
        sym[k++] = (uint8_t)((acc << (5 - bits)) & 31);
}

/* The inverse; returns false when the padding bits of the last symbol are not zero. */
static bool symbols_to_bytes(const uint8_t *sym, size_t nsym, uint8_t *out, size_t n)
{
    uint32_t acc = 0;
    int bits = 0;
    size_t k = 0;
    for (size_t i = 0; i < nsym; i++) {
        acc = (acc << 5) | sym[i];
        bits += 5;
        if (bits >= 8) {
            if (k < n)
                out[k++] = (uint8_t)(acc >> (bits - 8));
            bits -= 8;
        }
        acc &= (1u << bits) - 1;
    }
    return k == n && acc == 0;
}

/* ---- Reed-Solomon check symbols over GF(32) ---------------------------------------- */

/* GF(2^5) with the primitive polynomial x^5 + x^2 + 1; alpha = 2. */
static uint8_t gf_mul(uint8_t a, uint8_t b)
{
    uint8_t r = 0;
    while (b) {
        if (b & 1)
            r ^= a;
        b >>= 1;
        a <<= 1;
        if (a & 32)
            a ^= 0x25;
    }
    return r;
}

/* Coefficients g0..g3 of g(x) = (x - a)(x - a^2)(x - a^3)(x - a^4) = x^4 + g3 x^3 + ... */
static void generator(uint8_t g[CHECK_SYMBOLS])
{
    uint8_t poly[CHECK_SYMBOLS + 1] = {1, 0, 0, 0, 0}; /* poly[i] = coefficient of x^i */
    uint8_t root = 1;
    for (int j = 1; j <= CHECK_SYMBOLS; j++) {
        root = gf_mul(root, 2);
        /* poly *= (x + root) */
        for (int i = j; i >= 1; i--)
            poly[i] = poly[i - 1] ^ gf_mul(poly[i], root);
        poly[0] = gf_mul(poly[0], root);
    }
    memcpy(g, poly, CHECK_SYMBOLS);
}

/* Check symbols for sym[0..n): the remainder of sym(x) * x^4 divided by g(x), highest
 * coefficient first, so that sym followed by the check is a multiple of g. */
static void rs_check(const uint8_t *sym, size_t n, uint8_t check[CHECK_SYMBOLS])
{
    uint8_t g[CHECK_SYMBOLS];
    generator(g);
    uint8_t r[CHECK_SYMBOLS] = {0, 0, 0, 0}; /* r[0] is the x^3 coefficient */
    for (size_t i = 0; i < n; i++) {
        uint8_t fb = sym[i] ^ r[0];
        for (int k = 0; k < CHECK_SYMBOLS - 1; k++)
            r[k] = r[k + 1] ^ gf_mul(fb, g[CHECK_SYMBOLS - 1 - k]);
        r[CHECK_SYMBOLS - 1] = gf_mul(fb, g[0]);
    }
    memcpy(check, r, CHECK_SYMBOLS);
}

/* Check of key line `row` (1-based) holding data symbols d[0..n): the line number is
 * the first symbol of the checked sequence without being printed. */
static void row_check(unsigned row, const uint8_t *d, size_t n, uint8_t check[CHECK_SYMBOLS])
{
    uint8_t seq[1 + ROW_SYMBOLS];
    seq[0] = (uint8_t)row;
    memcpy(seq + 1, d, n);
    rs_check(seq, n + 1, check);
}

/* Check of the header: symbol 0, then each byte of repo_id, 0, len as two symbols (its
 * top 3 bits, its low 5 bits). */
static void header_check(const char *repo_id, size_t len, uint8_t check[CHECK_SYMBOLS])
{
    uint8_t seq[1 + 2 * (PF_PAPERKEY_REPO_ID_MAX + 2)];
    size_t n = 0;
    seq[n++] = 0;
    size_t idlen = strlen(repo_id);
    for (size_t i = 0; i <= idlen + 1; i++) {
        uint8_t b = i < idlen ? (uint8_t)repo_id[i] : i == idlen ? 0 : (uint8_t)len;
        seq[n++] = b >> 5;
        seq[n++] = b & 31;
    }
    rs_check(seq, n, check);
}

/* The total: the first 40 bits of SHA-256(TITLE, 0, repo_id, 0, len, key) as 8 symbols. */
static void total_check(const char *repo_id, const uint8_t *key, size_t len,
                        uint8_t out[TOTAL_SYMBOLS])
{
    uint8_t msg[sizeof TITLE + PF_PAPERKEY_REPO_ID_MAX + 2 + PF_PAPERKEY_KEY_MAX];
    uint8_t md[EVP_MAX_MD_SIZE];
    size_t n = 0, idlen = strlen(repo_id);
    memcpy(msg, TITLE, sizeof TITLE); /* with its NUL */
    n += sizeof TITLE;
    memcpy(msg + n, repo_id, idlen);
    n += idlen;
    msg[n++] = 0;
    msg[n++] = (uint8_t)len;
    memcpy(msg + n, key, len);
    n += len;
    unsigned mdlen = 0;
    if (EVP_Digest(msg, n, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen < 5)
        memset(md, 0xff, 5); /* cannot happen with a working libcrypto; fails the check */
    bytes_to_symbols(md, 5, out);
    OPENSSL_cleanse(msg, sizeof msg);
    OPENSSL_cleanse(md, sizeof md);
}

static bool valid_repo_id_char(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || c == '-' || c == '_';
}

/* ---- encode ----------------------------------------------------------------------- */

static void put_symbols(pf_buf *out, const uint8_t *sym, size_t n, bool grouped)
{
    for (size_t i = 0; i < n; i++) {
        if (grouped && i > 0 && i % 4 == 0)
            pf_buf_u8(out, ' ');
        pf_buf_u8(out, (uint8_t)ALPHABET[sym[i]]);
    }
}

int pf_paperkey_encode(const uint8_t *key, size_t len, const char *repo_id, pf_buf *out,
                       pf_err *err)
{
    if (!key || len < PF_PAPERKEY_KEY_MIN || len > PF_PAPERKEY_KEY_MAX)
        return pf_err_set(err, PF_EUSAGE, "paper key: key length %zu is not %d..%d bytes", len,
                          PF_PAPERKEY_KEY_MIN, PF_PAPERKEY_KEY_MAX);
    size_t idlen = repo_id ? strlen(repo_id) : 0;
    if (idlen == 0 || idlen > PF_PAPERKEY_REPO_ID_MAX)
        return pf_err_set(err, PF_EUSAGE, "paper key: repository id must be 1..%d characters",
                          PF_PAPERKEY_REPO_ID_MAX);
    for (size_t i = 0; i < idlen; i++)
        if (!valid_repo_id_char((unsigned char)repo_id[i]))
            return pf_err_set(err, PF_EUSAGE,
                              "paper key: repository id \"%s\" has a character other than "
                              "0-9, a-z, '-' and '_'",
                              repo_id);

    uint8_t check[CHECK_SYMBOLS];
    header_check(repo_id, len, check);
    pf_buf_printf(out, "%s  repo %s  bytes %zu  check ", TITLE, repo_id, len);
    put_symbols(out, check, CHECK_SYMBOLS, false);
    pf_buf_u8(out, '\n');

    uint8_t sym[ROW_SYMBOLS];
    size_t rows = (len + ROW_BYTES - 1) / ROW_BYTES;
    for (size_t r = 0; r < rows; r++) {
        size_t nb = len - r * ROW_BYTES < ROW_BYTES ? len - r * ROW_BYTES : ROW_BYTES;
        size_t ns = symbols_for(nb);
        bytes_to_symbols(key + r * ROW_BYTES, nb, sym);
        row_check((unsigned)(r + 1), sym, ns, check);
        pf_buf_printf(out, "%2zu: ", r + 1);
        put_symbols(out, sym, ns, true);
        /* Pad short lines so the check column lines up. */
        size_t width = ns + (ns - 1) / 4, full = ROW_SYMBOLS + (ROW_SYMBOLS - 1) / 4;
        for (size_t i = width; i < full; i++)
            pf_buf_u8(out, ' ');
        pf_buf_append_str(out, "  ");
        put_symbols(out, check, CHECK_SYMBOLS, false);
        pf_buf_u8(out, '\n');
    }
    OPENSSL_cleanse(sym, sizeof sym);

    uint8_t total[TOTAL_SYMBOLS];
    total_check(repo_id, key, len, total);
    pf_buf_append_str(out, "total: ");
    put_symbols(out, total, TOTAL_SYMBOLS, true);
    pf_buf_u8(out, '\n');
    return 0;
}

/* ---- decode ----------------------------------------------------------------------- */

typedef struct reader {
    const char *p, *end;
} reader;

/* Next line that is not blank and not a '#' comment, without its line end and with
 * leading and trailing blanks trimmed. Returns false at the end of the text. */
static bool next_line(reader *r, const char **line, size_t *n)
{
    while (r->p < r->end) {
        const char *s = r->p;
        const char *nl = memchr(s, '\n', (size_t)(r->end - s));
        const char *e = nl ? nl : r->end;
        r->p = nl ? nl + 1 : r->end;
        while (s < e && (*s == ' ' || *s == '\t'))
            s++;
        while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
            e--;
        if (s == e || *s == '#')
            continue;
        *line = s;
        *n = (size_t)(e - s);
        return true;
    }
    return false;
}

/* Splits a line into blank-separated words; returns how many (at most max). */
static size_t split_words(const char *s, size_t n, const char **w, size_t *wl, size_t max)
{
    size_t k = 0, i = 0;
    while (i < n) {
        while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\r'))
            i++;
        if (i == n)
            break;
        size_t start = i;
        while (i < n && s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            i++;
        if (k < max) {
            w[k] = s + start;
            wl[k] = i - start;
        }
        k++;
    }
    return k;
}

static bool word_is(const char *w, size_t wl, const char *lit)
{
    return wl == strlen(lit) && strncasecmp(w, lit, wl) == 0;
}

/* Reads symbols from s[0..n), skipping blanks and '-'. Returns the count (which may be
 * more than max: only the first max are stored), or -1 with *bad set to the first
 * character that is not a symbol. */
static long read_symbols(const char *s, size_t n, uint8_t *sym, size_t max, char *bad)
{
    long k = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == ' ' || c == '\t' || c == '\r' || c == '-')
            continue;
        int v = sym_value(c);
        if (v < 0) {
            *bad = (char)c;
            return -1;
        }
        if ((size_t)k < max)
            sym[k] = (uint8_t)v;
        k++;
    }
    return k;
}

static int bad_char(pf_err *err, const char *where, char c)
{
    if (isprint((unsigned char)c))
        return pf_err_set(err, PF_ECORRUPT,
                          "%s: '%c' is not a character used on the sheet: check the characters "
                          "on that line",
                          where, c);
    return pf_err_set(err, PF_ECORRUPT,
                      "%s: byte 0x%02x is not a character used on the sheet: check the "
                      "characters on that line",
                      where, (unsigned char)c);
}

#define HEADER_FORMAT "\"" TITLE "  repo <id>  bytes <n>  check <code>\""

static int parse_header(const char *line, size_t n, char *repo_id, size_t *len, pf_err *err)
{
    const char *w[16];
    size_t wl[16];
    size_t k = split_words(line, n, w, wl, 16);
    if (k < 3 || !word_is(w[0], wl[0], "permafrost") || !word_is(w[1], wl[1], "paper") ||
        !word_is(w[2], wl[2], "key"))
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: the first line should read " HEADER_FORMAT
                          ": is this a permafrost paper key?");
    if (k < 4 || !word_is(w[3], wl[3], "v1")) {
        if (k >= 4 && wl[3] >= 2 && (w[3][0] == 'v' || w[3][0] == 'V'))
            return pf_err_set(err, PF_ECORRUPT,
                              "header line: sheet version \"%.*s\" is not one this permafrost "
                              "reads (it reads v1)",
                              (int)(wl[3] > 16 ? 16 : wl[3]), w[3]);
        return pf_err_set(err, PF_ECORRUPT, "header line: expected " HEADER_FORMAT);
    }
    if (k < 10 || !word_is(w[4], wl[4], "repo") || !word_is(w[6], wl[6], "bytes") ||
        !word_is(w[8], wl[8], "check"))
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: expected " HEADER_FORMAT ": check the words on it");

    if (wl[5] > PF_PAPERKEY_REPO_ID_MAX)
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: the repository id is longer than %d characters",
                          PF_PAPERKEY_REPO_ID_MAX);
    for (size_t i = 0; i < wl[5]; i++) {
        unsigned char c = (unsigned char)tolower((unsigned char)w[5][i]);
        if (!valid_repo_id_char(c))
            return bad_char(err, "header line", (char)w[5][i]);
        repo_id[i] = (char)c;
    }
    repo_id[wl[5]] = 0;

    size_t v = 0;
    for (size_t i = 0; i < wl[7]; i++) {
        if (!isdigit((unsigned char)w[7][i]) || v > PF_PAPERKEY_KEY_MAX)
            return pf_err_set(err, PF_ECORRUPT,
                              "header line: \"%.*s\" after \"bytes\" is not a key length",
                              (int)(wl[7] > 16 ? 16 : wl[7]), w[7]);
        v = v * 10 + (size_t)(w[7][i] - '0');
    }
    if (v < PF_PAPERKEY_KEY_MIN || v > PF_PAPERKEY_KEY_MAX)
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: key length %zu is not %d..%d: check the number after "
                          "\"bytes\"",
                          v, PF_PAPERKEY_KEY_MIN, PF_PAPERKEY_KEY_MAX);

    /* The check code is everything after "check", spaces allowed. */
    const char *cs = w[9];
    uint8_t typed[CHECK_SYMBOLS];
    char bad = 0;
    long nc = read_symbols(cs, (size_t)(line + n - cs), typed, CHECK_SYMBOLS, &bad);
    if (nc < 0)
        return bad_char(err, "header line", bad);
    if (nc != CHECK_SYMBOLS)
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: the check code has %ld characters instead of %d: check "
                          "the characters on that line",
                          nc, CHECK_SYMBOLS);
    uint8_t want[CHECK_SYMBOLS];
    header_check(repo_id, v, want);
    if (memcmp(want, typed, CHECK_SYMBOLS) != 0)
        return pf_err_set(err, PF_ECORRUPT,
                          "header line: checksum does not match: check the repository id, the "
                          "byte count and the check code on that line");
    *len = v;
    return 0;
}

/* Parses key line `row` into its data symbols. */
static int parse_row(const char *line, size_t n, unsigned row, unsigned rows, size_t nsym,
                     uint8_t *sym, pf_err *err)
{
    char where[32];
    snprintf(where, sizeof where, "line %u", row);
    if (n >= 5 && strncasecmp(line, "total", 5) == 0)
        return pf_err_set(err, PF_ECORRUPT,
                          "line %u is missing: the sheet has %u numbered lines before the "
                          "total line",
                          row, rows);
    size_t i = 0;
    unsigned label = 0;
    while (i < n && isdigit((unsigned char)line[i]) && label < 1000)
        label = label * 10 + (unsigned)(line[i++] - '0');
    size_t digits = i;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (digits == 0 || i == n || line[i] != ':')
        return pf_err_set(err, PF_ECORRUPT,
                          "line %u: expected it to start with its number and a colon, as "
                          "\"%u:\"",
                          row, row);
    if (label != row) {
        if (label > row && label <= rows)
            return pf_err_set(err, PF_ECORRUPT,
                              "line %u is missing: found line %u where line %u should be", row,
                              label, row);
        return pf_err_set(err, PF_ECORRUPT,
                          "line %u: found the number %u where line %u should be: lines must "
                          "be typed in order, each once",
                          row, label, row);
    }
    i++;
    uint8_t all[ROW_SYMBOLS + CHECK_SYMBOLS];
    char bad = 0;
    long k = read_symbols(line + i, n - i, all, sizeof all, &bad);
    if (k < 0)
        return bad_char(err, where, bad);
    if ((size_t)k != nsym + CHECK_SYMBOLS)
        return pf_err_set(err, PF_ECORRUPT,
                          "line %u: %ld characters instead of %zu (%zu of key and %d of "
                          "check): check the characters on that line",
                          row, k, nsym + CHECK_SYMBOLS, nsym, CHECK_SYMBOLS);
    uint8_t want[CHECK_SYMBOLS];
    row_check(row, all, nsym, want);
    bool ok = memcmp(want, all + nsym, CHECK_SYMBOLS) == 0;
    memcpy(sym, all, nsym);
    OPENSSL_cleanse(all, sizeof all);
    if (!ok)
        return pf_err_set(err, PF_ECORRUPT,
                          "line %u: checksum does not match: check the characters on that line",
                          row);
    return 0;
}

int pf_paperkey_decode(const char *text, size_t len, uint8_t *key_out, size_t *key_len,
                       char *repo_id_out, pf_err *err)
{
    reader r = {text, text + (text ? len : 0)};
    const char *line;
    size_t n;
    char repo_id[PF_PAPERKEY_REPO_ID_MAX + 1];
    size_t klen = 0;
    uint8_t key[PF_PAPERKEY_KEY_MAX];
    uint8_t sym[ROW_SYMBOLS];
    int rc = -1;

    if (!next_line(&r, &line, &n))
        return pf_err_set(err, PF_ECORRUPT, "the paper key is empty");
    if (parse_header(line, n, repo_id, &klen, err))
        return -1;
    if (!key_out || !key_len || *key_len < klen)
        return pf_err_set(err, PF_EUSAGE, "paper key: the key has %zu bytes, room for %zu", klen,
                          key_len ? *key_len : 0);

    unsigned rows = (unsigned)((klen + ROW_BYTES - 1) / ROW_BYTES);
    for (unsigned row = 1; row <= rows; row++) {
        size_t nb = klen - (row - 1) * ROW_BYTES;
        if (nb > ROW_BYTES)
            nb = ROW_BYTES;
        size_t ns = symbols_for(nb);
        if (!next_line(&r, &line, &n)) {
            pf_err_set(
                err, PF_ECORRUPT, "the sheet ends %s: line %u%s and the total line are missing",
                row == 1 ? "after the header line" : "early", row, row < rows ? " onwards" : "");
            goto out;
        }
        if (parse_row(line, n, row, rows, ns, sym, err))
            goto out;
        if (!symbols_to_bytes(sym, ns, key + (row - 1) * ROW_BYTES, nb)) {
            pf_err_set(err, PF_ECORRUPT,
                       "line %u: checksum does not match: check the characters on that line", row);
            goto out;
        }
    }

    if (!next_line(&r, &line, &n)) {
        pf_err_set(err, PF_ECORRUPT, "total line: missing: the sheet ends after line %u", rows);
        goto out;
    }
    size_t i = 0;
    if (n < 5 || strncasecmp(line, "total", 5) != 0) {
        if (n > 0 && isdigit((unsigned char)line[0]))
            pf_err_set(err, PF_ECORRUPT,
                       "total line: found another numbered line after line %u, but the header "
                       "says %zu bytes (%u lines): check the byte count on the header line",
                       rows, klen, rows);
        else
            pf_err_set(err, PF_ECORRUPT, "total line: expected \"total:\" after line %u", rows);
        goto out;
    }
    i = 5;
    while (i < n && (line[i] == ' ' || line[i] == '\t'))
        i++;
    if (i < n && line[i] == ':')
        i++;
    uint8_t typed[TOTAL_SYMBOLS], want[TOTAL_SYMBOLS];
    char bad = 0;
    long k = read_symbols(line + i, n - i, typed, TOTAL_SYMBOLS, &bad);
    if (k < 0) {
        bad_char(err, "total line", bad);
        goto out;
    }
    if (k != TOTAL_SYMBOLS) {
        pf_err_set(err, PF_ECORRUPT,
                   "total line: %ld characters instead of %d: check the characters on that "
                   "line",
                   k, TOTAL_SYMBOLS);
        goto out;
    }
    total_check(repo_id, key, klen, want);
    if (memcmp(want, typed, TOTAL_SYMBOLS) != 0) {
        pf_err_set(err, PF_ECORRUPT,
                   "total line: does not match the key although every line passed its own "
                   "check: check the characters on the total line, then the whole sheet");
        goto out;
    }
    if (next_line(&r, &line, &n)) {
        pf_err_set(err, PF_ECORRUPT,
                   "unexpected text after the total line: remove it, or start it with '#' to "
                   "keep it as a comment");
        goto out;
    }

    memcpy(key_out, key, klen);
    *key_len = klen;
    memcpy(repo_id_out, repo_id, strlen(repo_id) + 1);
    rc = 0;
out:
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(sym, sizeof sym);
    return rc;
}
