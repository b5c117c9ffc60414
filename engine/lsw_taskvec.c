#include "lsw_taskvec.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_tread.h"
#include "lsw_kernels.h"

enum { CH = 1024, MAXK = LSW_MAX_SOURCES - 1, LANES = 8, MAX_THREADS = 64 };

/* The per-chunk loops that run over every element of every tensor,
 * vectorised and built for AVX2 and AVX-512 besides the baseline, chosen at
 * load time.  Lanes are independent IEEE operations and the build forbids
 * FMA contraction, so every version gives the same bits. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(LSW_NO_CLONES)
#define TV_VECTOR __attribute__((target_clones("default", "avx2", "avx512f"), optimize("tree-vectorize")))
#else
#define TV_VECTOR
#endif

typedef enum { KEEP_ALL, KEEP_NONE, KEEP_CUTS } keep_mode;

/* The K largest keys of a tensor (largest first, ties to the lower index):
 * a key is among them iff key > thresh, or key == thresh and it is one of
 * the first `quota` such keys in index order. */
typedef struct cut {
    uint64_t K;          /* 0: none; numel or more: all */
    int all;
    uint32_t bin, thresh;
    uint64_t above, quota;
} cut;

/* All scan helpers' buffers together take at most a quarter of --mem, or
 * this much when that is less (like the main thread's histograms, they are
 * not block buffers: lsw_tv_set_threads). */
#define HELPER_FLOOR (64ULL << 20)

/* A helper thread's buffers for the scans (scan_tensor). */
typedef struct tv_lane {
    float *delta, *bf, *xf;
    uint64_t *hist;           /* 2 x kmax x 65536: counts, then the odd elements' */
} tv_lane;

struct lsw_tv {
    lsw_tv_kind kind;
    size_t threads;           /* for the scans: 1 .. MAX_THREADS (lsw_tv_set_threads) */
    size_t nlanes;            /* helper buffers made so far */
    size_t used;              /* the most threads one scan used */
    tv_lane lane[MAX_THREADS - 1];
    size_t kmax;              /* buffers are sized for this many experts */
    const lsw_config *cfg;
    int rescale;
    uint64_t seed;
    /* per tensor */
    size_t k;
    float w[MAXK];
    double d[MAXK], gamma[MAXK], eps[MAXK];
    float dinv_f[MAXK];       /* f32(d_i), the dare divisor */
    float lambda;
    int normalize;
    float wsum;               /* D of the non-consensus methods */
    keep_mode mode[MAXK];
    int ncut[MAXK];           /* ties: 1 (keep the top); breadcrumbs: 2 (top of cut 0 but not of cut 1) */
    cut cut[MAXK][2];
    uint64_t s[MAXK];         /* dare, della: per-expert stream */
    float mw[LSW_MAX_SOURCES];/* slerp, model_stock: the weights of the weighted sum */
    uint64_t *hist;           /* kmax x 65536, then as many for odd elements (see scan_keys) */
    /* "trim": "global" (ties): per expert, over the whole model */
    int global;
    keep_mode gmode[MAXK];
    uint32_t gthresh[MAXK];
    uint64_t *gquota;         /* [plan tensor][expert]: equal keys this tensor keeps */
    float *delta;             /* kmax x CH */
    float *bf, *xf;           /* CH each */
    /* della: the current row */
    const lsw_plan *p;
    uint64_t row_len, row_first; /* row_first = UINT64_MAX: none cached */
    uint32_t *rank;           /* kmax x row_len */
    float *rowd;              /* kmax x row_len */
    char *rowsrc;             /* (kmax + 1) x row_len x 4 bytes */
    size_t row_cap;
    double *acc;              /* slerp, model_stock: lanes of the f64 sums */
};

static uint64_t splitmix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ULL;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

static int is_ties(const lsw_tv *tv) { return tv->kind == LSW_TV_TIES; }
static int is_crumbs(const lsw_tv *tv) { return tv->kind == LSW_TV_BREADCRUMBS || tv->kind == LSW_TV_BREADCRUMBS_TIES; }
static int is_dare(const lsw_tv *tv) { return tv->kind == LSW_TV_DARE_LINEAR || tv->kind == LSW_TV_DARE_TIES; }
static int is_della(const lsw_tv *tv) { return tv->kind == LSW_TV_DELLA || tv->kind == LSW_TV_DELLA_LINEAR; }
static int is_wsum(const lsw_tv *tv) { return tv->kind == LSW_TV_SLERP || tv->kind == LSW_TV_MODEL_STOCK; }
static int consensus(const lsw_tv *tv)
{
    return tv->kind == LSW_TV_TIES || tv->kind == LSW_TV_DARE_TIES || tv->kind == LSW_TV_BREADCRUMBS_TIES ||
           tv->kind == LSW_TV_DELLA;
}

int lsw_tv_create(const lsw_config *cfg, lsw_tv **out)
{
    *out = NULL;
    lsw_tv *tv = calloc(1, sizeof *tv);
    if (!tv)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    tv->cfg = cfg;
    tv->kind = cfg->tv.kind;
    tv->kmax = cfg->tv.k;
    for (size_t s = 0; cfg->mk.on && s < cfg->mk.nslices; s++)
        if (cfg->mk.slices[s].nsrc - 1 > tv->kmax)
            tv->kmax = cfg->mk.slices[s].nsrc - 1;
    tv->seed = cfg->tv.seed;
    tv->rescale = cfg->mk.on ? cfg->tv.rescale : 1;
    tv->global = cfg->tv.global_trim;
    tv->row_first = UINT64_MAX;
    tv->threads = 1;
    tv->delta = malloc((tv->kmax ? tv->kmax : 1) * CH * sizeof *tv->delta);
    tv->bf = malloc(CH * sizeof *tv->bf);
    tv->xf = malloc(CH * sizeof *tv->xf);
    size_t pairs = tv->kmax * (tv->kmax + 1) / 2 + 3;
    tv->acc = calloc((tv->kmax + pairs) * LANES, sizeof *tv->acc);
    int hist = is_ties(tv) || is_crumbs(tv);
    if (hist)
        tv->hist = calloc(tv->kmax * 65536 * 2, sizeof *tv->hist);
    if (!tv->delta || !tv->bf || !tv->xf || !tv->acc || (hist && !tv->hist)) {
        lsw_tv_free(tv);
        return lsw_err_set(LSW_E_NOMEM, "out of memory for task-vector buffers");
    }
    *out = tv;
    return 0;
}

