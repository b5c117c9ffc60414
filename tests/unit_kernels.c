/* unit_kernels — exactness tests of engine/lsw_kernels (docs/numerics.md, docs/statistics.md).
 *
 * Every kernel is compared against an oracle written a different way:
 * bit construction for widening, a double-precision "nearest neighbour"
 * search for bf16 rounding, GCC's _Float16 (IEEE RNE) and a double oracle for
 * f16, volatile scalar arithmetic for the weighted sum, and a plain double
 * loop for the MAV sum.
 */
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_kernels.h"

#include "lsw_test.h"

/* Aggregate a loop of many comparisons into one CHECK, reporting the first
 * few mismatches individually. */
#define MISMATCH(cnt, ...)                                                \
    do {                                                                  \
        if ((cnt)++ < 5) {                                                \
            fprintf(stderr, "  mismatch: ");                              \
            fprintf(stderr, __VA_ARGS__);                                 \
            fputc('\n', stderr);                                          \
        }                                                                 \
    } while (0)

static float f_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng(void)   /* splitmix64, fixed seed */
{
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* ------------------------------------------------------------ oracles */

/* f32 → bf16 by choosing the nearer of the two neighbouring bf16 values in
 * double arithmetic; ties go to the even mantissa; NaN → 0x7FC0. */
static uint16_t oracle_bf16(float f)
{
    if (isnan(f)) return 0x7FC0;
    uint32_t u = u_of(f);
    uint32_t sign = u & 0x80000000u;
    uint32_t mag = u & 0x7FFFFFFFu;
    uint32_t lo = mag & 0xFFFF0000u;          /* bf16 at or below |f| */
    if (lo == mag) return (uint16_t)((sign | lo) >> 16);
    uint32_t hi = lo + 0x10000u;              /* next bf16 above |f| */
    double x = fabs((double)f);
    double dlo = (double)f_of(lo);
    /* Above the largest finite bf16 the next value would be 2^128. */
    double dhi = hi == 0x7F800000u ? ldexp(1.0, 128) : (double)f_of(hi);
    double dl = x - dlo, dh = dhi - x;
    uint32_t pick;
    if (dl < dh) pick = lo;
    else if (dh < dl) pick = hi;
    else pick = ((lo >> 16) & 1u) ? hi : lo;
    return (uint16_t)((sign | pick) >> 16);
}

/* f32 → f16 in double: quantise |f| to the f16 grid with rint (RNE), then
 * encode the result with frexp. */
static uint16_t oracle_f16_double(float f)
{
    if (isnan(f)) return 0x7E00;
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double x = fabs((double)f);
    if (x >= 65520.0) return sign | 0x7C00;   /* halfway 65504..65536 and up */
    double q;
    if (x < ldexp(1.0, -14)) q = ldexp(1.0, -24);
    else {
        int e;
        frexp(x, &e);                         /* x = m·2^e, m in [0.5, 1) */
        q = ldexp(1.0, e - 1 - 10);
    }
    double k = rint(x / q);
    double v = k * q;
    if (v < ldexp(1.0, -14)) return sign | (uint16_t)k;  /* subnormal or zero */
    int e;
    double m = frexp(v, &e);                  /* v = m·2^e */
    int E = e - 1;                            /* v = (2m)·2^E, 2m in [1, 2) */
    uint16_t mant = (uint16_t)((2.0 * m - 1.0) * 1024.0);
    return sign | (uint16_t)((E + 15) << 10) | mant;
}

/* f16 → value in double, by formula. */
static double oracle_f16_value(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v;
    if (e == 0) v = ldexp((double)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexp(1.0 + m / 1024.0, e - 15);
    return s ? -v : v;
}

#if defined(__FLT16_MAX__)
#define HAVE_FLOAT16 1
static uint16_t oracle_f16_gcc(float f)
{
    volatile float vf = f;
    _Float16 h = (_Float16)vf;
    uint16_t u;
    memcpy(&u, &h, 2);
    return u;
}
#else
#define HAVE_FLOAT16 0
#endif

/* ------------------------------------------------------------ bf16 tests */

static void test_bf16_all_patterns(void)
{
    long bad_widen = 0, bad_round = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lsw_bf16_to_f32((uint16_t)h);
        uint32_t want = h << 16;
        if (u_of(f) != want) MISMATCH(bad_widen, "bf16 %04x -> %08x", h, u_of(f));
        uint16_t back = lsw_f32_to_bf16(f);
        int isnan_pat = (h & 0x7F80u) == 0x7F80u && (h & 0x7Fu);
        uint16_t wb = isnan_pat ? 0x7FC0 : (uint16_t)h;
        if (back != wb) MISMATCH(bad_round, "bf16 %04x round-trip -> %04x", h, back);
    }
    CHECK(bad_widen == 0, "%ld bf16->f32 mismatches", bad_widen);
    CHECK(bad_round == 0, "%ld bf16 round-trip mismatches", bad_round);
}

static void test_bf16_rounding(void)
{
    static const uint32_t lows[] = {0x0000, 0x0001, 0x3FFF, 0x4000, 0x7FFE, 0x7FFF,
                                    0x8000, 0x8001, 0xBFFF, 0xC000, 0xFFFE, 0xFFFF};
    long bad = 0;
    for (uint32_t h = 0; h < 65536; h++)
        for (size_t j = 0; j < sizeof lows / sizeof lows[0]; j++) {
            uint32_t u = (h << 16) | lows[j];
            float f = f_of(u);
            uint16_t got = lsw_f32_to_bf16(f), want = oracle_bf16(f);
            if (got != want) MISMATCH(bad, "f32 %08x -> %04x, oracle %04x", u, got, want);
        }
    CHECK(bad == 0, "%ld mismatches over upper halves x lower halves", bad);

    bad = 0;
    for (long i = 0; i < 4000000; i++) {
        uint32_t u = (uint32_t)rng();
        float f = f_of(u);
        uint16_t got = lsw_f32_to_bf16(f), want = oracle_bf16(f);
        if (got != want) MISMATCH(bad, "random f32 %08x -> %04x, oracle %04x", u, got, want);
    }
    CHECK(bad == 0, "%ld mismatches over random patterns", bad);

    /* Explicit cases. */
    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x3F808000u, 0x3F80}, /* 1 + 2^-8: tie, 0x3F80 is even */
        {0x3F818000u, 0x3F82}, /* tie, 0x3F81 odd -> up */
        {0x3F808001u, 0x3F81}, /* just above the tie */
        {0x3F807FFFu, 0x3F80}, /* just below the tie */
        {0x3F80FFFFu, 0x3F81},
        {0x00000000u, 0x0000}, /* +0 */
        {0x80000000u, 0x8000}, /* -0 */
        {0x00000001u, 0x0000}, /* smallest subnormal rounds to +0 */
        {0x80000001u, 0x8000},
        {0x00008000u, 0x0000}, /* tie between 0 and 0x0001: even -> 0 */
        {0x00018000u, 0x0002}, /* tie between 0x0001 and 0x0002: even */
        {0x00008001u, 0x0001}, /* subnormal not flushed */
        {0x00400000u, 0x0040}, /* subnormal exactly representable */
        {0x807FFFFFu, 0x8080}, /* largest negative subnormal -> -min normal */
        {0x007F8000u, 0x0080}, /* tie 0x007F/0x0080: even 0x0080 */
        {0x7F7F7FFFu, 0x7F7F}, /* largest finite stays */
        {0x7F7F8000u, 0x7F80}, /* tie at the top: even = inf */
        {0x7F7FFFFFu, 0x7F80}, /* FLT_MAX -> inf */
        {0xFF7F8000u, 0xFF80}, /* -> -inf */
        {0x7F800000u, 0x7F80}, /* inf */
        {0xFF800000u, 0xFF80}, /* -inf */
        {0x7F800001u, 0x7FC0}, /* sNaN */
        {0x7FC00000u, 0x7FC0}, /* qNaN */
        {0xFFC00000u, 0x7FC0}, /* negative NaN: sign dropped */
        {0xFFFFFFFFu, 0x7FC0},
        {0x7FFF0000u, 0x7FC0}, /* NaN whose upper half alone is a NaN payload */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = lsw_f32_to_bf16(f_of(cases[i].in));
        CHECK(got == cases[i].out, "f32 %08x -> %04x, want %04x", cases[i].in, got, cases[i].out);
    }
}

