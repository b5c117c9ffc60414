/* lsw_plan — what a merge writes, computed from the config and the input
 * headers alone (no tensor data).
 *
 * Every rank computes the same plan.  It fixes, for every output tensor, the
 * rule that produced it, its sources and f32 weights, its output dtype, and
 * its place in the output: shard file and byte offset.  The layout depends
 * only on the plan and `shard_size` / `shard_by`, never on who writes, so any
 * rank can write any tensor.
 *
 * Output order: tensor names in natural order (digit runs compared as
 * numbers: layers.2 before layers.10); with shard_by "layer", layer by layer
 * and the non-layer tensors last.
 */
#ifndef LSW_PLAN_H
#define LSW_PLAN_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "lsw_checkpoint.h"
#include "lsw_commit.h"
#include "lsw_config.h"
#include "lsw_layout.h"

typedef enum lsw_op {
    LSW_OP_COPY, /* byte copy of source 0 */
    LSW_OP_WSUM, /* weighted sum of the sources (a dtype conversion is a sum of one with weight 1) */
    LSW_OP_TV    /* task-vector merge: source 0 the base, the others the experts (lsw_taskvec) */
} lsw_op;

/* Per-tensor method parameters of a "sources"/"slices" method (cfg->mk.on):
 * t->par[LSW_PAR_LAMBDA], t->par[LSW_PAR_T], and for source j (in t->models
 * order) t->par[LSW_PAR_SRC(j, LSW_PAR_DENSITY | _GAMMA | _EPSILON)].
 * Source weights are t->w (f32).  NULL for the other methods. */
enum { LSW_PAR_LAMBDA, LSW_PAR_T, LSW_PAR_GLOBALS };
enum { LSW_PAR_DENSITY, LSW_PAR_GAMMA, LSW_PAR_EPSILON, LSW_PAR_PER_SRC };
#define LSW_PAR_SRC(j, k) (LSW_PAR_GLOBALS + (size_t)(j) * LSW_PAR_PER_SRC + (size_t)(k))

typedef struct lsw_plan_tensor {
    const char *name;               /* borrowed from the reference checkpoint, or owned by the plan
                                       when slices renumber layers (src[j]->name is then the source's) */
    int layer;                      /* -1: non-layer */
    size_t rule;                    /* index into plan->rules */
    lsw_op op;
    size_t nsrc;
    const int *models;              /* nsrc model indices */
    const lsw_tensor_desc *const *src; /* nsrc source tensors */
    const float *w;                 /* nsrc weights (valid once lsw_plan_ready) */
    lsw_dtype in_dtype, out_dtype;
    size_t ndim;
    const uint64_t *shape;
    uint64_t numel;
    uint64_t nbytes;                /* output bytes */
    unsigned shard;
    uint64_t offset;                /* absolute offset in the shard file */
    const double *par;              /* see LSW_PAR_*; NULL unless cfg->mk.on */
    double pos;                     /* position in its slice (0 first layer .. 1 last; 0 non-layer) */
} lsw_plan_tensor;

typedef lsw_layout_shard lsw_plan_shard;

typedef struct lsw_plan {
    const lsw_config *cfg;          /* borrowed */
    lsw_ckpt *const *models;        /* borrowed, indexed like cfg->model_names (NULL: unused model) */
    int layers;                     /* L */
    size_t nrules;
    lsw_rule *rules;                /* expanded rules (owned) */
    size_t n;
    lsw_plan_tensor *t;
    size_t nshards;
    lsw_plan_shard *shards;
    uint64_t total_bytes;           /* output tensor bytes */
    uint64_t hash;                  /* identity of config, inputs and layout */
    int *mav_needed;                /* per model: 1 if magnitude weights need its model MAV */
    int ready;                      /* all weights known */
    int *models_arena;              /* storage behind every tensor's models/src/w */
    const lsw_tensor_desc **src_arena;
    float *w_arena;
    lsw_layout_item *items;         /* the layout's view of the tensors (index writing) */
    double *par_arena;              /* storage behind every tensor's par */
    char *name_arena;               /* storage behind renamed tensors' names */
    int *layer_map;                 /* slices: output layer i is source layer layer_map[i] (NULL otherwise) */
    int restacked;                  /* slices changed the layer stack: config.json is rewritten */
} lsw_plan;

