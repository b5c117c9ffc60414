/* lsw_kernels — the arithmetic of docs/numerics.md and docs/statistics.md on blocks of elements.
 *
 * Conversions are exact where docs/numerics.md says so: every BF16, F16 and F32 input
 * is widened exactly to f32.  Narrowing is round-to-nearest-even: f32 → bf16
 * maps every NaN to 0x7FC0 (sign kept off); f32 → f16 is IEEE binary16 with
 * subnormals and overflow to infinity (NaN → 0x7E00).  Nothing here uses
 * hardware bf16 instructions (they flush subnormals) and the library is built
 * with -ffp-contract=off so no product is fused into an addition.
 * All buffers are caller-owned; element pointers need no particular alignment
 * beyond that of their element type.
 */
#ifndef LSW_KERNELS_H
#define LSW_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"

float lsw_bf16_to_f32(uint16_t h);
uint16_t lsw_f32_to_bf16(float f);
float lsw_f16_to_f32(uint16_t h);
uint16_t lsw_f32_to_f16(float f);

/* dst[i] = f32(src[i]) for n elements of arithmetic dtype `dt` (BF16, F16, F32). */
void lsw_to_f32(lsw_dtype dt, const void *src, float *dst, size_t n);
/* dst[i] = round_dt(src[i]) for n elements into arithmetic dtype `dt`. */
void lsw_from_f32(lsw_dtype dt, const float *src, void *dst, size_t n);

/* Weighted sum of k inputs, docs/numerics.md:
 *   out[i] = round_out( ((w[0]*x0[i]) + w[1]*x1[i]) + ... )
 * every input widened exactly to f32, every product rounded to f32, summed left
 * to right in input order starting from the first product (no leading +0.0),
 * one final rounding to `out_dt`.  in_dt[j] and out_dt are arithmetic dtypes;
 * `in` may hold different dtypes.  `out` may not alias any input.  k ≥ 1. */
void lsw_wsum(lsw_dtype out_dt, void *out, size_t n,
              size_t k, const lsw_dtype *in_dt, const void *const *in, const float *w);

/* Σ |f64(e[i]) − f64(b[i])| over n elements of dtype `dt`, accumulated in f64.
 * The summation order is fixed by the code (independent of how callers split
 * tensors into rows), so results are reproducible bit for bit. */
double lsw_absdiff_sum(lsw_dtype dt, const void *e, const void *b, size_t n);

/* out[j] = lsw_absdiff_sum(dt, e[j], b, n) for j < k, bit for bit, in one
 * pass over the base for up to four experts at a time (faster than k calls). */
void lsw_absdiff_sum_multi(lsw_dtype dt, const void *b, const void *const *e, size_t k, size_t n, double *out);

/* Instruction sets of the hand-vectorised MAV kernels (x86-64).  Every one
 * gives the same bits; the choice only changes speed. */
typedef enum { LSW_ISA_AUTO = 0, LSW_ISA_GENERIC = 1, LSW_ISA_AVX2 = 2, LSW_ISA_AVX512 = 3 } lsw_isa;

/* The set in use: the best this CPU has, unless lsw_kernels_set_isa chose one. */
lsw_isa lsw_kernels_isa(void);
/* Use `isa` (LSW_ISA_AUTO: the best available) from now on, process-wide;
 * for tests and benchmarks.  Returns -1 (and changes nothing) if the CPU
 * lacks it.  Not thread-safe against kernels running at the same time. */
int lsw_kernels_set_isa(lsw_isa isa);
/* "generic", "avx2", "avx512" or "auto" (static string). */
const char *lsw_isa_name(lsw_isa isa);

#endif
