#include "repo/prune.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "repo/lock.h"
#include "repo/idset.h"
#include "repo/names.h"
#include "repo/pack.h"
#include "repo/saver.h"
#include "repo/wal.h"

typedef struct ids_list {
    char (*v)[PF_HEX_ID_LEN + 1];
    size_t n;
} ids_list;

static int add_id(const char *id, void *ctx)
{
    ids_list *l = ctx;
    void *p = realloc(l->v, (l->n + 1) * sizeof *l->v);
    if (!p)
        return 1;
    l->v = p;
    memcpy(l->v[l->n++], id, PF_HEX_ID_LEN + 1);
    return 0;
}

typedef struct pruner {
    pf_repo *r;
    const pf_prune_opts *o;
    pf_prune_stats *st;
    pf_idset used, trees_seen, kept_blobs;
    pf_idset listed, multi; /* packs listed by one index file / by more than one */
    /* Where kept packs are said to hold each used blob, until a rewrite relies on it. */
    pf_index *kept;
    ids_list index_files;
    pf_err *err;
} pruner;

/* Replaces what an index file says a pack holds by what the pack's own sealed header says.
 * Anyone who can add objects (the holder of an append-only key, who also holds the
 * repository key) can add an index file listing a real pack with made-up blobs only; a
 * prune that believed it would delete the pack. The pack itself cannot be changed (its
 * name is the hash of its bytes, and an append-only server replaces nothing), so its
 * header is the truth. A pack that does not exist holds nothing. */
static int trust_header(pruner *p, pf_index_file_pack *pk)
{
    char key[80];
    uint64_t size;
    uint8_t salt[PF_SALT_LEN], pkey[PF_KEY_LEN];
    uint32_t hl;
    pf_buf b = PF_BUF_INIT;
    pf_blob_entry *es = NULL;
    size_t n = 0;
    pf_err e = {0};
    pf_pack_key_name(pk->info.id, key);
    int rc = pf_store_stat(p->r->store, key, &size, &e);
    if (rc && e.code == PF_ENOTFOUND) {
        rc = 0;
        goto done;
    }
    if (rc || size < PF_PACK_TRAILER_LEN ||
        pf_store_get(p->r->store, key, size - PF_PACK_TRAILER_LEN, PF_PACK_TRAILER_LEN, &b, &e) ||
        pf_pack_parse_trailer(b.data, size, salt, &hl, &e))
        goto fail;
    uint8_t kind = pf_pack_trailer_kind(b.data);
    pf_buf_reset(&b);
    if (pf_store_get(p->r->store, key, size - PF_PACK_TRAILER_LEN - hl, hl, &b, &e) ||
        pf_pack_key_kind(&p->r->keys, kind, salt, pkey, &e) ||
        pf_pack_decode_header(pkey, b.data, b.len, size - PF_PACK_TRAILER_LEN - hl, &es, &n, &e))
        goto fail;
    memcpy(pk->info.salt, salt, PF_SALT_LEN);
    pk->info.kind = kind;
done:
    free(pk->entries);
    pk->entries = es;
    pk->count = n;
    pf_buf_free(&b);
    return 0;
fail:
    pf_buf_free(&b);
    if (!e.code)
        pf_err_set(&e, PF_ECORRUPT, "shorter than a pack");
    *p->err = e;
    return pf_err_prefix(p->err,
                         "prune: pack %s, which several index files list, has an unreadable "
                         "header: nothing was removed (run 'permafrost check')",
                         key);
}

/* Loads an index file. A damaged one reads as empty (its packs were re-indexed from
 * their headers before pass 1, and it is replaced like every other index file). */
static int load_index_file(pruner *p, const char *id, pf_index_file *f)
{
    pf_err e = {0};
    int rc = pf_repo_load_index_file(p->r, id, f, &e);
    if (rc && e.code == PF_ECORRUPT) {
        memset(f, 0, sizeof *f);
        return 0;
    }
    if (rc) {
        *p->err = e;
        pf_err_prefix(p->err, "prune: index %.12s (run 'permafrost check')", id);
        return rc;
    }
    for (size_t i = 0; i < f->npacks; i++)
        if (pf_idset_has(&p->multi, f->packs[i].info.id) && trust_header(p, &f->packs[i])) {
            pf_index_file_free(f);
            return -1;
        }
    return 0;
}

