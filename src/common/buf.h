/* A growable byte buffer. Invariant: data is NULL when cap is 0; otherwise data has cap
 * bytes and one spare byte past len is always allocated, kept as NUL, so text can be
 * used as a C string. */
#ifndef PF_BUF_H
#define PF_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct pf_buf {
    uint8_t *data;
    size_t len;
    size_t cap;
} pf_buf;

#define PF_BUF_INIT                                                                                \
    {                                                                                              \
        NULL, 0, 0                                                                                 \
    }

/* Ensures room for `extra` more bytes past len. Aborts on out-of-memory. */
void pf_buf_reserve(pf_buf *b, size_t extra);
void pf_buf_append(pf_buf *b, const void *p, size_t n);
void pf_buf_append_str(pf_buf *b, const char *s);
void pf_buf_printf(pf_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void pf_buf_u8(pf_buf *b, uint8_t v);
void pf_buf_u16le(pf_buf *b, uint16_t v);
void pf_buf_u32le(pf_buf *b, uint32_t v);
void pf_buf_u64le(pf_buf *b, uint64_t v);
void pf_buf_reset(pf_buf *b);
/* Frees the memory, wiping it first (buffers may hold key material or plaintext). */
void pf_buf_free(pf_buf *b);
/* Frees the memory without the wipe, for buffers on the data path that hold only
 * ciphertext or the bytes of the files being backed up or restored: the files themselves,
 * the page cache and the restored copy hold the same bytes, and the wipe of every blob
 * was a measurable part of a restore's CPU (docs/DECISIONS.md). Never for key material. */
void pf_buf_release(pf_buf *b);
/* Gives the data to the caller (who frees it with free()) and leaves b empty. */
uint8_t *pf_buf_detach(pf_buf *b, size_t *len);

/* A bounds-checked reader over bytes that came from outside. Every get returns -1 and
 * sets `bad` once the input is short; later gets keep failing. */
typedef struct pf_reader {
    const uint8_t *p;
    size_t len;
    size_t pos;
    int bad;
} pf_reader;

void pf_reader_init(pf_reader *r, const void *p, size_t len);
int pf_reader_u8(pf_reader *r, uint8_t *v);
int pf_reader_u16le(pf_reader *r, uint16_t *v);
int pf_reader_u32le(pf_reader *r, uint32_t *v);
int pf_reader_u64le(pf_reader *r, uint64_t *v);
/* Points *p at the next n bytes without copying. */
int pf_reader_bytes(pf_reader *r, size_t n, const uint8_t **p);
size_t pf_reader_left(const pf_reader *r);

uint32_t pf_le32(const uint8_t *p);
uint64_t pf_le64(const uint8_t *p);
void pf_put_le32(uint8_t *p, uint32_t v);
void pf_put_le64(uint8_t *p, uint64_t v);

#endif
