/* The replication stream's messages as the receiver parses them: XLogData ('w': start,
 * end of WAL, send time, bytes), the primary keepalive ('k': end of WAL, send time, reply
 * requested), and refusal of anything shorter or of another type. (The stream itself runs
 * against real servers in tests/integration/walstream.sh.) */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "component/walrecv.h"

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static void test_xlogdata(void **state)
{
    (void)state;
    uint8_t m[25 + 5];
    m[0] = 'w';
    put64(m + 1, 0x16B374D848ull);
    put64(m + 9, 0x16B3800000ull);
    put64(m + 17, 12345);
    memcpy(m + 25, "hello", 5);
    pf_walrecv_msg msg;
    assert_int_equal(pf_walrecv_parse(m, sizeof m, &msg), 0);
    assert_int_equal(msg.kind, PF_WALRECV_DATA);
    assert_int_equal(msg.lsn, 0x16B374D848ull);
    assert_int_equal(msg.wal_end, 0x16B3800000ull);
    assert_int_equal(msg.n, 5);
    assert_memory_equal(msg.data, "hello", 5);
    /* A header alone is an empty XLogData; less is malformed. */
    assert_int_equal(pf_walrecv_parse(m, 25, &msg), 0);
    assert_int_equal(msg.n, 0);
    assert_int_equal(pf_walrecv_parse(m, 24, &msg), -1);
}

static void test_keepalive(void **state)
{
    (void)state;
    uint8_t m[18] = {'k'};
    put64(m + 1, 0x3000060);
    put64(m + 9, 99);
    m[17] = 1;
    pf_walrecv_msg msg;
    assert_int_equal(pf_walrecv_parse(m, sizeof m, &msg), 0);
    assert_int_equal(msg.kind, PF_WALRECV_KEEPALIVE);
    assert_int_equal(msg.wal_end, 0x3000060);
    assert_true(msg.reply);
    m[17] = 0;
    assert_int_equal(pf_walrecv_parse(m, sizeof m, &msg), 0);
    assert_false(msg.reply);
    assert_int_equal(pf_walrecv_parse(m, 17, &msg), -1);
    m[0] = 'x';
    assert_int_equal(pf_walrecv_parse(m, sizeof m, &msg), -1);
    assert_int_equal(pf_walrecv_parse(m, 0, &msg), -1);
}

static void test_lsn_format(void **state)
{
    (void)state;
    char s[24];
    pf_lsn_format(0x16B374D848ull, s);
    assert_string_equal(s, "16/B374D848");
    pf_lsn_format(0, s);
    assert_string_equal(s, "0/0");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_xlogdata),
        cmocka_unit_test(test_keepalive),
        cmocka_unit_test(test_lsn_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
