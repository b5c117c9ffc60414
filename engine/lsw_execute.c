#include "lsw_execute.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsw_assign.h"
#include "lsw_commit.h"
#ifdef LSW_HAVE_HDF5
#include "lsw_hdf5.h"
#endif
#include "lsw_crc32c.h"
#include "lsw_h5layout.h"
#include "lsw_zstd_filter.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_kernels.h"
#include "lsw_lock.h"
#include "lsw_mav.h"
#include "lsw_modelfiles.h"
#include "lsw_progress.h"
#include "lsw_signal.h"
#include "lsw_strbuf.h"
#include "lsw_taskvec.h"

static int check_stop(void)
{
    if (lsw_stop_signal)
        return lsw_err_set(LSW_E_INTERRUPTED, "stopped by signal %d; finished shards are kept, rerun the same command to resume",
                           (int)lsw_stop_signal);
    return 0;
}

/* ---- magnitude weights ----------------------------------------------------- */

int lsw_model_mavs(const lsw_config *cfg, lsw_ckpt *const *models, const int *needed, const lsw_run_opts *o,
                   const lsw_comm *c, double *mav)
{
    const lsw_ckpt *base = models[cfg->base];
    size_t nt = lsw_ckpt_count(base);
    double *sums = calloc(nt ? nt : 1, sizeof *sums);
    size_t bytes = lsw_mav_buffer_bytes(o->mem);
    void *buf = malloc(bytes);
    int rc = (!sums || !buf) ? lsw_err_set(LSW_E_NOMEM, "out of memory for MAV buffers") : 0;
    for (size_t m = 0; m < cfg->nmodels; m++) {
        if (!needed[m])
            continue;
        double t0 = lsw_now();
        const lsw_ckpt *e = models[m];
        size_t ne = lsw_ckpt_count(e);
        if (!rc && ne > nt)
            rc = lsw_err_set(LSW_E_MISMATCH, "%s: model '%s' has %zu tensors, the base %s only %zu", lsw_ckpt_path(e),
                             cfg->model_names[m], ne, lsw_ckpt_path(base), nt);
        memset(sums, 0, (nt ? nt : 1) * sizeof *sums);
        /* tensor i (name order) is summed by rank i mod size; exact zeros elsewhere */
        for (size_t i = 0; i < ne && !rc; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(e, i);
            if ((int)(i % (size_t)c->size) == c->rank && lsw_mav_eligible(t))
                rc = lsw_tensor_mav_sum(base, e, t, buf, bytes, &sums[i]);
        }
        rc = lsw_agree(c, rc);
        if (rc)
            break;
        if (c->size > 1)
            MPI_Allreduce(MPI_IN_PLACE, sums, (int)ne, MPI_DOUBLE, MPI_SUM, c->comm);
        double s = 0;
        uint64_t rows_total = 0;
        for (size_t i = 0; i < ne; i++) {
            const lsw_tensor_desc *t = lsw_ckpt_at(e, i);
            if (!lsw_mav_eligible(t))
                continue;
            uint64_t rows, rl;
            lsw_mav_rows(t, &rows, &rl);
            s += sums[i];
            rows_total += rows;
        }
        mav[m] = rows_total ? s / (double)rows_total : 0.0;
        if (c->rank == 0 && !o->quiet)
            fprintf(stderr, "layerswap: model MAV of '%s' against '%s' = %.9g (%.2f s)\n", cfg->model_names[m],
                    cfg->model_names[cfg->base], mav[m], lsw_now() - t0);
    }
    free(buf);
    free(sums);
    return lsw_agree(c, rc);
}

int lsw_resolve_magnitude(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c)
{
    if (p->ready)
        return 0;
    double *mav = calloc(p->cfg->nmodels, sizeof *mav);
    if (!mav)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = lsw_model_mavs(p->cfg, p->models, p->mav_needed, o, c, mav);
    if (!rc)
        rc = lsw_plan_set_mav(p, mav);
    free(mav);
    return rc;
}

typedef struct arena {
    char *p;
    size_t size;
    lsw_tv *tv; /* task-vector state (method LSW_METHOD_TASKVEC), else NULL */
} arena;

/* Writeback kicks: bytes written to the current file since the last one. */
typedef struct wb { int fd; uint64_t from, pending; } wb;

static void wrote(wb *w, int fd, uint64_t off, uint64_t n)
{
    if (w->fd != fd || off != w->from + w->pending) {
        w->fd = fd;
        w->from = off;
        w->pending = 0;
    }
    w->pending += n;
    if (w->pending >= LSW_WRITEBACK_BYTES) {
        lsw_writeback(fd, w->from, w->pending);
        w->from += w->pending;
        w->pending = 0;
    }
}

/* What one rank did, for --summary. */
typedef struct rank_stats {
    double busy, wait;            /* seconds computing/reading/writing pieces; in agreement */
    uint64_t bytes_read, bytes_written;
} rank_stats;

