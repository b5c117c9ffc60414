#include "lsw_stats_norms.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_kernels.h"

#define LANES 8
/* values squared into a stack block first (a loop with a compile-time trip
 * count that vectorises), then added into the eight lanes */
#define BLK 64
/* experts per pass over the base in the x86 versions */
#define XK 4

#if defined(__GNUC__) || defined(__clang__)
#define N_INLINE static inline __attribute__((always_inline))
#else
#define N_INLINE static inline
#endif

N_INLINE uint16_t ld16(const unsigned char *p, size_t i)
{
    uint16_t h;
    memcpy(&h, p + 2 * i, 2);
    return h;
}

N_INLINE double ld_bf16(const unsigned char *p, size_t i)
{
    uint32_t u = (uint32_t)ld16(p, i) << 16;
    float f;
    memcpy(&f, &u, 4);
    return (double)f;
}

N_INLINE double ld_f16(const unsigned char *p, size_t i) { return (double)lsw_f16_to_f32(ld16(p, i)); }

N_INLINE double ld_f32(const unsigned char *p, size_t i)
{
    float f;
    memcpy(&f, p + 4 * i, 4);
    return (double)f;
}

N_INLINE double ld(lsw_dtype dt, const unsigned char *p, size_t i)
{
    return dt == LSW_DT_BF16 ? ld_bf16(p, i) : dt == LSW_DT_F16 ? ld_f16(p, i) : ld_f32(p, i);
}

/* What one element adds: |d| (MAV), d² (expert) or b² (base). */
enum { S_ABS, S_DSQ, S_BSQ };

N_INLINE double term(lsw_dtype dt, const unsigned char *e, const unsigned char *b, size_t i, int what)
{
    if (what == S_BSQ) {
        double x = ld(dt, b, i);
        return x * x;
    }
    double d = ld(dt, e, i) - ld(dt, b, i);
    return what == S_ABS ? fabs(d) : d * d;
}

/* Lane totals in lane order, then the tail from element g on. */
N_INLINE double finish(lsw_dtype dt, const double *a, const unsigned char *e, const unsigned char *b, size_t g,
                       size_t n, int what)
{
    double s = a[0];
    for (int l = 1; l < LANES; l++)
        s = s + a[l];
    for (size_t i = g; i < n; i++)
        s = s + term(dt, e, b, i, what);
    return s;
}

N_INLINE void lanes_add(double *restrict acc, const double *restrict v, size_t m)
{
    for (size_t q = 0; q < m / LANES; q++)
        for (int l = 0; l < LANES; l++)
            acc[l] = acc[l] + v[q * LANES + l];
}

/* The portable version: one sum at a time, each term into a block first. */
#define GENERIC_DEFINE(NAME, LOAD)                                                                   \
    static double NAME(const unsigned char *e, const unsigned char *b, size_t n, lsw_dtype dt, int what) \
    {                                                                                                \
        double acc[LANES] = {0, 0, 0, 0, 0, 0, 0, 0}, v[BLK];                                      \
        size_t g = n / LANES * LANES;                                                                \
        for (size_t i = 0; i < g; i += BLK) {                                                        \
            size_t m = g - i < BLK ? g - i : BLK;                                                    \
            if (what == S_BSQ)                                                                       \
                for (size_t k = 0; k < m; k++) {                                                     \
                    double x = LOAD(b, i + k);                                                       \
                    v[k] = x * x;                                                                    \
                }                                                                                    \
            else if (what == S_DSQ)                                                                  \
                for (size_t k = 0; k < m; k++) {                                                     \
                    double d = LOAD(e, i + k) - LOAD(b, i + k);                                      \
                    v[k] = d * d;                                                                    \
                }                                                                                    \
            else                                                                                     \
                for (size_t k = 0; k < m; k++)                                                       \
                    v[k] = fabs(LOAD(e, i + k) - LOAD(b, i + k));                                    \
            lanes_add(acc, v, m);                                                                    \
        }                                                                                            \
        return finish(dt, acc, e, b, g, n, what);                                                    \
    }

GENERIC_DEFINE(gen_bf16, ld_bf16)
GENERIC_DEFINE(gen_f16, ld_f16)
GENERIC_DEFINE(gen_f32, ld_f32)

static double generic(lsw_dtype dt, const unsigned char *e, const unsigned char *b, size_t n, int what)
{
    switch (dt) {
    case LSW_DT_BF16: return gen_bf16(e, b, n, dt, what);
    case LSW_DT_F16: return gen_f16(e, b, n, dt, what);
    case LSW_DT_F32: return gen_f32(e, b, n, dt, what);
    default: abort(); /* contract: an arithmetic dtype */
    }
}

