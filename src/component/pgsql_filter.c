#include "component/pgsql_filter.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "common/buf.h"

/* PostgreSQL truncates longer names (NAMEDATALEN - 1); pg_dumpall never writes one. */
#define NAME_MAX_BYTES 63
/* A value or a password hash; generous, and it bounds what one token can allocate. */
#define STRING_MAX_BYTES (64u * 1024)
/* pg_dumpall's longest statement (ALTER ROLE with every option) has about 20 tokens. */
#define STMT_MAX_TOKENS 512

/* ---- tokens ------------------------------------------------------------------------ */

typedef enum ttype { T_WORD, T_IDENT, T_STRING, T_NUMBER, T_OP } ttype;

typedef struct tok {
    ttype t;
    unsigned line;
    char op;    /* T_OP: one of , ( ) = . - */
    char *text; /* decoded: a word as written, an identifier or string unquoted */
} tok;

typedef struct lexer {
    const char *s;
    size_t n, i;
    unsigned line;
    pf_err *err;
} lexer;

static int lex_fail(lexer *lx, unsigned line, const char *fmt, const char *arg)
{
    pf_err_set(lx->err, PF_ECORRUPT, "line %u: ", line);
    size_t used = strlen(lx->err->msg);
    snprintf(lx->err->msg + used, sizeof lx->err->msg - used, fmt, arg);
    return -1;
}

static int peekc(const lexer *lx, size_t ahead)
{
    return lx->i + ahead < lx->n ? (unsigned char)lx->s[lx->i + ahead] : -1;
}

static void advance(lexer *lx)
{
    if (lx->s[lx->i] == '\n')
        lx->line++;
    lx->i++;
}

static bool word_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}

static bool word_char(int c)
{
    return word_start(c) || (c >= '0' && c <= '9') || c == '$';
}

/* True when only blanks precede position i on its line. */
static bool line_start(const lexer *lx)
{
    for (size_t j = lx->i; j > 0; j--) {
        char c = lx->s[j - 1];
        if (c == '\n')
            return true;
        if (c != ' ' && c != '\t' && c != '\r')
            return false;
    }
    return true;
}

/* Accepts "\restrict KEY" / "\unrestrict KEY" alone on a line (pg_dump's guard against
 * meta-commands in a dump, which is exactly what we drop). Returns true and skips it. */
static bool skip_restrict(lexer *lx)
{
    const char *p = lx->s + lx->i;
    size_t left = lx->n - lx->i;
    size_t kw = 0;
    if (left > 10 && memcmp(p, "\\restrict ", 10) == 0)
        kw = 10;
    else if (left > 12 && memcmp(p, "\\unrestrict ", 12) == 0)
        kw = 12;
    if (!kw)
        return false;
    size_t j = kw, keylen = 0;
    while (j < left && ((p[j] >= 'a' && p[j] <= 'z') || (p[j] >= 'A' && p[j] <= 'Z') ||
                        (p[j] >= '0' && p[j] <= '9'))) {
        j++;
        keylen++;
    }
    while (j < left && (p[j] == ' ' || p[j] == '\t' || p[j] == '\r'))
        j++;
    if (keylen == 0 || keylen > 256 || (j < left && p[j] != '\n'))
        return false;
    lx->i += j;
    return true;
}

/* Skips blanks and comments. At a statement boundary, also the \restrict lines, and
 * notices the section mark. Returns -1 on an unterminated comment. */
static int skip_space(lexer *lx, bool boundary, bool *mark)
{
    for (;;) {
        int c = peekc(lx, 0);
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') {
            advance(lx);
        } else if (c == '-' && peekc(lx, 1) == '-') {
            size_t ml = strlen(PF_PGSQL_SECTION_MARK);
            bool is_mark = boundary && mark && lx->n - lx->i >= ml &&
                           memcmp(lx->s + lx->i, PF_PGSQL_SECTION_MARK, ml) == 0;
            while (lx->i < lx->n && lx->s[lx->i] != '\n')
                lx->i++;
            if (is_mark) {
                *mark = true;
                return 0;
            }
        } else if (c == '/' && peekc(lx, 1) == '*') {
            /* PostgreSQL's block comments nest. */
            unsigned line = lx->line;
            int depth = 0;
            do {
                if (lx->i + 1 >= lx->n)
                    return lex_fail(lx, line, "%s", "unterminated /* comment");
                if (lx->s[lx->i] == '/' && lx->s[lx->i + 1] == '*') {
                    depth++;
                    lx->i += 2;
                } else if (lx->s[lx->i] == '*' && lx->s[lx->i + 1] == '/') {
                    depth--;
                    lx->i += 2;
                } else {
                    advance(lx);
                }
            } while (depth > 0);
        } else if (c == '\\' && boundary && line_start(lx) && skip_restrict(lx)) {
            continue;
        } else {
            return 0;
        }
    }
}

/* A quoted run ending at `q` where two q's stand for one; E'' strings also take the
 * backslash escapes pg_dump writes (\\ \' \n \t \r \b \f). */
