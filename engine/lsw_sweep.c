#include "lsw_sweep.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_crc32c.h"
#include "lsw_derived.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_jsonw.h"
#include "lsw_kernels.h"
#include "lsw_lock.h"
#include "lsw_modelfiles.h"
#include "lsw_plan.h"
#include "lsw_progress.h"
#include "lsw_signal.h"
#include "lsw_strbuf.h"

/* Grid keys: the layer_swap keys (lsw_config), in expansion order. */
enum { G_TASK, G_LANG, G_KEYS = LSW_LS_NKEYS };
#define grid_key(g) (lsw_layer_swap_keys[g].key)

struct lsw_sweep {
    char *file, *dir;
    char *out_path;        /* resolved <path> */
    lsw_dedup dedup;
    size_t n;
    char **names;          /* "math1-swh1-b4-t1" */
    char **texts;          /* merge configs (JSON) */
    lsw_config **cfgs;
};

static int sweep_err(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int sweep_err(const char *file, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return lsw_err_set(LSW_E_CONFIG, "%s: %s", file, msg);
}

/* The source text of a value. */
static void put_raw(lsw_strbuf *b, const char *text, const lsw_json *v)
{
    size_t off, len;
    lsw_json_span(v, &off, &len);
    lsw_sb_put(b, text + off, len);
}

typedef struct vspan { const char *p; size_t len; } vspan;

static int cmp_vspan(const void *a, const void *b)
{
    const vspan *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->p, y->p, n);
    return c ? c : (x->len < y->len ? -1 : x->len > y->len);
}

/* Config error if grid axis `arr` (NULL: absent) lists the same value twice
 * (same JSON text). */
static int distinct_values(const char *file, const char *text, const lsw_json *arr, const char *key)
{
    size_t n = arr ? lsw_json_count(arr) : 0;
    if (n < 2)
        return 0;
    vspan *v = malloc(n * sizeof *v);
    if (!v)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < n; i++) {
        size_t off, len;
        lsw_json_span(lsw_json_at(arr, i), &off, &len);
        v[i] = (vspan){text + off, len};
    }
    qsort(v, n, sizeof *v, cmp_vspan);
    int rc = 0;
    for (size_t i = 1; i < n && !rc; i++)
        if (!cmp_vspan(&v[i - 1], &v[i]))
            rc = sweep_err(file, "grid.%s lists %.*s twice", key, (int)(v[i].len < 64 ? v[i].len : 64), v[i].p);
    free(v);
    return rc;
}

/* Value text of grid key g for choice i, for names: strings unquoted. */
static void value_label(const char *text, const lsw_json *arr, size_t i, char *buf, size_t len)
{
    const lsw_json *v = lsw_json_at(arr, i);
    const char *sv = lsw_json_str(v, NULL);
    if (sv) {
        snprintf(buf, len, "%s", sv);
        return;
    }
    size_t off, l;
    lsw_json_span(v, &off, &l);
    snprintf(buf, len, "%.*s", (int)l, text + off);
}

/* The sweep file's parts, as parsed. */
typedef struct sweep_src {
    const char *text;
    const lsw_json *models, *grid, *out, *base;
    const lsw_json *axis[G_KEYS];  /* NULL: key absent (its default) */
    size_t count[G_KEYS];
    const char *raw_path;          /* output.path as written */
} sweep_src;

