/* lsw_execute — the merge driver: one plan through the executor.
 *
 * A finished output (its manifest names this plan) returns at once, before
 * any pre-pass; otherwise the magnitude weights the plan needs are computed
 * (lsw_magnitude), the executor runs the plan (lsw_exec), and rank 0 writes
 * the summary file and prints the summary line.
 */
#ifndef LSW_EXECUTE_H
#define LSW_EXECUTE_H

#include <stdint.h>

#include "lsw_agree.h"
#include "lsw_exec.h"
#include "lsw_magnitude.h"
#include "lsw_plan.h"
#include "lsw_signal.h"


/* Run a merge plan into p->cfg->out.path.  Returns the same code on every
 * rank.  Collective over c->comm. */
int lsw_execute_merge(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c);

#endif
