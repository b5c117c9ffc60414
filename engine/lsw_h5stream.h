/* lsw_h5stream — HDF5 outputs: every rank computes and compresses the chunks
 * of its pieces, rank 0 stores them all, in plan order, by direct chunk
 * writes.
 *
 * model.h5's bytes are a function of the order of the writer's calls
 * (lsw_hdf5.h), so rank 0 defines every dataset in plan order and stores
 * the chunks in plan order — tensor by tensor, chunk by chunk — never in
 * order of arrival: the file is identical for any number of ranks and
 * threads.  There is no spill file: the chunks travel to rank 0 as MPI
 * messages.
 *
 * Per rank, a ring of job slots (a chunk's raw bytes, its encoded bytes):
 * the main thread computes chunks of its own pieces in plan order into free
 * slots (lsw_worker), a pool of encoder threads shuffles and compresses them
 * (lsw_chunk_encode_padded, one zstd context per thread), and completed
 * slots leave the ring in order: on rank 0 into the writer when the plan
 * order reaches them, elsewhere as MPI_Isend to rank 0 (the ring bounds what
 * is in flight).  Rank 0 takes the other ranks' chunks with MPI_Probe +
 * MPI_Recv from the owner the plan order names (messages from one rank never
 * overtake each other), computing its own chunks ahead while it waits.
 *
 * Ending: every rank other than 0 closes its stream with an END message
 * carrying its result.  A rank that fails (a read error, a stop signal)
 * sends END early; rank 0 then, or when it fails itself, sends CANCEL to the
 * ranks still streaming and drains their messages up to their END, so no
 * rank is left waiting; the ranks then agree on the error (lsw_agree).
 *
 * Encoder threads: LSW_THREADS if set (0: encode on the main thread), else
 * the CPUs this process may use divided by the ranks on its node, at least 1.
 * Only the main thread calls MPI (MPI_THREAD_FUNNELED) and HDF5.
 */
#ifndef LSW_H5STREAM_H
#define LSW_H5STREAM_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_assign.h"
#include "lsw_commit.h"
#include "lsw_progress.h"
#include "lsw_work.h"
#include "lsw_worker.h"

typedef struct lsw_h5stream_args {
    lsw_plan *const *plans;     /* E plans, one layout, format hdf5 */
    size_t E;
    const lsw_work *w;          /* statuses: each output all OWNER or all DONE */
    const lsw_assignment *as;   /* one group, chunk granules */
    lsw_worker *wk;             /* this rank's block loop */
    uint64_t mem;               /* budget for the ring, besides the worker's */
    int threads;                /* encoder threads besides this one (lsw_comm_threads) */
    lsw_outdir **od;            /* rank 0: the outputs' folders */
    lsw_progress *pr;
} lsw_h5stream_args;

typedef struct lsw_h5stream_result {
    double busy_s, wait_s;      /* this rank */
    uint64_t bytes_written;     /* rank 0: raw bytes stored (all outputs) */
    uint64_t compressed_bytes;  /* rank 0: stored chunk bytes of the distinct outputs */
    size_t files_written;       /* rank 0 */
} lsw_h5stream_result;

/* Write model.h5 of every output whose shards are OWNER: create it (rank 0),
 * stream every chunk, close, checksum, rename.  Collective over c->comm;
 * the same code on every rank. */
int lsw_h5stream_run(const lsw_h5stream_args *a, const lsw_comm *c, lsw_h5stream_result *res);

#endif
