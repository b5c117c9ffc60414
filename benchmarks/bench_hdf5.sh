#!/usr/bin/env bash
# bench_hdf5 — how well and how fast model.h5 chunks compress (docs/output.md).
#
#   benchmarks/bench_hdf5.sh [MiB=200] [LEVEL=1] [WORKDIR=/tmp/bench_hdf5]
#
# Makes a bf16 tensor of N(0, 0.02) values ([MiB*64, 8192], 200 MiB by
# default; numpy, float32 rounded to nearest even), then reports:
#   * the order-0 entropy bound of its two byte planes: H(high bytes) +
#     H(low bytes), in bits per 16-bit value, as a fraction of the size;
#   * the stored size (shuffle + zstd at LEVEL in ~1 MiB chunks of whole rows,
#     lsw_chunk_encode) as a fraction of the size, and that ÷ the bound;
#   * lsw_chunk_encode and lsw_chunk_decode speed on one core, MB/s (10^6 B)
#     of raw data, best of 3 passes;
#   * the size of the model.h5 written from those chunks (lsw_hdf5 writer)
#     and the speed of reading it back with lsw_h5_input_read.
# Builds its own tiny C driver against io/*.c (no CMake build needed).
set -euo pipefail
MIB=${1:-200}
LEVEL=${2:-1}
WORK=${3:-/tmp/bench_hdf5}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
PY=/usr/bin/python3
mkdir -p "$WORK"
ROWS=$((MIB * 64))
COLS=8192
RAW=$WORK/bf16_${ROWS}x${COLS}.raw

if [ ! -s "$RAW" ]; then
  "$PY" - "$RAW" "$ROWS" "$COLS" <<'EOF'
import sys, numpy as np
path, rows, cols = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rng = np.random.default_rng(12345)
with open(path, "wb") as f:
    for r in range(0, rows, 1024):
        x = rng.normal(0.0, 0.02, size=(min(1024, rows - r), cols)).astype(np.float32)
        u = x.view(np.uint32)
        bf = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)  # round to nearest even
        f.write(bf.tobytes())
EOF
fi

"$PY" - "$RAW" <<'EOF'
import sys, numpy as np
a = np.fromfile(sys.argv[1], dtype=np.uint16)
def h(b):
    p = np.bincount(b, minlength=256).astype(np.float64)
    p = p[p > 0] / len(b)
    return float(-(p * np.log2(p)).sum())
hi, lo = h((a >> 8).astype(np.uint8)), h((a & 0xFF).astype(np.uint8))
print(f"values {a.size}  H(high bytes) {hi:.4f} bits  H(low bytes) {lo:.4f} bits  "
      f"bound {(hi + lo) / 16:.4f} of the size")
open(sys.argv[1] + ".bound", "w").write(f"{(hi + lo) / 16:.6f}\n")
EOF