static int lex_quoted(lexer *lx, char q, bool escapes, pf_buf *out)
{
    unsigned line = lx->line;
    advance(lx); /* the opening quote */
    for (;;) {
        if (lx->i >= lx->n)
            return lex_fail(lx, line, "unterminated %s",
                            q == '"' ? "quoted identifier" : "string literal");
        char c = lx->s[lx->i];
        if (c == 0)
            return lex_fail(lx, lx->line, "%s", "NUL byte in a quoted text");
        if (c == q) {
            if (peekc(lx, 1) == q) {
                pf_buf_u8(out, (uint8_t)q);
                lx->i += 2;
                continue;
            }
            lx->i++;
            break;
        }
        if (escapes && c == '\\') {
            int e = peekc(lx, 1);
            const char *from = "\\'nrtbf", *to = "\\'\n\r\t\b\f";
            const char *at = e > 0 ? strchr(from, e) : NULL;
            if (!at)
                return lex_fail(lx, lx->line, "%s",
                                "unsupported escape in an E'' string (only \\\\ \\' \\n \\r "
                                "\\t \\b \\f)");
            pf_buf_u8(out, (uint8_t)to[at - from]);
            lx->i += 2;
            continue;
        }
        pf_buf_u8(out, (uint8_t)c);
        advance(lx);
        if (out->len > STRING_MAX_BYTES)
            return lex_fail(lx, line, "%s", "quoted text longer than 64 KiB");
    }
    pf_buf_u8(out, 0);
    out->len--;
    return 0;
}

/* $tag$ ... $tag$: the contents are literal. */
static int lex_dollar(lexer *lx, pf_buf *out)
{
    unsigned line = lx->line;
    size_t j = lx->i + 1;
    while (j < lx->n && lx->s[j] != '$') {
        int c = (unsigned char)lx->s[j];
        if (!(j == lx->i + 1 ? word_start(c) : word_char(c) && c != '$') ||
            j - lx->i > NAME_MAX_BYTES)
            return lex_fail(lx, line, "%s", "'$' outside a dollar quote");
        j++;
    }
    if (j >= lx->n)
        return lex_fail(lx, line, "%s", "'$' outside a dollar quote");
    size_t taglen = j + 1 - lx->i;
    const char *tag = lx->s + lx->i;
    size_t k = j + 1;
    for (;;) {
        if (k + taglen > lx->n)
            return lex_fail(lx, line, "%s", "unterminated dollar-quoted string");
        if (k - (j + 1) > STRING_MAX_BYTES)
            return lex_fail(lx, line, "%s", "quoted text longer than 64 KiB");
        if (memcmp(lx->s + k, tag, taglen) == 0)
            break;
        if (lx->s[k] == 0)
            return lex_fail(lx, line, "%s", "NUL byte in a quoted text");
        k++;
    }
    if (k - (j + 1) > STRING_MAX_BYTES)
        return lex_fail(lx, line, "%s", "quoted text longer than 64 KiB");
    pf_buf_append(out, lx->s + j + 1, k - (j + 1));
    pf_buf_u8(out, 0);
    out->len--;
    while (lx->i < k + taglen)
        advance(lx);
    return 0;
}

typedef struct stmt_toks {
    tok t[STMT_MAX_TOKENS];
    size_t n;
    unsigned line;
} stmt_toks;

static void toks_clear(stmt_toks *st)
{
    for (size_t i = 0; i < st->n; i++)
        free(st->t[i].text);
    st->n = 0;
}

static int push(lexer *lx, stmt_toks *st, ttype t, char op, pf_buf *text, unsigned line)
{
    if (st->n >= STMT_MAX_TOKENS)
        return lex_fail(lx, st->line, "%s", "statement too long");
    tok *k = &st->t[st->n++];
    k->t = t;
    k->op = op;
    k->line = line;
    size_t len;
    if (text) {
        pf_buf_u8(text, 0);
        k->text = (char *)pf_buf_detach(text, &len);
    } else {
        k->text = NULL;
    }
    return 0;
}

/* Reads the next statement's tokens (without its ';'). Returns 1 with a statement, 0 at
 * the end of the input, -1 on error. *mark is set when the section mark comes first. */
