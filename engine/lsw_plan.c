#include "lsw_plan.h"
#include "lsw_derived.h"

#include <inttypes.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_hfconfig.h"
#include "lsw_mkplan.h"
#include "lsw_modelfiles.h"
#include "lsw_h5layout.h"
#include "lsw_io.h"
#include "lsw_modelfiles.h"
#include "lsw_zstd_filter.h"

/* ---- rule expansion ------------------------------------------------------ */

static int add_rule(lsw_plan *p, const char *origin, lsw_layer_sel sel, int64_t lo, int64_t hi, lsw_action act,
                    size_t nm, const int *models, lsw_weighting wt)
{
    lsw_rule *r = realloc(p->rules, (p->nrules + 1) * sizeof *r);
    if (!r)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    p->rules = r;
    r = &r[p->nrules++];
    memset(r, 0, sizeof *r);
    r->sel = sel;
    r->lo = lo;
    r->hi = hi;
    r->action = act;
    r->nmodels = nm;
    r->weighting = wt;
    r->normalize = 1;
    r->models = malloc(nm * sizeof *r->models);
    r->origin = strdup(origin);
    if (!r->models || !r->origin)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    memcpy(r->models, models, nm * sizeof *models);
    return 0;
}

static int copy_rule(lsw_plan *p, const lsw_rule *src)
{
    int rc = add_rule(p, src->origin, src->sel, src->lo, src->hi, src->action, src->nmodels, src->models,
                      src->weighting);
    if (rc)
        return rc;
    lsw_rule *r = &p->rules[p->nrules - 1];
    r->normalize = src->normalize;
    if (src->match && !(r->match = strdup(src->match)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (src->weights) {
        if (!(r->weights = malloc(src->nmodels * sizeof *r->weights)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        memcpy(r->weights, src->weights, src->nmodels * sizeof *r->weights);
    }
    return 0;
}

/* layer_swap (docs/config.md) as ordered rules; first match wins, so the language
 * expert's bottom/top ranges come first exactly as in the formula. */
static int expand_layer_swap(lsw_plan *p)
{
    const lsw_config *c = p->cfg;
    int64_t L = p->layers, b = c->ls.bottom, t = c->ls.top, lo = c->ls.lower, up = c->ls.upper;
    if (b + t + lo + up > L)
        return lsw_err_set(LSW_E_CONFIG, "%s: layer_swap: bottom %" PRId64 " + lower_transition %" PRId64
                           " + upper_transition %" PRId64 " + top %" PRId64 " exceeds the model's %" PRId64 " layers",
                           c->file, b, lo, up, t, L);
    int g[1] = {c->ls.lang}, tk[1] = {c->ls.task}, both[2] = {c->ls.task, c->ls.lang};
    int rc = 0;
    if (b > 0)
        rc = add_rule(p, "layer_swap bottom", LSW_SEL_RANGE, 0, b, LSW_ACT_TAKE, 1, g, LSW_W_UNIFORM);
    if (!rc && t > 0)
        rc = add_rule(p, "layer_swap top", LSW_SEL_RANGE, L - t, L, LSW_ACT_TAKE, 1, g, LSW_W_UNIFORM);
    if (!rc && lo > 0)
        rc = add_rule(p, "layer_swap lower_transition", LSW_SEL_RANGE, b, b + lo, LSW_ACT_AVERAGE, 2, both,
                      c->ls.transition_w);
    if (!rc && up > 0)
        rc = add_rule(p, "layer_swap upper_transition", LSW_SEL_RANGE, L - t - up, L - t, LSW_ACT_AVERAGE, 2, both,
                      c->ls.transition_w);
    if (!rc && b + lo < L - t - up)
        rc = add_rule(p, "layer_swap middle", LSW_SEL_RANGE, b + lo, L - t - up, LSW_ACT_TAKE, 1, tk, LSW_W_UNIFORM);
    if (!rc) {
        if (c->ls.non_layer == 0)
            rc = add_rule(p, "layer_swap non_layer", LSW_SEL_NON_LAYER, 0, 0, LSW_ACT_AVERAGE, 2, both,
                          c->ls.non_layer_w);
        else
            rc = add_rule(p, "layer_swap non_layer", LSW_SEL_NON_LAYER, 0, 0, LSW_ACT_TAKE, 1,
                          c->ls.non_layer == 1 ? tk : g, LSW_W_UNIFORM);
    }
    return rc;
}

void lsw_plan_models_used(const lsw_config *cfg, int *used)
{
    memset(used, 0, cfg->nmodels * sizeof *used);
    int mag = 0;
    if (cfg->method == LSW_METHOD_LAYER_SWAP) {
        used[cfg->ls.task] = used[cfg->ls.lang] = 1;
        mag = cfg->ls.transition_w == LSW_W_MAGNITUDE || cfg->ls.non_layer_w == LSW_W_MAGNITUDE;
    }
    for (size_t i = 0; i < cfg->nrules; i++) {
        for (size_t j = 0; j < cfg->rules[i].nmodels; j++)
            used[cfg->rules[i].models[j]] = 1;
        mag |= cfg->rules[i].weighting == LSW_W_MAGNITUDE;
    }
    if (mag && cfg->base >= 0)
        used[cfg->base] = 1;
    if (cfg->mk.on)
        lsw_mkplan_models_used(cfg, used);
    /* the reference model: its tensor list and config files define the output */
    used[cfg->first_model] = 1;
    lsw_derived_mark_used(cfg, used); /* and what derived models read */
}

/* A model path that does not exist: say where it came from and how it was
 * resolved (issue 15's friction: paths are relative to the config's folder). */
static int missing_model(const lsw_config *cfg, size_t i, int rc)
{
    const char *path = cfg->model_paths[i];
    struct stat st;
    if (rc != LSW_E_NOTFOUND || lstat(path, &st) == 0)
        return rc;
    char *abs = lsw_path_resolve_future(path);
    lsw_err_clear();
    rc = lsw_err_set(LSW_E_NOTFOUND, "%s: models.%s: no such file or folder: %s (%s; model paths in a config are "
                     "relative to the config file's folder, %s)",
                     cfg->file, cfg->model_names[i], path, abs ? abs : "?", cfg->dir ? cfg->dir : ".");
    free(abs);
    return rc;
}

int lsw_plan_open_models(const lsw_config *cfg, const int *used, lsw_ckpt **m)
{
    int rc = 0;
    for (size_t i = 0; i < cfg->nmodels; i++)
        m[i] = NULL;
    for (size_t i = 0; i < cfg->nmodels && !rc; i++)
        if (cfg->model_paths[i] && (rc = lsw_ckpt_open(cfg->model_paths[i], &m[i])))
            rc = missing_model(cfg, i, rc); /* derived models are opened below, from these */
    int *all = rc ? NULL : malloc(cfg->nmodels * sizeof *all);
    for (size_t i = 0; all && i < cfg->nmodels; i++)
        all[i] = 1; /* every derived model is checked, like every path */
    if (!rc)
        rc = all ? lsw_derived_open(cfg, all, m) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    free(all);
    /* Models no rule reads are closed again (views before the models they
     * read): the output guard (lsw_plan_check_output) works from
     * cfg->model_paths, which lists them all, not from these handles. */
    for (int views = 1; views >= 0; views--)
        for (size_t i = 0; i < cfg->nmodels; i++)
            if ((rc || !used[i]) && m[i] && (views == (lsw_ckpt_view_user(m[i]) != NULL))) {
                lsw_ckpt_close(m[i]);
                m[i] = NULL;
            }
    return rc;
}

/* ---- matching ------------------------------------------------------------ */

static int rule_matches(const lsw_rule *r, const regex_t *re, const char *name, int layer)
{
    if (r->sel == LSW_SEL_RANGE && (layer < 0 || layer < r->lo || layer >= r->hi))
        return 0;
    if (r->sel == LSW_SEL_NON_LAYER && layer >= 0)
        return 0;
    if (r->match && regexec(re, name, 0, NULL, 0) != 0)
        return 0;
    return 1;
}

static const char *model_label(const lsw_plan *p, int m)
{
    return p->cfg->model_names[m];
}

/* Weights of a rule for a tensor, except magnitude ones (filled later). */
static void rule_weights(const lsw_config *c, const lsw_rule *r, float *w)
{
    size_t k = r->nmodels;
    if (r->action == LSW_ACT_TASKVEC) {
        w[0] = 1.0f; /* the base */
        for (size_t i = 1; i < k; i++)
            w[i] = (float)c->tv.weight[i - 1];
        return;
    }
    if (r->action != LSW_ACT_AVERAGE) {
        w[0] = 1.0f;
        return;
    }
    if (r->weighting == LSW_W_UNIFORM) {
        for (size_t i = 0; i < k; i++)
            w[i] = (float)(1.0 / (double)k);
    } else if (r->weighting == LSW_W_EXPLICIT) {
        double sum = 0;
        for (size_t i = 0; i < k; i++)
            sum += r->weights[i];
        for (size_t i = 0; i < k; i++)
            w[i] = r->normalize ? (float)(r->weights[i] / sum) : (float)r->weights[i];
    } else {
        for (size_t i = 0; i < k; i++)
            w[i] = NAN;
    }
}

static int check_agreement(lsw_plan *p, const int *used, const lsw_ckpt *ref)
{
    /* Every model a rule reads must hold exactly the reference's tensor names. */
    for (size_t m = 0; m < p->cfg->nmodels; m++) {
        if (!used[m] || !p->models[m] || p->models[m] == ref)
            continue;
        const lsw_ckpt *c = p->models[m];
        for (size_t i = 0; i < lsw_ckpt_count(c); i++) {
            const lsw_tensor_desc *d = lsw_ckpt_at(c, i);
            if (!lsw_ckpt_find(ref, d->name))
                return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': present in model '%s' but not in '%s' (%s); all merged models must have the same tensors",
                                   lsw_ckpt_path(c), d->name, model_label(p, (int)m),
                                   model_label(p, p->cfg->first_model), lsw_ckpt_path(ref));
        }
    }
    return 0;
}

static int layout(lsw_plan *p)
{
    const lsw_output_cfg *o = &p->cfg->out;
    lsw_layout_item *it = calloc(p->n ? p->n : 1, sizeof *it);
    if (!it)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        it[i] = (lsw_layout_item){t->name, t->out_dtype, t->ndim, t->shape, t->numel, t->nbytes, t->layer, 0, 0};
    }
    int rc = lsw_layout_build(it, p->n, o->shard_size, o->shard_by_layer, &p->shards, &p->nshards);
    for (size_t i = 0; i < p->n && !rc; i++) {
        p->t[i].shard = it[i].shard;
        p->t[i].offset = it[i].offset;
    }
    p->items = it;
    for (size_t k = 0; k < p->nshards && !rc; k++) {
        p->hash = lsw_fnv1a64(p->hash, p->shards[k].name, strlen(p->shards[k].name));
        p->hash = lsw_fnv1a64(p->hash, p->shards[k].header, p->shards[k].data_start);
    }
    return rc;
}

/* Phase 1: presets expanded to rules, the config's own rules copied and their
 * layer ranges checked against L. */
static int plan_rules(lsw_plan *p)
{
    const lsw_config *cfg = p->cfg;
    int rc = cfg->method == LSW_METHOD_LAYER_SWAP ? expand_layer_swap(p) : 0;
    for (size_t i = 0; i < cfg->nrules && !rc; i++) {
        const lsw_rule *r = &cfg->rules[i];
        if (r->sel == LSW_SEL_RANGE && r->hi > p->layers)
            rc = lsw_err_set(LSW_E_CONFIG, "%s: %s: layers [%" PRId64 ", %" PRId64 ") outside [0, %d): the model has %d layers",
                             cfg->file, r->origin, r->lo, r->hi, p->layers, p->layers);
        else
            rc = copy_rule(p, r);
    }
    return rc;
}

/* Phase 2 (rules): the tensor's rule, sources, weights, dtypes and op. */
static int plan_tensor(lsw_plan *p, lsw_plan_tensor *t, const lsw_tensor_desc *d, const regex_t *re)
{
    const lsw_config *cfg = p->cfg;
    t->name = d->name;
    t->layer = d->layer;
    t->ndim = d->ndim;
    t->shape = d->shape;
    t->numel = d->numel;
    t->in_dtype = d->dtype;
    size_t r = 0;
    while (r < p->nrules && !rule_matches(&p->rules[r], &re[r], d->name, d->layer))
        r++;
    if (r == p->nrules)
        return lsw_err_set(LSW_E_CONFIG, "%s: tensor '%s': no rule matches it (every tensor needs a rule; add a catch-all rule last)",
                           cfg->file, d->name);
    const lsw_rule *rl = &p->rules[r];
    t->rule = r;
    t->nsrc = rl->nmodels;
    memcpy(lsw_plan_models_of(p, t), rl->models, rl->nmodels * sizeof(int));
    rule_weights(cfg, rl, lsw_plan_w_of(p, t));
    if (rl->weighting == LSW_W_MAGNITUDE && rl->action == LSW_ACT_AVERAGE) {
        p->ready = 0;
        for (size_t j = 0; j < rl->nmodels; j++)
            p->mav_needed[rl->models[j]] = 1;
    }
    for (size_t j = 0; j < t->nsrc; j++) {
        const lsw_ckpt *mc = p->models[t->models[j]];
        const lsw_tensor_desc *s = mc ? lsw_ckpt_find(mc, d->name) : NULL;
        if (!s)
            return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': missing from model '%s', which %s reads",
                               mc ? lsw_ckpt_path(mc) : cfg->model_paths[t->models[j]], d->name,
                               model_label(p, t->models[j]), rl->origin);
        int same_shape = s->ndim == d->ndim;
        for (size_t k = 0; same_shape && k < d->ndim; k++)
            same_shape = s->shape[k] == d->shape[k];
        if (!same_shape)
            return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': shape differs between model '%s' and model '%s'",
                               lsw_ckpt_path(mc), d->name, model_label(p, t->models[j]),
                               model_label(p, cfg->first_model));
        if ((rl->action == LSW_ACT_AVERAGE || rl->action == LSW_ACT_TASKVEC) && s->dtype != d->dtype)
            return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': dtype %s in model '%s' but %s in model '%s'; averaged tensors must agree",
                               lsw_ckpt_path(mc), d->name, lsw_dtype_name(s->dtype), model_label(p, t->models[j]),
                               lsw_dtype_name(d->dtype), model_label(p, cfg->first_model));
        lsw_plan_src_of(p, t)[j] = s;
    }
    t->in_dtype = t->src[0]->dtype;
    if (rl->action == LSW_ACT_AVERAGE && !lsw_dtype_is_arith(t->in_dtype))
        return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': dtype %s cannot be averaged (only BF16, F16, F32)",
                           lsw_ckpt_path(p->models[cfg->first_model]), d->name, lsw_dtype_name(t->in_dtype));
    t->out_dtype = (cfg->out.dtype != LSW_DT_INVALID && lsw_dtype_is_arith(t->in_dtype)) ? cfg->out.dtype
                                                                                          : t->in_dtype;
    if (rl->action == LSW_ACT_TASKVEC)
        /* integer and other non-float tensors are the base's, byte for byte */
        t->op = lsw_dtype_is_arith(t->in_dtype) ? LSW_OP_TV : LSW_OP_COPY;
    else
        t->op = (rl->action != LSW_ACT_AVERAGE && t->out_dtype == t->in_dtype) ? LSW_OP_COPY : LSW_OP_WSUM;
    t->nbytes = t->numel * lsw_dtype_size(t->out_dtype); /* no overflow: bounded by the input's */
    p->total_bytes += t->nbytes;
    return 0;
}

