/* The repository server protocol (docs/PROTOCOL.md): what `permafrost serve` and the ssh://
 * store say to each other over the ssh client's stdin/stdout. Messages are frames: a u32
 * little-endian length, then that many bytes, the first a type. Every length is bounded
 * before anything is allocated: a frame by PF_PROTO_FRAME_MAX, a key by PF_STORE_KEY_MAX, a
 * repository path by PF_PROTO_PATH_MAX, an object by PF_PROTO_OBJECT_MAX (sent in DATA
 * frames of at most PF_PROTO_DATA_MAX bytes), an error message by PF_PROTO_MSG_MAX; a list
 * reply comes in ENTRIES frames, each within the frame bound.
 *
 * This module only encodes and decodes; it does no I/O but pf_proto_read_frame and
 * pf_proto_write_all on plain file descriptors (the server's). Both sides decode with the
 * same function, which accepts any frame from either side: the receiver then checks the
 * type is one it expects at that point. */
#ifndef PF_PROTO_H
#define PF_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

#define PF_PROTO_MAGIC "PFSV"
#define PF_PROTO_VERSION 1
#define PF_PROTO_DATA_MAX (1u << 20)
/* The largest frame body: a full DATA frame and its type byte, with room to spare. */
#define PF_PROTO_FRAME_MAX (PF_PROTO_DATA_MAX + 64u)
#define PF_PROTO_PATH_MAX 4096
#define PF_PROTO_MSG_MAX 1000
/* A pack is at most pack_size (<= 1 GiB, FORMAT.md §2) plus one blob (PF_MAX_BLOB, 256 MiB)
 * and its header (PF_PACK_MAX_HEADER, 64 MiB): 1.5 GiB leaves a margin. */
#define PF_PROTO_OBJECT_MAX (1536ull << 20)

/* Capabilities a server announces in HELLO_OK. */
#define PF_PROTO_CAP_APPEND_ONLY 1u

enum pf_proto_type {
    /* client -> server */
    PF_PT_HELLO = 0x01,  /* magic[4] version u32, path: the repository on the server */
    PF_PT_PUT = 0x02,    /* key, size u64; then DATA frames holding exactly size bytes */
    PF_PT_GET = 0x03,    /* key, off u64, len u64 (UINT64_MAX: to the end) */
    PF_PT_STAT = 0x04,   /* key */
    PF_PT_LIST = 0x05,   /* prefix (may be empty) */
    PF_PT_REMOVE = 0x06, /* key */
    PF_PT_SWEEP = 0x07,  /* before i64 (Unix seconds) */
    PF_PT_BYE = 0x08,    /* nothing: the client is done */
    /* both ways */
    PF_PT_DATA = 0x10, /* bytes (1..PF_PROTO_DATA_MAX) */
    /* server -> client */
    PF_PT_OK = 0x80,       /* nothing: put or remove done, a listing complete */
    PF_PT_HELLO_OK = 0x81, /* version u32, caps u32, object_max u64 */
    PF_PT_SIZE = 0x82,     /* size u64: stat's answer; for get, DATA frames follow */
    PF_PT_ENTRIES = 0x83,  /* count u16, then count times (key, size u64) */
    PF_PT_SWEPT = 0x84,    /* removed u64, bytes u64 */
    PF_PT_ERR = 0x8f,      /* code u8 (enum pf_errcode), flags u8 (1: retryable), msg */
};

/* A decoded frame. Strings (key, prefix, path, msg) are copied NUL-terminated into str;
 * data points into the frame that was decoded and lives as long as it. */
typedef struct pf_proto_msg {
    uint8_t type;
    char str[PF_PROTO_PATH_MAX + 1];
    uint32_t version, caps;
    uint64_t a, b; /* PUT: size; GET: off, len; SIZE: size; SWEEP: before; SWEPT: removed,
                      bytes; HELLO_OK: object_max */
    int code;      /* ERR */
    bool retryable;
    const uint8_t *data; /* DATA: the bytes; ENTRIES: the entries after the count */
    size_t data_len;
    uint16_t count; /* ENTRIES */
} pf_proto_msg;

/* Checks the 4-byte length prefix of a frame: 1..PF_PROTO_FRAME_MAX, else PF_ECORRUPT. */
int pf_proto_frame_len(const uint8_t hdr[4], uint32_t *len, pf_err *err);

/* Decodes one frame body (without its length prefix). Every field is checked against its
 * bound, strings must hold no NUL byte, and nothing may follow the last field; an unknown
 * type, a short or long body is PF_ECORRUPT naming what was wrong. ENTRIES are checked
 * whole here, so pf_proto_entry_next cannot fail on a decoded frame. */
int pf_proto_decode(const uint8_t *body, size_t len, pf_proto_msg *m, pf_err *err);

/* Walks the entries of a decoded ENTRIES frame: *pos starts at 0. Fills key (a buffer of
 * PF_STORE_KEY_MAX + 1 bytes) and size; returns 1 while there are entries, 0 at the end. */
int pf_proto_entry_next(const pf_proto_msg *m, size_t *pos, char *key, uint64_t *size);

/* Encoders: each appends one whole frame (length prefix included) to out. */
void pf_proto_hello(pf_buf *out, uint32_t version, const char *path);
void pf_proto_hello_ok(pf_buf *out, uint32_t caps, uint64_t object_max);
/* PUT, GET, STAT, LIST, REMOVE: key (or prefix); a and b as in pf_proto_msg. */
void pf_proto_keyed(pf_buf *out, uint8_t type, const char *key, uint64_t a, uint64_t b);
void pf_proto_sweep(pf_buf *out, int64_t before);
/* OK and BYE. */
void pf_proto_empty(pf_buf *out, uint8_t type);
void pf_proto_data(pf_buf *out, const void *p, size_t n);
void pf_proto_size(pf_buf *out, uint64_t size);
void pf_proto_swept(pf_buf *out, uint64_t removed, uint64_t bytes);
/* The message is cut to PF_PROTO_MSG_MAX bytes. */
void pf_proto_error(pf_buf *out, const pf_err *e);

/* An ENTRIES frame being filled: begin, add while it returns 0 (1: full, send it and begin
 * again), end patches the length and count. */
typedef struct pf_proto_entries {
    pf_buf *out;
    size_t start;
    uint16_t count;
} pf_proto_entries;
void pf_proto_entries_begin(pf_proto_entries *e, pf_buf *out);
int pf_proto_entries_add(pf_proto_entries *e, const char *key, uint64_t size);
void pf_proto_entries_end(pf_proto_entries *e);

/* Reads one frame body from fd into body (replacing its contents). Returns 0, 1 on a clean
 * end of input before the first byte of a frame, or -1 (PF_EIO on a read error, PF_ECORRUPT
 * on a bad length or an end of input inside a frame). */
int pf_proto_read_frame(int fd, pf_buf *body, pf_err *err);
/* Writes all of p to fd (EINTR retried). -1 with PF_EIO. */
int pf_proto_write_all(int fd, const void *p, size_t n, pf_err *err);

#endif
