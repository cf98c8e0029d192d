#include "mastodon/mediacheck.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "common/buf.h"
#include "common/log.h"

int pf_paperclip_partition(uint64_t id, char *out, size_t n)
{
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%0*" PRIu64, id < 1000000000u ? 9 : 12, id);
    size_t groups = (size_t)len / 3, o = 0; /* a trailing partial group is dropped */
    if (n < groups * 4)
        return -1;
    for (size_t g = 0; g < groups; g++) {
        if (g)
            out[o++] = '/';
        memcpy(out + o, digits + 3 * g, 3);
        o += 3;
    }
    out[o] = '\0';
    return 0;
}

int pf_paperclip_path(bool cached, const char *klass, const char *attachment, uint64_t id,
                      const char *filename, char *out, size_t n)
{
    char part[32];
    pf_paperclip_partition(id, part, sizeof part);
    int w = snprintf(out, n, "%s%s/%s/%s/original/%s", cached ? "cache/" : "", klass, attachment,
                     part, filename);
    return w < 0 || (size_t)w >= n ? -1 : 0;
}

typedef struct ref {
    size_t off; /* into names */
    int64_t created;
    uint8_t kind;
    bool found;
} ref;

struct pf_mediacheck {
    bool exclude_cache, sealed;
    pf_buf names; /* the referenced paths, NUL-terminated one after another */
    ref *refs;
    size_t nrefs, cap;
    uint64_t unreferenced, cache_unreferenced;
    char *error; /* the query failed: why */
};

pf_mediacheck *pf_mediacheck_new(bool exclude_cache)
{
    pf_mediacheck *mc = pf_xcalloc(1, sizeof *mc);
    mc->exclude_cache = exclude_cache;
    return mc;
}

void pf_mediacheck_free(pf_mediacheck *mc)
{
    if (!mc)
        return;
    free(mc->error);
    free(mc->names.data); /* paths, not secrets: no need to wipe them */
    free(mc->refs);
    free(mc);
}

void pf_mediacheck_add_ref(pf_mediacheck *mc, pf_media_kind kind, const char *relpath,
                           int64_t created)
{
    if (mc->nrefs == mc->cap) {
        size_t cap = mc->cap ? 2 * mc->cap : 1024;
        mc->refs = pf_xrealloc(mc->refs, cap * sizeof *mc->refs);
        mc->cap = cap;
    }
    mc->refs[mc->nrefs++] = (ref){mc->names.len, created, (uint8_t)kind, false};
    pf_buf_append(&mc->names, relpath, strlen(relpath) + 1);
}

static const pf_mediacheck *sort_mc; /* qsort has no context argument */

static const char *name_of(const pf_mediacheck *mc, const ref *r)
{
    return (const char *)mc->names.data + r->off;
}

static int cmp_ref(const void *a, const void *b)
{
    return strcmp(name_of(sort_mc, a), name_of(sort_mc, b));
}

void pf_mediacheck_seal(pf_mediacheck *mc)
{
    if (mc->sealed)
        return;
    sort_mc = mc;
    qsort(mc->refs, mc->nrefs, sizeof *mc->refs, cmp_ref);
    /* Two rows naming one file (it happens with hand-edited data) are one file. */
    size_t w = 0;
    for (size_t i = 0; i < mc->nrefs; i++)
        if (!w || strcmp(name_of(mc, &mc->refs[w - 1]), name_of(mc, &mc->refs[i])))
            mc->refs[w++] = mc->refs[i];
    mc->nrefs = w;
    mc->sealed = true;
}

