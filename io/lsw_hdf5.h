/* lsw_hdf5 — model.h5: the HDF5 output of a merge, and reading it back as an
 * input checkpoint.  Compiled only when LSW_WITH_HDF5 is ON (LSW_HAVE_HDF5).
 *
 * Layout of model.h5 (docs/output.md):
 *   superblock     HDF5 file format of release 1.8 (libver bounds V18..V18,
 *                  readable by HDF5 >= 1.8), no object time stamps anywhere
 *   /              attributes, variable-length UTF-8 strings (h5py: str; files
 *                  of layerswap before 0.1.0's stats rework hold fixed-length
 *                  ones, which the reader still accepts):
 *                    config            the merge config JSON text
 *                    plan              the dry-run plan text
 *                    layerswap_version "0.1.0"
 *   /tensors       group; one dataset per tensor, named by the tensor name
 *   /tensors/<t>   shape = tensor shape (a 0-d tensor as [1] + attribute
 *                  scalar = 1); chunks of whole rows, rows_per_chunk from
 *                  lsw_h5layout.h; pipeline [shuffle (filter 2), zstd
 *                  (filter 32015, optional, cd_values {level, chunk bytes})];
 *                  a tensor without elements is contiguous and unfiltered.
 *                  Attribute dtype = safetensors dtype name (a variable-length
 *                  UTF-8 string; fixed-length strings are read too).
 *                  Element types, all little endian:
 *                    F32 IEEE f32, F64 IEEE f64,
 *                    F16 IEEE f16: sign 15, exponent 10-14 bias 15, mantissa 0-9,
 *                    BF16 sign 15, exponent 7-14 bias 127, mantissa 0-6,
 *                    I8..I64 / U8..U64 the standard integers,
 *                    BOOL and F8_* as U8 (the dtype attribute tells them apart),
 *                    C64 compound {r: f32 at 0, i: f32 at 4} (h5py: complex64).
 *   chunk bytes    see lsw_zstd_filter.h (edge chunks padded with zeros).
 *
 * Writing: rank 0 alone creates the file with the sec2 driver; chunks are
 * encoded anywhere with lsw_chunk_encode[_padded] and stored with
 * H5Dwrite_chunk, so the filter pipeline never runs at write time.  The file
 * bytes are a function of the sequence of calls (create, define, write_chunk,
 * close) and their arguments only: to get identical files for any number of
 * ranks, rank 0 must make the same calls in the same order — define in plan
 * order and write chunks in a fixed order (e.g. tensor by tensor, chunk by
 * chunk), never in order of arrival.
 *
 * HDF5 is not built thread-safe here: call these from one thread at a time.
 * HDF5's automatic error printing is switched off for the process; failures
 * are recorded with lsw_err_set ("FILE: tensor 'NAME': RULE").
 */
#ifndef LSW_HDF5_H
#define LSW_HDF5_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"
#include "lsw_h5layout.h"
#include "lsw_zstd_filter.h"

/* Register the zstd filter (32015) with the HDF5 library of this process
 * (replaces a plugin-loaded one).  Idempotent.  0 or LSW_E_INTERNAL. */
int lsw_h5z_register(void);

/* ---- writer ---------------------------------------------------------- */

typedef struct lsw_h5_writer lsw_h5_writer; /* opaque */

/* Create (truncate) the file at `path` — a temporary name: the caller fsyncs
 * and renames it after lsw_h5_close — and write the root attributes (NULL
 * texts are written as "").  `level` is the zstd level of the filter's
 * cd_values (chunks are compressed by the caller at that level), `shuffle`
 * nonzero adds the byte-shuffle filter (chunks must then be shuffled).
 * Errors: LSW_E_CONFIG (level outside zstd's range), LSW_E_IO, LSW_E_NOMEM. */
int lsw_h5_create(const char *path, const char *config_text, const char *plan_text, int level, int shuffle,
                  lsw_h5_writer **out);

/* Create dataset /tensors/<name>.  *index (optional) receives its index for
 * lsw_h5_write_chunk: 0, 1, 2, ... in call order.  Errors: LSW_E_INPUT (name
 * with '/' or ".", duplicate name, unknown dtype, more than 32 dimensions, a
 * row of 4 GiB or more), LSW_E_IO, LSW_E_NOMEM. */
int lsw_h5_define(lsw_h5_writer *w, const char *name, lsw_dtype dt, size_t ndim, const uint64_t *shape,
                  size_t *index);

