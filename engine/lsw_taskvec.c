#include "lsw_taskvec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_kernels.h"

enum { CH = 1024, MAXK = 63 };

typedef enum { KEEP_ALL, KEEP_NONE, KEEP_THRESH } keep_mode;

struct lsw_tv {
    lsw_tv_kind kind;
    size_t k;
    float w[MAXK];
    double d[MAXK];
    float dinv_f[MAXK];       /* f32(d_i), the dare divisor */
    float lambda;
    int normalize;
    uint64_t seed;
    float wsum;               /* D of the non-consensus methods */
    /* per tensor */
    keep_mode mode[MAXK];
    uint32_t thresh[MAXK];    /* ties: keep keys > thresh, and `quota` keys == thresh */
    uint64_t quota[MAXK];
    uint64_t s[MAXK];         /* dare: per-expert stream */
    uint64_t *hist;           /* MAXK x 65536 */
    /* "trim": "global" (ties): per expert, over the whole model */
    int global;
    keep_mode gmode[MAXK];
    uint32_t gthresh[MAXK];
    uint64_t *gquota;         /* [plan tensor][expert]: equal keys this tensor keeps */
    float *delta;             /* MAXK x CH */
    float *bf, *xf;           /* CH each */
};

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int is_ties(const lsw_tv *tv) { return tv->kind == LSW_TV_TIES; }
static int is_dare(const lsw_tv *tv) { return tv->kind == LSW_TV_DARE_LINEAR || tv->kind == LSW_TV_DARE_TIES; }
static int consensus(const lsw_tv *tv) { return tv->kind == LSW_TV_TIES || tv->kind == LSW_TV_DARE_TIES; }

int lsw_tv_create(const lsw_config *cfg, lsw_tv **out)
{
    *out = NULL;
    lsw_tv *tv = calloc(1, sizeof *tv);
    if (!tv)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    tv->kind = cfg->tv.kind;
    tv->k = cfg->tv.k;
    tv->lambda = (float)cfg->tv.lambda;
    tv->normalize = cfg->tv.normalize;
    tv->seed = cfg->tv.seed;
    tv->global = cfg->tv.global_trim;
    float D = 0;
    for (size_t i = 0; i < tv->k; i++) {
        tv->w[i] = (float)cfg->tv.weight[i];
        tv->d[i] = cfg->tv.density[i];
        tv->dinv_f[i] = (float)cfg->tv.density[i];
        D = i ? D + tv->w[i] : tv->w[i];
    }
    tv->wsum = fabs((double)D) < 1e-8 ? 1.0f : D;
    tv->delta = malloc(tv->k * CH * sizeof *tv->delta);
    tv->bf = malloc(CH * sizeof *tv->bf);
    tv->xf = malloc(CH * sizeof *tv->xf);
    if (is_ties(tv))
        tv->hist = malloc(tv->k * 65536 * sizeof *tv->hist);
    if (!tv->delta || !tv->bf || !tv->xf || (is_ties(tv) && !tv->hist)) {
        lsw_tv_free(tv);
        return lsw_err_set(LSW_E_NOMEM, "out of memory for task-vector buffers");
    }
    *out = tv;
    return 0;
}

void lsw_tv_free(lsw_tv *tv)
{
    if (!tv)
        return;
    free(tv->hist);
    free(tv->gquota);
    free(tv->delta);
    free(tv->bf);
    free(tv->xf);
    free(tv);
}

static uint32_t key_of(float d)
{
    uint32_t u;
    memcpy(&u, &d, 4);
    return u & 0x7FFFFFFFu;
}

/* δ of expert i for m ≤ CH elements: tv->delta[i*CH ..]. */
static void deltas(lsw_tv *tv, const lsw_plan_tensor *t, const void *const *in, size_t off, size_t m)
{
    size_t bes = lsw_dtype_size(t->src[0]->dtype);
    lsw_to_f32(t->src[0]->dtype, (const char *)in[0] + off * bes, tv->bf, m);
    for (size_t i = 0; i < tv->k; i++) {
        size_t es = lsw_dtype_size(t->src[1 + i]->dtype);
        float *d = tv->delta + i * CH;
        lsw_to_f32(t->src[1 + i]->dtype, (const char *)in[1 + i] + off * es, tv->xf, m);
        for (size_t j = 0; j < m; j++)
            d[j] = tv->xf[j] - tv->bf[j];
    }
}