/* ------------------------------------------------------------ f16 tests */

static void test_f16_all_patterns(void)
{
    long bad_val = 0, bad_rt = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        float f = lsw_f16_to_f32((uint16_t)h);
        double want = oracle_f16_value((uint16_t)h);
        int isnan_pat = (h & 0x7C00u) == 0x7C00u && (h & 0x3FFu);
        if (isnan_pat) {
            /* exact widening keeps sign and payload */
            uint32_t wbits = ((h & 0x8000u) << 16) | 0x7F800000u | ((h & 0x3FFu) << 13);
            if (!isnan(f) || u_of(f) != wbits) MISMATCH(bad_val, "f16 NaN %04x -> %08x", h, u_of(f));
        } else if ((double)f != want || !signbit(f) != !signbit(want)) {
            MISMATCH(bad_val, "f16 %04x -> %a, want %a", h, (double)f, want);
        }
        uint16_t back = lsw_f32_to_f16(f);
        uint16_t wb = isnan_pat ? 0x7E00 : (uint16_t)h;
        if (back != wb) MISMATCH(bad_rt, "f16 %04x round-trip -> %04x", h, back);
#if HAVE_FLOAT16
        if (!isnan_pat) {
            _Float16 hh;
            uint16_t hv = (uint16_t)h;
            memcpy(&hh, &hv, 2);
            volatile _Float16 vh = hh;
            float g = (float)vh;
            if (u_of(g) != u_of(f)) MISMATCH(bad_val, "f16 %04x -> %08x, _Float16 %08x", h, u_of(f), u_of(g));
        }
#endif
    }
    CHECK(bad_val == 0, "%ld f16->f32 mismatches", bad_val);
    CHECK(bad_rt == 0, "%ld f16 round-trip mismatches", bad_rt);
}

