#include "lsw_mkcfg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"

enum { W = 1 << LSW_SP_WEIGHT, D = 1 << LSW_SP_DENSITY, G = 1 << LSW_SP_GAMMA, E = 1 << LSW_SP_EPSILON,
       S = 1 << LSW_SP_SCALE, LAM = 1 << LSW_GP_LAMBDA, T = 1 << LSW_GP_T };

typedef struct mdef {
    const char *name;
    lsw_mk_kind kind;
    lsw_tv_kind tv;
    unsigned src, glb;      /* parameter masks */
    int norm;               /* -1: no "normalize"; else its default */
    int rescale;            /* -1: no "rescale"; else its default (random methods: 1) */
    int min_experts, max_experts;
} mdef;

static const mdef methods[] = {
    {"linear", LSW_MK_LINEAR, 0, W, 0, 1, -1, 1, LSW_MAX_SOURCES},
    {"passthrough", LSW_MK_PASSTHROUGH, 0, S, 0, -1, -1, 1, 1},
    {"task_arithmetic", LSW_MK_TV, LSW_TV_TASK_ARITHMETIC, W | D, LAM, 0, 0, 1, LSW_MAX_SOURCES - 1},
    {"ties", LSW_MK_TV, LSW_TV_TIES, W | D, LAM, 1, 0, 1, LSW_MAX_SOURCES - 1},
    {"dare_linear", LSW_MK_TV, LSW_TV_DARE_LINEAR, W | D, LAM, 0, 1, 1, LSW_MAX_SOURCES - 1},
    {"dare_ties", LSW_MK_TV, LSW_TV_DARE_TIES, W | D, LAM, 0, 1, 1, LSW_MAX_SOURCES - 1},
    {"breadcrumbs", LSW_MK_TV, LSW_TV_BREADCRUMBS, W | D | G, LAM, 0, 0, 1, LSW_MAX_SOURCES - 1},
    {"breadcrumbs_ties", LSW_MK_TV, LSW_TV_BREADCRUMBS_TIES, W | D | G, LAM, 0, 0, 1, LSW_MAX_SOURCES - 1},
    {"della", LSW_MK_TV, LSW_TV_DELLA, W | D | E, LAM, 1, 1, 1, LSW_MAX_SOURCES - 1},
    {"della_linear", LSW_MK_TV, LSW_TV_DELLA_LINEAR, W | D | E, LAM, 0, 1, 1, LSW_MAX_SOURCES - 1},
    {"slerp", LSW_MK_TV, LSW_TV_SLERP, 0, T, -1, -1, 1, 1},
    {"model_stock", LSW_MK_TV, LSW_TV_MODEL_STOCK, 0, 0, -1, -1, 2, LSW_MAX_SOURCES - 1},
};
#define NMETHODS (sizeof methods / sizeof methods[0])

static const char *const sp_names[LSW_SP_N] = {"weight", "density", "gamma", "epsilon", "scale"};
static const char *const gp_names[LSW_GP_N] = {"lambda", "t"};

static const mdef *find_method(const char *name)
{
    for (size_t i = 0; i < NMETHODS; i++)
        if (strcmp(methods[i].name, name) == 0)
            return &methods[i];
    return NULL;
}

int lsw_mkcfg_is_method(const char *name) { return find_method(name) != NULL; }

int lsw_mkcfg_is_form(const lsw_json *sec)
{
    return lsw_json_type_of(sec) == LSW_JSON_OBJECT && (lsw_json_get(sec, "sources") || lsw_json_get(sec, "slices"));
}

double lsw_mkcfg_default(lsw_tv_kind kind, int sp)
{
    (void)kind;
    switch (sp) {
    case LSW_SP_DENSITY: return 1.0;
    case LSW_SP_GAMMA: return 0.01;
    case LSW_SP_EPSILON: return 0.15;
    default: return NAN; /* weight, scale: none */
    }
}

typedef struct ctx { const char *file; lsw_config *c; const mdef *m; } ctx;

