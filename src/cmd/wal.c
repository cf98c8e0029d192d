#include "cmd/wal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/commands.h"
#include "common/atomicfile.h"
#include "common/log.h"
#include "repo/wal.h"

const pf_cmd_syntax pf_syntax_wal_push = {
    .usage =
        "usage: permafrost wal-push PATH\n\n"
        "Archives one WAL file (archive_command = 'permafrost wal-push %p'). Exits 0 only once\n"
        "the file is durable in the repository, or was archived before with the same bytes;\n"
        "refuses (exit 6) a file archived before with other bytes.\n"
        "\nThe first run opens the repository with the passphrase and keeps the master key in\n"
        "$PERMAFROST_KEY_CACHE/<repository id>.key (default ~/.local/state/permafrost, mode\n"
        "0600), so later runs pay no key derivation; PERMAFROST_KEY_CACHE=off turns that off.\n",
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
 * a push's CPU. PostgreSQL neither writes nor truncates a segment it is archiving. */
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
        m->map = mmap(NULL, m->len, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
        if (m->map == MAP_FAILED) {
            m->map = NULL;
            close(fd);
            return pf_err_sys(err, PF_EIO, "reading %s", path);
        }
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

int cmd_wal_push(pf_cmd_ctx *c)
{
    const char *path = c->argv[0];
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    pf_err err = {0};
    char key[PF_WAL_KEY_MAX];
    wal_map data;
    if (pf_wal_key(name, key, &err) || map_file(path, &data, &err))
        return pf_cli_fail(&err);
    if (pf_cmd_open(c, &err)) {
        unmap_file(&data);
        pf_err_prefix(&err, "wal-push %s", name);
        return pf_cli_fail(&err);
    }
    pf_repo *r = c->repo;
    int rc = PF_EXIT_OK;
    pf_wal_push_result res;
    if (pf_wal_push(r, name, data.data, data.len, pf_cli_workers(r), &res, &err)) {
        pf_err_prefix(&err, "wal-push %s", name);
        rc = pf_cli_fail(&err);
    } else if (res.already) {
        pf_info("%s was already archived with the same content", name);
    } else {
        char h[32];
        pf_human_bytes(res.bytes_new, h, sizeof h);
        pf_debug("%s archived (%s stored)", name, h);
    }
    unmap_file(&data);
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
