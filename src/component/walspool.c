/* WAL fetched ahead for a recovery whose cluster cannot reach the repository: see
 * walspool.h. */
#include "component/walspool.h"

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "common/atomicfile.h"
#include "common/log.h"
#include "repo/wal.h"

void pf_wal_spool_dir(const char *datadir, char *out, size_t n)
{
    size_t len = strlen(datadir);
    while (len > 1 && datadir[len - 1] == '/')
        len--;
    snprintf(out, n, "%.*s.permafrost-wal", (int)len, datadir);
}

typedef struct names {
    char (*v)[PF_WAL_NAME_MAX + 1];
    size_t n, cap;
    const char *start; /* 24 hex */
    int oom;
} names;

static void add(names *ns, const char *name, size_t len)
{
    if (ns->n == ns->cap) {
        size_t cap = ns->cap ? ns->cap * 2 : 64;
        void *v = realloc(ns->v, cap * sizeof *ns->v);
        if (!v) {
            ns->oom = 1;
            return;
        }
        ns->v = v;
        ns->cap = cap;
    }
    snprintf(ns->v[ns->n++], PF_WAL_NAME_MAX + 1, "%.*s", (int)len, name);
}

/* Which files recovery from start may ask for: every history file (it reads them to follow
 * timelines), and the segments at or after start's position on its timeline or a later
 * one. A streamed partial stands for its segment. Names are upper-case hex of fixed width,
 * so comparing the text compares the numbers. */
static int pick(const char *name, void *ctx)
{
    names *ns = ctx;
    pf_wal_kind k = pf_wal_name_kind(name);
    if (k == PF_WAL_HISTORY) {
        add(ns, name, strlen(name));
    } else if (k == PF_WAL_SEGMENT || k == PF_WAL_STREAMED) {
        if (strncmp(name, ns->start, 8) >= 0 && strncmp(name + 8, ns->start + 8, 16) >= 0)
            add(ns, name, 24);
    }
    return ns->oom ? -1 : 0;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(a, b);
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path) && errno != ENOENT ? -1 : 0;
}

int pf_wal_spool_remove(const char *dir, pf_err *err)
{
    struct stat st;
    if (lstat(dir, &st)) {
        if (errno == ENOENT)
            return 0;
        return pf_err_sys(err, PF_EIO, "WAL spool %s", dir);
    }
    if (!S_ISDIR(st.st_mode))
        return pf_err_set(err, PF_EEXIST,
                          "%s is in the way of the WAL spool and not a directory: "
                          "move it away",
                          dir);
    if (nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS))
        return pf_err_sys(err, PF_EIO, "removing the WAL spool %s", dir);
    return 0;
}

/* The names recovery from ns->start may ask for, sorted by cmp, each once. */
static int list_names(pf_repo *r, names *ns, int (*cmp)(const void *, const void *), pf_err *err)
{
    if (pf_wal_list(r, pick, ns, err)) {
        if (ns->oom)
            pf_err_set(err, PF_EIO, "out of memory listing the WAL archive");
        return pf_err_prefix(err, "listing the WAL archive");
    }
    if (ns->n)
        qsort(ns->v, ns->n, sizeof *ns->v, cmp);
    size_t m = 0;
    for (size_t i = 0; i < ns->n; i++) {
        if (m && !strcmp(ns->v[m - 1], ns->v[i]))
            continue;
        memmove(ns->v[m++], ns->v[i], sizeof *ns->v);
    }
    ns->n = m;
    return 0;
}

/* A fresh dir for uid:gid, refused when need bytes (for files WAL files) do not fit. */
static int make_dir(const char *dir, uid_t uid, gid_t gid, uint64_t need, size_t files, pf_err *err)
{
    if (pf_wal_spool_remove(dir, err))
        return -1;
    if (mkdir(dir, 0700))
        return pf_err_sys(err, PF_EIO, "creating the WAL spool %s", dir);
    if (chown(dir, uid, gid) && geteuid() == 0)
        return pf_err_sys(err, PF_EIO, "giving the WAL spool %s to the cluster's owner", dir);
    struct statvfs vfs;
    if (statvfs(dir, &vfs) == 0 && (uint64_t)vfs.f_bavail * vfs.f_frsize < need) {
        pf_err_set(err, PF_EIO,
                   "the WAL spool %s needs %" PRIu64 " MiB for %zu WAL files, and only %" PRIu64
                   " MiB are free there: free space, or pass --restore-command with a command "
                   "the cluster's user can run",
                   dir, need >> 20, files, ((uint64_t)vfs.f_bavail * vfs.f_frsize) >> 20);
        rmdir(dir);
        return -1;
    }
    return 0;
}

