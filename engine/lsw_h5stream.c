#include "lsw_h5stream.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_h5layout.h"
#include "lsw_hdf5.h"
#include "lsw_io.h"
#include "lsw_zstd_filter.h"

#define H5_NAME "model.h5"
#define TAG_CHUNK 71
#define TAG_END 72
#define TAG_CANCEL 73
#define ENCODER_NICE 10 /* added to the encoder threads' nice value (at most 19) */

enum { J_FREE, J_FILLED, J_QUEUED, J_BUSY, J_DONE, J_SENDING };

typedef struct job {
    int state;
    char *raw, *scratch, *enc;
    size_t valid, full, es, nenc;
    size_t tensor, comp;
    uint64_t row0;
    MPI_Request req;
} job;

typedef struct stream {
    const lsw_h5stream_args *a;
    const lsw_comm *c;
    const lsw_plan *p0;
    int level, shuffle;
    /* the ring: jobs [head, head + used) in production order */
    job *jobs;
    size_t R, head, used;
    size_t chunk_cap, enc_cap;
    /* encoder threads */
    int T, quit;
    pthread_t *th;
    pthread_mutex_t mu;
    pthread_cond_t cv_work, cv_done;
    /* production cursor over this rank's pieces */
    size_t q;
    uint64_t ce;
    int in_piece, produced_all;
    int rc;                   /* this rank's own failure */
    const void **out;         /* worker outputs of one block */
    lsw_h5stream_result *res;
} stream;

static int nomem(void) { return lsw_err_set(LSW_E_NOMEM, "out of memory"); }

/* ---- threads ---------------------------------------------------------------- */

static void encode(stream *s, job *j)
{
    j->nenc = lsw_chunk_encode_padded(j->raw, j->valid, j->full, j->es, s->shuffle, s->level, j->enc, s->enc_cap,
                                      j->scratch);
}

static void *encoder(void *arg)
{
    stream *s = arg;
    /* Below the thread that reads, computes and stores: when the node has no
     * core to spare, the encoders wait rather than the producer, which feeds
     * them (on 2 cores an HDF5 merge ran 8 % faster, paired).  Linux gives
     * each thread its own nice value; elsewhere this changes nothing. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int nice_now = getpriority(PRIO_PROCESS, tid);
    if (errno == 0)
        (void)setpriority(PRIO_PROCESS, tid, nice_now + ENCODER_NICE > 19 ? 19 : nice_now + ENCODER_NICE);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        job *j = NULL;
        for (size_t x = 0; x < s->used && !j; x++)
            if (s->jobs[(s->head + x) % s->R].state == J_QUEUED)
                j = &s->jobs[(s->head + x) % s->R];
        if (!j) {
            if (s->quit)
                break;
            pthread_cond_wait(&s->cv_work, &s->mu);
            continue;
        }
        j->state = J_BUSY;
        pthread_mutex_unlock(&s->mu);
        encode(s, j);
        pthread_mutex_lock(&s->mu);
        j->state = J_DONE;
        pthread_cond_broadcast(&s->cv_done);
    }
    pthread_mutex_unlock(&s->mu);
    lsw_zstd_thread_release();
    return NULL;
}

static int ring_create(stream *s, size_t max_comps)
{
    const lsw_plan *p = s->p0;
    for (size_t i = 0; i < p->n; i++) {
        const lsw_plan_tensor *t = &p->t[i];
        uint64_t cb = lsw_h5_chunk_bytes(t->out_dtype, t->ndim, t->shape);
        s->chunk_cap = cb > s->chunk_cap ? (size_t)cb : s->chunk_cap;
    }
    s->chunk_cap = s->chunk_cap ? s->chunk_cap : 1;
    s->enc_cap = lsw_chunk_bound(s->chunk_cap);
    /* enough slots for every encoder to work while a chunk of every comp waits, within the budget */
    size_t per = 2 * s->chunk_cap + s->enc_cap;
    size_t want = 2 * (size_t)(s->T ? s->T : 1) + max_comps + 2, fit = (size_t)(s->a->mem / 4 / per);
    s->R = want < fit ? want : fit;
    if (s->R < max_comps + 1)
        s->R = max_comps + 1;
    s->jobs = calloc(s->R, sizeof *s->jobs);
    if (!s->jobs)
        return nomem();
    for (size_t x = 0; x < s->R; x++) {
        job *j = &s->jobs[x];
        if (!(j->raw = malloc(s->chunk_cap)) || !(j->scratch = malloc(s->chunk_cap)) || !(j->enc = malloc(s->enc_cap)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory for %zu chunk buffers of %zu bytes", s->R, per);
    }
    return 0;
}

static int threads_start(stream *s)
{
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv_work, NULL);
    pthread_cond_init(&s->cv_done, NULL);
    if (!s->T)
        return 0;
    s->th = calloc((size_t)s->T, sizeof *s->th);
    if (!s->th)
        return nomem();
    for (int t = 0; t < s->T; t++)
        if (pthread_create(&s->th[t], NULL, encoder, s) != 0) {
            s->T = t;
            return lsw_err_set(LSW_E_INTERNAL, "cannot start encoder thread %d", t);
        }
    return 0;
}

static void stream_free(stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->quit = 1;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    for (int t = 0; t < s->T; t++)
        pthread_join(s->th[t], NULL);
    free(s->th);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv_work);
    pthread_cond_destroy(&s->cv_done);
    for (size_t x = 0; s->jobs && x < s->R; x++) {
        free(s->jobs[x].raw);
        free(s->jobs[x].scratch);
        free(s->jobs[x].enc);
    }
    free(s->jobs);
    free(s->out);
}

