/* libFuzzer: index file decoding. Whatever decodes re-encodes to the same bytes (or to the
 * canonical narrower form), and merges into an in-memory index where every blob is then
 * found and can be removed. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "repo/index.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pf_index_file f;
    pf_err err = {0};
    if (pf_index_file_decode(data, size, &f, &err))
        return 0;
    pf_buf b = PF_BUF_INIT;
    pf_index_file_encode(&f, &b);
    /* A "PFI2" file whose packs are all of kind 1 re-encodes as "PFI1", one byte shorter
     * per pack (FORMAT.md §18); anything else re-encodes to its own bytes. */
    int narrowed = !memcmp(data, "PFI2", 4) && !memcmp(b.data, "PFI1", 4);
    if (narrowed ? b.len != size - f.npacks : b.len != size || memcmp(b.data, data, size))
        abort();
    pf_index_file g;
    pf_buf again = PF_BUF_INIT;
    if (pf_index_file_decode(b.data, b.len, &g, &err))
        abort();
    pf_index_file_encode(&g, &again);
    if (again.len != b.len || memcmp(again.data, b.data, b.len))
        abort();
    pf_index_file_free(&g);
    pf_buf_free(&again);
    pf_buf_free(&b);

    pf_index *ix = pf_index_new();
    pf_index_merge(ix, &f);
    for (size_t i = 0; i < f.npacks; i++) {
        if (pf_index_find_pack(ix, f.packs[i].info.id) < 0)
            abort();
        for (size_t j = 0; j < f.packs[i].count; j++) {
            pf_blob_loc *l = pf_index_find(ix, f.packs[i].entries[j].id);
            if (!l || l->pack >= ix->npacks)
                abort();
        }
    }
    for (size_t i = 0; i < f.npacks; i++)
        for (size_t j = 0; j < f.packs[i].count; j++) {
            pf_index_remove(ix, f.packs[i].entries[j].id);
            if (pf_index_find(ix, f.packs[i].entries[j].id))
                abort();
        }
    if (ix->nblobs != 0)
        abort();
    pf_index_free(ix);
    pf_index_file_free(&f);
    return 0;
}