/* The first reference >= key, by bisection. */
static size_t lower_bound(const pf_mediacheck *mc, const char *key)
{
    size_t lo = 0, hi = mc->nrefs;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(name_of(mc, &mc->refs[mid]), key) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

static bool is_cache(const char *p)
{
    return !strncmp(p, "cache/", 6);
}

void pf_mediacheck_add_present(pf_mediacheck *mc, const char *relpath)
{
    size_t i = lower_bound(mc, relpath);
    if (i < mc->nrefs && !strcmp(name_of(mc, &mc->refs[i]), relpath)) {
        mc->refs[i].found = true;
        return;
    }
    /* Not referenced itself. A file of another style than original (small/, static/, ...)
     * belongs to its record when any file of that record (its directory two levels up) is
     * referenced; an original is the record's one named file, so any other is stray. */
    bool stray = true;
    const char *name = strrchr(relpath, '/');
    const char *style = NULL;
    if (name)
        for (style = name - 1; style > relpath && style[-1] != '/'; style--)
            ;
    if (name && style > relpath && strncmp(style, "original/", 9)) {
        size_t dlen = (size_t)(style - relpath); /* "class/att/000/000/001/" */
        char *dir = pf_xstrndup(relpath, dlen);
        i = lower_bound(mc, dir);
        stray = !(i < mc->nrefs && !strncmp(name_of(mc, &mc->refs[i]), dir, dlen));
        free(dir);
    }
    if (stray) {
        if (is_cache(relpath))
            mc->cache_unreferenced++;
        else
            mc->unreferenced++;
    }
}

void pf_mediacheck_result(const pf_mediacheck *mc, pf_media_check *m)
{
    memset(m, 0, sizeof *m);
    m->recorded = true;
    if (mc->error) {
        m->error = pf_xstrdup(mc->error);
        return;
    }
    m->exclude_cache = mc->exclude_cache;
    m->unreferenced = mc->unreferenced;
    m->cache_unreferenced = mc->cache_unreferenced;
    for (size_t i = 0; i < mc->nrefs; i++) {
        const ref *r = &mc->refs[i];
        const char *p = name_of(mc, r);
        if (!is_cache(p)) {
            m->referenced++;
            if (r->found) {
                m->present++;
            } else {
                if (m->nmissing_sample < PF_MEDIA_SAMPLE_MAX)
                    m->missing_sample[m->nmissing_sample++] = pf_xstrdup(p);
                m->missing++;
            }
            continue;
        }
        m->cache_referenced++;
        if (r->found) {
            m->cache_present++;
            continue;
        }
        if (mc->exclude_cache) {
            m->cache_excluded++;
        } else {
            if (m->ncache_missing_sample < PF_MEDIA_SAMPLE_MAX)
                m->cache_missing_sample[m->ncache_missing_sample++] = pf_xstrdup(p);
            m->cache_missing++;
        }
        if (r->kind < PF_MEDIA_NKINDS)
            m->cache_absent_by_kind[r->kind]++;
        if (r->kind == PF_MEDIA_ATTACHMENT && r->created > 0 &&
            (!m->cache_media_oldest || r->created < m->cache_media_oldest))
            m->cache_media_oldest = r->created;
    }
}

/* ---- the query ------------------------------------------------------------------------ */

/* One attachment of one table. local: the SQL that is true for a local record (NULL:
 * every record is local, none is ever cached; "false": none is local). */
typedef struct source {
    pf_media_kind kind;
    const char *table, *klass, *attachment, *name_col, *version_col, *local_col;
} source;

/* Mastodon's models: MediaAttachment#local? is remote_url.blank?; Account and CustomEmoji
 * are local when domain is nil; a PreviewCard is never local; a SiteUpload has no local?
 * and is never cached. */
static const source sources[] = {
    {PF_MEDIA_ATTACHMENT, "media_attachments", "media_attachments", "files", "file_file_name",
     "file_storage_schema_version", "remote_url"},
    {PF_MEDIA_ATTACHMENT, "media_attachments", "media_attachments", "thumbnails",
     "thumbnail_file_name", "thumbnail_storage_schema_version", "remote_url"},
    {PF_MEDIA_ACCOUNT, "accounts", "accounts", "avatars", "avatar_file_name",
     "avatar_storage_schema_version", "domain"},
    {PF_MEDIA_ACCOUNT, "accounts", "accounts", "headers", "header_file_name",
     "header_storage_schema_version", "domain"},
    {PF_MEDIA_EMOJI, "custom_emojis", "custom_emojis", "images", "image_file_name",
     "image_storage_schema_version", "domain"},
    {PF_MEDIA_CARD, "preview_cards", "preview_cards", "images", "image_file_name",
     "image_storage_schema_version", ""},
    {PF_MEDIA_SITE, "site_uploads", "site_uploads", "files", "file_file_name", NULL, NULL},
};
#define NSOURCES (sizeof sources / sizeof *sources)

static bool has_col(PGresult *cols, const char *table, const char *col)
{
    for (int i = 0; col && i < PQntuples(cols); i++)
        if (!strcmp(PQgetvalue(cols, i, 0), table) && !strcmp(PQgetvalue(cols, i, 1), col))
            return true;
    return false;
}

static int query_err(PGconn *c, PGresult *res, pf_err *err, const char *what)
{
    const char *m = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
    size_t l = strlen(m);
    while (l && (m[l - 1] == '\n' || m[l - 1] == ' '))
        l--;
    pf_err_set(err, PF_ECOMPONENT, "media check: %s: %.*s", what, (int)l, m);
    PQclear(res);
    return -1;
}

static int exec_ok(PGconn *c, const char *sql, pf_err *err)
{
    PGresult *res = PQexec(c, sql);
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return query_err(c, res, err, sql);
    PQclear(res);
    return 0;
}

/* The union of one SELECT per attachment this database has:
 * source index, id, file name, cached, created (Unix seconds). */
static void build_query(PGresult *cols, pf_buf *q)
{
    pf_buf_append_str(q, "DECLARE pf_media_check NO SCROLL CURSOR FOR ");
    int n = 0;
    for (size_t i = 0; i < NSOURCES; i++) {
        const source *s = &sources[i];
        if (!has_col(cols, s->table, "id") || !has_col(cols, s->table, s->name_col))
            continue;
        char cached[256];
        bool ver = has_col(cols, s->table, s->version_col);
        if (!s->local_col || !ver)
            snprintf(cached, sizeof cached, "false"); /* before the cache/ prefix existed */
        else if (!s->local_col[0])
            snprintf(cached, sizeof cached, "coalesce(%s, 0) >= 1", s->version_col);
        else if (!strcmp(s->local_col, "remote_url") && has_col(cols, s->table, "remote_url"))
            snprintf(cached, sizeof cached,
                     "coalesce(%s, 0) >= 1 AND coalesce(remote_url, '') <> ''", s->version_col);
        else if (!strcmp(s->local_col, "domain") && has_col(cols, s->table, "domain"))
            snprintf(cached, sizeof cached, "coalesce(%s, 0) >= 1 AND domain IS NOT NULL",
                     s->version_col);
        else
            snprintf(cached, sizeof cached, "false");
        pf_buf_printf(q,
                      "%sSELECT %zu, id, %s, %s, %s FROM %s WHERE %s IS NOT NULL AND %s <> '' "
                      "AND id >= 0",
                      n++ ? " UNION ALL " : "", i, s->name_col, cached,
                      has_col(cols, s->table, "created_at")
                          ? "coalesce(extract(epoch FROM created_at)::bigint, 0)"
                          : "0",
                      s->table, s->name_col, s->name_col);
    }
    if (!n) /* not a Mastodon database: nothing is referenced */
        pf_buf_append_str(q, "SELECT 0, 0::bigint, ''::text, false, 0::bigint WHERE false");
}

/* Rows per FETCH: bounds what libpq holds at once. */
#define FETCH_ROWS 5000
#define STR_(x) #x
#define STR(x) STR_(x)

static int fetch_all(PGconn *c, pf_mediacheck *mc, pf_err *err)
{
    char path[4096];
    for (;;) {
        PGresult *res = PQexec(c, "FETCH FORWARD " STR(FETCH_ROWS) " FROM pf_media_check");
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            return query_err(c, res, err, "fetching the referenced files");
        int rows = PQntuples(res);
        for (int r = 0; r < rows; r++) {
            size_t si = strtoul(PQgetvalue(res, r, 0), NULL, 10);
            uint64_t id = strtoull(PQgetvalue(res, r, 1), NULL, 10);
            const char *name = PQgetvalue(res, r, 2);
            bool cached = PQgetvalue(res, r, 3)[0] == 't';
            int64_t created = strtoll(PQgetvalue(res, r, 4), NULL, 10);
            if (si >= NSOURCES)
                continue;
            const source *s = &sources[si];
            /* `tootctl media refresh --days` compares snowflake ids, not created_at: an id
             * that is one (milliseconds since 1970 above 2001, shifted by 16) says when. */
            if (s->kind == PF_MEDIA_ATTACHMENT && (id >> 16) > 1000000000000ULL)
                created = (int64_t)((id >> 16) / 1000);
            /* A name longer than any path is no file Mastodon could have written. */
            if (pf_paperclip_path(cached, s->klass, s->attachment, id, name, path, sizeof path))
                continue;
            pf_mediacheck_add_ref(mc, s->kind, path, created);
        }
        PQclear(res);
        if (rows < FETCH_ROWS)
            return 0;
    }
}

int pf_mediacheck_query(PGconn *c, pf_mediacheck *mc, pf_err *err)
{
    if (exec_ok(c, "SAVEPOINT pf_media_check", err))
        return -1;
    PGresult *cols = PQexec(c, "SELECT table_name::text, column_name::text "
                               "FROM information_schema.columns "
                               "WHERE table_schema = current_schema() AND table_name IN "
                               "('media_attachments', 'accounts', 'custom_emojis', "
                               "'preview_cards', 'site_uploads')");
    if (PQresultStatus(cols) != PGRES_TUPLES_OK) {
        query_err(c, cols, err, "reading the columns");
        goto rollback;
    }
    pf_buf q = PF_BUF_INIT;
    build_query(cols, &q);
    PQclear(cols);
    int rc = exec_ok(c, (const char *)q.data, err);
    free(q.data);
    if (rc || fetch_all(c, mc, err))
        goto rollback;
    if (exec_ok(c, "CLOSE pf_media_check", err) ||
        exec_ok(c, "RELEASE SAVEPOINT pf_media_check", err))
        goto rollback;
    return 0;
rollback:;
    PGresult *res = PQexec(c, "ROLLBACK TO SAVEPOINT pf_media_check");
    PQclear(res);
    return -1;
}

int pf_mediacheck_in_snapshot(PGconn *conn, void *ctx, pf_err *err)
{
    (void)err;
    pf_mediacheck *mc = ctx;
    pf_err qerr = {0};
    if (pf_mediacheck_query(conn, mc, &qerr)) {
        pf_warn("%s (the backup goes on without the media check)", qerr.msg);
        free(mc->error);
        mc->error = pf_xstrdup(qerr.msg);
    }
    return 0;
}

void pf_mediacheck_visit(const char *rel, void *ctx)
{
    pf_mediacheck *mc = ctx;
    if (!mc->sealed)
        pf_mediacheck_seal(mc);
    pf_mediacheck_add_present(mc, rel);
}

/* ---- what is said about it ------------------------------------------------------------ */

static void join_sample(pf_buf *b, char *const *s, size_t n, uint64_t total)
{
    for (size_t i = 0; i < n; i++)
        pf_buf_printf(b, "%s%s", i ? ", " : "", s[i]);
    if (total > n)
        pf_buf_append_str(b, ", ...");
}

char *pf_mediacheck_missing_line(const pf_media_check *m)
{
    if (!m->recorded || m->error || !m->missing)
        return NULL;
    pf_buf b = PF_BUF_INIT;
    pf_buf_printf(&b,
                  "%" PRIu64 " media file%s the database references %s missing from the media "
                  "directory (",
                  m->missing, m->missing == 1 ? "" : "s", m->missing == 1 ? "is" : "are");
    join_sample(&b, m->missing_sample, m->nmissing_sample, m->missing);
    pf_buf_append_str(&b, ")");
    return (char *)pf_buf_detach(&b, NULL);
}

void pf_mediacheck_print(const pf_media_check *m, const char *indent, FILE *out)
{
    if (!m->recorded) {
        fprintf(out, "%smedia check: not recorded in this snapshot\n", indent);
        return;
    }
    if (m->error) {
        fprintf(out, "%smedia check: could not be made: %s\n", indent, m->error);
        return;
    }
    fprintf(out,
            "%smedia check (originals): %" PRIu64 " referenced, %" PRIu64 " present, %" PRIu64
            " missing, %" PRIu64 " unreferenced\n",
            indent, m->referenced, m->present, m->missing, m->unreferenced);
    if (m->missing) {
        pf_buf b = PF_BUF_INIT;
        join_sample(&b, m->missing_sample, m->nmissing_sample, m->missing);
        fprintf(out, "%s  missing: %s\n", indent, (char *)b.data);
        pf_buf_free(&b);
    }
    if (m->exclude_cache) {
        fprintf(out,
                "%scache/ (remote files): %" PRIu64
                " referenced, left out (--exclude-cache): %" PRIu64 "\n",
                indent, m->cache_referenced, m->cache_excluded);
    } else {
        fprintf(out,
                "%scache/ (remote files): %" PRIu64 " referenced, %" PRIu64 " present, %" PRIu64
                " cache-missing (refetchable), %" PRIu64 " unreferenced\n",
                indent, m->cache_referenced, m->cache_present, m->cache_missing,
                m->cache_unreferenced);
        if (m->cache_missing) {
            pf_buf b = PF_BUF_INIT;
            join_sample(&b, m->cache_missing_sample, m->ncache_missing_sample, m->cache_missing);
            fprintf(out, "%s  cache-missing: %s\n", indent, (char *)b.data);
            pf_buf_free(&b);
        }
    }
}

int pf_mediacheck_refetch_advice(const pf_media_check *m, int64_t now, const char *indent,
                                 FILE *out)
{
    if (!m->recorded || m->error)
        return 0;
    int lines = 0;
    const uint64_t *k = m->cache_absent_by_kind;
    if (k[PF_MEDIA_ATTACHMENT]) {
        /* media refresh skips a record whose file_file_name is set (the database says the
         * file is there) unless --force; --days counts back from now by the snowflake id. */
        int64_t days = 1;
        if (m->cache_media_oldest && now > m->cache_media_oldest)
            days = (now - m->cache_media_oldest + 86399) / 86400 + 1;
        fprintf(out,
                "%sRAILS_ENV=production bin/tootctl media refresh --days %" PRId64
                " --force   # %" PRIu64 " remote media file%s\n",
                indent, days, k[PF_MEDIA_ATTACHMENT], k[PF_MEDIA_ATTACHMENT] == 1 ? "" : "s");
        lines++;
    }
    if (k[PF_MEDIA_ACCOUNT]) {
        fprintf(out,
                "%sRAILS_ENV=production bin/tootctl accounts refresh --all   # %" PRIu64
                " remote avatar%s and header%s\n",
                indent, k[PF_MEDIA_ACCOUNT], k[PF_MEDIA_ACCOUNT] == 1 ? "" : "s",
                k[PF_MEDIA_ACCOUNT] == 1 ? "" : "s");
        lines++;
    }
    if (k[PF_MEDIA_EMOJI]) {
        fprintf(out,
                "%s# %" PRIu64 " remote custom emoji image%s: no tootctl command refetches "
                "them\n",
                indent, k[PF_MEDIA_EMOJI], k[PF_MEDIA_EMOJI] == 1 ? "" : "s");
        lines++;
    }
    if (k[PF_MEDIA_CARD]) {
        fprintf(out,
                "%s# %" PRIu64 " link preview image%s: no tootctl command refetches them; "
                "the cards show without an image\n",
                indent, k[PF_MEDIA_CARD], k[PF_MEDIA_CARD] == 1 ? "" : "s");
        lines++;
    }
    return lines;
}
