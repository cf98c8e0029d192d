#include "cmd/wal.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/atomicfile.h"
#include "cmd/walready.h"
#include "common/log.h"
#include "repo/config.h"
#include "repo/wal.h"

/* Followers pushed with a segment by default, and at most: a batch of 8 costs a backlog
 * one open, lock and flush of the index for 8 segments, and keeps PostgreSQL waiting for
 * the first about 8 pushes' time (docs/DECISIONS.md). */
#define BATCH_DEFAULT 8
#define BATCH_MAX 64

const pf_cmd_syntax pf_syntax_wal_push = {
    .usage =
        "usage: permafrost wal-push [--batch N] PATH\n\n"
        "Archives one WAL file (archive_command = 'permafrost wal-push %p'). Exits 0 only once\n"
        "the file is durable in the repository, or was archived before with the same bytes;\n"
        "refuses (exit 6) a file archived before with other bytes.\n"
        "\nThe first run opens the repository with the passphrase and keeps the master key in\n"
        "$PERMAFROST_KEY_CACHE/<repository id>.key (default ~/.local/state/permafrost, mode\n"
        "0600), so later runs pay no key derivation; PERMAFROST_KEY_CACHE=off turns that off.\n"
        "\nWhen PATH is in pg_wal, the segments after it that PostgreSQL has marked ready\n"
        "(pg_wal/archive_status/*.ready) are pushed in the same run, up to N files in all\n"
        "(--batch, default 8, 1 turns it off), and each one stored is noted in the WAL spool\n"
        "($PERMAFROST_WAL_SPOOL, default wal-ready in the key cache's folder; \"off\" turns\n"
        "it off): the calls for those segments then return 0 once the file's SHA-256 and the\n"
        "repository's object match the note, without storing anything again.\n",
    .longopts = (const struct option[]){{"batch", required_argument, 0, 'b'}, {0, 0, 0, 0}},
    .min_args = 1,
    .max_args = 1};

const pf_cmd_syntax pf_syntax_wal_fetch = {
    .usage =
        "usage: permafrost wal-fetch NAME DEST\n\n"
        "Writes archived WAL file NAME to DEST (restore_command = 'permafrost wal-fetch %f %p').\n"
        "Exits 1 when NAME is not in the repository, and 126 when it cannot tell (the\n"
        "repository unreachable, damaged data, a wrong key): PostgreSQL takes any code up to\n"
        "125 for \"not archived\" and would end recovery there, 126 stops it instead. Uses the\n"
        "key cache as wal-push does. A segment that wal-stream stored only in part (the end of\n"
        "the archive) is given as its longest part, padded with zeros.\n",
    .min_args = 2,
    .max_args = 2};

/* Maps the file rather than reading it: a segment is 16 MiB that would otherwise be copied
 * into fresh memory (page faults, zeroing) and wiped again when freed, which was a third of
 * a push's CPU. PostgreSQL neither writes nor truncates a segment it is archiving. The
 * pages are dropped from the mapping once used (pf_wal_batch_file.mapped), so that a
 * batch's memory does not grow with the files it reads. */
typedef struct wal_map {
    const uint8_t *data;
    size_t len;
    void *map; /* NULL for an empty file */
} wal_map;

static int map_file(const char *path, wal_map *m, pf_err *err)
{
    static const uint8_t none[1];
    memset(m, 0, sizeof *m);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return pf_err_sys(err, PF_EIO, "opening %s", path);
    struct stat st;
    if (fstat(fd, &st) || !S_ISREG(st.st_mode) || (uint64_t)st.st_size > PF_WAL_MAX_FILE) {
        close(fd);
        return pf_err_set(err, PF_EUSAGE,
                          "%s is not a WAL file (not a regular file of at most "
                          "1 GiB)",
                          path);
    }
    m->len = (size_t)st.st_size;
    m->data = none;
    if (m->len) {
        m->map = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            close(fd);
            return pf_err_sys(err, PF_EIO, "reading %s", path);
        }
        madvise(m->map, m->len, MADV_SEQUENTIAL);
        m->data = m->map;
    }
    close(fd);
    return 0;
}