/* Phase 2: every tensor of the reference model through the rules. */
static int plan_rule_tensors(lsw_plan *p, const lsw_ckpt *ref, const int *used)
{
    const lsw_config *cfg = p->cfg;
    int rc = check_agreement(p, used, ref);
    if (rc)
        return rc;
    regex_t *re = calloc(p->nrules ? p->nrules : 1, sizeof *re);
    if (!re)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    size_t ncomp = 0;
    for (; ncomp < p->nrules && !rc; ncomp++)
        if (p->rules[ncomp].match && regcomp(&re[ncomp], p->rules[ncomp].match, REG_EXTENDED | REG_NOSUB) != 0)
            rc = lsw_err_set(LSW_E_CONFIG, "%s: %s: bad regular expression", cfg->file, p->rules[ncomp].origin);
    if (rc)
        ncomp--; /* the failed one holds nothing to free */
    p->n = lsw_ckpt_count(ref);
    size_t k = 0;
    for (size_t i = 0; i < p->nrules; i++)
        k = p->rules[i].nmodels > k ? p->rules[i].nmodels : k;
    p->t = calloc(p->n ? p->n : 1, sizeof *p->t);
    p->models_arena = calloc(p->n * k + 1, sizeof(int));
    p->src_arena = calloc(p->n * k + 1, sizeof *p->src_arena);
    p->w_arena = calloc(p->n * k + 1, sizeof(float));
    p->mav_needed = calloc(cfg->nmodels, sizeof *p->mav_needed);
    if (!rc && (!p->t || !p->models_arena || !p->src_arena || !p->w_arena || !p->mav_needed))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    p->ready = 1;
    for (size_t i = 0; i < p->n && !rc; i++) {
        lsw_plan_tensor *t = &p->t[i];
        t->models = p->models_arena + i * k;
        t->src = p->src_arena + i * k;
        t->w = p->w_arena + i * k;
        rc = plan_tensor(p, t, lsw_ckpt_at(ref, i), re);
    }
    for (size_t i = 0; i < ncomp; i++)
        if (p->rules[i].match)
            regfree(&re[i]);
    free(re);
    return rc;
}

