#include "lsw_stats_rows.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_execute.h"
#include "lsw_kernels.h"
#include "lsw_mav.h"
#include "lsw_stats_norms.h"
#include "lsw_signal.h"
#include "lsw_tread.h"

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
            /* float dtypes may differ (each is widened exactly, docs/statistics.md); any
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
    double *part, *sq; /* per expert: a chunk's |d| sums and d² sums */
    size_t *same;     /* indices of the experts with the base's dtype */
    float *fb, *fx;   /* LSW_MAV_CHUNK each */
} scratch;

/* For every expert e < E: s[e] += Σ|f64(x_e) − f64(b)| over n elements in
 * chunks of LSW_MAV_CHUNK (counted from where x[e][0] / b[0] are, a chunk
 * boundary of the row), the chunk sums added in order; and, for the
 * module-level view, *bsq += Σ f64(b)² and dsq[e] += Σ (f64(x_e) − f64(b))²
 * per chunk in the same order, all in one pass (lsw_stats_chunk_sums, whose
 * |d| sums are lsw_absdiff_sum's bit for bit).  Experts with the base's
 * dtype share one pass over the base; one with
 * another dtype is compared through f32 copies of both chunks, which changes
 * no value (every BF16/F16/F32 number is an f32 exactly). */
static void chunks_multi(lsw_dtype dt, const char *b, const char *const *x, const lsw_dtype *xdt, size_t E,
                         uint64_t n, const scratch *sc, double *s, double *bsq, double *dsq)
{
    size_t es = lsw_dtype_size(dt), ns = 0;
    for (size_t e = 0; e < E; e++)
        if (xdt[e] == dt)
            sc->same[ns++] = e;
    for (uint64_t c = 0; c < n; c += LSW_MAV_CHUNK) {
        uint64_t m = n - c < LSW_MAV_CHUNK ? n - c : LSW_MAV_CHUNK;
        double bs = 0;
        for (size_t k = 0; k < ns; k++)
            sc->ep[k] = x[sc->same[k]] + c * es;
        if (ns) {
            lsw_stats_chunk_sums(dt, b + c * es, sc->ep, ns, (size_t)m, sc->part, &bs, sc->sq);
            for (size_t k = 0; k < ns; k++) {
                s[sc->same[k]] += sc->part[k];
                dsq[sc->same[k]] += sc->sq[k];
            }
        }
        if (ns < E) {
            int have_bs = ns > 0;
            lsw_to_f32(dt, b + c * es, sc->fb, (size_t)m);
            for (size_t e = 0; e < E; e++)
                if (xdt[e] != dt) {
                    const void *fx = sc->fx;
                    double mv;
                    lsw_to_f32(xdt[e], x[e] + c * lsw_dtype_size(xdt[e]), sc->fx, (size_t)m);
                    /* the base's squares from its f32 copy: the same values, the same bits */
                    lsw_stats_chunk_sums(LSW_DT_F32, sc->fb, &fx, 1, (size_t)m, &mv, have_bs ? NULL : &bs, sc->sq);
                    have_bs = 1;
                    s[e] += mv;
                    dsq[e] += sc->sq[0];
                }
        }
        *bsq += bs;
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
/* mapped mode: bytes per model and block, and the smallest budget worth it */
#define MAP_PART_MAX ((size_t)16 << 20)
#define MAP_PART_MIN ((size_t)1 << 20)

typedef struct slot {
    char *p;          /* pread mode: (1 + E) parts: base, expert 0, ... */
    const char **ptr; /* 1 + E: where each model's bytes of the block are */
    lsw_tblock *tb;   /* mapped mode: 1 + E mapped blocks (lsw_tread) */
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
    int mapped;                 /* 1: blocks are mappings of the files, not copies */
    int **fd;                   /* mapped: per model (base, experts), per file */
    int populate;               /* mapped: fault the pages in ahead (LSW_STATS_POPULATE=0: no) */
    size_t page;
    slot slots[MAX_SLOTS];
    double *rown;               /* per row of every job: Σ b², then Σ d² per expert (1 + E) */
    size_t *rowbase;            /* per job: its first row in rown */
    /* shared by the readers and the summing thread, under mu */
    pthread_mutex_t mu;
    pthread_cond_t filled, freed;
    walker w;                   /* the readers' walk: block `claimed` is next */
    size_t claimed, consumed;   /* blocks handed to readers; blocks summed */
    int abort;
    double read_s;              /* the readers' time, summed */
} run;

static const lsw_ckpt *model(const run *R, size_t m) { return m ? R->experts[m - 1] : R->base; }

static const lsw_tensor_desc *model_tensor(const run *R, size_t job, size_t m)
{
    return m ? R->xt[job * R->nexperts + m - 1] : R->jobs[job].bt;
}

/* ---- pread mode --------------------------------------------------------------- */

static int read_block(run *R, const blk *b, slot *s)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    uint64_t first = (j->row0 + b->r) * rl + b->done; /* element index */
    int rc = 0;
    for (size_t m = 0; m <= R->nexperts && !rc; m++) {
        char *dst = s->p + m * R->part;
        rc = lsw_tread_copy(model(R, m), model_tensor(R, b->job, m), first, (size_t)b->n, dst);
        s->ptr[m] = dst;
    }
    return rc;
}

/* ---- mapped mode ----------------------------------------------------------------
 * The files' bytes are summed where the page cache holds them: each block of
 * each model is mmap'ed (page-aligned), populated (MADV_POPULATE_READ, by the
 * reader thread when there is one), summed and unmapped.  No copy: on this
 * project's VM mapping a cached 1.47 GB file costs ~0.03 s against ~0.3 s to
 * copy it out with pread (what `cat` does).  The mappings are read-only and
 * private; a file cut short under us raises SIGBUS on access, which the
 * summing thread turns into LSW_E_READ (guarded_sum), and makes
 * MADV_POPULATE_READ fail with EFAULT, which the reader reports. */

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

/* Open every file of every model for mapping; 0 (and no fds) if a model is
 * not a set of safetensors files (an HDF5 input is read through HDF5). */
static int map_open(run *R)
{
    size_t M = R->nexperts + 1;
    for (size_t m = 0; m < M; m++)
        if (!lsw_tread_mappable(model(R, m)))
            return 0;
    if (!(R->fd = calloc(M, sizeof *R->fd)))
        return 0;
    for (size_t m = 0; m < M; m++) {
        size_t nf = lsw_ckpt_file_count(model(R, m));
        if (!(R->fd[m] = malloc(nf * sizeof **R->fd)))
            return 0;
        for (size_t f = 0; f < nf; f++)
            R->fd[m][f] = open(lsw_ckpt_file_path(model(R, m), (unsigned)f), O_RDONLY | O_CLOEXEC);
        for (size_t f = 0; f < nf; f++)
            if (R->fd[m][f] < 0)
                return 0;
    }
    R->page = (size_t)sysconf(_SC_PAGESIZE);
    const char *pop = getenv("LSW_STATS_POPULATE"); /* 0: fault on first touch (tests the SIGBUS path) */
    R->populate = !(pop && !strcmp(pop, "0"));
    return 1;
}

static void map_close(run *R)
{
    for (size_t m = 0; R->fd && m <= R->nexperts; m++) {
        for (size_t f = 0; R->fd[m] && f < lsw_ckpt_file_count(model(R, m)); f++)
            if (R->fd[m][f] >= 0)
                close(R->fd[m][f]);
        free(R->fd[m]);
    }
    free(R->fd);
    R->fd = NULL;
}

static int map_block(run *R, const blk *b, slot *s)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    uint64_t first = (j->row0 + b->r) * rl + b->done;
    for (size_t m = 0; m <= R->nexperts; m++) {
        const lsw_tensor_desc *t = model_tensor(R, b->job, m);
        int rc = lsw_tread_map(model(R, m), R->fd[m][t->file], t, first, (size_t)b->n, R->populate, R->page,
                               &s->tb[m]);
        s->ptr[m] = s->tb[m].ptr;
        if (rc)
            return rc;
    }
    return 0;
}