/* Read elements [e0, e0 + n) of every source of t into scratch; in[] points at them. */
static int read_sources(const lsw_plan *p, const lsw_plan_tensor *t, uint64_t e0, size_t n, char *scratch,
                        const void **in)
{
    char *cur = scratch;
    for (size_t j = 0; j < t->nsrc; j++) {
        size_t es = lsw_dtype_size(t->src[j]->dtype);
        int rc = lsw_ckpt_read(p->models[t->models[j]], t->src[j], e0 * es, cur, n * es);
        if (rc)
            return rc;
        in[j] = cur;
        cur += n * es;
    }
    return 0;
}

/* One pass over tensor t for the experts whose mode is KEEP_THRESH, adding to `out`:
 *   pass 0: out[i·65536 + (key >> 15)]++
 *   pass 1: out[i·65536 + (key & 0x7FFF)]++ for keys with (key >> 15) == arg[i]
 *   pass 2: out[i]++ for keys == arg[i] */
static int scan_tensor(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t bytes,
                       int pass, const uint32_t *arg, uint64_t *out)
{
    size_t per = 0;
    for (size_t j = 0; j < t->nsrc; j++)
        per += lsw_dtype_size(t->src[j]->dtype);
    size_t B = bytes / per;
    if (B > CH * 64)
        B = CH * 64;
    if (B == 0)
        return lsw_err_set(LSW_E_INTERNAL, "task-vector scratch of %zu bytes is too small", bytes);
    const void *in[MAXK + 1];
    for (uint64_t e0 = 0; e0 < t->numel;) {
        size_t n = t->numel - e0 < B ? (size_t)(t->numel - e0) : B;
        int rc = read_sources(p, t, e0, n, scratch, in);
        if (rc)
            return rc;
        for (size_t c = 0; c < n; c += CH) {
            size_t m = n - c < CH ? n - c : CH;
            deltas(tv, t, in, c, m);
            for (size_t i = 0; i < tv->k; i++) {
                if (tv->mode[i] != KEEP_THRESH)
                    continue;
                uint64_t *h = out + (pass == 2 ? i : i * 65536);
                const float *d = tv->delta + i * CH;
                for (size_t j = 0; j < m; j++) {
                    uint32_t key = key_of(d[j]);
                    if (pass == 0)
                        h[key >> 15]++;
                    else if (pass == 1 && (key >> 15) == arg[i])
                        h[key & 0x7FFF]++;
                    else if (pass == 2 && key == arg[i])
                        h[0]++;
                }
            }
        }
        e0 += n;
    }
    return 0;
}

/* From histograms: the bin (pass 0) or the value (pass 1) where the
 * `need`-th largest key lies; *above gets the count of larger keys. */
static uint32_t from_top(const uint64_t *h, uint32_t top, uint64_t need, uint64_t *above)
{
    uint64_t acc = 0;
    uint32_t b = top;
    while (acc + h[b] < need)
        acc += h[b--];
    *above = acc;
    return b;
}

