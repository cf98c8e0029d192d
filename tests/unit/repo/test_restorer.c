/* The restorer on the in-memory store, against trees built here: hostile trees (names
 * with "..", "/", duplicates; symlinks pointing out), entries planted in the target
 * before and during a restore by a local user, times before 1970 and up to 2262,
 * owners by name, and the safe defaults for device nodes, FIFOs and setuid files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "common/log.h"
#include "repo/repo.h"
#include "repo/restorer.h"
#include "repo/saver.h"
#include "store/internal.h"
#include "store/store.h"
#include "tree_build.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

typedef struct fixture {
    pf_repo *r;
    char dir[256]; /* scratch directory: target/ and outside/ live in it */
    char target[300], outside[300];
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    pf_err err = {0};
    f->r = pf_repo_init(pf_store_mem_new(), "restorer test", NULL, &err);
    if (!f->r || pf_repo_load_index(f->r, &err))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    pf_repo_free(f->r);
    free(f);
    return 0;
}

static void run(const char *cmd)
{
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
}

/* A fresh scratch directory with an empty outside/ (target/ is made by the restore). */
static void scratch(fixture *f)
{
    const char *tmp = getenv("TMPDIR");
    snprintf(f->dir, sizeof f->dir, "%s/pf-restorer.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->target, sizeof f->target, "%s/target", f->dir);
    snprintf(f->outside, sizeof f->outside, "%s/outside", f->dir);
    assert_int_equal(mkdir(f->outside, 0755), 0);
}

static void scratch_done(fixture *f)
{
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    run(cmd);
}

static int restore(fixture *f, const uint8_t root[PF_ID_LEN], const pf_restore_opts *o,
                   pf_restore_stats *st, pf_err *err)
{
    return pf_restore_tree(f->r, root, f->target, o, st, err);
}

static size_t entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    size_t n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
            n++;
    closedir(d);
    return n;
}

static void lstat_ok(const char *dir, const char *rel, struct stat *st)
{
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    if (lstat(p, st))
        fail_msg("lstat %s: %s", p, strerror(errno));
}

/* The victim outside the target, and what it must still be after the restore. */
typedef struct victim {
    char path[400];
    struct stat before;
} victim;

static void victim_make(fixture *f, victim *v, const char *name)
{
    snprintf(v->path, sizeof v->path, "%s/%s", f->outside, name);
    FILE *fp = fopen(v->path, "w");
    assert_non_null(fp);
    fputs("precious\n", fp);
    fclose(fp);
    assert_int_equal(chmod(v->path, 0600), 0);
    struct timespec ts[2] = {{123456789, 42}, {123456789, 42}};
    assert_int_equal(utimensat(AT_FDCWD, v->path, ts, 0), 0);
    if (geteuid() == 0)
        assert_int_equal(chown(v->path, 0, 0), 0);
    assert_int_equal(stat(v->path, &v->before), 0);
}

static void victim_unchanged(const victim *v)
{
    struct stat now;
    if (stat(v->path, &now))
        fail_msg("%s is gone: %s", v->path, strerror(errno));
    if (now.st_mode != v->before.st_mode)
        fail_msg("%s: mode %o, was %o", v->path, now.st_mode, v->before.st_mode);
    if (now.st_uid != v->before.st_uid || now.st_gid != v->before.st_gid)
        fail_msg("%s: owner changed", v->path);
    if (now.st_mtim.tv_sec != v->before.st_mtim.tv_sec ||
        now.st_mtim.tv_nsec != v->before.st_mtim.tv_nsec)
        fail_msg("%s: mtime changed", v->path);
    if (now.st_size != v->before.st_size)
        fail_msg("%s: size changed", v->path);
}

/* ---- hostile trees ---- */

/* A tree whose encoded bytes are patched after encoding: names the encoder refuses. */
static void save_patched_tree(fixture *f, const char *const *names, size_t n, const char *from,
                              const char *to, uint8_t id[PF_ID_LEN])
{
    static uint8_t blob[1][PF_ID_LEN];
    pf_node nodes[4];
    assert_true(n <= 4);
    for (size_t i = 0; i < n; i++)
        nodes[i] = tb_file_node(f->r, names[i], "x\n", blob);
    pf_tree t = {0};
    for (size_t i = 0; i < n; i++)
        pf_tree_add(&t, &nodes[i]);
    pf_tree_sort(&t);
    pf_buf b = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
    /* The first occurrence of from as a length-prefixed name becomes to. The first: a
     * blob id (random bytes after an nblobs of 1) could look like a short name too. */
    size_t fl = strlen(from);
    assert_int_equal(fl, strlen(to));
    uint8_t *hit = NULL;
    for (size_t i = 4; i + 4 + fl <= b.len; i++)
        if (b.data[i] == fl && !b.data[i + 1] && !b.data[i + 2] && !b.data[i + 3] &&
            !memcmp(b.data + i + 4, from, fl))
            if (!hit)
                hit = b.data + i + 4;
    assert_non_null(hit);
    memcpy(hit, to, fl);
    tb_save(f->r, PF_BLOB_TREE, b.data, b.len, id);
    pf_buf_free(&b);
    pf_tree_free(&t);
}

