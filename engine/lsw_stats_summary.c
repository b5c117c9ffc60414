#include "lsw_stats_summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_jsonw.h"
#include "lsw_mav.h"

#define NCORE 7
static const char *const core_types[NCORE] = {"q_proj",    "k_proj",  "v_proj",   "o_proj",
                                              "gate_proj", "up_proj", "down_proj"};
static const char *const attn_types[] = {"q_proj", "k_proj", "v_proj", "o_proj"};
static const char *const mlp_types[] = {"gate_proj", "up_proj", "down_proj"};

/* ------------------------------------------------------------------ types */

void lsw_stats_tensor_type(const char *name, char *buf, size_t len)
{
    size_t n = strlen(name), end = n;
    const char *suffix = "";
    if (n > 7 && !strcmp(name + n - 7, ".weight"))
        end = n - 7;
    else if (n > 5 && !strcmp(name + n - 5, ".bias")) {
        end = n - 5;
        suffix = ".bias";
    }
    size_t start = end;
    while (start > 0 && name[start - 1] != '.')
        start--;
    snprintf(buf, len, "%.*s%s", (int)(end - start), name + start, suffix);
}

static int core_rank(const char *t)
{
    for (int i = 0; i < NCORE; i++)
        if (!strcmp(t, core_types[i]))
            return i;
    return NCORE;
}

static int cmp_type(const void *a, const void *b)
{
    const char *x = *(const char *const *)a, *y = *(const char *const *)b;
    int rx = core_rank(x), ry = core_rank(y);
    if (rx != ry)
        return rx < ry ? -1 : 1;
    return strcmp(x, y);
}

static size_t find_str(char *const *v, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i], s))
            return i;
    return (size_t)-1;
}

/* Add s to the set v[0..*n) (capacity grows); 0 ok, -1 out of memory. */
static int add_str(char ***v, size_t *n, const char *s)
{
    if (find_str(*v, *n, s) != (size_t)-1)
        return 0;
    char **w = realloc(*v, (*n + 1) * sizeof *w);
    if (!w)
        return -1;
    *v = w;
    if (!(w[*n] = strdup(s)))
        return -1;
    (*n)++;
    return 0;
}

/* ------------------------------------------------------------ statistics */

size_t lsw_stats_rank(size_t n, unsigned p)
{
    uint64_t rank = ((uint64_t)p * n + 99) / 100; /* ceil(p·n/100) */
    if (rank < 1)
        rank = 1;
    if (rank > n)
        rank = n;
    return (size_t)rank;
}