static long f16_check_one(uint32_t u, long *bad)
{
    float f = f_of(u);
    uint16_t got = lsw_f32_to_f16(f);
    uint16_t want = oracle_f16_double(f);
    if (got != want) MISMATCH(*bad, "f32 %08x -> f16 %04x, double oracle %04x", u, got, want);
#if HAVE_FLOAT16
    if (!isnan(f)) {
        uint16_t g = oracle_f16_gcc(f);
        if (got != g) MISMATCH(*bad, "f32 %08x -> f16 %04x, _Float16 %04x", u, got, g);
    }
#endif
    return 0;
}

static void test_f16_rounding(void)
{
    long bad = 0;
    /* Every 97th f32 pattern (97 is prime, so all residues of the low bits occur). */
    for (uint64_t u = 0; u < (1ull << 32); u += 97) f16_check_one((uint32_t)u, &bad);
    CHECK(bad == 0, "%ld mismatches over f32 patterns with stride 97", bad);

    /* LSW_EXHAUSTIVE=1: all 2^32 patterns, f16 and bf16 (minutes, not in CI). */
    const char *ex = getenv("LSW_EXHAUSTIVE");
    if (ex && *ex == '1') {
        long bad16 = 0, badbf = 0;
        for (uint64_t u = 0; u < (1ull << 32); u++) {
            float f = f_of((uint32_t)u);
            uint16_t got = lsw_f32_to_f16(f);
#if HAVE_FLOAT16
            uint16_t want = isnan(f) ? 0x7E00 : oracle_f16_gcc(f);
#else
            uint16_t want = oracle_f16_double(f);
#endif
            if (got != want) MISMATCH(bad16, "f32 %08x -> f16 %04x, want %04x", (uint32_t)u, got, want);
            uint16_t gb = lsw_f32_to_bf16(f), wb = oracle_bf16(f);
            if (gb != wb) MISMATCH(badbf, "f32 %08x -> bf16 %04x, want %04x", (uint32_t)u, gb, wb);
        }
        CHECK(bad16 == 0, "%ld f16 mismatches over all 2^32 f32 patterns", bad16);
        CHECK(badbf == 0, "%ld bf16 mismatches over all 2^32 f32 patterns", badbf);
    }

    /* Dense neighbourhoods of the interesting boundaries, both signs:
     * zero, smallest subnormal and its halfway point, subnormal/normal
     * boundary, 1.0, the largest finite (65504), the overflow halfway point
     * (65520), infinity, and every f16 grid point's halfway point. */
    bad = 0;
    static const uint32_t centres[] = {
        0x00000000u, 0x33000000u /* 2^-25 */, 0x33800000u /* 2^-24 */,
        0x33C00000u /* 1.5·2^-24 */, 0x387FC000u /* 2^-14 - 2^-24 */,
        0x38800000u /* 2^-14 */, 0x3F800000u /* 1 */, 0x477FE000u /* 65504 */,
        0x477FF000u /* 65520 */, 0x47800000u /* 65536 */, 0x7F800000u /* inf */,
        0x7F7FFFFFu /* FLT_MAX */, 0x2F800000u /* far below f16 range */,
    };
    for (size_t c = 0; c < sizeof centres / sizeof centres[0]; c++)
        for (int64_t d = -70000; d <= 70000; d++) {
            int64_t v = (int64_t)centres[c] + d;
            if (v < 0 || v > 0x7FFFFFFF) continue;
            f16_check_one((uint32_t)v, &bad);
            f16_check_one((uint32_t)v | 0x80000000u, &bad);
        }
    CHECK(bad == 0, "%ld mismatches near boundaries", bad);

    bad = 0;
    for (uint32_t h = 0; h < 0x7C00u; h++) {   /* halfway points between f16 neighbours */
        float a = lsw_f16_to_f32((uint16_t)h);
        double mid = h == 0x7BFFu ? 65520.0 : ((double)a + (double)lsw_f16_to_f32((uint16_t)(h + 1))) / 2.0;
        uint32_t um = u_of((float)mid);        /* exact: f16 halfway points fit in f32 */
        for (int d = -2; d <= 2; d++) {
            f16_check_one(um + (uint32_t)d, &bad);
            f16_check_one((um + (uint32_t)d) | 0x80000000u, &bad);
        }
    }
    CHECK(bad == 0, "%ld mismatches at halfway points", bad);

    bad = 0;
    for (long i = 0; i < 2000000; i++) f16_check_one((uint32_t)rng(), &bad);
    CHECK(bad == 0, "%ld mismatches over random patterns", bad);

    static const struct { uint32_t in; uint16_t out; } cases[] = {
        {0x00000000u, 0x0000}, {0x80000000u, 0x8000},
        {0x33800000u, 0x0001}, /* 2^-24: smallest subnormal */
        {0x33000000u, 0x0000}, /* 2^-25: tie, even -> 0 */
        {0x33000001u, 0x0001}, /* just above -> 1 */
        {0x33C00000u, 0x0002}, /* 1.5·2^-24: tie, even -> 2 */
        {0xB3800000u, 0x8001},
        {0x38800000u, 0x0400}, /* 2^-14 */
        {0x387FE000u, 0x0400}, /* 2^-14 - 2^-25: tie, up to even 0x400 */
        {0x3F800000u, 0x3C00}, /* 1 */
        {0x3F801000u, 0x3C00}, /* 1 + 2^-11: tie, even */
        {0x3F803000u, 0x3C02}, /* 1 + 3·2^-11: tie, even up */
        {0x477FE000u, 0x7BFF}, /* 65504 */
        {0x477FEFFFu, 0x7BFF},
        {0x477FF000u, 0x7C00}, /* 65520 -> inf */
        {0xC77FF000u, 0xFC00},
        {0x7F800000u, 0x7C00}, {0xFF800000u, 0xFC00},
        {0x7FC00000u, 0x7E00}, {0xFFC00000u, 0x7E00}, {0x7F800001u, 0x7E00},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uint16_t got = lsw_f32_to_f16(f_of(cases[i].in));
        CHECK(got == cases[i].out, "f32 %08x -> f16 %04x, want %04x", cases[i].in, got, cases[i].out);
    }
}

