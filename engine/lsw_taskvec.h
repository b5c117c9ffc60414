/* lsw_taskvec — merges computed tensor by tensor on one rank, with a
 * per-tensor pre-pass where the method needs one: the task-vector methods
 * task_arithmetic, ties, dare_linear, dare_ties (docs/config.md), breadcrumbs,
 * breadcrumbs_ties, della, della_linear, and slerp and model_stock (docs/mergekit.md).
 * Per tensor with base b and experts x_1..x_k in the order listed, f32
 * weights w_i, densities d_i, f32 λ (per tensor for a "sources"/"slices"
 * config: t->w and t->par, engine/lsw_plan.h):
 *
 * 1. δ_i[j] = f32(x_i[j]) − f32(b[j])                     (f32 subtraction)
 * 2. sparsify (d_i ≥ 1 keeps every element, unscaled)
 *    ties:  keep the K_i = floor(d_i · numel) elements of largest |δ_i|,
 *           comparing the f32 bit patterns of |δ_i| as unsigned integers (NaN
 *           above inf), ties broken by lower flat index; the rest become +0.
 *    breadcrumbs*: in that order (largest first, ties to the lower index),
 *           keep ranks [n_top, n_top + K_i) with K_i = floor(d_i · numel),
 *           n_top = min(floor(γ_i · numel), numel − K_i) (mergekit's
 *           outliers: the n_top largest and the smallest are dropped).
 *    dare:  h = FNV-1a 64 of the tensor name; s_i = splitmix64(splitmix64(seed
 *           ^ h) + i) (i from 0); for element j, u = (splitmix64(s_i + j) >> 11)
 *           · 2^-53; keep iff u < d_i; survivors δ_i[j] / f32(d_i), the rest +0.
 *    della: per row (docs/statistics.md rows: c1·c2·… elements, a 1-D tensor is one
 *           row) of n elements, r = the rank of |δ_i[j]| in its row
 *           (ascending bit patterns, ties to the lower index; 1..n),
 *           p = (d_i − ε_i) + ((r − 1) / (n − 1)) · (2ε_i) in f64 (r − 1 = 0
 *           when n = 1); keep iff u < p with u as for dare; survivors
 *           δ_i[j] / f32(p) ("rescale": false: unscaled).
 * 3. combine (products rounded to f32, sums left to right from the first term)
 *    task_arithmetic, dare_linear, breadcrumbs, della_linear: m = Σ_i w_i·δ_i;
 *           normalize: m / D with D = Σ_i w_i (f32).
 *    ties, dare_ties, breadcrumbs_ties, della: s = Σ_i w_i·δ_i; the sign is +
 *           iff s ≥ 0; agreeing experts have δ_i > 0 (+) or δ_i < 0 (−);
 *           m = Σ_agreeing w_i·δ_i (+0 if none); normalize: m / D with
 *           D = Σ_agreeing w_i.
 *    In both, a divisor with |D| < 1e-8 is taken as 1.
 * 4. out = round_out(f32(b) + f32(λ · m)).
 * Defaults: weights 1, density 1, λ 1, seed 0, normalize true for ties and
 * false for the others (mergekit's).
 *
 * slerp (base b = x_0, other x_1, t) and model_stock (base b, experts x_i):
 * a pass over the whole tensor sums, in f64, in 8 lanes (element j into
 * lane j mod 8, lanes added 0..7 at the end), the exact f64 products:
 *   slerp: n0 = Σ b², n1 = Σ x², dot = Σ b·x; with n0' = √n0 if √n0 > 1e-8
 *     else 1 (likewise n1'), c = dot / (n0' · n1'); |c| > 0.9995: w = (1 − t,
 *     t); else θ = acos(c), s = sin(θ), w = (sin(θ − θ·t) / s, sin(θ·t) / s).
 *   model_stock: over δ_i = f32(x_i) − f32(b): n_i = √Σ δ_i², for i < j in
 *     order c_ij = clamp(Σ δ_i·δ_j / max(n_i·n_j, 1e-6), −1, 1), c = mean of
 *     c_ij (summed in order), N experts, τ = N·c / (1 + (N − 1)·c) (0 when
 *     the divisor is 0); w = (1 − τ, τ/N, …, τ/N).
 *   The weights are rounded to f32 once; out = round_out(Σ w_i·x_i) (docs/numerics.md,
 *   the base first).
 *
 * "trim": "global" (ties only) replaces step 2's per-tensor K_i by one over
 * the whole model (lsw_tv_global).
 * Thresholds are found by a streaming radix select: a pass over the tensor
 * histograms the upper 16 bits of the 31-bit key |δ|, a second the lower 15
 * within the boundary bin (both cuts of breadcrumbs in the same passes); the
 * compute pass then keeps keys above the threshold and, in index order, as
 * many equal to it as the quota allows.  A tensor is therefore computed by
 * one rank, in order, within the scratch it is given (della also holds one
 * row of every source).
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

/* Threads the threshold scans of ties and breadcrumbs may use (default 1):
 * each takes every n-th block of a tensor and counts on its own; the counts
 * are added, so every thread count gives the same thresholds.  Fewer than n
 * where the helpers' buffers (about 1 MiB per expert each) would take more
 * than mem / 4 or 64 MiB, whichever is more.  Tensors of a derived model (lsw_derived views) are scanned
 * by one thread. */
void lsw_tv_set_threads(lsw_tv *tv, int n, uint64_t mem);

/* The most threads one scan has used so far (0: no scan ran). */
unsigned lsw_tv_threads_used(const lsw_tv *tv);

/* "trim": "global" (ties): find each expert's threshold over the whole
 * model — K_i = floor(d_i · N) over the N elements of all task-vector
 * tensors concatenated in byte-wise name order, ties to the lower position —
 * and each tensor's share of the keys equal to it.  Three passes over the
 * model, tensors spread over the ranks, histograms summed.  No-op for the
 * other methods.  Collective over c->comm. */
int lsw_tv_global(lsw_tv *tv, const lsw_plan *p, const lsw_comm *c, char *scratch, size_t scratch_bytes);

/* Start tensor t (op LSW_OP_TV): ties and breadcrumbs read the tensor
 * twice to find the thresholds, slerp and model_stock once for their
 * weights, streaming through `scratch` (caller-owned, at least one element
 * of every source).  Errors: read errors of the inputs. */
int lsw_tv_begin(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t scratch_bytes);

/* Elements [j0, j0 + n) of t into `out` (t->out_dtype), after lsw_tv_begin
 * and in increasing j0: in[0] holds the base's elements, in[1 + i] expert
 * i's (their dtypes are t->src[..]->dtype).  0, or (della, which may read
 * a whole row of the sources) a read error. */
int lsw_tv_block(lsw_tv *tv, const lsw_plan_tensor *t, uint64_t j0, size_t n, const void *const *in, void *out);

#endif
