#include "component/redis.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/fdsink.h"
#include "common/log.h"
#include "component/component.h"
#include "component/layout.h"
#include "repo/restorer.h"

#define RBUF (64 * 1024)
#define MAX_BULK ((int64_t)1 << 50)
#define ACCEPT_TIMEOUT_MS 30000 /* for the target to connect to our port and authenticate */
#define IDLE_TIMEOUT_MS 60000   /* the master sends a keepalive every second while it saves */

/* ---- pure parsers ------------------------------------------------------------------------ */

/* Parses a decimal integer of the whole [p, p+n); -1 when it is not one. */
static int parse_i64(const char *p, size_t n, int64_t *out)
{
    if (n == 0 || n > 18)
        return -1;
    bool neg = p[0] == '-';
    size_t i = neg ? 1 : 0;
    if (i == n)
        return -1;
    int64_t v = 0;
    for (; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return -1;
        v = v * 10 + (p[i] - '0');
    }
    *out = neg ? -v : v;
    return 0;
}

/* Length of the line at buf up to "\r\n" (excluded), or -1 when not complete yet. */
static ssize_t line_len(const uint8_t *buf, size_t len, size_t max)
{
    size_t lim = len < max + 2 ? len : max + 2;
    for (size_t i = 0; i + 1 < lim; i++)
        if (buf[i] == '\r' && buf[i + 1] == '\n')
            return (ssize_t)i;
    return len >= max + 2 ? -2 : -1;
}

ssize_t pf_resp_parse_preamble(const uint8_t *buf, size_t len, pf_resp_item *item)
{
    memset(item, 0, sizeof *item);
    if (len == 0)
        return 0;
    if (buf[0] == '\n') {
        item->kind = PF_RESP_NEWLINE;
        return 1;
    }
    if (buf[0] != '+' && buf[0] != '-' && buf[0] != '$')
        return -1;
    ssize_t l = line_len(buf, len, PF_RESP_MAX_LINE);
    if (l == -2)
        return -1;
    if (l < 0)
        return 0;
    const char *p = (const char *)buf + 1;
    size_t n = (size_t)l - 1;
    if (buf[0] == '+' || buf[0] == '-') {
        item->kind = buf[0] == '+' ? PF_RESP_STATUS : PF_RESP_ERROR;
        item->line = p;
        item->line_len = n;
        return l + 2;
    }
    if (n == 44 && memcmp(p, "EOF:", 4) == 0) {
        item->kind = PF_RESP_BULK_EOF;
        memcpy(item->eof_mark, p + 4, 40);
        return l + 2;
    }
    int64_t v;
    if (parse_i64(p, n, &v) < 0 || v < 0 || v > MAX_BULK)
        return -1;
    item->kind = PF_RESP_BULK_LEN;
    item->bulk_len = v;
    return l + 2;
}

void pf_rdb_eof_init(pf_rdb_eof *st, const uint8_t mark[40])
{
    memset(st, 0, sizeof *st);
    memcpy(st->mark, mark, 40);
}

int pf_rdb_eof_feed(pf_rdb_eof *st, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len)
{
    *out_len = 0;
    if (st->done)
        return 1;
    /* Look for the mark in held + in, without copying all of `in` twice: the mark can
     * start in the held bytes only at the first 40 positions of the joined view. */
    size_t total = st->nheld + n;
#define AT(i) ((i) < st->nheld ? st->held[i] : in[(i)-st->nheld])
    for (size_t s = 0; s + 40 <= total; s++) {
        if (s >= st->nheld) {
            /* Entirely within `in` from here: a plain search is enough. */
            const uint8_t *hit = memmem(in + (s - st->nheld), n - (s - st->nheld), st->mark, 40);
            if (!hit)
                break;
            s = (size_t)(hit - in) + st->nheld;
        } else {
            size_t k = 0;
            while (k < 40 && AT(s + k) == st->mark[k])
                k++;
            if (k < 40)
                continue;
        }
        for (size_t i = 0; i < s; i++)
            out[i] = AT(i);
        *out_len = s;
        st->done = true;
        st->nheld = 0;
        return 1;
    }
    /* No mark: everything but the last 40 bytes is payload. */
    size_t keep = total < 40 ? total : 40;
    size_t emit = total - keep;
    for (size_t i = 0; i < emit; i++)
        out[i] = AT(i);
    uint8_t tmp[40];
    for (size_t i = 0; i < keep; i++)
        tmp[i] = AT(emit + i);
#undef AT
    memcpy(st->held, tmp, keep);
    st->nheld = keep;
    *out_len = emit;
    return 0;
}

ssize_t pf_resp_parse_command(const uint8_t *buf, size_t len, pf_resp_arg *args, int max_args,
                              int *nargs)
{
    *nargs = 0;
    if (len == 0)
        return 0;
    ssize_t l = line_len(buf, len, PF_RESP_MAX_LINE);
    if (buf[0] != '*') {
        /* Inline command: words separated by spaces. A bare "\n" also ends a line. */
        size_t end = 0;
        while (end < len && end <= PF_RESP_MAX_LINE && buf[end] != '\n')
            end++;
        if (end > PF_RESP_MAX_LINE)
            return -1;
        if (end == len)
            return 0;
        size_t stop = end > 0 && buf[end - 1] == '\r' ? end - 1 : end;
        size_t i = 0;
        int n = 0;
        while (i < stop) {
            while (i < stop && buf[i] == ' ')
                i++;
            if (i >= stop)
                break;
            size_t s = i;
            while (i < stop && buf[i] != ' ')
                i++;
            if (n >= 64)
                return -1;
            if (n < max_args) {
                args[n].p = buf + s;
                args[n].len = i - s;
            }
            n++;
        }
        *nargs = n;
        return (ssize_t)end + 1;
    }
    if (l == -2)
        return -1;
    if (l < 0)
        return 0;
    int64_t count;
    if (parse_i64((const char *)buf + 1, (size_t)l - 1, &count) < 0 || count < 0 || count > 64)
        return -1;
    size_t pos = (size_t)l + 2;
    for (int64_t a = 0; a < count; a++) {
        if (pos >= len)
            return 0;
        if (buf[pos] != '$')
            return -1;
        ssize_t hl = line_len(buf + pos, len - pos, 32);
        if (hl == -2)
            return -1;
        if (hl < 0)
            return 0;
        int64_t blen;
        if (parse_i64((const char *)buf + pos + 1, (size_t)hl - 1, &blen) < 0 || blen < 0 ||
            blen > 65536)
            return -1;
        pos += (size_t)hl + 2;
        if (len - pos < (size_t)blen + 2)
            return 0;
        if (buf[pos + blen] != '\r' || buf[pos + blen + 1] != '\n')
            return -1;
        if (a < max_args) {
            args[a].p = buf + pos;
            args[a].len = (size_t)blen;
        }
        pos += (size_t)blen + 2;
    }
    *nargs = (int)count;
    return (ssize_t)pos;
}

/* Decodes an RDB length at *pos. Returns 0, 1 when it is a special encoding (*len then
 * holds its type), or -1 when cut short or invalid. */
static int rdb_len(const uint8_t *p, size_t n, size_t *pos, uint64_t *len)
{
    if (*pos >= n)
        return -1;
    uint8_t b = p[*pos];
    switch (b >> 6) {
    case 0:
        *len = b & 0x3f;
        *pos += 1;
        return 0;
    case 1:
        if (n - *pos < 2)
            return -1;
        *len = ((uint64_t)(b & 0x3f) << 8) | p[*pos + 1];
        *pos += 2;
        return 0;
    case 2: {
        size_t bytes = b == 0x80 ? 4 : b == 0x81 ? 8 : 0;
        if (!bytes || n - *pos < bytes + 1)
            return -1;
        *len = 0;
        for (size_t i = 1; i <= bytes; i++)
            *len = (*len << 8) | p[*pos + i];
        *pos += bytes + 1;
        return 0;
    }
    default:
        *len = b & 0x3f;
        *pos += 1;
        return 1;
    }
}

