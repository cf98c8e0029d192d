/* bench/prune_blobs: fills a repository with many tiny blobs, fast, for bench/prune.sh.
 *
 *   PERMAFROST_PASSWORD=... prune_blobs REPO N [BATCHES [BLOB_BYTES [FILES_PER_DIR]]]
 *
 * Writes N distinct data blobs of BLOB_BYTES (default 64, at most 65536) straight through the saver
 * (what a backup of N small files stores, without N files on disk), in BATCHES savers one after the
 * other (default 1; each writes its own index files, as that many backups would), then, in the same
 * run, one snapshot whose tree "blobs/dNNNNN/fNNNNNNN" holds every other one as a file (the
 * archiver's streams: each file is one chunk, found already stored). So the repository has N data
 * blobs, half of them used, spread evenly over every pack: a prune has to rewrite every pack. Uses
 * only the library (build/libpf.a): the repository is opened, locked and committed the way
 * `permafrost backup` does it. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "repo/archiver.h"
#include "repo/backup_run.h"
#include "repo/pack.h"
#include "repo/saver.h"

static uint64_t splitmix64(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

/* Blob i: its number, then pseudo-random bytes seeded by it (incompressible, distinct).
 * len is a multiple of 8, at least 8. */
static void content(uint64_t i, uint8_t *out, size_t len)
{
    uint64_t s = i * 0x2545f4914f6cdd1dULL + 1;
    memcpy(out, &i, 8);
    for (size_t k = 8; k < len; k += 8) {
        uint64_t v = splitmix64(&s);
        memcpy(out + k, &v, 8);
    }
}

static int die(pf_err *err, const char *what)
{
    fprintf(stderr, "prune_blobs: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: prune_blobs REPO N [BATCHES [BLOB_BYTES [FILES_PER_DIR]]]\n");
        return 2;
    }
    uint64_t n = strtoull(argv[2], NULL, 10);
    uint64_t batches = argc > 3 ? strtoull(argv[3], NULL, 10) : 1;
    uint64_t blob_len = argc > 4 ? strtoull(argv[4], NULL, 10) : 64;
    uint64_t per_dir = argc > 5 ? strtoull(argv[5], NULL, 10) : 1000;
    if (n < 2 || batches < 1 || batches > n || per_dir < 1 || blob_len < 8 || blob_len > 65536 ||
        blob_len % 8) {
        fprintf(stderr, "prune_blobs: want N >= 2, 1 <= BATCHES <= N, BLOB_BYTES a multiple of "
                        "8 from 8 to 65536, FILES_PER_DIR >= 1\n");
        return 2;
    }
    pf_g.repo_url = argv[1];
    pf_g.verbosity = 0;
    pf_err err = {0};
    pf_repo *r = pf_cli_open_repo(&err);
    if (!r)
        return die(&err, "open");
    char *paths[] = {"prune-bench"};
    pf_backup_run b;
    pf_backup_opts bo = {.program = "prune_blobs"};
    int rc = 1;
    if (pf_backup_begin(&b, r, &bo, NULL, paths, 1, &err)) {
        die(&err, "begin");
        goto out;
    }
    static uint8_t buf[65536];
    uint8_t id[PF_ID_LEN];
    double t0 = pf_now();
    /* Batches but the last in savers of their own; the last in the backup's saver. */
    uint64_t i = 0;
    for (uint64_t k = 0; k < batches; k++) {
        uint64_t end = n / batches * (k + 1);
        if (k == batches - 1)
            end = n;
        pf_saver *sv = k == batches - 1 ? b.saver : pf_saver_new(r, 0, &err);
        if (!sv) {
            die(&err, "saver");
            goto out;
        }
        for (; i < end; i++) {
            content(i, buf, blob_len);
            if (pf_saver_save(sv, PF_BLOB_DATA, buf, blob_len, id, &err)) {
                die(&err, "save");
                if (sv != b.saver)
                    pf_saver_free(sv);
                goto out;
            }
        }
        if (sv != b.saver) {
            int frc = pf_saver_finish(sv, &err);
            pf_saver_free(sv);
            if (frc) {
                die(&err, "saver finish");
                goto out;
            }
        }
    }
    double t1 = pf_now();
    fprintf(stderr, "prune_blobs: %" PRIu64 " blobs handed to the saver in %.1f s\n", n, t1 - t0);

    pf_dir *top = pf_dir_begin(b.arch, pf_archiver_root(b.arch), "blobs", &err);
    if (!top) {
        die(&err, "dir");
        goto out;
    }
    pf_dir *d = NULL;
    uint64_t files = 0;
    for (i = 0; i < n; i += 2) {
        char name[32];
        if (files % per_dir == 0) {
            if (d && pf_dir_end(b.arch, d, NULL, &err)) {
                die(&err, "dir end");
                goto out;
            }
            snprintf(name, sizeof name, "d%06" PRIu64, files / per_dir);
            if (!(d = pf_dir_begin(b.arch, top, name, &err))) {
                die(&err, "dir");
                goto out;
            }
        }
        snprintf(name, sizeof name, "f%08" PRIu64, i);
        pf_sink *sink = pf_archive_stream_begin(b.arch, d, name, 0644, &err);
        if (!sink) {
            die(&err, "file");
            goto out;
        }
        content(i, buf, blob_len);
        if (pf_sink_write(sink, buf, blob_len, &err) || pf_archive_stream_end(b.arch, sink, &err)) {
            die(&err, "file");
            goto out;
        }
        files++;
    }
    if ((d && pf_dir_end(b.arch, d, NULL, &err)) || pf_dir_end(b.arch, top, NULL, &err)) {
        die(&err, "dir end");
        goto out;
    }
    if (pf_backup_commit(&b, &err)) {
        die(&err, "commit");
        goto out;
    }
    fprintf(stderr, "prune_blobs: snapshot %.8s with %" PRIu64 " files in %.1f s\n", b.snap.id,
            files, pf_now() - t1);
    rc = 0;
out:
    pf_backup_end(&b);
    pf_repo_free(r);
    return rc;
}
