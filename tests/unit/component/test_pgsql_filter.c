/* globals.sql filtering: what pg_dumpall writes is accepted and re-written, nothing else
 * reaches psql (above all no meta-command). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "component/pgsql_filter.h"

/* pg_dumpall --globals-only of PostgreSQL 15.18 (with the \restrict guard of 15.14+),
 * followed by the section permafrost's backup writes. */
static const char PG15[] =
    "--\n-- PostgreSQL database cluster dump\n--\n\n"
    "\\restrict JQ18iOC8c361FBLcsjcuNUL5vRCWXr1GefoQ9nb3tGTj8ioEIMkuUSDJuchlEOL\n\n"
    "SET default_transaction_read_only = off;\n\n"
    "SET client_encoding = 'UTF8';\nSET standard_conforming_strings = on;\n\n"
    "--\n-- Roles\n--\n\n"
    "CREATE ROLE \"We\"\"ird\";\n"
    "ALTER ROLE \"We\"\"ird\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN "
    "NOREPLICATION NOBYPASSRLS;\n"
    "CREATE ROLE exp;\n"
    "ALTER ROLE exp WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION "
    "NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00';\n"
    "CREATE ROLE mastodon;\n"
    "ALTER ROLE mastodon WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN NOREPLICATION "
    "NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:Dif19bpxO/shg6UgywIbmA==$2OgoUjAPi152AP/"
    "YCezvc4s5TjIwanCH7EFqX6bOXRw=:xPD6n0wLExOofQOLa3YoP//MDNzmd25Q5kKe1bQsUR4=';\n"
    "CREATE ROLE postgres;\n"
    "ALTER ROLE postgres WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION "
    "BYPASSRLS;\n"
    "CREATE ROLE ro;\n"
    "ALTER ROLE ro WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN NOREPLICATION "
    "NOBYPASSRLS;\n"
    "COMMENT ON ROLE ro IS E'it''s read-only\\\\x';\n\n"
    "--\n-- User Configurations\n--\n\n--\n-- User Config \"ro\"\n--\n\n"
    "ALTER ROLE ro SET search_path TO 'public', '$user';\n"
    "ALTER ROLE ro SET statement_timeout TO '5s';\n\n\n"
    "--\n-- Role memberships\n--\n\n"
    "GRANT pg_read_all_data TO ro WITH ADMIN OPTION GRANTED BY postgres;\n"
    "GRANT ro TO mastodon GRANTED BY postgres;\n\n\n"
    "--\n-- Role privileges on configuration parameters\n--\n\n"
    "GRANT SET ON PARAMETER work_mem TO ro;\n\n\n\n\n"
    "\\unrestrict JQ18iOC8c361FBLcsjcuNUL5vRCWXr1GefoQ9nb3tGTj8ioEIMkuUSDJuchlEOL\n\n"
    "--\n-- PostgreSQL database cluster dump complete\n--\n\n"
    "\n-- permafrost: database-level settings (applied by permafrost after CREATE DATABASE)\n"
    "COMMENT ON DATABASE mastodon_production IS 'hi';\n"
    "ALTER DATABASE mastodon_production CONNECTION LIMIT = 50;\n"
    "ALTER DATABASE mastodon_production SET work_mem TO '8MB';\n"
    "ALTER ROLE ro IN DATABASE mastodon_production SET work_mem TO '16MB';\n"
    "REVOKE CONNECT,TEMPORARY ON DATABASE mastodon_production FROM PUBLIC;\n"
    "GRANT CONNECT ON DATABASE mastodon_production TO ro;\n";

static pf_pgsql_globals parse_ok(const char *text, const char *db)
{
    pf_pgsql_globals g;
    pf_err err = {0};
    if (pf_pgsql_globals_parse(text, strlen(text), db, &g, &err) != 0)
        fail_msg("refused: %s", err.msg);
    return g;
}

/* Parses text that must be refused; the message must hold `want`. */
static void refused(const char *text, const char *want)
{
    pf_pgsql_globals g;
    pf_err err = {0};
    if (pf_pgsql_globals_parse(text, strlen(text), "db", &g, &err) == 0) {
        pf_pgsql_globals_free(&g);
        fail_msg("accepted: %s", text);
    }
    assert_int_equal(err.code, PF_ECORRUPT);
    if (!strstr(err.msg, want))
        fail_msg("message [%s] lacks [%s]", err.msg, want);
    assert_null(g.roles);
    assert_null(g.db);
}

