#include "lsw_assign.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_array.h"
#include "lsw_error.h"

typedef struct item { size_t p0, p1; uint64_t bytes; } item; /* pieces [p0, p1) */

static int cmp_item(const void *a, const void *b)
{
    const item *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->p0 < y->p0 ? -1 : x->p0 > y->p0;
}

static uint64_t row_elems(const lsw_plan_tensor *t)
{
    uint64_t r = 1;
    for (size_t d = 1; d < t->ndim; d++)
        r *= t->shape[d];
    return r ? r : 1;
}

int lsw_assign(const lsw_plan *p, int nranks, const uint64_t *granule, const uint64_t *cost, int one_group,
               lsw_assignment **out)
{
    *out = NULL;
    lsw_assignment *a = calloc(1, sizeof *a);
    if (!a)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    /* groups of shards */
    uint64_t target = p->total_bytes / 8;
    if (target < (64u << 20))
        target = 64u << 20;
    if (one_group)
        target = UINT64_MAX;
    a->groups = calloc(p->nshards ? p->nshards : 1, sizeof *a->groups);
    if (!a->groups)
        goto oom;
    for (size_t k = 0; k < p->nshards; k++) {
        lsw_group *g = a->ngroups ? &a->groups[a->ngroups - 1] : NULL;
        if (!g || g->bytes >= target) {
            g = &a->groups[a->ngroups++];
            g->shard0 = k;
        }
        g->shard1 = k + 1;
        g->bytes += p->shards[k].size - p->shards[k].data_start;
    }
    /* pieces: whole tensors, non-layer tensors cut into row blocks */
    size_t cap = p->n + 16, icap = p->n + 16;
    a->pieces = malloc(cap * sizeof *a->pieces);
    item *items = malloc(icap * sizeof *items);
    if (!a->pieces || !items) {
        free(items);
        goto oom;
    }
    for (size_t gi = 0; gi < a->ngroups; gi++) {
        lsw_group *g = &a->groups[gi];
        uint64_t block = g->bytes / (2 * (uint64_t)nranks);
        if (block < (1u << 20))
            block = 1u << 20;
        g->piece0 = a->npieces;
        size_t nitems = 0;
        size_t t0 = p->shards[g->shard0].first;
        size_t t1 = p->shards[g->shard1 - 1].first + p->shards[g->shard1 - 1].count;
        for (size_t i = t0; i < t1; i++) {
            const lsw_plan_tensor *t = &p->t[i];
            uint64_t es = t->numel ? t->nbytes / t->numel : 1, re = granule ? granule[i] : row_elems(t);
            if (re == 0)
                re = 1;
            uint64_t step = t->numel; /* elements per piece */
            if (t->layer < 0 && t->nbytes > block) {
                uint64_t rows_per = block / (re * es);
                step = (rows_per ? rows_per : 1) * re;
            }
            int joins = t->layer >= 0 && nitems > 0 && i > t0 && p->t[i - 1].layer == t->layer &&
                        p->t[i - 1].shard == t->shard;
            for (uint64_t e0 = 0;;) {
                uint64_t e1 = t->numel - e0 < step ? t->numel : e0 + step;
                if (lsw_array_reserve(&a->pieces, &cap, a->npieces + 1, sizeof *a->pieces)) {
                    free(items);
                    goto oom;
                }
                a->pieces[a->npieces] = (lsw_piece){i, e0, e1, 0};
                uint64_t bytes = (e1 - e0) * (cost ? cost[i] : es);
                if (joins) {
                    items[nitems - 1].p1 = a->npieces + 1;
                    items[nitems - 1].bytes += bytes;
                } else {
                    /* geometric growth: a million tensors stay linear */
                    if (lsw_array_reserve(&items, &icap, nitems + 1, sizeof *items)) {
                        free(items);
                        goto oom;
                    }
                    items[nitems++] = (item){a->npieces, a->npieces + 1, bytes};
                }
                a->npieces++;
                joins = 0;
                e0 = e1;
                if (e0 >= t->numel)
                    break;
            }
        }
        g->piece1 = a->npieces;
        /* longest-processing-time first */
        qsort(items, nitems, sizeof *items, cmp_item);
        uint64_t *load = calloc((size_t)nranks, sizeof *load);
        if (!load) {
            free(items);
            goto oom;
        }
        for (size_t k = 0; k < nitems; k++) {
            int best = 0;
            for (int r = 1; r < nranks; r++)
                if (load[r] < load[best])
                    best = r;
            load[best] += items[k].bytes;
            for (size_t q = items[k].p0; q < items[k].p1; q++)
                a->pieces[q].rank = best;
        }
        free(load);
    }
    free(items);
    *out = a;
    return 0;
oom:
    lsw_assignment_free(a);
    return lsw_err_set(LSW_E_NOMEM, "out of memory");
}

void lsw_assignment_free(lsw_assignment *a)
{
    if (!a)
        return;
    free(a->pieces);
    free(a->groups);
    free(a);
}