/* ------------------------------------------------ block conversions */

static void test_block_conversions(void)
{
    static const lsw_dtype dts[] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    size_t n = 3000;   /* not a multiple of any chunk size */
    uint32_t *raw = malloc(n * 4);
    float *wide = malloc(n * 4), *src = malloc(n * 4);
    unsigned char *narrow = malloc(n * 4 + 1);
    for (size_t i = 0; i < n; i++) raw[i] = (uint32_t)rng();
    for (size_t d = 0; d < 3; d++) {
        lsw_dtype dt = dts[d];
        size_t esz = lsw_dtype_size(dt);
        /* Unaligned source (offset by one byte) to exercise memcpy loads. */
        unsigned char *buf = malloc(n * esz + 1);
        memcpy(buf + 1, raw, n * esz);
        lsw_to_f32(dt, buf + 1, wide, n);
        long bad = 0;
        for (size_t i = 0; i < n; i++) {
            float want;
            if (dt == LSW_DT_F32) { uint32_t v; memcpy(&v, buf + 1 + 4 * i, 4); want = f_of(v); }
            else {
                uint16_t v; memcpy(&v, buf + 1 + 2 * i, 2);
                want = dt == LSW_DT_BF16 ? lsw_bf16_to_f32(v) : lsw_f16_to_f32(v);
            }
            if (u_of(wide[i]) != u_of(want)) MISMATCH(bad, "to_f32 dt=%d i=%zu", (int)dt, i);
        }
        CHECK(bad == 0, "lsw_to_f32 %s: %ld mismatches", lsw_dtype_name(dt), bad);

        for (size_t i = 0; i < n; i++) src[i] = f_of((uint32_t)rng());
        lsw_from_f32(dt, src, narrow + 1, n);
        bad = 0;
        for (size_t i = 0; i < n; i++) {
            if (dt == LSW_DT_F32) {
                uint32_t v; memcpy(&v, narrow + 1 + 4 * i, 4);
                if (v != u_of(src[i])) MISMATCH(bad, "from_f32 F32 i=%zu", i);
            } else {
                uint16_t v; memcpy(&v, narrow + 1 + 2 * i, 2);
                uint16_t want = dt == LSW_DT_BF16 ? oracle_bf16(src[i]) : oracle_f16_double(src[i]);
                if (v != want) MISMATCH(bad, "from_f32 %s i=%zu: %04x want %04x", lsw_dtype_name(dt), i, v, want);
            }
        }
        CHECK(bad == 0, "lsw_from_f32 %s: %ld mismatches", lsw_dtype_name(dt), bad);
        free(buf);
    }
    free(raw); free(wide); free(src); free(narrow);
}

/* ------------------------------------------------------------ wsum */

static float load_as_f32(lsw_dtype dt, const void *p, size_t i)
{
    const unsigned char *c = p;
    if (dt == LSW_DT_F32) { uint32_t v; memcpy(&v, c + 4 * i, 4); return f_of(v); }
    uint16_t v; memcpy(&v, c + 2 * i, 2);
    if (dt == LSW_DT_BF16) return f_of((uint32_t)v << 16);
    return (float)oracle_f16_value(v);   /* exact: every f16 is an f32 */
}

/* out = round_out(((w0*x0) + w1*x1) + ...), with volatile temporaries so that
 * each product and each sum is rounded to f32 on its own. */
static uint32_t ref_wsum(lsw_dtype out_dt, size_t k, const lsw_dtype *dt, const void *const *in,
                         const float *w, size_t i)
{
    volatile float acc = w[0] * load_as_f32(dt[0], in[0], i);
    for (size_t j = 1; j < k; j++) {
        volatile float p = w[j] * load_as_f32(dt[j], in[j], i);
        acc = acc + p;
    }
    float a = acc;
    if (out_dt == LSW_DT_F32) return u_of(a);
    if (out_dt == LSW_DT_BF16) return oracle_bf16(a);
    return oracle_f16_double(a);
}