/* Top-level keys, models, grid axes and output of the sweep file. */
static int parse_top(lsw_sweep *s, const lsw_json *root, sweep_src *x)
{
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT)
        return sweep_err(s->file, "a sweep must be a JSON object");
    for (size_t i = 0; i < lsw_json_count(root); i++) {
        const char *k = lsw_json_key(root, i, NULL);
        if (strcmp(k, "models") && strcmp(k, "base") && strcmp(k, "grid") && strcmp(k, "output"))
            return sweep_err(s->file, "unknown key \"%s\" (a sweep has models, base, grid, output)", k);
    }
    x->models = lsw_json_get(root, "models");
    x->grid = lsw_json_get(root, "grid");
    x->out = lsw_json_get(root, "output");
    x->base = lsw_json_get(root, "base");
    if (!x->models || lsw_json_type_of(x->models) != LSW_JSON_OBJECT)
        return sweep_err(s->file, "\"models\" must be an object of name: checkpoint path");
    if (!x->grid || lsw_json_type_of(x->grid) != LSW_JSON_OBJECT)
        return sweep_err(s->file, "\"grid\" must be an object of lists");
    if (!x->out || lsw_json_type_of(x->out) != LSW_JSON_OBJECT || !lsw_json_str(lsw_json_get(x->out, "path"), NULL))
        return sweep_err(s->file, "\"output\" must be an object with a \"path\"");
    x->raw_path = lsw_json_str(lsw_json_get(x->out, "path"), NULL);
    for (size_t i = 0; i < lsw_json_count(x->grid); i++) {
        const char *k = lsw_json_key(x->grid, i, NULL);
        int g = 0;
        while (g < G_KEYS && strcmp(grid_key(g), k))
            g++;
        if (g == G_KEYS)
            return sweep_err(s->file, "grid: unknown key \"%s\"", k);
        if (lsw_json_type_of(lsw_json_at(x->grid, i)) != LSW_JSON_ARRAY || !lsw_json_count(lsw_json_at(x->grid, i)))
            return sweep_err(s->file, "grid.%s must be a non-empty list", k);
        x->axis[g] = lsw_json_at(x->grid, i);
    }
    if (!x->axis[G_TASK] || !x->axis[G_LANG])
        return sweep_err(s->file, "grid needs task_expert and language_expert lists");
    return 0;
}

/* output.dedup: how shards shared between merges are stored. */
static int parse_dedup(lsw_sweep *s, const lsw_json *out)
{
    const char *dd = lsw_json_str(lsw_json_get(out, "dedup"), NULL);
    if (lsw_json_get(out, "dedup") && !dd)
        return sweep_err(s->file, "output.dedup must be \"reflink\", \"hardlink\" or \"copy\"");
    if (!dd || !strcmp(dd, "reflink"))
        s->dedup = LSW_DEDUP_REFLINK;
    else if (!strcmp(dd, "hardlink"))
        s->dedup = LSW_DEDUP_HARDLINK;
    else if (!strcmp(dd, "copy"))
        s->dedup = LSW_DEDUP_COPY;
    else
        return sweep_err(s->file, "output.dedup must be \"reflink\", \"hardlink\" or \"copy\", not \"%s\"", dd);
    return 0;
}

/* The number of merges, bounded, and what their configs may take. */
static int count_merges(lsw_sweep *s, sweep_src *x)
{
    s->n = 1;
    for (int g = 0; g < G_KEYS; g++) {
        x->count[g] = x->axis[g] ? lsw_json_count(x->axis[g]) : 1;
        if (s->n > 100000 / x->count[g])
            return sweep_err(s->file, "the grid has more than 100000 merges");
        s->n *= x->count[g];
    }
    /* every merge's config repeats "models", "base" and "output": bound what
     * the expansion (and sweep.json) may take, before allocating it */
    size_t per = 1024, off, slen;
    const lsw_json *rep[3] = {x->models, x->base, x->out};
    for (int i = 0; i < 3; i++)
        if (rep[i]) {
            lsw_json_span(rep[i], &off, &slen);
            per += slen;
        }
    if (s->n > LSW_SWEEP_MAX_TEXT / per)
        return sweep_err(s->file, "the grid's %zu merges would need more than %llu MB of merge configs; split the "
                         "sweep", s->n, (unsigned long long)(LSW_SWEEP_MAX_TEXT >> 20));
    /* a value listed twice on an axis would give two merges of the same name */
    int rc = 0;
    for (int g = 0; g < G_KEYS && !rc; g++)
        rc = distinct_values(s->file, x->text, x->axis[g], grid_key(g));
    return rc;
}

/* Merge k's short name: the experts and the values of the keys that vary. */
static void merge_name(const sweep_src *x, const size_t *idx, lsw_strbuf *nm)
{
    for (int g = 0; g < G_KEYS; g++) {
        if (g > G_LANG && x->count[g] == 1)
            continue;
        char v[128];
        value_label(x->text, x->axis[g], idx[g], v, sizeof v);
        for (char *c = v; *c; c++)
            if (*c == '/' || *c == ' ')
                *c = '_';
        lsw_sb_printf(nm, "%s%s%s", g ? "-" : "", lsw_layer_swap_keys[g].name_prefix, v);
    }
}