static char *joined(const pf_pgsql_stmt *s, size_t n)
{
    pf_buf b = PF_BUF_INIT;
    for (size_t i = 0; i < n; i++)
        pf_buf_append_str(&b, s[i].sql);
    pf_buf_u8(&b, 0);
    size_t len;
    return (char *)pf_buf_detach(&b, &len);
}

static void test_pg15_accepted_and_rewritten(void **state)
{
    (void)state;
    pf_pgsql_globals g = parse_ok(PG15, "target_db");
    assert_true(g.has_section);
    assert_int_equal(g.nroles, 19);
    assert_int_equal(g.ndb, 6);
    char *r = joined(g.roles, g.nroles), *d = joined(g.db, g.ndb);
    const char *want_roles =
        "SET default_transaction_read_only = off;\n"
        "SET client_encoding = 'UTF8';\n"
        "SET standard_conforming_strings = on;\n"
        "CREATE ROLE \"We\"\"ird\";\n"
        "ALTER ROLE \"We\"\"ird\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN "
        "NOREPLICATION NOBYPASSRLS;\n"
        "CREATE ROLE \"exp\";\n"
        "ALTER ROLE \"exp\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN "
        "NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 3 VALID UNTIL '2030-01-01 00:00:00+00';\n"
        "CREATE ROLE \"mastodon\";\n"
        "ALTER ROLE \"mastodon\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB LOGIN "
        "NOREPLICATION NOBYPASSRLS PASSWORD 'SCRAM-SHA-256$4096:Dif19bpxO/shg6UgywIbmA==$"
        "2OgoUjAPi152AP/YCezvc4s5TjIwanCH7EFqX6bOXRw=:xPD6n0wLExOofQOLa3YoP//"
        "MDNzmd25Q5kKe1bQsUR4=';\n"
        "CREATE ROLE \"postgres\";\n"
        "ALTER ROLE \"postgres\" WITH SUPERUSER INHERIT CREATEROLE CREATEDB LOGIN REPLICATION "
        "BYPASSRLS;\n"
        "CREATE ROLE \"ro\";\n"
        "ALTER ROLE \"ro\" WITH NOSUPERUSER INHERIT NOCREATEROLE NOCREATEDB NOLOGIN "
        "NOREPLICATION NOBYPASSRLS;\n"
        "COMMENT ON ROLE \"ro\" IS E'it''s read-only\\\\x';\n"
        "ALTER ROLE \"ro\" SET \"search_path\" TO 'public', '$user';\n"
        "ALTER ROLE \"ro\" SET \"statement_timeout\" TO '5s';\n"
        "GRANT \"pg_read_all_data\" TO \"ro\" WITH ADMIN OPTION GRANTED BY \"postgres\";\n"
        "GRANT \"ro\" TO \"mastodon\" GRANTED BY \"postgres\";\n"
        "GRANT SET ON PARAMETER \"work_mem\" TO \"ro\";\n";
    assert_string_equal(r, want_roles);
    const char *want_db =
        "COMMENT ON DATABASE \"target_db\" IS 'hi';\n"
        "ALTER DATABASE \"target_db\" CONNECTION LIMIT = 50;\n"
        "ALTER DATABASE \"target_db\" SET \"work_mem\" TO '8MB';\n"
        "ALTER ROLE \"ro\" IN DATABASE \"target_db\" SET \"work_mem\" TO '16MB';\n"
        "REVOKE CONNECT, TEMPORARY ON DATABASE \"target_db\" FROM PUBLIC;\n"
        "GRANT CONNECT ON DATABASE \"target_db\" TO \"ro\";\n";
    assert_string_equal(d, want_db);
    /* What the restore decides on: kinds, roles, superuser, lines. */
    assert_int_equal(g.roles[3].kind, PF_PGSQL_CREATE_ROLE);
    assert_string_equal(g.roles[3].role, "We\"ird");
    assert_int_equal(g.roles[3].line, 16);
    assert_int_equal(g.roles[10].kind, PF_PGSQL_ALTER_ROLE);
    assert_string_equal(g.roles[10].role, "postgres");
    assert_true(g.roles[10].superuser);
    assert_false(g.roles[8].superuser);
    assert_int_equal(g.roles[14].kind, PF_PGSQL_ROLE_CONFIG);
    assert_int_equal(g.roles[16].kind, PF_PGSQL_GRANT_ROLE);
    assert_string_equal(g.roles[16].role, "ro");
    assert_string_equal(g.roles[17].role, "mastodon");
    assert_int_equal(g.roles[18].kind, PF_PGSQL_GRANT_PARAM);
    assert_int_equal(g.db[3].kind, PF_PGSQL_ROLE_CONFIG);
    assert_string_equal(g.db[3].role, "ro");
    free(r);
    free(d);
    pf_pgsql_globals_free(&g);
    /* Without a target the names stay. */
    g = parse_ok(PG15, NULL);
    assert_string_equal(g.db[0].sql, "COMMENT ON DATABASE \"mastodon_production\" IS 'hi';\n");
    pf_pgsql_globals_free(&g);
}