static void release_slot(const run *R, slot *s)
{
    for (size_t m = 0; m <= R->nexperts; m++)
        lsw_tread_release(&s->tb[m]);
}

/* ---- summing ------------------------------------------------------------------ */

/* Sum block b (at s->ptr) for every expert: row MAVs straight into out and
 * each row's squared norms into R->rown; the pieces of a long row add up in
 * acc (MAV), accq (norms: base, then experts), restarted at the row's first
 * piece.  row, rq (1 + E) and sc are scratch.  Returns the bytes of the block
 * over all models. */
static uint64_t sum_block(const run *R, const blk *b, const slot *s, double *acc, double *accq, double *row,
                          double *rq, const char **x, const scratch *sc)
{
    const lsw_stats_job *j = &R->jobs[b->job];
    uint64_t rows, rl;
    lsw_mav_rows(j->bt, &rows, &rl);
    lsw_dtype dt = j->bt->dtype;
    size_t es = lsw_dtype_size(dt), E = R->nexperts;
    const lsw_dtype *xdt = R->xdt + b->job * E;
    double *rown = R->rown + (R->rowbase[b->job] + b->r) * (E + 1);
    uint64_t bytes = b->n * es;
    for (size_t e = 0; e < E; e++)
        bytes += b->n * lsw_dtype_size(xdt[e]);
    /* all experts against one base row (or chunk) at a time: the base is read
     * once for them, and each expert's additions keep their order */
    if (b->k) {
        for (uint64_t q = 0; q < b->k; q++) {
            memset(rq, 0, (E + 1) * sizeof *rq);
            for (size_t e = 0; e < E; e++) {
                row[e] = 0.0;
                x[e] = s->ptr[e + 1] + q * rl * lsw_dtype_size(xdt[e]);
            }
            chunks_multi(dt, s->ptr[0] + q * rl * es, x, xdt, E, rl, sc, row, rq, rq + 1);
            for (size_t e = 0; e < E; e++)
                j->out[e][b->r + q] = row[e] / (double)rl;
            memcpy(rown + q * (E + 1), rq, (E + 1) * sizeof *rq);
        }
    } else {
        if (!b->done) {
            memset(acc, 0, E * sizeof *acc);
            memset(accq, 0, (E + 1) * sizeof *accq);
        }
        for (size_t e = 0; e < E; e++)
            x[e] = s->ptr[e + 1];
        chunks_multi(dt, s->ptr[0], x, xdt, E, b->n, sc, acc, accq, accq + 1);
        if (b->done + b->n == rl) {
            for (size_t e = 0; e < E; e++)
                j->out[e][b->r] = acc[e] / (double)rl;
            memcpy(rown, accq, (E + 1) * sizeof *accq);
        }
    }
    return bytes;
}

