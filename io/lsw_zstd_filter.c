#include "lsw_zstd_filter.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* for ZSTD_c_literalCompressionMode, experimental in name: the shared
 * library takes it like any other parameter (checked with Debian 12's 1.5.4;
 * a library that refused it would make every level-1 chunk an error, not
 * other bytes) */
#define ZSTD_STATIC_LINKING_ONLY
#include <zstd.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* One compression and one decompression context per thread, kept for the
 * life of the thread: creating a context per 1 MiB chunk costs a few percent
 * at level 1.  libzstd and libc only (this file is also the plugin's). */
static _Thread_local ZSTD_CCtx *tl_cctx;
static _Thread_local ZSTD_DCtx *tl_dctx;

static ZSTD_CCtx *cctx_get(void)
{
    if (!tl_cctx)
        tl_cctx = ZSTD_createCCtx();
    return tl_cctx;
}

void lsw_zstd_thread_release(void)
{
    ZSTD_freeCCtx(tl_cctx);
    ZSTD_freeDCtx(tl_dctx);
    tl_cctx = NULL;
    tl_dctx = NULL;
}

static ZSTD_DCtx *dctx_get(void)
{
    if (!tl_dctx)
        tl_dctx = ZSTD_createDCtx();
    return tl_dctx;
}

void lsw_byte_shuffle(void *dst, const void *src, size_t nbytes, size_t elem_size)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t n = elem_size > 1 ? nbytes / elem_size : 0;
    if (n <= 1) { /* HDF5 leaves such a buffer as it is; the transform is the identity anyway */
        memcpy(d, s, nbytes);
        return;
    }
    if (elem_size == 2) {
        size_t i = 0;
#if defined(__SSE2__)
        /* 16 elements at a time: low bytes packed from the masked words, high
         * bytes from the shifted ones (the same permutation as below) */
        const __m128i lo = _mm_set1_epi16(0x00FF);
        for (; i + 16 <= n; i += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(s + 2 * i));
            __m128i b = _mm_loadu_si128((const __m128i *)(s + 2 * i + 16));
            __m128i l = _mm_packus_epi16(_mm_and_si128(a, lo), _mm_and_si128(b, lo));
            __m128i h = _mm_packus_epi16(_mm_srli_epi16(a, 8), _mm_srli_epi16(b, 8));
            _mm_storeu_si128((__m128i *)(d + i), l);
            _mm_storeu_si128((__m128i *)(d + n + i), h);
        }
#endif
        for (; i < n; i++) {
            d[i] = s[2 * i];
            d[n + i] = s[2 * i + 1];
        }
    } else if (elem_size == 4) {
        for (size_t i = 0; i < n; i++) {
            d[i] = s[4 * i];
            d[n + i] = s[4 * i + 1];
            d[2 * n + i] = s[4 * i + 2];
            d[3 * n + i] = s[4 * i + 3];
        }
    } else {
        for (size_t j = 0; j < elem_size; j++)
            for (size_t i = 0; i < n; i++)
                d[j * n + i] = s[i * elem_size + j];
    }
    size_t done = n * elem_size;
    memcpy(d + done, s + done, nbytes - done);
}

void lsw_byte_unshuffle(void *dst, const void *src, size_t nbytes, size_t elem_size)
{
    unsigned char *d = dst;
    const unsigned char *s = src;
    size_t n = elem_size > 1 ? nbytes / elem_size : 0;
    if (n <= 1) {
        memcpy(d, s, nbytes);
        return;
    }
    if (elem_size == 2) {
        size_t i = 0;
#if defined(__SSE2__)
        for (; i + 16 <= n; i += 16) { /* interleave 16 low and 16 high bytes */
            __m128i l = _mm_loadu_si128((const __m128i *)(s + i));
            __m128i h = _mm_loadu_si128((const __m128i *)(s + n + i));
            _mm_storeu_si128((__m128i *)(d + 2 * i), _mm_unpacklo_epi8(l, h));
            _mm_storeu_si128((__m128i *)(d + 2 * i + 16), _mm_unpackhi_epi8(l, h));
        }
#endif
        for (; i < n; i++) {
            d[2 * i] = s[i];
            d[2 * i + 1] = s[n + i];
        }
    } else if (elem_size == 4) {
        for (size_t i = 0; i < n; i++) {
            d[4 * i] = s[i];
            d[4 * i + 1] = s[n + i];
            d[4 * i + 2] = s[2 * n + i];
            d[4 * i + 3] = s[3 * n + i];
        }
    } else {
        for (size_t j = 0; j < elem_size; j++)
            for (size_t i = 0; i < n; i++)
                d[i * elem_size + j] = s[j * n + i];
    }
    size_t done = n * elem_size;
    memcpy(d + done, s + done, nbytes - done);
}

