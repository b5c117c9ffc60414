/* unit_stats — engine/lsw_stats_rows and lsw_stats_summary.
 *
 *  - lsw_stats_tensor_rows (all experts against one base block) equals
 *    lsw_mav_tensor_rows (one expert at a time) bit for bit, for BF16, F16
 *    and F32, rows shorter and longer than LSW_MAV_CHUNK, every buffer size
 *    from the minimum up and any split of a tensor's rows;
 *  - the squared norms (lsw_stats_norms): every instruction set gives the
 *    bits of the documented order, and a job's sums do not depend on the
 *    buffer size or the reader threads;
 *  - header checks, rank assignment, percentiles, grouping, tensor types,
 *    colour-bar ticks and the layer rule of the proposal on planted profiles
 *    (docs/statistics.md).
 * Checkpoints come from lsw_synth in a temporary folder.
 */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_kernels.h"
#include "lsw_mav.h"
#include "lsw_stats_norms.h"
#include "lsw_stats_rows.h"
#include "lsw_stats_summary.h"
#include "lsw_stats_svg.h"
#include "lsw_synth.h"

#include "lsw_test.h"

static int rm_one(const char *p, const struct stat *sb, int flag, struct FTW *f)
{
    (void)sb; (void)flag; (void)f;
    return remove(p);
}

#define NEXP 3

typedef struct models {
    lsw_ckpt *base, *x[NEXP];
} models;

static int open_models(const char *dir, models *m)
{
    char p[8192];
    snprintf(p, sizeof p, "%s/base", dir);
    if (lsw_ckpt_open(p, &m->base))
        return -1;
    for (int e = 0; e < NEXP; e++) {
        char nm[32];
        lsw_synth_expert_name(e + 1, nm, sizeof nm);
        snprintf(p, sizeof p, "%s/%s", dir, nm);
        if (lsw_ckpt_open(p, &m->x[e]))
            return -1;
    }
    return 0;
}

static void close_models(models *m)
{
    lsw_ckpt_close(m->base);
    for (int e = 0; e < NEXP; e++)
        lsw_ckpt_close(m->x[e]);
}

static int make(const char *dir, int layers, uint64_t hidden, uint64_t inter, uint64_t vocab, lsw_dtype dt, int experts)
{
    lsw_synth_opts o;
    memset(&o, 0, sizeof o); /* lsw_synth hashes the whole struct, padding included */
    o.layers = layers;
    o.hidden = hidden;
    o.intermediate = inter;
    o.vocab = vocab;
    o.dtype = dt;
    o.experts = experts;
    o.seed = 7;
    o.shard_size = 2000000000ULL;
    o.overwrite = 1;
    o.quiet = 1;
    int rc = lsw_synth(dir, &o);
    if (rc)
        fprintf(stderr, "synth %s: %s\n", dir, lsw_err_detail());
    return rc;
}

/* One element widened exactly to f64 (the reference side of every check). */
static double elem(lsw_dtype dt, const void *p, size_t i)
{
    float f;
    lsw_to_f32(dt, (const char *)p + i * lsw_dtype_size(dt), &f, 1);
    return (double)f;
}

/* lsw_stats_norms.h's documented order, one element at a time: lane i % 8
 * over the full groups, lanes summed in order, then the tail (e NULL: the
 * base's squares). */
static double ref_sumsq(lsw_dtype dt, const void *e, const void *b, size_t n)
{
    double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0}, s = 0;
    size_t g = n / 8 * 8;
    for (size_t i = 0; i < n; i++) {
        double v;
        if (e) {
            double d = elem(dt, e, i) - elem(dt, b, i);
            v = d * d;
        } else {
            double x = elem(dt, b, i);
            v = x * x;
        }
        if (i < g)
            acc[i % 8] = acc[i % 8] + v;
        else {
            if (i == g) {
                s = acc[0];
                for (int l = 1; l < 8; l++)
                    s = s + acc[l];
            }
            s = s + v;
        }
    }
    if (n == g) {
        s = acc[0];
        for (int l = 1; l < 8; l++)
            s = s + acc[l];
    }
    return s;
}