static void test_pg16_memberships(void **state)
{
    (void)state;
    pf_pgsql_globals g =
        parse_ok("GRANT pg_read_all_data TO \"Ro \"\"x\"\"\" WITH ADMIN OPTION, INHERIT TRUE, "
                 "SET FALSE GRANTED BY postgres;\n"
                 "GRANT Ro TO Mastodon WITH INHERIT FALSE GRANTED BY postgres;\n"
                 "-- permafrost: database-level settings\n"
                 "GRANT ALL ON DATABASE m TO x WITH GRANT OPTION;\n",
                 "db");
    assert_int_equal(g.nroles, 2);
    assert_string_equal(g.roles[0].sql, "GRANT \"pg_read_all_data\" TO \"Ro \"\"x\"\"\" WITH "
                                        "ADMIN OPTION, INHERIT true, SET false GRANTED BY "
                                        "\"postgres\";\n");
    /* Unquoted names fold to lower case, as in PostgreSQL. */
    assert_string_equal(g.roles[1].sql, "GRANT \"ro\" TO \"mastodon\" WITH INHERIT false "
                                        "GRANTED BY \"postgres\";\n");
    assert_string_equal(g.db[0].sql, "GRANT ALL ON DATABASE \"db\" TO \"x\" WITH GRANT OPTION;\n");
    pf_pgsql_globals_free(&g);
}

/* Quoted texts are followed as PostgreSQL does: what looks like a command inside one is
 * data, and comes out as a literal that psql reads as one. */
static void test_quotes_hold_backslashes(void **state)
{
    (void)state;
    pf_pgsql_globals g = parse_ok("COMMENT ON ROLE a IS '\\! touch /tmp/x';\n"
                                  "COMMENT ON ROLE b IS $q$ it's \\! $$ id ; $q$;\n"
                                  "COMMENT ON ROLE c IS $$line\n\\! id\n$$;\n"
                                  "/* a /* nested */ \\! comment */ -- and \\! here\n"
                                  "COMMENT ON ROLE \"d;\\!\" IS NULL;\n",
                                  NULL);
    assert_int_equal(g.nroles, 4);
    assert_string_equal(g.roles[0].sql, "COMMENT ON ROLE \"a\" IS E'\\\\! touch /tmp/x';\n");
    assert_string_equal(g.roles[1].sql, "COMMENT ON ROLE \"b\" IS E' it''s \\\\! $$ id ; ';\n");
    assert_string_equal(g.roles[2].sql, "COMMENT ON ROLE \"c\" IS E'line\n\\\\! id\n';\n");
    assert_string_equal(g.roles[3].sql, "COMMENT ON ROLE \"d;\\!\" IS NULL;\n");
    assert_int_equal(g.roles[3].line, 7);
    pf_pgsql_globals_free(&g);

    pf_buf b = PF_BUF_INIT;
    pf_pgsql_literal(&b, "a'b");
    pf_buf_append_str(&b, " ");
    pf_pgsql_literal(&b, "c\\'d");
    pf_buf_append_str(&b, " ");
    pf_pgsql_ident(&b, "x\"y");
    pf_buf_u8(&b, 0);
    assert_string_equal((const char *)b.data, "'a''b' E'c\\\\''d' \"x\"\"y\"");
    pf_buf_free(&b);
}

/* The holes of finding 3: a meta-command anywhere but inside a quoted text is refused,
 * with its line. */
