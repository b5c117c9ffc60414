/* lsw_execute — run a plan: stream every output tensor through the kernels
 * into the output folder, within a memory budget.
 *
 * Work is split by lsw_assign into commit groups of shards and, within a
 * group, pieces (layers, row blocks of large non-layer tensors) per rank.
 * Row blocks: each piece is processed in blocks of elements sized so that
 * the sources' and the output's buffers together fit `mem`; the buffers are
 * allocated once.  Output tensors are written at the offsets the plan fixed.
 * Shards are written under temporary names and renamed when complete; a stop
 * signal (SIGINT, SIGTERM, SIGUSR1) drops the shard in flight and returns
 * LSW_E_INTERRUPTED, and the same command resumes (lsw_commit).
 */
#ifndef LSW_EXECUTE_H
#define LSW_EXECUTE_H

#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_commit.h"
#include "lsw_plan.h"

typedef struct lsw_run_opts {
    uint64_t mem;      /* buffer budget in bytes */
    double progress;   /* seconds between progress lines; 0: none */
    int overwrite;
    int quiet;         /* no summary line */
    const char *summary; /* write the run summary as JSON here (rank 0); NULL: none */
} lsw_run_opts;

#define LSW_DEFAULT_MEM (512ULL << 20)
/* Each stream's block is at most this many bytes, whatever --mem allows, so
 * that read, arithmetic, CRC and write of a block stay in the CPU caches. */
#define LSW_BLOCK_BYTES (1ULL << 20)
/* Writeback is started every this many bytes written per file. */
#define LSW_WRITEBACK_BYTES (32ULL << 20)
#define LSW_MIN_MEM (1ULL << 20)
/* The usage error of a bad --mem value (printf format, one %s: the value). */
#define LSW_MEM_USAGE "--mem needs a size from 1M up, such as 512M or 2G (suffixes K M G T, KB MB GB TB), not '%s'"

/* Model MAV (SPEC §4) against cfg->base of every model m with needed[m],
 * into mav[m]; tensors spread over the ranks, summed in name order.
 * Collective over c->comm. */
int lsw_model_mavs(const lsw_config *cfg, lsw_ckpt *const *models, const int *needed, const lsw_run_opts *o,
                   const lsw_comm *c, double *mav);

/* Compute the model MAVs that magnitude weights need (tensors spread over
 * the ranks) and resolve them.  Collective over c->comm. */
int lsw_resolve_magnitude(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c);

/* Run a merge plan into p->cfg->out.path: every rank computes the pieces
 * lsw_assign gives it and writes them at their planned offsets; rank 0
 * creates temporaries, combines the pieces' CRCs and renames.  Returns the
 * same code on every rank.  Collective over c->comm. */
int lsw_execute_merge(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c);

/* model.safetensors.index.json of a sharded plan, written into `o`. */
int lsw_write_index(const lsw_plan *p, lsw_outdir *o);
/* The manifest's members describing the run (tool, config hash, inputs);
 * malloc'd JSON text, NULL on OOM. */
char *lsw_manifest_extra(const lsw_plan *p);

#endif
