/* lsw_taskvec — task-vector merges: task_arithmetic, ties, dare_linear,
 * dare_ties (docs/config.md), exactly as follows, per tensor with base b and experts
 * x_1..x_k in the order listed, f32 weights w_i, densities d_i, f32 λ:
 *
 * 1. δ_i[j] = f32(x_i[j]) − f32(b[j])                     (f32 subtraction)
 * 2. sparsify
 *    ties:  keep the K_i = floor(d_i · numel) elements of largest |δ_i|,
 *           comparing the f32 bit patterns of |δ_i| as unsigned integers (NaN
 *           above inf), ties broken by lower flat index; the rest become +0.
 *    dare:  h = FNV-1a 64 of the tensor name; s_i = splitmix64(splitmix64(seed
 *           ^ h) + i) (i from 0); for element j, u = (splitmix64(s_i + j) >> 11)
 *           · 2^-53; keep iff u < d_i; survivors δ_i[j] / f32(d_i), the rest +0.
 * 3. combine (products rounded to f32, sums left to right from the first term)
 *    task_arithmetic, dare_linear: m = Σ_i w_i·δ_i; normalize: m / D with
 *           D = Σ_i w_i (f32).
 *    ties, dare_ties: s = Σ_i w_i·δ_i; the sign is + iff s ≥ 0; agreeing
 *           experts have δ_i > 0 (+) or δ_i < 0 (−); m = Σ_agreeing w_i·δ_i
 *           (+0 if none); normalize: m / D with D = Σ_agreeing w_i.
 *    In both, a divisor with |D| < 1e-8 is taken as 1.
 * 4. out = round_out(f32(b) + f32(λ · m)).
 * Defaults: weights 1, density 1, λ 1, seed 0, normalize true for ties and
 * false for the others (mergekit's).
 *
 * "trim": "global" (ties only) replaces step 2's per-tensor K_i by one over
 * the whole model (lsw_tv_global).
 * The ties threshold of each expert is found by a streaming radix select: a
 * pass over the tensor histograms the upper 16 bits of the 31-bit key |δ|,
 * a second the lower 15 within the boundary bin; the compute pass then keeps
 * keys above the threshold and, in index order, as many equal to it as the
 * quota allows.  A tensor is therefore computed by one rank, in order.
 */
#ifndef LSW_TASKVEC_H
#define LSW_TASKVEC_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_plan.h"

typedef struct lsw_tv lsw_tv; /* opaque: parameters and per-tensor state */

/* From a config whose method is LSW_METHOD_TASKVEC. */
int lsw_tv_create(const lsw_config *cfg, lsw_tv **out);
void lsw_tv_free(lsw_tv *tv); /* accepts NULL */

/* "trim": "global" (ties): find each expert's threshold over the whole
 * model — K_i = floor(d_i · N) over the N elements of all task-vector
 * tensors concatenated in byte-wise name order, ties to the lower position —
 * and each tensor's share of the keys equal to it.  Three passes over the
 * model, tensors spread over the ranks, histograms summed.  No-op for the
 * other methods.  Collective over c->comm. */
int lsw_tv_global(lsw_tv *tv, const lsw_plan *p, const lsw_comm *c, char *scratch, size_t scratch_bytes);

/* Start tensor t (op LSW_OP_TV): ties reads the tensor twice to find the
 * thresholds, streaming through `scratch` (caller-owned, at least one element
 * of every source).  Errors: read errors of the inputs. */
int lsw_tv_begin(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t scratch_bytes);

/* Elements [j0, j0 + n) of t into `out` (t->out_dtype), after lsw_tv_begin
 * and in increasing j0: in[0] holds the base's elements, in[1 + i] expert
 * i's (their dtypes are t->src[..]->dtype). */
void lsw_tv_block(lsw_tv *tv, const lsw_plan_tensor *t, uint64_t j0, size_t n, const void *const *in, void *out);

#endif
