#include "lsw_stats_rows.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_execute.h"
#include "lsw_kernels.h"
#include "lsw_mav.h"
#include "lsw_signal.h"

static int same_shape(const lsw_tensor_desc *a, const lsw_tensor_desc *b)
{
    if (a->ndim != b->ndim)
        return 0;
    for (size_t k = 0; k < a->ndim; k++)
        if (a->shape[k] != b->shape[k])
            return 0;
    return 1;
}

static void shape_str(const lsw_tensor_desc *t, char *buf, size_t len)
{
    size_t o = 0;
    o += (size_t)snprintf(buf + o, len - o, "[");
    for (size_t k = 0; k < t->ndim && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%llu", k ? ", " : "", (unsigned long long)t->shape[k]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* The file of a checkpoint that holds tensor t (the checkpoint path when it is one file). */
static const char *file_of(const lsw_ckpt *c, const lsw_tensor_desc *t)
{
    const char *p = lsw_ckpt_file_path(c, t->file);
    return p ? p : lsw_ckpt_path(c);
}

int lsw_stats_check_experts(const lsw_ckpt *base, lsw_ckpt *const *experts, size_t nexperts)
{
    for (size_t e = 0; e < nexperts; e++) {
        const lsw_ckpt *x = experts[e];
        /* both lists are in byte-wise name order: walk them together so the
         * first offending name (in that order) is reported */
        size_t nb = lsw_ckpt_count(base), nx = lsw_ckpt_count(x), i = 0, j = 0;
        while (i < nb || j < nx) {
            const lsw_tensor_desc *bt = i < nb ? lsw_ckpt_at(base, i) : NULL;
            const lsw_tensor_desc *xt = j < nx ? lsw_ckpt_at(x, j) : NULL;
            int c = !bt ? 1 : !xt ? -1 : strcmp(bt->name, xt->name);
            if (c < 0)
                return lsw_err_set(LSW_E_MISMATCH,
                                   "%s: tensor '%s': missing from this expert (the base %s has it); "
                                   "every expert must have the base's architecture",
                                   lsw_ckpt_path(x), bt->name, lsw_ckpt_path(base));
            if (c > 0)
                return lsw_err_set(LSW_E_MISMATCH,
                                   "%s: tensor '%s': not in the base %s (extra tensor); "
                                   "every expert must have the base's architecture",
                                   file_of(x, xt), xt->name, lsw_ckpt_path(base));
            /* float dtypes may differ (each is widened exactly, SPEC §4); any
             * other difference cannot be compared */
            if (bt->dtype != xt->dtype && !(lsw_dtype_is_arith(bt->dtype) && lsw_dtype_is_arith(xt->dtype)))
                return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': dtype %s differs from the base's %s (%s); "
                                   "only BF16, F16 and F32 may differ",
                                   file_of(x, xt), xt->name, lsw_dtype_name(xt->dtype), lsw_dtype_name(bt->dtype),
                                   file_of(base, bt));
            if (!same_shape(bt, xt)) {
                char sx[160], sb[160];
                shape_str(xt, sx, sizeof sx);
                shape_str(bt, sb, sizeof sb);
                return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': shape %s differs from the base's %s (%s)",
                                   file_of(x, xt), xt->name, sx, sb, file_of(base, bt));
            }
            i++;
            j++;
        }
    }
    return 0;
}

size_t lsw_stats_buf_min(size_t nexperts)
{
    return (nexperts + 1) * (size_t)LSW_MAV_CHUNK * 4;
}

/* Scratch of sum_block: pointers and partial sums per expert, and two f32
 * chunks for experts whose dtype differs from the base's. */
typedef struct scratch {
    const void **ep;
    double *part;
    size_t *same;     /* indices of the experts with the base's dtype */
    float *fb, *fx;   /* LSW_MAV_CHUNK each */
} scratch;

/* For every expert e < E: s[e] += Σ|f64(x_e) − f64(b)| over n elements in
 * chunks of LSW_MAV_CHUNK (counted from where x[e][0] / b[0] are, a chunk
 * boundary of the row), the chunk sums added in order.  Experts with the
 * base's dtype share one pass over the base (lsw_absdiff_sum_multi); one with
 * another dtype is compared through f32 copies of both chunks, which changes
 * no value (every BF16/F16/F32 number is an f32 exactly). */
