#include "repo/chunker.h"

#include "common/buf.h"
#include "repo/crypto.h"

static uint64_t top_bits_mask(unsigned bits)
{
    return bits >= 64 ? UINT64_MAX : ((UINT64_C(1) << bits) - 1) << (64 - bits);
}

int pf_chunker_init(pf_chunker *c, const uint8_t seed[32], size_t min, size_t avg, size_t max,
                    pf_err *err)
{
    unsigned bits = 0;
    while ((size_t)1 << bits < avg)
        bits++;
    if (((size_t)1 << bits) != avg || bits < 8 || bits > 30 || !(min < avg && avg < max))
        return pf_err_set(err, PF_ECORRUPT, "invalid chunker parameters min=%zu avg=%zu max=%zu",
                          min, avg, max);
    uint8_t table[256 * 8];
    if (pf_hkdf(seed, 32, NULL, 0, "permafrost chunker gear", table, sizeof table, err))
        return -1;
    for (int i = 0; i < 256; i++)
        c->gear[i] = pf_le64(table + 8 * i);
    c->min = min;
    c->avg = avg;
    c->max = max;
    /* The gear hash shifts left, so its top bits depend on the most recent 64 bytes. */
    c->mask_small = top_bits_mask(bits + 2);
    c->mask_large = top_bits_mask(bits - 2);
    return 0;
}

size_t pf_chunker_next(const pf_chunker *c, pf_chunk_scan *st, const uint8_t *p, size_t n, bool eof)
{
    if (n <= c->min)
        return eof ? n : 0;
    size_t limit = n < c->max ? n : c->max;
    size_t normal = c->avg < limit ? c->avg : limit;
    /* The hash starts from zero at min: the bytes before it never decide a cut. */
    size_t i = st->pos > c->min ? st->pos : c->min;
    uint64_t h = st->pos > c->min ? st->h : 0;
    for (; i < normal; i++) {
        h = (h << 1) + c->gear[p[i]];
        if (!(h & c->mask_small))
            return i + 1;
    }
    for (; i < limit; i++) {
        h = (h << 1) + c->gear[p[i]];
        if (!(h & c->mask_large))
            return i + 1;
    }
    if (limit == c->max || eof)
        return limit;
    st->pos = i;
    st->h = h;
    return 0;
}

size_t pf_chunker_cut(const pf_chunker *c, const uint8_t *p, size_t n, bool eof)
{
    pf_chunk_scan st = {0, 0};
    return pf_chunker_next(c, &st, p, n, eof);
}
