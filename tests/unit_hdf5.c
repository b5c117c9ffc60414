/* unit_hdf5 — model.h5: chunk codec, filter, writer, reader (docs/output.md).
 *
 *   unit_hdf5                 run the tests (files under $TMPDIR or /tmp)
 *   unit_hdf5 --emit DIR      write DIR/model.h5 and, per tensor, the raw bytes
 *                             it must read back as (DIR/expected/<k>.bin,
 *                             listed in DIR/expected.tsv) for check_h5py.py
 *   unit_hdf5 --cat FILE NAME write tensor NAME of FILE (read with lsw_hdf5's
 *                             reader) to stdout as raw bytes
 *
 * The sample holds BF16/F16/F32/I64 tensors and more: 3-D, 1-D and 0-d
 * tensors, a tensor without elements, and partial edge chunks.  Every
 * element is random bits (NaN payloads, subnormals, negative zeros), so any
 * conversion on the way would show.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <zstd.h>

#include "lsw_error.h"
#include "lsw_hdf5.h"

#include "lsw_test.h"

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}

static void fill_random(unsigned char *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(rnd() >> 56);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "out of memory\n");
        exit(70);
    }
    return p;
}

/* ---- the sample checkpoint ------------------------------------------- */

typedef struct sample_t {
    const char *name;
    lsw_dtype dt;
    size_t ndim;
    uint64_t shape[3];
    unsigned char *data;
    uint64_t nbytes;
} sample_t;

static sample_t sample[] = {
    {"model.embed_tokens.weight", LSW_DT_BF16, 2, {1100, 1000, 0}, NULL, 0},          /* 3 chunks of 524 rows, edge 52 */
    {"model.layers.0.self_attn.q_proj.weight", LSW_DT_F16, 2, {37, 20000, 0}, NULL, 0}, /* 26 + edge 11 */
    {"model.layers.0.input_layernorm.weight", LSW_DT_F32, 1, {4096, 0, 0}, NULL, 0},  /* 1-D: one chunk */
    {"model.layers.0.conv.weight", LSW_DT_F32, 3, {33, 64, 128}, NULL, 0},            /* 32 + edge 1 */
    {"model.layers.0.ids", LSW_DT_I64, 2, {3, 5, 0}, NULL, 0},
    {"model.layers.1.positions", LSW_DT_I64, 1, {70000, 0, 0}, NULL, 0},
    {"step", LSW_DT_I64, 0, {0, 0, 0}, NULL, 0},                                      /* 0-d */
    {"empty", LSW_DT_F32, 2, {0, 8, 0}, NULL, 0},                                     /* no elements */
    {"mask", LSW_DT_BOOL, 1, {10, 0, 0}, NULL, 0},
    {"cplx", LSW_DT_C64, 2, {4, 3, 0}, NULL, 0},
    {"fp8", LSW_DT_F8_E4M3, 2, {2, 16, 0}, NULL, 0},
    {"u16", LSW_DT_U16, 2, {3, 7, 0}, NULL, 0},
};
#define NSAMPLE (sizeof sample / sizeof sample[0])

static const char *sample_config = "{\"merge_method\": \"layer_swap\", \"note\": \"unit_hdf5\"}";
static char *sample_plan; /* > 64 KiB: dense attribute storage */

static void make_sample(void)
{
    rng_state = 0x9E3779B97F4A7C15ULL;
    for (size_t k = 0; k < NSAMPLE; k++) {
        sample_t *s = &sample[k];
        uint64_t numel = 1;
        for (size_t i = 0; i < s->ndim; i++)
            numel *= s->shape[i];
        s->nbytes = numel * lsw_dtype_size(s->dt);
        s->data = xmalloc(s->nbytes);
        fill_random(s->data, s->nbytes);
        if (s->dt == LSW_DT_BOOL)
            for (uint64_t i = 0; i < s->nbytes; i++)
                s->data[i] &= 1;
    }
    size_t n = 200000;
    sample_plan = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++)
        sample_plan[i] = (i % 80 == 79) ? '\n' : (char)('a' + i % 26);
    sample_plan[n] = 0;
}

/* Write the sample.  mode 0: lsw_chunk_encode_padded; 1: the caller pads and
 * calls lsw_chunk_encode.  Chunks are written tensor by tensor, in order. */