static int err(const ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int err(const ctx *x, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lsw_err_set(LSW_E_CONFIG, "%s: %s", x->file, msg);
}

static int nomem(void) { return lsw_err_set(LSW_E_NOMEM, "out of memory"); }

/* ---- settings ------------------------------------------------------------ */

static int parse_values(const ctx *x, const lsw_json *v, const char *where, lsw_cond *c)
{
    if (lsw_json_type_of(v) == LSW_JSON_NUMBER) {
        c->nv = 1;
    } else if (lsw_json_type_of(v) == LSW_JSON_ARRAY && lsw_json_count(v) > 0 && lsw_json_count(v) <= 4096) {
        c->nv = lsw_json_count(v);
        c->gradient = 1;
    } else {
        return err(x, "%s must be a number or a non-empty list of at most 4096 numbers", where);
    }
    if (!(c->v = calloc(c->nv, sizeof *c->v)))
        return nomem();
    for (size_t i = 0; i < c->nv; i++) {
        const lsw_json *e = c->gradient ? lsw_json_at(v, i) : v;
        if (lsw_json_f64(e, &c->v[i]) || !isfinite(c->v[i]))
            return err(x, "%s%s must be finite numbers", where, c->gradient ? " values" : "");
    }
    return 0;
}

/* number | {"gradient": [...]} | [{"contains": s, "value": n | "gradient": [...]}, ...] */
static int parse_setting(const ctx *x, const lsw_json *v, const char *where, lsw_setting *s)
{
    char w[300];
    if (lsw_json_type_of(v) == LSW_JSON_NUMBER || lsw_json_type_of(v) == LSW_JSON_OBJECT) {
        if (!(s->c = calloc(1, sizeof *s->c)))
            return nomem();
        s->n = 1;
        if (lsw_json_type_of(v) == LSW_JSON_NUMBER)
            return parse_values(x, v, where, &s->c[0]);
        const lsw_json *g = lsw_json_get(v, "gradient");
        if (lsw_json_count(v) != 1 || lsw_json_type_of(g) != LSW_JSON_ARRAY)
            return err(x, "%s: an object value must be {\"gradient\": [numbers]}", where);
        snprintf(w, sizeof w, "%s.gradient", where);
        return parse_values(x, g, w, &s->c[0]);
    }
    size_t n = lsw_json_count(v);
    if (lsw_json_type_of(v) != LSW_JSON_ARRAY || n == 0 || n > 256)
        return err(x, "%s must be a number, {\"gradient\": [...]} or a list of 1 to 256 conditions "
                   "{\"contains\": \"...\", \"value\": ...}", where);
    if (!(s->c = calloc(n, sizeof *s->c)))
        return nomem();
    s->n = n;
    for (size_t i = 0; i < n; i++) {
        const lsw_json *o = lsw_json_at(v, i), *cs = lsw_json_get(o, "contains");
        const lsw_json *val = lsw_json_get(o, "value"), *gr = lsw_json_get(o, "gradient");
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        if (lsw_json_type_of(o) != LSW_JSON_OBJECT || lsw_json_count(o) != (size_t)(cs != NULL) + 1 || !(!val ^ !gr))
            return err(x, "%s must be {\"contains\": \"substring\" (optional), \"value\": number} or with "
                       "\"gradient\": [numbers] instead of \"value\"", w);
        if (cs) {
            if (lsw_json_type_of(cs) != LSW_JSON_STRING || lsw_json_str_has_nul(cs) || !*lsw_json_str(cs, NULL))
                return err(x, "%s.contains must be a non-empty string", w);
            if (!(s->c[i].contains = strdup(lsw_json_str(cs, NULL))))
                return nomem();
        }
        if (gr && lsw_json_type_of(gr) != LSW_JSON_ARRAY)
            return err(x, "%s.gradient must be a list of numbers", w);
        if (val && lsw_json_type_of(val) != LSW_JSON_NUMBER)
            return err(x, "%s.value must be a number (a gradient goes in \"gradient\")", w);
        strncat(w, gr ? ".gradient" : ".value", sizeof w - strlen(w) - 1);
        int rc = parse_values(x, gr ? gr : val, w, &s->c[i]);
        if (rc)
            return rc;
    }
    return 0;
}

static void setting_free(lsw_setting *s)
{
    for (size_t i = 0; s && i < s->n; i++) {
        free(s->c[i].contains);
        free(s->c[i].v);
    }
    if (s) {
        free(s->c);
        s->c = NULL;
        s->n = 0;
    }
}

int lsw_setting_eval(const lsw_setting *s, const char *name, double pos, double *v)
{
    for (size_t i = 0; i < s->n; i++) {
        const lsw_cond *c = &s->c[i];
        if (c->contains && !strstr(name, c->contains))
            continue;
        if (c->nv == 1) {
            *v = c->v[0];
        } else {
            double xs = pos * (double)(c->nv - 1);
            size_t i0 = (size_t)xs, i1 = i0 + 1 < c->nv ? i0 + 1 : c->nv - 1;
            if (i0 >= c->nv) /* pos above 1 cannot happen; stay in range */
                i0 = i1 = c->nv - 1;
            double f = xs - (double)i0;
            double a = (1.0 - f) * c->v[i0], b = f * c->v[i1];
            *v = a + b;
        }
        return 1;
    }
    return 0;
}

/* ---- sections ------------------------------------------------------------ */

static int key_allowed(const char *k, const char *const *fixed, unsigned mask, const char *const *names, int nn)
{
    for (const char *const *f = fixed; *f; f++)
        if (!strcmp(*f, k))
            return 1;
    for (int i = 0; i < nn; i++)
        if ((mask >> i & 1) && !strcmp(names[i], k))
            return 1;
    return 0;
}

static int check_keys(const ctx *x, const lsw_json *o, const char *where, const char *const *fixed, unsigned mask,
                      const char *const *names, int nn)
{
    for (size_t i = 0; i < lsw_json_count(o); i++) {
        const char *k = lsw_json_key(o, i, NULL);
        if (lsw_json_key_has_nul(o, i) || !key_allowed(k, fixed, mask, names, nn))
            return err(x, "%s: unknown key \"%s\" for method %s", where, k, x->m->name);
    }
    return 0;
}

static int parse_glb(const ctx *x, const lsw_json *o, const char *where, lsw_setting *g)
{
    char w[300];
    for (int p = 0; p < LSW_GP_N; p++) {
        const lsw_json *v = lsw_json_get(o, gp_names[p]);
        if (!v || !(x->m->glb >> p & 1))
            continue;
        snprintf(w, sizeof w, "%s.%s", where, gp_names[p]);
        int rc = parse_setting(x, v, w, &g[p]);
        if (rc)
            return rc;
    }
    return 0;
}

static int parse_source(const ctx *x, const lsw_json *o, const char *where, int sliced, lsw_mk_source *s)
{
    static const char *const fixed_sl[] = {"model", "layers", NULL}, *const fixed[] = {"model", NULL};
    if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
        return err(x, "%s must be an object {\"model\": NAME, ...}", where);
    int rc = check_keys(x, o, where, sliced ? fixed_sl : fixed, x->m->src, sp_names, LSW_SP_N);
    if (rc)
        return rc;
    const lsw_json *m = lsw_json_get(o, "model");
    if (lsw_json_type_of(m) != LSW_JSON_STRING || lsw_json_str_has_nul(m))
        return err(x, "%s.model must be a model name", where);
    s->model = lsw_config_model_index(x->c, lsw_json_str(m, NULL));
    if (s->model < 0)
        return err(x, "%s.model: model \"%s\" is not defined in \"models\"", where, lsw_json_str(m, NULL));
    s->lo = 0;
    s->hi = -1;
    if (sliced) {
        const lsw_json *ly = lsw_json_get(o, "layers");
        if (!ly || lsw_json_type_of(ly) != LSW_JSON_ARRAY || lsw_json_count(ly) != 2 ||
            lsw_json_i64(lsw_json_at(ly, 0), &s->lo) || lsw_json_i64(lsw_json_at(ly, 1), &s->hi) || s->lo < 0 ||
            s->hi <= s->lo || s->hi > 1000000)
            return err(x, "%s.layers must be [lo, hi] with 0 <= lo < hi (source layers lo..hi-1)", where);
    }
    char w[400];
    for (int p = 0; p < LSW_SP_N; p++) {
        const lsw_json *v = lsw_json_get(o, sp_names[p]);
        if (!v || !(x->m->src >> p & 1))
            continue;
        snprintf(w, sizeof w, "%s.%s", where, sp_names[p]);
        if ((rc = parse_setting(x, v, w, &s->p[p])))
            return rc;
    }
    return 0;
}

/* The sources of one slice: counts, duplicates, the base where the method needs it. */
static int parse_sources(const ctx *x, const lsw_json *arr, const char *where, int sliced, lsw_mk_slice *sl)
{
    size_t n = lsw_json_count(arr);
    if (lsw_json_type_of(arr) != LSW_JSON_ARRAY || n == 0 || n > LSW_MAX_SOURCES)
        return err(x, "%s must be a list of 1 to %d sources", where, LSW_MAX_SOURCES);
    if (!(sl->src = calloc(n, sizeof *sl->src)))
        return nomem();
    sl->nsrc = n;
    char w[300];
    int has_base = 0;
    for (size_t i = 0; i < n; i++) {
        snprintf(w, sizeof w, "%s[%zu]", where, i);
        int rc = parse_source(x, lsw_json_at(arr, i), w, sliced, &sl->src[i]);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (sl->src[j].model == sl->src[i].model)
                return err(x, "%s lists model \"%s\" twice", where, x->c->model_names[sl->src[i].model]);
        if (sliced && sl->src[i].hi - sl->src[i].lo != sl->src[0].hi - sl->src[0].lo)
            return err(x, "%s.layers: every source of a slice must have as many layers as the first", w);
        has_base |= sl->src[i].model == x->c->base;
    }
    int tv = x->m->kind == LSW_MK_TV;
    if (tv && !has_base)
        return err(x, "%s: method %s needs the base model \"%s\" among the sources", where, x->m->name,
                   x->c->base >= 0 ? x->c->model_names[x->c->base] : "(none: set \"base\")");
    int experts = (int)n - (tv ? 1 : 0);
    if (experts < x->m->min_experts || experts > x->m->max_experts) {
        if (x->m->min_experts == x->m->max_experts)
            return err(x, "%s: method %s takes exactly %d source%s%s", where, x->m->name, x->m->min_experts,
                       x->m->min_experts == 1 ? "" : "s", tv ? " besides the base" : "");
        return err(x, "%s: method %s takes %d to %d sources%s", where, x->m->name, x->m->min_experts,
                   x->m->max_experts, tv ? " besides the base" : "");
    }
    return 0;
}

static int parse_bools(const ctx *x, const lsw_json *sec)
{
    lsw_config *c = x->c;
    const lsw_json *v;
    c->tv.normalize = x->m->norm > 0;
    c->tv.rescale = x->m->rescale > 0;
    if ((v = lsw_json_get(sec, "normalize"))) {
        if (lsw_json_type_of(v) != LSW_JSON_TRUE && lsw_json_type_of(v) != LSW_JSON_FALSE)
            return err(x, "%s.normalize must be true or false", x->m->name);
        c->tv.normalize = lsw_json_type_of(v) == LSW_JSON_TRUE;
    }
    if ((v = lsw_json_get(sec, "rescale"))) {
        if (lsw_json_type_of(v) != LSW_JSON_TRUE && lsw_json_type_of(v) != LSW_JSON_FALSE)
            return err(x, "%s.rescale must be true or false", x->m->name);
        c->tv.rescale = lsw_json_type_of(v) == LSW_JSON_TRUE;
        if (c->tv.rescale && x->m->rescale == 0)
            return err(x, "%s.rescale: true is not supported for %s (mergekit's L1-norm rescale of "
                       "magnitude-pruned deltas); remove it", x->m->name, x->m->name);
    }
    if ((v = lsw_json_get(sec, "seed")) && lsw_json_u64(v, &c->tv.seed))
        return err(x, "%s.seed must be an integer in [0, 2^64)", x->m->name);
    if ((v = lsw_json_get(sec, "filter_wise")) && lsw_json_type_of(v) != LSW_JSON_FALSE)
        return err(x, "%s.filter_wise: only false is supported (one weight per tensor); remove it", x->m->name);
    return 0;
}

int lsw_mkcfg_parse(lsw_config *c, const char *file, const lsw_json *sec, const char *name)
{
    ctx x = {file, c, find_method(name)};
    if (!x.m)
        return err(&x, "method \"%s\" is unknown", name);
    static const char *const fx_tv_rand[] = {"sources", "slices", "normalize", "rescale", "seed", NULL};
    static const char *const fx_tv[] = {"sources", "slices", "normalize", "rescale", NULL};
    static const char *const fx_norm[] = {"sources", "slices", "normalize", NULL};
    static const char *const fx_ms[] = {"sources", "slices", "filter_wise", NULL};
    static const char *const fx[] = {"sources", "slices", NULL};
    const char *const *fixed = x.m->rescale > 0 ? fx_tv_rand : x.m->rescale == 0 ? fx_tv
                             : x.m->norm >= 0   ? fx_norm
                             : x.m->tv == LSW_TV_MODEL_STOCK && x.m->kind == LSW_MK_TV ? fx_ms : fx;
    int rc = check_keys(&x, sec, name, fixed, x.m->glb, gp_names, LSW_GP_N);
    if (rc)
        return rc;
    c->mk.on = 1;
    c->mk.kind = x.m->kind;
    c->mk.name = x.m->name;
    c->method = x.m->kind == LSW_MK_TV ? LSW_METHOD_TASKVEC : LSW_METHOD_SLICES;
    c->tv.kind = x.m->tv;
    c->tv.lambda = 1.0;
    if (x.m->kind == LSW_MK_TV && c->base < 0)
        return err(&x, "method %s needs \"base\" to name the base model", name);
    if ((rc = parse_bools(&x, sec)) || (rc = parse_glb(&x, sec, name, c->mk.g)))
        return rc;
    const lsw_json *srcs = lsw_json_get(sec, "sources"), *slices = lsw_json_get(sec, "slices");
    if (srcs && slices)
        return err(&x, "%s: give \"sources\" (every layer) or \"slices\", not both", name);
    size_t ns = srcs ? 1 : lsw_json_count(slices);
    if (!srcs && (lsw_json_type_of(slices) != LSW_JSON_ARRAY || ns == 0 || ns > 100000))
        return err(&x, "%s.slices must be a non-empty list of slices", name);
    if (!(c->mk.slices = calloc(ns, sizeof *c->mk.slices)))
        return nomem();
    c->mk.nslices = ns;
    char w[300];
    for (size_t i = 0; i < ns && !rc; i++) {
        lsw_mk_slice *sl = &c->mk.slices[i];
        if (srcs) {
            snprintf(w, sizeof w, "%s.sources", name);
            rc = parse_sources(&x, srcs, w, 0, sl);
            continue;
        }
        static const char *const skeys[] = {"sources", NULL};
        const lsw_json *o = lsw_json_at(slices, i);
        snprintf(w, sizeof w, "%s.slices[%zu]", name, i);
        if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
            return err(&x, "%s must be an object {\"sources\": [...]}", w);
        if ((rc = check_keys(&x, o, w, skeys, x.m->glb, gp_names, LSW_GP_N)) || (rc = parse_glb(&x, o, w, sl->g)))
            return rc;
        strncat(w, ".sources", sizeof w - strlen(w) - 1);
        rc = parse_sources(&x, lsw_json_get(o, "sources"), w, 1, sl);
    }
    if (rc)
        return rc;
    /* config and tokenizer files: "files_from" (set by the caller), else the base, else the first source */
    if (c->first_model < 0)
        c->first_model = c->base >= 0 ? c->base : c->mk.slices[0].src[0].model;
    return 0;
}

void lsw_mkcfg_free(lsw_config *c)
{
    for (size_t i = 0; i < c->mk.nslices; i++) {
        lsw_mk_slice *sl = &c->mk.slices[i];
        for (size_t j = 0; j < sl->nsrc; j++)
            for (int p = 0; p < LSW_SP_N; p++)
                setting_free(&sl->src[j].p[p]);
        for (int p = 0; p < LSW_GP_N; p++)
            setting_free(&sl->g[p]);
        free(sl->src);
    }
    free(c->mk.slices);
    for (int p = 0; p < LSW_GP_N; p++)
        setting_free(&c->mk.g[p]);
    c->mk.slices = NULL;
    c->mk.nslices = 0;
}
