#include "lsw_worker.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_derived.h"
#include "lsw_error.h"
#include "lsw_signal.h"
#include "lsw_tread.h"
#include "lsw_kernels.h"

struct lsw_worker {
    const lsw_work *w;
    lsw_tv *tv;
    char *arena;
    size_t arena_bytes;
    size_t depth, slot;     /* buffer slots, and the one the next block uses */
    /* the current piece */
    size_t tensor, ncomp, B;
    uint32_t *rep;          /* E */
    int32_t *of;            /* E */
    lsw_srcset set;         /* its sources */
    char **sbuf;            /* [slot][source]: its block buffer (an alias: its target's) */
    char **cbuf;            /* [slot][comp]: its output buffer (NULL: a copy) */
    size_t bufcap;
    const void **in;        /* scratch: one computation's inputs */
    lsw_dtype *dts;
    size_t incap;
    uint64_t bytes_read;
};

/* Arena bytes: the budget, or what the most demanding tensor needs in
 * `depth` slots if less. */
static size_t arena_size(const lsw_work *w, uint64_t mem, size_t depth)
{
    uint64_t need = 64;
    for (size_t i = 0; i < w->N; i++) {
        uint64_t a = w->per_elem[i] * w->plans[0]->t[i].numel, b = w->streams[i] * LSW_BLOCK_BYTES;
        uint64_t n = a < b ? a : b;
        need = n > need ? n : need;
    }
    need *= depth;
    return (size_t)(need < mem ? need : mem);
}

int lsw_worker_create(const lsw_work *w, uint64_t mem, size_t depth, lsw_tv *tv, lsw_worker **out)
{
    *out = NULL;
    lsw_worker *wk = calloc(1, sizeof *wk);
    if (!wk)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    wk->w = w;
    wk->tv = tv;
    wk->depth = depth ? depth : 1;
    wk->arena_bytes = arena_size(w, mem, wk->depth);
    wk->arena = malloc(wk->arena_bytes);
    wk->rep = malloc(w->E * sizeof *wk->rep);
    wk->of = malloc(w->E * sizeof *wk->of);
    wk->cbuf = calloc(w->E * wk->depth, sizeof *wk->cbuf);
    if (!wk->arena || !wk->rep || !wk->of || !wk->cbuf) {
        lsw_worker_free(wk);
        return lsw_err_set(LSW_E_NOMEM, "cannot allocate %zu bytes of buffers (--mem)", arena_size(w, mem, depth));
    }
    *out = wk;
    return 0;
}

void lsw_worker_free(lsw_worker *wk)
{
    if (!wk)
        return;
    free(wk->arena);
    free(wk->rep);
    free(wk->of);
    lsw_srcset_free(&wk->set);
    free(wk->sbuf);
    free(wk->cbuf);
    free(wk->in);
    free(wk->dts);
    free(wk);
}

static const lsw_plan_tensor *comp_tensor(const lsw_worker *wk, size_t c)
{
    return &wk->w->plans[wk->rep[c]]->t[wk->tensor];
}