/* Elements [i0, i0 + n) of tensor t into `out` (n * out size bytes).  A
 * weighted sum reads its sources into `scratch` (n * Σ source sizes bytes);
 * a copy reads straight into `out`. */
static int compute_block(const lsw_plan *p, const lsw_plan_tensor *t, uint64_t i0, size_t n, void *out,
                         char *scratch, lsw_tv *tv, rank_stats *rs)
{
    int rc = check_stop();
    if (rc)
        return rc;
    size_t out_es = lsw_dtype_size(t->out_dtype);
    if (t->op == LSW_OP_COPY) {
        rs->bytes_read += n * out_es;
        return lsw_ckpt_read(p->models[t->models[0]], t->src[0], i0 * out_es, out, n * out_es);
    }
    if (t->nsrc > 64)
        return lsw_err_set(LSW_E_CONFIG, "tensor '%s': more than 64 models in one average", t->name);
    const void *in[64];
    lsw_dtype dts[64];
    char *cur = scratch;
    for (size_t j = 0; j < t->nsrc && !rc; j++) {
        size_t es = lsw_dtype_size(t->src[j]->dtype);
        rc = lsw_ckpt_read(p->models[t->models[j]], t->src[j], i0 * es, cur, n * es);
        in[j] = cur;
        dts[j] = t->src[j]->dtype;
        cur += n * es;
    }
    if (rc)
        return rc;
    rs->bytes_read += (uint64_t)(cur - scratch);
    if (t->op == LSW_OP_TV)
        lsw_tv_block(tv, t, i0, n, in, out);
    else
        lsw_wsum(t->out_dtype, out, n, t->nsrc, dts, in, t->w);
    return 0;
}

/* Elements of tensor i that one rank must compute together: a task-vector
 * tensor whole (its trim threshold and quota run over the tensor in order),
 * else `unit[i]` (a row; in HDF5 a chunk of rows).  malloc'd. */
static uint64_t *piece_granules(const lsw_plan *p, const uint64_t *unit)
{
    uint64_t *g = malloc((p->n ? p->n : 1) * sizeof *g);
    for (size_t i = 0; g && i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t row = 1;
        for (size_t d = 1; d < t->ndim; d++)
            row *= t->shape[d];
        g[i] = t->op == LSW_OP_TV ? (t->numel ? t->numel : 1) : unit ? unit[i] : (row ? row : 1);
    }
    return g;
}

/* Bytes per element of t's sources (0 for a copy, which needs no scratch). */
static size_t source_bytes(const lsw_plan_tensor *t)
{
    size_t in_es = 0;
    if (t->op != LSW_OP_COPY)
        for (size_t j = 0; j < t->nsrc; j++)
            in_es += lsw_dtype_size(t->src[j]->dtype);
    return in_es;
}

/* Elements per block so that scratch and output fit `bytes`, each stream
 * at most LSW_BLOCK_BYTES. */
static size_t block_elems(const lsw_plan_tensor *t, size_t bytes)
{
    size_t in_es = source_bytes(t), out_es = lsw_dtype_size(t->out_dtype);
    size_t B = bytes / (in_es + out_es);
    size_t cap = LSW_BLOCK_BYTES / (out_es > 4 ? out_es : 4);
    if (B > cap)
        B = cap;
    if (B > 4096)
        B -= B % 4096;
    return B ? B : 1;
}

/* Elements [e0, e1) of tensor t into `fd` at the planned offsets; *crc is
 * the CRC of those output bytes. */
static int run_piece(const lsw_plan *p, const lsw_plan_tensor *t, uint64_t e0, uint64_t e1, int fd,
                     const char *path, arena *a, uint32_t *crc, lsw_progress *pr, rank_stats *rs)
{
    static wb w = {-1, 0, 0};
    size_t out_es = lsw_dtype_size(t->out_dtype);
    size_t B = block_elems(t, a->size);
    char *scratch = a->p, *out = a->p + B * source_bytes(t);
    uint32_t c = 0;
    int rc = 0;
    if (t->op == LSW_OP_TV) /* a task-vector tensor is one piece: e0 = 0, e1 = numel */
        rc = lsw_tv_begin(a->tv, p, t, a->p, a->size);
    for (uint64_t i0 = e0; i0 < e1 && !rc;) {
        size_t n = e1 - i0 < B ? (size_t)(e1 - i0) : B;
        uint64_t off = t->offset + i0 * out_es;
        if ((rc = compute_block(p, t, i0, n, out, scratch, a->tv, rs)) ||
            (rc = lsw_pwrite_full(fd, out, n * out_es, off, path)))
            break;
        wrote(&w, fd, off, n * out_es);
        c = lsw_crc32c(c, out, n * out_es);
        rs->bytes_written += n * out_es;
        lsw_progress_add(pr, n * out_es, 0);
        i0 += n;
    }
    *crc = c;
    return rc;
}

