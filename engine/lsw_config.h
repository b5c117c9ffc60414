/* lsw_config — a merge config (docs/config.md), parsed strictly.
 *
 * Unknown keys, a model name that `models` does not define, weights that do
 * not match their models and malformed values are config errors
 * (LSW_E_CONFIG, exit 1), found before any checkpoint is opened.  Paths are
 * resolved against the config file's folder.  Checks that need the
 * checkpoints' headers (layer ranges against L, tensor agreement) happen in
 * lsw_plan.
 */
#ifndef LSW_CONFIG_H
#define LSW_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"

/* The most models one output tensor may read (a task-vector merge: the base
 * and LSW_MAX_SOURCES - 1 experts). */
#define LSW_MAX_SOURCES 64

typedef enum lsw_method {
    LSW_METHOD_LAYER_SWAP, LSW_METHOD_LINEAR, LSW_METHOD_RULES, LSW_METHOD_TASKVEC,
    LSW_METHOD_SLICES   /* linear / passthrough written with "sources" or "slices" (cfg->mk) */
} lsw_method;

/* Task-vector methods (docs/config.md, engine/lsw_taskvec.h for the arithmetic),
 * and the methods of mergekit configs that run through the same hooks: each
 * output tensor computed whole by one rank, a per-tensor pre-pass allowed. */
typedef enum lsw_tv_kind {
    LSW_TV_TASK_ARITHMETIC, LSW_TV_TIES, LSW_TV_DARE_LINEAR, LSW_TV_DARE_TIES,
    LSW_TV_BREADCRUMBS, LSW_TV_BREADCRUMBS_TIES, LSW_TV_DELLA, LSW_TV_DELLA_LINEAR,
    LSW_TV_SLERP, LSW_TV_MODEL_STOCK
} lsw_tv_kind;

/* A method parameter of a "sources"/"slices" section (docs/mergekit.md):
 * conditions tried in order; the first whose `contains` is a substring of
 * the tensor name (NULL: every name) gives the value, a number (nv == 1) or
 * a gradient (nv >= 1 values interpolated over the layers of the slice).
 * No condition matching: the next level (slice, then section), then the
 * method's default. */
typedef struct lsw_cond { char *contains; int gradient; size_t nv; double *v; } lsw_cond;
typedef struct lsw_setting { size_t n; lsw_cond *c; } lsw_setting;
/* Parameters of one source (filtered on the source tensor's name) ... */
enum { LSW_SP_WEIGHT, LSW_SP_DENSITY, LSW_SP_GAMMA, LSW_SP_EPSILON, LSW_SP_SCALE, LSW_SP_N };
/* ... and of the merge (filtered on the output tensor's name). */
enum { LSW_GP_LAMBDA, LSW_GP_T, LSW_GP_N };

typedef struct lsw_mk_source {
    int model;
    int64_t lo, hi;           /* source layers [lo, hi); hi < 0: every layer of the model */
    lsw_setting p[LSW_SP_N];
} lsw_mk_source;

typedef struct lsw_mk_slice {
    size_t nsrc;
    lsw_mk_source *src;
    lsw_setting g[LSW_GP_N];
} lsw_mk_slice;

typedef enum lsw_mk_kind { LSW_MK_LINEAR, LSW_MK_PASSTHROUGH, LSW_MK_TV } lsw_mk_kind;

typedef enum lsw_action {
    LSW_ACT_TAKE, LSW_ACT_AVERAGE, LSW_ACT_BASE,
    LSW_ACT_TASKVEC /* models[0] is the base, models[1..] the experts of cfg->tv */
} lsw_action;

typedef enum lsw_layer_sel {
    LSW_SEL_ANY,       /* no "layers": every tensor */
    LSW_SEL_RANGE,     /* layer tensors with lo <= i < hi */
    LSW_SEL_NON_LAYER  /* presets only: tensors without a layer index */
} lsw_layer_sel;

typedef enum lsw_weighting {
    LSW_W_UNIFORM,   /* 1/k each */
    LSW_W_EXPLICIT,  /* given, divided by their sum in f64 unless !normalize */
    LSW_W_MAGNITUDE  /* inverse model MAV vs base (docs/statistics.md) */
} lsw_weighting;

typedef struct lsw_rule {
    char *match;            /* POSIX ERE on the tensor name; NULL: any name */
    lsw_layer_sel sel;
    int64_t lo, hi;         /* LSW_SEL_RANGE: lo <= layer < hi */
    lsw_action action;
    size_t nmodels;
    int *models;            /* model indices (take: 1; base: the base) */
    lsw_weighting weighting;
    double *weights;        /* LSW_W_EXPLICIT: nmodels raw weights */
    int normalize;
    char *origin;           /* where it came from, e.g. "layer_swap bottom" or "rules[2]" */
} lsw_rule;