/* When an index file is damaged, the packs only it listed would look unindexed and be
 * deleted: first write a new index file for every pack no readable index lists. */
static int recover_damaged(pruner *p)
{
    pf_repo *r = p->r;
    int damaged = 0;
    pf_index_free(r->index);
    r->index = pf_index_new();
    for (size_t i = 0; i < p->index_files.n; i++) {
        pf_index_file f;
        pf_err e = {0};
        if (pf_repo_load_index_file(r, p->index_files.v[i], &f, &e)) {
            if (e.code != PF_ECORRUPT) {
                *p->err = e;
                return -1;
            }
            pf_warn("index %.12s is damaged: re-indexing packs from their headers",
                    p->index_files.v[i]);
            damaged = 1;
            continue;
        }
        for (size_t j = 0; j < f.npacks; j++)
            pf_index_add_pack_info(r->index, &f.packs[j].info);
        pf_index_file_free(&f);
    }
    if (!damaged)
        return 0;
    pf_index_file found = {0};
    int rc = pf_repo_index_orphan_packs(r, &found, p->err);
    if (!rc && found.npacks) {
        char id[PF_HEX_ID_LEN + 1];
        pf_buf plain = PF_BUF_INIT;
        pf_index_file_encode(&found, &plain);
        rc = pf_repo_save_object(r, "index", plain.data, plain.len, id, p->err);
        pf_buf_free(&plain);
        if (!rc)
            rc = add_id(id, &p->index_files) ? pf_err_set(p->err, PF_EGENERIC, "out of memory") : 0;
    }
    pf_index_file_free(&found);
    return rc;
}

static int mark_tree(pruner *p, const uint8_t id[PF_ID_LEN])
{
    pf_idset_add(&p->used, id);
    if (!pf_idset_add(&p->trees_seen, id))
        return 0;
    pf_tree t;
    if (pf_repo_load_tree(p->r, id, &t, p->err))
        return pf_err_prefix(p->err, "prune: a snapshot's tree is unreadable, nothing was "
                                     "removed (run 'permafrost check')");
    int rc = 0;
    for (size_t i = 0; i < t.count && !rc; i++) {
        const pf_node *n = &t.nodes[i];
        if (n->type == PF_NODE_DIR)
            rc = mark_tree(p, n->blobs[0]);
        else
            for (size_t j = 0; j < n->nblobs; j++)
                pf_idset_add(&p->used, n->blobs[j]);
    }
    pf_tree_free(&t);
    return rc;
}

static int mark_snapshot(const char *id, void *ctx)
{
    pruner *p = ctx;
    pf_buf b = PF_BUF_INIT;
    pf_snapshot s;
    int rc = pf_repo_load_object(p->r, "snapshots", id, &b, p->err);
    if (!rc)
        rc = pf_snapshot_decode((const char *)b.data, b.len, &s, p->err);
    pf_buf_free(&b);
    if (rc) {
        pf_err_prefix(p->err, "prune: snapshot %.12s unreadable, nothing was removed", id);
        return 1;
    }
    rc = mark_tree(p, s.tree);
    pf_snapshot_free(&s);
    return rc ? 1 : 0;
}

/* Archived WAL (docs/FORMAT.md §16) keeps its chunks like a snapshot keeps its files. */
static int mark_wal_blob(const uint8_t id[PF_ID_LEN], void *ctx)
{
    pruner *p = ctx;
    pf_idset_add(&p->used, id);
    return 0;
}

static int mark_wal(const char *name, void *ctx)
{
    pruner *p = ctx;
    if (pf_wal_blobs(p->r, name, mark_wal_blob, p, p->err)) {
        pf_err_prefix(p->err, "prune: archived WAL unreadable, nothing was removed");
        return 1;
    }
    return 0;
}

enum { KEEP, DROP, REWRITE };

static int decide(pruner *p, const pf_index_file_pack *pk, uint64_t *used_bytes, uint64_t *total)
{
    *used_bytes = 0;
    *total = 0;
    for (size_t i = 0; i < pk->count; i++) {
        uint64_t len = pk->entries[i].length;
        *total += len;
        if (pf_idset_has(&p->used, pk->entries[i].id))
            *used_bytes += len;
    }
    if (*used_bytes == 0)
        return DROP;
    if (*used_bytes == *total)
        return KEEP;
    double unused_pct = 100.0 * (double)(*total - *used_bytes) / (double)*total;
    return unused_pct > p->o->max_unused ? REWRITE : KEEP;
}