static void unmap_file(wal_map *m)
{
    if (m->map)
        munmap(m->map, m->len);
    m->map = NULL;
}

/* SHA-256 of a mapped file, dropping each window of pages once hashed. */
static void hash_map(const wal_map *m, uint8_t sha[PF_ID_LEN])
{
    const size_t window = 1u << 20;
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    unsigned int hl = PF_ID_LEN;
    EVP_DigestInit_ex(md, EVP_sha256(), NULL);
    for (size_t off = 0; off < m->len; off += window) {
        size_t len = m->len - off < window ? m->len - off : window;
        EVP_DigestUpdate(md, m->data + off, len);
        if (m->map)
            madvise((void *)(m->data + off), len, MADV_DONTNEED);
    }
    EVP_DigestFinal_ex(md, sha, &hl);
    EVP_MD_CTX_free(md);
}

/* The folder holding path: pg_wal when PostgreSQL calls. */
static void dir_of(const char *path, char *out, size_t n)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(out, n, ".");
    else if (slash == path)
        snprintf(out, n, "/");
    else
        snprintf(out, n, "%.*s", (int)(slash - path), path);
}

/* Whether the spool's entry for name vouches for the file (walready.h): its bytes, the
 * repository's identity and its object. The entry is used up either way. */
static bool spool_vouches(int dfd, const char *name, const wal_map *m)
{
    pf_wal_ready_entry e;
    if (pf_wal_ready_read(dfd, name, &e))
        return false;
    pf_wal_ready_drop(dfd, name);
    uint8_t sha[PF_ID_LEN];
    if (e.size != m->len)
        return false;
    hash_map(m, sha);
    if (memcmp(sha, e.sha, PF_ID_LEN))
        return false;
    pf_err err = {0};
    pf_store *st = pf_cli_open_store(&err);
    if (!st)
        return false;
    pf_buf text = PF_BUF_INIT;
    pf_repo_config c;
    char key[PF_WAL_KEY_MAX];
    uint64_t size = 0;
    bool ok = pf_store_get(st, "config", 0, PF_STORE_ALL, &text, &err) == 0 &&
              pf_config_parse(text.data, text.len, &c, &err) == 0 && !strcmp(c.id, e.repo_id) &&
              pf_wal_key(name, key, &err) == 0 && pf_store_stat(st, key, &size, &err) == 0 &&
              size == e.object_size;
    pf_buf_free(&text);
    pf_store_free(st);
    return ok;
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The names of the segments after name that PostgreSQL has marked ready in status_dir,
 * lowest first (the order it would ask for them), at most max. */
static size_t ready_after(const char *status_dir, const char *name, char **out, size_t max)
{
    DIR *d = opendir(status_dir);
    if (!d || !max) {
        if (d)
            closedir(d);
        return 0;
    }
    size_t n = 0, cap = 0;
    char **all = NULL;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char seg[PF_WAL_NAME_MAX + 1];
        if (len != 24 + 6 || strcmp(de->d_name + 24, ".ready"))
            continue;
        memcpy(seg, de->d_name, 24);
        seg[24] = 0;
        if (pf_wal_name_kind(seg) != PF_WAL_SEGMENT || strcmp(seg, name) <= 0)
            continue;
        if (n == cap) {
            char **na = realloc(all, (cap = cap ? 2 * cap : 64) * sizeof *na);
            if (!na)
                break;
            all = na;
        }
        if (!(all[n] = strdup(seg)))
            break;
        n++;
    }
    closedir(d);
    if (n)
        qsort(all, n, sizeof *all, cmp_names);
    size_t k = n < max ? n : max;
    for (size_t i = 0; i < n; i++) {
        if (i < k)
            out[i] = all[i];
        else
            free(all[i]);
    }
    free(all);
    return k;
}

