/* The repository server's session; see serve.h. */
#include "serve/serve.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "store/internal.h"
#include "store/proto.h"
#include "store/store.h"

typedef struct session {
    int in, out;
    const pf_serve_opts *o;
    char *root; /* the repository directory, resolved */
    pf_store *store;
    pf_buf frame; /* the frame being read */
    pf_buf reply; /* what is to be sent */
} session;

static int flush(session *s, pf_err *err)
{
    int rc = pf_proto_write_all(s->out, s->reply.data, s->reply.len, err);
    pf_buf_reset(&s->reply);
    return rc;
}

static int send_error(session *s, const pf_err *e, pf_err *err)
{
    pf_proto_error(&s->reply, e);
    return flush(s, err);
}

/* "locks/" and 64 lower-case hex digits: the only objects an append-only server replaces
 * or removes (src/repo/lock.c refreshes a lease by writing a new lock and removing the
 * old one, and removes stale locks it meets). */
static bool is_lock_key(const char *key)
{
    if (strncmp(key, "locks/", 6) != 0 || strlen(key) != 6 + 64)
        return false;
    for (const char *p = key + 6; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
            return false;
    return true;
}

static bool has_dotdot(const char *path)
{
    const char *p = path;
    while (*p) {
        size_t n = strcspn(p, "/");
        if (n == 2 && p[0] == '.' && p[1] == '.')
            return true;
        p += n;
        while (*p == '/')
            p++;
    }
    return false;
}

/* The repository directory path names, with the symbolic links of its existing part
 * resolved; refused when it is not restrict_to or beneath it. The part that does not
 * exist yet (init creates it) is kept as written: it holds no link and no "..". */
static char *resolve_root(const char *path, const char *restrict_to, pf_err *err)
{
    if (has_dotdot(path)) {
        pf_err_set(err, PF_EREFUSED, "repository path %s contains '..': refused", path);
        return NULL;
    }
    pf_buf abs = PF_BUF_INIT;
    if (path[0] != '/') {
        char cwd[PATH_MAX];
        if (!getcwd(cwd, sizeof cwd)) {
            pf_err_sys(err, PF_EIO, "cannot resolve %s", path);
            return NULL;
        }
        pf_buf_printf(&abs, "%s/", cwd);
    }
    pf_buf_append_str(&abs, path);
    const char *full = (char *)abs.data;
    char *work = strdup(full), *real = NULL;
    if (!work)
        abort();
    /* Strip components off the end until what is left exists ("/" always does). */
    while (!(real = realpath(work, NULL))) {
        if (errno != ENOENT) {
            pf_err_sys(err, PF_EIO, "cannot resolve repository path %s", path);
            free(work);
            pf_buf_free(&abs);
            return NULL;
        }
        char *slash = strrchr(work, '/');
        if (slash == work)
            slash[1] = 0;
        else
            *slash = 0;
    }
    const char *tail = full + (strcmp(work, "/") ? strlen(work) : 0);
    free(work);
    pf_buf out = PF_BUF_INIT;
    pf_buf_append_str(&out, real);
    free(real);
    while (*tail == '/')
        tail++;
    if (*tail) {
        if (out.len > 1)
            pf_buf_append_str(&out, "/");
        pf_buf_append_str(&out, tail);
    }
    while (out.len > 1 && out.data[out.len - 1] == '/')
        out.data[--out.len] = 0;
    pf_buf_free(&abs);
    if (restrict_to) {
        char *r = realpath(restrict_to, NULL);
        if (!r) {
            pf_err_sys(err, PF_EUSAGE, "server: --restrict-to-path %s", restrict_to);
            pf_buf_free(&out);
            return NULL;
        }
        size_t n = strlen(r);
        const char *o = (char *)out.data;
        bool inside = !strcmp(r, "/") || (!strncmp(o, r, n) && (o[n] == 0 || o[n] == '/'));
        if (!inside) {
            pf_err_set(err, PF_EREFUSED,
                       "repository %s is outside %s, the only directory this server serves", path,
                       restrict_to);
            free(r);
            pf_buf_free(&out);
            return NULL;
        }
        free(r);
    }
    return (char *)pf_buf_detach(&out, NULL);
}

/* With restrict_to: refuses a key (or the folders of a prefix) that passes through a
 * symbolic link, opening each folder with O_NOFOLLOW. What does not exist yet is fine: the
 * local driver creates plain folders and files. */
static int check_no_links(session *s, const char *key, bool prefix, pf_err *err)
{
    if (!s->o->restrict_to)
        return 0;
    int fd = open(s->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 0; /* no repository yet: nothing to pass through */
    int rc = 0;
    const char *p = key;
    while (*p) {
        size_t n = strcspn(p, "/");
        bool last = p[n] == 0;
        if (last && prefix)
            break; /* a partial name: list does not follow links (lstat) */
        char comp[PF_STORE_KEY_MAX + 1];
        memcpy(comp, p, n);
        comp[n] = 0;
        struct stat st;
        if (fstatat(fd, comp, &st, AT_SYMLINK_NOFOLLOW) < 0)
            break; /* missing: created as a plain file or folder */
        if (S_ISLNK(st.st_mode)) {
            rc = pf_err_set(err, PF_EREFUSED,
                            "%s: a symbolic link in the repository, which this server does not "
                            "follow (--restrict-to-path)",
                            key);
            break;
        }
        if (last || !S_ISDIR(st.st_mode))
            break;
        int next = openat(fd, comp, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (next < 0)
            break; /* replaced meanwhile: the driver reports what it meets */
        close(fd);
        fd = next;
        p += n + 1;
    }
    close(fd);
    return rc;
}

static int do_hello(session *s, pf_err *err)
{
    pf_proto_msg m;
    int r = pf_proto_read_frame(s->in, &s->frame, err);
    if (r == 1)
        return pf_err_set(err, PF_ECORRUPT, "server: the client said nothing");
    if (r < 0 || pf_proto_decode(s->frame.data, s->frame.len, &m, err) < 0)
        goto refuse;
    if (m.type != PF_PT_HELLO) {
        pf_err_set(err, PF_ECORRUPT, "protocol: expected HELLO, got frame type 0x%02x", m.type);
        goto refuse;
    }
    if (m.version != PF_PROTO_VERSION) {
        pf_err_set(err, PF_EUSAGE,
                   "protocol version %u is not spoken by this server (it speaks version %u): "
                   "install the same permafrost release on both machines",
                   m.version, PF_PROTO_VERSION);
        goto refuse;
    }
    s->root = resolve_root(m.str, s->o->restrict_to, err);
    if (!s->root)
        goto refuse;
    s->store = pf_store_local_new(s->root, err);
    if (!s->store)
        goto refuse;
    pf_proto_hello_ok(&s->reply, s->o->append_only ? PF_PROTO_CAP_APPEND_ONLY : 0,
                      PF_PROTO_OBJECT_MAX);
    return flush(s, err);
refuse:;
    pf_err e2 = {0};
    send_error(s, err, &e2);
    return -1;
}

/* Reads the DATA frames of a put of `size` bytes into buf. A protocol violation: -1. */
static int read_object(session *s, uint64_t size, pf_buf *buf, pf_err *err)
{
    pf_proto_msg m;
    while (buf->len < size) {
        int r = pf_proto_read_frame(s->in, &s->frame, err);
        if (r == 1)
            return pf_err_set(err, PF_ECORRUPT, "protocol: input ends inside a put");
        if (r < 0 || pf_proto_decode(s->frame.data, s->frame.len, &m, err) < 0)
            return -1;
        if (m.type != PF_PT_DATA)
            return pf_err_set(err, PF_ECORRUPT, "protocol: frame type 0x%02x inside a put", m.type);
        if (m.data_len > size - buf->len)
            return pf_err_set(err, PF_ECORRUPT, "protocol: a put sends more than it announced");
        pf_buf_append(buf, m.data, m.data_len);
    }
    return 0;
}

/* Append-only put: a new key is created, an existing one stays as it is. */
static int put_append_only(session *s, const char *key, const pf_buf *obj, pf_err *err)
{
    if (pf_store_local_put_new(s->store, key, obj->data, obj->len, err) == 0)
        return 0;
    if (err->code != PF_EEXIST)
        return -1;
    pf_buf old = PF_BUF_INIT;
    pf_err_clear(err);
    int rc = pf_store_get(s->store, key, 0, PF_STORE_ALL, &old, err);
    if (rc == 0 && (old.len != obj->len || memcmp(old.data, obj->data, obj->len) != 0))
        rc = pf_err_set(err, PF_EREFUSED,
                        "it exists with other content and this server replaces "
                        "nothing but locks");
    pf_buf_free(&old);
    return rc;
}

static int op_put(session *s, const pf_proto_msg *m, pf_err *opf, pf_err *err)
{
    pf_buf obj = PF_BUF_INIT;
    int rc = read_object(s, m->a, &obj, err);
    if (rc == 0) {
        int r;
        if (check_no_links(s, m->str, false, opf) < 0)
            r = -1;
        else if (s->o->append_only && !is_lock_key(m->str))
            r = put_append_only(s, m->str, &obj, opf);
        else
            r = pf_store_put(s->store, m->str, obj.data, obj.len, opf);
        if (r == 0)
            pf_proto_empty(&s->reply, PF_PT_OK);
    }
    pf_buf_free(&obj);
    return rc;
}

static int op_get(session *s, const pf_proto_msg *m, pf_err *opf, pf_err *err)
{
    uint64_t size, n;
    if (check_no_links(s, m->str, false, opf) < 0 ||
        pf_store_stat(s->store, m->str, &size, opf) < 0 ||
        pf_store_check_range(m->str, size, m->a, m->b, &n, opf) < 0)
        return 0;
    if (n > PF_PROTO_OBJECT_MAX) {
        pf_err_set(opf, PF_EIO, "object %s: a read of %llu bytes is more than this server sends",
                   m->str, (unsigned long long)n);
        return 0;
    }
    pf_buf data = PF_BUF_INIT;
    if (pf_store_get(s->store, m->str, m->a, n, &data, opf) == 0) {
        pf_proto_size(&s->reply, data.len);
        for (size_t off = 0; off < data.len;) {
            size_t c = data.len - off > PF_PROTO_DATA_MAX ? PF_PROTO_DATA_MAX : data.len - off;
            pf_proto_data(&s->reply, data.data + off, c);
            off += c;
            if (flush(s, err) < 0) {
                pf_buf_free(&data);
                return -1;
            }
        }
    }
    pf_buf_free(&data);
    return 0;
}

struct list_ctx {
    session *s;
    pf_proto_entries e;
    pf_err *err; /* the connection's: a failed send ends the listing and the session */
    bool failed;
};

static int list_cb(const char *key, uint64_t size, void *p, pf_err *err)
{
    (void)err;
    struct list_ctx *lc = p;
    if (!pf_proto_entries_add(&lc->e, key, size))
        return 0;
    pf_proto_entries_end(&lc->e);
    if (flush(lc->s, lc->err) < 0) {
        lc->failed = true;
        return 1;
    }
    pf_proto_entries_begin(&lc->e, &lc->s->reply);
    return 0;
}

static int op_list(session *s, const pf_proto_msg *m, pf_err *opf, pf_err *err)
{
    if (check_no_links(s, m->str, true, opf) < 0)
        return 0;
    struct list_ctx lc = {s, {0}, err, false};
    pf_proto_entries_begin(&lc.e, &s->reply);
    int rc = pf_store_list(s->store, m->str, list_cb, &lc, opf);
    if (lc.failed)
        return -1;
    if (lc.e.count) {
        pf_proto_entries_end(&lc.e);
    } else {
        s->reply.len = lc.e.start; /* drop the empty frame begun */
    }
    if (rc == 0)
        pf_proto_empty(&s->reply, PF_PT_OK);
    else if (!opf->code)
        pf_err_set(opf, PF_EGENERIC, "listing %s stopped", m->str);
    return 0;
}

static void op_remove(session *s, const pf_proto_msg *m, pf_err *opf)
{
    if (s->o->append_only && !is_lock_key(m->str)) {
        pf_err_set(opf, PF_EREFUSED, "this server removes nothing but locks");
        return;
    }
    if (check_no_links(s, m->str, false, opf) == 0 && pf_store_remove(s->store, m->str, opf) == 0)
        pf_proto_empty(&s->reply, PF_PT_OK);
}

static void op_sweep(session *s, const pf_proto_msg *m, pf_err *opf)
{
    uint64_t removed = 0, bytes = 0;
    if (s->o->append_only) {
        pf_err_set(opf, PF_EREFUSED, "this server removes nothing but locks");
        return;
    }
    if (pf_store_sweep_tmp(s->store, (int64_t)m->a, &removed, &bytes, opf) == 0)
        pf_proto_swept(&s->reply, removed, bytes);
}

static int serve_loop(session *s, pf_err *err)
{
    pf_proto_msg m;
    for (;;) {
        int r = pf_proto_read_frame(s->in, &s->frame, err);
        if (r == 1)
            return 0;
        if (r < 0 || pf_proto_decode(s->frame.data, s->frame.len, &m, err) < 0)
            return -1;
        pf_err opf = {0};
        int rc = 0;
        switch (m.type) {
        case PF_PT_PUT:
            rc = op_put(s, &m, &opf, err);
            break;
        case PF_PT_GET:
            rc = op_get(s, &m, &opf, err);
            break;
        case PF_PT_STAT: {
            uint64_t size;
            if (check_no_links(s, m.str, false, &opf) == 0 &&
                pf_store_stat(s->store, m.str, &size, &opf) == 0)
                pf_proto_size(&s->reply, size);
            break;
        }
        case PF_PT_LIST:
            rc = op_list(s, &m, &opf, err);
            break;
        case PF_PT_REMOVE:
            op_remove(s, &m, &opf);
            break;
        case PF_PT_SWEEP:
            op_sweep(s, &m, &opf);
            break;
        case PF_PT_BYE:
            return 0;
        default:
            return pf_err_set(err, PF_ECORRUPT, "protocol: frame type 0x%02x is not a request",
                              m.type);
        }
        if (rc < 0)
            return -1;
        if (opf.code) {
            s->reply.len = 0;
            pf_proto_error(&s->reply, &opf);
        }
        if (flush(s, err) < 0)
            return -1;
    }
}

int pf_serve(int in_fd, int out_fd, const pf_serve_opts *o, pf_err *err)
{
    session s = {in_fd, out_fd, o, NULL, NULL, PF_BUF_INIT, PF_BUF_INIT};
    int rc = do_hello(&s, err);
    if (rc == 0) {
        rc = serve_loop(&s, err);
        if (rc < 0 && err->code == PF_ECORRUPT) {
            /* Say why before hanging up; the client may be gone already. */
            pf_err e2 = {0};
            pf_buf_reset(&s.reply);
            send_error(&s, err, &e2);
        }
    }
    pf_store_free(s.store);
    free(s.root);
    pf_buf_free(&s.frame);
    pf_buf_free(&s.reply);
    return rc;
}