/* ---- the merge ------------------------------------------------------------- */

int lsw_write_index(const lsw_plan *p, lsw_outdir *o)
{
    lsw_strbuf b = {0};
    lsw_layout_index_json(p->items, p->n, p->shards, &b);
    int rc = lsw_sb_failed(&b) ? lsw_err_set(LSW_E_NOMEM, "out of memory")
                               : lsw_outdir_put(o, "model.safetensors.index.json", b.p, b.len);
    lsw_sb_free(&b);
    return rc;
}

char *lsw_manifest_extra(const lsw_plan *p)
{
    const lsw_config *c = p->cfg;
    lsw_strbuf b = {0};
    lsw_sb_printf(&b, "  \"tool\": \"layerswap %s\",\n  \"config_hash\": \"%016" PRIx64 "\",\n  \"inputs\": {",
                  LSW_VERSION, c->hash);
    int first = 1;
    for (size_t m = 0; m < c->nmodels; m++) {
        if (!p->models[m])
            continue;
        lsw_sb_str(&b, first ? "\n    " : ",\n    ");
        first = 0;
        lsw_sb_json_string(&b, c->model_names[m]);
        lsw_sb_str(&b, ": {\"path\": ");
        lsw_sb_json_string(&b, c->model_paths[m]);
        lsw_sb_printf(&b, ", \"identity\": \"%016" PRIx64 "\"}", lsw_ckpt_identity(p->models[m]));
    }
    lsw_sb_str(&b, "\n  }");
    if (lsw_sb_failed(&b)) {
        lsw_sb_free(&b);
        return NULL;
    }
    return b.p;
}

static char *tmp_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 16;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/.%s.lsw-tmp", dir, name);
    return p;
}

#define LSW_H5_FILE "model.h5"

/* Rank 0: prepare the output folder (the names this merge writes). */
static int open_outdir(const lsw_plan *p, const lsw_run_opts *o, lsw_outdir **od, lsw_out_state *st)
{
    size_t nn = 0;
    const char **names = calloc(p->nshards + 16, sizeof *names);
    if (!names)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (p->cfg->out.format == LSW_FMT_HDF5) {
        names[nn++] = LSW_H5_FILE;
    } else {
        for (size_t k = 0; k < p->nshards; k++)
            names[nn++] = p->shards[k].name;
        names[nn++] = "model.safetensors.index.json";
    }
    for (const char *const *m = lsw_model_file_names; *m; m++)
        names[nn++] = *m;
    int rc = lsw_outdir_open(p->cfg->out.path, p->hash, names, nn, o->overwrite, od, st);
    free(names);
    return rc;
}

/* One commit group: rank 0 creates the temporaries; all ranks write their
 * pieces; rank 0 combines CRCs and renames.  Collective. */
