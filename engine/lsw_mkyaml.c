#include "lsw_mkyaml.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_array.h"
#include "lsw_config.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_jsonw.h"
#include "lsw_yaml.h"

#include <cjson/cJSON.h>

/* Parameters: per model (filtered on the source tensor's name) and per merge. */
enum { P_WEIGHT, P_DENSITY, P_GAMMA, P_EPSILON, P_SCALE, NSP };
enum { G_LAMBDA, G_T, NGP };
enum { B_NORMALIZE, B_RESCALE, B_INT8, B_FILTERWISE, NBP };
static const char *const sp_names[NSP] = {"weight", "density", "gamma", "epsilon", "scale"};
static const char *const gp_names[NGP] = {"lambda", "t"};
static const char *const bp_names[NBP] = {"normalize", "rescale", "int8_mask", "filter_wise"};

typedef struct mdef {
    const char *name;
    unsigned sp, gp, bp; /* masks of the parameters it has */
    int base;            /* needs base_model among the sources (added to a "models" list if missing) */
} mdef;

#define GTA_B ((1u << B_NORMALIZE) | (1u << B_RESCALE) | (1u << B_INT8))
static const mdef methods[] = {
    {"linear", 1u << P_WEIGHT, 0, 1u << B_NORMALIZE, 0},
    {"passthrough", 1u << P_SCALE, 0, 0, 0},
    {"task_arithmetic", 3u, 1u << G_LAMBDA, GTA_B, 1},
    {"ties", 3u, 1u << G_LAMBDA, GTA_B, 1},
    {"dare_linear", 3u, 1u << G_LAMBDA, GTA_B, 1},
    {"dare_ties", 3u, 1u << G_LAMBDA, GTA_B, 1},
    {"breadcrumbs", 7u, 1u << G_LAMBDA, GTA_B, 1},
    {"breadcrumbs_ties", 7u, 1u << G_LAMBDA, GTA_B, 1},
    {"della", 11u, 1u << G_LAMBDA, GTA_B, 1},
    {"della_linear", 11u, 1u << G_LAMBDA, GTA_B, 1},
    {"slerp", 0, 1u << G_T, 0, 1},
    {"model_stock", 0, 0, 1u << B_FILTERWISE, 1},
};
#define NMETHODS (sizeof methods / sizeof methods[0])

/* A condition: `contains` (NULL: every tensor) and a number or a gradient node. */
typedef struct ycond { const char *contains; const lsw_ynode *val; } ycond;
typedef struct yset { size_t n, cap; ycond *c; int closed; /* an unconditional entry ends it */ } yset;

typedef struct ymodel { const char *path; char *name; } ymodel;

typedef struct tx {
    const char *file, *dir;
    const mdef *m;
    ymodel *models;
    size_t nmodels;
    int base;                 /* index into models, -1 */
    lsw_jw *w;
} tx;

static int yerr(const tx *x, const lsw_ynode *n, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int yerr(const tx *x, const lsw_ynode *n, const char *key, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        return lsw_err_set(LSW_E_CONFIG, "%s: line %u, column %u: key '%s': %s", x->file, lsw_ynode_line(n),
                           lsw_ynode_col(n), key, msg);
    return lsw_err_set(LSW_E_CONFIG, "%s: key '%s': %s", x->file, key, msg);
}

static int nomem(void) { return lsw_err_set(LSW_E_NOMEM, "out of memory"); }

int lsw_mkyaml_is_yaml_name(const char *path)
{
    size_t n = strlen(path);
    return (n > 4 && !strcmp(path + n - 4, ".yml")) || (n > 5 && !strcmp(path + n - 5, ".yaml"));
}

/* ---- scalars ------------------------------------------------------------- */

static const char *scalar(const lsw_ynode *n)
{
    return n && lsw_ynode_kind(n) == LSW_Y_SCALAR && !lsw_ynode_has_nul(n) ? lsw_ynode_str(n, NULL) : NULL;
}

/* A plain scalar that is a decimal number ("1", "-0.5", ".5", "1e-3", "2.5E+2"). */
static int number(const lsw_ynode *n, double *v)
{
    const char *s = scalar(n);
    if (!s || !lsw_ynode_plain(n))
        return -1;
    const char *p = s;
    if (*p == '+' || *p == '-')
        p++;
    int digits = 0;
    while (isdigit((unsigned char)*p))
        p++, digits++;
    if (*p == '.')
        for (p++; isdigit((unsigned char)*p); p++)
            digits++;
    if (!digits)
        return -1;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-')
            p++;
        if (!isdigit((unsigned char)*p))
            return -1;
        while (isdigit((unsigned char)*p))
            p++;
    }
    if (*p)
        return -1;
    char *end;
    *v = strtod(s, &end);
    return *end || !isfinite(*v) ? -1 : 0;
}