int lsw_tv_begin(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t scratch_bytes)
{
    uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, t->name, strlen(t->name));
    uint64_t s0 = splitmix64(tv->seed ^ h);
    size_t ti = (size_t)(t - p->t);
    int any = 0;
    for (size_t i = 0; i < tv->k; i++) {
        tv->s[i] = splitmix64(s0 + i);
        tv->mode[i] = KEEP_ALL;
        if (is_ties(tv) && tv->global) {
            /* the whole model's threshold, this tensor's share of the ties */
            tv->mode[i] = tv->gmode[i];
            tv->thresh[i] = tv->gthresh[i];
            tv->quota[i] = tv->gquota[ti * tv->k + i];
        } else if (is_ties(tv)) {
            uint64_t K = (uint64_t)floor(tv->d[i] * (double)t->numel);
            tv->mode[i] = K >= t->numel ? KEEP_ALL : K == 0 ? KEEP_NONE : KEEP_THRESH;
            tv->quota[i] = K; /* the number still to place from the top */
            any |= tv->mode[i] == KEEP_THRESH;
        }
    }
    if (!any)
        return 0;
    /* pass 0: the bin of the upper 16 bits holding the K-th largest key */
    uint32_t bin[MAXK] = {0};
    uint64_t above[MAXK] = {0};
    memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
    int rc = scan_tensor(tv, p, t, scratch, scratch_bytes, 0, bin, tv->hist);
    for (size_t i = 0; i < tv->k && !rc; i++)
        if (tv->mode[i] == KEEP_THRESH) /* quota[i] = K here, 0 < K < numel */
            bin[i] = from_top(tv->hist + i * 65536, 65535, tv->quota[i], &above[i]);
    /* pass 1: the lower 15 bits within that bin */
    if (!rc) {
        memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
        rc = scan_tensor(tv, p, t, scratch, scratch_bytes, 1, bin, tv->hist);
    }
    for (size_t i = 0; i < tv->k && !rc; i++) {
        if (tv->mode[i] != KEEP_THRESH)
            continue;
        uint64_t need = tv->quota[i] - above[i], acc;
        uint32_t lo = from_top(tv->hist + i * 65536, 0x7FFF, need, &acc);
        tv->thresh[i] = (bin[i] << 15) | lo;
        tv->quota[i] = need - acc; /* keys equal to the threshold still to keep, lowest index first */
    }
    return rc;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp((*(const lsw_plan_tensor *const *)a)->name, (*(const lsw_plan_tensor *const *)b)->name);
}

int lsw_tv_global(lsw_tv *tv, const lsw_plan *p, const lsw_comm *c, char *scratch, size_t scratch_bytes)
{
    if (!is_ties(tv) || !tv->global)
        return 0;
    /* the task-vector tensors in byte-wise name order: the concatenation */
    const lsw_plan_tensor **order = malloc((p->n ? p->n : 1) * sizeof *order);
    uint64_t *counts = NULL;
    size_t nt = 0;
    uint64_t N = 0;
    int rc = order ? 0 : lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; !rc && i < p->n; i++)
        if (p->t[i].op == LSW_OP_TV) {
            order[nt++] = &p->t[i];
            N += p->t[i].numel;
        }
    if (!rc)
        qsort(order, nt, sizeof *order, cmp_by_name);
    tv->gquota = calloc(p->n * tv->k + 1, sizeof *tv->gquota);
    counts = calloc(nt * tv->k + 1, sizeof *counts);
    if (!rc && (!tv->gquota || !counts))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    uint64_t K[MAXK], above[MAXK] = {0};
    uint32_t bin[MAXK] = {0};
    int any = 0;
    for (size_t i = 0; i < tv->k; i++) {
        K[i] = (uint64_t)floor(tv->d[i] * (double)N);
        tv->gmode[i] = K[i] >= N ? KEEP_ALL : K[i] == 0 ? KEEP_NONE : KEEP_THRESH;
        tv->mode[i] = tv->gmode[i];
        any |= tv->gmode[i] == KEEP_THRESH;
    }
    /* three passes, each over this rank's tensors (i mod size), summed over ranks */
    for (int pass = 0; any && pass < 3 && !rc; pass++) {
        memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
        for (size_t q = 0; q < nt && !rc; q++) {
            if ((int)(q % (size_t)c->size) != c->rank)
                continue;
            const lsw_plan_tensor *t = order[q];
            if (pass < 2) {
                rc = scan_tensor(tv, p, t, scratch, scratch_bytes, pass, bin, tv->hist);
            } else {
                rc = scan_tensor(tv, p, t, scratch, scratch_bytes, 2, tv->gthresh, counts + q * tv->k);
            }
        }
        rc = lsw_agree(c, rc);
        if (rc)
            break;
        if (pass < 2 && c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, tv->hist, (int)(tv->k * 65536), MPI_UINT64_T, MPI_SUM, c->comm);
        if (pass == 2 && c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, counts, (int)(nt * tv->k), MPI_UINT64_T, MPI_SUM, c->comm);
        for (size_t i = 0; i < tv->k; i++) {
            if (tv->gmode[i] != KEEP_THRESH)
                continue;
            if (pass == 0) {
                bin[i] = from_top(tv->hist + i * 65536, 65535, K[i], &above[i]);
            } else if (pass == 1) {
                uint64_t need = K[i] - above[i], acc;
                uint32_t lo = from_top(tv->hist + i * 65536, 0x7FFF, need, &acc);
                tv->gthresh[i] = (bin[i] << 15) | lo;
                above[i] = need - acc; /* keys equal to the threshold to keep, over the whole model */
            } else {
                /* in name order, each tensor keeps the equal keys the earlier ones left */
                uint64_t left = above[i];
                for (size_t q = 0; q < nt; q++) {
                    uint64_t here = counts[q * tv->k + i], take = here < left ? here : left;
                    tv->gquota[(size_t)(order[q] - p->t) * tv->k + i] = take;
                    left -= take;
                }
            }
        }
    }
    free(order);
    free(counts);
    return rc;
}