static int parse_batch(pf_cmd_ctx *c, int *batch)
{
    *batch = BATCH_DEFAULT;
    for (size_t i = 0; i < c->nopts; i++) {
        char *end;
        long v = strtol(c->opts[i].arg, &end, 10);
        if (*end || end == c->opts[i].arg || v < 1 || v > BATCH_MAX)
            return pf_cli_usage(NULL, "wal-push: --batch takes a count from 1 to %d, not \"%s\"",
                                BATCH_MAX, c->opts[i].arg);
        *batch = (int)v;
    }
    return -1;
}

int cmd_wal_push(pf_cmd_ctx *c)
{
    const char *path = c->argv[0];
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    pf_err err = {0};
    char key[PF_WAL_KEY_MAX], wal_dir[PATH_MAX], status_dir[PATH_MAX + 16];
    int batch, rc = parse_batch(c, &batch);
    if (rc >= 0)
        return rc;
    wal_map data;
    if (pf_wal_key(name, key, &err) || map_file(path, &data, &err))
        return pf_cli_fail(&err);
    dir_of(path, wal_dir, sizeof wal_dir);
    snprintf(status_dir, sizeof status_dir, "%s/archive_status", wal_dir);
    /* Consulted whatever --batch says: an entry is only ever trusted for what it proves. */
    int dfd = pf_wal_ready_open(wal_dir, false);
    if (dfd >= 0 && spool_vouches(dfd, name, &data)) {
        pf_debug("%s was stored with the segments before it", name);
        close(dfd);
        unmap_file(&data);
        return PF_EXIT_OK;
    }
    if (dfd >= 0)
        close(dfd);
    if (pf_cmd_open(c, &err)) {
        unmap_file(&data);
        pf_err_prefix(&err, "wal-push %s", name);
        return pf_cli_fail(&err);
    }
    pf_repo *r = c->repo;

    /* The file asked for, then the ready segments after it. */
    char *next[BATCH_MAX];
    wal_map maps[BATCH_MAX];
    pf_wal_batch_file files[BATCH_MAX];
    struct stat st;
    size_t nnext = 0, nf = 1;
    dfd = -1;
    if (batch > 1 && stat(status_dir, &st) == 0 && S_ISDIR(st.st_mode) &&
        (dfd = pf_wal_ready_open(wal_dir, true)) >= 0)
        nnext = ready_after(status_dir, name, next, (size_t)batch - 1);
    memset(files, 0, sizeof files);
    maps[0] = data;
    files[0] = (pf_wal_batch_file){
        .name = name, .data = data.data, .len = data.len, .mapped = data.map != NULL};
    for (size_t i = 0; i < nnext; i++) {
        char p[PATH_MAX + 64];
        pf_err e = {0};
        snprintf(p, sizeof p, "%s/%s", wal_dir, next[i]);
        if (map_file(p, &maps[nf], &e)) {
            pf_debug("not pushing %s with %s: %s", next[i], name, e.msg);
            continue;
        }
        files[nf] = (pf_wal_batch_file){.name = next[i],
                                        .data = maps[nf].data,
                                        .len = maps[nf].len,
                                        .mapped = maps[nf].map != NULL};
        nf++;
    }
    rc = PF_EXIT_OK;
    pf_wal_push_batch(r, files, nf, pf_cli_workers(r), &err);
    size_t noted = 0;
    for (size_t i = 1; i < nf; i++) {
        if (files[i].rc) {
            pf_debug("%s not pushed with %s: %s", files[i].name, name, files[i].err.msg);
            continue;
        }
        pf_wal_ready_entry e = {.size = files[i].len, .object_size = files[i].object_size};
        memcpy(e.repo_id, r->id, sizeof e.repo_id);
        memcpy(e.sha, files[i].sha, PF_ID_LEN);
        pf_wal_ready_write(dfd, files[i].name, &e);
        noted++;
    }
    if (dfd >= 0) {
        pf_wal_ready_sweep(dfd, status_dir);
        close(dfd);
    }
    pf_wal_push_result *res = &files[0].res;
    if (files[0].rc) {
        pf_err_prefix(&files[0].err, "wal-push %s", name);
        rc = pf_cli_fail(&files[0].err);
    } else if (res->already) {
        pf_info("%s was already archived with the same content", name);
    } else {
        char h[32];
        pf_human_bytes(res->bytes_new, h, sizeof h);
        pf_debug("%s archived (%s stored), with %zu ready segment%s after it", name, h, noted,
                 noted == 1 ? "" : "s");
    }
    for (size_t i = 0; i < nf; i++)
        unmap_file(&maps[i]);
    for (size_t i = 0; i < nnext; i++)
        free(next[i]);
    return rc;
}

