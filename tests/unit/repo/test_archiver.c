/* repo/archiver: change detection against the parent snapshot. A re-run over an unchanged
 * tree writes nothing (not even its trees) and gives the parent's root; a file changed in
 * size, mtime, ctime or inode is read again; and the snapshot built with a parent is the
 * one a backup without a parent makes of the same files. A walk on several threads makes
 * the very snapshot a walk on one thread makes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>
#include <fcntl.h>
#include <pthread.h>
#include <unistd.h>

#include "repo/archiver.h"
#include "repo/saver.h"
#include "store/store.h"

static char top[256];

static void put(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

static void sub(const char *rel)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", top, rel);
    assert_int_equal(mkdir(p, 0755), 0);
}

static struct stat stat_of(const char *rel)
{
    char p[512];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", top, rel);
    assert_int_equal(lstat(p, &st), 0);
    return st;
}

typedef struct run {
    uint8_t root[PF_ID_LEN];
    pf_archive_stats st;
    pf_saver_stats sv;
} run;

/* What the visit callback saw: how many files, from how many threads (the archiver calls
 * it one call at a time). */
typedef struct visits {
    size_t n;
    pthread_t threads[8];
    size_t nthreads;
} visits;

static void on_visit(const char *rel, void *ctx)
{
    visits *v = ctx;
    (void)rel;
    v->n++;
    for (size_t i = 0; i < v->nthreads; i++)
        if (pthread_equal(v->threads[i], pthread_self()))
            return;
    if (v->nthreads < 8)
        v->threads[v->nthreads++] = pthread_self();
}

/* One backup of top as entry "top" of the root, with the parent root given or none, walked
 * by that many threads (0: the default). */
static run backup_walkers(pf_repo *r, const uint8_t *parent, int walkers, visits *v,
                          size_t *nskipped)
{
    pf_err err = {0};
    run out;
    pf_saver *sv = pf_saver_new(r, 1, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, parent, &err);
    assert_non_null(a);
    pf_archiver_set_walkers(a, walkers);
    if (v)
        pf_archiver_set_visit(a, on_visit, v);
    pf_dir *root = pf_archiver_root(a);
    if (pf_archive_path(a, root, "top", top, NULL, &err))
        fail_msg("archive: %s", err.msg);
    assert_int_equal(pf_dir_end(a, root, out.root, &err), 0);
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_archiver_stats(a, &out.st);
    pf_saver_stats_get(sv, &out.sv);
    if (nskipped) {
        const char *const *paths;
        *nskipped = pf_archiver_skipped(a, &paths);
    }
    pf_saver_free(sv);
    pf_archiver_free(a);
    return out;
}

static run backup(pf_repo *r, const uint8_t *parent)
{
    return backup_walkers(r, parent, 1, NULL, NULL);
}

