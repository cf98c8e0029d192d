#include "repo/check.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/idset.h"
#include "repo/names.h"
#include "repo/pack.h"
#include "repo/wal.h"
#include "store/internal.h"

typedef struct checker {
    pf_repo *r;
    const pf_check_opts *o;
    pf_check_report_fn report;
    void *ctx;
    pf_check_result *res;
    /* A byte per index entry (pf_index_pos) instead of sets of 32-byte ids: at a million
     * blobs three id sets took ~200 MB, these marks take 1 MB. Ids the index lacks (the
     * blobs of orphan packs, trees it does not list) go to the small sets below. */
    uint8_t *marks;
    pf_idset trees_unindexed;    /* referenced trees not in the index (each reported once) */
    pf_idset in_packs_unindexed; /* blobs of pack headers that the index lacks, for duplicates */
} checker;

#define MARK_REFERENCED 1 /* named by a snapshot (or the WAL archive) */
#define MARK_TREE 2       /* a tree already walked */
#define MARK_IN_PACK 4    /* found in a pack header */

/* Sets bit in id's mark; returns whether it was set before, or -1 when the index lacks id. */
static int mark(checker *c, const uint8_t id[PF_ID_LEN], uint8_t bit)
{
    long pos = pf_index_pos(c->r->index, id);
    if (pos < 0)
        return -1;
    int had = (c->marks[pos] & bit) != 0;
    c->marks[pos] |= bit;
    return had;
}