static int next_stmt(lexer *lx, stmt_toks *st, bool *mark)
{
    toks_clear(st);
    *mark = false;
    if (skip_space(lx, true, mark) < 0)
        return -1;
    if (*mark)
        return 1;
    if (lx->i >= lx->n)
        return 0;
    st->line = lx->line;
    pf_buf b = PF_BUF_INIT;
    for (;;) {
        if (st->n && skip_space(lx, false, NULL) < 0)
            goto fail;
        if (lx->i >= lx->n) {
            lex_fail(lx, st->line, "%s", "statement without its closing ';'");
            goto fail;
        }
        unsigned line = lx->line;
        int c = peekc(lx, 0);
        pf_buf_reset(&b);
        if (c == ';') {
            lx->i++;
            break;
        } else if ((c == 'E' || c == 'e') && peekc(lx, 1) == '\'') {
            lx->i++;
            if (lex_quoted(lx, '\'', true, &b) < 0 || push(lx, st, T_STRING, 0, &b, line) < 0)
                goto fail;
        } else if (word_start(c)) {
            while (lx->i < lx->n && word_char((unsigned char)lx->s[lx->i]))
                pf_buf_u8(&b, (uint8_t)lx->s[lx->i++]);
            if (b.len > NAME_MAX_BYTES * 4) {
                lex_fail(lx, line, "%s", "word too long");
                goto fail;
            }
            if (push(lx, st, T_WORD, 0, &b, line) < 0)
                goto fail;
        } else if (c >= '0' && c <= '9') {
            while (lx->i < lx->n &&
                   ((lx->s[lx->i] >= '0' && lx->s[lx->i] <= '9') || lx->s[lx->i] == '.'))
                pf_buf_u8(&b, (uint8_t)lx->s[lx->i++]);
            if (b.len > 32 || (lx->i < lx->n && word_char((unsigned char)lx->s[lx->i]))) {
                lex_fail(lx, line, "%s", "malformed number");
                goto fail;
            }
            if (push(lx, st, T_NUMBER, 0, &b, line) < 0)
                goto fail;
        } else if (c == '\'') {
            if (lex_quoted(lx, '\'', false, &b) < 0 || push(lx, st, T_STRING, 0, &b, line) < 0)
                goto fail;
        } else if (c == '"') {
            if (lex_quoted(lx, '"', false, &b) < 0)
                goto fail;
            if (b.len == 0 || b.len > NAME_MAX_BYTES) {
                lex_fail(lx, line, "%s", "quoted name empty or longer than 63 bytes");
                goto fail;
            }
            /* Names end up in messages: no control characters (no real role has one). */
            for (size_t k = 0; k < b.len; k++)
                if (b.data[k] < 0x20 || b.data[k] == 0x7f) {
                    lex_fail(lx, line, "%s", "control character in a quoted name");
                    goto fail;
                }
            if (push(lx, st, T_IDENT, 0, &b, line) < 0)
                goto fail;
        } else if (c == '$') {
            if (lex_dollar(lx, &b) < 0 || push(lx, st, T_STRING, 0, &b, line) < 0)
                goto fail;
        } else if (c == '\\') {
            char what[3] = {
                '\\', (char)(peekc(lx, 1) > 32 && peekc(lx, 1) < 127 ? peekc(lx, 1) : '?'), 0};
            lex_fail(lx, line,
                     "psql meta-command %s refused: a backslash outside a quoted text is never "
                     "passed to psql",
                     what);
            goto fail;
        } else if (c == ',' || c == '(' || c == ')' || c == '=' || c == '.' || c == '-') {
            lx->i++;
            if (push(lx, st, T_OP, (char)c, NULL, line) < 0)
                goto fail;
        } else {
            char what[8];
            if (c >= 33 && c < 127)
                snprintf(what, sizeof what, "'%c'", c);
            else
                snprintf(what, sizeof what, "0x%02x", c);
            lex_fail(lx, line, "unexpected character %s", what);
            goto fail;
        }
    }
    pf_buf_free(&b);
    if (st->n == 0)
        return lex_fail(lx, st->line, "%s", "empty statement");
    return 1;
fail:
    pf_buf_free(&b);
    return -1;
}

/* ---- grammar ------------------------------------------------------------------------ */

typedef struct parser {
    stmt_toks *st;
    size_t p;
    bool section;
    const char *target_db;
    pf_buf sql;
    char *role;
    bool superuser;
    const char *why; /* what did not match, for the message */
} parser;

static tok *cur(parser *ps)
{
    return ps->p < ps->st->n ? &ps->st->t[ps->p] : NULL;
}

static bool at_end(parser *ps)
{
    return ps->p >= ps->st->n;
}

static bool is_kw(const tok *t, const char *kw)
{
    return t && t->t == T_WORD && strcasecmp(t->text, kw) == 0;
}

static bool kw(parser *ps, const char *k)
{
    if (!is_kw(cur(ps), k))
        return false;
    ps->p++;
    return true;
}

static bool op(parser *ps, char c)
{
    tok *t = cur(ps);
    if (!t || t->t != T_OP || t->op != c)
        return false;
    ps->p++;
    return true;
}

/* Words that name no role when unquoted (keywords pg_dump's fmtId would have quoted, and
 * the role specifications PostgreSQL reserves). */
static bool reserved_role_word(const char *w)
{
    static const char *const words[] = {"all",          "public",       "none", "current_user",
                                        "current_role", "session_user", "user", "with",
                                        "to",           "in",           NULL};
    for (int i = 0; words[i]; i++)
        if (strcasecmp(w, words[i]) == 0)
            return true;
    return false;
}

/* A name: an unquoted word (folded to lower case, as PostgreSQL does) or a quoted
 * identifier. Returns a pointer into the token (valid until the next statement). */