cat > "$WORK/bench.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "lsw_error.h"
#include "lsw_hdf5.h"
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec * 1e-9; }
int main(int argc, char **argv) {
    const char *path = argv[1], *out = argv[2];
    uint64_t shape[2] = {strtoull(argv[3], 0, 10), strtoull(argv[4], 0, 10)};
    int level = atoi(argv[5]);
    double bound = atof(argv[6]);
    size_t nbytes = shape[0] * shape[1] * 2;
    unsigned char *raw = malloc(nbytes), *back = malloc(nbytes);
    FILE *f = fopen(path, "rb");
    if (!f || fread(raw, 1, nbytes, f) != nbytes) { fprintf(stderr, "cannot read %s\n", path); return 1; }
    fclose(f);
    uint64_t rpc = lsw_h5_rows_per_chunk(LSW_DT_BF16, 2, shape), cb = lsw_h5_chunk_bytes(LSW_DT_BF16, 2, shape);
    uint64_t nch = lsw_h5_chunk_count(LSW_DT_BF16, 2, shape), rb = shape[1] * 2;
    size_t cap = lsw_chunk_bound(cb);
    unsigned char **z = malloc(nch * sizeof *z), *scratch = malloc(cb);
    size_t *zn = malloc(nch * sizeof *zn);
    for (uint64_t c = 0; c < nch; c++) z[c] = malloc(cap);
    double best_e = 1e30, best_d = 1e30;
    size_t total = 0;
    for (int pass = 0; pass < 3; pass++) {
        double t0 = now();
        total = 0;
        for (uint64_t c = 0; c < nch; c++) {
            uint64_t r0 = c * rpc, nr = shape[0] - r0 < rpc ? shape[0] - r0 : rpc;
            zn[c] = lsw_chunk_encode_padded(raw + r0 * rb, nr * rb, cb, 2, 1, level, z[c], cap, scratch);
            if (!zn[c]) { fprintf(stderr, "encode failed\n"); return 1; }
            total += zn[c];
        }
        double t1 = now();
        unsigned char *chunk = malloc(cb);
        for (uint64_t c = 0; c < nch; c++) {
            uint64_t r0 = c * rpc, nr = shape[0] - r0 < rpc ? shape[0] - r0 : rpc;
            if (lsw_chunk_decode(z[c], zn[c], 2, 1, chunk, cb, scratch)) { fprintf(stderr, "decode failed\n"); return 1; }
            memcpy(back + r0 * rb, chunk, nr * rb);
        }
        double t2 = now();
        free(chunk);
        if (t1 - t0 < best_e) best_e = t1 - t0;
        if (t2 - t1 < best_d) best_d = t2 - t1;
    }
    if (memcmp(raw, back, nbytes)) { fprintf(stderr, "round trip differs\n"); return 1; }
    double ratio = (double)total / nbytes;
    printf("chunks %llu x %llu rows (%llu bytes)  level %d\n", (unsigned long long)nch, (unsigned long long)rpc,
           (unsigned long long)cb, level);
    printf("stored %.4f of the size  = %.4f x the entropy bound (%.4f)\n", ratio, ratio / bound, bound);
    printf("lsw_chunk_encode %.0f MB/s per core   lsw_chunk_decode %.0f MB/s per core\n", nbytes / best_e / 1e6,
           nbytes / best_d / 1e6);
    lsw_h5_writer *w;
    size_t idx;
    double t0 = now();
    int rc = lsw_h5_create(out, "{}", "bench", level, 1, &w);
    if (!rc) rc = lsw_h5_define(w, "model.embed_tokens.weight", LSW_DT_BF16, 2, shape, &idx);
    for (uint64_t c = 0; c < nch && !rc; c++) rc = lsw_h5_write_chunk(w, idx, c * rpc, z[c], zn[c]);
    rc = rc ? rc : lsw_h5_close(w);
    if (rc) { fprintf(stderr, "%s: %s\n", lsw_err_message(rc), lsw_err_detail()); return 1; }
    FILE *g = fopen(out, "rb");
    fseek(g, 0, SEEK_END);
    long sz = ftell(g);
    fclose(g);
    printf("model.h5 %ld bytes = %.4f of the size (HDF5 metadata %ld bytes), written in %.2f s from encoded chunks\n",
           sz, (double)sz / nbytes, sz - (long)total, now() - t0);
    lsw_h5_input *in;
    if ((rc = lsw_h5_open_input(out, &in))) { fprintf(stderr, "%s: %s\n", lsw_err_message(rc), lsw_err_detail()); return 1; }
    memset(back, 0, nbytes);
    t0 = now();
    for (uint64_t c = 0; c < nch && !rc; c++) { /* chunk by chunk, as the engine reads */
        uint64_t r0 = c * rpc, nr = shape[0] - r0 < rpc ? shape[0] - r0 : rpc;
        rc = lsw_h5_input_read(in, 0, r0 * rb, back + r0 * rb, nr * rb);
    }
    double t1 = now();
    lsw_h5_input_close(in);
    if (rc || memcmp(raw, back, nbytes)) { fprintf(stderr, "model.h5 reads back wrong\n"); return 1; }
    printf("lsw_h5_input_read of model.h5 %.0f MB/s (H5Dread through the registered filter)\n", nbytes / (t1 - t0) / 1e6);
    return 0;
}
EOF
cc -std=c11 -O2 -ffp-contract=off -D_GNU_SOURCE -DLSW_VERSION='"bench"' -DLSW_HAVE_HDF5=1 \
   $(pkg-config --cflags hdf5-openmpi) -I"$ROOT/io" "$WORK/bench.c" \
   "$ROOT/io/lsw_hdf5.c" "$ROOT/io/lsw_zstd_filter.c" "$ROOT/io/lsw_h5layout.c" "$ROOT/io/lsw_dtype.c" \
   "$ROOT/io/lsw_error.c" $(pkg-config --libs hdf5-openmpi libzstd) -o "$WORK/bench"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')  zstd $(pkg-config --modversion libzstd)"
"$WORK/bench" "$RAW" "$WORK/model.h5" "$ROWS" "$COLS" "$LEVEL" "$(cat "$RAW.bound")"