static void test_change_detection(void **state)
{
    (void)state;
    pf_err err = {0};
    snprintf(top, sizeof top, "%s/pf-archiver-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(top));
    sub("a");
    sub("a/deep");
    sub("b");
    sub("empty");
    put("a/size", "grows\n");
    put("a/mtime", "touched\n");
    put("a/ctime", "chmod-ed\n");
    put("a/inode", "replaced\n");
    put("a/same", "left alone\n");
    put("a/deep/x", "deep and unchanged\n");
    put("b/y", "another directory\n");
    char p[512], q[512];
    snprintf(p, sizeof p, "%s/link", top);
    assert_int_equal(symlink("a/same", p), 0);

    pf_repo *r = pf_repo_init(pf_store_mem_new(), "a", NULL, &err);
    assert_non_null(r);
    run first = backup(r, NULL);
    assert_int_equal(first.st.files, 7);
    assert_int_equal(first.st.files_unchanged, 0);

    /* Nothing changed: every file and every tree is the parent's, nothing is saved. */
    run again = backup(r, first.root);
    assert_memory_equal(again.root, first.root, PF_ID_LEN);
    assert_int_equal(again.st.files_unchanged, 7);
    assert_int_equal(again.st.bytes_read, 0);
    assert_int_equal(again.st.dirs, first.st.dirs);
    assert_int_equal(again.sv.blobs_seen, 0);

    /* Four files changed, each in one of what change detection compares. */
    struct stat before = stat_of("a/size");
    put("a/size", "grows, and grew\n");
    struct stat mt = stat_of("a/mtime");
    struct timespec ts[2] = {mt.st_atim, mt.st_mtim};
    ts[1].tv_sec -= 100;
    snprintf(p, sizeof p, "%s/a/mtime", top);
    assert_int_equal(utimensat(AT_FDCWD, p, ts, 0), 0);
    /* chmod there and back: only the ctime moves. The kernel's clock for it is coarse, so
     * repeat until the ctime differs from the one the backups saw. */
    struct stat ct = stat_of("a/ctime"), now;
    snprintf(p, sizeof p, "%s/a/ctime", top);
    for (int i = 0; i < 1000000; i++) {
        assert_int_equal(chmod(p, 0600), 0);
        assert_int_equal(chmod(p, ct.st_mode & 07777), 0);
        now = stat_of("a/ctime");
        if (now.st_ctim.tv_sec != ct.st_ctim.tv_sec || now.st_ctim.tv_nsec != ct.st_ctim.tv_nsec)
            break;
    }
    assert_true(now.st_ctim.tv_nsec != ct.st_ctim.tv_nsec ||
                now.st_ctim.tv_sec != ct.st_ctim.tv_sec);
    /* A new file of the same size and mtime renamed over the old one: only the inode. */
    struct stat in = stat_of("a/inode");
    put("a/inode.new", "REPLACED\n");
    snprintf(p, sizeof p, "%s/a/inode.new", top);
    snprintf(q, sizeof q, "%s/a/inode", top);
    struct timespec its[2] = {in.st_atim, in.st_mtim};
    assert_int_equal(utimensat(AT_FDCWD, p, its, 0), 0);
    assert_int_equal(rename(p, q), 0);
    assert_true(stat_of("a/inode").st_ino != in.st_ino);
    assert_true(stat_of("a/size").st_size != before.st_size);

    run changed = backup(r, again.root);
    assert_int_equal(changed.st.files, 7);
    assert_int_equal(changed.st.files_unchanged, 3);
    assert_int_equal(changed.st.bytes_read, strlen("grows, and grew\n") + strlen("touched\n") +
                                                strlen("chmod-ed\n") + strlen("REPLACED\n"));
    /* The same snapshot as one made from scratch, which reads every file. */
    run scratch = backup(r, NULL);
    assert_int_equal(scratch.st.files_unchanged, 0);
    assert_memory_equal(changed.root, scratch.root, PF_ID_LEN);
    assert_memory_not_equal(changed.root, first.root, PF_ID_LEN);

    /* The new content is what the snapshot holds. */
    pf_tree t, ta, tb;
    assert_int_equal(pf_repo_load_tree(r, changed.root, &t, &err), 0);
    const pf_node *n = pf_tree_find(&t, "top", 3);
    assert_non_null(n);
    assert_int_equal(pf_repo_load_tree(r, n->blobs[0], &ta, &err), 0);
    n = pf_tree_find(&ta, "a", 1);
    assert_non_null(n);
    assert_int_equal(pf_repo_load_tree(r, n->blobs[0], &tb, &err), 0);
    n = pf_tree_find(&tb, "inode", 5);
    assert_non_null(n);
    pf_buf b = PF_BUF_INIT;
    for (size_t j = 0; j < n->nblobs; j++)
        assert_int_equal(pf_repo_load_blob(r, n->blobs[j], &b, &err), 0);
    assert_int_equal(b.len, strlen("REPLACED\n"));
    assert_memory_equal(b.data, "REPLACED\n", b.len);
    pf_buf_free(&b);
    pf_tree_free(&tb);
    pf_tree_free(&ta);
    pf_tree_free(&t);
    pf_repo_free(r);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
}

/* The same snapshot and counts; but a file linked from two subtrees that two walkers take
 * is read by both, so y's bytes may hold it twice (linked: its size). */
static void same_run(const run *x, const run *y, uint64_t linked)
{
    assert_memory_equal(x->root, y->root, PF_ID_LEN);
    assert_int_equal(x->st.files, y->st.files);
    assert_int_equal(x->st.dirs, y->st.dirs);
    assert_int_equal(x->st.others, y->st.others);
    assert_int_equal(x->st.files_unchanged, y->st.files_unchanged);
    assert_true(y->st.bytes == x->st.bytes || y->st.bytes == x->st.bytes + linked);
    assert_int_equal(x->st.errors, y->st.errors);
}

/* A tree of many directories, walked on one thread and on several: the same root id, the
 * same counts, with and without a parent snapshot, with a change deep down, hard links
 * across subtrees, symlinks, and an unreadable file and directory (skipped by both). */
static void test_parallel_walk(void **state)
{
    (void)state;
    pf_err err = {0};
    char p[512], q[512], nm[64];
    snprintf(top, sizeof top, "%s/pf-archiver-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(top));
    assert_int_equal(chmod(top, 0755), 0);
    size_t nfiles = 0;
    for (int i = 0; i < 6; i++) {
        snprintf(nm, sizeof nm, "d%d", i);
        sub(nm);
        for (int j = 0; j < 5; j++) {
            snprintf(nm, sizeof nm, "d%d/s%d", i, j);
            sub(nm);
            for (int k = 0; k < 4; k++) {
                char text[64];
                snprintf(nm, sizeof nm, "d%d/s%d/f%d", i, j, k);
                snprintf(text, sizeof text, "file %d %d %d\n", i, j, k);
                put(nm, text);
                nfiles++;
            }
        }
    }
    sub("deep");
    sub("deep/a");
    sub("deep/a/b");
    sub("deep/a/b/c");
    sub("deep/a/b/c/d");
    put("deep/a/b/c/d/leaf", "deep down\n");
    sub("d2/s3/empty");
    nfiles++;
    /* One file linked from two subtrees that different walkers take. */
    snprintf(p, sizeof p, "%s/d0/s0/f0", top);
    snprintf(q, sizeof q, "%s/d5/s4/linked", top);
    assert_int_equal(link(p, q), 0);
    nfiles++;
    snprintf(p, sizeof p, "%s/d1/link", top);
    assert_int_equal(symlink("s0/f1", p), 0);
    snprintf(p, sizeof p, "%s/deep/a/dangling", top);
    assert_int_equal(symlink("nowhere", p), 0);
    /* Unreadable to the walk: it runs as nobody when the test runs as root. */
    put("d3/s2/locked", "secret\n");
    snprintf(p, sizeof p, "%s/d3/s2/locked", top);
    assert_int_equal(chmod(p, 0), 0);
    sub("d4/closed");
    put("d4/closed/inside", "behind a closed door\n");
    snprintf(p, sizeof p, "%s/d4/closed", top);
    assert_int_equal(chmod(p, 0), 0);
    int as_root = geteuid() == 0;
    if (as_root) {
        assert_int_equal(setegid(65534), 0);
        assert_int_equal(seteuid(65534), 0);
    }

    pf_repo *r = pf_repo_init(pf_store_mem_new(), "a", NULL, &err);
    assert_non_null(r);
    size_t sk1, sk2;
    visits v1 = {0}, v2 = {0};
    run serial = backup_walkers(r, NULL, 1, &v1, &sk1);
    run par = backup_walkers(r, NULL, 2, &v2, &sk2);
    assert_int_equal(serial.st.files, nfiles);
    assert_int_equal(serial.st.errors, 2);
    assert_int_equal(sk1, 2);
    assert_int_equal(sk2, 2);
    same_run(&serial, &par, strlen("file 0 0 0\n"));
    /* Every file was visited once, and the walk did use more than one thread. */
    assert_int_equal(v1.n, nfiles);
    assert_int_equal(v1.nthreads, 1);
    assert_int_equal(v2.n, nfiles);
    assert_true(v2.nthreads > 1);
    run four = backup_walkers(r, NULL, 4, NULL, NULL);
    same_run(&serial, &four, strlen("file 0 0 0\n"));

    /* Unchanged: the parent's root, nothing read, on any number of threads. */
    run again = backup_walkers(r, par.root, 2, NULL, NULL);
    assert_memory_equal(again.root, serial.root, PF_ID_LEN);
    assert_int_equal(again.st.files_unchanged, nfiles);
    assert_int_equal(again.st.bytes_read, 0);
    assert_int_equal(again.sv.blobs_seen, 0);

    /* One file changed deep down: the same new root with and without a parent. */
    if (as_root)
        assert_int_equal(seteuid(0), 0);
    put("deep/a/b/c/d/leaf", "deep down, and changed\n");
    if (as_root)
        assert_int_equal(seteuid(65534), 0);
    run s_parent = backup_walkers(r, serial.root, 1, NULL, NULL);
    run p_parent = backup_walkers(r, serial.root, 2, NULL, NULL);
    run p_scratch = backup_walkers(r, NULL, 2, NULL, NULL);
    same_run(&s_parent, &p_parent, 0);
    assert_memory_equal(p_scratch.root, s_parent.root, PF_ID_LEN);
    assert_memory_not_equal(s_parent.root, serial.root, PF_ID_LEN);
    assert_int_equal(p_parent.st.files_unchanged, nfiles - 1);
    pf_repo_free(r);

    if (as_root) {
        assert_int_equal(seteuid(0), 0);
        assert_int_equal(setegid(0), 0);
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s' && rm -rf '%s'", top, top);
    assert_int_equal(system(cmd), 0);
}

/* A memory store whose writes fail once told to: a repository failure in mid-walk. */
static const struct pf_store_ops *mem_ops;
static struct pf_store_ops failing_ops;
static int fail_puts;

static int failing_put(pf_store *s, const char *key, const void *data, size_t len, pf_err *err)
{
    if (__atomic_load_n(&fail_puts, __ATOMIC_SEQ_CST))
        return pf_err_set(err, PF_EGENERIC, "the test's store is full");
    return mem_ops->put(s, key, data, len, err);
}

static int failing_put_unsynced(pf_store *s, const char *key, const void *data, size_t len,
                                pf_err *err)
{
    if (__atomic_load_n(&fail_puts, __ATOMIC_SEQ_CST))
        return pf_err_set(err, PF_EGENERIC, "the test's store is full");
    return mem_ops->put_unsynced(s, key, data, len, err);
}

/* The store fails while the walkers are at work: every walker stops, and the backup fails
 * with the store's error (not a skipped entry, not a hang), on one thread or several. */
static void test_parallel_walk_store_fails(void **state)
{
    (void)state;
    pf_err err = {0};
    char nm[64];
    snprintf(top, sizeof top, "%s/pf-archiver-XXXXXX",
             getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(top));
    /* Incompressible files, many packs' worth at the small pack size below. */
    uint32_t x = 12345;
    static char text[16385];
    for (int i = 0; i < 8; i++) {
        snprintf(nm, sizeof nm, "d%d", i);
        sub(nm);
        for (int j = 0; j < 8; j++) {
            for (size_t k = 0; k + 1 < sizeof text; k++) {
                x = x * 1103515245u + 12345u;
                text[k] = (char)('!' + (x >> 16) % 90);
            }
            text[sizeof text - 1] = 0;
            snprintf(nm, sizeof nm, "d%d/f%d", i, j);
            put(nm, text);
        }
    }
    pf_store *st = pf_store_mem_new();
    mem_ops = st->ops;
    failing_ops = *st->ops;
    failing_ops.put = failing_put;
    if (mem_ops->put_unsynced)
        failing_ops.put_unsynced = failing_put_unsynced;
    st->ops = &failing_ops;
    pf_repo *r = pf_repo_init(st, "a", NULL, &err);
    assert_non_null(r);
    __atomic_store_n(&fail_puts, 1, __ATOMIC_SEQ_CST);
    for (int walkers = 1; walkers <= 2; walkers++) {
        pf_saver *sv = pf_saver_new(r, 1, &err);
        assert_non_null(sv);
        pf_saver_set_packing(sv, 0, 4096);
        pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
        assert_non_null(a);
        pf_archiver_set_walkers(a, walkers);
        pf_err e = {0};
        assert_int_equal(pf_archive_path(a, pf_archiver_root(a), "top", top, NULL, &e), -1);
        assert_non_null(strstr(e.msg, "the test's store is full"));
        pf_archive_stats stats;
        pf_archiver_stats(a, &stats);
        assert_int_equal(stats.errors, 0);
        pf_archiver_free(a);
        pf_saver_free(sv);
    }
    __atomic_store_n(&fail_puts, 0, __ATOMIC_SEQ_CST);
    pf_repo_free(r);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", top);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_change_detection),
        cmocka_unit_test(test_parallel_walk),
        cmocka_unit_test(test_parallel_walk_store_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
