/* The ssh:// driver: ssh://[user@]host[:port]/path runs the OpenSSH client,
 *   ssh -o BatchMode=yes [-p PORT] [-i KEY ...] -- [USER@]HOST permafrost serve
 * (through src/common/exec.h, so the user's keys, agent, known_hosts and ~/.ssh/config work
 * as everywhere), and speaks the protocol of proto.h with the `permafrost serve` at the
 * other end. The repository path travels in the HELLO, never on the remote command line
 * (which a remote shell would split), and a forced command in authorized_keys replaces
 * that command line anyway. /path is absolute; /~/path is relative to the login directory.
 *
 * The ssh command can be replaced (PERMAFROST_SSH, else ssh_command in the config): it is
 * run by /bin/sh with the arguments above appended, as git runs GIT_SSH_COMMAND.
 *
 * Connections: up to opts->connections (default 4) ssh processes, each carrying one
 * request at a time, started as threads need them; the first is started when the store is
 * opened, so a wrong host, key or path fails at once and the HELLO tells whether the
 * server is append-only. A connection that fails is dropped (the next request starts a new
 * one) and the error is retryable; what the server refuses or reports is not, with the
 * server's error code. A listing is read whole before the callback sees it, so a callback
 * may use the store again. */
#include "store/store.h"
#include "store/internal.h"
#include "store/proto.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/exec.h"

#define REMOTE_DEFAULT_CONNECTIONS 4
#define REMOTE_MAX_CONNECTIONS 64

typedef struct conn {
    pf_exec_child *child; /* NULL: not started (or dropped) */
    bool busy;
} conn;

typedef struct remote_store {
    char *path; /* the repository as the server sees it */
    char **argv;
    size_t argc;
    char *env[2];
    uint64_t object_max;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    conn conns[REMOTE_MAX_CONNECTIONS];
    int nconns;
} remote_store;

static char *xstrdup(const char *s)
{
    char *p = strdup(s);
    if (!p)
        abort();
    return p;
}

static char *xprintf(const char *fmt, const char *a)
{
    char *p;
    if (asprintf(&p, fmt, a) < 0)
        abort();
    return p;
}

static void add_arg(remote_store *r, char *a)
{
    char **v = realloc(r->argv, (r->argc + 2) * sizeof *v);
    if (!v)
        abort();
    r->argv = v;
    r->argv[r->argc++] = a;
    r->argv[r->argc] = NULL;
}

/* Splits the URL into [user@]host, port and path; builds the ssh command line. */
static int parse_url(remote_store *r, const char *url, const pf_store_opts *o, pf_err *err)
{
    const char *p = url + 6, *slash = strchr(p, '/');
    if (!slash || slash == p)
        return pf_err_set(err, PF_EUSAGE,
                          "repository %s: an ssh URL is ssh://[USER@]HOST[:PORT]/PATH", url);
    char *auth = strndup(p, (size_t)(slash - p));
    if (!auth)
        abort();
    char *host = strrchr(auth, '@') ? strrchr(auth, '@') + 1 : auth, *port = NULL;
    char *colon = host[0] == '[' ? strchr(host, ']') : host;
    colon = colon ? strchr(colon, ':') : NULL;
    if (colon) {
        *colon = 0;
        port = colon + 1;
        char *end;
        long n = strtol(port, &end, 10);
        if (!*port || *end || n < 1 || n > 65535) {
            free(auth);
            return pf_err_set(err, PF_EUSAGE, "repository %s: the port must be 1 to 65535", url);
        }
    }
    if (!*host || auth[0] == '-') {
        free(auth);
        return pf_err_set(err, PF_EUSAGE, "repository %s: no host (or one starting with '-')", url);
    }
    r->path = xstrdup(strncmp(slash, "/~/", 3) ? slash : slash + 3);
    if (!*r->path || !strcmp(r->path, "/")) {
        free(auth);
        return pf_err_set(err, PF_EUSAGE, "repository %s: no path after the host", url);
    }

    const char *cmd = getenv("PERMAFROST_SSH");
    if (!cmd || !*cmd)
        cmd = o->ssh_command;
    if (cmd && *cmd) {
        add_arg(r, xstrdup("/bin/sh"));
        add_arg(r, xstrdup("-c"));
        add_arg(r, xprintf("%s \"$@\"", cmd));
        add_arg(r, xstrdup("ssh"));
    } else {
        add_arg(r, xstrdup("ssh"));
    }
    add_arg(r, xstrdup("-o"));
    add_arg(r, xstrdup("BatchMode=yes"));
    if (port) {
        add_arg(r, xstrdup("-p"));
        add_arg(r, xstrdup(port));
    }
    if (o->ssh_key) {
        add_arg(r, xstrdup("-i"));
        add_arg(r, xstrdup(o->ssh_key));
        add_arg(r, xstrdup("-o"));
        add_arg(r, xstrdup("IdentitiesOnly=yes"));
    }
    if (o->known_hosts) {
        add_arg(r, xstrdup("-o"));
        add_arg(r, xprintf("UserKnownHostsFile=%s", o->known_hosts));
    }
    if (o->ssh_accept_new) {
        add_arg(r, xstrdup("-o"));
        add_arg(r, xstrdup("StrictHostKeyChecking=accept-new"));
    }
    add_arg(r, xstrdup("--"));
    add_arg(r, auth); /* [user@]host, the port cut off */
    add_arg(r, xstrdup("permafrost"));
    add_arg(r, xstrdup("serve"));
    /* The agent is the user's; exec.c passes no variable it is not told to. */
    const char *agent = getenv("SSH_AUTH_SOCK");
    if (agent && *agent)
        r->env[0] = xprintf("SSH_AUTH_SOCK=%s", agent);
    return 0;
}