/* A rewrite does not copy a used blob that a kept pack is said to hold, but only once
 * that copy was read and matched its id: an index file added through an append-only server
 * can claim any blob for a pack that lacks it, and the rewrite would then delete the only
 * real copy (docs/SECURITY.md §5). A copy this prune made itself was opened already. */
static bool kept_copy_ok(pruner *p, const uint8_t id[PF_ID_LEN])
{
    pf_blob_loc *l = pf_index_find(p->kept, id);
    if (!l)
        return true;
    pf_pack_info pack = p->kept->packs[l->pack];
    pf_blob_entry e = {.type = l->type,
                       .comp = l->comp,
                       .offset = l->offset,
                       .length = l->length,
                       .raw_length = l->raw_length};
    memcpy(e.id, id, PF_ID_LEN);
    char key[80];
    pf_buf sealed = PF_BUF_INIT, plain = PF_BUF_INIT;
    uint8_t pkey[PF_KEY_LEN];
    pf_err e2 = {0};
    pf_pack_key_name(pack.id, key);
    bool ok = !pf_store_get(p->r->store, key, e.offset, e.length, &sealed, &e2) &&
              sealed.len == e.length &&
              !pf_pack_key_kind(&p->r->keys, pack.kind, pack.salt, pkey, &e2) &&
              !pf_blob_open(&p->r->keys, pkey, &e, sealed.data, &plain, &e2);
    if (ok)
        pf_index_remove(p->kept, id); /* checked once */
    else {
        char hex[PF_HEX_ID_LEN + 1];
        pf_hex(id, PF_ID_LEN, hex);
        pf_warn("prune: blob %.16s is not in %s as an index file says (%s): copying it from "
                "the pack being rewritten",
                hex, key, e2.msg[0] ? e2.msg : "short read");
    }
    OPENSSL_cleanse(pkey, sizeof pkey);
    pf_buf_free(&sealed);
    pf_buf_free(&plain);
    return ok;
}

static int repack(pruner *p, pf_saver *sv, const pf_index_file_pack *pk)
{
    char key[80];
    pf_buf data = PF_BUF_INIT, plain = PF_BUF_INIT;
    uint8_t pkey[PF_KEY_LEN], id[PF_ID_LEN];
    int rc = -1;
    pf_pack_key_name(pk->info.id, key);
    if (pf_store_get(p->r->store, key, 0, PF_STORE_ALL, &data, p->err) ||
        pf_pack_key_kind(&p->r->keys, pk->info.kind, pk->info.salt, pkey, p->err))
        goto out;
    for (size_t i = 0; i < pk->count; i++) {
        const pf_blob_entry *e = &pk->entries[i];
        if (!pf_idset_has(&p->used, e->id) ||
            (!pf_idset_add(&p->kept_blobs, e->id) && kept_copy_ok(p, e->id)))
            continue;
        if ((uint64_t)e->offset + e->length > data.len) {
            pf_err_set(p->err, PF_ECORRUPT, "%s is shorter than its index says", key);
            goto out;
        }
        pf_buf_reset(&plain);
        if (pf_blob_open(&p->r->keys, pkey, e, data.data + e->offset, &plain, p->err) ||
            pf_saver_save(sv, e->type, plain.data, plain.len, id, p->err))
            goto out;
        p->st->blobs_repacked++;
        p->st->bytes_repacked += plain.len;
    }
    rc = 0;
out:
    if (rc)
        pf_err_prefix(p->err, "prune: repacking %s (nothing old was removed)", key);
    pf_buf_free(&data);
    pf_buf_free(&plain);
    return rc;
}

/* Frees what is certainly unreferenced before anything is written, so that a prune on a
 * full disk makes room for its own new index files: packs no index file lists (no
 * snapshot can need them: an index file lost to damage was rebuilt from pack headers
 * first), then each index file all of whose packs hold no used blob, then those of its
 * packs no other index file lists. The order keeps every state crash-safe: an index file
 * goes before its packs, so an index never names a missing pack, and a pack left without
 * an index is an orphan that the next backup may reuse and the next prune removes. The
 * caller holds the exclusive lock, so no backup is deduplicating against the index now.
 * Removed index files leave p->index_files. */
