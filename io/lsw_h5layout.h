/* lsw_h5layout — the chunk geometry of model.h5, with no HDF5 call.
 *
 * Layout of a tensor's dataset /tensors/<name> (docs/output.md, see lsw_hdf5.h):
 *   ndim >= 2, shape [r, c1, c2, ...]: dataset shape = tensor shape; a "row"
 *              is one index of dim 0 (c1*c2*... elements); chunk =
 *              [rows_per_chunk, c1, c2, ...]; chunk k holds rows
 *              [k*rows_per_chunk, (k+1)*rows_per_chunk) and the last one may
 *              be partial (it is stored padded with zeros, see
 *              lsw_zstd_filter.h).
 *   ndim == 1, shape [n]: the whole tensor is one row and one chunk [n].
 *   ndim == 0: stored as shape [1] (an HDF5 scalar dataspace cannot be
 *              chunked or filtered), chunk [1], with the dataset attribute
 *              scalar = 1 so that a reader gives back a 0-d tensor.
 *   no elements (a zero in the shape): contiguous, unfiltered, no chunk.
 * rows_per_chunk makes a chunk as close to LSW_H5_CHUNK_TARGET bytes as whole
 * rows allow (at least one row, at most all rows).  A chunk must stay under
 * HDF5's 4 GiB chunk limit, so a tensor whose single row is 4 GiB or more
 * cannot be stored.
 *
 * Every rank computes the same geometry from (dtype, shape) alone; the
 * engine must split a tensor's work at multiples of rows_per_chunk so that
 * each chunk is encoded by one rank (lsw_chunk_encode) and handed to rank 0.
 */
#ifndef LSW_H5LAYOUT_H
#define LSW_H5LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"

#define LSW_H5_CHUNK_TARGET (1u << 20)        /* about 1 MiB of raw bytes per chunk */
#define LSW_H5_CHUNK_MAX 0xFFFFFFFFULL        /* HDF5 1.10: a chunk is < 4 GiB */
#define LSW_H5_MAX_RANK 32                    /* H5S_MAX_RANK */

/* Rows of the tensor in the sense above: shape[0] for ndim >= 2, else 1. */
uint64_t lsw_h5_rows(size_t ndim, const uint64_t *shape);
/* Bytes of one row; 0 if the tensor has no elements or on overflow. */
uint64_t lsw_h5_row_bytes(lsw_dtype dt, size_t ndim, const uint64_t *shape);
/* Rows per chunk (>= 1).  0 only when the tensor cannot be stored: unknown
 * dtype, ndim > 32, size overflow, or one row >= 4 GiB.  Tensors without
 * elements give 1 (and have no chunk). */
uint64_t lsw_h5_rows_per_chunk(lsw_dtype dt, size_t ndim, const uint64_t *shape);
/* Raw bytes of every chunk, the edge chunk included (it is padded):
 * rows_per_chunk * row_bytes; 0 for no elements or unstorable tensors. */
uint64_t lsw_h5_chunk_bytes(lsw_dtype dt, size_t ndim, const uint64_t *shape);
/* Number of chunks: ceil(rows / rows_per_chunk); 0 for no elements. */
uint64_t lsw_h5_chunk_count(lsw_dtype dt, size_t ndim, const uint64_t *shape);

/* 1 if `name` can be a dataset name under /tensors: non-empty, no '/', not
 * "." (HDF5 path syntax).  The writer refuses other names with LSW_E_INPUT. */
int lsw_h5_name_ok(const char *name);

/* 1 if the file at `path` starts with the HDF5 signature (at offset 0 or at a
 * user-block offset 512, 1024, ... below 64 KiB), 0 if not, negative
 * LSW_E_NOTFOUND if it cannot be opened.  Needs no HDF5: a build without it
 * can still say "this is an HDF5 checkpoint". */
int lsw_h5_sniff(const char *path);

#endif