/* A tensor's squared norms over rows [r0, r0 + nr), chunk by chunk in row order. */
static void ref_norms(const lsw_ckpt *base, const lsw_ckpt *x, const lsw_tensor_desc *t, uint64_t r0, uint64_t nr,
                      double *bsq, double *dsq)
{
    const lsw_tensor_desc *xt = lsw_ckpt_find(x, t->name);
    uint64_t rows, rl;
    lsw_mav_rows(t, &rows, &rl);
    size_t bs = lsw_dtype_size(t->dtype), xs = lsw_dtype_size(xt->dtype);
    float *fb = malloc(rl * sizeof *fb), *fx = malloc(rl * sizeof *fx);
    char *rb = malloc(rl * bs), *rx = malloc(rl * xs);
    *bsq = *dsq = 0;
    for (uint64_t r = r0; r < r0 + nr; r++) {
        lsw_ckpt_read(base, t, r * rl * bs, rb, rl * bs);
        lsw_ckpt_read(x, xt, r * rl * xs, rx, rl * xs);
        lsw_to_f32(t->dtype, rb, fb, rl);
        lsw_to_f32(xt->dtype, rx, fx, rl);
        double sb = 0, sd = 0; /* the row's chunks in order, then the row into the tensor */
        for (uint64_t c = 0; c < rl; c += LSW_MAV_CHUNK) {
            size_t m = rl - c < LSW_MAV_CHUNK ? rl - c : LSW_MAV_CHUNK;
            sb += ref_sumsq(LSW_DT_F32, NULL, fb + c, m);
            sd += ref_sumsq(LSW_DT_F32, fx + c, fb + c, m);
        }
        *bsq += sb;
        *dsq += sd;
    }
    free(fb);
    free(fx);
    free(rb);
    free(rx);
}

/* Every instruction set, k = 0..6 experts, n across the lane and block edges:
 * the squared norms in the documented order and the MAV sums equal to
 * lsw_absdiff_sum's (on the same instruction set), for all three dtypes. */
static void test_norms_kernel(void)
{
    enum { N = 70000, K = 6 };
    static const lsw_dtype dts[3] = {LSW_DT_BF16, LSW_DT_F16, LSW_DT_F32};
    static const size_t ns[] = {0, 1, 7, 8, 9, 63, 64, 65, 200, 1000, N};
    static const lsw_isa isas[3] = {LSW_ISA_GENERIC, LSW_ISA_AVX2, LSW_ISA_AVX512};
    float *f = malloc((K + 1) * N * sizeof *f);
    char *raw = malloc((K + 1) * N * 4);
    uint64_t x = 0x9E3779B97F4A7C15ULL;
    for (size_t i = 0; i < (size_t)(K + 1) * N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        f[i] = (float)((double)(int64_t)(x >> 11) / 4503599627370496.0 - 1.0) * 0.37f;
    }
    long bad = 0, runs = 0;
    for (int d = 0; d < 3; d++) {
        size_t es = lsw_dtype_size(dts[d]);
        lsw_from_f32(dts[d], f, raw, (size_t)(K + 1) * N);
        const void *e[K];
        for (int j = 0; j < K; j++)
            e[j] = raw + (size_t)(j + 1) * N * es;
        for (size_t ni = 0; ni < sizeof ns / sizeof *ns; ni++) {
            double want_b = ref_sumsq(dts[d], NULL, raw, ns[ni]), want[K];
            for (int j = 0; j < K; j++)
                want[j] = ref_sumsq(dts[d], e[j], raw, ns[ni]);
            for (int is = 0; is < 3; is++) {
                if (lsw_kernels_set_isa(isas[is]) != 0)
                    continue; /* not on this CPU */
                for (size_t k = 0; k <= K; k++) {
                    double gb = -1, got[K], mav[K];
                    lsw_stats_chunk_sums(dts[d], raw, e, k, ns[ni], mav, &gb, got);
                    runs++;
                    bad += memcmp(&gb, &want_b, sizeof gb) != 0;
                    for (size_t j = 0; j < k; j++) {
                        double m = lsw_absdiff_sum(dts[d], e[j], raw, ns[ni]);
                        bad += memcmp(&got[j], &want[j], sizeof *got) != 0;
                        bad += memcmp(&mav[j], &m, sizeof m) != 0; /* the MAV sums: lsw_absdiff_sum's bits */
                    }
                }
            }
        }
    }
    lsw_kernels_set_isa(LSW_ISA_AUTO);
    CHECK(bad == 0 && runs > 0, "fused sums: %ld of %ld calls differ from the documented order or lsw_absdiff_sum",
          bad, runs);
    free(f);
    free(raw);
}