/* Merge k's config text: an ordinary layer_swap config. */
static void merge_config(const sweep_src *x, const size_t *idx, size_t k, const char *name, lsw_strbuf *b)
{
    lsw_sb_str(b, "{\"models\": ");
    put_raw(b, x->text, x->models);
    if (x->base) {
        lsw_sb_str(b, ", \"base\": ");
        put_raw(b, x->text, x->base);
    }
    lsw_sb_str(b, ", \"method\": \"layer_swap\", \"layer_swap\": {");
    for (int g = 0; g < G_KEYS; g++) {
        lsw_sb_printf(b, "%s\"%s\": ", g ? ", " : "", grid_key(g));
        if (x->axis[g])
            put_raw(b, x->text, lsw_json_at(x->axis[g], idx[g]));
        else
            lsw_sb_str(b, lsw_layer_swap_keys[g].dflt);
    }
    lsw_sb_str(b, "}, \"output\": {\"path\": ");
    size_t subn = strlen(x->raw_path) + strlen(name) + 32;
    char *sub = malloc(subn);
    if (sub)
        snprintf(sub, subn, "%s/%zu-%s", x->raw_path, k, name);
    lsw_sb_json_string(b, sub ? sub : "");
    free(sub);
    for (size_t i = 0; i < lsw_json_count(x->out); i++) {
        const char *key = lsw_json_key(x->out, i, NULL);
        if (!strcmp(key, "path") || !strcmp(key, "dedup"))
            continue;
        lsw_sb_str(b, ", ");
        lsw_sb_json_string(b, key);
        lsw_sb_str(b, ": ");
        put_raw(b, x->text, lsw_json_at(x->out, i));
    }
    lsw_sb_str(b, "}}");
}

