#include "lsw_config.h"
#include "lsw_derived.h"

#include <math.h>
#include <stdarg.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_mkcfg.h"
#include "lsw_mkyaml.h"

typedef struct ctx {
    const char *file;
    const char *dir;
    lsw_config *c;
} ctx;

static int cfg_err(const ctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int cfg_err(const ctx *x, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lsw_err_set(LSW_E_CONFIG, "%s: %s", x->file, msg);
}

/* Every key of `obj` must be one of `allowed` (NULL-terminated). */
static int check_keys(const ctx *x, const lsw_json *obj, const char *where, const char *const *allowed)
{
    for (size_t i = 0; i < lsw_json_count(obj); i++) {
        const char *k = lsw_json_key(obj, i, NULL);
        int ok = 0;
        for (const char *const *a = allowed; *a && !ok; a++)
            ok = strcmp(*a, k) == 0 && !lsw_json_key_has_nul(obj, i);
        if (!ok)
            return cfg_err(x, "%s: unknown key \"%s\"", where, k);
    }
    return 0;
}

static int get_string(const ctx *x, const lsw_json *obj, const char *key, const char *where, const char **out)
{
    const lsw_json *v = lsw_json_get(obj, key);
    *out = NULL;
    if (!v)
        return 0;
    if (lsw_json_type_of(v) != LSW_JSON_STRING || lsw_json_str_has_nul(v))
        return cfg_err(x, "%s.%s must be a string", where, key);
    *out = lsw_json_str(v, NULL);
    return 0;
}

static int get_int(const ctx *x, const lsw_json *obj, const char *key, const char *where, int64_t dflt, int64_t *out)
{
    const lsw_json *v = lsw_json_get(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    if (lsw_json_i64(v, out) != 0 || *out < 0 || *out > 1000000000)
        return cfg_err(x, "%s.%s must be a non-negative integer", where, key);
    return 0;
}

static int get_bool(const ctx *x, const lsw_json *obj, const char *key, const char *where, int dflt, int *out)
{
    const lsw_json *v = lsw_json_get(obj, key);
    *out = dflt;
    if (!v)
        return 0;
    if (lsw_json_type_of(v) == LSW_JSON_TRUE)
        *out = 1;
    else if (lsw_json_type_of(v) == LSW_JSON_FALSE)
        *out = 0;
    else
        return cfg_err(x, "%s.%s must be true or false", where, key);
    return 0;
}

static int model_ref(const ctx *x, const char *name, const char *where, int *out)
{
    *out = lsw_config_model_index(x->c, name);
    if (*out < 0)
        return cfg_err(x, "%s: model \"%s\" is not defined in \"models\"", where, name);
    return 0;
}

static int get_model(const ctx *x, const lsw_json *obj, const char *key, const char *where, int *out)
{
    const char *s;
    int rc = get_string(x, obj, key, where, &s);
    if (rc)
        return rc;
    if (!s)
        return cfg_err(x, "%s.%s is required", where, key);
    char w[256];
    snprintf(w, sizeof w, "%s.%s", where, key);
    return model_ref(x, s, w, out);
}

static int weighting_of(const ctx *x, const lsw_json *obj, const char *key, const char *where, lsw_weighting *out)
{
    const char *s;
    int rc = get_string(x, obj, key, where, &s);
    if (rc)
        return rc;
    if (!s || strcmp(s, "uniform") == 0)
        *out = LSW_W_UNIFORM;
    else if (strcmp(s, "magnitude") == 0)
        *out = LSW_W_MAGNITUDE;
    else
        return cfg_err(x, "%s.%s must be \"uniform\" or \"magnitude\", not \"%s\"", where, key, s);
    return 0;
}

static lsw_rule *new_rule(lsw_config *c)
{
    lsw_rule *r = realloc(c->rules, (c->nrules + 1) * sizeof *r);
    if (!r)
        return NULL;
    c->rules = r;
    memset(&r[c->nrules], 0, sizeof *r);
    r[c->nrules].normalize = 1;
    return &r[c->nrules++];
}

/* "models": [...], "weights": [...] | "magnitude" | absent, "normalize": bool */
static int parse_average(const ctx *x, const lsw_json *obj, const char *where, lsw_rule *r)
{
    const lsw_json *m = lsw_json_get(obj, "models");
    if (!m || lsw_json_type_of(m) != LSW_JSON_ARRAY || lsw_json_count(m) == 0)
        return cfg_err(x, "%s.models must be a non-empty array of model names", where);
    r->nmodels = lsw_json_count(m);
    r->models = calloc(r->nmodels, sizeof *r->models);
    if (!r->models)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < r->nmodels; i++) {
        const lsw_json *e = lsw_json_at(m, i);
        if (lsw_json_type_of(e) != LSW_JSON_STRING || lsw_json_str_has_nul(e))
            return cfg_err(x, "%s.models[%zu] must be a model name", where, i);
        char w[256];
        snprintf(w, sizeof w, "%s.models[%zu]", where, i);
        int rc = model_ref(x, lsw_json_str(e, NULL), w, &r->models[i]);
        if (rc)
            return rc;
        for (size_t j = 0; j < i; j++)
            if (r->models[j] == r->models[i])
                return cfg_err(x, "%s.models lists \"%s\" twice", where, lsw_json_str(e, NULL));
    }
    int rc = get_bool(x, obj, "normalize", where, 1, &r->normalize);
    if (rc)
        return rc;
    const lsw_json *w = lsw_json_get(obj, "weights");
    r->weighting = LSW_W_UNIFORM;
    if (!w)
        return 0;
    if (lsw_json_type_of(w) == LSW_JSON_STRING) {
        const char *s = lsw_json_str(w, NULL);
        if (strcmp(s, "magnitude") == 0)
            r->weighting = LSW_W_MAGNITUDE;
        else if (strcmp(s, "uniform") == 0)
            r->weighting = LSW_W_UNIFORM;
        else
            return cfg_err(x, "%s.weights must be an array of numbers, \"uniform\" or \"magnitude\"", where);
        return 0;
    }
    if (lsw_json_type_of(w) != LSW_JSON_ARRAY)
        return cfg_err(x, "%s.weights must be an array of numbers, \"uniform\" or \"magnitude\"", where);
    if (lsw_json_count(w) != r->nmodels)
        return cfg_err(x, "%s.weights has %zu entries for %zu models", where, lsw_json_count(w), r->nmodels);
    r->weighting = LSW_W_EXPLICIT;
    r->weights = calloc(r->nmodels, sizeof *r->weights);
    if (!r->weights)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    double sum = 0;
    for (size_t i = 0; i < r->nmodels; i++) {
        if (lsw_json_f64(lsw_json_at(w, i), &r->weights[i]) != 0 || !isfinite(r->weights[i]))
            return cfg_err(x, "%s.weights[%zu] must be a finite number", where, i);
        sum += r->weights[i];
    }
    if (r->normalize && sum == 0)
        return cfg_err(x, "%s.weights sum to zero and cannot be normalised (set \"normalize\": false)", where);
    return 0;
}

static int parse_rules(const ctx *x, const lsw_json *arr)
{
    if (lsw_json_type_of(arr) != LSW_JSON_ARRAY || lsw_json_count(arr) == 0)
        return cfg_err(x, "\"rules\" must be a non-empty array");
    static const char *const keys[] = {"match", "layers", "action", "model", "models", "weights", "normalize", NULL};
    for (size_t i = 0; i < lsw_json_count(arr); i++) {
        const lsw_json *o = lsw_json_at(arr, i);
        char where[64];
        snprintf(where, sizeof where, "rules[%zu]", i);
        if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
            return cfg_err(x, "%s must be an object", where);
        int rc = check_keys(x, o, where, keys);
        if (rc)
            return rc;
        lsw_rule *r = new_rule(x->c);
        if (!r || !(r->origin = strdup(where)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        const char *match, *action;
        if ((rc = get_string(x, o, "match", where, &match)) || (rc = get_string(x, o, "action", where, &action)))
            return rc;
        if (match) {
            char why[160];
            if (lsw_regex_tame(match, why, sizeof why))
                return cfg_err(x, "%s.match \"%.80s\" is refused: %s", where, match, why);
            regex_t re;
            int e = regcomp(&re, match, REG_EXTENDED | REG_NOSUB);
            if (e) {
                char eb[128];
                regerror(e, &re, eb, sizeof eb);
                return cfg_err(x, "%s.match \"%s\" is not a POSIX extended regular expression: %s", where, match, eb);
            }
            regfree(&re);
            if (!(r->match = strdup(match)))
                return lsw_err_set(LSW_E_NOMEM, "out of memory");
        }
        const lsw_json *ly = lsw_json_get(o, "layers");
        r->sel = LSW_SEL_ANY;
        if (ly) {
            if (lsw_json_type_of(ly) != LSW_JSON_ARRAY || lsw_json_count(ly) != 2 ||
                lsw_json_i64(lsw_json_at(ly, 0), &r->lo) || lsw_json_i64(lsw_json_at(ly, 1), &r->hi))
                return cfg_err(x, "%s.layers must be [lo, hi] with integers", where);
            if (r->lo < 0 || r->hi <= r->lo)
                return cfg_err(x, "%s.layers [%lld, %lld] is not a range lo <= i < hi with 0 <= lo < hi", where,
                               (long long)r->lo, (long long)r->hi);
            r->sel = LSW_SEL_RANGE;
        }
        if (!action)
            return cfg_err(x, "%s.action is required (take, average or base)", where);
        int has_model = lsw_json_get(o, "model") != NULL;
        int has_avg = lsw_json_get(o, "models") || lsw_json_get(o, "weights") || lsw_json_get(o, "normalize");
        if (strcmp(action, "take") == 0) {
            if (has_avg)
                return cfg_err(x, "%s: action \"take\" takes \"model\", not models/weights/normalize", where);
            r->action = LSW_ACT_TAKE;
            r->nmodels = 1;
            if (!(r->models = calloc(1, sizeof *r->models)))
                return lsw_err_set(LSW_E_NOMEM, "out of memory");
            if ((rc = get_model(x, o, "model", where, &r->models[0])))
                return rc;
        } else if (strcmp(action, "average") == 0) {
            if (has_model)
                return cfg_err(x, "%s: action \"average\" takes \"models\", not \"model\"", where);
            r->action = LSW_ACT_AVERAGE;
            if ((rc = parse_average(x, o, where, r)))
                return rc;
        } else if (strcmp(action, "base") == 0) {
            if (has_model || has_avg)
                return cfg_err(x, "%s: action \"base\" takes no model", where);
            if (x->c->base < 0)
                return cfg_err(x, "%s: action \"base\" needs \"base\" to name the base model", where);
            r->action = LSW_ACT_BASE;
            r->nmodels = 1;
            if (!(r->models = calloc(1, sizeof *r->models)))
                return lsw_err_set(LSW_E_NOMEM, "out of memory");
            r->models[0] = x->c->base;
        } else {
            return cfg_err(x, "%s.action \"%s\" is not take, average or base", where, action);
        }
    }
    return 0;
}

const lsw_ls_key lsw_layer_swap_keys[LSW_LS_NKEYS] = {
    {"task_expert", NULL, ""},           {"language_expert", NULL, ""},      {"bottom", "0", "b"},
    {"top", "0", "t"},                   {"lower_transition", "0", "lt"},    {"upper_transition", "0", "ut"},
    {"transition_weights", "\"uniform\"", "tw-"}, {"non_layer", "\"average\"", "nl-"},
    {"non_layer_weights", "\"uniform\"", "nlw-"}};

static int parse_layer_swap(const ctx *x, const lsw_json *o)
{
    const char *keys[LSW_LS_NKEYS + 1];
    for (int k = 0; k < LSW_LS_NKEYS; k++)
        keys[k] = lsw_layer_swap_keys[k].key;
    keys[LSW_LS_NKEYS] = NULL;
    const char *where = "layer_swap";
    lsw_config *c = x->c;
    if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
        return cfg_err(x, "\"layer_swap\" must be an object");
    int rc;
    if ((rc = check_keys(x, o, where, keys)) || (rc = get_model(x, o, "task_expert", where, &c->ls.task)) ||
        (rc = get_model(x, o, "language_expert", where, &c->ls.lang)) ||
        (rc = get_int(x, o, "bottom", where, 0, &c->ls.bottom)) || (rc = get_int(x, o, "top", where, 0, &c->ls.top)) ||
        (rc = get_int(x, o, "lower_transition", where, 0, &c->ls.lower)) ||
        (rc = get_int(x, o, "upper_transition", where, 0, &c->ls.upper)) ||
        (rc = weighting_of(x, o, "transition_weights", where, &c->ls.transition_w)) ||
        (rc = weighting_of(x, o, "non_layer_weights", where, &c->ls.non_layer_w)))
        return rc;
    if (c->ls.task == c->ls.lang)
        return cfg_err(x, "layer_swap: task_expert and language_expert are the same model");
    const char *nl;
    if ((rc = get_string(x, o, "non_layer", where, &nl)))
        return rc;
    if (!nl || strcmp(nl, "average") == 0)
        c->ls.non_layer = 0;
    else if (strcmp(nl, "task") == 0)
        c->ls.non_layer = 1;
    else if (strcmp(nl, "language") == 0)
        c->ls.non_layer = 2;
    else
        return cfg_err(x, "layer_swap.non_layer must be \"average\", \"task\" or \"language\", not \"%s\"", nl);
    if ((c->ls.transition_w == LSW_W_MAGNITUDE || c->ls.non_layer_w == LSW_W_MAGNITUDE) && c->base < 0)
        return cfg_err(x, "layer_swap: magnitude weights need \"base\" to name the base model");
    c->first_model = c->ls.task;
    return 0;
}

/* "<method>": {"models": [...], "weights": [...], "density": [...], "lambda": 1.0,
 *              "normalize": bool, "seed": S, "trim": "tensor"} */
static int parse_taskvec(const ctx *x, const lsw_json *o, const char *name)
{
    static const char *const keys[] = {"models", "weights", "density", "lambda", "normalize", "seed", "trim", NULL};
    lsw_config *c = x->c;
    if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
        return cfg_err(x, "\"%s\" must be an object", name);
    int rc = check_keys(x, o, name, keys);
    if (rc)
        return rc;
    c->tv.kind = !strcmp(name, "ties") ? LSW_TV_TIES : !strcmp(name, "dare_linear") ? LSW_TV_DARE_LINEAR
               : !strcmp(name, "dare_ties") ? LSW_TV_DARE_TIES : LSW_TV_TASK_ARITHMETIC;
    if (c->base < 0)
        return cfg_err(x, "%s: task-vector methods need \"base\" to name the base model", name);
    const char *trim;
    if ((rc = get_string(x, o, "trim", name, &trim)))
        return rc;
    c->tv.global_trim = trim && !strcmp(trim, "global");
    if (trim && strcmp(trim, "tensor") != 0 && !c->tv.global_trim)
        return cfg_err(x, "%s.trim must be \"tensor\" or \"global\", not \"%s\"", name, trim);
    if (c->tv.global_trim && c->tv.kind != LSW_TV_TIES)
        return cfg_err(x, "%s.trim \"global\" applies to ties only", name);
    lsw_rule *r = new_rule(c);
    if (!r || !(r->origin = strdup(name)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    r->sel = LSW_SEL_ANY;
    r->action = LSW_ACT_TASKVEC;
    const lsw_json *m = lsw_json_get(o, "models");
    size_t k = lsw_json_count(m);
    if (!m || lsw_json_type_of(m) != LSW_JSON_ARRAY || k == 0 || k > LSW_MAX_SOURCES - 1)
        return cfg_err(x, "%s.models must be a list of 1 to %d model names", name, LSW_MAX_SOURCES - 1);
    c->tv.k = k;
    r->nmodels = k + 1;
    if (!(r->models = calloc(k + 1, sizeof *r->models)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    r->models[0] = c->base;
    for (size_t i = 0; i < k; i++) {
        const lsw_json *e = lsw_json_at(m, i);
        char w[64];
        snprintf(w, sizeof w, "%s.models[%zu]", name, i);
        if (lsw_json_type_of(e) != LSW_JSON_STRING || lsw_json_str_has_nul(e))
            return cfg_err(x, "%s must be a model name", w);
        if ((rc = model_ref(x, lsw_json_str(e, NULL), w, &r->models[i + 1])))
            return rc;
        if (r->models[i + 1] == c->base)
            return cfg_err(x, "%s: the base cannot also be an expert", w);
        for (size_t j = 1; j <= i; j++)
            if (r->models[j] == r->models[i + 1])
                return cfg_err(x, "%s.models lists \"%s\" twice", name, lsw_json_str(e, NULL));
    }
    /* weights (not normalised) and densities, one per model */
    const char *lists[2] = {"weights", "density"};
    double *dst[2] = {c->tv.weight, c->tv.density};
    for (int l = 0; l < 2; l++) {
        const lsw_json *a = lsw_json_get(o, lists[l]);
        for (size_t i = 0; i < k; i++)
            dst[l][i] = 1.0;
        if (!a)
            continue;
        if (lsw_json_type_of(a) != LSW_JSON_ARRAY || lsw_json_count(a) != k)
            return cfg_err(x, "%s.%s must be a list of %zu numbers, one per model", name, lists[l], k);
        for (size_t i = 0; i < k; i++)
            if (lsw_json_f64(lsw_json_at(a, i), &dst[l][i]) != 0 || !isfinite(dst[l][i]) ||
                (l == 1 && !(dst[l][i] > 0 && dst[l][i] <= 1)))
                return cfg_err(x, "%s.%s[%zu] must be a finite number%s", name, lists[l], i, l ? " in (0, 1]" : "");
    }
    const lsw_json *lam = lsw_json_get(o, "lambda");
    c->tv.lambda = 1.0;
    if (lam && (lsw_json_f64(lam, &c->tv.lambda) != 0 || !isfinite(c->tv.lambda)))
        return cfg_err(x, "%s.lambda must be a finite number", name);
    if ((rc = get_bool(x, o, "normalize", name, c->tv.kind == LSW_TV_TIES, &c->tv.normalize)))
        return rc;
    const lsw_json *sd = lsw_json_get(o, "seed");
    c->tv.seed = 0;
    if (sd && lsw_json_u64(sd, &c->tv.seed) != 0)
        return cfg_err(x, "%s.seed must be a non-negative integer", name);
    /* the reference (tensor list, config files): the first listed model (docs/output.md) */
    c->first_model = r->models[1];
    return 0;
}

static int parse_linear(const ctx *x, const lsw_json *o)
{
    static const char *const keys[] = {"models", "weights", "normalize", NULL};
    if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
        return cfg_err(x, "\"linear\" must be an object");
    int rc = check_keys(x, o, "linear", keys);
    if (rc)
        return rc;
    lsw_rule *r = new_rule(x->c);
    if (!r || !(r->origin = strdup("linear")))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    r->sel = LSW_SEL_ANY;
    r->action = LSW_ACT_AVERAGE;
    if ((rc = parse_average(x, o, "linear", r)))
        return rc;
    if (r->weighting == LSW_W_MAGNITUDE && x->c->base < 0)
        return cfg_err(x, "linear: magnitude weights need \"base\" to name the base model");
    x->c->first_model = r->models[0];
    return 0;
}

static int is_quant(char c) { return c == '*' || c == '+' || c == '?' || c == '{'; }

int lsw_regex_tame(const char *re, char *why, size_t whylen)
{
    size_t len = strlen(re);
    if (len > LSW_REGEX_MAX) {
        snprintf(why, whylen, "longer than %d bytes", LSW_REGEX_MAX);
        return -1;
    }
    /* per open group: the deepest nesting of quantified groups inside it */
    int inner[LSW_REGEX_MAX + 1], depth = 0, last = 0;   /* last: what ended the previous atom */
    inner[0] = 0;
    for (size_t i = 0; i < len; i++) {
        char c = re[i];
        if (c == '\\') {            /* an escaped character is an atom */
            if (i + 1 < len && re[i + 1] >= '1' && re[i + 1] <= '9') {
                snprintf(why, whylen, "back-references (\\%c) can take exponential time", re[i + 1]);
                return -1;
            }
            i++;
            last = 1;
            continue;
        }
        if (c == '[') {                /* a bracket expression is an atom: skip to its ']' */
            size_t j = i + 1;
            if (j < len && re[j] == '^')
                j++;
            if (j < len && re[j] == ']')
                j++;
            while (j < len && re[j] != ']') {
                if (re[j] == '[' && j + 1 < len && (re[j + 1] == ':' || re[j + 1] == '.' || re[j + 1] == '=')) {
                    char end = re[j + 1];
                    j += 2;
                    while (j + 1 < len && !(re[j] == end && re[j + 1] == ']'))
                        j++;
                    j++;
                }
                j++;
            }
            i = j < len ? j : len - 1;
            last = 1;
            continue;
        }
        if (c == '(') {
            inner[++depth] = 0;
            last = 0;
            continue;
        }
        if (c == ')' && depth > 0) {
            int q = inner[depth--];
            if (i + 1 < len && is_quant(re[i + 1]))
                q++;
            if (q > 2) {
                snprintf(why, whylen, "quantified groups nested more than twice can take exponential memory");
                return -1;
            }
            if (q > inner[depth])
                inner[depth] = q;
            last = 1;
            continue;
        }
        if (is_quant(c)) {
            if (last == 2) {
                snprintf(why, whylen, "a quantifier right after a quantifier (at byte %zu) can take exponential "
                         "memory", i);
                return -1;
            }
            if (c == '{') {            /* {m}, {m,}, {m,n}: bounds at most LSW_REGEX_REPEAT */
                size_t j = i + 1;
                unsigned long v = 0;
                for (; j < len && re[j] != '}'; j++) {
                    if (re[j] >= '0' && re[j] <= '9') {
                        v = v * 10 + (unsigned long)(re[j] - '0');
                        if (v > LSW_REGEX_REPEAT) {
                            snprintf(why, whylen, "a repetition bound above %d", LSW_REGEX_REPEAT);
                            return -1;
                        }
                    } else if (re[j] == ',') {
                        v = 0;
                    }
                }
                i = j < len ? j : len - 1;
            }
            last = 2;
            continue;
        }
        last = c == '|' ? 0 : 1;
    }
    return 0;
}

int lsw_parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s || *s == '-' || *s == '+')
        return -1;
    double v = strtod(s, &end);
    if (end == s || !isfinite(v) || v <= 0)
        return -1;
    static const struct { const char *suf; double mul; } units[] = {
        {"", 1}, {"B", 1}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12},
        {"KiB", 1024.0}, {"MiB", 1048576.0}, {"GiB", 1073741824.0}, {"TiB", 1099511627776.0},
        {"K", 1024.0}, {"M", 1048576.0}, {"G", 1073741824.0}, {"T", 1099511627776.0}};
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
        if (strcmp(end, units[i].suf) == 0) {
            double b = v * units[i].mul;
            if (b < 1 || b > 1.8e19)
                return -1;
            *out = (uint64_t)b;
            return 0;
        }
    return -1;
}

static int parse_output(const ctx *x, const lsw_json *o)
{
    static const char *const keys[] = {"path", "format", "dtype", "shard_size", "shard_by", "compression", NULL};
    lsw_output_cfg *out = &x->c->out;
    out->format = LSW_FMT_SAFETENSORS;
    out->dtype = LSW_DT_INVALID;
    out->shard_size = 5000000000ULL;
    out->zstd_level = 1;
    out->shuffle = 1;
    if (!o)
        return 0;
    if (lsw_json_type_of(o) != LSW_JSON_OBJECT)
        return cfg_err(x, "\"output\" must be an object");
    int rc = check_keys(x, o, "output", keys);
    const char *s;
    if (rc || (rc = get_string(x, o, "path", "output", &s)))
        return rc;
    if (s && !(out->path = lsw_path_join(x->dir, s)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if ((rc = get_string(x, o, "format", "output", &s)))
        return rc;
    if (s && strcmp(s, "hdf5") == 0)
        out->format = LSW_FMT_HDF5;
    else if (s && strcmp(s, "safetensors") != 0)
        return cfg_err(x, "output.format must be \"safetensors\" or \"hdf5\", not \"%s\"", s);
    if ((rc = get_string(x, o, "dtype", "output", &s)))
        return rc;
    if (s && strcmp(s, "input") != 0) {
        out->dtype = lsw_dtype_from_torch_name(s);
        if (out->dtype == LSW_DT_INVALID)
            return cfg_err(x, "output.dtype must be \"input\", \"bfloat16\", \"float16\" or \"float32\", not \"%s\"", s);
    }
    const lsw_json *ss = lsw_json_get(o, "shard_size");
    if (ss) {
        uint64_t v;
        if (lsw_json_u64(ss, &v) == 0 && v > 0)
            out->shard_size = v;
        else if (lsw_json_type_of(ss) != LSW_JSON_STRING || lsw_parse_size(lsw_json_str(ss, NULL), &out->shard_size))
            return cfg_err(x, "output.shard_size must be a byte count or a size such as \"5GB\"");
    }
    if ((rc = get_string(x, o, "shard_by", "output", &s)))
        return rc;
    if (s && strcmp(s, "layer") == 0)
        out->shard_by_layer = 1;
    else if (s && strcmp(s, "size") != 0)
        return cfg_err(x, "output.shard_by must be \"size\" or \"layer\", not \"%s\"", s);
    const lsw_json *comp = lsw_json_get(o, "compression");
    if (comp) {
        static const char *const ckeys[] = {"codec", "level", "shuffle", NULL};
        if (lsw_json_type_of(comp) != LSW_JSON_OBJECT)
            return cfg_err(x, "output.compression must be an object");
        if ((rc = check_keys(x, comp, "output.compression", ckeys)) ||
            (rc = get_string(x, comp, "codec", "output.compression", &s)))
            return rc;
        if (s && strcmp(s, "zstd") != 0)
            return cfg_err(x, "output.compression.codec must be \"zstd\", not \"%s\"", s);
        int64_t lvl;
        if ((rc = get_int(x, comp, "level", "output.compression", 1, &lvl)))
            return rc;
        if (lvl < 1 || lvl > 22)
            return cfg_err(x, "output.compression.level must be 1..22");
        out->zstd_level = (int)lvl;
        if ((rc = get_bool(x, comp, "shuffle", "output.compression", 1, &out->shuffle)))
            return rc;
    }
    return 0;
}

void lsw_rules_free(lsw_rule *r, size_t n)
{
    for (size_t i = 0; r && i < n; i++) {
        free(r[i].match);
        free(r[i].models);
        free(r[i].weights);
        free(r[i].origin);
    }
    free(r);
}

int lsw_config_model_index(const lsw_config *c, const char *name)
{
    for (size_t i = 0; i < c->nmodels; i++)
        if (strcmp(c->model_names[i], name) == 0)
            return (int)i;
    return -1;
}

/* The derived models of "models" (lsw_derived). */
static int parse_derived(const ctx *x, const lsw_json *m)
{
    lsw_config *c = x->c;
    for (size_t i = 0; i < c->nmodels; i++) {
        const lsw_json *v = lsw_json_at(m, i);
        if (lsw_json_type_of(v) != LSW_JSON_OBJECT)
            continue;
        if (!c->derived && !(c->derived = calloc(c->nmodels, sizeof *c->derived)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        int rc = lsw_derived_parse(x->file, c->model_names[i], v, c->model_names, c->nmodels, &c->derived[i]);
        if (rc)
            return rc;
    }
    return 0;
}

/* Every method section a config may hold: the native presets and every
 * method of the "sources"/"slices" form (lsw_mkcfg). */
static const char *const all_sections[] = {"layer_swap", "linear", "rules", "task_arithmetic", "ties", "dare_linear",
                                           "dare_ties", "breadcrumbs", "breadcrumbs_ties", "della", "della_linear",
                                           "slerp", "model_stock", "passthrough", NULL};

static int parse_models(const ctx *x, const lsw_json *m)
{
    lsw_config *c = x->c;
    if (!m || lsw_json_type_of(m) != LSW_JSON_OBJECT || lsw_json_count(m) == 0)
        return cfg_err(x, "\"models\" must be a non-empty object of name: checkpoint path");
    c->nmodels = lsw_json_count(m);
    c->model_names = calloc(c->nmodels, sizeof(char *));
    c->model_paths = calloc(c->nmodels, sizeof(char *));
    if (!c->model_names || !c->model_paths)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < c->nmodels; i++) {
        size_t kl;
        const char *k = lsw_json_key(m, i, &kl);
        const lsw_json *v = lsw_json_at(m, i);
        if (kl == 0 || lsw_json_key_has_nul(m, i))
            return cfg_err(x, "models: model names must be non-empty strings without NUL");
        if (lsw_json_type_of(v) == LSW_JSON_OBJECT) { /* a derived model, parsed once every name is known */
            if (!(c->model_names[i] = strdup(k)))
                return lsw_err_set(LSW_E_NOMEM, "out of memory");
            continue;
        }
        if (lsw_json_type_of(v) != LSW_JSON_STRING || lsw_json_str_has_nul(v) || lsw_json_str(v, NULL)[0] == 0)
            return cfg_err(x, "models.%s must be a checkpoint path or a derived model (an object)", k);
        if (!(c->model_names[i] = strdup(k)) || !(c->model_paths[i] = lsw_path_join(x->dir, lsw_json_str(v, NULL))))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    return parse_derived(x, m);
}

/* The method named `s`, from its section. */
static int parse_method(const ctx *x, const lsw_json *root, const char *s)
{
    lsw_config *c = x->c;
    const lsw_json *sec = lsw_json_get(root, s);
    int known = 0;
    for (const char *const *a = all_sections; *a && !known; a++)
        known = !strcmp(*a, s);
    if (!known)
        return cfg_err(x, "method \"%s\" is unknown (layer_swap, linear, rules, task_arithmetic, ties, dare_linear, "
                       "dare_ties, breadcrumbs, breadcrumbs_ties, della, della_linear, slerp, model_stock, passthrough)", s);
    if (!sec)
        return cfg_err(x, "method \"%s\" needs a \"%s\" %s", s, s, strcmp(s, "rules") ? "object" : "array");
    int general = lsw_mkcfg_is_form(sec);
    if (lsw_json_get(root, "files_from") && !general)
        return cfg_err(x, "\"files_from\" applies to a method written with \"sources\" or \"slices\"");
    if (general)
        return lsw_mkcfg_parse(c, x->file, sec, s);
    if (strcmp(s, "layer_swap") == 0) {
        c->method = LSW_METHOD_LAYER_SWAP;
        return parse_layer_swap(x, sec);
    }
    if (strcmp(s, "linear") == 0) {
        c->method = LSW_METHOD_LINEAR;
        return parse_linear(x, sec);
    }
    if (strcmp(s, "rules") == 0) {
        c->method = LSW_METHOD_RULES;
        int rc = parse_rules(x, sec);
        /* docs/output.md: config files (and the tensor list) come from the first listed model. */
        c->first_model = 0;
        for (size_t i = 0; i < c->nrules && !rc; i++)
            if (c->rules[i].weighting == LSW_W_MAGNITUDE && c->base < 0)
                rc = cfg_err(x, "%s: magnitude weights need \"base\" to name the base model", c->rules[i].origin);
        return rc;
    }
    if (!strcmp(s, "task_arithmetic") || !strcmp(s, "ties") || !strcmp(s, "dare_linear") || !strcmp(s, "dare_ties")) {
        c->method = LSW_METHOD_TASKVEC;
        return parse_taskvec(x, sec, s);
    }
    return cfg_err(x, "method \"%s\": write its section with \"sources\" or \"slices\" (docs/mergekit.md)", s);
}

static int parse_root(const ctx *x, const lsw_json *root)
{
    lsw_config *c = x->c;
    static const char *const keys[] = {"models", "base", "method", "output", "files_from", "layer_swap", "linear",
                                       "rules", "task_arithmetic", "ties", "dare_linear", "dare_ties", "breadcrumbs",
                                       "breadcrumbs_ties", "della", "della_linear", "slerp", "model_stock",
                                       "passthrough", NULL};
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT)
        return cfg_err(x, "the config must be a JSON object");
    int rc = check_keys(x, root, "config", keys);
    if (rc || (rc = parse_models(x, lsw_json_get(root, "models"))))
        return rc;
    const char *s;
    c->base = -1;
    if ((rc = get_string(x, root, "base", "config", &s)))
        return rc;
    if (s && (rc = model_ref(x, s, "base", &c->base)))
        return rc;
    c->first_model = -1;
    if ((rc = get_string(x, root, "files_from", "config", &s)))
        return rc;
    if (s && (rc = model_ref(x, s, "files_from", &c->first_model)))
        return rc;
    if ((rc = get_string(x, root, "method", "config", &s)))
        return rc;
    /* one method section, the method's own: another would be ignored unchecked */
    int sections = 0;
    const char *present = NULL;
    for (const char *const *a = all_sections; *a; a++)
        if (lsw_json_get(root, *a)) {
            sections++;
            present = *a;
        }
    if (!s)
        s = sections == 1 ? present : NULL;
    if (!s)
        return cfg_err(x, "\"method\" is required (layer_swap, linear, rules, a task-vector method, slerp, ...)");
    if (sections > 1)
        for (const char *const *a = all_sections; *a; a++)
            if (strcmp(*a, s) != 0 && lsw_json_get(root, *a))
                return cfg_err(x, "method \"%s\": remove the unused \"%s\" section", s, *a);
    if ((rc = parse_method(x, root, s)))
        return rc;
    if (c->first_model < 0)
        c->first_model = 0;
    return parse_output(x, lsw_json_get(root, "output"));
}

int lsw_config_parse(const char *text, size_t len, const char *name, const char *dir, lsw_config **out)
{
    *out = NULL;
    lsw_config *c = calloc(1, sizeof *c);
    if (!c)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    c->base = -1;
    c->file = strdup(name);
    c->dir = strdup(dir);
    ctx x = {name, dir, c};
    char why[256];
    lsw_json_doc *doc = NULL;
    int rc;
    if (!c->file || !c->dir)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    else if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        rc = cfg_err(&x, "not valid JSON: %s", why);
    else
        rc = parse_root(&x, lsw_json_root(doc));
    if (!rc)
        rc = lsw_derived_check(c);
    lsw_json_free(doc);
    c->hash = lsw_fnv1a64(LSW_FNV1A64_INIT, text, len);
    if (!rc && !(c->text = strndup(text, len)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (rc) {
        lsw_config_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

int lsw_config_load(const char *path, lsw_config **out)
{
    char *text;
    size_t len;
    *out = NULL;
    int rc = lsw_read_file(path, &text, &len);
    if (rc) {
        /* An unreadable config is a usage/config problem, not a bad checkpoint. */
        lsw_err_clear();
        return lsw_err_set(LSW_E_CONFIG, "%s: cannot read the config file", path);
    }
    char *dir = lsw_dirname(path);
    int yaml = lsw_mkyaml_is_yaml_name(path);
    if (yaml && dir) {
        /* a mergekit config: translated into its native JSON first (docs/mergekit.md) */
        char *json = NULL;
        size_t jlen = 0;
        rc = lsw_mkyaml_to_json(text, len, path, dir, &json, &jlen);
        free(text);
        text = json;
        len = jlen;
    }
    if (!rc)
        rc = dir ? lsw_config_parse(text, len, path, dir, out) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc && yaml)
        (*out)->yaml = 1;
    free(dir);
    free(text);
    return rc;
}

void lsw_config_free(lsw_config *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->nmodels; i++) {
        free(c->model_names ? c->model_names[i] : NULL);
        free(c->model_paths ? c->model_paths[i] : NULL);
    }
    for (size_t i = 0; c->derived && i < c->nmodels; i++)
        lsw_derived_def_free(c->derived[i]);
    free(c->derived);
    free(c->model_names);
    free(c->model_paths);
    lsw_rules_free(c->rules, c->nrules);
    lsw_mkcfg_free(c);
    free(c->out.path);
    free(c->text);
    free(c->file);
    free(c->dir);
    free(c);
}