/* ---- producing this rank's chunks ------------------------------------------- */

static uint64_t granule(const lsw_plan_tensor *t)
{
    uint64_t rows = lsw_h5_rows(t->ndim, t->shape), row = rows && t->numel ? t->numel / rows : 1;
    uint64_t rpc = lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
    return (rpc ? rpc : 1) * (row ? row : 1);
}

/* Move the cursor to the next own piece with work; 0 when there is none. */
static int next_piece(stream *s)
{
    const lsw_assignment *as = s->a->as;
    while (!s->in_piece) {
        if (s->q >= as->npieces) {
            s->produced_all = 1;
            return 0;
        }
        const lsw_piece *pc = &as->pieces[s->q];
        if (pc->rank != s->c->rank || pc->e1 == pc->e0) {
            s->q++;
            continue;
        }
        if ((s->rc = lsw_worker_begin(s->a->wk, pc->tensor)))
            return 0;
        if (!lsw_worker_ncomp(s->a->wk)) {
            s->q++;
            continue;
        }
        s->ce = pc->e0;
        s->in_piece = 1;
    }
    return 1;
}

/* Compute the next own chunk (every comp) into free slots and queue it for
 * encoding.  Returns 1 if it produced one. */
static int produce(stream *s)
{
    if (s->rc || s->produced_all || !next_piece(s))
        return 0;
    lsw_worker *wk = s->a->wk;
    size_t nc = lsw_worker_ncomp(wk);
    if (s->R - s->used < nc)
        return 0;
    const lsw_piece *pc = &s->a->as->pieces[s->q];
    const lsw_plan_tensor *t0 = &s->p0->t[pc->tensor];
    uint64_t g = granule(t0), ce1 = pc->e1 - s->ce < g ? pc->e1 : s->ce + g;
    size_t B = lsw_worker_block_elems(wk), first = (s->head + s->used) % s->R;
    for (uint64_t e = s->ce; e < ce1 && !s->rc;) {
        size_t n = ce1 - e < B ? (size_t)(ce1 - e) : B;
        s->rc = lsw_worker_block(wk, e, n, s->out);
        for (size_t cc = 0; cc < nc && !s->rc; cc++) {
            const lsw_plan_tensor *t = &s->a->plans[lsw_worker_rep(wk)[cc]]->t[pc->tensor];
            size_t es = lsw_dtype_size(t->out_dtype);
            memcpy(s->jobs[(first + cc) % s->R].raw + (e - s->ce) * es, s->out[cc], n * es);
        }
        e += n;
    }
    if (s->rc)
        return 0;
    pthread_mutex_lock(&s->mu);
    for (size_t cc = 0; cc < nc; cc++) {
        const lsw_plan_tensor *t = &s->a->plans[lsw_worker_rep(wk)[cc]]->t[pc->tensor];
        job *j = &s->jobs[(first + cc) % s->R];
        j->es = lsw_dtype_size(t->out_dtype);
        j->valid = (size_t)(ce1 - s->ce) * j->es;
        j->full = (size_t)lsw_h5_chunk_bytes(t->out_dtype, t->ndim, t->shape);
        j->tensor = pc->tensor;
        j->comp = cc;
        j->row0 = (s->ce / g) * lsw_h5_rows_per_chunk(t->out_dtype, t->ndim, t->shape);
        j->state = s->T ? J_QUEUED : J_FILLED;
    }
    s->used += nc;
    pthread_cond_broadcast(&s->cv_work);
    pthread_mutex_unlock(&s->mu);
    for (size_t cc = 0; !s->T && cc < nc; cc++) { /* no threads: encode here */
        job *j = &s->jobs[(first + cc) % s->R];
        encode(s, j);
        j->state = J_DONE;
    }
    s->ce = ce1;
    if (s->ce >= pc->e1) {
        s->in_piece = 0;
        s->q++;
    }
    return 1;
}

