#include "lsw_execute.h"

#include <stdio.h>
#include <string.h>

#include "lsw_lock.h"

#include "lsw_derived.h"
#include "lsw_error.h"
#include "lsw_progress.h"

static void summary_line(const lsw_plan *p, const lsw_exec_report *rep, double seconds, const lsw_comm *c)
{
    char detail[4352], where[64];
    const lsw_config *cfg = p->cfg;
    if (cfg->out.format == LSW_FMT_HDF5)
        snprintf(where, sizeof where, "model.h5 (compressed to %.3f)",
                 p->total_bytes ? (double)rep->compressed_bytes / (double)p->total_bytes : 0.0);
    else
        snprintf(where, sizeof where, "%zu shard(s)", p->nshards);
    snprintf(detail, sizeof detail, "%zu tensors, %.3f GB in %s on %d rank(s)%s -> %s", p->n,
             (double)p->total_bytes / 1e9, where, c->size, rep->files_reused ? " (resumed)" : "", cfg->out.path);
    lsw_summary_line("merge", detail, seconds, p->total_bytes);
}

int lsw_execute_merge(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c)
{
    double t0 = lsw_now();
    unsigned char done = 0;
    lsw_plan *plans[1] = {p};
    int rc = lsw_exec_done(plans, 1, o->overwrite, c, &done);
    if (!rc && done) {
        if (c->rank == 0 && !o->quiet)
            fprintf(stderr, "layerswap merge: %s is already complete for this config and these inputs; nothing to do\n",
                    p->cfg->out.path);
        return 0;
    }
    /* the folder's owner before any pre-pass: a second run stops at once */
    if (!rc)
        rc = lsw_agree(c, c->rank == 0 ? lsw_lock_dir(p->cfg->out.path, "merge") : 0);
    if (!rc)
        rc = lsw_derived_prepare(p->cfg, p->models, o->mem, o->quiet, c);
    if (!rc)
        rc = lsw_resolve_magnitude(p, o, c);
    double magnitude_s = lsw_now() - t0;
    lsw_exec_report rep;
    if (!rc)
        rc = lsw_exec_run(plans, 1, &done, o, LSW_DEDUP_COPY, "merge", c, &rep);
    if (rc)
        return rc;
    if (rep.complete_before) { /* finished by another run between our check and our start */
        if (c->rank == 0 && !o->quiet)
            fprintf(stderr, "layerswap merge: %s is already complete for this config and these inputs; nothing to do\n",
                    p->cfg->out.path);
        return 0;
    }
    double total_s = lsw_now() - t0;
    rc = lsw_exec_write_summary(o, "merge", p->cfg->out.path, plans, 1, &rep, magnitude_s, total_s, c);
    if (!rc && c->rank == 0 && !o->quiet)
        summary_line(p, &rep, total_s, c);
    return rc;
}