typedef enum lsw_format { LSW_FMT_SAFETENSORS, LSW_FMT_HDF5 } lsw_format;

typedef struct lsw_output_cfg {
    char *path;             /* resolved */
    lsw_format format;
    lsw_dtype dtype;        /* LSW_DT_INVALID: "input" */
    uint64_t shard_size;    /* bytes */
    int shard_by_layer;
    int zstd_level;
    int shuffle;
} lsw_output_cfg;

typedef struct lsw_config {
    char *file;             /* the config file */
    char *dir;              /* its folder */
    size_t nmodels;
    char **model_names;
    char **model_paths;     /* resolved; NULL for a derived model */
    struct lsw_derived_def **derived; /* per model: its definition (lsw_derived), NULL for a checkpoint */
    int base;               /* model index, -1 if none */
    lsw_method method;
    int first_model;        /* task expert / first listed: config files are copied from it */
    size_t nrules;
    lsw_rule *rules;        /* presets already expanded except for layer counts (see lsw_plan) */
    /* layer_swap parameters, kept for the expansion that needs L */
    struct {
        int task, lang;
        int64_t bottom, top, lower, upper;
        lsw_weighting transition_w, non_layer_w;
        int non_layer;      /* 0 average, 1 task, 2 language */
    } ls;
    /* task-vector parameters (method LSW_METHOD_TASKVEC) */
    struct {
        lsw_tv_kind kind;
        size_t k;
        double weight[LSW_MAX_SOURCES], density[LSW_MAX_SOURCES];
        double lambda;
        int normalize;
        uint64_t seed;
        int global_trim;    /* ties, "trim": "global": one threshold per expert over the whole model */
        int rescale;        /* dare_*, della*: survivors divided by their keep probability */
    } tv;
    /* A method written with "sources" or "slices" (every mergekit method;
     * docs/mergekit.md): output layers come from slices of source layers,
     * parameters per tensor from settings.  mk.on == 0 otherwise. */
    struct {
        int on;
        lsw_mk_kind kind;     /* TV: the kind is tv.kind */
        const char *name;     /* the method's name, static */
        size_t nslices;
        lsw_mk_slice *slices; /* "sources": one slice whose sources have hi < 0 */
        lsw_setting g[LSW_GP_N];
    } mk;
    int yaml;               /* read from a mergekit YAML file; text holds its native JSON */
    lsw_output_cfg out;
    uint64_t hash;          /* identity of the config text */
    char *text;             /* the config text as read */
} lsw_config;

/* The keys of a "layer_swap" section, shared by the config parser and the
 * sweep grid (lsw_sweep): in the order a grid expands them (the last varies
 * fastest), each with its default as JSON text (NULL: required) and the
 * prefix a sweep's merge names give its value ("b" for bottom, ...). */
#define LSW_LS_NKEYS 9
typedef struct lsw_ls_key {
    const char *key;
    const char *dflt;
    const char *name_prefix;
} lsw_ls_key;
extern const lsw_ls_key lsw_layer_swap_keys[LSW_LS_NKEYS];

/* Rules' "match" expressions are untrusted: glibc's regcomp duplicates the
 * parse tree for stacked and nested repetitions (memory exponential in their
 * count; it crashes when memory runs out) and back-references make matching
 * exponential.  0 if `re` is at most LSW_REGEX_MAX bytes, has no quantifier
 * right after a quantifier, no repetition bound above LSW_REGEX_REPEAT, no
 * quantified group inside a quantified group inside a quantified group, and
 * no back-reference; else -1 with the reason in `why`. */
#define LSW_REGEX_MAX 512
#define LSW_REGEX_REPEAT 255
int lsw_regex_tame(const char *re, char *why, size_t whylen);

/* Parse the config at `path`.  On success *out is owned by the caller
 * (lsw_config_free).  Errors: LSW_E_CONFIG, LSW_E_NOTFOUND (cannot read it). */
int lsw_config_load(const char *path, lsw_config **out);
/* Parse config text; `dir` is the folder that relative paths refer to and
 * `name` the file name used in messages. */
int lsw_config_parse(const char *text, size_t len, const char *name, const char *dir, lsw_config **out);
void lsw_config_free(lsw_config *c);
int lsw_config_model_index(const lsw_config *c, const char *name);
/* Free an array of n rules and everything they own (accepts NULL). */
void lsw_rules_free(lsw_rule *r, size_t n);
/* Parse "5GB", "500MB", "2GiB", "1048576" (SI units are powers of 10, IEC of 2). -1 on error. */
int lsw_parse_size(const char *s, uint64_t *out);

#endif
