#include "mastodon/env.h"
#include "common/alloc.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"

#define ENV_MAX_FILE PF_MASTODON_ENV_MAX_FILE
/* $VAR expansion can double a value per line (B=$A$A, C=$B$B, ...): a few hundred bytes
 * would ask for gigabytes. Real values are far below these (a few KiB at most). */
#define ENV_MAX_VALUE (64 * 1024)       /* one value, after expansion */
#define ENV_MAX_TOTAL (4 * 1024 * 1024) /* all values produced by one file together */

static void wipe_free(char *s)
{
    if (s) {
        explicit_bzero(s, strlen(s));
        free(s);
    }
}

/* Replaces *slot with a copy of v (NULL allowed), wiping the old value. */
static void set_str(char **slot, const char *v)
{
    wipe_free(*slot);
    *slot = v ? pf_xstrdup(v) : NULL;
}

/* ---- the dotenv part ------------------------------------------------------------- */

static void set_var(pf_mastodon_env *e, const char *key, size_t klen, char *val_owned)
{
    for (size_t i = 0; i < e->nvars; i++) {
        if (strlen(e->keys[i]) == klen && memcmp(e->keys[i], key, klen) == 0) {
            wipe_free(e->values[i]);
            e->values[i] = val_owned;
            return;
        }
    }
    char **k = realloc(e->keys, (e->nvars + 1) * sizeof *k);
    if (!k)
        abort();
    e->keys = k;
    char **v = realloc(e->values, (e->nvars + 1) * sizeof *v);
    if (!v)
        abort();
    e->values = v;
    e->keys[e->nvars] = pf_xstrndup(key, klen);
    e->values[e->nvars] = val_owned;
    e->nvars++;
}

const char *pf_mastodon_env_get(const pf_mastodon_env *e, const char *key)
{
    for (size_t i = 0; i < e->nvars; i++)
        if (strcmp(e->keys[i], key) == 0)
            return e->values[i];
    return NULL;
}

static bool is_key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.';
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Whitespace inside a line (Ruby's \s without the newline). */
static bool is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\v' || c == '\f';
}

/* Unescapes a double-quoted (dq) or unquoted value: \n and \r (dq only) become control
 * characters, "\x" becomes "x", but "\$" stays so substitution can see it is escaped. */
static void unescape(const char *p, size_t n, bool dq, pf_buf *out)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n) {
            char c = p[i + 1];
            if (dq && c == 'n')
                pf_buf_u8(out, '\n');
            else if (dq && c == 'r')
                pf_buf_u8(out, '\r');
            else if (c == '$')
                pf_buf_append(out, "\\$", 2);
            else
                pf_buf_u8(out, (uint8_t)c);
            i++;
        } else {
            pf_buf_u8(out, (uint8_t)p[i]);
        }
    }
}

/* Expands $NAME and ${NAME} with keys set earlier; "\$" is a literal '$'. Returns a
 * malloc'd string, or NULL when it would exceed ENV_MAX_VALUE. */
static char *substitute(const pf_mastodon_env *e, const char *p, size_t n, int line,
                        const char *key)
{
    pf_buf out = PF_BUF_INIT;
    bool warned = false;
    pf_buf_reserve(&out, n);
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\\' && i + 1 < n && p[i + 1] == '$') {
            pf_buf_u8(&out, '$');
            i++;
            continue;
        }
        if (p[i] != '$') {
            pf_buf_u8(&out, (uint8_t)p[i]);
            continue;
        }
        size_t s = i + 1, end;
        bool brace = s < n && p[s] == '{';
        if (s < n && p[s] == '(' && !warned) {
            pf_warn(".env line %d: %s uses $(command), which permafrost does not run; the text "
                    "is taken as written",
                    line, key);
            warned = true;
        }
        if (brace)
            s++;
        end = s;
        while (end < n && is_name_char(p[end]))
            end++;
        if (end == s || (brace && (end >= n || p[end] != '}'))) {
            pf_buf_u8(&out, '$'); /* not a reference: keep the dollar */
            continue;
        }
        char *name = pf_xstrndup(p + s, end - s);
        const char *v = pf_mastodon_env_get(e, name);
        free(name);
        if (v) {
            if (strlen(v) > ENV_MAX_VALUE || out.len + strlen(v) > ENV_MAX_VALUE) {
                pf_buf_free(&out);
                return NULL;
            }
            pf_buf_append_str(&out, v);
        }
        i = brace ? end : end - 1;
    }
    if (out.len > ENV_MAX_VALUE) {
        pf_buf_free(&out);
        return NULL;
    }
    size_t len;
    pf_buf_u8(&out, 0);
    char *r = (char *)pf_buf_detach(&out, &len);
    return r;
}

