#include "component/pgphys.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "common/log.h"

int pf_pgphys_wal_name(const char *lsn, uint32_t tli, uint64_t seg_size, char out[25])
{
    unsigned hi, lo;
    char tail;
    if (!lsn || sscanf(lsn, "%X/%X%c", &hi, &lo, &tail) != 2 || seg_size == 0 ||
        seg_size > (1ull << 30))
        return -1;
    uint64_t pos = ((uint64_t)hi << 32) | lo;
    uint64_t segno = pos / seg_size, per = 0x100000000ull / seg_size;
    snprintf(out, 25, "%08X%08X%08X", tli, (uint32_t)(segno / per), (uint32_t)(segno % per));
    return 0;
}

/* The tar stream of one archive, cut into entries as it arrives in CopyData messages of
 * any size. Directories stay open until the archive ends: PostgreSQL sends global/pg_control
 * last, after it has left global/. */
typedef struct open_dir {
    char *path; /* relative to the data directory; "" for the data directory itself */
    pf_dir *d;
} open_dir;

typedef struct tar_state {
    pf_archiver *a;
    open_dir *dirs;
    size_t ndirs, cap;
    uint8_t hdr[512];
    size_t hlen;
    uint64_t left; /* bytes of the current file still to come */
    uint64_t pad;  /* bytes of padding after it */
    pf_sink *file;
    int ended; /* an all-zero header: end of archive */
    uint64_t files, bytes;
} tar_state;

static pf_dir *find_dir(tar_state *t, const char *path)
{
    for (size_t i = t->ndirs; i-- > 0;)
        if (!strcmp(t->dirs[i].path, path))
            return t->dirs[i].d;
    return NULL;
}

/* The open directory path names, opening it and its parents as needed. */
static pf_dir *get_dir(tar_state *t, const char *path, pf_err *err)
{
    pf_dir *d = find_dir(t, path);
    if (d)
        return d;
    char *parent = strdup(path), *slash = strrchr(parent, '/');
    const char *leaf = slash ? path + (slash - parent) + 1 : path;
    if (slash)
        *slash = 0;
    else
        parent[0] = 0;
    pf_dir *p = get_dir(t, parent, err);
    free(parent);
    if (!p)
        return NULL;
    if (t->ndirs == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 64;
        t->dirs = realloc(t->dirs, t->cap * sizeof *t->dirs);
    }
    d = pf_dir_begin(t->a, p, leaf, err);
    if (!d)
        return NULL;
    t->dirs[t->ndirs].path = strdup(path);
    t->dirs[t->ndirs].d = d;
    t->ndirs++;
    return d;
}

static uint64_t octal(const uint8_t *p, size_t n)
{
    if (p[0] & 0x80) { /* base-256, for sizes past 8 GiB */
        uint64_t v = p[0] & 0x7f;
        for (size_t i = 1; i < n; i++)
            v = (v << 8) | p[i];
        return v;
    }
    uint64_t v = 0;
    size_t i = 0;
    while (i < n && (p[i] == ' ' || p[i] == 0))
        i++;
    for (; i < n && p[i] >= '0' && p[i] <= '7'; i++)
        v = v * 8 + (uint64_t)(p[i] - '0');
    return v;
}

