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
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_kernels.h"
#include "lsw_lock.h"
#include "lsw_modelfiles.h"
#include "lsw_plan.h"
#include "lsw_progress.h"
#include "lsw_signal.h"
#include "lsw_strbuf.h"

/* Grid keys in expansion order (the last varies fastest). */
enum { G_TASK, G_LANG, G_BOTTOM, G_TOP, G_LOWER, G_UPPER, G_TW, G_NL, G_NLW, G_KEYS };
static const char *const grid_keys[G_KEYS] = {"task_expert", "language_expert", "bottom", "top", "lower_transition",
                                              "upper_transition", "transition_weights", "non_layer",
                                              "non_layer_weights"};
static const char *const grid_default[G_KEYS] = {NULL, NULL, "0", "0", "0", "0", "\"uniform\"", "\"average\"",
                                                 "\"uniform\""};
static const char *const name_prefix[G_KEYS] = {"", "", "b", "t", "lt", "ut", "tw-", "nl-", "nlw-"};

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

static int parse(lsw_sweep *s, const char *text, size_t len, const char *out_override)
{
    char why[256];
    lsw_json_doc *doc = NULL;
    if (lsw_json_parse(text, len, &doc, why, sizeof why) != 0)
        return sweep_err(s->file, "not valid JSON: %s", why);
    int rc = 0;
    const lsw_json *root = lsw_json_root(doc), *models, *grid, *out, *base;
    const lsw_json *axis[G_KEYS] = {0};
    size_t count[G_KEYS];
    if (lsw_json_type_of(root) != LSW_JSON_OBJECT) {
        rc = sweep_err(s->file, "a sweep must be a JSON object");
        goto done;
    }
    for (size_t i = 0; i < lsw_json_count(root) && !rc; i++) {
        const char *k = lsw_json_key(root, i, NULL);
        if (strcmp(k, "models") && strcmp(k, "base") && strcmp(k, "grid") && strcmp(k, "output"))
            rc = sweep_err(s->file, "unknown key \"%s\" (a sweep has models, base, grid, output)", k);
    }
    models = lsw_json_get(root, "models");
    grid = lsw_json_get(root, "grid");
    out = lsw_json_get(root, "output");
    base = lsw_json_get(root, "base");
    if (!rc && (!models || lsw_json_type_of(models) != LSW_JSON_OBJECT))
        rc = sweep_err(s->file, "\"models\" must be an object of name: checkpoint path");
    if (!rc && (!grid || lsw_json_type_of(grid) != LSW_JSON_OBJECT))
        rc = sweep_err(s->file, "\"grid\" must be an object of lists");
    if (!rc && (!out || lsw_json_type_of(out) != LSW_JSON_OBJECT || !lsw_json_str(lsw_json_get(out, "path"), NULL)))
        rc = sweep_err(s->file, "\"output\" must be an object with a \"path\"");
    for (size_t i = 0; !rc && i < lsw_json_count(grid); i++) {
        const char *k = lsw_json_key(grid, i, NULL);
        int g = 0;
        while (g < G_KEYS && strcmp(grid_keys[g], k))
            g++;
        if (g == G_KEYS)
            rc = sweep_err(s->file, "grid: unknown key \"%s\"", k);
        else if (lsw_json_type_of(lsw_json_at(grid, i)) != LSW_JSON_ARRAY || !lsw_json_count(lsw_json_at(grid, i)))
            rc = sweep_err(s->file, "grid.%s must be a non-empty list", k);
        else
            axis[g] = lsw_json_at(grid, i);
    }
    if (!rc && (!axis[G_TASK] || !axis[G_LANG]))
        rc = sweep_err(s->file, "grid needs task_expert and language_expert lists");
    if (rc)
        goto done;
    /* output: everything but path and dedup goes into each merge */
    const char *dd = lsw_json_str(lsw_json_get(out, "dedup"), NULL);
    if (lsw_json_get(out, "dedup") && !dd)
        rc = sweep_err(s->file, "output.dedup must be \"reflink\", \"hardlink\" or \"copy\"");
    else if (!dd || !strcmp(dd, "reflink"))
        s->dedup = LSW_DEDUP_REFLINK;
    else if (!strcmp(dd, "hardlink"))
        s->dedup = LSW_DEDUP_HARDLINK;
    else if (!strcmp(dd, "copy"))
        s->dedup = LSW_DEDUP_COPY;
    else
        rc = sweep_err(s->file, "output.dedup must be \"reflink\", \"hardlink\" or \"copy\", not \"%s\"", dd);
    if (rc)
        goto done;
    const char *raw_path = lsw_json_str(lsw_json_get(out, "path"), NULL);
    s->out_path = out_override ? strdup(out_override) : lsw_path_join(s->dir, raw_path);
    s->n = 1;
    for (int g = 0; g < G_KEYS; g++) {
        count[g] = axis[g] ? lsw_json_count(axis[g]) : 1;
        if (s->n > 100000 / count[g]) {
            rc = sweep_err(s->file, "the grid has more than 100000 merges");
            goto done;
        }
        s->n *= count[g];
    }
    /* every merge's config repeats "models", "base" and "output": bound what
     * the expansion (and sweep.json) may take, before allocating it */
    {
        size_t per = 1024, off, slen;
        const lsw_json *rep[3] = {models, base, out};
        for (int i = 0; i < 3; i++)
            if (rep[i]) {
                lsw_json_span(rep[i], &off, &slen);
                per += slen;
            }
        if (s->n > LSW_SWEEP_MAX_TEXT / per) {
            rc = sweep_err(s->file, "the grid's %zu merges would need more than %llu MB of merge configs; split the "
                           "sweep", s->n, (unsigned long long)(LSW_SWEEP_MAX_TEXT >> 20));
            goto done;
        }
    }
    /* a value listed twice on an axis would give two merges of the same name */
    for (int g = 0; g < G_KEYS && !rc; g++)
        rc = distinct_values(s->file, text, axis[g], grid_keys[g]);
    if (rc)
        goto done;
    s->names = calloc(s->n, sizeof *s->names);
    s->texts = calloc(s->n, sizeof *s->texts);
    s->cfgs = calloc(s->n, sizeof *s->cfgs);
    if (!s->out_path || !s->names || !s->texts || !s->cfgs) {
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t k = 0; k < s->n && !rc; k++) {
        size_t idx[G_KEYS], r = k;
        for (int g = G_KEYS - 1; g >= 0; g--) {
            idx[g] = r % count[g];
            r /= count[g];
        }
        /* short name */
        lsw_strbuf nm = {0};
        for (int g = 0; g < G_KEYS; g++) {
            if (g > G_LANG && count[g] == 1)
                continue;
            char v[128];
            value_label(text, axis[g], idx[g], v, sizeof v);
            for (char *c = v; *c; c++)
                if (*c == '/' || *c == ' ')
                    *c = '_';
            lsw_sb_printf(&nm, "%s%s%s", g ? "-" : "", name_prefix[g], v);
        }
        /* the merge's config */
        lsw_strbuf b = {0};
        lsw_sb_str(&b, "{\"models\": ");
        put_raw(&b, text, models);
        if (base) {
            lsw_sb_str(&b, ", \"base\": ");
            put_raw(&b, text, base);
        }
        lsw_sb_str(&b, ", \"method\": \"layer_swap\", \"layer_swap\": {");
        for (int g = 0; g < G_KEYS; g++) {
            lsw_sb_printf(&b, "%s\"%s\": ", g ? ", " : "", grid_keys[g]);
            if (axis[g])
                put_raw(&b, text, lsw_json_at(axis[g], idx[g]));
            else
                lsw_sb_str(&b, grid_default[g]);
        }
        lsw_sb_str(&b, "}, \"output\": {\"path\": ");
        char *sub = NULL;
        size_t subn = nm.p ? strlen(raw_path) + strlen(nm.p) + 32 : 0;
        if (nm.p && (sub = malloc(subn)))
            snprintf(sub, subn, "%s/%zu-%s", raw_path, k, nm.p);
        lsw_sb_json_string(&b, sub ? sub : "");
        free(sub);
        for (size_t i = 0; i < lsw_json_count(out); i++) {
            const char *key = lsw_json_key(out, i, NULL);
            if (!strcmp(key, "path") || !strcmp(key, "dedup"))
                continue;
            lsw_sb_str(&b, ", ");
            lsw_sb_json_string(&b, key);
            lsw_sb_str(&b, ": ");
            put_raw(&b, text, lsw_json_at(out, i));
        }
        lsw_sb_str(&b, "}}");
        if (lsw_sb_failed(&b) || lsw_sb_failed(&nm) || !nm.p) {
            lsw_sb_free(&b);
            lsw_sb_free(&nm);
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            break;
        }
        s->names[k] = nm.p;
        s->texts[k] = b.p;
        rc = lsw_config_parse(b.p, b.len, s->file, s->dir, &s->cfgs[k]);
        if (!rc) {
            /* the folder: <path>/<K>-<name>, <path> resolved (or -o) */
            char leaf[600];
            snprintf(leaf, sizeof leaf, "%zu-%s", k, nm.p);
            free(s->cfgs[k]->out.path);
            s->cfgs[k]->out.path = lsw_path_join(s->out_path, leaf);
            if (!s->cfgs[k]->out.path)
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        }
    }
done:
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
    lsw_strbuf b = {0};
    lsw_sb_str(&b, "{\n  \"sweep\": ");
    lsw_sb_json_string(&b, s->file);
    /* the configs below keep the sweep file's relative model paths */
    lsw_sb_str(&b, ",\n  \"paths_relative_to\": ");
    char *abs = realpath(s->dir, NULL);
    lsw_sb_json_string(&b, abs ? abs : s->dir);
    free(abs);
    lsw_sb_str(&b, ",\n  \"merges\": [");
    for (size_t k = 0; k < s->n; k++) {
        lsw_sb_printf(&b, "%s\n    {\"index\": %zu, \"name\": ", k ? "," : "", k);
        lsw_sb_json_string(&b, s->names[k]);
        lsw_sb_str(&b, ", \"path\": ");
        lsw_sb_json_string(&b, s->cfgs[k]->out.path);
        lsw_sb_str(&b, ",\n     \"config\": ");
        lsw_sb_str(&b, s->texts[k]);
        lsw_sb_str(&b, "}");
    }
    lsw_sb_str(&b, "\n  ]\n}\n");
    int rc = lsw_sb_failed(&b) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : lsw_mkdir_p(s->out_path);
    if (!rc)
        rc = lsw_write_file_atomic(s->out_path, "sweep.json", b.p, b.len);
    lsw_sb_free(&b);
    return rc;
}