static void chunks_multi(lsw_dtype dt, const char *b, const char *const *x, const lsw_dtype *xdt, size_t E,
                         uint64_t n, const scratch *sc, double *s)
{
    size_t es = lsw_dtype_size(dt), ns = 0;
    for (size_t e = 0; e < E; e++)
        if (xdt[e] == dt)
            sc->same[ns++] = e;
    for (uint64_t c = 0; c < n; c += LSW_MAV_CHUNK) {
        uint64_t m = n - c < LSW_MAV_CHUNK ? n - c : LSW_MAV_CHUNK;
        for (size_t k = 0; k < ns; k++)
            sc->ep[k] = x[sc->same[k]] + c * es;
        if (ns) {
            lsw_absdiff_sum_multi(dt, b + c * es, sc->ep, ns, (size_t)m, sc->part);
            for (size_t k = 0; k < ns; k++)
                s[sc->same[k]] += sc->part[k];
        }
        if (ns == E)
            continue;
        lsw_to_f32(dt, b + c * es, sc->fb, (size_t)m);
        for (size_t e = 0; e < E; e++)
            if (xdt[e] != dt) {
                lsw_to_f32(xdt[e], x[e] + c * lsw_dtype_size(xdt[e]), sc->fx, (size_t)m);
                s[e] += lsw_absdiff_sum(LSW_DT_F32, sc->fx, sc->fb, (size_t)m);
            }
    }
}

/* ---- blocks ----------------------------------------------------------------
 * The jobs are cut into blocks, each read into one slot of the buffer (one
 * part per model): whole rows while a row fits a part, else whole chunks of
 * one row.  The reader and the summing side walk the same sequence. */

typedef struct blk {
    size_t job;
    uint64_t r;       /* row within the job */
    uint64_t k;       /* whole rows: k rows; 0: a piece of row r */
    uint64_t done, n; /* piece: elements [done, done + n) of the row */
} blk;

typedef struct walker {
    const lsw_stats_job *jobs;
    size_t njobs, job;
    uint64_t r, done;
    size_t part;      /* bytes per model part */
    const size_t *wide; /* per job: the widest element size of its models */
} walker;

/* Next block; 0 when there is none, -1 if the part holds less than one chunk. */
static int next_block(walker *w, blk *b)
{
    while (w->job < w->njobs && w->r >= w->jobs[w->job].nrows) {
        w->job++;
        w->r = w->done = 0;
    }
    if (w->job >= w->njobs)
        return 0;
    const lsw_tensor_desc *t = w->jobs[w->job].bt;
    uint64_t rows, rl;
    lsw_mav_rows(t, &rows, &rl);
    uint64_t per = w->part / w->wide[w->job];
    per -= per % LSW_MAV_CHUNK;
    if (per == 0)
        return -1;
    b->job = w->job;
    b->r = w->r;
    if (rl <= per) {
        uint64_t k = per / rl, left = w->jobs[w->job].nrows - w->r;
        b->k = k < left ? k : left;
        b->done = 0;
        b->n = b->k * rl;
        w->r += b->k;
    } else {
        b->k = 0;
        b->done = w->done;
        b->n = rl - w->done < per ? rl - w->done : per;
        w->done += b->n;
        if (w->done == rl) {
            w->done = 0;
            w->r++;
        }
    }
    return 1;
}

/* Reader threads at most, and slots: one more than the readers, so that every
 * reader can fill one while the summing thread works on another. */
#define MAX_READERS 8
#define MAX_SLOTS (MAX_READERS + 1)

typedef struct slot {
    char *p;          /* (1 + E) parts: base, expert 0, ... */
    size_t index;     /* the block it holds when full */
    int full;         /* read and not yet summed */
    int rc;           /* read error of this block */
    char detail[1024];
} slot;

typedef struct run {
    const lsw_ckpt *base;
    lsw_ckpt *const *experts;
    const lsw_tensor_desc **xt; /* per job × expert */
    lsw_dtype *xdt;             /* per job × expert: its dtype */
    size_t *wide;               /* per job: the widest element size */
    size_t nexperts;
    const lsw_stats_job *jobs;
    size_t njobs, part, nslots;
    slot slots[MAX_SLOTS];
    /* shared by the readers and the summing thread, under mu */
    pthread_mutex_t mu;
    pthread_cond_t filled, freed;
    walker w;                   /* the readers' walk: block `claimed` is next */
    size_t claimed, consumed;   /* blocks handed to readers; blocks summed */
    int abort;
    double read_s;              /* the readers' time, summed */
} run;