/* Room for one pointer per source, and for the inputs of any computation. */
static int grow_scratch(lsw_worker *wk)
{
    size_t need = wk->set.n > wk->set.nref ? wk->set.n : wk->set.nref;
    if (need > wk->bufcap) {
        free(wk->sbuf);
        if (!(wk->sbuf = malloc(2 * need * wk->depth * sizeof *wk->sbuf)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        wk->bufcap = 2 * need;
    }
    if (need > wk->incap) {
        free(wk->in);
        free(wk->dts);
        wk->in = malloc(2 * need * sizeof *wk->in);
        wk->dts = malloc(2 * need * sizeof *wk->dts);
        if (!wk->in || !wk->dts) {
            wk->incap = 0;
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
        }
        wk->incap = 2 * need;
    }
    return 0;
}

/* Block size: every buffered stream of a block in one slot of the arena,
 * each at most LSW_BLOCK_BYTES; then each slot's buffers carved out. */
static int lay_out_buffers(lsw_worker *wk)
{
    const lsw_work *w = wk->w;
    size_t per = (size_t)w->per_elem[wk->tensor], es_max = 4, slot_bytes = wk->arena_bytes / wk->depth;
    for (size_t q = 0; q < wk->set.n; q++) {
        size_t es = lsw_dtype_size(wk->set.src[q].desc->dtype);
        es_max = es > es_max ? es : es_max;
    }
    size_t B = lsw_tread_block_elems(slot_bytes, per, es_max);
    if (!B)
        return lsw_err_set(LSW_E_INTERNAL, "tensor '%s': no room for one element of its %zu streams",
                           w->plans[0]->t[wk->tensor].name, (size_t)w->streams[wk->tensor]);
    wk->B = B;
    for (size_t d = 0; d < wk->depth; d++) {
        char *cur = wk->arena + d * slot_bytes, **sb = wk->sbuf + d * wk->bufcap, **cb = wk->cbuf + d * w->E;
        for (size_t q = 0; q < wk->set.n; q++) {
            const lsw_work_src *x = &wk->set.src[q];
            if (x->kind == LSW_SRC_ALIAS) {
                sb[q] = sb[x->alias];
                continue;
            }
            sb[q] = cur;
            cur += B * lsw_dtype_size(x->desc->dtype);
        }
        for (size_t c = 0; c < wk->ncomp; c++) {
            const lsw_plan_tensor *t = comp_tensor(wk, c);
            cb[c] = NULL;
            if (t->op != LSW_OP_COPY) {
                cb[c] = cur;
                cur += B * lsw_dtype_size(t->out_dtype);
            }
        }
    }
    wk->slot = 0;
    return 0;
}

int lsw_worker_begin(lsw_worker *wk, size_t i)
{
    const lsw_work *w = wk->w;
    wk->tensor = i;
    wk->ncomp = lsw_work_comps(w, i, wk->rep, wk->of);
    wk->B = 0;
    wk->set.n = 0;
    if (!wk->ncomp)
        return 0;
    int rc = lsw_srcset_build(&wk->set, w, i, wk->rep, wk->ncomp);
    if (!rc)
        rc = grow_scratch(wk);
    if (!rc)
        rc = lay_out_buffers(wk);
    for (size_t c = 0; c < wk->ncomp && !rc; c++) {
        const lsw_plan_tensor *t = comp_tensor(wk, c);
        if (t->op != LSW_OP_TV)
            continue;
        if (wk->ncomp != 1 || !wk->tv)
            return lsw_err_set(LSW_E_INTERNAL, "tensor '%s': a task-vector tensor shared between outputs", t->name);
        if ((rc = lsw_stop_check()) || (rc = lsw_tv_begin(wk->tv, w->plans[wk->rep[c]], t, wk->arena, wk->arena_bytes)))
            return rc;
    }
    return rc;
}

size_t lsw_worker_ncomp(const lsw_worker *wk) { return wk->ncomp; }
const uint32_t *lsw_worker_rep(const lsw_worker *wk) { return wk->rep; }
const int32_t *lsw_worker_of(const lsw_worker *wk) { return wk->of; }
size_t lsw_worker_block_elems(const lsw_worker *wk) { return wk->B; }
uint64_t lsw_worker_bytes_read(const lsw_worker *wk) { return wk->bytes_read; }

/* Every source's elements [e0, e0 + n) in the slot's buffers: read, or
 * computed from its inputs. */
static int fill_sources(lsw_worker *wk, char **sb, uint64_t e0, size_t n)
{
    for (size_t q = 0; q < wk->set.n; q++) {
        const lsw_work_src *x = &wk->set.src[q];
        if (x->kind == LSW_SRC_READ) {
            int rc = lsw_tread_copy(x->ckpt, x->desc, e0, n, sb[q]);
            if (rc)
                return rc;
            wk->bytes_read += n * lsw_dtype_size(x->desc->dtype);
        } else if (x->kind == LSW_SRC_DERIVED) {
            for (uint32_t j = 0; j < x->nin; j++)
                wk->in[j] = sb[wk->set.in[x->in0 + j]];
            lsw_derived_compute(x->ckpt, x->desc, e0, n, wk->in, sb[q]);
        }
    }
    return 0;
}

int lsw_worker_block(lsw_worker *wk, uint64_t e0, size_t n, const void **out)
{
    char **sb = wk->sbuf + wk->slot * wk->bufcap, **cb = wk->cbuf + wk->slot * wk->w->E;
    wk->slot = (wk->slot + 1) % wk->depth;
    int rc = lsw_stop_check();
    if (!rc)
        rc = fill_sources(wk, sb, e0, n);
    if (rc)
        return rc;
    size_t ref = 0;
    for (size_t c = 0; c < wk->ncomp; c++) {
        const lsw_plan_tensor *t = comp_tensor(wk, c);
        for (size_t j = 0; j < t->nsrc; j++) {
            wk->in[j] = sb[wk->set.slot_of[ref + j]];
            wk->dts[j] = t->src[j]->dtype;
        }
        if (t->op == LSW_OP_COPY)
            out[c] = wk->in[0];
        else if (t->op == LSW_OP_TV && (rc = lsw_tv_block(wk->tv, t, e0, n, wk->in, cb[c])))
            return rc;
        else if (t->op == LSW_OP_WSUM)
            lsw_wsum(t->out_dtype, cb[c], n, t->nsrc, wk->dts, wk->in, t->w);
        if (t->op != LSW_OP_COPY)
            out[c] = cb[c];
        ref += t->nsrc;
    }
    return 0;
}

size_t lsw_worker_depth(const lsw_worker *wk) { return wk->depth; }
