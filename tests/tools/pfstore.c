/* pfstore: raw store operations on a repository URL, for tests/integration/serve.sh (what a
 * client holding the append-only SSH key could send, bypassing the commands):
 *
 *   pfstore URL put KEY FILE    pfstore URL get KEY    pfstore URL rm KEY
 *   pfstore URL ls [PREFIX]     pfstore URL sweep
 *   pfstore URL forge-index [N] with the repository key ($PERMAFROST_PASSWORD), adds N (1)
 *                               index files that list every pack with one made-up blob
 *                               only, and prints their ids: what an attacker holding the
 *                               key and the append-only SSH key can add to mislead prune
 *                               (with a write-only key: the index files it can read)
 *   pfstore URL forge-snapshot [TREE]  with $PERMAFROST_PASSWORD (a write-only key, say),
 *                               adds a snapshot of host "attacker" whose root tree is TREE
 *                               (64 hex; default: an id no tree has), prints its id
 *
 * No retry layer, so a refusal shows as the driver reports it. Exit status: 0 on success,
 * 10 + pf_err code on failure (the message on stderr). */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "repo/index.h"
#include "repo/pack.h"
#include "repo/repo.h"
#include "store/store.h"

static int fail(const pf_err *e)
{
    fprintf(stderr, "pfstore: %s\n", e->msg);
    return 10 + e->code;
}

static int print_key(const char *key, uint64_t size, void *ctx, pf_err *err)
{
    (void)ctx;
    (void)err;
    printf("%s %llu\n", key, (unsigned long long)size);
    return 0;
}

typedef struct ids {
    char (*v)[PF_HEX_ID_LEN + 1];
    size_t n;
} ids;

static int add_id(const char *id, void *ctx)
{
    ids *l = ctx;
    l->v = realloc(l->v, (l->n + 1) * sizeof *l->v);
    memcpy(l->v[l->n++], id, PF_HEX_ID_LEN + 1);
    return 0;
}

static int forge_index(pf_store *s, int copies, pf_err *err)
{
    pf_repo *r = pf_repo_open(s, getenv("PERMAFROST_PASSWORD"), err);
    if (!r)
        return -1;
    ids l = {0};
    pf_index_file forged = {0};
    int rc = pf_repo_list_objects(r, "index", add_id, &l, err);
    for (size_t i = 0; rc == 0 && i < l.n; i++) {
        pf_buf plain = PF_BUF_INIT;
        pf_index_file f;
        rc = pf_repo_load_object(r, "index", l.v[i], &plain, err) ||
             pf_index_file_decode(plain.data, plain.len, &f, err);
        pf_buf_free(&plain);
        if (rc && err->code == PF_EAUTH && r->keys.write_only) {
            rc = 0; /* written under the master key: a write-only key lists it elsewhere */
            continue;
        }
        for (size_t j = 0; rc == 0 && j < f.npacks; j++) {
            bool seen = false; /* each pack once, however many index files list it */
            for (size_t k = 0; k < forged.npacks && !seen; k++)
                seen = !memcmp(forged.packs[k].info.id, f.packs[j].info.id, PF_ID_LEN);
            if (seen)
                continue;
            forged.packs = realloc(forged.packs, (forged.npacks + 1) * sizeof *forged.packs);
            pf_index_file_pack *pk = &forged.packs[forged.npacks++];
            pk->info = f.packs[j].info;
            pk->entries = calloc(1, sizeof *pk->entries);
            pk->count = 1;
            memset(pk->entries[0].id, 0x5a, PF_ID_LEN);
            pk->entries[0].type = PF_BLOB_DATA;
            pk->entries[0].length = pk->entries[0].raw_length = 17;
        }
        if (rc == 0)
            pf_index_file_free(&f);
    }
    if (rc == 0) {
        pf_buf plain = PF_BUF_INIT;
        char id[PF_HEX_ID_LEN + 1];
        pf_index_file_encode(&forged, &plain);
        /* Each is sealed anew (a random nonce), so each gets its own id. */
        for (int i = 0; rc == 0 && i < copies; i++) {
            rc = pf_repo_save_object(r, "index", plain.data, plain.len, id, err);
            if (rc == 0)
                printf("%s\n", id);
        }
        pf_buf_free(&plain);
    }
    pf_index_file_free(&forged);
    free(l.v);
    pf_repo_free(r);
    return rc;
}

static int forge_snapshot(pf_store *s, const char *tree, pf_err *err)
{
    pf_repo *r = pf_repo_open(s, getenv("PERMAFROST_PASSWORD"), err);
    if (!r)
        return -1;
    pf_snapshot snap;
    pf_snapshot_init(&snap);
    snap.time_ns = (int64_t)4102444800 * 1000000000; /* 2100: the newest */
    snap.host = strdup("attacker");
    snap.user = strdup("attacker");
    if (tree && pf_unhex(tree, snap.tree, PF_ID_LEN)) {
        pf_err_set(err, PF_EUSAGE, "TREE must be 64 hex digits");
        pf_snapshot_free(&snap);
        pf_repo_free(r);
        return -1;
    }
    if (!tree)
        memset(snap.tree, 0xa5, PF_ID_LEN);
    int rc = pf_repo_save_snapshot(r, &snap, err);
    if (!rc)
        printf("%s\n", snap.id);
    pf_snapshot_free(&snap);
    pf_repo_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: pfstore URL put KEY FILE|get KEY|rm KEY|ls [PREFIX]|sweep\n");
        return 2;
    }
    pf_err err = {0};
    pf_store_opts o = {.retries = -1};
    pf_store *s = pf_store_open(argv[1], &o, &err);
    if (!s)
        return fail(&err);
    const char *op = argv[2];
    int rc = 0;
    if (!strcmp(op, "put") && argc == 5) {
        FILE *f = fopen(argv[4], "rb");
        pf_buf b = PF_BUF_INIT;
        char chunk[65536];
        size_t n;
        while (f && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
            pf_buf_append(&b, chunk, n);
        if (f)
            fclose(f);
        rc = pf_store_put(s, argv[3], b.data ? b.data : (uint8_t *)"", b.len, &err);
        pf_buf_free(&b);
    } else if (!strcmp(op, "get") && argc == 4) {
        pf_buf b = PF_BUF_INIT;
        rc = pf_store_get(s, argv[3], 0, PF_STORE_ALL, &b, &err);
        if (!rc)
            fwrite(b.data, 1, b.len, stdout);
        pf_buf_free(&b);
    } else if (!strcmp(op, "rm") && argc == 4) {
        rc = pf_store_remove(s, argv[3], &err);
    } else if (!strcmp(op, "ls") && argc <= 4) {
        rc = pf_store_list(s, argc == 4 ? argv[3] : "", print_key, NULL, &err);
    } else if (!strcmp(op, "forge-index") && argc <= 4) {
        rc = forge_index(s, argc == 4 ? atoi(argv[3]) : 1, &err);
        return rc ? fail(&err) : 0; /* the repository owned the store */
    } else if (!strcmp(op, "forge-snapshot") && argc <= 4) {
        rc = forge_snapshot(s, argc == 4 ? argv[3] : NULL, &err);
        return rc ? fail(&err) : 0;
    } else if (!strcmp(op, "sweep") && argc == 3) {
        uint64_t removed, bytes;
        rc = pf_store_sweep_tmp(s, (int64_t)1 << 40, &removed, &bytes, &err);
    } else {
        fprintf(stderr, "pfstore: bad arguments\n");
        pf_store_free(s);
        return 2;
    }
    pf_store_free(s);
    return rc ? fail(&err) : 0;
}
