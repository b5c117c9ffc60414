/* lsw_kernels — the arithmetic of docs/numerics.md and docs/statistics.md on blocks of elements.
 *
 * Everything here is plain C11 and exact by construction:
 *
 *  - bf16 → f32 is the bit shift h << 16; f16 → f32 is an exact bit
 *    reconstruction (subnormals, infinities and NaN payloads included).
 *  - f32 → bf16 is integer round-to-nearest-even on the bit pattern
 *    (u + 0x7FFF + lsb) >> 16, every NaN becomes 0x7FC0 (sign dropped).
 *  - f32 → f16 is IEEE binary16 RNE: normal results by the same integer
 *    rounding on the rebiased pattern, subnormal results by one f32 addition
 *    of 0.5f (whose ulp 2^-24 is the f16 subnormal quantum, so the hardware's
 *    default RNE does the rounding), overflow to ±inf, NaN → 0x7E00.
 *    This needs the default floating-point environment (round to nearest,
 *    no flush-to-zero): never build with -ffast-math.
 *
 * The hot loops are written branch-free over fixed-size chunks of CHUNK
 * elements with compile-time trip counts, so that GCC's -O2 ("very cheap")
 * vectoriser handles them without runtime alias checks or epilogues; the last
 * partial chunk runs through the same inline code with a variable count.
 * Every path computes the same per-element formula, so the bits never depend
 * on chunking, vector width or -march.
 */
#include "lsw_kernels.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Elements per chunk of lsw_wsum / lsw_to_f32 / lsw_from_f32. */
#define CHUNK 1024

#if defined(__GNUC__)
#define LSW_INLINE static inline __attribute__((always_inline))

/* The public kernels are compiled for several instruction sets and the best
 * one the CPU has is chosen at load time (GCC function multi-versioning), so
 * a portable build still runs the wide-vector code.  Results are the same
 * bits on every version: the summation order is fixed by the code and the
 * build forbids FMA contraction (-ffp-contract=off). */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LSW_NO_CLONES)
#define LSW_CLONES __attribute__((target_clones("default", "avx2", "avx512f")))
#else
#define LSW_CLONES
#endif
#else
#define LSW_INLINE static inline
#endif

/* ---------------------------------------------------------------- scalars */

LSW_INLINE float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

LSW_INLINE uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

LSW_INLINE float bf16_to_f32(uint16_t h)
{
    return bits_f32((uint32_t)h << 16);
}

LSW_INLINE uint16_t f32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    /* Cannot wrap: the largest non-NaN pattern is 0xFF800000. */
    uint32_t r = u + 0x7FFFu + ((u >> 16) & 1u);
    /* NaN test as a signed compare of the (non-negative) magnitude: SSE2 has
     * signed but no unsigned 32-bit compares, so this vectorises cheaply. */
    int isnan = (int32_t)(u & 0x7FFFFFFFu) > (int32_t)0x7F800000;
    r = isnan ? 0x7FC00000u : r;
    return (uint16_t)(r >> 16);
}

LSW_INLINE float f16_to_f32(uint16_t h)
{
    uint32_t sign = ((uint32_t)h & 0x8000u) << 16;
    uint32_t a = (uint32_t)h & 0x7FFFu;
    /* Normal: rebias the exponent by 127 - 15 = 112. */
    uint32_t norm = (a << 13) + 0x38000000u;
    /* Inf / NaN: exponent field 31 must become 255, another +112. */
    uint32_t infnan = norm + 0x38000000u;
    /* Subnormal (and zero): value = mant * 2^-24 = bits(0x3F000000|mant) - 0.5,
     * exact since the result is a normal f32 (or exactly +0). */
    float sub = bits_f32(0x3F000000u | a) - 0.5f;
    uint32_t subb = f32_bits(sub);
    uint32_t exp = a >> 10;
    uint32_t m_inf = 0u - (uint32_t)(exp == 31u);
    uint32_t m_sub = 0u - (uint32_t)(exp == 0u);
    uint32_t r = (norm & ~(m_inf | m_sub)) | (infnan & m_inf) | (subb & m_sub);
    return bits_f32(r | sign);
}

