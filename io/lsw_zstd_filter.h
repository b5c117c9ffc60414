/* lsw_zstd_filter — the zstd chunk codec of model.h5 (HDF5 filter 32015).
 *
 * Layout of one stored chunk (docs/output.md):
 *   raw chunk      rows_per_chunk whole rows of the tensor, row major, little
 *                  endian; an edge chunk (the last one, when rows_per_chunk
 *                  does not divide the rows) is padded with zero bytes to the
 *                  full chunk size: HDF5 always stores and decodes full chunks.
 *   shuffled       HDF5's byte shuffle (filter 2) with element size s over
 *                  the n = nbytes / s elements: out[j*n + i] = in[i*s + j];
 *                  the nbytes % s leftover bytes are copied at the end.
 *   stored         one zstd frame of the shuffled bytes, content size in the
 *                  frame header, content checksum on.
 * The dataset's pipeline is [shuffle, zstd] with zstd's cd_values =
 * {level, uncompressed chunk bytes}; the decoder uses cd_values[1] as the
 * exact size a frame must decode to.
 *
 * This module uses libzstd and libc only — no HDF5 call — so the same source
 * is compiled into liblsw (any rank, HDF5 or not) and into the loadable
 * plugin plugins/libh5zstd.so.  The HDF5 registration is lsw_h5z_register()
 * in lsw_hdf5.h.
 */
#ifndef LSW_ZSTD_FILTER_H
#define LSW_ZSTD_FILTER_H

#include <stddef.h>

#define LSW_H5Z_ZSTD_ID 32015            /* registered with The HDF Group */
#define LSW_H5Z_FLAG_REVERSE 0x0100u     /* == H5Z_FLAG_REVERSE (checked in lsw_hdf5.c) */
#define LSW_H5Z_ZSTD_MAX_OUT (1ULL << 32) /* largest chunk a frame may encode (HDF5 1.10: < 4 GiB) */
/* Revision of the encoder's parameters: raised whenever a chunk encodes to
 * other bytes at the same level (2: level 1 with the match search sampled),
 * so that a run begun by an older build restarts instead of resuming. */
#define LSW_ZSTD_ENCODER_REV 2

/* The filter in H5Z_func_t shape.  flags & LSW_H5Z_FLAG_REVERSE: decode,
 * else encode.  cd_values[0] = level (as an int; 3 if absent),
 * cd_values[1] = the uncompressed chunk size (required both ways: HDF5 1.10
 * copies a whole chunk out of whatever buffer the filter returns, so a
 * decoder that cannot check the size could expose heap memory).
 * Decoding: exactly one zstd frame of `nbytes` bytes, with its content size
 * equal to cd_values[1] and a content checksum.  Encoding: only a chunk of
 * exactly cd_values[1] bytes.
 * On success replaces *buf (malloc'd, freeing the old one), sets *buf_size
 * and returns the new valid size; on any failure returns 0 and leaves *buf
 * and *buf_size untouched (HDF5's failure convention). */
size_t lsw_h5z_zstd(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                    size_t *buf_size, void **buf);

/* Largest stored size of a chunk of `nbytes` raw bytes (ZSTD_compressBound). */
size_t lsw_chunk_bound(size_t nbytes);

/* Encode one chunk: shuffle (when `shuffle` and elem_size > 1) into
 * `scratch`, then compress at `level` into dst.  Returns the stored size, or
 * 0 on failure (dst_cap too small: give lsw_chunk_bound(nbytes)).  `scratch`
 * holds nbytes bytes; it may be NULL when no shuffle is done.  Safe to call
 * from any thread (each thread keeps one compression context). */
size_t lsw_chunk_encode(const void *raw, size_t nbytes, size_t elem_size, int shuffle, int level, void *dst,
                        size_t dst_cap, void *scratch);

/* The same for an edge chunk given only its `valid` leading bytes: encodes
 * `raw` followed by nbytes - valid zero bytes, without the caller building
 * the padded copy.  `scratch` (nbytes bytes) is required when valid < nbytes. */
size_t lsw_chunk_encode_padded(const void *raw, size_t valid, size_t nbytes, size_t elem_size, int shuffle,
                               int level, void *dst, size_t dst_cap, void *scratch);

/* Inverse of lsw_chunk_encode: decodes a stored chunk that must expand to
 * exactly `nbytes` bytes into dst.  `scratch` (nbytes bytes) is needed when
 * unshuffling.  Returns 0 or -1 (corrupt, wrong size). */
int lsw_chunk_decode(const void *src, size_t n, size_t elem_size, int shuffle, void *dst, size_t nbytes,
                     void *scratch);

/* Free the calling thread's compression and decompression contexts (a
 * thread that encoded or decoded chunks calls it before it ends; the next
 * call on that thread simply makes new ones). */
void lsw_zstd_thread_release(void);

/* HDF5's byte shuffle and its inverse (dst and src must not overlap). */
void lsw_byte_shuffle(void *dst, const void *src, size_t nbytes, size_t elem_size);
void lsw_byte_unshuffle(void *dst, const void *src, size_t nbytes, size_t elem_size);

#endif