void lsw_tv_set_threads(lsw_tv *tv, int n, uint64_t mem)
{
    size_t k = tv->kmax ? tv->kmax : 1;
    uint64_t lane = (uint64_t)k * (CH * sizeof(float) + 65536 * 2 * sizeof(uint64_t)) + 2 * CH * sizeof(float);
    uint64_t cap = mem / 4 > HELPER_FLOOR ? mem / 4 : HELPER_FLOOR, fit = 1 + cap / lane;
    tv->threads = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : (size_t)n;
    tv->threads = tv->threads > fit ? (size_t)fit : tv->threads;
}

unsigned lsw_tv_threads_used(const lsw_tv *tv) { return (unsigned)tv->used; }

void lsw_tv_free(lsw_tv *tv)
{
    if (!tv)
        return;
    for (size_t x = 0; x < tv->nlanes; x++) {
        free(tv->lane[x].delta);
        free(tv->lane[x].bf);
        free(tv->lane[x].xf);
        free(tv->lane[x].hist);
    }
    free(tv->hist);
    free(tv->gquota);
    free(tv->delta);
    free(tv->bf);
    free(tv->xf);
    free(tv->rank);
    free(tv->rowd);
    free(tv->rowsrc);
    free(tv->acc);
    free(tv);
}

static uint32_t key_of(float d)
{
    uint32_t u;
    memcpy(&u, &d, 4);
    return u & 0x7FFFFFFFu;
}

/* δ of the k experts for m ≤ CH elements: delta[i*CH ..], bf the base, xf scratch. */
static void deltas_into(size_t k, const lsw_plan_tensor *t, const void *const *in, size_t off, size_t m, float *delta,
                        float *bf, float *xf)
{
    size_t bes = lsw_dtype_size(t->src[0]->dtype);
    lsw_to_f32(t->src[0]->dtype, (const char *)in[0] + off * bes, bf, m);
    for (size_t i = 0; i < k; i++) {
        size_t es = lsw_dtype_size(t->src[1 + i]->dtype);
        float *d = delta + i * CH;
        lsw_to_f32(t->src[1 + i]->dtype, (const char *)in[1 + i] + off * es, xf, m);
        for (size_t j = 0; j < m; j++)
            d[j] = xf[j] - bf[j];
    }
}

/* δ of expert i for m ≤ CH elements: tv->delta[i*CH ..]. */
static void deltas(lsw_tv *tv, const lsw_plan_tensor *t, const void *const *in, size_t off, size_t m)
{
    deltas_into(tv->k, t, in, off, m, tv->delta, tv->bf, tv->xf);
}

/* The one place source data is read: elements [e0, e0 + n) of source j of t. */
static int read_source(const lsw_plan *p, const lsw_plan_tensor *t, size_t j, uint64_t e0, size_t n, void *buf)
{
    return lsw_tread_copy(p->models[t->models[j]], t->src[j], e0, n, buf);
}

/* Read elements [e0, e0 + n) of every source of t into scratch; in[] points at them. */
static int read_sources(const lsw_plan *p, const lsw_plan_tensor *t, uint64_t e0, size_t n, char *scratch,
                        const void **in)
{
    char *cur = scratch;
    for (size_t j = 0; j < t->nsrc; j++) {
        int rc = read_source(p, t, j, e0, n, cur);
        if (rc)
            return rc;
        in[j] = cur;
        cur += n * lsw_dtype_size(t->src[j]->dtype);
    }
    return 0;
}

/* Elements per streamed block of t within `bytes` of scratch. */
static size_t stream_block(const lsw_plan_tensor *t, size_t bytes)
{
    size_t per = 0;
    for (size_t j = 0; j < t->nsrc; j++)
        per += lsw_dtype_size(t->src[j]->dtype);
    size_t B = bytes / per;
    return B > CH * 64 ? CH * 64 : B;
}

/* Stream tensor t through `scratch` in blocks and, for every chunk of at
 * most CH elements, fill the deltas (deltas_into) and call visit(tv, t, in,
 * c, m, first, arg): in[] the block's sources, c the chunk's offset in the
 * block, m its length, first its first element in the tensor. */
typedef void (*chunk_fn)(lsw_tv *tv, const lsw_plan_tensor *t, const void *const *in, size_t c, size_t m,
                         uint64_t first, void *arg);

/* One reader's share of a tensor: blocks id, id + T, id + 2T, … of B
 * elements, read into `scratch`, deltas into its own delta, bf, xf. */
typedef struct share {
    size_t id, T, B;
    char *scratch;
    float *delta, *bf, *xf;
} share;

static int each_chunk_of(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, const share *s, chunk_fn visit,
                         void *arg)
{
    const void *in[LSW_MAX_SOURCES];
    for (uint64_t e0 = (uint64_t)s->id * s->B; e0 < t->numel; e0 += (uint64_t)s->T * s->B) {
        size_t n = t->numel - e0 < s->B ? (size_t)(t->numel - e0) : s->B;
        int rc = read_sources(p, t, e0, n, s->scratch, in);
        if (rc)
            return rc;
        for (size_t c = 0; c < n; c += CH) {
            size_t m = n - c < CH ? n - c : CH;
            deltas_into(tv->k, t, in, c, m, s->delta, s->bf, s->xf);
            visit(tv, t, in, c, m, e0 + c, arg);
        }
    }
    return 0;
}