static int write_sample(const char *path, int level, int shuffle, int mode)
{
    lsw_h5_writer *w;
    int rc = lsw_h5_create(path, sample_config, sample_plan, level, shuffle, &w);
    if (rc)
        return rc;
    size_t idx[NSAMPLE];
    for (size_t k = 0; k < NSAMPLE; k++)
        if ((rc = lsw_h5_define(w, sample[k].name, sample[k].dt, sample[k].ndim, sample[k].shape, &idx[k]))) {
            lsw_h5_abort(w);
            return rc;
        }
    for (size_t k = 0; k < NSAMPLE && !rc; k++) {
        sample_t *s = &sample[k];
        uint64_t rpc = lsw_h5_rows_per_chunk(s->dt, s->ndim, s->shape), rows = lsw_h5_rows(s->ndim, s->shape);
        uint64_t rb = lsw_h5_row_bytes(s->dt, s->ndim, s->shape), cb = lsw_h5_chunk_bytes(s->dt, s->ndim, s->shape);
        uint64_t nch = lsw_h5_chunk_count(s->dt, s->ndim, s->shape);
        size_t es = lsw_dtype_size(s->dt), cap = lsw_chunk_bound(cb);
        unsigned char *dst = xmalloc(cap), *scratch = xmalloc(cb), *pad = xmalloc(cb);
        for (uint64_t c = 0; c < nch && !rc; c++) {
            uint64_t r0 = c * rpc, nr = rows - r0 < rpc ? rows - r0 : rpc;
            size_t n;
            if (mode == 0) {
                n = lsw_chunk_encode_padded(s->data + r0 * rb, nr * rb, cb, es, shuffle, level, dst, cap, scratch);
            } else {
                memcpy(pad, s->data + r0 * rb, nr * rb);
                memset(pad + nr * rb, 0, cb - nr * rb);
                n = lsw_chunk_encode(pad, cb, es, shuffle, level, dst, cap, scratch);
            }
            if (!n)
                rc = lsw_err_set(LSW_E_INTERNAL, "encode failed");
            else
                rc = lsw_h5_write_chunk(w, idx[k], r0, dst, n);
        }
        free(dst);
        free(scratch);
        free(pad);
    }
    if (rc) {
        lsw_h5_abort(w);
        return rc;
    }
    return lsw_h5_close(w);
}

static unsigned char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *p = xmalloc((size_t)len);
    *n = fread(p, 1, (size_t)len, f);
    fclose(f);
    return p;
}

/* ---- tests ------------------------------------------------------------ */

static void test_layout(void)
{
    uint64_t s1[] = {1100, 1000};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_BF16, 2, s1) == 524, "bf16 [1100,1000]");
    CHECK(lsw_h5_chunk_count(LSW_DT_BF16, 2, s1) == 3, "3 chunks");
    CHECK(lsw_h5_chunk_bytes(LSW_DT_BF16, 2, s1) == 524 * 2000, "chunk bytes");
    uint64_t s2[] = {4096, 4096};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_BF16, 2, s2) == 128, "4096x4096 bf16: 128 rows = 1 MiB");
    CHECK(lsw_h5_chunk_bytes(LSW_DT_BF16, 2, s2) == (1u << 20), "exactly 1 MiB");
    uint64_t s3[] = {3, 1000000};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 2, s3) == 1, "row > 1 MiB: one row per chunk");
    uint64_t s4[] = {5};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 1, s4) == 1 && lsw_h5_chunk_bytes(LSW_DT_F32, 1, s4) == 20, "1-D");
    uint64_t s4b[] = {10000000};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 1, s4b) == 1 && lsw_h5_chunk_count(LSW_DT_F32, 1, s4b) == 1,
          "a big 1-D tensor is still one chunk");
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_I64, 0, NULL) == 1 && lsw_h5_chunk_bytes(LSW_DT_I64, 0, NULL) == 8 &&
              lsw_h5_chunk_count(LSW_DT_I64, 0, NULL) == 1,
          "0-d");
    uint64_t s5[] = {0, 8}, s6[] = {5, 0};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 2, s5) == 1 && lsw_h5_chunk_count(LSW_DT_F32, 2, s5) == 0, "[0,8]");
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 2, s6) == 1 && lsw_h5_chunk_count(LSW_DT_F32, 2, s6) == 0, "[5,0]");
    uint64_t s7[] = {2, 3000000000ULL};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F16, 2, s7) == 0, "a 6 GB row cannot be a chunk");
    uint64_t s8[] = {1ULL << 40, 1ULL << 40};
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 2, s8) == 0, "overflowing shape");
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_INVALID, 1, s4) == 0, "bad dtype");
    CHECK(lsw_h5_name_ok("model.layers.0.mlp") && !lsw_h5_name_ok("a/b") && !lsw_h5_name_ok(".") &&
              !lsw_h5_name_ok("") && lsw_h5_name_ok(".."),
          "names");
}

static void test_shuffle(void)
{
    unsigned char in[203], out[203], back[203], ref[203];
    fill_random(in, sizeof in);
    size_t sizes[] = {1, 2, 3, 4, 8};
    for (size_t k = 0; k < 5; k++) {
        size_t s = sizes[k];
        for (size_t nb = 0; nb <= sizeof in; nb++) { /* every tail of the 16-element SIMD path */
            size_t n = nb / s;
            memcpy(ref, in, nb);
            if (s > 1 && n > 1)
                for (size_t j = 0; j < s; j++)
                    for (size_t i = 0; i < n; i++)
                        ref[j * n + i] = in[i * s + j];
            lsw_byte_shuffle(out, in, nb, s);
            lsw_byte_unshuffle(back, out, nb, s);
            CHECK(memcmp(out, ref, nb) == 0 && memcmp(back, in, nb) == 0, "shuffle s=%zu nbytes=%zu", s, nb);
        }
    }
}