/* A value of dtype dt: random bits mostly, with specials mixed in. */
static void fill_random(lsw_dtype dt, void *p, size_t n, int mode)
{
    unsigned char *c = p;
    for (size_t i = 0; i < n; i++) {
        uint64_t r = rng();
        float f;
        switch (mode) {
        case 0: /* weight-like values, N(0, ~0.02)-ish magnitudes */
            f = (float)(((double)(r & 0xFFFFFF) / 16777216.0 - 0.5) * 0.08);
            break;
        default: { /* raw bit patterns of the dtype, specials included */
            static const uint32_t sp[] = {0x00000000u, 0x80000000u, 0x7F800000u, 0xFF800000u,
                                          0x7FC00000u, 0x00000001u, 0x7F7FFFFFu, 0xFF7FFFFFu};
            if ((r & 7) == 0) f = f_of(sp[(r >> 3) & 7]);
            else f = f_of((uint32_t)(r >> 32));
        }
        }
        if (dt == LSW_DT_F32) memcpy(c + 4 * i, &f, 4);
        else {
            uint16_t h;
            if (mode == 0) h = dt == LSW_DT_BF16 ? oracle_bf16(f) : oracle_f16_double(f);
            else h = (uint16_t)(r >> 40);
            if (mode != 0 && (r & 7) == 0) h = dt == LSW_DT_BF16 ? lsw_f32_to_bf16(f) : lsw_f32_to_f16(f);
            memcpy(c + 2 * i, &h, 2);
        }
    }
}

static long compare_wsum(lsw_dtype out_dt, size_t n, size_t k, const lsw_dtype *dt,
                         const void *const *in, const float *w, const void *out)
{
    long bad = 0;
    const unsigned char *o = out;
    for (size_t i = 0; i < n; i++) {
        uint32_t want = ref_wsum(out_dt, k, dt, in, w, i);
        uint32_t got;
        if (out_dt == LSW_DT_F32) memcpy(&got, o + 4 * i, 4);
        else { uint16_t g; memcpy(&g, o + 2 * i, 2); got = g; }
        /* An f32 NaN result has no fixed payload; any NaN matches any NaN. */
        if (out_dt == LSW_DT_F32 && isnan(f_of(got)) && isnan(f_of(want))) continue;
        if (got != want) MISMATCH(bad, "wsum out=%s k=%zu i=%zu: %08x want %08x",
                                  lsw_dtype_name(out_dt), k, i, got, want);
    }
    return bad;
}

