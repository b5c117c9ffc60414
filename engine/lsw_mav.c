#include "lsw_mav.h"

#include <stdlib.h>
#include <string.h>

#include "lsw_error.h"
#include "lsw_kernels.h"

int lsw_mav_eligible(const lsw_tensor_desc *t)
{
    return (t->ndim == 1 || t->ndim == 2) && lsw_dtype_is_arith(t->dtype) && t->numel > 0;
}

int lsw_mav_has_rows(const lsw_tensor_desc *t)
{
    return t->ndim >= 1 && lsw_dtype_is_arith(t->dtype) && t->numel > 0;
}

void lsw_mav_rows(const lsw_tensor_desc *t, uint64_t *rows, uint64_t *row_len)
{
    if (t->ndim == 1) {
        *rows = 1;
        *row_len = t->shape[0];
    } else {
        /* [r, c1, c2, ...]: r rows of c1·c2·… elements (numel > 0, so r > 0) */
        *rows = t->shape[0];
        *row_len = t->numel / t->shape[0];
    }
}

static int base_twin(const lsw_ckpt *base, const lsw_ckpt *expert, const lsw_tensor_desc *et,
                     const lsw_tensor_desc **bt)
{
    *bt = lsw_ckpt_find(base, et->name);
    if (!*bt)
        return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': not in the base model %s", lsw_ckpt_path(expert),
                           et->name, lsw_ckpt_path(base));
    int same = (*bt)->ndim == et->ndim && (*bt)->dtype == et->dtype;
    for (size_t k = 0; same && k < et->ndim; k++)
        same = (*bt)->shape[k] == et->shape[k];
    if (!same)
        return lsw_err_set(LSW_E_MISMATCH, "%s: tensor '%s': shape or dtype differs from the base model %s",
                           lsw_ckpt_path(expert), et->name, lsw_ckpt_path(base));
    return 0;
}

int lsw_mav_tensor_rows(const lsw_ckpt *base, const lsw_ckpt *expert, const lsw_tensor_desc *et, uint64_t row0,
                        uint64_t nrows, void *buf, size_t buf_bytes, double *out)
{
    const lsw_tensor_desc *bt;
    int rc = base_twin(base, expert, et, &bt);
    if (rc)
        return rc;
    uint64_t rows, rl;
    lsw_mav_rows(et, &rows, &rl);
    size_t es = lsw_dtype_size(et->dtype);
    /* elements per read: whole chunks, as many as fit in half the buffer */
    uint64_t per = (buf_bytes / 2) / es;
    per -= per % LSW_MAV_CHUNK;
    if (per == 0)
        return lsw_err_set(LSW_E_INTERNAL, "MAV buffer of %zu bytes is too small", buf_bytes);
    char *eb = buf, *bb = (char *)buf + per * es;
    uint64_t r = 0;
    while (r < nrows) {
        uint64_t start = (row0 + r) * rl;
        if (rl <= per) {
            /* as many whole rows as fit: one read per model */
            uint64_t k = per / rl;
            if (k > nrows - r)
                k = nrows - r;
            if ((rc = lsw_ckpt_read(expert, et, start * es, eb, (size_t)(k * rl * es))) ||
                (rc = lsw_ckpt_read(base, bt, start * es, bb, (size_t)(k * rl * es))))
                return rc;
            for (uint64_t j = 0; j < k; j++) {
                double s = 0;
                const char *e = eb + j * rl * es, *b = bb + j * rl * es;
                for (uint64_t c = 0; c < rl; c += LSW_MAV_CHUNK) {
                    uint64_t m = rl - c < LSW_MAV_CHUNK ? rl - c : LSW_MAV_CHUNK;
                    s += lsw_absdiff_sum(et->dtype, e + c * es, b + c * es, (size_t)m);
                }
                out[r + j] = s / (double)rl;
            }
            r += k;
            continue;
        }
        /* a row longer than the buffer: stream it in whole chunks */
        double s = 0;
        for (uint64_t done = 0; done < rl;) {
            uint64_t n = rl - done < per ? rl - done : per;
            if ((rc = lsw_ckpt_read(expert, et, (start + done) * es, eb, (size_t)(n * es))) ||
                (rc = lsw_ckpt_read(base, bt, (start + done) * es, bb, (size_t)(n * es))))
                return rc;
            for (uint64_t c = 0; c < n; c += LSW_MAV_CHUNK) {
                uint64_t m = n - c < LSW_MAV_CHUNK ? n - c : LSW_MAV_CHUNK;
                s += lsw_absdiff_sum(et->dtype, eb + c * es, bb + c * es, (size_t)m);
            }
            done += n;
        }
        out[r++] = s / (double)rl;
    }
    return 0;
}

int lsw_tensor_mav_sum(const lsw_ckpt *base, const lsw_ckpt *expert, const lsw_tensor_desc *t, void *buf,
                       size_t buf_bytes, double *sum)
{
    enum { ROWS = 4096 };
    double rowbuf[ROWS];
    uint64_t rows, rl;
    lsw_mav_rows(t, &rows, &rl);
    double s = 0;
    for (uint64_t r = 0; r < rows; r += ROWS) {
        uint64_t k = rows - r < ROWS ? rows - r : ROWS;
        int rc = lsw_mav_tensor_rows(base, expert, t, r, k, buf, buf_bytes, rowbuf);
        if (rc)
            return rc;
        for (uint64_t j = 0; j < k; j++)
            s += rowbuf[j];
    }
    *sum = s;
    return 0;
}

size_t lsw_mav_buffer_bytes(uint64_t mem)
{
    size_t bytes = mem > (1u << 30) ? (1u << 30) : (size_t)mem;
    return bytes < 2 * LSW_MAV_CHUNK * 4 ? 2 * LSW_MAV_CHUNK * 4 : bytes;
}

int lsw_model_mav(const lsw_ckpt *base, const lsw_ckpt *expert, uint64_t mem, double *out)
{
    size_t bytes = lsw_mav_buffer_bytes(mem);
    void *buf = malloc(bytes);
    if (!buf)
        return lsw_err_set(LSW_E_NOMEM, "out of memory for MAV buffers");
    double sum = 0;
    uint64_t total_rows = 0;
    int rc = 0;
    for (size_t i = 0; i < lsw_ckpt_count(expert) && !rc; i++) {
        const lsw_tensor_desc *t = lsw_ckpt_at(expert, i);
        if (!lsw_mav_eligible(t))
            continue;
        uint64_t rows, rl;
        double ts;
        lsw_mav_rows(t, &rows, &rl);
        rc = lsw_tensor_mav_sum(base, expert, t, buf, bytes, &ts);
        sum += ts;
        total_rows += rows;
    }
    free(buf);
    if (rc)
        return rc;
    *out = total_rows ? sum / (double)total_rows : 0.0;
    return 0;
}
