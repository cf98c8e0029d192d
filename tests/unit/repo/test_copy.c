/* repo/copy: snapshots copied between repositories with different master keys (blobs
 * re-keyed, trees rewritten) and with the same one (ids kept), never twice. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "repo/archiver.h"
#include "repo/copy.h"
#include "repo/saver.h"

static const char content[] = "a file that travels from one repository to the other\n";

/* One snapshot holding dir/f with `content`. */
static void make_snapshot(pf_repo *r, pf_snapshot *s)
{
    pf_err err = {0};
    pf_saver *sv = pf_saver_new(r, 1, &err);
    assert_non_null(sv);
    pf_archiver *a = pf_archiver_new(r, sv, NULL, &err);
    assert_non_null(a);
    pf_dir *root = pf_archiver_root(a);
    pf_dir *d = pf_dir_begin(a, root, "dir", &err);
    assert_non_null(d);
    pf_sink *k = pf_archive_stream_begin(a, d, "f", 0644, &err);
    assert_non_null(k);
    assert_int_equal(pf_sink_write(k, content, sizeof content - 1, &err), 0);
    assert_int_equal(pf_archive_stream_end(a, k, &err), 0);
    assert_int_equal(pf_dir_end(a, d, NULL, &err), 0);
    pf_snapshot_init(s);
    assert_int_equal(pf_dir_end(a, root, s->tree, &err), 0);
    assert_int_equal(pf_saver_finish(sv, &err), 0);
    pf_saver_free(sv);
    pf_archiver_free(a);
    s->host = strdup("h");
    s->time_ns = 1764013212000000000LL;
    assert_int_equal(pf_repo_save_snapshot(r, s, &err), 0);
}

/* The bytes of dir/f in the snapshot whose tree is root. */
static void expect_content(pf_repo *r, const uint8_t root[PF_ID_LEN])
{
    pf_err err = {0};
    pf_tree t, sub;
    assert_int_equal(pf_repo_load_tree(r, root, &t, &err), 0);
    assert_int_equal(t.count, 1);
    assert_int_equal(pf_repo_load_tree(r, t.nodes[0].blobs[0], &sub, &err), 0);
    assert_int_equal(sub.count, 1);
    pf_buf b = PF_BUF_INIT;
    for (size_t j = 0; j < sub.nodes[0].nblobs; j++)
        assert_int_equal(pf_repo_load_blob(r, sub.nodes[0].blobs[j], &b, &err), 0);
    assert_int_equal(b.len, sizeof content - 1);
    assert_memory_equal(b.data, content, b.len);
    pf_buf_free(&b);
    pf_tree_free(&sub);
    pf_tree_free(&t);
}

static void copy_into(pf_repo *src, pf_repo *dst, bool same_key)
{
    pf_err err = {0};
    pf_snapshot s, *have = NULL;
    size_t nhave = 0;
    make_snapshot(src, &s);
    pf_index_file orphans = {0};
    assert_int_equal(pf_repo_load_index(dst, &err), 0);
    pf_copier *c = pf_copy_new(src, dst, &orphans, 1, &err);
    assert_non_null(c);
    char new_id[PF_HEX_ID_LEN + 1];
    assert_int_equal(pf_copy_snapshot(c, &s, new_id, &err), 0);
    assert_int_equal(pf_copy_finish(c, &err), 0);
    pf_copy_stats st = pf_copy_get_stats(c);
    assert_int_equal(st.blobs_copied, 1);
    assert_int_equal(st.bytes_copied, sizeof content - 1);
    pf_copy_free(c);

    pf_snapshot t;
    assert_int_equal(pf_repo_load_snapshot(dst, new_id, &t, &err), 0);
    cJSON *from = cJSON_GetObjectItemCaseSensitive(t.stats, "copied_from");
    assert_true(cJSON_IsString(from));
    assert_string_equal(from->valuestring, s.id);
    assert_int_equal(memcmp(t.tree, s.tree, PF_ID_LEN) == 0, same_key);
    expect_content(dst, t.tree);

    assert_int_equal(pf_repo_load_all_snapshots(dst, &have, &nhave, &err), 0);
    assert_int_equal(nhave, 1);
    assert_true(pf_copy_is_there(&s, have, nhave));
    assert_true(pf_copy_is_there(&t, have, nhave));
    pf_snapshot other = s;
    memset(other.id, 'f', PF_HEX_ID_LEN);
    assert_false(pf_copy_is_there(&other, have, nhave));
    pf_snapshots_free(have, nhave);
    pf_snapshot_free(&t);
    pf_snapshot_free(&s);
}

static void test_copy_other_key(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *src = pf_repo_init(pf_store_mem_new(), "a", NULL, &err);
    pf_repo *dst = pf_repo_init(pf_store_mem_new(), "b", NULL, &err);
    assert_non_null(src);
    assert_non_null(dst);
    copy_into(src, dst, false);
    pf_repo_free(dst);
    pf_repo_free(src);
}

static void test_copy_same_key(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_repo *src = pf_repo_init(pf_store_mem_new(), "a", NULL, &err);
    assert_non_null(src);
    pf_repo_init_opts o = {.master = src->keys.master};
    pf_repo *dst = pf_repo_init(pf_store_mem_new(), "b", &o, &err);
    assert_non_null(dst);
    copy_into(src, dst, true);
    pf_repo_free(dst);
    pf_repo_free(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_copy_other_key),
        cmocka_unit_test(test_copy_same_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
