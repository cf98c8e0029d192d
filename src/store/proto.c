/* Frames of the repository server protocol; see proto.h and docs/PROTOCOL.md. */
#include "store/proto.h"
#include "store/internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

int pf_proto_frame_len(const uint8_t hdr[4], uint32_t *len, pf_err *err)
{
    uint32_t n = pf_le32(hdr);
    if (n == 0 || n > PF_PROTO_FRAME_MAX)
        return pf_err_set(err, PF_ECORRUPT,
                          "protocol: frame of %lu bytes (allowed 1 to %u): not a permafrost "
                          "server, or a different version",
                          (unsigned long)n, PF_PROTO_FRAME_MAX);
    *len = n;
    return 0;
}

/* A u16-length string of at most max bytes, without NUL, into m->str. */
static int get_str(pf_reader *r, size_t max, bool empty_ok, const char *what, pf_proto_msg *m,
                   pf_err *err)
{
    uint16_t n;
    const uint8_t *p;
    if (pf_reader_u16le(r, &n) < 0 || pf_reader_bytes(r, n, &p) < 0)
        return pf_err_set(err, PF_ECORRUPT, "protocol: frame ends inside the %s", what);
    if (n > max || (n == 0 && !empty_ok))
        return pf_err_set(err, PF_ECORRUPT, "protocol: %s of %u bytes (allowed %s1 to %zu)", what,
                          n, empty_ok ? "0 or " : "", max);
    if (memchr(p, 0, n))
        return pf_err_set(err, PF_ECORRUPT, "protocol: %s holds a NUL byte", what);
    memcpy(m->str, p, n);
    m->str[n] = 0;
    return 0;
}

static int get_u64s(pf_reader *r, int n, pf_proto_msg *m, pf_err *err)
{
    if ((n > 0 && pf_reader_u64le(r, &m->a) < 0) || (n > 1 && pf_reader_u64le(r, &m->b) < 0))
        return pf_err_set(err, PF_ECORRUPT, "protocol: frame type 0x%02x is too short", m->type);
    return 0;
}

/* Checks a whole ENTRIES body after its count; pf_proto_entry_next then trusts it. */
static int check_entries(pf_reader *r, pf_proto_msg *m, pf_err *err)
{
    if (m->count == 0)
        return pf_err_set(err, PF_ECORRUPT, "protocol: ENTRIES frame with no entry");
    m->data = r->p + r->pos;
    size_t start = r->pos;
    for (uint16_t i = 0; i < m->count; i++) {
        if (get_str(r, PF_STORE_KEY_MAX, false, "listed key", m, err) < 0)
            return -1;
        uint64_t size;
        if (pf_reader_u64le(r, &size) < 0)
            return pf_err_set(err, PF_ECORRUPT, "protocol: frame ends inside a listed size");
    }
    m->data_len = r->pos - start;
    m->str[0] = 0;
    return 0;
}