/* Says why a connection failed: the ssh client's last words when it has any. */
static int conn_fail(pf_store *s, conn *c, const pf_err *cause, pf_err *err)
{
    char tail[512];
    pf_exec_child_tail(c->child, tail, sizeof tail);
    pf_exec_result res;
    pf_exec_child_end(c->child, true, &res);
    c->child = NULL;
    if (tail[0])
        pf_err_set(err, PF_ECONN, "%s: connection failed: %s", s->location, tail);
    else
        pf_err_set(err, PF_ECONN, "%s: connection failed: %s", s->location, cause->msg);
    err->retryable = true;
    return -1;
}

static int send_buf(pf_store *s, conn *c, const pf_buf *b, pf_err *err)
{
    pf_err e = {0};
    if (pf_exec_child_write(c->child, b->data, b->len, &e) < 0)
        return conn_fail(s, c, &e, err);
    return 0;
}

/* Reads and decodes one reply. -1 on a connection or protocol failure (connection
 * dropped); an ERR reply is returned as a message for the caller. */
static int recv_msg(pf_store *s, conn *c, pf_buf *frame, pf_proto_msg *m, pf_err *err)
{
    pf_err e = {0};
    uint8_t hdr[4];
    uint32_t n = 0;
    int r = pf_exec_child_read(c->child, hdr, 4, &e);
    if (r == 1)
        pf_err_set(&e, PF_ECONN, "the server closed the connection");
    if (r != 0)
        return conn_fail(s, c, &e, err);
    if (pf_proto_frame_len(hdr, &n, &e) < 0)
        return conn_fail(s, c, &e, err);
    pf_buf_reset(frame);
    pf_buf_reserve(frame, n);
    if (pf_exec_child_read(c->child, frame->data, n, &e) != 0) {
        if (!e.code)
            pf_err_set(&e, PF_ECONN, "the server closed the connection inside a reply");
        return conn_fail(s, c, &e, err);
    }
    frame->len = n;
    if (pf_proto_decode(frame->data, n, m, &e) < 0)
        return conn_fail(s, c, &e, err);
    return 0;
}

/* Turns an ERR reply into err. A refusal names the operation, the key and the server. */
static int server_error(pf_store *s, const char *op, const char *key, const pf_proto_msg *m,
                        pf_err *err)
{
    if (m->code == PF_EREFUSED)
        pf_err_set(err, PF_EREFUSED,
                   "%s %s: refused by the append-only server at %s (%s): run forget/prune from a "
                   "trusted machine",
                   op, key, s->location, m->str);
    else
        pf_err_set(err, m->code, "%s", m->str);
    err->retryable = m->retryable;
    return -1;
}