static void test_meta_commands_refused(void **state)
{
    (void)state;
    refused("\\! id\n", "line 1: psql meta-command \\! refused");
    refused("CREATE ROLE a;\nALTER ROLE a WITH\n\\! touch /tmp/pwned\nLOGIN;\n",
            "line 3: psql meta-command \\!");
    refused("CREATE ROLE a; \\! id\n", "line 1: psql meta-command \\!");
    refused("CREATE ROLE a;\n-- permafrost: database-level settings\n\\! id\n",
            "line 3: psql meta-command");
    refused("CREATE ROLE a;\n-- permafrost: database-level settings\nGRANT CONNECT ON DATABASE "
            "x TO\n\\o |sh\nb;\n",
            "line 4: psql meta-command \\o");
    refused("SET client_encoding = 'UTF8' \\g |sh\n;", "line 1: psql meta-command \\g");
    refused("\\copy x from program 'id'\n", "psql meta-command \\c");
    /* \restrict only alone on its line, between statements. */
    refused("\\restrict abc \\! id\n", "line 1: psql meta-command \\r");
    refused("CREATE ROLE a\n\\restrict abc\n;", "line 2: psql meta-command \\r");
    refused("\\restrict\n", "psql meta-command \\r");
}

static void test_other_sql_refused(void **state)
{
    (void)state;
    refused("COPY (SELECT 1) TO PROGRAM 'id';\n", "line 1: not a statement of the roles");
    refused("CREATE TABLESPACE t OWNER a LOCATION '/etc';\n", "line 1: not a statement");
    refused("SET ROLE postgres;\n", "line 1: not a statement of the roles");
    refused("SET search_path = public;\n", "SET of a parameter pg_dumpall does not set");
    refused("SET standard_conforming_strings = off;\n", "SET of a parameter");
    refused("SET default_transaction_read_only = on;\n", "SET of a parameter");
    refused("SET client_encoding = 'UTF8; x';\n", "SET of a parameter");
    refused("SET client_encoding = 'SJIS';\n", "SET of a parameter");
    refused("SET client_encoding = BIG5;\n", "SET of a parameter");
    refused("ALTER ROLE a SET session_preload_libraries TO '/tmp/evil.so';\n",
            "parameter that loads code into the server");
    refused("ALTER ROLE a SET \"Dynamic_Library_Path\" TO '/tmp';\n", "loads code");
    refused("GRANT SET ON PARAMETER shared_preload_libraries TO a;\n", "loads code");
    refused("GRANT ALTER SYSTEM ON PARAMETER work_mem TO a;\n", "not a statement");
    refused("ALTER ROLE a RENAME TO b;\n", "not a statement");
    refused("ALTER ROLE a WITH;\n", "not a statement");
    refused("ALTER ROLE a WITH PASSWORD 'SCRAM-secret' BOGUS;\n",
            "line 1: not a statement of the roles permafrost restores: ALTER ROLE a WITH "
            "PASSWORD '...' BOGUS");
    refused("CREATE ROLE a; DROP ROLE postgres;\n", "line 1: not a statement");
    refused("CREATE ROLE public;\n", "not a statement");
    refused("GRANT a TO b; SELECT pg_sleep(1);\n", "not a statement");
    refused("CREATE ROLE a\n", "line 1: statement without its closing ';'");
    refused("COMMENT ON ROLE a IS 'x\n", "line 1: unterminated string literal");
    refused("COMMENT ON ROLE a IS E'\\x41';\n", "unsupported escape");
    refused("CREATE ROLE \"\";\n", "quoted name empty");
    refused("CREATE ROLE \"a\nERROR: fake\";\n", "line 1: control character in a quoted name");
    refused("/* unterminated\n", "unterminated /* comment");
    refused("CREATE ROLE a;;\n", "line 1: empty statement");
    refused("CREATE ROLE a ~;\n", "unexpected character '~'");
    refused("CREATE ROLE U&\"a\";\n", "unexpected character '&'");
    /* Database-level forms belong to the section, role forms before it. */
    refused("GRANT CONNECT ON DATABASE x TO a;\n", "not a statement of the roles");
    refused("ALTER DATABASE x SET work_mem TO '1MB';\n", "not a statement of the roles");
    refused("-- permafrost: database-level settings\nCREATE ROLE a;\n",
            "line 2: not a database-level setting");
    refused("-- permafrost: database-level settings\nALTER DATABASE x OWNER TO a;\n",
            "not a database-level setting");
    refused("-- permafrost: database-level settings\nALTER ROLE a SET work_mem TO 1;\n",
            "not a database-level setting");
    refused("-- permafrost: database-level settings\nALTER DATABASE x SET "
            "local_preload_libraries TO 'x';\n",
            "loads code");
    refused("-- permafrost: database-level settings\n-- permafrost: database-level settings\n",
            "a second database-level section");
    refused("-- permafrost: database-level settings\nSECURITY LABEL ON DATABASE x IS 'l';\n",
            "not a database-level setting");
    /* A NUL byte ends nothing early. */
    static const char nul[] = "CREATE ROLE a;\0\\! id\n";
    pf_pgsql_globals g;
    pf_err err = {0};
    assert_int_equal(pf_pgsql_globals_parse(nul, sizeof nul - 1, NULL, &g, &err), -1);
}

