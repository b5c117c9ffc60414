/* lsw_x86.h — internal to the hand-vectorised kernels (lsw_kernels.c,
 * lsw_stats_norms.c); not installed, no state, no .c file.
 *
 * Where x86-64 intrinsics are usable it defines LSW_X86, the function target
 * attributes of the two instruction sets the kernels are built for, and the
 * one widening load they share.  Which set runs is chosen once at run time by
 * lsw_kernels_isa(); LSW_NO_X86 (a build flag) leaves only the portable C. */
#ifndef LSW_X86_H
#define LSW_X86_H

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(LSW_NO_X86)
#define LSW_X86 1
#include <immintrin.h>

#include "lsw_dtype.h"

#define LSW_T_AVX2 __attribute__((target("avx2,f16c")))
#define LSW_T_AVX512 __attribute__((target("avx512f,avx2,f16c")))
/* the expert loops are unrolled so that each accumulator stays in a register */
#define LSW_UNROLL4 _Pragma("GCC unroll 4")

/* 8 elements at p (bf16, f16 or f32 by dt) widened exactly to f32: bf16 by the
 * 16-bit shift, f16 by F16C (exact, subnormals included), f32 as is. */
LSW_T_AVX2 static inline __attribute__((always_inline)) __m256 lsw_x86_ld8(lsw_dtype dt, const unsigned char *p)
{
    switch (dt) {
    case LSW_DT_BF16:
        return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p)), 16));
    case LSW_DT_F16: return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
    default: return _mm256_loadu_ps((const float *)p);
    }
}
#endif

#endif /* LSW_X86_H */
