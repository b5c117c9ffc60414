#include "lsw_tread.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

#include "lsw_error.h"
#include "lsw_io.h"

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22
#endif

int lsw_tread_copy(const lsw_ckpt *c, const lsw_tensor_desc *t, uint64_t e0, size_t n, void *buf)
{
    size_t es = lsw_dtype_size(t->dtype);
    return lsw_ckpt_read(c, t, e0 * es, buf, n * es);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int lsw_tread_mappable(const lsw_ckpt *c)
{
    if (lsw_ckpt_view_user(c) || lsw_ckpt_file_count(c) == 0)
        return 0;
    for (size_t f = 0; f < lsw_ckpt_file_count(c); f++) {
        const char *p = lsw_ckpt_file_path(c, (unsigned)f);
        if (!p || !ends_with(p, ".safetensors"))
            return 0;
    }
    return 1;
}

int lsw_tread_map(const lsw_ckpt *c, int fd, const lsw_tensor_desc *t, uint64_t e0, size_t n, int populate,
                  size_t page, lsw_tblock *b)
{
    size_t es = lsw_dtype_size(t->dtype);
    uint64_t off = t->offset + e0 * es, start = off & ~(uint64_t)(page - 1);
    size_t len = (size_t)(off + n * es - start);
    const char *file = lsw_ckpt_file_path(c, t->file);
    memset(b, 0, sizeof *b);
    void *p = mmap(NULL, len, PROT_READ, MAP_PRIVATE, fd, (off_t)start);
    if (p == MAP_FAILED)
        return lsw_err_set(LSW_E_READ, "%s: tensor '%s': cannot map its bytes: %s", file, t->name, strerror(errno));
    b->map = p;
    b->maplen = len;
    b->ptr = (const char *)p + (off - start);
    lsw_io_count_read(n * es); /* the fault hooks count mapped bytes as read */
    if (populate && madvise(p, len, MADV_POPULATE_READ) != 0 && errno == EFAULT)
        return lsw_err_set(LSW_E_READ, "%s: tensor '%s': the file is shorter than its header says (changed while "
                           "being read?)", file, t->name);
    return 0;
}

void lsw_tread_release(lsw_tblock *b)
{
    if (b->maplen)
        munmap(b->map, b->maplen);
    memset(b, 0, sizeof *b);
}

size_t lsw_tread_block_elems(size_t budget, size_t per_elem, size_t es_max)
{
    size_t B = per_elem ? budget / per_elem : 0, cap = (size_t)(LSW_TREAD_BLOCK_BYTES / (es_max ? es_max : 1));
    B = B > cap ? cap : B;
    return B > 4096 ? B - B % 4096 : B;
}