static const char *name(parser *ps)
{
    tok *t = cur(ps);
    if (!t)
        return NULL;
    if (t->t == T_IDENT) {
        ps->p++;
        return t->text;
    }
    if (t->t != T_WORD || reserved_role_word(t->text) || strlen(t->text) > NAME_MAX_BYTES)
        return NULL;
    for (char *c = t->text; *c; c++)
        if (*c >= 'A' && *c <= 'Z')
            *c = (char)(*c - 'A' + 'a');
    ps->p++;
    return t->text;
}

void pf_pgsql_ident(pf_buf *b, const char *s)
{
    pf_buf_u8(b, '"');
    for (; *s; s++) {
        if (*s == '"')
            pf_buf_u8(b, '"');
        pf_buf_u8(b, (uint8_t)*s);
    }
    pf_buf_u8(b, '"');
}

void pf_pgsql_literal(pf_buf *b, const char *s)
{
    bool bs = strchr(s, '\\') != NULL;
    if (bs)
        pf_buf_u8(b, 'E');
    pf_buf_u8(b, '\'');
    for (; *s; s++) {
        if (*s == '\'' || (bs && *s == '\\'))
            pf_buf_u8(b, (uint8_t)*s);
        pf_buf_u8(b, (uint8_t)*s);
    }
    pf_buf_u8(b, '\'');
}

static void emit(parser *ps, const char *s)
{
    pf_buf_append_str(&ps->sql, s);
}

static bool emit_name(parser *ps)
{
    const char *n = name(ps);
    if (!n)
        return false;
    pf_pgsql_ident(&ps->sql, n);
    return true;
}

/* A role in a grantee list: PUBLIC unquoted is the keyword. */
static bool emit_grantee(parser *ps)
{
    if (kw(ps, "PUBLIC")) {
        emit(ps, "PUBLIC");
        return true;
    }
    return emit_name(ps);
}

static bool emit_list(parser *ps, bool (*one)(parser *))
{
    if (!one(ps))
        return false;
    while (op(ps, ',')) {
        emit(ps, ", ");
        if (!one(ps))
            return false;
    }
    return true;
}

static bool emit_db(parser *ps)
{
    const char *n = name(ps);
    if (!n)
        return false;
    pf_pgsql_ident(&ps->sql, ps->target_db ? ps->target_db : n);
    return true;
}

static bool emit_string(parser *ps)
{
    tok *t = cur(ps);
    if (!t || t->t != T_STRING)
        return false;
    ps->p++;
    pf_pgsql_literal(&ps->sql, t->text);
    return true;
}

/* [-]digits as a plain integer. */
static bool emit_int(parser *ps)
{
    bool neg = op(ps, '-');
    tok *t = cur(ps);
    if (!t || t->t != T_NUMBER || strchr(t->text, '.') || strlen(t->text) > 10)
        return false;
    ps->p++;
    pf_buf_printf(&ps->sql, "%s%s", neg ? "-" : "", t->text);
    return true;
}

static bool emit_bool(parser *ps)
{
    static const char *const t[] = {"true", "on", NULL}, *const f[] = {"false", "off", NULL};
    tok *k = cur(ps);
    const char *v = k && (k->t == T_WORD || k->t == T_STRING) ? k->text : NULL;
    for (int i = 0; v && t[i]; i++)
        if (strcasecmp(v, t[i]) == 0 || strcasecmp(v, f[i]) == 0) {
            emit(ps, strcasecmp(v, t[i]) == 0 ? "true" : "false");
            ps->p++;
            return true;
        }
    return false;
}

/* Server parameters that make the server load a shared library of a given path. */
static bool code_loading_param(const char *p)
{
    static const char *const bad[] = {"session_preload_libraries",
                                      "local_preload_libraries",
                                      "shared_preload_libraries",
                                      "dynamic_library_path",
                                      "jit_provider",
                                      NULL};
    for (int i = 0; bad[i]; i++)
        if (strcasecmp(p, bad[i]) == 0)
            return true;
    return false;
}

/* A parameter name: name[.name...], emitted quoted part by part. */
static bool emit_param(parser *ps)
{
    pf_buf whole = PF_BUF_INIT;
    bool ok = false;
    for (;;) {
        const char *n = name(ps);
        if (!n)
            goto out;
        pf_buf_append_str(&whole, n);
        pf_pgsql_ident(&ps->sql, n);
        if (!op(ps, '.'))
            break;
        pf_buf_u8(&whole, '.');
        emit(ps, ".");
    }
    if (code_loading_param((const char *)whole.data)) {
        ps->why = "parameter that loads code into the server";
        goto out;
    }
    ok = true;
out:
    pf_buf_free(&whole);
    return ok;
}

