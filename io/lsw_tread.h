/* lsw_tread — the one way a block loop gets the bytes of a tensor block:
 * elements [e0, e0 + n) of tensor t of checkpoint c, either copied into the
 * caller's buffer (pread through lsw_checkpoint; every kind of checkpoint,
 * derived models included) or mapped read-only from the file that holds them
 * (safetensors files only: no copy out of the page cache).
 *
 * The executor's worker copies (its blocks are written out again and
 * checksummed in cache-sized buffers); the statistics pass maps (it only
 * reads, and mapping a cached file costs about a tenth of copying it out).
 * Both count the bytes for the fault hooks (lsw_io) and stop between blocks
 * with lsw_stop_check.  A file cut short while it is mapped makes the
 * populate step fail (LSW_E_READ); a caller that touches a mapping without
 * populating it must be ready for SIGBUS (stats guards its sums).  No MPI;
 * thread-safe for distinct blocks.
 */
#ifndef LSW_TREAD_H
#define LSW_TREAD_H

#include <stddef.h>
#include <stdint.h>

#include "lsw_checkpoint.h"

/* A mapped block: ptr points at the block's first byte until release. */
typedef struct lsw_tblock {
    void *map;
    size_t maplen;
    const void *ptr;
} lsw_tblock;

/* Copy elements [e0, e0 + n) of t (c's) into buf (n elements of t's dtype).
 * Errors: those of lsw_ckpt_read (LSW_E_READ naming file and tensor). */
int lsw_tread_copy(const lsw_ckpt *c, const lsw_tensor_desc *t, uint64_t e0, size_t n, void *buf);

/* 1 if every file of c can be mapped (safetensors files; not a model.h5 or
 * a derived model). */
int lsw_tread_mappable(const lsw_ckpt *c);

/* Map the same bytes from `fd` (c's file t->file, opened by the caller);
 * with `populate`, fault them in now (MADV_POPULATE_READ), so that a file
 * shorter than its header says is LSW_E_READ here rather than SIGBUS later.
 * `page` is the system's page size. */
int lsw_tread_map(const lsw_ckpt *c, int fd, const lsw_tensor_desc *t, uint64_t e0, size_t n, int populate,
                  size_t page, lsw_tblock *b);
/* Unmap a block (accepts one never mapped: zeroed). */
void lsw_tread_release(lsw_tblock *b);

/* Elements per block when `per_elem` bytes of buffers stand behind each
 * element and `budget` bytes are there: at most LSW_TREAD_BLOCK_BYTES per
 * stream of `es_max`-byte elements, a multiple of 4096 when larger; 0 when
 * not even one element fits. */
#define LSW_TREAD_BLOCK_BYTES (1ULL << 20)
size_t lsw_tread_block_elems(size_t budget, size_t per_elem, size_t es_max);

#endif