static int cmp_tensor_natural(const void *a, const void *b)
{
    return lsw_natural_cmp(((const lsw_plan_tensor *)a)->name, ((const lsw_plan_tensor *)b)->name);
}

static int cmp_tensor_by_layer(const void *a, const void *b)
{
    const lsw_plan_tensor *x = a, *y = b;
    /* layer tensors first, by layer; non-layer tensors (-1) last */
    unsigned lx = (unsigned)x->layer, ly = (unsigned)y->layer;
    if (lx != ly)
        return lx < ly ? -1 : 1;
    return lsw_natural_cmp(x->name, y->name);
}

/* Phase 3: output order, identity hash, layout. */
static int plan_finish(lsw_plan *p)
{
    const lsw_config *cfg = p->cfg;
    qsort(p->t, p->n, sizeof *p->t, cfg->out.shard_by_layer ? cmp_tensor_by_layer : cmp_tensor_natural);
    for (size_t i = 1; i < p->n; i++)
        if (strcmp(p->t[i].name, p->t[i - 1].name) == 0)
            return lsw_err_set(LSW_E_CONFIG, "%s: tensor '%s' would be written twice", cfg->file, p->t[i].name);
    p->hash = lsw_fnv1a64(LSW_FNV1A64_INIT, &cfg->hash, sizeof cfg->hash);
    for (size_t m = 0; m < cfg->nmodels; m++)
        if (p->models[m]) {
            uint64_t id = lsw_ckpt_identity(p->models[m]);
            p->hash = lsw_fnv1a64(p->hash, &id, sizeof id);
        }
    uint64_t knobs[5] = {(uint64_t)cfg->out.format, (uint64_t)cfg->out.dtype, cfg->out.shard_size,
                         (uint64_t)cfg->out.shard_by_layer, (uint64_t)cfg->out.zstd_level * 2 + (uint64_t)cfg->out.shuffle};
    p->hash = lsw_fnv1a64(p->hash, knobs, sizeof knobs);
    if (cfg->out.format == LSW_FMT_HDF5) { /* chunk bytes depend on the encoder too */
        uint64_t rev = LSW_ZSTD_ENCODER_REV;
        p->hash = lsw_fnv1a64(p->hash, &rev, sizeof rev);
    }
    return layout(p);
}

