/* pgbouncer.ini: where pgbouncer sends a database, i.e. where PostgreSQL itself is. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "component/pgbouncer.h"

static void parse_ok(const char *text, const char *db, pf_pgbouncer_target *t)
{
    pf_err err = {0};
    if (pf_pgbouncer_ini_parse(text, db, t, &err))
        fail_msg("parse failed: %s", err.msg);
}

/* As Debian ships it, with the lines a Mastodon admin adds. */
static const char *const debianish =
    ";; database name = connect string\n"
    "[databases]\n"
    "; foodb over Unix socket\n"
    "mastodon_production = host=10.0.0.5 port=5433 dbname=mastodon_real auth_user=pgb\n"
    "other = host=/var/run/postgresql\n"
    "quoted = host='db host' port=6000 password='it''s' pool_mode=statement\n"
    "multi = host=10.0.0.1,10.0.0.2 port=5434,5435\n"
    "%include /etc/pgbouncer/extra.ini\n"
    "[pgbouncer]\n"
    "logfile = /var/log/postgresql/pgbouncer.log\n"
    "listen_addr = 127.0.0.1\n"
    "listen_port = 6432\n"
    "unix_socket_dir = /var/run/postgresql\n"
    "pool_mode = transaction   ; Mastodon's guide\n"
    "auth_type = md5\n";

static void test_exact_entry(void **state)
{
    (void)state;
    pf_pgbouncer_target t;
    parse_ok(debianish, "mastodon_production", &t);
    assert_string_equal(t.host, "10.0.0.5");
    assert_int_equal(t.port, 5433);
    assert_string_equal(t.dbname, "mastodon_real");
    assert_string_equal(t.pool_mode, "transaction");

    parse_ok(debianish, "other", &t);
    assert_string_equal(t.host, "/var/run/postgresql");
    assert_int_equal(t.port, 5432);
    assert_string_equal(t.dbname, "other");

    parse_ok(debianish, "quoted", &t);
    assert_string_equal(t.host, "db host");
    assert_int_equal(t.port, 6000);
    assert_string_equal(t.pool_mode, "statement");

    parse_ok(debianish, "multi", &t);
    assert_string_equal(t.host, "10.0.0.1");
    assert_int_equal(t.port, 5434);
}

static void test_star_and_defaults(void **state)
{
    (void)state;
    pf_pgbouncer_target t;
    pf_err err = {0};
    assert_int_equal(pf_pgbouncer_ini_parse(debianish, "nosuchdb", &t, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_non_null(strstr(err.msg, "nosuchdb"));

    const char *star = "[databases]\n* = port=5999\n[pgbouncer]\nunix_socket_dir = /run/pg\n";
    parse_ok(star, "mastodon_production", &t);
    /* No host: pgbouncer uses its own unix_socket_dir. */
    assert_string_equal(t.host, "/run/pg");
    assert_int_equal(t.port, 5999);
    assert_string_equal(t.dbname, "mastodon_production");
    assert_string_equal(t.pool_mode, "session");

    parse_ok("[databases]\n* =\n", "x", &t);
    assert_string_equal(t.host, "/tmp");
    assert_int_equal(t.port, 5432);

    /* An exact entry wins over "*", wherever it is. */
    parse_ok("[databases]\n* = host=a\nx = host=b\n", "x", &t);
    assert_string_equal(t.host, "b");
    /* The [pgbouncer] section's keys are not database names. */
    assert_int_equal(
        pf_pgbouncer_ini_parse("[pgbouncer]\nlisten_port = 6432\n", "listen_port", &t, &err), -1);
}

static void test_bad_entries(void **state)
{
    (void)state;
    pf_pgbouncer_target t;
    pf_err err = {0};
    static const char *const bad[] = {
        "[databases]\nx = host=a port=99999\n",
        "[databases]\nx = host=a port=abc\n",
        "[databases]\nx = host='unterminated\n",
        "[databases]\nx = host\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        if (pf_pgbouncer_ini_parse(bad[i], "x", &t, &err) == 0)
            fail_msg("accepted bad entry %zu", i);
        assert_int_equal(err.code, PF_EUSAGE);
        assert_non_null(strstr(err.msg, "the entry for x"));
    }
    /* No password in messages. */
    assert_int_equal(
        pf_pgbouncer_ini_parse("[databases]\nx = password=s3cret port=0\n", "x", &t, &err), -1);
    assert_null(strstr(err.msg, "s3cret"));
}

static void test_load_file(void **state)
{
    (void)state;
    char path[256];
    snprintf(path, sizeof path, "%s/pf-pgb-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, debianish, strlen(debianish)), (ssize_t)strlen(debianish));
    close(fd);
    pf_pgbouncer_target t;
    pf_err err = {0};
    assert_int_equal(pf_pgbouncer_ini_load(path, "mastodon_production", &t, &err), 0);
    assert_int_equal(t.port, 5433);
    assert_int_equal(pf_pgbouncer_ini_load(path, "nosuch", &t, &err), -1);
    assert_non_null(strstr(err.msg, path));
    unlink(path);
    assert_int_equal(pf_pgbouncer_ini_load(path, "x", &t, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_non_null(strstr(err.msg, path));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_entry),
        cmocka_unit_test(test_star_and_defaults),
        cmocka_unit_test(test_bad_entries),
        cmocka_unit_test(test_load_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
