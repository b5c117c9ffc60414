#include "lsw_exec.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsw_assign.h"
#include "lsw_crc32c.h"
#include "lsw_derived.h"
#include "lsw_error.h"
#include "lsw_h5layout.h"
#include "lsw_h5stream.h"
#include "lsw_io.h"
#include "lsw_jsonw.h"
#include "lsw_modelfiles.h"
#include "lsw_progress.h"
#include "lsw_strbuf.h"
#include "lsw_taskvec.h"
#include "lsw_work.h"
#include "lsw_worker.h"
#include "lsw_writer.h"

#define H5_NAME "model.h5"
/* Most output files one rank keeps open at once while writing its pieces. */
#define OPEN_FILES_MAX 256

/* One run: everything the phases share. */
typedef struct run {
    lsw_plan *const *plans;
    size_t E;
    const unsigned char *done;
    const lsw_run_opts *o;
    const lsw_comm *c;
    int h5, dedup;
    lsw_outdir **od;         /* rank 0: per output (NULL: done) */
    lsw_work *w;
    lsw_assignment *as;
    lsw_worker *wk;
    lsw_writer *wr;          /* write-behind (safetensors) */
    lsw_tv *tv;
    int threads;             /* for the threaded phases (lsw_comm_threads) */
    lsw_progress pr;
    double busy, wait;       /* this rank */
    uint64_t written;        /* bytes this rank wrote */
    lsw_exec_report *rep;
} run;

static int nomem(void) { return lsw_err_set(LSW_E_NOMEM, "out of memory"); }

static int is_h5(const lsw_plan *p) { return p->cfg->out.format == LSW_FMT_HDF5; }

/* ---- which outputs are complete --------------------------------------------- */

int lsw_exec_done(lsw_plan *const *plans, size_t E, int overwrite, const lsw_comm *c, unsigned char *done)
{
    for (size_t k = 0; k < E; k++)
        done[k] = c->rank == 0 && !overwrite && lsw_outdir_complete(plans[k]->cfg->out.path, plans[k]->hash);
    lsw_bcast_bytes(c, done, E, 0);
    return 0;
}

/* ---- preparing the output folders (rank 0) ---------------------------------- */

/* Rank 0: open output k's folder for the names its plan writes. */
static int open_output(run *r, size_t k, lsw_out_state *st)
{
    const lsw_plan *p = r->plans[k];
    size_t nn = 0;
    const char **names = calloc(p->nshards + 16, sizeof *names);
    if (!names)
        return nomem();
    if (r->h5) {
        names[nn++] = H5_NAME;
    } else {
        for (size_t s = 0; s < p->nshards; s++)
            names[nn++] = p->shards[s].name;
        names[nn++] = LSW_INDEX_NAME;
    }
    for (const char *const *m = lsw_model_file_names; *m; m++)
        names[nn++] = *m;
    int rc = lsw_outdir_open(p->cfg->out.path, p->hash, names, nn, r->o->overwrite, &r->od[k], st);
    free(names);
    return rc;
}

/* Rank 0: the status of every shard of every output (lsw_work). */
static int decide_statuses(run *r)
{
    lsw_work *w = r->w;
    lsw_out_state *st = calloc(r->E, sizeof *st);
    uint64_t *keys = calloc(r->E, sizeof *keys);
    int rc = (!st || !keys) ? nomem() : 0;
    for (size_t k = 0; k < r->E && !rc; k++) {
        if (r->done[k]) {
            memset(w->status + k * w->S, LSW_SH_DONE, w->S);
            continue;
        }
        rc = open_output(r, k, &st[k]);
        if (!rc && st[k] == LSW_OUT_COMPLETE) { /* finished by someone else meanwhile */
            memset(w->status + k * w->S, LSW_SH_DONE, w->S);
            r->rep->complete_before++;
        } else if (!rc) { /* room for what this output still has to write, before its first byte */
            rc = lsw_plan_check_space(r->plans[k], r->od[k]);
        }
    }
    for (size_t k = 0; k < r->E && !rc && r->h5; k++) /* one file: kept whole or written whole */
        if (st[k] == LSW_OUT_RESUME && lsw_work_status(w, k, 0) != LSW_SH_DONE && lsw_outdir_reuse(r->od[k], H5_NAME)) {
            memset(w->status + k * w->S, LSW_SH_REUSED, w->S);
            r->rep->files_reused++;
        }
    for (size_t s = 0; s < w->S && !rc; s++)
        for (size_t k = 0; k < r->E; k++) {
            unsigned char *sk = &w->status[k * w->S + s];
            if (*sk != LSW_SH_OWNER || r->h5)
                continue;
            if (st[k] == LSW_OUT_RESUME && lsw_outdir_reuse(r->od[k], r->plans[k]->shards[s].name)) {
                *sk = LSW_SH_REUSED;
                continue;
            }
            if (r->E == 1)
                continue;
            keys[k] = lsw_work_shard_key(r->plans[k], s);
            for (size_t q = 0; q < k; q++) {
                unsigned char sq = w->status[q * w->S + s];
                if ((sq == LSW_SH_OWNER || sq == LSW_SH_REUSED) && keys[q] == keys[k]) {
                    *sk = LSW_SH_DUP;
                    w->dup_of[k * w->S + s] = (uint32_t)q;
                    break;
                }
            }
        }
    free(st);
    free(keys);
    return rc;
}