static void test_wsum(void)
{
    static const lsw_dtype dts[] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    static const size_t sizes[] = {1, 7, 1023, 1024, 1025, 3000, 4096};
    static const float weights[][4] = {
        {1.0f, 0.0f, 0.0f, 0.0f},
        {0.5f, 0.5f, 0.0f, 0.0f},
        {0.3f, 0.7f, 0.0f, 0.0f},
        {0.2f, 0.3f, 0.5f, 0.0f},
        {0.1234567f, -0.75f, 1.6180339f, 0.0f},
        {-1.0f, 2.0f, 1e-30f, 0.0f},
    };
    size_t maxn = 4096;
    void *in[3], *out = malloc(maxn * 4 + 4);
    for (int j = 0; j < 3; j++) in[j] = malloc(maxn * 4 + 4);

    long combos = 0, bad_total = 0;
    for (size_t k = 1; k <= 3; k++)
        for (size_t a = 0; a < 3; a++)
            for (size_t b = 0; b < (k >= 2 ? 3u : 1u); b++)
                for (size_t c = 0; c < (k >= 3 ? 3u : 1u); c++)
                    for (size_t od = 0; od < 3; od++)
                        for (int mode = 0; mode < 2; mode++)
                            for (size_t wi = 0; wi < sizeof weights / sizeof weights[0]; wi++) {
                                lsw_dtype dt[3] = {dts[a], dts[b], dts[c]};
                                size_t n = sizes[(combos) % (sizeof sizes / sizeof sizes[0])];
                                for (size_t j = 0; j < k; j++) fill_random(dt[j], in[j], n, mode);
                                const float *w = weights[wi];
                                lsw_wsum(dts[od], out, n, k, dt, (const void *const *)in, w);
                                long bad = compare_wsum(dts[od], n, k, dt, (const void *const *)in, w, out);
                                bad_total += bad;
                                combos++;
                            }
    CHECK(bad_total == 0, "%ld wsum mismatches over %ld combinations", bad_total, combos);

    /* The bf16+bf16→bf16 fast path on every size, both modes, unaligned pointers. */
    {
        long bad = 0;
        lsw_dtype dt[2] = {LSW_DT_BF16, LSW_DT_BF16};
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++)
            for (int mode = 0; mode < 2; mode++) {
                size_t n = sizes[s];
                unsigned char *x0 = (unsigned char *)in[0] + 2, *x1 = (unsigned char *)in[1] + 2;
                fill_random(LSW_DT_BF16, x0, n, mode);
                fill_random(LSW_DT_BF16, x1, n, mode);
                const void *p[2] = {x0, x1};
                float w[2] = {0.4f, 0.6f};
                lsw_wsum(LSW_DT_BF16, (unsigned char *)out + 2, n, 2, dt, p, w);
                bad += compare_wsum(LSW_DT_BF16, n, 2, dt, p, w, (unsigned char *)out + 2);
            }
        CHECK(bad == 0, "%ld mismatches in the bf16 fast path", bad);
    }

    /* Signed zeros: k = 1 gives exactly w0*x0, so -0.0 stays -0.0. */
    {
        uint16_t x[4] = {0x8000, 0x0000, 0x8000, 0x0000};
        uint16_t o[4];
        lsw_dtype dt[1] = {LSW_DT_BF16};
        const void *p[1] = {x};
        float w1[1] = {1.0f};
        lsw_wsum(LSW_DT_BF16, o, 4, 1, dt, p, w1);
        CHECK(o[0] == 0x8000 && o[1] == 0x0000, "k=1 signed zeros: %04x %04x", o[0], o[1]);
        float wm[1] = {-0.5f};
        lsw_wsum(LSW_DT_BF16, o, 4, 1, dt, p, wm);
        CHECK(o[0] == 0x0000 && o[1] == 0x8000, "k=1 w<0 signed zeros: %04x %04x", o[0], o[1]);
        float of[4];
        lsw_wsum(LSW_DT_F32, of, 4, 1, dt, p, w1);
        CHECK(u_of(of[0]) == 0x80000000u, "k=1 f32 out -0.0: %08x", u_of(of[0]));
        uint16_t oh[4];
        lsw_wsum(LSW_DT_F16, oh, 4, 1, dt, p, w1);
        CHECK(oh[0] == 0x8000 && oh[1] == 0x0000, "k=1 f16 out signed zeros: %04x %04x", oh[0], oh[1]);
        /* k = 2: -0 + -0 = -0, -0 + +0 = +0 */
        uint16_t y[4] = {0x8000, 0x8000, 0x0000, 0x0000};
        const void *p2[2] = {x, y};
        lsw_dtype dt2[2] = {LSW_DT_BF16, LSW_DT_BF16};
        float w2[2] = {0.5f, 0.5f};
        lsw_wsum(LSW_DT_BF16, o, 4, 2, dt2, p2, w2);
        CHECK(o[0] == 0x8000 && o[1] == 0x0000 && o[2] == 0x0000 && o[3] == 0x0000,
              "k=2 signed zeros: %04x %04x %04x %04x", o[0], o[1], o[2], o[3]);
    }

    /* NaN and infinity. */
    {
        uint16_t x[5] = {0x7F80, 0x7F80, 0xFFC1, 0x3F80, 0x7F7F};
        uint16_t y[5] = {0xFF80, 0x3F80, 0x3F80, 0x7F80, 0x7F7F};
        uint16_t o[5];
        const void *p[2] = {x, y};
        lsw_dtype dt[2] = {LSW_DT_BF16, LSW_DT_BF16};
        float w[2] = {1.0f, 1.0f};
        lsw_wsum(LSW_DT_BF16, o, 5, 2, dt, p, w);
        CHECK(o[0] == 0x7FC0, "inf + -inf -> %04x", o[0]);
        CHECK(o[1] == 0x7F80, "inf + 1 -> %04x", o[1]);
        CHECK(o[2] == 0x7FC0, "NaN + 1 -> %04x", o[2]);
        CHECK(o[3] == 0x7F80, "1 + inf -> %04x", o[3]);
        CHECK(o[4] == 0x7F80, "max + max -> %04x (overflow to inf)", o[4]);
        uint16_t oh[5];
        lsw_wsum(LSW_DT_F16, oh, 5, 2, dt, p, w);
        CHECK(oh[0] == 0x7E00 && oh[1] == 0x7C00 && oh[2] == 0x7E00 && oh[3] == 0x7C00 && oh[4] == 0x7C00,
              "f16 out specials: %04x %04x %04x %04x %04x", oh[0], oh[1], oh[2], oh[3], oh[4]);
    }

    /* Product rounded before the sum: choose values where fma would differ.
     * x0 = 1 + 2^-7 (bf16 0x3F81), w0 = 1 + 2^-23, x1 = -1, w1 = 1 + 2^-7 + 2^-23:
     * p0 = f32((1+2^-7)(1+2^-23)) = 1 + 2^-7 + 2^-23 (the 2^-30 term is lost),
     * p0 + p1 = 0 exactly; an fma would leave 2^-30. */
    {
        float x0 = 1.0f + 0x1p-7f;
        float w0 = 1.0f + 0x1p-23f;
        float w1 = 1.0f + 0x1p-7f + 0x1p-23f;
        float in0[1] = {x0}, in1[1] = {-1.0f};
        float of[1];
        const void *p[2] = {in0, in1};
        lsw_dtype dt[2] = {LSW_DT_F32, LSW_DT_F32};
        float w[2] = {w0, w1};
        lsw_wsum(LSW_DT_F32, of, 1, 2, dt, p, w);
        CHECK(u_of(of[0]) == 0, "product rounded before addition: got %a", (double)of[0]);
    }

    /* Subnormal results are not flushed. */
    {
        uint16_t x[2] = {0x0001, 0x0080};  /* bf16 smallest subnormal, smallest normal */
        uint16_t o[2];
        float of[2];
        const void *p[1] = {x};
        lsw_dtype dt[1] = {LSW_DT_BF16};
        float w[1] = {1.0f};
        lsw_wsum(LSW_DT_BF16, o, 2, 1, dt, p, w);
        CHECK(o[0] == 0x0001 && o[1] == 0x0080, "subnormal kept: %04x %04x", o[0], o[1]);
        float wh[1] = {0.5f};
        lsw_wsum(LSW_DT_F32, of, 2, 1, dt, p, wh);
        CHECK(u_of(of[1]) == 0x00400000u, "0.5 * min normal = subnormal: %08x", u_of(of[1]));
    }

    /* Many inputs (more than the fixed-size internal pointer table). */
    {
        size_t k = 20, n = 2500;
        void **ins = malloc(k * sizeof *ins);
        lsw_dtype *dt = malloc(k * sizeof *dt);
        float *w = malloc(k * sizeof *w);
        for (size_t j = 0; j < k; j++) {
            dt[j] = dts[j % 3];
            ins[j] = malloc(n * 4);
            fill_random(dt[j], ins[j], n, 0);
            w[j] = 1.0f / (float)(j + 1);
        }
        for (size_t od = 0; od < 3; od++) {
            lsw_wsum(dts[od], out, n, k, dt, (const void *const *)ins, w);
            long bad = compare_wsum(dts[od], n, k, dt, (const void *const *)ins, w, out);
            CHECK(bad == 0, "k=20 out=%s: %ld mismatches", lsw_dtype_name(dts[od]), bad);
        }
        for (size_t j = 0; j < k; j++) free(ins[j]);
        free(ins); free(dt); free(w);
    }

    /* n = 0 writes nothing. */
    {
        uint16_t o[1] = {0xABCD}, x[1] = {0x3F80};
        const void *p[1] = {x};
        lsw_dtype dt[1] = {LSW_DT_BF16};
        float w[1] = {1.0f};
        lsw_wsum(LSW_DT_BF16, o, 0, 1, dt, p, w);
        CHECK(o[0] == 0xABCD, "n=0 wrote %04x", o[0]);
    }

    for (int j = 0; j < 3; j++) free(in[j]);
    free(out);
}

