/* What libssh2's transport costs per byte in libcrypto, against what the same cipher and
 * MAC cost when called in bulk: the bound of SFTP throughput (bench/RESULTS.md, "SFTP
 * throughput: what bounds it").
 *
 *   cc -O2 -o /tmp/sftp_cipher bench/sftp_cipher.c -lcrypto && /tmp/sftp_cipher [MIB]
 *
 * libssh2 (1.10 as in Debian 12, and 1.11 and master alike: transport.c, decrypt() and
 * _libssh2_transport_send()) calls EVP_Cipher once per 16-byte cipher block, copying each
 * block out and back, and computes the MAC of each packet with a fresh HMAC context. This
 * program does the same to MIB MiB (default 256) in 32 KiB packets, and then the same work
 * in one EVP_Cipher call per packet, as OpenSSH does; the runs alternate, 5 times each, and
 * the medians are printed as MiB per CPU-second (the process's CPU time, so other jobs on
 * the machine count little; the ratios are what to compare). */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PACKET 32768
#define ROUNDS 5

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t); /* CPU time: the load does not count */
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* One packet's cipher work, per block (libssh2) or whole (bulk). */
static void crypt_packet(EVP_CIPHER_CTX *c, unsigned char *p, int per_block)
{
    if (!per_block) {
        EVP_Cipher(c, p, p, PACKET);
        return;
    }
    unsigned char block[16];
    for (size_t i = 0; i < PACKET; i += 16) {
        EVP_Cipher(c, block, p + i, 16);
        memcpy(p + i, block, 16);
    }
}

/* One packet's MAC, with a fresh context as libssh2 makes one (or one reused). */
static void mac_packet(HMAC_CTX *reused, const unsigned char *key, const unsigned char *p,
                       unsigned char *out)
{
    unsigned int n = 0;
    HMAC_CTX *h = reused ? reused : HMAC_CTX_new();
    HMAC_Init_ex(h, key, 32, EVP_sha256(), NULL);
    HMAC_Update(h, p, PACKET);
    HMAC_Final(h, out, &n);
    if (!reused)
        HMAC_CTX_free(h);
}

int main(int argc, char **argv)
{
    size_t mib = argc > 1 ? strtoul(argv[1], NULL, 10) : 256;
    if (mib < 1)
        mib = 1;
    unsigned char key[32] = {1}, iv[16] = {2}, mac[64];
    unsigned char *buf = calloc(1, PACKET);
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    HMAC_CTX *h = HMAC_CTX_new();
    if (!buf || !c || !h || !EVP_CipherInit(c, EVP_aes_128_ctr(), key, iv, 0))
        return 1;
    size_t packets = mib * 1048576 / PACKET;
    double t[4][ROUNDS];
    for (int r = 0; r < ROUNDS; r++) {
        for (int mode = 0; mode < 4; mode++) {
            double t0 = now();
            for (size_t i = 0; i < packets; i++) {
                if (mode < 2)
                    crypt_packet(c, buf, mode == 0);
                else
                    mac_packet(mode == 2 ? NULL : h, key, buf, mac);
            }
            t[mode][r] = (double)mib / (now() - t0);
        }
    }
    static const char *names[] = {
        "aes128-ctr, one EVP_Cipher per 16-byte block (libssh2)",
        "aes128-ctr, one EVP_Cipher per 32 KiB packet (bulk)",
        "hmac-sha2-256, a new HMAC context per packet (libssh2)",
        "hmac-sha2-256, one context reused",
    };
    for (int mode = 0; mode < 4; mode++) {
        qsort(t[mode], ROUNDS, sizeof t[mode][0], cmp_double);
        printf("%-58s %8.0f MiB/s\n", names[mode], t[mode][ROUNDS / 2]);
    }
    printf("per-block cipher / bulk cipher time: %.1fx\n", t[1][ROUNDS / 2] / t[0][ROUNDS / 2]);
    HMAC_CTX_free(h);
    EVP_CIPHER_CTX_free(c);
    free(buf);
    return 0;
}