LSW_INLINE uint16_t f32_to_f16(float f)
{
    uint32_t u = f32_bits(f);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7FFFFFFFu;
    /* Normal results (|f| ≥ 2^-14 = 0x38800000): rebias, then RNE on the
     * 13 dropped bits; a carry out of the mantissa bumps the exponent, and
     * everything from 65520 (0x477FF000) up lands on 0x7C00 or beyond. */
    uint32_t rb = a - 0x38000000u;
    uint32_t norm = (rb + 0xFFFu + ((rb >> 13) & 1u)) >> 13;
    /* Subnormal results (|f| < 2^-14): |f| + 0.5f rounds |f| to a multiple
     * of 2^-24 (RNE, the default rounding mode); the low bits are the f16
     * pattern, 0x400 meaning the smallest normal. */
    float s = bits_f32(a) + 0.5f;
    uint32_t sub = f32_bits(s) - 0x3F000000u;
    uint32_t m_sub = 0u - (uint32_t)(a < 0x38800000u);
    uint32_t m_ovf = 0u - (uint32_t)(a >= 0x477FF000u);   /* incl. inf, NaN */
    uint32_t m_nan = 0u - (uint32_t)(a > 0x7F800000u);
    uint32_t r = (norm & ~(m_sub | m_ovf)) | (sub & m_sub) | (0x7C00u & m_ovf);
    r |= sign;
    r = (r & ~m_nan) | (0x7E00u & m_nan);
    return (uint16_t)r;
}

float lsw_bf16_to_f32(uint16_t h) { return bf16_to_f32(h); }
uint16_t lsw_f32_to_bf16(float f) { return f32_to_bf16(f); }
float lsw_f16_to_f32(uint16_t h) { return f16_to_f32(h); }
uint16_t lsw_f32_to_f16(float f) { return f32_to_f16(f); }

/* ----------------------------------------------------- block conversions */

/* The loops below read elements with memcpy so that unaligned or
 * differently-typed buffers are fine; GCC turns these into plain loads. */

LSW_INLINE uint16_t ld16(const unsigned char *p, size_t i)
{
    uint16_t v;
    memcpy(&v, p + 2 * i, sizeof v);
    return v;
}

LSW_INLINE float ldf(const unsigned char *p, size_t i)
{
    float v;
    memcpy(&v, p + 4 * i, sizeof v);
    return v;
}

LSW_INLINE void st16(unsigned char *p, size_t i, uint16_t v)
{
    memcpy(p + 2 * i, &v, sizeof v);
}

LSW_INLINE void stf(unsigned char *p, size_t i, float v)
{
    memcpy(p + 4 * i, &v, sizeof v);
}

/* Widen m ≤ CHUNK elements into dst. */
LSW_INLINE void widen(lsw_dtype dt, const unsigned char *restrict src,
                      float *restrict dst, size_t m)
{
    switch (dt) {
    case LSW_DT_BF16:
        for (size_t i = 0; i < m; i++) dst[i] = bf16_to_f32(ld16(src, i));
        break;
    case LSW_DT_F16:
        for (size_t i = 0; i < m; i++) dst[i] = f16_to_f32(ld16(src, i));
        break;
    case LSW_DT_F32:
        for (size_t i = 0; i < m; i++) dst[i] = ldf(src, i);
        break;
    default:
        abort();   /* contract violation: not an arithmetic dtype */
    }
}

/* Narrow m ≤ CHUNK elements from src. */
LSW_INLINE void narrow(lsw_dtype dt, const float *restrict src,
                       unsigned char *restrict dst, size_t m)
{
    switch (dt) {
    case LSW_DT_BF16:
        for (size_t i = 0; i < m; i++) st16(dst, i, f32_to_bf16(src[i]));
        break;
    case LSW_DT_F16:
        for (size_t i = 0; i < m; i++) st16(dst, i, f32_to_f16(src[i]));
        break;
    case LSW_DT_F32:
        for (size_t i = 0; i < m; i++) stf(dst, i, src[i]);
        break;
    default:
        abort();
    }
}

