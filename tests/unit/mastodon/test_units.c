/* Mastodon's systemd units: Environment= and EnvironmentFile= read as systemd reads them. */
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

#include "common/log.h"
#include "mastodon/units.h"

static char logged[8192];

static void keep_log(int level, const char *msg)
{
    (void)level;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", msg);
}

static void expect(const pf_unit_env *e, const char *key, const char *want)
{
    const char *v = pf_unit_env_get(e, key, NULL);
    if (!want) {
        if (v)
            fail_msg("%s is set, expected unset", key);
        return;
    }
    if (!v)
        fail_msg("%s is unset, expected a value", key);
    if (strcmp(v, want))
        fail_msg("%s: got \"%s\", want \"%s\"", key, v, want);
}

static void test_environment_quoting(void **state)
{
    (void)state;
    pf_unit_env e = {0};
    /* The examples of systemd.exec(5), and escapes. */
    pf_units_apply_environment(&e, "\"VAR1=word1 word2\" VAR2=word3 \"VAR3=$word 5 6\"", "u");
    expect(&e, "VAR1", "word1 word2");
    expect(&e, "VAR2", "word3");
    expect(&e, "VAR3", "$word 5 6");
    pf_units_apply_environment(&e, "A=x\\x41y B='it is' C=a\\tb D=100%% E=q\\\"q F=", "u");
    expect(&e, "A", "xAy");
    expect(&e, "B", "it is");
    expect(&e, "C", "a\tb");
    expect(&e, "D", "100%");
    expect(&e, "E", "q\"q");
    expect(&e, "F", "");
    /* Later wins; words that are not assignments are skipped with a warning. */
    logged[0] = 0;
    pf_units_apply_environment(&e, "VAR2=again 1BAD=x noequals", "unit-file");
    expect(&e, "VAR2", "again");
    expect(&e, "1BAD", NULL);
    assert_non_null(strstr(logged, "unit-file"));
    assert_null(strstr(logged, "noequals"));
    /* An empty assignment empties what Environment= set. */
    pf_units_apply_environment(&e, "", "u");
    assert_int_equal(e.n, 0);
    pf_unit_env_free(&e);
}

