/* The Redis component: a consistent RDB out of a running Redis, and back into one.
 *
 * Backup takes the RDB over the network the way a replica does (PSYNC ? -1, else SYNC):
 * consistent, and no access to the server's disk needed. We do not announce
 * "REPLCONF capa eof", so the master answers with a disk-based transfer at once
 * ("$<len>\r\n<bytes>") instead of a diskless one after repl-diskless-sync-delay; the
 * diskless form ("$EOF:<40-byte mark>\r\n<bytes><mark>") is still understood. When
 * replication is refused (ACL without +psync/+sync, a replica without its master, ...),
 * we fall back to BGSAVE and copying the dump file when it is readable here, with a
 * warning.
 *
 * Restore makes the target Redis a replica of a master we play on a local port: it
 * connects, we answer its handshake and send the RDB as a full resync, it loads it, we
 * detach it (REPLICAOF NO ONE). Only the target gets the RDB: we set a random masterauth
 * on it first (putting its own back afterwards) and serve only a connection that AUTHs
 * with it; when CONFIG SET is refused, only a connection from the target's address. No restart, no
 * access to its disk. When that is impossible, the RDB is written next to the server's dump file
 * with instructions.
 *
 * Passwords travel only to Redis; no message contains one. Memory stays bounded
 * whatever the RDB's size. */
#ifndef PF_COMPONENT_REDIS_H
#define PF_COMPONENT_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/err.h"
#include "common/stream.h"

/* One Redis server (as .env.production describes it). */
typedef struct pf_redis_conn {
    char *host;     /* host name or address; NULL when `socket` is set */
    int port;       /* TCP port (6379 by default) */
    char *socket;   /* unix socket path, or NULL */
    char *user;     /* ACL user, or NULL for the default user */
    char *password; /* NULL when none */
    int db;         /* database number (a full RDB holds all of them) */
    bool tls;       /* rediss://: not supported yet, refused with PF_EUSAGE */
} pf_redis_conn;

typedef struct pf_redis_info {
    char version[32];   /* redis_version of INFO server */
    const char *method; /* "PSYNC", "SYNC", "BGSAVE" (backup) or "REPLICAOF" (restore) */
    uint64_t rdb_bytes; /* bytes of RDB written to the sink / loaded */
    int64_t keys;       /* keys in all databases per INFO keyspace (backup: before the
                         * transfer; restore: after loading); -1 when unknown */
} pf_redis_info;

/* Streams a consistent RDB of the whole server into `sink` and fills *info. Returns 0,
 * or -1 with err: PF_ECONN (cannot connect, retryable), PF_EAUTH (password or user
 * rejected), PF_EUSAGE (TLS), PF_ECORRUPT (the payload is not an RDB or is cut short),
 * PF_ECOMPONENT (replication refused and the BGSAVE fallback impossible, saying why), or
 * the sink's error. On error the bytes already written are not a usable RDB. */
int pf_redis_fetch_rdb(const pf_redis_conn *c, pf_sink *sink, pf_redis_info *info, pf_err *err);

/* Returns 0 when the server holds no key in any database, else -1 with PF_EEXIST
 * ("Redis at H:P already holds N keys; ..."), or a connection error as above. */
int pf_redis_check_empty(const pf_redis_conn *c, pf_err *err);

/* Loads an RDB of `size` bytes from `src` into the running server at `c` (which should be
 * empty: the load replaces everything it holds; call pf_redis_check_empty first). `size`
 * < 0 means unknown: the RDB is then sent in the EOF-marked form, which every replica
 * since Redis 2.8.18 accepts. On success the server is a master again, holds the RDB's
 * data (checked: keys > 0 when the RDB has a database section), a BGSAVE has been
 * started so that the data reaches its disk, and *info (may be NULL) tells how many keys
 * it now has. Returns -1 with err on failure; when replication was
 * impossible the RDB is written as <dir>/<dbfilename>.permafrost on the server's host
 * (when that is this host) and the message says what to do next. */