/* The whole tensor on this thread, into tv's own buffers. */
static int each_chunk(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t bytes,
                      chunk_fn visit, void *arg)
{
    share s = {0, 1, stream_block(t, bytes), scratch, tv->delta, tv->bf, tv->xf};
    if (s.B == 0)
        return lsw_err_set(LSW_E_INTERNAL, "task-vector scratch of %zu bytes is too small", bytes);
    return each_chunk_of(tv, p, t, &s, visit, arg);
}

/* The index of the first nonzero byte of f[j..m), or m: eight bytes at a
 * time, for flags that are mostly zero. */
static size_t next_flag(const unsigned char *f, size_t j, size_t m)
{
    for (; j < m && (j & 7); j++)
        if (f[j])
            return j;
    for (; j + 8 <= m; j += 8) {
        uint64_t w;
        memcpy(&w, f + j, 8);
        if (w)
            break;
    }
    while (j < m && !f[j])
        j++;
    return j;
}

/* One expert's chunk of keys for scan_tensor's pass (see there); out is
 * that expert's histogram (passes 0, 1) or counter (pass 2).  Histogram
 * counts of odd elements go to `odd`, a second histogram of out's layout
 * that scan_tensor folds into out: counts of equal keys in a row (common in
 * bf16 deltas) then do not wait on each other's stores. */
TV_VECTOR static void scan_keys(int pass, int nc, const uint32_t *arg, const float *d, size_t m, uint64_t *out,
                                uint64_t *odd)
{
    if (pass == 2) {
        uint64_t n = 0;
        for (size_t j = 0; j < m; j++)
            n += key_of(d[j]) == arg[0];
        out[0] += n;
        return;
    }
    uint32_t sel[CH], n = 0, b0 = arg[0], b1 = nc > 1 ? arg[1] : UINT32_MAX; /* UINT32_MAX: no bin */
    if (pass == 0) {
        for (size_t j = 0; j < m; j++)
            sel[j] = key_of(d[j]) >> 15;
        n = (uint32_t)m;
    } else {
        for (size_t j = 0; j < m; j++) { /* the keys in a cut's bin, in order, without a branch */
            uint32_t key = key_of(d[j]), bin = key >> 15;
            sel[n] = key;
            n += (bin == b0) | (bin == b1);
        }
        for (uint32_t j = 0; j < n; j++) {
            uint32_t key = sel[j], bin = key >> 15;
            sel[j] = bin == b0 ? (key & 0x7FFF) : 32768 + (key & 0x7FFF);
            if (bin == b0 && bin == b1) /* both cuts in one bin: cut 1 counts it too, below */
                out[32768 + (key & 0x7FFF)]++;
        }
    }
    uint32_t j = 0;
    for (; j + 2 <= n; j += 2) {
        out[sel[j]]++;
        odd[sel[j + 1]]++;
    }
    if (j < n)
        out[sel[j]]++;
}

/* One thread's part of a scan (scan_tensor): its share of the blocks and
 * its own counts (integer sums: the result is the same however the blocks
 * are shared). */
typedef struct scan_job {
    const lsw_plan *p;
    const lsw_plan_tensor *t;
    int pass;
    const int *nc;
    uint32_t (*arg)[2];
    share sh;
    uint64_t *out, *odd;      /* passes 0, 1: k x 65536 each; pass 2: out[i] */
    lsw_tv *tv;
    int rc;
    char msg[512];            /* the error detail of a helper thread */
} scan_job;

static void scan_chunk(lsw_tv *tv, const lsw_plan_tensor *t, const void *const *in, size_t c, size_t m,
                       uint64_t first, void *arg)
{
    (void)t, (void)in, (void)c, (void)first;
    const scan_job *j = arg;
    for (size_t i = 0; i < tv->k; i++)
        if (j->nc[i] != 0)
            scan_keys(j->pass, j->nc[i], j->arg[i], j->sh.delta + i * CH, m,
                      j->pass == 2 ? j->out + i : j->out + i * 65536, j->odd + i * 65536);
}

static void *scan_run(void *arg)
{
    scan_job *j = arg;
    j->rc = each_chunk_of(j->tv, j->p, j->t, &j->sh, scan_chunk, j);
    if (j->rc)
        snprintf(j->msg, sizeof j->msg, "%s", lsw_err_detail());
    return NULL;
}

/* Helper threads' buffers, made on first use: per thread CH-element deltas
 * and 2 x kmax x 65536 counts. */
static int lanes_ready(lsw_tv *tv, size_t T)
{
    size_t k = tv->kmax ? tv->kmax : 1;
    for (size_t x = tv->nlanes + 1; x < T; x++) {
        tv_lane *l = &tv->lane[x - 1];
        l->delta = malloc(k * CH * sizeof *l->delta);
        l->bf = malloc(CH * sizeof *l->bf);
        l->xf = malloc(CH * sizeof *l->xf);
        l->hist = malloc(k * 65536 * 2 * sizeof *l->hist);
        tv->nlanes = x; /* freed by lsw_tv_free, whole or not */
        if (!l->delta || !l->bf || !l->xf || !l->hist)
            return lsw_err_set(LSW_E_NOMEM, "out of memory for task-vector scan buffers");
    }
    return 0;
}

/* Whether every source of t is read straight from its files (the derived
 * models' views compute through shared buffers: one thread only). */
static int plain_sources(const lsw_plan *p, const lsw_plan_tensor *t)
{
    for (size_t j = 0; j < t->nsrc; j++)
        if (lsw_ckpt_view_user(p->models[t->models[j]]))
            return 0;
    return 1;
}