LSW_CLONES void lsw_to_f32(lsw_dtype dt, const void *src, float *dst, size_t n)
{
    const unsigned char *s = src;
    size_t esz = lsw_dtype_size(dt);
    size_t i = 0;
    for (; i + CHUNK <= n; i += CHUNK) widen(dt, s + i * esz, dst + i, CHUNK);
    if (i < n) widen(dt, s + i * esz, dst + i, n - i);
}

LSW_CLONES void lsw_from_f32(lsw_dtype dt, const float *src, void *dst, size_t n)
{
    unsigned char *d = dst;
    size_t esz = lsw_dtype_size(dt);
    size_t i = 0;
    for (; i + CHUNK <= n; i += CHUNK) narrow(dt, src + i, d + i * esz, CHUNK);
    if (i < n) narrow(dt, src + i, d + i * esz, n - i);
}

/* ------------------------------------------------------------ weighted sum */

/* acc[i] = w * x[i], the first term: exactly the rounded product, no +0.0
 * (so a -0.0 product stays -0.0). */
LSW_INLINE void wfirst(lsw_dtype dt, const unsigned char *restrict x, float w,
                       float *restrict acc, size_t m)
{
    switch (dt) {
    case LSW_DT_BF16:
        for (size_t i = 0; i < m; i++) acc[i] = w * bf16_to_f32(ld16(x, i));
        break;
    case LSW_DT_F16:
        for (size_t i = 0; i < m; i++) acc[i] = w * f16_to_f32(ld16(x, i));
        break;
    case LSW_DT_F32:
        for (size_t i = 0; i < m; i++) acc[i] = w * ldf(x, i);
        break;
    default:
        abort();
    }
}

/* acc[i] = acc[i] + w * x[i]; with -ffp-contract=off the product is rounded
 * to f32 before the addition (docs/numerics.md: no fused multiply-add). */
LSW_INLINE void wnext(lsw_dtype dt, const unsigned char *restrict x, float w,
                      float *restrict acc, size_t m)
{
    switch (dt) {
    case LSW_DT_BF16:
        for (size_t i = 0; i < m; i++) {
            float p = w * bf16_to_f32(ld16(x, i));
            acc[i] = acc[i] + p;
        }
        break;
    case LSW_DT_F16:
        for (size_t i = 0; i < m; i++) {
            float p = w * f16_to_f32(ld16(x, i));
            acc[i] = acc[i] + p;
        }
        break;
    case LSW_DT_F32:
        for (size_t i = 0; i < m; i++) {
            float p = w * ldf(x, i);
            acc[i] = acc[i] + p;
        }
        break;
    default:
        abort();
    }
}

LSW_INLINE void wsum_chunk(lsw_dtype out_dt, unsigned char *out, size_t k,
                           const lsw_dtype *in_dt, const unsigned char *const *in,
                           const float *w, size_t m)
{
    float acc[CHUNK];
    wfirst(in_dt[0], in[0], w[0], acc, m);
    for (size_t j = 1; j < k; j++) wnext(in_dt[j], in[j], w[j], acc, m);
    narrow(out_dt, acc, out, m);
}

/* Inputs whose pointers are advanced incrementally (a stack table); merges
 * with more inputs take the slower loop at the end of lsw_wsum. */
#define WSUM_MAXK 16