/* YAML 1.1 booleans, as PyYAML reads them. */
static int boolean(const lsw_ynode *n, int *v)
{
    static const char *const t[] = {"true", "True", "TRUE", "yes", "Yes", "YES", "on", "On", "ON", NULL};
    static const char *const f[] = {"false", "False", "FALSE", "no", "No", "NO", "off", "Off", "OFF", NULL};
    const char *s = scalar(n);
    if (!s || !lsw_ynode_plain(n))
        return -1;
    for (int i = 0; t[i]; i++) {
        if (!strcmp(s, t[i]))
            return *v = 1, 0;
        if (!strcmp(s, f[i]))
            return *v = 0, 0;
    }
    return -1;
}

static int is_null(const lsw_ynode *n)
{
    const char *s = scalar(n);
    return s && lsw_ynode_plain(n) && (!*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
                                       !strcmp(s, "NULL"));
}

/* ---- models -------------------------------------------------------------- */

static int hub_like(const char *s)
{
    const char *slash = strchr(s, '/');
    if (!slash || slash == s || !slash[1] || strchr(slash + 1, '/') || s[0] == '.' || s[0] == '~')
        return 0;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-/", *p))
            return 0;
    return 1;
}

static char *name_of(const char *path)
{
    size_t n = strlen(path);
    while (n > 1 && path[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && path[b - 1] != '/')
        b--;
    char *s = strndup(path + b, n - b);
    for (char *p = s; p && *p; p++)
        if (!isalnum((unsigned char)*p) && !strchr("._-", *p))
            *p = '_';
    return s;
}

/* Model reference `n` (key `key`) as an index into x->models. */
static int model_ref(tx *x, const lsw_ynode *n, const char *key, int *idx)
{
    const char *s = scalar(n);
    if (!s || !*s)
        return yerr(x, n, key, "must be the path of a local checkpoint folder (a string)");
    char *full = lsw_path_join(x->dir, s);
    if (!full)
        return nomem();
    int local = lsw_is_dir(full) || lsw_is_file(full);
    free(full);
    if (!local && strchr(s, '+'))
        return yerr(x, n, key, "\"%s\": LoRA adapters (model+lora) are not supported; merge the adapter into "
                    "its model first (e.g. peft's merge_and_unload) and give that folder", s);
    if (!local && hub_like(s))
        return yerr(x, n, key, "\"%s\" looks like a Hugging Face hub id and is not a local path; download the "
                    "model (e.g. huggingface-cli download %s --local-dir DIR) and give DIR, relative to the "
                    "config's folder", s, s);
    for (size_t i = 0; i < x->nmodels; i++)
        if (!strcmp(x->models[i].path, s))
            return *idx = (int)i, 0;
    if (x->nmodels >= 4 * LSW_MAX_SOURCES)
        return yerr(x, n, key, "more than %d distinct models", 4 * LSW_MAX_SOURCES);
    ymodel *m = realloc(x->models, (x->nmodels + 1) * sizeof *m);
    if (!m)
        return nomem();
    x->models = m;
    char *nm = name_of(s);
    if (!nm)
        return nomem();
    if (!*nm || !strcmp(nm, ".") || !strcmp(nm, "..")) {
        free(nm);
        nm = strdup("model");
    }
    /* unique names: "math", "math_2", ... */
    char *uniq = nm;
    for (int k = 2; uniq; k++) {
        int clash = 0;
        for (size_t i = 0; i < x->nmodels && !clash; i++)
            clash = !strcmp(x->models[i].name, uniq);
        if (!clash)
            break;
        if (uniq != nm)
            free(uniq);
        size_t l = strlen(nm) + 16;
        if ((uniq = malloc(l)))
            snprintf(uniq, l, "%s_%d", nm, k);
    }
    if (uniq != nm)
        free(nm);
    if (!uniq)
        return nomem();
    x->models[x->nmodels] = (ymodel){s, uniq};
    *idx = (int)x->nmodels++;
    return 0;
}

/* ---- parameters ---------------------------------------------------------- */

static int set_add(yset *s, const char *contains, const lsw_ynode *val)
{
    if (s->closed)
        return 0;
    if (lsw_array_reserve(&s->c, &s->cap, s->n + 1, sizeof *s->c))
        return nomem();
    s->c[s->n++] = (ycond){contains, val};
    s->closed = contains == NULL;
    return 0;
}

/* A number or a list of numbers (a gradient). */
static int check_value(const tx *x, const lsw_ynode *v, const char *key)
{
    double d;
    if (lsw_ynode_kind(v) == LSW_Y_SCALAR) {
        if (number(v, &d))
            return yerr(x, v, key, "must be a number, a gradient list of numbers, or a list of "
                        "{filter: ..., value: ...}");
        return 0;
    }
    size_t n = lsw_ynode_count(v);
    if (lsw_ynode_kind(v) != LSW_Y_SEQ || n == 0 || n > 4096)
        return yerr(x, v, key, "must be a number or a non-empty gradient list of at most 4096 numbers");
    for (size_t i = 0; i < n; i++)
        if (number(lsw_ynode_at(v, i), &d))
            return yerr(x, lsw_ynode_at(v, i), key, "gradient values must be numbers");
    return 0;
}

/* Append setting `v` (a number, gradient, or list of {filter, value}) to `s`. */
static int add_setting(const tx *x, const lsw_ynode *v, const char *key, yset *s)
{
    int conds = lsw_ynode_kind(v) == LSW_Y_SEQ && lsw_ynode_count(v) > 0 &&
                lsw_ynode_kind(lsw_ynode_at(v, 0)) == LSW_Y_MAP;
    if (!conds) {
        int rc = check_value(x, v, key);
        return rc ? rc : set_add(s, NULL, v);
    }
    if (lsw_ynode_count(v) > 256)
        return yerr(x, v, key, "more than 256 conditions");
    for (size_t i = 0; i < lsw_ynode_count(v); i++) {
        const lsw_ynode *c = lsw_ynode_at(v, i), *f, *val;
        if (lsw_ynode_kind(c) != LSW_Y_MAP)
            return yerr(x, c, key, "every entry of a conditional list must be {filter: ..., value: ...}");
        for (size_t k = 0; k < lsw_ynode_count(c); k++) {
            const char *kk = scalar(lsw_ynode_keynode(c, k));
            if (!kk || (strcmp(kk, "filter") && strcmp(kk, "value")))
                return yerr(x, lsw_ynode_keynode(c, k), key, "unknown key '%s' in a condition (filter, value)",
                            kk ? kk : "?");
        }
        f = lsw_ynode_get(c, "filter");
        val = lsw_ynode_get(c, "value");
        if (!val)
            return yerr(x, c, key, "a condition needs a value");
        const char *fs = f && !is_null(f) ? scalar(f) : NULL;
        if (f && !is_null(f) && (!fs || !*fs))
            return yerr(x, f, key, "filter must be a substring of tensor names");
        if (fs && !strcmp(fs, "*"))
            fs = NULL;
        int rc = check_value(x, val, key);
        if (rc || (rc = set_add(s, fs, val)))
            return rc;
    }
    return 0;
}

typedef struct params { yset sp[NSP], gp[NGP]; int bset[NBP], b[NBP]; } params;

static void params_free(params *p)
{
    for (int i = 0; i < NSP; i++)
        free(p->sp[i].c);
    for (int i = 0; i < NGP; i++)
        free(p->gp[i].c);
    memset(p, 0, sizeof *p);
}

/* A `parameters:` mapping at level `lvl` (0 top, 1 slice, 2 model/source). */
static int read_params(const tx *x, const lsw_ynode *map, int lvl, params *p)
{
    if (!map || is_null(map))
        return 0;
    if (lsw_ynode_kind(map) != LSW_Y_MAP)
        return yerr(x, map, "parameters", "must be a mapping of parameter: value");
    for (size_t i = 0; i < lsw_ynode_count(map); i++) {
        const lsw_ynode *kn = lsw_ynode_keynode(map, i), *v = lsw_ynode_at(map, i);
        const char *k = scalar(kn);
        int found = 0, rc = 0;
        for (int j = 0; j < NSP && !found; j++)
            if (k && !strcmp(k, sp_names[j]) && (x->m->sp >> j & 1))
                found = 1, rc = add_setting(x, v, k, &p->sp[j]);
        for (int j = 0; j < NGP && !found; j++)
            if (k && !strcmp(k, gp_names[j]) && (x->m->gp >> j & 1)) {
                found = 1;
                if (lvl == 2)
                    return yerr(x, kn, k, "is a parameter of the whole merge, not of one model: move it to the "
                                "top-level or slice parameters");
                rc = add_setting(x, v, k, &p->gp[j]);
            }
        for (int j = 0; j < NBP && !found; j++)
            if (k && !strcmp(k, bp_names[j]) && (x->m->bp >> j & 1)) {
                found = 1;
                if (lvl != 0)
                    return yerr(x, kn, k, "only the top-level parameters may set it");
                if (boolean(v, &p->b[j]))
                    return yerr(x, v, k, "must be true or false");
                p->bset[j] = 1;
                if (j == B_INT8 && p->b[j])
                    return yerr(x, v, k, "int8_mask: true is not supported (layerswap computes exactly in "
                                "f32 and needs no int8 masks); remove it or set it to false");
                if (j == B_FILTERWISE && p->b[j])
                    return yerr(x, v, k, "filter_wise: true is not supported (one model_stock weight per "
                                "tensor); remove it");
            }
        if (!found)
            return yerr(x, kn, k ? k : "?", "is not a parameter of method %s", x->m->name);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- emission ------------------------------------------------------------ */

static void emit_number(tx *x, lsw_jw_node *parent, const char *key, const lsw_ynode *n)
{
    double v = 0;
    number(n, &v);
    lsw_jw_f64(x->w, parent, key, v);
}

static void emit_value(tx *x, lsw_jw_node *parent, const char *key, const lsw_ynode *v)
{
    if (lsw_ynode_kind(v) == LSW_Y_SCALAR) {
        emit_number(x, parent, key, v);
        return;
    }
    lsw_jw_node *g = lsw_jw_arr(x->w, parent, "gradient");
    for (size_t i = 0; i < lsw_ynode_count(v); i++)
        emit_number(x, g, NULL, lsw_ynode_at(v, i));
}

/* The native setting of the folded conditions `s` under `key`. */
static void emit_setting(tx *x, lsw_jw_node *parent, const char *key, const yset *s)
{
    if (s->n == 0)
        return;
    if (s->n == 1 && !s->c[0].contains) {
        if (lsw_ynode_kind(s->c[0].val) == LSW_Y_SCALAR)
            emit_number(x, parent, key, s->c[0].val);
        else
            emit_value(x, lsw_jw_obj(x->w, parent, key), NULL, s->c[0].val);
        return;
    }
    lsw_jw_node *a = lsw_jw_arr(x->w, parent, key);
    for (size_t i = 0; i < s->n; i++) {
        lsw_jw_node *o = lsw_jw_obj(x->w, a, NULL);
        if (s->c[i].contains)
            lsw_jw_str(x->w, o, "contains", s->c[i].contains);
        emit_value(x, o, "value", s->c[i].val);
    }
}

/* One source: its own per-model settings, then the slice's, then the top level's. */
static int emit_source(tx *x, lsw_jw_node *arr, int model, const lsw_ynode *range, const params *own,
                       const params *slice, const params *top)
{
    lsw_jw_node *o = lsw_jw_obj(x->w, arr, NULL);
    lsw_jw_str(x->w, o, "model", x->models[model].name);
    if (range) {
        lsw_jw_node *r = lsw_jw_arr(x->w, o, "layers");
        for (int i = 0; i < 2; i++)
            emit_number(x, r, NULL, lsw_ynode_at(range, (size_t)i));
    }
    const params *lv[3] = {own, slice, top};
    for (int p = 0; p < NSP; p++) {
        yset s = {0};
        int rc = 0;
        for (int l = 0; l < 3 && !rc; l++)
            for (size_t i = 0; lv[l] && i < lv[l]->sp[p].n && !rc; i++)
                rc = set_add(&s, lv[l]->sp[p].c[i].contains, lv[l]->sp[p].c[i].val);
        if (!rc)
            emit_setting(x, o, sp_names[p], &s);
        free(s.c);
        if (rc)
            return rc;
    }
    return 0;
}

/* ---- the document -------------------------------------------------------- */

static int check_keys(const tx *x, const lsw_ynode *map, const char *where, const char *const *allowed)
{
    for (size_t i = 0; i < lsw_ynode_count(map); i++) {
        const lsw_ynode *kn = lsw_ynode_keynode(map, i);
        const char *k = scalar(kn);
        int ok = 0;
        for (const char *const *a = allowed; k && *a && !ok; a++)
            ok = !strcmp(*a, k);
        if (!ok)
            return yerr(x, kn, k ? k : "?", "unknown key in %s (allowed: %s%s%s%s)", where, allowed[0],
                        allowed[1] ? ", " : "", allowed[1] ? allowed[1] : "", allowed[1] && allowed[2] ? ", ..." : "");
    }
    return 0;
}

/* `models:` — one source per model, every layer; the base added last where the method needs it. */
static int emit_models(tx *x, lsw_jw_node *sec, const lsw_ynode *models, const params *top)
{
    size_t n = lsw_ynode_count(models);
    if (lsw_ynode_kind(models) != LSW_Y_SEQ || n == 0 || n > LSW_MAX_SOURCES)
        return yerr(x, models, "models", "must be a list of 1 to %d entries {model: PATH, parameters: ...}",
                    LSW_MAX_SOURCES);
    static const char *const keys[] = {"model", "parameters", NULL};
    lsw_jw_node *arr = lsw_jw_arr(x->w, sec, "sources");
    int has_base = 0, rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const lsw_ynode *e = lsw_ynode_at(models, i);
        int idx;
        params own = {0};
        if (lsw_ynode_kind(e) != LSW_Y_MAP)
            return yerr(x, e, "models", "every entry must be {model: PATH, parameters: ...}");
        if ((rc = check_keys(x, e, "a models entry", keys)) || (rc = model_ref(x, lsw_ynode_get(e, "model"), "model", &idx)))
            return rc;
        has_base |= idx == x->base;
        if (!(rc = read_params(x, lsw_ynode_get(e, "parameters"), 2, &own)))
            rc = emit_source(x, arr, idx, NULL, &own, NULL, top);
        params_free(&own);
    }
    if (!rc && x->m->base && x->base >= 0 && !has_base)
        rc = emit_source(x, arr, x->base, NULL, NULL, NULL, top);
    return rc;
}

static int emit_slice(tx *x, lsw_jw_node *arr, const lsw_ynode *sl, const params *top)
{
    static const char *const keys[] = {"sources", "parameters", NULL}, *const skeys[] = {"model", "layer_range",
                                                                                         "parameters", NULL};
    if (lsw_ynode_kind(sl) != LSW_Y_MAP)
        return yerr(x, sl, "slices", "every slice must be {sources: [...], parameters: ...}");
    int rc = check_keys(x, sl, "a slice", keys);
    params sp = {0};
    if (rc || (rc = read_params(x, lsw_ynode_get(sl, "parameters"), 1, &sp)))
        return rc;
    lsw_jw_node *o = lsw_jw_obj(x->w, arr, NULL);
    const lsw_ynode *src = lsw_ynode_get(sl, "sources");
    size_t n = lsw_ynode_count(src);
    if (!src || lsw_ynode_kind(src) != LSW_Y_SEQ || n == 0 || n > LSW_MAX_SOURCES)
        rc = yerr(x, src ? src : sl, "sources", "a slice needs a list of 1 to %d sources", LSW_MAX_SOURCES);
    lsw_jw_node *sa = lsw_jw_arr(x->w, o, "sources");
    for (size_t i = 0; i < n && !rc; i++) {
        const lsw_ynode *e = lsw_ynode_at(src, i), *lr;
        int idx;
        double a, b;
        params own = {0};
        if (lsw_ynode_kind(e) != LSW_Y_MAP)
            rc = yerr(x, e, "sources", "every source must be {model: PATH, layer_range: [a, b], parameters: ...}");
        else if (!(rc = check_keys(x, e, "a source", skeys)) &&
                 !(rc = model_ref(x, lsw_ynode_get(e, "model"), "model", &idx))) {
            lr = lsw_ynode_get(e, "layer_range");
            if (!lr || lsw_ynode_count(lr) != 2 || lsw_ynode_kind(lr) != LSW_Y_SEQ ||
                number(lsw_ynode_at(lr, 0), &a) || number(lsw_ynode_at(lr, 1), &b) || a != floor(a) ||
                b != floor(b) || a < 0 || b <= a || b > 1000000)
                rc = yerr(x, lr ? lr : e, "layer_range", "must be [a, b], integers with 0 <= a < b");
            else if (!(rc = read_params(x, lsw_ynode_get(e, "parameters"), 2, &own)))
                rc = emit_source(x, sa, idx, lr, &own, &sp, top);
        }
        params_free(&own);
    }
    for (int p = 0; p < NGP && !rc; p++)
        emit_setting(x, o, gp_names[p], &sp.gp[p]);
    params_free(&sp);
    return rc;
}

static int read_dtype(const tx *x, const lsw_ynode *root, const char *key, const char **out)
{
    const lsw_ynode *n = lsw_ynode_get(root, key);
    const char *s = scalar(n);
    static const char *const names[][2] = {{"bfloat16", "bfloat16"}, {"bf16", "bfloat16"}, {"float16", "float16"},
                                           {"fp16", "float16"}, {"half", "float16"}, {"float32", "float32"},
                                           {"fp32", "float32"}, {"float", "float32"}};
    if (!n || is_null(n))
        return 0;
    for (size_t i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i][0]))
            return *out = names[i][1], 0;
    return yerr(x, n, key, "must be bfloat16, float16 or float32");
}