/* Compare the multi-expert rows with lsw_mav_tensor_rows for every eligible tensor. */
static void compare_rows(models *m, const char *what)
{
    const lsw_tensor_desc *any = lsw_ckpt_at(m->base, 0);
    size_t es = lsw_dtype_size(any->dtype);
    /* the smallest buffer for this dtype (one chunk per model: rows longer than
     * a chunk are streamed), odd sizes, and one that holds whole tensors */
    size_t bufs[] = {(NEXP + 1) * (size_t)LSW_MAV_CHUNK * es, lsw_stats_buf_min(NEXP) + 12345,
                     3 * lsw_stats_buf_min(NEXP) + 7, 64u << 20};
    size_t refbufs[] = {2 * (size_t)LSW_MAV_CHUNK * es, 16u << 20};
    char *buf = malloc(64u << 20), *rbuf = malloc(16u << 20);
    long mismatches = 0, compared = 0;
    for (size_t i = 0; i < lsw_ckpt_count(m->base); i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(m->base, i);
        if (!lsw_mav_eligible(t))
            continue;
        uint64_t rows, rl;
        lsw_mav_rows(t, &rows, &rl);
        double *ref[NEXP], *got[NEXP];
        for (int e = 0; e < NEXP; e++) {
            ref[e] = malloc(rows * sizeof(double));
            got[e] = malloc(rows * sizeof(double));
            const lsw_tensor_desc *xt = lsw_ckpt_find(m->x[e], t->name);
            int rc = lsw_mav_tensor_rows(m->base, m->x[e], xt, 0, rows, rbuf, refbufs[0], ref[e]);
            CHECK(rc == 0, "%s: lsw_mav_tensor_rows %s: %s", what, t->name, lsw_err_detail());
            /* the reference itself does not depend on its buffer */
            double *ref2 = malloc(rows * sizeof(double));
            rc = lsw_mav_tensor_rows(m->base, m->x[e], xt, 0, rows, rbuf, refbufs[1], ref2);
            CHECK(rc == 0 && !memcmp(ref2, ref[e], rows * sizeof(double)), "%s: reference differs by buffer for %s",
                  what, t->name);
            free(ref2);
        }
        for (size_t bi = 0; bi < sizeof bufs / sizeof *bufs; bi++) {
            /* whole tensor, then split into uneven row ranges */
            uint64_t splits[][3] = {{0, rows, 0}, {0, rows / 3, 1}};
            for (int sp = 0; sp < 2; sp++) {
                for (int e = 0; e < NEXP; e++)
                    memset(got[e], 0xA5, rows * sizeof(double));
                int rc = 0;
                if (!splits[sp][2])
                    rc = lsw_stats_tensor_rows(m->base, t, m->x, NEXP, 0, rows, buf, bufs[bi], got, NULL, NULL);
                else {
                    uint64_t r0 = 0, step = rows / 3 ? rows / 3 : 1;
                    while (!rc && r0 < rows) {
                        uint64_t k = rows - r0 < step ? rows - r0 : step;
                        double *o[NEXP];
                        for (int e = 0; e < NEXP; e++)
                            o[e] = got[e] + r0;
                        rc = lsw_stats_tensor_rows(m->base, t, m->x, NEXP, r0, k, buf, bufs[bi], o, NULL, NULL);
                        r0 += k;
                        step = step * 2 + 1;
                    }
                }
                CHECK(rc == 0, "%s: lsw_stats_tensor_rows %s: %s", what, t->name, lsw_err_detail());
                for (int e = 0; e < NEXP; e++) {
                    compared++;
                    if (memcmp(got[e], ref[e], rows * sizeof(double))) {
                        if (mismatches++ < 5)
                            fprintf(stderr, "  %s: %s expert %d buf %zu split %d differs\n", what, t->name, e,
                                    bufs[bi], sp);
                    }
                }
            }
        }
        for (int e = 0; e < NEXP; e++) {
            free(ref[e]);
            free(got[e]);
        }
    }
    /* all tensors as one job list, with 0 to 3 reader threads */
    {
        size_t nt = lsw_ckpt_count(m->base), nj = 0;
        lsw_stats_job *jobs = calloc(nt, sizeof *jobs);
        double **outs = calloc(nt * NEXP, sizeof *outs), **refs = calloc(nt * NEXP, sizeof *refs);
        double *norms = calloc(nt * (NEXP + 1), sizeof *norms), *rnorms = calloc(nt * (NEXP + 1), sizeof *rnorms);
        for (size_t i = 0; i < nt; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(m->base, i);
            if (!lsw_mav_eligible(t))
                continue;
            uint64_t rows, rl;
            lsw_mav_rows(t, &rows, &rl);
            /* every other job covers a middle range of rows only */
            uint64_t r0 = (nj % 2 && rows > 2) ? 1 : 0, nr = (nj % 2 && rows > 2) ? rows - 2 : rows;
            for (int e = 0; e < NEXP; e++) {
                refs[nj * NEXP + e] = malloc(nr * sizeof(double));
                outs[nj * NEXP + e] = malloc(nr * sizeof(double));
                lsw_mav_tensor_rows(m->base, m->x[e], lsw_ckpt_find(m->x[e], t->name), r0, nr, rbuf, 16u << 20,
                                    refs[nj * NEXP + e]);
                ref_norms(m->base, m->x[e], t, r0, nr, &rnorms[nj * (NEXP + 1)], &rnorms[nj * (NEXP + 1) + 1 + e]);
            }
            jobs[nj] = (lsw_stats_job){t, r0, nr, outs + nj * NEXP, norms + nj * (NEXP + 1), norms + nj * (NEXP + 1) + 1};
            nj++;
        }
        size_t obufs[] = {2 * (NEXP + 1) * (size_t)LSW_MAV_CHUNK * es, 2 * lsw_stats_buf_min(NEXP) + 4099,
                          5 * lsw_stats_buf_min(NEXP), 64u << 20};
        /* copies in buffers of every size, and mappings of 1 MiB to 16 MiB per model and block */
        uint64_t maps[] = {0, 0, 0, 0, 2 * (NEXP + 1) * ((uint64_t)1 << 20) + 4097, (uint64_t)1 << 30};
        for (size_t bi = 0; bi < sizeof maps / sizeof *maps; bi++)
            for (int ov = 0; ov < 4; ov++) {   /* 0..3 reader threads */
                lsw_stats_timing tm = {0, 0, 0, 0, 0, 0};
                memset(norms, 0, nt * (NEXP + 1) * sizeof *norms);
                size_t bb = bi < 4 ? obufs[bi] : obufs[3];
                int rc = lsw_stats_rows_run(m->base, m->x, NEXP, jobs, nj, buf, bb, ov, maps[bi], NULL, &tm);
                int map_want = maps[bi] / ((uint64_t)(ov + 1) * (NEXP + 1)) >= ((uint64_t)1 << 20);
                CHECK(tm.mapped == map_want, "%s: mapped %d with a budget of %llu and %d readers", what, tm.mapped,
                      (unsigned long long)maps[bi], ov);
                CHECK(!memcmp(norms, rnorms, nj * (NEXP + 1) * sizeof *norms),
                      "%s: squared norms (buf %zu, %d readers) differ from the documented order", what, obufs[bi], ov);
                CHECK(rc == 0, "%s: lsw_stats_rows_run: %s", what, lsw_err_detail());
                long bad = 0;
                for (size_t j = 0; j < nj; j++)
                    for (int e = 0; e < NEXP; e++)
                        bad += memcmp(outs[j * NEXP + e], refs[j * NEXP + e], jobs[j].nrows * sizeof(double)) != 0;
                CHECK(bad == 0, "%s: lsw_stats_rows_run buf %zu map %llu overlap %d: %ld row vectors differ", what, bb,
                      (unsigned long long)maps[bi], ov, bad);
                CHECK(tm.bytes > 0, "%s: timing counts bytes", what);
                /* r readers need r + 1 slots of the minimum of the widest type; mapped: one reader */
                int want = ov;
                while (want > 0 && bb < (size_t)(want + 1) * lsw_stats_buf_min(NEXP))
                    want--;
                if (tm.mapped)
                    want = ov; /* workers beside this thread */
                CHECK(tm.overlapped == want, "%s: overlapped %d, want %d (buf %zu)", what, tm.overlapped, want, bb);
            }
        for (size_t k = 0; k < nj * NEXP; k++) {
            free(outs[k]);
            free(refs[k]);
        }
        free(outs);
        free(refs);
        free(jobs);
        free(norms);
        free(rnorms);
    }
    CHECK(mismatches == 0, "%s: %ld of %ld row vectors differ from lsw_mav_tensor_rows", what, mismatches, compared);
    CHECK(compared > 0, "%s: nothing compared", what);
    /* a buffer below the minimum is refused, not overrun */
    const lsw_tensor_desc *t0 = NULL;
    for (size_t i = 0; i < lsw_ckpt_count(m->base) && !t0; i++)
        if (lsw_mav_eligible(lsw_ckpt_at(m->base, i)))
            t0 = lsw_ckpt_at(m->base, i);
    double one[NEXP], *o1[NEXP];
    for (int e = 0; e < NEXP; e++)
        o1[e] = &one[e];
    lsw_err_clear();
    int rc = lsw_stats_tensor_rows(m->base, t0, m->x, NEXP, 0, 1, buf, (NEXP + 1) * LSW_MAV_CHUNK - 1, o1, NULL, NULL);
    CHECK(rc == LSW_E_INTERNAL, "%s: tiny buffer gives %d", what, rc);
    lsw_err_clear();
    free(buf);
    free(rbuf);
}

