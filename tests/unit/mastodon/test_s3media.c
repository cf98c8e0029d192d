/* The media bucket of a server with S3_ENABLED=true, as Mastodon's paperclip.rb names it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "mastodon/s3media.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

static void parse(const char *text, pf_mastodon_env *env)
{
    pf_err err = {0};
    if (pf_mastodon_env_parse(text, strlen(text), env, &err))
        fail_msg("parse: %s", err.msg);
}

static void expect_url(const char *text, const char *want, const char *want_region)
{
    pf_mastodon_env env;
    parse(text, &env);
    char url[512], region[64];
    pf_err err = {0};
    if (pf_s3media_url(&env, url, sizeof url, region, sizeof region, &err))
        fail_msg("url: %s", err.msg);
    assert_string_equal(url, want);
    assert_string_equal(region, want_region);
    pf_mastodon_env_free(&env);
}

#define BASE "LOCAL_DOMAIN=x.example\nS3_ENABLED=true\n"

static void test_urls(void **state)
{
    (void)state;
    expect_url(BASE "S3_BUCKET=files\nS3_ENDPOINT=https://s3.example.com/\nS3_REGION=eu-1\n",
               "s3:https://s3.example.com/files", "eu-1");
    expect_url(BASE "S3_BUCKET=files\nS3_ENDPOINT=http://127.0.0.1:9000\n",
               "s3:http://127.0.0.1:9000/files", "us-east-1");
    expect_url(BASE "S3_BUCKET=files\nS3_HOSTNAME=objects.example\nS3_PROTOCOL=http\n",
               "s3:http://objects.example/files", "us-east-1");
    expect_url(BASE "S3_BUCKET=files\nS3_REGION=eu-west-2\n",
               "s3:https://s3-eu-west-2.amazonaws.com/files", "eu-west-2");

    static const char *const bad[][2] = {
        {BASE "S3_ENDPOINT=https://s3.example.com\n", "S3_BUCKET is not set"},
        {BASE "S3_BUCKET=b\nS3_ENDPOINT=s3.example.com\n", "S3_ENDPOINT is not an http(s)"},
        {BASE "S3_BUCKET=b\nS3_PROTOCOL=ftp\n", "S3_PROTOCOL"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pf_mastodon_env env;
        parse(bad[i][0], &env);
        char url[512], region[64];
        pf_err err = {0};
        assert_int_equal(pf_s3media_url(&env, url, sizeof url, region, sizeof region, &err), -1);
        assert_int_equal(err.code, PF_EUSAGE);
        if (!strstr(err.msg, bad[i][1]))
            fail_msg("\"%s\" lacks \"%s\"", err.msg, bad[i][1]);
        pf_mastodon_env_free(&env);
    }
}

static void test_open_swaps_credentials(void **state)
{
    (void)state;
    pf_log_set_handler(quiet);
    setenv("AWS_ACCESS_KEY_ID", "repository-key-id", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "repository-secret", 1);
    setenv("AWS_SESSION_TOKEN", "repository-token", 1);
    pf_mastodon_env env;
    parse(BASE "S3_BUCKET=files\nS3_ENDPOINT=http://127.0.0.1:9\n", &env);
    pf_err err = {0};
    /* No credentials in .env.production: refused, ours are not borrowed. */
    assert_null(pf_s3media_open(&env, &err));
    assert_int_equal(err.code, PF_EUSAGE);
    assert_non_null(strstr(err.msg, "AWS_ACCESS_KEY_ID"));
    assert_null(strstr(err.msg, "repository-secret"));
    pf_mastodon_env_free(&env);

    parse(BASE "S3_BUCKET=files\nS3_ENDPOINT=http://127.0.0.1:9\nAWS_ACCESS_KEY_ID=media-id\n"
               "AWS_SECRET_ACCESS_KEY=media-secret\n",
          &env);
    pf_store *s = pf_s3media_open(&env, &err);
    if (!s)
        fail_msg("open: %s", err.msg);
    assert_non_null(strstr(s->location, "127.0.0.1:9"));
    assert_non_null(strstr(s->location, "files"));
    pf_store_free(s);
    /* Our own environment is as it was. */
    assert_string_equal(getenv("AWS_ACCESS_KEY_ID"), "repository-key-id");
    assert_string_equal(getenv("AWS_SECRET_ACCESS_KEY"), "repository-secret");
    assert_string_equal(getenv("AWS_SESSION_TOKEN"), "repository-token");
    pf_mastodon_env_free(&env);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_open_swaps_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