static const char *const top_keys[] = {"merge_method", "base_model", "models", "slices", "parameters", "dtype",
                                       "out_dtype", "tokenizer_source", "name", NULL};

/* Top-level keys, method, base, files model and output dtype. */
static int read_top(tx *x, const lsw_ynode *root, int *files, const char **dtype)
{
    for (size_t i = 0; i < lsw_ynode_count(root); i++) {
        const lsw_ynode *kn = lsw_ynode_keynode(root, i);
        const char *k = scalar(kn);
        int ok = 0;
        for (const char *const *a = top_keys; k && *a && !ok; a++)
            ok = !strcmp(*a, k);
        if (ok)
            continue;
        if (k && (!strcmp(k, "tokenizer") || !strcmp(k, "chat_template")))
            return yerr(x, kn, k, "is not supported: the output takes the tokenizer and chat template files of "
                        "one model (tokenizer_source: base or a model); remove it");
        if (k && !strcmp(k, "modules"))
            return yerr(x, kn, k, "is not supported: write the merge with models or slices");
        return yerr(x, kn, k ? k : "?", "is not a key of a mergekit config that layerswap runs (merge_method, "
                    "base_model, models, slices, parameters, dtype, out_dtype, tokenizer_source, name)");
    }
    const lsw_ynode *mm = lsw_ynode_get(root, "merge_method");
    const char *ms = scalar(mm);
    for (size_t i = 0; ms && i < NMETHODS && !x->m; i++)
        if (!strcmp(methods[i].name, ms))
            x->m = &methods[i];
    if (!x->m)
        return yerr(x, mm, "merge_method", "%s%s%s; layerswap runs linear, task_arithmetic, ties, dare_ties, "
                    "dare_linear, slerp, passthrough, model_stock, breadcrumbs, breadcrumbs_ties, della, della_linear",
                    ms ? "\"" : "is required", ms ? ms : "", ms ? "\" is not supported" : "");
    x->base = -1;
    const lsw_ynode *bm = lsw_ynode_get(root, "base_model");
    int rc = bm && !is_null(bm) ? model_ref(x, bm, "base_model", &x->base) : 0;
    if (!rc && x->m->base && x->base < 0)
        rc = yerr(x, mm, "base_model", "method %s needs base_model", x->m->name);
    const lsw_ynode *ts = lsw_ynode_get(root, "tokenizer_source");
    const char *tss = scalar(ts);
    *files = -1;
    if (!rc && ts && !is_null(ts)) {
        if (tss && !strcmp(tss, "union"))
            rc = yerr(x, ts, "tokenizer_source", "union (a merged vocabulary) is not supported: use base or one "
                      "model, whose tokenizer files are copied");
        else if (tss && !strcmp(tss, "base"))
            *files = x->base >= 0 ? x->base : -2;
        else
            rc = model_ref(x, ts, "tokenizer_source", files);
        if (!rc && *files == -2)
            rc = yerr(x, ts, "tokenizer_source", "base needs base_model");
    }
    const char *d1 = NULL, *d2 = NULL;
    if (!rc && !(rc = read_dtype(x, root, "dtype", &d1)) && !(rc = read_dtype(x, root, "out_dtype", &d2)))
        *dtype = d2 ? d2 : d1;
    return rc;
}

