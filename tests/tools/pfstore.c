/* pfstore: raw store operations on a repository URL, for tests/integration/serve.sh (what a
 * client holding the append-only SSH key could send, bypassing the commands):
 *
 *   pfstore URL put KEY FILE    pfstore URL get KEY    pfstore URL rm KEY
 *   pfstore URL ls [PREFIX]     pfstore URL sweep
 *
 * No retry layer, so a refusal shows as the driver reports it. Exit status: 0 on success,
 * 10 + pf_err code on failure (the message on stderr). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/store.h"

static int fail(const pf_err *e)
{
    fprintf(stderr, "pfstore: %s\n", e->msg);
    return 10 + e->code;
}

static int print_key(const char *key, uint64_t size, void *ctx)
{
    (void)ctx;
    printf("%s %llu\n", key, (unsigned long long)size);
    return 0;
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
