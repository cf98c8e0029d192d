/* libFuzzer: the frames a repository server reads come from whoever holds the SSH key, and
 * the frames the ssh:// store reads from whoever runs the server. The input is cut into
 * frames as a reader does (a u32 length, then the body); each is decoded. Decoding must
 * never crash, hang or leak; a decoded frame must keep every bound (strings, DATA, the
 * entries of a listing), and encoding what was decoded must give the same bytes back for
 * the requests a server acts on. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "store/internal.h"
#include "store/proto.h"

static void check(const uint8_t *body, size_t n, const pf_proto_msg *m)
{
    if (strlen(m->str) > PF_PROTO_PATH_MAX)
        abort();
    if (m->type == PF_PT_DATA && (m->data_len == 0 || m->data_len > PF_PROTO_DATA_MAX))
        abort();
    if (m->type == PF_PT_ENTRIES) {
        size_t pos = 0, count = 0;
        char key[PF_STORE_KEY_MAX + 1];
        uint64_t size;
        while (pf_proto_entry_next(m, &pos, key, &size)) {
            if (strlen(key) == 0 || strlen(key) > PF_STORE_KEY_MAX)
                abort();
            count++;
        }
        if (count != m->count || pos != m->data_len)
            abort();
    }
    pf_buf b = PF_BUF_INIT;
    switch (m->type) {
    case PF_PT_PUT:
    case PF_PT_GET:
    case PF_PT_STAT:
    case PF_PT_LIST:
    case PF_PT_REMOVE:
        pf_proto_keyed(&b, m->type, m->str, m->a, m->b);
        break;
    case PF_PT_HELLO:
        pf_proto_hello(&b, m->version, m->str);
        break;
    case PF_PT_SWEEP:
        pf_proto_sweep(&b, (int64_t)m->a);
        break;
    default:
        break;
    }
    if (b.len && (b.len != n + 4 || memcmp(b.data + 4, body, n) != 0))
        abort();
    pf_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pf_proto_msg m; /* 4 KiB: not on the stack of every call */
    size_t off = 0;
    while (size - off >= 4) {
        uint32_t n;
        pf_err err = {0};
        if (pf_proto_frame_len(data + off, &n, &err) < 0)
            break;
        off += 4;
        if (n > size - off)
            break;
        if (pf_proto_decode(data + off, n, &m, &err) == 0)
            check(data + off, n, &m);
        else if (!err.msg[0])
            abort(); /* a refusal always says why */
        off += n;
    }
    return 0;
}