static void test_encode(void)
{
    size_t cb = 70001; /* not a multiple of 2, 4 or 8 */
    unsigned char *raw = xmalloc(cb), *pad = xmalloc(cb), *a = xmalloc(lsw_chunk_bound(cb)),
                  *b = xmalloc(lsw_chunk_bound(cb)), *scratch = xmalloc(cb), *back = xmalloc(cb);
    fill_random(raw, cb);
    size_t sizes[] = {1, 2, 4, 8};
    size_t valids[] = {0, 1, 7, 4096, 4097, 69999, 70000, 70001};
    for (size_t k = 0; k < 4; k++)
        for (size_t v = 0; v < sizeof valids / sizeof valids[0]; v++)
            for (int sh = 0; sh < 2; sh++) {
                size_t es = sizes[k], valid = valids[v];
                memcpy(pad, raw, valid);
                memset(pad + valid, 0, cb - valid);
                size_t na = lsw_chunk_encode_padded(raw, valid, cb, es, sh, 1, a, lsw_chunk_bound(cb), scratch);
                size_t nb = lsw_chunk_encode(pad, cb, es, sh, 1, b, lsw_chunk_bound(cb), scratch);
                CHECK(na && na == nb && memcmp(a, b, na) == 0, "padded encode es=%zu valid=%zu shuffle=%d", es, valid,
                      sh);
                CHECK(lsw_chunk_decode(a, na, es, sh, back, cb, scratch) == 0 && memcmp(back, pad, cb) == 0,
                      "decode es=%zu valid=%zu shuffle=%d", es, valid, sh);
            }
    CHECK(lsw_chunk_encode(raw, cb, 2, 1, 1, a, 10, scratch) == 0, "dst too small");
    CHECK(lsw_chunk_encode(raw, cb, 2, 1, 1, a, lsw_chunk_bound(cb), NULL) == 0, "shuffle needs scratch");
    size_t n = lsw_chunk_encode(raw, cb, 2, 0, 1, a, lsw_chunk_bound(cb), NULL);
    CHECK(n > 0 && lsw_chunk_decode(a, n, 2, 0, back, cb, NULL) == 0 && memcmp(back, raw, cb) == 0,
          "no shuffle, no scratch");
    CHECK(lsw_chunk_decode(a, n, 2, 0, back, cb - 1, NULL) == -1, "decode into the wrong size");
    free(raw);
    free(pad);
    free(a);
    free(b);
    free(scratch);
    free(back);
}

/* Run the filter on a malloc'd copy of (p, n); returns its result, *out the buffer. */
static size_t run_filter(unsigned flags, size_t ncd, const unsigned *cd, const void *p, size_t n, void **out,
                         size_t *out_size)
{
    void *buf = xmalloc(n);
    memcpy(buf, p, n);
    size_t size = n;
    size_t r = lsw_h5z_zstd(flags, ncd, cd, n, &size, &buf);
    *out = buf;
    *out_size = size;
    return r;
}

/* Level 1 samples the match search (lsw_zstd_filter.c): on shuffled bf16
 * weights (near-random mantissa bytes, few exponents) it must compress at
 * least as well as zstd's own level 1, and still find long runs. */
static void test_level1(void)
{
    size_t n = (size_t)1 << 20, cap = lsw_chunk_bound(n);
    unsigned char *raw = xmalloc(n), *sh = xmalloc(n), *ours = xmalloc(cap), *plain = xmalloc(cap), *scratch = xmalloc(n);
    for (size_t i = 0; i < n / 2; i++) { /* sign, exponent 117..124 (small weights), 7 random mantissa bits */
        uint64_t r = rnd();
        unsigned e = 117 + (unsigned)(((r >> 8) & 7) * ((r >> 11) & 7) / 7);
        uint16_t v = (uint16_t)(((r >> 16) & 1) << 15 | e << 7 | (r & 0x7F));
        raw[2 * i] = (unsigned char)v;
        raw[2 * i + 1] = (unsigned char)(v >> 8);
    }
    size_t zo = lsw_chunk_encode(raw, n, 2, 1, 1, ours, cap, scratch);
    lsw_byte_shuffle(sh, raw, n, 2);
    ZSTD_CCtx *cc = ZSTD_createCCtx(); /* zstd's level 1 with the filter's frame flags */
    ZSTD_CCtx_setParameter(cc, ZSTD_c_compressionLevel, 1);
    ZSTD_CCtx_setParameter(cc, ZSTD_c_checksumFlag, 1);
    size_t zp = ZSTD_compress2(cc, plain, cap, sh, n);
    ZSTD_freeCCtx(cc);
    CHECK(zo > 0 && !ZSTD_isError(zp) && zo < zp, "level 1 on shuffled bf16: %zu bytes, zstd's level 1 %zu", zo, zp);
    CHECK(ZSTD_decompress(plain, cap, ours, zo) == n && memcmp(plain, sh, n) == 0, "level 1 frame decodes");
    memset(raw, 0, n);
    zo = lsw_chunk_encode(raw, n, 2, 1, 1, ours, cap, scratch);
    CHECK(zo > 0 && zo < 128, "a zero chunk at level 1: %zu bytes", zo);
    free(raw);
    free(sh);
    free(ours);
    free(plain);
    free(scratch);
}