/* All ranks: statuses from rank 0, then the work and the assignment. */
static int prepare(run *r)
{
    int rc = lsw_work_create(r->plans, r->E, &r->w);
    if (!rc && r->c->rank == 0)
        rc = decide_statuses(r);
    rc = lsw_agree(r->c, rc);
    if (rc)
        return rc;
    lsw_bcast_bytes(r->c, r->w->status, r->E * r->w->S, 0);
    lsw_bcast_bytes(r->c, r->w->dup_of, r->E * r->w->S * sizeof *r->w->dup_of, 0);
    if (r->c->rank != 0)
        for (size_t k = 0; k < r->E; k++)
            r->rep->complete_before += !r->done[k] && r->w->S && lsw_work_status(r->w, k, 0) == LSW_SH_DONE;
    rc = lsw_work_analyse(r->w);
    /* granules: a task-vector tensor whole, an HDF5 chunk of rows, else a row */
    const lsw_plan *p = r->plans[0];
    uint64_t *g = rc ? NULL : malloc((p->n ? p->n : 1) * sizeof *g);
    if (!rc && !g)
        rc = nomem();
    for (size_t i = 0; !rc && i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t rows = lsw_h5_rows(t->ndim, t->shape), row = rows && t->numel ? t->numel / rows : 1;
        g[i] = row ? row : 1;
        if (r->h5) {
            uint64_t rpc = lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
            if (!rpc)
                rc = lsw_err_set(LSW_E_INPUT, "tensor '%s': cannot be stored in HDF5 (a row of 4 GiB or more)", t->name);
            g[i] = rpc * g[i];
        }
        if (t->op == LSW_OP_TV)
            g[i] = t->numel ? t->numel : 1;
    }
    if (!rc)
        rc = lsw_assign(p, r->c->size, g, r->w->cost, r->h5, &r->as);
    free(g);
    return rc;
}

/* ---- safetensors: commit groups --------------------------------------------- */

/* The output files this rank has open while writing a group's pieces. */
typedef struct ofile {
    int fd;
} ofile;

typedef struct group_io {
    size_t s0, ns;          /* shards [s0, s0 + ns) */
    ofile *f;               /* E·ns, fd -1 when closed */
    size_t open;
} group_io;

static char *tmp_name(const lsw_plan *p, size_t s)
{
    size_t n = strlen(p->cfg->out.path) + strlen(p->shards[s].name) + 16;
    char *t = malloc(n);
    if (t)
        snprintf(t, n, "%s/.%s.lsw-tmp", p->cfg->out.path, p->shards[s].name);
    return t;
}

/* Close every open file once the writer is done with it; ranks other than 0
 * make their writes durable first (rank 0's are made durable by the
 * commit's fsync of each file). */
static int close_files(run *r, group_io *io)
{
    int rc = lsw_writer_wait(r->wr, lsw_writer_mark(r->wr));
    for (size_t x = 0; x < r->E * io->ns; x++) {
        ofile *f = &io->f[x];
        if (f->fd < 0)
            continue;
        lsw_writer_forget(r->wr, f->fd);
        if (r->c->rank != 0 && !rc)
            rc = lsw_fsync_fd(f->fd, r->plans[x / io->ns]->shards[io->s0 + x % io->ns].name);
        close(f->fd);
        f->fd = -1;
    }
    io->open = 0;
    return rc;
}