static int read_block(run *R, const blk *b, char *p)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    uint64_t first = (j->row0 + b->r) * rl + b->done; /* element index */
    size_t es = lsw_dtype_size(j->bt->dtype);
    int rc = lsw_ckpt_read(R->base, j->bt, first * es, p, (size_t)(b->n * es));
    for (size_t e = 0; e < R->nexperts && !rc; e++) {
        const lsw_tensor_desc *x = R->xt[b->job * R->nexperts + e];
        size_t xs = lsw_dtype_size(x->dtype);
        rc = lsw_ckpt_read(R->experts[e], x, first * xs, p + (e + 1) * R->part, (size_t)(b->n * xs));
    }
    return rc;
}

/* Sum block b (read into p) for every expert: whole rows straight into out,
 * pieces of a long row into acc[e] (restarted at the row's first piece).
 * row (E doubles) and sc are scratch.  Returns the bytes of the block over
 * all models. */
static uint64_t sum_block(const run *R, const blk *b, const char *p, double *acc, double *row, const char **x,
                          const scratch *sc)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    lsw_dtype dt = j->bt->dtype;
    size_t es = lsw_dtype_size(dt), E = R->nexperts;
    const lsw_dtype *xdt = R->xdt + b->job * E;
    uint64_t bytes = b->n * es;
    for (size_t e = 0; e < E; e++)
        bytes += b->n * lsw_dtype_size(xdt[e]);
    /* all experts against one base row (or chunk) at a time: the base is read
     * once for them, and each expert's additions keep their order */
    if (b->k) {
        for (uint64_t q = 0; q < b->k; q++) {
            for (size_t e = 0; e < E; e++) {
                row[e] = 0.0;
                x[e] = p + (e + 1) * R->part + q * rl * lsw_dtype_size(xdt[e]);
            }
            chunks_multi(dt, p + q * rl * es, x, xdt, E, rl, sc, row);
            for (size_t e = 0; e < E; e++)
                j->out[e][b->r + q] = row[e] / (double)rl;
        }
    } else {
        for (size_t e = 0; e < E; e++) {
            if (!b->done)
                acc[e] = 0.0;
            x[e] = p + (e + 1) * R->part;
        }
        chunks_multi(dt, p, x, xdt, E, b->n, sc, acc);
        if (b->done + b->n == rl)
            for (size_t e = 0; e < E; e++)
                j->out[e][b->r] = acc[e] / (double)rl;
    }
    return bytes;
}

/* 1 if b is the last block of its job */
static int ends_job(const run *R, const blk *b)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    if (b->k)
        return b->r + b->k == j->nrows;
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    return b->done + b->n == rl && b->r + 1 == j->nrows;
}

/* A reader: claim the next block (in order), wait for its slot (block i goes
 * to slot i % nslots, free once block i − nslots is summed), read it there. */