static void test_filter(void)
{
    size_t n = 100000;
    unsigned char *raw = xmalloc(n);
    for (size_t i = 0; i < n; i++)
        raw[i] = (unsigned char)(((i * 7) & 0xF0) ^ (rnd() & 3)); /* 64 byte values: entropy-codable */
    unsigned cd[2] = {1, (unsigned)n};
    void *z, *d;
    size_t zs, ds;
    size_t zn = run_filter(0, 2, cd, raw, n, &z, &zs);
    CHECK(zn > 0 && zn < n && zs >= zn, "compress: %zu -> %zu", n, zn);
    size_t dn = run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, z, zn, &d, &ds);
    CHECK(dn == n && ds == n && memcmp(d, raw, n) == 0, "round trip");
    free(d);
    /* without the chunk size in cd_values[1] nothing is decoded (HDF5 would
     * copy a whole chunk out of whatever the filter returns), nor encoded */
    dn = run_filter(LSW_H5Z_FLAG_REVERSE, 1, cd, z, zn, &d, &ds);
    CHECK(dn == 0, "decode without cd_values[1] refused");
    free(d); /* a filter that fails leaves the buffer to its caller */
    {
        unsigned small[2] = {1, 16};   /* a pipeline claiming a smaller chunk than the frame holds */
        dn = run_filter(LSW_H5Z_FLAG_REVERSE, 2, small, z, zn, &d, &ds);
        CHECK(dn == 0, "decode with cd_values[1] below the frame's size refused");
        free(d);
    }
    dn = run_filter(0, 1, cd, raw, n, &d, &ds);
    CHECK(dn == 0, "encode without cd_values[1] refused");
    free(d);
    /* the stored frame is what lsw_chunk_encode makes for the same level */
    unsigned char *e = xmalloc(lsw_chunk_bound(n));
    size_t en = lsw_chunk_encode(raw, n, 1, 0, 1, e, lsw_chunk_bound(n), NULL);
    CHECK(en == zn && memcmp(e, z, zn) == 0, "filter and lsw_chunk_encode agree");
    free(e);

    unsigned char *bad = xmalloc(zn + 1);
    memcpy(bad, z, zn);
    bad[zn / 2] ^= 0x5a;
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, bad, zn, &d, &ds) == 0 && ds == zn && memcmp(d, bad, zn) == 0,
          "corrupted frame refused, buffer untouched");
    free(d);
    memcpy(bad, z, zn);
    bad[zn - 1] ^= 1; /* the content checksum */
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, bad, zn, &d, &ds) == 0, "bad checksum refused");
    free(d);
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, z, zn - 1, &d, &ds) == 0, "truncated frame refused");
    free(d);
    memcpy(bad, z, zn);
    bad[zn] = 0;
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, bad, zn + 1, &d, &ds) == 0, "trailing byte refused");
    free(d);
    unsigned small[2] = {1, (unsigned)n - 1}, big[2] = {1, (unsigned)n + 1};
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, small, z, zn, &d, &ds) == 0, "frame above the cap refused");
    free(d);
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, big, z, zn, &d, &ds) == 0, "frame short of a whole chunk refused");
    free(d);
    CHECK(run_filter(0, 2, small, raw, n, &d, &ds) == 0, "encode refuses a chunk above the cap");
    free(d);
    /* a frame header announcing 5 GiB: magic, FHD (8-byte size, window byte), window, size, empty last raw block */
    unsigned char huge[] = {0x28, 0xb5, 0x2f, 0xfd, 0xc0, 0x00, 0, 0, 0, 0x40, 1, 0, 0, 0, 0x01, 0x00, 0x00};
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 0, NULL, huge, sizeof huge, &d, &ds) == 0, "5 GiB frame refused");
    free(d);
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, huge, sizeof huge, &d, &ds) == 0, "5 GiB frame refused (cap)");
    free(d);
    /* a frame without its content size */
    ZSTD_CCtx *cc = ZSTD_createCCtx();
    unsigned char *nf = xmalloc(ZSTD_compressBound(n));
    ZSTD_CCtx_setParameter(cc, ZSTD_c_contentSizeFlag, 0);
    size_t r = ZSTD_compress2(cc, nf, ZSTD_compressBound(n), raw, n);
    CHECK(!ZSTD_isError(r) && ZSTD_getFrameContentSize(nf, r) == ZSTD_CONTENTSIZE_UNKNOWN, "frame without size");
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, nf, r, &d, &ds) == 0, "unknown content size refused");
    free(d);
    ZSTD_freeCCtx(cc);
    free(nf);
    CHECK(run_filter(LSW_H5Z_FLAG_REVERSE, 2, cd, "garbage!", 8, &d, &ds) == 0, "not zstd");
    free(d);
    free(bad);
    free(z);
    free(raw);
}