/* Skips one RDB string: plain, integer-encoded or LZF-compressed. */
static int rdb_skip_string(const uint8_t *p, size_t n, size_t *pos)
{
    uint64_t len;
    int k = rdb_len(p, n, pos, &len);
    if (k < 0)
        return -1;
    if (k == 1) {
        if (len <= 2) {
            len = (uint64_t)1 << len; /* 8, 16 or 32-bit integer */
        } else if (len == 3) {
            uint64_t clen, ulen;
            if (rdb_len(p, n, pos, &clen) != 0 || rdb_len(p, n, pos, &ulen) != 0)
                return -1;
            len = clen;
        } else {
            return -1;
        }
    }
    if (len > n - *pos)
        return -1;
    *pos += (size_t)len;
    return 0;
}

int pf_rdb_has_keys(const uint8_t *p, size_t n)
{
    if (n < 9 || memcmp(p, "REDIS", 5) != 0)
        return -1;
    size_t pos = 9;
    while (pos < n) {
        uint8_t op = p[pos++];
        if (op == 0xFA) { /* AUX key value */
            if (rdb_skip_string(p, n, &pos) < 0 || rdb_skip_string(p, n, &pos) < 0)
                return -1;
        } else if (op == 0xFE) {
            return 1; /* SELECTDB */
        } else if (op == 0xFF) {
            return 0; /* EOF */
        } else {
            return -1; /* functions, module aux, ...: cannot tell cheaply */
        }
    }
    return -1;
}

/* ---- raw connections ------------------------------------------------------------------- */

typedef struct rsock {
    int fd;
    uint8_t *buf;
    size_t start, end;
    char where[300];
} rsock;

static void where_of(const pf_redis_conn *c, char *out, size_t cap)
{
    if (c->socket)
        snprintf(out, cap, "%s", c->socket);
    else
        snprintf(out, cap, "%s:%d", c->host ? c->host : "localhost", c->port ? c->port : 6379);
}

static int connect_timeout(int fd, const struct sockaddr *sa, socklen_t sl, int ms)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, fl | O_NONBLOCK);
    int r = connect(fd, sa, sl);
    if (r < 0 && errno == EINPROGRESS) {
        struct pollfd pf = {.fd = fd, .events = POLLOUT};
        r = poll(&pf, 1, ms);
        if (r == 0) {
            errno = ETIMEDOUT;
            return -1;
        }
        if (r > 0) {
            int soerr = 0;
            socklen_t l = sizeof soerr;
            getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &l);
            if (soerr) {
                errno = soerr;
                return -1;
            }
            r = 0;
        }
    }
    fcntl(fd, F_SETFL, fl);
    return r;
}

static int rs_connect(const pf_redis_conn *c, rsock *s, pf_err *err)
{
    memset(s, 0, sizeof *s);
    s->fd = -1;
    where_of(c, s->where, sizeof s->where);
    s->buf = malloc(RBUF);
    if (!s->buf)
        abort();
    if (c->socket) {
        struct sockaddr_un sun = {.sun_family = AF_UNIX};
        if (strlen(c->socket) >= sizeof sun.sun_path)
            return pf_err_set(err, PF_EUSAGE, "socket path too long: %s", c->socket);
        strcpy(sun.sun_path, c->socket);
        s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (s->fd < 0 || connect_timeout(s->fd, (struct sockaddr *)&sun, sizeof sun, 10000) < 0) {
            pf_err_sys(err, PF_ECONN, "cannot connect to Redis at %s", s->where);
            err->retryable = true;
            return -1;
        }
        return 0;
    }
    char port[16];
    snprintf(port, sizeof port, "%d", c->port ? c->port : 6379);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int g = getaddrinfo(c->host ? c->host : "localhost", port, &hints, &res);
    if (g != 0) {
        pf_err_set(err, PF_ECONN, "cannot connect to Redis at %s: %s", s->where, gai_strerror(g));
        err->retryable = true;
        return -1;
    }
    int saved = 0;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        s->fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (s->fd < 0)
            continue;
        if (connect_timeout(s->fd, a->ai_addr, a->ai_addrlen, 10000) == 0)
            break;
        saved = errno;
        close(s->fd);
        s->fd = -1;
    }
    freeaddrinfo(res);
    if (s->fd < 0) {
        errno = saved ? saved : ECONNREFUSED;
        pf_err_sys(err, PF_ECONN, "cannot connect to Redis at %s", s->where);
        err->retryable = true;
        return -1;
    }
    return 0;
}

static void rs_close(rsock *s)
{
    if (s->fd >= 0)
        close(s->fd);
    s->fd = -1;
    free(s->buf);
    s->buf = NULL;
}

/* Reads more bytes into the buffer, waiting at most timeout_ms. 0 on success. */
static int rs_fill(rsock *s, int timeout_ms, pf_err *err)
{
    if (s->start > 0 && s->start == s->end)
        s->start = s->end = 0;
    if (s->end == RBUF && s->start > 0) {
        memmove(s->buf, s->buf + s->start, s->end - s->start);
        s->end -= s->start;
        s->start = 0;
    }
    if (s->end == RBUF)
        return pf_err_set(err, PF_ECORRUPT, "Redis at %s sent an over-long reply", s->where);
    for (;;) {
        struct pollfd pf = {.fd = s->fd, .events = POLLIN};
        int r = poll(&pf, 1, timeout_ms);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0) {
            pf_err_set(err, PF_EIO, "Redis at %s sent nothing for %d s", s->where,
                       timeout_ms / 1000);
            err->retryable = true;
            return -1;
        }
        ssize_t n = read(s->fd, s->buf + s->end, RBUF - s->end);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0) {
            pf_err_sys(err, PF_EIO, "reading from Redis at %s", s->where);
            err->retryable = true;
            return -1;
        }
        if (n == 0) {
            pf_err_set(err, PF_EIO, "Redis at %s closed the connection", s->where);
            err->retryable = true;
            return -1;
        }
        s->end += (size_t)n;
        return 0;
    }
}

static int write_all(int fd, const void *p, size_t n, const char *where, pf_err *err)
{
    if (pf_fd_write_all(fd, p, n) < 0)
        return pf_err_sys(err, PF_EIO, "writing to Redis at %s", where);
    return 0;
}

/* Sends a command as a RESP array (arguments may be secrets: they are wiped after). */
static int rs_send_cmd(rsock *s, int argc, const char *const *argv, pf_err *err)
{
    size_t cap = 32;
    for (int i = 0; i < argc; i++)
        cap += strlen(argv[i]) + 32;
    char *b = malloc(cap);
    if (!b)
        abort();
    size_t o = (size_t)snprintf(b, cap, "*%d\r\n", argc);
    for (int i = 0; i < argc; i++) {
        size_t l = strlen(argv[i]);
        o += (size_t)snprintf(b + o, cap - o, "$%zu\r\n", l);
        memcpy(b + o, argv[i], l);
        o += l;
        b[o++] = '\r';
        b[o++] = '\n';
    }
    int rc = write_all(s->fd, b, o, s->where, err);
    explicit_bzero(b, cap);
    free(b);
    return rc;
}

/* Reads the next preamble item; the line is copied into `line` (NUL-terminated). */
static int rs_read_item(rsock *s, pf_resp_item *it, char *line, size_t cap, pf_err *err)
{
    for (;;) {
        ssize_t used = pf_resp_parse_preamble(s->buf + s->start, s->end - s->start, it);
        if (used < 0)
            return pf_err_set(err, PF_ECORRUPT, "Redis at %s sent something unexpected", s->where);
        if (used > 0) {
            size_t n = it->line_len < cap - 1 ? it->line_len : cap - 1;
            if (it->line)
                memcpy(line, it->line, n);
            line[it->line ? n : 0] = 0;
            for (size_t i = 0; line[i]; i++)
                if ((unsigned char)line[i] < 0x20)
                    line[i] = ' ';
            it->line = NULL;
            s->start += (size_t)used;
            return 0;
        }
        if (rs_fill(s, IDLE_TIMEOUT_MS, err) < 0)
            return -1;
    }
}

