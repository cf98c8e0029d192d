/* repo/snapshot: the JSON shown to the operator (snapshots --json, backup --json), built
 * from the same parts as the stored form. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "repo/snapshot.h"

static void test_shown_json(void **state)
{
    (void)state;
    pf_snapshot s;
    pf_snapshot_init(&s);
    s.time_ns = 1764013212123456789LL;
    s.host = strdup("mastodon.example");
    s.user = strdup("root");
    s.program = strdup("permafrost 0.1.0");
    pf_snapshot_add_tag(&s, "daily");
    pf_snapshot_add_path(&s, "/home/mastodon/live");
    memset(s.tree, 0xab, PF_ID_LEN);
    memset(s.id, 'e', 2 * PF_ID_LEN);
    s.components = cJSON_Parse("{\"postgres\":{\"status\":\"ok\"}}");
    s.stats = cJSON_Parse("{\"files\":10}");
    s.complete = true;

    cJSON *o = pf_snapshot_to_json(&s);
    char *text = cJSON_PrintUnformatted(o);
    cJSON *v;
    assert_string_equal(cJSON_GetObjectItem(o, "id")->valuestring, s.id);
    assert_string_equal(cJSON_GetObjectItem(o, "host")->valuestring, "mastodon.example");
    v = cJSON_GetObjectItem(o, "tree");
    assert_int_equal(strlen(v->valuestring), 2 * PF_ID_LEN);
    assert_int_equal(strspn(v->valuestring, "ab"), 2 * PF_ID_LEN);
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "tags"), 0)->valuestring,
                        "daily");
    assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(o, "paths"), 0)->valuestring,
                        "/home/mastodon/live");
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(o, "components")));
    assert_true(cJSON_IsObject(cJSON_GetObjectItem(o, "stats")));
    assert_null(cJSON_GetObjectItem(o, "manifest"));
    assert_null(cJSON_GetObjectItem(o, "parent"));
    assert_null(cJSON_GetObjectItem(o, "program")); /* stored, not shown */
    assert_null(cJSON_GetObjectItem(o, "skipped")); /* complete */
    /* The order the operator's tools have always seen. */
    const char *keys[] = {"\"host\"", "\"user\"",       "\"tags\"", "\"paths\"",
                          "\"tree\"", "\"components\"", "\"stats\""};
    for (size_t i = 1; i < sizeof keys / sizeof *keys; i++)
        assert_true(strstr(text, keys[i - 1]) < strstr(text, keys[i]));
    free(text);
    cJSON_Delete(o);

    /* An incomplete one lists what it lacks; the copies are independent of s. */
    pf_snapshot_add_skipped(&s, "/var/lib/unreadable");
    o = pf_snapshot_to_json(&s);
    v = cJSON_GetObjectItem(o, "skipped");
    assert_string_equal(cJSON_GetArrayItem(v, 0)->valuestring, "/var/lib/unreadable");
    assert_false(cJSON_IsTrue(cJSON_GetObjectItem(o, "complete")));
    pf_snapshot_free(&s);
    assert_int_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "stats"), "files")->valueint, 10);
    cJSON_Delete(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_shown_json)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