static int header(tar_state *t, pf_err *err)
{
    const uint8_t *h = t->hdr;
    int zero = 1;
    for (int i = 0; i < 512 && zero; i++)
        zero = h[i] == 0;
    if (zero) {
        t->ended = 1;
        return 0;
    }
    unsigned sum = 0;
    for (int i = 0; i < 512; i++)
        sum += (i >= 148 && i < 156) ? ' ' : h[i];
    if (sum != octal(h + 148, 8))
        return pf_err_set(err, PF_ECOMPONENT, "base backup: a tar header fails its checksum");
    char name[256 + 2];
    size_t plen = strnlen((const char *)h + 345, 155);
    size_t nlen = strnlen((const char *)h, 100);
    if (plen && !memcmp(h + 257, "ustar", 5))
        snprintf(name, sizeof name, "%.*s/%.*s", (int)plen, h + 345, (int)nlen, h);
    else
        snprintf(name, sizeof name, "%.*s", (int)nlen, h);
    size_t len = strlen(name);
    while (len && name[len - 1] == '/')
        name[--len] = 0;
    while (!strncmp(name, "./", 2))
        memmove(name, name + 2, strlen(name + 2) + 1);
    char type = (char)h[156];
    uint64_t size = octal(h + 124, 12);
    t->left = (type == '0' || type == 0) ? size : 0;
    t->pad = (512 - size % 512) % 512;
    if (type != '0' && type != 0)
        t->pad = size ? t->pad + size : 0; /* skip any body of other types */
    if (!len)
        return 0;
    if (type == '5')
        return get_dir(t, name, err) ? 0 : -1;
    if (type == '2')
        return pf_err_set(err, PF_ECOMPONENT,
                          "base backup: %s is a symbolic link (a tablespace or a pg_wal "
                          "elsewhere): not supported yet",
                          name);
    if (type != '0' && type != 0) {
        pf_warn("base backup: skipping %s (tar entry type %c)", name, type);
        return 0;
    }
    char *slash = strrchr(name, '/');
    const char *leaf = slash ? slash + 1 : name;
    if (slash)
        *slash = 0;
    pf_dir *d = get_dir(t, slash ? name : "", err);
    if (!d)
        return -1;
    t->file = pf_archive_stream_begin(t->a, d, leaf, 0600, err);
    if (!t->file)
        return -1;
    t->files++;
    if (t->left == 0) {
        pf_sink *f = t->file;
        t->file = NULL;
        return pf_archive_stream_end(t->a, f, err);
    }
    return 0;
}

static int tar_feed(tar_state *t, const uint8_t *p, size_t n, pf_err *err)
{
    while (n) {
        if (t->ended)
            return 0; /* the end blocks (or anything after them) */
        if (t->left) {
            size_t k = n < t->left ? n : (size_t)t->left;
            if (pf_sink_write(t->file, p, k, err))
                return -1;
            t->bytes += k;
            t->left -= k;
            p += k;
            n -= k;
            if (!t->left) {
                pf_sink *f = t->file;
                t->file = NULL;
                if (pf_archive_stream_end(t->a, f, err))
                    return -1;
            }
            continue;
        }
        if (t->pad) {
            size_t k = n < t->pad ? n : (size_t)t->pad;
            t->pad -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = 512 - t->hlen;
        if (k > n)
            k = n;
        memcpy(t->hdr + t->hlen, p, k);
        t->hlen += k;
        p += k;
        n -= k;
        if (t->hlen == 512) {
            t->hlen = 0;
            if (header(t, err))
                return -1;
        }
    }
    return 0;
}

/* Closes the open directories, children first (they were opened after their parents). */
static int tar_close(tar_state *t, int ok, pf_err *err)
{
    int rc = 0;
    if (t->file) {
        pf_archive_stream_abort(t->file);
        t->file = NULL;
        if (ok)
            rc = pf_err_set(err, PF_ECOMPONENT, "base backup: the tar stream ended inside a file");
    }
    for (size_t i = t->ndirs; i-- > 0;) {
        if (ok && !rc)
            rc = pf_dir_end(t->a, t->dirs[i].d, NULL, err);
        else
            pf_dir_abort(t->dirs[i].d);
        free(t->dirs[i].path);
    }
    free(t->dirs);
    t->dirs = NULL;
    t->ndirs = 0;
    return rc;
}

static void one_line(const char *msg, char *out, size_t n)
{
    snprintf(out, n, "%s", msg ? msg : "");
    for (char *c = out; *c; c++)
        if (*c == '\n')
            *c = (c[1] ? ' ' : 0);
}

static int conn_fail(PGconn *c, int code, const char *what, pf_err *err)
{
    char msg[512];
    one_line(c ? PQerrorMessage(c) : "out of memory", msg, sizeof msg);
    return pf_err_set(err, code, "base backup: %s: %s", what, msg);
}

/* The COPY stream is read by a thread of its own into a bounded queue, so that the server
 * keeps sending while this thread chunks and hashes (the most CPU of a base backup): on a
 * busy machine the two otherwise take turns, each waiting for the other. */
#define READ_AHEAD_BYTES (4u << 20)

typedef struct copy_msg {
    char *buf; /* from PQgetCopyData; NULL: the end of the stream */
    int n;     /* its length, or PQgetCopyData's -2 (an error) at the end */
} copy_msg;

typedef struct copy_reader {
    PGconn *c;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    copy_msg *q;
    size_t head, count, cap, bytes;
    int done, stop;
} copy_reader;

static void *reader_main(void *arg)
{
    copy_reader *r = arg;
    for (;;) {
        char *buf = NULL;
        int n = PQgetCopyData(r->c, &buf, 0);
        pthread_mutex_lock(&r->mu);
        while (!r->stop && r->bytes >= READ_AHEAD_BYTES)
            pthread_cond_wait(&r->cond, &r->mu);
        if (r->stop) {
            pthread_mutex_unlock(&r->mu);
            if (buf)
                PQfreemem(buf);
            return NULL;
        }
        if (r->count == r->cap) {
            size_t cap = r->cap ? 2 * r->cap : 256;
            copy_msg *q = malloc(cap * sizeof *q);
            if (!q) {
                /* Ends the stream as a read error would: the main thread says so. */
                if (buf)
                    PQfreemem(buf);
                buf = NULL;
                n = -3;
            } else {
                for (size_t i = 0; i < r->count; i++)
                    q[i] = r->q[(r->head + i) % r->cap];
                free(r->q);
                r->q = q;
                r->head = 0;
                r->cap = cap;
            }
        }
        if (r->count < r->cap) {
            r->q[(r->head + r->count) % r->cap] = (copy_msg){n > 0 ? buf : NULL, n};
            r->count++;
            r->bytes += n > 0 ? (size_t)n : 0;
        }
        if (n <= 0)
            r->done = 1;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->mu);
        if (n <= 0)
            return NULL;
    }
}