/* ---- the control connection (hiredis) ------------------------------------------------------ */

static bool is_auth_error(const char *msg)
{
    return strncmp(msg, "WRONGPASS", 9) == 0 || strncmp(msg, "NOAUTH", 6) == 0 ||
           strstr(msg, "invalid password") || strstr(msg, "invalid username-password");
}

static redisContext *ctl_open(const pf_redis_conn *c, pf_err *err)
{
    char where[300];
    where_of(c, where, sizeof where);
    if (c->tls) {
        pf_err_set(err, PF_EUSAGE, "TLS to Redis (rediss://) is not supported yet");
        return NULL;
    }
    struct timeval tv = {10, 0};
    redisContext *ctx = c->socket ? redisConnectUnixWithTimeout(c->socket, tv)
                                  : redisConnectWithTimeout(c->host ? c->host : "localhost",
                                                            c->port ? c->port : 6379, tv);
    if (!ctx || ctx->err) {
        pf_err_set(err, PF_ECONN, "cannot connect to Redis at %s: %s", where,
                   ctx ? ctx->errstr : "out of memory");
        err->retryable = true;
        redisFree(ctx);
        return NULL;
    }
    struct timeval cmd_tv = {60, 0};
    redisSetTimeout(ctx, cmd_tv);
    if (c->password) {
        redisReply *r = c->user ? redisCommand(ctx, "AUTH %s %s", c->user, c->password)
                                : redisCommand(ctx, "AUTH %s", c->password);
        if (!r || r->type == REDIS_REPLY_ERROR) {
            if (r)
                pf_err_set(err, PF_EAUTH, "Redis at %s refused the password%s%s: %s", where,
                           c->user ? " of user " : "", c->user ? c->user : "", r->str);
            else
                pf_err_set(err, PF_ECONN, "Redis at %s: %s", where, ctx->errstr);
            freeReplyObject(r);
            redisFree(ctx);
            return NULL;
        }
        freeReplyObject(r);
    }
    return ctx;
}

/* Runs a command; an error reply becomes err (code PF_EAUTH for NOAUTH/WRONGPASS, else
 * `code`) and NULL. */