/* One pass over tensor t for the experts with nc[i] > 0 cuts to select, adding to `out`:
 *   pass 0: out[i·65536 + (key >> 15)]++
 *   pass 1: out[i·65536 + c·32768 + (key & 0x7FFF)]++ for cuts c < nc[i] with (key >> 15) == arg[i][c]
 *   pass 2: out[i]++ for keys == arg[i][0]
 * For passes 0 and 1, out is tv->hist (its second half takes the odd
 * elements).  Up to tv->threads threads share the tensor's blocks, each in
 * its part of `scratch`; their counts are added, so any thread count gives
 * the same numbers. */
static int scan_tensor(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t bytes,
                       int pass, const int *nc, uint32_t (*arg)[2], uint64_t *out)
{
    size_t T = tv->threads > 1 && plain_sources(p, t) ? tv->threads : 1, part = bytes, B = 0;
    for (; T > 1; T--) { /* at least two blocks a thread, in a scratch of its own */
        part = bytes / T / 64 * 64;
        B = stream_block(t, part);
        if (B && t->numel / B >= 2 * T)
            break;
    }
    if (T == 1)
        part = bytes, B = stream_block(t, bytes);
    if (B == 0)
        return lsw_err_set(LSW_E_INTERNAL, "task-vector scratch of %zu bytes is too small", bytes);
    int rc = lanes_ready(tv, T);
    scan_job job[MAX_THREADS];
    pthread_t th[MAX_THREADS];
    size_t started = 1, cells = pass == 2 ? tv->k : tv->k * 65536;
    for (size_t x = 0; x < T && !rc; x++) {
        scan_job *j = &job[x];
        *j = (scan_job){p, t, pass, nc, arg, {x, T, B, scratch + x * part, tv->delta, tv->bf, tv->xf}, out,
                        tv->hist + tv->kmax * 65536, tv, 0, ""};
        if (x == 0)
            continue;
        tv_lane *l = &tv->lane[x - 1];
        j->sh.delta = l->delta, j->sh.bf = l->bf, j->sh.xf = l->xf;
        j->out = l->hist, j->odd = l->hist + tv->kmax * 65536;
        memset(l->hist, 0, (pass == 2 ? tv->k : 2 * tv->kmax * 65536) * sizeof *l->hist);
        if (pthread_create(&th[x], NULL, scan_run, j) != 0) {
            rc = lsw_err_set(LSW_E_INTERNAL, "cannot start a task-vector scan thread");
            break;
        }
        started++;
    }
    if (!rc)
        scan_run(&job[0]);
    tv->used = started > tv->used ? started : tv->used;
    for (size_t x = 1; x < started; x++) {
        pthread_join(th[x], NULL);
        for (size_t c = 0; c < cells; c++)
            out[c] += job[x].out[c] + (pass == 2 ? 0 : job[x].odd[c]);
        if (!rc && job[x].rc)
            rc = lsw_err_set(job[x].rc, "%s", job[x].msg);
    }
    if (!rc && job[0].rc)
        rc = job[0].rc;
    for (size_t i = 0; pass < 2 && i < tv->k; i++) { /* fold the odd elements' counts (scan_keys) */
        uint64_t *odd = tv->hist + (tv->kmax + i) * 65536;
        for (size_t b = 0; nc[i] && b < 65536; b++) {
            out[i * 65536 + b] += odd[b];
            odd[b] = 0;
        }
    }
    return rc;
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

/* Thresholds of every cut with 0 < K < numel: two passes over the tensor. */
static int select_cuts(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t bytes)
{
    int nc[MAXK] = {0}, any = 0;
    uint32_t arg[MAXK][2] = {{0}};
    for (size_t i = 0; i < tv->k; i++) {
        for (int q = 0; q < tv->ncut[i]; q++) {
            cut *c = &tv->cut[i][q];
            c->all = c->K >= t->numel;
            if (c->K > 0 && !c->all)
                nc[i] = q + 1;
        }
        /* a needless cut 0 under a needed cut 1: select both (the histogram is shared) */
        any |= nc[i] > 0;
    }
    if (!any)
        return 0;
    memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
    int rc = scan_tensor(tv, p, t, scratch, bytes, 0, nc, arg, tv->hist);
    for (size_t i = 0; i < tv->k && !rc; i++)
        for (int q = 0; q < nc[i]; q++) {
            cut *c = &tv->cut[i][q];
            if (c->K > 0 && !c->all)
                arg[i][q] = c->bin = from_top(tv->hist + i * 65536, 65535, c->K, &c->above);
            else
                arg[i][q] = UINT32_MAX; /* matches no bin */
        }
    if (!rc) {
        memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
        rc = scan_tensor(tv, p, t, scratch, bytes, 1, nc, arg, tv->hist);
    }
    for (size_t i = 0; i < tv->k && !rc; i++)
        for (int q = 0; q < nc[i]; q++) {
            cut *c = &tv->cut[i][q];
            if (!(c->K > 0 && !c->all))
                continue;
            uint64_t need = c->K - c->above, acc;
            uint32_t lo = from_top(tv->hist + i * 65536 + q * 32768, 0x7FFF, need, &acc);
            c->thresh = (c->bin << 15) | lo;
            c->quota = need - acc; /* keys equal to the threshold still to keep, lowest index first */
        }
    return rc;
}

/* Per-tensor parameters: t->w and t->par ("sources"/"slices"), else the config's. */
static void load_params(lsw_tv *tv, const lsw_plan_tensor *t)
{
    const lsw_config *cfg = tv->cfg;
    tv->k = t->nsrc - 1;
    tv->normalize = cfg->tv.normalize;
    tv->lambda = (float)(t->par ? t->par[LSW_PAR_LAMBDA] : cfg->tv.lambda);
    float D = 0;
    for (size_t i = 0; i < tv->k; i++) {
        tv->w[i] = t->w[1 + i];
        tv->d[i] = t->par ? t->par[LSW_PAR_SRC(1 + i, LSW_PAR_DENSITY)] : cfg->tv.density[i];
        tv->gamma[i] = t->par ? t->par[LSW_PAR_SRC(1 + i, LSW_PAR_GAMMA)] : 0;
        tv->eps[i] = t->par ? t->par[LSW_PAR_SRC(1 + i, LSW_PAR_EPSILON)] : 0;
        tv->dinv_f[i] = (float)tv->d[i];
        D = i ? D + tv->w[i] : tv->w[i];
    }
    tv->wsum = fabs((double)D) < 1e-8 ? 1.0f : D;
}

/* The cuts of ties / breadcrumbs for tensor t. */
static void set_cuts(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t)
{
    size_t ti = (size_t)(t - p->t);
    for (size_t i = 0; i < tv->k; i++) {
        tv->mode[i] = KEEP_ALL;
        tv->ncut[i] = 0;
        if (tv->d[i] >= 1.0 && !tv->global)
            continue;
        if (is_ties(tv) && tv->global) {
            /* the whole model's threshold, this tensor's share of the ties */
            tv->mode[i] = tv->gmode[i];
            tv->ncut[i] = 1;
            tv->cut[i][0] = (cut){1, 0, 0, tv->gthresh[i], 0, tv->gquota[ti * tv->k + i]};
        } else if (is_ties(tv) || is_crumbs(tv)) {
            uint64_t K = (uint64_t)floor(tv->d[i] * (double)t->numel);
            tv->mode[i] = K == 0 ? KEEP_NONE : KEEP_CUTS;
            tv->ncut[i] = is_crumbs(tv) ? 2 : 1;
            uint64_t top = 0;
            if (is_crumbs(tv)) {
                top = (uint64_t)floor(tv->gamma[i] * (double)t->numel);
                if (top > t->numel - K)
                    top = t->numel - K;
            }
            memset(tv->cut[i], 0, sizeof tv->cut[i]);
            tv->cut[i][0].K = K + top;
            tv->cut[i][1].K = top;
        }
    }
}

/* slerp's sums over a chunk whose first element is lane 0 (LANES = 8):
 * lane l adds elements l, l + 8, ... in order, as the general loop does. */
TV_VECTOR static size_t slerp_lanes(double *acc, const float *bf, const float *xf, size_t m)
{
    size_t j = 0;
    for (; j + LANES <= m; j += LANES)
        for (size_t l = 0; l < LANES; l++) {
            double b = bf[j + l], x = xf[j + l];
            acc[0 * LANES + l] += b * b;
            acc[1 * LANES + l] += x * x;
            acc[2 * LANES + l] += b * x;
        }
    return j;
}

static void weight_chunk(lsw_tv *tv, const lsw_plan_tensor *t, const void *const *in, size_t c, size_t m,
                         uint64_t first, void *argp)
{
    double *acc = tv->acc;
    size_t k = tv->k;
    if (tv->kind == LSW_TV_SLERP) {
        size_t xs = lsw_dtype_size(t->src[1]->dtype);
        lsw_to_f32(t->src[1]->dtype, (const char *)in[1] + c * xs, tv->xf, m);
        size_t done = (first & (LANES - 1)) == 0 ? slerp_lanes(acc, tv->bf, tv->xf, m) : 0;
        for (size_t j = done; j < m; j++) {
            size_t l = (size_t)((first + j) & (LANES - 1));
            double b = tv->bf[j], x = tv->xf[j];
            acc[0 * LANES + l] += b * b;
            acc[1 * LANES + l] += x * x;
            acc[2 * LANES + l] += b * x;
        }
        return;
    }
    for (size_t j = 0; j < m; j++) {
        size_t l = (size_t)((first + j) & (LANES - 1)), q = k;
        for (size_t a = 0; a < k; a++) {
            double da = tv->delta[a * CH + j];
            acc[a * LANES + l] += da * da;
            for (size_t b2 = a + 1; b2 < k; b2++)
                acc[(q++) * LANES + l] += da * (double)tv->delta[b2 * CH + j];
        }
    }
}

/* slerp, model_stock: the f64 sums of one pass over the tensor, in LANES lanes. */
static int weight_pass(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t bytes)
{
    size_t k = tv->k, npair = k * (k - 1) / 2;
    double *acc = tv->acc; /* slerp: n0, n1, dot; model_stock: n_i, then the pairs */
    size_t nacc = tv->kind == LSW_TV_SLERP ? 3 : k + npair;
    memset(acc, 0, nacc * LANES * sizeof *acc);
    int rc = each_chunk(tv, p, t, scratch, bytes, weight_chunk, NULL);
    if (rc)
        return rc;
    for (size_t a = 0; a < nacc; a++) {
        double s = 0.0;
        for (size_t l = 0; l < LANES; l++)
            s += acc[a * LANES + l];
        acc[a] = s; /* lane totals into the first nacc slots (a ≤ a * LANES) */
    }
    return 0;
}

static void slerp_weights(lsw_tv *tv, double t)
{
    double n0 = sqrt(tv->acc[0]), n1 = sqrt(tv->acc[1]);
    double n0p = n0 > 1e-8 ? n0 : 1.0, n1p = n1 > 1e-8 ? n1 : 1.0;
    double c = tv->acc[2] / (n0p * n1p), w0, w1;
    if (fabs(c) > 0.9995) {
        w0 = 1.0 - t;
        w1 = t;
    } else {
        double th = acos(c), s = sin(th), tht = th * t;
        w0 = sin(th - tht) / s;
        w1 = sin(tht) / s;
    }
    tv->mw[0] = (float)w0;
    tv->mw[1] = (float)w1;
}

static void model_stock_weights(lsw_tv *tv)
{
    size_t k = tv->k, q = k;
    double csum = 0.0, nrm[MAXK];
    for (size_t a = 0; a < k; a++)
        nrm[a] = sqrt(tv->acc[a]);
    for (size_t a = 0; a < k; a++)
        for (size_t b = a + 1; b < k; b++) {
            double den = nrm[a] * nrm[b];
            double c = tv->acc[q++] / (den > 1e-6 ? den : 1e-6);
            c = c < -1.0 ? -1.0 : c > 1.0 ? 1.0 : c;
            csum += c;
        }
    double cos = csum / (double)(k * (k - 1) / 2), N = (double)k;
    double den = 1.0 + (N - 1.0) * cos, tau = den == 0.0 ? 0.0 : (N * cos) / den;
    tv->mw[0] = (float)(1.0 - tau);
    for (size_t a = 0; a < k; a++)
        tv->mw[1 + a] = (float)(tau / N);
}

int lsw_tv_begin(lsw_tv *tv, const lsw_plan *p, const lsw_plan_tensor *t, char *scratch, size_t scratch_bytes)
{
    uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, t->name, strlen(t->name));
    uint64_t s0 = splitmix64(tv->seed ^ h);
    load_params(tv, t);
    tv->p = p;
    tv->row_first = UINT64_MAX;
    for (size_t i = 0; i < tv->k; i++)
        tv->s[i] = splitmix64(s0 + i);
    if (is_wsum(tv)) {
        int rc = weight_pass(tv, p, t, scratch, scratch_bytes);
        if (!rc && tv->kind == LSW_TV_SLERP)
            slerp_weights(tv, t->par ? t->par[LSW_PAR_T] : 0.0);
        else if (!rc)
            model_stock_weights(tv);
        return rc;
    }
    set_cuts(tv, p, t);
    if (is_ties(tv) && tv->global)
        return 0;
    return select_cuts(tv, p, t, scratch, scratch_bytes);
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
    tv->k = tv->kmax;
    tv->gquota = calloc(p->n * tv->k + 1, sizeof *tv->gquota);
    counts = calloc(nt * tv->k + 1, sizeof *counts);
    if (!rc && (!tv->gquota || !counts))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    uint64_t K[MAXK], above[MAXK] = {0};
    uint32_t arg[MAXK][2] = {{0}};
    int nc[MAXK] = {0}, any = 0;
    for (size_t i = 0; i < tv->k; i++) {
        K[i] = (uint64_t)floor(tv->cfg->tv.density[i] * (double)N);
        tv->gmode[i] = K[i] >= N ? KEEP_ALL : K[i] == 0 ? KEEP_NONE : KEEP_CUTS;
        nc[i] = tv->gmode[i] == KEEP_CUTS;
        any |= nc[i];
    }
    /* three passes, each over this rank's tensors (i mod size), summed over ranks */
    for (int pass = 0; any && pass < 3 && !rc; pass++) {
        memset(tv->hist, 0, tv->k * 65536 * sizeof *tv->hist);
        for (size_t q = 0; q < nt && !rc; q++) {
            if ((int)(q % (size_t)c->size) != c->rank)
                continue;
            rc = scan_tensor(tv, p, order[q], scratch, scratch_bytes, pass, nc, arg,
                             pass < 2 ? tv->hist : counts + q * tv->k);
        }
        rc = lsw_agree(c, rc);
        if (rc)
            break;
        if (pass < 2 && c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, tv->hist, (int)(tv->k * 65536), MPI_UINT64_T, MPI_SUM, c->comm);
        if (pass == 2 && c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, counts, (int)(nt * tv->k), MPI_UINT64_T, MPI_SUM, c->comm);
        for (size_t i = 0; i < tv->k; i++) {
            if (tv->gmode[i] != KEEP_CUTS)
                continue;
            if (pass == 0) {
                arg[i][0] = from_top(tv->hist + i * 65536, 65535, K[i], &above[i]);
            } else if (pass == 1) {
                uint64_t need = K[i] - above[i], acc;
                uint32_t lo = from_top(tv->hist + i * 65536, 0x7FFF, need, &acc);
                arg[i][0] = tv->gthresh[i] = (arg[i][0] << 15) | lo;
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

/* Whether a key is among the cut's K largest (call for every element, in order). */
static int in_top(cut *c, uint32_t key)
{
    if (c->K == 0)
        return 0;
    if (c->all || key > c->thresh)
        return 1;
    if (key == c->thresh && c->quota > 0) {
        c->quota--;
        return 1;
    }
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* della: ranks of |δ| in the row holding element g (read whole when the
 * block does not hold it: [j0, j0 + n) is what in[] holds). */
static int della_row(lsw_tv *tv, const lsw_plan_tensor *t, uint64_t g, uint64_t j0, size_t n, const void *const *in)
{
    uint64_t R = tv->row_len, first = g / R * R;
    if (first == tv->row_first)
        return 0;
    size_t need = (size_t)R * (tv->kmax + 1);
    if (need > tv->row_cap) {
        free(tv->rank);
        free(tv->rowd);
        free(tv->rowsrc);
        tv->rank = malloc(need * sizeof *tv->rank);
        tv->rowd = malloc(need * sizeof *tv->rowd);
        tv->rowsrc = malloc(need * 4);
        tv->row_cap = tv->rank && tv->rowd && tv->rowsrc ? need : 0;
        if (!tv->row_cap)
            return lsw_err_set(LSW_E_NOMEM, "tensor '%s': out of memory for a row of %llu elements", t->name,
                               (unsigned long long)R);
    }
    const void *src[LSW_MAX_SOURCES];
    if (first >= j0 && first + R <= j0 + n) {
        for (size_t j = 0; j < t->nsrc; j++)
            src[j] = (const char *)in[j] + (first - j0) * lsw_dtype_size(t->src[j]->dtype);
    } else {
        char *cur = tv->rowsrc;
        for (size_t j = 0; j < t->nsrc; j++) {
            int rc = read_source(tv->p, t, j, first, (size_t)R, cur);
            if (rc)
                return rc;
            src[j] = cur;
            cur += (size_t)R * lsw_dtype_size(t->src[j]->dtype);
        }
    }
    uint64_t *order = (uint64_t *)tv->rowsrc; /* free now: the row's deltas are taken first */
    /* the row's deltas, in buffers of their own (the block's chunk is in tv->delta) */
    float bb[CH], xx[CH];
    for (uint64_t c = 0; c < R; c += CH) {
        size_t m = R - c < CH ? (size_t)(R - c) : CH;
        lsw_to_f32(t->src[0]->dtype, (const char *)src[0] + c * lsw_dtype_size(t->src[0]->dtype), bb, m);
        for (size_t i = 0; i < tv->k; i++) {
            lsw_to_f32(t->src[1 + i]->dtype, (const char *)src[1 + i] + c * lsw_dtype_size(t->src[1 + i]->dtype), xx, m);
            for (size_t j = 0; j < m; j++)
                tv->rowd[i * R + c + j] = xx[j] - bb[j];
        }
    }
    for (size_t i = 0; i < tv->k; i++) {
        float *d = tv->rowd + i * R;
        uint64_t *ord = order;
        if ((size_t)R * sizeof *ord > tv->row_cap * 4) /* rowsrc holds (kmax + 1)·R·4 ≥ 2R·4 bytes */
            return lsw_err_set(LSW_E_INTERNAL, "della row buffer too small");
        for (uint64_t j = 0; j < R; j++)
            ord[j] = (uint64_t)key_of(d[j]) << 32 | j;
        qsort(ord, (size_t)R, sizeof *ord, cmp_u64);
        for (uint64_t r = 0; r < R; r++)
            tv->rank[i * R + (ord[r] & 0xFFFFFFFFu)] = (uint32_t)r; /* rank − 1 */
    }
    tv->row_first = first;
    return 0;
}

/* The trim of one expert's chunk: keys in the top cut c0 and not in c1
 * (breadcrumbs' upper cut; NULL for ties) keep their delta, the others
 * become +0.  A key equal to a cut's threshold takes from its quota, in
 * index order (in_top).  This is the ordered form: every other key is
 * decided by comparisons alone in a loop that vectorises, and the ties are
 * settled afterwards in index order. */
TV_VECTOR static void keep_cuts_ordered(cut *c0, cut *c1, float *d, size_t m)
{
    uint32_t t0 = c0->thresh, t1 = c1 ? c1->thresh : 0;
    int32_t on0 = c0->K != 0, all0 = c0->all, on1 = c1 && c1->K != 0, all1 = c1 && c1->all, h1 = c1 != NULL;
    unsigned char tie[CH];
    for (size_t j = 0; j < m; j++) {
        uint32_t u;
        memcpy(&u, &d[j], 4);
        uint32_t key = u & 0x7FFFFFFFu;
        int32_t tj = (key == t0) | (h1 & (key == t1));
        int32_t a = on0 & (all0 | (key > t0)), b = on1 & (all1 | (key > t1));
        uint32_t keep = (uint32_t)(tj | (a & !b)); /* a tie is settled below */
        u &= 0u - keep;
        memcpy(&d[j], &u, 4);
        tie[j] = (unsigned char)tj;
    }
    for (size_t j = next_flag(tie, 0, m); j < m; j = next_flag(tie, j + 1, m)) {
        uint32_t key = key_of(d[j]);
        int a = in_top(c0, key), b = c1 && in_top(c1, key);
        if (!a || b)
            d[j] = 0.0f;
    }
}

TV_VECTOR static uint64_t count_key(const float *d, size_t m, uint32_t key)
{
    uint64_t n = 0;
    for (size_t j = 0; j < m; j++)
        n += key_of(d[j]) == key;
    return n;
}

/* How cut c treats the chunk's keys equal to its threshold: 1 all in its
 * top (the quota covers them), 0 none (or no quota is involved), -1 the
 * quota runs out inside the chunk.  *n gets their count when it matters. */
static int tie_rule(const cut *c, const float *d, size_t m, uint64_t *n)
{
    *n = 0;
    if (!c || c->K == 0 || c->all || c->quota == 0)
        return 0;
    *n = count_key(d, m, c->thresh);
    return c->quota >= *n ? 1 : -1;
}

/* keep_cuts_ordered's result.  Within a chunk a cut's quota mostly covers
 * all its ties or none (bf16 deltas repeat, so ties are common); then every
 * key is decided by comparisons in one vector loop and the quotas drop by
 * the ties taken.  Only the chunk where a quota runs out goes in order. */
TV_VECTOR static void keep_cuts(cut *c0, cut *c1, float *d, size_t m)
{
    uint64_t n0, n1;
    int r0 = tie_rule(c0, d, m, &n0), r1 = tie_rule(c1, d, m, &n1);
    if (r0 < 0 || r1 < 0) {
        keep_cuts_ordered(c0, c1, d, m);
        return;
    }
    uint32_t t0 = c0->thresh, t1 = c1 ? c1->thresh : 0;
    int32_t on0 = c0->K != 0, all0 = c0->all, on1 = c1 && c1->K != 0, all1 = c1 && c1->all;
    for (size_t j = 0; j < m; j++) {
        uint32_t u;
        memcpy(&u, &d[j], 4);
        uint32_t key = u & 0x7FFFFFFFu;
        int32_t a = on0 & (all0 | (key > t0) | ((key == t0) & r0));
        int32_t b = on1 & (all1 | (key > t1) | ((key == t1) & r1));
        u &= 0u - (uint32_t)(a & !b);
        memcpy(&d[j], &u, 4);
    }
    if (r0)
        c0->quota -= n0;
    if (r1)
        c1->quota -= n1;
}

static int sparsify(lsw_tv *tv, const lsw_plan_tensor *t, size_t i, uint64_t g0, size_t m, uint64_t j0, size_t n,
                    const void *const *in)
{
    float *d = tv->delta + i * CH;
    if (tv->mode[i] == KEEP_NONE) {
        for (size_t j = 0; j < m; j++)
            d[j] = 0.0f;
    } else if (tv->mode[i] == KEEP_CUTS) {
        keep_cuts(&tv->cut[i][0], tv->ncut[i] > 1 ? &tv->cut[i][1] : NULL, d, m);
    }
    if (is_dare(tv) && tv->d[i] < 1.0) {
        for (size_t j = 0; j < m; j++) {
            uint64_t r = splitmix64(tv->s[i] + g0 + j);
            double u = (double)(r >> 11) * 0x1.0p-53;
            d[j] = u < tv->d[i] ? (tv->rescale ? d[j] / tv->dinv_f[i] : d[j]) : 0.0f;
        }
    }
    if (is_della(tv) && tv->d[i] < 1.0) {
        double lo = tv->d[i] - tv->eps[i], span = 2.0 * tv->eps[i];
        uint64_t R = tv->row_len;
        for (size_t j = 0; j < m; j++) {
            uint64_t g = g0 + j;
            int rc = tv->d[i] > 0.0 ? della_row(tv, t, g, j0, n, in) : 0;
            if (rc)
                return rc;
            double pk = 0.0;
            if (tv->d[i] > 0.0) {
                uint32_t r = tv->rank[i * R + (g - tv->row_first)];
                double rn = R > 1 ? (double)r / (double)(R - 1) : 0.0;
                pk = lo + rn * span;
            }
            uint64_t rr = splitmix64(tv->s[i] + g);
            double u = (double)(rr >> 11) * 0x1.0p-53;
            d[j] = u < pk ? (tv->rescale ? d[j] / (float)pk : d[j]) : 0.0f;
        }
    }
    return 0;
}

/* Steps 3 and 4 for element j of the chunk. */
static float combine(const lsw_tv *tv, size_t j)
{
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
        int plus = s >= 0.0f, first = 1;
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
    return tv->bf[j] + lm;
}

/* combine() of the consensus methods for a whole chunk, expert by expert
 * over arrays instead of element by element: the same operations in the
 * same order for every element (sign of the left-to-right weighted sum;
 * the agreeing terms summed from the first one, with their weights), so the
 * same bits, without a branch per element. */
TV_VECTOR static void combine_consensus(const lsw_tv *tv, size_t m, float *res)
{
    float sum[CH], mm[CH], D[CH];
    int32_t plus[CH], first[CH]; /* 32-bit like the floats: the loops vectorise */
    for (size_t j = 0; j < m; j++)
        sum[j] = tv->w[0] * tv->delta[j];
    for (size_t i = 1; i < tv->k; i++) {
        const float *d = tv->delta + i * CH;
        float wi = tv->w[i];
        for (size_t j = 0; j < m; j++)
            sum[j] = sum[j] + wi * d[j];
    }
    for (size_t j = 0; j < m; j++) {
        plus[j] = sum[j] >= 0.0f;
        first[j] = 1;
        mm[j] = 0.0f;
        D[j] = 0.0f;
    }
    for (size_t i = 0; i < tv->k; i++) {
        const float *d = tv->delta + i * CH;
        float wi = tv->w[i];
        for (size_t j = 0; j < m; j++) {
            float dv = d[j], prod = wi * dv;
            int32_t agree = (plus[j] & (dv > 0.0f)) | (!plus[j] & (dv < 0.0f));
            float m_next = first[j] ? prod : mm[j] + prod, d_next = first[j] ? wi : D[j] + wi;
            mm[j] = agree ? m_next : mm[j];
            D[j] = agree ? d_next : D[j];
            first[j] = first[j] & !agree;
        }
    }
    for (size_t j = 0; j < m; j++) {
        float v = mm[j];
        if (tv->normalize) {
            /* |D| < 1e-8 in double, as documented: for a float D that is
             * |D| <= 1e-8f exactly (1e-8f is the largest float below 1e-8) */
            float Dj = fabsf(D[j]) <= 1e-8f ? 1.0f : D[j];
            v = v / Dj;
        }
        float lm = tv->lambda * v;
        res[j] = tv->bf[j] + lm;
    }
}

int lsw_tv_block(lsw_tv *tv, const lsw_plan_tensor *t, uint64_t j0, size_t n, const void *const *in, void *out)
{
    if (is_wsum(tv)) {
        lsw_dtype dts[LSW_MAX_SOURCES];
        for (size_t j = 0; j < t->nsrc; j++)
            dts[j] = t->src[j]->dtype;
        lsw_wsum(t->out_dtype, out, n, t->nsrc, dts, in, tv->mw);
        return 0;
    }
    if (is_della(tv) && j0 == 0) {
        tv->row_len = t->ndim >= 2 && t->shape[0] ? t->numel / t->shape[0] : (t->numel ? t->numel : 1);
        if (tv->row_len > UINT32_MAX)
            return lsw_err_set(LSW_E_INPUT, "tensor '%s': della needs rows of at most 2^32 elements", t->name);
    }
    float res[CH];
    size_t oes = lsw_dtype_size(t->out_dtype);
    for (size_t c = 0; c < n; c += CH) {
        size_t m = n - c < CH ? n - c : CH;
        deltas(tv, t, in, c, m);
        for (size_t i = 0; i < tv->k; i++) {
            int rc = sparsify(tv, t, i, j0 + c, m, j0, n, in);
            if (rc)
                return rc;
        }
        if (consensus(tv))
            combine_consensus(tv, m, res);
        else
            for (size_t j = 0; j < m; j++)
                res[j] = combine(tv, j);
        lsw_from_f32(t->out_dtype, res, (char *)out + c * oes, m);
    }
    return 0;
}
