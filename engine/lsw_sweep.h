/* lsw_sweep — many layer-swap merges of a grid of expert combinations (docs/sweep.md).
 *
 * SWEEP.json:
 *   {"models": {...}, "base": "...",
 *    "grid": {"task_expert": [...], "language_expert": [...], "bottom": [...], "top": [...],
 *             "lower_transition": [...], "upper_transition": [...], "transition_weights": [...],
 *             "non_layer": [...], "non_layer_weights": [...]},
 *    "output": {"path": "out/sweep", "format": ..., "dtype": ..., "shard_size": ..., "shard_by": ...,
 *               "compression": {...}, "dedup": "reflink" | "hardlink" | "copy"}}
 * Every grid key but the two experts is optional (defaults 0, "uniform",
 * "average").  The merges are the cross product in the key order above, the
 * last key varying fastest; merge K is an ordinary layer_swap config whose
 * output is `<path>/<K>-<short name>`, the short name made of the experts'
 * names and the values of the keys that vary ("math1-swh2-b4-t1").
 *
 * Running a sweep reads each input tensor block once for all the merges that
 * need it, computes each distinct output tensor once, and writes each
 * distinct shard once: a shard whose bytes another output of the sweep
 * already holds (same tensors from the same sources with the same weights —
 * with "shard_by": "layer" most layers of most merges) becomes a reflink,
 * hard link or copy of it (`dedup`).  Every output folder stays a complete,
 * ordinary checkpoint with its own manifest.
 */
#ifndef LSW_SWEEP_H
#define LSW_SWEEP_H

#include <stddef.h>

#include "lsw_agree.h"
#include "lsw_commit.h"
#include "lsw_config.h"
#include "lsw_execute.h"

typedef struct lsw_sweep lsw_sweep; /* opaque */

/* Most bytes the expanded merge configs of one sweep may take (each repeats
 * the sweep's "models", "base" and "output"); a larger grid is a config
 * error, to be split. */
#define LSW_SWEEP_MAX_TEXT ((size_t)256 << 20)

/* Parse and expand SWEEP.json; every merge's config is validated (exit-1
 * errors found before anything is read or written).  `out_override`
 * (may be NULL) replaces output.path, relative to the current folder. */
int lsw_sweep_load(const char *path, const char *out_override, lsw_sweep **out);
void lsw_sweep_free(lsw_sweep *s); /* accepts NULL */

size_t lsw_sweep_count(const lsw_sweep *s);
const char *lsw_sweep_name(const lsw_sweep *s, size_t k);
/* The output folder of merge k. */
const char *lsw_sweep_output(const lsw_sweep *s, size_t k);
/* Merge k's config (owned by the sweep). */
const lsw_config *lsw_sweep_config(const lsw_sweep *s, size_t k);

/* Hand merge k's config over to the caller (it is removed from the sweep). */
int lsw_sweep_take_config(lsw_sweep *s, size_t k, lsw_config **out);

/* Write <path>/sweep.json: every merge's index, name, output folder and
 * config.  Rank 0 only. */
int lsw_sweep_write_list(const lsw_sweep *s);

/* Validate every model the sweep names and plan every merge (headers only,
 * no tensor data): the checks a run makes before it writes anything.  Errors
 * name the merge ("SWEEP: merge K (NAME): ..."). */
int lsw_sweep_check(const lsw_sweep *s);

/* Run every merge of the sweep.  Collective over c->comm; the work runs on
 * rank 0 (job arrays spread merges over nodes: `merge --sweep --index`). */
int lsw_sweep_run(const lsw_sweep *s, const lsw_run_opts *o, const lsw_comm *c);

/* The dedup mode of the sweep's output ("reflink" unless set). */
lsw_dedup lsw_sweep_dedup(const lsw_sweep *s);

#endif