int pf_proto_decode(const uint8_t *body, size_t len, pf_proto_msg *m, pf_err *err)
{
    pf_reader r;
    memset(m, 0, sizeof *m);
    pf_reader_init(&r, body, len);
    if (pf_reader_u8(&r, &m->type) < 0)
        return pf_err_set(err, PF_ECORRUPT, "protocol: empty frame");
    int rc = 0;
    switch (m->type) {
    case PF_PT_HELLO: {
        const uint8_t *magic;
        if (pf_reader_bytes(&r, 4, &magic) < 0 || memcmp(magic, PF_PROTO_MAGIC, 4) != 0)
            return pf_err_set(err, PF_ECORRUPT,
                              "protocol: HELLO without the magic \"" PF_PROTO_MAGIC "\"");
        if (pf_reader_u32le(&r, &m->version) < 0)
            return pf_err_set(err, PF_ECORRUPT, "protocol: HELLO is too short");
        rc = get_str(&r, PF_PROTO_PATH_MAX, false, "repository path", m, err);
        break;
    }
    case PF_PT_PUT:
        rc = get_str(&r, PF_STORE_KEY_MAX, false, "key", m, err) || get_u64s(&r, 1, m, err);
        if (!rc && m->a > PF_PROTO_OBJECT_MAX)
            return pf_err_set(err, PF_EUSAGE,
                              "protocol: object %s of %llu bytes is larger than the %llu a "
                              "repository writes",
                              m->str, (unsigned long long)m->a,
                              (unsigned long long)PF_PROTO_OBJECT_MAX);
        break;
    case PF_PT_GET:
        rc = get_str(&r, PF_STORE_KEY_MAX, false, "key", m, err) || get_u64s(&r, 2, m, err);
        break;
    case PF_PT_STAT:
    case PF_PT_REMOVE:
        rc = get_str(&r, PF_STORE_KEY_MAX, false, "key", m, err);
        break;
    case PF_PT_LIST:
        rc = get_str(&r, PF_STORE_KEY_MAX, true, "prefix", m, err);
        break;
    case PF_PT_SWEEP:
        rc = get_u64s(&r, 1, m, err);
        break;
    case PF_PT_BYE:
    case PF_PT_OK:
        break;
    case PF_PT_DATA:
        m->data_len = pf_reader_left(&r);
        if (m->data_len == 0 || m->data_len > PF_PROTO_DATA_MAX)
            return pf_err_set(err, PF_ECORRUPT,
                              "protocol: DATA frame of %zu bytes (allowed 1 to %u)", m->data_len,
                              PF_PROTO_DATA_MAX);
        pf_reader_bytes(&r, m->data_len, &m->data);
        break;
    case PF_PT_HELLO_OK:
        if (pf_reader_u32le(&r, &m->version) < 0 || pf_reader_u32le(&r, &m->caps) < 0)
            return pf_err_set(err, PF_ECORRUPT, "protocol: HELLO_OK is too short");
        rc = get_u64s(&r, 1, m, err);
        break;
    case PF_PT_SIZE:
        rc = get_u64s(&r, 1, m, err);
        break;
    case PF_PT_SWEPT:
        rc = get_u64s(&r, 2, m, err);
        break;
    case PF_PT_ENTRIES:
        if (pf_reader_u16le(&r, &m->count) < 0)
            return pf_err_set(err, PF_ECORRUPT, "protocol: ENTRIES is too short");
        rc = check_entries(&r, m, err);
        break;
    case PF_PT_ERR: {
        uint8_t code, flags;
        if (pf_reader_u8(&r, &code) < 0 || pf_reader_u8(&r, &flags) < 0)
            return pf_err_set(err, PF_ECORRUPT, "protocol: ERR is too short");
        /* An unknown code (a newer server) is still an error: the generic one. */
        m->code = code == PF_OK || code > PF_EREFUSED ? PF_EGENERIC : code;
        m->retryable = flags & 1;
        rc = get_str(&r, PF_PROTO_MSG_MAX, true, "error message", m, err);
        break;
    }
    default:
        return pf_err_set(err, PF_ECORRUPT, "protocol: unknown frame type 0x%02x", m->type);
    }
    if (rc)
        return -1;
    if (pf_reader_left(&r))
        return pf_err_set(err, PF_ECORRUPT, "protocol: %zu stray bytes after frame type 0x%02x",
                          pf_reader_left(&r), m->type);
    return 0;
}

int pf_proto_entry_next(const pf_proto_msg *m, size_t *pos, char *key, uint64_t *size)
{
    if (*pos >= m->data_len)
        return 0;
    const uint8_t *p = m->data + *pos;
    uint16_t n = (uint16_t)(p[0] | (p[1] << 8));
    memcpy(key, p + 2, n);
    key[n] = 0;
    *size = pf_le64(p + 2 + n);
    *pos += 2u + n + 8u;
    return 1;
}

/* Starts a frame: a length placeholder and the type. Returns where the frame starts. */
static size_t begin(pf_buf *out, uint8_t type)
{
    size_t start = out->len;
    pf_buf_u32le(out, 0);
    pf_buf_u8(out, type);
    return start;
}

static void end(pf_buf *out, size_t start)
{
    pf_put_le32(out->data + start, (uint32_t)(out->len - start - 4));
}

static void put_str(pf_buf *out, const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max)
        n = max;
    pf_buf_u16le(out, (uint16_t)n);
    pf_buf_append(out, s, n);
}

void pf_proto_hello(pf_buf *out, uint32_t version, const char *path)
{
    size_t s = begin(out, PF_PT_HELLO);
    pf_buf_append(out, PF_PROTO_MAGIC, 4);
    pf_buf_u32le(out, version);
    put_str(out, path, PF_PROTO_PATH_MAX);
    end(out, s);
}

void pf_proto_hello_ok(pf_buf *out, uint32_t caps, uint64_t object_max)
{
    size_t s = begin(out, PF_PT_HELLO_OK);
    pf_buf_u32le(out, PF_PROTO_VERSION);
    pf_buf_u32le(out, caps);
    pf_buf_u64le(out, object_max);
    end(out, s);
}