static void *reader_main(void *arg)
{
    run *R = arg;
    pthread_mutex_lock(&R->mu);
    for (;;) {
        blk b;
        if (R->abort || next_block(&R->w, &b) <= 0)
            break;
        size_t i = R->claimed++;
        slot *s = &R->slots[i % R->nslots];
        while (!R->abort && i >= R->consumed + R->nslots)
            pthread_cond_wait(&R->freed, &R->mu);
        if (R->abort)
            break;
        pthread_mutex_unlock(&R->mu);
        double t0 = lsw_now();
        int rc = read_block(R, &b, s->p);
        double dt = lsw_now() - t0;
        if (rc)
            snprintf(s->detail, sizeof s->detail, "%s", lsw_err_detail());
        lsw_err_clear();
        pthread_mutex_lock(&R->mu);
        R->read_s += dt;
        s->rc = rc;
        s->index = i;
        s->full = 1;
        pthread_cond_broadcast(&R->filled);
        if (rc)
            break;
    }
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

int lsw_stats_rows_run(const lsw_ckpt *base, lsw_ckpt *const *experts, size_t nexperts, const lsw_stats_job *jobs,
                       size_t njobs, void *buf, size_t buf_bytes, int readers, lsw_progress *pr,
                       lsw_stats_timing *tm)
{
    if (readers < 0)
        readers = 0;
    if (nexperts == 0 || njobs == 0)
        return 0;
    run R;
    memset(&R, 0, sizeof R);
    R.base = base;
    R.experts = experts;
    R.nexperts = nexperts;
    R.jobs = jobs;
    R.njobs = njobs;
    R.xt = malloc(njobs * nexperts * sizeof *R.xt);
    R.xdt = malloc(njobs * nexperts * sizeof *R.xdt);
    R.wide = malloc(njobs * sizeof *R.wide);
    double *acc = malloc(3 * nexperts * sizeof *acc), *row = acc + nexperts;
    const char **x = malloc(nexperts * sizeof *x);
    scratch sc = {malloc(nexperts * sizeof *sc.ep), acc + 2 * nexperts, malloc(nexperts * sizeof *sc.same),
                  malloc(2 * LSW_MAV_CHUNK * sizeof(float)), NULL};
    sc.fx = sc.fb ? sc.fb + LSW_MAV_CHUNK : NULL;
    int rc = 0;
    if (!R.xt || !R.xdt || !R.wide || !acc || !x || !sc.ep || !sc.same || !sc.fb)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t j = 0; j < njobs && !rc; j++) {
        const lsw_tensor_desc *bt = jobs[j].bt;
        uint64_t rows, rl;
        lsw_mav_rows(bt, &rows, &rl);
        if (jobs[j].row0 > rows || jobs[j].nrows > rows - jobs[j].row0)
            rc = lsw_err_set(LSW_E_INTERNAL, "stats: tensor '%s': rows out of range", bt->name);
        R.wide[j] = lsw_dtype_size(bt->dtype);
        for (size_t e = 0; e < nexperts && !rc; e++) {
            const lsw_tensor_desc *xt = lsw_ckpt_find(experts[e], bt->name);
            if (!xt || !lsw_dtype_is_arith(xt->dtype) || !lsw_dtype_is_arith(bt->dtype) || !same_shape(xt, bt)) {
                rc = lsw_err_set(LSW_E_MISMATCH,
                                 "%s: tensor '%s': missing, or shape or dtype not comparable with the base %s",
                                 lsw_ckpt_path(experts[e]), bt->name, lsw_ckpt_path(base));
                break;
            }
            R.xt[j * nexperts + e] = xt;
            R.xdt[j * nexperts + e] = xt->dtype;
            if (lsw_dtype_size(xt->dtype) > R.wide[j])
                R.wide[j] = lsw_dtype_size(xt->dtype);
        }
    }
    /* readers: as asked, as many as the buffer holds slots for (one slot each
     * and one being summed), at most MAX_READERS */
    size_t nr = readers > MAX_READERS ? MAX_READERS : readers;
    while (nr > 0 && buf_bytes < (nr + 1) * lsw_stats_buf_min(nexperts))
        nr--;
    R.nslots = nr + 1;
    R.part = (buf_bytes / R.nslots / (nexperts + 1)) & ~(size_t)63;
    for (size_t k = 0; k < R.nslots; k++)
        R.slots[k].p = (char *)buf + k * R.part * (nexperts + 1);
    R.w = (walker){jobs, njobs, 0, 0, 0, R.part, R.wide};
    pthread_t th[MAX_READERS];
    size_t started = 0;
    if (!rc && nr > 0) {
        pthread_mutex_init(&R.mu, NULL);
        pthread_cond_init(&R.filled, NULL);
        pthread_cond_init(&R.freed, NULL);
        while (started < nr && pthread_create(&th[started], NULL, reader_main, &R) == 0)
            started++;
        if (!started) {
            pthread_mutex_destroy(&R.mu);
            pthread_cond_destroy(&R.filled);
            pthread_cond_destroy(&R.freed);
            R.nslots = 1;
            R.part = (buf_bytes / (nexperts + 1)) & ~(size_t)63;
        }
    }
    int threaded = started > 0;
    if (threaded) {
        walker w = {jobs, njobs, 0, 0, 0, R.part, R.wide};
        blk b;
        int nb;
        for (size_t i = 0; !rc && (nb = next_block(&w, &b)) != 0; i++) {
            if (nb < 0) {
                rc = lsw_err_set(LSW_E_INTERNAL, "stats: buffer of %zu bytes is too small", buf_bytes);
                break;
            }
            if (lsw_stop_signal) {
                rc = lsw_err_set(LSW_E_INTERRUPTED, "stats: interrupted by a signal; rerun the same command");
                break;
            }
            slot *s = &R.slots[i % R.nslots];
            double tw = lsw_now();
            pthread_mutex_lock(&R.mu);
            while (!(s->full && s->index == i))
                pthread_cond_wait(&R.filled, &R.mu);
            pthread_mutex_unlock(&R.mu);
            if (s->rc) {
                rc = lsw_err_set(s->rc, "%s", s->detail);
                break;
            }
            double t1 = lsw_now();
            uint64_t bytes = sum_block(&R, &b, s->p, acc, row, x, &sc);
            if (tm) {
                tm->kernel_s += lsw_now() - t1;
                tm->wait_s += t1 - tw;
                tm->bytes += bytes;
            }
            if (pr)
                lsw_progress_add(pr, bytes, (size_t)ends_job(&R, &b));
            pthread_mutex_lock(&R.mu);
            s->full = 0;
            R.consumed = i + 1;
            pthread_cond_broadcast(&R.freed);
            pthread_mutex_unlock(&R.mu);
        }
        pthread_mutex_lock(&R.mu);
        R.abort = 1;
        pthread_cond_broadcast(&R.freed);
        pthread_mutex_unlock(&R.mu);
        for (size_t k = 0; k < started; k++)
            pthread_join(th[k], NULL);
        pthread_mutex_destroy(&R.mu);
        pthread_cond_destroy(&R.filled);
        pthread_cond_destroy(&R.freed);
        if (tm) {
            tm->read_s += R.read_s;
            tm->overlapped = (int)started;
        }
    }
    if (!rc && !threaded) {
        /* one slot: read, then sum */
        walker w = {jobs, njobs, 0, 0, 0, R.part, R.wide};
        blk b;
        int nb;
        while (!rc && (nb = next_block(&w, &b)) != 0) {
            if (nb < 0) {
                rc = lsw_err_set(LSW_E_INTERNAL, "stats: buffer of %zu bytes is too small for %zu experts", buf_bytes,
                                 nexperts);
                break;
            }
            if (lsw_stop_signal) {
                rc = lsw_err_set(LSW_E_INTERRUPTED, "stats: interrupted by a signal; rerun the same command");
                break;
            }
            double t0 = lsw_now();
            char *p = R.slots[0].p;
            if ((rc = read_block(&R, &b, p)))
                break;
            double t1 = lsw_now();
            uint64_t bytes = sum_block(&R, &b, p, acc, row, x, &sc);
            if (tm) {
                tm->read_s += t1 - t0;
                tm->kernel_s += lsw_now() - t1;
                tm->bytes += bytes;
            }
            if (pr)
                lsw_progress_add(pr, bytes, (size_t)ends_job(&R, &b));
        }
    }
    free(R.xt);
    free(R.xdt);
    free(R.wide);
    free(acc);
    free(x);
    free(sc.ep);
    free(sc.same);
    free(sc.fb);
    return rc;
}