/* Wait until the oldest job is encoded, computing ahead meanwhile. */
static job *head_done(stream *s)
{
    while (!s->used && produce(s))
        ;
    if (!s->used)
        return NULL;
    job *j = &s->jobs[s->head];
    for (;;) {
        pthread_mutex_lock(&s->mu);
        int st = j->state;
        pthread_mutex_unlock(&s->mu);
        if (st == J_DONE)
            return j;
        if (!produce(s)) {
            pthread_mutex_lock(&s->mu);
            while (j->state != J_DONE)
                pthread_cond_wait(&s->cv_done, &s->mu);
            pthread_mutex_unlock(&s->mu);
        }
    }
}

static void release_head(stream *s)
{
    pthread_mutex_lock(&s->mu);
    s->jobs[s->head].state = J_FREE;
    s->head = (s->head + 1) % s->R;
    s->used--;
    pthread_mutex_unlock(&s->mu);
}

/* Wait for the encoders to finish what is queued (after a failure). */
static void quiesce(stream *s)
{
    pthread_mutex_lock(&s->mu);
    for (size_t x = 0; x < s->used; x++) {
        job *j = &s->jobs[(s->head + x) % s->R];
        while (j->state == J_QUEUED || j->state == J_BUSY)
            pthread_cond_wait(&s->cv_done, &s->mu);
    }
    pthread_mutex_unlock(&s->mu);
}

static void nap(unsigned *us)
{
    struct timespec ts = {0, (long)*us * 1000L};
    nanosleep(&ts, NULL);
    *us = *us < 1000 ? *us * 2 : 1000;
}

/* ---- ranks other than 0: send own chunks in order ---------------------------- */

static int is_chunk_failure(const job *j) { return j->state == J_DONE && j->nenc == 0; }

static void run_sender(stream *s)
{
    MPI_Request cancel;
    char dummy;
    MPI_Irecv(&dummy, 0, MPI_BYTE, 0, TAG_CANCEL, s->c->comm, &cancel);
    int cancelled = 0;
    size_t sent_from = s->head; /* jobs [head, sent_from) are SENDING, in order */
    size_t nsending = 0;
    unsigned us = 20;
    for (;;) {
        int progressed = 0, flag = 0;
        if (!cancelled) {
            MPI_Test(&cancel, &flag, MPI_STATUS_IGNORE);
            cancelled = flag;
        }
        /* completed sends free their slots, oldest first */
        while (nsending) {
            MPI_Test(&s->jobs[s->head].req, &flag, MPI_STATUS_IGNORE);
            if (!flag)
                break;
            release_head(s);
            nsending--;
            progressed = 1;
        }
        /* encoded jobs leave in order */
        while (!s->rc && !cancelled && nsending < s->used) {
            job *j = &s->jobs[sent_from];
            pthread_mutex_lock(&s->mu);
            int st = j->state;
            pthread_mutex_unlock(&s->mu);
            if (st != J_DONE)
                break;
            if (is_chunk_failure(j)) {
                s->rc = lsw_err_set(LSW_E_INTERNAL, "tensor '%s': chunk encoding failed", s->p0->t[j->tensor].name);
                break;
            }
            j->state = J_SENDING;
            lsw_io_count_write(j->nenc); /* a chunk sent to be stored counts as written */
            MPI_Isend(j->enc, (int)j->nenc, MPI_BYTE, 0, TAG_CHUNK, s->c->comm, &j->req);
            sent_from = (sent_from + 1) % s->R;
            nsending++;
            progressed = 1;
        }
        if (s->rc || cancelled) {
            if (!nsending)
                break;
        } else if (s->produced_all && !s->used) {
            break;
        } else {
            progressed |= produce(s);
        }
        if (progressed)
            us = 20;
        else
            nap(&us);
    }
    quiesce(s);
    int result = s->rc;
    MPI_Send(&result, 1, MPI_INT, 0, TAG_END, s->c->comm);
    /* a CANCEL sent after our END still matches the posted receive */
    int flag = 0;
    MPI_Test(&cancel, &flag, MPI_STATUS_IGNORE);
    if (!flag) {
        MPI_Cancel(&cancel);
        MPI_Wait(&cancel, MPI_STATUS_IGNORE);
    }
}