int lsw_plan_build(const lsw_config *cfg, lsw_ckpt *const *models, lsw_plan **out)
{
    *out = NULL;
    lsw_plan *p = calloc(1, sizeof *p);
    int *used = calloc(cfg->nmodels, sizeof *used);
    int rc = 0;
    if (!p || !used) {
        free(used);
        free(p);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    p->cfg = cfg;
    p->models = models;
    lsw_plan_models_used(cfg, used);
    const lsw_ckpt *ref = models[cfg->first_model];
    if (!ref) {
        rc = lsw_err_set(LSW_E_INTERNAL, "reference model not opened");
    } else if (cfg->mk.on) {
        p->ready = 1;
        rc = lsw_mkplan_build(p);
    } else {
        p->layers = lsw_ckpt_layers(ref);
        if (!(rc = plan_rules(p)))
            rc = plan_rule_tensors(p, ref, used);
    }
    if (!rc)
        rc = plan_finish(p);
    free(used);
    if (rc) {
        lsw_plan_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int lsw_guard_output(const char *origin, const char *outdir, const char *const *names, const char *const *paths,
                     size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (lsw_input_in_folder(paths[i], outdir))
            return lsw_err_set(LSW_E_CONFIG,
                               "%s: the output folder %s holds model '%s' (an input, %s): no run writes into an "
                               "input's folder; choose another -o",
                               origin, outdir, names[i], paths[i]);
    return 0;
}

/* With HDF5 output, every tensor must be storable before the first byte is
 * written (the writer's own rules, lsw_h5_define). */
static int check_hdf5_names(const lsw_plan *p)
{
    for (size_t i = 0; i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        if (!lsw_h5_name_ok(t->name))
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': cannot be an HDF5 dataset name (empty, \".\" or "
                               "containing '/'); write this merge as safetensors",
                               lsw_ckpt_path(p->models[p->cfg->first_model]), t->name);
        if (t->ndim > LSW_H5_MAX_RANK)
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': %zu dimensions, HDF5 allows %d",
                               lsw_ckpt_path(p->models[p->cfg->first_model]), t->name, t->ndim, LSW_H5_MAX_RANK);
        if (!lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape))
            return lsw_err_set(LSW_E_INPUT, "%s: tensor '%s': a row of the tensor exceeds HDF5's 4 GiB chunk limit",
                               lsw_ckpt_path(p->models[p->cfg->first_model]), t->name);
    }
    return 0;
}