static int file_of(run *r, group_io *io, size_t k, size_t s, ofile **out)
{
    ofile *f = &io->f[k * io->ns + (s - io->s0)];
    int rc = 0;
    if (f->fd < 0) {
        if (io->open >= OPEN_FILES_MAX && (rc = close_files(r, io)))
            return rc;
        char *tp = tmp_name(r->plans[k], s);
        if (!tp)
            return nomem();
        if ((f->fd = open(tp, O_WRONLY | O_CLOEXEC)) < 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot open: %s", tp, strerror(errno));
        else
            io->open++;
        free(tp);
    }
    *out = f;
    return rc;
}

/* Queue the write of comp bytes `buf` (elements [e0, e0 + n) of t) into output k. */
static int write_block(run *r, group_io *io, size_t k, const lsw_plan_tensor *t, uint64_t e0, size_t n, const void *buf)
{
    ofile *f = NULL;
    int rc = file_of(r, io, k, t->shard, &f);
    if (rc)
        return rc;
    size_t es = lsw_dtype_size(t->out_dtype);
    uint64_t bytes = (uint64_t)n * es;
    rc = lsw_writer_write(r->wr, f->fd, buf, bytes, t->offset + e0 * es, r->plans[k]->shards[t->shard].name);
    r->written += bytes;
    lsw_progress_add(&r->pr, bytes, 0);
    return rc;
}

/* Piece q: every comp of its tensor over its range, written to every output
 * of the comp; crc[c] gets the CRC of comp c's bytes.  The writer writes and
 * checksums block b while the worker computes the next ones, in other
 * slots; a slot is reused once the writer is done with its last block. */
static int run_piece(run *r, group_io *io, const lsw_piece *pc, uint32_t *crc)
{
    int rc = lsw_worker_begin(r->wk, pc->tensor);
    size_t nc = lsw_worker_ncomp(r->wk), B = lsw_worker_block_elems(r->wk), D = lsw_worker_depth(r->wk);
    const int32_t *of = lsw_worker_of(r->wk);
    const uint32_t *rep = lsw_worker_rep(r->wk);
    const void **out = malloc((nc ? nc : 1) * sizeof *out);
    uint64_t *marks = calloc(D, sizeof *marks);
    if (!rc && (!out || !marks))
        rc = nomem();
    for (size_t c = 0; c < nc; c++)
        crc[c] = 0;
    size_t b = 0;
    for (uint64_t e0 = pc->e0; e0 < pc->e1 && nc && !rc; b++) {
        size_t n = pc->e1 - e0 < B ? (size_t)(pc->e1 - e0) : B;
        if ((rc = lsw_writer_wait(r->wr, marks[b % D])) || (rc = lsw_worker_block(r->wk, e0, n, out)))
            break;
        for (size_t k = 0; k < r->E && !rc; k++)
            if (of[k] >= 0)
                rc = write_block(r, io, k, &r->plans[k]->t[pc->tensor], e0, n, out[of[k]]);
        for (size_t c = 0; c < nc && !rc; c++)
            rc = lsw_writer_crc(r->wr, &crc[c], out[c], n * lsw_dtype_size(r->plans[rep[c]]->t[pc->tensor].out_dtype));
        marks[b % D] = lsw_writer_mark(r->wr);
        e0 += n;
    }
    int rc2 = lsw_writer_wait(r->wr, lsw_writer_mark(r->wr)); /* the CRCs are final */
    free(out);
    free(marks);
    return rc ? rc : rc2;
}

/* Rank 0: create the temporaries of the group's OWNER shards with their headers. */
static int create_temporaries(run *r, const lsw_group *g)
{
    int rc = 0;
    for (size_t k = 0; k < r->E && !rc; k++)
        for (size_t s = g->shard0; s < g->shard1 && !rc; s++) {
            if (lsw_work_status(r->w, k, s) != LSW_SH_OWNER)
                continue;
            const lsw_plan_shard *ps = &r->plans[k]->shards[s];
            int fd = -1;
            if ((rc = lsw_outdir_tmp_open(r->od[k], ps->name, &fd)))
                break;
            rc = lsw_pwrite_full(fd, ps->header, ps->data_start, 0, ps->name);
            if (!rc && ftruncate(fd, (off_t)ps->size) != 0)
                rc = lsw_err_set(errno == ENOSPC || errno == EFBIG ? LSW_E_NOSPACE : LSW_E_IO,
                                 "%s/.%s.lsw-tmp: cannot size to %" PRIu64 " bytes: %s", r->plans[k]->cfg->out.path,
                                 ps->name, ps->size, strerror(errno));
            close(fd);
        }
    return rc;
}

/* CRC slots of a group: comps of each piece, in piece order. */
static size_t crc_slots(run *r, const lsw_group *g, size_t *first)
{
    uint32_t *rep = malloc(r->E * sizeof *rep);
    int32_t *of = malloc(r->E * sizeof *of);
    size_t n = 0;
    for (size_t q = g->piece0; q < g->piece1; q++) {
        first[q - g->piece0] = n;
        n += rep && of ? lsw_work_comps(r->w, r->as->pieces[q].tensor, rep, of) : 0;
    }
    first[g->piece1 - g->piece0] = n;
    free(rep);
    free(of);
    return n;
}

/* Rank 0: CRC of shard s of output k from its pieces' CRCs, in file order. */
static uint32_t shard_crc(run *r, const lsw_group *g, size_t k, size_t s, const uint32_t *crcs, const size_t *first,
                          uint32_t *rep, int32_t *of)
{
    const lsw_plan_shard *ps = &r->plans[k]->shards[s];
    uint32_t crc = lsw_crc32c(0, ps->header, ps->data_start);
    for (size_t q = g->piece0; q < g->piece1; q++) {
        const lsw_piece *pc = &r->as->pieces[q];
        const lsw_plan_tensor *t = &r->plans[k]->t[pc->tensor];
        if (t->shard != s)
            continue;
        lsw_work_comps(r->w, pc->tensor, rep, of);
        crc = lsw_crc32c_combine(crc, crcs[first[q - g->piece0] + (size_t)of[k]],
                                 (pc->e1 - pc->e0) * lsw_dtype_size(t->out_dtype));
    }
    return crc;
}

/* Rank 0: rename the group's finished shards, then share the duplicates. */
static int commit_group(run *r, const lsw_group *g, const uint32_t *crcs, const size_t *first, int rc)
{
    uint32_t *rep = malloc(r->E * sizeof *rep);
    int32_t *of = malloc(r->E * sizeof *of);
    uint32_t *shard_crcs = calloc(r->E * (g->shard1 - g->shard0), sizeof *shard_crcs);
    if (!rc && (!rep || !of || !shard_crcs))
        rc = nomem();
    for (size_t k = 0; k < r->E; k++)
        for (size_t s = g->shard0; s < g->shard1; s++) {
            const lsw_plan_shard *ps = &r->plans[k]->shards[s];
            lsw_shard_status st = lsw_work_status(r->w, k, s);
            if (st == LSW_SH_REUSED && !rc) {
                r->rep->files_reused++;
                lsw_progress_add(&r->pr, ps->size - ps->data_start, ps->count);
            }
            if (st != LSW_SH_OWNER)
                continue;
            if (rc) {
                lsw_outdir_tmp_abort(r->od[k], ps->name, -1);
                continue;
            }
            uint32_t crc = shard_crc(r, g, k, s, crcs, first, rep, of);
            shard_crcs[k * (g->shard1 - g->shard0) + (s - g->shard0)] = crc;
            char *tp = tmp_name(r->plans[k], s);
            int fd = tp ? open(tp, O_RDWR | O_CLOEXEC) : -1;
            if (fd < 0)
                rc = tp ? lsw_err_set(LSW_E_IO, "%s: cannot open: %s", tp, strerror(errno)) : nomem();
            else
                rc = lsw_outdir_tmp_commit(r->od[k], ps->name, fd, ps->size, crc);
            free(tp);
            r->rep->files_written++;
            r->rep->distinct_bytes += ps->size;
        }
    for (size_t k = 0; k < r->E && !rc; k++)
        for (size_t s = g->shard0; s < g->shard1 && !rc; s++) {
            if (lsw_work_status(r->w, k, s) != LSW_SH_DUP)
                continue;
            size_t q = r->w->dup_of[k * r->w->S + s];
            const lsw_plan_shard *ps = &r->plans[k]->shards[s];
            uint64_t bytes = 0;
            uint32_t crc = 0;
            if (lsw_outdir_recorded(r->od[q], r->plans[q]->shards[s].name, &bytes, &crc) != 0)
                crc = shard_crcs[q * (g->shard1 - g->shard0) + (s - g->shard0)];
            char *src = lsw_path_join(r->plans[q]->cfg->out.path, ps->name);
            lsw_dedup how = (lsw_dedup)r->dedup;
            rc = src ? lsw_outdir_adopt(r->od[k], ps->name, src, (lsw_dedup)r->dedup, ps->size, crc, &how) : nomem();
            free(src);
            r->rep->files_shared++;
            r->rep->shared_as = (int)how > r->rep->shared_as ? (int)how : r->rep->shared_as;
            lsw_progress_add(&r->pr, ps->size - ps->data_start, ps->count);
        }
    free(rep);
    free(of);
    free(shard_crcs);
    return rc;
}

/* One commit group.  Collective. */
static int run_group(run *r, const lsw_group *g)
{
    size_t np = g->piece1 - g->piece0;
    size_t *first = malloc((np + 1) * sizeof *first);
    group_io io = {g->shard0, g->shard1 - g->shard0, NULL, 0};
    io.f = malloc((r->E * io.ns + 1) * sizeof *io.f);
    int rc = (!first || !io.f) ? nomem() : 0;
    for (size_t x = 0; io.f && x < r->E * io.ns; x++)
        io.f[x].fd = -1;
    size_t nslots = rc ? 0 : crc_slots(r, g, first);
    uint32_t *crcs = rc ? NULL : calloc(nslots + 1, sizeof *crcs);
    if (!rc && !crcs)
        rc = nomem();
    if (!rc && r->c->rank == 0)
        rc = create_temporaries(r, g);
    rc = lsw_agree(r->c, rc);
    double t0 = lsw_now();
    for (size_t q = g->piece0; q < g->piece1 && !rc; q++) {
        const lsw_piece *pc = &r->as->pieces[q];
        if (pc->rank != r->c->rank || first[q + 1 - g->piece0] == first[q - g->piece0])
            continue;
        rc = run_piece(r, &io, pc, &crcs[first[q - g->piece0]]);
        if (!rc && pc->e1 == r->plans[0]->t[pc->tensor].numel)
            lsw_progress_add(&r->pr, 0, 1);
    }
    if (io.f) {
        int rc2 = close_files(r, &io);
        rc = rc ? rc : rc2;
    }
    double t1 = lsw_now();
    r->busy += t1 - t0;
    rc = lsw_agree(r->c, rc);
    r->wait += lsw_now() - t1;
    if (!rc && r->c->size > 1) /* each (piece, comp) has one writer: XOR gathers them */
        MPI_Reduce(r->c->rank == 0 ? MPI_IN_PLACE : crcs, crcs, (int)nslots, MPI_UINT32_T, MPI_BXOR, 0, r->c->comm);
    if (r->c->rank == 0)
        rc = commit_group(r, g, crcs, first, rc);
    rc = lsw_agree(r->c, rc);
    uint64_t lb;
    size_t li;
    lsw_progress_local(&r->pr, &lb, &li);
    unsigned long long v[2] = {lb, li};
    if (!rc && r->c->size > 1)
        MPI_Allreduce(MPI_IN_PLACE, v, 2, MPI_UNSIGNED_LONG_LONG, MPI_SUM, r->c->comm);
    lsw_progress_sync(&r->pr, v[0], (size_t)v[1]);
    free(first);
    free(io.f);
    free(crcs);
    return rc;
}

/* ---- finishing each output -------------------------------------------------- */

/* The manifest's members describing the run (after "tool"): the config's
 * hash and every input read, by path (a derived model: its description)
 * and identity. */
static void manifest_extra(const void *arg, lsw_jw *w, lsw_jw_node *root)
{
    const lsw_plan *p = arg;
    const lsw_config *c = p->cfg;
    lsw_jw_hex64(w, root, "config_hash", c->hash);
    lsw_jw_node *in = lsw_jw_obj(w, root, "inputs");
    for (size_t m = 0; m < c->nmodels; m++) {
        if (!p->models[m])
            continue;
        lsw_jw_node *e = lsw_jw_obj(w, in, c->model_names[m]);
        if (c->model_paths[m]) {
            lsw_jw_str(w, e, "path", c->model_paths[m]);
        } else {
            char *what = lsw_derived_describe(c, m);
            lsw_jw_str(w, e, "derived", what ? what : "?");
            free(what);
        }
        lsw_jw_hex64(w, e, "identity", lsw_ckpt_identity(p->models[m]));
    }
}

/* Rank 0: config and tokenizer files, index, manifest of every output run. */
static int finish_outputs(run *r)
{
    int rc = 0;
    for (size_t k = 0; k < r->E && !rc; k++) {
        if (!r->od[k] || (r->w->S && lsw_work_status(r->w, k, 0) == LSW_SH_DONE))
            continue;
        const lsw_plan *p = r->plans[k];
        rc = lsw_copy_model_files(lsw_ckpt_folder(p->models[p->cfg->first_model]), r->od[k], p->cfg->out.dtype,
                                  p->restacked ? p->layer_map : NULL, p->layers);
        if (!rc && !r->h5 && p->nshards > 1)
            rc = lsw_layout_put_index(p->items, p->n, p->shards, r->od[k]);
        if (!rc)
            rc = lsw_outdir_finish(r->od[k], "layerswap " LSW_VERSION, manifest_extra, p);
        r->rep->output_bytes += p->total_bytes;
    }
    return rc;
}

/* ---- the run ---------------------------------------------------------------- */

static void gather_report(run *r)
{
    lsw_exec_report *rep = r->rep;
    double mine[4] = {r->busy, r->wait, (double)lsw_worker_bytes_read(r->wk), (double)r->written};
    double mn[4], mx[4], sum[4];
    MPI_Reduce(mine, mn, 4, MPI_DOUBLE, MPI_MIN, 0, r->c->comm);
    MPI_Reduce(mine, mx, 4, MPI_DOUBLE, MPI_MAX, 0, r->c->comm);
    MPI_Reduce(mine, sum, 4, MPI_DOUBLE, MPI_SUM, 0, r->c->comm);
    unsigned long long u[3] = {lsw_worker_bytes_read(r->wk), r->written, r->tv ? lsw_tv_threads_used(r->tv) : 0};
    unsigned long long umn[3], umx[3], usum[3];
    MPI_Reduce(u, umn, 3, MPI_UNSIGNED_LONG_LONG, MPI_MIN, 0, r->c->comm);
    MPI_Reduce(u, umx, 3, MPI_UNSIGNED_LONG_LONG, MPI_MAX, 0, r->c->comm);
    MPI_Reduce(u, usum, 3, MPI_UNSIGNED_LONG_LONG, MPI_SUM, 0, r->c->comm);
    if (r->c->rank != 0)
        return;
    rep->scan_threads = (int)umx[2];
    for (int j = 0; j < 3; j++) {
        const double *src = j == 0 ? mn : j == 1 ? mx : sum;
        const unsigned long long *us = j == 0 ? umn : j == 1 ? umx : usum;
        rep->busy_s[j] = src[0];
        rep->wait_s[j] = src[1];
        rep->bytes_read[j] = us[0];
        rep->bytes_written[j] = us[1];
    }
}

/* Block slots of the worker when a writer thread writes behind it: the one
 * being computed, the one being written, one queued. */
#define WRITE_BEHIND_DEPTH 3

/* LSW_WRITE_BEHIND=0 writes on the computing thread (same bytes); default 1. */
static int write_behind_threads(void)
{
    const char *e = getenv("LSW_WRITE_BEHIND");
    return e && *e == '0' ? 0 : 1;
}

static int run_tensors(run *r)
{
    int rc = 0;
    const lsw_plan *p0 = r->plans[0];
    if (p0->cfg->method == LSW_METHOD_TASKVEC) {
        size_t sz = (size_t)(r->o->mem < 65 * LSW_BLOCK_BYTES ? r->o->mem : 65 * LSW_BLOCK_BYTES);
        char *scratch = malloc(sz);
        rc = scratch ? lsw_tv_create(p0->cfg, &r->tv) : nomem();
        rc = lsw_agree(r->c, rc);
        if (!rc)
            lsw_tv_set_threads(r->tv, r->threads, r->o->mem);
        if (!rc)
            rc = lsw_tv_global(r->tv, p0, r->c, scratch, sz);
        free(scratch);
    }
    size_t depth = r->h5 ? 1 : WRITE_BEHIND_DEPTH;
    if (!rc)
        rc = lsw_agree(r->c, lsw_worker_create(r->w, r->o->mem, depth, r->tv, &r->wk));
    if (!rc && !r->h5)
        rc = lsw_agree(r->c, lsw_writer_create(write_behind_threads(), 64, &r->wr));
    return rc;
}

int lsw_exec_run(lsw_plan *const *plans, size_t E, const unsigned char *done, const lsw_run_opts *o, int dedup,
                 const char *what, const lsw_comm *c, lsw_exec_report *rep)
{
    memset(rep, 0, sizeof *rep);
    rep->outputs = E;
    rep->ranks = c->size;
    rep->tensors = plans[0]->n;
    for (size_t k = 0; k < E; k++)
        rep->complete_before += done[k];
    run r = {plans, E, done, o, c, is_h5(plans[0]), dedup, NULL, NULL, NULL, NULL, NULL, NULL, 0, {0}, 0, 0, 0, rep};
    r.threads = lsw_comm_threads(c);
    rep->files = r.h5 ? 1 : plans[0]->nshards;
    r.od = calloc(E, sizeof *r.od);
    int rc = r.od ? 0 : nomem();
    rc = lsw_agree(c, rc);
    if (!rc)
        rc = prepare(&r);
    rc = lsw_agree(c, rc);
    if (!rc)
        rc = run_tensors(&r);
    uint64_t total = 0;
    size_t items = 0;
    for (size_t k = 0; k < E; k++)
        if (!done[k]) {
            total += plans[k]->total_bytes;
            items += plans[k]->n;
        }
    lsw_progress_start(&r.pr, what, c->rank == 0 ? o->progress : 0, total, items);
    lsw_progress_set_scale(&r.pr, c->size);
    double t0 = lsw_now();
    if (!rc && r.h5) {
        lsw_h5stream_args a = {plans, E, r.w, r.as, r.wk, o->mem, r.threads, r.od, &r.pr};
        lsw_h5stream_result hr = {0};
        rc = lsw_h5stream_run(&a, c, &hr);
        r.busy += hr.busy_s;
        r.wait += hr.wait_s;
        r.written += hr.bytes_written;
        rep->compressed_bytes = hr.compressed_bytes;
        rep->files_written = hr.files_written;
        rep->distinct_bytes = hr.compressed_bytes;
    }
    for (size_t gi = 0; !rc && !r.h5 && gi < r.as->ngroups; gi++)
        rc = run_group(&r, &r.as->groups[gi]);
    rep->phase_tensors_s = lsw_now() - t0;
    t0 = lsw_now();
    if (!rc && c->rank == 0)
        rc = finish_outputs(&r);
    rc = lsw_agree(c, rc);
    rep->phase_commit_s = lsw_now() - t0;
    lsw_progress_close(&r.pr);
    if (!rc)
        gather_report(&r);
    for (size_t k = 0; r.od && k < E; k++)
        lsw_outdir_free(r.od[k]);
    free(r.od);
    lsw_writer_free(r.wr);
    lsw_worker_free(r.wk);
    lsw_tv_free(r.tv);
    lsw_assignment_free(r.as);
    lsw_work_free(r.w);
    return rc;
}

/* ---- the summary file ------------------------------------------------------- */

static void minmax(lsw_jw *j, lsw_jw_node *parent, const char *key, const double *v, int integer)
{
    lsw_jw_node *o = lsw_jw_obj(j, parent, key);
    if (integer) {
        lsw_jw_u64(j, o, "min", (uint64_t)v[0]);
        lsw_jw_u64(j, o, "max", (uint64_t)v[1]);
    } else {
        lsw_jw_f64(j, o, "min", v[0]);
        lsw_jw_f64(j, o, "max", v[1]);
    }
}

static const char *dedup_name(int d)
{
    return d == LSW_DEDUP_HARDLINK ? "hardlink" : d == LSW_DEDUP_COPY ? "copy" : "reflink";
}

/* Bytes that merging each output on its own would read: every tensor's
 * sources, derived models expanded into the checkpoints they read. */
static uint64_t separate_reads(lsw_plan *const *plans, size_t E)
{
    uint64_t total = 0;
    lsw_srcset set = {0};
    for (size_t k = 0; k < E; k++) {
        lsw_work *w = NULL;
        if (lsw_work_create(plans + k, 1, &w))
            break;
        uint32_t rep = 0;
        for (size_t i = 0; i < plans[k]->n; i++) {
            if (lsw_srcset_build(&set, w, i, &rep, 1))
                break;
            for (size_t q = 0; q < set.n; q++)
                if (set.src[q].kind == LSW_SRC_READ)
                    total += set.src[q].desc->nbytes;
        }
        lsw_work_free(w);
    }
    lsw_srcset_free(&set);
    lsw_err_clear();
    return total;
}

/* Rank 0: the summary's JSON text. */
static int summary_text(const char *command, const char *output, lsw_plan *const *plans, size_t E,
                        const lsw_exec_report *rep, double magnitude_s, double total_s, char **text, size_t *len)
{
    lsw_jw *j = lsw_jw_create();
    lsw_jw_node *r = lsw_jw_root(j);
    int h5 = is_h5(plans[0]);
    uint64_t separate = separate_reads(plans, E);
    lsw_jw_str(j, r, "command", command);
    lsw_jw_str(j, r, "output", output);
    lsw_jw_str(j, r, "format", h5 ? "hdf5" : "safetensors");
    lsw_jw_i64(j, r, "ranks", rep->ranks);
    lsw_jw_u64(j, r, "outputs", rep->outputs);
    lsw_jw_u64(j, r, "outputs_complete_before", rep->complete_before);
    lsw_jw_u64(j, r, "tensors", rep->tensors);
    lsw_jw_u64(j, r, "files_per_output", rep->files);
    lsw_jw_u64(j, r, "files_written", rep->files_written);
    lsw_jw_u64(j, r, "files_reused", rep->files_reused);
    lsw_jw_u64(j, r, "files_shared", rep->files_shared);
    lsw_jw_str(j, r, "shared_as", rep->files_shared ? dedup_name(rep->shared_as) : "none");
    lsw_jw_u64(j, r, "output_bytes", rep->output_bytes);
    lsw_jw_u64(j, r, "distinct_bytes", rep->distinct_bytes);
    lsw_jw_u64(j, r, "bytes_read", rep->bytes_read[2]);
    lsw_jw_u64(j, r, "bytes_read_separately", separate);
    lsw_jw_u64(j, r, "bytes_written", rep->bytes_written[2]);
    if (h5) {
        lsw_jw_node *h = lsw_jw_obj(j, r, "hdf5");
        lsw_jw_u64(j, h, "raw_bytes", rep->output_bytes);
        lsw_jw_u64(j, h, "compressed_bytes", rep->compressed_bytes);
        lsw_jw_f64(j, h, "compressed_over_raw",
                   rep->output_bytes ? (double)rep->compressed_bytes / (double)rep->output_bytes : 0.0);
    }
    lsw_jw_node *ph = lsw_jw_obj(j, r, "phases_s");
    lsw_jw_f64(j, ph, "magnitude_weights", magnitude_s);
    lsw_jw_f64(j, ph, "tensors", rep->phase_tensors_s);
    lsw_jw_f64(j, ph, "commit", rep->phase_commit_s);
    lsw_jw_f64(j, ph, "total", total_s);
    lsw_jw_f64(j, r, "gb_per_s", total_s > 0 ? (double)rep->output_bytes / total_s / 1e9 : 0.0);
    lsw_jw_i64(j, r, "scan_threads", rep->scan_threads);
    lsw_derived_report(plans[0]->cfg, plans[0]->models, j, r);
    lsw_jw_node *pr = lsw_jw_obj(j, r, "per_rank");
    double br[2] = {(double)rep->bytes_read[0], (double)rep->bytes_read[1]};
    double bw[2] = {(double)rep->bytes_written[0], (double)rep->bytes_written[1]};
    minmax(j, pr, "busy_s", rep->busy_s, 0);
    minmax(j, pr, "wait_s", rep->wait_s, 0);
    minmax(j, pr, "bytes_read", br, 1);
    minmax(j, pr, "bytes_written", bw, 1);
    int rc = lsw_jw_print(j, text, len);
    lsw_jw_free(j);
    return rc;
}

int lsw_exec_write_summary(const lsw_run_opts *o, const char *command, const char *output, lsw_plan *const *plans,
                           size_t E, const lsw_exec_report *rep, double magnitude_s, double total_s, const lsw_comm *c)
{
    int rc = 0;
    if (c->rank == 0 && o->summary) {
        char *text = NULL;
        size_t len = 0;
        rc = summary_text(command, output, plans, E, rep, magnitude_s, total_s, &text, &len);
        if (!rc)
            rc = lsw_write_path_atomic(o->summary, text, len);
        free(text);
    }
    return lsw_agree(c, rc);
}