/* ---- running ------------------------------------------------------------- */

typedef enum { SH_SKIP, SH_REUSED, SH_OWNER, SH_DUP } shard_status;

typedef struct shard_job {
    shard_status status;
    size_t src_k;          /* SH_DUP: the merge whose shard holds the bytes */
    uint64_t key;
    int fd;                /* SH_OWNER: open temporary */
    uint32_t crc;
    uint64_t pending;      /* bytes written since the last writeback kick */
    char *path;            /* temporary (owner) */
} shard_job;

/* Identity of one output tensor's bytes: op, dtypes, shape, sources, weights. */
static uint64_t tensor_key(const lsw_plan *p, const lsw_plan_tensor *t)
{
    uint64_t h = LSW_FNV1A64_INIT;
    uint64_t head[4] = {(uint64_t)t->op, (uint64_t)t->out_dtype, (uint64_t)t->nsrc, t->numel};
    h = lsw_fnv1a64(h, head, sizeof head);
    for (size_t j = 0; j < t->nsrc; j++) {
        uint64_t id = lsw_ckpt_identity(p->models[t->models[j]]);
        h = lsw_fnv1a64(h, &id, sizeof id);
        h = lsw_fnv1a64(h, t->src[j]->name, strlen(t->src[j]->name) + 1);
        h = lsw_fnv1a64(h, &t->w[j], sizeof t->w[j]);
    }
    return h;
}

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

