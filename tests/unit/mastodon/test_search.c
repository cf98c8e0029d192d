/* ES_ENABLED: the endpoint recorded (never its password), the step after a restore. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "mastodon/search.h"

static cJSON *describe(const char *text)
{
    pf_mastodon_env env;
    pf_err err = {0};
    if (pf_mastodon_env_parse(text, strlen(text), &env, &err))
        fail_msg("parse: %s", err.msg);
    cJSON *m = cJSON_CreateObject();
    pf_mastodon_search_describe(&env, m);
    pf_mastodon_env_free(&env);
    return m;
}

static void test_search(void **state)
{
    (void)state;
    cJSON *m = describe("LOCAL_DOMAIN=x.example\nES_ENABLED=true\nES_HOST=es.internal\n"
                        "ES_PORT=9201\nES_USER=mastodon\nES_PASS=es-secret-pw\nES_PREFIX=pfx\n");
    char *t = cJSON_PrintUnformatted(m);
    assert_string_equal(t, "{\"search\":{\"host\":\"es.internal\",\"port\":9201,\"prefix\":\"pfx\","
                           "\"user\":\"mastodon\"}}");
    assert_null(strstr(t, "es-secret-pw"));
    cJSON_free(t);
    char buf[512];
    const char *todo = pf_mastodon_search_todo(m, buf, sizeof buf);
    assert_non_null(todo);
    assert_non_null(strstr(todo, "tootctl search deploy"));
    assert_non_null(strstr(todo, "es.internal:9201"));
    cJSON_Delete(m);

    /* Defaults, as chewy.rb has them; the prefix falls back to REDIS_NAMESPACE. */
    m = describe("LOCAL_DOMAIN=x.example\nES_ENABLED=true\nREDIS_NAMESPACE=ns\n");
    t = cJSON_PrintUnformatted(m);
    assert_string_equal(t, "{\"search\":{\"host\":\"localhost\",\"port\":9200,\"prefix\":\"ns\"}}");
    cJSON_free(t);
    cJSON_Delete(m);

    /* Disabled: nothing recorded, no step. */
    m = describe("LOCAL_DOMAIN=x.example\nES_ENABLED=false\nES_HOST=es\n");
    assert_null(cJSON_GetObjectItem(m, "search"));
    assert_null(pf_mastodon_search_todo(m, buf, sizeof buf));
    cJSON_Delete(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_search)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