static int run_group(const lsw_plan *p, const lsw_assignment *as, const lsw_group *g, lsw_outdir *od,
                     lsw_out_state st, const lsw_comm *c, arena *a, lsw_progress *pr, size_t *reused,
                     rank_stats *rs)
{
    const char *dir = p->cfg->out.path;
    size_t ns = g->shard1 - g->shard0, np = g->piece1 - g->piece0;
    unsigned char *skip = calloc(ns ? ns : 1, 1);
    int *fds = malloc((ns ? ns : 1) * sizeof *fds);
    uint32_t *crcs = calloc(np ? np : 1, sizeof *crcs);
    int rc = (!skip || !fds || !crcs) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t k = 0; k < ns && fds; k++)
        fds[k] = -1;
    /* 1. rank 0: reuse finished shards, create the others with their headers */
    if (c->rank == 0) {
        for (size_t k = 0; k < ns && !rc; k++) {
            const lsw_plan_shard *s = &p->shards[g->shard0 + k];
            if (st == LSW_OUT_RESUME && lsw_outdir_reuse(od, s->name)) {
                skip[k] = 1;
                continue;
            }
            char *tp = tmp_path(dir, s->name);
            if (!tp || (rc = lsw_outdir_tmp_open(od, s->name, &fds[k])))
                rc = rc ? rc : lsw_err_set(LSW_E_NOMEM, "out of memory");
            else if (!(rc = lsw_pwrite_full(fds[k], s->header, s->data_start, 0, tp)) &&
                     ftruncate(fds[k], (off_t)s->size) != 0)
                rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: cannot size to %" PRIu64 " bytes: %s",
                                 tp, s->size, strerror(errno));
            free(tp);
        }
    }
    rc = lsw_agree(c, rc);
    if (!rc && c->size > 1)
        MPI_Bcast(skip, (int)(ns ? ns : 1), MPI_BYTE, 0, c->comm);
    /* 2. everyone: own pieces */
    double t_busy = lsw_now();
    for (size_t q = g->piece0; q < g->piece1 && !rc; q++) {
        const lsw_piece *pc = &as->pieces[q];
        const lsw_plan_tensor *t = &p->t[pc->tensor];
        size_t k = t->shard - g->shard0;
        if (pc->rank != c->rank || skip[k])
            continue;
        char *tp = tmp_path(dir, p->shards[t->shard].name);
        if (!tp) {
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
            break;
        }
        if (fds[k] < 0 && (fds[k] = open(tp, O_WRONLY | O_CLOEXEC)) < 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot open: %s", tp, strerror(errno));
        if (!rc)
            rc = run_piece(p, t, pc->e0, pc->e1, fds[k], tp, a, &crcs[q - g->piece0], pr, rs);
        if (!rc && pc->e1 == t->numel)
            lsw_progress_add(pr, 0, 1);
        free(tp);
    }
    /* 3. everyone: make own writes durable */
    for (size_t k = 0; k < ns && fds; k++)
        if (fds[k] >= 0 && (c->rank != 0 || rc)) {
            if (!rc)
                rc = lsw_fsync_fd(fds[k], p->shards[g->shard0 + k].name);
            close(fds[k]);
            fds[k] = -1;
        }
    double t_wait = lsw_now();
    rs->busy += t_wait - t_busy;
    rc = lsw_agree(c, rc);
    rs->wait += lsw_now() - t_wait;
    /* 4. rank 0: CRCs of all pieces, combined in file order; rename */
    if (!rc && c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, crcs, (int)np, MPI_UINT32_T, MPI_BXOR, c->comm); /* each piece has one writer */
    if (c->rank == 0) {
        for (size_t k = 0; k < ns; k++) {
            const lsw_plan_shard *s = &p->shards[g->shard0 + k];
            if (skip[k]) {
                (*reused)++;
                lsw_progress_add(pr, s->size - s->data_start, s->count);
                continue;
            }
            if (rc) {
                lsw_outdir_tmp_abort(od, s->name, fds[k]);
                continue;
            }
            uint32_t crc = lsw_crc32c(0, s->header, s->data_start);
            for (size_t q = g->piece0; q < g->piece1; q++) {
                const lsw_piece *pc = &as->pieces[q];
                const lsw_plan_tensor *t = &p->t[pc->tensor];
                if (t->shard == g->shard0 + k)
                    crc = lsw_crc32c_combine(crc, crcs[q - g->piece0], (pc->e1 - pc->e0) * lsw_dtype_size(t->out_dtype));
            }
            rc = lsw_outdir_tmp_commit(od, s->name, fds[k], s->size, crc);
            fds[k] = -1;
        }
    }
    rc = lsw_agree(c, rc);
    /* global progress: everyone's work in this group */
    uint64_t lb;
    size_t li;
    lsw_progress_local(pr, &lb, &li);
    unsigned long long v[2] = {lb, li};
    if (!rc && c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, c->comm);
    lsw_progress_sync(pr, v[0], (size_t)v[1]);
    free(skip);
    free(fds);
    free(crcs);
    return rc;
}

#ifdef LSW_HAVE_HDF5
/* ---- HDF5 output ------------------------------------------------------------
 * Phase 1, all ranks in parallel: every rank computes and encodes (shuffle +
 * zstd) the chunks of its own pieces, appending them to its spill file
 * `.model.h5.rank<R>.lsw-tmp` in the output folder.  Phase 2: the ranks agree
 * and rank 0 gathers every chunk's size.  Phase 3, rank 0 alone: it stores
 * every chunk with a direct chunk write, in plan order, reading them from the
 * spill files, so the file's bytes never depend on the number of ranks and
 * compression never waits for the writer.  (Streaming chunks to rank 0 in
 * plan order instead serialised the ranks: measured 1.06x at 2 ranks.) */

typedef struct h5_state {
    lsw_h5_writer *w;        /* rank 0 */
    char *raw, *scratch, *enc;
    size_t chunk_cap, enc_cap;
    uint64_t compressed;     /* rank 0: bytes of stored chunks */
} h5_state;

static char *plan_text(const lsw_plan *p)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return NULL;
    lsw_plan_print(p, f);
    fclose(f);
    return buf;
}