double lsw_stats_percentile(const double *sorted, size_t n, unsigned p)
{
    return sorted[lsw_stats_rank(n, p) - 1];
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    /* NaN after everything, so the order is total */
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* x before y in cmp_double's total order (NaN after every number) */
static int before(double x, double y)
{
    return isnan(y) ? !isnan(x) : x < y;
}

/* Rearrange v[0..n) so that v[k] is the element a sort by cmp_double would
 * put there, everything before it not after it and everything after it not
 * before it.  Three-way partitions (many rows repeat a value, zero above
 * all), median-of-three pivots, and a sort when the ranges stop shrinking
 * fast, so the worst case stays O(n log n). */
static void select_kth(double *v, size_t n, size_t k)
{
    size_t lo = 0, hi = n, budget = 64;
    for (size_t m = n; m; m >>= 1)
        budget += 2;
    while (hi - lo > 16) {
        if (budget-- == 0) {
            qsort(v + lo, hi - lo, sizeof *v, cmp_double);
            return;
        }
        double a = v[lo], b = v[lo + (hi - lo) / 2], c = v[hi - 1], piv;
        if (before(a, b))
            piv = before(b, c) ? b : before(a, c) ? c : a;
        else
            piv = before(a, c) ? a : before(b, c) ? c : b;
        /* [lo, lt) before piv, [lt, i) equal, (gt, hi) after */
        size_t lt = lo, i = lo, gt = hi;
        while (i < gt) {
            double x = v[i];
            if (before(x, piv)) {
                v[i++] = v[lt];
                v[lt++] = x;
            } else if (before(piv, x)) {
                v[i] = v[--gt];
                v[gt] = x;
            } else {
                i++;
            }
        }
        if (k < lt)
            hi = lt;
        else if (k >= gt)
            lo = gt;
        else
            return;
    }
    qsort(v + lo, hi - lo, sizeof *v, cmp_double);
}

void lsw_stats_percentiles(double *v, size_t n, double *p50, double *p90, double *p99, double *max)
{
    if (n == 0)
        return;
    double mx = v[0];
    for (size_t i = 1; i < n; i++)
        if (before(mx, v[i]))
            mx = v[i];
    *max = mx;
    /* nearest ranks, largest first: each selection leaves the smaller ones
     * in front, where the next one looks */
    size_t r99 = lsw_stats_rank(n, 99), r90 = lsw_stats_rank(n, 90), r50 = lsw_stats_rank(n, 50);
    select_kth(v, n, r99 - 1);
    *p99 = v[r99 - 1];
    select_kth(v, r99, r90 - 1);
    *p90 = v[r90 - 1];
    select_kth(v, r90, r50 - 1);
    *p50 = v[r50 - 1];
}

double lsw_stats_pearson(const double *x, const double *y, size_t n)
{
    if (n < 2)
        return 0.0;
    double mx = 0, my = 0;
    for (size_t i = 0; i < n; i++) {
        mx += x[i];
        my += y[i];
    }
    mx /= (double)n;
    my /= (double)n;
    double sxy = 0, sxx = 0, syy = 0;
    for (size_t i = 0; i < n; i++) {
        double dx = x[i] - mx, dy = y[i] - my;
        sxy += dx * dy;
        sxx += dx * dx;
        syy += dy * dy;
    }
    if (!(sxx > 0) || !(syy > 0))
        return 0.0;
    double r = sxy / sqrt(sxx * syy);
    if (!isfinite(r))
        return 0.0;
    return r > 1 ? 1 : r < -1 ? -1 : r;
}

size_t lsw_stats_group(const double *sim, size_t n, double threshold, size_t *group)
{
    size_t *cl = malloc((n ? n : 1) * sizeof *cl);
    if (!cl)
        return 0;
    /* a cluster is named by its first (smallest) member */
    for (size_t i = 0; i < n; i++)
        cl[i] = i;
    for (;;) {
        double best = -INFINITY;
        size_t ba = (size_t)-1, bb = (size_t)-1;
        for (size_t a = 0; a < n; a++) {
            if (cl[a] != a)
                continue;
            for (size_t b = a + 1; b < n; b++) {
                if (cl[b] != b)
                    continue;
                double sum = 0;
                size_t cnt = 0;
                for (size_t i = 0; i < n; i++) {
                    if (cl[i] != a)
                        continue;
                    for (size_t j = 0; j < n; j++)
                        if (cl[j] == b) {
                            sum += sim[i * n + j];
                            cnt++;
                        }
                }
                double avg = sum / (double)cnt;
                if (avg > best) {
                    best = avg;
                    ba = a;
                    bb = b;
                }
            }
        }
        if (ba == (size_t)-1 || !(best >= threshold))
            break;
        for (size_t i = 0; i < n; i++)
            if (cl[i] == bb)
                cl[i] = ba;
    }
    size_t ng = 0;
    for (size_t i = 0; i < n; i++) {
        if (cl[i] == i)
            group[i] = ng++;
        else
            group[i] = group[cl[i]];
    }
    free(cl);
    return ng;
}

/* ------------------------------------------------------------- layer rule */

/* Median of v[0..n), n ≥ 1 (reorders v): the middle value, or the mean of
 * the two middle values. */
static double median_of(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

int lsw_stats_layer_class(const lsw_stats_rule *r, double v)
{
    double x = v - r->median;
    return x > r->margin ? 2 : x > r->margin / 2 ? 1 : 0;
}

int lsw_stats_propose_layers(const double *s, int L, lsw_stats_rule *r)
{
    memset(r, 0, sizeof *r);
    if (L < 1)
        return 0;
    double *v = malloc((size_t)L * sizeof *v);
    if (!v)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    memcpy(v, s, (size_t)L * sizeof *v);
    r->median = median_of(v, (size_t)L);
    for (int i = 0; i < L; i++)
        v[i] = fabs(s[i] - r->median);
    r->mad = median_of(v, (size_t)L);
    free(v);
    r->sigma = 1.4826 * r->mad;
    double spread = LSW_STATS_Z * r->sigma, floor_ = LSW_STATS_FLOOR * r->median;
    r->margin = spread > floor_ ? spread : floor_;
    for (int i = 0; i < L; i++)
        r->significant += lsw_stats_layer_class(r, s[i]) == 2;
    int b = 0, t = 0;
    while (b < L && lsw_stats_layer_class(r, s[b]) == 2)
        b++;
    while (t < L && lsw_stats_layer_class(r, s[L - 1 - t]) == 2)
        t++;
    /* at least one middle layer stays with the task expert (more than half
     * the layers cannot be above the median, so this only matters for tiny L) */
    while (b + t > L - 1 && b + t > 0) {
        if (b > t)
            b--;
        else
            t--;
    }
    /* one transition layer beside a run whose next layer is borderline */
    int lo = b > 0 && b + t + 1 <= L - 1 && lsw_stats_layer_class(r, s[b]) == 1;
    int up = t > 0 && b + t + lo + 1 <= L - 1 && lsw_stats_layer_class(r, s[L - 1 - t]) == 1;
    r->bottom = b;
    r->top = t;
    r->lower_transition = lo;
    r->upper_transition = up;
    return 0;
}

/* -------------------------------------------------------------- summarize */

void lsw_stats_summary_free(lsw_stats_summary *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->ntypes; i++)
        free(s->types[i]);
    for (size_t i = 0; i < s->nnl; i++)
        free(s->nl_types[i]);
    free(s->types);
    free(s->nl_types);
    for (size_t e = 0; s->experts && e < s->nexperts; e++) {
        lsw_stats_expert *x = &s->experts[e];
        free(x->name);
        free(x->path);
        free(x->grid);
        free(x->nl);
        free(x->layer_mean);
    }
    free(s->experts);
    free(s->similarity);
    free(s->order);
    free(s->group_start);
    free(s->proposal.task);
    free(s->proposal.lang);
    free(s->proposal.layer);
    free(s->base_path);
    free(s);
}

/* Which tensors make up each cell: cell c holds list[start[c] .. start[c + 1]),
 * tensor indices in name order.  Cells: L × ntypes layer cells, then nnl. */
typedef struct cell_index {
    size_t ncells, *start, *list;
    uint64_t maxrows;       /* most rows in one cell */
} cell_index;

static void cell_index_free(cell_index *ci)
{
    free(ci->start);
    free(ci->list);
}

static int is_cell_tensor(const lsw_stats_input *in, size_t i)
{
    return in->row_off[i] != UINT64_MAX && lsw_mav_eligible(lsw_ckpt_at(in->base, i));
}

/* The type sets, in column order. */
static int collect_types(lsw_stats_summary *s, const lsw_stats_input *in)
{
    char ty[256];
    for (size_t i = 0; i < lsw_ckpt_count(in->base); i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, i);
        if (!is_cell_tensor(in, i))
            continue;
        lsw_stats_tensor_type(t->name, ty, sizeof ty);
        if (t->layer >= 0 ? add_str(&s->types, &s->ntypes, ty) : add_str(&s->nl_types, &s->nnl, ty))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    if (s->ntypes)
        qsort(s->types, s->ntypes, sizeof *s->types, cmp_type);
    if (s->nnl)
        qsort(s->nl_types, s->nnl, sizeof *s->nl_types, cmp_type);
    for (size_t k = 0; k < s->ntypes; k++)
        s->nprofile += core_rank(s->types[k]) < NCORE;
    if (!s->nprofile)
        s->nprofile = s->ntypes;
    return 0;
}

static int build_cells(lsw_stats_summary *s, const lsw_stats_input *in, cell_index *ci)
{
    size_t nt = lsw_ckpt_count(in->base), L = (size_t)s->layers;
    char ty[256];
    ci->ncells = L * s->ntypes + s->nnl;
    ci->start = calloc(ci->ncells + 1, sizeof *ci->start);
    ci->list = malloc((nt ? nt : 1) * sizeof *ci->list);
    size_t *tcell = malloc((nt ? nt : 1) * sizeof *tcell), *fill = calloc(ci->ncells + 1, sizeof *fill);
    uint64_t *crows = calloc(ci->ncells + 1, sizeof *crows);
    int rc = (!ci->start || !ci->list || !tcell || !fill || !crows) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t i = 0; i < nt && !rc; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, i);
        tcell[i] = (size_t)-1;
        if (!is_cell_tensor(in, i))
            continue;
        lsw_stats_tensor_type(t->name, ty, sizeof ty);
        tcell[i] = t->layer >= 0 ? (size_t)t->layer * s->ntypes + find_str(s->types, s->ntypes, ty)
                                 : L * s->ntypes + find_str(s->nl_types, s->nnl, ty);
        ci->start[tcell[i] + 1]++;
        uint64_t rows, rl;
        lsw_mav_rows(t, &rows, &rl);
        crows[tcell[i]] += rows;
        s->tensors++;
        s->rows += rows;
    }
    for (size_t c = 0; c < ci->ncells && !rc; c++) {
        ci->maxrows = crows[c] > ci->maxrows ? crows[c] : ci->maxrows;
        ci->start[c + 1] += ci->start[c];
    }
    for (size_t i = 0; i < nt && !rc; i++)
        if (tcell[i] != (size_t)-1)
            ci->list[ci->start[tcell[i]] + fill[tcell[i]]++] = i;
    free(tcell);
    free(fill);
    free(crows);
    return rc;
}

