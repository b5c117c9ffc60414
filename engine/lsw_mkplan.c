#include "lsw_mkplan.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_mkcfg.h"

#define NAME_EXTRA 16 /* a renumbered layer index is at most this many bytes longer */

typedef struct ctx {
    lsw_plan *p;
    const lsw_config *c;
    int64_t (*lo)[LSW_MAX_SOURCES]; /* per slice, per source: first source layer */
    int *len;                       /* per slice: layers */
    size_t kmax;                    /* most sources of a slice */
    size_t next;                    /* next tensor to fill */
    char *names;                    /* name arena cursor */
} ctx;

void lsw_mkplan_models_used(const lsw_config *cfg, int *used)
{
    for (size_t s = 0; s < cfg->mk.nslices; s++)
        for (size_t j = 0; j < cfg->mk.slices[s].nsrc; j++)
            used[cfg->mk.slices[s].src[j].model] = 1;
    if (cfg->base >= 0)
        used[cfg->base] = 1;
}

static const char *mname(const ctx *x, int m) { return x->c->model_names[m]; }

/* Source layer ranges against each model's layer count. */
static int resolve_ranges(ctx *x)
{
    const lsw_config *c = x->c;
    for (size_t s = 0; s < c->mk.nslices; s++) {
        const lsw_mk_slice *sl = &c->mk.slices[s];
        for (size_t j = 0; j < sl->nsrc; j++) {
            const lsw_mk_source *src = &sl->src[j];
            int64_t L = lsw_ckpt_layers(x->p->models[src->model]), lo = src->lo, hi = src->hi < 0 ? L : src->hi;
            if (hi > L)
                return lsw_err_set(LSW_E_CONFIG, "%s: %s slice %zu: source %zu (model '%s') layers [%" PRId64
                                   ", %" PRId64 ") outside [0, %" PRId64 "): the model has %" PRId64 " layers",
                                   c->file, c->mk.name, s, j, mname(x, src->model), lo, hi, L, L);
            if (j > 0 && hi - lo != x->len[s])
                return lsw_err_set(LSW_E_CONFIG, "%s: %s slice %zu: model '%s' gives %" PRId64 " layers but '%s' "
                                   "gives %d; every source of a slice needs as many", c->file, c->mk.name, s,
                                   mname(x, src->model), hi - lo, mname(x, sl->src[0].model), x->len[s]);
            x->lo[s][j] = lo;
            x->len[s] = (int)(hi - lo);
        }
        if (sl->nsrc > x->kmax)
            x->kmax = sl->nsrc;
    }
    return 0;
}

/* `name` with its first "layers.<i>." index replaced by `to`, into buf. */
static void rename_layer(const char *name, int to, char *buf, size_t cap)
{
    for (const char *p = strstr(name, "layers."); p; p = strstr(p + 1, "layers.")) {
        const char *d = p + 7;
        while (*d >= '0' && *d <= '9')
            d++;
        if (d > p + 7 && *d == '.') {
            snprintf(buf, cap, "%.*s%d%s", (int)(p + 7 - name), name, to, d);
            return;
        }
    }
    snprintf(buf, cap, "%s", name);
}

/* The merge parameter g: slice level, then the section, then `dflt`; 0 if none. */
static int glb(const ctx *x, size_t s, int g, const char *name, double pos, double dflt, double *v)
{
    if (lsw_setting_eval(&x->c->mk.slices[s].g[g], name, pos, v) || lsw_setting_eval(&x->c->mk.g[g], name, pos, v))
        return 1;
    *v = dflt;
    return !isnan(dflt);
}