/* ------------------------------------------------------------ x86-64 versions
 * The same eight lanes in one AVX-512 register (two AVX2 registers); the base
 * is widened once per group of eight for up to XK experts, and each expert's
 * |d| and d² go to their own registers. */
#include "lsw_x86.h"
#ifdef LSW_X86

/* lane registers to sums: MAV, d², and the base's b² */
N_INLINE void x_finish(lsw_dtype dt, const unsigned char *b, const unsigned char *const *e, size_t k, size_t g,
                       size_t n, const double *am, const double *aq, const double *ab, double *mav, double *bsq,
                       double *dsq)
{
    if (bsq)
        *bsq = finish(dt, ab, NULL, b, g, n, S_BSQ);
    for (size_t j = 0; j < k; j++) {
        mav[j] = finish(dt, am + j * LANES, e[j], b, g, n, S_ABS);
        dsq[j] = finish(dt, aq + j * LANES, e[j], b, g, n, S_DSQ);
    }
}

LSW_T_AVX512 N_INLINE void x512_k(lsw_dtype dt, size_t es, const unsigned char *b, const unsigned char *const *e,
                                  size_t k, size_t n, double *mav, double *bsq, double *dsq)
{
    __m512d ab = _mm512_setzero_pd(), am[XK], aq[XK];
    LSW_UNROLL4
    for (size_t j = 0; j < k; j++)
        am[j] = aq[j] = _mm512_setzero_pd();
    size_t g = n / LANES * LANES;
    for (size_t i = 0; i < g; i += LANES) {
        __m512d bd = _mm512_cvtps_pd(lsw_x86_ld8(dt, b + i * es));
        ab = _mm512_add_pd(ab, _mm512_mul_pd(bd, bd));
        LSW_UNROLL4
        for (size_t j = 0; j < k; j++) {
            __m512d d = _mm512_sub_pd(_mm512_cvtps_pd(lsw_x86_ld8(dt, e[j] + i * es)), bd);
            am[j] = _mm512_add_pd(am[j], _mm512_abs_pd(d));
            aq[j] = _mm512_add_pd(aq[j], _mm512_mul_pd(d, d));
        }
    }
    double lm[XK * LANES], lq[XK * LANES], lb[LANES];
    _mm512_storeu_pd(lb, ab);
    for (size_t j = 0; j < k; j++) {
        _mm512_storeu_pd(lm + j * LANES, am[j]);
        _mm512_storeu_pd(lq + j * LANES, aq[j]);
    }
    x_finish(dt, b, e, k, g, n, lm, lq, lb, mav, bsq, dsq);
}

LSW_T_AVX2 N_INLINE void x256_k(lsw_dtype dt, size_t es, const unsigned char *b, const unsigned char *const *e,
                                size_t k, size_t n, double *mav, double *bsq, double *dsq)
{
    const __m256d nosign = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7FFFFFFFFFFFFFFFLL));
    __m256d b0s = _mm256_setzero_pd(), b1s = _mm256_setzero_pd(); /* lanes 0-3, 4-7 */
    __m256d m0[XK], m1[XK], q0[XK], q1[XK];
    LSW_UNROLL4
    for (size_t j = 0; j < k; j++)
        m0[j] = m1[j] = q0[j] = q1[j] = _mm256_setzero_pd();
    size_t g = n / LANES * LANES;
    for (size_t i = 0; i < g; i += LANES) {
        __m256 bf = lsw_x86_ld8(dt, b + i * es);
        __m256d b0 = _mm256_cvtps_pd(_mm256_castps256_ps128(bf)), b1 = _mm256_cvtps_pd(_mm256_extractf128_ps(bf, 1));
        b0s = _mm256_add_pd(b0s, _mm256_mul_pd(b0, b0));
        b1s = _mm256_add_pd(b1s, _mm256_mul_pd(b1, b1));
        LSW_UNROLL4
        for (size_t j = 0; j < k; j++) {
            __m256 ef = lsw_x86_ld8(dt, e[j] + i * es);
            __m256d d0 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(ef)), b0);
            __m256d d1 = _mm256_sub_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(ef, 1)), b1);
            m0[j] = _mm256_add_pd(m0[j], _mm256_and_pd(d0, nosign));
            m1[j] = _mm256_add_pd(m1[j], _mm256_and_pd(d1, nosign));
            q0[j] = _mm256_add_pd(q0[j], _mm256_mul_pd(d0, d0));
            q1[j] = _mm256_add_pd(q1[j], _mm256_mul_pd(d1, d1));
        }
    }
    double lm[XK * LANES], lq[XK * LANES], lb[LANES];
    _mm256_storeu_pd(lb, b0s);
    _mm256_storeu_pd(lb + 4, b1s);
    for (size_t j = 0; j < k; j++) {
        _mm256_storeu_pd(lm + j * LANES, m0[j]);
        _mm256_storeu_pd(lm + j * LANES + 4, m1[j]);
        _mm256_storeu_pd(lq + j * LANES, q0[j]);
        _mm256_storeu_pd(lq + j * LANES + 4, q1[j]);
    }
    x_finish(dt, b, e, k, g, n, lm, lq, lb, mav, bsq, dsq);
}

