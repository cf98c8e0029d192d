/* The media check's pure part: Paperclip's id partition and paths as Mastodon lays them
 * out, the comparison of what the database references with the stored tree, what it
 * records in a snapshot, and what is said about it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mastodon/mediacheck.h"
#include "repo/snapshot.h"

#define TREE_HEX "abababababababababababababababababababababababababababababababab"

static void test_id_partition(void **state)
{
    (void)state;
    char p[64];
    assert_int_equal(pf_paperclip_partition(1, p, sizeof p), 0);
    assert_string_equal(p, "000/000/001");
    assert_int_equal(pf_paperclip_partition(123456789, p, sizeof p), 0);
    assert_string_equal(p, "123/456/789");
    /* 1e9 and above: at least 12 digits; a partial group at the end is dropped. */
    assert_int_equal(pf_paperclip_partition(1000000000, p, sizeof p), 0);
    assert_string_equal(p, "001/000/000/000");
    assert_int_equal(pf_paperclip_partition(1234567890123ULL, p, sizeof p), 0);
    assert_string_equal(p, "123/456/789/012");
    /* A snowflake id (18 digits): 6 groups. */
    assert_int_equal(pf_paperclip_partition(109347892451840001ULL, p, sizeof p), 0);
    assert_string_equal(p, "109/347/892/451/840/001");
    assert_int_equal(pf_paperclip_partition(UINT64_MAX, p, sizeof p), 0);
    assert_string_equal(p, "184/467/440/737/095/516");
    assert_int_equal(pf_paperclip_partition(1, p, 11), -1); /* "000/000/001" needs 12 */
    assert_int_equal(pf_paperclip_partition(1, p, 12), 0);
}

static void test_paths(void **state)
{
    (void)state;
    char p[256];
    assert_int_equal(pf_paperclip_path(false, "accounts", "avatars", 1, "a.png", p, sizeof p), 0);
    assert_string_equal(p, "accounts/avatars/000/000/001/original/a.png");
    assert_int_equal(pf_paperclip_path(true, "media_attachments", "files", 109000000000000001ULL,
                                       "r.jpg", p, sizeof p),
                     0);
    assert_string_equal(p, "cache/media_attachments/files/109/000/000/000/000/001/original/r.jpg");
    assert_int_equal(pf_paperclip_path(false, "site_uploads", "files", 7, "x.png", p, 20), -1);
}

static pf_mediacheck *sample_check(bool exclude_cache)
{
    pf_mediacheck *mc = pf_mediacheck_new(exclude_cache);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ATTACHMENT,
                          "media_attachments/files/000/000/002/original/b.mp4", 0);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ATTACHMENT,
                          "media_attachments/files/000/000/001/original/a.jpg", 0);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ACCOUNT, "accounts/avatars/000/000/001/original/av.png", 0);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ACCOUNT, "accounts/avatars/000/000/001/original/av.png", 0);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ATTACHMENT,
                          "cache/media_attachments/files/109/000/000/original/r1.jpg", 1700000000);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ATTACHMENT,
                          "cache/media_attachments/files/109/000/001/original/r2.jpg", 1690000000);
    pf_mediacheck_add_ref(mc, PF_MEDIA_ACCOUNT, "cache/accounts/avatars/000/000/006/original/r.png",
                          0);
    pf_mediacheck_add_ref(mc, PF_MEDIA_EMOJI,
                          "cache/custom_emojis/images/000/000/001/original/e.png", 0);
    pf_mediacheck_seal(mc);
    return mc;
}

