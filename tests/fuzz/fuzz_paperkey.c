/* libFuzzer: reading a typed paper key must never crash or read out of bounds, whatever
 * the bytes; whatever it accepts must encode back to a sheet that reads the same. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/paperkey.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t key[PF_PAPERKEY_KEY_MAX], again[PF_PAPERKEY_KEY_MAX];
    size_t klen = sizeof key, alen = sizeof again;
    char id[PF_PAPERKEY_REPO_ID_MAX + 1], id2[PF_PAPERKEY_REPO_ID_MAX + 1];
    pf_err err = {0};
    if (pf_paperkey_decode((const char *)data, size, key, &klen, id, &err) != 0)
        return 0;
    pf_buf b = PF_BUF_INIT;
    if (pf_paperkey_encode(key, klen, id, &b, &err) != 0)
        abort();
    if (pf_paperkey_decode((const char *)b.data, b.len, again, &alen, id2, &err) != 0)
        abort();
    if (alen != klen || memcmp(again, key, klen) != 0 || strcmp(id, id2) != 0)
        abort();
    pf_buf_free(&b);
    return 0;
}