void lsw_tv_block(lsw_tv *tv, const lsw_plan_tensor *t, uint64_t j0, size_t n, const void *const *in, void *out)
{
    float res[CH];
    size_t oes = lsw_dtype_size(t->out_dtype);
    for (size_t c = 0; c < n; c += CH) {
        size_t m = n - c < CH ? n - c : CH;
        deltas(tv, t, in, c, m);
        /* 2. sparsify */
        for (size_t i = 0; i < tv->k; i++) {
            float *d = tv->delta + i * CH;
            if (tv->mode[i] == KEEP_NONE) {
                for (size_t j = 0; j < m; j++)
                    d[j] = 0.0f;
            } else if (tv->mode[i] == KEEP_THRESH) {
                for (size_t j = 0; j < m; j++) {
                    uint32_t key = key_of(d[j]);
                    if (key > tv->thresh[i])
                        continue;
                    if (key == tv->thresh[i] && tv->quota[i] > 0) {
                        tv->quota[i]--;
                        continue;
                    }
                    d[j] = 0.0f;
                }
            }
            if (is_dare(tv)) {
                for (size_t j = 0; j < m; j++) {
                    uint64_t r = splitmix64(tv->s[i] + j0 + c + j);
                    double u = (double)(r >> 11) * 0x1.0p-53;
                    d[j] = u < tv->d[i] ? d[j] / tv->dinv_f[i] : 0.0f;
                }
            }
        }
        /* 3. combine, 4. add to the base */
        for (size_t j = 0; j < m; j++) {
            float mm;
            if (!consensus(tv)) {
                mm = tv->w[0] * tv->delta[j];
                for (size_t i = 1; i < tv->k; i++) {
                    float prod = tv->w[i] * tv->delta[i * CH + j];
                    mm = mm + prod;
                }
                if (tv->normalize)
                    mm = mm / tv->wsum;
            } else {
                float s = tv->w[0] * tv->delta[j];
                for (size_t i = 1; i < tv->k; i++) {
                    float prod = tv->w[i] * tv->delta[i * CH + j];
                    s = s + prod;
                }
                int plus = s >= 0.0f;
                int first = 1;
                float D = 0.0f;
                mm = 0.0f;
                for (size_t i = 0; i < tv->k; i++) {
                    float dv = tv->delta[i * CH + j];
                    if (!(plus ? dv > 0.0f : dv < 0.0f))
                        continue;
                    float prod = tv->w[i] * dv;
                    if (first) {
                        mm = prod;
                        D = tv->w[i];
                        first = 0;
                    } else {
                        mm = mm + prod;
                        D = D + tv->w[i];
                    }
                }
                if (tv->normalize) {
                    if (fabs((double)D) < 1e-8)
                        D = 1.0f;
                    mm = mm / D;
                }
            }
            float lm = tv->lambda * mm;
            res[j] = tv->bf[j] + lm;
        }
        lsw_from_f32(t->out_dtype, res, (char *)out + c * oes, m);
    }
}