static void test_comparison(void **state)
{
    (void)state;
    pf_mediacheck *mc = sample_check(false);
    /* b.mp4 is missing; its small/ style is there (the record is referenced). */
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/001/original/a.jpg");
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/001/small/a.jpg");
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/002/small/b.png");
    pf_mediacheck_add_present(mc, "accounts/avatars/000/000/001/original/av.png");
    pf_mediacheck_add_present(mc, "accounts/avatars/000/000/001/static/av.png");
    /* Strays: another original beside a referenced one, a record no row names, odd shapes. */
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/002/original/old.bin");
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/009/small/x.png");
    pf_mediacheck_add_present(mc, "stray.txt");
    pf_mediacheck_add_present(mc, "dir/stray.txt");
    /* Cache: r1 there, r2 missing, an orphan. */
    pf_mediacheck_add_present(mc, "cache/media_attachments/files/109/000/000/original/r1.jpg");
    pf_mediacheck_add_present(mc, "cache/media_attachments/files/109/000/005/original/o.jpg");
    pf_media_check m;
    pf_mediacheck_result(mc, &m);
    pf_mediacheck_free(mc);
    assert_true(m.recorded);
    assert_int_equal(m.referenced, 3); /* the avatar named twice is one file */
    assert_int_equal(m.present, 2);
    assert_int_equal(m.missing, 1);
    assert_int_equal(m.nmissing_sample, 1);
    assert_string_equal(m.missing_sample[0], "media_attachments/files/000/000/002/original/b.mp4");
    assert_int_equal(m.unreferenced, 4);
    assert_int_equal(m.cache_referenced, 4);
    assert_int_equal(m.cache_present, 1);
    assert_int_equal(m.cache_missing, 3);
    assert_int_equal(m.cache_unreferenced, 1);
    assert_int_equal(m.cache_excluded, 0);
    assert_string_equal(m.cache_missing_sample[0],
                        "cache/accounts/avatars/000/000/006/original/r.png");
    assert_int_equal(m.cache_absent_by_kind[PF_MEDIA_ATTACHMENT], 1);
    assert_int_equal(m.cache_absent_by_kind[PF_MEDIA_ACCOUNT], 1);
    assert_int_equal(m.cache_absent_by_kind[PF_MEDIA_EMOJI], 1);
    assert_int_equal(m.cache_media_oldest, 1690000000); /* r2, the absent one */

    char *line = pf_mediacheck_missing_line(&m);
    assert_non_null(line);
    assert_string_equal(line, "1 media file the database references is missing from the media "
                              "directory (media_attachments/files/000/000/002/original/b.mp4)");
    free(line);
    pf_media_check_free(&m);
}

static void test_sample_bounded_and_ordered(void **state)
{
    (void)state;
    pf_mediacheck *mc = pf_mediacheck_new(false);
    char p[128];
    for (int i = 20; i > 0; i--) {
        snprintf(p, sizeof p, "media_attachments/files/000/000/%03d/original/f.jpg", i);
        pf_mediacheck_add_ref(mc, PF_MEDIA_ATTACHMENT, p, 0);
    }
    pf_mediacheck_seal(mc);
    pf_media_check m;
    pf_mediacheck_result(mc, &m);
    pf_mediacheck_free(mc);
    assert_int_equal(m.missing, 20);
    assert_int_equal(m.nmissing_sample, PF_MEDIA_SAMPLE_MAX);
    assert_string_equal(m.missing_sample[0], "media_attachments/files/000/000/001/original/f.jpg");
    assert_string_equal(m.missing_sample[4], "media_attachments/files/000/000/005/original/f.jpg");
    char *line = pf_mediacheck_missing_line(&m);
    assert_non_null(strstr(line, "20 media files the database references are missing"));
    assert_non_null(strstr(line, "005/original/f.jpg, ...)"));
    free(line);
    pf_media_check_free(&m);
}