static int free_first(pruner *p, const pf_pack_list *sp, const pf_idset *indexed,
                      const pf_idset *unused, const pf_idset *listed_kept, const bool *whole)
{
    pf_repo *r = p->r;
    uint64_t index_gone = 0;
    size_t keep = 0;
    for (size_t i = 0; i < p->index_files.n; i++) {
        if (!whole[i]) {
            memmove(p->index_files.v[keep++], p->index_files.v[i], sizeof p->index_files.v[i]);
            continue;
        }
        char key[128];
        snprintf(key, sizeof key, "index/%s", p->index_files.v[i]);
        if (pf_store_remove(r->store, key, p->err) && p->err->code != PF_ENOTFOUND)
            return pf_err_prefix(p->err, "prune");
        pf_err_clear(p->err);
        index_gone++;
    }
    p->index_files.n = keep;
    p->st->index_files_replaced += index_gone;
    for (size_t i = 0; i < sp->n; i++) {
        uint8_t id[PF_ID_LEN];
        if (!pf_name_pack_key(sp->keys[i], id))
            continue;
        if (pf_idset_has(indexed, id) &&
            (!pf_idset_has(unused, id) || pf_idset_has(listed_kept, id)))
            continue;
        if (pf_store_remove(r->store, sp->keys[i], p->err) && p->err->code != PF_ENOTFOUND)
            return pf_err_prefix(p->err, "prune");
        pf_err_clear(p->err);
    }
    return 0;
}

static int sum_sizes(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)err;
    uint8_t id[PF_ID_LEN];
    if (pf_name_pack_key(key, id))
        *(uint64_t *)ctx += size;
    return 0;
}