/* One value of SET ... TO: a string, a number or a word, always emitted as a literal. */
static bool emit_value(parser *ps)
{
    pf_buf v = PF_BUF_INIT;
    bool neg = op(ps, '-');
    tok *t = cur(ps);
    bool ok = t && (t->t == T_STRING || t->t == T_WORD || t->t == T_IDENT || t->t == T_NUMBER) &&
              !(neg && t->t != T_NUMBER);
    if (ok) {
        ps->p++;
        if (neg)
            pf_buf_u8(&v, '-');
        pf_buf_append_str(&v, t->text);
        pf_pgsql_literal(&ps->sql, (const char *)v.data);
    }
    pf_buf_free(&v);
    return ok;
}

/* SET p {TO|=} v[, v...] */
static bool config_set(parser *ps)
{
    if (!kw(ps, "SET"))
        return false;
    emit(ps, " SET ");
    if (!emit_param(ps))
        return false;
    if (!kw(ps, "TO") && !op(ps, '='))
        return false;
    emit(ps, " TO ");
    return emit_list(ps, emit_value);
}

static bool role_options(parser *ps)
{
    static const char *const flags[] = {
        "SUPERUSER",    "NOSUPERUSER",   "CREATEDB",  "NOCREATEDB",  "CREATEROLE",
        "NOCREATEROLE", "INHERIT",       "NOINHERIT", "LOGIN",       "NOLOGIN",
        "REPLICATION",  "NOREPLICATION", "BYPASSRLS", "NOBYPASSRLS", NULL};
    bool any = false;
    while (!at_end(ps)) {
        bool matched = false;
        for (int i = 0; flags[i]; i++)
            if (kw(ps, flags[i])) {
                pf_buf_printf(&ps->sql, " %s", flags[i]);
                if (i == 0)
                    ps->superuser = true;
                else if (i == 1)
                    ps->superuser = false;
                matched = true;
                break;
            }
        if (matched) {
        } else if (kw(ps, "CONNECTION")) {
            if (!kw(ps, "LIMIT"))
                return false;
            emit(ps, " CONNECTION LIMIT ");
            if (!emit_int(ps))
                return false;
        } else if (kw(ps, "ENCRYPTED") || is_kw(cur(ps), "PASSWORD")) {
            if (!kw(ps, "PASSWORD"))
                return false;
            emit(ps, " PASSWORD ");
            if (kw(ps, "NULL"))
                emit(ps, "NULL");
            else if (!emit_string(ps))
                return false;
        } else if (kw(ps, "VALID")) {
            if (!kw(ps, "UNTIL"))
                return false;
            emit(ps, " VALID UNTIL ");
            if (!emit_string(ps))
                return false;
        } else {
            return false;
        }
        any = true;
    }
    return any;
}

static bool set_role(parser *ps, const char *r)
{
    free(ps->role);
    ps->role = strdup(r);
    if (!ps->role)
        abort();
    return true;
}

