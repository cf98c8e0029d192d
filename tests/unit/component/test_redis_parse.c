/* The hand-written Redis parsers: replication preamble, EOF-marked payload, replica
 * commands, RDB header peek. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "component/redis.h"

#define S(x) (const uint8_t *)(x), sizeof(x) - 1

static void test_preamble(void **state)
{
    (void)state;
    pf_resp_item it;
    assert_int_equal(pf_resp_parse_preamble(S(""), &it), 0);
    assert_int_equal(pf_resp_parse_preamble(S("\n+FULL"), &it), 1);
    assert_int_equal(it.kind, PF_RESP_NEWLINE);
    assert_int_equal(pf_resp_parse_preamble(S("+FULLRESYNC abc 0"), &it), 0);
    assert_int_equal(pf_resp_parse_preamble(S("+FULLRESYNC abc 0\r\n$12"), &it), 19);
    assert_int_equal(it.kind, PF_RESP_STATUS);
    assert_int_equal(it.line_len, 16);
    assert_memory_equal(it.line, "FULLRESYNC abc 0", 16);
    assert_int_equal(pf_resp_parse_preamble(S("-NOPERM no\r\n"), &it), 12);
    assert_int_equal(it.kind, PF_RESP_ERROR);
    assert_int_equal(pf_resp_parse_preamble(S("$1354\r\nREDIS"), &it), 7);
    assert_int_equal(it.kind, PF_RESP_BULK_LEN);
    assert_int_equal(it.bulk_len, 1354);
    assert_int_equal(
        pf_resp_parse_preamble(S("$EOF:0123456789012345678901234567890123456789\r\n"), &it), 47);
    assert_int_equal(it.kind, PF_RESP_BULK_EOF);
    assert_memory_equal(it.eof_mark, "0123456789012345678901234567890123456789", 40);
    /* Invalid: negative, not a number, too big, unknown type, over-long line. */
    assert_int_equal(pf_resp_parse_preamble(S("$-1\r\n"), &it), -1);
    assert_int_equal(pf_resp_parse_preamble(S("$12a\r\n"), &it), -1);
    assert_int_equal(pf_resp_parse_preamble(S("$99999999999999999999\r\n"), &it), -1);
    assert_int_equal(pf_resp_parse_preamble(S("$\r\n"), &it), -1);
    assert_int_equal(pf_resp_parse_preamble(S(":1\r\n"), &it), -1);
    assert_int_equal(pf_resp_parse_preamble(S("$EOF:short\r\n"), &it), -1);
    uint8_t big[PF_RESP_MAX_LINE + 10];
    memset(big, 'x', sizeof big);
    big[0] = '+';
    assert_int_equal(pf_resp_parse_preamble(big, sizeof big, &it), -1);
    assert_int_equal(pf_resp_parse_preamble(big, 100, &it), 0);
}

/* Feeds `data` in chunks of `step` and returns the payload found. */
static size_t eof_run(const char *mark, const uint8_t *data, size_t n, size_t step, uint8_t *out,
                      int *done)
{
    pf_rdb_eof st;
    pf_rdb_eof_init(&st, (const uint8_t *)mark);
    size_t total = 0;
    *done = 0;
    for (size_t i = 0; i < n && !*done; i += step) {
        size_t len = n - i < step ? n - i : step, o;
        *done = pf_rdb_eof_feed(&st, data + i, len, out + total, &o);
        total += o;
    }
    return total;
}

static void test_eof_mark(void **state)
{
    (void)state;
    const char *mark = "abcdefghijabcdefghijabcdefghijabcdefghij";
    uint8_t data[300], out[400];
    memset(data, 'R', 200);
    memcpy(data + 200, mark, 40);
    memset(data + 240, 'Z', 60); /* whatever follows the mark is not payload */
    for (size_t step = 1; step <= 300; step++) {
        int done;
        size_t n = eof_run(mark, data, 300, step, out, &done);
        assert_true(done);
        assert_int_equal(n, 200);
        for (size_t i = 0; i < n; i++)
            assert_int_equal(out[i], 'R');
    }
    /* No mark: everything but the last 40 bytes is payload, not done. */
    int done;
    size_t n = eof_run(mark, data, 200, 7, out, &done);
    assert_false(done);
    assert_int_equal(n, 160);
    /* An empty payload: just the mark. */
    n = eof_run(mark, (const uint8_t *)mark, 40, 3, out, &done);
    assert_true(done);
    assert_int_equal(n, 0);
    /* A near-miss of the mark inside the payload does not end it. */
    memcpy(data, mark, 39);
    n = eof_run(mark, data, 300, 16, out, &done);
    assert_true(done);
    assert_int_equal(n, 200);
    assert_memory_equal(out, mark, 39);
}