/* Parameters and weights of tensor t (sources already set). */
static int fill_params(ctx *x, lsw_plan_tensor *t, size_t s, const size_t *ord)
{
    const lsw_config *c = x->c;
    const lsw_mk_slice *sl = &c->mk.slices[s];
    double *par = lsw_plan_par_of(x->p, t), raw[LSW_MAX_SOURCES], sum = 0;
    float *w = lsw_plan_w_of(x->p, t);
    int tv = c->mk.kind == LSW_MK_TV;
    glb(x, s, LSW_GP_LAMBDA, t->name, t->pos, 1.0, &par[LSW_PAR_LAMBDA]);
    if (!glb(x, s, LSW_GP_T, t->name, t->pos, c->tv.kind == LSW_TV_SLERP && tv ? NAN : 0.0, &par[LSW_PAR_T]))
        return lsw_err_set(LSW_E_CONFIG, "%s: %s: tensor '%s': no value of \"t\" applies to it (add one without "
                           "\"contains\")", c->file, c->mk.name, t->name);
    for (size_t j = 0; j < t->nsrc; j++) {
        const lsw_mk_source *src = &sl->src[ord[j]];
        const char *sn = t->src[j]->name;
        int is_base = tv && j == 0;
        for (int k = 0; k < LSW_PAR_PER_SRC; k++) {
            int sp = LSW_SP_DENSITY + k;
            if (!lsw_setting_eval(&src->p[sp], sn, t->pos, &par[LSW_PAR_SRC(j, k)]))
                par[LSW_PAR_SRC(j, k)] = lsw_mkcfg_default(c->tv.kind, sp);
        }
        int needs_w = c->mk.kind == LSW_MK_LINEAR || (tv && !is_base && c->tv.kind != LSW_TV_SLERP &&
                                                      c->tv.kind != LSW_TV_MODEL_STOCK);
        int sp = c->mk.kind == LSW_MK_PASSTHROUGH ? LSW_SP_SCALE : LSW_SP_WEIGHT;
        if (!lsw_setting_eval(&src->p[sp], sn, t->pos, &raw[j])) {
            if (needs_w)
                return lsw_err_set(LSW_E_CONFIG, "%s: %s: tensor '%s': model '%s' has no \"weight\" for it",
                                   c->file, c->mk.name, t->name, mname(x, t->models[j]));
            raw[j] = 1.0;
        }
        sum += raw[j];
        w[j] = (float)raw[j];
    }
    if (tv)
        w[0] = 1.0f;
    if (c->mk.kind == LSW_MK_LINEAR && c->tv.normalize) {
        if (sum == 0)
            return lsw_err_set(LSW_E_CONFIG, "%s: linear: tensor '%s': weights sum to zero and cannot be "
                               "normalised (set \"normalize\": false)", c->file, t->name);
        for (size_t j = 0; j < t->nsrc; j++)
            w[j] = (float)(raw[j] / sum);
    }
    return 0;
}

/* Parameter ranges of the task-vector kinds, per tensor. */
static int check_params(const ctx *x, const lsw_plan_tensor *t)
{
    const lsw_config *c = x->c;
    if (c->mk.kind != LSW_MK_TV)
        return 0;
    for (size_t j = 1; j < t->nsrc; j++) {
        double d = t->par[LSW_PAR_SRC(j, LSW_PAR_DENSITY)], g = t->par[LSW_PAR_SRC(j, LSW_PAR_GAMMA)],
               e = t->par[LSW_PAR_SRC(j, LSW_PAR_EPSILON)];
        const char *why = NULL;
        if (!(d >= 0))
            why = "density must be >= 0";
        else if (!(g >= 0))
            why = "gamma must be >= 0";
        else if ((c->tv.kind == LSW_TV_DELLA || c->tv.kind == LSW_TV_DELLA_LINEAR) && d > 0 && d < 1 &&
                 !(d - e > 0 && d + e < 1))
            why = "density - epsilon and density + epsilon must lie in (0, 1)";
        if (why)
            return lsw_err_set(LSW_E_CONFIG, "%s: %s: tensor '%s', model '%s': %s (density %g, epsilon %g)",
                               c->file, c->mk.name, t->name, mname(x, t->models[j]), why, d, e);
    }
    return 0;
}