static void check_reader(const char *path)
{
    lsw_h5_input *in = NULL;
    int rc = lsw_h5_open_input(path, &in);
    CHECK(rc == 0, "open %s: %d", path, rc);
    if (rc)
        return;
    CHECK(lsw_h5_input_count(in) == NSAMPLE, "count %zu", lsw_h5_input_count(in));
    for (size_t i = 1; i < lsw_h5_input_count(in); i++)
        CHECK(strcmp(lsw_h5_input_at(in, i - 1)->name, lsw_h5_input_at(in, i)->name) < 0, "sorted");
    const char *cfg = lsw_h5_input_attr(in, "config"), *plan = lsw_h5_input_attr(in, "plan"),
               *ver = lsw_h5_input_attr(in, "layerswap_version");
    CHECK(cfg && !strcmp(cfg, sample_config), "config attribute");
    CHECK(plan && !strcmp(plan, sample_plan), "plan attribute (%zu bytes)", strlen(sample_plan));
    CHECK(ver && !strcmp(ver, LSW_VERSION), "version attribute");
    for (size_t k = 0; k < NSAMPLE; k++) {
        sample_t *s = &sample[k];
        size_t i = lsw_h5_input_find(in, s->name);
        CHECK(i != (size_t)-1, "find %s", s->name);
        if (i == (size_t)-1)
            continue;
        const lsw_h5_tensor *t = lsw_h5_input_at(in, i);
        int same_shape = t->ndim == s->ndim;
        for (size_t d = 0; same_shape && d < s->ndim; d++)
            same_shape = t->shape[d] == s->shape[d];
        CHECK(t->dtype == s->dt && same_shape && t->nbytes == s->nbytes, "%s: dtype %s ndim %zu nbytes %llu", s->name,
              lsw_dtype_name(t->dtype), t->ndim, (unsigned long long)t->nbytes);
        unsigned char *buf = xmalloc(s->nbytes + 1);
        memset(buf, 0xee, s->nbytes);
        rc = lsw_h5_input_read(in, i, 0, buf, s->nbytes);
        CHECK(rc == 0 && memcmp(buf, s->data, s->nbytes) == 0, "%s: whole tensor read back", s->name);
        /* ranges starting and ending anywhere, across chunk edges */
        int bad = 0;
        for (int j = 0; j < 40 && s->nbytes; j++) {
            uint64_t off = rnd() % s->nbytes, len = rnd() % (s->nbytes - off + 1);
            if (j == 0)
                off = 0, len = 1;
            if (j == 1)
                off = s->nbytes - 1, len = 1;
            memset(buf, 0xee, len);
            rc = lsw_h5_input_read(in, i, off, buf, len);
            if (rc || memcmp(buf, s->data + off, len) != 0) {
                if (bad++ < 3)
                    fprintf(stderr, "  %s: range [%llu, +%llu) differs (rc %d)\n", s->name, (unsigned long long)off,
                            (unsigned long long)len, rc);
            }
        }
        CHECK(bad == 0, "%s: byte ranges", s->name);
        CHECK(lsw_h5_input_read(in, i, s->nbytes, buf, 1) == LSW_E_INTERNAL, "%s: read past the end", s->name);
        CHECK(lsw_h5_input_read(in, i, s->nbytes, buf, 0) == 0, "%s: empty read at the end", s->name);
        free(buf);
    }
    lsw_h5_input_close(in);
}

static int files_equal(const char *a, const char *b)
{
    size_t na = 0, nb = 0;
    unsigned char *pa = slurp(a, &na), *pb = slurp(b, &nb);
    int eq = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return eq;
}

static void test_write_read(const char *dir)
{
    char a[4096], b[4096], c[4096];
    snprintf(a, sizeof a, "%s/a.h5", dir);
    snprintf(b, sizeof b, "%s/b.h5", dir);
    snprintf(c, sizeof c, "%s/c.h5", dir);
    int rc = write_sample(a, 3, 1, 0);
    CHECK(rc == 0, "write a.h5");
    check_reader(a);
    CHECK(lsw_h5_sniff(a) == 1, "sniff");

    /* identical bytes: a second write, a full second later (time stamps
     * would differ), with the caller padding the edge chunks itself */
    struct timespec ts = {1, 100000000};
    nanosleep(&ts, NULL);
    rc = write_sample(b, 3, 1, 1);
    CHECK(rc == 0, "write b.h5");
    CHECK(files_equal(a, b), "two writes give identical bytes");

    /* no shuffle, another level: still read back */
    rc = write_sample(c, 1, 0, 0);
    CHECK(rc == 0, "write c.h5 (no shuffle, level 1)");
    check_reader(c);
    CHECK(!files_equal(a, c), "shuffle and level change the file");
    unlink(a);
    unlink(b);
    unlink(c);
}

