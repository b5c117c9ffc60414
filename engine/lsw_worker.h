/* lsw_worker — the one block loop: one rank's computation of its pieces, a
 * block of elements at a time, within a memory budget.
 *
 * For a piece of tensor i the worker takes the tensor's comps and the
 * distinct sources they read (lsw_work), and sizes blocks so that every
 * source and every computed output of a block fit its arena together, each
 * stream at most LSW_BLOCK_BYTES (a block stays in the CPU caches while it
 * is read, computed, checksummed and written).  Each block reads every
 * source once and computes every comp from it: a copy aliases its source's
 * buffer, a weighted sum runs lsw_wsum, a task-vector tensor lsw_tv_block
 * (such a tensor is one piece, computed by one rank, in order).  A stop
 * signal is noticed before every block.  Where the bytes go is the caller's
 * business (the safetensors writer in lsw_exec, the HDF5 stream).
 *
 * Not thread-safe: one worker per thread.  No MPI call.
 */
#ifndef LSW_WORKER_H
#define LSW_WORKER_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_taskvec.h"
#include "lsw_tread.h"
#include "lsw_work.h"

/* Each stream's block is at most this many bytes, whatever the budget
 * (lsw_tread_block_elems). */
#define LSW_BLOCK_BYTES LSW_TREAD_BLOCK_BYTES

typedef struct lsw_worker lsw_worker; /* opaque */

/* A worker for `w` (borrowed, analysed) whose buffers take at most `mem`
 * bytes (less when no tensor needs that much), in `depth` slots used in
 * turn, so that the bytes of the last depth - 1 blocks stay valid while
 * the next one is computed (write-behind).  `tv` (borrowed, may be NULL)
 * computes task-vector tensors.  Errors: LSW_E_NOMEM. */
int lsw_worker_create(const lsw_work *w, uint64_t mem, size_t depth, lsw_tv *tv, lsw_worker **out);
/* The number of slots. */
size_t lsw_worker_depth(const lsw_worker *wk);
void lsw_worker_free(lsw_worker *wk); /* accepts NULL */

/* Start a piece of tensor i (for a task-vector tensor: the whole tensor,
 * after which lsw_tv_begin's pre-passes have run).  Errors: LSW_E_READ,
 * LSW_E_INTERRUPTED, LSW_E_NOMEM. */
int lsw_worker_begin(lsw_worker *wk, size_t i);

/* After lsw_worker_begin: the comps of the tensor (see lsw_work_comps) and
 * the most elements one lsw_worker_block may compute. */
size_t lsw_worker_ncomp(const lsw_worker *wk);
const uint32_t *lsw_worker_rep(const lsw_worker *wk);
const int32_t *lsw_worker_of(const lsw_worker *wk);
size_t lsw_worker_block_elems(const lsw_worker *wk);

/* Elements [e0, e0 + n) of every comp, n ≤ lsw_worker_block_elems, blocks
 * of a task-vector tensor in increasing e0: out[c] points at comp c's n
 * elements in its output dtype, valid until `depth` more calls (or the next
 * lsw_worker_begin).  Errors:
 * LSW_E_READ, LSW_E_INTERRUPTED (a stop signal arrived). */
int lsw_worker_block(lsw_worker *wk, uint64_t e0, size_t n, const void **out);

/* Bytes read from inputs so far (a source block read once counts once). */
uint64_t lsw_worker_bytes_read(const lsw_worker *wk);

#endif
