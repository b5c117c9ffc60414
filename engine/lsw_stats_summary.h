/* lsw_stats_summary — what `layerswap stats` concludes from the row MAVs:
 * per layer × tensor type statistics, model MAVs, profile similarity and
 * groups, and the proposed layer swap (engine/STATS.md has the rules).
 *
 * Pure computation on rank 0: no MPI, no files.  Everything is a function of
 * the row MAVs and the base's tensor list (name order), with every sum taken
 * sequentially in a fixed order, so the same inputs give the same bytes of
 * summary.json however the rows were computed.
 *
 * Tensor type: the last name component before ".weight" ("q_proj",
 * "input_layernorm"); a bias is "<type>.bias"; any other name ends in its
 * own last component.  Columns: q_proj, k_proj, v_proj, o_proj, gate_proj,
 * up_proj, down_proj (those present) first, then the other types of layer
 * tensors in byte order.  Tensors without a layer index get cells with layer
 * −1, one per type, in the same order.
 */
#ifndef LSW_STATS_SUMMARY_H
#define LSW_STATS_SUMMARY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lsw_checkpoint.h"
#include "lsw_strbuf.h"

typedef struct lsw_stats_cell {
    int layer;              /* −1: non-layer tensors */
    size_t type;            /* index into types (layer ≥ 0) or nl_types (layer −1) */
    uint64_t rows;          /* 0: no tensor of this type in this layer (other fields 0) */
    double mean, max, p50, p90, p99;
    double unchanged;       /* fraction of rows whose MAV is exactly 0 */
} lsw_stats_cell;

typedef struct lsw_stats_expert {
    char *name, *path;
    double model_mav;       /* mean of all row MAVs, tensors in name order, rows in order */
    uint64_t rows;
    lsw_stats_cell *grid;   /* layers × ntypes: grid[layer * ntypes + type] */
    lsw_stats_cell *nl;     /* nnl non-layer cells */
    double *layer_mean;     /* per layer: mean of the profile columns' cell means */
    double lang_score;      /* λ of the automatic grouping heuristic (STATS.md) */
} lsw_stats_expert;

typedef struct lsw_stats_layer_ratio {
    double lang, task;      /* mean layer_mean over the language / task experts */
    double ratio;           /* lang / task; +inf when task == 0 < lang; 1 when both are 0 */
    const char *decision;   /* static text */
} lsw_stats_layer_ratio;

typedef struct lsw_stats_proposal {
    int valid;              /* 0: no proposal, `note` says why */
    int automatic;          /* 1: experts chosen by the heuristic; 0: --task / --language */
    char note[320];
    size_t ntask, nlang;
    size_t *task, *lang;    /* expert indices (given order, or ascending when automatic) */
    int bottom, top, lower_transition, upper_transition;
    lsw_stats_layer_ratio *layer; /* `layers` entries when valid */
} lsw_stats_proposal;

typedef struct lsw_stats_summary {
    char *base_path;
    int layers;             /* L */
    size_t ntypes;
    char **types;           /* heatmap columns */
    size_t nprofile;        /* types[0..nprofile): the columns of the similarity profiles */
    size_t nnl;
    char **nl_types;        /* types of the non-layer cells */
    uint64_t tensors, rows; /* eligible tensors and their rows (per expert) */
    size_t nexperts;
    lsw_stats_expert *experts;
    double *similarity;     /* nexperts², input order: Pearson r of the profiles */
    size_t ngroups;
    size_t *order;          /* experts in grouped order */
    size_t *group_start;    /* group g: order[group_start[g] .. group_start[g + 1]) */
    lsw_stats_proposal proposal;
} lsw_stats_summary;

typedef struct lsw_stats_input {
    const lsw_ckpt *base;
    const char *base_path;       /* absolute, for summary.json and the proposed config */
    size_t nexperts;
    const char *const *names;
    const char *const *paths;    /* absolute */
    const uint64_t *row_off;     /* per base tensor (lsw_ckpt_at order): first row in rows[e]; UINT64_MAX: not eligible */
    const double *const *rows;   /* rows[e][row_off[t] + r] */
    size_t ntask, nlang;         /* --task / --language as expert indices; both 0: automatic */
    const size_t *task, *lang;
} lsw_stats_input;

/* Compute the summary.  Errors: LSW_E_NOMEM. */
int lsw_stats_summarize(const lsw_stats_input *in, lsw_stats_summary **out);
void lsw_stats_summary_free(lsw_stats_summary *s); /* accepts NULL */

/* Type of a tensor name (see above) into buf. */
void lsw_stats_tensor_type(const char *name, char *buf, size_t len);

/* Nearest-rank percentile p (0 < p ≤ 100) of sorted[0..n), n ≥ 1:
 * sorted[ceil(p·n/100) − 1]. */
double lsw_stats_percentile(const double *sorted, size_t n, unsigned p);
/* The nearest rank of percentile p among n values: ceil(p·n/100), at least 1. */
size_t lsw_stats_rank(size_t n, unsigned p);
/* p50, p90, p99 (nearest rank) and max of v[0..n), n ≥ 1, exactly what
 * sorting v would give, by selection in O(n) on average; reorders v. */
void lsw_stats_percentiles(double *v, size_t n, double *p50, double *p90, double *p99, double *max);

/* Pearson correlation of x and y (n values), f64; 0 when either has no
 * variance or the result is not finite. */
double lsw_stats_pearson(const double *x, const double *y, size_t n);

/* Average-linkage agglomerative grouping of n items with similarity
 * sim[n×n]: merge the two groups with the highest mean pairwise similarity
 * while it is ≥ threshold (ties: the pair whose first members come first).
 * group[i] = group of item i, groups numbered by their first member. Returns
 * the number of groups, 0 on LSW_E_NOMEM. */
size_t lsw_stats_group(const double *sim, size_t n, double threshold, size_t *group);

/* The layer rule of STATS.md from per-layer ratios (language / task):
 * bottom and top runs of ratio > 1, capped so one middle layer stays with
 * the task expert, then one transition layer on each side where the next
 * layer's ratio is in [0.5, 2] and room is left. */
void lsw_stats_propose_layers(const double *ratio, int layers, int *bottom, int *top, int *lower, int *upper);

/* summary.json text. */
void lsw_stats_summary_json(const lsw_stats_summary *s, lsw_strbuf *out);
/* proposed-layer-swap.json text (docs/config.md); the proposal must be valid. */
void lsw_stats_proposal_config(const lsw_stats_summary *s, lsw_strbuf *out);
/* The proposal's reasoning, one line per layer. */
void lsw_stats_print_proposal(const lsw_stats_summary *s, FILE *f);

#endif