/* Cell statistics of expert e over the tensors list[0..cnt) (name order). */
static void cell_stats(const lsw_stats_input *in, size_t e, const size_t *list, size_t cnt, double *tmp,
                       lsw_stats_cell *c)
{
    size_t n = 0;
    double sum = 0;
    uint64_t zeros = 0;
    for (size_t k = 0; k < cnt; k++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, list[k]);
        uint64_t rows, rl;
        lsw_mav_rows(t, &rows, &rl);
        const double *r = in->rows[e] + in->row_off[list[k]];
        for (uint64_t j = 0; j < rows; j++) {
            double v = r[j];
            sum += v;
            zeros += v == 0.0;
            tmp[n++] = v;
        }
        if (in->bsq) {
            c->sq_base += in->bsq[list[k]];
            c->sq_delta += in->dsq[e][list[k]];
        }
    }
    c->rows = n;
    c->share = NAN;
    if (!n)
        return;
    c->mean = sum / (double)n;
    c->unchanged = (double)zeros / (double)n;
    c->rel_change = c->sq_delta == 0 ? 0.0 : sqrt(c->sq_delta) / sqrt(c->sq_base); /* +inf when sq_base is 0 */
    lsw_stats_percentiles(tmp, n, &c->p50, &c->p90, &c->p99, &c->max);
}

/* Each layer cell's share of the sum of its layer's relative changes. */
static void layer_shares(const lsw_stats_summary *s, lsw_stats_expert *x)
{
    for (size_t l = 0; l < (size_t)s->layers; l++) {
        lsw_stats_cell *row = x->grid + l * s->ntypes;
        double sum = 0;
        for (size_t k = 0; k < s->ntypes; k++)
            if (row[k].rows)
                sum += row[k].rel_change;
        for (size_t k = 0; k < s->ntypes; k++)
            if (row[k].rows)
                row[k].share = sum > 0 && isfinite(sum) ? row[k].rel_change / sum : NAN;
    }
}

