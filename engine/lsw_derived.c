#include "lsw_derived.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_config.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_kernels.h"
#include "lsw_mav.h"
#include "lsw_strbuf.h"

typedef enum dv_kind { DV_SOUP, DV_LAYERS, DV_ROWS_BELOW, DV_ROWS_KEEP } dv_kind;

struct lsw_derived_def {
    dv_kind kind;
    size_t n;
    int *models;          /* soup members, or {from} */
    double *weights;      /* soup: explicit weights (NULL: uniform) */
    int normalize;
    size_t nranges;
    int64_t *ranges;      /* revert_layers: lo, hi pairs */
    double param;         /* below: t; keep: f */
};

/* An opened derived model: the user pointer of its view. */
typedef struct dv_state {
    const lsw_derived_def *d;
    const char *name;
    const lsw_ckpt **in;  /* d->n inputs (leaves or views) */
    const lsw_ckpt *base; /* reversions */
    float *w;             /* soup weights */
    /* revert_rows, after lsw_derived_prepare */
    int prepared;
    uint64_t *row0;       /* per tensor (view order): its first row in keep[]; UINT64_MAX: not eligible */
    unsigned char *keep;  /* per row: 1 m's row, 0 the base's */
    double threshold, kept_fraction;
} dv_state;

static int derr(const char *file, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int derr(const char *file, const char *name, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lsw_err_set(LSW_E_CONFIG, "%s: models.%s: %s", file, name, msg);
}

static int is_float(lsw_dtype dt) { return dt == LSW_DT_BF16 || dt == LSW_DT_F16 || dt == LSW_DT_F32; }

/* ---- parsing ---------------------------------------------------------------- */

static int name_index(char *const *names, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], s))
            return (int)i;
    return -1;
}

static int parse_model(const char *file, const char *name, const lsw_json *v, const char *key, char *const *names,
                       size_t n, int *out)
{
    const char *s = lsw_json_str(v, NULL);
    if (!s || lsw_json_str_has_nul(v))
        return derr(file, name, "%s must be a model name", key);
    if ((*out = name_index(names, n, s)) < 0)
        return derr(file, name, "%s names \"%s\", which \"models\" does not define", key, s);
    return 0;
}

