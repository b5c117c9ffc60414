/* lsw_stats_norms — squared L2 norms for the module-level view of
 * `layerswap stats` (docs/statistics.md): per tensor, Σ f64(b)² of the base
 * and, per expert, Σ (f64(e) − f64(b))², so that a cell's relative change is
 * ‖Δ‖ / ‖W_base‖ = sqrt(ΣΔ²) / sqrt(Σb²).
 *
 * Summation order of one call over n elements (fixed by this text; every
 * instruction-set version gives the same bits, unit_stats checks it):
 *
 *   v[i]   = f64(b[i]) · f64(b[i])                  (base), or
 *   v[i]   = d · d with d = f64(e[i]) − f64(b[i])   (expert; exact widening)
 *   acc[l] = ((0 + v[l]) + v[8+l]) + v[16+l] + …     l = 0..7, over the ⌊n/8⌋ full groups
 *   s      = (((((((acc[0] + acc[1]) + acc[2]) + acc[3]) + acc[4]) + acc[5]) + acc[6]) + acc[7])
 *   s      = s + v[8g] + … + v[n−1]                  (the n % 8 tail, left to right)
 *
 * IEEE binary64, round to nearest, no fused multiply-add (-ffp-contract=off).
 * The caller adds the results of consecutive calls in order (the stats pass
 * calls once per LSW_MAV_CHUNK chunk of a row, rows in order), so a tensor's
 * sums depend only on its data.  The row MAVs' sums come out of the same pass
 * (lsw_stats_chunk_sums).  No MPI, no allocation, thread-safe.
 */
#ifndef LSW_STATS_NORMS_H
#define LSW_STATS_NORMS_H

#include <stddef.h>

#include "lsw_dtype.h"

/* One pass over a chunk for k experts (k ≥ 0): mav[j] = Σ |f64(e[j]) − f64(b)|
 * exactly as lsw_absdiff_sum sums it (the order documented in lsw_kernels.c:
 * the same eight lanes, bit for bit), dsq[j] = Σ (e[j] − b)² and, when bsq is
 * not NULL, *bsq = Σ b², each in the order above.  dt is BF16, F16 or F32 (the
 * base's and every expert's dtype).  Fusing the three sums reads and widens
 * each element once.  The version is chosen like lsw_absdiff_sum_multi's
 * (lsw_kernels_isa); every version gives the same bits. */
void lsw_stats_chunk_sums(lsw_dtype dt, const void *b, const void *const *e, size_t k, size_t n, double *mav,
                          double *bsq, double *dsq);

#endif