/* Statements of the roles part. */
static int roles_stmt(parser *ps, pf_pgsql_kind *kind)
{
    if (kw(ps, "SET")) {
        tok *t = cur(ps);
        const char *p = t && t->t == T_WORD ? t->text : "";
        if (!name(ps) || (!kw(ps, "TO") && !op(ps, '=')))
            return 0;
        tok *v = cur(ps);
        if (!v || (v->t != T_WORD && v->t != T_STRING) || ps->p + 1 != ps->st->n)
            return 0;
        ps->p++;
        *kind = PF_PGSQL_SET;
        if (strcmp(p, "default_transaction_read_only") == 0 &&
            (strcasecmp(v->text, "off") == 0 || strcasecmp(v->text, "false") == 0)) {
            emit(ps, "SET default_transaction_read_only = off");
            return 1;
        }
        if (strcmp(p, "standard_conforming_strings") == 0 &&
            (strcasecmp(v->text, "on") == 0 || strcasecmp(v->text, "true") == 0)) {
            emit(ps, "SET standard_conforming_strings = on");
            return 1;
        }
        /* UTF8 only: in the client-only encodings (SJIS, BIG5, GBK, ...) a quote or a
         * backslash byte can be the second half of a character, and literals escaped byte
         * by byte would then end somewhere else for psql. A Mastodon database is UTF8. */
        if (strcmp(p, "client_encoding") == 0 &&
            (strcasecmp(v->text, "UTF8") == 0 || strcasecmp(v->text, "UTF-8") == 0)) {
            emit(ps, "SET client_encoding = 'UTF8'");
            return 1;
        }
        ps->why = "SET of a parameter pg_dumpall does not set";
        return 0;
    }
    if (kw(ps, "CREATE")) {
        if (!kw(ps, "ROLE"))
            return 0;
        *kind = PF_PGSQL_CREATE_ROLE;
        emit(ps, "CREATE ROLE ");
        const char *r = name(ps);
        if (!r || !set_role(ps, r))
            return 0;
        pf_pgsql_ident(&ps->sql, r);
        if (at_end(ps))
            return 1;
        kw(ps, "WITH");
        emit(ps, " WITH");
        return role_options(ps);
    }
    if (kw(ps, "ALTER")) {
        if (!kw(ps, "ROLE") && !kw(ps, "USER"))
            return 0;
        const char *r = name(ps);
        if (!r || !set_role(ps, r))
            return 0;
        emit(ps, "ALTER ROLE ");
        pf_pgsql_ident(&ps->sql, r);
        if (is_kw(cur(ps), "SET")) {
            *kind = PF_PGSQL_ROLE_CONFIG;
            return config_set(ps);
        }
        *kind = PF_PGSQL_ALTER_ROLE;
        kw(ps, "WITH");
        emit(ps, " WITH");
        return role_options(ps);
    }
    if (kw(ps, "COMMENT")) {
        if (!kw(ps, "ON") || !kw(ps, "ROLE"))
            return 0;
        *kind = PF_PGSQL_ROLE_COMMENT;
        const char *r = name(ps);
        if (!r || !set_role(ps, r) || !kw(ps, "IS"))
            return 0;
        emit(ps, "COMMENT ON ROLE ");
        pf_pgsql_ident(&ps->sql, r);
        emit(ps, " IS ");
        if (kw(ps, "NULL")) {
            emit(ps, "NULL");
            return 1;
        }
        return emit_string(ps);
    }
    if (kw(ps, "GRANT")) {
        if (is_kw(cur(ps), "SET") && ps->p + 1 < ps->st->n && is_kw(&ps->st->t[ps->p + 1], "ON")) {
            ps->p += 2;
            *kind = PF_PGSQL_GRANT_PARAM;
            if (!kw(ps, "PARAMETER"))
                return 0;
            emit(ps, "GRANT SET ON PARAMETER ");
            if (!emit_list(ps, emit_param) || !kw(ps, "TO"))
                return 0;
            emit(ps, " TO ");
            if (!emit_list(ps, emit_grantee))
                return 0;
            if (kw(ps, "WITH")) {
                if (!kw(ps, "GRANT") || !kw(ps, "OPTION"))
                    return 0;
                emit(ps, " WITH GRANT OPTION");
            }
            return 1;
        }
        *kind = PF_PGSQL_GRANT_ROLE;
        emit(ps, "GRANT ");
        if (!emit_list(ps, emit_name) || !kw(ps, "TO"))
            return 0;
        emit(ps, " TO ");
        tok *m = cur(ps);
        if (!emit_list(ps, emit_name))
            return 0;
        set_role(ps, m->text);
        if (kw(ps, "WITH")) {
            emit(ps, " WITH ");
            for (bool first = true;; first = false) {
                if (!first)
                    emit(ps, ", ");
                if (kw(ps, "ADMIN")) {
                    emit(ps, "ADMIN ");
                    if (kw(ps, "OPTION"))
                        emit(ps, "OPTION");
                    else if (!emit_bool(ps))
                        return 0;
                } else if (kw(ps, "INHERIT") || kw(ps, "SET")) {
                    emit(ps, is_kw(&ps->st->t[ps->p - 1], "INHERIT") ? "INHERIT " : "SET ");
                    if (!emit_bool(ps))
                        return 0;
                } else {
                    return 0;
                }
                if (!op(ps, ','))
                    break;
            }
        }
        if (kw(ps, "GRANTED")) {
            if (!kw(ps, "BY"))
                return 0;
            emit(ps, " GRANTED BY ");
            if (!emit_name(ps))
                return 0;
        }
        return 1;
    }
    return 0;
}

static bool db_priv(parser *ps)
{
    static const char *const privs[] = {"CREATE", "CONNECT", "TEMPORARY", "TEMP", NULL};
    for (int i = 0; privs[i]; i++)
        if (kw(ps, privs[i])) {
            emit(ps, privs[i]);
            return true;
        }
    return false;
}

static bool db_privs(parser *ps)
{
    if (kw(ps, "ALL")) {
        kw(ps, "PRIVILEGES");
        emit(ps, "ALL");
        return true;
    }
    return emit_list(ps, db_priv);
}