static void test_exclude_cache(void **state)
{
    (void)state;
    pf_mediacheck *mc = sample_check(true);
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/001/original/a.jpg");
    pf_mediacheck_add_present(mc, "media_attachments/files/000/000/002/original/b.mp4");
    pf_mediacheck_add_present(mc, "accounts/avatars/000/000/001/original/av.png");
    pf_media_check m;
    pf_mediacheck_result(mc, &m);
    pf_mediacheck_free(mc);
    assert_int_equal(m.missing, 0);
    assert_null(pf_mediacheck_missing_line(&m));
    assert_true(m.exclude_cache);
    assert_int_equal(m.cache_referenced, 4);
    assert_int_equal(m.cache_excluded, 4);
    assert_int_equal(m.cache_missing, 0); /* left out, not missing */
    assert_int_equal(m.cache_absent_by_kind[PF_MEDIA_ATTACHMENT], 2);
    assert_int_equal(m.cache_media_oldest, 1690000000);

    /* The commands that refetch them, with how many files each concerns. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    assert_int_equal(pf_mediacheck_refetch_advice(&m, 1690000000 + 10 * 86400 + 5, "  ", f), 3);
    fclose(f);
    assert_non_null(strstr(text,
                           "  RAILS_ENV=production bin/tootctl media refresh --days 12 --force"
                           "   # 2 remote media files\n"));
    assert_non_null(
        strstr(text, "bin/tootctl accounts refresh --all   # 1 remote avatar and header\n"));
    assert_non_null(strstr(text, "# 1 remote custom emoji image: no tootctl command"));
    free(text);

    /* Recorded in the snapshot and read back. */
    pf_snapshot s, back;
    pf_snapshot_init(&s);
    memset(s.tree, 0xab, sizeof s.tree);
    s.media_check = m;
    char *json = pf_snapshot_encode(&s);
    assert_non_null(strstr(json, "\"media_check\":{\"styles\":\"original\",\"referenced\":3,"));
    assert_non_null(strstr(json, "\"exclude_cache\":true,\"cache_excluded\":4"));
    pf_err err = {0};
    assert_int_equal(pf_snapshot_decode(json, strlen(json), &back, &err), 0);
    assert_true(back.media_check.recorded);
    assert_int_equal(back.media_check.referenced, 3);
    assert_int_equal(back.media_check.cache_excluded, 4);
    assert_true(back.media_check.exclude_cache);
    assert_int_equal(back.media_check.cache_absent_by_kind[PF_MEDIA_ACCOUNT], 1);
    assert_int_equal(back.media_check.cache_media_oldest, 1690000000);
    free(json);
    pf_snapshot_free(&back);
    pf_snapshot_free(&s); /* frees m */
}

static void test_snapshot_fields(void **state)
{
    (void)state;
    pf_mediacheck *mc = sample_check(false);
    pf_snapshot s, back;
    pf_snapshot_init(&s);
    memset(s.tree, 0xab, sizeof s.tree);
    pf_mediacheck_result(mc, &s.media_check);
    pf_mediacheck_free(mc);
    char *json = pf_snapshot_encode(&s);
    pf_err err = {0};
    assert_int_equal(pf_snapshot_decode(json, strlen(json), &back, &err), 0);
    assert_int_equal(back.media_check.missing, 3);
    assert_int_equal(back.media_check.nmissing_sample, 3);
    assert_string_equal(back.media_check.missing_sample[2],
                        "media_attachments/files/000/000/002/original/b.mp4");
    assert_int_equal(back.media_check.cache_missing, 4);
    assert_int_equal(back.media_check.ncache_missing_sample, 4);
    /* What check and ls print. */
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    pf_mediacheck_print(&back.media_check, "", f);
    fclose(f);
    assert_non_null(strstr(text, "media check (originals): 3 referenced, 0 present, 3 missing, "
                                 "0 unreferenced\n"));
    assert_non_null(strstr(text, "4 cache-missing (refetchable)"));
    free(text);
    free(json);
    pf_snapshot_free(&back);
    pf_snapshot_free(&s);

    /* An older snapshot has none; a malformed one is refused. */
    const char *old = "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"" TREE_HEX "\"}";
    assert_int_equal(pf_snapshot_decode(old, strlen(old), &back, &err), 0);
    assert_false(back.media_check.recorded);
    pf_snapshot_free(&back);
    static const char *const bad[] = {
        "\"media_check\":[]",
        "\"media_check\":{\"missing\":-1}",
        "\"media_check\":{\"missing\":\"3\"}",
        "\"media_check\":{\"missing\":1e300}",
        "\"media_check\":{\"missing_sample\":[\"a\",\"b\",\"c\",\"d\",\"e\",\"f\"]}",
        "\"media_check\":{\"missing_sample\":[1]}",
        "\"media_check\":{\"cache_absent_by_kind\":{\"accounts\":-2}}",
        "\"media_check\":{\"cache_media_oldest\":\"x\"}",
        "\"media_check\":{\"exclude_cache\":1}",
        "\"media_check\":{\"error\":3}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        char j[512];
        snprintf(j, sizeof j, "{\"version\":1,\"time_ns\":\"1\",\"tree\":\"%s\",%s}", TREE_HEX,
                 bad[i]);
        assert_int_equal(pf_snapshot_decode(j, strlen(j), &back, &err), -1);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_partition),  cmocka_unit_test(test_paths),
        cmocka_unit_test(test_comparison),    cmocka_unit_test(test_sample_bounded_and_ordered),
        cmocka_unit_test(test_exclude_cache), cmocka_unit_test(test_snapshot_fields),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