/* Encode chunk [ce0, ce1) of tensor t (elements) into st->enc; returns its size or 0 with rc set. */
static size_t encode_chunk(const lsw_plan *p, const lsw_plan_tensor *t, uint64_t ce0, uint64_t ce1, size_t chunk_bytes,
                           h5_state *st, arena *a, rank_stats *rs, int *rc)
{
    size_t out_es = lsw_dtype_size(t->out_dtype), B = block_elems(t, a->size);
    for (uint64_t i0 = ce0; i0 < ce1 && !*rc;) {
        size_t n = ce1 - i0 < B ? (size_t)(ce1 - i0) : B;
        *rc = compute_block(p, t, i0, n, st->raw + (i0 - ce0) * out_es, a->p, a->tv, rs);
        i0 += n;
    }
    if (*rc)
        return 0;
    size_t valid = (size_t)(ce1 - ce0) * out_es;
    size_t n = lsw_chunk_encode_padded(st->raw, valid, chunk_bytes, out_es, p->cfg->out.shuffle, p->cfg->out.zstd_level,
                                       st->enc, st->enc_cap, st->scratch);
    if (!n)
        *rc = lsw_err_set(LSW_E_INTERNAL, "tensor '%s': zstd compression of a %zu-byte chunk failed", t->name, chunk_bytes);
    rs->bytes_written += valid;
    return n;
}