/* Tensor `d` of slice s's first source, at in-slice layer idx (-1: non-layer), as output layer `out`. */
static int fill_tensor(ctx *x, size_t s, const lsw_tensor_desc *d, int idx, int out, double pos)
{
    lsw_plan *p = x->p;
    const lsw_config *c = x->c;
    const lsw_mk_slice *sl = &c->mk.slices[s];
    lsw_plan_tensor *t = &p->t[x->next];
    size_t k = sl->nsrc, ord[LSW_MAX_SOURCES], q = 0;
    int tv = c->mk.kind == LSW_MK_TV;
    /* source order: a task-vector method reads the base first */
    for (size_t j = 0; j < k; j++)
        if (tv && sl->src[j].model == c->base)
            ord[q++] = j;
    for (size_t j = 0; j < k; j++)
        if (!tv || sl->src[j].model != c->base)
            ord[q++] = j;
    t->name = d->name;
    if (out >= 0 && out != d->layer) {
        rename_layer(d->name, out, x->names, strlen(d->name) + NAME_EXTRA);
        t->name = x->names;
        x->names += strlen(x->names) + 1;
    }
    t->layer = out;
    t->pos = pos;
    t->rule = s;
    t->nsrc = k;
    t->ndim = d->ndim;
    t->shape = d->shape;
    t->numel = d->numel;
    t->models = p->models_arena + x->next * x->kmax;
    t->src = p->src_arena + x->next * x->kmax;
    t->w = p->w_arena + x->next * x->kmax;
    t->par = p->par_arena + x->next * LSW_PAR_SRC(x->kmax, 0);
    x->next++;
    for (size_t j = 0; j < k; j++) {
        const lsw_mk_source *src = &sl->src[ord[j]];
        const lsw_ckpt *mc = p->models[src->model];
        char nm[4096];
        if (idx >= 0)
            rename_layer(d->name, (int)(x->lo[s][ord[j]] + idx), nm, sizeof nm);
        else
            snprintf(nm, sizeof nm, "%s", d->name);
        const lsw_tensor_desc *sd = lsw_ckpt_find(mc, nm);
        int same = sd && sd->ndim == d->ndim;
        for (size_t e = 0; same && e < d->ndim; e++)
            same = sd->shape[e] == d->shape[e];
        if (!sd || !same)
            return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': %s model '%s' (%s slice %zu needs it for '%s')",
                               lsw_ckpt_path(mc), nm, sd ? "has another shape in" : "missing from",
                               mname(x, src->model), c->mk.name, s, t->name);
        lsw_plan_models_of(p, t)[j] = src->model;
        lsw_plan_src_of(p, t)[j] = sd;
    }
    t->in_dtype = t->src[0]->dtype;
    int arith = lsw_dtype_is_arith(t->in_dtype);
    for (size_t j = 1; j < k && arith; j++)
        if (t->src[j]->dtype != t->in_dtype && c->mk.kind != LSW_MK_PASSTHROUGH)
            return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': dtype %s in model '%s' but %s in model '%s'; "
                               "merged tensors must agree", lsw_ckpt_path(p->models[t->models[j]]), t->src[j]->name,
                               lsw_dtype_name(t->src[j]->dtype), mname(x, t->models[j]),
                               lsw_dtype_name(t->in_dtype), mname(x, t->models[0]));
    int rc = fill_params(x, t, s, ord);
    if (rc || (rc = check_params(x, t)))
        return rc;
    t->out_dtype = (c->out.dtype != LSW_DT_INVALID && arith) ? c->out.dtype : t->in_dtype;
    int scaled = c->mk.kind == LSW_MK_PASSTHROUGH && lsw_setting_eval(&sl->src[ord[0]].p[LSW_SP_SCALE],
                                                                      t->src[0]->name, pos, &(double){0});
    if (!arith) /* integer and other tensors: the first source's bytes (a task-vector method's base) */
        t->op = LSW_OP_COPY, t->nsrc = 1;
    else if (tv)
        t->op = LSW_OP_TV;
    else if (c->mk.kind == LSW_MK_PASSTHROUGH && !scaled && t->out_dtype == t->in_dtype)
        t->op = LSW_OP_COPY;
    else
        t->op = LSW_OP_WSUM;
    if (!arith)
        t->out_dtype = t->in_dtype;
    t->nbytes = t->numel * lsw_dtype_size(t->out_dtype);
    p->total_bytes += t->nbytes;
    return 0;
}

