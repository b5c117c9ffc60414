#include "lsw_magnitude.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_mav.h"
#include "lsw_progress.h"

int lsw_model_mavs(const lsw_config *cfg, lsw_ckpt *const *models, const int *needed, const lsw_run_opts *o,
                   const lsw_comm *c, double *mav)
{
    const lsw_ckpt *base = models[cfg->base];
    size_t nt = lsw_ckpt_count(base);
    double *sums = calloc(nt ? nt : 1, sizeof *sums);
    size_t bytes = lsw_mav_buffer_bytes(o->mem);
    void *buf = malloc(bytes);
    int rc = (!sums || !buf) ? lsw_err_set(LSW_E_NOMEM, "out of memory for MAV buffers") : 0;
    for (size_t m = 0; m < cfg->nmodels; m++) {
        if (!needed[m])
            continue;
        double t0 = lsw_now();
        const lsw_ckpt *e = models[m];
        size_t ne = lsw_ckpt_count(e);
        if (!rc && ne > nt)
            rc = lsw_err_set(LSW_E_MISMATCH, "%s: model '%s' has %zu tensors, the base %s only %zu", lsw_ckpt_path(e),
                             cfg->model_names[m], ne, lsw_ckpt_path(base), nt);
        memset(sums, 0, (nt ? nt : 1) * sizeof *sums);
        /* tensor i (name order) is summed by rank i mod size; exact zeros elsewhere */
        for (size_t i = 0; i < ne && !rc; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(e, i);
            if ((int)(i % (size_t)c->size) == c->rank && lsw_mav_eligible(t))
                rc = lsw_tensor_mav_sum(base, e, t, buf, bytes, &sums[i]);
        }
        rc = lsw_agree(c, rc);
        if (rc)
            break;
        if (c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, sums, (int)ne, MPI_DOUBLE, MPI_SUM, c->comm);
        double s = 0;
        uint64_t rows_total = 0;
        for (size_t i = 0; i < ne; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(e, i);
            if (!lsw_mav_eligible(t))
                continue;
            uint64_t rows, rl;
            lsw_mav_rows(t, &rows, &rl);
            s += sums[i];
            rows_total += rows;
        }
        mav[m] = rows_total ? s / (double)rows_total : 0.0;
        if (c->rank == 0 && !o->quiet)
            fprintf(stderr, "layerswap: model MAV of '%s' against '%s' = %.9g (%.2f s)\n", cfg->model_names[m],
                    cfg->model_names[cfg->base], mav[m], lsw_now() - t0);
    }
    free(buf);
    free(sums);
    return lsw_agree(c, rc);
}

int lsw_resolve_magnitude(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c)
{
    if (p->ready)
        return 0;
    double *mav = calloc(p->cfg->nmodels, sizeof *mav);
    if (!mav)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = lsw_model_mavs(p->cfg, p->models, p->mav_needed, o, c, mav);
    if (!rc)
        rc = lsw_plan_set_mav(p, mav);
    free(mav);
    return rc;
}