/* ------------------------------------------------------------ absdiff */

/* The exact order documented in lsw_kernels.c: 8 lanes, lane sum 0..7, tail. */
static double ref_absdiff_ordered(lsw_dtype dt, const void *e, const void *b, size_t n)
{
    double acc[8] = {0};
    size_t g = n / 8;
    for (size_t i = 0; i < g * 8; i++)
        acc[i % 8] += fabs((double)load_as_f32(dt, e, i) - (double)load_as_f32(dt, b, i));
    double s = acc[0];
    for (int l = 1; l < 8; l++) s += acc[l];
    for (size_t i = g * 8; i < n; i++)
        s += fabs((double)load_as_f32(dt, e, i) - (double)load_as_f32(dt, b, i));
    return s;
}

static void test_absdiff(void)
{
    static const lsw_dtype dts[] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    static const size_t sizes[] = {0, 1, 5, 8, 9, 15, 16, 17, 63, 64, 65, 72, 127, 136, 1000, 4096, 100003};
    size_t maxn = 100003;
    void *e = malloc(maxn * 4), *b = malloc(maxn * 4);
    for (size_t d = 0; d < 3; d++)
        for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
            lsw_dtype dt = dts[d];
            size_t n = sizes[s];
            fill_random(dt, e, n, 0);
            fill_random(dt, b, n, 0);
            double got = lsw_absdiff_sum(dt, e, b, n);
            double plain = 0.0;   /* straightforward left-to-right sum */
            for (size_t i = 0; i < n; i++)
                plain += fabs((double)load_as_f32(dt, e, i) - (double)load_as_f32(dt, b, i));
            double tol = 1e-12 * fabs(plain);
            CHECK(fabs(got - plain) <= tol, "absdiff %s n=%zu: %.17g vs %.17g",
                  lsw_dtype_name(dt), n, got, plain);
            double ordered = ref_absdiff_ordered(dt, e, b, n);
            CHECK(memcmp(&got, &ordered, sizeof got) == 0,
                  "absdiff %s n=%zu: %.17g, documented order gives %.17g",
                  lsw_dtype_name(dt), n, got, ordered);
            double again = lsw_absdiff_sum(dt, e, b, n);
            CHECK(memcmp(&got, &again, sizeof got) == 0, "absdiff %s n=%zu not deterministic",
                  lsw_dtype_name(dt), n);
        }

    /* Exact small case: |1 - (-2)| + |0.5 - 0.25| + |x - x| = 3.25. */
    {
        float x[3] = {1.0f, 0.5f, 7.0f}, y[3] = {-2.0f, 0.25f, 7.0f};
        CHECK(lsw_absdiff_sum(LSW_DT_F32, x, y, 3) == 3.25, "small f32 case");
        uint16_t xb[3], yb[3];
        for (int i = 0; i < 3; i++) { xb[i] = lsw_f32_to_bf16(x[i]); yb[i] = lsw_f32_to_bf16(y[i]); }
        CHECK(lsw_absdiff_sum(LSW_DT_BF16, xb, yb, 3) == 3.25, "small bf16 case");
        uint16_t xh[3], yh[3];
        for (int i = 0; i < 3; i++) { xh[i] = lsw_f32_to_f16(x[i]); yh[i] = lsw_f32_to_f16(y[i]); }
        CHECK(lsw_absdiff_sum(LSW_DT_F16, xh, yh, 3) == 3.25, "small f16 case");
    }
    /* The f64 subtraction is not done in f32: the difference of two f32
     * values 2^30 and -1 is 2^30 + 1, which f32 would round to 2^30. */
    {
        float x[1] = {0x1p30f}, y[1] = {-1.0f};
        CHECK(lsw_absdiff_sum(LSW_DT_F32, x, y, 1) == 0x1p30 + 1.0, "f64 subtraction");
    }
    free(e); free(b);
}