static void test_writer_errors(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/err.h5", dir);
    lsw_h5_writer *w;
    CHECK(lsw_h5_create(p, "{}", "", 99, 1, &w) == LSW_E_CONFIG, "level 99");
    CHECK(lsw_h5_create("/nonexistent-dir/x.h5", "{}", "", 1, 1, &w) == LSW_E_IO, "uncreatable file");
    CHECK(lsw_h5_create(p, NULL, NULL, 1, 1, &w) == 0, "create");
    uint64_t sh[2] = {10, 100000}; /* 400 kB rows: 2 per chunk, 5 chunks */
    size_t i0, i1;
    CHECK(lsw_h5_define(w, "a/b", LSW_DT_F32, 2, sh, &i0) == LSW_E_INPUT, "'/' in a name");
    CHECK(lsw_h5_define(w, ".", LSW_DT_F32, 2, sh, &i0) == LSW_E_INPUT, "'.' as a name");
    CHECK(lsw_h5_define(w, "t", LSW_DT_INVALID, 2, sh, &i0) == LSW_E_INPUT, "bad dtype");
    uint64_t huge[2] = {2, 3000000000ULL};
    CHECK(lsw_h5_define(w, "big", LSW_DT_F16, 2, huge, &i0) == LSW_E_INPUT, "row over 4 GiB");
    CHECK(lsw_h5_define(w, "t", LSW_DT_F32, 2, sh, &i0) == 0 && i0 == 0, "define t");
    CHECK(lsw_h5_define(w, "t", LSW_DT_F32, 2, sh, &i1) == LSW_E_INPUT, "defined twice");
    CHECK(lsw_h5_define(w, "u", LSW_DT_F32, 1, sh, &i1) == 0 && i1 == 1, "define u");
    uint64_t cb = lsw_h5_chunk_bytes(LSW_DT_F32, 2, sh);
    CHECK(lsw_h5_rows_per_chunk(LSW_DT_F32, 2, sh) == 2 && cb == 800000, "geometry");
    unsigned char *raw = calloc(cb, 1), *dst = xmalloc(lsw_chunk_bound(cb)), *scr = xmalloc(cb);
    size_t n = lsw_chunk_encode(raw, cb, 4, 1, 1, dst, lsw_chunk_bound(cb), scr);
    CHECK(n > 0, "encode zeros");
    CHECK(lsw_h5_write_chunk(w, 0, 1, dst, n) == LSW_E_INTERNAL, "row 1 starts no chunk");
    CHECK(lsw_h5_write_chunk(w, 0, 10, dst, n) == LSW_E_INTERNAL, "row 10 is past the end");
    CHECK(lsw_h5_write_chunk(w, 5, 0, dst, n) == LSW_E_INTERNAL, "no dataset 5");
    CHECK(lsw_h5_write_chunk(w, 0, 0, dst, 0) == LSW_E_INTERNAL, "empty chunk");
    CHECK(lsw_h5_write_chunk(w, 0, 0, dst, n) == 0, "chunk 0");
    CHECK(lsw_h5_write_chunk(w, 0, 0, dst, n) == LSW_E_INTERNAL, "chunk 0 twice");
    CHECK(lsw_h5_write_chunk(w, 0, 2, dst, n) == 0, "chunk 1");
    CHECK(lsw_h5_close(w) == LSW_E_INTERNAL, "close with chunks missing");
    CHECK(lsw_h5_create(p, NULL, NULL, 1, 1, &w) == 0, "create again");
    CHECK(lsw_h5_define(w, "t", LSW_DT_F32, 2, sh, &i0) == 0, "define");
    lsw_h5_abort(w);
    lsw_h5_abort(NULL);
    free(raw);
    free(dst);
    free(scr);
    unlink(p);
}