/* The rest of the line from `t` is blank or a comment. */
static bool tail_ok(const char *s, size_t n, size_t t)
{
    while (t < n && is_blank(s[t]))
        t++;
    return t == n || s[t] == '\n' || s[t] == '#';
}

static size_t next_line(const char *s, size_t n, size_t i)
{
    while (i < n && s[i] != '\n')
        i++;
    return i < n ? i + 1 : n;
}

/* Line numbers for warnings, counted incrementally (positions only move forward). */
typedef struct line_counter {
    size_t pos;
    int line;
} line_counter;

static int line_at(line_counter *lc, const char *s, size_t upto)
{
    for (; lc->pos < upto; lc->pos++)
        if (s[lc->pos] == '\n')
            lc->line++;
    return lc->line;
}

/* A quoted value may span lines, but not more than this: it bounds the search for a
 * closing quote, which would otherwise make a file of unclosed quotes quadratic. */
#define MAX_QUOTED (64 * 1024)

/* Finds the closing quote of a value opening at s[p] (= q). Like dotenv's regex: the first
 * unescaped quote, else (backtracking) an escaped one whose line tail is blank/comment.
 * Returns its index, or 0 when the quote is not closed. */
static size_t find_close(const char *s, size_t n, size_t p)
{
    char q = s[p];
    size_t first = 0;
    size_t k = p + 1;
    size_t lim = n - p > MAX_QUOTED ? p + MAX_QUOTED : n;
    while (k < lim) {
        if (s[k] == '\\' && k + 1 < lim && s[k + 1] == q) {
            k += 2;
        } else if (s[k] == q) {
            first = k;
            break;
        } else {
            k++;
        }
    }
    size_t limit = first ? first : lim;
    if (first && tail_ok(s, n, first + 1))
        return first;
    /* Backtrack: an escaped quote taken as the closing one, the latest first. */
    for (size_t c = limit; c > p + 1; c--) {
        size_t j = c - 1;
        if (s[j] == q && s[j - 1] == '\\' && tail_ok(s, n, j + 1))
            return j;
    }
    return 0;
}

static char *finish_value(const pf_mastodon_env *e, const char *p, size_t n, char quote, int line,
                          const char *key)
{
    if (n > ENV_MAX_VALUE)
        return NULL;
    if (quote == '\'')
        return pf_xstrndup(p, n);
    pf_buf u = PF_BUF_INIT;
    unescape(p, n, quote == '"', &u);
    char *r = substitute(e, u.data ? (const char *)u.data : "", u.len, line, key);
    pf_buf_free(&u);
    return r;
}

/* Counts a value against ENV_MAX_TOTAL; -1 with err (naming the key and line, never the
 * value) when it is NULL (over ENV_MAX_VALUE) or the file's total is over. */
