/* .env.production parsing: dotenv syntax and Mastodon's meaning of the keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "mastodon/env.h"

static int warnings;
static char last_warning[2048];

static void count_warnings(int level, const char *msg)
{
    if (level == PF_LOG_WARN) {
        warnings++;
        snprintf(last_warning, sizeof last_warning, "%s", msg);
    }
}

#define BASE "LOCAL_DOMAIN=example.social\n"

/* Parses text that must succeed. */
static void parse_ok(const char *text, pf_mastodon_env *e)
{
    pf_err err = {0};
    int rc = pf_mastodon_env_parse(text, strlen(text), e, &err);
    if (rc != 0)
        fail_msg("parse failed: %s", err.msg);
}

static void expect_var(const pf_mastodon_env *e, const char *key, const char *want)
{
    const char *got = pf_mastodon_env_get(e, key);
    if (!want) {
        if (got)
            fail_msg("%s: expected unset, got [%s]", key, got);
        return;
    }
    if (!got)
        fail_msg("%s: expected [%s], unset", key, want);
    if (strcmp(got, want) != 0)
        fail_msg("%s: expected [%s], got [%s]", key, want, got);
}

static void test_defaults(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok(BASE, &e);
    assert_string_equal(e.db_host, "localhost");
    assert_int_equal(e.db_port, 5432);
    assert_string_equal(e.db_name, "mastodon_production");
    assert_string_equal(e.db_user, "mastodon");
    assert_null(e.db_pass);
    assert_string_equal(e.db_sslmode, "prefer");
    assert_string_equal(e.redis.host, "localhost");
    assert_int_equal(e.redis.port, 6379);
    assert_null(e.redis.password);
    assert_null(e.redis.user);
    assert_null(e.redis.socket);
    assert_int_equal(e.redis.db, 0);
    assert_false(e.sidekiq_redis_separate);
    assert_false(e.cache_redis_separate);
    assert_null(e.paperclip_root);
    assert_false(e.s3_enabled);
    assert_false(e.es_enabled);
    assert_string_equal(e.local_domain, "example.social");
    pf_mastodon_env_free(&e);
}

static void test_syntax(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok("# a comment\n"
             "\n"
             "   \n"
             "LOCAL_DOMAIN=example.social\n"
             "PLAIN=value\n"
             "SPACED =   spaced value   \n"
             "export EXPORTED=yes\n"
             "export   EXPORTED2=also\n"
             "COMMENTED=abc # trailing comment\n"
             "HASHED=abc#def\n"
             "EMPTY=\n"
             "EMPTY_COMMENT= # nothing\n"
             "SQ='single # not a comment $PLAIN \\n'\n"
             "DQ=\"double # not a comment\"\n"
             "DQ_ESC=\"line1\\nline2\\ttab\\\"quote\\\\\"\n"
             "UNQ_ESC=a\\bc\n"
             "YAML: colon style\n"
             "dotted.key=ok\n"
             "   INDENTED=yes\n"
             "SQ_TRAIL='quoted'   # comment\n"
             "this line is junk\n"
             "=novalue\n"
             "NOSEP\n"
             "DUP=first\n"
             "DUP=second\n"
             "LAST=no newline at end",
             &e);
    expect_var(&e, "PLAIN", "value");
    expect_var(&e, "SPACED", "spaced value");
    expect_var(&e, "EXPORTED", "yes");
    expect_var(&e, "EXPORTED2", "also");
    expect_var(&e, "COMMENTED", "abc");
    expect_var(&e, "HASHED", "abc");
    expect_var(&e, "EMPTY", "");
    expect_var(&e, "EMPTY_COMMENT", "");
    expect_var(&e, "SQ", "single # not a comment $PLAIN \\n");
    expect_var(&e, "DQ", "double # not a comment");
    expect_var(&e, "DQ_ESC", "line1\nline2ttab\"quote\\");
    expect_var(&e, "UNQ_ESC", "abc");
    expect_var(&e, "YAML", "colon style");
    expect_var(&e, "dotted.key", "ok");
    expect_var(&e, "INDENTED", "yes");
    expect_var(&e, "SQ_TRAIL", "quoted");
    expect_var(&e, "NOSEP", NULL);
    expect_var(&e, "this", NULL);
    expect_var(&e, "DUP", "second");
    expect_var(&e, "LAST", "no newline at end");
    pf_mastodon_env_free(&e);
}