static void test_hostile_names(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *names[2];
        size_t n;
        const char *from, *to;
    } cases[] = {
        {{"xx"}, 1, "xx", ".."},
        {{"x"}, 1, "x", "."},
        {{"x"}, 1, "x", "/"},
        {{"a_b"}, 1, "a_b", "a/b"},
        {{"_etc_passwd"}, 1, "_etc_passwd", "/etc/passwd"},
        {{"xx_yy"}, 1, "xx_yy", "../yy"},
        {{"aaaa", "bbbb"}, 2, "bbbb", "aaaa"}, /* duplicate names */
        {{"aaaa", "cccc"}, 2, "cccc", "0000"}, /* out of order */
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        scratch(f);
        uint8_t root[PF_ID_LEN];
        save_patched_tree(f, cases[i].names, cases[i].n, cases[i].from, cases[i].to, root);
        pf_err err = {0};
        pf_restore_stats st = {0};
        if (restore(f, root, NULL, &st, &err) == 0)
            fail_msg("case %zu: a tree with \"%s\" restored", i, cases[i].to);
        assert_int_equal(err.code, PF_ECORRUPT);
        /* nothing written anywhere: target empty, the scratch dir holds target/ outside/ */
        assert_int_equal(entries(f->target), 0);
        assert_int_equal(entries(f->outside), 0);
        assert_int_equal(entries(f->dir), 2);
        scratch_done(f);
    }
}

/* A symlink of one snapshot and a directory of the same name in the next, restored into
 * the same target: the second restore replaces the link, it never writes through it. */
static void test_link_then_dir(void **state)
{
    fixture *f = *state;
    scratch(f);
    uint8_t root1[PF_ID_LEN], root2[PF_ID_LEN], sub[1][PF_ID_LEN], blob[1][PF_ID_LEN];
    pf_node l = tb_link_node("l", f->outside);
    tb_save_tree(f->r, &l, 1, root1);
    pf_node inner = tb_file_node(f->r, "planted", "x\n", blob);
    tb_save_tree(f->r, &inner, 1, sub[0]);
    pf_node d = tb_dir_node("l", 0755, sub);
    tb_save_tree(f->r, &d, 1, root2);
    pf_restore_opts o = {.outside_links = 1};
    pf_err err = {0};
    assert_int_equal(restore(f, root1, &o, NULL, &err), 0);
    struct stat st;
    lstat_ok(f->target, "l", &st);
    assert_true(S_ISLNK(st.st_mode));
    if (restore(f, root2, &o, NULL, &err))
        fail_msg("second restore: %s", err.msg);
    assert_int_equal(entries(f->outside), 0);
    lstat_ok(f->target, "l", &st);
    assert_true(S_ISDIR(st.st_mode));
    lstat_ok(f->target, "l/planted", &st);
    assert_true(S_ISREG(st.st_mode));
    scratch_done(f);
}

/* Symlinks pointing out of the restored tree: created only with outside_links. */
static void test_outside_links(void **state)
{
    fixture *f = *state;
    static const struct {
        const char *target;
        int inside;
    } links[] = {
        {"/etc/passwd", 0}, {"..", 0},  {"../x", 0}, {"d/../../x", 0}, {"s/../x", 0}, {"d/../x", 0},
        {"x", 1},           {"./x", 1}, {"d/x", 1},  {"d//x", 1},      {"d/./x/", 1},
    };
    enum { N = sizeof links / sizeof *links };
    uint8_t root[PF_ID_LEN], sub[1][PF_ID_LEN];
    /* Each link at the top, plus one inside d/ that climbs back up ("../x", fine there). */
    pf_node nodes[N + 1];
    char names[N][8];
    for (size_t i = 0; i < N; i++) {
        snprintf(names[i], sizeof names[i], "l%02zu", i);
        nodes[i] = tb_link_node(names[i], links[i].target);
    }
    pf_node up = tb_link_node("up", "../x");
    tb_save_tree(f->r, &up, 1, sub[0]);
    nodes[N] = tb_dir_node("d", 0755, sub);
    tb_save_tree(f->r, nodes, N + 1, root);
    for (int outside = 0; outside < 2; outside++) {
        scratch(f);
        pf_restore_opts o = {.outside_links = outside};
        pf_restore_stats st = {0};
        pf_err err = {0};
        assert_int_equal(restore(f, root, &o, &st, &err), 0);
        size_t skipped = 0;
        for (size_t i = 0; i < N; i++) {
            struct stat s;
            char p[600];
            snprintf(p, sizeof p, "%s/%s", f->target, names[i]);
            int there = lstat(p, &s) == 0;
            if (there != (outside || links[i].inside))
                fail_msg("outside_links=%d: link to %s %s", outside, links[i].target,
                         there ? "created" : "skipped");
            skipped += !there;
        }
        struct stat s;
        lstat_ok(f->target, "d/up", &s);
        assert_true(S_ISLNK(s.st_mode));
        assert_int_equal(st.skipped_links, skipped);
        scratch_done(f);
    }
}

/* A chain of 4097 directories: refused at depth 4096 with an error, not a crash (the
 * recursion would otherwise go as deep as a hostile tree likes). */
