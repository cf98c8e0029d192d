/* permafrost.conf: the key table, the nearest-key suggestion, each type's check, the
 * reader's problems with their lines, and the agreement of the table with
 * docs/permafrost.conf.5 and contrib/permafrost.conf (run from the source tree, or with
 * $PF_SRC naming it). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cli/conf.h"

/* ---- helpers ---------------------------------------------------------------------- */

static char tmpdir[256];

static int setup(void **state)
{
    (void)state;
    const char *t = getenv("TMPDIR");
    snprintf(tmpdir, sizeof tmpdir, "%s/pf-conf.XXXXXX", t && *t ? t : "/tmp");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to a file in tmpdir and returns its path (static buffer). */
static const char *write_conf(const char *name, const char *text)
{
    static char path[512];
    snprintf(path, sizeof path, "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static char *slurp(const char *rel)
{
    const char *src = getenv("PF_SRC");
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", src && *src ? src : ".", rel);
    FILE *f = fopen(path, "r");
    if (!f)
        fail_msg("cannot read %s (run from the source tree or set PF_SRC)", path);
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        fwrite(chunk, 1, n, m);
    fclose(f);
    fclose(m);
    return buf;
}

static bool check(const char *key, const char *value)
{
    const pf_conf_key *k = pf_conf_find(key);
    assert_non_null(k);
    char why[1024] = "";
    int rc = pf_conf_check_value(k, value, why, sizeof why);
    if (rc)
        assert_true(why[0] != 0); /* a refusal says why */
    return rc == 0;
}

/* ---- the table -------------------------------------------------------------------- */

static void test_table_is_sound(void **state)
{
    (void)state;
    assert_true(pf_conf_nkeys >= 28);
    for (size_t i = 0; i < pf_conf_nkeys; i++) {
        const pf_conf_key *k = &pf_conf_keys[i];
        assert_non_null(k->name);
        assert_non_null(k->sets);
        assert_non_null(k->doc);
        assert_true(k->doc[0] != 0);
        assert_ptr_equal(pf_conf_find(k->name), k);
        for (const char *p = k->name; *p; p++)
            assert_true((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_');
        if (k->type == PF_CONF_INT)
            assert_true(k->min <= k->max);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(pf_conf_keys[j].name, k->name);
    }
    /* Keys that code reads today (pf_config_get) and were documented nowhere. */
    const char *read_by_code[] = {
        "repository",      "password_file", "ssh_key",     "s3_region",
        "s3_virtual_host", "connections",   "lock_wait",   "live",
        "exclude_cache",   "pg_host",       "pg_port",     "pg_user",
        "pg_password",     "redis_host",    "redis_port",  "redis_password",
        "restore_pg_host", "keep_last",     "keep_hourly", "keep_daily",
        "keep_weekly",     "keep_monthly",  "keep_yearly", "keep_within",
        "keep_tag",        "max_unused",    "copy_to",     "copy_password_file"};
    for (size_t i = 0; i < sizeof read_by_code / sizeof *read_by_code; i++)
        if (!pf_conf_find(read_by_code[i]))
            fail_msg("key %s is not in the table", read_by_code[i]);
    assert_null(pf_conf_find("keep_daly"));
    assert_null(pf_conf_find("Keep_daily"));
}

static void test_nearest(void **state)
{
    (void)state;
    assert_string_equal(pf_conf_nearest("keep_daly"), "keep_daily");
    assert_string_equal(pf_conf_nearest("kepe_daily"), "keep_daily"); /* a swap */
    assert_string_equal(pf_conf_nearest("keep-daily"), "keep_daily");
    assert_string_equal(pf_conf_nearest("Keep_Daily"), "keep_daily");
    assert_string_equal(pf_conf_nearest("keep_dailyy"), "keep_daily");
    assert_string_equal(pf_conf_nearest("repositroy"), "repository");
    assert_string_equal(pf_conf_nearest("redis_hots"), "redis_host");
    assert_string_equal(pf_conf_nearest("pg_passwd"), "pg_password");
    assert_string_equal(pf_conf_nearest("copy_passwordfile"), "copy_password_file");
    assert_string_equal(pf_conf_nearest("max-unused"), "max_unused");
    /* Too far from everything: no guess. */
    assert_null(pf_conf_nearest("colour"));
    assert_null(pf_conf_nearest("x"));
    assert_null(pf_conf_nearest("ab"));
    assert_null(pf_conf_nearest("database_url"));
    char huge[200];
    memset(huge, 'k', sizeof huge - 1);
    huge[sizeof huge - 1] = 0;
    assert_null(pf_conf_nearest(huge));
}

/* ---- values ----------------------------------------------------------------------- */

static void test_values(void **state)
{
    (void)state;
    /* every key refuses an empty value */
    for (size_t i = 0; i < pf_conf_nkeys; i++)
        assert_false(check(pf_conf_keys[i].name, ""));

    assert_true(check("keep_daily", "7"));
    assert_true(check("keep_daily", "0"));
    assert_true(check("keep_daily", "unlimited"));
    assert_true(check("keep_daily", "-1"));
    assert_false(check("keep_daily", "seven"));
    assert_false(check("keep_daily", "7 # a week"));
    assert_false(check("keep_daily", "-2"));
    assert_false(check("keep_daily", "7d"));

    assert_true(check("keep_within", "14d"));
    assert_true(check("keep_within", "1y6m"));
    assert_false(check("keep_within", "14"));
    assert_false(check("keep_within", "2w"));

    assert_true(check("exclude_cache", "true"));
    assert_true(check("exclude_cache", "no"));
    assert_true(check("s3_virtual_host", "1"));
    assert_true(check("s3_virtual_host", "false"));
    assert_false(check("exclude_cache", "maybe"));
    assert_false(check("exclude_cache", "on"));
    assert_false(check("exclude_cache", "TRUE"));
    assert_true(pf_conf_true("yes"));
    assert_true(pf_conf_true("1"));
    assert_false(pf_conf_true("false"));
    assert_false(pf_conf_true(NULL));

    assert_true(check("pg_port", "5432"));
    assert_true(check("redis_port", "65535"));
    assert_false(check("pg_port", "0"));
    assert_false(check("pg_port", "65536"));
    assert_false(check("pg_port", "5432x"));
    assert_false(check("pg_port", "postgres"));
    assert_false(check("redis_port", "99999999999999999999"));
    assert_true(check("connections", "64"));
    assert_false(check("connections", "65"));
    assert_false(check("connections", "0"));

    assert_true(check("lock_wait", "0"));
    assert_true(check("lock_wait", "2.5"));
    assert_false(check("lock_wait", "-1"));
    assert_false(check("lock_wait", "30s"));
    assert_false(check("lock_wait", "nan"));

    assert_true(check("max_unused", "10"));
    assert_true(check("max_unused", "5%"));
    assert_true(check("max_unused", "0"));
    assert_false(check("max_unused", "101"));
    assert_false(check("max_unused", "%"));
    assert_false(check("max_unused", "ten"));

    assert_true(check("repository", "/srv/permafrost"));
    assert_true(check("repository", "sftp://backup@nas/srv/pf"));
    assert_true(check("copy_to", "s3:https://s3.example.net/bucket/pf"));
    assert_false(check("repository", "sftp:/nas/srv"));
    assert_false(check("copy_to", "s3:bucket"));
    assert_false(check("repository", "\"/srv/permafrost\""));
    assert_false(check("live", "'/home/mastodon/live'"));

    /* text keeps what it is given: passwords may hold anything */
    assert_true(check("pg_password", "\"quoted\" # and ; more"));
}

/* ---- files ------------------------------------------------------------------------ */

static void test_read_good(void **state)
{
    (void)state;
    const char *p = write_conf("good.conf", "# a comment\n"
                                            "; another\n"
                                            "\n"
                                            "[permafrost]\n"
                                            "repository = /srv/pf\n"
                                            "  keep_daily = 7\n" /* indented: its own line */
                                            "keep_weekly=5\n"
                                            "pg_password = x ; inline comment\n");
    pf_conf_file f;
    pf_err err = {0};
    assert_int_equal(pf_conf_read(p, &f, &err), 0);
    assert_int_equal(f.nproblems, 0);
    assert_int_equal(f.nentries, 4);
    assert_string_equal(f.entries[0].key, "repository");
    assert_string_equal(f.entries[0].value, "/srv/pf");
    assert_int_equal(f.entries[0].line, 5);
    assert_string_equal(f.entries[1].key, "keep_daily");
    assert_string_equal(f.entries[1].value, "7");
    assert_int_equal(f.entries[1].line, 6);
    assert_string_equal(f.entries[2].key, "keep_weekly");
    assert_int_equal(f.entries[2].line, 7);
    assert_string_equal(f.entries[3].value, "x");
    pf_conf_file_free(&f);
}

static void test_read_problems(void **state)
{
    (void)state;
    char longline[400];
    snprintf(longline, sizeof longline, "pg_password = %0300d\n", 0);
    char text[2048];
    snprintf(text, sizeof text,
             "repository = /srv/pf\n"  /* 1 */
             "keep_daly = 7\n"         /* 2: unknown, near */
             "keep_weekly = five\n"    /* 3: bad count */
             "no equals sign here\n"   /* 4: syntax */
             "exclude_cache = maybe\n" /* 5: bad bool */
             "%s"                      /* 6: too long */
             "keep_monthly = 12\n"     /* 7: fine (the long line's tail is not a line) */
             "repository = /srv/x\n"   /* 8: twice */
             "colour = blue\n"         /* 9: unknown, nothing near */
             "pg_port =\n",            /* 10: empty */
             longline);
    const char *p = write_conf("bad.conf", text);
    pf_conf_file f;
    pf_err err = {0};
    assert_int_equal(pf_conf_read(p, &f, &err), 0);
    static const struct {
        int line;
        const char *has;
    } want[] = {
        {2, "unknown key \"keep_daly\": did you mean keep_daily?"},
        {3, "keep_weekly (count)"},
        {4, "not a 'key = value' line"},
        {5, "exclude_cache (yes/no): \"maybe\""},
        {6, "line longer than"},
        {8, "repository is set again (first on line 1)"},
        {9, "unknown key \"colour\" (the keys"},
        {10, "pg_port (integer): empty value"},
    };
    assert_int_equal(f.nproblems, sizeof want / sizeof *want);
    for (size_t i = 0; i < f.nproblems; i++) {
        char prefix[600];
        snprintf(prefix, sizeof prefix, "%s:%d: ", p, want[i].line);
        assert_int_equal(f.problems[i].line, want[i].line);
        assert_true(!strncmp(f.problems[i].text, prefix, strlen(prefix)));
        if (!strstr(f.problems[i].text, want[i].has))
            fail_msg("problem %zu is \"%s\", wanted \"%s\"", i, f.problems[i].text, want[i].has);
    }
    assert_int_equal(f.nentries, 2); /* repository (line 1), keep_monthly */
    assert_string_equal(f.entries[1].key, "keep_monthly");
    assert_int_equal(f.entries[1].line, 7);
    pf_conf_file_free(&f);
}

static void test_read_missing(void **state)
{
    (void)state;
    char path[512];
    snprintf(path, sizeof path, "%s/absent.conf", tmpdir);
    pf_conf_file f;
    pf_err err = {0};
    assert_int_equal(pf_conf_read(path, &f, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_int_equal(err.sys_errno, ENOENT);
    assert_non_null(strstr(err.msg, "absent.conf"));
    /* a directory is not an empty config */
    pf_err_clear(&err);
    assert_int_equal(pf_conf_read(tmpdir, &f, &err), -1);
    assert_non_null(strstr(err.msg, "cannot read config file"));
}

/* ---- the documentation ------------------------------------------------------------- */

/* Every key has its paragraph in the man page (".BI "key = " VALUE") and nothing else
 * is documented as a key there. */
static void test_man_page_agrees(void **state)
{
    (void)state;
    char *man = slurp("docs/permafrost.conf.5");
    for (size_t i = 0; i < pf_conf_nkeys; i++) {
        char want[128];
        snprintf(want, sizeof want, "\n.BI \"%s = \"", pf_conf_keys[i].name);
        if (!strstr(man, want))
            fail_msg("docs/permafrost.conf.5 does not document %s (no line %s)",
                     pf_conf_keys[i].name, want + 1);
    }
    size_t documented = 0;
    for (char *p = strstr(man, "\n.BI \""); p; p = strstr(p + 1, "\n.BI \"")) {
        char name[128];
        if (sscanf(p, "\n.BI \"%127[a-z0-9_] = \"", name) != 1)
            continue;
        if (!pf_conf_find(name))
            fail_msg("docs/permafrost.conf.5 documents %s, which is not a key", name);
        documented++;
    }
    assert_int_equal(documented, pf_conf_nkeys);
    free(man);
}

/* The example has every key once, commented out or not, and with its comment marks taken
 * away it is a valid file that sets every key. */
static void test_example_agrees(void **state)
{
    (void)state;
    char *ex = slurp("contrib/permafrost.conf");
    char *all = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&all, &len);
    assert_non_null(m);
    char *save = NULL;
    for (char *line = strtok_r(ex, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        char name[128];
        const char *s = line[0] == '#' ? line + 1 : line;
        if (sscanf(s, "%127[a-z0-9_] = ", name) == 1 && strstr(s, " = ") == s + strlen(name))
            fprintf(m, "%s\n", s);
    }
    fclose(m);
    free(ex);
    const char *p = write_conf("example-all.conf", all);
    free(all);
    pf_conf_file f;
    pf_err err = {0};
    assert_int_equal(pf_conf_read(p, &f, &err), 0);
    for (size_t i = 0; i < f.nproblems; i++)
        print_error("contrib/permafrost.conf: %s\n", f.problems[i].text);
    assert_int_equal(f.nproblems, 0);
    for (size_t i = 0; i < pf_conf_nkeys; i++) {
        bool found = false;
        for (size_t j = 0; j < f.nentries; j++)
            found = found || !strcmp(f.entries[j].key, pf_conf_keys[i].name);
        if (!found)
            fail_msg("contrib/permafrost.conf has no line for %s", pf_conf_keys[i].name);
    }
    assert_int_equal(f.nentries, pf_conf_nkeys);
    pf_conf_file_free(&f);

    /* And as shipped (comments in place) it is valid too. */
    char path[1024];
    const char *src = getenv("PF_SRC");
    snprintf(path, sizeof path, "%s/contrib/permafrost.conf", src && *src ? src : ".");
    assert_int_equal(pf_conf_read(path, &f, &err), 0);
    assert_int_equal(f.nproblems, 0);
    pf_conf_file_free(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_is_sound),  cmocka_unit_test(test_nearest),
        cmocka_unit_test(test_values),          cmocka_unit_test(test_read_good),
        cmocka_unit_test(test_read_problems),   cmocka_unit_test(test_read_missing),
        cmocka_unit_test(test_man_page_agrees), cmocka_unit_test(test_example_agrees),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