LSW_CLONES void lsw_wsum(lsw_dtype out_dt, void *out, size_t n,
              size_t k, const lsw_dtype *in_dt, const void *const *in, const float *w)
{
    if (n == 0) return;
    if (k == 0) abort();   /* contract: k ≥ 1 */

    unsigned char *o = out;
    size_t osz = lsw_dtype_size(out_dt);
    if (!lsw_dtype_is_arith(out_dt)) abort();
    for (size_t j = 0; j < k; j++)
        if (!lsw_dtype_is_arith(in_dt[j])) abort();

    /* Per chunk: acc = w0*x0, acc = acc + wj*xj, narrow.  (A fused one-pass
     * loop for bf16+bf16→bf16 was measured slower than these three short
     * loops on an L1-resident accumulator, with and without -march=native.) */
    const unsigned char *ptr[WSUM_MAXK];
    size_t esz[WSUM_MAXK];
    if (k <= WSUM_MAXK) {
        for (size_t j = 0; j < k; j++) {
            ptr[j] = in[j];
            esz[j] = lsw_dtype_size(in_dt[j]);
        }
        size_t i = 0;
        for (; i + CHUNK <= n; i += CHUNK) {
            wsum_chunk(out_dt, o + i * osz, k, in_dt, ptr, w, CHUNK);
            for (size_t j = 0; j < k; j++) ptr[j] += CHUNK * esz[j];
        }
        if (i < n) wsum_chunk(out_dt, o + i * osz, k, in_dt, ptr, w, n - i);
        return;
    }

    /* k > WSUM_MAXK: same arithmetic, input pointers computed per chunk. */
    for (size_t i = 0; i < n; i += CHUNK) {
        size_t m = n - i < CHUNK ? n - i : CHUNK;
        float acc[CHUNK];
        for (size_t j = 0; j < k; j++) {
            const unsigned char *x = (const unsigned char *)in[j] + i * lsw_dtype_size(in_dt[j]);
            if (j == 0) wfirst(in_dt[j], x, w[j], acc, m);
            else wnext(in_dt[j], x, w[j], acc, m);
        }
        narrow(out_dt, acc, o + i * osz, m);
    }
}

/* ----------------------------------------------------------------- MAV sum */

/* Summation order of lsw_absdiff_sum (fixed by this code, reproduced by any
 * reference implementation that wants the same bits):
 *
 *   d[i]   = |f64(e[i]) − f64(b[i])|              (f64 subtraction, exact widen)
 *   g      = floor(n / 8) full groups of 8 elements, counted from e[0] / b[0]
 *   acc[l] = ((0 + d[l]) + d[8+l]) + d[16+l] + …  for l = 0..7, over the g groups
 *            (element i of a full group goes to lane i % 8, left to right)
 *   s      = ((((((acc[0] + acc[1]) + acc[2]) + acc[3]) + acc[4]) + acc[5]) + acc[6]) + acc[7]
 *   s      = s + d[8g] + d[8g+1] + … + d[n−1]     (the n % 8 tail, left to right)
 *
 * All in IEEE binary64 with round-to-nearest; no reassociation by the compiler
 * (no -ffast-math), the eight lanes are independent so they vectorise as is.
 * The internal blocking (ABS_BLOCK differences buffered at a time) does not
 * change this order.  The lanes restart at every call, so a caller that wants
 * per-row sums calls once per row.  A numpy reference (pairwise summation)
 * matches only to rounding, about 1e-15 relative. */

#define LANES 8
/* Elements per block: differences of a block go to a stack array first (one
 * vectorisable loop with a compile-time trip count), then into the lanes. */
#define ABS_BLOCK 64

#define LD_BF16(p, i) ((double)bf16_to_f32(ld16((p), (i))))
#define LD_F16(p, i) ((double)f16_to_f32(ld16((p), (i))))
#define LD_F32(p, i) ((double)ldf((p), (i)))

/* The n % 8 tail of one expert, added to the lane total s, left to right (every version shares it). */
LSW_INLINE double absdiff_tail(lsw_dtype dt, const unsigned char *e, const unsigned char *b, size_t i,
                               size_t n, double s)
{
    switch (dt) {
    case LSW_DT_BF16: for (; i < n; i++) s = s + fabs(LD_BF16(e, i) - LD_BF16(b, i)); break;
    case LSW_DT_F16: for (; i < n; i++) s = s + fabs(LD_F16(e, i) - LD_F16(b, i)); break;
    default: for (; i < n; i++) s = s + fabs(LD_F32(e, i) - LD_F32(b, i)); break;
    }
    return s;
}

