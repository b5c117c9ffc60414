#include "lsw_execute.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lsw_commit.h"
#include "lsw_crc32c.h"
#include "lsw_error.h"
#include "lsw_io.h"
#include "lsw_kernels.h"
#include "lsw_mav.h"
#include "lsw_modelfiles.h"
#include "lsw_progress.h"
#include "lsw_strbuf.h"

volatile sig_atomic_t lsw_stop_signal = 0;

static void on_stop(int sig) { lsw_stop_signal = sig; }

void lsw_install_stop_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

static int check_stop(void)
{
    if (lsw_stop_signal)
        return lsw_err_set(LSW_E_INTERRUPTED, "stopped by signal %d; finished shards are kept, rerun the same command to resume",
                           (int)lsw_stop_signal);
    return 0;
}

int lsw_resolve_magnitude(lsw_plan *p, const lsw_run_opts *o)
{
    if (p->ready)
        return 0;
    const lsw_config *c = p->cfg;
    double *mav = calloc(c->nmodels, sizeof *mav);
    if (!mav)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    int rc = 0;
    for (size_t m = 0; m < c->nmodels && !rc; m++) {
        if (!p->mav_needed[m])
            continue;
        double t0 = lsw_now();
        rc = lsw_model_mav(p->models[c->base], p->models[m], o->mem, &mav[m]);
        if (!rc && !o->quiet)
            fprintf(stderr, "layerswap: model MAV of '%s' against '%s' = %.9g (%.2f s)\n", c->model_names[m],
                    c->model_names[c->base], mav[m], lsw_now() - t0);
    }
    if (!rc)
        rc = lsw_plan_set_mav(p, mav);
    free(mav);
    return rc;
}

typedef struct arena { char *p; size_t size; } arena;

/* One output tensor into `fd`, block by block; extends *crc over its bytes. */
static int run_tensor(const lsw_plan *p, const lsw_plan_tensor *t, int fd, const char *path, arena *a,
                      uint32_t *crc, lsw_progress *pr)
{
    size_t out_es = lsw_dtype_size(t->out_dtype), in_es = 0;
    for (size_t j = 0; j < t->nsrc; j++)
        in_es += lsw_dtype_size(t->src[j]->dtype);
    int rc = 0;
    if (t->op == LSW_OP_COPY) {
        const lsw_ckpt *c = p->models[t->models[0]];
        for (uint64_t off = 0; off < t->nbytes && !rc; ) {
            size_t n = t->nbytes - off < a->size ? (size_t)(t->nbytes - off) : a->size;
            if ((rc = check_stop()) || (rc = lsw_ckpt_read(c, t->src[0], off, a->p, n)) ||
                (rc = lsw_pwrite_full(fd, a->p, n, t->offset + off, path)))
                break;
            *crc = lsw_crc32c(*crc, a->p, n);
            lsw_progress_add(pr, n, 0);
            off += n;
        }
        return rc;
    }
    /* weighted sum: k input buffers and one output buffer of B elements */
    size_t B = a->size / (in_es + out_es);
    if (B > 4096)
        B -= B % 4096;
    const void *in[64];
    lsw_dtype dts[64];
    if (t->nsrc > 64)
        return lsw_err_set(LSW_E_CONFIG, "tensor '%s': more than 64 models in one average", t->name);
    for (uint64_t e0 = 0; e0 < t->numel && !rc; ) {
        size_t n = t->numel - e0 < B ? (size_t)(t->numel - e0) : B;
        char *cur = a->p;
        if ((rc = check_stop()))
            break;
        for (size_t j = 0; j < t->nsrc && !rc; j++) {
            size_t es = lsw_dtype_size(t->src[j]->dtype);
            rc = lsw_ckpt_read(p->models[t->models[j]], t->src[j], e0 * es, cur, n * es);
            in[j] = cur;
            dts[j] = t->src[j]->dtype;
            cur += n * es;
        }
        if (rc)
            break;
        lsw_wsum(t->out_dtype, cur, n, t->nsrc, dts, in, t->w);
        if ((rc = lsw_pwrite_full(fd, cur, n * out_es, t->offset + e0 * out_es, path)))
            break;
        *crc = lsw_crc32c(*crc, cur, n * out_es);
        lsw_progress_add(pr, n * out_es, 0);
        e0 += n;
    }
    return rc;
}

