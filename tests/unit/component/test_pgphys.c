/* Physical base backups: the WAL file that holds an LSN, for the segment sizes initdb
 * allows, and refusal of malformed positions. (The BASE_BACKUP stream itself is tested
 * against a real server in tests/integration/pitr.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "component/pgphys.h"

static void test_wal_name(void **state)
{
    (void)state;
    char n[25];
    assert_int_equal(pf_pgphys_wal_name("0/2000028", 1, 16u << 20, n), 0);
    assert_string_equal(n, "000000010000000000000002");
    assert_int_equal(pf_pgphys_wal_name("0/1FFFFFF", 1, 16u << 20, n), 0);
    assert_string_equal(n, "000000010000000000000001");
    /* The high word is the middle part; 256 segments of 16 MiB per 4 GiB. */
    assert_int_equal(pf_pgphys_wal_name("16/B374D848", 3, 16u << 20, n), 0);
    assert_string_equal(n, "0000000300000016000000B3");
    /* 64 MiB segments: 64 per 4 GiB. */
    assert_int_equal(pf_pgphys_wal_name("16/B374D848", 3, 64u << 20, n), 0);
    assert_string_equal(n, "00000003000000160000002C");
    assert_int_equal(pf_pgphys_wal_name("1/0", 2, 1u << 30, n), 0);
    assert_string_equal(n, "000000020000000100000000");
}

static void test_wal_name_refused(void **state)
{
    (void)state;
    char n[25];
    assert_int_equal(pf_pgphys_wal_name("", 1, 16u << 20, n), -1);
    assert_int_equal(pf_pgphys_wal_name(NULL, 1, 16u << 20, n), -1);
    assert_int_equal(pf_pgphys_wal_name("0-2000028", 1, 16u << 20, n), -1);
    assert_int_equal(pf_pgphys_wal_name("0/2000028x", 1, 16u << 20, n), -1);
    assert_int_equal(pf_pgphys_wal_name("0/2000028", 1, 0, n), -1);
    assert_int_equal(pf_pgphys_wal_name("0/2000028", 1, 2ull << 30, n), -1);
}

/* Where recovery stopped, as PostgreSQL's log says it (log_timezone's offset). */
static void test_log_time(void **state)
{
    (void)state;
    /* 2026-12-01 16:40:01 UTC is 1796143201 */
    assert_int_equal(pf_pgphys_log_time("recovery stopping before commit of transaction 745, "
                                        "time 2026-12-01 16:40:01.123456+00"),
                     1796143201LL * 1000000000 + 123456000);
    assert_int_equal(pf_pgphys_log_time("last completed transaction was at log time "
                                        "2026-12-01 17:40:01+01"),
                     1796143201LL * 1000000000);
    assert_int_equal(pf_pgphys_log_time("recovery stopping after commit of transaction 9, time "
                                        "2026-12-01 11:10:01.5-05:30"),
                     1796143201LL * 1000000000 + 500000000);
    assert_int_equal(pf_pgphys_log_time("redo done at 0/3000028"), 0);
    assert_int_equal(pf_pgphys_log_time("time 2026-12"), 0);
    assert_int_equal(pf_pgphys_log_time(NULL), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wal_name),
        cmocka_unit_test(test_wal_name_refused),
        cmocka_unit_test(test_log_time),
    };
    return cmocka_run_group_tests_name("pgphys", tests, NULL, NULL);
}