static int account(char *val, size_t *total, int line, const char *key, pf_err *err)
{
    if (!val)
        return pf_err_set(err, PF_EUSAGE,
                          ".env line %d: the value of %s is longer than %d KiB (after $VAR "
                          "expansion); refusing the file",
                          line, key, ENV_MAX_VALUE / 1024);
    *total += strlen(val);
    if (*total > ENV_MAX_TOTAL) {
        explicit_bzero(val, strlen(val));
        free(val);
        return pf_err_set(err, PF_EUSAGE,
                          ".env line %d: the values up to %s add up to more than %d MiB (after "
                          "$VAR expansion); refusing the file",
                          line, key, ENV_MAX_TOTAL / (1024 * 1024));
    }
    return 0;
}

/* Parses normalized text (LF line ends) into e->keys/values. */
static int parse_lines(pf_mastodon_env *e, const char *s, size_t n, pf_err *err)
{
    size_t i = 0, total = 0;
    line_counter lc = {0, 1};
    while (i < n) {
        size_t ls = i;
        while (i < n && is_blank(s[i]))
            i++;
        if (i >= n)
            break;
        if (s[i] == '\n' || s[i] == '#') {
            i = next_line(s, n, i);
            continue;
        }
        if (n - i > 6 && memcmp(s + i, "export", 6) == 0 && is_blank(s[i + 6])) {
            size_t j = i + 6;
            while (j < n && is_blank(s[j]))
                j++;
            if (j < n && is_key_char(s[j]))
                i = j;
        }
        size_t ks = i;
        while (i < n && is_key_char(s[i]))
            i++;
        size_t klen = i - ks;
        if (klen == 0) {
            i = next_line(s, n, i);
            continue;
        }
        /* Separator: optional blanks then '=', or ':' right after the key then a blank. */
        size_t j = i;
        while (j < n && is_blank(s[j]))
            j++;
        if (j < n && s[j] == '=') {
            j++;
        } else if (i + 1 < n && s[i] == ':' && (is_blank(s[i + 1]) || s[i + 1] == '\n')) {
            j = i + 1;
        } else {
            i = next_line(s, n, i);
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "%.*s", (int)(klen < 100 ? klen : 100), s + ks);
        int line = line_at(&lc, s, ls);

        size_t v = j, p = j;
        while (p < n && is_blank(s[p]))
            p++;
        char *val = NULL;
        if (p < n && (s[p] == '\'' || s[p] == '"')) {
            size_t c = find_close(s, n, p);
            if (c) {
                val = finish_value(e, s + p + 1, c - p - 1, s[p], line, key);
                if (account(val, &total, line, key, err) < 0)
                    return -1;
                set_var(e, s + ks, klen, val);
                i = next_line(s, n, c + 1);
                continue;
            }
            pf_warn(".env line %d: the quoted value of %s is not closed properly; it is taken as "
                    "written",
                    line, key);
        }
        /* Unquoted: up to '#' or the end of the line, trimmed. */
        size_t end = v;
        while (end < n && s[end] != '#' && s[end] != '\n')
            end++;
        size_t a = v, b = end;
        while (a < b && (is_blank(s[a])))
            a++;
        while (b > a && is_blank(s[b - 1]))
            b--;
        char quote = 0;
        if (b - a >= 2 && (s[a] == '\'' || s[a] == '"') && s[b - 1] == s[a]) {
            quote = s[a];
            a++;
            b--;
        }
        val = finish_value(e, s + a, b - a, quote, line, key);
        if (account(val, &total, line, key, err) < 0)
            return -1;
        set_var(e, s + ks, klen, val);
        i = next_line(s, n, end);
    }
    return 0;
}

/* ---- Mastodon's meaning of the keys ---------------------------------------------- */

/* A non-empty value, or NULL. */
static const char *nonempty(const pf_mastodon_env *e, const char *key)
{
    const char *v = pf_mastodon_env_get(e, key);
    return v && *v ? v : NULL;
}