static int translate(tx *x, const lsw_ynode *root)
{
    if (lsw_ynode_kind(root) != LSW_Y_MAP)
        return yerr(x, root, "(top level)", "a mergekit config is a mapping (merge_method: ..., models: ...)");
    int files, rc;
    const char *dtype = NULL;
    params top = {0};
    if ((rc = read_top(x, root, &files, &dtype)) || (rc = read_params(x, lsw_ynode_get(root, "parameters"), 0, &top)))
        return params_free(&top), rc;
    const lsw_ynode *models = lsw_ynode_get(root, "models"), *slices = lsw_ynode_get(root, "slices");
    if (!!models == !!slices)
        rc = yerr(x, models ? models : root, models ? "models" : "slices", "give exactly one of models and slices");
    /* the method section first, so that the model list is complete when it is written */
    lsw_jw *sw = lsw_jw_create();
    lsw_jw *main_w = x->w;
    x->w = sw;
    lsw_jw_node *sec = sw ? lsw_jw_root(sw) : NULL;
    if (!sw)
        rc = rc ? rc : nomem();
    if (!rc && models)
        rc = emit_models(x, sec, models, &top);
    if (!rc && slices) {
        size_t n = lsw_ynode_count(slices);
        if (lsw_ynode_kind(slices) != LSW_Y_SEQ || n == 0)
            rc = yerr(x, slices, "slices", "must be a non-empty list of slices");
        lsw_jw_node *arr = lsw_jw_arr(x->w, sec, "slices");
        for (size_t i = 0; i < n && !rc; i++)
            rc = emit_slice(x, arr, lsw_ynode_at(slices, i), &top);
    }
    for (int p = 0; p < NGP && !rc; p++)
        emit_setting(x, sec, gp_names[p], &top.gp[p]);
    for (int b = 0; b < NBP && !rc; b++)
        if (top.bset[b] && b != B_INT8 && b != B_FILTERWISE)
            lsw_jw_bool(x->w, sec, bp_names[b], top.b[b]);
    params_free(&top);
    x->w = main_w;
    if (!rc) {
        lsw_jw_node *r = lsw_jw_root(x->w), *mo = lsw_jw_obj(x->w, r, "models");
        for (size_t i = 0; i < x->nmodels; i++)
            lsw_jw_str(x->w, mo, x->models[i].name, x->models[i].path);
        if (x->base >= 0)
            lsw_jw_str(x->w, r, "base", x->models[x->base].name);
        lsw_jw_str(x->w, r, "method", x->m->name);
        if (files >= 0)
            lsw_jw_str(x->w, r, "files_from", x->models[files].name);
        /* move the section under the method's name */
        cJSON *moved = cJSON_Duplicate(lsw_jw_root(sw), 1);
        if (!moved || !cJSON_AddItemToObject(r, x->m->name, moved))
            rc = nomem();
        if (!rc && dtype)
            lsw_jw_str(x->w, lsw_jw_obj(x->w, r, "output"), "dtype", dtype);
    }
    lsw_jw_free(sw);
    return rc;
}

int lsw_mkyaml_to_json(const char *text, size_t len, const char *file, const char *dir, char **json, size_t *jlen)
{
    *json = NULL;
    *jlen = 0;
    char why[400];
    lsw_yaml_doc *doc = NULL;
    if (lsw_yaml_parse(text, len, &doc, why, sizeof why))
        return lsw_err_set(LSW_E_CONFIG, "%s: not a valid YAML config: %s", file, why);
    tx x = {file, dir, NULL, NULL, 0, -1, lsw_jw_create()};
    int rc = x.w ? translate(&x, lsw_yaml_root(doc)) : nomem();
    if (!rc)
        rc = lsw_jw_print(x.w, json, jlen);
    for (size_t i = 0; i < x.nmodels; i++)
        free(x.models[i].name);
    free(x.models);
    lsw_jw_free(x.w);
    lsw_yaml_free(doc);
    return rc;
}