/* ---- rank 0: store every chunk in plan order --------------------------------- */

typedef struct writer_set {
    lsw_h5_writer **w;        /* per output (NULL: not written) */
    int *fd;                  /* per output: the temporary, for the checksum and the rename */
    char **tmp;
    uint32_t *rep;            /* scratch: comps of a tensor */
    int32_t *of;
    int *ended;               /* per rank: END received */
    char *rbuf;
    uint64_t *since_kick;     /* per output: bytes stored since its last writeback kick */
} writer_set;

/* Start writeback of a model.h5 every this many stored bytes, so the disk
 * works while chunks are compressed and the commit's fsync is short. */
#define H5_KICK_BYTES (32ULL << 20)

static int store(stream *s, writer_set *ws, size_t i, size_t comp, uint64_t row0, const void *enc, size_t n,
                 size_t raw_bytes)
{
    lsw_work_comps(s->a->w, i, ws->rep, ws->of);
    int rc = 0;
    for (size_t k = 0; k < s->a->E && !rc; k++) {
        if (ws->of[k] != (int32_t)comp)
            continue;
        lsw_io_count_write(n); /* the fault hooks count stored chunks as written */
        rc = lsw_h5_write_chunk(ws->w[k], i, row0, enc, n);
        if ((ws->since_kick[k] += n) >= H5_KICK_BYTES) {
            lsw_writeback(ws->fd[k], 0, 0); /* to the end of the file: HDF5 appends chunks */
            ws->since_kick[k] = 0;
        }
        s->res->compressed_bytes += n;
        s->res->bytes_written += raw_bytes;
        lsw_progress_add(s->a->pr, raw_bytes, 0);
    }
    return rc;
}

/* The next message from rank r: a chunk (stored) or its END. */
static int take_remote(stream *s, writer_set *ws, int r, size_t i, size_t comp, uint64_t row0, size_t raw_bytes,
                       int *remote_failed)
{
    MPI_Status st;
    int flag = 0;
    unsigned us = 20;
    double t0 = lsw_now();
    while (!flag) {
        MPI_Iprobe(r, MPI_ANY_TAG, s->c->comm, &flag, &st);
        if (!flag && !produce(s))
            nap(&us);
    }
    s->res->wait_s += lsw_now() - t0;
    if (st.MPI_TAG == TAG_END) {
        int result = 0;
        MPI_Recv(&result, 1, MPI_INT, r, TAG_END, s->c->comm, MPI_STATUS_IGNORE);
        ws->ended[r] = 1;
        *remote_failed = 1;
        if (!result) /* ended early without a failure of its own: a broken invariant */
            s->rc = lsw_err_set(LSW_E_INTERNAL, "rank %d ended its chunk stream early", r);
        return 0;
    }
    int n = 0;
    MPI_Get_count(&st, MPI_BYTE, &n);
    if ((size_t)n > s->enc_cap)
        return lsw_err_set(LSW_E_INTERNAL, "a chunk of %d bytes from rank %d exceeds the bound", n, r);
    MPI_Recv(ws->rbuf, n, MPI_BYTE, r, TAG_CHUNK, s->c->comm, MPI_STATUS_IGNORE);
    return store(s, ws, i, comp, row0, ws->rbuf, (size_t)n, raw_bytes);
}

