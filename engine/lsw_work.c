#include "lsw_work.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_array.h"
#include "lsw_crc32c.h"
#include "lsw_derived.h"
#include "lsw_error.h"

int lsw_work_create(lsw_plan *const *plans, size_t E, lsw_work **out)
{
    *out = NULL;
    lsw_work *w = calloc(1, sizeof *w);
    if (!w)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    w->E = E;
    w->plans = plans;
    w->N = plans[0]->n;
    w->S = plans[0]->nshards;
    size_t es = E * (w->S ? w->S : 1), n = w->N ? w->N : 1;
    w->status = malloc(es);
    w->dup_of = calloc(es, sizeof *w->dup_of);
    w->cost = calloc(n, sizeof *w->cost);
    w->streams = calloc(n, sizeof *w->streams);
    w->per_elem = calloc(n, sizeof *w->per_elem);
    w->keys = malloc(E * sizeof *w->keys);
    if (!w->keys || !w->status || !w->dup_of || !w->cost || !w->streams || !w->per_elem) {
        lsw_work_free(w);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    memset(w->status, LSW_SH_OWNER, es);
    *out = w;
    return 0;
}

void lsw_work_free(lsw_work *w)
{
    if (!w)
        return;
    free(w->status);
    free(w->dup_of);
    free(w->cost);
    free(w->streams);
    free(w->per_elem);
    free(w->keys);
    free(w);
}

uint64_t lsw_work_tensor_key(const lsw_plan *p, const lsw_plan_tensor *t)
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

uint64_t lsw_work_shard_key(const lsw_plan *p, size_t s)
{
    const lsw_plan_shard *ps = &p->shards[s];
    uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, ps->header, ps->data_start);
    for (size_t i = ps->first; i < ps->first + ps->count; i++) {
        uint64_t tk = lsw_work_tensor_key(p, &p->t[i]);
        h = lsw_fnv1a64(h, &tk, sizeof tk);
    }
    return h;
}

size_t lsw_work_comps(const lsw_work *w, size_t i, uint32_t *rep, int32_t *of)
{
    size_t s = w->plans[0]->t[i].shard, n = 0;
    if (w->E == 1) { /* a merge: no keys to compare */
        of[0] = lsw_work_status(w, 0, s) == LSW_SH_OWNER ? 0 : -1;
        rep[0] = 0;
        return of[0] == 0;
    }
    uint64_t *keys = w->keys; /* at most E comps */
    for (size_t k = 0; k < w->E; k++) {
        of[k] = -1;
        if (lsw_work_status(w, k, s) != LSW_SH_OWNER)
            continue;
        uint64_t key = lsw_work_tensor_key(w->plans[k], &w->plans[k]->t[i]);
        size_t c = 0;
        while (c < n && keys[c] != key)
            c++;
        if (c == n) {
            rep[n] = (uint32_t)k;
            keys[n++] = key;
        }
        of[k] = (int32_t)c;
    }
    return n;
}

static int grow(void *p, size_t *cap, size_t need, size_t elem)
{
    return lsw_array_reserve(p, cap, need, elem) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
}

/* Index of source (ck, t), added (with its inputs first) if new. */
static int add_source(lsw_srcset *s, const lsw_ckpt *ck, const lsw_tensor_desc *t, uint32_t *idx)
{
    for (size_t q = 0; q < s->n; q++)
        if (s->src[q].ckpt == ck && s->src[q].desc == t) {
            *idx = (uint32_t)q;
            return 0;
        }
    lsw_work_src x = {ck, t, LSW_SRC_READ, 0, 0, 0};
    int rc = 0;
    if (lsw_ckpt_view_user(ck)) {
        size_t k = lsw_derived_max_inputs(ck);
        const lsw_ckpt *ick[k];
        const lsw_tensor_desc *idesc[k];
        size_t m = lsw_derived_inputs(ck, t, ick, idesc);
        uint32_t ins[k];
        for (size_t j = 0; j < m && !rc; j++)
            rc = add_source(s, ick[j], idesc[j], &ins[j]);
        if (rc)
            return rc;
        int a = lsw_derived_alias(ck, t);
        if (a >= 0) {
            const lsw_work_src *target = &s->src[ins[a]];
            x.kind = LSW_SRC_ALIAS;
            x.alias = target->kind == LSW_SRC_ALIAS ? target->alias : ins[a];
        } else {
            if ((rc = grow(&s->in, &s->incap, s->nin + m, sizeof *s->in)))
                return rc;
            x.kind = LSW_SRC_DERIVED;
            x.in0 = (uint32_t)s->nin;
            x.nin = (uint32_t)m;
            for (size_t j = 0; j < m; j++)
                s->in[s->nin++] = ins[j];
        }
    }
    if ((rc = grow(&s->src, &s->cap, s->n + 1, sizeof *s->src)))
        return rc;
    s->src[s->n] = x;
    *idx = (uint32_t)s->n++;
    return 0;
}

int lsw_srcset_build(lsw_srcset *s, const lsw_work *w, size_t i, const uint32_t *rep, size_t ncomp)
{
    s->n = s->nin = s->nref = 0;
    int rc = 0;
    for (size_t c = 0; c < ncomp && !rc; c++) {
        const lsw_plan *p = w->plans[rep[c]];
        const lsw_plan_tensor *t = &p->t[i];
        if ((rc = grow(&s->slot_of, &s->refcap, s->nref + t->nsrc, sizeof *s->slot_of)))
            break;
        for (size_t j = 0; j < t->nsrc && !rc; j++)
            rc = add_source(s, p->models[t->models[j]], t->src[j], &s->slot_of[s->nref++]);
    }
    return rc;
}

void lsw_srcset_free(lsw_srcset *s)
{
    free(s->src);
    free(s->in);
    free(s->slot_of);
    memset(s, 0, sizeof *s);
}

int lsw_work_analyse(lsw_work *w)
{
    uint32_t *rep = malloc(w->E * sizeof *rep);
    int32_t *of = malloc(w->E * sizeof *of);
    lsw_srcset set = {0};
    int rc = (!rep || !of) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    w->max_comps = 0;
    for (size_t i = 0; i < w->N && !rc; i++) {
        size_t nc = lsw_work_comps(w, i, rep, of);
        if ((rc = lsw_srcset_build(&set, w, i, rep, nc)))
            break;
        uint64_t read = 0, written = 0, buffered = 0, streams = 0;
        for (size_t q = 0; q < set.n; q++) {
            uint64_t es = lsw_dtype_size(set.src[q].desc->dtype);
            if (set.src[q].kind == LSW_SRC_ALIAS)
                continue;
            read += set.src[q].kind == LSW_SRC_READ ? es : 0;
            buffered += es;
            streams++;
        }
        for (size_t c = 0; c < nc; c++) {
            const lsw_plan_tensor *t = &w->plans[rep[c]]->t[i];
            uint64_t es = lsw_dtype_size(t->out_dtype), users = 0;
            for (size_t k = 0; k < w->E; k++)
                users += of[k] == (int32_t)c;
            written += es * users;
            if (t->op != LSW_OP_COPY) {
                buffered += es;
                streams++;
            }
        }
        w->cost[i] = read + written;
        w->per_elem[i] = buffered;
        w->streams[i] = streams;
        w->max_comps = nc > w->max_comps ? nc : w->max_comps;
    }
    free(rep);
    free(of);
    lsw_srcset_free(&set);
    return rc;
}