static void test_limits(void **state)
{
    (void)state;
    /* Statements too long to be pg_dumpall's, and names PostgreSQL would truncate. */
    pf_buf b = PF_BUF_INIT;
    pf_buf_append_str(&b, "ALTER ROLE a WITH");
    for (int i = 0; i < 600; i++)
        pf_buf_append_str(&b, " LOGIN");
    pf_buf_append_str(&b, ";\n");
    refused((const char *)b.data, "statement too long");
    pf_buf_reset(&b);
    pf_buf_append_str(&b, "CREATE ROLE \"");
    for (int i = 0; i < 64; i++)
        pf_buf_u8(&b, 'a');
    pf_buf_append_str(&b, "\";\n");
    refused((const char *)b.data, "longer than 63 bytes");
    /* A dollar quote with a long tag over a long body: bounded, not quadratic. */
    pf_buf_reset(&b);
    pf_buf_append_str(&b, "COMMENT ON ROLE a IS $");
    for (int i = 0; i < 70; i++)
        pf_buf_u8(&b, 't');
    pf_buf_append_str(&b, "$");
    refused((const char *)b.data, "'$' outside a dollar quote");
    pf_buf_reset(&b);
    pf_buf_append_str(&b, "COMMENT ON ROLE a IS $t$");
    for (int i = 0; i < 70000; i++)
        pf_buf_u8(&b, 'x');
    refused((const char *)b.data, "quoted text longer than 64 KiB");
    pf_buf_free(&b);
    /* An empty file (no globals at all) is fine. */
    pf_pgsql_globals g = parse_ok("-- nothing\n", NULL);
    assert_int_equal(g.nroles, 0);
    assert_false(g.has_section);
    pf_pgsql_globals_free(&g);
}

/* ---- the splitter, the database-level filter and the role filter ---- */

typedef struct collected {
    pf_buf out;  /* "M|<text>\n" for a meta-command, "S|<text>\n" for a statement */
    int stop_at; /* fail on this call (1-based); 0: never */
    int calls;
} collected;

static int collect(const char *s, size_t n, bool meta, void *ctx, pf_err *err)
{
    collected *c = ctx;
    if (++c->calls == c->stop_at)
        return pf_err_set(err, PF_ECORRUPT, "stop");
    pf_buf_append_str(&c->out, meta ? "M|" : "S|");
    pf_buf_append(&c->out, s, n);
    pf_buf_append_str(&c->out, "\n");
    return 0;
}

static char *split(const char *sql)
{
    collected c = {.out = PF_BUF_INIT};
    pf_err err = {0};
    assert_int_equal(pf_pgsql_each(sql, strlen(sql), collect, &c, &err), 0);
    pf_buf_u8(&c.out, 0);
    return (char *)c.out.data;
}

static void test_split(void **state)
{
    (void)state;
    char *got = split("  -- a comment; with a semicolon\n"
                      "SET a = 1;\n\n"
                      "\\connect mastodon\n"
                      "COMMENT ON ROLE r IS 'x;\ny';ALTER ROLE \"a;b\" SET c TO 'd''e;';\n"
                      "GRANT x TO y");
    assert_string_equal(got, "S|SET a = 1;\n"
                             "M|\\connect mastodon\n"
                             "S|COMMENT ON ROLE r IS 'x;\ny';\n"
                             "S|ALTER ROLE \"a;b\" SET c TO 'd''e;';\n"
                             "S|GRANT x TO y\n");
    free(got);
    /* an unterminated quote runs to the end, and splits nothing */
    got = split("SELECT 'a;\n\\! id;\n");
    assert_string_equal(got, "S|SELECT 'a;\n\\! id;\n\n");
    free(got);
    got = split("");
    assert_string_equal(got, "");
    free(got);
    got = split("-- only\n   \n");
    assert_string_equal(got, "");
    free(got);
    /* the callback's error stops the walk */
    collected c = {.out = PF_BUF_INIT, .stop_at = 2};
    pf_err err = {0};
    const char *three = "A;B;C;";
    assert_int_equal(pf_pgsql_each(three, strlen(three), collect, &c, &err), -1);
    assert_string_equal(err.msg, "stop");
    assert_int_equal(c.calls, 2);
    pf_buf_free(&c.out);
}