void pf_proto_keyed(pf_buf *out, uint8_t type, const char *key, uint64_t a, uint64_t b)
{
    size_t s = begin(out, type);
    put_str(out, key ? key : "", PF_STORE_KEY_MAX);
    if (type == PF_PT_PUT || type == PF_PT_GET)
        pf_buf_u64le(out, a);
    if (type == PF_PT_GET)
        pf_buf_u64le(out, b);
    end(out, s);
}

void pf_proto_sweep(pf_buf *out, int64_t before)
{
    size_t s = begin(out, PF_PT_SWEEP);
    pf_buf_u64le(out, (uint64_t)before);
    end(out, s);
}

void pf_proto_empty(pf_buf *out, uint8_t type)
{
    end(out, begin(out, type));
}

void pf_proto_data(pf_buf *out, const void *p, size_t n)
{
    size_t s = begin(out, PF_PT_DATA);
    pf_buf_append(out, p, n);
    end(out, s);
}

void pf_proto_size(pf_buf *out, uint64_t size)
{
    size_t s = begin(out, PF_PT_SIZE);
    pf_buf_u64le(out, size);
    end(out, s);
}

void pf_proto_swept(pf_buf *out, uint64_t removed, uint64_t bytes)
{
    size_t s = begin(out, PF_PT_SWEPT);
    pf_buf_u64le(out, removed);
    pf_buf_u64le(out, bytes);
    end(out, s);
}

void pf_proto_error(pf_buf *out, const pf_err *e)
{
    size_t s = begin(out, PF_PT_ERR);
    pf_buf_u8(out, (uint8_t)(e->code > 0 && e->code <= PF_EREFUSED ? e->code : PF_EGENERIC));
    pf_buf_u8(out, e->retryable ? 1 : 0);
    put_str(out, e->msg, PF_PROTO_MSG_MAX);
    end(out, s);
}

void pf_proto_entries_begin(pf_proto_entries *e, pf_buf *out)
{
    e->out = out;
    e->start = begin(out, PF_PT_ENTRIES);
    pf_buf_u16le(out, 0);
    e->count = 0;
}

int pf_proto_entries_add(pf_proto_entries *e, const char *key, uint64_t size)
{
    size_t n = strlen(key);
    pf_buf_u16le(e->out, (uint16_t)n);
    pf_buf_append(e->out, key, n);
    pf_buf_u64le(e->out, size);
    e->count++;
    /* Full when one more longest entry might not fit, or the count would overflow. */
    size_t body = e->out->len - e->start - 4;
    return body + 2 + PF_STORE_KEY_MAX + 8 > PF_PROTO_FRAME_MAX || e->count == UINT16_MAX;
}

void pf_proto_entries_end(pf_proto_entries *e)
{
    end(e->out, e->start);
    uint8_t *c = e->out->data + e->start + 5;
    c[0] = (uint8_t)(e->count & 0xff);
    c[1] = (uint8_t)(e->count >> 8);
}

/* Reads exactly n bytes; returns n, 0 at a clean end before any byte, or -1 (errno, or
 * EPIPE standing for "ended inside"). */
static ssize_t read_full(int fd, uint8_t *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) {
            if (got == 0)
                return 0;
            errno = EPIPE;
            return -1;
        }
        got += (size_t)r;
    }
    return (ssize_t)got;
}

int pf_proto_read_frame(int fd, pf_buf *body, pf_err *err)
{
    uint8_t hdr[4];
    uint32_t n = 0;
    ssize_t r = read_full(fd, hdr, 4);
    if (r == 0)
        return 1;
    if (r < 0)
        return errno == EPIPE ? pf_err_set(err, PF_ECORRUPT, "protocol: input ends inside a frame")
                              : pf_err_sys(err, PF_EIO, "protocol: cannot read");
    if (pf_proto_frame_len(hdr, &n, err) < 0)
        return -1;
    pf_buf_reset(body);
    pf_buf_reserve(body, n);
    r = read_full(fd, body->data, n);
    if (r != (ssize_t)n)
        return r < 0 && errno != EPIPE
                   ? pf_err_sys(err, PF_EIO, "protocol: cannot read")
                   : pf_err_set(err, PF_ECORRUPT, "protocol: input ends inside a frame");
    body->len = n;
    body->data[n] = 0;
    return 0;
}

int pf_proto_write_all(int fd, const void *p, size_t n, pf_err *err)
{
    const uint8_t *c = p;
    while (n > 0) {
        ssize_t w = write(fd, c, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return pf_err_sys(err, PF_EIO, "protocol: cannot write");
        }
        c += w;
        n -= (size_t)w;
    }
    return 0;
}