/* Lane totals a[0..7] in lane order, then the tail. */
LSW_INLINE double absdiff_finish(lsw_dtype dt, const double *a, const unsigned char *e,
                                 const unsigned char *b, size_t g, size_t n)
{
    double s = a[0];
    for (size_t l = 1; l < LANES; l++) s = s + a[l];
    return absdiff_tail(dt, e, b, g, n, s);
}

#define ABSDIFF_DEFINE(NAME, LOAD, DT)                                            \
    LSW_INLINE void NAME##_block(const unsigned char *restrict e,                 \
                                 const unsigned char *restrict b,                 \
                                 double *restrict acc, size_t m)                  \
    {                                                                             \
        /* m is a multiple of LANES, at most ABS_BLOCK */                         \
        double d[ABS_BLOCK];                                                      \
        for (size_t i = 0; i < m; i++) d[i] = fabs(LOAD(e, i) - LOAD(b, i));      \
        double a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];                \
        double a4 = acc[4], a5 = acc[5], a6 = acc[6], a7 = acc[7];                \
        for (size_t q = 0; q < m / LANES; q++) {                                  \
            const double *x = d + q * LANES;                                      \
            a0 = a0 + x[0]; a1 = a1 + x[1]; a2 = a2 + x[2]; a3 = a3 + x[3];       \
            a4 = a4 + x[4]; a5 = a5 + x[5]; a6 = a6 + x[6]; a7 = a7 + x[7];       \
        }                                                                         \
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;                       \
        acc[4] = a4; acc[5] = a5; acc[6] = a6; acc[7] = a7;                       \
    }                                                                             \
                                                                                  \
    LSW_INLINE double NAME(const unsigned char *restrict e,                       \
                           const unsigned char *restrict b, size_t n, size_t esz) \
    {                                                                             \
        double acc[LANES] = {0, 0, 0, 0, 0, 0, 0, 0};                             \
        size_t i = 0;                                                             \
        for (; i + ABS_BLOCK <= n; i += ABS_BLOCK)                                \
            NAME##_block(e + i * esz, b + i * esz, acc, ABS_BLOCK);               \
        size_t g = (n - i) / LANES * LANES;                                       \
        if (g) NAME##_block(e + i * esz, b + i * esz, acc, g);                    \
        i += g;                                                                   \
        return absdiff_finish(DT, acc, e, b, i, n);                               \
    }


ABSDIFF_DEFINE(absdiff_bf16, LD_BF16, LSW_DT_BF16)
ABSDIFF_DEFINE(absdiff_f16, LD_F16, LSW_DT_F16)
ABSDIFF_DEFINE(absdiff_f32, LD_F32, LSW_DT_F32)

/* The portable version: plain C, vectorised by the compiler. */
LSW_CLONES static double absdiff_generic(lsw_dtype dt, const void *e, const void *b, size_t n)
{
    switch (dt) {
    case LSW_DT_BF16: return absdiff_bf16(e, b, n, 2);
    case LSW_DT_F16: return absdiff_f16(e, b, n, 2);
    case LSW_DT_F32: return absdiff_f32(e, b, n, 4);
    default: abort();
    }
}

/* Experts handled per pass over the base by lsw_absdiff_sum_multi (the x86
 * versions keep this many accumulators and the widened base in registers). */
#define XMULTI 4

/* ------------------------------------------ MAV sum, hand-vectorised x86-64
 *
 * The same arithmetic in the same order as absdiff_generic, written with
 * intrinsics so that the eight f64 lanes live in one AVX-512 register (two
 * AVX2 registers) and, for several experts against one base, the base is
 * widened once per group and each expert adds into its own registers (the
 * chains are independent, which also hides the latency of the additions).
 * The widening is exact on every path: bf16 by the 16-bit shift, f16 by F16C
 * (exact, subnormals included; a signalling NaN becomes quiet one step
 * earlier than in the C version, which makes no difference once widened to
 * f64), f32 → f64 exact.  unit_kernels checks every path against the
 * documented order, on all 65,536 16-bit patterns. */
#include "lsw_x86.h"
#ifdef LSW_X86
#include <cpuid.h>

