#include "repo/copy.h"

#include <stdlib.h>
#include <string.h>

#include "common/alloc.h"
#include "repo/idset.h"
#include "repo/saver.h"

struct pf_copier {
    pf_repo *src, *dst;
    pf_saver *sv; /* NULL between snapshots */
    int workers;
    pf_idset map; /* source blob or tree id -> destination id */
    bool same_key;
    pf_copy_stats st;
    pf_buf buf;
};

pf_copier *pf_copy_new(pf_repo *src, pf_repo *dst, pf_index_file *orphans, int workers, pf_err *err)
{
    pf_copier *c = pf_xcalloc(1, sizeof *c);
    c->src = src;
    c->dst = dst;
    c->workers = workers;
    pf_idset_init(&c->map, PF_ID_LEN);
    c->same_key = !memcmp(src->keys.id_key, dst->keys.id_key, PF_KEY_LEN);
    c->sv = pf_saver_new(dst, workers, err);
    if (!c->sv) {
        pf_index_file_free(orphans);
        pf_copy_free(c);
        return NULL;
    }
    pf_saver_adopt(c->sv, orphans);
    return c;
}

/* Copied before (within this run): out gets its destination id. */
static bool mapped(const pf_copier *c, const uint8_t id[PF_ID_LEN], uint8_t out[PF_ID_LEN])
{
    const uint8_t *known = pf_idset_get(&c->map, id);
    if (known)
        memcpy(out, known, PF_ID_LEN);
    return known != NULL;
}

/* Makes sure the destination holds blob id (of type), giving its destination id. */
static int copy_blob(pf_copier *c, const uint8_t id_in[PF_ID_LEN], uint8_t type,
                     uint8_t out[PF_ID_LEN], pf_err *err)
{
    uint8_t id[PF_ID_LEN]; /* out may alias id_in */
    memcpy(id, id_in, PF_ID_LEN);
    if (mapped(c, id, out))
        return 0;
    if (c->same_key && pf_repo_has_blob(c->dst, id)) {
        memcpy(out, id, PF_ID_LEN);
        c->st.blobs_present++;
        pf_idset_put(&c->map, id, out);
        return 0;
    }
    pf_buf_reset(&c->buf);
    if (pf_repo_load_blob(c->src, id, &c->buf, err))
        return -1;
    int had = 0;
    if (!c->same_key) {
        uint8_t dst_id[PF_ID_LEN];
        pf_blob_id(&c->dst->keys, c->buf.data, c->buf.len, dst_id);
        had = pf_repo_has_blob(c->dst, dst_id);
    }
    if (pf_saver_save(c->sv, type, c->buf.data, c->buf.len, out, err))
        return -1;
    if (had) {
        c->st.blobs_present++;
    } else {
        c->st.blobs_copied++;
        c->st.bytes_copied += c->buf.len;
    }
    pf_idset_put(&c->map, id, out);
    return 0;
}

static int copy_tree(pf_copier *c, const uint8_t id_in[PF_ID_LEN], uint8_t out[PF_ID_LEN],
                     pf_err *err)
{
    uint8_t id[PF_ID_LEN]; /* out may alias id_in */
    memcpy(id, id_in, PF_ID_LEN);
    if (mapped(c, id, out))
        return 0;
    pf_tree t;
    pf_buf enc = PF_BUF_INIT;
    if (pf_repo_load_tree(c->src, id, &t, err))
        return -1;
    int rc = 0;
    for (size_t i = 0; i < t.count && !rc; i++) {
        pf_node *n = &t.nodes[i];
        if (n->type == PF_NODE_DIR)
            rc = copy_tree(c, n->blobs[0], n->blobs[0], err);
        else
            for (size_t j = 0; j < n->nblobs && !rc; j++)
                rc = copy_blob(c, n->blobs[j], PF_BLOB_DATA, n->blobs[j], err);
    }
    if (!rc)
        rc = pf_tree_encode(&t, &enc, err);
    if (!rc)
        rc = pf_saver_save(c->sv, PF_BLOB_TREE, enc.data, enc.len, out, err);
    if (!rc)
        pf_idset_put(&c->map, id, out);
    pf_buf_free(&enc);
    pf_tree_free(&t);
    return rc;
}

static const char *copied_from(const pf_snapshot *s)
{
    cJSON *v = s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "copied_from") : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

bool pf_copy_is_there(const pf_snapshot *s, const pf_snapshot *have, size_t nhave)
{
    for (size_t j = 0; j < nhave; j++) {
        const char *from = copied_from(&have[j]);
        if ((from && !strcmp(from, s->id)) || !strcmp(have[j].id, s->id))
            return true;
    }
    return false;
}

int pf_copy_snapshot(pf_copier *c, const pf_snapshot *s, char new_id[PF_HEX_ID_LEN + 1],
                     pf_err *err)
{
    if (!c->sv && !(c->sv = pf_saver_new(c->dst, c->workers, err)))
        return -1;
    uint8_t tree[PF_ID_LEN];
    if (copy_tree(c, s->tree, tree, err))
        return pf_err_prefix(err, "copy of snapshot %.8s", s->id);
    /* Every blob of this snapshot must be durable before its snapshot is written. */
    int rc = pf_saver_finish(c->sv, err);
    pf_saver_free(c->sv);
    c->sv = NULL;
    if (rc)
        return -1;
    pf_snapshot ns = *s;
    memcpy(ns.tree, tree, PF_ID_LEN);
    ns.parent[0] = 0;
    ns.stats = s->stats ? cJSON_Duplicate(s->stats, 1) : cJSON_CreateObject();
    cJSON_DeleteItemFromObject(ns.stats, "copied_from");
    cJSON_AddStringToObject(ns.stats, "copied_from", s->id);
    rc = pf_repo_save_snapshot(c->dst, &ns, err);
    cJSON_Delete(ns.stats);
    if (!rc)
        memcpy(new_id, ns.id, PF_HEX_ID_LEN + 1);
    return rc;
}

int pf_copy_finish(pf_copier *c, pf_err *err)
{
    return c->sv ? pf_saver_finish(c->sv, err) : 0;
}

pf_copy_stats pf_copy_get_stats(const pf_copier *c)
{
    return c->st;
}

void pf_copy_free(pf_copier *c)
{
    if (!c)
        return;
    pf_saver_free(c->sv);
    pf_idset_free(&c->map);
    pf_buf_free(&c->buf);
    free(c);
}
