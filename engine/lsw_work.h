/* lsw_work — what one run of the executor computes.
 *
 * A run writes E output folders whose plans share one tensor list and one
 * layout: a merge is E = 1, a sweep's merges share their tensors and shards
 * (lsw_sweep checks it).  For every output k and shard s a status says what
 * this run does with it:
 *   DONE    output k is already complete: nothing of it is written;
 *   REUSED  an interrupted earlier run of the same plan finished the shard
 *           (its size and CRC re-checked by lsw_commit);
 *   OWNER   this run computes and writes it;
 *   DUP     an earlier output k' < k of this run writes the same bytes
 *           (same header, same tensors from the same sources with the same
 *           weights): it is cloned or linked from k' once k' commits it.
 * Rank 0 decides the statuses (it reads the output folders) and broadcasts
 * them; everything below is then a pure function of plans and statuses, so
 * every rank derives the same work without talking to the others.
 *
 * Comps: for tensor i, the outputs whose shard of i is OWNER are grouped by
 * the identity of the tensor's bytes (lsw_work_tensor_key); each group is one
 * computation, done once and written to every output of the group.  Comps
 * are numbered in order of their first output, so they too are the same on
 * every rank.  No MPI call in this module.
 */
#ifndef LSW_WORK_H
#define LSW_WORK_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_plan.h"

typedef enum lsw_shard_status { LSW_SH_DONE, LSW_SH_REUSED, LSW_SH_OWNER, LSW_SH_DUP } lsw_shard_status;

typedef struct lsw_work {
    size_t E;                 /* outputs */
    lsw_plan *const *plans;   /* E plans, borrowed; plans[0] gives the common layout */
    size_t N, S;              /* tensors and shards of the layout */
    unsigned char *status;    /* E·S lsw_shard_status, output-major */
    uint32_t *dup_of;         /* E·S: for a DUP, the output it copies */
    uint64_t *cost;           /* N: bytes read + bytes written per element of tensor i */
    uint64_t *streams;        /* N: buffers a block of tensor i needs (sources + computed outputs) */
    uint64_t *per_elem;       /* N: bytes of those buffers per element */
    size_t max_comps;         /* most comps of any tensor */
    uint64_t *keys;           /* E: scratch of lsw_work_comps */
} lsw_work;

/* A work description over `plans[0..E)` with every status OWNER (the caller
 * then sets DONE/REUSED/DUP, e.g. from rank 0's broadcast, and calls
 * lsw_work_analyse).  Owns its arrays; borrows the plans. */
int lsw_work_create(lsw_plan *const *plans, size_t E, lsw_work **out);
void lsw_work_free(lsw_work *w); /* accepts NULL */

static inline lsw_shard_status lsw_work_status(const lsw_work *w, size_t k, size_t s)
{
    return (lsw_shard_status)w->status[k * w->S + s];
}

/* Fill cost, streams and per_elem from the statuses.  Pure. */
int lsw_work_analyse(lsw_work *w);

/* Identity of one output tensor's bytes: op, dtypes, shape, sources (their
 * checkpoints' identities and tensor names) and weights. */
uint64_t lsw_work_tensor_key(const lsw_plan *p, const lsw_plan_tensor *t);

/* Identity of shard s of output k's bytes: its header and tensor keys. */
uint64_t lsw_work_shard_key(const lsw_plan *p, size_t s);

/* The comps of tensor i: rep[c] is the output that represents comp c, of[k]
 * the comp that output k writes (-1: none — its shard is not OWNER).  `rep`
 * and `of` hold E entries (caller-owned).  Returns the number of comps.
 * Uses the work's scratch: one caller at a time. */
size_t lsw_work_comps(const lsw_work *w, size_t i, uint32_t *rep, int32_t *of);

/* The sources of one tensor's comps: what a block must read or compute.
 * A checkpoint tensor is read from its file; a derived model's tensor
 * (lsw_derived) is expanded into the tensors it is computed from, added
 * first, so that a block of an input is read once however many derived
 * models and comps use it; a derived tensor whose bytes are one input's (a
 * reverted layer, a non-float tensor of a soup) is an alias of it.  Sources
 * come in evaluation order: inputs before what is computed from them. */
typedef struct lsw_work_src {
    const lsw_ckpt *ckpt;
    const lsw_tensor_desc *desc;
    int kind;                 /* LSW_SRC_READ, LSW_SRC_DERIVED or LSW_SRC_ALIAS */
    uint32_t alias;           /* LSW_SRC_ALIAS: the source with the same bytes (itself no alias) */
    uint32_t in0, nin;        /* LSW_SRC_DERIVED: its inputs, set->in[in0 .. in0 + nin) */
} lsw_work_src;

enum { LSW_SRC_READ, LSW_SRC_DERIVED, LSW_SRC_ALIAS };

typedef struct lsw_srcset {
    lsw_work_src *src;        /* distinct sources */
    size_t n, cap;
    uint32_t *in;             /* inputs of derived sources */
    size_t nin, incap;
    uint32_t *slot_of;        /* source j of comp c: src[slot_of[off_c + j]], off_c = Σ nsrc of comps before c */
    size_t nref, refcap;
} lsw_srcset;

/* Build the sources of comps rep[0..ncomp) of tensor i into `s` (its arrays
 * reused and grown).  Errors: LSW_E_NOMEM. */
int lsw_srcset_build(lsw_srcset *s, const lsw_work *w, size_t i, const uint32_t *rep, size_t ncomp);
void lsw_srcset_free(lsw_srcset *s); /* the arrays; accepts a zeroed set */

#endif