/* k ≤ XMULTI experts, k and dt constant after inlining */
LSW_T_AVX512 LSW_INLINE void x512_k(lsw_dtype dt, size_t es, const unsigned char *b, const unsigned char *const *e,
                                    size_t k, size_t n, double *out)
{
    __m512d acc[XMULTI];
    LSW_UNROLL4
    for (size_t j = 0; j < k; j++) acc[j] = _mm512_setzero_pd();
    size_t g = n / LANES * LANES;
    for (size_t i = 0; i < g; i += LANES) {
        __m512d bd = _mm512_cvtps_pd(lsw_x86_ld8(dt, b + i * es));
        LSW_UNROLL4
        for (size_t j = 0; j < k; j++) {
            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(lsw_x86_ld8(dt, e[j] + i * es)), bd);
            acc[j] = _mm512_add_pd(acc[j], _mm512_abs_pd(d));
        }
    }
    for (size_t j = 0; j < k; j++) {
        double a[LANES];
        _mm512_storeu_pd(a, acc[j]);
        out[j] = absdiff_finish(dt, a, e[j], b, g, n);
    }
}

LSW_T_AVX2 LSW_INLINE void x256_k(lsw_dtype dt, size_t es, const unsigned char *b, const unsigned char *const *e,
                                  size_t k, size_t n, double *out)
{
    const __m256d nosign = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL));
    __m256d lo[XMULTI], hi[XMULTI];   /* lanes 0-3 and 4-7 */
    LSW_UNROLL4
    for (size_t j = 0; j < k; j++) lo[j] = hi[j] = _mm256_setzero_pd();
    size_t g = n / LANES * LANES;
    for (size_t i = 0; i < g; i += LANES) {
        __m256 bf = lsw_x86_ld8(dt, b + i * es);
        __m256d b0 = _mm256_cvtps_pd(_mm256_castps256_ps128(bf)), b1 = _mm256_cvtps_pd(_mm256_extractf128_ps(bf, 1));
        LSW_UNROLL4
        for (size_t j = 0; j < k; j++) {
            __m256 ef = lsw_x86_ld8(dt, e[j] + i * es);
            __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(ef)), b0);
            __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(ef, 1)), b1);
            lo[j] = _mm256_add_pd(lo[j], _mm256_and_pd(d0, nosign));
            hi[j] = _mm256_add_pd(hi[j], _mm256_and_pd(d1, nosign));
        }
    }
    for (size_t j = 0; j < k; j++) {
        double a[LANES];
        _mm256_storeu_pd(a, lo[j]);
        _mm256_storeu_pd(a + 4, hi[j]);
        out[j] = absdiff_finish(dt, a, e[j], b, g, n);
    }
}

/* One instantiation per (dtype, k): both constant inside. */
#define X_DISPATCH(FN, dt, b, e, k, n, out)                                           \
    do {                                                                              \
        switch ((dt) == LSW_DT_F32 ? 10 + (int)(k) : (dt) == LSW_DT_F16 ? 5 + (int)(k) \
                                                                       : (int)(k)) { \
        case 1: FN(LSW_DT_BF16, 2, b, e, 1, n, out); break;                           \
        case 2: FN(LSW_DT_BF16, 2, b, e, 2, n, out); break;                           \
        case 3: FN(LSW_DT_BF16, 2, b, e, 3, n, out); break;                           \
        case 4: FN(LSW_DT_BF16, 2, b, e, 4, n, out); break;                           \
        case 6: FN(LSW_DT_F16, 2, b, e, 1, n, out); break;                            \
        case 7: FN(LSW_DT_F16, 2, b, e, 2, n, out); break;                            \
        case 8: FN(LSW_DT_F16, 2, b, e, 3, n, out); break;                            \
        case 9: FN(LSW_DT_F16, 2, b, e, 4, n, out); break;                            \
        case 11: FN(LSW_DT_F32, 4, b, e, 1, n, out); break;                           \
        case 12: FN(LSW_DT_F32, 4, b, e, 2, n, out); break;                           \
        case 13: FN(LSW_DT_F32, 4, b, e, 3, n, out); break;                           \
        case 14: FN(LSW_DT_F32, 4, b, e, 4, n, out); break;                           \
        default: abort();                                                             \
        }                                                                             \
    } while (0)

