/* lsw_derived — models computed on the fly from other models
 * (docs/config.md, "Derived models").
 *
 * An entry of a config's "models" may be an object instead of a path:
 *   {"soup": ["m1", "m2", ...], "weights": [...], "normalize": true}
 *       every BF16/F16/F32 tensor the weighted average (docs/numerics.md)
 *       of the members, rounded to the first member's dtype; any other
 *       tensor the first member's bytes.  Weights as in "linear": uniform
 *       1/k, or explicit ones divided by their sum in f64 (unless
 *       "normalize": false) and rounded to f32 once.
 *   {"from": "m", "revert_layers": [[lo, hi], ...]}
 *       every tensor of a layer lo <= i < hi of some pair is the base's,
 *       the rest m's (the paper's §3.3 location reversion).
 *   {"from": "m", "revert_rows": {"below": t}}
 *   {"from": "m", "revert_rows": {"keep": f}}
 *       for every BF16/F16/F32 tensor of rank 1 or 2, row r is the base's
 *       row where m's row is not kept, m's row where it is (bytes copied):
 *       "below": kept iff the row's MAV against the base (docs/statistics.md)
 *       is not below t; "keep": rows sorted by MAV descending (ties: tensor
 *       name in byte order, then row index), the longest prefix whose
 *       element count is at most floor(f·E) is kept, E the element count of
 *       those tensors.  A NaN MAV sorts above every number.
 * Derived models chain and may appear wherever a model name may.  Their
 * bytes are exactly those of the model written to disk first with
 * "dtype": "input" and merged from there.
 *
 * Opened, a derived model is a checkpoint view (lsw_ckpt_open_view) with
 * the tensor list of its first member or of `from`; reading it computes its
 * bytes from its inputs' bytes, so every reader (plans, magnitude weights,
 * task-vector pre-passes) sees an ordinary model.  The executor does better
 * (lsw_srcset): it expands a derived source into its inputs, so that one
 * read of an input block serves every derived model of an output block.
 * Row reversion needs every row's MAV first: lsw_derived_prepare, a
 * pre-pass spread over the ranks.
 */
#ifndef LSW_DERIVED_H
#define LSW_DERIVED_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_checkpoint.h"
#include "lsw_json.h"
#include "lsw_jsonw.h"

struct lsw_config;
typedef struct lsw_derived_def lsw_derived_def; /* a parsed definition, owned by the config */

/* Parse models.NAME (the object `obj`) of config `file`; model names are
 * resolved against names[0..n).  Errors: LSW_E_CONFIG naming the key and
 * the rule broken. */
int lsw_derived_parse(const char *file, const char *name, const lsw_json *obj, char *const *names, size_t n,
                      lsw_derived_def **out);
void lsw_derived_def_free(lsw_derived_def *d); /* accepts NULL */

/* Checks once every model and the base are known: no cycle among derived
 * models, a base wherever a reversion needs one.  LSW_E_CONFIG. */
int lsw_derived_check(const struct lsw_config *cfg);

/* Mark in used[] every model a used derived model reads, transitively (and
 * the base for reversions). */
void lsw_derived_mark_used(const struct lsw_config *cfg, int *used);

/* Open a view for every derived model i with used[i], in dependency order,
 * into models[i]; the models they read must be open in models[].  Checks
 * that a soup's members hold the same tensors and shapes (float tensors
 * float everywhere), that the base holds every reverted tensor with the
 * same shape and dtype (LSW_E_MISMATCH, exit 2), and that revert_layers
 * ranges lie in [0, L) (LSW_E_CONFIG).  On error the views opened so far
 * stay in models[] for the caller to close. */
int lsw_derived_open(const struct lsw_config *cfg, const int *used, lsw_ckpt **models);

/* The row-reversion pre-pass: for every revert_rows view in models[] (in
 * dependency order), the MAV of every row of its model against the base,
 * tensors spread over the ranks (tensor i by rank i mod size), gathered so
 * that every rank holds every decision; then the threshold and the kept
 * fraction, printed by rank 0 unless `quiet`.  Exact for any number of
 * ranks.  Collective over c->comm. */
int lsw_derived_prepare(const struct lsw_config *cfg, lsw_ckpt *const *models, uint64_t mem, int quiet,
                        const lsw_comm *c);

/* Add "derived": {NAME: {"threshold": t, "kept_fraction": x}} for every
 * prepared revert_rows view in models[] (nothing when there is none). */
void lsw_derived_report(const struct lsw_config *cfg, lsw_ckpt *const *models, lsw_jw *w, lsw_jw_node *parent);

/* A one-line description of derived model i ("soup of a, b", ...), for the
 * manifest and --dry-run.  malloc'd. */
char *lsw_derived_describe(const struct lsw_config *cfg, size_t i);

/* ---- for the executor (lsw_srcset) ------------------------------------- */

/* Most inputs one derived tensor reads (a soup's members). */
size_t lsw_derived_max_inputs(const lsw_ckpt *view);
/* The inputs of tensor t of view: ck[j], desc[j] for j < the count
 * returned (ck and desc hold lsw_derived_max_inputs entries). */
size_t lsw_derived_inputs(const lsw_ckpt *view, const lsw_tensor_desc *t, const lsw_ckpt **ck,
                          const lsw_tensor_desc **desc);
/* The input whose bytes tensor t of view is (a copy), or -1 when they are
 * computed by lsw_derived_compute. */
int lsw_derived_alias(const lsw_ckpt *view, const lsw_tensor_desc *t);
/* Elements [e0, e0 + n) of tensor t of view into out (t's dtype), from its
 * inputs' elements [e0, e0 + n) in in[] (their own dtypes). */
void lsw_derived_compute(const lsw_ckpt *view, const lsw_tensor_desc *t, uint64_t e0, size_t n,
                         const void *const *in, void *out);

#endif