static redisReply *ctl_cmd(redisContext *ctx, int code, pf_err *err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(ctx, fmt, ap);
    va_end(ap);
    if (!r) {
        pf_err_set(err, PF_EIO, "Redis connection failed: %s", ctx->errstr);
        err->retryable = true;
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        pf_err_set(err, is_auth_error(r->str) ? PF_EAUTH : code, "%s", r->str);
        if (strncmp(r->str, "NOAUTH", 6) == 0)
            pf_err_prefix(err, "Redis needs a password (REDIS_PASSWORD)");
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

/* Copies the value of "field:" from INFO text; -1 when absent. */
static int info_field(const char *info, const char *field, char *out, size_t cap)
{
    size_t fl = strlen(field);
    for (const char *p = info; p && *p;) {
        if (strncmp(p, field, fl) == 0 && p[fl] == ':') {
            const char *v = p + fl + 1;
            size_t n = strcspn(v, "\r\n");
            snprintf(out, cap, "%.*s", (int)(n < cap ? n : cap - 1), v);
            return 0;
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return -1;
}

/* The sum of keys=N over the "dbX:" lines of INFO keyspace. */
static int64_t info_keys(const char *info)
{
    int64_t sum = 0;
    for (const char *p = info; p && *p;) {
        if (strncmp(p, "db", 2) == 0) {
            const char *k = strstr(p, "keys=");
            const char *nl = strchr(p, '\n');
            if (k && (!nl || k < nl))
                sum += strtoll(k + 5, NULL, 10);
        }
        p = strchr(p, '\n');
        if (p)
            p++;
    }
    return sum;
}

static int ctl_info(redisContext *ctx, const char *section, char **out, pf_err *err)
{
    redisReply *r = ctl_cmd(ctx, PF_ECOMPONENT, err, "INFO %s", section);
    if (!r)
        return -1;
    if (r->type != REDIS_REPLY_STRING) {
        freeReplyObject(r);
        return pf_err_set(err, PF_ECOMPONENT, "INFO %s: unexpected reply", section);
    }
    *out = strdup(r->str);
    freeReplyObject(r);
    return *out ? 0 : -1;
}

static int ctl_keys(redisContext *ctx, int64_t *keys, pf_err *err)
{
    char *ks = NULL;
    if (ctl_info(ctx, "keyspace", &ks, err) < 0)
        return -1;
    *keys = info_keys(ks);
    free(ks);
    return 0;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* How long a server may take to load its dataset: PERMAFROST_REDIS_LOAD_WAIT seconds, by
 * default 600 (a large RDB takes minutes to load after a restart). */
static int64_t load_wait_ms(void)
{
    const char *v = getenv("PERMAFROST_REDIS_LOAD_WAIT");
    return v && *v ? (int64_t)(atof(v) * 1000) : 600000;
}

/* Waits until the server has loaded its dataset. While it loads (after a restart) it
 * answers REPLICAOF and SYNC with -LOADING, and INFO keyspace counts only the keys loaded
 * so far, so a server about to hold data would pass for empty. A server that does not let
 * us run INFO is taken as ready: what follows fails with its own message. */
static int ctl_wait_loaded(redisContext *ctx, const char *where, pf_err *err)
{
    int64_t until = mono_ms() + load_wait_ms();
    for (;;) {
        redisReply *r = redisCommand(ctx, "INFO persistence");
        if (!r) {
            pf_err_set(err, PF_EIO, "Redis connection to %s failed: %s", where, ctx->errstr);
            err->retryable = true;
            return -1;
        }
        char loading[8] = "";
        if (r->type == REDIS_REPLY_STRING)
            info_field(r->str, "loading", loading, sizeof loading);
        freeReplyObject(r);
        if (strcmp(loading, "1") != 0)
            return 0;
        if (mono_ms() > until) {
            pf_err_set(err, PF_ECOMPONENT,
                       "Redis at %s is still loading its dataset after %.0f s "
                       "(PERMAFROST_REDIS_LOAD_WAIT); try again once it has loaded",
                       where, (double)load_wait_ms() / 1000);
            err->retryable = true;
            return -1;
        }
        sleep_ms(100);
    }
}

/* A control connection to a server that has loaded its dataset. */
static redisContext *ctl_connect(const pf_redis_conn *c, pf_err *err)
{
    redisContext *ctx = ctl_open(c, err);
    char where[300];
    where_of(c, where, sizeof where);
    if (ctx && ctl_wait_loaded(ctx, where, err) < 0) {
        redisFree(ctx);
        return NULL;
    }
    return ctx;
}

/* ---- backup ---------------------------------------------------------------------------- */

/* Checks the RDB magic on the first bytes that go to the sink. */
typedef struct magic_check {
    uint8_t got[5];
    size_t n;
} magic_check;

static int magic_feed(magic_check *m, const uint8_t *p, size_t n, pf_err *err)
{
    while (m->n < 5 && n) {
        m->got[m->n++] = *p++;
        n--;
    }
    if (m->n == 5 && memcmp(m->got, "REDIS", 5) != 0)
        return pf_err_set(err, PF_ECORRUPT, "the payload is not an RDB file");
    return 0;
}

/* 0: done; -1: error; 1: replication refused (why says how). */
static int fetch_replication(const pf_redis_conn *c, pf_sink *sink, pf_redis_info *info, char *why,
                             size_t whycap, pf_err *err)
{
    rsock s;
    int rc = -1;
    char line[PF_RESP_MAX_LINE + 1];
    char first_refusal[PF_RESP_MAX_LINE + 1] = "";
    pf_resp_item it;
    uint8_t *out = NULL;
    if (rs_connect(c, &s, err) < 0)
        goto out;
    if (c->password) {
        const char *auth[] = {"AUTH", c->user ? c->user : c->password, c->password};
        if (rs_send_cmd(&s, c->user ? 3 : 2, auth, err) < 0 ||
            rs_read_item(&s, &it, line, sizeof line, err) < 0)
            goto out;
        if (it.kind != PF_RESP_STATUS) {
            pf_err_set(err, PF_EAUTH, "Redis at %s refused the password: %s", s.where, line);
            goto out;
        }
    }
    /* Tests set PERMAFROST_REDIS_CAPA_EOF to make the master use the diskless EOF-marked
     * form (with repl-diskless-sync-delay 0), which we otherwise never ask for. */
    const char *capa[] = {"REPLCONF", "capa", "eof"};
    if (getenv("PERMAFROST_REDIS_CAPA_EOF")) {
        if (rs_send_cmd(&s, 3, capa, err) < 0 || rs_read_item(&s, &it, line, sizeof line, err) < 0)
            goto out;
    }
    const char *psync[] = {"PSYNC", "?", "-1"};
    const char *sync[] = {"SYNC"};
    bool tried_sync = false;
    if (rs_send_cmd(&s, 3, psync, err) < 0)
        goto out;
    info->method = "PSYNC";
    for (;;) {
        if (rs_read_item(&s, &it, line, sizeof line, err) < 0)
            goto out;
        if (it.kind == PF_RESP_NEWLINE)
            continue;
        if (it.kind == PF_RESP_STATUS && strncmp(line, "FULLRESYNC", 10) == 0)
            continue;
        if (it.kind == PF_RESP_ERROR && is_auth_error(line)) {
            pf_err_set(err, PF_EAUTH, "Redis at %s: %s", s.where, line);
            goto out;
        }
        if (it.kind == PF_RESP_ERROR || it.kind == PF_RESP_STATUS) {
            /* Refused (ACL, NOMASTERLINK, an old server, "CONTINUE" we did not ask for). */
            if (!tried_sync && it.kind == PF_RESP_ERROR) {
                snprintf(first_refusal, sizeof first_refusal, "%s", line);
                tried_sync = true;
                info->method = "SYNC";
                if (rs_send_cmd(&s, 1, sync, err) < 0)
                    goto out;
                continue;
            }
            snprintf(why, whycap, "PSYNC: %s; SYNC: %s", first_refusal[0] ? first_refusal : "?",
                     line);
            rc = 1;
            goto out;
        }
        break;
    }

    magic_check mc = {0};
    out = malloc(RBUF + 40);
    if (!out)
        abort();
    info->rdb_bytes = 0;
    if (it.kind == PF_RESP_BULK_LEN) {
        int64_t left = it.bulk_len;
        while (left > 0) {
            if (s.start == s.end && rs_fill(&s, IDLE_TIMEOUT_MS, err) < 0) {
                pf_err_prefix(err, "RDB cut short after %llu of %lld bytes",
                              (unsigned long long)info->rdb_bytes, (long long)it.bulk_len);
                err->code = PF_ECORRUPT;
                goto out;
            }
            size_t n = s.end - s.start;
            if ((int64_t)n > left)
                n = (size_t)left;
            if (magic_feed(&mc, s.buf + s.start, n, err) < 0 ||
                pf_sink_write(sink, s.buf + s.start, n, err) < 0)
                goto out;
            s.start += n;
            left -= (int64_t)n;
            info->rdb_bytes += n;
        }
    } else {
        pf_rdb_eof st;
        pf_rdb_eof_init(&st, it.eof_mark);
        for (;;) {
            if (s.start == s.end && rs_fill(&s, IDLE_TIMEOUT_MS, err) < 0) {
                pf_err_prefix(err, "RDB cut short after %llu bytes",
                              (unsigned long long)info->rdb_bytes);
                err->code = PF_ECORRUPT;
                goto out;
            }
            size_t olen;
            int done = pf_rdb_eof_feed(&st, s.buf + s.start, s.end - s.start, out, &olen);
            s.start = s.end;
            if (magic_feed(&mc, out, olen, err) < 0 || pf_sink_write(sink, out, olen, err) < 0)
                goto out;
            info->rdb_bytes += olen;
            if (done)
                break;
        }
    }
    if (mc.n < 5) {
        pf_err_set(err, PF_ECORRUPT, "the payload is too short to be an RDB file");
        goto out;
    }
    rc = 0;
out:
    free(out);
    rs_close(&s);
    return rc;
}

static int copy_file_to_sink(const char *path, pf_sink *sink, uint64_t *bytes, pf_err *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, PF_ECOMPONENT, "cannot read %s", path);
    uint8_t *buf = malloc(RBUF);
    if (!buf)
        abort();
    magic_check mc = {0};
    int rc = 0;
    *bytes = 0;
    for (;;) {
        ssize_t n = read(fd, buf, RBUF);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = pf_err_sys(err, PF_EIO, "reading %s", path);
            break;
        }
        if (n == 0)
            break;
        if (magic_feed(&mc, buf, (size_t)n, err) < 0 ||
            pf_sink_write(sink, buf, (size_t)n, err) < 0) {
            rc = -1;
            break;
        }
        *bytes += (uint64_t)n;
    }
    if (rc == 0 && mc.n < 5)
        rc = pf_err_set(err, PF_ECORRUPT, "%s is too short to be an RDB file", path);
    free(buf);
    close(fd);
    return rc;
}

/* Where the server keeps its dump file: CONFIG GET dir and dbfilename. */
static int dump_dir_name(redisContext *ctx, char *dir, size_t dcap, char *name, size_t ncap,
                         pf_err *err)
{
    const char *keys[] = {"dir", "dbfilename"};
    char *vals[] = {dir, name};
    size_t caps[] = {dcap, ncap};
    for (int i = 0; i < 2; i++) {
        vals[i][0] = 0;
        redisReply *r = ctl_cmd(ctx, PF_ECOMPONENT, err, "CONFIG GET %s", keys[i]);
        if (!r)
            return pf_err_prefix(err, "CONFIG GET %s", keys[i]);
        if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
            r->element[1]->type == REDIS_REPLY_STRING && strlen(r->element[1]->str) < caps[i])
            snprintf(vals[i], caps[i], "%s", r->element[1]->str);
        freeReplyObject(r);
        if (!vals[i][0])
            return pf_err_set(err, PF_ECOMPONENT, "CONFIG GET %s: no value", keys[i]);
    }
    return 0;
}

static int dump_path(redisContext *ctx, char *out, size_t cap, pf_err *err)
{
    char dir[PATH_MAX], name[256];
    if (dump_dir_name(ctx, dir, sizeof dir, name, sizeof name, err) < 0)
        return -1;
    int n = snprintf(out, cap, "%s/%s", dir, name);
    if (n < 0 || (size_t)n >= cap)
        return pf_err_set(err, PF_ECOMPONENT, "dump file path too long");
    return 0;
}

static int64_t ctl_int(redisContext *ctx, const char *cmd, pf_err *err)
{
    redisReply *r = ctl_cmd(ctx, PF_ECOMPONENT, err, "%s", cmd);
    if (!r)
        return -1;
    int64_t v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static int fetch_bgsave(redisContext *ctx, pf_sink *sink, pf_redis_info *info, const char *why,
                        pf_err *err)
{
    int64_t t0 = ctl_int(ctx, "LASTSAVE", err);
    if (t0 < 0)
        return pf_err_prefix(err, "replication refused (%s), and LASTSAVE failed", why);
    redisReply *r = ctl_cmd(ctx, PF_ECOMPONENT, err, "BGSAVE");
    bool scheduled = false;
    if (!r && strstr(err->msg, "already in progress")) {
        r = ctl_cmd(ctx, PF_ECOMPONENT, err, "BGSAVE SCHEDULE");
        scheduled = true;
    }
    if (!r)
        return pf_err_prefix(err, "replication refused (%s), and BGSAVE failed", why);
    freeReplyObject(r);
    /* Done when no save runs any more and (for a scheduled one) LASTSAVE moved. */
    for (int waited = 0;; waited += 100) {
        char *ps = NULL;
        if (ctl_info(ctx, "persistence", &ps, err) < 0)
            return -1;
        char inprog[8] = "", status[16] = "";
        info_field(ps, "rdb_bgsave_in_progress", inprog, sizeof inprog);
        info_field(ps, "rdb_last_bgsave_status", status, sizeof status);
        free(ps);
        int64_t t = ctl_int(ctx, "LASTSAVE", err);
        if (t < 0)
            return -1;
        if (strcmp(inprog, "0") == 0 && (!scheduled || t > t0)) {
            if (strcmp(status, "ok") != 0)
                return pf_err_set(err, PF_ECOMPONENT, "BGSAVE failed (rdb_last_bgsave_status:%s)",
                                  status);
            break;
        }
        if (waited > 6 * 3600 * 1000)
            return pf_err_set(err, PF_ECOMPONENT, "BGSAVE did not finish in 6 hours");
        sleep_ms(100);
    }
    char path[PATH_MAX + 300];
    if (dump_path(ctx, path, sizeof path, err) < 0)
        return pf_err_prefix(err, "replication refused (%s), and the dump file cannot be found",
                             why);
    if (copy_file_to_sink(path, sink, &info->rdb_bytes, err) < 0)
        return pf_err_prefix(err,
                             "replication refused (%s); fell back to BGSAVE, but the dump "
                             "file is not readable here (grant the user +psync or +sync, or "
                             "run on the Redis host)",
                             why);
    info->method = "BGSAVE";
    return 0;
}

int pf_redis_fetch_rdb(const pf_redis_conn *c, pf_sink *sink, pf_redis_info *info, pf_err *err)
{
    int rc = -1;
    char why[2 * PF_RESP_MAX_LINE + 32] = "";
    char *srv = NULL;
    memset(info, 0, sizeof *info);
    info->keys = -1;
    redisContext *ctx = ctl_connect(c, err);
    if (!ctx)
        goto out;
    if (ctl_info(ctx, "server", &srv, err) < 0)
        goto out;
    info_field(srv, "redis_version", info->version, sizeof info->version);
    if (ctl_keys(ctx, &info->keys, err) < 0)
        goto out;
    int r = fetch_replication(c, sink, info, why, sizeof why, err);
    if (r < 0)
        goto out;
    if (r == 1) {
        pf_warn("redis: replication refused (%s); falling back to BGSAVE and copying the dump "
                "file",
                why);
        if (fetch_bgsave(ctx, sink, info, why, err) < 0)
            goto out;
    }
    rc = 0;
out:
    free(srv);
    redisFree(ctx);
    return rc;
}

int pf_redis_check_empty(const pf_redis_conn *c, pf_err *err)
{
    int rc = -1;
    int64_t keys = 0;
    char where[300];
    where_of(c, where, sizeof where);
    redisContext *ctx = ctl_connect(c, err);
    if (!ctx || ctl_keys(ctx, &keys, err) < 0)
        goto out;
    if (keys > 0) {
        pf_err_set(err, PF_EEXIST,
                   "Redis at %s already holds %lld keys; refusing to replace them (--force "
                   "replaces them)",
                   where, (long long)keys);
        goto out;
    }
    rc = 0;
out:
    redisFree(ctx);
    return rc;
}

/* ---- restore --------------------------------------------------------------------------- */

/* A listening socket on the address the target reaches us at. */
static int listen_near(redisContext *ctx, char *ip, size_t ipcap, int *port, pf_err *err)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int family = AF_INET;
    if (ctx->connection_type == REDIS_CONN_TCP &&
        getsockname(ctx->fd, (struct sockaddr *)&ss, &sl) == 0 &&
        (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)) {
        family = ss.ss_family;
    } else {
        struct sockaddr_in *in = (struct sockaddr_in *)&ss;
        memset(&ss, 0, sizeof ss);
        in->sin_family = AF_INET;
        in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        sl = sizeof *in;
    }
    if (family == AF_INET)
        ((struct sockaddr_in *)&ss)->sin_port = 0;
    else
        ((struct sockaddr_in6 *)&ss)->sin6_port = 0;
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&ss, sl) < 0 || listen(fd, 4) < 0 ||
        getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
        pf_err_sys(err, PF_ECOMPONENT, "cannot listen for the Redis replica");
        if (fd >= 0)
            close(fd);
        return -1;
    }
    if (family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, (socklen_t)ipcap);
        *port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
    } else {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, ip, (socklen_t)ipcap);
        *port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    }
    return fd;
}