/* Each job's squared norms: its rows' sums added in row order (so they
 * depend on the data only, never on which thread summed which row). */
static void combine_norms(const run *R)
{
    size_t M = R->nexperts + 1;
    for (size_t j = 0; j < R->njobs; j++) {
        const lsw_stats_job *job = &R->jobs[j];
        if (!job->bsq)
            continue;
        const double *rn = R->rown + R->rowbase[j] * M;
        for (uint64_t r = 0; r < job->nrows; r++) {
            *job->bsq += rn[r * M];
            for (size_t e = 0; e + 1 < M; e++)
                job->dsq[e] += rn[r * M + 1 + e];
        }
    }
}

/* Scratch of a summing thread. */
typedef struct summer {
    double *acc, *accq, *row, *rq; /* E, 1 + E, E, 1 + E */
    const char **x;
    scratch sc;
    slot own;                      /* mapped workers: the block being summed */
    double kernel_s, read_s;
    uint64_t bytes;
} summer;

static int summer_init(summer *S, size_t E)
{
    memset(S, 0, sizeof *S);
    S->acc = malloc((6 * E + 2) * sizeof *S->acc);
    S->x = malloc(E * sizeof *S->x);
    S->sc = (scratch){malloc(E * sizeof *S->sc.ep), NULL, NULL, malloc(E * sizeof *S->sc.same),
                      malloc(2 * LSW_MAV_CHUNK * sizeof(float)), NULL};
    S->own.ptr = calloc(E + 1, sizeof *S->own.ptr);
    S->own.tb = calloc(E + 1, sizeof *S->own.tb);
    if (!S->acc || !S->x || !S->sc.ep || !S->sc.same || !S->sc.fb || !S->own.ptr || !S->own.tb)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    S->accq = S->acc + E;
    S->row = S->accq + E + 1;
    S->rq = S->row + E;
    S->sc.part = S->rq + E + 1;
    S->sc.sq = S->sc.part + E;
    S->sc.fx = S->sc.fb + LSW_MAV_CHUNK;
    return 0;
}