static void test_db_level(void **state)
{
    (void)state;
    static const char dump[] = "SET statement_timeout = 0;\n"
                               "COMMENT ON DATABASE before IS 'not yet connected';\n"
                               "CREATE DATABASE m WITH TEMPLATE = template0 ENCODING = 'UTF8';\n"
                               "ALTER DATABASE m OWNER TO mastodon;\n"
                               "\\connect m\n"
                               "SET client_encoding = 'UTF8';\n"
                               "COMMENT ON DATABASE m IS 'the; one';\n"
                               "ALTER DATABASE m SET work_mem TO '64MB';\n"
                               "ALTER DATABASE m OWNER TO someone;\n"
                               "ALTER ROLE ro IN DATABASE m SET search_path TO public;\n"
                               "ALTER ROLE ro SET search_path TO public;\n"
                               "GRANT CONNECT ON DATABASE m TO ro;\n"
                               "REVOKE ALL ON DATABASE m FROM PUBLIC;\n"
                               "GRANT SELECT ON TABLE t TO ro;\n"
                               "SECURITY LABEL FOR selinux ON DATABASE m IS 'l';\n";
    pf_buf out = PF_BUF_INIT;
    pf_pgsql_db_level(dump, sizeof dump - 1, &out);
    pf_buf_u8(&out, 0);
    assert_string_equal((const char *)out.data,
                        "COMMENT ON DATABASE m IS 'the; one';\n"
                        "ALTER DATABASE m SET work_mem TO '64MB';\n"
                        "ALTER ROLE ro IN DATABASE m SET search_path TO public;\n"
                        "GRANT CONNECT ON DATABASE m TO ro;\n"
                        "REVOKE ALL ON DATABASE m FROM PUBLIC;\n"
                        "SECURITY LABEL FOR selinux ON DATABASE m IS 'l';\n");
    pf_buf_free(&out);
}

static void test_role_filter(void **state)
{
    (void)state;
    pf_pgsql_globals g = parse_ok("CREATE ROLE postgres;\n"
                                  "ALTER ROLE postgres WITH SUPERUSER LOGIN;\n"
                                  "CREATE ROLE admin2;\n"
                                  "ALTER ROLE admin2 WITH SUPERUSER LOGIN;\n"
                                  "CREATE ROLE mastodon;\n"
                                  "ALTER ROLE mastodon WITH LOGIN;\n"
                                  "CREATE ROLE fresh;\n"
                                  "ALTER ROLE fresh WITH NOLOGIN;\n"
                                  "GRANT fresh TO mastodon;\n",
                                  NULL);
    assert_int_equal(g.nroles, 9);
    /* the target: admin2 is a superuser there, mastodon an ordinary role */
    const char *existing = "postgres\ts\nadmin2\ts\nmastodon\t-\n";
    bool want[] = {false, false, false, false, false, true, true, true, true};
    int created = 0, skipped = 0;
    for (size_t i = 0; i < g.nroles; i++)
        assert_int_equal(pf_pgsql_keep_role(&g.roles[i], "postgres", existing, &created, &skipped),
                         want[i]);
    assert_int_equal(created, 1);
    assert_int_equal(skipped, 5);
    /* an empty target: only the admin's statements are skipped */
    created = skipped = 0;
    for (size_t i = 0; i < g.nroles; i++)
        assert_int_equal(pf_pgsql_keep_role(&g.roles[i], "postgres", NULL, &created, &skipped),
                         i >= 2);
    assert_int_equal(created, 3);
    assert_int_equal(skipped, 2);
    /* a name that is a prefix of an existing one is not that one */
    created = skipped = 0;
    assert_true(pf_pgsql_keep_role(&g.roles[4], "postgres", "mastodon2\t-\n", &created, &skipped));
    assert_int_equal(created, 1);
    pf_pgsql_globals_free(&g);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg15_accepted_and_rewritten),
        cmocka_unit_test(test_pg16_memberships),
        cmocka_unit_test(test_quotes_hold_backslashes),
        cmocka_unit_test(test_meta_commands_refused),
        cmocka_unit_test(test_other_sql_refused),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_db_level),
        cmocka_unit_test(test_role_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