/* Every chunk of every piece, in plan order.  Returns 1 if a remote rank failed. */
static int write_all(stream *s, writer_set *ws)
{
    const lsw_assignment *as = s->a->as;
    int remote_failed = 0;
    for (size_t q = 0; q < as->npieces && !s->rc && !remote_failed; q++) {
        const lsw_piece *pc = &as->pieces[q];
        const lsw_plan_tensor *t = &s->p0->t[pc->tensor];
        size_t nc = lsw_work_comps(s->a->w, pc->tensor, ws->rep, ws->of);
        uint64_t g = granule(t);
        for (uint64_t ce = pc->e0; ce < pc->e1 && !s->rc && !remote_failed; ce = pc->e1 - ce < g ? pc->e1 : ce + g) {
            uint64_t ce1 = pc->e1 - ce < g ? pc->e1 : ce + g;
            for (size_t cc = 0; cc < nc && !s->rc && !remote_failed; cc++) {
                const lsw_plan_tensor *tc = &s->a->plans[ws->rep[cc]]->t[pc->tensor];
                size_t raw = (size_t)(ce1 - ce) * lsw_dtype_size(tc->out_dtype);
                uint64_t row0 = (ce / g) * lsw_h5_rows_per_chunk(tc->out_dtype, tc->ndim, tc->shape);
                if (pc->rank != 0) {
                    s->rc = take_remote(s, ws, pc->rank, pc->tensor, cc, row0, raw, &remote_failed);
                    lsw_work_comps(s->a->w, pc->tensor, ws->rep, ws->of);
                    continue;
                }
                job *j = head_done(s);
                if (!j) {
                    s->rc = s->rc ? s->rc : lsw_err_set(LSW_E_INTERNAL, "rank 0 produced fewer chunks than it owns");
                    break;
                }
                if (j->tensor != pc->tensor || j->comp != cc || j->row0 != row0 || is_chunk_failure(j))
                    s->rc = lsw_err_set(LSW_E_INTERNAL, "tensor '%s': chunk out of order or not encoded", t->name);
                else
                    s->rc = store(s, ws, pc->tensor, cc, row0, j->enc, j->nenc, raw);
                release_head(s);
                lsw_work_comps(s->a->w, pc->tensor, ws->rep, ws->of);
            }
        }
        if (pc->e1 == t->numel)
            lsw_progress_add(s->a->pr, 0, 1);
    }
    return remote_failed;
}

/* After a failure: stop the ranks still streaming and take their messages
 * up to their END; on success: take every END. */
static void finish_remotes(stream *s, writer_set *ws, int failed)
{
    char dummy = 0;
    for (int r = 1; failed && r < s->c->size; r++)
        if (!ws->ended[r])
            MPI_Send(&dummy, 0, MPI_BYTE, r, TAG_CANCEL, s->c->comm);
    for (int r = 1; r < s->c->size; r++) {
        while (!ws->ended[r]) {
            MPI_Status st;
            MPI_Probe(r, MPI_ANY_TAG, s->c->comm, &st);
            if (st.MPI_TAG == TAG_END) {
                int result = 0;
                MPI_Recv(&result, 1, MPI_INT, r, TAG_END, s->c->comm, MPI_STATUS_IGNORE);
                ws->ended[r] = 1;
            } else {
                int n = 0;
                MPI_Get_count(&st, MPI_BYTE, &n);
                MPI_Recv(ws->rbuf, n, MPI_BYTE, r, st.MPI_TAG, s->c->comm, MPI_STATUS_IGNORE);
                if (!failed && !s->rc)
                    s->rc = lsw_err_set(LSW_E_INTERNAL, "rank %d sent more chunks than it owns", r);
            }
        }
    }
}

/* Rank 0: create model.h5 of every output written, every dataset in plan order. */
static int create_files(stream *s, writer_set *ws)
{
    int rc = 0;
    char *pt = NULL;
    for (size_t k = 0; k < s->a->E && !rc; k++) {
        if (lsw_work_status(s->a->w, k, 0) != LSW_SH_OWNER)
            continue;
        const lsw_plan *p = s->a->plans[k];
        size_t len = 0;
        FILE *f = open_memstream(&pt, &len);
        if (f) {
            lsw_plan_print(p, f);
            fclose(f);
        }
        size_t n = strlen(p->cfg->out.path) + sizeof H5_NAME + 16;
        if (!(ws->tmp[k] = malloc(n)))
            rc = nomem();
        else
            snprintf(ws->tmp[k], n, "%s/.%s.lsw-tmp", p->cfg->out.path, H5_NAME);
        if (!rc)
            rc = lsw_outdir_tmp_open(s->a->od[k], H5_NAME, &ws->fd[k]);
        if (!rc)
            rc = lsw_h5_create(ws->tmp[k], p->cfg->text, pt ? pt : "", p->cfg->out.zstd_level, p->cfg->out.shuffle,
                               &ws->w[k]);
        for (size_t i = 0; i < p->n && !rc; i++)
            rc = lsw_h5_define(ws->w[k], p->t[i].name, p->t[i].out_dtype, p->t[i].ndim, p->t[i].shape, NULL);
        free(pt);
        pt = NULL;
    }
    return rc;
}