static void summer_free(summer *S)
{
    free(S->acc);
    free(S->x);
    free(S->sc.ep);
    free(S->sc.same);
    free(S->sc.fb);
    free(S->own.ptr);
    free(S->own.tb);
}

/* A summing thread's jump out of a SIGBUS on a mapping (thread-local). */
static __thread sigjmp_buf *bus_jump;

static void on_sigbus(int sig, siginfo_t *si, void *ctx)
{
    (void)sig; (void)si; (void)ctx;
    if (bus_jump)
        siglongjmp(*bus_jump, 1);
    signal(SIGBUS, SIG_DFL); /* not ours: the default action when the access repeats */
}

/* sum_block, with a SIGBUS on a mapping (a file cut short while being read)
 * turned into LSW_E_READ.  *bytes gets sum_block's result. */
static int guarded_sum(const run *R, const blk *b, const slot *s, summer *S, uint64_t *bytes)
{
    if (!R->mapped) {
        *bytes = sum_block(R, b, s, S->acc, S->accq, S->row, S->rq, S->x, &S->sc);
        return 0;
    }
    sigjmp_buf jb;
    if (sigsetjmp(jb, 0)) {
        bus_jump = NULL;
        return lsw_err_set(LSW_E_READ, "%s: tensor '%s': an input file was cut short while being read",
                           lsw_ckpt_path(R->base), R->jobs[b->job].bt->name);
    }
    bus_jump = &jb;
    *bytes = sum_block(R, b, s, S->acc, S->accq, S->row, S->rq, S->x, &S->sc);
    bus_jump = NULL;
    return 0;
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

/* ---- copies: reader threads fill slots, this thread sums in order ---------- */

/* A reader: claim the next block (in order), wait for its slot (block i goes
 * to slot i % nslots, free once block i − nslots is summed), fill it. */
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
        int rc = read_block(R, &b, s);
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

/* The blocks in order: wait for each (threaded) or read it here, sum it, free its slot. */
static int sum_copies(run *R, int threaded, summer *S, lsw_progress *pr)
{
    walker w = {R->jobs, R->njobs, 0, 0, 0, R->part, R->wide};
    blk b;
    int nb, rc = 0;
    for (size_t i = 0; !rc && (nb = next_block(&w, &b)) != 0; i++) {
        if (nb < 0)
            return lsw_err_set(LSW_E_INTERNAL, "stats: buffer of %zu bytes per model is too small", R->part);
        if ((rc = lsw_stop_check()))
            return rc;
        slot *s = &R->slots[i % R->nslots];
        double t0 = lsw_now(), t1;
        if (threaded) {
            pthread_mutex_lock(&R->mu);
            while (!(s->full && s->index == i))
                pthread_cond_wait(&R->filled, &R->mu);
            pthread_mutex_unlock(&R->mu);
            if (s->rc)
                rc = lsw_err_set(s->rc, "%s", s->detail);
        } else {
            rc = read_block(R, &b, s);
        }
        t1 = lsw_now();
        uint64_t bytes = 0;
        if (!rc)
            rc = guarded_sum(R, &b, s, S, &bytes);
        S->read_s += t1 - t0; /* waiting for the readers, or reading */
        S->kernel_s += lsw_now() - t1;
        S->bytes += bytes;
        if (pr && !rc)
            lsw_progress_add(pr, bytes, (size_t)ends_job(R, &b));
        if (threaded) {
            pthread_mutex_lock(&R->mu);
            s->full = 0;
            R->consumed = i + 1;
            pthread_cond_broadcast(&R->freed);
            pthread_mutex_unlock(&R->mu);
        }
    }
    return rc;
}

/* ---- mappings: every worker maps, sums and unmaps blocks it claims --------- */

typedef struct worker {
    run *R;
    summer S;
    lsw_progress *pr;
    int rc;
    char detail[1024];
    pthread_t th;
} worker;

/* Claim the next unit under R->mu: one block of whole rows, or every piece of
 * one long row (its pieces add up in order, so one worker takes them all).
 * *mine gets a walker positioned at the unit; returns its block count, 0 at
 * the end. */
static size_t claim(run *R, walker *mine)
{
    *mine = R->w;
    blk b;
    size_t n = 0;
    while (next_block(&R->w, &b) > 0) {
        n++;
        if (b.k)
            break;                              /* whole rows: one block */
        uint64_t rows, rl;
        lsw_mav_rows(R->jobs[b.job].bt, &rows, &rl);
        if (b.done + b.n == rl)
            break;                              /* the row's last piece */
    }
    return n;
}

static void *worker_main(void *arg)
{
    worker *W = arg;
    run *R = W->R;
    int rc = 0;
    for (size_t n; !rc;) {
        walker mine;
        pthread_mutex_lock(&R->mu);
        n = R->abort ? 0 : claim(R, &mine);
        pthread_mutex_unlock(&R->mu);
        if (!n)
            break;
        for (size_t i = 0; i < n && !rc; i++) {
            blk b;
            next_block(&mine, &b);
            if ((rc = lsw_stop_check()))
                break;
            double t0 = lsw_now(), t1;
            uint64_t bytes = 0;
            rc = map_block(R, &b, &W->S.own);
            t1 = lsw_now();
            if (!rc)
                rc = guarded_sum(R, &b, &W->S.own, &W->S, &bytes);
            release_slot(R, &W->S.own);
            W->S.read_s += t1 - t0;
            W->S.kernel_s += lsw_now() - t1;
            W->S.bytes += bytes;
            pthread_mutex_lock(&R->mu);
            if (W->pr && !rc)
                lsw_progress_add(W->pr, bytes, (size_t)ends_job(R, &b));
            pthread_mutex_unlock(&R->mu);
        }
    }
    if (rc) {
        snprintf(W->detail, sizeof W->detail, "%s", lsw_err_detail());
        pthread_mutex_lock(&R->mu);
        R->abort = 1;
        pthread_mutex_unlock(&R->mu);
    }
    W->rc = rc;
    return NULL;
}

/* nw workers (this thread is worker 0): the first error, in worker order, wins. */
static int sum_mapped(run *R, size_t nw, lsw_progress *pr, lsw_stats_timing *tm)
{
    worker *W = calloc(nw, sizeof *W);
    size_t started = 1;
    int rc = W ? 0 : lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t k = 0; k < nw && !rc; k++) {
        W[k].R = R;
        W[k].pr = pr;
        rc = summer_init(&W[k].S, R->nexperts);
    }
    if (!rc) {
        pthread_mutex_init(&R->mu, NULL);
        R->w = (walker){R->jobs, R->njobs, 0, 0, 0, R->part, R->wide};
        while (started < nw && pthread_create(&W[started].th, NULL, worker_main, &W[started]) == 0)
            started++;
        worker_main(&W[0]);
        for (size_t k = 1; k < started; k++)
            pthread_join(W[k].th, NULL);
        pthread_mutex_destroy(&R->mu);
        for (size_t k = 0; k < started && !rc; k++)
            if (W[k].rc && W[k].rc != LSW_E_INTERRUPTED)
                rc = lsw_err_set(W[k].rc, "%s", W[k].detail);
        for (size_t k = 0; k < started && !rc; k++)
            if (W[k].rc)
                rc = lsw_err_set(W[k].rc, "%s", W[k].detail);
    }
    for (size_t k = 0; W && k < nw; k++) {
        if (tm && k < started) {
            tm->read_s += W[k].S.read_s;
            tm->kernel_s += W[k].S.kernel_s;
            tm->bytes += W[k].S.bytes;
        }
        summer_free(&W[k].S);
    }
    if (tm)
        tm->overlapped = (int)started - 1; /* the workers beside this thread */
    free(W);
    return rc;
}