/* Writes the file next to dest and renames it: PostgreSQL must never read half a
 * segment. */
static int write_dest(const char *dest, const pf_buf *b, pf_err *err)
{
    return pf_write_file_atomic(dest, b->data, b->len, 0600, NULL, err);
}

/* PostgreSQL reads an exit status above 125 as a failure of the command itself and stops
 * recovery; anything lower means "not archived", after which it ends recovery and promotes.
 * A fetch that could not tell must not pass for the end of the archive. */
#define WAL_FETCH_UNKNOWN 126

int cmd_wal_fetch(pf_cmd_ctx *c)
{
    const char *name = c->argv[0], *dest = c->argv[1];
    pf_err err = {0};
    char key[PF_WAL_KEY_MAX];
    if (pf_wal_key(name, key, &err))
        return pf_cli_fail(&err);
    if (pf_cmd_open(c, &err)) {
        pf_err_prefix(&err, "wal-fetch %s", name);
        pf_cli_fail(&err);
        return WAL_FETCH_UNKNOWN;
    }
    pf_repo *r = c->repo;
    pf_buf b = PF_BUF_INIT;
    int rc = PF_EXIT_OK;
    char used[PF_WAL_NAME_MAX + 1];
    /* A segment not (yet) archived whole may have been streamed in part (wal-stream): the
     * newest partial is the end of the archive. */
    if (pf_wal_fetch_segment(r, name, &b, used, &err) || write_dest(dest, &b, &err)) {
        if (err.code == PF_ENOTFOUND) {
            /* Recovery asks for files past the end of the archive as a matter of course:
             * 1 tells it "not there", and the line says so without alarm. */
            if (pf_g.verbosity >= 0)
                fprintf(stderr, "permafrost: wal-fetch: %s is not in the repository\n", name);
            rc = PF_EXIT_ERROR;
        } else {
            pf_err_prefix(&err, "wal-fetch %s", name);
            pf_cli_fail(&err);
            rc = WAL_FETCH_UNKNOWN;
        }
    }
    if (rc == PF_EXIT_OK && used[0])
        pf_info("%s: the segment's streamed part %s (padded to its whole size)", name, used);
    pf_buf_free(&b);
    return rc;
}

void pf_wal_print_newest(pf_repo *r)
{
    char newest[PF_WAL_NAME_MAX + 1], when[64] = "at an unknown time";
    int64_t ns;
    pf_err err = {0};
    if (pf_wal_newest(r, newest, &ns, &err)) {
        pf_warn("could not list the WAL archive: %s", err.msg);
        return;
    }
    if (!newest[0])
        return;
    time_t t = (time_t)(ns / 1000000000);
    struct tm tm;
    if (ns && localtime_r(&t, &tm))
        strftime(when, sizeof when, "pushed %Y-%m-%d %H:%M:%S %z", &tm);
    /* wal-stream's streamed partial is a point inside its segment, not the segment. */
    if (pf_wal_name_kind(newest) == PF_WAL_STREAMED)
        printf("WAL archived up to segment %.24s + %lu bytes, a streamed partial (%s)\n", newest,
               strtoul(newest + 25, NULL, 16), when);
    else
        printf("WAL archived up to segment %s (%s)\n", newest, when);
}