static int parse_int(const char *s, long lo, long hi, int *out)
{
    if (!s || !*s)
        return -1;
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    while (*end == ' ' || *end == '\t')
        end++;
    if (errno || *end || v < lo || v > hi || s[0] == '-' || s[0] == '+' || s[0] == ' ')
        return -1;
    *out = (int)v;
    return 0;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes n bytes into a new string; NULL on a bad escape or an encoded NUL. */
static char *pct_decode(const char *p, size_t n)
{
    char *out = malloc(n + 1);
    if (!out)
        abort();
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '%') {
            int a = i + 1 < n ? hexval(p[i + 1]) : -1;
            int b = i + 2 < n ? hexval(p[i + 2]) : -1;
            int h = (a < 0 || b < 0) ? -1 : a * 16 + b;
            if (h <= 0) {
                explicit_bzero(out, n + 1);
                free(out);
                return NULL;
            }
            out[o++] = (char)h;
            i += 2;
        } else {
            out[o++] = p[i];
        }
    }
    out[o] = 0;
    return out;
}

/* Splits a URL "scheme://userinfo@hostport/path?query" into parts (not decoded). */
typedef struct url_parts {
    const char *scheme, *user, *pass, *host, *port, *path, *query;
    size_t scheme_n, user_n, pass_n, host_n, port_n, path_n, query_n;
    bool has_user, has_pass, has_port;
} url_parts;

static int split_url(const char *u, url_parts *o)
{
    memset(o, 0, sizeof *o);
    const char *sep = strstr(u, "://");
    if (!sep)
        return -1;
    o->scheme = u;
    o->scheme_n = (size_t)(sep - u);
    const char *a = sep + 3;
    size_t auth_n = strcspn(a, "/?#");
    const char *rest = a + auth_n;
    const char *at = NULL;
    for (size_t i = 0; i < auth_n; i++)
        if (a[i] == '@')
            at = a + i; /* the last '@': passwords may contain an unencoded one */
    const char *hp = a;
    if (at) {
        o->has_user = true;
        const char *colon = memchr(a, ':', (size_t)(at - a));
        o->user = a;
        if (colon) {
            o->user_n = (size_t)(colon - a);
            o->has_pass = true;
            o->pass = colon + 1;
            o->pass_n = (size_t)(at - colon - 1);
        } else {
            o->user_n = (size_t)(at - a);
        }
        hp = at + 1;
    }
    size_t hp_n = (size_t)(a + auth_n - hp);
    const char *pc = NULL;
    if (hp_n && hp[0] == '[') { /* [IPv6]:port */
        const char *rb = memchr(hp, ']', hp_n);
        if (!rb)
            return -1;
        o->host = hp + 1;
        o->host_n = (size_t)(rb - hp - 1);
        if (rb + 1 < hp + hp_n) {
            if (rb[1] != ':')
                return -1;
            pc = rb + 1;
        }
    } else {
        pc = memchr(hp, ':', hp_n);
        o->host = hp;
        o->host_n = pc ? (size_t)(pc - hp) : hp_n;
    }
    if (pc) {
        o->has_port = true;
        o->port = pc + 1;
        o->port_n = (size_t)(hp + hp_n - pc - 1);
    }
    if (*rest == '/') {
        o->path = rest + 1;
        o->path_n = strcspn(rest + 1, "?#");
        rest = o->path + o->path_n;
    }
    if (*rest == '?') {
        o->query = rest + 1;
        o->query_n = strcspn(rest + 1, "#");
    }
    return 0;
}

static bool scheme_is(const url_parts *u, const char *s)
{
    return u->scheme_n == strlen(s) && strncasecmp(u->scheme, s, u->scheme_n) == 0;
}

static int port_from(const char *p, size_t n, int *out)
{
    char tmp[16];
    if (n == 0 || n >= sizeof tmp)
        return -1;
    memcpy(tmp, p, n);
    tmp[n] = 0;
    return parse_int(tmp, 1, 65535, out);
}

