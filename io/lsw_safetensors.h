/* lsw_safetensors — read (validated) and lay out safetensors files.
 *
 * Layout of a file:
 *   offset 0        u64 N, little endian: byte length of the header
 *   offset 8        header: N bytes of UTF-8 JSON, one object,
 *                     {"__metadata__": {"<str>": "<str>", ...},          optional
 *                      "<tensor>": {"dtype": "BF16", "shape": [d0, d1, ...],
 *                                   "data_offsets": [begin, end]}, ...}
 *                   possibly followed by JSON whitespace (padding)
 *   offset 8 + N    data area: tensor t is bytes [begin, end) of it, row major,
 *                   little endian; the tensors tile the area with no hole or
 *                   overlap and the area ends at the end of the file.
 *
 * Reading validates every rule of docs/input-validation.md with checked 64-bit arithmetic
 * before any tensor byte is touched.  Writing here only builds headers: a
 * shard's header is a pure function of its tensor list, so every rank can
 * compute every offset without talking to the others.
 */
#ifndef LSW_SAFETENSORS_H
#define LSW_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_dtype.h"

#define LSW_ST_MAX_HEADER 100000000ULL

typedef struct lsw_st_tensor {
    const char *name;      /* NUL-free, owned by the file handle */
    lsw_dtype dtype;
    size_t ndim;
    const uint64_t *shape; /* ndim entries, owned by the file handle */
    uint64_t numel;
    uint64_t nbytes;
    uint64_t offset;       /* absolute file offset of the first byte */
} lsw_st_tensor;

typedef struct lsw_st_file lsw_st_file; /* opaque */

/* Open and validate `path`.  On success *out owns an open descriptor and the
 * tensor table (sorted by name).  Errors: LSW_E_NOTFOUND (cannot open/read),
 * LSW_E_INPUT (a rule of docs/input-validation.md, recorded with file, tensor and rule). */
int lsw_st_open(const char *path, lsw_st_file **out);
void lsw_st_close(lsw_st_file *f); /* accepts NULL */

const char *lsw_st_path(const lsw_st_file *f);
int lsw_st_fd(const lsw_st_file *f);
uint64_t lsw_st_file_size(const lsw_st_file *f);
/* Modification time in ns since the epoch, read at open (for identities). */
uint64_t lsw_st_mtime_ns(const lsw_st_file *f);
/* Header bytes (the N bytes after the length), for identity hashing. */
const char *lsw_st_header(const lsw_st_file *f, size_t *len);
size_t lsw_st_count(const lsw_st_file *f);
/* Tensor i in name order (byte-wise strcmp). */
const lsw_st_tensor *lsw_st_at(const lsw_st_file *f, size_t i);
/* Tensor by exact name; NULL if absent. */
const lsw_st_tensor *lsw_st_find(const lsw_st_file *f, const char *name);

/* One tensor of a file to be written. */
typedef struct lsw_st_entry {
    const char *name;
    lsw_dtype dtype;
    size_t ndim;
    const uint64_t *shape;
    uint64_t nbytes;
} lsw_st_entry;

/* Build the header of a file holding `n` entries packed in the given order
 * from data offset 0, with "__metadata__": {"format": "pt"}, padded with
 * spaces so that 8 + N is a multiple of 8.  On success *out is a malloc'd
 * buffer of 8 + N bytes (length prefix included) that the caller frees, and
 * *data_start = 8 + N.  Returns 0, LSW_E_NOMEM or LSW_E_INTERNAL. */
int lsw_st_build_header(const lsw_st_entry *e, size_t n, char **out, uint64_t *data_start);

#endif
