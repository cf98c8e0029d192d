#include "component/s3mirror.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/alloc.h"
#include "common/log.h"
#include "repo/restorer.h"
#include "store/s3.h"

/* Bytes one GET asks for: a range of an object, or a whole small one. */
#define RANGE (8u << 20)
/* Objects waiting in the listing's order before a round of reads starts. */
#define QUEUE_MAX 256
/* Deepest key the tree takes (Paperclip's are 7 levels). */
#define DEPTH_MAX 64

/* ---- the record in a file's link ---- */

static void record_line(const pf_node *n, const char *name, char *out, size_t on)
{
    out[0] = 0;
    if (!n->link_len)
        return;
    size_t l = strlen(name);
    const char *p = n->link, *end = n->link + n->link_len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t len = nl ? (size_t)(nl - p) : (size_t)(end - p);
        if (len > l && !memcmp(p, name, l) && p[l] == ':') {
            size_t vl = len - l - 1;
            if (vl < on) {
                memcpy(out, p + l + 1, vl);
                out[vl] = 0;
            }
            return;
        }
        p += len + 1;
    }
}

void pf_s3mirror_record(const pf_node *n, char *etag, size_t en, char *ctype, size_t cn)
{
    record_line(n, "etag", etag, en);
    record_line(n, "content-type", ctype, cn);
}

/* Header values come from the server: nothing that would break a line. */
static void clean(char *s)
{
    for (; *s; s++)
        if (*s == '\n' || *s == '\r' || (unsigned char)*s < 0x20)
            *s = ' ';
}

/* ---- backup ---- */

typedef struct item {
    char *key;
    uint64_t size;
    char *etag;
    int64_t mtime_ns;
    pf_node *reuse; /* unchanged: a copy of the parent snapshot's file */
    bool failed;    /* a read failed in a way that leaves this object out */
    char ctype[256];
} item;

typedef struct job {
    size_t item;
    uint64_t off, len;
    pf_buf data;
    pf_err err;
    int rc;
    char etag[256];
} job;

typedef struct level {
    pf_dir *dir;
    char *name;
    /* The names used here so far (a hash set): files, and directories already closed. A
     * file and a directory of one name cannot both be; a closed directory seen again means
     * the listing does not keep a folder's keys together. */
    char **names;
    uint8_t *kinds; /* NAME_FILE or NAME_DIR */
    size_t nnames, cap;
} level;

/* The parent snapshot's directory along the current key's path. */
typedef struct plevel {
    char *name;
    pf_tree tree;
    bool loaded;
} plevel;

typedef struct mirror {
    plevel pl[DEPTH_MAX + 1]; /* pl[0]: the parent's media directory */
    int pdepth;
    pf_archiver *a;
    const pf_s3mirror_opts *o;
    pf_s3mirror_stats *st;
    level lv[DEPTH_MAX + 1]; /* lv[0]: the media directory itself */
    int depth;
    item q[QUEUE_MAX];
    size_t nq;
    /* one round of reads */
    job *jobs;
    size_t njobs, next_job;
    pthread_mutex_t mu;
    long retry_ms;
} mirror;

enum { NAME_FILE = 1, NAME_DIR = 2 };

static void level_clear(level *l)
{
    free(l->name);
    for (size_t i = 0; i < l->cap; i++)
        free(l->names[i]);
    free(l->names);
    free(l->kinds);
    memset(l, 0, sizeof *l);
}