/* Merge k: name, config text, parsed config, output folder <path>/<k>-<name>. */
static int expand_merge(lsw_sweep *s, const sweep_src *x, size_t k)
{
    size_t idx[G_KEYS], r = k;
    for (int g = G_KEYS - 1; g >= 0; g--) {
        idx[g] = r % x->count[g];
        r /= x->count[g];
    }
    lsw_strbuf nm = {0}, b = {0};
    merge_name(x, idx, &nm);
    if (!lsw_sb_failed(&nm) && nm.p)
        merge_config(x, idx, k, nm.p, &b);
    if (lsw_sb_failed(&b) || lsw_sb_failed(&nm) || !nm.p || !b.p) {
        lsw_sb_free(&b);
        lsw_sb_free(&nm);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    s->names[k] = nm.p;
    s->texts[k] = b.p;
    int rc = lsw_config_parse(b.p, b.len, s->file, s->dir, &s->cfgs[k]);
    if (!rc) {
        char leaf[600];
        snprintf(leaf, sizeof leaf, "%zu-%s", k, nm.p);
        free(s->cfgs[k]->out.path);
        s->cfgs[k]->out.path = lsw_path_join(s->out_path, leaf);
        if (!s->cfgs[k]->out.path)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    return rc;
}

static int parse(lsw_sweep *s, const char *text, size_t len, const char *out_override)
{
    char why[256];
    lsw_json_doc *doc = NULL;
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        return sweep_err(s->file, "not valid JSON: %s", why);
    sweep_src x = {0};
    x.text = text;
    int rc = parse_top(s, lsw_json_root(doc), &x);
    if (!rc)
        rc = parse_dedup(s, x.out);
    if (!rc && !(s->out_path = out_override ? strdup(out_override) : lsw_path_join(s->dir, x.raw_path)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (!rc)
        rc = count_merges(s, &x);
    if (!rc) {
        s->names = calloc(s->n, sizeof *s->names);
        s->texts = calloc(s->n, sizeof *s->texts);
        s->cfgs = calloc(s->n, sizeof *s->cfgs);
        if (!s->names || !s->texts || !s->cfgs)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t k = 0; k < s->n && !rc; k++)
        rc = expand_merge(s, &x, k);
    lsw_json_free(doc);
    return rc;
}

int lsw_sweep_load(const char *path, const char *out_override, lsw_sweep **out)
{
    *out = NULL;
    lsw_sweep *s = calloc(1, sizeof *s);
    char *text = NULL;
    size_t len;
    if (!s || !(s->file = strdup(path)) || !(s->dir = lsw_dirname(path))) {
        lsw_sweep_free(s);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    int rc = lsw_read_file(path, &text, &len);
    if (rc) {
        lsw_err_clear();
        rc = lsw_err_set(LSW_E_CONFIG, "%s: cannot read the sweep file", path);
    } else {
        rc = parse(s, text, len, out_override);
    }
    free(text);
    if (rc) {
        lsw_sweep_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

void lsw_sweep_free(lsw_sweep *s)
{
    if (!s)
        return;
    for (size_t k = 0; k < s->n; k++) {
        free(s->names ? s->names[k] : NULL);
        free(s->texts ? s->texts[k] : NULL);
        lsw_config_free(s->cfgs ? s->cfgs[k] : NULL);
    }
    free(s->names);
    free(s->texts);
    free(s->cfgs);
    free(s->out_path);
    free(s->file);
    free(s->dir);
    free(s);
}

size_t lsw_sweep_count(const lsw_sweep *s) { return s->n; }
const char *lsw_sweep_name(const lsw_sweep *s, size_t k) { return s->names[k]; }
const char *lsw_sweep_output(const lsw_sweep *s, size_t k) { return s->cfgs[k]->out.path; }
const lsw_config *lsw_sweep_config(const lsw_sweep *s, size_t k) { return s->cfgs[k]; }
lsw_dedup lsw_sweep_dedup(const lsw_sweep *s) { return s->dedup; }

int lsw_sweep_take_config(lsw_sweep *s, size_t k, lsw_config **out)
{
    if (k >= s->n || !s->cfgs[k])
        return lsw_err_set(LSW_E_INTERNAL, "sweep merge %zu taken twice", k);
    *out = s->cfgs[k];
    s->cfgs[k] = NULL;
    return 0;
}

int lsw_sweep_write_list(const lsw_sweep *s)
{
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *r = lsw_jw_root(w);
    lsw_jw_str(w, r, "sweep", s->file);
    /* the configs below keep the sweep file's relative model paths */
    char *abs = realpath(s->dir, NULL);
    lsw_jw_str(w, r, "paths_relative_to", abs ? abs : s->dir);
    free(abs);
    lsw_jw_node *list = lsw_jw_arr(w, r, "merges");
    for (size_t k = 0; k < s->n; k++) {
        lsw_jw_node *m = lsw_jw_obj(w, list, NULL);
        lsw_jw_u64(w, m, "index", k);
        lsw_jw_str(w, m, "name", s->names[k]);
        lsw_jw_str(w, m, "path", s->cfgs[k]->out.path);
        lsw_jw_raw(w, m, "config", s->texts[k]);
    }
    char *text = NULL;
    size_t len = 0;
    int rc = lsw_jw_print(w, &text, &len);
    lsw_jw_free(w);
    if (!rc)
        rc = lsw_mkdir_p(s->out_path);
    if (!rc)
        rc = lsw_write_file_atomic(s->out_path, "sweep.json", text, len);
    free(text);
    return rc;
}

/* ---- running ------------------------------------------------------------- */

/* Do all plans have the same tensors, dtypes and layout (so shards line up)? */
static int same_layout(lsw_plan *const *plans, size_t n, const char *file)
{
    const lsw_plan *a = plans[0];
    for (size_t k = 1; k < n; k++) {
        const lsw_plan *b = plans[k];
        int ok = a->n == b->n && a->nshards == b->nshards;
        for (size_t s = 0; ok && s < a->nshards; s++)
            ok = a->shards[s].data_start == b->shards[s].data_start &&
                 memcmp(a->shards[s].header, b->shards[s].header, a->shards[s].data_start) == 0;
        if (!ok)
            return lsw_err_set(LSW_E_MISMATCH, "%s: merges 0 and %zu have different tensors or layouts (do the experts share one architecture?)",
                               file, k);
    }
    return 0;
}

/* Add "SWEEP: merge K (NAME): " in front of the recorded error detail. */
static int name_merge(const lsw_sweep *s, size_t k, int rc)
{
    char *d = strdup(lsw_err_detail());
    const char *rest = d ? d : "";
    size_t fl = strlen(s->file);
    if (!strncmp(rest, s->file, fl) && !strncmp(rest + fl, ": ", 2))
        rest += fl + 2;   /* the merge's config file is the sweep file: named once */
    lsw_err_clear();
    rc = lsw_err_set(rc, "%s: merge %zu (%s): %s", s->file, k, s->names[k], rest);
    free(d);
    return rc;
}

/* Validate every model the sweep names and build every merge's plan from the
 * headers alone: models[m] (nmodels entries) holds those any merge reads,
 * own[k·nmodels + m] the ones merge k reads (they enter its identity), and
 * plans[k] its plan.  The caller frees all three arrays' contents. */
static int prepare(const lsw_sweep *s, lsw_ckpt **models, lsw_ckpt **own, lsw_plan **plans)
{
    size_t E = s->n;
    const lsw_config *c0 = s->cfgs[0];
    int *used = calloc(c0->nmodels, sizeof *used), *u = calloc(c0->nmodels, sizeof *u);
    int rc = (!used || !u) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t k = 0; k < E && !rc; k++) {
        lsw_plan_models_used(s->cfgs[k], u);
        for (size_t m = 0; m < c0->nmodels; m++)
            used[m] |= u[m];
    }
    if (!rc)
        rc = lsw_plan_open_models(c0, used, models);
    for (size_t k = 0; k < E && !rc; k++) {
        lsw_plan_models_used(s->cfgs[k], u);
        for (size_t m = 0; m < c0->nmodels; m++)
            own[k * c0->nmodels + m] = u[m] ? models[m] : NULL;
        rc = lsw_plan_build(s->cfgs[k], own + k * c0->nmodels, &plans[k]);
        if (!rc && k == 0) /* issue 10: nor into the sweep folder (sweep.json, the lock) */
            rc = lsw_guard_output(s->file, s->out_path, (const char *const *)c0->model_names,
                                  (const char *const *)c0->model_paths, c0->nmodels);
        if (!rc)
            rc = lsw_plan_check_output(plans[k]);
        if (rc)
            rc = name_merge(s, k, rc);
    }
    if (!rc)
        rc = same_layout(plans, E, s->file);
    free(used);
    free(u);
    return rc;
}

int lsw_sweep_check(const lsw_sweep *s)
{
    size_t E = s->n, nm = s->cfgs[0]->nmodels;
    lsw_ckpt **models = calloc(nm, sizeof *models), **own = calloc(E * nm + 1, sizeof *own);
    lsw_plan **plans = calloc(E, sizeof *plans);
    int rc = (!models || !own || !plans) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : prepare(s, models, own, plans);
    for (size_t k = 0; plans && k < E; k++)
        lsw_plan_free(plans[k]);
    for (size_t m = 0; models && m < nm; m++)
        lsw_ckpt_close(models[m]);
    free(models);
    free(own);
    free(plans);
    return rc;
}

/* Magnitude weights of every merge still to run: each model's MAV once. */
static int sweep_magnitude(const lsw_sweep *s, lsw_ckpt **models, lsw_plan **plans, const unsigned char *done,
                           const lsw_run_opts *o, const lsw_comm *c)
{
    const lsw_config *c0 = s->cfgs[0];
    int *u = calloc(c0->nmodels, sizeof *u);
    double *mav = calloc(c0->nmodels, sizeof *mav);
    int rc = (!u || !mav) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    int any = 0;
    for (size_t k = 0; k < s->n && !rc; k++)
        for (size_t m = 0; m < c0->nmodels && !done[k]; m++) {
            u[m] |= plans[k]->mav_needed[m];
            any |= u[m];
        }
    if (!rc && any)
        rc = lsw_model_mavs(c0, models, u, o, c, mav);
    for (size_t k = 0; k < s->n && !rc; k++)
        if (!plans[k]->ready && !done[k])
            rc = lsw_plan_set_mav(plans[k], mav);
    free(u);
    free(mav);
    return lsw_agree(c, rc);
}

/* Most HDF5 outputs one executor run writes at once (rank 0 holds them
 * open); a larger HDF5 sweep runs in batches, reading its inputs once per
 * batch. */
#define SWEEP_H5_BATCH 64

static void sweep_lines(const lsw_sweep *s, const lsw_exec_report *rep, double seconds)
{
    static const char *const mode[] = {"reflinks", "hard links", "copies"};
    fprintf(stderr,
            "layerswap sweep: %zu merges (%zu already complete) in %.2f s -> %s\n"
            "layerswap sweep: read %.3f GB; distinct content %.3f GB, written %.3f GB; %zu file(s) shared as %s\n",
            s->n, rep->complete_before, seconds, s->out_path, (double)rep->bytes_read[2] / 1e9,
            (double)rep->distinct_bytes / 1e9, (double)rep->bytes_written[2] / 1e9, rep->files_shared,
            rep->files_shared ? mode[rep->shared_as] : "-");
}

/* Add batch report b into the sweep's total r. */
static void add_report(lsw_exec_report *r, const lsw_exec_report *b, int first)
{
    if (first) {
        *r = *b;
        return;
    }
    r->outputs += b->outputs;
    r->complete_before += b->complete_before;
    r->files_written += b->files_written;
    r->files_reused += b->files_reused;
    r->files_shared += b->files_shared;
    r->output_bytes += b->output_bytes;
    r->distinct_bytes += b->distinct_bytes;
    r->compressed_bytes += b->compressed_bytes;
    r->phase_tensors_s += b->phase_tensors_s;
    r->phase_commit_s += b->phase_commit_s;
    for (int j = 0; j < 3; j++) {
        r->busy_s[j] += b->busy_s[j];
        r->wait_s[j] += b->wait_s[j];
        r->bytes_read[j] += b->bytes_read[j];
        r->bytes_written[j] += b->bytes_written[j];
    }
}

int lsw_sweep_run(const lsw_sweep *s, const lsw_run_opts *o, const lsw_comm *c)
{
    size_t E = s->n, nm = s->cfgs[0]->nmodels;
    lsw_ckpt **models = calloc(nm, sizeof *models), **own = calloc(E * nm + 1, sizeof *own);
    lsw_plan **plans = calloc(E, sizeof *plans);
    unsigned char *done = calloc(E, 1);
    int rc = (!models || !own || !plans || !done) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    double t0 = lsw_now();
    if (!rc)
        rc = prepare(s, models, own, plans);
    /* issue 10: rank 0 owns the sweep folder and every merge folder before any work */
    for (size_t k = 0; !rc && c->rank == 0 && k <= E; k++)
        rc = lsw_lock_dir(k ? s->cfgs[k - 1]->out.path : s->out_path, "sweep");
    if (!rc && c->rank == 0)
        lsw_outdir_remove_temporaries(s->out_path); /* a killed run's .sweep.json.PID.lsw-tmp */
    rc = lsw_agree(c, rc);
    if (!rc)
        rc = lsw_exec_done(plans, E, o->overwrite, c, done);
    int pending = 0;
    for (size_t k = 0; k < E; k++)
        pending |= !done[k];
    if (!rc && pending)
        rc = lsw_derived_prepare(s->cfgs[0], models, o->mem, o->quiet, c);
    if (!rc)
        rc = sweep_magnitude(s, models, plans, done, o, c);
    double magnitude_s = lsw_now() - t0;
    if (!rc && c->rank == 0)
        rc = lsw_sweep_write_list(s);
    rc = lsw_agree(c, rc);
    lsw_exec_report rep = {0}, batch;
    size_t step = s->cfgs[0]->out.format == LSW_FMT_HDF5 ? SWEEP_H5_BATCH : E;
    for (size_t b = 0; b < E && !rc; b += step) {
        size_t n = E - b < step ? E - b : step;
        rc = lsw_exec_run(plans + b, n, done + b, o, (int)s->dedup, "sweep", c, &batch);
        add_report(&rep, &batch, b == 0);
    }
    rep.outputs = E;
    double total_s = lsw_now() - t0;
    if (!rc)
        rc = lsw_exec_write_summary(o, "sweep", s->out_path, plans, E, &rep, magnitude_s, total_s, c);
    if (!rc && c->rank == 0 && !o->quiet)
        sweep_lines(s, &rep, total_s);
    for (size_t k = 0; plans && k < E; k++)
        lsw_plan_free(plans[k]);
    for (size_t m = 0; models && m < nm; m++)
        lsw_ckpt_close(models[m]);
    free(models);
    free(own);
    free(plans);
    free(done);
    return rc;
}
