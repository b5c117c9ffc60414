/* lsw_exec — the one executor: streams one or many plans into their output
 * folders, on every rank.
 *
 * Drivers (merge: one plan; sweep: one plan per merge of the grid, all with
 * the same tensors and layout) hand the executor their plans.  It
 *   1. prepares the output folders (rank 0: lsw_commit decides what is
 *      already complete, what an interrupted run left, what another output
 *      of this run writes identically) and broadcasts the shard statuses
 *      (lsw_work);
 *   2. assigns pieces to ranks, balanced by the work they hold (lsw_assign);
 *   3. streams every piece through the one block loop (lsw_worker): each
 *      source block read once, each distinct output computed once and
 *      written to every output folder that needs it, at the offset the plan
 *      fixed, so the bytes never depend on who computes them;
 *   4. commits: safetensors outputs group by group (about an eighth of the
 *      output at a time: rank 0 creates the temporaries, every rank writes
 *      its pieces, the ranks agree, rank 0 combines the pieces' CRCs in file
 *      order, renames, and clones or links the shards another output of the
 *      run holds identically); HDF5 outputs through lsw_h5stream;
 *   5. finishes every output: config and tokenizer files, the index, the
 *      manifest last.
 * Stop signals end the run at the next block with LSW_E_INTERRUPTED; what
 * was committed stays, and the same command resumes under any number of
 * ranks.  Every function here is collective over c->comm and returns the
 * same code on every rank.
 */
#ifndef LSW_EXEC_H
#define LSW_EXEC_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_commit.h"
#include "lsw_plan.h"

/* What a run of merge or sweep is asked for (the command line's options). */
typedef struct lsw_run_opts {
    uint64_t mem;        /* buffer budget in bytes */
    double progress;     /* seconds between progress lines; 0: none */
    int overwrite;
    int quiet;           /* no summary line */
    const char *summary; /* write the run summary as JSON here (rank 0); NULL: none */
} lsw_run_opts;

#define LSW_DEFAULT_MEM (512ULL << 20)
#define LSW_MIN_MEM (1ULL << 20)

/* What a run did, for its summary line and --summary file (rank 0's view;
 * the per-rank figures are gathered from every rank). */
typedef struct lsw_exec_report {
    size_t outputs;              /* plans given */
    size_t complete_before;      /* of them, complete before the run */
    size_t tensors;              /* tensors of one output */
    size_t files;                /* weight files of one output (shards, or 1 model.h5) */
    size_t files_written;        /* computed and written by this run */
    size_t files_reused;         /* kept from an interrupted run */
    size_t files_shared;         /* cloned, linked or copied from another output of this run */
    int shared_as;               /* lsw_dedup actually used (the weakest when several) */
    uint64_t output_bytes;       /* tensor bytes of the outputs this run completed */
    uint64_t distinct_bytes;     /* bytes of the files computed (written once) */
    uint64_t compressed_bytes;   /* HDF5: bytes of the stored chunks of those */
    double phase_tensors_s, phase_commit_s;
    /* per rank: [0] min, [1] max, [2] sum over ranks */
    double busy_s[3], wait_s[3];
    uint64_t bytes_read[3], bytes_written[3];
    int ranks;
    int scan_threads;            /* most threads a task-vector threshold scan used on a rank (0: none ran) */
} lsw_exec_report;

/* done[k] = 1 for each plan whose output folder already holds its complete
 * result (rank 0 reads the manifests; broadcast); always 0 with overwrite.
 * Lets a driver skip pre-passes (magnitude weights) for finished outputs.
 * Collective. */
int lsw_exec_done(lsw_plan *const *plans, size_t E, int overwrite, const lsw_comm *c, unsigned char *done);

/* Run plans[0..E) (the same tensors and layout), skipping those with
 * done[k]; every plan must be ready (weights resolved).  `dedup` says how a
 * shard another output already holds is shared (lsw_dedup).  `what` names
 * the command in progress lines ("merge", "sweep").  Collective. */
int lsw_exec_run(lsw_plan *const *plans, size_t E, const unsigned char *done, const lsw_run_opts *o, int dedup,
                 const char *what, const lsw_comm *c, lsw_exec_report *rep);

/* Write the run summary JSON (`o->summary`, rank 0): the command, its output folder, the outputs,
 * phases (`magnitude_s`, `total_s` from the driver), files, bytes, HDF5
 * compression, per-rank min/max of busy and wait seconds and bytes read and
 * written.  Collective (agrees on the write's result). */
int lsw_exec_write_summary(const lsw_run_opts *o, const char *command, const char *output, lsw_plan *const *plans,
                           size_t E, const lsw_exec_report *rep, double magnitude_s, double total_s, const lsw_comm *c);

#endif
