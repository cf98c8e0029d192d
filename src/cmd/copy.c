/* `copy --to URL [SNAPSHOT...]`: copies snapshots into a second repository (3-2-1: a
 * local repository every night and an S3 copy of it).
 *
 * Blob ids are keyed by each repository's master key, so in general a blob's id in the
 * destination is only known after reading its plaintext from the source; trees are then
 * rewritten with the new ids. Only blobs the destination lacks are uploaded. When both
 * repositories share a master key (init --copy-key-from), ids are identical and blobs the
 * destination has are not even read. A copied snapshot records its source id, so a
 * snapshot is never copied twice; an interrupted copy resumes, reusing what was uploaded. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/log.h"
#include "repo/lock.h"
#include "repo/saver.h"

const pf_cmd_syntax pf_syntax_copy = {
    .usage = "usage: permafrost copy --to URL [SNAPSHOT...]\n\n"
             "Copies all snapshots (or those named) into the repository at URL, which may use\n"
             "another driver and passphrase: that passphrase comes from\n"
             "$PERMAFROST_TO_PASSWORD_FILE or $PERMAFROST_TO_PASSWORD (or a prompt). Snapshots\n"
             "already copied are skipped; only data the destination lacks is uploaded.\n",
    .longopts = (const struct option[]){{"to", required_argument, 0, 't'}, {0, 0, 0, 0}},
    .max_args = -1};

/* Source blob id -> destination blob id. */
typedef struct idmap {
    uint8_t (*keys)[PF_ID_LEN];
    uint8_t (*vals)[PF_ID_LEN];
    uint8_t *used;
    size_t n, cap;
} idmap;

static size_t map_probe(const idmap *m, const uint8_t *k)
{
    size_t i = (size_t)pf_le64(k) & (m->cap - 1);
    while (m->used[i] && memcmp(m->keys[i], k, PF_ID_LEN))
        i = (i + 1) & (m->cap - 1);
    return i;
}

static const uint8_t *map_get(const idmap *m, const uint8_t *k)
{
    if (!m->cap)
        return NULL;
    size_t i = map_probe(m, k);
    return m->used[i] ? m->vals[i] : NULL;
}

static int map_put(idmap *m, const uint8_t *k, const uint8_t *v)
{
    if ((m->n + 1) * 10 > m->cap * 7) {
        idmap b = {0};
        b.cap = m->cap ? m->cap * 2 : 4096;
        b.keys = malloc(b.cap * PF_ID_LEN);
        b.vals = malloc(b.cap * PF_ID_LEN);
        b.used = calloc(b.cap, 1);
        if (!b.keys || !b.vals || !b.used) {
            free(b.keys);
            free(b.vals);
            free(b.used);
            return -1;
        }
        for (size_t i = 0; i < m->cap; i++)
            if (m->used[i]) {
                size_t j = map_probe(&b, m->keys[i]);
                memcpy(b.keys[j], m->keys[i], PF_ID_LEN);
                memcpy(b.vals[j], m->vals[i], PF_ID_LEN);
                b.used[j] = 1;
            }
        b.n = m->n;
        free(m->keys);
        free(m->vals);
        free(m->used);
        *m = b;
    }
    size_t i = map_probe(m, k);
    if (!m->used[i]) {
        memcpy(m->keys[i], k, PF_ID_LEN);
        m->used[i] = 1;
        m->n++;
    }
    memcpy(m->vals[i], v, PF_ID_LEN);
    return 0;
}

static void map_free(idmap *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
}

typedef struct copier {
    pf_repo *src, *dst;
    pf_saver *sv;
    idmap map;
    int same_key;
    uint64_t blobs_copied, bytes_copied, blobs_present;
    pf_buf buf;
} copier;

/* Makes sure the destination holds blob id (of type), giving its destination id. */
static int copy_blob(copier *c, const uint8_t id_in[PF_ID_LEN], uint8_t type,
                     uint8_t out[PF_ID_LEN], pf_err *err)
{
    uint8_t id[PF_ID_LEN]; /* out may alias id_in */
    memcpy(id, id_in, PF_ID_LEN);
    const uint8_t *known = map_get(&c->map, id);
    if (known) {
        memcpy(out, known, PF_ID_LEN);
        return 0;
    }
    if (c->same_key && pf_repo_has_blob(c->dst, id)) {
        memcpy(out, id, PF_ID_LEN);
        c->blobs_present++;
        return map_put(&c->map, id, out) ? pf_err_set(err, PF_EGENERIC, "out of memory") : 0;
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
        c->blobs_present++;
    } else {
        c->blobs_copied++;
        c->bytes_copied += c->buf.len;
    }
    return map_put(&c->map, id, out) ? pf_err_set(err, PF_EGENERIC, "out of memory") : 0;
}

