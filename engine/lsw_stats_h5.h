/* lsw_stats_h5 — stats.h5: the row MAVs of `layerswap stats` (docs/statistics.md).
 *
 * Dataset /<expert>/<tensor name> = the tensor's f64 row MAVs (1-D, one value
 * per row), chunked and gzip-compressed (level 4); each expert group carries
 * attributes `model_mav` (f64) and `path` (string); the root carries `base`.
 * Written with serial-style calls (default file access property list) by
 * one process, which works with serial and parallel HDF5 builds alike.
 * Without HDF5 (no LSW_HAVE_HDF5) lsw_stats_h5_available() is 0 and writing
 * is LSW_E_INTERNAL.
 */
#ifndef LSW_STATS_H5_H
#define LSW_STATS_H5_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_checkpoint.h"

int lsw_stats_h5_available(void);

/* Write the file at `path` (created or truncated).  Tensors: the base's, in
 * name order, row_off[t] == UINT64_MAX for those without row MAVs; rows[e]
 * as in lsw_stats_input.  Errors: LSW_E_IO naming the path and the dataset. */
int lsw_stats_h5_write(const char *path, const lsw_ckpt *base, const char *base_path, size_t nexperts,
                       const char *const *names, const char *const *paths, const double *model_mav,
                       const uint64_t *row_off, const double *const *rows);

#endif