static void test_rows(const char *tmp)
{
    static const struct { lsw_dtype dt; const char *name; uint64_t h, i, v; } cases[] = {
        {LSW_DT_BF16, "bf16", 64, 176, 256},
        {LSW_DT_F16, "f16", 64, 96, 100},
        {LSW_DT_F32, "f32", 48, 80, 64},
        /* down_proj rows of 70000 elements: longer than one chunk */
        {LSW_DT_BF16, "bf16-long", 16, 70000, 32},
        {LSW_DT_F32, "f32-long", 16, 70000, 32},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        char dir[4096];
        snprintf(dir, sizeof dir, "%s/%s", tmp, cases[c].name);
        int layers = cases[c].i > 10000 ? 1 : 3;
        if (make(dir, layers, cases[c].h, cases[c].i, cases[c].v, cases[c].dt, NEXP)) {
            CHECK(0, "synth %s", cases[c].name);
            continue;
        }
        models m = {0};
        CHECK(open_models(dir, &m) == 0, "open %s: %s", cases[c].name, lsw_err_detail());
        if (m.base && m.x[NEXP - 1]) {
            CHECK(lsw_stats_check_experts(m.base, m.x, NEXP) == 0, "%s: experts match: %s", cases[c].name,
                  lsw_err_detail());
            compare_rows(&m, cases[c].name);
        }
        close_models(&m);
    }
}