int lsw_plan_check_output(const lsw_plan *p)
{
    const lsw_config *cfg = p->cfg;
    /* every model listed, whether a rule reads it or not */
    int rc = lsw_guard_output(cfg->file, cfg->out.path, (const char *const *)cfg->model_names,
                              (const char *const *)cfg->model_paths, cfg->nmodels);
    /* the files the output copies from its reference model, checked now
     * rather than after the last tensor */
    if (!rc)
        rc = lsw_check_reference_files(lsw_ckpt_folder(p->models[cfg->first_model]), cfg->model_names[cfg->first_model]);
    if (!rc && cfg->out.format == LSW_FMT_HDF5)
        rc = check_hdf5_names(p);
    return rc;
}

/* Bytes of the side files the output copies from folder `src`. */
static uint64_t side_file_bytes(const char *src, size_t *nfiles)
{
    uint64_t sum = 0;
    for (const char *const *n = lsw_model_file_names; src && *n; n++) {
        char *f = lsw_path_join(src, *n);
        struct stat st;
        if (f && stat(f, &st) == 0 && S_ISREG(st.st_mode)) {
            sum += (uint64_t)st.st_size + 4096; /* config.json may grow by its dtype fields */
            (*nfiles)++;
        }
        free(f);
    }
    return sum;
}