/* A file made with plain HDF5 calls, to break one rule at a time. */
static hid_t raw_file(const char *path)
{
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Gclose(H5Gcreate2(f, "tensors", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    return f;
}

static void raw_dataset(hid_t f, const char *name, hid_t type, const char *dtype_attr)
{
    hsize_t dims[1] = {4};
    hid_t sp = H5Screate_simple(1, dims, NULL), g = H5Gopen2(f, "tensors", H5P_DEFAULT);
    hid_t d = H5Dcreate2(g, name, type, sp, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    unsigned char zero[64] = {0};
    H5Dwrite(d, type, H5S_ALL, H5S_ALL, H5P_DEFAULT, zero);
    if (dtype_attr) {
        hid_t t = H5Tcopy(H5T_C_S1), s1 = H5Screate(H5S_SCALAR);
        H5Tset_size(t, strlen(dtype_attr) + 1);
        hid_t a = H5Acreate2(d, "dtype", t, s1, H5P_DEFAULT, H5P_DEFAULT);
        H5Awrite(a, t, dtype_attr);
        H5Aclose(a);
        H5Sclose(s1);
        H5Tclose(t);
    }
    H5Dclose(d);
    H5Gclose(g);
    H5Sclose(sp);
}

static int open_rc(const char *path)
{
    lsw_h5_input *in = NULL;
    int rc = lsw_h5_open_input(path, &in);
    lsw_h5_input_close(in);
    return rc;
}

static void test_reader_errors(const char *dir)
{
    char p[4096];
    snprintf(p, sizeof p, "%s/bad.h5", dir);
    CHECK(lsw_h5z_register() == 0, "register");
    CHECK(open_rc("/nonexistent/model.h5") == LSW_E_NOTFOUND, "missing file");
    CHECK(lsw_h5_sniff("/nonexistent/model.h5") == LSW_E_NOTFOUND, "sniff missing");
    FILE *f = fopen(p, "wb");
    fputs("not an hdf5 file, just text that is long enough to be read\n", f);
    fclose(f);
    CHECK(open_rc(p) == LSW_E_INPUT, "text file");
    CHECK(lsw_h5_sniff(p) == 0, "sniff text");

    hid_t h = H5Fcreate(p, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "no /tensors");

    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, NULL);
    H5Fclose(h);
    {
        int rc = open_rc(p);
        CHECK(rc == LSW_E_INPUT && strstr(lsw_err_detail(), "tensor 'x': no dtype attribute"),
              "no dtype attribute, detail names the tensor");
    }
    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, "BF16");
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "f32 data called BF16");
    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, "Q7");
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "unknown dtype");
    h = raw_file(p);
    raw_dataset(h, "x", H5T_STD_I32LE, "U32");
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "signed data called U32");
    h = raw_file(p);
    raw_dataset(h, "x", H5T_STD_I32BE, "I32");
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "big endian");
    { /* f16 built the way h5py builds it is accepted; with another bias it is not */
        hid_t t16 = H5Tcopy(H5T_IEEE_F32LE);
        H5Tset_fields(t16, 15, 10, 5, 0, 10);
        H5Tset_size(t16, 2);
        H5Tset_ebias(t16, 15);
        h = raw_file(p);
        raw_dataset(h, "x", t16, "F16");
        H5Fclose(h);
        CHECK(open_rc(p) == 0, "h5py's f16");
        H5Tset_ebias(t16, 14);
        h = raw_file(p);
        raw_dataset(h, "x", t16, "F16");
        H5Fclose(h);
        CHECK(open_rc(p) == LSW_E_INPUT, "f16 with bias 14");
        H5Tclose(t16);
    }
    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, "F32");
    H5Lcreate_soft("/tensors/x", h, "/tensors/y", H5P_DEFAULT, H5P_DEFAULT);
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "soft link");
    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, "F32");
    H5Gclose(H5Gcreate2(h, "tensors/sub", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT));
    H5Fclose(h);
    CHECK(open_rc(p) == LSW_E_INPUT, "group inside /tensors");
    h = raw_file(p);
    raw_dataset(h, "x", H5T_IEEE_F32LE, "F32");
    H5Fclose(h);
    CHECK(open_rc(p) == 0, "a plain contiguous F32 dataset is fine");

    /* a damaged chunk: read fails with LSW_E_READ naming the tensor */
    lsw_h5_writer *w;
    uint64_t sh[1] = {1000};
    size_t idx;
    CHECK(lsw_h5_create(p, "{}", "", 1, 1, &w) == 0 && lsw_h5_define(w, "t", LSW_DT_F32, 1, sh, &idx) == 0 &&
              lsw_h5_write_chunk(w, idx, 0, "this is not a zstd frame", 24) == 0 && lsw_h5_close(w) == 0,
          "write a damaged chunk");
    lsw_h5_input *in = NULL;
    CHECK(lsw_h5_open_input(p, &in) == 0, "open");
    if (in) {
        float buf[1000];
        int rc = lsw_h5_input_read(in, 0, 0, buf, sizeof buf);
        CHECK(rc == LSW_E_READ && strstr(lsw_err_detail(), "tensor 't'"), "damaged chunk: %d", rc);
        lsw_h5_input_close(in);
    }

    /* an edge chunk stored without its zero padding cannot be read: HDF5
     * decodes full chunks, and the filter wants exactly cd_values[1] bytes */
    uint64_t sh3[2] = {5, 100000}; /* 400 kB rows: 2 per chunk, edge of 1 row */
    CHECK(lsw_h5_create(p, "{}", "", 1, 1, &w) == 0 && lsw_h5_define(w, "e", LSW_DT_F32, 2, sh3, &idx) == 0,
          "define e");
    {
        size_t rb = 400000, cb = 800000;
        unsigned char *raw = calloc(cb, 1), *dst = xmalloc(lsw_chunk_bound(cb)), *scr = xmalloc(cb);
        for (size_t i = 0; i < cb; i++)
            raw[i] = (unsigned char)i;
        size_t n = lsw_chunk_encode(raw, cb, 4, 1, 1, dst, lsw_chunk_bound(cb), scr);
        int ok = lsw_h5_write_chunk(w, idx, 0, dst, n) == 0 && lsw_h5_write_chunk(w, idx, 2, dst, n) == 0;
        n = lsw_chunk_encode(raw, rb, 4, 1, 1, dst, lsw_chunk_bound(cb), scr); /* unpadded */
        ok = ok && lsw_h5_write_chunk(w, idx, 4, dst, n) == 0 && lsw_h5_close(w) == 0;
        CHECK(ok, "write an unpadded edge chunk");
        in = NULL;
        CHECK(lsw_h5_open_input(p, &in) == 0, "open");
        if (in) {
            unsigned char *buf = xmalloc(5 * rb);
            CHECK(lsw_h5_input_read(in, 0, 0, buf, 4 * rb) == 0 && memcmp(buf, raw, 2 * rb) == 0,
                  "full chunks read");
            CHECK(lsw_h5_input_read(in, 0, 4 * rb, buf, rb) == LSW_E_READ, "unpadded edge chunk refused");
            lsw_h5_input_close(in);
            free(buf);
        }
        free(raw);
        free(dst);
        free(scr);
    }
    unlink(p);
}