/* Applies DATABASE_URL over the DB_* values, as Rails merges it over database.yml. */
static int apply_database_url(pf_mastodon_env *e, const char *url, pf_err *err)
{
    url_parts u;
    char *tmp = NULL;
    int rc = -1;
    if (split_url(url, &u) < 0 || !(scheme_is(&u, "postgres") || scheme_is(&u, "postgresql")))
        return pf_err_set(err, PF_EUSAGE, "DATABASE_URL is not a postgres:// or postgresql:// URL");
#define DECODE_INTO(field, p, n)                                                                   \
    do {                                                                                           \
        tmp = pct_decode(p, n);                                                                    \
        if (!tmp) {                                                                                \
            pf_err_set(err, PF_EUSAGE, "DATABASE_URL has an invalid %%-escape");                   \
            goto out;                                                                              \
        }                                                                                          \
        if (*tmp) {                                                                                \
            wipe_free(e->field);                                                                   \
            e->field = tmp;                                                                        \
        } else {                                                                                   \
            free(tmp);                                                                             \
        }                                                                                          \
        tmp = NULL;                                                                                \
    } while (0)
    if (u.has_user && u.user_n)
        DECODE_INTO(db_user, u.user, u.user_n);
    if (u.has_pass && u.pass_n)
        DECODE_INTO(db_pass, u.pass, u.pass_n);
    if (u.host_n)
        DECODE_INTO(db_host, u.host, u.host_n);
    if (u.has_port && u.port_n && port_from(u.port, u.port_n, &e->db_port) < 0) {
        pf_err_set(err, PF_EUSAGE, "DATABASE_URL has an invalid port");
        goto out;
    }
    if (u.path_n)
        DECODE_INTO(db_name, u.path, u.path_n);
    /* Query parameters name connection settings: host=/var/run/postgresql, port=, ... */
    const char *q = u.query;
    size_t left = u.query_n;
    while (q && left) {
        size_t item = 0;
        while (item < left && q[item] != '&')
            item++;
        const char *eq = memchr(q, '=', item);
        if (eq) {
            size_t kn = (size_t)(eq - q), vn = item - kn - 1;
            const char *vp = eq + 1;
            if (kn == 4 && memcmp(q, "host", 4) == 0)
                DECODE_INTO(db_host, vp, vn);
            else if ((kn == 4 && memcmp(q, "user", 4) == 0) ||
                     (kn == 8 && memcmp(q, "username", 8) == 0))
                DECODE_INTO(db_user, vp, vn);
            else if (kn == 8 && memcmp(q, "password", 8) == 0)
                DECODE_INTO(db_pass, vp, vn);
            else if ((kn == 6 && memcmp(q, "dbname", 6) == 0) ||
                     (kn == 8 && memcmp(q, "database", 8) == 0))
                DECODE_INTO(db_name, vp, vn);
            else if (kn == 7 && memcmp(q, "sslmode", 7) == 0)
                DECODE_INTO(db_sslmode, vp, vn);
            else if (kn == 4 && memcmp(q, "port", 4) == 0 && port_from(vp, vn, &e->db_port) < 0) {
                pf_err_set(err, PF_EUSAGE, "DATABASE_URL has an invalid port");
                goto out;
            }
        }
        q += item;
        left -= item;
        if (left) {
            q++;
            left--;
        }
    }
#undef DECODE_INTO
    e->database_url = true;
    rc = 0;
out:
    wipe_free(tmp);
    return rc;
}

static void redis_conn_free(pf_redis_conn *r)
{
    wipe_free(r->host);
    wipe_free(r->socket);
    wipe_free(r->user);
    wipe_free(r->password);
    memset(r, 0, sizeof *r);
}

