#include "lsw_stats_summary.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
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

static int in_band(double r) { return r >= 0.5 && r <= 2.0; }

void lsw_stats_propose_layers(const double *ratio, int layers, int *bottom, int *top, int *lower, int *upper)
{
    int L = layers, b = 0, t = 0, lo = 0, up = 0;
    if (L >= 2) {
        while (b < L && ratio[b] > 1)
            b++;
        while (t < L && ratio[L - 1 - t] > 1)
            t++;
        /* leave at least one middle layer to the task expert (the runs can
         * only overlap or touch when every layer is language-dominated) */
        while (b + t > L - 1) {
            if (b > t)
                b--;
            else
                t--;
        }
        if (b + t + 1 <= L - 1 && in_band(ratio[b]))
            lo = 1;
        if (b + t + lo + 1 <= L - 1 && in_band(ratio[L - 1 - t]))
            up = 1;
    }
    *bottom = b;
    *top = t;
    *lower = lo;
    *upper = up;
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

/* Cell statistics of the rows of the tensors list[0..cnt) (tensor indices in name order). */
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
    }
    c->rows = n;
    if (!n)
        return;
    c->mean = sum / (double)n;
    c->unchanged = (double)zeros / (double)n;
    lsw_stats_percentiles(tmp, n, &c->p50, &c->p90, &c->p99, &c->max);
}

static size_t type_col(char *const *types, size_t n, const char *name)
{
    return find_str(types, n, name);
}

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
            size_t col = type_col(s->types, s->ntypes, names[k]);
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

