#include "lsw_stats.h"

#include <limits.h>
#include <mpi.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "lsw_checkpoint.h"
#include "lsw_commit.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_execute.h"
#include "lsw_io.h"
#include "lsw_json.h"
#include "lsw_kernels.h"
#include "lsw_lock.h"
#include "lsw_mav.h"
#include "lsw_progress.h"
#include "lsw_stats_h5.h"
#include "lsw_stats_rows.h"
#include "lsw_stats_summary.h"
#include "lsw_stats_svg.h"
#include "lsw_strbuf.h"

/* doubles per message when gathering row MAVs (int counts stay far from INT_MAX) */
#define GATHER_PIECE ((size_t)1 << 24)
#define TAG_ROWS 7101
/* largest read per model and block: 2 MiB (whole chunks of every dtype) */
#define LSW_STATS_PART_MAX ((uint64_t)2 << 20)
/* files of the output folder besides one heatmap per expert */
#define NFIXED 4

enum { T_START, T_OPEN, T_PASS, T_GATHER, T_SUMMARY, T_H5, T_FILES, T_COMMIT, T_N };

/* Everything one run holds.  rows, bsq and dsq are rank 0's (NULL elsewhere). */
typedef struct stats_run {
    const lsw_stats_opts *o;
    const lsw_comm *c;
    size_t E;
    int shared, log;               /* resolved scale options */
    lsw_ckpt *bc, **xc;
    uint64_t *row_off;             /* per base tensor: first row in rows[e]; UINT64_MAX: no rows */
    uint64_t total_rows, neligible;
    double **rows;                 /* [e][total_rows] */
    double *bsq;                   /* [t]: Σ base² of tensor t */
    double **dsq;                  /* [e][t]: Σ (expert − base)² */
    char *base_abs, **abs;
    lsw_outdir *od;
    lsw_out_state state;
    lsw_progress pr;
    lsw_stats_timing tm;
    double t[T_N];                 /* phase end times (LSW_STATS_TIMES) */
} stats_run;


/* ---- options -------------------------------------------------------------- */

int lsw_stats_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > LSW_STATS_NAME_MAX)
        return 0;
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.') || (n == 5 && !strncmp(s, "cells", 5)))
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
              ch == '_' || ch == '+' || ch == '-'))
            return 0;
    }
    return 1;
}

static int check_opts(const lsw_stats_opts *o)
{
    if (!o->base || !*o->base)
        return lsw_err_set(LSW_E_USAGE, "needs --base DIR");
    if (!o->nexperts)
        return lsw_err_set(LSW_E_USAGE, "needs at least one EXPERT (PATH or NAME=PATH)");
    if (!o->outdir || !*o->outdir)
        return lsw_err_set(LSW_E_USAGE, "-o needs a folder");
    if (o->mem < LSW_MIN_MEM)
        return lsw_err_set(LSW_E_USAGE, "--mem must be at least 1M");
    for (size_t e = 0; e < o->nexperts; e++) {
        if (!lsw_stats_name_ok(o->names[e], strlen(o->names[e])))
            return lsw_err_set(LSW_E_USAGE, "expert name '%s' is not usable (letters, digits, . _ + -, at most %d, "
                               "not 'cells')", o->names[e], LSW_STATS_NAME_MAX);
        if (!o->paths[e] || !*o->paths[e])
            return lsw_err_set(LSW_E_USAGE, "expert '%s': empty path", o->names[e]);
        for (size_t j = 0; j < e; j++)
            if (!strcmp(o->names[j], o->names[e]))
                return lsw_err_set(LSW_E_USAGE, "two experts are named '%s': give them names with NAME=PATH",
                                   o->names[e]);
    }
    for (size_t i = 0; i < o->ntask + o->nlang; i++) {
        size_t x = i < o->ntask ? o->task[i] : o->lang[i - o->ntask];
        if (x >= o->nexperts)
            return lsw_err_set(LSW_E_USAGE, "--task/--language: expert index %zu out of range", x);
        for (size_t j = 0; j < i; j++)
            if ((j < o->ntask ? o->task[j] : o->lang[j - o->ntask]) == x)
                return lsw_err_set(LSW_E_USAGE, "expert '%s' is listed twice in --task / --language", o->names[x]);
    }
    return 0;
}