static int copy_tree(copier *c, const uint8_t id_in[PF_ID_LEN], uint8_t out[PF_ID_LEN],
                     pf_err *err)
{
    uint8_t id[PF_ID_LEN]; /* out may alias id_in */
    memcpy(id, id_in, PF_ID_LEN);
    const uint8_t *known = map_get(&c->map, id);
    if (known) {
        memcpy(out, known, PF_ID_LEN);
        return 0;
    }
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
    if (!rc && map_put(&c->map, id, out))
        rc = pf_err_set(err, PF_EGENERIC, "out of memory");
    pf_buf_free(&enc);
    pf_tree_free(&t);
    return rc;
}

static char *to_passphrase(pf_err *err)
{
    const char *f = getenv("PERMAFROST_TO_PASSWORD_FILE");
    if (!f || !*f)
        f = pf_config_get("copy_password_file");
    const char *saved_file = getenv("PERMAFROST_PASSWORD_FILE");
    const char *saved_pw = getenv("PERMAFROST_PASSWORD");
    char *keep_file = saved_file ? strdup(saved_file) : NULL;
    char *keep_pw = saved_pw ? strdup(saved_pw) : NULL;
    /* Reuse the passphrase reader with the destination's variables in place. */
    unsetenv("PERMAFROST_PASSWORD_FILE");
    unsetenv("PERMAFROST_PASSWORD");
    if (f && *f)
        setenv("PERMAFROST_PASSWORD_FILE", f, 1);
    const char *p = getenv("PERMAFROST_TO_PASSWORD");
    if (p && *p)
        setenv("PERMAFROST_PASSWORD", p, 1);
    const char *saved_g = pf_g.password_file;
    pf_g.password_file = NULL;
    char *pass = pf_cli_passphrase(false, "Destination repository passphrase: ", err);
    pf_g.password_file = saved_g;
    unsetenv("PERMAFROST_PASSWORD_FILE");
    unsetenv("PERMAFROST_PASSWORD");
    if (keep_file)
        setenv("PERMAFROST_PASSWORD_FILE", keep_file, 1);
    if (keep_pw)
        setenv("PERMAFROST_PASSWORD", keep_pw, 1);
    free(keep_file);
    if (keep_pw)
        pf_cli_passphrase_free(keep_pw);
    return pass;
}