static int expert_stats(lsw_stats_summary *s, const lsw_stats_input *in, const cell_index *ci, size_t e,
                        double *tmp)
{
    size_t L = (size_t)s->layers, LT = L * s->ntypes;
    lsw_stats_expert *x = &s->experts[e];
    x->name = strdup(in->names[e]);
    x->path = strdup(in->paths[e]);
    x->grid = calloc(LT + 1, sizeof *x->grid);
    x->nl = calloc(s->nnl + 1, sizeof *x->nl);
    x->layer_mean = calloc(L + 1, sizeof *x->layer_mean);
    if (!x->name || !x->path || !x->grid || !x->nl || !x->layer_mean)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    /* model MAV: tensors in name order, rows in order, one f64 sum */
    double sum = 0;
    for (size_t i = 0; i < lsw_ckpt_count(in->base); i++) {
        if (!is_cell_tensor(in, i))
            continue;
        uint64_t rows, rl;
        lsw_mav_rows(lsw_ckpt_at(in->base, i), &rows, &rl);
        const double *r = in->rows[e] + in->row_off[i];
        for (uint64_t j = 0; j < rows; j++)
            sum += r[j];
        x->rows += rows;
    }
    x->model_mav = x->rows ? sum / (double)x->rows : 0.0;
    for (size_t c = 0; c < ci->ncells; c++) {
        lsw_stats_cell *cell = c < LT ? &x->grid[c] : &x->nl[c - LT];
        cell->layer = c < LT ? (int)(c / s->ntypes) : -1;
        cell->type = c < LT ? c % s->ntypes : c - LT;
        cell_stats(in, e, ci->list + ci->start[c], ci->start[c + 1] - ci->start[c], tmp, cell);
    }
    layer_shares(s, x);
    for (size_t l = 0; l < L; l++) {
        double ls = 0;
        size_t cnt = 0;
        for (size_t k = 0; k < s->nprofile; k++)
            if (x->grid[l * s->ntypes + k].rows) {
                ls += x->grid[l * s->ntypes + k].mean;
                cnt++;
            }
        x->layer_mean[l] = cnt ? ls / (double)cnt : 0.0;
    }
    return 0;
}

/* Profiles (the present cells of the profile columns, layer by layer), their
 * Pearson correlations and the groups. */
