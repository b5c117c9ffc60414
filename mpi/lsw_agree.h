/* lsw_agree — every rank ends with the same result.
 *
 * At each phase boundary the ranks agree on an error code: if any rank
 * failed, every rank returns the code and the detail message of the lowest
 * failing rank, so all exit with the same SPEC code and nobody waits forever
 * in a later collective.  MPI_Abort is kept for broken invariants only.
 */
#ifndef LSW_AGREE_H
#define LSW_AGREE_H

#include <mpi.h>

typedef struct lsw_comm {
    MPI_Comm comm;
    int rank, size;
} lsw_comm;

/* The world communicator. */
lsw_comm lsw_comm_world(void);

/* Collective over c->comm.  Returns 0 if every rank passed rc == 0; else the
 * lowest failing rank's code, whose detail (lsw_err_detail) is copied to every
 * rank. */
int lsw_agree(const lsw_comm *c, int rc);

/* Collective over c->comm: broadcast `n` bytes from `root` (MPI_Bcast in
 * chunks below 2^31 bytes). */
void lsw_bcast_bytes(const lsw_comm *c, void *buf, size_t n, int root);

/* Collective over c->comm: how many threads this rank may keep busy, the
 * same rule for every threaded phase (HDF5 chunk encoders, the task-vector
 * pre-passes): $LSW_THREADS (0 to 64) if set, else the CPUs this process may
 * run on divided by the ranks on its node, 1 to 16. */
int lsw_comm_threads(const lsw_comm *c);

#endif