static void test_commands(void **state)
{
    (void)state;
    pf_resp_arg a[4];
    int n;
    const char *cmd = "*3\r\n$8\r\nREPLCONF\r\n$14\r\nlistening-port\r\n$4\r\n6380\r\n";
    size_t len = strlen(cmd);
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(pf_resp_parse_command((const uint8_t *)cmd, cut, a, 4, &n), 0);
    assert_int_equal(pf_resp_parse_command((const uint8_t *)cmd, len, a, 4, &n), (ssize_t)len);
    assert_int_equal(n, 3);
    assert_int_equal(a[1].len, 14);
    assert_memory_equal(a[2].p, "6380", 4);
    /* More arguments than slots: counted, not stored. */
    assert_int_equal(pf_resp_parse_command((const uint8_t *)cmd, len, a, 1, &n), (ssize_t)len);
    assert_int_equal(n, 3);
    assert_int_equal(pf_resp_parse_command(S("PING\r\n"), a, 4, &n), 6);
    assert_int_equal(n, 1);
    assert_int_equal(a[0].len, 4);
    assert_int_equal(pf_resp_parse_command(S("  SYNC  x\n"), a, 4, &n), 10);
    assert_int_equal(n, 2);
    assert_int_equal(pf_resp_parse_command(S("*1\r\n$4\r\nPINGxx"), a, 4, &n), -1);
    assert_int_equal(pf_resp_parse_command(S("*1\r\n:4\r\n"), a, 4, &n), -1);
    assert_int_equal(pf_resp_parse_command(S("*65\r\n"), a, 4, &n), -1);
    assert_int_equal(pf_resp_parse_command(S("*1\r\n$70000\r\n"), a, 4, &n), -1);
    assert_int_equal(pf_resp_parse_command(S("*-1\r\n"), a, 4, &n), -1);
}

static void test_rdb_has_keys(void **state)
{
    (void)state;
    /* Header, aux fields (plain and int-encoded), then SELECTDB / EOF. */
    static const uint8_t with_keys[] = "REDIS0010\xfa\x09redis-ver\x06"
                                       "7.0.15\xfa\x0aredis-bits\xc0\x40\xfe\x00\xfb\x01\x00";
    static const uint8_t empty[] = "REDIS0010\xfa\x09redis-ver\x06"
                                   "7.0.15\xfa\x05"
                                   "ctime\xc2\x01\x02\x03\x04\xff\x00\x00";
    assert_int_equal(pf_rdb_has_keys(with_keys, sizeof with_keys - 1), 1);
    assert_int_equal(pf_rdb_has_keys(empty, sizeof empty - 1), 0);
    assert_int_equal(pf_rdb_has_keys(with_keys, 12), -1);
    assert_int_equal(pf_rdb_has_keys(S("NOTREDIS0010")), -1);
    assert_int_equal(pf_rdb_has_keys(S("REDIS0010\xf7")), -1);
}

/* The restore's fake master on one end of a socket pair, a "replica" on the other:
 * returns what the master answered (NUL-terminated) and its verdict. */
static int handshake(const char *secret, const char *client, bool *psync, bool *capa_eof,
                     char *answer, size_t cap)
{
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    assert_int_equal(write(sv[1], client, strlen(client)), (ssize_t)strlen(client));
    pf_err err = {0};
    *psync = *capa_eof = false;
    int r = pf_redis_master_handshake(sv[0], secret, psync, capa_eof, &err);
    close(sv[0]);
    ssize_t n = read(sv[1], answer, cap - 1);
    answer[n > 0 ? n : 0] = 0;
    close(sv[1]);
    return r;
}

/* Finding 11: a connection that does not authenticate with the restore's masterauth gets
 * nothing of the RDB (no FULLRESYNC, no payload: the handshake never says 0). */
static void test_master_handshake_auth(void **state)
{
    (void)state;
    const char *secret = "0123456789abcdef0123456789abcdef01234567";
    char ans[512];
    bool psync, eof;
    assert_int_equal(handshake(secret, "PING\r\nREPLCONF listening-port 1\r\nPSYNC ? -1\r\n",
                               &psync, &eof, ans, sizeof ans),
                     1);
    assert_string_equal(ans, "+PONG\r\n-NOAUTH Authentication required.\r\n");
    assert_int_equal(handshake(secret, "PSYNC ? -1\r\n", &psync, &eof, ans, sizeof ans), 1);
    assert_int_equal(handshake(secret, "SYNC\r\n", &psync, &eof, ans, sizeof ans), 1);
    assert_int_equal(handshake(secret, "PING\r\nAUTH 0123456789abcdef\r\nPSYNC ? -1\r\n", &psync,
                               &eof, ans, sizeof ans),
                     1);
    assert_string_equal(ans, "+PONG\r\n-WRONGPASS invalid password\r\n");
    assert_int_equal(handshake(secret, "AUTH\r\nPSYNC ? -1\r\n", &psync, &eof, ans, sizeof ans), 1);
    /* What a replica given "masterauth <secret>" (and maybe masteruser) sends. */
    assert_int_equal(handshake(secret,
                               "*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nAUTH\r\n$40\r\n0123456789abcdef"
                               "0123456789abcdef01234567\r\nREPLCONF listening-port 6380\r\n"
                               "REPLCONF capa eof capa psync2\r\nPSYNC ? -1\r\n",
                               &psync, &eof, ans, sizeof ans),
                     0);
    assert_true(psync);
    assert_true(eof);
    assert_string_equal(ans, "+PONG\r\n+OK\r\n+OK\r\n+OK\r\n");
    assert_int_equal(handshake(secret,
                               "AUTH restorer 0123456789abcdef0123456789abcdef01234567\r\nSYNC\r\n",
                               &psync, &eof, ans, sizeof ans),
                     0);
    assert_false(psync);
    /* Without a secret (masterauth could not be set): any handshake, as before. */
    assert_int_equal(handshake(NULL, "PING\r\nPSYNC ? -1\r\n", &psync, &eof, ans, sizeof ans), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_preamble),
        cmocka_unit_test(test_eof_mark),
        cmocka_unit_test(test_commands),
        cmocka_unit_test(test_rdb_has_keys),
        cmocka_unit_test(test_master_handshake_auth),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
