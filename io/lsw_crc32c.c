#include "lsw_crc32c.h"

#include <string.h>

#define POLY 0x82F63B78u

static uint32_t table[8][256];
static int table_ready;

static void make_tables(void)
{
    for (uint32_t n = 0; n < 256; n++) {
        uint32_t c = n;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ POLY : c >> 1;
        table[0][n] = c;
    }
    for (uint32_t n = 0; n < 256; n++)
        for (int t = 1; t < 8; t++)
            table[t][n] = (table[t - 1][n] >> 8) ^ table[0][table[t - 1][n] & 0xff];
    table_ready = 1;
}

/* Portable slicing-by-8 on the raw (unconditioned) register. */
static uint32_t crc_sw(uint32_t c, const unsigned char *p, size_t n)
{
    if (!table_ready)
        make_tables();
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8); /* little endian assumed (x86-64, aarch64) */
        w ^= c;
        c = table[7][w & 0xff] ^ table[6][(w >> 8) & 0xff] ^ table[5][(w >> 16) & 0xff] ^
            table[4][(w >> 24) & 0xff] ^ table[3][(w >> 32) & 0xff] ^ table[2][(w >> 40) & 0xff] ^
            table[1][(w >> 48) & 0xff] ^ table[0][w >> 56];
        p += 8;
        n -= 8;
    }
    while (n--)
        c = (c >> 8) ^ table[0][(c ^ *p++) & 0xff];
    return c;
}

static uint32_t multmodp(uint32_t a, uint32_t b);
static uint32_t x8nmodp(uint64_t n);

#if defined(__x86_64__) && defined(__GNUC__)
/* SSE4.2 crc32 instruction, three independent streams to hide its 3-cycle
 * latency, joined with the combine operator below. */

__attribute__((target("sse4.2"))) static uint32_t crc_hw1(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        n -= 8;
    }
    c = (uint32_t)c64;
    while (n--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}

__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    const size_t block = 8192; /* bytes per stream per round */
    while (n >= 3 * block) {
        uint64_t c0 = c, c1 = 0xFFFFFFFFu, c2 = 0xFFFFFFFFu;
        const unsigned char *p1 = p + block, *p2 = p + 2 * block;
        for (size_t i = 0; i < block; i += 8) {
            uint64_t w0, w1, w2;
            memcpy(&w0, p + i, 8);
            memcpy(&w1, p1 + i, 8);
            memcpy(&w2, p2 + i, 8);
            c0 = __builtin_ia32_crc32di(c0, w0);
            c1 = __builtin_ia32_crc32di(c1, w1);
            c2 = __builtin_ia32_crc32di(c2, w2);
        }
        /* The streams 1 and 2 started from an all-ones register, i.e. they are
         * conditioned CRCs of their blocks; combine them conditioned, with the
         * shift x^(8·block) mod P computed once. */
        static uint32_t shift;
        if (!shift)
            shift = x8nmodp(block);
        uint32_t a = ~(uint32_t)c0;
        a = multmodp(shift, a) ^ ~(uint32_t)c1;
        a = multmodp(shift, a) ^ ~(uint32_t)c2;
        c = ~a;
        p += 3 * block;
        n -= 3 * block;
    }
    return crc_hw1(c, p, n);
}
#endif

uint32_t lsw_crc32c(uint32_t crc, const void *buf, size_t n)
{
    uint32_t c = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
    static int have_hw = -1;
    if (have_hw < 0) {
        __builtin_cpu_init();
        have_hw = __builtin_cpu_supports("sse4.2") ? 1 : 0;
    }
    if (have_hw)
        return ~crc_hw(c, buf, n);
#endif
    return ~crc_sw(c, buf, n);
}

/* a·b mod P over GF(2), reflected bit order (bit 31 is x^0). */
static uint32_t multmodp(uint32_t a, uint32_t b)
{
    uint32_t m = 1u << 31, p = 0;
    for (;;) {
        if (a & m) {
            p ^= b;
            if ((a & (m - 1)) == 0)
                break;
        }
        m >>= 1;
        b = (b & 1) ? (b >> 1) ^ POLY : b >> 1;
    }
    return p;
}

/* x^(8·n) mod P by square-and-multiply over the bits of n. */
static uint32_t x8nmodp(uint64_t n)
{
    uint32_t x2n[64];
    uint32_t p = 1u << 30; /* x^1 */
    x2n[0] = p;
    for (int k = 1; k < 64; k++)
        x2n[k] = p = multmodp(p, p); /* x2n[k] = x^(2^k) */
    uint32_t xp = 1u << 31;         /* x^0 */
    int k = 3;                      /* 8·n = n·2^3 */
    while (n) {
        if (n & 1)
            xp = multmodp(x2n[k], xp);
        n >>= 1;
        k++;
    }
    return xp;
}

uint32_t lsw_crc32c_combine(uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
    return multmodp(x8nmodp(len_b), crc_a) ^ crc_b;
}

uint64_t lsw_fnv1a64(uint64_t h, const void *buf, size_t n)
{
    const unsigned char *p = buf;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}
