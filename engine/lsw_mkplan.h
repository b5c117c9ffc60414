/* lsw_mkplan — the output tensors of a method written with "sources" or
 * "slices" (cfg->mk, engine/lsw_mkcfg.h), the part of lsw_plan_build that
 * mergekit configs need.
 *
 * Output layers are the slices' layers in order, numbered from 0: layer
 * `idx` of slice s is layer lo_j + idx of each source j, and an output
 * tensor "...layers.<out>..." reads "...layers.<lo_j + idx>..." of model j
 * (the first "layers.<i>." of the name is renumbered).  Non-layer tensors
 * are those of slice 0's first source: a name containing "embed" (the
 * input embeddings, before the layers) reads slice 0's sources, any other
 * (final norm, lm_head) the last slice's, as mergekit does.  Per tensor,
 * the settings give the parameters (lsw_setting_eval, with the source
 * tensor's name for a source's parameters and the output name for the
 * merge's; position idx / (n - 1) in a slice of n layers, 1 for n = 1, 0
 * for non-layer tensors).
 *
 * Pure: reads headers only.  Errors: LSW_E_CONFIG (ranges, missing
 * required parameters, values out of range), LSW_E_MISMATCH (tensors
 * missing or of other shapes/dtypes), LSW_E_NOMEM.
 */
#ifndef LSW_MKPLAN_H
#define LSW_MKPLAN_H

#include "lsw_plan.h"

/* Fill p->t, p->n, p->layers, p->rules (one per slice, for --dry-run),
 * p->layer_map / p->restacked and the arenas, from p->cfg->mk and
 * p->models.  Tensors are left in slice order (the caller sorts). */
int lsw_mkplan_build(lsw_plan *p);

/* Models (by index) a "sources"/"slices" config reads. */
void lsw_mkplan_models_used(const lsw_config *cfg, int *used);

/* --dry-run lines of one tensor's parameters ("t 0.5", "density 0.3,0.5"). */
void lsw_mkplan_print_par(const lsw_plan *p, const lsw_plan_tensor *t, FILE *f);

#endif