/* The next message, waiting for it: n as PQgetCopyData returns it (-3: out of memory). */
static int reader_next(copy_reader *r, char **buf)
{
    pthread_mutex_lock(&r->mu);
    while (!r->count && !r->done)
        pthread_cond_wait(&r->cond, &r->mu);
    int n = -3;
    *buf = NULL;
    if (r->count) {
        copy_msg m = r->q[r->head];
        r->head = (r->head + 1) % r->cap;
        r->count--;
        r->bytes -= m.n > 0 ? (size_t)m.n : 0;
        *buf = m.buf;
        n = m.n;
        pthread_cond_broadcast(&r->cond);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int reader_start(copy_reader *r, PGconn *c)
{
    memset(r, 0, sizeof *r);
    r->c = c;
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
    if (pthread_create(&r->thread, NULL, reader_main, r)) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cond);
        return -1;
    }
    return 0;
}

/* Joins the thread; when the stream has not ended, the socket is shut down first so that
 * a read blocked on it returns. The connection is left to the caller. */
static void reader_stop(copy_reader *r)
{
    pthread_mutex_lock(&r->mu);
    int ended = r->done && r->count == 0;
    r->stop = 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
    if (!ended)
        shutdown(PQsocket(r->c), SHUT_RDWR);
    pthread_join(r->thread, NULL);
    for (size_t i = 0; i < r->count; i++) {
        copy_msg *m = &r->q[(r->head + i) % r->cap];
        if (m->buf)
            PQfreemem(m->buf);
    }
    free(r->q);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
}