/* The plan owns the storage behind every tensor's models, sources, weights
 * and parameters (the arenas above); the tensors expose it read-only.  The
 * plan's own code writes it through these while it builds the plan and
 * resolves magnitude weights, never by casting the const away. */
static inline int *lsw_plan_models_of(lsw_plan *p, const lsw_plan_tensor *t)
{
    return p->models_arena + (t->models - p->models_arena);
}
static inline const lsw_tensor_desc **lsw_plan_src_of(lsw_plan *p, const lsw_plan_tensor *t)
{
    return p->src_arena + (t->src - p->src_arena);
}
static inline float *lsw_plan_w_of(lsw_plan *p, const lsw_plan_tensor *t) { return p->w_arena + (t->w - p->w_arena); }
static inline double *lsw_plan_par_of(lsw_plan *p, const lsw_plan_tensor *t)
{
    return p->par_arena + (t->par - p->par_arena);
}

/* Models (by index) that the config's method reads; 1 in used[i] for each.
 * Magnitude weights add the base. */
void lsw_plan_models_used(const lsw_config *cfg, int *used);

/* Open and validate every model the config names (docs/config.md: a path that does
 * not exist or cannot be read is a bad input even if no rule reads it), then
 * keep in m[i] (caller-owned array of cfg->nmodels, filled with opened
 * handles the caller closes) only the models with used[i] set; the others
 * are closed again and left NULL.  On error nothing stays open. */
int lsw_plan_open_models(const lsw_config *cfg, const int *used, lsw_ckpt **m);

/* Build the plan.  `models[i]` is the opened checkpoint of model i, or NULL
 * for a model no rule reads.  Errors: LSW_E_CONFIG (layer ranges, unmatched
 * tensors), LSW_E_MISMATCH (names, shapes, dtypes disagree), LSW_E_INPUT. */
int lsw_plan_build(const lsw_config *cfg, lsw_ckpt *const *models, lsw_plan **out);
void lsw_plan_free(lsw_plan *p);

/* Before anything is created, locked or removed in the output folder:
 *  - LSW_E_CONFIG if it is the folder of any model the config lists, read by
 *    a rule or not (lsw_guard_output over cfg->model_paths);
 *  - LSW_E_INPUT if the reference model is a folder without a config.json
 *    that parses as a JSON object (the output copies it; without it
 *    transformers cannot load the output);
 *  - with HDF5 output, LSW_E_INPUT for a tensor HDF5 cannot store (a name
 *    with '/', more than 32 dimensions, a row of 4 GiB or more).
 * Reads no tensor data. */
int lsw_plan_check_output(const lsw_plan *p);

/* The output-folder guard, a pure check: LSW_E_CONFIG naming `origin` (the
 * config file), the folder and the model if writing into `outdir` could
 * touch any of the n inputs paths[i] (called names[i]), by
 * lsw_input_in_folder: device and inode, symlinks, "..", bind mounts.  Give
 * it every model a config lists and every path a derived model resolves to.
 * Its message never suggests --overwrite: nothing makes an input's folder an
 * output.  Reads folder entries only; local (every rank may call it). */
int lsw_guard_output(const char *origin, const char *outdir, const char *const *names, const char *const *paths,
                     size_t n);

/* Once the output folder is open (and its resume state known), before the
 * first byte of data: LSW_E_NOSPACE (exit 4) with the numbers unless its
 * file system has room for what this run still has to write.  The one
 * estimate of an output's size: safetensors, the shards not finished by an
 * earlier run of the plan (lsw_outdir_remaining) plus the index and the
 * side files; HDF5, model.h5 at its worst (every chunk at its zstd bound).
 * Rank 0 (it reads od). */
int lsw_plan_check_space(const lsw_plan *p, lsw_outdir *od);

/* With the model MAVs (docs/statistics.md, indexed by model; only mav_needed entries
 * are read) resolve magnitude weights.  LSW_E_INPUT if an MAV is 0 (an
 * expert identical to the base has no inverse-MAV weight). */
int lsw_plan_set_mav(lsw_plan *p, const double *model_mav);

/* --dry-run: for a YAML config its native JSON first; then the expanded
 * rules, the shard layout (tensor data and file bytes) and one line per
 * tensor: "NAME\tRULE\tSOURCES\tWEIGHTS" (a source whose tensor has
 * another name than the output's is written MODEL:NAME). */
void lsw_plan_print(const lsw_plan *p, FILE *f);

#endif