static bool arg_is(const pf_resp_arg *a, const char *s)
{
    size_t l = strlen(s);
    return a->len == l && strncasecmp((const char *)a->p, s, l) == 0;
}

/* Plays the master's side of the handshake until the replica asks for a sync. With a
 * secret, the peer must AUTH with it (as a replica given "masterauth <secret>" does, after
 * its PING) before anything else: returns 1, having sent nothing of the RDB, when it asks
 * for a sync or a REPLCONF first or gives another password. Returns 0 with *psync (PSYNC
 * rather than SYNC) and *capa_eof set, -1 on I/O errors. */
static int serve_handshake(rsock *s, const char *secret, bool *psync, bool *capa_eof, pf_err *err)
{
    *capa_eof = false;
    bool authed = secret == NULL;
    for (;;) {
        pf_resp_arg args[8];
        int n;
        ssize_t used = pf_resp_parse_command(s->buf + s->start, s->end - s->start, args, 8, &n);
        if (used < 0)
            return pf_err_set(err, PF_ECOMPONENT, "the replica sent an invalid command");
        if (used == 0) {
            if (rs_fill(s, 30000, err) < 0)
                return -1;
            continue;
        }
        s->start += (size_t)used;
        if (n == 0)
            continue;
        const char *reply = "+OK\r\n";
        if (arg_is(&args[0], "PING")) {
            reply = "+PONG\r\n";
        } else if (arg_is(&args[0], "AUTH")) {
            /* AUTH <password> or AUTH <user> <password> (masteruser); only ours counts. */
            const pf_resp_arg *pw = n == 2 || n == 3 ? &args[n - 1] : NULL;
            if (secret &&
                !(pw && pw->len == strlen(secret) && CRYPTO_memcmp(pw->p, secret, pw->len) == 0)) {
                static const char no[] = "-WRONGPASS invalid password\r\n";
                write_all(s->fd, no, sizeof no - 1, s->where, err);
                pf_err_set(err, PF_EAUTH, "it gave a wrong password");
                return 1;
            }
            authed = true;
        } else if (!authed) {
            static const char no[] = "-NOAUTH Authentication required.\r\n";
            write_all(s->fd, no, sizeof no - 1, s->where, err);
            pf_err_set(err, PF_EAUTH, "it did not authenticate");
            return 1;
        } else if (arg_is(&args[0], "REPLCONF")) {
            for (int i = 1; i + 1 < n && i + 1 < 8; i += 2)
                if (arg_is(&args[i], "capa") && arg_is(&args[i + 1], "eof"))
                    *capa_eof = true;
        } else if (arg_is(&args[0], "PSYNC") || arg_is(&args[0], "SYNC")) {
            *psync = arg_is(&args[0], "PSYNC");
            return 0;
        } else {
            reply = "-ERR unknown command\r\n";
        }
        if (write_all(s->fd, reply, strlen(reply), s->where, err) < 0)
            return -1;
    }
}

int pf_redis_master_handshake(int fd, const char *secret, bool *psync, bool *capa_eof, pf_err *err)
{
    rsock s = {.fd = fd, .buf = malloc(RBUF)};
    if (!s.buf)
        abort();
    snprintf(s.where, sizeof s.where, "replica");
    int r = serve_handshake(&s, secret, psync, capa_eof, err);
    free(s.buf);
    return r;
}