/* Count the output tensors and name bytes; allocate the plan's arrays. */
static int allocate(ctx *x)
{
    lsw_plan *p = x->p;
    const lsw_config *c = x->c;
    size_t n = 0, names = 1;
    for (size_t s = 0; s < c->mk.nslices; s++) {
        const lsw_ckpt *ref = p->models[c->mk.slices[s].src[0].model];
        for (size_t i = 0; i < lsw_ckpt_count(ref); i++) {
            const lsw_tensor_desc *d = lsw_ckpt_at(ref, i);
            if (d->layer >= x->lo[s][0] && d->layer < x->lo[s][0] + x->len[s]) {
                n++;
                names += strlen(d->name) + NAME_EXTRA;
            }
        }
    }
    const lsw_ckpt *ref0 = p->models[c->mk.slices[0].src[0].model];
    for (size_t i = 0; i < lsw_ckpt_count(ref0); i++)
        n += lsw_ckpt_at(ref0, i)->layer < 0;
    size_t slots = n * x->kmax + 1;
    p->t = calloc(n ? n : 1, sizeof *p->t);
    p->models_arena = calloc(slots, sizeof *p->models_arena);
    p->src_arena = calloc(slots, sizeof *p->src_arena);
    p->w_arena = calloc(slots, sizeof *p->w_arena);
    p->par_arena = calloc(n * LSW_PAR_SRC(x->kmax, 0) + 1, sizeof *p->par_arena);
    p->name_arena = x->names = malloc(names);
    p->mav_needed = calloc(c->nmodels, sizeof *p->mav_needed);
    if (!p->t || !p->models_arena || !p->src_arena || !p->w_arena || !p->par_arena || !p->name_arena ||
        !p->mav_needed)
        return lsw_err_set(LSW_E_NOMEM, "out of memory for the plan of %zu tensors", n);
    p->n = n;
    return 0;
}

