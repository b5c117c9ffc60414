/* lsw_stats_h5 — stats.h5, the numbers of `layerswap stats` for HDF5 readers
 * (docs/statistics.md, "stats.h5").
 *
 *   /                              attributes base, tool (strings), layers (i64)
 *   /<expert>                      group; attributes model_mav (f64), path (string)
 *   /<expert>/<tensor name>        f64 [rows]: the tensor's row MAVs; attributes
 *                                  sumsq_base = Σ base², sumsq_delta = Σ (expert − base)² (f64)
 *   /cells                         group; attributes types, non_layer_types (string arrays:
 *                                  the columns and the non-layer cells' types, in order)
 *   /cells/<expert>/<stat>         f64 [layers, types] for stat in mean, max, p50, p90, p99,
 *                                  unchanged, rel_change, share (NaN where a layer has no tensor of
 *                                  the type); rows: u64 [layers, types] (0 there)
 *   /cells/<expert>/non_layer/<stat>   the same, [non-layer types]
 *
 * The summary.json cells exactly (same doubles).  Every string attribute is
 * a variable-length UTF-8 string (h5py returns `str`).  Datasets are
 * contiguous and uncompressed (row MAVs are 8 bytes a row, their mantissas
 * do not compress), with no modification times, so the same results give the
 * same bytes.  Written with serial-style calls (default file access property
 * list) by one process, which works with serial and parallel HDF5 builds
 * alike.  Without HDF5 (no LSW_HAVE_HDF5) lsw_stats_h5_available() is 0 and
 * writing is LSW_E_INTERNAL.
 */
#ifndef LSW_STATS_H5_H
#define LSW_STATS_H5_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_checkpoint.h"
#include "lsw_stats_summary.h"

int lsw_stats_h5_available(void);

typedef struct lsw_stats_h5_in {
    const lsw_ckpt *base;          /* tensors in name order */
    const char *base_path;
    const lsw_stats_summary *s;    /* experts (names, model MAVs, cells) */
    const char *const *paths;      /* per expert */
    const uint64_t *row_off;       /* per base tensor; UINT64_MAX: no row MAVs */
    const double *const *rows;     /* rows[e][row_off[t] + r] */
    const double *bsq;             /* per base tensor: Σ base² (NULL: none) */
    const double *const *dsq;      /* dsq[e][t] */
} lsw_stats_h5_in;

/* Write the file at `path` (created or truncated).  Errors: LSW_E_IO naming
 * the path and the dataset. */
int lsw_stats_h5_write(const char *path, const lsw_stats_h5_in *in);

#endif