static void problem(checker *c, int is_error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(checker *c, int is_error, const char *fmt, ...)
{
    char msg[1200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (is_error)
        c->res->errors++;
    else
        c->res->warnings++;
    if (c->report)
        c->report(is_error, msg, c->ctx);
}

static int check_one_index(const char *id, void *vctx)
{
    checker *c = vctx;
    pf_index_file f;
    pf_err e = {0};
    if (pf_repo_load_index_file(c->r, id, &f, &e)) {
        problem(c, 1, "index/%s: %s", id, e.msg);
    } else {
        pf_index_merge(c->r->index, &f);
        pf_index_file_free(&f);
    }
    return 0;
}

static int selected_for_read(checker *c, const uint8_t id[PF_ID_LEN])
{
    const pf_check_opts *o = c->o;
    if (!o->read_data)
        return 0;
    if (o->slice_m)
        return (uint32_t)(pf_le32(id) % o->slice_m) == o->slice_k - 1;
    if (o->percent > 0 && o->percent < 100) {
        uint32_t v;
        if (pf_random(&v, sizeof v, NULL))
            return 1;
        return (double)v / 4294967296.0 * 100.0 < o->percent;
    }
    return 1;
}

static void check_pack(checker *c, const char *key, const uint8_t id[PF_ID_LEN], uint64_t size)
{
    pf_buf buf = PF_BUF_INIT, plain = PF_BUF_INIT;
    pf_blob_entry *es = NULL;
    size_t n = 0;
    uint8_t salt[PF_SALT_LEN], pk[PF_KEY_LEN];
    uint32_t hl;
    pf_err e = {0};
    int read_all = selected_for_read(c, id);
    const uint8_t *tail;
    c->res->packs++;
    if (read_all) {
        if (pf_store_get(c->r->store, key, 0, PF_STORE_ALL, &buf, &e)) {
            problem(c, 1, "%s: cannot read: %s", key, e.msg);
            goto out;
        }
        c->res->packs_read++;
        c->res->bytes_read += buf.len;
        uint8_t got[PF_ID_LEN];
        pf_sha256(buf.data, buf.len, got);
        if (memcmp(got, id, PF_ID_LEN)) {
            problem(c, 1, "%s: damaged: its content does not match its name", key);
            /* go on: the header tells which blobs are affected */
        }
        if (buf.len != size)
            size = buf.len;
    } else {
        if (size < PF_PACK_TRAILER_LEN || pf_store_get(c->r->store, key, size - PF_PACK_TRAILER_LEN,
                                                       PF_PACK_TRAILER_LEN, &buf, &e)) {
            problem(c, 1, "%s: cannot read trailer: %s", key, e.msg[0] ? e.msg : "too short");
            goto out;
        }
    }
    tail = read_all ? buf.data + size - PF_PACK_TRAILER_LEN : buf.data;
    if (size < PF_PACK_TRAILER_LEN || pf_pack_parse_trailer(tail, size, salt, &hl, &e)) {
        problem(c, 1, "%s: %s", key, e.msg[0] ? e.msg : "too short to be a pack");
        goto out;
    }
    uint64_t blob_area = size - PF_PACK_TRAILER_LEN - hl;
    /* Read before the header is fetched into the same buffer, which moves it. */
    uint8_t kind = pf_pack_trailer_kind(tail);
    const uint8_t *hdr;
    if (read_all) {
        hdr = buf.data + blob_area;
    } else {
        pf_buf_reset(&buf);
        if (pf_store_get(c->r->store, key, blob_area, hl, &buf, &e)) {
            problem(c, 1, "%s: cannot read header: %s", key, e.msg);
            goto out;
        }
        hdr = buf.data;
    }
    if (pf_pack_key_kind(&c->r->keys, kind, salt, pk, &e) ||
        pf_pack_decode_header(pk, hdr, hl, blob_area, &es, &n, &e)) {
        problem(c, 1, "%s: header: %s", key, e.msg);
        goto out;
    }
    long pos = pf_index_find_pack(c->r->index, id);
    for (size_t i = 0; i < n; i++) {
        char hex[PF_HEX_ID_LEN + 1];
        pf_hex(es[i].id, PF_ID_LEN, hex);
        int seen = mark(c, es[i].id, MARK_IN_PACK);
        if (seen < 0)
            seen = !pf_idset_add(&c->in_packs_unindexed, es[i].id);
        if (seen)
            c->res->duplicate_blobs++;
        pf_blob_loc *l = pf_index_find(c->r->index, es[i].id);
        if (pos < 0)
            c->res->orphan_blobs++; /* the pack's summary line tells */
        else if (!l)
            problem(c, 0, "%s: blob %.16s is in no index", key, hex);
        else if (pos >= 0 && l->pack == (uint32_t)pos &&
                 (l->offset != es[i].offset || l->length != es[i].length ||
                  l->raw_length != es[i].raw_length || l->type != es[i].type))
            problem(c, 1, "%s: blob %.16s: index and pack header disagree", key, hex);
        if (read_all) {
            pf_buf_reset(&plain);
            if (pf_blob_open(&c->r->keys, pk, &es[i], buf.data + es[i].offset, &plain, &e))
                problem(c, 1, "%s: blob %.16s: %s", key, hex, e.msg);
            else
                c->res->blobs_read++;
        }
    }
out:
    free(es);
    pf_buf_free(&buf);
    pf_buf_free(&plain);
}

static void walk_tree(checker *c, const uint8_t id[PF_ID_LEN], const char *snap, const char *path)
{
    int seen = mark(c, id, MARK_REFERENCED | MARK_TREE);
    if (seen < 0)
        seen = !pf_idset_add(&c->trees_unindexed, id);
    if (seen > 0)
        return;
    c->res->trees++;
    pf_tree t;
    pf_err e = {0};
    char hex[PF_HEX_ID_LEN + 1];
    pf_hex(id, PF_ID_LEN, hex);
    if (pf_repo_load_tree(c->r, id, &t, &e)) {
        problem(c, 1, "snapshot %.8s: tree %.16s (%s): %s", snap, hex, *path ? path : "/", e.msg);
        return;
    }
    for (size_t i = 0; i < t.count; i++) {
        const pf_node *n = &t.nodes[i];
        char child[4096];
        snprintf(child, sizeof child, "%s/%s", path, n->name);
        if (n->type == PF_NODE_DIR) {
            walk_tree(c, n->blobs[0], snap, child);
            continue;
        }
        for (size_t j = 0; j < n->nblobs; j++) {
            if (mark(c, n->blobs[j], MARK_REFERENCED) < 0) {
                pf_hex(n->blobs[j], PF_ID_LEN, hex);
                problem(c, 1, "snapshot %.8s: %s: blob %.16s is missing", snap, child, hex);
            }
        }
    }
    pf_tree_free(&t);
}

static int check_snapshot(const char *id, void *vctx)
{
    checker *c = vctx;
    pf_buf b = PF_BUF_INIT;
    pf_snapshot s;
    pf_err e = {0};
    c->res->snapshots++;
    if (pf_repo_load_object(c->r, "snapshots", id, &b, &e) ||
        pf_snapshot_decode((const char *)b.data, b.len, &s, &e)) {
        problem(c, 1, "snapshots/%s: %s", id, e.msg);
        pf_buf_free(&b);
        return 0;
    }
    walk_tree(c, s.tree, id, "");
    pf_snapshot_free(&s);
    pf_buf_free(&b);
    return 0;
}

static void wal_mark(const uint8_t id[PF_ID_LEN], void *ctx)
{
    mark(ctx, id, MARK_REFERENCED);
}

static void wal_report(int is_error, const char *msg, void *ctx)
{
    problem(ctx, is_error, "%s", msg);
}

int pf_check(pf_repo *r, const pf_check_opts *o, pf_check_report_fn report, void *ctx,
             pf_check_result *res, pf_err *err)
{
    memset(res, 0, sizeof *res);
    checker c = {r, o, report, ctx, res, NULL, PF_IDSET_INIT, PF_IDSET_INIT};
    pf_pack_list packs = {0};
    int rc = -1;
    if (pf_repo_list_objects(r, "index", check_one_index, &c, err))
        goto out;
    r->index_loaded = 1;
    /* Nothing adds to the index from here on: positions stay valid. */
    c.marks = calloc(r->index->nblobs ? r->index->nblobs : 1, 1);
    if (!c.marks) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    if (pf_repo_list_packs(r, &packs, err))
        goto out;
    pf_idset listed = PF_IDSET_INIT;
    for (size_t i = 0; i < packs.n; i++) {
        uint8_t id[PF_ID_LEN];
        if (!pf_name_pack_key(packs.keys[i], id)) {
            /* The name comes from the store: printed only when it is a valid key (no
             * control characters for the terminal). */
            pf_err ke = {0};
            problem(&c, 0, "%s: not a pack name (a temporary file?)",
                    pf_store_check_key(packs.keys[i], &ke) ? "a key under data/" : packs.keys[i]);
            continue;
        }
        pf_idset_add(&listed, id);
        if (pf_index_find_pack(r->index, id) < 0) {
            res->orphan_packs++;
            res->orphan_bytes += packs.sizes[i];
            if (o->name_orphans)
                problem(&c, 0, "%s: not in any index", packs.keys[i]);
        }
        check_pack(&c, packs.keys[i], id, packs.sizes[i]);
    }
    if (res->orphan_packs)
        problem(&c, 0,
                "%llu pack%s (%llu blobs, %llu bytes) in no index: left by an interrupted "
                "backup; the next backup reuses them, prune removes them%s",
                (unsigned long long)res->orphan_packs, res->orphan_packs == 1 ? "" : "s",
                (unsigned long long)res->orphan_blobs, (unsigned long long)res->orphan_bytes,
                o->name_orphans ? "" : " (-v names them)");
    for (size_t i = 0; i < r->index->npacks; i++) {
        if (!pf_idset_has(&listed, r->index->packs[i].id)) {
            char name[80];
            pf_pack_key_name(r->index->packs[i].id, name);
            problem(&c, 1, "%s: listed in the index but missing from the repository", name);
        }
    }
    pf_idset_free(&listed);
    res->blobs = r->index->nblobs;
    if (pf_repo_list_objects(r, "snapshots", check_snapshot, &c, err))
        goto out;
    pf_wal_check_result wr;
    if (pf_wal_check(r, wal_mark, wal_report, &c, &wr, err))
        goto out;
    res->wal_files = wr.files;
    res->wal_gaps = wr.gaps;
    snprintf(res->wal_newest, sizeof res->wal_newest, "%s", wr.newest);
    res->wal_newest_ns = wr.newest_pushed_ns;
    for (size_t i = 0; i < r->index->nblobs; i++)
        if (!(c.marks[i] & MARK_REFERENCED))
            res->unused_blobs++;
    rc = 0;
out:
    pf_pack_list_free(&packs);
    free(c.marks);
    pf_idset_free(&c.trees_unindexed);
    pf_idset_free(&c.in_packs_unindexed);
    return rc;
}