/* Starts a connection and says HELLO. */
static int conn_start(pf_store *s, conn *c, pf_err *err)
{
    remote_store *r = s->impl;
    pf_exec_opts eo = {
        .argv = (const char *const *)r->argv, .name = "ssh", .env = (const char *const *)r->env};
    c->child = pf_exec_spawn(&eo, err);
    if (!c->child) {
        err->code = PF_ECONN;
        return pf_err_prefix(err, "%s", s->location);
    }
    pf_buf b = PF_BUF_INIT;
    pf_proto_msg *m = malloc(sizeof *m);
    if (!m)
        abort();
    pf_proto_hello(&b, PF_PROTO_VERSION, r->path);
    int rc = send_buf(s, c, &b, err);
    if (rc == 0)
        rc = recv_msg(s, c, &b, m, err);
    if (rc == 0 && m->type == PF_PT_ERR) {
        pf_err_set(err, m->code, "%s: %s", s->location, m->str);
        pf_exec_child_end(c->child, true, NULL);
        c->child = NULL;
        rc = -1;
    } else if (rc == 0 && m->type != PF_PT_HELLO_OK) {
        pf_err e = {0};
        pf_err_set(&e, PF_ECORRUPT, "the server answered HELLO with frame type 0x%02x", m->type);
        rc = conn_fail(s, c, &e, err);
    } else if (rc == 0) {
        if (m->version != PF_PROTO_VERSION) {
            pf_err e = {0};
            pf_err_set(&e, PF_EUSAGE, "the server speaks protocol version %u, we speak %u",
                       m->version, PF_PROTO_VERSION);
            rc = conn_fail(s, c, &e, err);
        } else {
            s->props.append_only = (m->caps & PF_PROTO_CAP_APPEND_ONLY) != 0;
            r->object_max = m->a < PF_PROTO_OBJECT_MAX ? m->a : PF_PROTO_OBJECT_MAX;
        }
    }
    pf_buf_free(&b);
    free(m);
    return rc;
}

/* A connection for this thread: an idle one, a new one while there are fewer than the
 * limit, else waits for one. */
static conn *acquire(pf_store *s, pf_err *err)
{
    remote_store *r = s->impl;
    pthread_mutex_lock(&r->mu);
    conn *c = NULL;
    for (;;) {
        for (int i = 0; i < r->nconns && !c; i++)
            if (!r->conns[i].busy && r->conns[i].child)
                c = &r->conns[i];
        for (int i = 0; i < r->nconns && !c; i++)
            if (!r->conns[i].busy)
                c = &r->conns[i];
        if (c)
            break;
        pthread_cond_wait(&r->cv, &r->mu);
    }
    c->busy = true;
    pthread_mutex_unlock(&r->mu);
    if (!c->child && conn_start(s, c, err) < 0) {
        pthread_mutex_lock(&r->mu);
        c->busy = false;
        pthread_cond_signal(&r->cv);
        pthread_mutex_unlock(&r->mu);
        return NULL;
    }
    return c;
}