static void test_multiline_and_crlf(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok("LOCAL_DOMAIN=example.social\r\n"
             "KEY=\"-----BEGIN KEY-----\r\nabc\r\n-----END KEY-----\"\r\n"
             "SQ='one\ntwo'\r\n"
             "AFTER=1\r"
             "CR_ONLY=2\r\n",
             &e);
    expect_var(&e, "KEY", "-----BEGIN KEY-----\nabc\n-----END KEY-----");
    expect_var(&e, "SQ", "one\ntwo");
    expect_var(&e, "AFTER", "1");
    expect_var(&e, "CR_ONLY", "2");
    expect_var(&e, "LOCAL_DOMAIN", "example.social");
    pf_mastodon_env_free(&e);
}

static void test_unterminated_quote(void **state)
{
    (void)state;
    pf_mastodon_env e;
    warnings = 0;
    parse_ok(BASE "BROKEN=\"abc\nNEXT=1\n", &e);
    /* dotenv takes an unclosed quote literally, up to the end of the line. */
    expect_var(&e, "BROKEN", "\"abc");
    expect_var(&e, "NEXT", "1");
    assert_int_equal(warnings, 1);
    assert_non_null(strstr(last_warning, "BROKEN"));
    assert_null(strstr(last_warning, "abc"));
    pf_mastodon_env_free(&e);

    /* Text after the closing quote: the whole thing is an unquoted value. */
    parse_ok(BASE "ODD=\"abc\" def\n", &e);
    expect_var(&e, "ODD", "\"abc\" def");
    pf_mastodon_env_free(&e);
}

static void test_substitution(void **state)
{
    (void)state;
    pf_mastodon_env e;
    warnings = 0;
    parse_ok(BASE "USER_=alice\n"
                  "A=$USER_\n"
                  "B=\"${USER_}-x\"\n"
                  "C='$USER_'\n"
                  "D=\\$USER_\n"
                  "E=$UNDEFINED.end\n"
                  "F=cost $ 5\n"
                  "G=${unclosed\n"
                  "H=$(whoami)\n",
             &e);
    expect_var(&e, "A", "alice");
    expect_var(&e, "B", "alice-x");
    expect_var(&e, "C", "$USER_");
    expect_var(&e, "D", "$USER_");
    expect_var(&e, "E", ".end");
    expect_var(&e, "F", "cost $ 5");
    expect_var(&e, "G", "${unclosed");
    expect_var(&e, "H", "$(whoami)");
    assert_int_equal(warnings, 1);
    pf_mastodon_env_free(&e);
}

static void test_db_settings(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok(BASE "DB_HOST=/var/run/postgresql\nDB_PORT=5433\nDB_NAME=toots\n"
                  "DB_USER=masto\nDB_PASS=s3cret\nDB_SSLMODE=require\n",
             &e);
    assert_string_equal(e.db_host, "/var/run/postgresql");
    assert_int_equal(e.db_port, 5433);
    assert_string_equal(e.db_name, "toots");
    assert_string_equal(e.db_user, "masto");
    assert_string_equal(e.db_pass, "s3cret");
    assert_string_equal(e.db_sslmode, "require");
    assert_false(e.database_url);
    pf_mastodon_env_free(&e);

    /* Empty DB_HOST: libpq's default socket. */
    parse_ok(BASE "DB_HOST=\nDB_PASS=\n", &e);
    assert_null(e.db_host);
    assert_null(e.db_pass);
    pf_mastodon_env_free(&e);
}

