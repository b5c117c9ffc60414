/* lsw_stats_rows — row MAVs (docs/statistics.md) of many experts against one base in a
 * single pass over the base.
 *
 * Each block of base rows is read once; the same rows of every expert are
 * read next to it and each expert's row MAVs are computed against the one
 * base block.  The arithmetic is lsw_mav_tensor_rows's exactly: a row is
 * summed in fixed chunks of LSW_MAV_CHUNK elements counted from the row's
 * first element, each chunk by lsw_absdiff_sum, the chunk sums added in order
 * in f64 and divided by the row length.  So a row's value depends only on its
 * data, never on the buffer size, the block boundaries or the rank that
 * computes it, and equals lsw_mav_tensor_rows's bit for bit.
 */
#ifndef LSW_STATS_ROWS_H
#define LSW_STATS_ROWS_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_checkpoint.h"
#include "lsw_progress.h"

/* Seconds spent reading (by the reader thread when overlapped), in the MAV
 * kernel, and waiting for a read to finish; bytes read over all models. */
typedef struct lsw_stats_timing {
    double read_s, kernel_s, wait_s;
    uint64_t bytes;
    int overlapped; /* helper threads: readers of copies, or (mapped) workers beside the caller; 0: none */
    int mapped;     /* 1: the files were mapped, not copied */
} lsw_stats_timing;

/* Check every expert against the base from the headers alone: the same
 * tensor names (none missing, none extra) and shapes, and dtypes equal or
 * both BF16/F16/F32 (compared exactly through f64).  Errors:
 * LSW_E_MISMATCH, "EXPERT_FILE: tensor 'NAME': RULE", for the first expert
 * (in order) and the first tensor (name order) that breaks a rule. */
int lsw_stats_check_experts(const lsw_ckpt *base, lsw_ckpt *const *experts, size_t nexperts);

/* Smallest buffer lsw_stats_tensor_rows accepts for `nexperts` experts:
 * one chunk of the widest element type per model. */
size_t lsw_stats_buf_min(size_t nexperts);

/* Row MAVs of rows [row0, row0 + nrows) of the eligible base tensor `bt`
 * (lsw_mav_eligible) for each expert: out[e][0..nrows), e < nexperts.
 * Streams through `buf` (caller-owned, buf_bytes ≥ lsw_stats_buf_min),
 * split in 1 + nexperts equal parts of whole chunks.  `pr` (may be NULL)
 * gets the bytes read; `tm` (may be NULL) accumulates timings.  Polls
 * lsw_stop_signal between blocks.  Errors: LSW_E_MISMATCH (an expert lacks
 * the tensor or it differs), LSW_E_READ, LSW_E_INTERRUPTED, LSW_E_INTERNAL
 * (buffer too small). */
int lsw_stats_tensor_rows(const lsw_ckpt *base, const lsw_tensor_desc *bt, lsw_ckpt *const *experts,
                          size_t nexperts, uint64_t row0, uint64_t nrows, void *buf, size_t buf_bytes,
                          double *const *out, lsw_progress *pr, lsw_stats_timing *tm);

/* One piece of work: rows [row0, row0 + nrows) of eligible base tensor `bt`,
 * row MAVs of expert e into out[e][0..nrows).  When bsq and dsq are not
 * NULL, *bsq += Σ f64(b)² and dsq[e] += Σ (f64(x_e) − f64(b))² over those
 * rows: each row's sum is its chunks' sums (lsw_stats_norms.h) added in order
 * from 0, and the rows' sums are added in row order, so a whole tensor's sums
 * depend only on its data; the caller zeroes them. */
typedef struct lsw_stats_job {
    const lsw_tensor_desc *bt;
    uint64_t row0, nrows;
    double *const *out;
    double *bsq, *dsq;
} lsw_stats_job;

/* Run jobs[0..njobs), streaming blocks of whole rows (or whole chunks of a
 * row longer than a block).  Two ways to get a block's bytes:
 *  - mapped (every model is safetensors files, and map_bytes holds a block of
 *    at least 1 MiB per model for each of the 1 + readers workers): this
 *    thread and `readers` more (at most 8) each claim the next block (all the
 *    pieces of a long row at once), mmap it where the page cache holds it (no
 *    copy), populate, sum and unmap it; blocks of up to 16 MiB per model, so
 *    at most map_bytes are mapped at once.  A file cut short while being read
 *    is LSW_E_READ, not a SIGBUS;
 *  - copied into `buf` (buf_bytes ≥ lsw_stats_buf_min; also for HDF5
 *    inputs): with `readers` ≥ 1 (at most 8, fewer if the buffer holds fewer
 *    than readers + 1 minimal slots) the buffer is split into readers + 1
 *    slots and that many helper threads read the next blocks (block i into
 *    slot i % slots) while this thread sums the blocks in order; with 0,
 *    reads and sums alternate.
 * Every row is summed exactly as lsw_mav_tensor_rows sums it, and a job's
 * squared norms are its rows' sums added in row order, so the results never
 * depend on the mode, `readers`, the sizes or which thread summed a row.  The
 * helper threads only read files (no MPI; HDF5 reads are serialised by
 * lsw_ckpt_read).  `pr`, `tm` and errors as lsw_stats_tensor_rows. */
int lsw_stats_rows_run(const lsw_ckpt *base, lsw_ckpt *const *experts, size_t nexperts, const lsw_stats_job *jobs,
                       size_t njobs, void *buf, size_t buf_bytes, int readers, uint64_t map_bytes, lsw_progress *pr,
                       lsw_stats_timing *tm);

/* Owner rank of each of n tensors of `bytes[i]` bytes: tensors taken by
 * descending size (ties: lower index first), each to the rank with the least
 * bytes so far (ties: lower rank).  Depends only on (bytes, n, nranks).
 * Errors: LSW_E_NOMEM. */
int lsw_stats_assign(const uint64_t *bytes, size_t n, int nranks, int *owner);

#endif