static int run_hdf5(const lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c, lsw_outdir *od, arena *a,
                    lsw_progress *pr, rank_stats *rs, uint64_t *compressed)
{
    const lsw_config *cfg = p->cfg;
    h5_state st;
    memset(&st, 0, sizeof st);
    uint64_t *granule = calloc(p->n ? p->n : 1, sizeof *granule);
    lsw_assignment *as = NULL;
    int rc = granule ? 0 : lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < p->n && !rc; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t rpc = lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
        uint64_t rows = lsw_h5_rows(t->ndim, t->shape), cb = lsw_h5_chunk_bytes(t->out_dtype, t->ndim, t->shape);
        if (!rpc)
            rc = lsw_err_set(LSW_E_INPUT, "tensor '%s': cannot be stored in HDF5 (a row of 4 GiB or more)", t->name);
        granule[i] = t->numel && rows ? rpc * (t->numel / rows) : 1; /* elements of one chunk */
        st.chunk_cap = cb > st.chunk_cap ? (size_t)cb : st.chunk_cap;
    }
    uint64_t *pg = rc ? NULL : piece_granules(p, granule);
    if (!rc)
        rc = pg ? lsw_assign(p, c->size, pg, 1, &as) : lsw_err_set(LSW_E_NOMEM, "out of memory");
    free(pg);
    st.enc_cap = lsw_chunk_bound(st.chunk_cap ? st.chunk_cap : 1);
    if (!rc && (!(st.raw = malloc(st.chunk_cap + 1)) || !(st.scratch = malloc(st.chunk_cap + 1)) ||
                !(st.enc = malloc(st.enc_cap))))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory for %zu-byte chunk buffers", st.chunk_cap);
    /* rank 0: the file and every dataset, in plan order */
    int fd = -1;
    char *tp = tmp_path(cfg->out.path, LSW_H5_FILE);
    if (!tp && !rc)
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (c->rank == 0 && !rc) {
        char *pt = plan_text(p);
        rc = lsw_outdir_tmp_open(od, LSW_H5_FILE, &fd);
        if (!rc)
            rc = lsw_h5_create(tp, cfg->text, pt ? pt : "", cfg->out.zstd_level, cfg->out.shuffle, &st.w);
        for (size_t i = 0; i < p->n && !rc; i++)
            rc = lsw_h5_define(st.w, p->t[i].name, p->t[i].out_dtype, p->t[i].ndim, p->t[i].shape, NULL);
        free(pt);
    }
    rc = lsw_agree(c, rc);
    /* phase 1: own chunks, encoded, into this rank's spill file */
    char spill[4096];
    snprintf(spill, sizeof spill, "%s/.%s.rank%d.lsw-tmp", cfg->out.path, LSW_H5_FILE, c->rank);
    int sfd = -1;
    size_t nmine = 0, cap = 0;
    uint64_t *sizes = NULL, soff = 0;
    if (!rc && (sfd = open(spill, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        rc = lsw_err_set(errno == ENOSPC ? LSW_E_NOSPACE : LSW_E_IO, "%s: cannot create: %s", spill, strerror(errno));
    for (size_t q = 0; !rc && q < as->npieces; q++) {
        const lsw_piece *pc = &as->pieces[q];
        const lsw_plan_tensor *t = &p->t[pc->tensor];
        if (pc->rank != c->rank)
            continue;
        uint64_t g = granule[pc->tensor];
        size_t cb = (size_t)lsw_h5_chunk_bytes(t->out_dtype, t->ndim, t->shape);
        if (t->op == LSW_OP_TV) /* whole tensor, chunks in order */
            rc = lsw_tv_begin(a->tv, p, t, a->p, a->size);
        for (uint64_t ce0 = pc->e0; !rc && ce0 < pc->e1; ce0 += g) {
            uint64_t ce1 = pc->e1 - ce0 < g ? pc->e1 : ce0 + g;
            size_t n = encode_chunk(p, t, ce0, ce1, cb, &st, a, rs, &rc);
            if (!rc && nmine == cap) {
                uint64_t *ns = realloc(sizes, (cap = cap ? 2 * cap : 1024) * sizeof *sizes);
                if (!ns)
                    rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
                else
                    sizes = ns;
            }
            if (!rc)
                rc = lsw_pwrite_full(sfd, st.enc, n, soff, spill);
            if (!rc) {
                sizes[nmine++] = n;
                soff += n;
            }
            lsw_progress_add(pr, (ce1 - ce0) * lsw_dtype_size(t->out_dtype), ce1 == t->numel ? 1 : 0);
        }
    }
    if (sfd >= 0 && close(sfd) != 0 && !rc)
        rc = lsw_err_set(LSW_E_IO, "%s: close failed: %s", spill, strerror(errno));
    rc = lsw_agree(c, rc);
    /* phase 2: every chunk's size at rank 0 */
    int *counts = NULL, *displs = NULL;
    uint64_t *all = NULL;
    int mine = (int)nmine, total = 0;
    if (!rc) {
        if (c->rank == 0 && (!(counts = calloc((size_t)c->size, sizeof *counts)) ||
                             !(displs = calloc((size_t)c->size, sizeof *displs))))
            rc = LSW_E_NOMEM;
        rc = lsw_agree(c, rc ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0);
    }
    if (!rc) {
        MPI_Gather(&mine, 1, MPI_INT, counts, 1, MPI_INT, 0, c->comm);
        for (int r = 0; c->rank == 0 && r < c->size; r++) {
            displs[r] = total;
            total += counts[r];
        }
        if (c->rank == 0 && !(all = malloc(((size_t)total + 1) * sizeof *all)))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        rc = lsw_agree(c, rc);
    }
    if (!rc)
        MPI_Gatherv(sizes, mine, MPI_UINT64_T, all, counts, displs, MPI_UINT64_T, 0, c->comm);
    /* phase 3: rank 0 stores every chunk in plan order */
    if (!rc && c->rank == 0) {
        int *fds = calloc((size_t)c->size, sizeof *fds);
        uint64_t *off = calloc((size_t)c->size, sizeof *off);
        size_t *next = calloc((size_t)c->size, sizeof *next);
        char *buf = malloc(st.enc_cap);
        if (!fds || !off || !next || !buf)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (int r = 0; fds && r < c->size; r++)
            fds[r] = -1;
        for (int r = 0; !rc && r < c->size; r++) {
            char sp[4096];
            snprintf(sp, sizeof sp, "%s/.%s.rank%d.lsw-tmp", cfg->out.path, LSW_H5_FILE, r);
            if ((fds[r] = open(sp, O_RDONLY | O_CLOEXEC)) < 0)
                rc = lsw_err_set(LSW_E_IO, "%s: cannot open: %s", sp, strerror(errno));
        }
        for (size_t q = 0; !rc && q < as->npieces; q++) {
            const lsw_piece *pc = &as->pieces[q];
            const lsw_plan_tensor *t = &p->t[pc->tensor];
            uint64_t g = granule[pc->tensor], rpc = lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
            int r = pc->rank;
            for (uint64_t ce0 = pc->e0; !rc && ce0 < pc->e1; ce0 += g) {
                if (next[r] >= (size_t)counts[r]) {
                    rc = lsw_err_set(LSW_E_INTERNAL, "rank %d encoded fewer chunks than its pieces hold", r);
                    break;
                }
                uint64_t n = all[displs[r] + (int)next[r]++];
                if (n > st.enc_cap) {
                    rc = lsw_err_set(LSW_E_INTERNAL, "chunk of %llu bytes from rank %d exceeds the bound", (unsigned long long)n, r);
                    break;
                }
                rc = lsw_pread_full(fds[r], buf, (size_t)n, off[r], "spill file");
                if (!rc)
                    rc = lsw_h5_write_chunk(st.w, pc->tensor, (ce0 / g) * rpc, buf, (size_t)n);
                off[r] += n;
                st.compressed += n;
            }
        }
        for (int r = 0; fds && r < c->size; r++)
            if (fds[r] >= 0)
                close(fds[r]);
        free(fds);
        free(off);
        free(next);
        free(buf);
    }
    free(counts);
    free(displs);
    free(all);
    free(sizes);
    rc = lsw_agree(c, rc);
    unlink(spill);
    /* rank 0: close, checksum, make durable, rename */
    if (c->rank == 0 && st.w) {
        if (rc) {
            lsw_h5_abort(st.w);
        } else {
            rc = lsw_h5_close(st.w);
            uint64_t size = 0;
            uint32_t crc = 0;
            for (uint64_t off = 0; !rc;) {
                ssize_t r = pread(fd, a->p, a->size, (off_t)off);
                if (r < 0)
                    rc = lsw_err_set(LSW_E_IO, "%s: cannot read back: %s", tp, strerror(errno));
                if (r <= 0)
                    break;
                crc = lsw_crc32c(crc, a->p, (size_t)r);
                off += (uint64_t)r;
                size = off;
            }
            if (!rc) {
                rc = lsw_outdir_tmp_commit(od, LSW_H5_FILE, fd, size, crc);
                fd = -1;
            }
        }
    }
    if (c->rank == 0 && rc && fd >= 0)
        lsw_outdir_tmp_abort(od, LSW_H5_FILE, fd);
    rc = lsw_agree(c, rc);
    *compressed = st.compressed;
    free(st.raw);
    free(st.scratch);
    free(st.enc);
    free(tp);
    free(granule);
    lsw_assignment_free(as);
    return rc;
}
#endif

/* Rank 0 writes the run summary (per-phase times, bytes, per-rank spread).
 * Collective over c->comm (gathers the ranks' counters). */
static int write_summary(const lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c, const rank_stats *rs,
                         const double *phase, size_t reused, uint64_t compressed)
{
    double mine[4] = {rs->busy, rs->wait, (double)rs->bytes_read, (double)rs->bytes_written};
    double mn[4], mx[4], sum[4];
    MPI_Reduce(mine, mn, 4, MPI_DOUBLE, MPI_MIN, 0, c->comm);
    MPI_Reduce(mine, mx, 4, MPI_DOUBLE, MPI_MAX, 0, c->comm);
    MPI_Reduce(mine, sum, 4, MPI_DOUBLE, MPI_SUM, 0, c->comm);
    int rc = 0;
    if (c->rank == 0) {
        lsw_strbuf b = {0};
        lsw_sb_str(&b, "{\n  \"command\": \"merge\",\n  \"output\": ");
        lsw_sb_json_string(&b, p->cfg->out.path);
        lsw_sb_printf(&b, ",\n  \"format\": \"%s\",\n  \"ranks\": %d,\n  \"tensors\": %zu,\n  \"shards\": %zu,\n"
                          "  \"shards_reused\": %zu,\n  \"output_bytes\": %" PRIu64 ",\n",
                      p->cfg->out.format == LSW_FMT_HDF5 ? "hdf5" : "safetensors", c->size, p->n, p->nshards, reused,
                      p->total_bytes);
        lsw_sb_printf(&b, "  \"phases_s\": {\"magnitude_weights\": %.6f, \"tensors\": %.6f, \"commit\": %.6f, \"total\": %.6f},\n",
                      phase[0], phase[1], phase[2], phase[3]);
        if (p->cfg->out.format == LSW_FMT_HDF5)
            lsw_sb_printf(&b, "  \"compressed_bytes\": %" PRIu64 ",\n  \"compression_ratio\": %.6f,\n", compressed,
                          p->total_bytes ? (double)compressed / (double)p->total_bytes : 0.0);
        lsw_sb_printf(&b, "  \"bytes_read\": %.0f,\n  \"bytes_written\": %.0f,\n  \"gb_per_s\": %.6f,\n", sum[2], sum[3],
                      phase[3] > 0 ? (double)p->total_bytes / phase[3] / 1e9 : 0.0);
        static const char *const names[4] = {"busy_s", "wait_s", "bytes_read", "bytes_written"};
        lsw_sb_str(&b, "  \"per_rank\": {");
        for (int i = 0; i < 4; i++)
            lsw_sb_printf(&b, "%s\"%s\": {\"min\": %.6f, \"max\": %.6f}", i ? ", " : "", names[i], mn[i], mx[i]);
        lsw_sb_str(&b, "}\n}\n");
        rc = lsw_sb_failed(&b) ? lsw_err_set(LSW_E_NOMEM, "out of memory")
                               : lsw_write_path_atomic(o->summary, b.p, b.len);
        lsw_sb_free(&b);
    }
    return lsw_agree(c, rc);
}

static int nothing_to_do(const lsw_config *cfg, const lsw_run_opts *o, const lsw_comm *c)
{
    if (c->rank == 0 && !o->quiet)
        fprintf(stderr, "layerswap merge: %s is already complete for this config and these inputs; nothing to do\n",
                cfg->out.path);
    return 0;
}

int lsw_execute_merge(lsw_plan *p, const lsw_run_opts *o, const lsw_comm *c)
{
    const lsw_config *cfg = p->cfg;
    double t0 = lsw_now(), phase[4] = {0};
    rank_stats rs = {0};
    /* a finished output needs nothing, not even the magnitude pre-pass */
    int done = c->rank == 0 && !o->overwrite && lsw_outdir_complete(cfg->out.path, p->hash);
    if (c->size > 1)
        MPI_Bcast(&done, 1, MPI_INT, 0, c->comm);
    if (done)
        return nothing_to_do(cfg, o, c);
    /* issue 10: the folder's owner before any work (rank 0 holds it to the end) */
    int rc = lsw_agree(c, c->rank == 0 ? lsw_lock_dir(cfg->out.path, "merge") : 0);
    if (rc)
        return rc;
    rc = lsw_resolve_magnitude(p, o, c);
    phase[0] = lsw_now() - t0;
    if (rc)
        return rc;
    lsw_outdir *od = NULL;
    lsw_out_state st = LSW_OUT_FRESH;
    if (c->rank == 0)
        rc = open_outdir(p, o, &od, &st);
    if (c->rank == 0 && !rc && st != LSW_OUT_COMPLETE)
        rc = lsw_plan_check_space(p, od); /* issue 10: room for what is left, before any data */
    rc = lsw_agree(c, rc);
    if (rc) {
        lsw_outdir_free(od);
        return rc;
    }
    int sti = (int)st;
    if (c->size > 1)
        MPI_Bcast(&sti, 1, MPI_INT, 0, c->comm);
    st = (lsw_out_state)sti;
    if (st == LSW_OUT_COMPLETE) {
        lsw_outdir_free(od);
        return nothing_to_do(cfg, o, c);
    }
    int h5 = cfg->out.format == LSW_FMT_HDF5;
    lsw_assignment *as = NULL;
    lsw_tv *tv = NULL;
    if (cfg->method == LSW_METHOD_TASKVEC)
        rc = lsw_tv_create(cfg, &tv);
    if (!h5 && !rc) {
        uint64_t *g = piece_granules(p, NULL);
        rc = g ? lsw_assign(p, c->size, g, 0, &as) : lsw_err_set(LSW_E_NOMEM, "out of memory");
        free(g);
    }
    /* buffers: the budget, or less if this rank's largest piece needs less;
     * per-stream blocks are capped (LSW_BLOCK_BYTES), so k + 1 of them at most */
    uint64_t need = 64;
    for (size_t i = 0; !rc && i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t w = (source_bytes(t) + lsw_dtype_size(t->out_dtype)) * t->numel;
        need = w > need ? w : need;
    }
    uint64_t cap = 65 * LSW_BLOCK_BYTES;
    need = need < cap ? need : cap;
    arena a = {NULL, (size_t)(need < o->mem ? need : o->mem), tv};
    if (!rc && !(a.p = malloc(a.size)))
        rc = lsw_err_set(LSW_E_NOMEM, "cannot allocate %zu bytes of buffers (--mem)", a.size);
    rc = lsw_agree(c, rc);
    if (!rc && tv)
        rc = lsw_tv_global(tv, p, c, a.p, a.size);
    lsw_progress pr;
    lsw_progress_start(&pr, "merge", c->rank == 0 ? o->progress : 0, p->total_bytes, p->n);
    lsw_progress_set_scale(&pr, c->size);
    size_t reused = 0;
    uint64_t compressed = 0;
    double t1 = lsw_now();
    if (h5 && !rc) {
#ifdef LSW_HAVE_HDF5
        rc = run_hdf5(p, o, c, od, &a, &pr, &rs, &compressed);
#else
        rc = lsw_err_set(LSW_E_INTERNAL, "HDF5 output requested from a build without HDF5");
#endif
    }
    for (size_t gi = 0; !h5 && !rc && gi < as->ngroups; gi++)
        rc = run_group(p, as, &as->groups[gi], od, st, c, &a, &pr, &reused, &rs);
    phase[1] = lsw_now() - t1;
    t1 = lsw_now();
    free(a.p);
    lsw_assignment_free(as);
    lsw_tv_free(tv);
    if (c->rank == 0) {
        if (!rc)
            rc = lsw_copy_model_files(lsw_ckpt_folder(p->models[cfg->first_model]), od, cfg->out.dtype);
        if (!rc && !h5 && p->nshards > 1)
            rc = lsw_write_index(p, od);
        if (!rc) {
            char *extra = lsw_manifest_extra(p);
            rc = extra ? lsw_outdir_finish(od, extra) : lsw_err_set(LSW_E_NOMEM, "out of memory");
            free(extra);
        }
    }
    lsw_outdir_free(od);
    rc = lsw_agree(c, rc);
    if (rc)
        return rc;
    phase[2] = lsw_now() - t1;
    phase[3] = lsw_now() - t0;
    if (o->summary && (rc = write_summary(p, o, c, &rs, phase, reused, compressed)))
        return rc;
    if (c->rank == 0) {
        char detail[256], where[64];
        if (h5)
            snprintf(where, sizeof where, "model.h5 (compressed to %.3f)",
                     p->total_bytes ? (double)compressed / (double)p->total_bytes : 0.0);
        else
            snprintf(where, sizeof where, "%zu shard(s)", p->nshards);
        snprintf(detail, sizeof detail, "%zu tensors, %.3f GB in %s on %d rank(s)%s -> %s", p->n,
                 (double)p->total_bytes / 1e9, where, c->size, reused ? " (resumed)" : "", cfg->out.path);
        lsw_progress_end(&pr, detail, o->quiet);
    }
    return 0;
}