/* model.h5 at worst (incompressible data: every chunk at its zstd bound,
 * plus HDF5's per-dataset and per-chunk metadata and the root attributes). */
static uint64_t hdf5_bytes(const lsw_plan *p)
{
    uint64_t sum = 65536 + (p->cfg->text ? strlen(p->cfg->text) : 0);
    for (size_t i = 0; i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t rows = lsw_h5_rows(t->ndim, t->shape), rpc = lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
        uint64_t cb = lsw_h5_chunk_bytes(t->out_dtype, t->ndim, t->shape);
        uint64_t nchunks = rpc && rows ? (rows + rpc - 1) / rpc : 1;
        sum += 8192 + 256 + strlen(t->name) + nchunks * (64 + (uint64_t)lsw_chunk_bound((size_t)cb));
    }
    return sum;
}

int lsw_plan_check_space(const lsw_plan *p, lsw_outdir *od)
{
    size_t nfiles = 0;
    uint64_t need = side_file_bytes(lsw_ckpt_folder(p->models[p->cfg->first_model]), &nfiles);
    const char *what;
    if (p->cfg->out.format == LSW_FMT_HDF5) {
        /* model.h5 at its worst: the compressed size is not known before
         * (the chunks stream to rank 0; there is no spill file) */
        need += hdf5_bytes(p);
        nfiles += 1;
        what = "model.h5 at most, as its compressed size is not known before";
    } else {
        const char **names = malloc((p->nshards ? p->nshards : 1) * sizeof *names);
        uint64_t *sizes = malloc((p->nshards ? p->nshards : 1) * sizeof *sizes);
        if (!names || !sizes) {
            free(names);
            free(sizes);
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        }
        for (size_t k = 0; k < p->nshards; k++) {
            names[k] = p->shards[k].name;
            sizes[k] = p->shards[k].size;
        }
        need += lsw_outdir_remaining(od, names, sizes, p->nshards);
        nfiles += p->nshards;
        free(names);
        free(sizes);
        if (p->nshards > 1)   /* the index: a line per tensor */
            for (size_t i = 0; i < p->n; i++)
                need += strlen(p->t[i].name) + 64;
        what = "the shards not finished yet, the index and the config and tokenizer files";
    }
    return lsw_outdir_check_space(od, need, nfiles, what);
}

