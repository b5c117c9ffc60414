#include "lsw_h5layout.h"

#include <stdio.h>
#include <string.h>

#include "lsw_error.h"

uint64_t lsw_h5_rows(size_t ndim, const uint64_t *shape)
{
    return ndim >= 2 ? shape[0] : 1;
}

uint64_t lsw_h5_row_bytes(lsw_dtype dt, size_t ndim, const uint64_t *shape)
{
    uint64_t b = lsw_dtype_size(dt);
    if (!b || ndim > LSW_H5_MAX_RANK || (ndim && !shape))
        return 0;
    for (size_t i = ndim >= 2 ? 1 : 0; i < ndim; i++) {
        if (shape[i] == 0)
            return 0;
        if (b > UINT64_MAX / shape[i])
            return 0;
        b *= shape[i];
    }
    if (ndim >= 2 && shape[0] == 0)
        return 0;
    return b;
}

/* 1 if the whole tensor's byte size fits in 64 bits */
static int total_ok(lsw_dtype dt, size_t ndim, const uint64_t *shape)
{
    uint64_t b = lsw_dtype_size(dt);
    for (size_t i = 0; i < ndim; i++) {
        if (shape[i] == 0)
            return 1;
        if (b > UINT64_MAX / shape[i])
            return 0;
        b *= shape[i];
    }
    return 1;
}

uint64_t lsw_h5_rows_per_chunk(lsw_dtype dt, size_t ndim, const uint64_t *shape)
{
    if (!lsw_dtype_size(dt) || ndim > LSW_H5_MAX_RANK || (ndim && !shape) || !total_ok(dt, ndim, shape))
        return 0;
    uint64_t row = lsw_h5_row_bytes(dt, ndim, shape);
    if (row == 0)
        return 1; /* no elements: nothing is chunked */
    if (row > LSW_H5_CHUNK_MAX)
        return 0;
    uint64_t rows = lsw_h5_rows(ndim, shape), r = LSW_H5_CHUNK_TARGET / row;
    if (r < 1)
        r = 1;
    if (r > rows)
        r = rows;
    return r;
}

uint64_t lsw_h5_chunk_bytes(lsw_dtype dt, size_t ndim, const uint64_t *shape)
{
    uint64_t r = lsw_h5_rows_per_chunk(dt, ndim, shape);
    return r ? r * lsw_h5_row_bytes(dt, ndim, shape) : 0;
}

uint64_t lsw_h5_chunk_count(lsw_dtype dt, size_t ndim, const uint64_t *shape)
{
    uint64_t r = lsw_h5_rows_per_chunk(dt, ndim, shape);
    if (!r || !lsw_h5_row_bytes(dt, ndim, shape))
        return 0;
    uint64_t rows = lsw_h5_rows(ndim, shape);
    return rows / r + (rows % r != 0);
}

int lsw_h5_name_ok(const char *name)
{
    return name && name[0] && !strchr(name, '/') && strcmp(name, ".") != 0;
}

int lsw_h5_sniff(const char *path)
{
    static const unsigned char sig[8] = {0x89, 'H', 'D', 'F', '\r', '\n', 0x1a, '\n'};
    FILE *f = fopen(path, "rb");
    if (!f)
        return LSW_E_NOTFOUND;
    int found = 0;
    for (long off = 0; !found && off < 65536; off = off ? off * 2 : 512) {
        unsigned char b[8];
        if (fseek(f, off, SEEK_SET) != 0 || fread(b, 1, 8, f) != 8)
            break;
        found = memcmp(b, sig, 8) == 0;
    }
    fclose(f);
    return found;
}