/* ---- inputs --------------------------------------------------------------- */

/* Every rank opens every checkpoint: all headers validated before any data
 * is read.  Collective over R->c->comm. */
static int open_inputs(stats_run *R)
{
    const lsw_stats_opts *o = R->o;
    int rc = lsw_ckpt_open(o->base, &R->bc);
    for (size_t e = 0; e < R->E && !rc; e++)
        rc = lsw_ckpt_open(o->paths[e], &R->xc[e]);
    /* the output folder must not be an input's: --overwrite there would mix
     * stats files and a manifest into a model folder */
    if (!rc && lsw_ckpt_in_folder(R->bc, o->outdir))
        rc = lsw_err_set(LSW_E_CONFIG, "the output folder %s holds the base model %s (an input); choose another -o",
                         o->outdir, o->base);
    for (size_t e = 0; e < R->E && !rc; e++)
        if (lsw_ckpt_in_folder(R->xc[e], o->outdir))
            rc = lsw_err_set(LSW_E_CONFIG, "the output folder %s holds expert '%s' (an input); choose another -o",
                             o->outdir, o->names[e]);
    if (!rc)
        rc = lsw_ckpt_check_layers(R->bc);
    rc = lsw_agree(R->c, rc);
    if (!rc)
        rc = lsw_agree(R->c, lsw_stats_check_experts(R->bc, R->xc, R->E));
    return rc;
}

/* row_off of every base tensor and the totals.  Collective. */
static int layout_rows(stats_run *R)
{
    size_t nt = lsw_ckpt_count(R->bc);
    int rc = 0;
    if (!(R->row_off = malloc((nt ? nt : 1) * sizeof *R->row_off)))
        rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t i = 0; i < nt && !rc; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(R->bc, i);
        R->row_off[i] = UINT64_MAX;
        if (!lsw_mav_has_rows(t))
            continue;
        uint64_t r, rl;
        lsw_mav_rows(t, &r, &rl);
        R->row_off[i] = R->total_rows;
        R->total_rows += r;
        R->neligible++;
    }
    if (!rc && !R->neligible)
        rc = lsw_err_set(LSW_E_INPUT, "%s: no BF16/F16/F32 tensor with rows (one or more dimensions, not empty) to "
                         "compare", lsw_ckpt_path(R->bc));
    return lsw_agree(R->c, rc);
}

/* ---- the output folder ------------------------------------------------------ */

/* What the outputs depend on: the inputs' identities, the names, the sides
 * and the picture options.  A rerun with the same hash finds the manifest. */
static uint64_t output_hash(const stats_run *R)
{
    const lsw_stats_opts *o = R->o;
    uint64_t h = lsw_fnv1a64(LSW_FNV1A64_INIT, "layerswap stats 2", 17);
    uint64_t id = lsw_ckpt_identity(R->bc);
    h = lsw_fnv1a64(h, &id, sizeof id);
    for (size_t e = 0; e < R->E; e++) {
        id = lsw_ckpt_identity(R->xc[e]);
        h = lsw_fnv1a64(h, o->names[e], strlen(o->names[e]) + 1);
        h = lsw_fnv1a64(h, &id, sizeof id);
    }
    h = lsw_fnv1a64(h, &o->ntask, sizeof o->ntask);
    if (o->ntask)
        h = lsw_fnv1a64(h, o->task, o->ntask * sizeof *o->task);
    h = lsw_fnv1a64(h, &o->nlang, sizeof o->nlang);
    if (o->nlang)
        h = lsw_fnv1a64(h, o->lang, o->nlang * sizeof *o->lang);
    int pic[2] = {R->shared, R->log};
    return lsw_fnv1a64(h, pic, sizeof pic);
}

/* With --overwrite of an earlier `layerswap stats` folder: remove the files its
 * manifest lists that this run will not write (e.g. the heatmap of an expert
 * no longer compared), so the folder holds only what the new manifest lists.
 * Folders written by other tools are left to lsw_outdir_open. */