/* Every instruction set of lsw_absdiff_sum / lsw_absdiff_sum_multi gives the
 * generic version's bits: on weight-like values, on all 65,536 patterns of
 * each 16-bit dtype (NaN, infinities and subnormals included) and on raw f32
 * patterns, for lengths
 * around the 8-lane groups, and for 1 to 9 experts against one base. */
static void test_absdiff_isas(void)
{
    static const lsw_dtype dts[] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    static const size_t lens[] = {0, 1, 7, 8, 9, 23, 64, 65, 1000, 65536 + 13};
    enum { N = 65536 + 13, K = 9 };
    unsigned char *x[K + 1];
    for (int j = 0; j <= K; j++)
        x[j] = malloc((size_t)N * 4);
    int tested = 0;
    for (size_t dm = 0; dm < 6; dm++) {
        lsw_dtype dt = dts[dm % 3];
        int mode = (int)(dm / 3);   /* 0: finite weight-like values, 1: raw patterns */
        size_t es = lsw_dtype_size(dt);
        for (int j = 0; j <= K; j++)
            fill_random(dt, x[j], N, mode);
        if (es == 2 && mode == 1)   /* expert 0 runs through every 16-bit pattern */
            for (uint32_t v = 0; v < 65536; v++) {
                uint16_t h = (uint16_t)v;
                memcpy(x[1] + 2 * v, &h, 2);
            }
        for (size_t l = 0; l < sizeof lens / sizeof lens[0]; l++) {
            size_t n = lens[l];
            double gen[K], got[K];
            const void *ep[K];
            for (int j = 0; j < K; j++)
                ep[j] = x[j + 1];
            CHECK(lsw_kernels_set_isa(LSW_ISA_GENERIC) == 0, "generic kernels always available");
            for (int j = 0; j < K; j++)
                gen[j] = lsw_absdiff_sum(dt, x[j + 1], x[0], n);
            /* the generic version follows the documented order (NaN sums aside) */
            for (int j = 0; j < K; j++) {
                double ord = ref_absdiff_ordered(dt, x[j + 1], x[0], n);
                CHECK((isnan(ord) && isnan(gen[j])) || memcmp(&ord, &gen[j], sizeof ord) == 0,
                      "absdiff %s n=%zu expert %d: generic %a, documented order %a", lsw_dtype_name(dt), n, j,
                      gen[j], ord);
            }
            for (int isa = LSW_ISA_GENERIC; isa <= LSW_ISA_AVX512; isa++) {
                if (lsw_kernels_set_isa((lsw_isa)isa) != 0)
                    continue;
                tested |= 1 << isa;
                for (size_t k = 1; k <= K; k++) {
                    lsw_absdiff_sum_multi(dt, x[0], ep, k, n, got);
                    for (size_t j = 0; j < k; j++)
                        CHECK(memcmp(&got[j], &gen[j], sizeof got[j]) == 0,
                              "absdiff_multi %s isa=%s k=%zu n=%zu expert %zu: %a, generic %a",
                              lsw_dtype_name(dt), lsw_isa_name((lsw_isa)isa), k, n, j, got[j], gen[j]);
                }
                double one = lsw_absdiff_sum(dt, x[1], x[0], n);
                CHECK(memcmp(&one, &gen[0], sizeof one) == 0, "absdiff %s isa=%s n=%zu: %a, generic %a",
                      lsw_dtype_name(dt), lsw_isa_name((lsw_isa)isa), n, one, gen[0]);
            }
        }
    }
    CHECK(lsw_kernels_set_isa(LSW_ISA_AUTO) == 0, "back to the best instruction set");
    printf("absdiff instruction sets checked:%s%s%s (in use: %s)\n", tested & 2 ? " generic" : "",
           tested & 4 ? " avx2" : "", tested & 8 ? " avx512" : "", lsw_isa_name(lsw_kernels_isa()));
    for (int j = 0; j <= K; j++)
        free(x[j]);
}

int main(void)
{
    test_bf16_all_patterns();
    test_bf16_rounding();
    test_f16_all_patterns();
    test_f16_rounding();
    test_block_conversions();
    test_wsum();
    test_absdiff();
    test_absdiff_isas();
    printf("%ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