/* An input cut short after its headers were validated: LSW_E_READ in every
 * mode (copies, mappings with and without a reader thread), never a SIGBUS. */
static void test_truncated(const char *tmp)
{
    char dir[4096], p[4200];
    snprintf(dir, sizeof dir, "%s/trunc", tmp);
    if (make(dir, 2, 64, 176, 256, LSW_DT_BF16, NEXP)) {
        CHECK(0, "synth for the truncation test");
        return;
    }
    models m = {0};
    CHECK(open_models(dir, &m) == 0, "open: %s", lsw_err_detail());
    if (!m.x[0])
        return;
    snprintf(p, sizeof p, "%s", lsw_ckpt_file_path(m.x[0], 0));
    struct stat st;
    CHECK(stat(p, &st) == 0 && truncate(p, st.st_size / 2) == 0, "truncate %s", p);
    size_t nt = lsw_ckpt_count(m.base), nj = 0;
    lsw_stats_job *jobs = calloc(nt, sizeof *jobs);
    double **outs = calloc(nt * NEXP, sizeof *outs);
    for (size_t i = 0; i < nt; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(m.base, i);
        if (!lsw_mav_eligible(t))
            continue;
        uint64_t rows, rl;
        lsw_mav_rows(t, &rows, &rl);
        for (int e = 0; e < NEXP; e++)
            outs[nj * NEXP + e] = malloc(rows * sizeof(double));
        jobs[nj] = (lsw_stats_job){t, 0, rows, outs + nj * NEXP, NULL, NULL};
        nj++;
    }
    size_t bb = 8 * lsw_stats_buf_min(NEXP);
    char *buf = malloc(bb);
    /* copies; mappings populated ahead (EFAULT) without and with a reader; mappings
     * faulted on first touch (SIGBUS, caught) without and with a reader */
    uint64_t maps[5] = {0, (uint64_t)1 << 28, (uint64_t)1 << 28, (uint64_t)1 << 28, (uint64_t)1 << 28};
    int readers[5] = {1, 0, 1, 0, 1};
    for (int k = 0; k < 5; k++) {
        if (k == 3)
            setenv("LSW_STATS_POPULATE", "0", 1);
        lsw_err_clear();
        int rc = lsw_stats_rows_run(m.base, m.x, NEXP, jobs, nj, buf, bb, readers[k], maps[k], NULL, NULL);
        CHECK(rc == LSW_E_READ && strstr(lsw_err_detail(), "tensor '"),
              "truncated input, map %llu readers %d%s: %d %s", (unsigned long long)maps[k], readers[k],
              k >= 3 ? " (SIGBUS)" : "", rc, lsw_err_detail());
    }
    unsetenv("LSW_STATS_POPULATE");
    lsw_err_clear();
    for (size_t k = 0; k < nj * NEXP; k++)
        free(outs[k]);
    free(outs);
    free(jobs);
    free(buf);
    close_models(&m);
}

static void test_check(const char *tmp)
{
    char a[4096], b[4096];
    snprintf(a, sizeof a, "%s/chk3", tmp);
    snprintf(b, sizeof b, "%s/chk2", tmp);
    if (make(a, 3, 32, 48, 32, LSW_DT_BF16, 1) || make(b, 2, 32, 48, 32, LSW_DT_BF16, 0)) {
        CHECK(0, "synth for the header checks");
        return;
    }
    char p[4200];
    lsw_ckpt *base3 = NULL, *base2 = NULL, *x3 = NULL;
    snprintf(p, sizeof p, "%s/base", a);
    lsw_ckpt_open(p, &base3);
    snprintf(p, sizeof p, "%s/task1", a);
    lsw_ckpt_open(p, &x3);
    snprintf(p, sizeof p, "%s/base", b);
    lsw_ckpt_open(p, &base2);
    if (!base3 || !base2 || !x3) {
        CHECK(0, "open: %s", lsw_err_detail());
        return;
    }
    lsw_ckpt *xs[2] = {x3, base2};
    lsw_err_clear();
    int rc = lsw_stats_check_experts(base3, xs, 2);
    CHECK(rc == LSW_E_MISMATCH && strstr(lsw_err_detail(), "model.layers.2.") && strstr(lsw_err_detail(), "missing"),
          "2-layer expert vs 3-layer base: %d, message names the missing tensor: %s", rc, lsw_err_detail());
    lsw_err_clear();
    lsw_ckpt *ys[1] = {x3};
    rc = lsw_stats_check_experts(base2, ys, 1);
    CHECK(rc == LSW_E_MISMATCH && strstr(lsw_err_detail(), "extra"), "3-layer expert vs 2-layer base: %d %s", rc,
          lsw_err_detail());
    lsw_err_clear();
    lsw_ckpt_close(base3);
    lsw_ckpt_close(base2);
    lsw_ckpt_close(x3);
}