int pf_wal_spool_fill(pf_repo *r, const char *dir, const char *start_wal, uint64_t seg_size,
                      uid_t uid, gid_t gid, pf_wal_spool_stats *st, pf_err *err)
{
    memset(st, 0, sizeof *st);
    if (!start_wal || pf_wal_name_kind(start_wal) != PF_WAL_SEGMENT)
        return pf_err_set(err, PF_ECORRUPT, "the base backup names no first WAL segment (%s)",
                          start_wal ? start_wal : "none");
    if (!seg_size)
        seg_size = 16u << 20;
    names ns = {.start = start_wal};
    int rc = -1;
    pf_buf b = PF_BUF_INIT;
    if (list_names(r, &ns, by_name, err))
        goto out;
    uint64_t need = 0;
    for (size_t i = 0; i < ns.n; i++)
        need += pf_wal_name_kind(ns.v[i]) == PF_WAL_HISTORY ? 4096 : seg_size;
    if (make_dir(dir, uid, gid, need, ns.n, err))
        goto out;
    pf_file_owner owner = {uid, gid, "the cluster's owner"};
    for (size_t i = 0; i < ns.n; i++) {
        const char *name = ns.v[i];
        char used[PF_WAL_NAME_MAX + 1] = "", path[4200];
        pf_buf_reset(&b);
        int frc = pf_wal_name_kind(name) == PF_WAL_HISTORY
                      ? pf_wal_fetch(r, name, &b, err)
                      : pf_wal_fetch_segment(r, name, &b, used, err);
        if (frc) {
            pf_err_prefix(err, "fetching WAL file %s into %s", name, dir);
            goto out;
        }
        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (pf_write_file_atomic(path, b.data, b.len, 0600, &owner, err))
            goto out;
        st->files++;
        st->bytes += b.len;
        if (pf_wal_name_kind(name) != PF_WAL_HISTORY)
            st->listed++, st->segments++;
    }
    st->max_held = st->listed;
    rc = 0;
out:
    free(ns.v);
    pf_buf_free(&b);
    return rc;
}

/* Appends dir for the inside of a single-quoted shell word in restore_command, where
 * PostgreSQL also expands '%' escapes: a quote closes, escapes and reopens; '%' doubles. */
static void append_quoted_dir(pf_buf *cmd, const char *dir)
{
    for (const char *s = dir; *s; s++) {
        if (*s == '\'')
            pf_buf_append_str(cmd, "'\\''");
        else if (*s == '%')
            pf_buf_append_str(cmd, "%%");
        else
            pf_buf_append(cmd, s, 1);
    }
}

void pf_wal_spool_command(const char *dir, pf_buf *cmd)
{
    pf_buf_append_str(cmd, "cp '");
    append_quoted_dir(cmd, dir);
    pf_buf_append_str(cmd, "/%f' '%p'");
}

/* A spool filled while the cluster recovers: see walspool.h. The markers are dot files
 * (no WAL file name begins with a dot), owned by the cluster's user and 0600 like the
 * WAL: restore_command (the cluster's user) reads .names and .failed
 * and writes .wanted; the filler (root) reads .wanted. */
struct pf_wal_spool {
    pf_repo *r;
    char dir[4096];
    uint64_t seg_size;
    unsigned window;
    pf_file_owner owner;
    names ns;
    long *rank;     /* per name: -1 for a history file, else its position's rank */
    char *present;  /* per name: in the spool now */
    unsigned held;  /* segments in the spool now */
    long kept_from; /* ranks below this are removed */
    pthread_t thread;
    int running;
    atomic_int stop;
    int failed;
    pf_err err;
    pf_wal_spool_stats st;
};

/* History files first (recovery reads them before any segment), then segments in WAL
 * order: by position, and at one position by timeline. */
static int wal_order(const void *a, const void *b)
{
    const char *x = a, *y = b;
    int hx = pf_wal_name_kind(x) == PF_WAL_HISTORY, hy = pf_wal_name_kind(y) == PF_WAL_HISTORY;
    if (hx != hy)
        return hy - hx;
    if (hx)
        return strcmp(x, y);
    int c = strncmp(x + 8, y + 8, 16);
    return c ? c : strncmp(x, y, 8);
}

static int marker(pf_wal_spool *sp, const char *name, const char *text, pf_err *err)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", sp->dir, name);
    return pf_write_file_atomic(path, text, strlen(text), 0600, &sp->owner, err);
}

static void spool_free(pf_wal_spool *sp)
{
    free(sp->ns.v);
    free(sp->rank);
    free(sp->present);
    free(sp);
}