typedef struct comp {      /* one distinct output tensor computation */
    const lsw_plan_tensor *t;
    const lsw_plan *p;
    uint64_t key;
    char *out;             /* block buffer (NULL: a copy, aliases its source) */
    size_t src_slot[64];
} comp;

typedef struct slot { const lsw_ckpt *c; const lsw_tensor_desc *d; char *buf; } slot;

static int run_rank0(const lsw_sweep *s, lsw_plan **plans, lsw_outdir **od, const lsw_out_state *st,
                     const lsw_run_opts *o, uint64_t *bytes_read, uint64_t *bytes_written, uint64_t *distinct,
                     size_t *linked, lsw_dedup *how_linked)
{
    size_t E = s->n, S = plans[0]->nshards, N = plans[0]->n;
    shard_job *jobs = calloc(E * S, sizeof *jobs);
    comp *comps = calloc(E, sizeof *comps);
    slot *slots = calloc(E * 64 + 1, sizeof *slots);
    char *arena = malloc(o->mem);
    int rc = (!jobs || !comps || !slots || !arena) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    lsw_progress pr;
    uint64_t total = 0;
    for (size_t k = 0; k < E; k++)
        total += plans[k]->total_bytes;
    lsw_progress_start(&pr, "sweep", o->progress, total, N * E);
    /* 1. what each shard of each merge is: reused, computed here, or a copy of another */
    for (size_t k = 0; k < E && !rc; k++)
        for (size_t sh = 0; sh < S; sh++) {
            shard_job *j = &jobs[k * S + sh];
            j->fd = -1;
            if (st[k] == LSW_OUT_COMPLETE) {
                j->status = SH_SKIP;
                continue;
            }
            const lsw_plan_shard *ps = &plans[k]->shards[sh];
            j->key = lsw_fnv1a64(LSW_FNV1A64_INIT, ps->header, ps->data_start);
            for (size_t i = ps->first; i < ps->first + ps->count; i++) {
                uint64_t tk = tensor_key(plans[k], &plans[k]->t[i]);
                j->key = lsw_fnv1a64(j->key, &tk, sizeof tk);
            }
            size_t q = 0;
            while (q < k && !(jobs[q * S + sh].status != SH_SKIP && jobs[q * S + sh].key == j->key &&
                              jobs[q * S + sh].status != SH_DUP))
                q++;
            uint64_t bytes;
            if (st[k] == LSW_OUT_RESUME && lsw_outdir_reuse(od[k], ps->name) &&
                lsw_outdir_recorded(od[k], ps->name, &bytes, &j->crc) == 0)
                j->status = SH_REUSED;
            else if (q < k) {
                j->status = SH_DUP;
                j->src_k = q;
            } else {
                j->status = SH_OWNER;
                *distinct += ps->size;
            }
        }
    /* 2. tensor by tensor: each distinct source block read once, each distinct output computed once */
    for (size_t i = 0; i < N && !rc; i++) {
        size_t sh = plans[0]->t[i].shard, ncomp = 0, nslot = 0;
        const lsw_plan_shard *ps0 = &plans[0]->shards[sh];
        if (i == ps0->first) /* open the owners' temporaries with their headers */
            for (size_t k = 0; k < E && !rc; k++) {
                shard_job *j = &jobs[k * S + sh];
                if (j->status != SH_OWNER)
                    continue;
                const lsw_plan_shard *ps = &plans[k]->shards[sh];
                size_t tn = strlen(s->cfgs[k]->out.path) + strlen(ps->name) + 16;
                char *tmp = malloc(tn);
                if (!tmp)
                    rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
                else
                    snprintf(tmp, tn, "%s/.%s.lsw-tmp", s->cfgs[k]->out.path, ps->name);
                j->path = tmp;
                if (!rc)
                    rc = lsw_outdir_tmp_open(od[k], ps->name, &j->fd);
                if (!rc)
                    rc = lsw_pwrite_full(j->fd, ps->header, ps->data_start, 0, tmp);
                j->crc = lsw_crc32c(0, ps->header, ps->data_start);
            }
        /* distinct computations of tensor i, and their sources */
        for (size_t k = 0; k < E && !rc; k++) {
            if (jobs[k * S + sh].status != SH_OWNER)
                continue;
            const lsw_plan_tensor *t = &plans[k]->t[i];
            uint64_t key = tensor_key(plans[k], t);
            size_t c = 0;
            while (c < ncomp && comps[c].key != key)
                c++;
            if (c < ncomp)
                continue;
            comp *cp = &comps[ncomp++];
            *cp = (comp){t, plans[k], key, NULL, {0}};
            if (t->nsrc > 64) {
                rc = lsw_err_set(LSW_E_CONFIG, "tensor '%s': more than 64 sources", t->name);
                break;
            }
            for (size_t j = 0; j < t->nsrc; j++) {
                const lsw_ckpt *mc = plans[k]->models[t->models[j]];
                size_t q = 0;
                while (q < nslot && !(slots[q].c == mc && slots[q].d == t->src[j]))
                    q++;
                if (q == nslot)
                    slots[nslot++] = (slot){mc, t->src[j], NULL};
                cp->src_slot[j] = q;
            }
        }
        /* block size: every source and every computed output in the arena */
        size_t per = 0;
        for (size_t q = 0; q < nslot; q++)
            per += lsw_dtype_size(slots[q].d->dtype);
        for (size_t c = 0; c < ncomp; c++)
            if (comps[c].t->op == LSW_OP_WSUM)
                per += lsw_dtype_size(comps[c].t->out_dtype);
        size_t B = per ? o->mem / per : 0;
        if (B > LSW_BLOCK_BYTES / 2)
            B = LSW_BLOCK_BYTES / 2;
        if (per && !B)
            rc = lsw_err_set(LSW_E_CONFIG, "--mem %llu is too small for %zu sources and %zu outputs of tensor '%s'",
                             (unsigned long long)o->mem, nslot, ncomp, plans[0]->t[i].name);
        char *cur = arena;
        for (size_t q = 0; q < nslot; q++, cur += B * lsw_dtype_size(slots[q - 1].d->dtype))
            slots[q].buf = cur;
        for (size_t c = 0; c < ncomp; c++)
            if (comps[c].t->op == LSW_OP_WSUM) {
                comps[c].out = cur;
                cur += B * lsw_dtype_size(comps[c].t->out_dtype);
            }
        /* nothing to compute when every merge reuses or shares this shard */
        uint64_t numel = ncomp ? plans[0]->t[i].numel : 0;
        for (uint64_t e0 = 0; e0 < numel && !rc; e0 += B) {
            size_t n = numel - e0 < B ? (size_t)(numel - e0) : B;
            if (lsw_stop_signal)
                rc = lsw_err_set(LSW_E_INTERRUPTED, "stopped by signal %d; finished shards are kept, rerun the same command to resume",
                                 (int)lsw_stop_signal);
            for (size_t q = 0; q < nslot && !rc; q++) {
                size_t es = lsw_dtype_size(slots[q].d->dtype);
                rc = lsw_ckpt_read(slots[q].c, slots[q].d, e0 * es, slots[q].buf, n * es);
                *bytes_read += n * es;
            }
            for (size_t c = 0; c < ncomp && !rc; c++) {
                comp *cp = &comps[c];
                const lsw_plan_tensor *t = cp->t;
                size_t out_es = lsw_dtype_size(t->out_dtype);
                const char *out = slots[cp->src_slot[0]].buf;
                if (t->op == LSW_OP_WSUM) {
                    const void *in[64];
                    lsw_dtype dts[64];
                    for (size_t j = 0; j < t->nsrc; j++) {
                        in[j] = slots[cp->src_slot[j]].buf;
                        dts[j] = t->src[j]->dtype;
                    }
                    lsw_wsum(t->out_dtype, cp->out, n, t->nsrc, dts, in, t->w);
                    out = cp->out;
                }
                /* to every merge that owns this shard and computes the same tensor */
                for (size_t k = 0; k < E && !rc; k++) {
                    shard_job *j = &jobs[k * S + sh];
                    if (j->status != SH_OWNER || tensor_key(plans[k], &plans[k]->t[i]) != cp->key)
                        continue;
                    uint64_t off = plans[k]->t[i].offset + e0 * out_es;
                    rc = lsw_pwrite_full(j->fd, out, n * out_es, off, j->path);
                    j->crc = lsw_crc32c(j->crc, out, n * out_es);
                    /* start writeback every LSW_WRITEBACK_BYTES, so the shard's fsync is short */
                    j->pending += n * out_es;
                    if (j->pending >= LSW_WRITEBACK_BYTES) {
                        lsw_writeback(j->fd, off + n * out_es - j->pending, j->pending);
                        j->pending = 0;
                    }
                    *bytes_written += n * out_es;
                    lsw_progress_add(&pr, n * out_es, 0);
                }
            }
        }
        lsw_progress_add(&pr, 0, E);
        /* last tensor of the shard: commit the owners, then clone or link the duplicates */
        if (!rc && i + 1 == ps0->first + ps0->count) {
            for (size_t k = 0; k < E && !rc; k++) {
                shard_job *j = &jobs[k * S + sh];
                if (j->status == SH_OWNER) {
                    rc = lsw_outdir_tmp_commit(od[k], plans[k]->shards[sh].name, j->fd, plans[k]->shards[sh].size, j->crc);
                    j->fd = -1;
                }
            }
            for (size_t k = 0; k < E && !rc; k++) {
                shard_job *j = &jobs[k * S + sh];
                if (j->status != SH_DUP)
                    continue;
                const lsw_plan_shard *ps = &plans[k]->shards[sh];
                char *src = lsw_path_join(s->cfgs[j->src_k]->out.path, ps->name);
                rc = src ? lsw_outdir_adopt(od[k], ps->name, src, s->dedup, ps->size, jobs[j->src_k * S + sh].crc,
                                            how_linked)
                         : lsw_err_set(LSW_E_NOMEM, "out of memory");
                (*linked)++;
                free(src);
            }
        }
    }
    for (size_t x = 0; jobs && x < E * S; x++) {
        if (jobs[x].fd >= 0)
            lsw_outdir_tmp_abort(od[x / S], plans[x / S]->shards[x % S].name, jobs[x].fd);
        free(jobs[x].path);
    }
    free(jobs);
    free(comps);
    free(slots);
    free(arena);
    return rc;
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

int lsw_sweep_run(const lsw_sweep *s, const lsw_run_opts *o, const lsw_comm *c)
{
    size_t E = s->n;
    const lsw_config *c0 = s->cfgs[0];
    lsw_ckpt **models = calloc(c0->nmodels, sizeof *models);
    lsw_plan **plans = calloc(E, sizeof *plans);
    lsw_outdir **od = calloc(E, sizeof *od);
    lsw_out_state *st = calloc(E, sizeof *st);
    lsw_ckpt **own = calloc(E * c0->nmodels + 1, sizeof *own);
    int *u = calloc(c0->nmodels, sizeof *u);
    double *mav = calloc(c0->nmodels, sizeof *mav);
    int rc = (!models || !plans || !od || !st || !own || !u || !mav) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    double t0 = lsw_now();
    if (!rc)
        rc = prepare(s, models, own, plans);
    /* issue 10: rank 0 owns the sweep folder and every merge folder before any work */
    for (size_t k = 0; !rc && c->rank == 0 && k <= E; k++)
        rc = lsw_lock_dir(k ? s->cfgs[k - 1]->out.path : s->out_path, "sweep");
    if (!rc && c->rank == 0)
        lsw_outdir_remove_temporaries(s->out_path); /* a killed run's .sweep.json.PID.lsw-tmp */
    rc = lsw_agree(c, rc);
    /* magnitude weights: each model's MAV once, for the merges not finished yet */
    unsigned char *done = calloc(E, 1);
    if (!done && !rc)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t k = 0; k < E && !rc && c->rank == 0; k++)
        done[k] = !o->overwrite && lsw_outdir_complete(s->cfgs[k]->out.path, plans[k]->hash);
    if (!rc && c->size > 1)
        MPI_Bcast(done, (int)E, MPI_BYTE, 0, c->comm);
    memset(u, 0, c0->nmodels * sizeof *u);
    for (size_t k = 0; k < E && !rc; k++)
        for (size_t m = 0; m < c0->nmodels && !done[k]; m++)
            u[m] |= plans[k]->mav_needed[m];
    int any = 0;
    for (size_t m = 0; m < c0->nmodels; m++)
        any |= u[m];
    if (!rc && any)
        rc = lsw_model_mavs(c0, models, u, o, c, mav);
    for (size_t k = 0; k < E && !rc; k++)
        if (!plans[k]->ready && !done[k])
            rc = lsw_plan_set_mav(plans[k], mav);
    free(done);
    rc = lsw_agree(c, rc);
    if (!rc && c0->out.format == LSW_FMT_HDF5) {
        /* HDF5 outputs are single files: run the merges one by one */
        for (size_t k = 0; k < E && !rc; k++)
            rc = lsw_execute_merge(plans[k], o, c);
        goto out;
    }
    uint64_t bytes_read = 0, bytes_written = 0, distinct = 0, separate = 0;
    size_t linked = 0, complete = 0;
    lsw_dedup how = s->dedup;
    if (c->rank == 0 && !rc) {
        rc = lsw_sweep_write_list(s);
        for (size_t k = 0; k < E && !rc; k++) {
            size_t nn = 0;
            const char **names = calloc(plans[k]->nshards + 16, sizeof *names);
            if (!names) {
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
                break;
            }
            for (size_t sh = 0; sh < plans[k]->nshards; sh++)
                names[nn++] = plans[k]->shards[sh].name;
            names[nn++] = "model.safetensors.index.json";
            for (const char *const *m = lsw_model_file_names; *m; m++)
                names[nn++] = *m;
            rc = lsw_outdir_open(s->cfgs[k]->out.path, plans[k]->hash, names, nn, o->overwrite, &od[k], &st[k]);
            if (!rc && st[k] != LSW_OUT_COMPLETE)
                rc = lsw_plan_check_space(plans[k], od[k]); /* issue 10: each merge's folder */
            free(names);
            complete += st[k] == LSW_OUT_COMPLETE;
            if (!rc && st[k] != LSW_OUT_COMPLETE && !plans[k]->ready) /* finished a moment ago, not now */
                rc = lsw_err_set(LSW_E_INTERRUPTED, "%s: the output changed during the run; rerun the same command",
                                 s->cfgs[k]->out.path);
            for (size_t i = 0; i < plans[k]->n; i++)
                for (size_t j = 0; j < plans[k]->t[i].nsrc; j++)
                    separate += plans[k]->t[i].src[j]->nbytes;
        }
        if (!rc)
            rc = run_rank0(s, plans, od, st, o, &bytes_read, &bytes_written, &distinct, &linked, &how);
        for (size_t k = 0; k < E && !rc; k++) {
            if (st[k] == LSW_OUT_COMPLETE)
                continue;
            const lsw_config *ck = s->cfgs[k];
            rc = lsw_copy_model_files(lsw_ckpt_folder(models[ck->first_model]), od[k], ck->out.dtype);
            if (!rc && plans[k]->nshards > 1)
                rc = lsw_write_index(plans[k], od[k]);
            if (!rc) {
                char *extra = lsw_manifest_extra(plans[k]);
                rc = extra ? lsw_outdir_finish(od[k], extra) : lsw_err_set(LSW_E_NOMEM, "out of memory");
                free(extra);
            }
        }
    }
    rc = lsw_agree(c, rc);
    static const char *const mode[] = {"reflinks", "hard links", "copies"};
    if (!rc && c->rank == 0 && o->summary) {
        lsw_strbuf b = {0};
        lsw_sb_printf(&b,
                      "{\n  \"command\": \"sweep\",\n  \"merges\": %zu,\n  \"already_complete\": %zu,\n"
                      "  \"seconds\": %.6f,\n  \"bytes_read\": %" PRIu64 ",\n  \"bytes_read_separately\": %" PRIu64 ",\n"
                      "  \"distinct_bytes\": %" PRIu64 ",\n  \"bytes_written\": %" PRIu64 ",\n  \"shards_shared\": %zu,\n"
                      "  \"shared_as\": \"%s\"\n}\n",
                      E, complete, lsw_now() - t0, bytes_read, separate, distinct, bytes_written, linked, mode[how]);
        rc = lsw_sb_failed(&b) ? lsw_err_set(LSW_E_NOMEM, "out of memory")
                               : lsw_write_path_atomic(o->summary, b.p, b.len);
        lsw_sb_free(&b);
    }
    rc = lsw_agree(c, rc);
    if (!rc && c->rank == 0 && !o->quiet) {
        fprintf(stderr,
                "layerswap sweep: %zu merges (%zu already complete) in %.2f s -> %s\n"
                "layerswap sweep: read %.3f GB (separate merges would read %.3f GB); distinct content %.3f GB, "
                "written %.3f GB; %zu shard(s) as %s\n",
                E, complete, lsw_now() - t0, s->out_path, (double)bytes_read / 1e9, (double)separate / 1e9,
                (double)distinct / 1e9, (double)bytes_written / 1e9, linked, mode[how]);
    }
out:
    for (size_t k = 0; k < E; k++) {
        lsw_outdir_free(od ? od[k] : NULL);
        lsw_plan_free(plans ? plans[k] : NULL);
    }
    for (size_t m = 0; models && m < c0->nmodels; m++)
        lsw_ckpt_close(models[m]);
    free(models);
    free(own);
    free(plans);
    free(od);
    free(st);
    free(u);
    free(mav);
    return rc;
}
