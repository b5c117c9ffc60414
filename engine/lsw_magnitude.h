/* lsw_magnitude — the pre-pass of magnitude weights (docs/config.md): the
 * model MAV of every model that needs one, against the base, with the
 * tensors spread over the ranks.  Run before the executor, and only for
 * outputs that are not complete yet.
 */
#ifndef LSW_MAGNITUDE_H
#define LSW_MAGNITUDE_H

#include "lsw_agree.h"
#include "lsw_config.h"
#include "lsw_exec.h"
#include "lsw_plan.h"

/* Model MAV (the per-row MAV of docs/statistics.md, averaged over every row
 * of every eligible tensor) against cfg->base of every model m with
 * needed[m], into mav[m]; tensor i (name order) summed by rank i mod size,
 * the sums gathered, so the value is the same for any number of ranks.
 * Collective over c->comm. */
int lsw_model_mavs(const lsw_config *cfg, lsw_ckpt *const *models, const int *needed, const lsw_run_opts *o,
                   const lsw_comm *c, double *mav);

/* Compute the model MAVs that p's magnitude weights need and resolve them
 * (no-op when p is ready).  Collective over c->comm. */
int lsw_resolve_magnitude(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c);

#endif
