/* libFuzzer: the hand-written Redis parsers (replication preamble, EOF-marked payload,
 * replica commands, RDB header peek) must never read out of bounds, whatever the bytes,
 * and must agree with themselves however the input is split. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "component/redis.h"

static void preamble(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        pf_resp_item it;
        ssize_t n = pf_resp_parse_preamble(data + pos, size - pos, &it);
        if (n <= 0)
            break;
        if ((size_t)n > size - pos)
            abort(); /* consumed more than it was given */
        if (it.line && (it.line < (const char *)data + pos ||
                        it.line + it.line_len > (const char *)data + pos + (size_t)n))
            abort();
        if (it.kind == PF_RESP_BULK_LEN && it.bulk_len < 0)
            abort();
        pos += (size_t)n;
    }
}

static void commands(const uint8_t *data, size_t size)
{
    size_t pos = 0;
    while (pos < size) {
        pf_resp_arg args[4];
        int nargs;
        ssize_t n = pf_resp_parse_command(data + pos, size - pos, args, 4, &nargs);
        if (n <= 0)
            break;
        if ((size_t)n > size - pos || nargs < 0 || nargs > 64)
            abort();
        for (int i = 0; i < nargs && i < 4; i++)
            if (args[i].p < data + pos || args[i].p + args[i].len > data + pos + (size_t)n)
                abort();
        pos += (size_t)n;
    }
}

/* The EOF-mark scanner: splitting the input anywhere must give the same payload. */
static void eof_mark(const uint8_t *data, size_t size)
{
    if (size < 41)
        return;
    const uint8_t *mark = data;
    const uint8_t *in = data + 40;
    size_t n = size - 40;
    size_t split = data[40] % (n + 1);
    uint8_t *out1 = malloc(n + 40), *out2 = malloc(n + 80);
    if (!out1 || !out2)
        abort();
    pf_rdb_eof a, b;
    size_t l1 = 0, l2 = 0, o;
    pf_rdb_eof_init(&a, mark);
    int d1 = pf_rdb_eof_feed(&a, in, n, out1, &l1);
    pf_rdb_eof_init(&b, mark);
    int d2 = pf_rdb_eof_feed(&b, in, split, out2, &o);
    l2 = o;
    if (!d2) {
        d2 = pf_rdb_eof_feed(&b, in + split, n - split, out2 + l2, &o);
        l2 += o;
    }
    if (d1 != d2 || (d1 && (l1 != l2 || memcmp(out1, out2, l1) != 0)))
        abort();
    if (!d1 && l1 + 40 != n && n >= 40)
        abort(); /* without the mark, all but the last 40 bytes come out */
    free(out1);
    free(out2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    preamble(data, size);
    commands(data, size);
    eof_mark(data, size);
    (void)pf_rdb_has_keys(data, size);
    return 0;
}