static int remove_stale(const char *dir, const char *const *names, size_t n)
{
    lsw_manifest *m = NULL;
    int rc = 0;
    if (lsw_manifest_read(dir, &m) != 0) {
        lsw_err_clear(); /* no manifest of ours: nothing to clean */
        return 0;
    }
    for (size_t i = 0; !strcmp(lsw_manifest_tool(m), "layerswap stats") && i < lsw_manifest_count(m) && !rc; i++) {
        const char *f = lsw_manifest_at(m, i)->name;
        int ours = 0;
        for (size_t k = 0; k < n && !ours; k++)
            ours = !strcmp(names[k], f);
        if (ours || f[0] == '.')
            continue;
        char *p = lsw_path_join(dir, f);
        if (!p)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        else if (unlink(p) != 0 && lsw_is_file(p))
            rc = lsw_err_set(LSW_E_IO, "%s: cannot remove a file of the earlier stats", p);
        free(p);
    }
    lsw_manifest_free(m);
    return rc;
}

/* Rank 0: the names of every file this run writes, then lsw_outdir_open. */
static int open_outdir_rank0(stats_run *R, uint64_t hash)
{
    size_t E = R->E, nn = E + NFIXED;
    const char **names = calloc(nn, sizeof *names);
    char **svg = calloc(E, sizeof *svg);
    int rc = (!names || !svg) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t e = 0; e < E && !rc; e++) {
        size_t l = strlen(R->o->names[e]) + 16;
        if (!(svg[e] = malloc(l)))
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        else {
            snprintf(svg[e], l, "heatmap_%s.svg", R->o->names[e]);
            names[e] = svg[e];
        }
    }
    if (!rc) {
        names[E] = "stats.h5";
        names[E + 1] = "summary.json";
        names[E + 2] = "report.html";
        names[E + 3] = "proposed-layer-swap.json";
        /* the folder's owner before anything is removed or written */
        rc = lsw_lock_dir(R->o->outdir, "stats");
        if (!rc && R->o->overwrite && lsw_is_dir(R->o->outdir))
            rc = remove_stale(R->o->outdir, names, nn);
        if (!rc)
            rc = lsw_outdir_open(R->o->outdir, hash, names, nn, R->o->overwrite, &R->od, &R->state);
        if (!rc && R->state != LSW_OUT_COMPLETE) /* stats.h5 (f64 per row and expert), summaries, pictures */
            rc = lsw_outdir_check_space(R->od, R->total_rows * 8 * (uint64_t)E + ((uint64_t)E + 4) * (1u << 20),
                                        E + 4, "stats.h5, summaries and heatmaps");
    }
    for (size_t e = 0; svg && e < E; e++)
        free(svg[e]);
    free(svg);
    free(names);
    return rc;
}

/* Refuse to clobber before reading any data; every rank learns the folder's
 * state.  Collective. */
static int open_output(stats_run *R)
{
    int rc = R->c->rank == 0 ? open_outdir_rank0(R, output_hash(R)) : 0;
    rc = lsw_agree(R->c, rc);
    int st = (int)R->state;
    MPI_Bcast(&st, 1, MPI_INT, 0, R->c->comm);
    R->state = (lsw_out_state)st;
    return rc;
}

/* ---- the pass over the data --------------------------------------------- */

/* Reader threads of this rank: LSW_STATS_READERS if set (0: none, each
 * block read then summed; LSW_STATS_SERIAL=1 means 0 too), else the CPUs
 * this rank may run on (its affinity mask, shared among the ranks of its
 * node) less one for the summing thread, at least 1 and at most 4.  On the
 * 2-core development VM one reader beat two (1.13-1.33 s against 1.23-1.37 s
 * for E = 4 on 1.47 GB models): the copy from the page cache and the sums
 * share the memory bus.  Collective over c->comm (the node's rank count). */
static int stats_readers(const lsw_comm *c)
{
    MPI_Comm node;
    int local = 1;
    if (c->size > 1 &&
        MPI_Comm_split_type(c->comm, MPI_COMM_TYPE_SHARED, c->rank, MPI_INFO_NULL, &node) == MPI_SUCCESS) {
        MPI_Comm_size(node, &local);
        MPI_Comm_free(&node);
    }
    const char *serial = getenv("LSW_STATS_SERIAL"), *env = getenv("LSW_STATS_READERS");
    if (serial && *serial && strcmp(serial, "0") != 0)
        return 0;
    if (env && *env) {
        char *end;
        long v = strtol(env, &end, 10);
        if (!*end && v >= 0)
            return v > 8 ? 8 : (int)v;
    }
    cpu_set_t set;
    int cpus = sched_getaffinity(0, sizeof set, &set) == 0 ? CPU_COUNT(&set) : 1;
    /* unbound ranks each see the node's CPUs and share them; a rank bound to
     * fewer CPUs than the node has ranks has them to itself */
    int mine = (cpus >= local ? cpus / local : cpus) - 1;
    return mine < 1 ? 1 : mine > 4 ? 4 : mine;
}

