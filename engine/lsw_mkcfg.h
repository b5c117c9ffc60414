/* lsw_mkcfg — the "sources" / "slices" form of a method section in a native
 * config: every method of mergekit configs (linear, passthrough,
 * task_arithmetic, ties, dare_linear, dare_ties, breadcrumbs,
 * breadcrumbs_ties, della, della_linear, slerp, model_stock), with
 * parameters per tensor (numbers, gradients over layers, name filters).
 * docs/mergekit.md is the user reference; a YAML config is translated into
 * exactly this form (engine/lsw_mkyaml.h).
 *
 *   "<method>": {
 *     "sources": [{"model": M, "<source param>": SETTING, ...}, ...]      every layer
 *   | "slices":  [{"sources": [{"model": M, "layers": [a, b], ...}, ...],
 *                 "<merge param>": SETTING, ...}, ...],                   output layers in order
 *     "<merge param>": SETTING, "normalize": bool, "rescale": bool, "seed": S, "filter_wise": bool
 *   }
 *   SETTING = number | {"gradient": [n, ...]}
 *           | [{"contains": "substring", "value": n | "gradient": [n, ...]}, ..., {"value": ...}]
 *
 * Source params: weight, density, gamma, epsilon, scale (as the method has
 * them); merge params: lambda, t.  Config errors are LSW_E_CONFIG naming
 * the key.  No MPI.
 */
#ifndef LSW_MKCFG_H
#define LSW_MKCFG_H

#include "lsw_config.h"
#include "lsw_json.h"

/* 1 if `name` is a method this form handles. */
int lsw_mkcfg_is_method(const char *name);
/* 1 if section `sec` is written in this form (has "sources" or "slices"). */
int lsw_mkcfg_is_form(const lsw_json *sec);
/* Parse section `sec` of method `name` into c->mk (and c->method, c->tv,
 * c->first_model).  `file` names the config in messages.  c->base and the
 * models must be set already. */
int lsw_mkcfg_parse(lsw_config *c, const char *file, const lsw_json *sec, const char *name);
/* Free what c->mk owns (accepts a config without it). */
void lsw_mkcfg_free(lsw_config *c);

/* The value of setting `s` for tensor `name` at relative position `pos`
 * in its slice (0 at the slice's first layer, 1 at its last; 0 for a
 * non-layer tensor), as mergekit evaluates it: the first condition whose
 * `contains` is a substring of `name`; a gradient g of n values gives
 * (1 - f)·g[i] + f·g[min(i + 1, n - 1)] with x = pos·(n - 1), i = ⌊x⌋,
 * f = x - i, all in f64.  1 and *v if a condition matched, else 0. */
int lsw_setting_eval(const lsw_setting *s, const char *name, double pos, double *v);

/* Defaults of a method's parameters (mergekit's). */
double lsw_mkcfg_default(lsw_tv_kind kind, int sp);

#endif
