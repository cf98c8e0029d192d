/* The component registry and --only: every component answers to its name, postgres also
 * to db and database; a list is a mask of registry bits; anything else is a usage error
 * that names the valid words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "component/component.h"
#include "component/layout.h"

static unsigned bit(const pf_component *c)
{
    unsigned b = pf_component_bit(c);
    assert_int_not_equal(b, 0);
    return b;
}

static void test_registry_order_and_names(void **state)
{
    (void)state;
    /* Backup order: secrets, database (logical, then physical), Redis, media, host
     * (layout.h says why). */
    assert_int_equal(pf_component_count(), 6);
    assert_ptr_equal(pf_components[0], &pf_secrets_component);
    assert_ptr_equal(pf_components[1], &pf_postgres_component);
    assert_ptr_equal(pf_components[2], &pf_pgphys_component);
    assert_ptr_equal(pf_components[3], &pf_redis_component);
    assert_ptr_equal(pf_components[4], &pf_media_component);
    assert_ptr_equal(pf_components[5], &pf_host_component);
    assert_null(pf_components[6]);
    assert_string_equal(pf_secrets_component.name, PF_LAYOUT_SECRETS);
    assert_string_equal(pf_postgres_component.name, "postgres");
    assert_string_equal(pf_redis_component.name, "redis");
    assert_string_equal(pf_media_component.name, "media");
    assert_string_equal(pf_host_component.name, PF_LAYOUT_HOST);
    assert_string_equal(pf_pgphys_component.name, "postgres-physical");
    assert_int_equal(pf_component_all(), 63);
    for (size_t i = 0; pf_components[i]; i++) {
        const pf_component *c = pf_components[i];
        assert_int_equal(pf_component_bit(c), 1u << i);
        /* what the orchestrator calls unconditionally */
        assert_non_null(c->backup);
        assert_non_null(c->describe);
        assert_non_null(c->restore_check);
        assert_non_null(c->restore);
    }
    static const pf_component stranger = {.name = "stranger"};
    assert_int_equal(pf_component_bit(&stranger), 0);
}

static void test_find(void **state)
{
    (void)state;
    assert_ptr_equal(pf_component_find("secrets"), &pf_secrets_component);
    assert_ptr_equal(pf_component_find("postgres"), &pf_postgres_component);
    assert_ptr_equal(pf_component_find("db"), &pf_postgres_component);
    assert_ptr_equal(pf_component_find("database"), &pf_postgres_component);
    assert_ptr_equal(pf_component_find("redis"), &pf_redis_component);
    assert_ptr_equal(pf_component_find("media"), &pf_media_component);
    assert_ptr_equal(pf_component_find("host"), &pf_host_component);
    assert_ptr_equal(pf_component_find("physical"), &pf_pgphys_component);
    assert_ptr_equal(pf_component_find("postgres-physical"), &pf_pgphys_component);
    assert_null(pf_component_find("Media"));
    assert_null(pf_component_find(""));
    assert_null(pf_component_find("disk"));
}

static void test_only_valid(void **state)
{
    (void)state;
    pf_err err = {0};
    unsigned m = 99;
    assert_int_equal(pf_component_parse_only("db", &m, &err), 0);
    assert_int_equal(m, bit(&pf_postgres_component));
    assert_int_equal(pf_component_parse_only("secrets,media", &m, &err), 0);
    assert_int_equal(m, bit(&pf_secrets_component) | bit(&pf_media_component));
    assert_int_equal(
        pf_component_parse_only("media,redis,database,physical,secrets,host", &m, &err), 0);
    assert_int_equal(m, pf_component_all());
    assert_int_equal(pf_component_parse_only("host", &m, &err), 0);
    assert_int_equal(m, bit(&pf_host_component));
    /* empty words between commas are skipped, as strtok does */
    assert_int_equal(pf_component_parse_only(",redis,,", &m, &err), 0);
    assert_int_equal(m, bit(&pf_redis_component));
}

static void test_only_duplicates(void **state)
{
    (void)state;
    pf_err err = {0};
    unsigned m = 0;
    assert_int_equal(pf_component_parse_only("db,postgres,database,db", &m, &err), 0);
    assert_int_equal(m, bit(&pf_postgres_component));
    assert_int_equal(pf_component_parse_only("media,media", &m, &err), 0);
    assert_int_equal(m, bit(&pf_media_component));
}

static void test_only_unknown(void **state)
{
    (void)state;
    pf_err err = {0};
    unsigned m = 0;
    assert_int_equal(pf_component_parse_only("redis,disk", &m, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_string_equal(
        err.msg,
        "--only: unknown component \"disk\" (use secrets, db, physical, redis, media, host)");
    assert_null(strchr(err.msg, '\n'));
    memset(&err, 0, sizeof err);
    assert_int_equal(pf_component_parse_only("DB", &m, &err), -1);
    assert_non_null(strstr(err.msg, "\"DB\""));
}

static void test_only_empty(void **state)
{
    (void)state;
    pf_err err = {0};
    unsigned m = 5;
    assert_int_equal(pf_component_parse_only("", &m, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_string_equal(err.msg,
                        "--only needs at least one of secrets, db, physical, redis, media, host");
    memset(&err, 0, sizeof err);
    assert_int_equal(pf_component_parse_only(",,", &m, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
}

static void test_error_named_once(void **state)
{
    (void)state;
    pf_err err = {0};
    pf_component_run run = {0};
    pf_err_set(&err, PF_ECONN, "cannot connect");
    pf_component_error(&err, "backup", &pf_redis_component, &run);
    assert_string_equal(err.msg, "backup: redis: cannot connect");
    memset(&err, 0, sizeof err);
    run.part = "sidekiq";
    pf_err_set(&err, PF_ECONN, "cannot connect");
    pf_component_error(&err, "restore", &pf_redis_component, &run);
    assert_string_equal(err.msg, "restore: redis (sidekiq): cannot connect");
    assert_int_equal(err.code, PF_ECONN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_order_and_names),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_only_valid),
        cmocka_unit_test(test_only_duplicates),
        cmocka_unit_test(test_only_unknown),
        cmocka_unit_test(test_only_empty),
        cmocka_unit_test(test_error_named_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
