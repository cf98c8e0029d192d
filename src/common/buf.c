#include "common/buf.h"

#include <openssl/crypto.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void pf_buf_reserve(pf_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap)
        return;
    size_t want = b->cap ? b->cap : 64;
    while (want < b->len + extra + 1)
        want *= 2;
    uint8_t *p = realloc(b->data, want);
    if (!p) {
        fprintf(stderr, "permafrost: out of memory (wanted %zu bytes)\n", want);
        abort();
    }
    b->data = p;
    b->cap = want;
}

void pf_buf_append(pf_buf *b, const void *p, size_t n)
{
    pf_buf_reserve(b, n);
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void pf_buf_append_str(pf_buf *b, const char *s)
{
    pf_buf_append(b, s, strlen(s));
}

void pf_buf_printf(pf_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    pf_buf_reserve(b, (size_t)n);
    va_start(ap, fmt);
    vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

void pf_buf_u8(pf_buf *b, uint8_t v)
{
    pf_buf_append(b, &v, 1);
}

void pf_buf_u16le(pf_buf *b, uint16_t v)
{
    uint8_t p[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    pf_buf_append(b, p, 2);
}

void pf_buf_u32le(pf_buf *b, uint32_t v)
{
    uint8_t p[4];
    pf_put_le32(p, v);
    pf_buf_append(b, p, 4);
}

void pf_buf_u64le(pf_buf *b, uint64_t v)
{
    uint8_t p[8];
    pf_put_le64(p, v);
    pf_buf_append(b, p, 8);
}

void pf_buf_reset(pf_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = 0;
}

void pf_buf_free(pf_buf *b)
{
    if (b->data) {
        OPENSSL_cleanse(b->data, b->cap);
        free(b->data);
    }
    b->data = NULL;
    b->len = b->cap = 0;
}

void pf_buf_release(pf_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

uint8_t *pf_buf_detach(pf_buf *b, size_t *len)
{
    uint8_t *p = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}

void pf_reader_init(pf_reader *r, const void *p, size_t len)
{
    r->p = p;
    r->len = len;
    r->pos = 0;
    r->bad = 0;
}

int pf_reader_bytes(pf_reader *r, size_t n, const uint8_t **p)
{
    if (r->bad || n > r->len - r->pos) {
        r->bad = 1;
        return -1;
    }
    *p = r->p + r->pos;
    r->pos += n;
    return 0;
}

int pf_reader_u8(pf_reader *r, uint8_t *v)
{
    const uint8_t *p;
    if (pf_reader_bytes(r, 1, &p))
        return -1;
    *v = p[0];
    return 0;
}

int pf_reader_u16le(pf_reader *r, uint16_t *v)
{
    const uint8_t *p;
    if (pf_reader_bytes(r, 2, &p))
        return -1;
    *v = (uint16_t)(p[0] | (p[1] << 8));
    return 0;
}

int pf_reader_u32le(pf_reader *r, uint32_t *v)
{
    const uint8_t *p;
    if (pf_reader_bytes(r, 4, &p))
        return -1;
    *v = pf_le32(p);
    return 0;
}

int pf_reader_u64le(pf_reader *r, uint64_t *v)
{
    const uint8_t *p;
    if (pf_reader_bytes(r, 8, &p))
        return -1;
    *v = pf_le64(p);
    return 0;
}

size_t pf_reader_left(const pf_reader *r)
{
    return r->bad ? 0 : r->len - r->pos;
}

uint32_t pf_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

uint64_t pf_le64(const uint8_t *p)
{
    return (uint64_t)pf_le32(p) | (uint64_t)pf_le32(p + 4) << 32;
}

void pf_put_le32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

void pf_put_le64(uint8_t *p, uint64_t v)
{
    pf_put_le32(p, (uint32_t)v);
    pf_put_le32(p + 4, (uint32_t)(v >> 32));
}
