/* lsw_mav — mean absolute value of expert − base, per row (docs/statistics.md).
 *
 * A row of a tensor of shape [r, c1, c2, ...] is c1·c2·… elements; a 1-D
 * tensor is one row.  MAV(row) = Σ|f64(e) − f64(b)| / n, with the sum taken
 * over fixed chunks of LSW_MAV_CHUNK elements in order (each chunk by
 * lsw_absdiff_sum), so a row's value never depends on memory budgets or on
 * how work is split between ranks.
 */
#ifndef LSW_MAV_H
#define LSW_MAV_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_checkpoint.h"

#define LSW_MAV_CHUNK 65536

/* 1 if the tensor takes part in the model MAV (docs/statistics.md: 1-D or 2-D,
 * BF16/F16/F32, not empty). */
int lsw_mav_eligible(const lsw_tensor_desc *t);
/* 1 if the tensor has row MAVs (stats.h5): any arithmetic tensor of one or
 * more dimensions that is not empty; scalars have no rows. */
int lsw_mav_has_rows(const lsw_tensor_desc *t);
/* Rows and row length of a tensor with rows: [r, c1, c2, ...] has r rows of
 * c1·c2·… elements, a 1-D tensor one row. */
void lsw_mav_rows(const lsw_tensor_desc *t, uint64_t *rows, uint64_t *row_len);

/* Row MAVs of rows [row0, row0 + nrows) of tensor `name` of `expert`
 * against `base` into out[0..nrows), streaming through `buf` (caller-owned,
 * `buf_bytes` ≥ 2·LSW_MAV_CHUNK·element size).  Errors: LSW_E_MISMATCH
 * (tensor missing in the base or different shape/dtype), LSW_E_READ. */
int lsw_mav_tensor_rows(const lsw_ckpt *base, const lsw_ckpt *expert, const lsw_tensor_desc *et, uint64_t row0,
                        uint64_t nrows, void *buf, size_t buf_bytes, double *out);

/* Σ of the row MAVs of eligible tensor `t` of `expert` (rows in order, f64). */
int lsw_tensor_mav_sum(const lsw_ckpt *base, const lsw_ckpt *expert, const lsw_tensor_desc *t, void *buf,
                       size_t buf_bytes, double *sum);
/* Buffer size for the MAV functions under a memory budget. */
size_t lsw_mav_buffer_bytes(uint64_t mem);

/* Model MAV of `expert` against `base` (docs/statistics.md): Σ over eligible tensors in
 * name order of their row-MAV sums (each summed over rows in order), divided
 * by the total number of rows.  The per-tensor grouping of the sum is what
 * lets ranks compute tensors independently and still agree bit for bit. */
int lsw_model_mav(const lsw_ckpt *base, const lsw_ckpt *expert, uint64_t mem, double *out);

#endif