static int write_index(const lsw_plan *p, lsw_outdir *o)
{
    lsw_strbuf b = {0};
    lsw_layout_index_json(p->items, p->n, p->shards, &b);
    int rc = lsw_sb_failed(&b) ? lsw_err_set(LSW_E_NOMEM, "out of memory")
                               : lsw_outdir_put(o, "model.safetensors.index.json", b.p, b.len);
    lsw_sb_free(&b);
    return rc;
}

static char *manifest_extra(const lsw_plan *p)
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

int lsw_execute_merge(lsw_plan *p, const lsw_run_opts *o)
{
    const lsw_config *c = p->cfg;
    int rc = lsw_resolve_magnitude(p, o);
    if (rc)
        return rc;
    /* names we write: shards, index, model files */
    size_t nn = 0;
    const char **names = calloc(p->nshards + 16, sizeof *names);
    if (!names)
        return lsw_err_set(LSW_E_NOMEM, "out of memory");
    for (size_t k = 0; k < p->nshards; k++)
        names[nn++] = p->shards[k].name;
    names[nn++] = "model.safetensors.index.json";
    for (const char *const *m = lsw_model_file_names; *m; m++)
        names[nn++] = *m;
    lsw_outdir *od = NULL;
    lsw_out_state st;
    rc = lsw_outdir_open(c->out.path, p->hash, names, nn, o->overwrite, &od, &st);
    free(names);
    if (rc)
        return rc;
    if (st == LSW_OUT_COMPLETE) {
        if (!o->quiet)
            fprintf(stderr, "layerswap merge: %s is already complete for this config and these inputs; nothing to do\n",
                    c->out.path);
        lsw_outdir_free(od);
        return 0;
    }
    /* buffers: the budget, or less if the largest tensor needs less */
    uint64_t need = 0;
    for (size_t i = 0; i < p->n; i++) {
        uint64_t in = 0;
        for (size_t j = 0; j < p->t[i].nsrc; j++)
            in += p->t[i].src[j]->nbytes;
        uint64_t w = p->t[i].op == LSW_OP_COPY ? p->t[i].nbytes : in + p->t[i].nbytes;
        need = w > need ? w : need;
    }
    arena a;
    a.size = (size_t)(need < o->mem ? need : o->mem);
    if (a.size < 64)
        a.size = 64;
    a.p = malloc(a.size);
    if (!a.p) {
        lsw_outdir_free(od);
        return lsw_err_set(LSW_E_NOMEM, "cannot allocate %zu bytes of buffers (--mem)", a.size);
    }
    lsw_progress pr;
    lsw_progress_start(&pr, "merge", o->progress, p->total_bytes, p->n);
    size_t reused = 0;
    for (size_t k = 0; k < p->nshards && !rc; k++) {
        const lsw_plan_shard *s = &p->shards[k];
        if (st == LSW_OUT_RESUME && lsw_outdir_reuse(od, s->name)) {
            reused++;
            lsw_progress_add(&pr, s->size - s->data_start, s->count);
            continue;
        }
        int fd;
        if ((rc = lsw_outdir_tmp_open(od, s->name, &fd)))
            break;
        char *path = lsw_path_join(c->out.path, s->name);
        rc = path ? lsw_pwrite_full(fd, s->header, s->data_start, 0, path) : lsw_err_set(LSW_E_NOMEM, "out of memory");
        uint32_t crc = lsw_crc32c(0, s->header, s->data_start);
        for (size_t i = 0; i < s->count && !rc; i++) {
            rc = run_tensor(p, &p->t[s->first + i], fd, path, &a, &crc, &pr);
            lsw_progress_add(&pr, 0, 1);
        }
        if (rc)
            lsw_outdir_tmp_abort(od, s->name, fd);
        else
            rc = lsw_outdir_tmp_commit(od, s->name, fd, s->size, crc);
        free(path);
    }
    free(a.p);
    if (!rc)
        rc = lsw_copy_model_files(lsw_ckpt_folder(p->models[c->first_model]), od, c->out.dtype);
    if (!rc && p->nshards > 1)
        rc = write_index(p, od);
    if (!rc) {
        char *extra = manifest_extra(p);
        rc = extra ? lsw_outdir_finish(od, extra) : lsw_err_set(LSW_E_NOMEM, "out of memory");
        free(extra);
    }
    lsw_outdir_free(od);
    if (rc)
        return rc;
    char detail[256];
    snprintf(detail, sizeof detail, "%zu tensors, %.3f GB in %zu shard(s)%s -> %s", p->n, (double)p->total_bytes / 1e9,
             p->nshards, reused ? " (resumed)" : "", c->out.path);
    lsw_progress_end(&pr, detail, o->quiet);
    return 0;
}