static int parse_soup(const char *file, const char *name, const lsw_json *obj, char *const *names, size_t n,
                      lsw_derived_def *d)
{
    const lsw_json *m = lsw_json_get(obj, "soup"), *w = lsw_json_get(obj, "weights"), *nz = lsw_json_get(obj, "normalize");
    size_t k = lsw_json_count(m);
    if (lsw_json_type_of(m) != LSW_JSON_ARRAY || k == 0)
        return derr(file, name, "soup must be a non-empty list of model names");
    d->kind = DV_SOUP;
    d->n = k;
    if (!(d->models = calloc(k, sizeof *d->models)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < k; i++) {
        char key[48];
        snprintf(key, sizeof key, "soup[%zu]", i);
        int rc = parse_model(file, name, lsw_json_at(m, i), key, names, n, &d->models[i]);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (d->models[j] == d->models[i])
                return derr(file, name, "soup lists \"%s\" twice", names[d->models[i]]);
    }
    d->normalize = 1;
    if (nz) {
        lsw_json_type t = lsw_json_type_of(nz);
        if (t != LSW_JSON_TRUE && t != LSW_JSON_FALSE)
            return derr(file, name, "normalize must be true or false");
        d->normalize = t == LSW_JSON_TRUE;
    }
    if (!w)
        return 0;
    if (lsw_json_type_of(w) != LSW_JSON_ARRAY || lsw_json_count(w) != k)
        return derr(file, name, "weights must be a list of %zu numbers, one per soup member", k);
    if (!(d->weights = calloc(k, sizeof *d->weights)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    double sum = 0;
    for (size_t i = 0; i < k; i++) {
        if (lsw_json_f64(lsw_json_at(w, i), &d->weights[i]) || !isfinite(d->weights[i]))
            return derr(file, name, "weights[%zu] must be a finite number", i);
        sum += d->weights[i];
    }
    if (d->normalize && (!(sum != 0) || !isfinite(sum)))
        return derr(file, name, "weights sum to %g; normalising needs a non-zero finite sum (or \"normalize\": false)", sum);
    return 0;
}

static int parse_revert(const char *file, const char *name, const lsw_json *obj, char *const *names, size_t n,
                        lsw_derived_def *d)
{
    const lsw_json *rl = lsw_json_get(obj, "revert_layers"), *rr = lsw_json_get(obj, "revert_rows");
    if ((rl != NULL) == (rr != NULL))
        return derr(file, name, "a model \"from\" another needs exactly one of revert_layers, revert_rows");
    d->n = 1;
    if (!(d->models = calloc(1, sizeof *d->models)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = parse_model(file, name, lsw_json_get(obj, "from"), "from", names, n, &d->models[0]);
    if (rc)
        return rc;
    if (rl) {
        size_t k = lsw_json_count(rl);
        if (lsw_json_type_of(rl) != LSW_JSON_ARRAY || k == 0)
            return derr(file, name, "revert_layers must be a non-empty list of [lo, hi] pairs");
        d->kind = DV_LAYERS;
        d->nranges = k;
        if (!(d->ranges = calloc(2 * k, sizeof *d->ranges)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (size_t i = 0; i < k; i++) {
            const lsw_json *p = lsw_json_at(rl, i);
            if (lsw_json_type_of(p) != LSW_JSON_ARRAY || lsw_json_count(p) != 2 ||
                lsw_json_i64(lsw_json_at(p, 0), &d->ranges[2 * i]) || lsw_json_i64(lsw_json_at(p, 1), &d->ranges[2 * i + 1]))
                return derr(file, name, "revert_layers[%zu] must be a pair of integers [lo, hi]", i);
            if (d->ranges[2 * i] < 0 || d->ranges[2 * i] >= d->ranges[2 * i + 1])
                return derr(file, name, "revert_layers[%zu] = [%" PRId64 ", %" PRId64 "] must have 0 <= lo < hi", i,
                            d->ranges[2 * i], d->ranges[2 * i + 1]);
        }
        return 0;
    }
    if (lsw_json_type_of(rr) != LSW_JSON_OBJECT || lsw_json_count(rr) != 1)
        return derr(file, name, "revert_rows must be {\"below\": t} or {\"keep\": f}");
    const char *k = lsw_json_key(rr, 0, NULL);
    int below = !strcmp(k, "below");
    if (!below && strcmp(k, "keep"))
        return derr(file, name, "revert_rows has unknown key \"%s\" (below or keep)", k);
    d->kind = below ? DV_ROWS_BELOW : DV_ROWS_KEEP;
    if (lsw_json_f64(lsw_json_at(rr, 0), &d->param) || !isfinite(d->param))
        return derr(file, name, "revert_rows.%s must be a number", k);
    if (below && d->param < 0)
        return derr(file, name, "revert_rows.below must be a threshold >= 0, not %g", d->param);
    if (!below && !(d->param >= 0 && d->param <= 1))
        return derr(file, name, "revert_rows.keep must be a fraction in [0, 1], not %g", d->param);
    return 0;
}

int lsw_derived_parse(const char *file, const char *name, const lsw_json *obj, char *const *names, size_t n,
                      lsw_derived_def **out)
{
    *out = NULL;
    static const char *const keys[] = {"soup", "weights", "normalize", "from", "revert_layers", "revert_rows", NULL};
    for (size_t i = 0; i < lsw_json_count(obj); i++) {
        const char *k = lsw_json_key(obj, i, NULL);
        const char *const *a = keys;
        while (*a && strcmp(*a, k))
            a++;
        if (!*a)
            return derr(file, name, "unknown key \"%s\" (a derived model has soup [weights, normalize], or from with "
                        "revert_layers or revert_rows)", k);
    }
    int soup = lsw_json_get(obj, "soup") != NULL, from = lsw_json_get(obj, "from") != NULL;
    if (soup == from)
        return derr(file, name, "a derived model needs exactly one of \"soup\" and \"from\"");
    if (soup && (lsw_json_get(obj, "revert_layers") || lsw_json_get(obj, "revert_rows")))
        return derr(file, name, "a soup takes no revert_layers or revert_rows (derive another model from it)");
    if (from && (lsw_json_get(obj, "weights") || lsw_json_get(obj, "normalize")))
        return derr(file, name, "weights and normalize belong to a soup");
    lsw_derived_def *d = calloc(1, sizeof *d);
    if (!d)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = soup ? parse_soup(file, name, obj, names, n, d) : parse_revert(file, name, obj, names, n, d);
    if (rc) {
        lsw_derived_def_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

void lsw_derived_def_free(lsw_derived_def *d)
{
    if (!d)
        return;
    free(d->models);
    free(d->weights);
    free(d->ranges);
    free(d);
}

/* ---- config-level checks ---------------------------------------------------- */

/* Depth-first: 0 unseen, 1 on the path, 2 done. */
static int visit(const lsw_config *cfg, size_t i, unsigned char *mark)
{
    if (mark[i] == 2 || !cfg->derived[i])
        return 0;
    if (mark[i] == 1)
        return lsw_err_set(LSW_E_CONFIG, "%s: models.%s: derived models form a cycle through \"%s\"", cfg->file,
                           cfg->model_names[i], cfg->model_names[i]);
    mark[i] = 1;
    const lsw_derived_def *d = cfg->derived[i];
    for (size_t j = 0; j < d->n; j++) {
        int rc = visit(cfg, (size_t)d->models[j], mark);
        if (rc)
            return rc;
    }
    mark[i] = 2;
    return 0;
}

int lsw_derived_check(const lsw_config *cfg)
{
    if (!cfg->derived)
        return 0;
    unsigned char *mark = calloc(cfg->nmodels, 1);
    if (!mark)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    for (size_t i = 0; i < cfg->nmodels && !rc; i++) {
        const lsw_derived_def *d = cfg->derived[i];
        if (d && d->kind != DV_SOUP && cfg->base < 0)
            rc = lsw_err_set(LSW_E_CONFIG, "%s: models.%s: reverting to the base needs \"base\" to name the base model",
                             cfg->file, cfg->model_names[i]);
        if (d && d->kind != DV_SOUP && (int)i == cfg->base)
            rc = lsw_err_set(LSW_E_CONFIG, "%s: models.%s: the base cannot be a reversion to itself", cfg->file,
                             cfg->model_names[i]);
        if (!rc)
            rc = visit(cfg, i, mark);
    }
    free(mark);
    return rc;
}

static void mark(const lsw_config *cfg, size_t i, int *used)
{
    const lsw_derived_def *d = cfg->derived ? cfg->derived[i] : NULL;
    if (!d)
        return;
    for (size_t j = 0; j < d->n; j++)
        if (!used[d->models[j]]) {
            used[d->models[j]] = 1;
            mark(cfg, (size_t)d->models[j], used);
        }
    if (d->kind != DV_SOUP && cfg->base >= 0 && !used[cfg->base]) {
        used[cfg->base] = 1;
        mark(cfg, (size_t)cfg->base, used);
    }
}

void lsw_derived_mark_used(const lsw_config *cfg, int *used)
{
    for (size_t i = 0; cfg->derived && i < cfg->nmodels; i++)
        if (used[i])
            mark(cfg, i, used);
}

char *lsw_derived_describe(const lsw_config *cfg, size_t i)
{
    const lsw_derived_def *d = cfg->derived[i];
    lsw_strbuf b = {0};
    if (d->kind == DV_SOUP) {
        lsw_sb_str(&b, "soup of");
        for (size_t j = 0; j < d->n; j++) {
            lsw_sb_printf(&b, "%s %s", j ? "," : "", cfg->model_names[d->models[j]]);
            char v[40];
            lsw_jw_format_f64(d->weights ? d->weights[j] : 0, v, sizeof v);
            if (d->weights)
                lsw_sb_printf(&b, " (%s)", v);
        }
        if (!d->normalize)
            lsw_sb_str(&b, ", not normalised");
    } else if (d->kind == DV_LAYERS) {
        lsw_sb_printf(&b, "%s with layers", cfg->model_names[d->models[0]]);
        for (size_t j = 0; j < d->nranges; j++)
            lsw_sb_printf(&b, "%s [%" PRId64 ", %" PRId64 ")", j ? "," : "", d->ranges[2 * j], d->ranges[2 * j + 1]);
        lsw_sb_str(&b, " reverted to the base");
    } else {
        char v[40];
        lsw_jw_format_f64(d->param, v, sizeof v);
        lsw_sb_printf(&b, "%s with rows reverted to the base: %s %s", cfg->model_names[d->models[0]],
                      d->kind == DV_ROWS_BELOW ? "MAV below" : "keep", v);
    }
    return lsw_sb_failed(&b) ? (lsw_sb_free(&b), NULL) : b.p;
}

/* ---- reading ---------------------------------------------------------------- */

size_t lsw_derived_max_inputs(const lsw_ckpt *view)
{
    const dv_state *st = lsw_ckpt_view_user(view);
    return st->d->kind == DV_SOUP ? st->d->n : 2;
}

static int in_ranges(const lsw_derived_def *d, int layer)
{
    for (size_t j = 0; layer >= 0 && j < d->nranges; j++)
        if (layer >= d->ranges[2 * j] && layer < d->ranges[2 * j + 1])
            return 1;
    return 0;
}

size_t lsw_derived_inputs(const lsw_ckpt *view, const lsw_tensor_desc *t, const lsw_ckpt **ck,
                          const lsw_tensor_desc **desc)
{
    const dv_state *st = lsw_ckpt_view_user(view);
    const lsw_derived_def *d = st->d;
    if (d->kind == DV_SOUP) {
        size_t k = is_float(t->dtype) ? d->n : 1;
        for (size_t j = 0; j < k; j++) {
            ck[j] = st->in[j];
            desc[j] = lsw_ckpt_find(st->in[j], t->name);
        }
        return k;
    }
    const lsw_ckpt *from = st->in[0];
    if (d->kind == DV_LAYERS) {
        ck[0] = in_ranges(d, t->layer) ? st->base : from;
        desc[0] = lsw_ckpt_find(ck[0], t->name);
        return 1;
    }
    ck[0] = from;
    desc[0] = lsw_ckpt_find(from, t->name);
    if (!lsw_mav_eligible(t))
        return 1;
    ck[1] = st->base;
    desc[1] = lsw_ckpt_find(st->base, t->name);
    return 2;
}

int lsw_derived_alias(const lsw_ckpt *view, const lsw_tensor_desc *t)
{
    const dv_state *st = lsw_ckpt_view_user(view);
    switch (st->d->kind) {
    case DV_SOUP: return is_float(t->dtype) ? -1 : 0;
    case DV_LAYERS: return 0;
    default: return lsw_mav_eligible(t) ? -1 : 0;
    }
}

/* Revert rows: elements [e0, e0 + n) from in[0] (m) or in[1] (the base), row by row. */
static void rows_compute(const dv_state *st, const lsw_ckpt *view, const lsw_tensor_desc *t, uint64_t e0, size_t n,
                         const void *const *in, void *out)
{
    uint64_t rows, len;
    lsw_mav_rows(t, &rows, &len);
    size_t es = lsw_dtype_size(t->dtype);
    const unsigned char *keep = st->keep + st->row0[lsw_ckpt_index_of(view, t)];
    for (uint64_t e = e0; e < e0 + n;) {
        uint64_t r = e / len, end = (r + 1) * len < e0 + n ? (r + 1) * len : e0 + n;
        const char *src = in[keep[r] ? 0 : 1];
        memcpy((char *)out + (e - e0) * es, src + (e - e0) * es, (size_t)(end - e) * es);
        e = end;
    }
}

void lsw_derived_compute(const lsw_ckpt *view, const lsw_tensor_desc *t, uint64_t e0, size_t n,
                         const void *const *in, void *out)
{
    const dv_state *st = lsw_ckpt_view_user(view);
    int a = lsw_derived_alias(view, t);
    if (a >= 0) {
        memcpy(out, in[a], n * lsw_dtype_size(t->dtype));
    } else if (st->d->kind == DV_SOUP) {
        lsw_dtype dts[st->d->n > 0 ? st->d->n : 1];
        const lsw_ckpt *ck[st->d->n];
        const lsw_tensor_desc *ds[st->d->n];
        lsw_derived_inputs(view, t, ck, ds);
        for (size_t j = 0; j < st->d->n; j++)
            dts[j] = ds[j]->dtype;
        lsw_wsum(t->dtype, out, n, st->d->n, dts, in, st->w);
    } else {
        rows_compute(st, view, t, e0, n, in, out);
    }
}

/* The view's read: its inputs' elements, then lsw_derived_compute. */
static int view_read(void *user, const lsw_ckpt *view, const lsw_tensor_desc *t, uint64_t off, void *buf, size_t n)
{
    dv_state *st = user;
    if (st->d->kind >= DV_ROWS_BELOW && !st->prepared && lsw_mav_eligible(t))
        return lsw_err_set(LSW_E_INTERNAL, "derived model '%s' read before its row pre-pass", st->name);
    size_t es = lsw_dtype_size(t->dtype), k = lsw_derived_max_inputs(view);
    uint64_t e0 = off / es, e1 = (off + n + es - 1) / es;
    size_t cnt = (size_t)(e1 - e0);
    const lsw_ckpt *ck[k];
    const lsw_tensor_desc *ds[k];
    size_t m = lsw_derived_inputs(view, t, ck, ds);
    int a = lsw_derived_alias(view, t);
    if (a >= 0)
        return lsw_ckpt_read(ck[a], ds[a], off, buf, n);
    void *ins[k];
    int rc = 0;
    char *tmp = (off % es || n % es) ? malloc(cnt * es) : NULL;
    for (size_t j = 0; j < m; j++)
        ins[j] = NULL;
    for (size_t j = 0; j < m && !rc; j++) {
        size_t ej = lsw_dtype_size(ds[j]->dtype);
        if (!(ins[j] = malloc(cnt * ej)))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        else
            rc = lsw_ckpt_read(ck[j], ds[j], e0 * ej, ins[j], cnt * ej);
    }
    if (!rc && (off % es || n % es) && !tmp)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc) {
        lsw_derived_compute(view, t, e0, cnt, (const void *const *)ins, tmp ? tmp : buf);
        if (tmp)
            memcpy(buf, tmp + (off - e0 * es), n);
    }
    for (size_t j = 0; j < m; j++)
        free(ins[j]);
    free(tmp);
    return rc;
}

/* ---- opening ---------------------------------------------------------------- */

static void state_free(dv_state *st)
{
    if (!st)
        return;
    free(st->in);
    free(st->w);
    free(st->row0);
    free(st->keep);
    free(st);
}

static int mismatch(const lsw_config *cfg, size_t i, const char *fmt, const char *a, const char *b)
{
    char msg[600];
    snprintf(msg, sizeof msg, fmt, a, b);
    return lsw_err_set(LSW_E_MISMATCH, "%s: models.%s: %s", cfg->file, cfg->model_names[i], msg);
}

/* A soup's members hold the first member's tensors with the same shapes. */
static int check_soup(const lsw_config *cfg, size_t i, const dv_state *st)
{
    const lsw_ckpt *ref = st->in[0];
    for (size_t j = 1; j < st->d->n; j++) {
        const lsw_ckpt *m = st->in[j];
        const char *mn = cfg->model_names[st->d->models[j]];
        if (lsw_ckpt_count(m) != lsw_ckpt_count(ref))
            return mismatch(cfg, i, "soup member '%s' has another tensor list than '%s'", mn,
                            cfg->model_names[st->d->models[0]]);
        for (size_t q = 0; q < lsw_ckpt_count(ref); q++) {
            const lsw_tensor_desc *a = lsw_ckpt_at(ref, q), *b = lsw_ckpt_find(m, a->name);
            if (!b)
                return mismatch(cfg, i, "soup member '%s' lacks tensor '%s'", mn, a->name);
            int same = a->ndim == b->ndim && !memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape) &&
                       (is_float(a->dtype) ? is_float(b->dtype) : 1);
            if (!same)
                return mismatch(cfg, i, "soup member '%s': tensor '%s' differs in shape or is not a float tensor", mn,
                                a->name);
        }
    }
    return 0;
}

/* The base holds every tensor a reversion takes from it, alike. */
static int check_revert(const lsw_config *cfg, size_t i, const dv_state *st)
{
    const lsw_ckpt *from = st->in[0];
    int L = lsw_ckpt_layers(from);
    for (size_t j = 0; st->d->kind == DV_LAYERS && j < st->d->nranges; j++)
        if (st->d->ranges[2 * j + 1] > L)
            return lsw_err_set(LSW_E_CONFIG, "%s: models.%s: revert_layers[%zu] = [%" PRId64 ", %" PRId64
                               ") is outside the model's layers [0, %d)", cfg->file, cfg->model_names[i], j,
                               st->d->ranges[2 * j], st->d->ranges[2 * j + 1], L);
    for (size_t q = 0; q < lsw_ckpt_count(from); q++) {
        const lsw_tensor_desc *a = lsw_ckpt_at(from, q);
        int reverted = st->d->kind == DV_LAYERS ? in_ranges(st->d, a->layer) : lsw_mav_eligible(a);
        if (!reverted)
            continue;
        const lsw_tensor_desc *b = lsw_ckpt_find(st->base, a->name);
        if (!b || b->dtype != a->dtype || b->ndim != a->ndim || memcmp(a->shape, b->shape, a->ndim * sizeof *a->shape))
            return mismatch(cfg, i, "tensor '%s' is reverted to the base, which %s", a->name,
                            b ? "has another shape or dtype" : "does not hold it");
    }
    return 0;
}

static uint64_t identity(const lsw_derived_def *d, const dv_state *st)
{
    uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, "layerswap derived", 17);
    uint64_t head[3] = {(uint64_t)d->kind, d->n, (uint64_t)d->normalize};
    h = lsw_fnv1a64(h, head, sizeof head);
    for (size_t j = 0; j < d->n; j++) {
        uint64_t id = lsw_ckpt_identity(st->in[j]);
        h = lsw_fnv1a64(h, &id, sizeof id);
        if (st->w)
            h = lsw_fnv1a64(h, &st->w[j], sizeof st->w[j]);
    }
    if (st->base) {
        uint64_t id = lsw_ckpt_identity(st->base);
        h = lsw_fnv1a64(h, &id, sizeof id);
    }
    if (d->nranges)
        h = lsw_fnv1a64(h, d->ranges, 2 * d->nranges * sizeof *d->ranges);
    return lsw_fnv1a64(h, &d->param, sizeof d->param);
}

static int open_one(const lsw_config *cfg, size_t i, lsw_ckpt **models)
{
    const lsw_derived_def *d = cfg->derived[i];
    dv_state *st = calloc(1, sizeof *st);
    if (!st || !(st->in = calloc(d->n, sizeof *st->in))) {
        state_free(st);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    st->d = d;
    st->name = cfg->model_names[i];
    for (size_t j = 0; j < d->n; j++)
        st->in[j] = models[d->models[j]];
    st->base = d->kind != DV_SOUP ? models[cfg->base] : NULL;
    int rc = 0;
    if (d->kind == DV_SOUP) {
        if (!(st->w = calloc(d->n, sizeof *st->w)))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        double sum = 0;
        for (size_t j = 0; !rc && d->weights && j < d->n; j++)
            sum += d->weights[j];
        for (size_t j = 0; !rc && j < d->n; j++)
            st->w[j] = !d->weights ? (float)(1.0 / (double)d->n)
                       : d->normalize ? (float)(d->weights[j] / sum) : (float)d->weights[j];
        if (!rc)
            rc = check_soup(cfg, i, st);
    } else {
        rc = check_revert(cfg, i, st);
    }
    if (!rc)
        rc = lsw_ckpt_open_view(st->in[0], cfg->model_names[i], identity(d, st), view_read, st, &models[i]);
    if (rc) {
        state_free(st);
        return rc;
    }
    lsw_ckpt_set_view_free(models[i], (void (*)(void *))state_free);
    return 0;
}

int lsw_derived_open(const lsw_config *cfg, const int *used, lsw_ckpt **models)
{
    if (!cfg->derived)
        return 0;
    /* dependency order: open a model once every model it reads is open */
    for (int progress = 1; progress;) {
        progress = 0;
        for (size_t i = 0; i < cfg->nmodels; i++) {
            const lsw_derived_def *d = cfg->derived[i];
            if (!d || !used[i] || models[i])
                continue;
            int ready = d->kind == DV_SOUP || models[cfg->base];
            for (size_t j = 0; j < d->n; j++)
                ready &= models[d->models[j]] != NULL;
            if (!ready)
                continue;
            int rc = open_one(cfg, i, models);
            if (rc)
                return rc;
            progress = 1;
        }
    }
    return 0;
}

/* ---- the row pre-pass ------------------------------------------------------- */

/* Longest chain of derived models below model i (0 for a checkpoint). */
static int depth(const lsw_config *cfg, size_t i)
{
    const lsw_derived_def *d = cfg->derived ? cfg->derived[i] : NULL;
    int best = 0;
    for (size_t j = 0; d && j < d->n; j++) {
        int x = depth(cfg, (size_t)d->models[j]) + 1;
        best = x > best ? x : best;
    }
    return best;
}

/* Sum rank-local row MAVs into everyone's copy (each row has one non-zero
 * contributor, so the sum is exact). */
static void allreduce_rows(double *mav, uint64_t R, const lsw_comm *c)
{
    for (uint64_t off = 0; c->size > 1 && off < R;) {
        int n = R - off > (1u << 28) ? (1 << 28) : (int)(R - off);
        MPI_Allreduce(MPI_IN_PLACE, mav + off, n, MPI_DOUBLE, MPI_SUM, c->comm);
        off += (uint64_t)n;
    }
}

typedef struct row_order { const double *mav; } row_order;

/* MAV descending, NaN first; ties by position (tensor name order, then row). */
static int cmp_rows(const void *a, const void *b, void *arg)
{
    const double *mav = ((const row_order *)arg)->mav;
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    double u = mav[x], v = mav[y];
    int un = isnan(u), vn = isnan(v);
    if (un != vn)
        return un ? -1 : 1;
    if (!un && u != v)
        return u > v ? -1 : 1;
    return x < y ? -1 : x > y;
}

/* keep f: the longest prefix of rows by MAV whose elements fit floor(f·E). */
static int keep_prefix(dv_state *st, const lsw_ckpt *view, const double *mav, uint64_t R, uint64_t E, uint64_t *kept)
{
    if (R > UINT32_MAX)
        return lsw_err_set(LSW_E_INPUT, "derived model '%s': more than 2^32 rows to rank", st->name);
    uint32_t *order = malloc((R ? R : 1) * sizeof *order), *len_of = malloc((R ? R : 1) * sizeof *len_of);
    uint64_t *lens = malloc((lsw_ckpt_count(view) + 1) * sizeof *lens);
    if (!order || !len_of || !lens) {
        free(order);
        free(len_of);
        free(lens);
        return lsw_err_set(LSW_E_NOMEM, "out of memory for the row order of '%s' (%llu rows)", st->name,
                           (unsigned long long)R);
    }
    for (size_t q = 0; q < lsw_ckpt_count(view); q++) {
        uint64_t rows, len;
        if (st->row0[q] == UINT64_MAX)
            continue;
        lsw_mav_rows(lsw_ckpt_at(view, q), &rows, &len);
        lens[q] = len;
        for (uint64_t r = 0; r < rows; r++)
            len_of[st->row0[q] + r] = (uint32_t)q;
    }
    for (uint64_t r = 0; r < R; r++)
        order[r] = (uint32_t)r;
    row_order ro = {mav};
    qsort_r(order, (size_t)R, sizeof *order, cmp_rows, &ro);
    uint64_t budget = (uint64_t)floor(st->d->param * (double)E), acc = 0;
    st->threshold = NAN;
    for (uint64_t k = 0; k < R; k++) {
        uint64_t l = lens[len_of[order[k]]];
        if (acc + l > budget)
            break;
        acc += l;
        st->keep[order[k]] = 1;
        st->threshold = mav[order[k]];
    }
    *kept = acc;
    free(order);
    free(len_of);
    free(lens);
    return 0;
}

static int rows_prepass(dv_state *st, const lsw_ckpt *view, uint64_t mem, const lsw_comm *c)
{
    const lsw_ckpt *from = st->in[0];
    size_t nt = lsw_ckpt_count(view), ek = 0;
    uint64_t R = 0, E = 0;
    if (!(st->row0 = malloc((nt ? nt : 1) * sizeof *st->row0)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t q = 0; q < nt; q++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(view, q);
        uint64_t rows, len;
        st->row0[q] = UINT64_MAX;
        if (!lsw_mav_eligible(t))
            continue;
        lsw_mav_rows(t, &rows, &len);
        st->row0[q] = R;
        R += rows;
        E += t->numel;
    }
    double *mav = calloc(R ? R : 1, sizeof *mav);
    size_t bytes = lsw_mav_buffer_bytes(mem);
    void *buf = malloc(bytes);
    st->keep = calloc(R ? R : 1, 1);
    int rc = (!mav || !buf || !st->keep) ? lsw_err_set(LSW_E_NOMEM, "out of memory for %llu row MAVs of '%s'",
                                                       (unsigned long long)R, st->name) : 0;
    for (size_t q = 0; q < nt && !rc; q++) {
        if (st->row0[q] == UINT64_MAX)
            continue;
        const lsw_tensor_desc *t = lsw_ckpt_at(from, q);
        uint64_t rows, len;
        lsw_mav_rows(t, &rows, &len);
        if ((int)(ek++ % (size_t)c->size) == c->rank)
            rc = lsw_mav_tensor_rows(st->base, from, t, 0, rows, buf, bytes, mav + st->row0[q]);
    }
    free(buf);
    rc = lsw_agree(c, rc);
    uint64_t kept = 0;
    if (!rc) {
        allreduce_rows(mav, R, c);
        if (st->d->kind == DV_ROWS_BELOW) {
            st->threshold = st->d->param;
            for (size_t q = 0; q < nt; q++) {
                uint64_t rows, len;
                if (st->row0[q] == UINT64_MAX)
                    continue;
                lsw_mav_rows(lsw_ckpt_at(view, q), &rows, &len);
                for (uint64_t r = 0; r < rows; r++)
                    if ((st->keep[st->row0[q] + r] = !(mav[st->row0[q] + r] < st->d->param)))
                        kept += len;
            }
        } else {
            rc = keep_prefix(st, view, mav, R, E, &kept);
        }
    }
    free(mav);
    st->kept_fraction = E ? (double)kept / (double)E : 0.0;
    st->prepared = !rc;
    return lsw_agree(c, rc);
}

int lsw_derived_prepare(const lsw_config *cfg, lsw_ckpt *const *models, uint64_t mem, int quiet, const lsw_comm *c)
{
    int maxd = 0, rc = 0;
    for (size_t i = 0; cfg->derived && i < cfg->nmodels; i++)
        if (models[i] && lsw_ckpt_view_user(models[i])) {
            int x = depth(cfg, i);
            maxd = x > maxd ? x : maxd;
        }
    for (int level = 1; level <= maxd && !rc; level++)
        for (size_t i = 0; i < cfg->nmodels && !rc; i++) {
            dv_state *st = models[i] ? lsw_ckpt_view_user(models[i]) : NULL;
            if (!st || st->prepared || st->d->kind < DV_ROWS_BELOW || depth(cfg, i) != level)
                continue;
            rc = rows_prepass(st, models[i], mem, c);
            if (!rc && c->rank == 0 && !quiet)
                fprintf(stderr, "layerswap: derived model '%s': %.6f%% of the parameters keep the update of '%s', "
                        "the rest is reverted to the base (threshold: row MAV %.9g)\n", st->name, 100.0 * st->kept_fraction,
                        cfg->model_names[st->d->models[0]], st->threshold);
        }
    return rc;
}

void lsw_derived_report(const lsw_config *cfg, lsw_ckpt *const *models, lsw_jw *w, lsw_jw_node *parent)
{
    lsw_jw_node *o = NULL;
    for (size_t i = 0; cfg->derived && i < cfg->nmodels; i++) {
        dv_state *st = models[i] ? lsw_ckpt_view_user(models[i]) : NULL;
        if (!st || !st->prepared)
            continue;
        if (!o)
            o = lsw_jw_obj(w, parent, "derived");
        lsw_jw_node *e = lsw_jw_obj(w, o, st->name);
        lsw_jw_f64(w, e, "threshold", st->threshold);
        lsw_jw_f64(w, e, "kept_fraction", st->kept_fraction);
    }
}