LSW_T_AVX512 static void x512(lsw_dtype dt, const unsigned char *b, const unsigned char *const *e, size_t k, size_t n,
                              double *out)
{
    X_DISPATCH(x512_k, dt, b, e, k, n, out);
}

LSW_T_AVX2 static void x256(lsw_dtype dt, const unsigned char *b, const unsigned char *const *e, size_t k, size_t n,
                            double *out)
{
    X_DISPATCH(x256_k, dt, b, e, k, n, out);
}

static lsw_isa isa_detect(void)
{
    unsigned a, b, c, d;
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & bit_F16C);
    __builtin_cpu_init();
    if (f16c && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx2"))
        return LSW_ISA_AVX512;
    if (f16c && __builtin_cpu_supports("avx2"))
        return LSW_ISA_AVX2;
    return LSW_ISA_GENERIC;
}
#else
static lsw_isa isa_detect(void) { return LSW_ISA_GENERIC; }
#endif

/* 0: not decided yet; else the lsw_isa in use.  Written once per process
 * (by the first kernel call or by lsw_kernels_set_isa); relaxed atomics
 * because every writer stores the same value. */
#if defined(__STDC_NO_ATOMICS__)
static int isa_cur;
#define ISA_LOAD() isa_cur
#define ISA_STORE(v) (isa_cur = (v))
#else
#include <stdatomic.h>
static atomic_int isa_cur;
#define ISA_LOAD() atomic_load_explicit(&isa_cur, memory_order_relaxed)
#define ISA_STORE(v) atomic_store_explicit(&isa_cur, (v), memory_order_relaxed)
#endif

lsw_isa lsw_kernels_isa(void)
{
    int v = ISA_LOAD();
    if (v == 0) {
        v = (int)isa_detect();
        ISA_STORE(v);
    }
    return (lsw_isa)v;
}

int lsw_kernels_set_isa(lsw_isa isa)
{
    lsw_isa best = isa_detect();
    if (isa == LSW_ISA_AUTO)
        isa = best;
    if ((int)isa > (int)best || (int)isa < (int)LSW_ISA_GENERIC)
        return -1;
    ISA_STORE((int)isa);
    return 0;
}

const char *lsw_isa_name(lsw_isa isa)
{
    switch (isa) {
    case LSW_ISA_GENERIC: return "generic";
    case LSW_ISA_AVX2: return "avx2";
    case LSW_ISA_AVX512: return "avx512";
    default: return "auto";
    }
}

void lsw_absdiff_sum_multi(lsw_dtype dt, const void *b, const void *const *e, size_t k, size_t n, double *out)
{
    if (dt != LSW_DT_BF16 && dt != LSW_DT_F16 && dt != LSW_DT_F32)
        abort();   /* contract violation: not an arithmetic dtype */
    lsw_isa isa = lsw_kernels_isa();
    for (size_t j0 = 0; j0 < k; j0 += XMULTI) {
        size_t kk = k - j0 < XMULTI ? k - j0 : XMULTI;
#ifdef LSW_X86
        if (isa == LSW_ISA_AVX512) {
            x512(dt, b, (const unsigned char *const *)e + j0, kk, n, out + j0);
            continue;
        }
        if (isa == LSW_ISA_AVX2) {
            x256(dt, b, (const unsigned char *const *)e + j0, kk, n, out + j0);
            continue;
        }
#else
        (void)isa;
#endif
        for (size_t j = 0; j < kk; j++)
            out[j0 + j] = absdiff_generic(dt, e[j0 + j], b, n);
    }
}

double lsw_absdiff_sum(lsw_dtype dt, const void *e, const void *b, size_t n)
{
    double s;
    lsw_absdiff_sum_multi(dt, b, &e, 1, n, &s);
    return s;
}