/* Parses redis://[user[:password]@]host[:port][/db], rediss://..., unix:///path[?db=N]. */
static int parse_redis_url(const char *what, const char *url, pf_redis_conn *r, pf_err *err)
{
    url_parts u;
    char *tmp = NULL;
    if (split_url(url, &u) < 0)
        return pf_err_set(err, PF_EUSAGE, "%s is not a redis:// URL", what);
    if (scheme_is(&u, "unix")) {
        /* unix:///run/redis/redis.sock: everything after "unix://" up to '?' is the path. */
        const char *path = strstr(url, "://") + 3;
        size_t pn = strcspn(path, "?#");
        tmp = pct_decode(path, pn);
        if (!tmp || !*tmp) {
            wipe_free(tmp);
            return pf_err_set(err, PF_EUSAGE, "%s has no socket path", what);
        }
        set_str(&r->host, NULL);
        wipe_free(r->socket);
        r->socket = tmp;
        const char *q = u.query;
        if (q && u.query_n > 3 && strncmp(q, "db=", 3) == 0) {
            char d[12];
            size_t dn = strcspn(q + 3, "&#");
            if (dn >= sizeof d)
                return pf_err_set(err, PF_EUSAGE, "%s has an invalid db number", what);
            memcpy(d, q + 3, dn);
            d[dn] = 0;
            if (parse_int(d, 0, 1000000, &r->db) < 0)
                return pf_err_set(err, PF_EUSAGE, "%s has an invalid db number", what);
        }
        return 0;
    }
    if (!scheme_is(&u, "redis") && !scheme_is(&u, "rediss"))
        return pf_err_set(err, PF_EUSAGE, "%s is not a redis://, rediss:// or unix:// URL", what);
    r->tls = scheme_is(&u, "rediss");
    if (u.host_n) {
        tmp = pct_decode(u.host, u.host_n);
        if (!tmp)
            return pf_err_set(err, PF_EUSAGE, "%s has an invalid %%-escape", what);
        wipe_free(r->host);
        r->host = tmp;
    }
    if (u.has_user) {
        if (u.user_n) {
            tmp = pct_decode(u.user, u.user_n);
            if (!tmp)
                return pf_err_set(err, PF_EUSAGE, "%s has an invalid %%-escape", what);
            wipe_free(r->user);
            r->user = tmp;
        }
        if (u.has_pass && u.pass_n) {
            tmp = pct_decode(u.pass, u.pass_n);
            if (!tmp)
                return pf_err_set(err, PF_EUSAGE, "%s has an invalid %%-escape", what);
            wipe_free(r->password);
            r->password = tmp;
        }
        /* redis://secret@host (no colon): redis-rb takes it as the password. */
        if (!u.has_pass && r->user) {
            wipe_free(r->password);
            r->password = r->user;
            r->user = NULL;
        }
    }
    if (u.has_port && u.port_n && port_from(u.port, u.port_n, &r->port) < 0)
        return pf_err_set(err, PF_EUSAGE, "%s has an invalid port", what);
    if (u.path_n) {
        char d[12];
        if (u.path_n >= sizeof d)
            return pf_err_set(err, PF_EUSAGE, "%s has an invalid db number", what);
        memcpy(d, u.path, u.path_n);
        d[u.path_n] = 0;
        if (parse_int(d, 0, 1000000, &r->db) < 0)
            return pf_err_set(err, PF_EUSAGE, "%s has an invalid db number", what);
    }
    return 0;
}

/* One Redis configuration with prefix "" / "SIDEKIQ_" / "CACHE_" the way Mastodon's
 * RedisConfiguration builds it. Sets *set when the prefix has its own settings. */
static int redis_config(const pf_mastodon_env *e, const char *prefix, bool defaults,
                        pf_redis_conn *r, bool *set, pf_err *err)
{
    char k[64];
#define KEY(name) (snprintf(k, sizeof k, "%sREDIS_%s", prefix, name), k)
    const char *url = nonempty(e, KEY("URL"));
    char url_key[64];
    snprintf(url_key, sizeof url_key, "%s", k);
    const char *host = nonempty(e, KEY("HOST"));
    *set = url || host;
    r->port = 6379;
    if (url) {
        set_str(&r->host, "localhost");
        if (parse_redis_url(url_key, url, r, err) < 0)
            return -1;
        return 0;
    }
    if (!host && !defaults)
        return 0;
    set_str(&r->host, host ? host : "localhost");
    const char *port = nonempty(e, KEY("PORT"));
    if (port && parse_int(port, 1, 65535, &r->port) < 0)
        return pf_err_set(err, PF_EUSAGE, "%s is not a port number (1-65535)", k);
    const char *db = nonempty(e, KEY("DB"));
    if (db && parse_int(db, 0, 1000000, &r->db) < 0)
        return pf_err_set(err, PF_EUSAGE, "%s is not a database number", k);
    set_str(&r->user, nonempty(e, KEY("USER")));
    set_str(&r->password, nonempty(e, KEY("PASSWORD")));
#undef KEY
    return 0;
}