static void test_database_url(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok(
        BASE
        "DB_HOST=ignored\nDB_PASS=old\n"
        "DATABASE_URL=postgres://us%40er:p%3Ass%2Fw@db.example:6543/my%20db?sslmode=verify-full\n",
        &e);
    assert_true(e.database_url);
    assert_string_equal(e.db_user, "us@er");
    assert_string_equal(e.db_pass, "p:ss/w");
    assert_string_equal(e.db_host, "db.example");
    assert_int_equal(e.db_port, 6543);
    assert_string_equal(e.db_name, "my db");
    assert_string_equal(e.db_sslmode, "verify-full");
    pf_mastodon_env_free(&e);

    /* Socket forms. */
    parse_ok(BASE "DATABASE_URL=postgresql:///mastodon?host=/var/run/postgresql\n", &e);
    assert_string_equal(e.db_host, "/var/run/postgresql");
    assert_string_equal(e.db_name, "mastodon");
    assert_string_equal(e.db_user, "mastodon");
    assert_int_equal(e.db_port, 5432);
    pf_mastodon_env_free(&e);

    parse_ok(BASE "DATABASE_URL=postgresql://mastodon@%2Frun%2Fpostgresql/mastodon_production\n",
             &e);
    assert_string_equal(e.db_host, "/run/postgresql");
    assert_null(e.db_pass);
    pf_mastodon_env_free(&e);

    /* Fields the URL leaves out keep DB_* values (Rails merges the URL over them). */
    parse_ok(BASE "DB_USER=fromenv\nDB_PASS=frompass\nDB_PORT=7000\n"
                  "DATABASE_URL=postgres://[::1]/x?port=7001&user=quser\n",
             &e);
    assert_string_equal(e.db_host, "::1");
    assert_int_equal(e.db_port, 7001);
    assert_string_equal(e.db_user, "quser");
    assert_string_equal(e.db_pass, "frompass");
    assert_string_equal(e.db_name, "x");
    pf_mastodon_env_free(&e);
}

/* The error must name the key and must not contain the value (it may be a secret). */
static void expect_error(const char *text, const char *key, const char *secret)
{
    pf_mastodon_env e;
    pf_err err = {0};
    int rc = pf_mastodon_env_parse(text, strlen(text), &e, &err);
    pf_mastodon_env_free(&e);
    if (rc == 0)
        fail_msg("expected an error about %s", key);
    assert_int_equal(err.code, PF_EUSAGE);
    if (!strstr(err.msg, key))
        fail_msg("error [%s] does not name %s", err.msg, key);
    if (secret && strstr(err.msg, secret))
        fail_msg("error [%s] shows the value", err.msg);
    assert_null(strchr(err.msg, '\n'));
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("DB_HOST=x\n", "LOCAL_DOMAIN", NULL);
    expect_error("LOCAL_DOMAIN=\n", "LOCAL_DOMAIN", NULL);
    expect_error(BASE "DB_PORT=54x32\n", "DB_PORT", "54x32");
    expect_error(BASE "DB_PORT=70000\n", "DB_PORT", "70000");
    expect_error(BASE "DATABASE_URL=mysql://u:hunter2@h/db\n", "DATABASE_URL", "hunter2");
    expect_error(BASE "DATABASE_URL=postgres://u:hun%zzter2@h/db\n", "DATABASE_URL", "hun");
    expect_error(BASE "DATABASE_URL=postgres://u:hunter2@h:99999/db\n", "DATABASE_URL", "hunter2");
    expect_error(BASE "DATABASE_URL=not a url\n", "DATABASE_URL", NULL);
    expect_error(BASE "REDIS_URL=http://:hunter2@h\n", "REDIS_URL", "hunter2");
    expect_error(BASE "REDIS_URL=redis://:hunter2@h:0\n", "REDIS_URL", "hunter2");
    expect_error(BASE "REDIS_URL=redis://:hunter2@h/abc\n", "REDIS_URL", "hunter2");
    expect_error(BASE "REDIS_PORT=abc\n", "REDIS_PORT", NULL);
    expect_error(BASE "SIDEKIQ_REDIS_URL=ftp://x\n", "SIDEKIQ_REDIS_URL", NULL);
}