/* Statements of the database-level section. */
static int section_stmt(parser *ps, pf_pgsql_kind *kind)
{
    if (kw(ps, "ALTER")) {
        if (kw(ps, "ROLE")) {
            *kind = PF_PGSQL_ROLE_CONFIG;
            const char *r = name(ps);
            if (!r || !set_role(ps, r) || !kw(ps, "IN") || !kw(ps, "DATABASE"))
                return 0;
            emit(ps, "ALTER ROLE ");
            pf_pgsql_ident(&ps->sql, r);
            emit(ps, " IN DATABASE ");
            return emit_db(ps) && config_set(ps);
        }
        if (!kw(ps, "DATABASE"))
            return 0;
        *kind = PF_PGSQL_DB_ALTER;
        emit(ps, "ALTER DATABASE ");
        if (!emit_db(ps))
            return 0;
        if (is_kw(cur(ps), "SET"))
            return config_set(ps);
        kw(ps, "WITH");
        if (kw(ps, "CONNECTION")) {
            if (!kw(ps, "LIMIT"))
                return 0;
            op(ps, '=');
            emit(ps, " CONNECTION LIMIT = ");
            return emit_int(ps);
        }
        if (kw(ps, "IS_TEMPLATE") || kw(ps, "ALLOW_CONNECTIONS")) {
            pf_buf_printf(&ps->sql, " %s = ",
                          is_kw(&ps->st->t[ps->p - 1], "IS_TEMPLATE") ? "IS_TEMPLATE"
                                                                      : "ALLOW_CONNECTIONS");
            op(ps, '=');
            return emit_bool(ps);
        }
        return 0;
    }
    if (kw(ps, "COMMENT")) {
        if (!kw(ps, "ON") || !kw(ps, "DATABASE"))
            return 0;
        *kind = PF_PGSQL_DB_COMMENT;
        emit(ps, "COMMENT ON DATABASE ");
        if (!emit_db(ps) || !kw(ps, "IS"))
            return 0;
        emit(ps, " IS ");
        if (kw(ps, "NULL")) {
            emit(ps, "NULL");
            return 1;
        }
        return emit_string(ps);
    }
    bool grant = is_kw(cur(ps), "GRANT");
    if (kw(ps, "GRANT") || kw(ps, "REVOKE")) {
        *kind = PF_PGSQL_DB_ACL;
        emit(ps, grant ? "GRANT " : "REVOKE ");
        if (!grant && kw(ps, "GRANT")) {
            if (!kw(ps, "OPTION") || !kw(ps, "FOR"))
                return 0;
            emit(ps, "GRANT OPTION FOR ");
        }
        if (!db_privs(ps) || !kw(ps, "ON") || !kw(ps, "DATABASE"))
            return 0;
        emit(ps, " ON DATABASE ");
        if (!emit_db(ps) || !kw(ps, grant ? "TO" : "FROM"))
            return 0;
        emit(ps, grant ? " TO " : " FROM ");
        if (!emit_list(ps, emit_grantee))
            return 0;
        if (grant && kw(ps, "WITH")) {
            if (!kw(ps, "GRANT") || !kw(ps, "OPTION"))
                return 0;
            emit(ps, " WITH GRANT OPTION");
        }
        return 1;
    }
    return 0;
}

/* The start of a statement, printable and short, for a message; quoted texts are not
 * shown (one may be a password hash). */
static void excerpt(const stmt_toks *st, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < st->n && o + 4 < cap; i++) {
        const tok *t = &st->t[i];
        const char *s = t->t == T_OP ? (char[]){t->op, 0} : t->t == T_STRING ? "'...'" : t->text;
        if (i && t->t != T_OP && o + 1 < cap)
            out[o++] = ' ';
        for (; *s && o + 4 < cap; s++)
            out[o++] = (*s >= 32 && *s < 127) ? *s : '?';
        if (i == 7)
            break;
    }
    if (o + 4 < cap && st->n > 8) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = 0;
}

static void add(pf_pgsql_stmt **arr, size_t *n, pf_pgsql_stmt s)
{
    /* Capacity is the next power of two: grow when n is one. */
    if ((*n & (*n - 1)) == 0) {
        size_t cap = *n ? *n * 2 : 1;
        pf_pgsql_stmt *a = realloc(*arr, cap * sizeof **arr);
        if (!a)
            abort();
        *arr = a;
    }
    (*arr)[(*n)++] = s;
}

void pf_pgsql_globals_free(pf_pgsql_globals *g)
{
    for (size_t i = 0; i < g->nroles; i++) {
        free(g->roles[i].role);
        free(g->roles[i].sql);
    }
    for (size_t i = 0; i < g->ndb; i++) {
        free(g->db[i].role);
        free(g->db[i].sql);
    }
    free(g->roles);
    free(g->db);
    memset(g, 0, sizeof *g);
}

int pf_pgsql_globals_parse(const char *text, size_t len, const char *target_db,
                           pf_pgsql_globals *out, pf_err *err)
{
    memset(out, 0, sizeof *out);
    lexer lx = {.s = text, .n = len, .line = 1, .err = err};
    stmt_toks *st = calloc(1, sizeof *st);
    if (!st)
        abort();
    parser ps = {.st = st, .target_db = target_db, .sql = PF_BUF_INIT};
    int rc = -1;
    for (;;) {
        bool mark = false;
        int r = next_stmt(&lx, st, &mark);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        if (mark) {
            if (ps.section) {
                pf_err_set(err, PF_ECORRUPT, "line %u: a second database-level section", lx.line);
                goto out;
            }
            ps.section = out->has_section = true;
            continue;
        }
        ps.p = 0;
        ps.why = NULL;
        ps.superuser = false;
        free(ps.role);
        ps.role = NULL;
        pf_buf_reset(&ps.sql);
        pf_pgsql_kind kind = PF_PGSQL_SET;
        int ok = ps.section ? section_stmt(&ps, &kind) : roles_stmt(&ps, &kind);
        if (!ok || !at_end(&ps)) {
            char ex[96];
            excerpt(st, ex, sizeof ex);
            pf_err_set(err, PF_ECORRUPT, "line %u: %s: %s", st->line,
                       ps.why       ? ps.why
                       : ps.section ? "not a database-level setting permafrost restores"
                                    : "not a statement of the roles permafrost restores",
                       ex);
            goto out;
        }
        emit(&ps, ";\n");
        size_t dummy;
        pf_buf_u8(&ps.sql, 0);
        pf_pgsql_stmt s = {.kind = kind,
                           .line = st->line,
                           .role = ps.role,
                           .superuser = ps.superuser,
                           .sql = (char *)pf_buf_detach(&ps.sql, &dummy)};
        ps.role = NULL;
        if (ps.section)
            add(&out->db, &out->ndb, s);
        else
            add(&out->roles, &out->nroles, s);
    }
    rc = 0;
out:
    toks_clear(st);
    free(st);
    free(ps.role);
    pf_buf_free(&ps.sql);
    if (rc < 0)
        pf_pgsql_globals_free(out);
    return rc;
}