/* 40 random hex digits (a replication id, an EOF mark: unique, not secret). */
static void random_hex40(char out[41])
{
    static const char hex[] = "0123456789abcdef";
    uint8_t raw[20];
    if (RAND_bytes(raw, sizeof raw) != 1) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        for (size_t i = 0; i < sizeof raw; i++)
            raw[i] = (uint8_t)((ts.tv_nsec >> (i % 4 * 8)) ^ (getpid() >> (i % 2 * 8)) ^ i * 37);
    }
    for (size_t i = 0; i < sizeof raw; i++) {
        out[2 * i] = hex[raw[i] >> 4];
        out[2 * i + 1] = hex[raw[i] & 0xf];
    }
    out[40] = 0;
}

/* Streams the RDB to the replica after the sync header. */
static int send_payload(rsock *s, bool psync, bool capa_eof, pf_source *src, int64_t size,
                        int *has_keys, uint64_t *sent, pf_err *err)
{
    char hdr[160], replid[41], mark[41];
    random_hex40(replid);
    random_hex40(mark);
    size_t hl = 0;
    if (psync)
        hl += (size_t)snprintf(hdr, sizeof hdr, "+FULLRESYNC %s 0\r\n", replid);
    if (size >= 0) {
        hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "$%lld\r\n", (long long)size);
    } else {
        if (!capa_eof)
            return pf_err_set(err, PF_ECOMPONENT,
                              "the RDB size is unknown and this Redis cannot take an "
                              "EOF-marked transfer");
        hl += (size_t)snprintf(hdr + hl, sizeof hdr - hl, "$EOF:%s\r\n", mark);
    }
    if (write_all(s->fd, hdr, hl, s->where, err) < 0)
        return -1;
    uint8_t *buf = malloc(RBUF);
    if (!buf)
        abort();
    int rc = -1;
    *sent = 0;
    *has_keys = -1;
    magic_check mc = {0};
    for (;;) {
        ssize_t n = pf_source_read(src, buf, RBUF, err);
        if (n < 0)
            goto out;
        if (n == 0)
            break;
        if (size >= 0 && (int64_t)(*sent + (uint64_t)n) > size) {
            pf_err_set(err, PF_ECORRUPT, "the RDB is longer than its recorded size %lld",
                       (long long)size);
            goto out;
        }
        if (*sent == 0)
            *has_keys = pf_rdb_has_keys(buf, (size_t)n);
        if (magic_feed(&mc, buf, (size_t)n, err) < 0)
            goto out;
        if (write_all(s->fd, buf, (size_t)n, s->where, err) < 0)
            goto out;
        *sent += (uint64_t)n;
    }
    if (size >= 0 && (int64_t)*sent != size) {
        pf_err_set(err, PF_ECORRUPT, "the RDB is %llu bytes, its recorded size %lld",
                   (unsigned long long)*sent, (long long)size);
        goto out;
    }
    if (mc.n < 5) {
        pf_err_set(err, PF_ECORRUPT, "the RDB is too short");
        goto out;
    }
    if (size < 0 && write_all(s->fd, mark, 40, s->where, err) < 0)
        goto out;
    rc = 0;
out:
    free(buf);
    return rc;
}

/* Discards what the replica sends (REPLCONF ACK) so it never blocks on us. */
static void drain(int fd)
{
    uint8_t junk[4096];
    while (recv(fd, junk, sizeof junk, MSG_DONTWAIT) > 0)
        ;
}

/* Waits until the replica has loaded the RDB and its link to us is up. */
static int wait_loaded(redisContext *ctx, int fd, pf_err *err)
{
    int idle = 0;
    for (;;) {
        char *rep = NULL, *per = NULL;
        if (ctl_info(ctx, "replication", &rep, err) < 0)
            return -1;
        if (ctl_info(ctx, "persistence", &per, err) < 0) {
            free(rep);
            return -1;
        }
        char link[16] = "", syncing[8] = "", loading[8] = "";
        info_field(rep, "master_link_status", link, sizeof link);
        info_field(rep, "master_sync_in_progress", syncing, sizeof syncing);
        info_field(per, "loading", loading, sizeof loading);
        free(rep);
        free(per);
        if (strcmp(link, "up") == 0 && strcmp(loading, "1") != 0)
            return 0;
        if (strcmp(syncing, "1") == 0 || strcmp(loading, "1") == 0)
            idle = 0;
        else
            idle += 100;
        if (idle > 30000)
            return pf_err_set(err, PF_ECOMPONENT,
                              "the target did not load the RDB (link %s); see its log: an RDB "
                              "from a newer Redis cannot be loaded by an older one",
                              link[0] ? link : "?");
        drain(fd);
        sleep_ms(100);
    }
}

/* Creates `name` in the directory `dir` for writing, as root in a directory someone else
 * (the redis user) owns: through a descriptor of the directory, never following a
 * symlink, never opening a file that exists (a stale regular file of an earlier attempt
 * is unlinked first; anything else there is refused), in a directory that no one but its
 * owner can write. The file is given to the directory's owner so redis-server can read
 * it. Returns the descriptor, or -1 with err. */
static int create_beside(const char *dir, const char *name, pf_err *err)
{
    if (!*name || strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return pf_err_set(err, PF_ECOMPONENT, "the server's dbfilename \"%s\" is not a file name",
                          name);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd < 0)
        return pf_err_sys(err, PF_ECOMPONENT, "cannot open the server's directory %s", dir);
    struct stat ds;
    if (fstat(dfd, &ds) < 0) {
        close(dfd);
        return pf_err_sys(err, PF_ECOMPONENT, "cannot stat %s", dir);
    }
    if (ds.st_mode & (S_IWGRP | S_IWOTH)) {
        close(dfd);
        return pf_err_set(err, PF_ECOMPONENT,
                          "%s is writable by users other than its owner (mode %04o); not "
                          "writing there",
                          dir, (unsigned)(ds.st_mode & 07777));
    }
    int fd = -1;
    for (int attempt = 0; attempt < 2 && fd < 0; attempt++) {
        fd = openat(dfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST || attempt > 0)
            break;
        struct stat fs;
        if (fstatat(dfd, name, &fs, AT_SYMLINK_NOFOLLOW) < 0)
            continue; /* gone meanwhile: try again */
        if (!S_ISREG(fs.st_mode)) {
            close(dfd);
            return pf_err_set(err, PF_ECOMPONENT,
                              "%s/%s exists and is not a regular file (a symlink?); remove it "
                              "and try again",
                              dir, name);
        }
        /* A regular file: ours from an earlier attempt, or not, it is replaced by name and
         * never written through. */
        if (unlinkat(dfd, name, 0) < 0 && errno != ENOENT) {
            int e = errno;
            close(dfd);
            errno = e;
            return pf_err_sys(err, PF_ECOMPONENT, "cannot remove the stale %s/%s", dir, name);
        }
    }
    if (fd < 0) {
        int e = errno;
        close(dfd);
        errno = e;
        return pf_err_sys(err, PF_ECOMPONENT, "cannot create %s/%s", dir, name);
    }
    if (geteuid() == 0 && fchown(fd, ds.st_uid, ds.st_gid) < 0) {
        int e = errno;
        unlinkat(dfd, name, 0);
        close(fd);
        close(dfd);
        errno = e;
        return pf_err_sys(err, PF_ECOMPONENT, "cannot give %s/%s to the directory's owner", dir,
                          name);
    }
    close(dfd);
    return fd;
}

