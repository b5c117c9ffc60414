/* lsw_stats — the `layerswap stats` library entry (docs/statistics.md,
 * engine/STATS.md).  The command line lives in engine/cli_stats.c; this
 * module gets its options as a struct.
 *
 * Every rank opens every checkpoint and checks all headers before any data
 * is read.  Eligible tensors (lsw_mav_eligible) are spread over the ranks by
 * bytes (lsw_stats_assign); each rank reads its tensors' base rows once per
 * block together with the same rows of every expert (lsw_stats_rows, the one
 * place that reads tensor data) and sends its row MAVs and squared norms to
 * rank 0, which computes the summary, the similarity groups and the proposal
 * (lsw_stats_summary) and writes the output folder through lsw_commit:
 * stats.h5, heatmap_<expert>.svg, summary.json, report.html,
 * proposed-layer-swap.json, then layerswap-manifest.json.  Row values depend
 * only on the data and every sum has a fixed order, so every output is
 * byte-identical for any number of ranks.
 */
#ifndef LSW_STATS_H
#define LSW_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_agree.h"

/* Longest expert name (names become file names and HDF5 groups). */
#define LSW_STATS_NAME_MAX 100

typedef struct lsw_stats_opts {
    const char *base;              /* the base checkpoint (folder, .safetensors, index or model.h5) */
    size_t nexperts;               /* ≥ 1 */
    const char *const *names;      /* expert names: lsw_stats_name_ok, distinct, not "cells" */
    const char *const *paths;      /* expert checkpoints */
    const char *outdir;            /* output folder */
    uint64_t mem;                  /* read-buffer budget per rank in bytes (≥ LSW_MIN_MEM) */
    double progress;               /* seconds between progress lines on stderr; 0: none */
    int overwrite;                 /* replace a folder that holds other results */
    int quiet;                     /* print nothing on success */
    size_t ntask, nlang;           /* --task / --language as indices into names; both 0: automatic */
    const size_t *task, *lang;
    int shared_scale;              /* heatmap colours: 1 one scale for all experts, 0 each expert its own,
                                      -1 one scale when there are several experts */
    int log_scale;                 /* 1: colours by log10 of the value */
} lsw_stats_opts;

/* 1 if s[0..n) is a usable expert name: 1 to LSW_STATS_NAME_MAX characters
 * of letters, digits and . _ + -, not "." or "..", not "cells" (the group of
 * stats.h5 that holds the cell matrices). */
int lsw_stats_name_ok(const char *s, size_t n);

/* Run `layerswap stats` with options `o`.  Returns 0 or a negative
 * lsw_error code with its detail set (the same on every rank): LSW_E_USAGE
 * for bad options, LSW_E_CONFIG for an output folder inside an input,
 * LSW_E_EXISTS, input errors (exit 2), LSW_E_INTERRUPTED, output errors.
 * Prints (rank 0) the proposal's reasoning on stdout and a summary line on
 * stderr unless o->quiet; prints no error itself.  Collective over c->comm. */
int lsw_stats_run(const lsw_stats_opts *o, const lsw_comm *c);

#endif