/* ---- the statements of a pg_dump, and which of them a restore runs ---- */

int pf_pgsql_each(const char *sql, size_t n, pf_pgsql_each_fn fn, void *ctx, pf_err *err)
{
    size_t i = 0;
    while (i < n) {
        while (i < n && isspace((unsigned char)sql[i]))
            i++;
        if (i >= n)
            break;
        if (sql[i] == '-' && i + 1 < n && sql[i + 1] == '-') {
            while (i < n && sql[i] != '\n')
                i++;
            continue;
        }
        size_t start = i;
        if (sql[i] == '\\') {
            while (i < n && sql[i] != '\n')
                i++;
            if (fn(sql + start, i - start, true, ctx, err) < 0)
                return -1;
            continue;
        }
        char q = 0;
        while (i < n) {
            char ch = sql[i++];
            if (q) {
                if (ch == q)
                    q = 0;
            } else if (ch == '\'' || ch == '"') {
                q = ch;
            } else if (ch == ';') {
                break;
            }
        }
        if (fn(sql + start, i - start, false, ctx, err) < 0)
            return -1;
    }
    return 0;
}

static bool has_prefix(const char *s, size_t n, const char *prefix)
{
    size_t l = strlen(prefix);
    return n >= l && strncmp(s, prefix, l) == 0;
}

static bool has_inside(const char *s, size_t n, const char *needle)
{
    size_t l = strlen(needle);
    for (size_t i = 0; i + l <= n; i++)
        if (memcmp(s + i, needle, l) == 0)
            return true;
    return false;
}

typedef struct db_section {
    pf_buf *out;
    bool connected; /* past pg_dump's "\connect <db>" */
} db_section;

/* Keeps the statements that a dump without --create loses. */
static int keep_db_level(const char *s, size_t n, bool meta, void *ctx, pf_err *err)
{
    (void)err;
    db_section *d = ctx;
    if (meta) {
        if (has_prefix(s, n, "\\connect"))
            d->connected = true;
        return 0;
    }
    if (!d->connected)
        return 0;
    bool keep = has_prefix(s, n, "COMMENT ON DATABASE ") || has_prefix(s, n, "SECURITY LABEL ") ||
                (has_prefix(s, n, "ALTER DATABASE ") && !has_inside(s, n, " OWNER TO ")) ||
                (has_prefix(s, n, "ALTER ROLE ") && has_inside(s, n, " IN DATABASE ")) ||
                ((has_prefix(s, n, "GRANT ") || has_prefix(s, n, "REVOKE ")) &&
                 has_inside(s, n, " ON DATABASE "));
    if (keep) {
        pf_buf_append(d->out, s, n);
        pf_buf_append_str(d->out, "\n");
    }
    return 0;
}

void pf_pgsql_db_level(const char *sql, size_t n, pf_buf *out)
{
    db_section d = {.out = out};
    pf_err ignored = {0};
    pf_pgsql_each(sql, n, keep_db_level, &d, &ignored);
}

/* 's' for an existing superuser, '-' for another existing role, 0 for none. */
static char existing_role(const char *existing, const char *name)
{
    size_t l = strlen(name);
    const char *p = existing;
    while (p && *p) {
        const char *tab = strchr(p, '\t');
        const char *nl = strchr(p, '\n');
        if (!tab || !nl)
            break;
        if ((size_t)(tab - p) == l && memcmp(p, name, l) == 0)
            return tab[1];
        p = nl + 1;
    }
    return 0;
}

bool pf_pgsql_keep_role(const pf_pgsql_stmt *s, const char *admin, const char *existing,
                        int *created, int *skipped)
{
    if (s->kind != PF_PGSQL_CREATE_ROLE && s->kind != PF_PGSQL_ALTER_ROLE &&
        s->kind != PF_PGSQL_ROLE_CONFIG)
        return true;
    char ex = existing_role(existing, s->role);
    if (strcmp(s->role, admin) == 0 || ex == 's' || (s->kind == PF_PGSQL_CREATE_ROLE && ex)) {
        (*skipped)++;
        return false;
    }
    if (s->kind == PF_PGSQL_CREATE_ROLE)
        (*created)++;
    return true;
}