/* ---- modes for check_h5py.py ----------------------------------------- */

static int emit(const char *dir)
{
    char p[4096];
    mkdir(dir, 0777);
    snprintf(p, sizeof p, "%s/expected", dir);
    mkdir(p, 0777);
    make_sample();
    snprintf(p, sizeof p, "%s/model.h5", dir);
    int rc = write_sample(p, 3, 1, 0);
    if (rc) {
        fprintf(stderr, "unit_hdf5: %s: %s\n", lsw_err_message(rc), lsw_err_detail());
        return 1;
    }
    snprintf(p, sizeof p, "%s/expected.tsv", dir);
    FILE *list = fopen(p, "w");
    if (!list)
        return 1;
    for (size_t k = 0; k < NSAMPLE; k++) {
        sample_t *s = &sample[k];
        fprintf(list, "%s\t%s\t", s->name, lsw_dtype_name(s->dt));
        for (size_t d = 0; d < s->ndim; d++)
            fprintf(list, "%s%llu", d ? "," : "", (unsigned long long)s->shape[d]);
        fprintf(list, "\t%llu\texpected/%zu.bin\n",
                (unsigned long long)lsw_h5_rows_per_chunk(s->dt, s->ndim, s->shape), k);
        snprintf(p, sizeof p, "%s/expected/%zu.bin", dir, k);
        FILE *f = fopen(p, "wb");
        if (!f || fwrite(s->data, 1, s->nbytes, f) != s->nbytes || fclose(f) != 0)
            return 1;
    }
    snprintf(p, sizeof p, "%s/config.json", dir);
    FILE *f = fopen(p, "w");
    fputs(sample_config, f);
    fclose(f);
    return fclose(list) == 0 ? 0 : 1;
}

static int cat(const char *path, const char *name)
{
    lsw_h5_input *in;
    int rc = lsw_h5_open_input(path, &in);
    if (rc) {
        fprintf(stderr, "unit_hdf5: %s: %s\n", lsw_err_message(rc), lsw_err_detail());
        return 2;
    }
    size_t i = lsw_h5_input_find(in, name);
    if (i == (size_t)-1) {
        fprintf(stderr, "unit_hdf5: %s: no tensor '%s'\n", path, name);
        lsw_h5_input_close(in);
        return 2;
    }
    const lsw_h5_tensor *t = lsw_h5_input_at(in, i);
    unsigned char *buf = xmalloc(t->nbytes);
    rc = lsw_h5_input_read(in, i, 0, buf, t->nbytes);
    if (rc) {
        fprintf(stderr, "unit_hdf5: %s: %s\n", lsw_err_message(rc), lsw_err_detail());
        return 2;
    }
    fwrite(buf, 1, t->nbytes, stdout);
    fprintf(stderr, "%s %s", name, lsw_dtype_name(t->dtype));
    for (size_t d = 0; d < t->ndim; d++)
        fprintf(stderr, "%s%llu", d ? "," : " ", (unsigned long long)t->shape[d]);
    fputc('\n', stderr);
    free(buf);
    lsw_h5_input_close(in);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--emit"))
        return emit(argv[2]);
    if (argc == 4 && !strcmp(argv[1], "--cat"))
        return cat(argv[2], argv[3]);
    if (argc != 1) {
        fprintf(stderr, "usage: unit_hdf5 [--emit DIR | --cat FILE NAME]\n");
        return 1;
    }
    const char *tmp = getenv("TMPDIR");
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/unit_hdf5.XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_sample();
    test_layout();
    test_shuffle();
    test_encode();
    test_filter();
    test_level1();
    test_write_read(dir);
    test_writer_errors(dir);
    test_reader_errors(dir);
    rmdir(dir);
    for (size_t k = 0; k < NSAMPLE; k++)
        free(sample[k].data);
    free(sample_plan);
    printf("unit_hdf5: %ld passed, %ld failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