/* When replication is impossible: the RDB next to the server's dump file, and what to do. */
static int write_beside(redisContext *ctx, pf_source *src, const char *why, pf_err *err)
{
    char dir[PATH_MAX] = "", name[256] = "", fname[300];
    char path[PATH_MAX + 300], target[PATH_MAX + 320];
    pf_err e2 = {0};
    if (!ctx || dump_dir_name(ctx, dir, sizeof dir, name, sizeof name, &e2) < 0)
        return pf_err_prefix(err, "cannot load through replication, and cannot ask where the "
                                  "server keeps its dump file");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    snprintf(fname, sizeof fname, "%s.permafrost", name);
    snprintf(target, sizeof target, "%s/%s", dir, fname);
    int fd = create_beside(dir, fname, &e2);
    if (fd < 0)
        return pf_err_prefix(err,
                             "cannot load through replication, and cannot write the RDB beside "
                             "the dump file either (%s); stop redis-server, put the snapshot's "
                             "redis/dump.rdb at %s and start it",
                             e2.msg, path);
    uint8_t *buf = malloc(RBUF);
    if (!buf)
        abort();
    int rc = 0;
    for (;;) {
        ssize_t n = pf_source_read(src, buf, RBUF, &e2);
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        if (write(fd, buf, (size_t)n) != n) {
            rc = -1;
            break;
        }
    }
    free(buf);
    if (close(fd) < 0)
        rc = -1;
    if (rc < 0) {
        int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (dfd >= 0) {
            unlinkat(dfd, fname, 0);
            close(dfd);
        }
        return pf_err_prefix(err, "cannot load through replication, and writing %s failed", target);
    }
    return pf_err_set(err, PF_ECOMPONENT,
                      "could not load through replication (%s); the RDB is at %s: stop "
                      "redis-server without saving (redis-cli shutdown nosave), move it over "
                      "%s, and start redis-server",
                      why, target, path);
}

/* An address as text, without the port; IPv4-mapped IPv6 addresses as IPv4. */
static void addr_text(const struct sockaddr_storage *ss, char *out, size_t cap)
{
    out[0] = 0;
    if (ss->ss_family == AF_INET) {
        inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, (socklen_t)cap);
    } else if (ss->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
        if (IN6_IS_ADDR_V4MAPPED(a))
            inet_ntop(AF_INET, &a->s6_addr[12], out, (socklen_t)cap);
        else
            inet_ntop(AF_INET6, a, out, (socklen_t)cap);
    }
}

/* Where the target's replication connection comes from: the address we reach it at over
 * TCP, loopback over a unix socket (we then listen on 127.0.0.1). */
static void expected_peer(redisContext *ctx, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (ctx->connection_type == REDIS_CONN_TCP &&
        getpeername(ctx->fd, (struct sockaddr *)&ss, &sl) == 0) {
        addr_text(&ss, out, cap);
        if (out[0])
            return;
    }
    snprintf(out, cap, "127.0.0.1");
}

/* The target cut the transfer: why, from what it says now. A client that re-pointed it
 * meanwhile (REPLICAOF) shows as another master or none; still ours means it gave up by
 * itself (repl-timeout, no room for the temporary RDB: its log says). Its data is as it
 * was: a load replaces the dataset only once the whole RDB has arrived. */
static void explain_cut(redisContext *ctx, const char *ip, int port, pf_err *err)
{
    char *rep = NULL, host[INET6_ADDRSTRLEN + 8] = "", mport[16] = "", ours[16];
    pf_err ignored = {0};
    if (err->code != PF_EIO || ctl_info(ctx, "replication", &rep, &ignored) < 0)
        return;
    info_field(rep, "master_host", host, sizeof host);
    info_field(rep, "master_port", mport, sizeof mport);
    free(rep);
    snprintf(ours, sizeof ours, "%d", port);
    if (!host[0])
        pf_err_prefix(err, "the target stopped replicating during the load (REPLICAOF NO ONE from "
                           "another client?); its data is as it was");
    else if (strcmp(host, ip) != 0 || strcmp(mport, ours) != 0)
        pf_err_prefix(err,
                      "the target was pointed at another master (%s:%s) during the load "
                      "(REPLICAOF from another client?); its data is as it was",
                      host, mport);
    else
        pf_err_prefix(err, "the target dropped the transfer (its log says why: repl-timeout, no "
                           "room for the temporary RDB?); its data is as it was, the load can be "
                           "run again");
}

int pf_redis_load_rdb(const pf_redis_conn *c, pf_source *src, int64_t size, pf_redis_info *info,
                      pf_err *err)
{
    int rc = -1, lfd = -1;
    rsock s = {.fd = -1};
    bool replicating = false;
    char ip[INET6_ADDRSTRLEN] = "", portstr[16];
    char secret[41] = "", want_peer[INET6_ADDRSTRLEN + 8] = "";
    char *old_auth = NULL, old_sanitize[16] = "";
    bool auth_set = false;
    redisReply *r = NULL;
    int port = 0;
    pf_redis_info local;
    if (!info)
        info = &local;
    memset(info, 0, sizeof *info);
    info->keys = -1;
    info->method = "REPLICAOF";
    redisContext *ctx = ctl_connect(c, err);
    if (!ctx)
        goto out;
    char *srv = NULL;
    if (ctl_info(ctx, "server", &srv, err) < 0)
        goto out;
    info_field(srv, "redis_version", info->version, sizeof info->version);
    free(srv);

    lfd = listen_near(ctx, ip, sizeof ip, &port, err);
    if (lfd < 0)
        goto out;
    /* Only the target may take the RDB: it must AUTH to our port with a random masterauth
     * set on it just now (the old one is put back at the end). A target that does not let
     * us set it is served only on a connection from its own address. */
    random_hex40(secret);
    r = ctl_cmd(ctx, PF_ECOMPONENT, err, "CONFIG GET masterauth");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING) {
        old_auth = strdup(r->element[1]->str);
        if (!old_auth)
            abort();
    }
    freeReplyObject(r);
    if (old_auth) {
        r = ctl_cmd(ctx, PF_ECOMPONENT, err, "CONFIG SET masterauth %s", secret);
        auth_set = r != NULL;
        freeReplyObject(r);
    }
    if (!auth_set) {
        expected_peer(ctx, want_peer, sizeof want_peer);
        pf_warn("redis: cannot set masterauth on the target (%s); the RDB goes only to a "
                "connection from %s",
                err->msg[0] ? err->msg : "CONFIG GET refused", want_peer);
    }
    /* The RDB comes from the snapshot: have the target check every encoding in it while
     * loading (Redis >= 6.2; older servers lack the setting and load as before). */
    r = ctl_cmd(ctx, PF_ECOMPONENT, err, "CONFIG GET sanitize-dump-payload");
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[1]->type == REDIS_REPLY_STRING && strcmp(r->element[1]->str, "yes") != 0) {
        snprintf(old_sanitize, sizeof old_sanitize, "%s", r->element[1]->str);
        redisReply *r2 = ctl_cmd(ctx, PF_ECOMPONENT, err, "CONFIG SET sanitize-dump-payload yes");
        if (!r2)
            old_sanitize[0] = 0;
        freeReplyObject(r2);
    }
    freeReplyObject(r);
    pf_err_clear(err);
    snprintf(portstr, sizeof portstr, "%d", port);
    r = ctl_cmd(ctx, PF_ECOMPONENT, err, "REPLICAOF %s %s", ip, portstr);
    if (!r && strstr(err->msg, "unknown command"))
        r = ctl_cmd(ctx, PF_ECOMPONENT, err, "SLAVEOF %s %s", ip, portstr);
    if (!r) {
        char why[sizeof err->msg + 32];
        snprintf(why, sizeof why, "REPLICAOF: %s", err->msg);
        write_beside(ctx, src, why, err);
        goto out;
    }
    freeReplyObject(r);
    replicating = true;

    memset(&s, 0, sizeof s);
    s.fd = -1;
    s.buf = malloc(RBUF);
    if (!s.buf)
        abort();
    bool psync = false, capa_eof = false;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ACCEPT_TIMEOUT_MS -
                    ((now.tv_sec - t0.tv_sec) * 1000L + (now.tv_nsec - t0.tv_nsec) / 1000000L);
        struct pollfd pf = {.fd = lfd, .events = POLLIN};
        if (left <= 0 || poll(&pf, 1, (int)left) <= 0) {
            char why[sizeof err->msg + 32];
            snprintf(why, sizeof why, "the server did not connect to %s:%d", ip, port);
            pf_err_set(err, PF_ECOMPONENT, "%s", why);
            write_beside(ctx, src, why, err);
            goto out;
        }
        struct sockaddr_storage peer;
        socklen_t pl = sizeof peer;
        int fd = accept4(lfd, (struct sockaddr *)&peer, &pl, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        char from[INET6_ADDRSTRLEN + 8];
        addr_text(&peer, from, sizeof from);
        if (!auth_set && strcmp(from, want_peer) != 0) {
            pf_warn("redis: ignored a connection from %s to the port only the target (%s) may "
                    "use",
                    from, want_peer);
            close(fd);
            continue;
        }
        s.fd = fd;
        s.start = s.end = 0;
        snprintf(s.where, sizeof s.where, "replica %s", from);
        pf_err e2 = {0};
        int h = serve_handshake(&s, auth_set ? secret : NULL, &psync, &capa_eof, &e2);
        if (h == 0)
            break;
        pf_warn("redis: ignored a connection from %s to the port only the target may use: %s", from,
                e2.msg);
        close(fd);
        s.fd = -1;
    }
    int has_keys = -1;
    if (send_payload(&s, psync, capa_eof, src, size, &has_keys, &info->rdb_bytes, err) < 0) {
        explain_cut(ctx, ip, port, err);
        goto out;
    }
    if (wait_loaded(ctx, s.fd, err) < 0)
        goto out;
    r = ctl_cmd(ctx, PF_ECOMPONENT, err, "REPLICAOF NO ONE");
    if (!r)
        r = ctl_cmd(ctx, PF_ECOMPONENT, err, "SLAVEOF NO ONE");
    if (!r)
        goto out;
    freeReplyObject(r);
    replicating = false;
    if (ctl_keys(ctx, &info->keys, err) < 0)
        goto out;
    if (has_keys == 1 && info->keys == 0) {
        pf_err_set(err, PF_ECOMPONENT,
                   "the RDB has data but the server holds no key after loading it (all "
                   "expired?)");
        goto out;
    }
    /* The data came over the wire: put it on the target's disk now rather than whenever
     * its save rules fire (a server with "save" disabled would otherwise lose it on
     * restart). */
    redisReply *b = redisCommand(ctx, "BGSAVE");
    if (!b || b->type == REDIS_REPLY_ERROR)
        pf_warn("redis: loaded, but BGSAVE failed (%s); the data is only in memory until the "
                "server saves it",
                b ? b->str : ctx->errstr);
    freeReplyObject(b);
    rc = 0;