/* One rule per slice, for --dry-run (t->rule indexes them). */
static int slice_rules(ctx *x)
{
    lsw_plan *p = x->p;
    const lsw_config *c = x->c;
    if (!(p->rules = calloc(c->mk.nslices, sizeof *p->rules)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    p->nrules = c->mk.nslices;
    int out = 0;
    for (size_t s = 0; s < c->mk.nslices; s++) {
        const lsw_mk_slice *sl = &c->mk.slices[s];
        lsw_rule *r = &p->rules[s];
        char o[160];
        snprintf(o, sizeof o, "%s slice %zu: source layers from %" PRId64 ", output layers [%d, %d)", c->mk.name, s,
                 x->lo[s][0], out, out + x->len[s]);
        out += x->len[s];
        r->sel = LSW_SEL_RANGE;
        r->lo = out - x->len[s];
        r->hi = out;
        r->action = c->mk.kind == LSW_MK_TV ? LSW_ACT_TASKVEC : c->mk.kind == LSW_MK_LINEAR ? LSW_ACT_AVERAGE
                                                                                           : LSW_ACT_TAKE;
        r->nmodels = sl->nsrc;
        r->weighting = LSW_W_EXPLICIT;
        r->normalize = c->tv.normalize;
        if (!(r->models = malloc(sl->nsrc * sizeof *r->models)) || !(r->origin = strdup(o)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (size_t j = 0; j < sl->nsrc; j++)
            r->models[j] = sl->src[j].model;
    }
    return 0;
}

/* Output layer i is layer layer_map[i] of its slice's first source; restacked
 * unless that is the identity over the files model's layers. */
static int layer_map(ctx *x, int L)
{
    lsw_plan *p = x->p;
    const lsw_config *c = x->c;
    if (!(p->layer_map = malloc((L ? L : 1) * sizeof *p->layer_map)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int out = 0;
    for (size_t s = 0; s < c->mk.nslices; s++)
        for (int i = 0; i < x->len[s]; i++)
            p->layer_map[out++] = (int)x->lo[s][0] + i;
    p->restacked = L != lsw_ckpt_layers(p->models[c->first_model]);
    for (int i = 0; i < L && !p->restacked; i++)
        p->restacked = p->layer_map[i] != i;
    return 0;
}

int lsw_mkplan_build(lsw_plan *p)
{
    const lsw_config *c = p->cfg;
    ctx x = {p, c, NULL, NULL, 0, 0, NULL};
    x.lo = calloc(c->mk.nslices, sizeof *x.lo);
    x.len = calloc(c->mk.nslices, sizeof *x.len);
    int rc = x.lo && x.len ? 0 : lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc)
        rc = resolve_ranges(&x);
    int64_t L = 0;
    for (size_t s = 0; s < c->mk.nslices; s++)
        L += x.len[s];
    if (!rc && L > LSW_MAX_LAYER + 1)
        rc = lsw_err_set(LSW_E_CONFIG, "%s: the slices make %" PRId64 " layers (at most %d)", c->file, L,
                         LSW_MAX_LAYER + 1);
    p->layers = (int)L;
    if (!rc && !(rc = allocate(&x)) && !(rc = slice_rules(&x)))
        rc = layer_map(&x, (int)L);
    int out = 0;
    for (size_t s = 0; s < c->mk.nslices && !rc; s++) {
        const lsw_ckpt *ref = p->models[c->mk.slices[s].src[0].model];
        for (size_t i = 0; i < lsw_ckpt_count(ref) && !rc; i++) {
            const lsw_tensor_desc *d = lsw_ckpt_at(ref, i);
            int idx = d->layer - (int)x.lo[s][0];
            if (d->layer >= 0 && idx >= 0 && idx < x.len[s])
                rc = fill_tensor(&x, s, d, idx, out + idx, x.len[s] > 1 ? (double)idx / (double)(x.len[s] - 1) : 1.0);
        }
        out += x.len[s];
    }
    /* non-layer tensors: the embeddings from the first slice, the rest from the last */
    const lsw_ckpt *ref0 = rc ? NULL : p->models[c->mk.slices[0].src[0].model];
    for (size_t i = 0; ref0 && i < lsw_ckpt_count(ref0) && !rc; i++) {
        const lsw_tensor_desc *d = lsw_ckpt_at(ref0, i);
        if (d->layer < 0)
            rc = fill_tensor(&x, strstr(d->name, "embed") ? 0 : c->mk.nslices - 1, d, -1, -1, 0.0);
    }
    free(x.lo);
    free(x.len);
    return rc;
}

void lsw_mkplan_print_par(const lsw_plan *p, const lsw_plan_tensor *t, FILE *f)
{
    const lsw_config *c = p->cfg;
    if (!t->par || t->op != LSW_OP_TV)
        return;
    lsw_tv_kind k = c->tv.kind;
    if (k == LSW_TV_SLERP) {
        fprintf(f, "\tt %.17g", t->par[LSW_PAR_T]);
        return;
    }
    if (k == LSW_TV_MODEL_STOCK)
        return;
    fprintf(f, "\tlambda %.17g\tdensity", t->par[LSW_PAR_LAMBDA]);
    for (size_t j = 1; j < t->nsrc; j++)
        fprintf(f, "%s%.17g", j > 1 ? "," : " ", t->par[LSW_PAR_SRC(j, LSW_PAR_DENSITY)]);
    if (k == LSW_TV_BREADCRUMBS || k == LSW_TV_BREADCRUMBS_TIES) {
        fprintf(f, "\tgamma");
        for (size_t j = 1; j < t->nsrc; j++)
            fprintf(f, "%s%.17g", j > 1 ? "," : " ", t->par[LSW_PAR_SRC(j, LSW_PAR_GAMMA)]);
    }
    if (k == LSW_TV_DELLA || k == LSW_TV_DELLA_LINEAR) {
        fprintf(f, "\tepsilon");
        for (size_t j = 1; j < t->nsrc; j++)
            fprintf(f, "%s%.17g", j > 1 ? "," : " ", t->par[LSW_PAR_SRC(j, LSW_PAR_EPSILON)]);
    }
}
