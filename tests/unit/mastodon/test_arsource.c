/* Which ACTIVE_RECORD_ENCRYPTION_* keys Mastodon uses: the units' over .env.production. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "mastodon/arsource.h"
#include "mastodon/units.h"

static char logged[4096];

static void keep_log(int level, const char *msg)
{
    (void)level;
    size_t n = strlen(logged);
    snprintf(logged + n, sizeof logged - n, "%s\n", msg);
}

static void put(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_units_win_and_sources(void **state)
{
    (void)state;
    char dir[256], p[512], envp[512], keyf[512];
    snprintf(dir, sizeof dir, "%s/pf-arsrc-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    assert_non_null(mkdtemp(dir));
    snprintf(envp, sizeof envp, "%s/.env.production", dir);
    snprintf(keyf, sizeof keyf, "%s/ar.env", dir);
    const char *envtext = "LOCAL_DOMAIN=x.example\n"
                          "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=envprimary\n"
                          "ACTIVE_RECORD_ENCRYPTION_DETERMINISTIC_KEY=envdet\n";
    put(envp, envtext);
    put(keyf, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=unitprimary\n");
    snprintf(p, sizeof p, "%s/mastodon-web.service", dir);
    char unit[2048];
    snprintf(unit, sizeof unit,
             "[Service]\nEnvironmentFile=%s\nEnvironmentFile=%s\n"
             "Environment=ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=unitsalt\n",
             envp, keyf);
    put(p, unit);

    pf_mastodon_env env;
    pf_err err = {0};
    assert_int_equal(pf_mastodon_env_parse(envtext, strlen(envtext), &env, &err), 0);
    pf_ar_keyset ks;
    logged[0] = 0;
    assert_int_equal(pf_ar_keyset_find(&env, envp, dir, &ks, &err), 0);
    assert_string_equal(ks.unit, "mastodon-web.service");
    assert_int_equal(pf_ar_keyset_count(&ks), 3);
    /* The unit's environment file overrides .env.production... */
    assert_string_equal(ks.value[0], "unitprimary");
    assert_string_equal(ks.source[0], keyf);
    assert_true(ks.from_systemd[0]);
    /* ... with a warning naming the key, not its values. */
    assert_non_null(strstr(logged, "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY differs"));
    assert_null(strstr(logged, "unitprimary"));
    assert_null(strstr(logged, "envprimary"));
    /* .env.production named as an EnvironmentFile is still .env.production. */
    assert_string_equal(ks.value[1], "envdet");
    assert_string_equal(ks.source[1], envp);
    assert_false(ks.from_systemd[1]);
    assert_string_equal(ks.value[2], "unitsalt");
    assert_string_equal(ks.source[2], p);
    assert_int_equal(ks.nfiles, 2);
    pf_ar_keys k = pf_ar_keyset_keys(&ks);
    assert_string_equal(k.salt, "unitsalt");
    pf_ar_keyset_free(&ks);

    /* No units at all: .env.production alone; a key it lacks stays unset. */
    char none[600];
    snprintf(none, sizeof none, "%s/nothing-here", dir);
    assert_int_equal(pf_ar_keyset_find(&env, envp, none, &ks, &err), 0);
    assert_null(ks.unit);
    assert_string_equal(ks.value[0], "envprimary");
    assert_null(ks.value[2]);
    assert_null(ks.source[2]);
    assert_int_equal(pf_ar_keyset_count(&ks), 2);
    assert_int_equal(ks.nfiles, 0);
    pf_ar_keyset_free(&ks);

    /* A unit naming an environment file that cannot be read: a warning naming it, and the
     * keys of .env.production alone. */
    char bad[600], badunit[700];
    snprintf(bad, sizeof bad, "%s/bad", dir);
    char cmd0[700];
    snprintf(cmd0, sizeof cmd0, "mkdir -p '%s'", bad);
    assert_int_equal(system(cmd0), 0);
    snprintf(badunit, sizeof badunit, "%s/mastodon-web.service", bad);
    put(badunit, "[Service]\nEnvironmentFile=/nonexistent/keys.env\n");
    logged[0] = 0;
    assert_int_equal(pf_ar_keyset_find(&env, envp, bad, &ks, &err), 0);
    assert_non_null(strstr(logged, "/nonexistent/keys.env"));
    assert_null(ks.unit);
    assert_string_equal(ks.value[0], "envprimary");
    assert_false(ks.from_systemd[0]);
    pf_ar_keyset_free(&ks);
    pf_mastodon_env_free(&env);

    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_keys_file_and_differ(void **state)
{
    (void)state;
    char v0[] = "plainKEY123", v1[] = "with \"quote\" $x \\ `y`", v2[] = "salt";
    pf_ar_keyset ks = {.value = {v0, v1, v2}};
    pf_buf b = PF_BUF_INIT;
    pf_ar_keyset_env_text(&ks, &b);
    pf_unit_env u = {0};
    pf_units_apply_envfile(&u, (const char *)b.data, b.len, "snapshot");
    assert_string_equal(pf_unit_env_get(&u, PF_AR_PRIMARY, NULL), v0);
    assert_string_equal(pf_unit_env_get(&u, PF_AR_DETERMINISTIC, NULL), v1);
    assert_string_equal(pf_unit_env_get(&u, PF_AR_SALT, NULL), v2);
    pf_unit_env_free(&u);
    pf_buf_free(&b);

    const char *t = "LOCAL_DOMAIN=x.example\n"
                    "ACTIVE_RECORD_ENCRYPTION_PRIMARY_KEY=other\n"
                    "ACTIVE_RECORD_ENCRYPTION_KEY_DERIVATION_SALT=salt\n";
    pf_mastodon_env env;
    pf_err err = {0};
    assert_int_equal(pf_mastodon_env_parse(t, strlen(t), &env, &err), 0);
    const char *snap[3] = {v0, v1, v2};
    char names[256];
    assert_int_equal(pf_ar_keys_differ(snap, &env, names, sizeof names), 1);
    assert_string_equal(names, PF_AR_PRIMARY);
    const char *snap2[3] = {"other", NULL, "salt2"};
    assert_int_equal(pf_ar_keys_differ(snap2, &env, names, sizeof names), 1);
    assert_string_equal(names, PF_AR_SALT);
    const char *snap3[3] = {"x", "y", "z"};
    assert_int_equal(pf_ar_keys_differ(snap3, &env, names, sizeof names), 2);
    assert_string_equal(names, PF_AR_PRIMARY ", " PF_AR_SALT);
    assert_null(strstr(names, "other"));
    const char *same[3] = {"other", "y", "salt"};
    assert_int_equal(pf_ar_keys_differ(same, &env, names, sizeof names), 0);
    assert_string_equal(names, "");
    pf_mastodon_env_free(&env);
}

int main(void)
{
    pf_log_set_handler(keep_log);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_units_win_and_sources),
        cmocka_unit_test(test_keys_file_and_differ),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