/* Store one encoded chunk (from lsw_chunk_encode[_padded] with this file's
 * level and shuffle and the full lsw_h5_chunk_bytes of the tensor) as the
 * chunk whose first row is chunk_row0, a multiple of rows_per_chunk (0 for
 * 0-d and 1-d tensors).  Each chunk exactly once.  Errors: LSW_E_INTERNAL
 * (bad index, row, size, or a chunk written twice), LSW_E_IO, LSW_E_NOSPACE. */
int lsw_h5_write_chunk(lsw_h5_writer *w, size_t index, uint64_t chunk_row0, const void *compressed, size_t n);

/* Flush and close the file, then free the writer (also on failure).
 * Errors: LSW_E_INTERNAL if a chunk of a defined tensor was never written
 * (it would read back as zeros), LSW_E_IO, LSW_E_NOSPACE. */
int lsw_h5_close(lsw_h5_writer *w);

/* Close without checks and free the writer; accepts NULL.  The partial file
 * stays: the caller removes it. */
void lsw_h5_abort(lsw_h5_writer *w);

/* ---- reader: model.h5 as an input checkpoint ------------------------- */

typedef struct lsw_h5_input lsw_h5_input; /* opaque */

typedef struct lsw_h5_tensor {
    const char *name;      /* dataset name under /tensors, owned by the handle */
    lsw_dtype dtype;       /* from the dtype attribute, checked against the HDF5 type */
    size_t ndim;           /* 0 for a tensor stored with scalar = 1 */
    const uint64_t *shape; /* ndim entries, owned by the handle */
    uint64_t numel;
    uint64_t nbytes;       /* numel * dtype size: the tensor's raw little-endian bytes */
} lsw_h5_tensor;

/* Open and validate an HDF5 checkpoint: every link under /tensors is a hard
 * link to a dataset with a known `dtype` attribute matching its HDF5 type,
 * sizes checked for overflow, every filter of its pipeline available.
 * Errors: LSW_E_NOTFOUND, LSW_E_INPUT (recorded "FILE: tensor 'NAME': RULE"),
 * LSW_E_NOMEM.
 *
 * Wiring into lsw_checkpoint (for its owner):
 *   lsw_ckpt_open:  a path for which lsw_h5_sniff() == 1 (or a folder holding
 *                   model.h5) → lsw_h5_open_input(path, &h); for i <
 *                   lsw_h5_input_count(h) fill an lsw_tensor_desc from
 *                   lsw_h5_input_at(h, i) (name, dtype, ndim, shape, numel,
 *                   nbytes; layer = lsw_layer_of(name); file = 0; offset is
 *                   meaningless — keep i to find the tensor again).  Tensors
 *                   come sorted byte-wise by name, like lsw_ckpt_at.
 *   lsw_ckpt_read:  lsw_h5_input_read(h, i, off, buf, n).
 *   lsw_ckpt_close: lsw_h5_input_close(h).
 *   identity:       the file's size and mtime; lsw_h5_input_attr(h, "config")
 *                   and "plan" give the texts that produced it.
 *   In a build without HDF5, lsw_h5_sniff still works, to refuse such inputs
 *   with a clear message. */
int lsw_h5_open_input(const char *path, lsw_h5_input **out);
void lsw_h5_input_close(lsw_h5_input *in); /* accepts NULL */

const char *lsw_h5_input_path(const lsw_h5_input *in);
size_t lsw_h5_input_count(const lsw_h5_input *in);
/* Tensor i, in byte-wise name order. */
const lsw_h5_tensor *lsw_h5_input_at(const lsw_h5_input *in, size_t i);
/* Index of the tensor called `name`, or (size_t)-1. */
size_t lsw_h5_input_find(const lsw_h5_input *in, const char *name);
/* Root attribute "config", "plan" or "layerswap_version"; NULL if absent. */
const char *lsw_h5_input_attr(const lsw_h5_input *in, const char *name);

/* Read bytes [off, off + n) of tensor i's raw little-endian data.  Reads
 * whole rows through H5Dread (memory type = file type: no conversion); a
 * range that starts or ends inside a row costs one extra row of memory.
 * Decoded chunks are cached for the tensor last read (two chunks' worth).
 * Errors: LSW_E_READ (names file and tensor: damaged chunk, missing filter,
 * I/O error), LSW_E_INTERNAL (range outside the tensor), LSW_E_NOMEM. */
int lsw_h5_input_read(lsw_h5_input *in, size_t i, uint64_t off, void *buf, size_t n);

#endif