int lsw_plan_set_mav(lsw_plan *p, const double *mav)
{
    for (size_t i = 0; i < p->n; i++) {
        lsw_plan_tensor *t = &p->t[i];
        const lsw_rule *r = &p->rules[t->rule];
        if (r->weighting != LSW_W_MAGNITUDE || r->action != LSW_ACT_AVERAGE)
            continue;
        double sum = 0;
        for (size_t j = 0; j < t->nsrc; j++) {
            double m = mav[t->models[j]];
            if (!(m > 0) || !isfinite(m))
                return lsw_err_set(LSW_E_INPUT, "%s: model '%s' has mean absolute delta %g against the base; magnitude weights need a non-zero, finite MAV",
                                   lsw_ckpt_path(p->models[t->models[j]]), p->cfg->model_names[t->models[j]], m);
            sum += 1.0 / m;
        }
        float *w = lsw_plan_w_of(p, t);
        for (size_t j = 0; j < t->nsrc; j++)
            w[j] = (float)((1.0 / mav[t->models[j]]) / sum);
    }
    p->ready = 1;
    return 0;
}

static const char *action_name(lsw_action a)
{
    return a == LSW_ACT_TAKE ? "take" : a == LSW_ACT_AVERAGE ? "average" : a == LSW_ACT_BASE ? "base" : "task_vector";
}