static void release(pf_store *s, conn *c)
{
    remote_store *r = s->impl;
    pthread_mutex_lock(&r->mu);
    c->busy = false;
    pthread_cond_signal(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* Sends a request and reads the reply's first frame into m. */
static conn *request(pf_store *s, const pf_buf *req, pf_buf *frame, pf_proto_msg *m, pf_err *err)
{
    conn *c = acquire(s, err);
    if (!c)
        return NULL;
    if (send_buf(s, c, req, err) < 0 || recv_msg(s, c, frame, m, err) < 0) {
        release(s, c);
        return NULL;
    }
    return c;
}

static int unexpected(pf_store *s, conn *c, const char *op, const pf_proto_msg *m, pf_err *err)
{
    pf_err e = {0};
    pf_err_set(&e, PF_ECORRUPT, "the server answered %s with frame type 0x%02x", op, m->type);
    conn_fail(s, c, &e, err);
    err->retryable = false;
    return -1;
}

static int remote_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    remote_store *r = s->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    if ((uint64_t)len > r->object_max)
        return pf_err_set(err, PF_EUSAGE, "put %s: %zu bytes is more than the server takes (%llu)",
                          key, len, (unsigned long long)r->object_max);
    conn *c = acquire(s, err);
    if (!c)
        return -1;
    pf_buf b = PF_BUF_INIT;
    pf_proto_msg *m = malloc(sizeof *m);
    if (!m)
        abort();
    pf_proto_keyed(&b, PF_PT_PUT, key, len, 0);
    int rc = send_buf(s, c, &b, err);
    /* DATA frames go out as a header and a slice of the caller's bytes: no copy. */
    for (size_t off = 0; rc == 0 && off < len;) {
        size_t n = len - off > PF_PROTO_DATA_MAX ? PF_PROTO_DATA_MAX : len - off;
        uint8_t hdr[5];
        pf_put_le32(hdr, (uint32_t)n + 1);
        hdr[4] = PF_PT_DATA;
        pf_err e = {0};
        if (pf_exec_child_write(c->child, hdr, 5, &e) < 0 ||
            pf_exec_child_write(c->child, (const uint8_t *)data + off, n, &e) < 0)
            rc = conn_fail(s, c, &e, err);
        off += n;
    }
    if (rc == 0)
        rc = recv_msg(s, c, &b, m, err);
    if (rc == 0 && m->type == PF_PT_ERR)
        rc = server_error(s, "put", key, m, err);
    else if (rc == 0 && m->type != PF_PT_OK)
        rc = unexpected(s, c, "put", m, err);
    release(s, c);
    pf_buf_free(&b);
    free(m);
    return rc;
}

static int remote_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out,
                      pf_err *err)
{
    remote_store *r = s->impl;
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pf_buf b = PF_BUF_INIT;
    pf_proto_msg *m = malloc(sizeof *m);
    if (!m)
        abort();
    pf_proto_keyed(&b, PF_PT_GET, key, off, len);
    size_t start = out->len;
    int rc = -1;
    conn *c = request(s, &b, &b, m, err);
    if (!c)
        goto out;
    if (m->type == PF_PT_ERR) {
        server_error(s, "get", key, m, err);
    } else if (m->type != PF_PT_SIZE) {
        unexpected(s, c, "get", m, err);
    } else if (m->a > r->object_max || (len != PF_STORE_ALL && m->a != len)) {
        pf_err e = {0};
        pf_err_set(&e, PF_ECORRUPT, "get %s: the server sends %llu bytes", key,
                   (unsigned long long)m->a);
        conn_fail(s, c, &e, err);
        err->retryable = false;
    } else {
        uint64_t want = m->a;
        pf_buf_reserve(out, (size_t)want);
        rc = 0;
        while (rc == 0 && out->len - start < want) {
            if ((rc = recv_msg(s, c, &b, m, err)) < 0)
                break;
            if (m->type != PF_PT_DATA || m->data_len > want - (out->len - start))
                rc = unexpected(s, c, "get", m, err);
            else
                pf_buf_append(out, m->data, m->data_len);
        }
    }
    release(s, c);
out:
    if (rc < 0 && out->data) {
        out->len = start;
        out->data[start] = 0;
    }
    pf_buf_free(&b);
    free(m);
    return rc;
}

/* A request (in b, built by the caller) answered by one frame of type `want`, whose
 * numbers land in a and bv (either may be NULL). The server's error frame, or any other
 * frame, is the error; op and subject name the request in it. Frees b. */
static int one_reply(pf_store *s, pf_buf *b, const char *op, const char *subject, uint8_t want,
                     uint64_t *a, uint64_t *bv, pf_err *err)
{
    pf_proto_msg *m = malloc(sizeof *m);
    if (!m)
        abort();
    int rc = -1;
    conn *c = request(s, b, b, m, err);
    if (c) {
        if (m->type == PF_PT_ERR)
            server_error(s, op, subject, m, err);
        else if (m->type != want)
            unexpected(s, c, op, m, err);
        else {
            if (a)
                *a = m->a;
            if (bv)
                *bv = m->b;
            rc = 0;
        }
        release(s, c);
    }
    pf_buf_free(b);
    free(m);
    return rc;
}

static int remote_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pf_buf b = PF_BUF_INIT;
    pf_proto_keyed(&b, PF_PT_STAT, key, 0, 0);
    return one_reply(s, &b, "stat", key, PF_PT_SIZE, size, NULL, err);
}

static int remote_remove(pf_store *s, const char *key, pf_err *err)
{
    if (pf_store_check_key(key, err) < 0)
        return -1;
    pf_buf b = PF_BUF_INIT;
    pf_proto_keyed(&b, PF_PT_REMOVE, key, 0, 0);
    return one_reply(s, &b, "remove", key, PF_PT_OK, NULL, NULL, err);
}

