/* build: sh tests/fuzz/build.sh fuzz_zstd
 *   (= clang -g -O1 -fsanitize=fuzzer,address,undefined -D_GNU_SOURCE -Iio $(pkg-config --cflags libzstd)
 *      tests/fuzz/fuzz_zstd.c build-fuzz/liblsw-fuzz.a -lhdf5 -lmpi -lzstd -lcjson -lm)
 * run:   build-fuzz/fuzz_zstd -max_len=4096 -timeout=10 -malloc_limit_mb=256 CORPUS_DIR tests/fuzz/seeds/zstd
 *
 * Input: [u32 LE chunk size][u8 mode][stored chunk bytes].
 *   mode & 0x80 == 0: the HDF5 filter callback lsw_h5z_zstd(H5Z_FLAG_REVERSE)
 *       with cd_nelmts = mode & 3 (0, 1, 2; 3 -> 2) and cd_values = {1, chunk
 *       size}; the chunk size is masked to 20 bits.  Env FZ_ZSTD_CAPPED=1 forces
 *       cd_nelmts = 2 (the shape layerswap writes).  On success the result must
 *       equal libzstd's own decoding, be <= the cap (== it with cd_values[1]),
 *       and *buf_size == the result; on failure *buf and *buf_size untouched.
 *       Then the encode direction on the same bytes must round-trip.
 *   mode & 0x80: lsw_chunk_decode(src, n, elem = ((mode >> 3) & 7) + 1,
 *       shuffle = mode & 0x40, dst of exactly chunk-size bytes); plus an
 *       encode_padded/decode round trip of the input bytes as raw data.
 * Known findings can be masked: FZ_ZSTD_SKIP_ZERO=1 (nbytes 0), FZ_ZSTD_CAPPED=1 (no cd_values[1]). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "lsw_zstd_filter.h"

static void check(int c, const char *what)
{
    if (!c) {
        fprintf(stderr, "INVARIANT BROKEN: %s\n", what);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 5)
        return 0;
    uint32_t cs = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 | (uint32_t)data[3] << 24;
    unsigned mode = data[4];
    const uint8_t *src = data + 5;
    size_t n = size - 5;
    cs &= 0xFFFFF;
    if (!(mode & 0x80)) {
        size_t ncd = mode & 3;
        if (ncd == 3 || getenv("FZ_ZSTD_CAPPED"))
            ncd = 2;
        unsigned cdv[2] = {1, cs};
        /* exactly n bytes, heap, as HDF5 hands it over */
        void *buf = malloc(n ? n : 1), *orig = buf;
        memcpy(buf, src, n);
        size_t bsz = n, osz = bsz;
        size_t r = lsw_h5z_zstd(LSW_H5Z_FLAG_REVERSE, ncd, cdv, n, &bsz, &buf);
        if (!r) {
            check(buf == orig && bsz == osz, "failure changed *buf or *buf_size");
            free(buf);
        } else {
            check(bsz == r, "*buf_size != returned size");
            if (ncd >= 2)
                check(r == cs, "decoded size != cd_values[1]");
            else
                check(r <= LSW_H5Z_ZSTD_MAX_OUT, "decoded size above the 4 GiB limit");
            void *ref = malloc(r);
            size_t rr = ZSTD_decompress(ref, r, src, n);
            check(!ZSTD_isError(rr) && rr == r && memcmp(ref, buf, r) == 0, "filter output differs from libzstd");
            free(ref);
            /* encode it back and decode again */
            size_t b2 = r;
            void *e = malloc(r);
            memcpy(e, buf, r);
            size_t en = lsw_h5z_zstd(0, 2, cdv, r, &b2, &e);
            if (en) {
                size_t b3 = en;
                void *d = malloc(en);
                memcpy(d, e, en);
                size_t dn = lsw_h5z_zstd(LSW_H5Z_FLAG_REVERSE, 2, (unsigned[]){1, (unsigned)r}, en, &b3, &d);
                check(dn == r && memcmp(d, buf, r) == 0, "round trip through the filter");
                free(d);
            }
            free(e);
            free(buf);
        }
        return 0;
    }
    size_t es = ((mode >> 3) & 7) + 1;
    int sh = (mode & 0x40) != 0;
    unsigned char *dst = malloc(cs ? cs : 1), *scr = malloc(cs ? cs : 1);
    int rc = lsw_chunk_decode(src, n, es, sh, dst, cs, scr);
    /* finding 8: with nbytes == 0 any input "decodes"; FZ_ZSTD_SKIP_ZERO=1 skips that known case */
    if (rc == 0 && cs == 0 && getenv("FZ_ZSTD_SKIP_ZERO"))
        rc = -1;
    if (rc == 0) {
        unsigned char *ref = malloc(cs ? cs : 1);
        size_t rr = ZSTD_decompress(ref, cs, src, n);
        check(!ZSTD_isError(rr) && rr == cs, "decode accepted what libzstd rejects");
        if (sh && es > 1) {
            unsigned char *u = malloc(cs ? cs : 1);
            lsw_byte_unshuffle(u, ref, cs, es);
            check(memcmp(u, dst, cs) == 0, "unshuffle mismatch");
            free(u);
        } else
            check(memcmp(ref, dst, cs) == 0, "decode mismatch");
        free(ref);
    }
    free(dst);
    free(scr);
    /* round trip: the stored bytes as raw data, a chunk of nb >= n bytes, zero padded */
    size_t nb = n + (cs & 0xFF), valid = n;
    if (nb == 0)
        return 0;
    size_t cap = lsw_chunk_bound(nb);
    unsigned char *enc = malloc(cap), *s2 = malloc(nb), *out = malloc(nb), *exp = calloc(1, nb);
    memcpy(exp, src, n);
    size_t en = lsw_chunk_encode_padded(src, valid, nb, es, sh, 1, enc, cap, s2);
    check(en > 0, "encode failed");
    check(lsw_chunk_decode(enc, en, es, sh, out, nb, s2) == 0, "decode of own encoding failed");
    check(memcmp(out, exp, nb) == 0, "padded round trip mismatch");
    if (en > 1) { /* one flipped byte must never decode successfully to different data */
        enc[en / 2] ^= 0x5A;
        if (lsw_chunk_decode(enc, en, es, sh, out, nb, s2) == 0)
            check(memcmp(out, exp, nb) == 0, "corrupted chunk decoded to different data without an error");
    }
    free(enc);
    free(s2);
    free(out);
    free(exp);
    return 0;
}