/* one instantiation per (dtype, k), both constant inside */
#define N_CASE(FN, D, ES, K) FN(D, ES, b, e, K, n, mav, bsq, dsq); break
#define N_DISPATCH(FN)                                                                                  \
    switch ((dt) == LSW_DT_F32 ? 10 + (int)(k) : (dt) == LSW_DT_F16 ? 5 + (int)(k) : (int)(k)) {       \
    case 0: N_CASE(FN, LSW_DT_BF16, 2, 0);                                                             \
    case 1: N_CASE(FN, LSW_DT_BF16, 2, 1);                                                             \
    case 2: N_CASE(FN, LSW_DT_BF16, 2, 2);                                                             \
    case 3: N_CASE(FN, LSW_DT_BF16, 2, 3);                                                             \
    case 4: N_CASE(FN, LSW_DT_BF16, 2, 4);                                                             \
    case 5: N_CASE(FN, LSW_DT_F16, 2, 0);                                                              \
    case 6: N_CASE(FN, LSW_DT_F16, 2, 1);                                                              \
    case 7: N_CASE(FN, LSW_DT_F16, 2, 2);                                                              \
    case 8: N_CASE(FN, LSW_DT_F16, 2, 3);                                                              \
    case 9: N_CASE(FN, LSW_DT_F16, 2, 4);                                                              \
    case 10: N_CASE(FN, LSW_DT_F32, 4, 0);                                                             \
    case 11: N_CASE(FN, LSW_DT_F32, 4, 1);                                                             \
    case 12: N_CASE(FN, LSW_DT_F32, 4, 2);                                                             \
    case 13: N_CASE(FN, LSW_DT_F32, 4, 3);                                                             \
    case 14: N_CASE(FN, LSW_DT_F32, 4, 4);                                                             \
    default: abort();                                                                                  \
    }

LSW_T_AVX512 static void x512(lsw_dtype dt, const unsigned char *b, const unsigned char *const *e, size_t k, size_t n,
                              double *mav, double *bsq, double *dsq)
{
    N_DISPATCH(x512_k)
}

LSW_T_AVX2 static void x256(lsw_dtype dt, const unsigned char *b, const unsigned char *const *e, size_t k, size_t n,
                            double *mav, double *bsq, double *dsq)
{
    N_DISPATCH(x256_k)
}
#endif

void lsw_stats_chunk_sums(lsw_dtype dt, const void *b, const void *const *e, size_t k, size_t n, double *mav,
                          double *bsq, double *dsq)
{
    if (dt != LSW_DT_BF16 && dt != LSW_DT_F16 && dt != LSW_DT_F32)
        abort(); /* contract violation: not an arithmetic dtype */
    const unsigned char *bp = b, *const *ep = (const unsigned char *const *)e;
    lsw_isa isa = lsw_kernels_isa();
    size_t j0 = 0;
    do {
        size_t kk = k - j0 < XK ? k - j0 : XK;
        double *bs = j0 == 0 ? bsq : NULL; /* the base's squares once */
#ifdef LSW_X86
        if (isa == LSW_ISA_AVX512) {
            x512(dt, bp, ep + j0, kk, n, mav + j0, bs, dsq + j0);
            j0 += kk;
            continue;
        }
        if (isa == LSW_ISA_AVX2) {
            x256(dt, bp, ep + j0, kk, n, mav + j0, bs, dsq + j0);
            j0 += kk;
            continue;
        }
#else
        (void)isa;
#endif
        if (bs)
            *bs = generic(dt, NULL, bp, n, S_BSQ);
        for (size_t j = 0; j < kk; j++) {
            mav[j0 + j] = generic(dt, ep[j0 + j], bp, n, S_ABS);
            dsq[j0 + j] = generic(dt, ep[j0 + j], bp, n, S_DSQ);
        }
        j0 += kk;
    } while (j0 < k);
}