static int remote_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    if (!prefix)
        prefix = "";
    if (pf_store_check_prefix(prefix, err) < 0)
        return -1;
    pf_buf b = PF_BUF_INIT, keys = PF_BUF_INIT; /* keys: (size u64, key, NUL) ... */
    pf_proto_msg *m = malloc(sizeof *m);
    if (!m)
        abort();
    pf_proto_keyed(&b, PF_PT_LIST, prefix, 0, 0);
    int rc = -1;
    conn *c = request(s, &b, &b, m, err);
    if (c) {
        for (;;) {
            if (m->type == PF_PT_OK) {
                rc = 0;
                break;
            }
            if (m->type == PF_PT_ERR) {
                server_error(s, "list", prefix, m, err);
                break;
            }
            if (m->type != PF_PT_ENTRIES) {
                unexpected(s, c, "list", m, err);
                break;
            }
            size_t pos = 0;
            char key[PF_STORE_KEY_MAX + 1];
            uint64_t size;
            while (pf_proto_entry_next(m, &pos, key, &size)) {
                pf_buf_u64le(&keys, size);
                pf_buf_append(&keys, key, strlen(key) + 1);
            }
            if (recv_msg(s, c, &b, m, err) < 0)
                break;
        }
        release(s, c);
    }
    for (size_t off = 0; rc == 0 && off < keys.len;) {
        uint64_t size = pf_le64(keys.data + off);
        const char *key = (const char *)keys.data + off + 8;
        off += 8 + strlen(key) + 1;
        pf_err ke = {0};
        /* What the server lists must be a key we could have written, under the prefix. */
        if (pf_store_check_key(key, &ke) < 0 || strncmp(key, prefix, strlen(prefix)) != 0) {
            rc = pf_err_set(err, PF_ECORRUPT, "list %s: the server listed \"%.200s\"", prefix, key);
            break;
        }
        rc = cb(key, size, ctx, err);
    }
    pf_buf_free(&b);
    pf_buf_free(&keys);
    free(m);
    return rc;
}

static int remote_sweep_tmp(pf_store *s, int64_t before, uint64_t *removed, uint64_t *bytes,
                            pf_err *err)
{
    pf_buf b = PF_BUF_INIT;
    pf_proto_sweep(&b, before);
    return one_reply(s, &b, "sweep", "temporary files", PF_PT_SWEPT, removed, bytes, err);
}

static void remote_free(pf_store *s)
{
    remote_store *r = s->impl;
    if (!r)
        return;
    for (int i = 0; i < r->nconns; i++) {
        conn *c = &r->conns[i];
        if (!c->child)
            continue;
        pf_buf b = PF_BUF_INIT;
        pf_err e = {0};
        pf_proto_empty(&b, PF_PT_BYE);
        bool said = pf_exec_child_write(c->child, b.data, b.len, &e) == 0;
        pf_exec_child_end(c->child, !said, NULL);
        pf_buf_free(&b);
    }
    for (size_t i = 0; i < r->argc; i++)
        free(r->argv[i]);
    free(r->argv);
    free(r->env[0]);
    free(r->path);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r);
}

static const struct pf_store_ops remote_ops = {
    .name = "ssh",
    .put = remote_put,
    .get = remote_get,
    .stat = remote_stat,
    .list = remote_list,
    .remove = remote_remove,
    .free = remote_free,
    .sweep_tmp = remote_sweep_tmp,
};

pf_store *pf_store_remote_new(const char *url, const pf_store_opts *opts, pf_err *err)
{
    static const pf_store_opts none;
    if (!opts)
        opts = &none;
    remote_store *r = calloc(1, sizeof *r);
    if (!r)
        abort();
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    r->object_max = PF_PROTO_OBJECT_MAX;
    r->nconns = opts->connections > 0 ? opts->connections : REMOTE_DEFAULT_CONNECTIONS;
    if (r->nconns > REMOTE_MAX_CONNECTIONS)
        r->nconns = REMOTE_MAX_CONNECTIONS;
    pf_store *s = pf_store_alloc(&remote_ops, r, url);
    s->props.remote = true;
    s->props.connections = r->nconns;
    if (parse_url(r, url, opts, err) < 0) {
        pf_store_free(s);
        return NULL;
    }
    /* The first connection now: a wrong host, key or path fails here, and its HELLO says
     * whether the server is append-only before any command starts. */
    conn *c = acquire(s, err);
    if (!c) {
        err->retryable = false;
        pf_store_free(s);
        return NULL;
    }
    release(s, c);
    return s;
}