/* ---- set-up ------------------------------------------------------------------ */

/* Per job: each expert's tensor and dtype, the widest element size; the row norms. */
static int setup_jobs(run *R)
{
    size_t E = R->nexperts;
    uint64_t total = 0;
    R->xt = malloc(R->njobs * E * sizeof *R->xt);
    R->xdt = malloc(R->njobs * E * sizeof *R->xdt);
    R->wide = malloc(R->njobs * sizeof *R->wide);
    R->rowbase = malloc(R->njobs * sizeof *R->rowbase);
    if (!R->xt || !R->xdt || !R->wide || !R->rowbase)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t j = 0; j < R->njobs; j++) {
        const lsw_tensor_desc *bt = R->jobs[j].bt;
        uint64_t rows, rl;
        lsw_mav_rows(bt, &rows, &rl);
        if (R->jobs[j].row0 > rows || R->jobs[j].nrows > rows - R->jobs[j].row0)
            return lsw_err_set(LSW_E_INTERNAL, "stats: tensor '%s': rows out of range", bt->name);
        R->rowbase[j] = (size_t)total;
        total += R->jobs[j].nrows;
        R->wide[j] = lsw_dtype_size(bt->dtype);
        for (size_t e = 0; e < E; e++) {
            const lsw_tensor_desc *xt = lsw_ckpt_find(R->experts[e], bt->name);
            if (!xt || !lsw_dtype_is_arith(xt->dtype) || !lsw_dtype_is_arith(bt->dtype) || !same_shape(xt, bt))
                return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': missing, or shape or dtype not comparable with "
                                   "the base %s", lsw_ckpt_path(R->experts[e]), bt->name, lsw_ckpt_path(R->base));
            R->xt[j * E + e] = xt;
            R->xdt[j * E + e] = xt->dtype;
            if (lsw_dtype_size(xt->dtype) > R->wide[j])
                R->wide[j] = lsw_dtype_size(xt->dtype);
        }
    }
    if (!(R->rown = malloc((size_t)(total ? total : 1) * (E + 1) * sizeof *R->rown)))
        return lsw_err_set(LSW_E_NOMEM, "out of memory for the row norms");
    return 0;
}