static void test_assign(void)
{
    uint64_t bytes[] = {10, 50, 50, 7, 100, 3, 3, 3, 60, 0, 25};
    size_t n = sizeof bytes / sizeof *bytes;
    for (int nr = 1; nr <= 5; nr++) {
        int o1[16], o2[16];
        CHECK(lsw_stats_assign(bytes, n, nr, o1) == 0, "assign");
        lsw_stats_assign(bytes, n, nr, o2);
        CHECK(!memcmp(o1, o2, n * sizeof *o1), "assignment is deterministic");
        uint64_t load[8] = {0}, mx = 0, mn = UINT64_MAX;
        int ok = 1;
        for (size_t i = 0; i < n; i++) {
            ok &= o1[i] >= 0 && o1[i] < nr;
            if (o1[i] >= 0 && o1[i] < nr)
                load[o1[i]] += bytes[i];
        }
        CHECK(ok, "owners in range for %d ranks", nr);
        for (int r = 0; r < nr; r++) {
            mx = load[r] > mx ? load[r] : mx;
            mn = load[r] < mn ? load[r] : mn;
        }
        /* greedy LPT: the spread is at most the largest item */
        CHECK(mx - mn <= 100, "balanced for %d ranks: max %llu min %llu", nr, (unsigned long long)mx,
              (unsigned long long)mn);
    }
    int o[16];
    lsw_stats_assign(bytes, n, 2, o);
    CHECK(o[4] == 0 && o[8] == 1 && o[1] == 1 && o[2] == 0, "greedy order: %d %d %d %d", o[4], o[8], o[1], o[2]);
}