static const char *copied_from(const pf_snapshot *s)
{
    cJSON *v = s->stats ? cJSON_GetObjectItemCaseSensitive(s->stats, "copied_from") : NULL;
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

int cmd_copy(pf_cmd_ctx *cx)
{
    const char *to = pf_config_get("copy_to");
    for (size_t i = 0; i < cx->nopts; i++)
        to = cx->opts[i].arg; /* --to */
    if (!to) {
        fputs(pf_syntax_copy.usage, stderr);
        return PF_EXIT_USAGE;
    }
    /* The snapshots named: getopt's names, so that the loop below reads as before. */
    int argc = cx->argc, optind = 0;
    char **argv = cx->argv;
    pf_err err = {0};
    copier cp = {0};
    /* The source, opened and locked (shared) as the table says. */
    pf_repo *src = pf_cmd_open(cx, &err) ? NULL : cx->repo, *dst = NULL;
    struct pf_lock *ld = NULL;
    pf_snapshot *all = NULL, *have = NULL;
    size_t n = 0, nhave = 0;
    int rc = PF_EXIT_OK;
    if (!src) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_store *dst_store =
        pf_cli_check_repo_url(to, &err) < 0 ? NULL : pf_store_open(to, &pf_g.store_opts, &err);
    char *pass = dst_store ? to_passphrase(&err) : NULL;
    if (!pass) {
        pf_store_free(dst_store);
        pf_err_prefix(&err, "destination");
        rc = pf_cli_fail(&err);
        goto out;
    }
    dst = pf_repo_open(dst_store, pass, &err);
    pf_cli_passphrase_free(pass);
    if (!dst) {
        pf_err_prefix(&err, "destination");
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (!strcmp(src->id, dst->id)) {
        pf_err_set(&err, PF_EUSAGE, "source and destination are the same repository");
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_index_file orphans = {0};
    if (!(ld = pf_cli_lock(dst, false, "copy", &err)) || pf_repo_load_index(src, &err) ||
        pf_repo_load_index(dst, &err) || pf_repo_index_orphan_packs(dst, &orphans, &err) ||
        pf_repo_load_all_snapshots(src, &all, &n, &err) ||
        pf_repo_load_all_snapshots(dst, &have, &nhave, &err)) {
        pf_index_file_free(&orphans);
        rc = pf_cli_fail(&err);
        goto out;
    }
    cp.src = src;
    cp.dst = dst;
    cp.same_key = !memcmp(src->keys.id_key, dst->keys.id_key, PF_KEY_LEN);
    cp.sv = pf_saver_new(dst, pf_cli_workers(dst), &err);
    if (!cp.sv) {
        pf_index_file_free(&orphans);
        rc = pf_cli_fail(&err);
        goto out;
    }
    pf_saver_adopt(cp.sv, &orphans);
    size_t copied = 0, skipped = 0;
    for (size_t i = 0; i < n; i++) {
        pf_snapshot *s = &all[i];
        if (optind < argc) {
            int wanted = 0;
            for (int a = optind; a < argc; a++)
                if (!strncmp(s->id, argv[a], strlen(argv[a])) ||
                    (!strcmp(argv[a], "latest") && i == n - 1))
                    wanted = 1;
            if (!wanted)
                continue;
        }
        int there = 0;
        for (size_t j = 0; j < nhave && !there; j++) {
            const char *from = copied_from(&have[j]);
            there = (from && !strcmp(from, s->id)) || !strcmp(have[j].id, s->id);
        }
        if (there) {
            skipped++;
            continue;
        }
        uint8_t tree[PF_ID_LEN];
        if (copy_tree(&cp, s->tree, tree, &err)) {
            pf_err_prefix(&err, "copy of snapshot %.8s", s->id);
            rc = pf_cli_fail(&err);
            goto out;
        }
        /* Every blob of this snapshot must be durable before its snapshot is written. */
        if (pf_saver_finish(cp.sv, &err)) {
            rc = pf_cli_fail(&err);
            goto out;
        }
        pf_saver_free(cp.sv);
        cp.sv = NULL;
        pf_snapshot ns = *s;
        memcpy(ns.tree, tree, PF_ID_LEN);
        ns.parent[0] = 0;
        ns.stats = s->stats ? cJSON_Duplicate(s->stats, 1) : cJSON_CreateObject();
        cJSON_DeleteItemFromObject(ns.stats, "copied_from");
        cJSON_AddStringToObject(ns.stats, "copied_from", s->id);
        int failed = pf_repo_save_snapshot(dst, &ns, &err);
        cJSON_Delete(ns.stats);
        if (failed) {
            rc = pf_cli_fail(&err);
            goto out;
        }
        if (pf_g.verbosity >= 0 && !pf_g.json)
            printf("copied snapshot %.8s -> %.8s\n", s->id, ns.id);
        copied++;
        cp.sv = pf_saver_new(dst, pf_cli_workers(dst), &err);
        if (!cp.sv) {
            rc = pf_cli_fail(&err);
            goto out;
        }
    }
    if (pf_saver_finish(cp.sv, &err)) {
        rc = pf_cli_fail(&err);
        goto out;
    }
    if (pf_g.json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddNumberToObject(j, "copied", (double)copied);
        cJSON_AddNumberToObject(j, "skipped", (double)skipped);
        cJSON_AddNumberToObject(j, "blobs_uploaded", (double)cp.blobs_copied);
        cJSON_AddNumberToObject(j, "bytes_uploaded", (double)cp.bytes_copied);
        cJSON_AddNumberToObject(j, "blobs_present", (double)cp.blobs_present);
        pf_out_json(j);
    } else if (pf_g.verbosity >= 0) {
        char b[32];
        pf_human_bytes(cp.bytes_copied, b, sizeof b);
        printf("%zu snapshot%s copied, %zu already there; %llu blobs (%s) uploaded, %llu "
               "already present\n",
               copied, copied == 1 ? "" : "s", skipped, (unsigned long long)cp.blobs_copied, b,
               (unsigned long long)cp.blobs_present);
    }
out:
    pf_saver_free(cp.sv);
    map_free(&cp.map);
    pf_buf_free(&cp.buf);
    pf_snapshots_free(all, n);
    pf_snapshots_free(have, nhave);
    pf_cli_unlock(ld);
    pf_repo_free(dst);
    return rc;
}