#if ZSTD_VERSION_NUMBER >= 10501
#define LIT_HUFFMAN ZSTD_ps_enable
#else
#define LIT_HUFFMAN ZSTD_lcm_huffman
#endif

/* Level 1 is zstd's level 1 (strategy "fast") with its match search sampled:
 * a match is looked for every 16th position (target length 16 is the fast
 * strategy's sampling distance), of at least 7 bytes, in a 1 KiB-entry hash
 * table, and literals always entropy-coded.  Shuffled weights are byte planes
 * of near-random mantissa bytes and low-entropy exponent bytes: matches there
 * are rare and short, so the full search spends most of the time and its few
 * matches cost more bits than the literals they replace.  Measured on the
 * bf16 weights of the benchmark models, 1 MiB chunks: 2.5x the speed of
 * zstd's level 1 and 2% smaller (0.670 of raw against 0.684); long runs
 * (zero rows, constants) are still found.  Levels 2 to 22 are zstd's. */
static int set_level(ZSTD_CCtx *c, int level)
{
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_compressionLevel, level)))
        return -1;
    if (level != 1)
        return 0;
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_targetLength, 16)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_minMatch, 7)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_hashLog, 10)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_literalCompressionMode, LIT_HUFFMAN)))
        return -1;
    return 0;
}

/* One frame, content size stored (a one-shot ZSTD_compress2 pledges the
 * source size), content checksum on so that a damaged chunk is an error
 * rather than wrong numbers.  0 on failure. */
static size_t compress_frame(void *dst, size_t cap, const void *src, size_t n, int level)
{
    ZSTD_CCtx *c = cctx_get();
    if (!c)
        return 0;
    ZSTD_CCtx_reset(c, ZSTD_reset_session_and_parameters);
    if (set_level(c, level) != 0 || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1)) ||
        ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 1)))
        return 0;
    size_t r = ZSTD_compress2(c, dst, cap, src, n);
    return ZSTD_isError(r) ? 0 : r;
}

size_t lsw_chunk_bound(size_t nbytes)
{
    return ZSTD_compressBound(nbytes);
}

size_t lsw_chunk_encode_padded(const void *raw, size_t valid, size_t nbytes, size_t elem_size, int shuffle,
                               int level, void *dst, size_t dst_cap, void *scratch)
{
    if (valid > nbytes || (valid && !raw) || !dst)
        return 0;
    int do_shuffle = shuffle && elem_size > 1;
    const void *src = raw;
    if (valid < nbytes || do_shuffle) {
        if (!scratch)
            return 0;
        if (valid < nbytes && do_shuffle) {
            /* shuffle of raw followed by zeros, without building that copy */
            size_t n = nbytes / elem_size, nv = valid / elem_size, part = valid % elem_size;
            unsigned char *d = scratch;
            const unsigned char *s = raw;
            if (n <= 1) {
                memcpy(d, s, valid);
                memset(d + valid, 0, nbytes - valid);
            } else {
                for (size_t j = 0; j < elem_size; j++) {
                    unsigned char *dj = d + j * n;
                    size_t i = 0;
                    for (; i < nv && i < n; i++)
                        dj[i] = s[i * elem_size + j];
                    if (i < n) { /* element nv: its first `part` bytes are valid */
                        dj[i] = j < part ? s[i * elem_size + j] : 0;
                        i++;
                    }
                    memset(dj + i, 0, n - i);
                }
                size_t done = n * elem_size, left = valid > done ? valid - done : 0;
                memcpy(d + done, s + done, left);
                memset(d + done + left, 0, nbytes - done - left);
            }
        } else if (valid < nbytes) {
            memcpy(scratch, raw, valid);
            memset((unsigned char *)scratch + valid, 0, nbytes - valid);
        } else {
            lsw_byte_shuffle(scratch, raw, nbytes, elem_size);
        }
        src = scratch;
    }
    return compress_frame(dst, dst_cap, src, nbytes, level);
}

size_t lsw_chunk_encode(const void *raw, size_t nbytes, size_t elem_size, int shuffle, int level, void *dst,
                        size_t dst_cap, void *scratch)
{
    return lsw_chunk_encode_padded(raw, nbytes, nbytes, elem_size, shuffle, level, dst, dst_cap, scratch);
}

