/* lsw_stats_summary — what `layerswap stats` concludes from the row MAVs and
 * squared norms: per layer × tensor type statistics, each module's share of
 * the layer's relative change, model MAVs, profile similarity and groups,
 * and the proposed layer swap (docs/statistics.md has the rules and their
 * reasoning; engine/STATS.md the implementation).
 *
 * Pure computation on rank 0: no MPI, no files.  Everything is a function of
 * the row MAVs, the norms and the base's tensor list (name order), with every
 * sum taken sequentially in a fixed order, so the same inputs give the same
 * bytes of summary.json however the rows were computed.
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

typedef struct lsw_stats_cell {
    int layer;              /* −1: non-layer tensors */
    size_t type;            /* index into types (layer ≥ 0) or nl_types (layer −1) */
    uint64_t rows;          /* 0: no tensor of this type in this layer (other fields 0) */
    double mean, max, p50, p90, p99;
    double unchanged;       /* fraction of rows whose MAV is exactly 0 */
    double sq_delta, sq_base; /* Σ (expert − base)², Σ base² over the cell's tensors (name order) */
    double rel_change;      /* sqrt(sq_delta / sq_base) = ‖Δ‖ / ‖W_base‖; +inf when sq_base is 0 < sq_delta */
    double share;           /* rel_change / Σ rel_change over the layer's cells; NaN for non-layer cells
                               and for a layer without change */
} lsw_stats_cell;

typedef struct lsw_stats_expert {
    char *name, *path;
    double model_mav;       /* mean of all row MAVs, tensors in name order, rows in order */
    uint64_t rows;
    lsw_stats_cell *grid;   /* layers × ntypes: grid[layer * ntypes + type] */
    lsw_stats_cell *nl;     /* nnl non-layer cells */
    double *layer_mean;     /* per layer: mean of the profile columns' cell means */
    double lang_score;      /* λ of the automatic grouping heuristic */
} lsw_stats_expert;

/* The layer rule's baseline (docs/statistics.md, "The proposal"):
 * signal s_i per layer, m = median(s), mad = median(|s − m|),
 * sigma = 1.4826·mad, margin = max(3.5·sigma, 0.25·m).  Layer i is a
 * language layer when s_i − m > margin, borderline when margin/2 < s_i − m. */
#define LSW_STATS_Z 3.5
#define LSW_STATS_FLOOR 0.25

typedef struct lsw_stats_rule {
    double median, mad, sigma, margin;
    int significant;        /* language layers anywhere */
    int bottom, top, lower_transition, upper_transition;
} lsw_stats_rule;

typedef struct lsw_stats_layer_call {
    double lang, task;      /* mean layer_mean over the language / task experts */
    double z;               /* (lang − median) / sigma; ±inf when sigma is 0 */
    int cls;                /* 2 language layer, 1 borderline, 0 background */
    const char *decision;   /* static text */
} lsw_stats_layer_call;

typedef struct lsw_stats_proposal {
    int valid;              /* 0: no proposal, `note` says why */
    int automatic;          /* 1: experts chosen by the heuristic; 0: --task / --language */
    int sides;              /* 1: task and language experts are known (also when not valid) */
    char note[640];
    size_t ntask, nlang;
    size_t *task, *lang;    /* expert indices (given order, or ascending when automatic) */
    lsw_stats_rule rule;
    lsw_stats_layer_call *layer; /* `layers` entries when sides */
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
    const double *bsq;           /* per base tensor: Σ base² (NULL: no norms, all 0) */
    const double *const *dsq;    /* dsq[e][t]: Σ (expert − base)² */
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

/* The layer rule from the language side's per-layer signal s[0..L) (the
 * mean layer_mean of the language experts): the robust baseline, the
 * language layers, the bottom and top runs of language layers, and one
 * transition layer beside a run whose next layer is borderline, while a
 * middle layer stays with the task expert.  Needs no allocation beyond L
 * doubles; on LSW_E_NOMEM r is all zero and the result is that code. */
int lsw_stats_propose_layers(const double *s, int L, lsw_stats_rule *r);
/* 2 language layer, 1 borderline, 0 background: the class of signal v under r. */
int lsw_stats_layer_class(const lsw_stats_rule *r, double v);

/* summary.json, through lsw_jsonw: malloc'd text.  Errors: LSW_E_NOMEM. */
int lsw_stats_summary_json(const lsw_stats_summary *s, char **text, size_t *len);
/* proposed-layer-swap.json (docs/config.md), the proposal must be valid.  Its
 * layer_swap object is built by the same code as summary.json's. */
int lsw_stats_proposal_config(const lsw_stats_summary *s, char **text, size_t *len);
/* The proposal's reasoning, one line per layer. */
void lsw_stats_print_proposal(const lsw_stats_summary *s, FILE *f);

#endif