static bool same_redis(const pf_redis_conn *a, const pf_redis_conn *b)
{
    bool hs = (!a->host && !b->host) || (a->host && b->host && strcmp(a->host, b->host) == 0);
    bool ss =
        (!a->socket && !b->socket) || (a->socket && b->socket && !strcmp(a->socket, b->socket));
    return hs && ss && (a->socket || a->port == b->port);
}

static int interpret(pf_mastodon_env *e, pf_err *err)
{
    const char *v;
    /* config/database.yml, production: ENV['DB_HOST'] || 'localhost' and so on. An empty
     * DB_HOST is kept empty by Ruby, which libpq reads as "the default socket". */
    v = pf_mastodon_env_get(e, "DB_HOST");
    set_str(&e->db_host, v ? (*v ? v : NULL) : "localhost");
    e->db_port = 5432;
    v = nonempty(e, "DB_PORT");
    if (v && parse_int(v, 1, 65535, &e->db_port) < 0)
        return pf_err_set(err, PF_EUSAGE, "DB_PORT is not a port number (1-65535)");
    v = nonempty(e, "DB_NAME");
    set_str(&e->db_name, v ? v : "mastodon_production");
    v = nonempty(e, "DB_USER");
    set_str(&e->db_user, v ? v : "mastodon");
    set_str(&e->db_pass, nonempty(e, "DB_PASS"));
    v = nonempty(e, "DB_SSLMODE");
    set_str(&e->db_sslmode, v ? v : "prefer");
    v = nonempty(e, "DATABASE_URL");
    if (v && apply_database_url(e, v, err) < 0)
        return -1;
    if (e->db_host && !*e->db_host)
        set_str(&e->db_host, NULL);

    bool set;
    if (redis_config(e, "", true, &e->redis, &set, err) < 0)
        return -1;
    if (redis_config(e, "SIDEKIQ_", false, &e->sidekiq_redis, &set, err) < 0)
        return -1;
    e->sidekiq_redis_separate = set && !same_redis(&e->redis, &e->sidekiq_redis);
    if (!e->sidekiq_redis_separate)
        redis_conn_free(&e->sidekiq_redis);
    pf_redis_conn cache = {0};
    int rc = redis_config(e, "CACHE_", false, &cache, &set, err);
    e->cache_redis_separate = rc == 0 && set && !same_redis(&e->redis, &cache);
    redis_conn_free(&cache);
    if (rc < 0)
        return -1;

    set_str(&e->paperclip_root, nonempty(e, "PAPERCLIP_ROOT_PATH"));
    v = pf_mastodon_env_get(e, "S3_ENABLED");
    e->s3_enabled = v && strcmp(v, "true") == 0;
    v = pf_mastodon_env_get(e, "ES_ENABLED");
    e->es_enabled = v && strcmp(v, "true") == 0;
    v = nonempty(e, "LOCAL_DOMAIN");
    if (!v)
        return pf_err_set(err, PF_EUSAGE,
                          "LOCAL_DOMAIN is not set (is this Mastodon's .env.production?)");
    set_str(&e->local_domain, v);
    return 0;
}