/* Size a frame of `n` bytes decodes to, after checking that `src` is exactly
 * one frame with a known content size no larger than `cap`; 0 on failure
 * (an empty chunk is never valid either). */
static size_t frame_size(const void *src, size_t n, unsigned long long cap)
{
    /* layerswap always stores the content checksum: a frame without one
     * (written by something else) would go unchecked.  RFC 8878 §3.1.1: the
     * magic 0xFD2FB528 (little endian), then the frame header descriptor,
     * whose bit 2 is the Content_Checksum_flag. */
    const unsigned char *h = src;
    if (n < 5 || h[0] != 0x28 || h[1] != 0xB5 || h[2] != 0x2F || h[3] != 0xFD || !(h[4] & 0x04))
        return 0;
    unsigned long long size = ZSTD_getFrameContentSize(src, n);
    if (size == ZSTD_CONTENTSIZE_UNKNOWN || size == ZSTD_CONTENTSIZE_ERROR || size == 0 || size > cap)
        return 0;
#if SIZE_MAX < 0xFFFFFFFFFFFFFFFFULL
    if (size > SIZE_MAX)
        return 0;
#endif
    size_t fsz = ZSTD_findFrameCompressedSize(src, n);
    if (ZSTD_isError(fsz) || fsz != n)
        return 0; /* truncated, or trailing bytes after the frame */
    return (size_t)size;
}

static size_t decompress_exact(void *dst, size_t size, const void *src, size_t n)
{
    ZSTD_DCtx *d = dctx_get();
    if (!d)
        return 0;
    size_t r = ZSTD_decompressDCtx(d, dst, size, src, n);
    if (ZSTD_isError(r) || r != size) {
        ZSTD_DCtx_reset(d, ZSTD_reset_session_and_parameters);
        return 0;
    }
    return r;
}

int lsw_chunk_decode(const void *src, size_t n, size_t elem_size, int shuffle, void *dst, size_t nbytes,
                     void *scratch)
{
    if (!src || !dst || nbytes == 0 || frame_size(src, n, nbytes) != nbytes)
        return -1;
    int do_shuffle = shuffle && elem_size > 1;
    if (do_shuffle && !scratch)
        return -1;
    if (decompress_exact(do_shuffle ? scratch : dst, nbytes, src, n) != nbytes)
        return -1;
    if (do_shuffle)
        lsw_byte_unshuffle(dst, scratch, nbytes, elem_size);
    return 0;
}

size_t lsw_h5z_zstd(unsigned flags, size_t cd_nelmts, const unsigned cd_values[], size_t nbytes,
                    size_t *buf_size, void **buf)
{
    if (!buf || !*buf || !buf_size || (cd_nelmts && !cd_values))
        return 0;
    int have_cap = cd_nelmts >= 2;
    unsigned long long cap = have_cap ? cd_values[1] : LSW_H5Z_ZSTD_MAX_OUT;

    if (flags & LSW_H5Z_FLAG_REVERSE) {
        /* A frame must decode to exactly a whole chunk: HDF5 1.10 copies a full
         * chunk out of the filter's buffer whatever length the filter returns.
         * Without cd_values[1] (every layerswap file has it) the chunk size is
         * unknown, so nothing is decoded.  The reader (lsw_hdf5) also checks
         * cd_values[1] against the dataset's chunk before any read. */
        if (!have_cap || cap == 0)
            return 0;
        size_t size = frame_size(*buf, nbytes, cap);
        if (!size || size != cap)
            return 0;
        void *out = malloc(size);
        if (!out)
            return 0;
        if (decompress_exact(out, size, *buf, nbytes) != size) {
            free(out);
            return 0;
        }
        free(*buf);
        *buf = out;
        *buf_size = size;
        return size;
    }

    /* encode: a chunk the decoder would refuse is not encoded (HDF5 then
     * stores an optional filter's chunk unfiltered), nor one without the
     * chunk size in cd_values[1], which the decoder needs */
    if (!have_cap || nbytes == 0 || nbytes != cap)
        return 0;
    int level = cd_nelmts >= 1 ? (int)cd_values[0] : 3;
    size_t bound = ZSTD_compressBound(nbytes);
    if (ZSTD_isError(bound))
        return 0;
    void *out = malloc(bound);
    if (!out)
        return 0;
    size_t n = compress_frame(out, bound, *buf, nbytes, level);
    if (!n) {
        free(out);
        return 0;
    }
    free(*buf);
    *buf = out;
    *buf_size = bound;
    return n;
}