int pf_wal_spool_open(pf_repo *r, const char *dir, const char *start_wal, uint64_t seg_size,
                      uid_t uid, gid_t gid, unsigned window, pf_wal_spool **out, pf_err *err)
{
    *out = NULL;
    if (!start_wal || pf_wal_name_kind(start_wal) != PF_WAL_SEGMENT)
        return pf_err_set(err, PF_ECORRUPT, "the base backup names no first WAL segment (%s)",
                          start_wal ? start_wal : "none");
    pf_wal_spool *sp = calloc(1, sizeof *sp);
    if (!sp)
        return pf_err_set(err, PF_EIO, "out of memory for the WAL spool");
    sp->r = r;
    snprintf(sp->dir, sizeof sp->dir, "%s", dir);
    sp->seg_size = seg_size ? seg_size : 16u << 20;
    if (!window) {
        /* The default bounds the spool at 256 MiB of 16 MiB segments; the variable is for
         * tests of that bound. */
        const char *e = getenv("PERMAFROST_RESTORE_WAL_WINDOW");
        window = e && atoi(e) > 0 ? (unsigned)atoi(e) : 16;
    }
    sp->window = window < 2 ? 2 : window;
    sp->owner = (pf_file_owner){uid, gid, "the cluster's owner"};
    sp->ns.start = start_wal;
    pf_buf list = PF_BUF_INIT;
    if (list_names(r, &sp->ns, wal_order, err))
        goto fail;
    sp->rank = calloc(sp->ns.n + 1, sizeof *sp->rank);
    sp->present = calloc(sp->ns.n + 1, 1);
    if (!sp->rank || !sp->present) {
        pf_err_set(err, PF_EIO, "out of memory for the WAL spool");
        goto fail;
    }
    long rank = -1;
    const char *prev = NULL;
    for (size_t i = 0; i < sp->ns.n; i++) {
        const char *name = sp->ns.v[i];
        pf_buf_printf(&list, "%s\n", name);
        if (pf_wal_name_kind(name) == PF_WAL_HISTORY) {
            sp->rank[i] = -1;
            continue;
        }
        if (!prev || strncmp(prev + 8, name + 8, 16))
            rank++;
        sp->rank[i] = rank;
        prev = name;
    }
    size_t room = sp->ns.n < sp->window ? sp->ns.n : sp->window;
    if (make_dir(dir, uid, gid, (uint64_t)room * sp->seg_size, room, err))
        goto fail;
    /* Last: restore_command waits only for the names listed here. */
    if (marker(sp, ".names", list.len ? (const char *)list.data : "", err))
        goto fail;
    pf_buf_free(&list);
    *out = sp;
    return 0;
fail:
    pf_buf_free(&list);
    spool_free(sp);
    return -1;
}

static int find_name(const pf_wal_spool *sp, const char *name)
{
    void *hit = bsearch(name, sp->ns.v, sp->ns.n, sizeof *sp->ns.v, wal_order);
    return hit ? (int)((char(*)[PF_WAL_NAME_MAX + 1]) hit - sp->ns.v) : -1;
}

/* Removes the segments recovery is past: those more than one position before the one
 * restore_command asked for last (the one before stays, for a timeline switch inside
 * it). */