static void test_too_deep(void **state)
{
    fixture *f = *state;
    struct rlimit rl;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &rl), 0);
    struct rlimit want = {8192, rl.rlim_max > 8192 ? rl.rlim_max : 8192};
    int raised = setrlimit(RLIMIT_NOFILE, &want) == 0; /* one descriptor per level */
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(f->r, 1, &err);
    assert_non_null(sv);
    uint8_t id[1][PF_ID_LEN];
    pf_buf b = PF_BUF_INIT;
    pf_tree t = {0};
    assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
    assert_int_equal(pf_saver_save(sv, PF_BLOB_TREE, b.data, b.len, id[0], &err), 0);
    for (int i = 0; i < 4097; i++) {
        pf_node d = tb_dir_node("d", 0755, id);
        pf_tree_add(&t, &d);
        pf_buf_reset(&b);
        assert_int_equal(pf_tree_encode(&t, &b, &err), 0);
        assert_int_equal(pf_saver_save(sv, PF_BLOB_TREE, b.data, b.len, id[0], &err), 0);
        pf_tree_free(&t);
    }
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_saver_free(sv);
    pf_buf_free(&b);
    scratch(f);
    assert_int_equal(restore(f, id[0], NULL, NULL, &err), -1);
    if (raised) {
        assert_int_equal(err.code, PF_ECORRUPT);
        assert_non_null(strstr(err.msg, "more than 4096 directories deep"));
    }
    scratch_done(f);
    setrlimit(RLIMIT_NOFILE, &rl);
}

/* ---- a local user planting entries in the target ---- */

/* Before the restore: a symlink to the victim, or to the outside directory, wherever the
 * restore will create a directory, a file, a symlink or a FIFO. None is followed. */