static int similarity_groups(lsw_stats_summary *s)
{
    size_t E = s->nexperts, L = (size_t)s->layers, P = 0;
    for (size_t l = 0; E && l < L; l++)
        for (size_t k = 0; k < s->nprofile; k++)
            P += s->experts[0].grid[l * s->ntypes + k].rows > 0;
    double *prof = malloc((E ? E : 1) * (P ? P : 1) * sizeof *prof);
    size_t *group = calloc(E + 1, sizeof *group);
    s->similarity = calloc(E * E + 1, sizeof *s->similarity);
    s->order = calloc(E + 1, sizeof *s->order);
    s->group_start = calloc(E + 2, sizeof *s->group_start);
    int rc = (!prof || !group || !s->similarity || !s->order || !s->group_start)
                 ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t e = 0; e < E && !rc; e++) {
        size_t n = 0;
        for (size_t l = 0; l < L; l++)
            for (size_t k = 0; k < s->nprofile; k++)
                if (s->experts[0].grid[l * s->ntypes + k].rows)
                    prof[e * P + n++] = s->experts[e].grid[l * s->ntypes + k].mean;
    }
    for (size_t a = 0; a < E && !rc; a++)
        for (size_t b = 0; b < E; b++)
            s->similarity[a * E + b] = a == b ? 1.0 : lsw_stats_pearson(prof + a * P, prof + b * P, P);
    if (!rc && E && !(s->ngroups = lsw_stats_group(s->similarity, E, 0.5, group)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    size_t k = 0;
    for (size_t g = 0; g < s->ngroups && !rc; g++) {
        s->group_start[g] = k;
        for (size_t e = 0; e < E; e++)
            if (group[e] == g)
                s->order[k++] = e;
    }
    if (!rc)
        s->group_start[s->ngroups] = k;
    free(prof);
    free(group);
    return rc;
}

static int propose(lsw_stats_summary *s, const lsw_stats_input *in);

int lsw_stats_summarize(const lsw_stats_input *in, lsw_stats_summary **out)
{
    *out = NULL;
    lsw_stats_summary *s = calloc(1, sizeof *s);
    cell_index ci = {0};
    double *tmp = NULL;
    size_t E = in->nexperts;
    if (!s || !(s->base_path = strdup(in->base_path ? in->base_path : lsw_ckpt_path(in->base)))) {
        lsw_stats_summary_free(s);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    s->layers = lsw_ckpt_layers(in->base);
    int rc = collect_types(s, in);
    if (!rc)
        rc = build_cells(s, in, &ci);
    if (!rc) {
        tmp = malloc((ci.maxrows ? ci.maxrows : 1) * sizeof *tmp);
        s->experts = calloc(E ? E : 1, sizeof *s->experts);
        s->nexperts = E;
        if (!tmp || !s->experts)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t e = 0; e < E && !rc; e++)
        rc = expert_stats(s, in, &ci, e, tmp);
    if (!rc)
        rc = similarity_groups(s);
    if (!rc)
        rc = propose(s, in);
    free(tmp);
    cell_index_free(&ci);
    if (rc) {
        lsw_stats_summary_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* -------------------------------------------------------------- proposal */

/* Mean of the cell means of columns `names` at the layers [l0, l1) and {extra} (−1: none); NAN if no cell. */
static double mean_cells(const lsw_stats_summary *s, const lsw_stats_expert *x, const char *const *names,
                         size_t nnames, int l0, int l1, int extra)
{
    double sum = 0;
    size_t cnt = 0;
    for (int l = 0; l < s->layers; l++) {
        if (!((l >= l0 && l < l1) || l == extra))
            continue;
        for (size_t k = 0; k < nnames; k++) {
            size_t col = find_str(s->types, s->ntypes, names[k]);
            if (col == (size_t)-1)
                continue;
            const lsw_stats_cell *c = &x->grid[(size_t)l * s->ntypes + col];
            if (c->rows) {
                sum += c->mean;
                cnt++;
            }
        }
    }
    return cnt ? sum / (double)cnt : NAN;
}

static double lang_score(const lsw_stats_summary *s, const lsw_stats_expert *x)
{
    int L = s->layers;
    double a = mean_cells(s, x, attn_types, 4, 0, 1, L - 1);
    double m = mean_cells(s, x, mlp_types, 3, L / 2, L, -1);
    double sum = 0;
    size_t cnt = 0;
    for (int l = 0; l < L; l++)
        for (size_t k = 0; k < s->nprofile; k++) {
            const lsw_stats_cell *c = &x->grid[(size_t)l * s->ntypes + k];
            if (c->rows) {
                sum += c->mean;
                cnt++;
            }
        }
    double r = cnt ? sum / (double)cnt : 0;
    if (isnan(a) || isnan(m) || !(r > 0))
        return 0.0;
    return (a - m) / r;
}

/* The sides from --task / --language: the named experts, the others on the side not given. */
static int sides_given(lsw_stats_summary *s, const lsw_stats_input *in)
{
    lsw_stats_proposal *p = &s->proposal;
    size_t E = s->nexperts;
    char *role = calloc(E ? E : 1, 1);
    if (!role)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t k = 0; k < in->ntask; k++) {
        p->task[p->ntask++] = in->task[k];
        role[in->task[k]] = 1;
    }
    for (size_t k = 0; k < in->nlang; k++) {
        p->lang[p->nlang++] = in->lang[k];
        role[in->lang[k]] = 2;
    }
    for (size_t e = 0; e < E; e++) {
        if (role[e])
            continue;
        if (!in->ntask)
            p->task[p->ntask++] = e;
        else if (!in->nlang)
            p->lang[p->nlang++] = e;
    }
    free(role);
    snprintf(p->note, sizeof p->note, "%s",
             in->ntask && in->nlang ? "task and language experts given (--task, --language)"
             : in->ntask          ? "task experts given (--task); the other experts are the language experts"
                                  : "language experts given (--language); the other experts are the task experts");
    if (!p->ntask || !p->nlang) {
        snprintf(p->note, sizeof p->note, "no %s expert left: give both --task and --language",
                 p->ntask ? "language" : "task");
        return 0;
    }
    p->sides = 1;
    return 0;
}

/* Group members of group g into v (ascending expert order). */
static void group_members(const lsw_stats_summary *s, size_t g, size_t *v, size_t *n)
{
    for (size_t e = 0; e < s->nexperts; e++)
        for (size_t k = s->group_start[g]; k < s->group_start[g + 1]; k++)
            if (s->order[k] == e)
                v[(*n)++] = e;
}

/* Automatic sides: the group (or, with one group, the expert) with the highest
 * λ is the language side, the lowest the task side. */
static int sides_automatic(lsw_stats_summary *s)
{
    lsw_stats_proposal *p = &s->proposal;
    size_t E = s->nexperts;
    p->automatic = 1;
    if (E < 2) {
        snprintf(p->note, sizeof p->note, "one expert: a layer swap needs a task and a language expert");
        return 0;
    }
    int has_attn = 0, has_mlp = 0;
    for (size_t k = 0; k < 4; k++)
        has_attn |= find_str(s->types, s->ntypes, attn_types[k]) != (size_t)-1;
    for (size_t k = 0; k < 3; k++)
        has_mlp |= find_str(s->types, s->ntypes, mlp_types[k]) != (size_t)-1;
    if (!has_attn || !has_mlp) {
        snprintf(p->note, sizeof p->note,
                 "no q/k/v/o_proj or gate/up/down_proj tensors: cannot tell task from language experts; "
                 "give --task and --language");
        return 0;
    }
    if (s->ngroups >= 2) {
        size_t lg = 0, tg = (size_t)-1;
        double *gs = calloc(s->ngroups, sizeof *gs);
        if (!gs)
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (size_t g = 0; g < s->ngroups; g++) { /* a group's score: its members' mean λ */
            double sum = 0;
            for (size_t k = s->group_start[g]; k < s->group_start[g + 1]; k++)
                sum += s->experts[s->order[k]].lang_score;
            gs[g] = sum / (double)(s->group_start[g + 1] - s->group_start[g]);
        }
        for (size_t g = 1; g < s->ngroups; g++)
            if (gs[g] > gs[lg])
                lg = g;
        for (size_t g = 0; g < s->ngroups; g++)
            if (g != lg && (tg == (size_t)-1 || gs[g] < gs[tg]))
                tg = g;
        free(gs);
        group_members(s, lg, p->lang, &p->nlang);
        group_members(s, tg, p->task, &p->ntask);
        if (s->ngroups > 2)
            snprintf(p->note, sizeof p->note,
                     "automatic: %zu similarity groups; language group = highest mean score, task group = lowest, "
                     "%zu other group(s) not used", s->ngroups, s->ngroups - 2);
        else
            snprintf(p->note, sizeof p->note,
                     "automatic: 2 similarity groups; language group = higher mean score (first/last-layer "
                     "attention over upper-layer MLP), task group = the other");
    } else {
        size_t lx = 0, tx = (size_t)-1;
        for (size_t e = 1; e < E; e++)
            if (s->experts[e].lang_score > s->experts[lx].lang_score)
                lx = e;
        for (size_t e = 0; e < E; e++)
            if (e != lx && (tx == (size_t)-1 || s->experts[e].lang_score < s->experts[tx].lang_score))
                tx = e;
        p->lang[p->nlang++] = lx;
        p->task[p->ntask++] = tx;
        snprintf(p->note, sizeof p->note,
                 "automatic: all experts fall in one similarity group; language expert = highest score, task "
                 "expert = lowest (check this, or give --task and --language)");
    }
    p->sides = 1;
    return 0;
}

static double side_mean(const lsw_stats_summary *s, const size_t *idx, size_t n, int l)
{
    double sum = 0;
    for (size_t k = 0; k < n; k++)
        sum += s->experts[idx[k]].layer_mean[l];
    return sum / (double)n;
}

static const char *decide(const lsw_stats_proposal *p, int L, int l)
{
    const lsw_stats_rule *r = &p->rule;
    if (l < r->bottom)
        return "language (bottom run)";
    if (l >= L - r->top)
        return "language (top run)";
    if (r->lower_transition && l == r->bottom)
        return "average (lower transition)";
    if (r->upper_transition && l == L - 1 - r->top)
        return "average (upper transition)";
    if (p->layer[l].cls == 2)
        return "task (a language layer, but not in the bottom or top run)";
    if (p->layer[l].cls == 1)
        return "task (borderline)";
    return "task";
}

/* Median of the upper half of the language signals over the median of the
 * lower half (∞ when the lower is 0 < upper; 1 when both are 0): how strongly
 * two levels stand apart when half the layers or more are raised, where the
 * median no longer measures the background. */
static double split_ratio(const lsw_stats_proposal *p, int L)
{
    if (L < 2)
        return 1;
    double *v = malloc((size_t)L * sizeof *v);
    if (!v)
        return 1;
    for (int l = 0; l < L; l++)
        v[l] = p->layer[l].lang;
    qsort(v, (size_t)L, sizeof *v, cmp_double);
    size_t h = (size_t)L / 2;
    double lo = h % 2 ? v[h / 2] : (v[h / 2 - 1] + v[h / 2]) / 2;
    const double *u = v + (size_t)L - h;
    double hi = h % 2 ? u[h / 2] : (u[h / 2 - 1] + u[h / 2]) / 2;
    free(v);
    return lo > 0 ? hi / lo : hi > 0 ? INFINITY : 1;
}

/* Per-layer signals, the rule, each layer's decision and the verdict. */
static int layer_rule(lsw_stats_summary *s)
{
    lsw_stats_proposal *p = &s->proposal;
    int L = s->layers;
    double *sig = calloc((size_t)L, sizeof *sig);
    p->layer = calloc((size_t)L, sizeof *p->layer);
    if (!sig || !p->layer) {
        free(sig);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        p->layer[l].lang = sig[l] = side_mean(s, p->lang, p->nlang, l);
        p->layer[l].task = side_mean(s, p->task, p->ntask, l);
    }
    int rc = lsw_stats_propose_layers(sig, L, &p->rule);
    free(sig);
    if (rc)
        return rc;
    const lsw_stats_rule *r = &p->rule;
    for (int l = 0; l < L; l++) {
        double x = p->layer[l].lang - r->median;
        p->layer[l].z = r->sigma > 0 ? x / r->sigma : x > 0 ? INFINITY : x < 0 ? -INFINITY : 0.0;
        p->layer[l].cls = lsw_stats_layer_class(r, p->layer[l].lang);
    }
    for (int l = 0; l < L; l++)
        p->layer[l].decision = decide(p, L, l);
    char base[200];
    snprintf(base, sizeof base, "median layer MAV %.4g, robust spread %.4g, a language layer needs more than %.4g",
             r->median, r->sigma, r->median + r->margin);
    double halves = split_ratio(p, L);
    if (!r->significant && halves >= 3)
        snprintf(p->note, sizeof p->note,
                 "half or more of the layers of the language expert(s) changed far more than the others (the upper "
                 "half's median layer MAV is %.3g times the lower half's), so their background cannot be told from "
                 "their signal (%s): layer swapping expects few language layers; choose bottom and top from the "
                 "heatmaps", halves, base);
    else if (!r->significant)
        snprintf(p->note, sizeof p->note,
                 "no layer of the language expert(s) changed significantly more than their own background (%s): "
                 "no language layers, so no layer swap is proposed", base);
    else if (r->bottom + r->top == 0)
        snprintf(p->note, sizeof p->note,
                 "the language expert(s) have %d layer(s) significantly above their background (%s), but none at "
                 "the bottom or the top: a layer swap takes contiguous bottom and top layers, so none is proposed",
                 r->significant, base);
    else
        p->valid = 1;
    return 0;
}

static int propose(lsw_stats_summary *s, const lsw_stats_input *in)
{
    lsw_stats_proposal *p = &s->proposal;
    size_t E = s->nexperts;
    p->task = calloc(E ? E : 1, sizeof *p->task);
    p->lang = calloc(E ? E : 1, sizeof *p->lang);
    if (!p->task || !p->lang)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t e = 0; e < E; e++)
        s->experts[e].lang_score = lang_score(s, &s->experts[e]);
    if (s->layers < 1) {
        snprintf(p->note, sizeof p->note, "the base has no transformer layers");
        return 0;
    }
    int rc = in->ntask || in->nlang ? sides_given(s, in) : sides_automatic(s);
    if (rc || !p->sides)
        return rc;
    char sides[sizeof p->note];
    snprintf(sides, sizeof sides, "%s", p->note);
    rc = layer_rule(s);
    if (!rc && p->valid)
        snprintf(p->note, sizeof p->note, "%s", sides);
    return rc;
}

/* ------------------------------------------------------------------ output */

static void name_list(lsw_jw *w, lsw_jw_node *parent, const char *key, const lsw_stats_summary *s, const size_t *idx,
                      size_t n)
{
    lsw_jw_node *a = lsw_jw_arr(w, parent, key);
    for (size_t k = 0; k < n; k++)
        lsw_jw_str(w, a, NULL, s->experts[idx[k]].name);
}

static void str_array(lsw_jw *w, lsw_jw_node *parent, const char *key, char *const *v, size_t n)
{
    lsw_jw_node *a = lsw_jw_arr(w, parent, key);
    for (size_t k = 0; k < n; k++)
        lsw_jw_str(w, a, NULL, v[k]);
}

static void cell_json(lsw_jw *w, lsw_jw_node *arr, const lsw_stats_cell *c, const char *type)
{
    lsw_jw_node *o = lsw_jw_obj(w, arr, NULL);
    lsw_jw_i64(w, o, "layer", c->layer);
    lsw_jw_str(w, o, "type", type);
    lsw_jw_f64(w, o, "mean", c->mean);
    lsw_jw_f64(w, o, "max", c->max);
    lsw_jw_f64(w, o, "p50", c->p50);
    lsw_jw_f64(w, o, "p90", c->p90);
    lsw_jw_f64(w, o, "p99", c->p99);
    lsw_jw_f64(w, o, "unchanged", c->unchanged);
    lsw_jw_u64(w, o, "rows", c->rows);
    lsw_jw_f64(w, o, "rel_change", c->rel_change);
    lsw_jw_f64(w, o, "share", c->share);
}

static void experts_json(lsw_jw *w, lsw_jw_node *root, const lsw_stats_summary *s)
{
    lsw_jw_node *ex = lsw_jw_obj(w, root, "experts");
    for (size_t e = 0; e < s->nexperts; e++) {
        const lsw_stats_expert *x = &s->experts[e];
        lsw_jw_node *o = lsw_jw_obj(w, ex, x->name);
        lsw_jw_f64(w, o, "model_mav", x->model_mav);
        lsw_jw_str(w, o, "path", x->path);
        lsw_jw_f64(w, o, "lang_score", x->lang_score);
        lsw_jw_node *lm = lsw_jw_arr(w, o, "layer_mean");
        for (int l = 0; l < s->layers; l++)
            lsw_jw_f64(w, lm, NULL, x->layer_mean[l]);
        lsw_jw_node *cells = lsw_jw_arr(w, o, "cells");
        for (size_t c = 0; c < (size_t)s->layers * s->ntypes; c++)
            if (x->grid[c].rows)
                cell_json(w, cells, &x->grid[c], s->types[x->grid[c].type]);
        for (size_t c = 0; c < s->nnl; c++)
            if (x->nl[c].rows)
                cell_json(w, cells, &x->nl[c], s->nl_types[c]);
    }
}

static void similarity_json(lsw_jw *w, lsw_jw_node *root, const lsw_stats_summary *s)
{
    size_t E = s->nexperts;
    lsw_jw_node *sim = lsw_jw_obj(w, root, "similarity");
    lsw_jw_str(w, sim, "method", "pearson");
    name_list(w, sim, "experts", s, s->order, E);
    lsw_jw_node *m = lsw_jw_arr(w, sim, "matrix");
    for (size_t i = 0; i < E; i++) {
        lsw_jw_node *row = lsw_jw_arr(w, m, NULL);
        for (size_t j = 0; j < E; j++)
            lsw_jw_f64(w, row, NULL, s->similarity[s->order[i] * E + s->order[j]]);
    }
    lsw_jw_node *g = lsw_jw_arr(w, root, "groups");
    for (size_t k = 0; k < s->ngroups; k++)
        name_list(w, g, NULL, s, s->order + s->group_start[k], s->group_start[k + 1] - s->group_start[k]);
    lsw_jw_node *gr = lsw_jw_obj(w, root, "grouping");
    lsw_jw_str(w, gr, "linkage", "average");
    lsw_jw_f64(w, gr, "threshold", 0.5);
}

/* The layer_swap object of a valid proposal: summary.json's proposal and
 * proposed-layer-swap.json both hold it, built here once. */
static void layer_swap_json(lsw_jw *w, lsw_jw_node *parent, const lsw_stats_summary *s)
{
    const lsw_stats_proposal *p = &s->proposal;
    lsw_jw_node *o = lsw_jw_obj(w, parent, "layer_swap");
    lsw_jw_str(w, o, "task_expert", s->experts[p->task[0]].name);
    lsw_jw_str(w, o, "language_expert", s->experts[p->lang[0]].name);
    lsw_jw_i64(w, o, "bottom", p->rule.bottom);
    lsw_jw_i64(w, o, "top", p->rule.top);
    lsw_jw_i64(w, o, "lower_transition", p->rule.lower_transition);
    lsw_jw_i64(w, o, "upper_transition", p->rule.upper_transition);
    lsw_jw_str(w, o, "transition_weights", "uniform");
    lsw_jw_str(w, o, "non_layer", "average");
    lsw_jw_str(w, o, "non_layer_weights", "uniform");
}

static void proposal_json(lsw_jw *w, lsw_jw_node *root, const lsw_stats_summary *s)
{
    const lsw_stats_proposal *p = &s->proposal;
    const lsw_stats_rule *r = &p->rule;
    lsw_jw_node *o = lsw_jw_obj(w, root, "proposal");
    lsw_jw_bool(w, o, "valid", p->valid);
    lsw_jw_str(w, o, "mode", p->automatic ? "automatic" : "given");
    lsw_jw_str(w, o, "note", p->note);
    if (!p->sides)
        return;
    name_list(w, o, "task_experts", s, p->task, p->ntask);
    name_list(w, o, "language_experts", s, p->lang, p->nlang);
    lsw_jw_node *ru = lsw_jw_obj(w, o, "rule");
    lsw_jw_str(w, ru, "signal", "layer_mean of the language experts");
    lsw_jw_f64(w, ru, "median", r->median);
    lsw_jw_f64(w, ru, "mad", r->mad);
    lsw_jw_f64(w, ru, "sigma", r->sigma);
    lsw_jw_f64(w, ru, "margin", r->margin);
    lsw_jw_f64(w, ru, "threshold", r->median + r->margin);
    lsw_jw_f64(w, ru, "borderline", r->median + r->margin / 2);
    lsw_jw_i64(w, ru, "language_layers", r->significant);
    if (p->valid) {
        layer_swap_json(w, o, s);
        lsw_jw_str(w, o, "config", "proposed-layer-swap.json");
    }
    lsw_jw_node *ls = lsw_jw_arr(w, o, "layers");
    for (int l = 0; l < s->layers; l++) {
        const lsw_stats_layer_call *c = &p->layer[l];
        lsw_jw_node *x = lsw_jw_obj(w, ls, NULL);
        lsw_jw_i64(w, x, "layer", l);
        lsw_jw_f64(w, x, "language", c->lang);
        lsw_jw_f64(w, x, "task", c->task);
        lsw_jw_f64(w, x, "z", c->z);
        lsw_jw_str(w, x, "decision", c->decision);
    }
}

static int print_jw(lsw_jw *w, char **text, size_t *len)
{
    int rc = lsw_jw_print(w, text, len);
    lsw_jw_free(w);
    return rc;
}

int lsw_stats_summary_json(const lsw_stats_summary *s, char **text, size_t *len)
{
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *root = lsw_jw_root(w);
    lsw_jw_str(w, root, "tool", "layerswap stats");
    lsw_jw_str(w, root, "base", s->base_path);
    lsw_jw_i64(w, root, "layers", s->layers);
    str_array(w, root, "types", s->types, s->ntypes);
    str_array(w, root, "profile_types", s->types, s->nprofile);
    str_array(w, root, "non_layer_types", s->nl_types, s->nnl);
    lsw_jw_u64(w, root, "tensors", s->tensors);
    lsw_jw_u64(w, root, "rows", s->rows);
    experts_json(w, root, s);
    similarity_json(w, root, s);
    proposal_json(w, root, s);
    return print_jw(w, text, len);
}

int lsw_stats_proposal_config(const lsw_stats_summary *s, char **text, size_t *len)
{
    const lsw_stats_proposal *p = &s->proposal;
    const lsw_stats_expert *t = &s->experts[p->task[0]], *g = &s->experts[p->lang[0]];
    /* the base's key: "base" unless an expert is called that */
    char key[64] = "base";
    for (int k = 1;; k++) {
        int clash = 0;
        for (size_t e = 0; e < s->nexperts; e++)
            clash |= !strcmp(s->experts[e].name, key);
        if (!clash)
            break;
        snprintf(key, sizeof key, k == 1 ? "base_model" : "base_model_%d", k);
    }
    lsw_jw *w = lsw_jw_create();
    lsw_jw_node *root = lsw_jw_root(w), *models = lsw_jw_obj(w, root, "models");
    lsw_jw_str(w, models, key, s->base_path);
    lsw_jw_str(w, models, t->name, t->path);
    lsw_jw_str(w, models, g->name, g->path);
    lsw_jw_str(w, root, "base", key);
    lsw_jw_str(w, root, "method", "layer_swap");
    layer_swap_json(w, root, s);
    lsw_jw_node *out = lsw_jw_obj(w, root, "output");
    lsw_jw_str(w, out, "path", "merged");
    lsw_jw_str(w, out, "format", "safetensors");
    lsw_jw_str(w, out, "dtype", "input");
    return print_jw(w, text, len);
}

static void print_names(FILE *f, const lsw_stats_summary *s, const size_t *idx, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%s%s", k ? ", " : "", s->experts[idx[k]].name);
}

void lsw_stats_print_proposal(const lsw_stats_summary *s, FILE *f)
{
    const lsw_stats_proposal *p = &s->proposal;
    const lsw_stats_rule *r = &p->rule;
    if (p->sides) {
        fprintf(f, "layerswap stats: task expert(s): ");
        print_names(f, s, p->task, p->ntask);
        fprintf(f, "; language expert(s): ");
        print_names(f, s, p->lang, p->nlang);
        fprintf(f, "\nlayerswap stats: language signal per layer = the language experts' mean MAV over the layer's "
                   "%zu profile types; background median %.4g, robust spread %.4g (1.4826 x MAD); a language layer "
                   "exceeds %.4g (median + max(%.1f x spread, %.2f x median)), borderline above %.4g\n",
                s->nprofile, r->median, r->sigma, r->median + r->margin, LSW_STATS_Z, LSW_STATS_FLOOR,
                r->median + r->margin / 2);
        for (int l = 0; l < s->layers; l++) {
            const lsw_stats_layer_call *c = &p->layer[l];
            char z[32];
            if (isinf(c->z))
                snprintf(z, sizeof z, "%sinf", c->z < 0 ? "-" : "");
            else
                snprintf(z, sizeof z, "%.3g", c->z);
            fprintf(f, "layer %3d  language %-10.4g z %-8s  (task %.4g)  %s\n", l, c->lang, z, c->task, c->decision);
        }
    }
    if (!p->valid) {
        fprintf(f, "layerswap stats: no layer-swap proposal: %s\n", p->note);
        return;
    }
    fprintf(f, "layerswap stats: %s\n", p->note);
    fprintf(f, "layerswap stats: proposed layer swap: task_expert %s, language_expert %s, bottom %d, top %d, "
               "lower_transition %d, upper_transition %d\n",
            s->experts[p->task[0]].name, s->experts[p->lang[0]].name, r->bottom, r->top, r->lower_transition,
            r->upper_transition);
}
