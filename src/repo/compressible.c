#include "repo/compressible.h"

#include <math.h>
#include <string.h>
#include <zstd.h>

double pf_entropy_estimate(const uint8_t *p, size_t n)
{
    if (!n)
        return 0;
    /* Four tables so that a run of one byte value does not serialise on one counter. */
    uint32_t c[4][256];
    memset(c, 0, sizeof c);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        c[0][w & 0xff]++;
        c[1][(w >> 8) & 0xff]++;
        c[2][(w >> 16) & 0xff]++;
        c[3][(w >> 24) & 0xff]++;
        c[0][(w >> 32) & 0xff]++;
        c[1][(w >> 40) & 0xff]++;
        c[2][(w >> 48) & 0xff]++;
        c[3][w >> 56]++;
    }
    for (; i < n; i++)
        c[0][p[i]]++;
    /* H = log2(n) - (1/n) sum c log2 c */
    double sum = 0;
    unsigned used = 0;
    for (int b = 0; b < 256; b++) {
        uint32_t k = c[0][b] + c[1][b] + c[2][b] + c[3][b];
        if (k) {
            sum += k * (double)log2f((float)k); /* to 1e-7: plenty for a threshold */
            used++;
        }
    }
    double h = log2((double)n) - sum / (double)n;
    return h + (used - 1) / (2.0 * (double)n * M_LN2);
}

/* zstd at level on p[0..n) into tmp: 1 when it saves at least 1/32. Level 1 decides as the
 * blob's own level would (what is incompressible at 1 is at 3) at half the cost. A
 * negative level codes literals raw and skips ahead faster where nothing matches: it finds
 * repeats only, at 60% of level 1's cost on random bytes. */
static int trial(void *zctx, uint8_t *tmp, size_t cap, const uint8_t *p, size_t n, int level)
{
    size_t c = ZSTD_compressCCtx(zctx, tmp, cap, p, n, level);
    return !ZSTD_isError(c) && c < n - n / 32;
}

/* The level-1 trial on the whole blob: a yes leaves its frame in tmp. */
static int trial_whole(void *zctx, uint8_t *tmp, size_t cap, const uint8_t *p, size_t n,
                       size_t *frame)
{
    size_t c = ZSTD_compressCCtx(zctx, tmp, cap, p, n, 1);
    if (ZSTD_isError(c) || c >= n - n / 32)
        return 0;
    *frame = c;
    return 1;
}

int pf_compressible(void *zctx, uint8_t *tmp, size_t tmp_cap, const uint8_t *p, size_t n,
                    size_t *frame)
{
    *frame = 0;
    if (n < 64)
        return 0;
    if (n <= PF_COMPRESS_FRAME)
        return trial_whole(zctx, tmp, tmp_cap, p, n, frame);
    if (n <= PF_COMPRESS_SMALL) /* the trial costs about what a sample would */
        return trial(zctx, tmp, tmp_cap, p, n, 1);
    /* Start and end because containers keep their tables there (an MP4's moov, a JPEG's
     * markers and tables); the middle for the bulk. */
    const size_t w = PF_COMPRESS_WINDOW;
    uint8_t sample[PF_COMPRESS_SAMPLE];
    memcpy(sample, p, w);
    memcpy(sample + w, p + n / 2 - w / 2, w);
    memcpy(sample + 2 * w, p + n - w, w);
    double h = pf_entropy_estimate(sample, sizeof sample);
    if (h <= PF_COMPRESS_H_LOW)
        return 1;
    if (h >= PF_COMPRESS_H_HIGH)
        return trial(zctx, tmp, tmp_cap, p + n / 2 - PF_COMPRESS_PROBE / 2, PF_COMPRESS_PROBE,
                     PF_COMPRESS_LZ_LEVEL);
    /* Repeats far apart (a PNG's deflate stream, a tar of similar files) are what a
     * sample's windows cannot see: here the trial is the rule before this one's, on up to
     * 64 KiB from the start. */
    return trial(zctx, tmp, tmp_cap, p, n < PF_COMPRESS_TRIAL ? n : PF_COMPRESS_TRIAL, 1);
}