static void test_preplanted(void **state)
{
    fixture *f = *state;
    scratch(f);
    victim v;
    victim_make(f, &v, "shadow");
    uint8_t root[PF_ID_LEN], sub[1][PF_ID_LEN], blob[2][PF_ID_LEN];
    pf_node inner = tb_file_node(f->r, "f", "inner\n", &blob[0]);
    tb_save_tree(f->r, &inner, 1, sub[0]);
    pf_node nodes[5];
    nodes[0] = tb_dir_node("d", 0777, sub);
    nodes[1] = tb_file_node(f->r, "file", "new content\n", &blob[1]);
    nodes[1].mode = 0777;
    nodes[2] = tb_link_node("link", "somewhere");
    nodes[3] = tb_node("fifo", PF_NODE_FIFO, 0777, 5);
    nodes[4] = tb_dir_node("d2", 0777, sub);
    tb_save_tree(f->r, nodes, 5, root);
    assert_int_equal(mkdir(f->target, 0755), 0);
    char p[600];
    const char *at_victim[] = {"d", "file", "link", "fifo"};
    for (size_t i = 0; i < 4; i++) {
        snprintf(p, sizeof p, "%s/%s", f->target, at_victim[i]);
        assert_int_equal(symlink(v.path, p), 0);
    }
    snprintf(p, sizeof p, "%s/d2", f->target);
    assert_int_equal(symlink(f->outside, p), 0);
    pf_restore_opts o = {.owners = geteuid() == 0, .keep_special = 1};
    pf_err err = {0};
    if (restore(f, root, &o, NULL, &err))
        fail_msg("restore: %s", err.msg);
    victim_unchanged(&v);
    assert_int_equal(entries(f->outside), 1);
    struct stat st;
    lstat_ok(f->target, "d", &st);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0777);
    lstat_ok(f->target, "d2/f", &st);
    assert_true(S_ISREG(st.st_mode));
    lstat_ok(f->target, "file", &st);
    assert_true(S_ISREG(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0777);
    assert_int_equal(st.st_size, 12);
    lstat_ok(f->target, "fifo", &st);
    assert_true(S_ISFIFO(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0777);
    char lt[64] = {0};
    snprintf(p, sizeof p, "%s/link", f->target);
    assert_int_equal(readlink(p, lt, sizeof lt - 1), 9);
    assert_string_equal(lt, "somewhere");
    scratch_done(f);
}

/* opts.exact (restore --force): what the snapshot does not hold goes, strays below a kept
 * directory and whole stray trees alike; a stray symlink to a directory outside is removed
 * as a link, what it points to is untouched; without exact, strays stay. */
static void test_exact(void **state)
{
    fixture *f = *state;
    scratch(f);
    victim v;
    victim_make(f, &v, "precious");
    uint8_t root[PF_ID_LEN], sub[1][PF_ID_LEN], blob[2][PF_ID_LEN];
    pf_node inner = tb_file_node(f->r, "kept", "kept\n", &blob[0]);
    tb_save_tree(f->r, &inner, 1, sub[0]);
    pf_node nodes[2];
    nodes[0] = tb_dir_node("d", 0755, sub);
    nodes[1] = tb_file_node(f->r, "file", "content\n", &blob[1]);
    tb_save_tree(f->r, nodes, 2, root);
    char p[4096];
    snprintf(p, sizeof p,
             "mkdir -p '%s/d/stray_dir/deeper' && echo x >'%s/d/stray_dir/deeper/f' && "
             "echo x >'%s/d/stray' && echo x >'%s/stray_top' && "
             "ln -s '%s' '%s/d/link_out' && ln -s '%s' '%s/link_file'",
             f->target, f->target, f->target, f->target, f->outside, f->target, v.path, f->target);
    run(p);
    pf_restore_opts merge = {.owners = geteuid() == 0};
    pf_err err = {0};
    pf_restore_stats st = {0};
    if (restore(f, root, &merge, &st, &err))
        fail_msg("restore: %s", err.msg);
    assert_int_equal(st.removed, 0);
    assert_int_equal(entries(f->target), 4); /* d, file, stray_top, link_file */
    pf_restore_opts exact = {.owners = geteuid() == 0, .exact = 1};
    memset(&st, 0, sizeof st);
    if (restore(f, root, &exact, &st, &err))
        fail_msg("restore: %s", err.msg);
    assert_int_equal(st.removed, 7); /* stray_top, link_file, d/stray, d/link_out, and
                                      * d/stray_dir with deeper/ and deeper/f */
    assert_int_equal(entries(f->target), 2);
    snprintf(p, sizeof p, "%s/d", f->target);
    assert_int_equal(entries(p), 1);
    struct stat sb;
    lstat_ok(f->target, "d/kept", &sb);
    victim_unchanged(&v);
    assert_int_equal(entries(f->outside), 1);
    /* Only what an include restores whole is made exact: the root only leads to d/. */
    snprintf(p, sizeof p, "echo x >'%s/stray_top' && echo x >'%s/d/stray'", f->target, f->target);
    run(p);
    const char *inc[] = {"d", NULL};
    exact.include = inc;
    memset(&st, 0, sizeof st);
    if (restore(f, root, &exact, &st, &err))
        fail_msg("restore: %s", err.msg);
    assert_int_equal(st.removed, 1);
    lstat_ok(f->target, "stray_top", &sb);
    scratch_done(f);
}

/* During the restore: the progress callback (called after each file is created, before
 * its directory gets its attributes) plays the local user who owns the target and
 * swaps the directory being restored for a symlink to the victim. */
typedef struct swapper {
    fixture *f;
    const char *victim;
    int done;
} swapper;

static void swap_dir(const pf_restore_stats *st, const char *current, void *ctx)
{
    (void)st;
    (void)current;
    swapper *s = ctx;
    if (s->done++)
        return;
    char from[600], to[600];
    snprintf(from, sizeof from, "%s/d", s->f->target);
    snprintf(to, sizeof to, "%s/d.moved", s->f->target);
    assert_int_equal(rename(from, to), 0);
    assert_int_equal(symlink(s->victim, from), 0);
}

static void test_swapped_during(void **state)
{
    fixture *f = *state;
    scratch(f);
    victim v;
    victim_make(f, &v, "shadow");
    uint8_t root[PF_ID_LEN], sub[1][PF_ID_LEN], blob[1][PF_ID_LEN];
    pf_node inner = tb_file_node(f->r, "f", "inner\n", blob);
    tb_save_tree(f->r, &inner, 1, sub[0]);
    pf_node d = tb_dir_node("d", 0777, sub);
    d.uid = d.gid = 4321;
    d.mtime_ns = 777000000001;
    tb_save_tree(f->r, &d, 1, root);
    swapper s = {f, v.path, 0};
    pf_restore_opts o = {.owners = geteuid() == 0, .progress = swap_dir, .progress_ctx = &s};
    pf_err err = {0};
    if (restore(f, root, &o, NULL, &err))
        fail_msg("restore: %s", err.msg);
    assert_true(s.done >= 1);
    victim_unchanged(&v);
    /* the attributes went to the directory the restore created, wherever it is now */
    struct stat st;
    lstat_ok(f->target, "d.moved", &st);
    assert_true(S_ISDIR(st.st_mode));
    assert_int_equal(st.st_mode & 07777, 0777);
    assert_int_equal(st.st_mtim.tv_sec, 777);
    assert_int_equal(st.st_mtim.tv_nsec, 1);
    if (geteuid() == 0)
        assert_int_equal(st.st_uid, 4321);
    scratch_done(f);
}

/* A file that fails (its blob is missing) is removed from the directory the restore
 * created, even after a local user swapped that directory for a symlink to another
 * directory holding a file of the same name. */
static void test_failed_file_removed_by_fd(void **state)
{
    fixture *f = *state;
    scratch(f);
    victim v;
    victim_make(f, &v, "b");
    uint8_t root[PF_ID_LEN], sub[1][PF_ID_LEN], blob[1][PF_ID_LEN], missing[1][PF_ID_LEN];
    memset(missing, 0x5a, sizeof missing);
    pf_node inner[2];
    inner[0] = tb_file_node(f->r, "a", "a\n", blob);
    inner[1] = tb_node("b", PF_NODE_FILE, 0644, 0);
    inner[1].blobs = missing;
    inner[1].nblobs = 1;
    inner[1].size = 10;
    tb_save_tree(f->r, inner, 2, sub[0]);
    pf_node d = tb_dir_node("d", 0755, sub);
    tb_save_tree(f->r, &d, 1, root);
    swapper s = {f, f->outside, 0};
    pf_restore_opts o = {.progress = swap_dir, .progress_ctx = &s};
    pf_err err = {0};
    assert_int_equal(restore(f, root, &o, NULL, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    assert_true(s.done >= 1);
    victim_unchanged(&v);
    struct stat st;
    char p[600];
    snprintf(p, sizeof p, "%s/d.moved/b", f->target);
    assert_int_equal(lstat(p, &st), -1); /* the failed file itself is gone */
    scratch_done(f);
}

/* ---- exactness ---- */

static void test_times(void **state)
{
    fixture *f = *state;
    static const int64_t times[] = {
        INT64_C(-2147472000) * 1000000000 + 1, /* 1901-12-14 00:00:00.000000001 */
        -500000000,                            /* 1969-12-31 23:59:59.5 */
        -1,                                    /* 1969-12-31 23:59:59.999999999 */
        0,
        INT64_C(1577934245123456789),
        INT64_MAX, /* 2262-04-11 23:47:16.854775807 */
    };
    enum { N = sizeof times / sizeof *times };
    uint8_t root[PF_ID_LEN], sub[N][1][PF_ID_LEN], blob[1][PF_ID_LEN], empty[PF_ID_LEN];
    pf_node nodes[3 * N];
    char names[3 * N][16];
    tb_save_tree(f->r, NULL, 0, empty);
    for (size_t i = 0; i < N; i++) {
        snprintf(names[3 * i], 16, "f%zu", i);
        snprintf(names[3 * i + 1], 16, "d%zu", i);
        snprintf(names[3 * i + 2], 16, "l%zu", i);
        nodes[3 * i] = tb_file_node(f->r, names[3 * i], "t\n", blob);
        memcpy(sub[i][0], empty, PF_ID_LEN);
        nodes[3 * i + 1] = tb_dir_node(names[3 * i + 1], 0755, sub[i]);
        nodes[3 * i + 2] = tb_link_node(names[3 * i + 2], "f0");
        for (int k = 0; k < 3; k++)
            nodes[3 * i + k].mtime_ns = times[i];
    }
    tb_save_tree(f->r, nodes, 3 * N, root);
    scratch(f);
    pf_restore_stats st = {0};
    pf_err err = {0};
    assert_int_equal(restore(f, root, NULL, &st, &err), 0);
    assert_int_equal(st.errors, 0);
    for (size_t i = 0; i < 3 * N; i++) {
        struct stat s;
        lstat_ok(f->target, names[i], &s);
        struct timespec want = pf_ns_to_timespec(times[i / 3]);
        if (s.st_mtim.tv_sec != want.tv_sec || s.st_mtim.tv_nsec != want.tv_nsec)
            fail_msg("%s: mtime %lld.%09ld, expected %lld.%09ld", names[i],
                     (long long)s.st_mtim.tv_sec, s.st_mtim.tv_nsec, (long long)want.tv_sec,
                     want.tv_nsec);
    }
    scratch_done(f);
}

static void test_ns_to_timespec(void **state)
{
    (void)state;
    static const struct {
        int64_t ns;
        long long sec;
        long nsec;
    } v[] = {
        {0, 0, 0},
        {1, 0, 1},
        {-1, -1, 999999999},
        {-500000000, -1, 500000000},
        {-1000000000, -1, 0},
        {-1000000001, -2, 999999999},
        {INT64_C(-2147472000) * 1000000000 + 1, -2147472000, 1},
        {INT64_MAX, 9223372036LL, 854775807},
        {INT64_MIN, -9223372037LL, 145224192},
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        struct timespec ts = pf_ns_to_timespec(v[i].ns);
        if (ts.tv_sec != v[i].sec || ts.tv_nsec != v[i].nsec)
            fail_msg("%lld ns: %lld s %ld ns, expected %lld s %ld ns", (long long)v[i].ns,
                     (long long)ts.tv_sec, ts.tv_nsec, v[i].sec, v[i].nsec);
    }
}

/* Owners by the recorded names, the numeric id only when the name is unknown here (or
 * with numeric_owner). As root only: chown needs it. */
static void test_owner_names(void **state)
{
    fixture *f = *state;
    if (geteuid() != 0) {
        fprintf(stderr, "owner names: run as root to test chown (not root: checked nothing)\n");
        return;
    }
    /* "root" (uid 0 here) recorded with uid 4001; a name that exists nowhere with 4002. */
    uint8_t root[PF_ID_LEN], blob[2][PF_ID_LEN];
    pf_node nodes[2];
    nodes[0] = tb_file_node(f->r, "by-name", "a\n", &blob[0]);
    nodes[0].uid = 4001;
    nodes[0].gid = 4001;
    nodes[0].user = "root";
    nodes[0].group = "root";
    nodes[1] = tb_file_node(f->r, "unknown-name", "b\n", &blob[1]);
    nodes[1].uid = 4002;
    nodes[1].gid = 4003;
    nodes[1].user = "pfux-no-such-user";
    nodes[1].group = "pfux-no-such-group";
    tb_save_tree(f->r, nodes, 2, root);
    for (int numeric = 0; numeric < 2; numeric++) {
        scratch(f);
        pf_restore_opts o = {.owners = 1, .numeric_owner = numeric};
        pf_err err = {0};
        assert_int_equal(restore(f, root, &o, NULL, &err), 0);
        struct stat st;
        lstat_ok(f->target, "by-name", &st);
        assert_int_equal(st.st_uid, numeric ? 4001 : 0);
        assert_int_equal(st.st_gid, numeric ? 4001 : 0);
        lstat_ok(f->target, "unknown-name", &st);
        assert_int_equal(st.st_uid, 4002);
        assert_int_equal(st.st_gid, 4003);
        scratch_done(f);
    }
}

/* Device nodes and FIFOs skipped, setuid/setgid cleared, unless keep_special. */
static void test_special(void **state)
{
    fixture *f = *state;
    uint8_t root[PF_ID_LEN], blob[2][PF_ID_LEN];
    pf_node nodes[5];
    nodes[0] = tb_file_node(f->r, "setuid", "s\n", &blob[0]);
    nodes[0].mode = 04755;
    nodes[1] = tb_file_node(f->r, "setgid", "g\n", &blob[1]);
    nodes[1].mode = 02711;
    nodes[2] = tb_node("fifo", PF_NODE_FIFO, 0644, 0);
    nodes[3] = tb_node("null", PF_NODE_CHARDEV, 0666, 0);
    nodes[3].rdev = makedev(1, 3);
    nodes[4] = tb_node("sda", PF_NODE_BLOCKDEV, 0660, 0);
    nodes[4].rdev = makedev(8, 0);
    tb_save_tree(f->r, nodes, 5, root);
    for (int keep = 0; keep < 2; keep++) {
        scratch(f);
        pf_restore_opts o = {.keep_special = keep};
        pf_restore_stats st = {0};
        pf_err err = {0};
        assert_int_equal(restore(f, root, &o, &st, &err), 0);
        struct stat s;
        lstat_ok(f->target, "setuid", &s);
        assert_int_equal(s.st_mode & 07777, keep ? 04755 : 0755);
        lstat_ok(f->target, "setgid", &s);
        assert_int_equal(s.st_mode & 07777, keep ? 02711 : 0711);
        char p[600];
        snprintf(p, sizeof p, "%s/fifo", f->target);
        assert_int_equal(lstat(p, &s) == 0, keep);
        if (!keep) {
            snprintf(p, sizeof p, "%s/null", f->target);
            assert_int_equal(lstat(p, &s), -1);
            assert_int_equal(st.skipped_special, 3);
            assert_int_equal(st.stripped_setid, 2);
        } else {
            assert_int_equal(st.skipped_special, 0);
            assert_int_equal(st.stripped_setid, 0);
            if (geteuid() == 0) {
                lstat_ok(f->target, "null", &s);
                assert_true(S_ISCHR(s.st_mode));
                assert_int_equal(s.st_rdev, makedev(1, 3));
                assert_int_equal(s.st_mode & 07777, 0666);
            }
        }
        scratch_done(f);
    }
}

/* ---- reads: runs of neighbouring blobs ---- */

/* A store that forwards to the repository's own and counts the reads of one key. */
typedef struct counting {
    pf_store *inner;
    char key[80];
    int gets;
} counting;

static int c_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    return pf_store_put(((counting *)s->impl)->inner, key, data, len, err);
}
static int c_get(pf_store *s, const char *key, uint64_t off, uint64_t len, pf_buf *out, pf_err *err)
{
    counting *c = s->impl;
    if (!strcmp(key, c->key))
        __atomic_add_fetch(&c->gets, 1, __ATOMIC_SEQ_CST);
    return pf_store_get(c->inner, key, off, len, out, err);
}
static int c_stat(pf_store *s, const char *key, uint64_t *size, pf_err *err)
{
    return pf_store_stat(((counting *)s->impl)->inner, key, size, err);
}
static int c_list(pf_store *s, const char *prefix, pf_store_list_cb cb, void *ctx, pf_err *err)
{
    return pf_store_list(((counting *)s->impl)->inner, prefix, cb, ctx, err);
}
static int c_remove(pf_store *s, const char *key, pf_err *err)
{
    return pf_store_remove(((counting *)s->impl)->inner, key, err);
}
static const struct pf_store_ops counting_ops = {.name = "counting",
                                                 .put = c_put,
                                                 .get = c_get,
                                                 .stat = c_stat,
                                                 .list = c_list,
                                                 .remove = c_remove};

#define RUN_FILES 20
#define RUN_BYTES 1000

/* RUN_FILES files of RUN_BYTES incompressible bytes each, their blobs saved by one saver
 * in one pack, side by side, in the order of the names f00..f19. */
typedef struct run_tree {
    uint8_t root[PF_ID_LEN];
    uint8_t blobs[RUN_FILES][PF_ID_LEN];
    uint8_t data[RUN_FILES][RUN_BYTES];
    char names[RUN_FILES][16];
    char pack[80];
    uint32_t sealed; /* each blob's sealed length */
} run_tree;

static void run_tree_make(fixture *f, run_tree *t)
{
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(f->r, 1, &err);
    assert_non_null(sv);
    uint32_t x = 12345;
    for (int i = 0; i < RUN_FILES; i++) {
        for (int k = 0; k < RUN_BYTES; k++) {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            t->data[i][k] = (uint8_t)x;
        }
        if (pf_saver_save(sv, PF_BLOB_DATA, t->data[i], RUN_BYTES, t->blobs[i], &err))
            fail_msg("save: %s", err.msg);
    }
    if (pf_saver_finish(sv, &err))
        fail_msg("save: %s", err.msg);
    pf_saver_free(sv);
    pf_node nodes[RUN_FILES];
    for (int i = 0; i < RUN_FILES; i++) {
        snprintf(t->names[i], sizeof t->names[i], "f%02d", i);
        nodes[i] = tb_node(t->names[i], PF_NODE_FILE, 0644, 1000000000);
        nodes[i].blobs = &t->blobs[i];
        nodes[i].nblobs = 1;
        nodes[i].size = RUN_BYTES;
    }
    tb_save_tree(f->r, nodes, RUN_FILES, t->root);
    const pf_blob_loc *first = pf_index_find(f->r->index, t->blobs[0]);
    assert_non_null(first);
    pf_pack_key_name(f->r->index->packs[first->pack].id, t->pack);
    t->sealed = first->length;
    for (int i = 1; i < RUN_FILES; i++) {
        const pf_blob_loc *l = pf_index_find(f->r->index, t->blobs[i]);
        assert_int_equal(l->pack, first->pack);
        assert_int_equal(l->length, t->sealed);
        assert_int_equal(l->offset, first->offset + (uint32_t)i * t->sealed);
    }
}

/* Restores t (or the names in include) with o through a counting store; returns the
 * number of reads of the data pack, or -1 (err set) when the restore failed. */
static int counted_restore(fixture *f, const run_tree *t, pf_restore_opts *o, pf_err *err)
{
    counting c = {f->r->store, "", 0};
    snprintf(c.key, sizeof c.key, "%s", t->pack);
    pf_store *wrap = pf_store_alloc(&counting_ops, &c, "counting");
    f->r->store = wrap;
    int rc = restore(f, t->root, o, NULL, err);
    f->r->store = c.inner;
    pf_store_free(wrap); /* ops->free is NULL: the inner store stays */
    return rc ? -1 : c.gets;
}

static void files_match(fixture *f, const run_tree *t, int only_odd)
{
    for (int i = 0; i < RUN_FILES; i++) {
        char p[600];
        snprintf(p, sizeof p, "%s/%s", f->target, t->names[i]);
        FILE *fp = fopen(p, "rb");
        if (only_odd && i % 2 == 0) {
            assert_null(fp);
            continue;
        }
        if (!fp)
            fail_msg("%s is missing", p);
        uint8_t got[RUN_BYTES + 1];
        size_t n = fread(got, 1, sizeof got, fp);
        fclose(fp);
        assert_int_equal(n, RUN_BYTES);
        assert_memory_equal(got, t->data[i], RUN_BYTES);
    }
}

/* Neighbouring blobs come with one read, at most run_max bytes each; the files are whole. */
static void test_runs_adjacent(void **state)
{
    fixture *f = *state;
    run_tree *t = calloc(1, sizeof *t);
    run_tree_make(f, t);
    pf_err err = {0};
    scratch(f);
    pf_restore_opts o = {0};
    assert_int_equal(counted_restore(f, t, &o, &err), 1);
    files_match(f, t, 0);
    scratch_done(f);
    /* three blobs a run: ceil(20 / 3) reads */
    scratch(f);
    o.run_max = 3 * t->sealed;
    assert_int_equal(counted_restore(f, t, &o, &err), 7);
    files_match(f, t, 0);
    scratch_done(f);
    /* one blob a run: a read each, as before runs */
    scratch(f);
    o.run_max = 1;
    assert_int_equal(counted_restore(f, t, &o, &err), RUN_FILES);
    files_match(f, t, 0);
    scratch_done(f);
    free(t);
}

/* Every other file: the unneeded blob between two is read over when the gap is allowed,
 * and not when it is one byte too big. */
static void test_runs_gaps(void **state)
{
    fixture *f = *state;
    run_tree *t = calloc(1, sizeof *t);
    run_tree_make(f, t);
    const char *odd[RUN_FILES / 2 + 1] = {0};
    for (int i = 1, k = 0; i < RUN_FILES; i += 2)
        odd[k++] = t->names[i];
    pf_err err = {0};
    scratch(f);
    pf_restore_opts o = {.include = odd, .gap_max = t->sealed};
    assert_int_equal(counted_restore(f, t, &o, &err), 1);
    files_match(f, t, 1);
    scratch_done(f);
    scratch(f);
    o.gap_max = t->sealed - 1;
    assert_int_equal(counted_restore(f, t, &o, &err), RUN_FILES / 2);
    files_match(f, t, 1);
    scratch_done(f);
    free(t);
}

/* One damaged blob inside a run: the restore fails naming that blob and its file, leaves
 * no such file behind, and a run's other blobs are not mistaken for it. */
static void test_runs_corrupt(void **state)
{
    fixture *f = *state;
    run_tree *t = calloc(1, sizeof *t);
    run_tree_make(f, t);
    const pf_blob_loc *l = pf_index_find(f->r->index, t->blobs[7]);
    pf_buf pack = PF_BUF_INIT;
    pf_err err = {0};
    assert_int_equal(pf_store_get(f->r->store, t->pack, 0, PF_STORE_ALL, &pack, &err), 0);
    pack.data[l->offset + l->length / 2] ^= 0x40;
    assert_int_equal(pf_store_put(f->r->store, t->pack, pack.data, pack.len, &err), 0);
    pf_buf_free(&pack);
    scratch(f);
    pf_restore_opts o = {.workers = 1};
    assert_int_equal(counted_restore(f, t, &o, &err), -1);
    assert_int_equal(err.code, PF_ECORRUPT);
    char hex[PF_HEX_ID_LEN + 1];
    pf_hex(t->blobs[7], PF_ID_LEN, hex);
    hex[16] = 0;
    if (!strstr(err.msg, hex) || !strstr(err.msg, "/f07"))
        fail_msg("the error does not name blob %s of f07: %s", hex, err.msg);
    char p[600];
    snprintf(p, sizeof p, "%s/f07", f->target);
    struct stat st;
    assert_int_equal(lstat(p, &st), -1);
    /* the blobs before it in the same run were written whole */
    for (int i = 0; i < 7; i++) {
        snprintf(p, sizeof p, "%s/%s", f->target, t->names[i]);
        assert_int_equal(stat(p, &st), 0);
        assert_int_equal(st.st_size, RUN_BYTES);
    }
    /* those after it were not written: their files are gone, not left full of holes */
    for (int i = 8; i < RUN_FILES; i++) {
        snprintf(p, sizeof p, "%s/%s", f->target, t->names[i]);
        FILE *fp = fopen(p, "rb");
        if (!fp)
            continue;
        uint8_t got[RUN_BYTES];
        size_t n = fread(got, 1, sizeof got, fp);
        fclose(fp);
        if (n != RUN_BYTES || memcmp(got, t->data[i], RUN_BYTES))
            fail_msg("%s was left with wrong bytes", p);
    }
    scratch_done(f);
    free(t);
}

/* A sink that collects what it is given. */
typedef struct collect {
    pf_sink sink; /* first member */
    pf_buf b;
} collect;

static int collect_write(pf_sink *s, const void *p, size_t n, pf_err *err)
{
    (void)err;
    pf_buf_append(&((collect *)s)->b, p, n);
    return 0;
}

/* One file of all RUN_FILES blobs, in pack order (order 1) or reversed (order -1). */
static pf_node stream_node(run_tree *t, uint8_t (*ids)[PF_ID_LEN], int order)
{
    for (int i = 0; i < RUN_FILES; i++)
        memcpy(ids[i], t->blobs[order > 0 ? i : RUN_FILES - 1 - i], PF_ID_LEN);
    pf_node n = tb_node("stream", PF_NODE_FILE, 0644, 1000000000);
    n.blobs = ids;
    n.nblobs = RUN_FILES;
    n.size = RUN_FILES * RUN_BYTES;
    return n;
}

static void expect_stream(const run_tree *t, const pf_buf *b, int order)
{
    assert_int_equal(b->len, RUN_FILES * RUN_BYTES);
    for (int i = 0; i < RUN_FILES; i++)
        assert_memory_equal(b->data + (size_t)i * RUN_BYTES,
                            t->data[order > 0 ? i : RUN_FILES - 1 - i], RUN_BYTES);
}

/* The streams (pg_restore's, Redis's source; dump's sink) read blobs that follow each
 * other in a pack with one read, and blobs out of pack order one by one, same bytes. */
static void test_runs_stream(void **state)
{
    fixture *f = *state;
    run_tree *t = calloc(1, sizeof *t);
    run_tree_make(f, t);
    uint8_t ids[RUN_FILES][PF_ID_LEN];
    counting c = {f->r->store, "", 0};
    snprintf(c.key, sizeof c.key, "%s", t->pack);
    pf_store *wrap = pf_store_alloc(&counting_ops, &c, "counting");
    f->r->store = wrap;
    pf_err err = {0};
    for (int order = 1; order >= -1; order -= 2) {
        pf_node n = stream_node(t, ids, order);
        int want = order > 0 ? 1 : RUN_FILES;
        c.gets = 0;
        collect col = {{.write = collect_write}, PF_BUF_INIT};
        col.sink.ctx = &col;
        assert_int_equal(pf_node_write(f->r, &n, &col.sink, &err), 0);
        expect_stream(t, &col.b, order);
        assert_int_equal(c.gets, want);
        pf_buf_reset(&col.b);
        c.gets = 0;
        pf_source *src = pf_node_source_new(f->r, &n);
        assert_non_null(src);
        char buf[777];
        ssize_t got;
        while ((got = src->read(src, buf, sizeof buf, &err)) > 0)
            pf_buf_append(&col.b, buf, (size_t)got);
        assert_int_equal(got, 0);
        pf_node_source_free(src);
        expect_stream(t, &col.b, order);
        assert_int_equal(c.gets, want);
        pf_buf_free(&col.b);
    }
    /* a damaged blob inside the run: named, and the stream fails */
    const pf_blob_loc *l = pf_index_find(f->r->index, t->blobs[11]);
    pf_buf pack = PF_BUF_INIT;
    assert_int_equal(pf_store_get(c.inner, t->pack, 0, PF_STORE_ALL, &pack, &err), 0);
    pack.data[l->offset + 3] ^= 1;
    assert_int_equal(pf_store_put(c.inner, t->pack, pack.data, pack.len, &err), 0);
    pf_buf_free(&pack);
    pf_node n = stream_node(t, ids, 1);
    pf_source *src = pf_node_source_new(f->r, &n);
    char buf[4096];
    ssize_t got;
    while ((got = src->read(src, buf, sizeof buf, &err)) > 0)
        ;
    assert_int_equal(got, -1);
    pf_node_source_free(src);
    char hex[PF_HEX_ID_LEN + 1];
    pf_hex(t->blobs[11], PF_ID_LEN, hex);
    hex[16] = 0;
    if (!strstr(err.msg, hex))
        fail_msg("the error does not name blob %s: %s", hex, err.msg);
    f->r->store = c.inner;
    pf_store_free(wrap);
    free(t);
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ns_to_timespec),
        cmocka_unit_test(test_hostile_names),
        cmocka_unit_test(test_link_then_dir),
        cmocka_unit_test(test_outside_links),
        cmocka_unit_test(test_too_deep),
        cmocka_unit_test(test_preplanted),
        cmocka_unit_test(test_swapped_during),
        cmocka_unit_test(test_failed_file_removed_by_fd),
        cmocka_unit_test(test_times),
        cmocka_unit_test(test_owner_names),
        cmocka_unit_test(test_special),
        cmocka_unit_test(test_exact),
        cmocka_unit_test_setup_teardown(test_runs_adjacent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_gaps, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_corrupt, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runs_stream, setup, teardown),
    };
    return cmocka_run_group_tests_name("restorer", tests, setup, teardown);
}