/* Copies: readers + 1 slots in `buf`, as many readers as the buffer holds. */
static int setup_slots(run *R, void *buf, size_t buf_bytes, size_t *nr)
{
    size_t M = R->nexperts + 1;
    while (*nr > 0 && buf_bytes < (*nr + 1) * lsw_stats_buf_min(R->nexperts))
        (*nr)--;
    R->part = (buf_bytes / (*nr + 1) / M) & ~(size_t)63;
    R->nslots = *nr + 1;
    for (size_t k = 0; k < R->nslots; k++) {
        R->slots[k].p = (char *)buf + k * R->part * M;
        if (!(R->slots[k].ptr = calloc(M, sizeof *R->slots[k].ptr)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    return 0;
}

/* Start the readers; when none starts, one slot, read and summed in turn. */
static size_t start_readers(run *R, size_t nr, pthread_t *th, void *buf, size_t buf_bytes)
{
    size_t started = 0;
    if (!nr)
        return 0;
    pthread_mutex_init(&R->mu, NULL);
    pthread_cond_init(&R->filled, NULL);
    pthread_cond_init(&R->freed, NULL);
    R->w = (walker){R->jobs, R->njobs, 0, 0, 0, R->part, R->wide};
    while (started < nr && pthread_create(&th[started], NULL, reader_main, R) == 0)
        started++;
    if (!started) {
        pthread_mutex_destroy(&R->mu);
        pthread_cond_destroy(&R->filled);
        pthread_cond_destroy(&R->freed);
        R->nslots = 1;
        R->part = (buf_bytes / (R->nexperts + 1)) & ~(size_t)63;
        R->slots[0].p = buf;
    }
    return started;
}

static void stop_readers(run *R, pthread_t *th, size_t started)
{
    pthread_mutex_lock(&R->mu);
    R->abort = 1;
    pthread_cond_broadcast(&R->freed);
    pthread_mutex_unlock(&R->mu);
    for (size_t k = 0; k < started; k++)
        pthread_join(th[k], NULL);
    pthread_mutex_destroy(&R->mu);
    pthread_cond_destroy(&R->filled);
    pthread_cond_destroy(&R->freed);
}

/* The copying pass: readers and this thread. */
static int run_copies(run *R, void *buf, size_t buf_bytes, int readers, lsw_progress *pr, lsw_stats_timing *tm)
{
    summer S;
    pthread_t th[MAX_READERS];
    size_t nr = readers < 0 ? 0 : readers > MAX_READERS ? MAX_READERS : (size_t)readers, started = 0;
    int rc = summer_init(&S, R->nexperts);
    if (!rc)
        rc = setup_slots(R, buf, buf_bytes, &nr);
    if (!rc)
        started = start_readers(R, nr, th, buf, buf_bytes);
    if (!rc)
        rc = sum_copies(R, started > 0, &S, pr);
    if (started)
        stop_readers(R, th, started);
    if (tm) {
        tm->read_s += started ? R->read_s : S.read_s;
        tm->wait_s += started ? S.read_s : 0;
        tm->kernel_s += S.kernel_s;
        tm->bytes += S.bytes;
        tm->overlapped = (int)started;
    }
    summer_free(&S);
    return rc;
}

/* The mapping pass: readers + 1 workers (this thread and `readers` more),
 * blocks of up to MAP_PART_MAX per model, at most map_bytes mapped at once. */
static int run_mapped(run *R, int readers, uint64_t map_bytes, lsw_progress *pr, lsw_stats_timing *tm)
{
    size_t M = R->nexperts + 1, nw = 1 + (readers < 0 ? 0 : readers > MAX_READERS ? MAX_READERS : (size_t)readers);
    uint64_t part = map_bytes / (nw * M);
    R->part = (size_t)(part < MAP_PART_MAX ? part : MAP_PART_MAX);
    struct sigaction bus, old_bus;
    memset(&bus, 0, sizeof bus);
    bus.sa_sigaction = on_sigbus;
    bus.sa_flags = SA_SIGINFO | SA_NODEFER;
    sigemptyset(&bus.sa_mask);
    sigaction(SIGBUS, &bus, &old_bus);
    int rc = sum_mapped(R, nw, pr, tm);
    sigaction(SIGBUS, &old_bus, NULL);
    return rc;
}

int lsw_stats_rows_run(const lsw_ckpt *base, lsw_ckpt *const *experts, size_t nexperts, const lsw_stats_job *jobs,
                       size_t njobs, void *buf, size_t buf_bytes, int readers, uint64_t map_bytes, lsw_progress *pr,
                       lsw_stats_timing *tm)
{
    if (nexperts == 0 || njobs == 0)
        return 0;
    run R;
    memset(&R, 0, sizeof R);
    R.base = base;
    R.experts = experts;
    R.nexperts = nexperts;
    R.jobs = jobs;
    R.njobs = njobs;
    size_t nw = 1 + (readers < 0 ? 0 : readers > MAX_READERS ? MAX_READERS : (size_t)readers);
    int rc = setup_jobs(&R);
    /* mappings when every model is safetensors files and a block of at
     * least MAP_PART_MIN per model and worker fits the budget */
    R.mapped = !rc && map_bytes / (nw * (nexperts + 1)) >= MAP_PART_MIN && map_open(&R);
    if (!R.mapped)
        map_close(&R);
    if (!rc)
        rc = R.mapped ? run_mapped(&R, readers, map_bytes, pr, tm) : run_copies(&R, buf, buf_bytes, readers, pr, tm);
    if (!rc)
        combine_norms(&R);
    if (tm)
        tm->mapped = R.mapped;
    map_close(&R);
    for (size_t k = 0; k < MAX_SLOTS; k++)
        free(R.slots[k].ptr);
    free(R.xt);
    free(R.xdt);
    free(R.wide);
    free(R.rowbase);
    free(R.rown);
    return rc;
}

int lsw_stats_tensor_rows(const lsw_ckpt *base, const lsw_tensor_desc *bt, lsw_ckpt *const *experts,
                          size_t nexperts, uint64_t row0, uint64_t nrows, void *buf, size_t buf_bytes,
                          double *const *out, lsw_progress *pr, lsw_stats_timing *tm)
{
    lsw_stats_job j = {bt, row0, nrows, out, NULL, NULL};
    return lsw_stats_rows_run(base, experts, nexperts, &j, 1, buf, buf_bytes, 0, 0, pr, tm);
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