static void test_envfile_syntax(void **state)
{
    (void)state;
    pf_unit_env e = {0};
    const char *t = "# comment\n"
                    "; also a comment\n"
                    "  PLAIN = value with spaces  \n"
                    "SQ='single $quoted #not comment'\n"
                    "DQ=\"double \\\"esc\\\" \\\\ \\$HOME\"\n"
                    "ML=\"line1\nline2\"\n"
                    "BS=a\\ b\n"
                    "CRLF=x\r\n"
                    "EMPTY=\n"
                    "not a line\n"
                    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=pk123\n";
    pf_units_apply_envfile(&e, t, strlen(t), "/etc/mastodon.env");
    expect(&e, "PLAIN", "value with spaces");
    expect(&e, "SQ", "single $quoted #not comment");
    expect(&e, "DQ", "double \"esc\" \\ $HOME");
    expect(&e, "ML", "line1\nline2");
    expect(&e, "BS", "a b");
    expect(&e, "CRLF", "x");
    expect(&e, "EMPTY", "");
    const char *src = NULL;
    expect(&e, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", "pk123");
    pf_unit_env_get(&e, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", &src);
    assert_string_equal(src, "/etc/mastodon.env");
    pf_unit_env_free(&e);
}

static char dir[256];

static void write_file(const char *rel, const char *text)
{
    char p[512];
    snprintf(p, sizeof p, "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = 0;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", p);
    assert_int_equal(system(cmd), 0);
    *slash = '/';
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "%s/pf-units-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    if (!mkdtemp(dir))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) ? -1 : 0;
}

static void test_load_unit_dropins_files(void **state)
{
    (void)state;
    char envf[512], path[600];
    snprintf(envf, sizeof envf, "%s/secrets/ar.env", dir);
    write_file("secrets/ar.env", "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=from-file\nSHARED=file\n");
    char unit[2048];
    snprintf(unit, sizeof unit,
             "[Unit]\nDescription=mastodon-web\nEnvironment=NOT_SERVICE=1\n"
             "[Service]\nType=simple\n"
             "Environment=\"RAILS_ENV=production\" PORT=3000 \\\n"
             "  SHARED=environment\n"
             "EnvironmentFile=-/nonexistent/optional.env\n"
             "EnvironmentFile=%s\n"
             "ExecStart=/usr/bin/bundle exec puma\n",
             envf);
    write_file("etc/mastodon-web.service", unit);
    /* The same unit in the later directory is hidden by the earlier one. */
    write_file("lib/mastodon-web.service", "[Service]\nEnvironment=HIDDEN=1\n");
    /* Drop-ins from both directories, in name order; 10- in etc hides 10- in lib. */
    write_file("lib/mastodon-web.service.d/10-keys.conf",
               "[Service]\nEnvironment=HIDDEN_DROPIN=1\n");
    write_file("etc/mastodon-web.service.d/10-keys.conf",
               "[Service]\nEnvironment=ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=det PORT=3001\n");
    write_file("lib/mastodon-web.service.d/20-salt.conf",
               "[Service]\nEnvironment=ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=salt\n");
    write_file("etc/mastodon-web.service.d/notconf.txt", "[Service]\nEnvironment=IGNORED=1\n");
    snprintf(path, sizeof path, "%s/etc:%s/lib", dir, dir);

    pf_unit_env e = {0};
    pf_err err = {0};
    const char *name = NULL;
    assert_int_equal(pf_units_mastodon(path, &e, &name, &err), 0);
    assert_string_equal(name, "mastodon-web.service");
    expect(&e, "RAILS_ENV", "production");
    expect(&e, "PORT", "3001");
    expect(&e, "NOT_SERVICE", NULL);
    expect(&e, "HIDDEN", NULL);
    expect(&e, "HIDDEN_DROPIN", NULL);
    expect(&e, "IGNORED", NULL);
    expect(&e, "SHARED", "file"); /* environment files override Environment= */
    expect(&e, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", "from-file");
    expect(&e, "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY", "det");
    expect(&e, "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", "salt");
    const char *src = NULL;
    pf_unit_env_get(&e, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", &src);
    assert_string_equal(src, envf);
    char want[600];
    pf_unit_env_get(&e, "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT", &src);
    snprintf(want, sizeof want, "%s/lib/mastodon-web.service.d/20-salt.conf", dir);
    assert_string_equal(src, want);
    assert_int_equal(e.nread, 3);
    pf_unit_env_free(&e);

    /* A non-optional environment file that is missing is an error naming it. */
    write_file("etc/mastodon-web.service.d/30-missing.conf",
               "[Service]\nEnvironmentFile=/nonexistent/required.env\n");
    assert_int_equal(pf_units_mastodon(path, &e, &name, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/required.env"));
    pf_unit_env_free(&e);
    /* An empty EnvironmentFile= resets the list. */
    write_file("etc/mastodon-web.service.d/40-reset.conf", "[Service]\nEnvironmentFile=\n");
    assert_int_equal(pf_units_mastodon(path, &e, &name, &err), 0);
    expect(&e, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY", NULL);
    expect(&e, "SHARED", "environment");
    pf_unit_env_free(&e);
}

static void test_streaming_template_and_none(void **state)
{
    (void)state;
    char path[600];
    snprintf(path, sizeof path, "%s/only-streaming", dir);
    pf_unit_env e = {0};
    pf_err err = {0};
    const char *name = "x";
    assert_int_equal(pf_units_mastodon(path, &e, &name, &err), 0);
    assert_null(name);
    assert_int_equal(e.n, 0);
    write_file("only-streaming/mastodon-streaming@.service",
               "[Service]\nEnvironment=PORT=%i K=v\n");
    write_file("only-streaming/mastodon-streaming@.service.d/keys.conf",
               "[Service]\nEnvironment=K2=v2\n");
    assert_int_equal(pf_units_mastodon(path, &e, &name, &err), 0);
    assert_string_equal(name, "mastodon-streaming@.service");
    expect(&e, "K", "v");
    expect(&e, "K2", "v2");
    pf_unit_env_free(&e);
    /* An instance falls back to its template and its template's drop-ins. */
    assert_int_equal(pf_units_load(path, "mastodon-streaming@4000.service", &e, &err), 1);
    expect(&e, "K2", "v2");
    pf_unit_env_free(&e);
    assert_int_equal(pf_units_load(path, "mastodon-web.service", &e, &err), 0);
}

int main(void)
{
    pf_log_set_handler(keep_log);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_environment_quoting),
        cmocka_unit_test(test_envfile_syntax),
        cmocka_unit_test(test_load_unit_dropins_files),
        cmocka_unit_test(test_streaming_template_and_none),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
