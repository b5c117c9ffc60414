/* lsw_assign — which rank computes which part of a plan.  Pure (no MPI
 * call): a function of the plan, the number of ranks and the per-tensor
 * costs only, so every rank computes the same assignment without talking to
 * the others.  It lives beside the plan; mpi/ holds what talks MPI.
 *
 * Shards are taken in order and closed into commit groups of about
 * max(total / 8, 64 MiB) bytes (a group never splits a shard); after each
 * group the ranks agree and its shards are renamed, so an interrupted run
 * keeps whole groups.  Within a group the work items are whole layers (all
 * tensors of one layer) and, for non-layer tensors, blocks of whole rows of
 * at most group_bytes / (2·ranks) bytes, so an embedding matrix is spread
 * over ranks (cut at multiples of a granule: a row, or an HDF5 chunk).  Items go, largest first (ties by position), to the rank with
 * the fewest bytes so far (ties: lowest rank).
 */
#ifndef LSW_ASSIGN_H
#define LSW_ASSIGN_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_plan.h"

typedef struct lsw_piece {
    size_t tensor;        /* index into plan->t */
    uint64_t e0, e1;      /* element range [e0, e1) */
    int rank;             /* who computes it */
} lsw_piece;

typedef struct lsw_group {
    size_t shard0, shard1;  /* shards [shard0, shard1) */
    size_t piece0, piece1;  /* pieces [piece0, piece1), in file order */
    uint64_t bytes;
} lsw_group;

typedef struct lsw_assignment {
    size_t npieces;
    lsw_piece *pieces;      /* in plan (= file) order */
    size_t ngroups;
    lsw_group *groups;
} lsw_assignment;

/* `granule[i]` (optional) is the number of elements of tensor i that must
 * stay together (HDF5: a chunk of rows; a task-vector tensor: all of it);
 * NULL means one row.  `cost[i]` (optional) is the work per element of
 * tensor i in bytes (a sweep: its sources read plus every distinct output
 * computed); NULL means the output element size.  Pieces are balanced by
 * cost; a tensor of cost 0 (nothing to compute, e.g. every output of it
 * already on disk) still gets its pieces, which then do nothing.
 * `one_group` puts everything in a single commit group (one output file). */
int lsw_assign(const lsw_plan *p, int nranks, const uint64_t *granule, const uint64_t *cost, int one_group,
               lsw_assignment **out);
void lsw_assignment_free(lsw_assignment *a);

#endif