int pf_pgphys_backup(pf_archiver *a, pf_dir *parent, const char *conninfo, cJSON *component,
                     pf_err *err)
{
    const char *keys[] = {"dbname", "replication", "application_name", NULL};
    const char *vals[] = {conninfo ? conninfo : "", "true", "permafrost", NULL};
    PGconn *c = PQconnectdbParams(keys, vals, 1);
    PGresult *res = NULL;
    tar_state t = {.a = a};
    pf_dir *top = NULL, *base = NULL;
    pf_sink *manifest = NULL;
    int rc = -1, in_manifest = 0, archives = 0, reading = 0;
    copy_reader rd;
    char start_lsn[32] = "", end_lsn[32] = "";
    uint32_t tli = 0;
    uint64_t seg_size = 16u << 20;
    if (!c || PQstatus(c) != CONNECTION_OK) {
        conn_fail(c, PF_ECONN, "cannot connect", err);
        goto out;
    }
    int version = PQserverVersion(c);
    if (version < 150000) {
        pf_err_set(err, PF_ECOMPONENT,
                   "base backup: the server runs PostgreSQL %d.%d; physical backups need 15 or "
                   "newer (use the logical dump)",
                   version / 10000, version % 10000);
        goto out;
    }
    res = PQexec(c, "SHOW wal_segment_size");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        const char *v = PQgetvalue(res, 0, 0);
        char *end;
        unsigned long long n = strtoull(v, &end, 10);
        if (!strcmp(end, "MB"))
            seg_size = n << 20;
        else if (!strcmp(end, "GB"))
            seg_size = n << 30;
    }
    PQclear(res);
    res = NULL;
    if (!PQsendQuery(c, "BASE_BACKUP (LABEL 'permafrost', CHECKPOINT 'fast', WAIT false, "
                        "MANIFEST 'yes')")) {
        conn_fail(c, PF_ECOMPONENT, "BASE_BACKUP", err);
        goto out;
    }
    /* Two result sets first: the start position, then the tablespaces. */
    for (int i = 0; i < 2; i++) {
        res = PQgetResult(c);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            conn_fail(c, PF_ECOMPONENT, "BASE_BACKUP", err);
            goto out;
        }
        if (i == 0 && PQntuples(res) == 1 && PQnfields(res) >= 2) {
            snprintf(start_lsn, sizeof start_lsn, "%s", PQgetvalue(res, 0, 0));
            tli = (uint32_t)strtoul(PQgetvalue(res, 0, 1), NULL, 10);
        }
        if (i == 1 && PQntuples(res) > 1) {
            pf_err_set(err, PF_ECOMPONENT,
                       "base backup: the cluster has tablespaces outside its data directory: "
                       "not supported yet (use the logical dump)");
            goto out;
        }
        PQclear(res);
    }
    res = PQgetResult(c);
    if (PQresultStatus(res) != PGRES_COPY_OUT) {
        conn_fail(c, PF_ECOMPONENT, "BASE_BACKUP did not start its data stream", err);
        goto out;
    }
    PQclear(res);
    res = NULL;
    if (!(top = pf_dir_begin(a, parent, PF_PGPHYS_DIR, err)))
        goto out;
    if (reader_start(&rd, c)) {
        pf_err_set(err, PF_EGENERIC, "base backup: cannot start a thread");
        goto out;
    }
    reading = 1;
    for (;;) {
        char *buf = NULL;
        int n = reader_next(&rd, &buf);
        if (n == -1)
            break;
        if (n == -3) {
            pf_err_set(err, PF_EGENERIC, "base backup: out of memory");
            goto out;
        }
        if (n < 0) {
            reader_stop(&rd);
            reading = 0;
            conn_fail(c, PF_ECOMPONENT, "reading the data stream", err);
            goto out;
        }
        int bad = 0;
        switch (n > 0 ? buf[0] : 0) {
        case 'n': /* a new archive: its name and tablespace location follow */
            if (++archives > 1 || strnlen(buf + 1, (size_t)n - 1) == (size_t)n - 1 ||
                strcmp(buf + 1, "base.tar")) {
                pf_err_set(err, PF_ECOMPONENT,
                           "base backup: archive \"%.40s\" besides base.tar: tablespaces are "
                           "not supported yet",
                           buf + 1);
                bad = 1;
            } else if (!(base = pf_dir_begin(a, top, "base", err))) {
                bad = 1;
            } else {
                /* Entries of base.tar hang off "" (the data directory). */
                t.dirs = malloc(64 * sizeof *t.dirs);
                t.cap = 64;
                t.dirs[0].path = strdup("");
                t.dirs[0].d = base;
                t.ndirs = 1;
                base = NULL;
            }
            break;
        case 'm': /* the manifest follows, after the last archive */
            if (in_manifest || !t.ndirs || tar_close(&t, 1, err) ||
                !(manifest = pf_archive_stream_begin(a, top, "backup_manifest", 0600, err)))
                bad = 1;
            in_manifest = 1;
            break;
        case 'd':
            if (in_manifest)
                bad = pf_sink_write(manifest, buf + 1, (size_t)n - 1, err) != 0;
            else if (t.ndirs)
                bad = tar_feed(&t, (const uint8_t *)buf + 1, (size_t)n - 1, err) != 0;
            else
                bad = pf_err_set(err, PF_ECOMPONENT, "base backup: data before any archive");
            break;
        case 'p': /* progress: bytes sent so far */
            break;
        default:
            bad = pf_err_set(err, PF_ECOMPONENT,
                             "base backup: unknown message type %d in the "
                             "data stream",
                             n > 0 ? buf[0] : -1);
        }
        PQfreemem(buf);
        if (bad)
            goto out;
    }
    reader_stop(&rd);
    reading = 0;
    if (!in_manifest) {
        pf_err_set(err, PF_ECOMPONENT, "base backup: the server sent no manifest");
        goto out;
    }
    if (pf_archive_stream_end(a, manifest, err)) {
        manifest = NULL;
        goto out;
    }
    manifest = NULL;
    /* Then: the end of the COPY, the end position, the end of the command. */
    while ((res = PQgetResult(c))) {
        ExecStatusType st = PQresultStatus(res);
        if (st == PGRES_TUPLES_OK && PQntuples(res) == 1 && PQnfields(res) >= 2)
            snprintf(end_lsn, sizeof end_lsn, "%s", PQgetvalue(res, 0, 0));
        else if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
            conn_fail(c, PF_ECOMPONENT, "BASE_BACKUP failed", err);
            goto out;
        }
        PQclear(res);
    }
    char start_wal[25], end_wal[25];
    if (pf_pgphys_wal_name(start_lsn, tli, seg_size, start_wal) ||
        pf_pgphys_wal_name(end_lsn, tli, seg_size, end_wal)) {
        pf_err_set(err, PF_ECOMPONENT,
                   "base backup: the server sent no valid start or end "
                   "position (\"%s\", \"%s\")",
                   start_lsn, end_lsn);
        goto out;
    }
    if (pf_dir_end(a, top, NULL, err)) {
        top = NULL;
        goto out;
    }
    top = NULL;
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    char ts[32];
    snprintf(ts, sizeof ts, "%" PRId64, (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
    cJSON_AddStringToObject(component, "status", "ok");
    cJSON_AddNumberToObject(component, "server_version_num", version);
    cJSON_AddNumberToObject(component, "timeline", tli);
    cJSON_AddStringToObject(component, "start_lsn", start_lsn);
    cJSON_AddStringToObject(component, "end_lsn", end_lsn);
    cJSON_AddStringToObject(component, "start_wal", start_wal);
    cJSON_AddStringToObject(component, "end_wal", end_wal);
    cJSON_AddNumberToObject(component, "wal_segment_size", (double)seg_size);
    cJSON_AddStringToObject(component, "end_time_ns", ts);
    cJSON_AddNumberToObject(component, "files", (double)t.files);
    cJSON_AddNumberToObject(component, "bytes", (double)t.bytes);
    rc = 0;
out:
    if (reading)
        reader_stop(&rd);
    if (res)
        PQclear(res);
    if (manifest)
        pf_archive_stream_abort(manifest);
    tar_close(&t, 0, err);
    if (base)
        pf_dir_abort(base);
    if (top)
        pf_dir_abort(top);
    PQfinish(c);
    return rc;
}
