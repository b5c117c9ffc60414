#!/usr/bin/env bash
# device_scaling.sh — issue 3's 1 -> 16-rank scaling measurement, in one call
# on the lent 16-core machine (Ubuntu 24.04: Open MPI 4.1.6, serial HDF5, no
# cJSON).  Needs Debian's libcjson1 and libcjson-dev .debs in .devdeps/
# (`mkdir .devdeps && cd .devdeps && apt-get download libcjson1 libcjson-dev`,
# ignored by git) carried to the machine:
#   device run: carry [".devdeps"], command "bash benchmarks/device_scaling.sh"
# Builds with the serial HDF5 there (rank 0 alone writes model.h5, so serial
# HDF5 calls suffice), synthesises a base and two ~8 GB experts, and prints
# the scaling table of benchmarks/bench_scaling.sh for 1, 2, 4, 8, 16 ranks,
# also into $OUT/scaling.txt.  Before that, tests/hf_load_check.py loads merged
# outputs with the machine's transformers (into $OUT/hf.txt).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
dep=/tmp/lsw-devdeps
mkdir -p "$dep"
for f in .devdeps/*.deb; do dpkg -x "$f" "$dep"; done
pc=$dep/usr/lib/x86_64-linux-gnu/pkgconfig
sed -i "s|^prefix=.*|prefix=$dep/usr|" "$pc/libcjson.pc"
export PKG_CONFIG_PATH=$pc LD_LIBRARY_PATH=$dep/usr/lib/x86_64-linux-gnu
cmake -S . -B build-dev -DCMAKE_BUILD_TYPE=Release -DLSW_BUILD_TESTS=OFF -DLSW_REQUIRE_PARALLEL_HDF5=OFF >/dev/null
cmake --build build-dev -j"$(nproc)" >/dev/null
export LAYERSWAP=$root/build-dev/engine/layerswap
# first, quick: the outputs load in real transformers (docs/output.md), into $OUT/hf.txt
python3 tests/hf_load_check.py "$LAYERSWAP" tests/data /tmp/lsw-hf 2>&1 | tee "${OUT:-/tmp}/hf.txt" || true
nproc; free -g | head -2; df -h /tmp | tail -1
bash benchmarks/bench_scaling.sh --size large --ranks "1 2 4 8 16" --runs "${RUNS:-2}" --out "${WORK:-/tmp/lsw-scaling}" \
  | tee "${OUT:-/tmp}/scaling.txt"