/* Rank 0: close each file, checksum it, make it durable, rename it. */
static int commit_files(stream *s, writer_set *ws, int rc)
{
    size_t bs = 4u << 20;
    char *buf = malloc(bs);
    if (!rc && !buf)
        rc = nomem();
    for (size_t k = 0; k < s->a->E; k++) {
        if (!ws->w[k] && ws->fd[k] < 0)
            continue;
        if (rc) {
            lsw_h5_abort(ws->w[k]);
            lsw_outdir_tmp_abort(s->a->od[k], H5_NAME, ws->fd[k]);
            continue;
        }
        rc = lsw_h5_close(ws->w[k]);
        ws->w[k] = NULL;
        uint64_t size = 0;
        uint32_t crc = 0;
        for (ssize_t r = 1; !rc && r > 0; size += (uint64_t)r) {
            r = pread(ws->fd[k], buf, bs, (off_t)size);
            if (r < 0)
                rc = lsw_err_set(LSW_E_IO, "%s: cannot read back: %s", ws->tmp[k], strerror(errno));
            else
                crc = lsw_crc32c(crc, buf, (size_t)r);
            if (r <= 0)
                break;
        }
        if (!rc)
            rc = lsw_outdir_tmp_commit(s->a->od[k], H5_NAME, ws->fd[k], size, crc);
        else
            lsw_outdir_tmp_abort(s->a->od[k], H5_NAME, ws->fd[k]);
        ws->fd[k] = -1;
        s->res->files_written++;
    }
    free(buf);
    return rc;
}

static int writers_alloc(stream *s, writer_set *ws)
{
    size_t E = s->a->E;
    ws->w = calloc(E, sizeof *ws->w);
    ws->fd = malloc(E * sizeof *ws->fd);
    ws->tmp = calloc(E, sizeof *ws->tmp);
    ws->rep = malloc(E * sizeof *ws->rep);
    ws->of = malloc(E * sizeof *ws->of);
    ws->ended = calloc((size_t)s->c->size, sizeof *ws->ended);
    ws->rbuf = malloc(s->enc_cap);
    ws->since_kick = calloc(E, sizeof *ws->since_kick);
    for (size_t k = 0; ws->fd && k < E; k++)
        ws->fd[k] = -1;
    return ws->w && ws->fd && ws->tmp && ws->rep && ws->of && ws->ended && ws->rbuf && ws->since_kick ? 0 : nomem();
}

static void writers_free(stream *s, writer_set *ws)
{
    for (size_t k = 0; ws->tmp && k < s->a->E; k++)
        free(ws->tmp[k]);
    free(ws->w);
    free(ws->fd);
    free(ws->tmp);
    free(ws->rep);
    free(ws->of);
    free(ws->ended);
    free(ws->rbuf);
    free(ws->since_kick);
}

/* ---- the run ---------------------------------------------------------------- */

int lsw_h5stream_run(const lsw_h5stream_args *a, const lsw_comm *c, lsw_h5stream_result *res)
{
    stream s = {0};
    s.a = a;
    s.c = c;
    s.p0 = a->plans[0];
    s.level = s.p0->cfg->out.zstd_level;
    s.shuffle = s.p0->cfg->out.shuffle;
    s.res = res;
    s.T = a->threads;
    writer_set ws = {0};
    lsw_progress_set_scale(a->pr, 1); /* rank 0 stores every chunk: its count is global */
    int rc = ring_create(&s, a->w->max_comps ? a->w->max_comps : 1);
    if (!rc && !(s.out = malloc((a->w->max_comps + 1) * sizeof *s.out)))
        rc = nomem();
    if (!rc)
        rc = threads_start(&s);
    if (!rc && c->rank == 0 && !(rc = writers_alloc(&s, &ws)))
        rc = create_files(&s, &ws);
    rc = lsw_agree(c, rc);
    double t0 = lsw_now();
    if (!rc) {
        if (c->rank == 0) {
            int remote_failed = write_all(&s, &ws);
            quiesce(&s);
            finish_remotes(&s, &ws, remote_failed || s.rc);
        } else {
            run_sender(&s);
        }
        rc = s.rc;
    }
    res->busy_s += lsw_now() - t0 - res->wait_s;
    rc = lsw_agree(c, rc);
    if (c->rank == 0 && ws.w)
        rc = commit_files(&s, &ws, rc);
    rc = lsw_agree(c, rc);
    if (c->rank == 0)
        writers_free(&s, &ws);
    stream_free(&s);
    return rc;
}