/* This rank's share: the eligible tensors (base order) and their owners. */
typedef struct work {
    size_t ne, *elig;              /* eligible tensor indices, name order */
    int *owner;                    /* per eligible tensor */
    uint64_t *rank_doubles;        /* per rank: row MAVs it computes (rows × E) */
    uint64_t my_bytes, my_items, need;
} work;

static void work_free(work *w)
{
    free(w->elig);
    free(w->owner);
    free(w->rank_doubles);
}

static int plan_work(const stats_run *R, work *w)
{
    size_t nt = lsw_ckpt_count(R->bc), E = R->E;
    int rank = R->c->rank;
    uint64_t *bytes = malloc((nt ? nt : 1) * sizeof *bytes);
    w->elig = malloc((nt ? nt : 1) * sizeof *w->elig);
    w->owner = malloc((nt ? nt : 1) * sizeof *w->owner);
    w->rank_doubles = calloc((size_t)R->c->size, sizeof *w->rank_doubles);
    int rc = (!bytes || !w->elig || !w->owner || !w->rank_doubles) ? lsw_err_set(LSW_E_NOMEM, "out of memory") : 0;
    for (size_t i = 0; i < nt && !rc; i++)
        if (R->row_off[i] != UINT64_MAX) {
            w->elig[w->ne] = i;
            bytes[w->ne++] = lsw_ckpt_at(R->bc, i)->nbytes;
        }
    if (!rc)
        rc = lsw_stats_assign(bytes, w->ne, R->c->size, w->owner);
    for (size_t k = 0; k < w->ne && !rc; k++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(R->bc, w->elig[k]);
        uint64_t r, rl;
        lsw_mav_rows(t, &r, &rl);
        w->rank_doubles[w->owner[k]] += r * E;
        if (w->owner[k] != rank)
            continue;
        w->my_bytes += t->nbytes;
        for (size_t e = 0; e < E; e++)
            w->my_bytes += lsw_ckpt_find(R->xc[e], t->name)->nbytes;
        w->my_items++;
        /* one part holds the whole tensor, rounded up to whole chunks of the
         * widest element an expert may have */
        uint64_t part = (t->numel + LSW_MAV_CHUNK - 1) / LSW_MAV_CHUNK * LSW_MAV_CHUNK * 4;
        if (part > w->need)
            w->need = part;
    }
    free(bytes);
    return rc;
}

/* Read buffer bytes: readers + 1 slots of 1 + E parts, a part no larger than
 * the largest tensor needs nor than LSW_STATS_PART_MAX (so the slots stay in
 * the CPU cache between the read and the sums), and no more than --mem. */
static uint64_t buffer_bytes(const stats_run *R, const work *w, int readers)
{
    uint64_t part = w->need < LSW_STATS_PART_MAX ? w->need : LSW_STATS_PART_MAX;
    uint64_t bb = (uint64_t)(readers + 1) * part * (R->E + 1);
    if (bb > R->o->mem)
        bb = R->o->mem;
    if (bb < lsw_stats_buf_min(R->E))
        bb = lsw_stats_buf_min(R->E);
    return bb > SIZE_MAX / 2 ? SIZE_MAX / 2 : bb;
}

/* Where this rank's results go: rank 0 straight into rows / dsq / bsq,
 * others into `local` ([expert][row] per tensor, tensors in name order) and
 * `lnorm` ((1 + E) per eligible tensor: base, then experts). */