static void test_redis(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok(BASE "REDIS_HOST=10.0.0.5\nREDIS_PORT=6380\nREDIS_PASSWORD=pw\nREDIS_USER=masto\n"
                  "REDIS_DB=2\n",
             &e);
    assert_string_equal(e.redis.host, "10.0.0.5");
    assert_int_equal(e.redis.port, 6380);
    assert_string_equal(e.redis.password, "pw");
    assert_string_equal(e.redis.user, "masto");
    assert_int_equal(e.redis.db, 2);
    pf_mastodon_env_free(&e);

    parse_ok(BASE "REDIS_HOST=ignored\nREDIS_URL=redis://usr:p%40ss@redis.internal:7000/3\n", &e);
    assert_string_equal(e.redis.host, "redis.internal");
    assert_int_equal(e.redis.port, 7000);
    assert_string_equal(e.redis.user, "usr");
    assert_string_equal(e.redis.password, "p@ss");
    assert_int_equal(e.redis.db, 3);
    assert_false(e.redis.tls);
    pf_mastodon_env_free(&e);

    parse_ok(BASE "REDIS_URL=redis://:onlypass@localhost\n", &e);
    assert_null(e.redis.user);
    assert_string_equal(e.redis.password, "onlypass");
    assert_int_equal(e.redis.port, 6379);
    pf_mastodon_env_free(&e);

    parse_ok(BASE "REDIS_URL=rediss://h:6390\n", &e);
    assert_true(e.redis.tls);
    assert_string_equal(e.redis.host, "h");
    pf_mastodon_env_free(&e);

    parse_ok(BASE "REDIS_URL=unix:///run/redis/redis.sock?db=4\n", &e);
    assert_null(e.redis.host);
    assert_string_equal(e.redis.socket, "/run/redis/redis.sock");
    assert_int_equal(e.redis.db, 4);
    pf_mastodon_env_free(&e);

    /* Sidekiq in its own Redis: must be backed up too. The cache: noticed, never backed up. */
    parse_ok(BASE "REDIS_HOST=main\nSIDEKIQ_REDIS_URL=redis://jobs:6379/0\n"
                  "CACHE_REDIS_URL=redis://cache:6379/0\n",
             &e);
    assert_true(e.sidekiq_redis_separate);
    assert_string_equal(e.sidekiq_redis.host, "jobs");
    assert_true(e.cache_redis_separate);
    pf_mastodon_env_free(&e);

    parse_ok(BASE "SIDEKIQ_REDIS_HOST=localhost\nCACHE_REDIS_HOST=localhost\n", &e);
    assert_false(e.sidekiq_redis_separate);
    assert_false(e.cache_redis_separate);
    pf_mastodon_env_free(&e);
}

static void test_flags(void **state)
{
    (void)state;
    pf_mastodon_env e;
    parse_ok(BASE "S3_ENABLED=true\nES_ENABLED=true\nPAPERCLIP_ROOT_PATH=/srv/media\n", &e);
    assert_true(e.s3_enabled);
    assert_true(e.es_enabled);
    assert_string_equal(e.paperclip_root, "/srv/media");
    pf_mastodon_env_free(&e);
    parse_ok(BASE "S3_ENABLED=false\nES_ENABLED=TRUE\n", &e);
    assert_false(e.s3_enabled);
    assert_false(e.es_enabled); /* Mastodon compares with 'true' exactly */
    pf_mastodon_env_free(&e);
}

static void write_file(const char *path, const char *text, mode_t mode)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    chmod(path, mode);
}

static void test_load(void **state)
{
    (void)state;
    char dir[] = "/tmp/pf-test-env-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/.env.production", dir);

    pf_mastodon_env e;
    pf_err err = {0};
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_non_null(strstr(err.msg, ".env.production"));
    pf_mastodon_env_free(&e);

    write_file(path, BASE "SECRET_KEY_BASE=abc\n", 0600);
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), 0);
    char want[300];
    snprintf(want, sizeof want, "%s/public/system", dir);
    assert_string_equal(e.paperclip_root, want);
    pf_mastodon_env_free(&e);

    write_file(path, BASE "PAPERCLIP_ROOT_PATH=:rails_root/media/\n", 0600);
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), 0);
    snprintf(want, sizeof want, "%s/media", dir);
    assert_string_equal(e.paperclip_root, want);
    pf_mastodon_env_free(&e);

    write_file(path, BASE "PAPERCLIP_ROOT_PATH=uploads\n", 0600);
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), 0);
    snprintf(want, sizeof want, "%s/uploads", dir);
    assert_string_equal(e.paperclip_root, want);
    pf_mastodon_env_free(&e);

    /* Errors name the file and the key. */
    write_file(path, BASE "DB_PORT=x\n", 0600);
    assert_int_equal(pf_mastodon_env_load(dir, &e, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "DB_PORT"));
    pf_mastodon_env_free(&e);

    unlink(path);
    rmdir(dir);
}