int lsw_stats_tensor_rows(const lsw_ckpt *base, const lsw_tensor_desc *bt, lsw_ckpt *const *experts,
                          size_t nexperts, uint64_t row0, uint64_t nrows, void *buf, size_t buf_bytes,
                          double *const *out, lsw_progress *pr, lsw_stats_timing *tm)
{
    lsw_stats_job j = {bt, row0, nrows, out};
    return lsw_stats_rows_run(base, experts, nexperts, &j, 1, buf, buf_bytes, 0, pr, tm);
}

typedef struct sized { uint64_t bytes; size_t index; } sized;

static int cmp_sized(const void *a, const void *b)
{
    const sized *x = a, *y = b;
    if (x->bytes != y->bytes)
        return x->bytes > y->bytes ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

int lsw_stats_assign(const uint64_t *bytes, size_t n, int nranks, int *owner)
{
    if (nranks < 1)
        nranks = 1;
    sized *s = malloc((n ? n : 1) * sizeof *s);
    uint64_t *load = calloc((size_t)nranks, sizeof *load);
    if (!s || !load) {
        free(s);
        free(load);
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++)
        s[i] = (sized){bytes[i], i};
    qsort(s, n, sizeof *s, cmp_sized);
    for (size_t i = 0; i < n; i++) {
        int best = 0;
        for (int r = 1; r < nranks; r++)
            if (load[r] < load[best])
                best = r;
        owner[s[i].index] = best;
        load[best] += s[i].bytes;
    }
    free(s);
    free(load);
    return 0;
}