static size_t name_hash(const char *s)
{
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* NAME_FILE or NAME_DIR when name is used at this level, else 0. */
static int name_kind(const level *l, const char *name)
{
    if (!l->cap)
        return 0;
    for (size_t i = name_hash(name) & (l->cap - 1);; i = (i + 1) & (l->cap - 1)) {
        if (!l->names[i])
            return 0;
        if (!strcmp(l->names[i], name))
            return l->kinds[i];
    }
}

static void name_put(char **names, uint8_t *kinds, size_t cap, char *name, uint8_t kind)
{
    size_t i = name_hash(name) & (cap - 1);
    while (names[i])
        i = (i + 1) & (cap - 1);
    names[i] = name;
    kinds[i] = kind;
}

static void name_add(level *l, const char *name, uint8_t kind)
{
    if (2 * (l->nnames + 1) > l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 16;
        char **names = pf_xrealloc(NULL, cap * sizeof *names);
        uint8_t *kinds = pf_xrealloc(NULL, cap);
        memset(names, 0, cap * sizeof *names);
        for (size_t i = 0; i < l->cap; i++)
            if (l->names[i])
                name_put(names, kinds, cap, l->names[i], l->kinds[i]);
        free(l->names);
        free(l->kinds);
        l->names = names;
        l->kinds = kinds;
        l->cap = cap;
    }
    name_put(l->names, l->kinds, l->cap, pf_xstrdup(name), kind);
    l->nnames++;
}

static void item_free(item *it)
{
    if (it->reuse) {
        pf_node_free(it->reuse);
        free(it->reuse);
    }
    free(it->key);
    free(it->etag);
    memset(it, 0, sizeof *it);
}

static void plevel_clear(plevel *l)
{
    free(l->name);
    pf_tree_free(&l->tree);
    memset(l, 0, sizeof *l);
}

/* Closes directories down to depth keep. */
static int close_to(mirror *m, int keep, pf_err *err)
{
    while (m->depth > keep) {
        level *l = &m->lv[m->depth];
        int rc = pf_dir_end(m->a, l->dir, NULL, err);
        l->dir = NULL;
        name_add(&m->lv[m->depth - 1], l->name, NAME_DIR);
        level_clear(l);
        m->depth--;
        if (rc)
            return -1;
    }
    return 0;
}

/* Splits key into its directories and file name; false for a key no path fits (an empty,
 * "." or ".." segment, or a trailing '/'). */
static bool split_key(char *key, char **seg, int *nseg)
{
    int n = 0;
    char *p = key;
    for (;;) {
        char *s = strchr(p, '/');
        if (s)
            *s = 0;
        if (!*p || !strcmp(p, ".") || !strcmp(p, "..") || n >= DEPTH_MAX)
            return false;
        seg[n++] = p;
        if (!s)
            break;
        p = s + 1;
    }
    *nseg = n;
    return true;
}

static void skip(mirror *m, const char *key, const char *why)
{
    pf_warn("media: object %s of %s %s: left out", key, m->o->label, why);
    char path[1200];
    snprintf(path, sizeof path, "s3:%s", key);
    pf_archiver_skip(m->a, path);
    m->st->skipped++;
}

/* Opens the directories of key (a copy is split) and returns its level, or -1 with err for a
 * failure of the repository or a listing that does not keep folders together, -2 for a key
 * that does not fit (skipped: no path, or a file and a folder of one name). *file gets the
 * file name (pointing into *buf, which the caller frees). */
static int open_dirs(mirror *m, const char *key, char **buf, const char **file, pf_err *err)
{
    char *seg[DEPTH_MAX];
    int nseg;
    *buf = pf_xstrdup(key);
    if (!split_key(*buf, seg, &nseg)) {
        skip(m, key, "has a key that is no path");
        return -2;
    }
    int common = 0;
    while (common < nseg - 1 && common < m->depth && !strcmp(m->lv[common + 1].name, seg[common]))
        common++;
    if (close_to(m, common, err))
        return -1;
    for (int i = common; i < nseg - 1; i++) {
        level *up = &m->lv[m->depth];
        int k = name_kind(up, seg[i]);
        if (k == NAME_FILE) {
            skip(m, key, "is below a key that is an object itself");
            return -2;
        }
        if (k == NAME_DIR)
            return pf_err_set(err, PF_EIO,
                              "%s lists the keys of a folder apart (%s comes after other keys "
                              "left its folder): it cannot be mirrored; report this with the "
                              "provider's name",
                              m->o->label, key);
        pf_dir *d = pf_dir_begin(m->a, up->dir, seg[i], err);
        if (!d)
            return -1;
        m->depth++;
        m->lv[m->depth].dir = d;
        m->lv[m->depth].name = pf_xstrdup(seg[i]);
    }
    *file = seg[nseg - 1];
    if (name_kind(&m->lv[m->depth], *file)) {
        skip(m, key, "is an object where other keys make a folder");
        return -2;
    }
    return m->depth;
}

static void note_file(level *l, const char *name)
{
    name_add(l, name, NAME_FILE);
}

/* The parent snapshot's entry for key, walking the parent's trees along with the listing
 * (which keeps a folder's keys together) (one tree per level in memory); NULL when it has none. */
static const pf_node *parent_file(mirror *m, const char *key)
{
    if (!m->pl[0].loaded)
        return NULL;
    char *copy = pf_xstrdup(key), *seg[DEPTH_MAX];
    int nseg;
    const pf_node *found = NULL;
    if (!split_key(copy, seg, &nseg))
        goto out;
    int common = 0;
    while (common < nseg - 1 && common < m->pdepth && m->pl[common + 1].name &&
           !strcmp(m->pl[common + 1].name, seg[common]))
        common++;
    while (m->pdepth > common)
        plevel_clear(&m->pl[m->pdepth--]);
    for (int i = common; i < nseg - 1; i++) {
        plevel *up = &m->pl[m->pdepth], *l = &m->pl[m->pdepth + 1];
        const pf_node *d = up->loaded ? pf_tree_find(&up->tree, seg[i], strlen(seg[i])) : NULL;
        m->pdepth++;
        l->name = pf_xstrdup(seg[i]);
        if (d && d->type == PF_NODE_DIR && d->nblobs == 1) {
            pf_err e = {0};
            l->loaded = pf_repo_load_tree(m->o->repo, d->blobs[0], &l->tree, &e) == 0;
        }
    }
    if (m->pl[m->pdepth].loaded)
        found = pf_tree_find(&m->pl[m->pdepth].tree, seg[nseg - 1], strlen(seg[nseg - 1]));
out:
    free(copy);
    return found;
}

static bool same_object(const pf_node *old, const pf_s3_object *o)
{
    if (!old || old->type != PF_NODE_FILE || old->size != o->size || !o->etag[0])
        return false;
    char etag[256], ct[256];
    pf_s3mirror_record(old, etag, sizeof etag, ct, sizeof ct);
    return !strcmp(etag, o->etag);
}

static long env_ms(const char *name, long def)
{
    const char *v = getenv(name);
    if (!v || !*v)
        return def;
    char *end;
    long x = strtol(v, &end, 10);
    return *end || x < 0 ? def : x;
}

static void *reader(void *p)
{
    mirror *m = p;
    for (;;) {
        pthread_mutex_lock(&m->mu);
        size_t i = m->next_job < m->njobs ? m->next_job++ : m->njobs;
        pthread_mutex_unlock(&m->mu);
        if (i >= m->njobs)
            return NULL;
        job *j = &m->jobs[i];
        item *it = &m->q[j->item];
        long delay = m->retry_ms;
        for (int attempt = 1;; attempt++) {
            pf_s3_reply reply = {.etag = "", .content_type = ""};
            pf_buf_reset(&j->data);
            j->err = (pf_err){0};
            j->rc =
                pf_s3_get_object(m->o->bucket, it->key, j->off, j->len, &j->data, &reply, &j->err);
            pthread_mutex_lock(&m->mu);
            m->st->gets++;
            pthread_mutex_unlock(&m->mu);
            memcpy(j->etag, reply.etag, sizeof j->etag);
            if (j->off == 0 && j->rc == 0) {
                snprintf(it->ctype, sizeof it->ctype, "%s", reply.content_type);
                clean(it->ctype);
            }
            if (j->rc == 0 || !j->err.retryable || attempt >= 4)
                break;
            struct timespec ts = {delay / 1000, (delay % 1000) * 1000000L};
            nanosleep(&ts, NULL);
            delay *= 2;
        }
    }
}

/* Reads the jobs of one round, a few at a time. */
static void read_round(mirror *m)
{
    int k = m->o->connections > 0 ? m->o->connections : 4;
    if ((size_t)k > m->njobs)
        k = (int)m->njobs;
    pthread_t t[32];
    if (k > 32)
        k = 32;
    m->next_job = 0;
    int started = 0;
    for (int i = 0; i < k; i++)
        if (pthread_create(&t[i], NULL, reader, m) == 0)
            started++;
    if (!started)
        reader(m);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
}

/* A failed read: the whole run fails unless the object itself is the cause (gone since
 * the listing). Returns 0 when the object is just left out. */
static int read_failed(mirror *m, const item *it, const job *j, pf_err *err)
{
    if (j->err.code == PF_ENOTFOUND) {
        pf_info("media: object %s was removed from the bucket during the backup", it->key);
        return 0;
    }
    if (j->err.code == PF_ECORRUPT) {
        /* shorter than listed: replaced by a smaller version since */
        skip(m, it->key, "changed while it was read (the next backup reads it)");
        return 0;
    }
    *err = j->err;
    if (err->code == PF_EAUTH)
        return pf_err_set(err, PF_EAUTH,
                          "%s refused to let the keys of .env.production (AWS_ACCESS_KEY_ID, "
                          "AWS_SECRET_ACCESS_KEY) read %s: give them s3:GetObject there, or back "
                          "up without --media-from-s3",
                          m->o->label, it->key);
    return pf_err_prefix(err, "%s: reading %s", m->o->label, it->key);
}

static void add_job(mirror *m, size_t *cap, size_t i, uint64_t off, uint64_t len)
{
    if (m->njobs == *cap) {
        *cap = *cap ? *cap * 2 : 16;
        m->jobs = pf_xrealloc(m->jobs, *cap * sizeof *m->jobs);
    }
    m->jobs[m->njobs++] = (job){.item = i, .off = off, .len = len};
}

static void free_jobs(mirror *m)
{
    for (size_t i = 0; i < m->njobs; i++)
        pf_buf_free(&m->jobs[i].data);
    m->njobs = 0;
}

/* Writes the jobs [from, to) of item i into sink; 1 when the item is left out (its read
 * failed in a way that is the object's, or it was replaced meanwhile), 0 written, -1 failed. */
static int write_jobs(mirror *m, item *it, pf_sink *sink, size_t from, size_t to, pf_err *err)
{
    for (size_t x = from; x < to; x++) {
        job *j = &m->jobs[x];
        if (j->rc)
            return read_failed(m, it, j, err) ? -1 : 1;
        if (it->etag[0] && j->etag[0] && strcmp(j->etag, it->etag)) {
            skip(m, it->key, "was replaced while it was read (the next backup reads it)");
            return 1;
        }
        m->st->bytes_read += j->data.len;
        if (pf_sink_write(sink, j->data.data, j->data.len, err))
            return -1;
    }
    return 0;
}

/* One object that must be read: its file, from the round's job (small) or in rounds of its
 * own (large). */
static int read_object(mirror *m, size_t i, size_t *jn, pf_err *err)
{
    item *it = &m->q[i];
    /* This object's jobs of the round, taken whether or not it is written. */
    size_t from = *jn;
    while (*jn < m->njobs && m->jobs[*jn].item == i)
        (*jn)++;
    char *buf = NULL;
    const char *file;
    int lvl = open_dirs(m, it->key, &buf, &file, err);
    if (lvl < 0) {
        free(buf);
        return lvl == -1 ? -1 : 0;
    }
    pf_sink *sink = pf_archive_stream_begin(m->a, m->lv[lvl].dir, file, 0644, err);
    if (!sink) {
        free(buf);
        return -1;
    }
    int rc = 0;
    if (it->size <= RANGE) {
        rc = write_jobs(m, it, sink, from, *jn, err);
    } else {
        /* Its own rounds of ranges, a few at once, written in order. */
        job *saved = m->jobs;
        size_t savedn = m->njobs, cap = 0;
        int k = m->o->connections > 0 ? m->o->connections : 4;
        m->jobs = NULL;
        m->njobs = 0;
        for (uint64_t off = 0; off < it->size && rc == 0;) {
            for (int r = 0; r < k && off < it->size; r++) {
                uint64_t len = it->size - off < RANGE ? it->size - off : RANGE;
                add_job(m, &cap, i, off, len);
                off += len;
            }
            read_round(m);
            rc = write_jobs(m, it, sink, 0, m->njobs, err);
            free_jobs(m);
        }
        free(m->jobs);
        m->jobs = saved;
        m->njobs = savedn;
    }
    if (rc) {
        pf_archive_stream_abort(sink);
        free(buf);
        return rc < 0 ? -1 : 0;
    }
    pf_buf rec = PF_BUF_INIT;
    pf_buf_printf(&rec, "etag:%s\ncontent-type:%s\n", it->etag, it->ctype);
    pf_archive_stream_meta(sink, it->mtime_ns, (const char *)rec.data, rec.len);
    pf_buf_free(&rec);
    if (pf_archive_stream_end(m->a, sink, err)) {
        free(buf);
        return -1;
    }
    note_file(&m->lv[lvl], file);
    free(buf);
    m->st->objects++;
    m->st->bytes += it->size;
    m->st->read++;
    if (m->o->visit)
        m->o->visit(it->key, m->o->visit_ctx);
    return 0;
}

static int reuse_object(mirror *m, item *it, bool *reused, pf_err *err)
{
    char *buf = NULL;
    const char *file;
    *reused = false;
    int lvl = open_dirs(m, it->key, &buf, &file, err);
    if (lvl < 0) {
        free(buf);
        *reused = lvl == -2; /* skipped: nothing to read either */
        return lvl == -1 ? -1 : 0;
    }
    if (pf_dir_reuse(m->a, m->lv[lvl].dir, it->reuse)) {
        note_file(&m->lv[lvl], file);
        m->st->objects++;
        m->st->bytes += it->size;
        m->st->unchanged++;
        if (m->o->visit)
            m->o->visit(it->key, m->o->visit_ctx);
        *reused = true;
    }
    free(buf);
    return 0;
}

/* Empties the queue: reads what changed (small objects a few at a time, large ones in
 * ranges) and writes every object into the tree in the listing's order. */
static int drain(mirror *m, pf_err *err)
{
    int k = m->o->connections > 0 ? m->o->connections : 4;
    uint64_t budget = (uint64_t)k * RANGE;
    size_t start = 0;
    int rc = 0;
    while (start < m->nq && rc == 0) {
        /* This round: the items from start whose small reads fit in the budget. */
        size_t cap = 0, end = start;
        uint64_t planned = 0;
        free_jobs(m);
        for (; end < m->nq; end++) {
            item *it = &m->q[end];
            if (it->reuse || it->size > RANGE)
                continue;
            if (planned > 0 && planned + it->size > budget)
                break;
            if (it->size > 0)
                add_job(m, &cap, end, 0, it->size);
            planned += it->size;
        }
        read_round(m);
        size_t jn = 0;
        for (size_t i = start; i < end && rc == 0; i++) {
            item *it = &m->q[i];
            if (it->reuse) {
                bool reused;
                rc = reuse_object(m, it, &reused, err);
                if (rc || reused)
                    continue;
                /* Its blobs left the repository: read it now, alone. */
                pf_node_free(it->reuse);
                free(it->reuse);
                it->reuse = NULL;
                job *saved = m->jobs;
                size_t savedn = m->njobs, c2 = 0, j2 = 0;
                m->jobs = NULL;
                m->njobs = 0;
                if (it->size > 0 && it->size <= RANGE) {
                    add_job(m, &c2, i, 0, it->size);
                    read_round(m);
                }
                rc = read_object(m, i, &j2, err);
                free_jobs(m);
                free(m->jobs);
                m->jobs = saved;
                m->njobs = savedn;
                continue;
            }
            rc = read_object(m, i, &jn, err);
        }
        start = end;
    }
    free_jobs(m);
    for (size_t i = 0; i < m->nq; i++)
        item_free(&m->q[i]);
    m->nq = 0;
    return rc;
}

static int on_object(const pf_s3_object *o, void *ctx, pf_err *err)
{
    mirror *m = ctx;
    size_t kl = strlen(o->key);
    if (kl && o->key[kl - 1] == '/' && o->size == 0)
        return 0; /* a folder marker some tools write */
    if (m->o->exclude_cache && !strncmp(o->key, "cache/", 6)) {
        m->st->excluded++;
        return 0;
    }
    if (m->nq == QUEUE_MAX && drain(m, err))
        return -1;
    item *it = &m->q[m->nq++];
    memset(it, 0, sizeof *it);
    it->key = pf_xstrdup(o->key);
    it->size = o->size;
    it->etag = pf_xstrdup(o->etag);
    clean(it->etag);
    it->mtime_ns = o->mtime_ns;
    const pf_node *old = parent_file(m, o->key);
    if (same_object(old, o)) {
        it->reuse = pf_xrealloc(NULL, sizeof *it->reuse);
        pf_node_copy(it->reuse, old);
    }
    return 0;
}

int pf_s3mirror_backup(pf_archiver *a, pf_dir *d, const char *name, const pf_s3mirror_opts *o,
                       pf_s3mirror_stats *st, pf_err *err)
{
    memset(st, 0, sizeof *st);
    mirror *m = calloc(1, sizeof *m);
    if (!m)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    m->a = a;
    m->o = o;
    m->st = st;
    m->retry_ms = env_ms("PERMAFROST_RETRY_BASE_MS", 200);
    if (m->retry_ms < 1)
        m->retry_ms = 1;
    pthread_mutex_init(&m->mu, NULL);
    const pf_node *old = pf_dir_parent_entry(d, name);
    if (old && old->type == PF_NODE_DIR && old->nblobs == 1) {
        pf_err e = {0};
        m->pl[0].loaded = pf_repo_load_tree(o->repo, old->blobs[0], &m->pl[0].tree, &e) == 0;
    }
    int rc = -1;
    m->lv[0].dir = pf_dir_begin(a, d, name, err);
    if (!m->lv[0].dir)
        goto out;
    if (pf_s3_list_objects(o->bucket, "", on_object, m, err) || drain(m, err)) {
        if (err->code == PF_EAUTH && !strstr(err->msg, ".env.production"))
            pf_err_set(err, PF_EAUTH,
                       "%s refused the keys of .env.production (AWS_ACCESS_KEY_ID, "
                       "AWS_SECRET_ACCESS_KEY): correct them there (they must list and read "
                       "the bucket), or back up without --media-from-s3",
                       o->label);
        else if (err->code == PF_ENOREPO)
            pf_err_set(err, PF_ENOTFOUND,
                       "%s does not exist: check S3_BUCKET and S3_ENDPOINT (or S3_HOSTNAME) in "
                       ".env.production",
                       o->label);
        else if (!strstr(err->msg, o->label))
            pf_err_prefix(err, "%s", o->label);
        goto out;
    }
    if (close_to(m, 0, err))
        goto out;
    rc = pf_dir_end(a, m->lv[0].dir, NULL, err);
    m->lv[0].dir = NULL;
out:
    for (size_t i = 0; i < m->nq; i++)
        item_free(&m->q[i]);
    while (m->depth > 0) {
        pf_dir_abort(m->lv[m->depth].dir);
        level_clear(&m->lv[m->depth--]);
    }
    if (m->lv[0].dir)
        pf_dir_abort(m->lv[0].dir);
    level_clear(&m->lv[0]);
    for (int i = 0; i <= m->pdepth; i++)
        plevel_clear(&m->pl[i]);
    free_jobs(m);
    free(m->jobs);
    pthread_mutex_destroy(&m->mu);
    free(m);
    return rc;
}

/* ---- restore into a bucket ---- */

/* Mastodon serves the bucket's objects to browsers: a file mirrored before its type was
 * recorded (or from local media) gets one from its name. */
static const char *type_of(const char *name)
{
    static const char *const types[][2] = {
        {".jpg", "image/jpeg"},        {".jpeg", "image/jpeg"},     {".png", "image/png"},
        {".gif", "image/gif"},         {".webp", "image/webp"},     {".avif", "image/avif"},
        {".heic", "image/heic"},       {".svg", "image/svg+xml"},   {".mp4", "video/mp4"},
        {".webm", "video/webm"},       {".mov", "video/quicktime"}, {".mp3", "audio/mpeg"},
        {".ogg", "audio/ogg"},         {".oga", "audio/ogg"},       {".wav", "audio/wav"},
        {".flac", "audio/flac"},       {".m4a", "audio/mp4"},       {".opus", "audio/opus"},
        {".json", "application/json"}, {".csv", "text/csv"},        {".zip", "application/zip"}};
    const char *dot = strrchr(name, '.');
    for (size_t i = 0; dot && i < sizeof types / sizeof *types; i++)
        if (!strcasecmp(dot, types[i][0]))
            return types[i][1];
    return "application/octet-stream";
}

/* Files uploaded in one round, a few at a time. */
#define UPLOAD_BATCH 64

typedef struct upload_item {
    char *key;
    pf_node node;
} upload_item;

typedef struct uploader {
    pf_repo *r;
    const pf_s3mirror_opts *o;
    const pf_s3mirror_put *p;
    pf_s3mirror_stats *st;
    long retry_ms;
    upload_item batch[UPLOAD_BATCH];
    size_t n, next;
    pthread_mutex_t mu; /* guards next, st, failed, first */
    bool failed;
    pf_err first; /* the first failure of a round */
} uploader;

/* Reads up to n bytes of src into b (replacing its contents); returns the count or -1. */
static ssize_t fill(pf_source *src, pf_buf *b, size_t n, pf_err *err)
{
    pf_buf_reset(b);
    pf_buf_reserve(b, n);
    size_t got = 0;
    while (got < n) {
        ssize_t r = pf_source_read(src, b->data + got, n - got, err);
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    b->len = got;
    return (ssize_t)got;
}

/* A request that may be repeated (a whole put, one part): tried again while the failure is
 * a transient one. */
static int again(const uploader *u, int attempt, long *delay, const pf_err *err)
{
    if (!err->retryable || attempt >= 4)
        return 0;
    struct timespec ts = {*delay / 1000, (*delay % 1000) * 1000000L};
    nanosleep(&ts, NULL);
    *delay *= 2;
    (void)u;
    return 1;
}

static int upload_file(uploader *u, const pf_node *n, const char *key, pf_buf *buf, pf_err *err)
{
    char etag[256], ct[256];
    pf_s3mirror_record(n, etag, sizeof etag, ct, sizeof ct);
    pf_s3_put_opts po = {.content_type = ct[0] ? ct : type_of(key),
                         .acl = u->p->acl,
                         .cache_control = u->p->cache_control
                                              ? u->p->cache_control
                                              : "public, max-age=315576000, immutable"};
    size_t part = pf_s3_part_size(u->o->bucket);
    pf_source *src = pf_node_source_new(u->r, n);
    if (!src)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    int rc = -1;
    long delay = u->retry_ms;
    ssize_t got = fill(src, buf, part, err);
    if (got < 0)
        goto out;
    if ((uint64_t)got < part || n->size <= part) {
        for (int a = 1;; a++) {
            *err = (pf_err){0};
            rc = pf_s3_put_object(u->o->bucket, key, buf->data, buf->len, &po, err);
            if (rc == 0 || !again(u, a, &delay, err))
                break;
        }
    } else {
        pf_debug("media: %s goes up in parts of %zu bytes", key, part);
        pf_s3_upload *up = pf_s3_upload_begin(u->o->bucket, key, &po, err);
        if (!up)
            goto out;
        while (got > 0) {
            int prc;
            for (int a = 1;; a++) {
                *err = (pf_err){0};
                prc = pf_s3_upload_part(up, buf->data, buf->len, err);
                if (prc == 0 || !again(u, a, &delay, err))
                    break;
            }
            if (prc || (got = fill(src, buf, part, err)) < 0) {
                pf_s3_upload_abort(up);
                goto out;
            }
        }
        rc = pf_s3_upload_end(up, err);
    }
out:
    pf_node_source_free(src);
    return rc;
}

static void *upload_worker(void *p)
{
    uploader *u = p;
    pf_buf buf = PF_BUF_INIT;
    for (;;) {
        pthread_mutex_lock(&u->mu);
        size_t i = !u->failed && u->next < u->n ? u->next++ : u->n;
        pthread_mutex_unlock(&u->mu);
        if (i >= u->n)
            break;
        upload_item *it = &u->batch[i];
        pf_err err = {0};
        int rc = upload_file(u, &it->node, it->key, &buf, &err);
        if (rc && err.code == PF_EAUTH)
            pf_err_set(&err, PF_EAUTH,
                       "%s refused to let the keys of the target's .env.production "
                       "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) write %s: give them "
                       "s3:PutObject there, or restore the media to a directory",
                       u->o->label, it->key);
        else if (rc)
            pf_err_prefix(&err, "%s: writing %s", u->o->label, it->key);
        pthread_mutex_lock(&u->mu);
        if (rc && !u->failed) {
            u->failed = true;
            u->first = err;
        } else if (!rc) {
            u->st->objects++;
            u->st->bytes += it->node.size;
        }
        pthread_mutex_unlock(&u->mu);
    }
    pf_buf_free(&buf);
    return NULL;
}

/* Uploads the batch, a few files at a time (each with a part's buffer), and empties it. */
static int flush_batch(uploader *u, pf_err *err)
{
    int k = u->o->connections > 0 ? u->o->connections : 4;
    if (k > 16)
        k = 16;
    if ((size_t)k > u->n)
        k = (int)u->n;
    pthread_t t[16];
    int started = 0;
    u->next = 0;
    for (int i = 0; i < k; i++)
        if (pthread_create(&t[i], NULL, upload_worker, u) == 0)
            started++;
    if (!started)
        upload_worker(u);
    for (int i = 0; i < started; i++)
        pthread_join(t[i], NULL);
    for (size_t i = 0; i < u->n; i++) {
        free(u->batch[i].key);
        pf_node_free(&u->batch[i].node);
    }
    u->n = 0;
    if (u->failed) {
        *err = u->first;
        return -1;
    }
    return 0;
}

static int upload_dir(uploader *u, const uint8_t id[PF_ID_LEN], pf_buf *path, pf_err *err)
{
    pf_tree t = {0};
    if (pf_repo_load_tree(u->r, id, &t, err))
        return -1;
    int rc = 0;
    size_t base = path->len;
    for (size_t i = 0; i < t.count && rc == 0; i++) {
        const pf_node *n = &t.nodes[i];
        path->len = base;
        if (base)
            pf_buf_append(path, "/", 1);
        pf_buf_append(path, n->name, n->name_len);
        pf_buf_append(path, "", 1);
        path->len--;
        if (n->type == PF_NODE_DIR && n->nblobs == 1) {
            rc = upload_dir(u, n->blobs[0], path, err);
        } else if (n->type == PF_NODE_FILE) {
            upload_item *it = &u->batch[u->n++];
            it->key = pf_xstrdup((const char *)path->data);
            pf_node_copy(&it->node, n);
            if (u->n == UPLOAD_BATCH)
                rc = flush_batch(u, err);
        } else {
            pf_debug("media: %s is not a file: not uploaded", (const char *)path->data);
        }
    }
    path->len = base;
    pf_tree_free(&t);
    return rc;
}

int pf_s3mirror_restore(pf_repo *r, const pf_node *dir, const pf_s3mirror_opts *o,
                        const pf_s3mirror_put *p, pf_s3mirror_stats *st, pf_err *err)
{
    memset(st, 0, sizeof *st);
    if (dir->type != PF_NODE_DIR || dir->nblobs != 1)
        return pf_err_set(err, PF_ECORRUPT, "the snapshot's media entry is not a directory");
    uploader *u = calloc(1, sizeof *u);
    if (!u)
        return pf_err_set(err, PF_EGENERIC, "out of memory");
    *u = (uploader){.r = r, .o = o, .p = p, .st = st};
    u->retry_ms = env_ms("PERMAFROST_RETRY_BASE_MS", 200);
    if (u->retry_ms < 1)
        u->retry_ms = 1;
    pthread_mutex_init(&u->mu, NULL);
    pf_buf path = PF_BUF_INIT;
    int rc = upload_dir(u, dir->blobs[0], &path, err);
    if (u->n) {
        /* what is left of the last round; after a failure, only dropped */
        if (rc)
            u->failed = true;
        int frc = flush_batch(u, rc ? &(pf_err){0} : err);
        if (!rc)
            rc = frc;
    }
    pf_buf_free(&path);
    pthread_mutex_destroy(&u->mu);
    free(u);
    return rc;
}

static int first_only(const pf_s3_object *o, void *ctx, pf_err *err)
{
    (void)o, (void)ctx, (void)err;
    return 1;
}

int pf_s3mirror_probe(const pf_s3mirror_opts *o, pf_err *err)
{
    int rc = pf_s3_list_objects(o->bucket, "", first_only, NULL, err);
    if (rc >= 0)
        return 0;
    if (err->code == PF_EAUTH)
        return pf_err_set(err, PF_EAUTH,
                          "%s refused the keys of the target's .env.production "
                          "(AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY): correct them there, or "
                          "restore the media to a directory (without --media-to-s3)",
                          o->label);
    if (err->code == PF_ENOREPO)
        return pf_err_set(err, PF_ENOTFOUND,
                          "%s does not exist: create it (permafrost never creates buckets), or "
                          "name another in the target's .env.production",
                          o->label);
    return pf_err_prefix(err, "%s", o->label);
}