int pf_prune(pf_repo *r, const pf_prune_opts *o, pf_prune_stats *st, pf_err *err)
{
    pruner p = {.r = r,
                .o = o,
                .st = st,
                .used = PF_IDSET_INIT,
                .trees_seen = PF_IDSET_INIT,
                .kept_blobs = PF_IDSET_INIT,
                .listed = PF_IDSET_INIT,
                .multi = PF_IDSET_INIT,
                .kept = pf_index_new(),
                .err = err};
    pf_pack_list sp = {0};
    pf_saver *sv = NULL;
    pf_idset indexed = PF_IDSET_INIT, drop = PF_IDSET_INIT, carried = PF_IDSET_INIT,
             unused = PF_IDSET_INIT, listed_kept = PF_IDSET_INIT;
    bool *whole = NULL; /* per index file: every pack it lists goes */
    pf_index_file out_file = {0};
    int rc = -1;
    memset(st, 0, sizeof *st);
    if (!o->dry_run) {
        int64_t lease;
        if (pf_lock_longest_lease(r, &lease, err) ||
            pf_store_sweep_tmp(r->store, (int64_t)time(NULL) - lease, &st->tmp_removed,
                               &st->tmp_bytes, err)) {
            pf_err_prefix(err, "prune: removing old temporary files");
            goto out;
        }
        if (st->tmp_removed)
            pf_info("removed %llu temporary file%s of interrupted writes (%llu bytes)",
                    (unsigned long long)st->tmp_removed, st->tmp_removed == 1 ? "" : "s",
                    (unsigned long long)st->tmp_bytes);
    }
    if (pf_repo_list_objects(r, "index", add_id, &p.index_files, err))
        goto out;
    if (!o->dry_run && recover_damaged(&p))
        goto out;

    /* Which packs more than one index file lists: for those, the pack's header decides. */
    for (size_t i = 0; i < p.index_files.n; i++) {
        pf_index_file f;
        if (load_index_file(&p, p.index_files.v[i], &f))
            goto out;
        for (size_t j = 0; j < f.npacks; j++)
            if (!pf_idset_add(&p.listed, f.packs[j].info.id))
                pf_idset_add(&p.multi, f.packs[j].info.id);
        pf_index_file_free(&f);
    }

    /* Pass 1: an index of tree blobs only, enough to walk every snapshot. */
    pf_index_free(r->index);
    r->index = pf_index_new();
    for (size_t i = 0; i < p.index_files.n; i++) {
        pf_index_file f;
        if (load_index_file(&p, p.index_files.v[i], &f))
            goto out;
        for (size_t j = 0; j < f.npacks; j++) {
            pf_index_file_pack *pk = &f.packs[j];
            uint32_t pos = pf_index_add_pack_info(r->index, &pk->info);
            for (size_t k = 0; k < pk->count; k++) {
                const pf_blob_entry *e = &pk->entries[k];
                if (e->type == PF_BLOB_TREE) {
                    pf_blob_loc loc = {pos, e->offset, e->length, e->raw_length, e->type, e->comp};
                    pf_index_add(r->index, e->id, &loc);
                }
            }
        }
        pf_index_file_free(&f);
    }
    /* WAL no kept base backup needs goes first (its object is what references its
     * chunks), so that its space is freed in this same run. */
    uint64_t wal_removed;
    if (pf_wal_expire(r, o->dry_run, &wal_removed, err))
        goto out;
    if (pf_repo_list_objects(r, "snapshots", mark_snapshot, &p, err) || err->code ||
        pf_wal_list(r, mark_wal, &p, err) || err->code)
        goto out;
    st->blobs_used = p.used.n;

    /* Pass 2: decide per pack; blobs in packs that stay need no copy. An index file all
     * of whose packs go can go first, before anything is written (see free_first). */
    whole = calloc(p.index_files.n ? p.index_files.n : 1, sizeof *whole);
    if (!whole) {
        pf_err_set(err, PF_EGENERIC, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < p.index_files.n; i++) {
        pf_index_file f;
        if (load_index_file(&p, p.index_files.v[i], &f))
            goto out;
        whole[i] = true;
        for (size_t j = 0; j < f.npacks; j++) {
            pf_index_file_pack *pk = &f.packs[j];
            uint64_t used, total;
            int d = decide(&p, pk, &used, &total);
            if (d != DROP)
                whole[i] = false;
            if (pf_idset_add(&indexed, pk->info.id) == 0)
                continue; /* listed by an earlier index file too */
            st->packs_total++;
            for (size_t k = 0; k < pk->count; k++)
                if (!pf_idset_has(&p.used, pk->entries[k].id))
                    st->blobs_unused++;
            if (d == KEEP) {
                st->packs_kept++;
                uint32_t pos = pf_index_add_pack_info(p.kept, &pk->info);
                for (size_t k = 0; k < pk->count; k++)
                    if (pf_idset_has(&p.used, pk->entries[k].id)) {
                        const pf_blob_entry *e = &pk->entries[k];
                        pf_blob_loc loc = {pos,           e->offset, e->length,
                                           e->raw_length, e->type,   e->comp};
                        pf_idset_add(&p.kept_blobs, e->id);
                        pf_index_add(p.kept, e->id, &loc);
                    }
            } else {
                pf_idset_add(&drop, pk->info.id);
                if (d == DROP) {
                    pf_idset_add(&unused, pk->info.id);
                    st->packs_deleted++;
                } else {
                    st->packs_rewritten++;
                    st->bytes_copied += used; /* an estimate until the copies are made */
                }
            }
        }
        if (!whole[i])
            for (size_t j = 0; j < f.npacks; j++)
                pf_idset_add(&listed_kept, f.packs[j].info.id);
        pf_index_file_free(&f);
    }
    if (pf_repo_list_packs(r, &sp, err))
        goto out;
    for (size_t i = 0; i < sp.n; i++) {
        uint8_t id[PF_ID_LEN];
        if (!pf_name_pack_key(sp.keys[i], id))
            continue;
        st->bytes_before += sp.sizes[i];
        if (!pf_idset_has(&indexed, id))
            st->packs_unindexed++;
        if (!pf_idset_has(&indexed, id) || pf_idset_has(&drop, id))
            st->bytes_removed += sp.sizes[i];
    }
    if (o->dry_run) {
        st->bytes_after = st->bytes_before - st->bytes_removed + st->bytes_copied;
        st->bytes_freed =
            st->bytes_before > st->bytes_after ? st->bytes_before - st->bytes_after : 0;
        rc = 0;
        goto out;
    }
    if (free_first(&p, &sp, &indexed, &unused, &listed_kept, whole))
        goto out;

    /* Pass 3: copy the used blobs of rewritten packs, then write index files for
     * everything that stays. The saver dedups only against what it writes now. */
    pf_index_free(r->index);
    r->index = pf_index_new();
    sv = pf_saver_new(r, 0, err);
    if (!sv)
        goto out;
    pf_saver_set_untracked(sv); /* kept_blobs is the dedup set: no index of copies */
    for (size_t i = 0; i < p.index_files.n; i++) {
        pf_index_file f;
        if (load_index_file(&p, p.index_files.v[i], &f))
            goto out;
        for (size_t j = 0; j < f.npacks; j++) {
            pf_index_file_pack *pk = &f.packs[j];
            if (!pf_idset_has(&drop, pk->info.id)) {
                /* Stays: carry it into the new index (once). */
                if (pf_idset_add(&carried, pk->info.id) == 1) {
                    pf_index_file_pack *np =
                        realloc(out_file.packs, (out_file.npacks + 1) * sizeof *np);
                    if (!np) {
                        pf_index_file_free(&f);
                        pf_err_set(err, PF_EGENERIC, "out of memory");
                        goto out;
                    }
                    out_file.packs = np;
                    out_file.packs[out_file.npacks++] = *pk;
                    pk->entries = NULL;
                    pk->count = 0;
                }
                continue;
            }
            uint64_t used, total;
            if (decide(&p, pk, &used, &total) == REWRITE && repack(&p, sv, pk)) {
                pf_index_file_free(&f);
                goto out;
            }
        }
        pf_index_file_free(&f);
        size_t entries = 0;
        for (size_t k = 0; k < out_file.npacks; k++)
            entries += out_file.packs[k].count;
        if (out_file.npacks >= 64 || entries >= 100000) {
            if (pf_repo_save_index(r, &out_file, err))
                goto out;
            pf_index_file_free(&out_file);
        }
    }
    if (pf_saver_finish(sv, err))
        goto out;
    pf_saver_stats ss;
    pf_saver_stats_get(sv, &ss);
    st->bytes_copied = ss.bytes_stored;
    st->packs_written = ss.packs;
    if (out_file.npacks && pf_repo_save_index(r, &out_file, err))
        goto out;

    /* Everything that stays is now indexed anew: old index files, then packs, can go. */
    for (size_t i = 0; i < p.index_files.n; i++) {
        char key[128];
        snprintf(key, sizeof key, "index/%s", p.index_files.v[i]);
        if (pf_store_remove(r->store, key, err) && err->code != PF_ENOTFOUND)
            goto out;
        st->index_files_replaced++;
    }
    for (size_t i = 0; i < sp.n; i++) {
        uint8_t id[PF_ID_LEN];
        if (!pf_name_pack_key(sp.keys[i], id))
            continue;
        if (pf_idset_has(&drop, id) || !pf_idset_has(&indexed, id)) {
            if (pf_store_remove(r->store, sp.keys[i], err) && err->code != PF_ENOTFOUND)
                goto out;
        }
    }
    /* What was freed is measured, not added up: the packs as they are now. */
    if (pf_store_list(r->store, "data/", sum_sizes, &st->bytes_after, err))
        goto out;
    st->bytes_freed = st->bytes_before > st->bytes_after ? st->bytes_before - st->bytes_after : 0;
    pf_err_clear(err);
    rc = 0;
out:
    pf_saver_free(sv);
    free(whole);
    pf_idset_free(&unused);
    pf_idset_free(&listed_kept);
    pf_index_file_free(&out_file);
    pf_pack_list_free(&sp);
    free(p.index_files.v);
    pf_idset_free(&p.used);
    pf_idset_free(&p.trees_seen);
    pf_idset_free(&p.kept_blobs);
    pf_idset_free(&indexed);
    pf_idset_free(&drop);
    pf_idset_free(&carried);
    pf_idset_free(&p.listed);
    pf_idset_free(&p.multi);
    pf_index_free(p.kept);
    r->index_loaded = 0;
    return rc;
}

int pf_prune_parse_max_unused(const char *v, double *out)
{
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (end != v && *end == '%')
        end++;
    if (end == v || *end || errno || !(x >= 0) || x > 100)
        return -1;
    *out = x;
    return 0;
}