static int alloc_results(stats_run *R, const work *w, double **local, double **lnorm)
{
    size_t nt = lsw_ckpt_count(R->bc), E = R->E;
    *local = NULL;
    *lnorm = calloc((w->ne ? w->ne : 1) * (E + 1), sizeof **lnorm);
    if (!*lnorm)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    if (R->c->rank != 0) {
        uint64_t n = w->rank_doubles[R->c->rank];
        if (n && !(*local = malloc((size_t)n * sizeof **local)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory for the row MAVs");
        return 0;
    }
    R->bsq = calloc(nt ? nt : 1, sizeof *R->bsq);
    if (!R->bsq)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t e = 0; e < E; e++)
        if (!(R->rows[e] = malloc((size_t)(R->total_rows ? R->total_rows : 1) * sizeof **R->rows)) ||
            !(R->dsq[e] = calloc(nt ? nt : 1, sizeof **R->dsq)))
            return lsw_err_set(LSW_E_NOMEM, "out of memory for the row MAVs");
    return 0;
}

/* One job per tensor of this rank, in name order. */
static int make_jobs(const stats_run *R, const work *w, double *local, double *lnorm, lsw_stats_job **jobs,
                     double ***outp, size_t *nj)
{
    size_t E = R->E;
    double **out = malloc((size_t)(w->my_items ? w->my_items : 1) * E * sizeof *out);
    lsw_stats_job *j = malloc((size_t)(w->my_items ? w->my_items : 1) * sizeof *j);
    *jobs = j;
    *outp = out;
    *nj = 0;
    if (!out || !j)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    uint64_t cursor = 0;
    for (size_t k = 0; k < w->ne; k++) {
        if (w->owner[k] != R->c->rank)
            continue;
        size_t ti = w->elig[k];
        const lsw_tensor_desc *t = lsw_ckpt_at(R->bc, ti);
        uint64_t r, rl;
        lsw_mav_rows(t, &r, &rl);
        for (size_t e = 0; e < E; e++)
            out[*nj * E + e] = R->c->rank == 0 ? R->rows[e] + R->row_off[ti] : local + cursor + e * r;
        j[*nj] = (lsw_stats_job){t, 0, r, out + *nj * E, lnorm + k * (E + 1), lnorm + k * (E + 1) + 1};
        (*nj)++;
        cursor += r * E;
    }
    return 0;
}

/* Rank 0 receives every rank's rows (rank by rank, in pieces) and everyone's
 * squared norms (a sum over ranks: each tensor's sums are nonzero on its
 * owner only, so the sum is exact).  Collective. */
static void gather(stats_run *R, const work *w, double *local, double *lnorm)
{
    size_t E = R->E, per = E + 1;
    int rank = R->c->rank;
    if (rank != 0) {
        for (uint64_t off = 0; off < w->rank_doubles[rank]; off += GATHER_PIECE) {
            size_t n = w->rank_doubles[rank] - off < GATHER_PIECE ? (size_t)(w->rank_doubles[rank] - off) : GATHER_PIECE;
            MPI_Send(local + off, (int)n, MPI_DOUBLE, 0, TAG_ROWS, R->c->comm);
        }
    } else {
        uint64_t most = 0;
        for (int r = 1; r < R->c->size; r++)
            most = w->rank_doubles[r] > most ? w->rank_doubles[r] : most;
        double *tmp = most ? malloc((size_t)most * sizeof *tmp) : NULL;
        if (most && !tmp)
            MPI_Abort(R->c->comm, 70); /* a receive without a buffer would deadlock the senders */
        for (int src = 1; src < R->c->size; src++) {
            for (uint64_t off = 0; off < w->rank_doubles[src]; off += GATHER_PIECE) {
                size_t n = w->rank_doubles[src] - off < GATHER_PIECE ? (size_t)(w->rank_doubles[src] - off) : GATHER_PIECE;
                MPI_Recv(tmp + off, (int)n, MPI_DOUBLE, src, TAG_ROWS, R->c->comm, MPI_STATUS_IGNORE);
            }
            uint64_t cursor = 0;
            for (size_t k = 0; k < w->ne; k++) {
                if (w->owner[k] != src)
                    continue;
                uint64_t r, rl;
                lsw_mav_rows(lsw_ckpt_at(R->bc, w->elig[k]), &r, &rl);
                for (size_t e = 0; e < E; e++)
                    memcpy(R->rows[e] + R->row_off[w->elig[k]], tmp + cursor + e * r, (size_t)r * sizeof *tmp);
                cursor += r * E;
            }
        }
        free(tmp);
    }
    size_t n = w->ne * per;
    if (R->c->size > 1 && n)
        MPI_Reduce(rank == 0 ? MPI_IN_PLACE : lnorm, lnorm, (int)n, MPI_DOUBLE, MPI_SUM, 0, R->c->comm);
    if (rank == 0)
        for (size_t k = 0; k < w->ne; k++) {
            R->bsq[w->elig[k]] = lnorm[k * per];
            for (size_t e = 0; e < E; e++)
                R->dsq[e][w->elig[k]] = lnorm[k * per + 1 + e];
        }
    /* the summary line counts every rank's bytes */
    uint64_t all = 0;
    MPI_Reduce(&R->pr.done_bytes, &all, 1, MPI_UINT64_T, MPI_SUM, 0, R->c->comm);
    if (rank == 0)
        R->pr.done_bytes = all;
}

/* The mappings' budget (lsw_stats_rows_run): --mem, or 0 with
 * LSW_STATS_MMAP=0 (copy every block with pread, as before). */
static uint64_t map_budget(const stats_run *R)
{
    const char *env = getenv("LSW_STATS_MMAP");
    return env && !strcmp(env, "0") ? 0 : R->o->mem;
}

/* Row MAVs and squared norms of every eligible tensor for every expert,
 * gathered on rank 0.  Tensors are spread over the ranks by bytes; each rank
 * streams its own within --mem.  Collective. */
static int compute_rows(stats_run *R)
{
    work w = {0};
    double *local = NULL, *lnorm = NULL, **out = NULL;
    lsw_stats_job *jobs = NULL;
    void *buf = NULL;
    size_t nj = 0;
    int readers = stats_readers(R->c);
    int rc = plan_work(R, &w);
    uint64_t bb = 0;
    if (!rc) {
        bb = buffer_bytes(R, &w, readers);
        if (w.my_items && !(buf = malloc((size_t)bb))) /* untouched (no pages) when the files are mapped */
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory for %llu bytes of read buffers (--mem)", (unsigned long long)bb);
    }
    if (!rc)
        rc = alloc_results(R, &w, &local, &lnorm);
    if (!rc)
        rc = make_jobs(R, &w, local, lnorm, &jobs, &out, &nj);
    /* progress lines show rank 0's share; `what` must outlive this call */
    static char what[64];
    snprintf(what, sizeof what, R->c->size > 1 ? "stats (rank 0 of %d)" : "stats", R->c->size);
    lsw_progress_start(&R->pr, what, R->c->rank == 0 ? R->o->progress : 0, w.my_bytes,
                       (size_t)w.my_items);
    if (!rc)
        rc = lsw_stats_rows_run(R->bc, R->xc, R->E, jobs, nj, buf, (size_t)bb, readers, map_budget(R), &R->pr, &R->tm);
    free(buf);
    free(out);
    free(jobs);
    rc = lsw_agree(R->c, rc);
    R->t[T_PASS] = lsw_now();
    if (!rc)
        gather(R, &w, local, lnorm);
    free(local);
    free(lnorm);
    work_free(&w);
    return rc;
}

/* ---- outputs (rank 0) ------------------------------------------------------ */

static int put_sb(lsw_outdir *od, const char *name, lsw_strbuf *b)
{
    if (lsw_sb_failed(b))
        return lsw_err_set(LSW_E_NOMEM, "out of memory writing %s", name);
    return lsw_outdir_put(od, name, b->p ? b->p : "", b->len);
}

/* A JSON file made by `make` (lsw_jsonw text). */
static int put_json(lsw_outdir *od, const char *name, const lsw_stats_summary *s,
                    int (*make)(const lsw_stats_summary *, char **, size_t *))
{
    char *text = NULL;
    size_t len = 0;
    int rc = make(s, &text, &len);
    if (!rc)
        rc = lsw_outdir_put(od, name, text, len);
    free(text);
    return rc;
}

/* stats.h5 through a temporary of lsw_commit; its size and CRC-32C are read
 * back through our descriptor. */
static int put_h5(stats_run *R, const lsw_stats_summary *s)
{
    char *tmp = lsw_path_join(lsw_outdir_path(R->od), ".stats.h5.lsw-tmp");
    if (!tmp)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    lsw_stats_h5_in in = {R->bc, R->base_abs, s, (const char *const *)R->abs, R->row_off,
                          (const double *const *)R->rows, R->bsq, (const double *const *)R->dsq};
    int fd = -1, rc = lsw_outdir_tmp_open(R->od, "stats.h5", &fd);
    if (!rc)
        rc = lsw_stats_h5_write(tmp, &in);
    uint64_t size = 0;
    uint32_t crc = 0;
    if (!rc) {
        struct stat st;
        if (fstat(fd, &st) != 0)
            rc = lsw_err_set(LSW_E_IO, "%s: cannot stat", tmp);
        size = rc ? 0 : (uint64_t)st.st_size;
        size_t bs = 1 << 22;
        char *b = rc ? NULL : malloc(bs);
        if (!rc && !b)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        for (uint64_t off = 0; !rc && off < size; off += bs) {
            size_t n = size - off < bs ? (size_t)(size - off) : bs;
            if ((rc = lsw_pread_full(fd, b, n, off, tmp)))
                rc = lsw_err_set(LSW_E_IO, "%s: cannot read back what HDF5 wrote", tmp);
            else
                crc = lsw_crc32c(crc, b, n);
        }
        free(b);
    }
    if (!rc)
        rc = lsw_outdir_tmp_commit(R->od, "stats.h5", fd, size, crc);
    else if (fd >= 0)
        lsw_outdir_tmp_abort(R->od, "stats.h5", fd);
    free(tmp);
    return rc;
}

static int put_heatmaps(stats_run *R, const lsw_stats_summary *s)
{
    int rc = 0;
    lsw_stats_picture pic = {R->shared, R->log};
    for (size_t e = 0; e < s->nexperts && !rc; e++) {
        lsw_strbuf b = {0};
        char fn[LSW_STATS_NAME_MAX + 32];
        lsw_stats_svg_file(s, e, &pic, &b);
        snprintf(fn, sizeof fn, "heatmap_%s.svg", s->experts[e].name);
        rc = put_sb(R->od, fn, &b);
        lsw_sb_free(&b);
    }
    return rc;
}

static int write_outputs(stats_run *R, const lsw_stats_summary *s)
{
    int rc = 0;
    if (lsw_stats_h5_available())
        rc = put_h5(R, s);
    else if (!R->o->quiet)
        fprintf(stderr, "layerswap stats: warning: built without HDF5; stats.h5 is not written\n");
    R->t[T_H5] = lsw_now();
    if (!rc)
        rc = put_heatmaps(R, s);
    if (!rc)
        rc = put_json(R->od, "summary.json", s, lsw_stats_summary_json);
    if (!rc) {
        lsw_strbuf b = {0};
        lsw_stats_picture pic = {R->shared, R->log};
        lsw_stats_report_html(s, &pic, &b);
        rc = put_sb(R->od, "report.html", &b);
        lsw_sb_free(&b);
    }
    if (!rc && s->proposal.valid)
        rc = put_json(R->od, "proposed-layer-swap.json", s, lsw_stats_proposal_config);
    R->t[T_FILES] = lsw_now();
    if (!rc)
        rc = lsw_outdir_finish(R->od, "layerswap stats", NULL, NULL);
    R->t[T_COMMIT] = lsw_now();
    return rc;
}

/* ---- the run ------------------------------------------------------------ */

static char *abs_path(const char *p)
{
    char *r = realpath(p, NULL);
    return r ? r : strdup(p);
}

static void summary_line(stats_run *R)
{
    char detail[512];
    const lsw_stats_timing *tm = &R->tm;
    double kr = tm->kernel_s > 0 ? (double)tm->bytes / tm->kernel_s / 1e9 : 0;
    snprintf(detail, sizeof detail,
             "%zu expert(s) x %llu tensors (%llu rows) -> %s; rank 0 read %.3f GB: %s %.2f s%s, "
             "MAV kernel %.2f s (%.2f GB/s, %s), waited %.2f s",
             R->E, (unsigned long long)R->neligible, (unsigned long long)R->total_rows, R->o->outdir,
             (double)tm->bytes / 1e9, tm->mapped ? "mapped" : "read", tm->read_s,
             tm->overlapped ? " (overlapped)" : "", tm->kernel_s, kr,
             lsw_isa_name(lsw_kernels_isa()), tm->wait_s);
    R->pr.what = "stats";
    lsw_progress_end(&R->pr, detail, R->o->quiet);
    if (getenv("LSW_STATS_TIMES")) {
        static const char *const ph[T_N] = {"", "open", "pass", "gather", "summary", "stats.h5", "other files",
                                            "manifest"};
        fprintf(stderr, "layerswap stats: phases:");
        for (int k = 1; k < T_N; k++)
            fprintf(stderr, " %s %.3f s", ph[k], R->t[k] - R->t[k - 1]);
        fprintf(stderr, "\n");
    }
}

/* Rank 0: summary, the proposal's reasoning, every output file. */
static int finish_rank0(stats_run *R)
{
    const lsw_stats_opts *o = R->o;
    lsw_stats_input in = {R->bc, R->base_abs, R->E, o->names, (const char *const *)R->abs, R->row_off,
                          (const double *const *)R->rows, R->bsq, (const double *const *)R->dsq,
                          o->ntask, o->nlang, o->task, o->lang};
    lsw_stats_summary *sum = NULL;
    int rc = lsw_stats_summarize(&in, &sum);
    R->t[T_SUMMARY] = lsw_now();
    if (!rc && !o->quiet) {
        lsw_stats_print_proposal(sum, stdout);
        fflush(stdout);
    }
    if (!rc)
        rc = write_outputs(R, sum);
    if (!rc)
        summary_line(R);
    lsw_stats_summary_free(sum);
    return rc;
}

static int run_phases(stats_run *R)
{
    int rc = open_inputs(R);
    if (!rc)
        rc = layout_rows(R);
    if (!rc)
        rc = open_output(R);
    if (!rc && R->state == LSW_OUT_COMPLETE) {
        if (R->c->rank == 0 && !R->o->quiet)
            printf("layerswap stats: %s already holds these statistics (its manifest matches); "
                   "use --overwrite to compute them again\n", R->o->outdir);
        return 0;
    }
    if (!rc) {
        R->base_abs = abs_path(R->o->base);
        for (size_t e = 0; e < R->E && !rc; e++)
            if (!(R->abs[e] = abs_path(R->o->paths[e])))
                rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        if (!R->base_abs)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
        rc = lsw_agree(R->c, rc);
    }
    R->t[T_OPEN] = lsw_now();
    if (!rc)
        rc = compute_rows(R);
    R->t[T_GATHER] = lsw_now();
    if (!rc)
        rc = lsw_agree(R->c, R->c->rank == 0 ? finish_rank0(R) : 0);
    return rc;
}

static void run_free(stats_run *R)
{
    lsw_outdir_free(R->od);
    for (size_t e = 0; e < R->E; e++) {
        if (R->xc)
            lsw_ckpt_close(R->xc[e]);
        if (R->abs)
            free(R->abs[e]);
        if (R->rows)
            free(R->rows[e]);
        if (R->dsq)
            free(R->dsq[e]);
    }
    lsw_ckpt_close(R->bc);
    free(R->xc);
    free(R->abs);
    free(R->rows);
    free(R->dsq);
    free(R->bsq);
    free(R->row_off);
    free(R->base_abs);
}

int lsw_stats_run(const lsw_stats_opts *o, const lsw_comm *c)
{
    lsw_err_clear();
    stats_run R;
    memset(&R, 0, sizeof R);
    R.o = o;
    R.c = c;
    R.E = o->nexperts;
    R.t[T_START] = lsw_now();
    R.shared = o->shared_scale < 0 ? o->nexperts > 1 : o->shared_scale != 0;
    R.log = o->log_scale != 0;
    int rc = check_opts(o);
    if (!rc) {
        R.xc = calloc(R.E, sizeof *R.xc);
        R.abs = calloc(R.E, sizeof *R.abs);
        R.rows = calloc(R.E, sizeof *R.rows);
        R.dsq = calloc(R.E, sizeof *R.dsq);
        if (!R.xc || !R.abs || !R.rows || !R.dsq)
            rc = lsw_err_set(LSW_E_NOMEM, "out of memory");
    }
    rc = lsw_agree(c, rc);
    if (!rc)
        rc = run_phases(&R);
    run_free(&R);
    return rc;
}