int pf_mastodon_env_parse(const char *text, size_t len, pf_mastodon_env *out, pf_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > ENV_MAX_FILE)
        return pf_err_set(err, PF_EUSAGE, ".env is larger than %d KiB; refusing it",
                          ENV_MAX_FILE / 1024);
    /* dotenv first turns CRLF and lone CR into LF. */
    char *s = malloc(len + 1);
    if (!s)
        abort();
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        if (text[i] == '\r') {
            s[n++] = '\n';
            if (i + 1 < len && text[i + 1] == '\n')
                i++;
        } else {
            s[n++] = text[i];
        }
    }
    s[n] = 0;
    int rc = parse_lines(out, s, n, err);
    explicit_bzero(s, n);
    free(s);
    if (rc < 0)
        return -1;
    return interpret(out, err);
}

char *pf_mastodon_media_root(const char *live, const char *root)
{
    char *r = NULL;
    const char *rr = ":rails_root";
    int n;
    if (!root || !*root)
        n = asprintf(&r, "%s/public/system", live);
    else if (strncmp(root, rr, strlen(rr)) == 0)
        n = asprintf(&r, "%s%s", live, root + strlen(rr));
    else if (root[0] == '/')
        n = asprintf(&r, "%s", root);
    else
        n = asprintf(&r, "%s/%s", live, root);
    if (n < 0)
        return NULL;
    size_t l = strlen(r);
    while (l > 1 && r[l - 1] == '/')
        r[--l] = 0;
    return r;
}

int pf_mastodon_env_load(const char *live_dir, pf_mastodon_env *out, pf_err *err)
{
    int rc = -1, fd = -1;
    char *path = NULL;
    pf_buf text = PF_BUF_INIT;
    memset(out, 0, sizeof *out);
    if (asprintf(&path, "%s/.env.production", live_dir) < 0)
        abort();
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        pf_err_sys(err, errno == ENOENT ? PF_ENOTFOUND : PF_EIO, "cannot read %s", path);
        goto out;
    }
    struct stat st;
    if (fstat(fd, &st) < 0) {
        pf_err_sys(err, PF_EIO, "cannot read %s", path);
        goto out;
    }
    if (!S_ISREG(st.st_mode) || st.st_size > ENV_MAX_FILE) {
        pf_err_set(err, PF_EUSAGE, "%s: not a regular file of at most 1 MiB", path);
        goto out;
    }
    for (;;) {
        pf_buf_reserve(&text, 65536);
        ssize_t r = read(fd, text.data + text.len, 65536);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            pf_err_sys(err, PF_EIO, "cannot read %s", path);
            goto out;
        }
        if (r == 0)
            break;
        text.len += (size_t)r;
        if (text.len > ENV_MAX_FILE) {
            pf_err_set(err, PF_EUSAGE, "%s: larger than 1 MiB", path);
            goto out;
        }
    }
    if (pf_mastodon_env_parse(text.data ? (const char *)text.data : "", text.len, out, err) < 0) {
        pf_err_prefix(err, "%s", path);
        goto out;
    }
    char *root = pf_mastodon_media_root(live_dir, out->paperclip_root);
    if (!root) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    wipe_free(out->paperclip_root);
    out->paperclip_root = root;
    rc = 0;
out:
    if (fd >= 0)
        close(fd);
    pf_buf_free(&text);
    free(path);
    return rc;
}

void pf_mastodon_env_free(pf_mastodon_env *e)
{
    if (!e)
        return;
    wipe_free(e->db_host);
    wipe_free(e->db_name);
    wipe_free(e->db_user);
    wipe_free(e->db_pass);
    wipe_free(e->db_sslmode);
    redis_conn_free(&e->redis);
    redis_conn_free(&e->sidekiq_redis);
    wipe_free(e->paperclip_root);
    wipe_free(e->local_domain);
    for (size_t i = 0; i < e->nvars; i++) {
        wipe_free(e->keys[i]);
        wipe_free(e->values[i]);
    }
    free(e->keys);
    free(e->values);
    memset(e, 0, sizeof *e);
}