out:
    if (replicating && ctx) {
        redisReply *u = redisCommand(ctx, "REPLICAOF NO ONE");
        freeReplyObject(u);
    }
    if (auth_set && ctx) {
        redisReply *u = redisCommand(ctx, "CONFIG SET masterauth %s", old_auth);
        if (!u || u->type == REDIS_REPLY_ERROR)
            pf_warn("redis: could not put the target's masterauth back (%s)",
                    u ? u->str : ctx->errstr);
        freeReplyObject(u);
    }
    if (old_sanitize[0] && ctx) {
        redisReply *u = redisCommand(ctx, "CONFIG SET sanitize-dump-payload %s", old_sanitize);
        freeReplyObject(u);
    }
    if (old_auth) {
        explicit_bzero(old_auth, strlen(old_auth));
        free(old_auth);
    }
    if (s.fd >= 0 || s.buf)
        rs_close(&s);
    if (lfd >= 0)
        close(lfd);
    redisFree(ctx);
    return rc;
}

/* ---- the component (component.h) ------------------------------------------------------ */

typedef struct redis_state {
    pf_redis_info info, sidekiq;
} redis_state;

typedef struct redis_job {
    const pf_redis_conn *conn;
    pf_redis_info *info;
} redis_job;

static int produce_rdb(void *ctx, pf_sink *sink, pf_err *err)
{
    redis_job *j = ctx;
    return pf_redis_fetch_rdb(j->conn, sink, j->info, err);
}

static int redis_backup(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    redis_state *st = calloc(1, sizeof *st);
    if (!st)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    run->state = st;
    pf_info("redis: snapshot over replication");
    pf_dir *d = pf_dir_begin(run->arch, run->root, PF_LAYOUT_REDIS, err);
    redis_job job = {&set->redis, &st->info};
    if (!d || pf_component_stream(run->arch, d, PF_LAYOUT_REDIS_RDB, produce_rdb, &job, err))
        goto fail;
    /* Sidekiq's queues may live in a Redis of their own: that one matters most. */
    redis_job sjob = {set->sidekiq, &st->sidekiq};
    if (set->sidekiq &&
        pf_component_stream(run->arch, d, PF_LAYOUT_SIDEKIQ_RDB, produce_rdb, &sjob, err)) {
        run->part = "sidekiq";
        goto fail;
    }
    return pf_dir_end(run->arch, d, NULL, err);
fail:
    pf_dir_abort(d);
    return -1;
}

static void redis_describe(pf_component_run *run, cJSON *entry, cJSON *manifest)
{
    const redis_state *st = run->state;
    cJSON_AddStringToObject(entry, "status", "ok");
    cJSON_AddStringToObject(entry, "method", st->info.method);
    /* Keys per INFO before the transfer: what a drill expects to find loaded (roughly: a
     * busy server's queues move while the RDB is taken). */
    if (st->info.keys >= 0)
        cJSON_AddNumberToObject(entry, "keys", (double)st->info.keys);
    cJSON_AddStringToObject(manifest, "redis", st->info.version);
}

/* node[0]: dump.rdb; node[1]: sidekiq.rdb, type 0 when there is none to restore. */
static int redis_restore_check(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    pf_err ignored = {0};
    if (!set->sidekiq ||
        pf_lookup_path(run->repo, run->tree, PF_LAYOUT_REDIS "/" PF_LAYOUT_SIDEKIQ_RDB,
                       &run->node[1], &ignored))
        memset(&run->node[1], 0, sizeof run->node[1]);
    if (pf_lookup_path(run->repo, run->tree, PF_LAYOUT_REDIS "/" PF_LAYOUT_REDIS_RDB, &run->node[0],
                       err))
        return -1;
    if (set->force)
        return 0;
    if (run->node[1].type && pf_redis_check_empty(set->sidekiq, err)) {
        run->part = "sidekiq";
        return -1;
    }
    return pf_redis_check_empty(&set->redis, err);
}

static int load_node(pf_component_run *run, const pf_redis_conn *c, const pf_node *n,
                     pf_redis_info *info, pf_err *err)
{
    pf_source *src = pf_node_source_new(run->repo, n);
    if (!src)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    int rc = pf_redis_load_rdb(c, src, (int64_t)n->size, info, err);
    pf_node_source_free(src);
    return rc;
}

static int redis_restore(pf_component_run *run, pf_err *err)
{
    const pf_component_settings *set = run->set;
    const pf_redis_conn *rc = &set->redis;
    pf_info("redis: loading the snapshot into %s:%d", rc->host ? rc->host : rc->socket, rc->port);
    pf_redis_info info;
    memset(&info, 0, sizeof info);
    if (load_node(run, rc, &run->node[0], &info, err))
        return -1;
    if (run->node[1].type) {
        pf_info("redis: loading Sidekiq's own Redis");
        if (load_node(run, set->sidekiq, &run->node[1], &info, err)) {
            run->part = "sidekiq";
            return -1;
        }
    }
    return 0;
}

const pf_component pf_redis_component = {.name = PF_LAYOUT_REDIS,
                                         .backup = redis_backup,
                                         .describe = redis_describe,
                                         .restore_check = redis_restore_check,
                                         .restore = redis_restore};