static void test_binary_garbage(void **state)
{
    (void)state;
    /* Bytes that are not text must not crash or hang; NULs are just bytes. */
    const char junk[] = "LOCAL_DOMAIN=x\0\x01\xff\"\\\n=\n'\n\"\\\"\n$\n${\n\\";
    pf_mastodon_env e;
    pf_err err = {0};
    (void)pf_mastodon_env_parse(junk, sizeof junk - 1, &e, &err);
    pf_mastodon_env_free(&e);
    pf_mastodon_env_free(NULL);
}

/* Finding 9: a chain of doubling $VAR lines (344 bytes here) used to ask for 2 GiB and
 * abort; now each value is capped at 64 KiB and the file's values at 4 MiB. */
static void test_expansion_bounded(void **state)
{
    (void)state;
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, BASE "A0=aaaaaaaaaaaaaaaa\n");
    for (int i = 1; i < 27; i++)
        pf_buf_printf(&b, "A%d=$A%d$A%d\n", i, i - 1, i - 1);
    pf_mastodon_env e;
    pf_err err = {0};
    assert_int_equal(pf_mastodon_env_parse((const char *)b.data, b.len, &e, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_string_equal(err.msg, ".env line 15: the value of A13 is longer than 64 KiB (after "
                                 "$VAR expansion); refusing the file");
    pf_mastodon_env_free(&e);

    /* Exactly 64 KiB is fine (A12 = 16 << 12 bytes). */
    pf_buf_reset(&b);
    pf_buf_append_str(&b, BASE "A0=aaaaaaaaaaaaaaaa\n");
    for (int i = 1; i <= 12; i++)
        pf_buf_printf(&b, "A%d=\"$A%d${A%d}\"\n", i, i - 1, i - 1);
    parse_ok((const char *)b.data, &e);
    assert_int_equal(strlen(pf_mastodon_env_get(&e, "A12")), 64 * 1024);
    pf_mastodon_env_free(&e);

    /* Many values of 64 KiB each: the total stops them. */
    pf_buf_append_str(&b, "B1=$A12\n");
    for (int i = 2; i < 100; i++)
        pf_buf_printf(&b, "B%d=$A12\n", i);
    assert_int_equal(pf_mastodon_env_parse((const char *)b.data, b.len, &e, &err), -1);
    assert_non_null(strstr(err.msg, "add up to more than 4 MiB (after $VAR expansion)"));
    assert_null(strstr(err.msg, "aaaa"));
    pf_mastodon_env_free(&e);

    /* The text itself is bounded too (a snapshot's .env reaches the parser directly). */
    pf_buf_reset(&b);
    pf_buf_append_str(&b, BASE);
    while (b.len <= 1024 * 1024)
        pf_buf_append_str(&b, "# padding padding padding padding padding padding padding\n");
    assert_int_equal(pf_mastodon_env_parse((const char *)b.data, b.len, &e, &err), -1);
    assert_string_equal(err.msg, ".env is larger than 1024 KiB; refusing it");
    pf_mastodon_env_free(&e);
    pf_buf_free(&b);
}

int main(void)
{
    pf_log_set_handler(count_warnings);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_syntax),
        cmocka_unit_test(test_multiline_and_crlf),
        cmocka_unit_test(test_unterminated_quote),
        cmocka_unit_test(test_substitution),
        cmocka_unit_test(test_db_settings),
        cmocka_unit_test(test_database_url),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_redis),
        cmocka_unit_test(test_flags),
        cmocka_unit_test(test_load),
        cmocka_unit_test(test_binary_garbage),
        cmocka_unit_test(test_expansion_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