static int propose(lsw_stats_summary *s, const lsw_stats_input *in)
{
    lsw_stats_proposal *p = &s->proposal;
    size_t E = s->nexperts;
    int L = s->layers;
    p->task = calloc(E ? E : 1, sizeof *p->task);
    p->lang = calloc(E ? E : 1, sizeof *p->lang);
    if (!p->task || !p->lang)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t e = 0; e < E; e++)
        s->experts[e].lang_score = lang_score(s, &s->experts[e]);
    if (L < 1) {
        snprintf(p->note, sizeof p->note, "the base has no transformer layers");
        return 0;
    }
    if (in->ntask || in->nlang) {
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
    } else {
        p->automatic = 1;
        if (E < 2) {
            snprintf(p->note, sizeof p->note, "one expert: a layer swap needs a task and a language expert");
            return 0;
        }
        int has_attn = 0, has_mlp = 0;
        for (size_t k = 0; k < 4; k++)
            has_attn |= type_col(s->types, s->ntypes, attn_types[k]) != (size_t)-1;
        for (size_t k = 0; k < 3; k++)
            has_mlp |= type_col(s->types, s->ntypes, mlp_types[k]) != (size_t)-1;
        if (!has_attn || !has_mlp) {
            snprintf(p->note, sizeof p->note,
                     "no q/k/v/o_proj or gate/up/down_proj tensors: cannot tell task from language experts; "
                     "give --task and --language");
            return 0;
        }
        if (s->ngroups >= 2) {
            /* score of a group: mean λ of its members (in order) */
            size_t lg = 0, tg = (size_t)-1;
            double *gs = calloc(s->ngroups, sizeof *gs);
            if (!gs)
                return lsw_err_set(LSW_E_NOMEM, "out of memory");
            for (size_t g = 0; g < s->ngroups; g++) {
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
            for (size_t e = 0; e < E; e++) /* ascending expert order */
                for (size_t k = s->group_start[lg]; k < s->group_start[lg + 1]; k++)
                    if (s->order[k] == e)
                        p->lang[p->nlang++] = e;
            for (size_t e = 0; e < E; e++)
                for (size_t k = s->group_start[tg]; k < s->group_start[tg + 1]; k++)
                    if (s->order[k] == e)
                        p->task[p->ntask++] = e;
            if (s->ngroups > 2)
                snprintf(p->note, sizeof p->note,
                         "automatic: %zu similarity groups; language group = highest mean score, task group = lowest, "
                         "%zu other group(s) not used",
                         s->ngroups, s->ngroups - 2);
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
    }
    p->layer = calloc((size_t)L, sizeof *p->layer);
    double *ratio = calloc((size_t)L, sizeof *ratio);
    if (!p->layer || !ratio) {
        free(ratio);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (int l = 0; l < L; l++) {
        double ls = 0, ts = 0;
        for (size_t k = 0; k < p->nlang; k++)
            ls += s->experts[p->lang[k]].layer_mean[l];
        for (size_t k = 0; k < p->ntask; k++)
            ts += s->experts[p->task[k]].layer_mean[l];
        ls /= (double)p->nlang;
        ts /= (double)p->ntask;
        lsw_stats_layer_ratio *lr = &p->layer[l];
        lr->lang = ls;
        lr->task = ts;
        lr->ratio = ts > 0 ? ls / ts : ls > 0 ? INFINITY : 1.0;
        ratio[l] = lr->ratio;
    }
    lsw_stats_propose_layers(ratio, L, &p->bottom, &p->top, &p->lower_transition, &p->upper_transition);
    free(ratio);
    for (int l = 0; l < L; l++) {
        const char *d;
        if (l < p->bottom)
            d = "language (bottom run)";
        else if (l >= L - p->top)
            d = "language (top run)";
        else if (p->lower_transition && l == p->bottom)
            d = "average (lower transition)";
        else if (p->upper_transition && l == L - 1 - p->top)
            d = "average (upper transition)";
        else if (p->layer[l].ratio > 1)
            d = "task (language-dominated, but not in an edge run)";
        else
            d = "task";
        p->layer[l].decision = d;
    }
    p->valid = 1;
    return 0;
}

int lsw_stats_summarize(const lsw_stats_input *in, lsw_stats_summary **out)
{
    *out = NULL;
    lsw_stats_summary *s = calloc(1, sizeof *s);
    size_t nt = lsw_ckpt_count(in->base), E = in->nexperts;
    size_t *tcell = malloc((nt ? nt : 1) * sizeof *tcell);
    size_t *cstart = NULL, *clist = NULL, *fill = NULL;
    uint64_t *crows = NULL;
    double *tmp = NULL, **prof = NULL;
    int rc = 0;
    if (!s || !tcell || !(s->base_path = strdup(in->base_path ? in->base_path : lsw_ckpt_path(in->base)))) {
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto done;
    }
    s->layers = lsw_ckpt_layers(in->base);
    const size_t L = (size_t)s->layers;
    char ty[256];
    /* the type sets */
    for (size_t i = 0; i < nt && !rc; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, i);
        if (in->row_off[i] == UINT64_MAX || !lsw_mav_eligible(t))
            continue;
        lsw_stats_tensor_type(t->name, ty, sizeof ty);
        if (t->layer >= 0 ? add_str(&s->types, &s->ntypes, ty) : add_str(&s->nl_types, &s->nnl, ty))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    if (rc)
        goto done;
    if (s->ntypes)
        qsort(s->types, s->ntypes, sizeof *s->types, cmp_type);
    if (s->nnl)
        qsort(s->nl_types, s->nnl, sizeof *s->nl_types, cmp_type);
    for (size_t k = 0; k < s->ntypes; k++)
        s->nprofile += core_rank(s->types[k]) < NCORE;
    if (!s->nprofile)
        s->nprofile = s->ntypes;
    /* cells: layer cells then non-layer cells; per cell its tensors in name order */
    size_t ncells = L * s->ntypes + s->nnl;
    cstart = calloc(ncells + 1, sizeof *cstart);
    fill = calloc(ncells + 1, sizeof *fill);
    clist = malloc((nt ? nt : 1) * sizeof *clist);
    crows = calloc(ncells + 1, sizeof *crows);
    if (!cstart || !fill || !clist || !crows) {
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nt; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(in->base, i);
        tcell[i] = (size_t)-1;
        if (in->row_off[i] == UINT64_MAX || !lsw_mav_eligible(t))
            continue;
        lsw_stats_tensor_type(t->name, ty, sizeof ty);
        tcell[i] = t->layer >= 0 ? (size_t)t->layer * s->ntypes + find_str(s->types, s->ntypes, ty)
                                 : L * s->ntypes + find_str(s->nl_types, s->nnl, ty);
        cstart[tcell[i] + 1]++;
        uint64_t rows, rl;
        lsw_mav_rows(t, &rows, &rl);
        crows[tcell[i]] += rows;
        s->tensors++;
        s->rows += rows;
    }
    uint64_t maxrows = 0;
    for (size_t c = 0; c < ncells; c++)
        if (crows[c] > maxrows)
            maxrows = crows[c];
    for (size_t c = 0; c < ncells; c++)
        cstart[c + 1] += cstart[c];
    for (size_t i = 0; i < nt; i++)
        if (tcell[i] != (size_t)-1)
            clist[cstart[tcell[i]] + fill[tcell[i]]++] = i;
    tmp = malloc((maxrows ? maxrows : 1) * sizeof *tmp);
    s->experts = calloc(E ? E : 1, sizeof *s->experts);
    s->nexperts = E;
    if (!tmp || !s->experts) {
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t e = 0; e < E && !rc; e++) {
        lsw_stats_expert *x = &s->experts[e];
        x->name = strdup(in->names[e]);
        x->path = strdup(in->paths[e]);
        x->grid = calloc(L * s->ntypes + 1, sizeof *x->grid);
        x->nl = calloc(s->nnl + 1, sizeof *x->nl);
        x->layer_mean = calloc(L + 1, sizeof *x->layer_mean);
        if (!x->name || !x->path || !x->grid || !x->nl || !x->layer_mean) {
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            break;
        }
        /* model MAV: tensors in name order, rows in order, one f64 sum */
        double sum = 0;
        uint64_t total = 0;
        for (size_t i = 0; i < nt; i++) {
            if (in->row_off[i] == UINT64_MAX || !lsw_mav_eligible(lsw_ckpt_at(in->base, i)))
                continue;
            uint64_t rows, rl;
            lsw_mav_rows(lsw_ckpt_at(in->base, i), &rows, &rl);
            const double *r = in->rows[e] + in->row_off[i];
            for (uint64_t j = 0; j < rows; j++)
                sum += r[j];
            total += rows;
        }
        x->rows = total;
        x->model_mav = total ? sum / (double)total : 0.0;
        for (size_t c = 0; c < ncells; c++) {
            lsw_stats_cell *cell = c < L * s->ntypes ? &x->grid[c] : &x->nl[c - L * s->ntypes];
            cell->layer = c < L * s->ntypes ? (int)(c / s->ntypes) : -1;
            cell->type = c < L * s->ntypes ? c % s->ntypes : c - L * s->ntypes;
            cell_stats(in, e, clist + cstart[c], cstart[c + 1] - cstart[c], tmp, cell);
        }
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
    }
    if (rc)
        goto done;
    /* profiles: the present cells of the profile columns, layer by layer */
    size_t P = 0;
    if (E) {
        for (size_t l = 0; l < L; l++)
            for (size_t k = 0; k < s->nprofile; k++)
                P += s->experts[0].grid[l * s->ntypes + k].rows > 0;
    }
    prof = calloc(E ? E : 1, sizeof *prof);
    s->similarity = calloc(E * E + 1, sizeof *s->similarity);
    s->order = calloc(E + 1, sizeof *s->order);
    s->group_start = calloc(E + 2, sizeof *s->group_start);
    size_t *group = calloc(E + 1, sizeof *group);
    if (!prof || !s->similarity || !s->order || !s->group_start || !group) {
        free(group);
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        goto done;
    }
    for (size_t e = 0; e < E && !rc; e++) {
        if (!(prof[e] = malloc((P ? P : 1) * sizeof **prof))) {
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            break;
        }
        size_t n = 0;
        for (size_t l = 0; l < L; l++)
            for (size_t k = 0; k < s->nprofile; k++)
                if (s->experts[0].grid[l * s->ntypes + k].rows)
                    prof[e][n++] = s->experts[e].grid[l * s->ntypes + k].mean;
    }
    if (!rc) {
        for (size_t a = 0; a < E; a++)
            for (size_t b = 0; b < E; b++)
                s->similarity[a * E + b] = a == b ? 1.0 : lsw_stats_pearson(prof[a], prof[b], P);
        s->ngroups = E ? lsw_stats_group(s->similarity, E, 0.5, group) : 0;
        if (E && !s->ngroups)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    if (!rc) {
        size_t k = 0;
        for (size_t g = 0; g < s->ngroups; g++) {
            s->group_start[g] = k;
            for (size_t e = 0; e < E; e++)
                if (group[e] == g)
                    s->order[k++] = e;
        }
        s->group_start[s->ngroups] = k;
        rc = propose(s, in);
    }
    free(group);
done:
    if (prof)
        for (size_t e = 0; e < E; e++)
            free(prof[e]);
    free(prof);
    free(tmp);
    free(tcell);
    free(cstart);
    free(fill);
    free(crows);
    free(clist);
    if (rc) {
        lsw_stats_summary_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ------------------------------------------------------------------ output */

static void num(lsw_strbuf *b, double v)
{
    if (isfinite(v))
        lsw_sb_printf(b, "%.17g", v);
    else
        lsw_sb_str(b, "null");
}

static void name_list(lsw_strbuf *b, const lsw_stats_summary *s, const size_t *idx, size_t n)
{
    lsw_sb_str(b, "[");
    for (size_t k = 0; k < n; k++) {
        if (k)
            lsw_sb_str(b, ", ");
        lsw_sb_json_string(b, s->experts[idx[k]].name);
    }
    lsw_sb_str(b, "]");
}

static void cell_json(lsw_strbuf *b, const lsw_stats_cell *c, const char *type)
{
    lsw_sb_printf(b, "{\"layer\": %d, \"type\": ", c->layer);
    lsw_sb_json_string(b, type);
    lsw_sb_str(b, ", \"mean\": ");
    num(b, c->mean);
    lsw_sb_str(b, ", \"max\": ");
    num(b, c->max);
    lsw_sb_str(b, ", \"p50\": ");
    num(b, c->p50);
    lsw_sb_str(b, ", \"p90\": ");
    num(b, c->p90);
    lsw_sb_str(b, ", \"p99\": ");
    num(b, c->p99);
    lsw_sb_str(b, ", \"unchanged\": ");
    num(b, c->unchanged);
    lsw_sb_printf(b, ", \"rows\": %llu}", (unsigned long long)c->rows);
}

static void str_array(lsw_strbuf *b, char *const *v, size_t n)
{
    lsw_sb_str(b, "[");
    for (size_t k = 0; k < n; k++) {
        if (k)
            lsw_sb_str(b, ", ");
        lsw_sb_json_string(b, v[k]);
    }
    lsw_sb_str(b, "]");
}

void lsw_stats_summary_json(const lsw_stats_summary *s, lsw_strbuf *b)
{
    size_t E = s->nexperts, L = (size_t)s->layers;
    lsw_sb_str(b, "{\n  \"tool\": \"layerswap stats\",\n  \"base\": ");
    lsw_sb_json_string(b, s->base_path);
    lsw_sb_printf(b, ",\n  \"layers\": %d,\n  \"types\": ", s->layers);
    str_array(b, s->types, s->ntypes);
    lsw_sb_str(b, ",\n  \"profile_types\": ");
    str_array(b, s->types, s->nprofile);
    lsw_sb_str(b, ",\n  \"non_layer_types\": ");
    str_array(b, s->nl_types, s->nnl);
    lsw_sb_printf(b, ",\n  \"tensors\": %llu,\n  \"rows\": %llu,\n  \"experts\": {",
                  (unsigned long long)s->tensors, (unsigned long long)s->rows);
    for (size_t e = 0; e < E; e++) {
        const lsw_stats_expert *x = &s->experts[e];
        lsw_sb_str(b, e ? ",\n    " : "\n    ");
        lsw_sb_json_string(b, x->name);
        lsw_sb_str(b, ": {\"model_mav\": ");
        num(b, x->model_mav);
        lsw_sb_str(b, ", \"path\": ");
        lsw_sb_json_string(b, x->path);
        lsw_sb_str(b, ", \"lang_score\": ");
        num(b, x->lang_score);
        lsw_sb_str(b, ",\n      \"layer_mean\": [");
        for (size_t l = 0; l < L; l++) {
            if (l)
                lsw_sb_str(b, ", ");
            num(b, x->layer_mean[l]);
        }
        lsw_sb_str(b, "],\n      \"cells\": [");
        int first = 1;
        for (size_t c = 0; c < L * s->ntypes; c++) {
            if (!x->grid[c].rows)
                continue;
            lsw_sb_str(b, first ? "\n        " : ",\n        ");
            first = 0;
            cell_json(b, &x->grid[c], s->types[x->grid[c].type]);
        }
        for (size_t c = 0; c < s->nnl; c++) {
            if (!x->nl[c].rows)
                continue;
            lsw_sb_str(b, first ? "\n        " : ",\n        ");
            first = 0;
            cell_json(b, &x->nl[c], s->nl_types[c]);
        }
        lsw_sb_str(b, "]}");
    }
    lsw_sb_str(b, "\n  },\n  \"similarity\": {\"method\": \"pearson\", \"experts\": ");
    name_list(b, s, s->order, E);
    lsw_sb_str(b, ",\n    \"matrix\": [");
    for (size_t i = 0; i < E; i++) {
        lsw_sb_str(b, i ? ",\n      [" : "\n      [");
        for (size_t j = 0; j < E; j++) {
            if (j)
                lsw_sb_str(b, ", ");
            num(b, s->similarity[s->order[i] * E + s->order[j]]);
        }
        lsw_sb_str(b, "]");
    }
    lsw_sb_str(b, "]},\n  \"groups\": [");
    for (size_t g = 0; g < s->ngroups; g++) {
        if (g)
            lsw_sb_str(b, ", ");
        name_list(b, s, s->order + s->group_start[g], s->group_start[g + 1] - s->group_start[g]);
    }
    lsw_sb_str(b, "],\n  \"grouping\": {\"linkage\": \"average\", \"threshold\": 0.5},\n  \"proposal\": ");
    const lsw_stats_proposal *p = &s->proposal;
    lsw_sb_printf(b, "{\"valid\": %s, \"mode\": \"%s\", \"note\": ", p->valid ? "true" : "false",
                  p->automatic ? "automatic" : "given");
    lsw_sb_json_string(b, p->note);
    if (p->valid) {
        lsw_sb_str(b, ",\n    \"task_experts\": ");
        name_list(b, s, p->task, p->ntask);
        lsw_sb_str(b, ", \"language_experts\": ");
        name_list(b, s, p->lang, p->nlang);
        lsw_sb_str(b, ",\n    \"task_expert\": ");
        lsw_sb_json_string(b, s->experts[p->task[0]].name);
        lsw_sb_str(b, ", \"language_expert\": ");
        lsw_sb_json_string(b, s->experts[p->lang[0]].name);
        lsw_sb_printf(b, ",\n    \"bottom\": %d, \"top\": %d, \"lower_transition\": %d, \"upper_transition\": %d,"
                         "\n    \"config\": \"proposed-layer-swap.json\",\n    \"layers\": [",
                      p->bottom, p->top, p->lower_transition, p->upper_transition);
        for (size_t l = 0; l < L; l++) {
            const lsw_stats_layer_ratio *r = &p->layer[l];
            lsw_sb_printf(b, "%s{\"layer\": %zu, \"language\": ", l ? ",\n      " : "\n      ", l);
            num(b, r->lang);
            lsw_sb_str(b, ", \"task\": ");
            num(b, r->task);
            lsw_sb_str(b, ", \"ratio\": ");
            num(b, r->ratio);
            lsw_sb_str(b, ", \"decision\": ");
            lsw_sb_json_string(b, r->decision);
            lsw_sb_str(b, "}");
        }
        lsw_sb_str(b, "]");
    }
    lsw_sb_str(b, "}\n}\n");
}

void lsw_stats_proposal_config(const lsw_stats_summary *s, lsw_strbuf *b)
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
    lsw_sb_str(b, "{\n  \"models\": {");
    lsw_sb_json_string(b, key);
    lsw_sb_str(b, ": ");
    lsw_sb_json_string(b, s->base_path);
    lsw_sb_str(b, ",\n             ");
    lsw_sb_json_string(b, t->name);
    lsw_sb_str(b, ": ");
    lsw_sb_json_string(b, t->path);
    lsw_sb_str(b, ",\n             ");
    lsw_sb_json_string(b, g->name);
    lsw_sb_str(b, ": ");
    lsw_sb_json_string(b, g->path);
    lsw_sb_str(b, "},\n  \"base\": ");
    lsw_sb_json_string(b, key);
    lsw_sb_str(b, ",\n  \"method\": \"layer_swap\",\n  \"layer_swap\": {\n    \"task_expert\": ");
    lsw_sb_json_string(b, t->name);
    lsw_sb_str(b, ", \"language_expert\": ");
    lsw_sb_json_string(b, g->name);
    lsw_sb_printf(b,
                  ",\n    \"bottom\": %d, \"top\": %d, \"lower_transition\": %d, \"upper_transition\": %d,\n"
                  "    \"transition_weights\": \"uniform\", \"non_layer\": \"average\", \"non_layer_weights\": "
                  "\"uniform\"\n  },\n"
                  "  \"output\": {\"path\": \"merged\", \"format\": \"safetensors\", \"dtype\": \"input\"}\n}\n",
                  p->bottom, p->top, p->lower_transition, p->upper_transition);
}

static void print_names(FILE *f, const lsw_stats_summary *s, const size_t *idx, size_t n)
{
    for (size_t k = 0; k < n; k++)
        fprintf(f, "%s%s", k ? ", " : "", s->experts[idx[k]].name);
}

void lsw_stats_print_proposal(const lsw_stats_summary *s, FILE *f)
{
    const lsw_stats_proposal *p = &s->proposal;
    if (!p->valid) {
        fprintf(f, "layerswap stats: no layer-swap proposal: %s\n", p->note);
        return;
    }
    fprintf(f, "layerswap stats: task expert(s): ");
    print_names(f, s, p->task, p->ntask);
    fprintf(f, "; language expert(s): ");
    print_names(f, s, p->lang, p->nlang);
    fprintf(f, "\nlayerswap stats: %s\n", p->note);
    fprintf(f, "layerswap stats: per layer, ratio = language / task mean MAV of the layer's %zu profile types;"
               " language-dominated where ratio > 1\n",
            s->nprofile);
    for (int l = 0; l < s->layers; l++) {
        const lsw_stats_layer_ratio *r = &p->layer[l];
        char rs[32];
        if (isinf(r->ratio))
            snprintf(rs, sizeof rs, "inf");
        else
            snprintf(rs, sizeof rs, "%.4g", r->ratio);
        fprintf(f, "layer %3d  ratio %-9s  (language %.4g, task %.4g)  %s\n", l, rs, r->lang, r->task, r->decision);
    }
    fprintf(f, "layerswap stats: proposed layer swap: task_expert %s, language_expert %s, bottom %d, top %d, "
               "lower_transition %d, upper_transition %d\n",
            s->experts[p->task[0]].name, s->experts[p->lang[0]].name, p->bottom, p->top, p->lower_transition,
            p->upper_transition);
}