void lsw_plan_print(const lsw_plan *p, FILE *f)
{
    const lsw_config *c = p->cfg;
    if (c->yaml) {
        fprintf(f, "# the native JSON config equivalent to %s:\n", c->file);
        fputs(c->text, f);
        if (!*c->text || c->text[strlen(c->text) - 1] != '\n')
            fputc('\n', f);
    }
    uint64_t file_bytes = 0;
    for (size_t k = 0; k < p->nshards; k++)
        file_bytes += p->shards[k].size;
    fprintf(f, "# layerswap plan: %d layers, %zu tensors, %" PRIu64 " bytes of tensor data", p->layers, p->n,
            p->total_bytes);
    if (c->out.format == LSW_FMT_HDF5)
        fprintf(f, " (model.h5 is compressed: its size is known after writing)");
    else
        fprintf(f, " in %zu shard(s) of %" PRIu64 " file bytes (headers included)", p->nshards, file_bytes);
    fprintf(f, ", format %s, dtype %s%s\n", c->out.format == LSW_FMT_HDF5 ? "hdf5" : "safetensors",
            c->out.dtype == LSW_DT_INVALID ? "input" : lsw_dtype_torch_name(c->out.dtype),
            p->restacked ? ", layers restacked (config.json rewritten)" : "");
    for (size_t i = 0; i < p->nrules; i++) {
        const lsw_rule *r = &p->rules[i];
        fprintf(f, "# rule %zu (%s):", i, r->origin);
        if (r->match)
            fprintf(f, " match \"%s\"", r->match);
        if (r->sel == LSW_SEL_RANGE)
            fprintf(f, " layers [%" PRId64 ", %" PRId64 ")", r->lo, r->hi);
        else if (r->sel == LSW_SEL_NON_LAYER)
            fprintf(f, " non-layer tensors");
        else if (!r->match)
            fprintf(f, " any tensor");
        fprintf(f, " -> %s", action_name(r->action));
        for (size_t j = 0; j < r->nmodels; j++)
            fprintf(f, "%s%s", j ? "," : " ", c->model_names[r->models[j]]);
        if (r->action == LSW_ACT_TASKVEC && c->mk.on) {
            fprintf(f, " (base first): %s, normalize %s", c->mk.name, c->tv.normalize ? "true" : "false");
        } else if (r->action == LSW_ACT_TASKVEC) {
            static const char *const kinds[] = {"task_arithmetic", "ties", "dare_linear", "dare_ties"};
            fprintf(f, " (base first): %s, density", kinds[c->tv.kind]);
            for (size_t j = 0; j < c->tv.k; j++)
                fprintf(f, "%s%.9g", j ? "," : " ", c->tv.density[j]);
            fprintf(f, ", lambda %.9g, normalize %s, seed %llu", c->tv.lambda, c->tv.normalize ? "true" : "false",
                    (unsigned long long)c->tv.seed);
        }
        if (r->action == LSW_ACT_AVERAGE && !c->mk.on)
            fprintf(f, " weights %s", r->weighting == LSW_W_MAGNITUDE ? "magnitude"
                                      : r->weighting == LSW_W_UNIFORM ? "uniform"
                                      : r->normalize                  ? "explicit (normalised)"
                                                                      : "explicit");
        fprintf(f, "\n");
    }
    for (size_t k = 0; k < p->nshards; k++)
        fprintf(f, "# shard %s: %zu tensors, %" PRIu64 " file bytes (%" PRIu64 " of header)\n", p->shards[k].name,
                p->shards[k].count, p->shards[k].size, p->shards[k].data_start);
    for (size_t i = 0; i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        const char *rule = !c->mk.on ? action_name(p->rules[t->rule].action)
                         : t->op == LSW_OP_COPY ? "take" : t->op == LSW_OP_TV ? c->mk.name
                         : c->mk.kind == LSW_MK_LINEAR ? "average" : "scale";
        fprintf(f, "%s\t%s\t", t->name, rule);
        for (size_t j = 0; j < t->nsrc; j++) {
            fprintf(f, "%s%s", j ? "," : "", c->model_names[t->models[j]]);
            if (strcmp(t->src[j]->name, t->name) != 0)
                fprintf(f, ":%s", t->src[j]->name);
        }
        fprintf(f, "\t");
        for (size_t j = 0; j < t->nsrc; j++) {
            if (isnan(t->w[j]))
                fprintf(f, "%smagnitude", j ? "," : "");
            else
                fprintf(f, "%s%.9g", j ? "," : "", (double)t->w[j]);
        }
        lsw_mkplan_print_par(p, t, f);
        fprintf(f, "\n");
    }
}

void lsw_plan_free(lsw_plan *p)
{
    if (!p)
        return;
    lsw_rules_free(p->rules, p->nrules);
    free(p->models_arena);
    free(p->src_arena);
    free(p->w_arena);
    free(p->t);
    lsw_layout_free_shards(p->shards, p->nshards);
    free(p->items);
    free(p->mav_needed);
    free(p->par_arena);
    free(p->name_arena);
    free(p->layer_map);
    free(p);
}