int pf_redis_load_rdb(const pf_redis_conn *c, pf_source *src, int64_t size, pf_redis_info *info,
                      pf_err *err);

/* ---- pure parsers, exposed for tests and fuzzing ----------------------------------- */

#define PF_RESP_MAX_LINE 1024

enum pf_resp_kind {
    PF_RESP_NEWLINE = 1, /* a bare "\n": the master's keepalive while it prepares the RDB */
    PF_RESP_STATUS,      /* "+text\r\n" (line/line_len: the text) */
    PF_RESP_ERROR,       /* "-text\r\n" */
    PF_RESP_BULK_LEN,    /* "$<len>\r\n": bulk_len payload bytes follow */
    PF_RESP_BULK_EOF,    /* "$EOF:<40 bytes>\r\n": payload ends with eof_mark */
};

typedef struct pf_resp_item {
    int kind; /* enum pf_resp_kind */
    const char *line;
    size_t line_len;
    int64_t bulk_len;
    uint8_t eof_mark[40];
} pf_resp_item;

/* Parses one reply of the replication preamble at the start of buf. Returns the bytes it
 * used (> 0) with *item filled (line points into buf), 0 when more bytes are needed, or -1
 * when the bytes cannot be a valid reply (unknown type, line over PF_RESP_MAX_LINE, bad or
 * negative length, length over 2^50). */
ssize_t pf_resp_parse_preamble(const uint8_t *buf, size_t len, pf_resp_item *item);

/* Finds the end of an EOF-marked payload as it streams in. Feed each chunk; the bytes that
 * are surely payload are copied to `out` (room for n + 40 bytes needed) and *out_len set.
 * Returns 1 once the mark has been seen (out then holds the payload's last bytes; input
 * after the mark is ignored), else 0. The last 40 bytes are held back until they are
 * known not to be the mark. */
typedef struct pf_rdb_eof {
    uint8_t mark[40];
    uint8_t held[40];
    size_t nheld;
    bool done;
} pf_rdb_eof;

void pf_rdb_eof_init(pf_rdb_eof *st, const uint8_t mark[40]);
int pf_rdb_eof_feed(pf_rdb_eof *st, const uint8_t *in, size_t n, uint8_t *out, size_t *out_len);

/* One command as a replica sends it: a RESP array of bulk strings ("*2\r\n$4\r\nPING..."),
 * or an inline line ("PING\r\n"). Returns the bytes used (> 0) with up to max_args
 * arguments pointing into buf (*nargs set; extra arguments are counted but not stored), 0
 * when more bytes are needed, -1 when invalid (more than 64 arguments, an argument over
 * 64 KiB, a malformed header). */
typedef struct pf_resp_arg {
    const uint8_t *p;
    size_t len;
} pf_resp_arg;

ssize_t pf_resp_parse_command(const uint8_t *buf, size_t len, pf_resp_arg *args, int max_args,
                              int *nargs);

/* The master's side of the replication handshake on a connected socket, as the restore
 * plays it: answers PING, AUTH, REPLCONF until the peer asks for PSYNC or SYNC. With a
 * secret (the random masterauth the restore sets on the target), the peer must first
 * AUTH with it ("AUTH secret" or "AUTH user secret"): returns 1, having sent no byte of
 * the RDB, when it asks for anything but PING first or gives another password (err says
 * which). Returns 0 with *psync and *capa_eof when the sync may start, -1 on I/O errors. */
int pf_redis_master_handshake(int fd, const char *secret, bool *psync, bool *capa_eof, pf_err *err);

/* Looks at the start of an RDB: 1 when a database section (keys) follows the header and
 * auxiliary fields, 0 when the file ends right after them (no keys), -1 when it cannot
 * tell (not an RDB, cut short, or something else comes first). */
int pf_rdb_has_keys(const uint8_t *p, size_t n);

#endif
