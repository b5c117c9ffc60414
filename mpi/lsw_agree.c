#include "lsw_agree.h"

#include <limits.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"

lsw_comm lsw_comm_world(void)
{
    lsw_comm c = {MPI_COMM_WORLD, 0, 1};
    MPI_Comm_rank(MPI_COMM_WORLD, &c.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &c.size);
    return c;
}

int lsw_agree(const lsw_comm *c, int rc)
{
    if (c->size == 1)
        return rc;
    int mine = rc ? c->rank : INT_MAX, first;
    MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, c->comm);
    if (first == INT_MAX)
        return 0;
    struct { int code; char detail[1024]; } msg;
    memset(&msg, 0, sizeof msg);
    if (c->rank == first) {
        msg.code = rc;
        strncpy(msg.detail, lsw_err_detail(), sizeof msg.detail - 1);
    }
    MPI_Bcast(&msg, (int)sizeof msg, MPI_BYTE, first, c->comm);
    if (c->rank != first) {
        lsw_err_clear();
        lsw_err_set(msg.code, "%s", msg.detail);
    }
    return msg.code;
}

void lsw_bcast_bytes(const lsw_comm *c, void *buf, size_t n, int root)
{
    char *p = buf;
    while (n) {
        int k = n > (1u << 30) ? (1 << 30) : (int)n;
        MPI_Bcast(p, k, MPI_BYTE, root, c->comm);
        p += k;
        n -= (size_t)k;
    }
}

int lsw_comm_threads(const lsw_comm *c)
{
    const char *e = getenv("LSW_THREADS");
    if (e && *e) {
        long v = strtol(e, NULL, 10);
        return v < 0 ? 0 : v > 64 ? 64 : (int)v;
    }
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    MPI_Comm node;
    int local = 1;
    if (MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    int t = cpus / (local > 0 ? local : 1);
    return t < 1 ? 1 : t > 16 ? 16 : t;
}
