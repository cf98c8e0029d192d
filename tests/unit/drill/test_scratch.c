/* Scratch servers for drills (src/drill/scratch.c), against the installed PostgreSQL and
 * Redis: both start, answer only on their sockets in the private folder, and are gone with
 * the folder after pf_scratch_stop. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <hiredis/hiredis.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "drill/scratch.h"

static void quiet(int level, const char *msg)
{
    (void)level;
    (void)msg;
}

static void test_start_and_stop(void **state)
{
    (void)state;
    pf_scratch s;
    pf_err err = {0};
    if (pf_scratch_start(&s, "/tmp", NULL, &err) < 0)
        fail_msg("%s", err.msg);
    struct stat st;
    assert_int_equal(stat(s.dir, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0711);
    assert_int_equal(stat(s.live_dir, &st), 0);

    char conninfo[512];
    snprintf(conninfo, sizeof conninfo, "host=%s port=%d user=%s dbname=postgres", s.pg_socket_dir,
             s.pg_port, s.pg_superuser);
    PGconn *c = PQconnectdb(conninfo);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    PGresult *r = PQexec(c, "SHOW listen_addresses");
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_string_equal(PQgetvalue(r, 0, 0), ""); /* no TCP */
    PQclear(r);
    PQfinish(c);

    redisContext *rc = redisConnectUnix(s.redis_socket);
    assert_non_null(rc);
    assert_int_equal(rc->err, 0);
    redisReply *rep = redisCommand(rc, "CONFIG GET port");
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_ARRAY);
    assert_string_equal(rep->element[1]->str, "0"); /* no TCP */
    freeReplyObject(rep);
    redisFree(rc);

    char dir[sizeof s.dir];
    memcpy(dir, s.dir, sizeof dir);
    pf_scratch_stop(&s);
    assert_int_equal(stat(dir, &st), -1);
    pf_scratch_stop(&s); /* twice is fine */
}

static void test_bad_inputs(void **state)
{
    (void)state;
    pf_scratch s;
    pf_err err = {0};
    assert_int_equal(pf_scratch_start(&s, "/tmp/with space", NULL, &err), -1);
    assert_int_equal(err.code, PF_EUSAGE);
    assert_non_null(strstr(err.msg, "with space"));
    assert_int_equal(pf_scratch_start(&s, "/tmp", "/nonexistent/bin", &err), -1);
    assert_int_equal(err.code, PF_ENOTFOUND);
    assert_non_null(strstr(err.msg, "drill_pg_bindir /nonexistent/bin"));
}

int main(void)
{
    pf_log_set_handler(quiet);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_start_and_stop),
        cmocka_unit_test(test_bad_inputs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
