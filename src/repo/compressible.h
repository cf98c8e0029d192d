/* Whether a blob is worth compressing: the packer asks before it compresses a blob whole.
 *
 * Most bytes of a Mastodon server are media (JPEG, PNG, MP4, WebP), the output of an
 * entropy coder: compressing them again gains nothing and costs a zstd pass. The rule
 * (docs/DECISIONS.md, "Which blobs are compressed") looks at a sample first, so that an
 * incompressible blob larger than PF_COMPRESS_SMALL costs a byte histogram of
 * PF_COMPRESS_SAMPLE bytes and one small zstd trial instead of a trial on its first 64 KiB:
 *
 * - blobs under 64 bytes: never (the frame and the tag would eat any gain);
 * - blobs of at most PF_COMPRESS_SMALL bytes: a zstd level-1 trial on the whole blob (the
 *   rule before this one, exactly);
 * - larger blobs: a sample of three windows of PF_COMPRESS_WINDOW bytes (start, middle,
 *   end) and its order-0 entropy H in bits per byte (corrected for the sample's size):
 *   - H <= PF_COMPRESS_H_LOW: yes, no trial (literal coding alone saves over 12% of the
 *     sample; compressing the whole blob then tells);
 *   - H >= PF_COMPRESS_H_HIGH: literal coding cannot save the 3% asked for, only repeats
 *     could: a repeats-only trial (zstd at PF_COMPRESS_LZ_LEVEL, literals stored raw) on
 *     PF_COMPRESS_PROBE bytes from the middle, which finds what a histogram cannot: a
 *     repeating pattern that uses every byte value, the repeated headers and names of a
 *     jar or a keyring;
 *   - in between, the rule before this one: a zstd level-1 trial on the first
 *     PF_COMPRESS_TRIAL bytes.
 * A trial says yes when it saves at least 1/32 (~3%) of its input.
 *
 * The caller still stores a blob raw when compressing it whole does not make it smaller. */
#ifndef PF_REPO_COMPRESSIBLE_H
#define PF_REPO_COMPRESSIBLE_H

#include <stddef.h>
#include <stdint.h>

#define PF_COMPRESS_WINDOW 2048u
#define PF_COMPRESS_SAMPLE (3u * PF_COMPRESS_WINDOW)
#define PF_COMPRESS_TRIAL 65536u
/* Bits per byte (docs/DECISIONS.md says why these values): at most H_LOW, the sample's
 * literals alone save over 12%; above H_HIGH at most (8 - 7.9) / 8 = 1.25%. */
#define PF_COMPRESS_H_LOW 7.0
#define PF_COMPRESS_H_HIGH 7.9
/* The level of the repeats-only trial (literals raw). */
#define PF_COMPRESS_LZ_LEVEL (-1)
/* ... on this many bytes from the middle. */
#define PF_COMPRESS_PROBE 8192u
#define PF_COMPRESS_SMALL (2u * PF_COMPRESS_PROBE)
/* A yes for a blob up to this size keeps the trial's own frame (see pf_compressible). */
#define PF_COMPRESS_FRAME 4096u

/* The order-0 entropy of p[0..n) in bits per byte with the Miller-Madow correction for a
 * sample of n bytes (the plain estimate of n random bytes falls short of 8 by about
 * 184/n). 0 for n == 0. Exposed for the tests. */
double pf_entropy_estimate(const uint8_t *p, size_t n);

/* 1 when the blob p[0..n) should be compressed whole, else 0. zctx is a ZSTD_CCtx the
 * trials may use; tmp (room for tmp_cap bytes, >= ZSTD_compressBound(n)) receives their
 * output. For a blob of at most PF_COMPRESS_FRAME bytes a yes leaves in tmp the level-1
 * trial's frame of the whole blob, of *frame bytes: the blob compressed already (mostly
 * directory trees: compressing one again at level 3 cost a second frame's setup, ~40 K
 * instructions, for a few bytes). Else *frame is 0 and tmp holds nothing of use. Never fails: an
 * error of a trial reads as "not worth it". */
int pf_compressible(void *zctx, uint8_t *tmp, size_t tmp_cap, const uint8_t *p, size_t n,
                    size_t *frame);

#endif