static void test_small(void)
{
    double s[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    CHECK(lsw_stats_percentile(s, 10, 50) == 4, "p50 of 10");
    CHECK(lsw_stats_percentile(s, 10, 90) == 8, "p90 of 10");
    CHECK(lsw_stats_percentile(s, 10, 99) == 9, "p99 of 10");
    CHECK(lsw_stats_percentile(s, 1, 50) == 0, "p50 of 1");
    CHECK(lsw_stats_percentile(s, 3, 50) == 1, "p50 of 3");
    CHECK(lsw_stats_percentile(s, 4, 50) == 1, "p50 of 4 (nearest rank 2)");

    char t[64];
    lsw_stats_tensor_type("model.layers.3.self_attn.q_proj.weight", t, sizeof t);
    CHECK(!strcmp(t, "q_proj"), "%s", t);
    lsw_stats_tensor_type("model.layers.3.self_attn.q_proj.bias", t, sizeof t);
    CHECK(!strcmp(t, "q_proj.bias"), "%s", t);
    lsw_stats_tensor_type("model.layers.0.input_layernorm.weight", t, sizeof t);
    CHECK(!strcmp(t, "input_layernorm"), "%s", t);
    lsw_stats_tensor_type("lm_head.weight", t, sizeof t);
    CHECK(!strcmp(t, "lm_head"), "%s", t);
    lsw_stats_tensor_type("model.embed_tokens.weight", t, sizeof t);
    CHECK(!strcmp(t, "embed_tokens"), "%s", t);
    lsw_stats_tensor_type("scale", t, sizeof t);
    CHECK(!strcmp(t, "scale"), "%s", t);

    double x[] = {1, 2, 3, 4}, y[] = {2, 4, 6, 8}, z[] = {4, 3, 2, 1}, c[] = {5, 5, 5, 5};
    CHECK(fabs(lsw_stats_pearson(x, y, 4) - 1) < 1e-15, "r = 1");
    CHECK(fabs(lsw_stats_pearson(x, z, 4) + 1) < 1e-15, "r = -1");
    CHECK(lsw_stats_pearson(x, c, 4) == 0, "constant profile: r = 0");

    /* two blocks of similar items, one loner */
    double sim[25] = {1, .9, .1, .8, 0,   .9, 1, .2, .7, 0,   .1, .2, 1, .1, .6,
                      .8, .7, .1, 1, 0,   0, 0, .6, 0, 1};
    size_t g[5];
    size_t ng = lsw_stats_group(sim, 5, 0.5, g);
    CHECK(ng == 2 && g[0] == 0 && g[1] == 0 && g[3] == 0 && g[2] == 1 && g[4] == 1, "groups: %zu [%zu %zu %zu %zu %zu]",
          ng, g[0], g[1], g[2], g[3], g[4]);
    ng = lsw_stats_group(sim, 5, 0.95, g);
    CHECK(ng == 5, "no merge above 0.95: %zu", ng);
}

static void rule(const double *r, int L, int eb, int et, int el, int eu, const char *what)
{
    lsw_stats_rule ru;
    CHECK(lsw_stats_propose_layers(r, L, &ru) == 0, "%s: rule", what);
    CHECK(ru.bottom == eb && ru.top == et && ru.lower_transition == el && ru.upper_transition == eu,
          "%s (L=%d): got bottom %d top %d lower %d upper %d, want %d %d %d %d (median %g sigma %g margin %g)", what,
          L, ru.bottom, ru.top, ru.lower_transition, ru.upper_transition, eb, et, el, eu, ru.median, ru.sigma,
          ru.margin);
    CHECK(L < 2 || ru.bottom + ru.top + ru.lower_transition + ru.upper_transition <= L - 1, "%s: a middle layer is left",
          what);
}

/* The paper's Figure 2, planted: the per-layer signal (mean over q, k, v, o,
 * gate, up, down of the cell means) of a language expert whose attention
 * changed in the first two and the last `top_attn` layers and whose MLP
 * changed in the last `top_mlp` layers, signal 1, with background noise at 10%
 * of the signal in every cell (0.1 × a factor in [0.7, 1.3]); `lang` 0 gives
 * the noise alone (a pair with no language signal), and a math expert's
 * profile (the upper half, attention and MLP) when `math` is set. */
static void planted(double *sig, int L, int lang, int top_attn, int top_mlp, int math, uint64_t seed)
{
    for (int l = 0; l < L; l++) {
        double sum = 0;
        for (int k = 0; k < 7; k++) { /* q k v o, then gate up down */
            seed = seed * 6364136223846793005ULL + 1442695040888963407ULL;
            double cell = 0.1 * (0.7 + 0.6 * (double)(seed >> 11) / 9007199254740992.0);
            int attn = k < 4;
            if (lang && attn && (l < 2 || l >= L - top_attn))
                cell += 1;
            if (lang && !attn && l >= L - top_mlp)
                cell += 1;
            if (math && l >= L / 2)
                cell += 1;
            sum += cell;
        }
        sig[l] = sum / 7;
    }
}

static void test_rule(void)
{
    double sig[80];
    /* Figure 2 at 24 and 80 layers: a few bottom and top layers, not half the model
     * (the old ratio rule said bottom 12 and bottom 40 on such pairs) */
    planted(sig, 24, 1, 4, 2, 0, 1);
    rule(sig, 24, 2, 4, 0, 0, "Figure 2, 24 layers");
    planted(sig, 80, 1, 6, 3, 0, 2);
    rule(sig, 80, 2, 6, 0, 0, "Figure 2, 80 layers");
    planted(sig, 32, 1, 2, 2, 0, 3); /* the paper's setting: bottom 2, top 2 */
    rule(sig, 32, 2, 2, 0, 0, "Figure 2, 32 layers");
    /* no language signal: noise only, nothing stands out */
    for (uint64_t seed = 1; seed <= 20; seed++) {
        lsw_stats_rule ru;
        planted(sig, 24, 0, 0, 0, 0, seed);
        lsw_stats_propose_layers(sig, 24, &ru);
        CHECK(ru.significant == 0 && ru.bottom == 0 && ru.top == 0, "noise only (seed %llu): %d significant layers",
              (unsigned long long)seed, ru.significant);
        /* a math expert's profile as the "language" side: its upper half is half the model,
         * so no layer stands out from the median */
        planted(sig, 24, 0, 0, 0, 1, seed);
        lsw_stats_propose_layers(sig, 24, &ru);
        CHECK(ru.bottom + ru.top == 0, "math profile as language (seed %llu): bottom %d top %d",
              (unsigned long long)seed, ru.bottom, ru.top);
    }
    /* a borderline layer beside a run becomes one transition layer */
    double b[] = {5, 5, 1.2, 1, 1, 1.02, 0.98, 1, 1, 1.01, 0.99, 1, 5};
    rule(b, 13, 2, 1, 1, 0, "borderline next to the bottom run");
    /* a language layer in the middle only: no run at the edges */
    double c[] = {1, 1.01, 0.99, 1, 9, 1, 1.02, 0.98, 1, 1};
    rule(c, 10, 0, 0, 0, 0, "middle only");
    /* no change at all, and constant change: nothing stands out */
    double z[] = {0, 0, 0, 0, 0, 0};
    rule(z, 6, 0, 0, 0, 0, "unchanged");
    double k[] = {3, 3, 3, 3, 3};
    rule(k, 5, 0, 0, 0, 0, "constant");
    /* a background of exact zeros (a model changed in a few layers only) */
    double e[] = {4, 0, 0, 0, 0, 0, 0, 2};
    rule(e, 8, 1, 1, 0, 0, "zero background");
    double h[] = {9};
    rule(h, 1, 0, 0, 0, 0, "one layer");
    double n2[] = {9, 0};
    rule(n2, 2, 0, 0, 0, 0, "two layers");
    /* NaN and infinity: a layer with an infinite change is a language layer */
    double n[] = {INFINITY, 1, NAN, 1, 1.01, 0.99, 1};
    rule(n, 7, 1, 0, 0, 0, "inf and NaN");

    /* colour-bar ticks */
    double t[16];
    size_t nt = lsw_stats_ticks(0, 0.0049, 0, t, 16);
    CHECK(nt == 5 && t[0] == 0 && fabs(t[4] - 0.004) < 1e-15, "linear ticks 0..0.0049: %zu, last %g", nt,
          nt ? t[nt - 1] : -1);
    nt = lsw_stats_ticks(1e-5, 3e-2, 1, t, 16);
    CHECK(nt == 4 && fabs(t[0] - 1e-5) < 1e-20 && fabs(t[3] - 1e-2) < 1e-17, "log ticks 1e-5..3e-2: %zu", nt);
    nt = lsw_stats_ticks(2e-4, 9e-4, 1, t, 16);
    CHECK(nt == 2 && fabs(t[0] - 2e-4) < 1e-19 && fabs(t[1] - 5e-4) < 1e-19, "log ticks within a decade: %zu", nt);
    CHECK(lsw_stats_ticks(0.5, 0.5, 0, t, 16) == 1 && t[0] == 0.5, "one value, one tick");
}

static int cmp_total(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    if (isnan(x) || isnan(y))
        return isnan(x) - isnan(y);
    return (x > y) - (x < y);
}

/* lsw_stats_percentiles (selection) gives exactly what sorting gives: random
 * values, many repeats and zeros, NaNs, sorted, reversed and constant input,
 * for n from 1 up. */
static void test_percentiles(void)
{
    enum { MAXN = 40000 };
    double *v = malloc(MAXN * sizeof *v), *w = malloc(MAXN * sizeof *w);
    uint64_t x = 88172645463325252ULL;
    static const size_t ns[] = {1, 2, 3, 4, 5, 10, 17, 99, 100, 101, 1000, 4097, 39999};
    for (int pattern = 0; pattern < 6; pattern++)
        for (size_t t = 0; t < sizeof ns / sizeof *ns; t++) {
            size_t n = ns[t];
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13, x ^= x >> 7, x ^= x << 17;
                double r = (double)(x >> 11) / 9007199254740992.0;
                switch (pattern) {
                case 0: v[i] = r; break;                                   /* distinct */
                case 1: v[i] = (x % 3 == 0) ? 0.0 : (double)(x % 7); break; /* repeats, zeros */
                case 2: v[i] = (x % 11 == 0) ? NAN : r; break;              /* NaNs */
                case 3: v[i] = (double)i; break;                            /* sorted */
                case 4: v[i] = (double)(n - i); break;                      /* reversed */
                default: v[i] = 0.25; break;                                /* constant */
                }
            }
            memcpy(w, v, n * sizeof *w);
            qsort(w, n, sizeof *w, cmp_total);
            double p50, p90, p99, mx;
            lsw_stats_percentiles(v, n, &p50, &p90, &p99, &mx);
            double want[4] = {lsw_stats_percentile(w, n, 50), lsw_stats_percentile(w, n, 90),
                              lsw_stats_percentile(w, n, 99), w[n - 1]};
            double got[4] = {p50, p90, p99, mx};
            for (int k = 0; k < 4; k++)
                CHECK((isnan(got[k]) && isnan(want[k])) || got[k] == want[k],
                      "percentiles pattern %d n=%zu stat %d: %.17g, sorting gives %.17g", pattern, n, k, got[k],
                      want[k]);
        }
    free(v);
    free(w);
}

int main(void)
{
    char tmp[] = "/tmp/unit_stats.XXXXXX";
    const char *td = getenv("TMPDIR");
    char tmpl[4096];
    snprintf(tmpl, sizeof tmpl, "%s/unit_stats.XXXXXX", td && *td ? td : "/tmp");
    char *dir = mkdtemp(tmpl);
    if (!dir)
        dir = mkdtemp(tmp);
    if (!dir) {
        perror("mkdtemp");
        return 1;
    }
    test_small();
    test_percentiles();
    test_rule();
    test_norms_kernel();
    test_assign();
    test_check(dir);
    test_rows(dir);
    test_truncated(dir);
    nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
    printf("unit_stats: %ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