static int reap(pf_wal_spool *sp)
{
    char path[4200], wanted[PF_WAL_NAME_MAX + 2] = "";
    snprintf(path, sizeof path, "%s/.wanted", sp->dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    if (!fgets(wanted, sizeof wanted, f))
        wanted[0] = 0;
    fclose(f);
    wanted[strcspn(wanted, "\n")] = 0;
    if (pf_wal_name_kind(wanted) != PF_WAL_SEGMENT)
        return -1;
    int w = find_name(sp, wanted);
    if (w < 0)
        return -1;
    if (sp->rank[w] - 1 <= sp->kept_from)
        return w;
    sp->kept_from = sp->rank[w] - 1;
    for (size_t i = 0; i < sp->ns.n; i++) {
        if (!sp->present[i] || sp->rank[i] < 0 || sp->rank[i] >= sp->kept_from)
            continue;
        snprintf(path, sizeof path, "%s/%s", sp->dir, sp->ns.v[i]);
        if (unlink(path) && errno != ENOENT)
            break;
        sp->present[i] = 0;
        sp->held--;
    }
    return w;
}

/* Fetches name i into the spool. */
static int fetch_one(pf_wal_spool *sp, size_t i, pf_buf *b)
{
    const char *name = sp->ns.v[i];
    int seg = sp->rank[i] >= 0;
    char used[PF_WAL_NAME_MAX + 1] = "", path[4200];
    pf_buf_reset(b);
    int frc = seg ? pf_wal_fetch_segment(sp->r, name, b, used, &sp->err)
                  : pf_wal_fetch(sp->r, name, b, &sp->err);
    if (frc)
        return pf_err_prefix(&sp->err, "fetching WAL file %s into the spool %s", name, sp->dir);
    snprintf(path, sizeof path, "%s/%s", sp->dir, name);
    if (pf_write_file_atomic(path, b->data, b->len, 0600, &sp->owner, &sp->err))
        return -1;
    sp->present[i] = 1;
    if (seg && ++sp->held > sp->st.max_held)
        sp->st.max_held = sp->held;
    sp->st.segments += seg;
    sp->st.files++;
    sp->st.bytes += b->len;
    return 0;
}

/* Recovery asks again for a segment it is past (at its end it rereads the one replay
 * stopped in, which a reader running ahead may have left long before): fetched again,
 * making room in a full window by giving back the last one fetched ahead (fetched again in
 * its turn). */
static int refetch(pf_wal_spool *sp, int w, size_t *next, pf_buf *b)
{
    if (w < 0 || (size_t)w >= *next || sp->present[w])
        return 0;
    while (sp->held >= sp->window && *next > (size_t)w + 1) {
        size_t k = --*next;
        if (!sp->present[k] || sp->rank[k] < 0)
            continue;
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", sp->dir, sp->ns.v[k]);
        if (unlink(path) && errno != ENOENT)
            break;
        sp->present[k] = 0;
        sp->held--;
    }
    return fetch_one(sp, (size_t)w, b);
}

static void *filler(void *arg)
{
    pf_wal_spool *sp = arg;
    pf_buf b = PF_BUF_INIT;
    struct timespec tick = {0, 20 * 1000 * 1000};
    size_t i = 0;
    while (!atomic_load(&sp->stop)) {
        int w = reap(sp);
        if (refetch(sp, w, &i, &b))
            goto failed;
        if (i < sp->ns.n && (sp->rank[i] < 0 || sp->held < sp->window)) {
            if (fetch_one(sp, i++, &b))
                goto failed;
            continue;
        }
        /* The window is full, or everything is fetched: what recovery asks for next
         * frees room or is a file to fetch again. */
        nanosleep(&tick, NULL);
    }
    pf_buf_free(&b);
    return NULL;
failed:
    sp->failed = 1;
    {
        pf_err e = {0};
        char text[sizeof sp->err.msg + 16];
        snprintf(text, sizeof text, "permafrost: %s\n", sp->err.msg);
        if (marker(sp, ".failed", text, &e))
            pf_warn("%s", e.msg);
    }
    pf_buf_free(&b);
    return NULL;
}

int pf_wal_spool_run(pf_wal_spool *sp, pf_err *err)
{
    int e = pthread_create(&sp->thread, NULL, filler, sp);
    if (e) {
        errno = e;
        return pf_err_sys(err, PF_EIO, "starting the thread that fills the WAL spool %s", sp->dir);
    }
    sp->running = 1;
    return 0;
}

int pf_wal_spool_stop(pf_wal_spool *sp, pf_wal_spool_stats *st, pf_err *err)
{
    if (!sp)
        return 0;
    atomic_store(&sp->stop, 1);
    if (sp->running)
        pthread_join(sp->thread, NULL);
    int rc = 0;
    if (st) {
        *st = sp->st;
        st->listed = 0;
        for (size_t i = 0; i < sp->ns.n; i++)
            st->listed += sp->rank[i] >= 0;
    }
    if (sp->failed) {
        *err = sp->err;
        rc = -1;
    } else if (sp->running) {
        /* A cluster still recovering (a start that timed out) must not wait for files
         * nobody fetches any more. */
        pf_err e = {0};
        if (marker(sp, ".failed",
                   "permafrost: the restore that filled this WAL spool has stopped: restore "
                   "again\n",
                   &e))
            pf_warn("%s", e.msg);
    }
    spool_free(sp);
    return rc;
}

void pf_wal_spool_wait_command(const char *dir, pf_buf *cmd)
{
    pf_buf_append_str(cmd, "d='");
    append_quoted_dir(cmd, dir);
    /* Exit 1 says "not archived" (recovery ends there): only for a name the archive does
     * not hold. Anything else that cannot deliver exits 255, which PostgreSQL takes as a
     * broken restore_command and stops recovery with the message in its log. .failed is
     * read before the file is looked for: a file fetched before the failure is copied. */
    pf_buf_append_str(
        cmd,
        "'; f='%f'; grep -qxF \"$f\" \"$d/.names\" || exit 1; "
        "echo \"$f\" >\"$d/.wanted.$$\" && mv -f \"$d/.wanted.$$\" \"$d/.wanted\" || exit 255; "
        "n=0; while :; do x=; [ -e \"$d/.failed\" ] && x=f; "
        "[ -e \"$d/$f\" ] && exec cp \"$d/$f\" '%p'; "
        "[ -z \"$x\" ] || { cat \"$d/.failed\" >&2; exit 255; }; "
        "n=$((n+1)); [ $n -le 6000 ] || { echo \"permafrost: $f did not arrive in the WAL spool "
        "$d within 600 s\" >&2; exit 255; }; sleep 0.1; done");
}
