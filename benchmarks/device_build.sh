#!/usr/bin/env bash
# device_build.sh — build layerswap on a machine without cJSON and without parallel HDF5
# (the lent 16-core machine: Ubuntu 24.04, gcc 13, CMake 4, Open MPI 4.1.6, libzstd,
# serial HDF5, no cJSON, no network).
#
#   benchmarks/device_build.sh --fetch-debs
#       here (Debian 12, with network): download Debian's libcjson1 and libcjson-dev
#       .debs into benchmarks/.devdeps/ (git-ignored); carry that folder to the machine.
#   benchmarks/device_build.sh [BUILD_DIR]
#       there: if pkg-config finds no libcjson (or LSW_FORCE_DEBS=1), unpack the .debs
#       with `dpkg -x` into $LSW_DEPS (default /tmp/lsw-devdeps), point their
#       pkg-config file at that prefix, then configure with
#       -DLSW_REQUIRE_PARALLEL_HDF5=OFF -DLSW_BUILD_TESTS=OFF and build with all cores.
#       Prints the environment lines to source before running the binary
#       (LD_LIBRARY_PATH), also written to BUILD_DIR/device-env.sh.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(dirname "$HERE")
DEBS=$HERE/.devdeps
if [ "${1:-}" = --fetch-debs ]; then
  mkdir -p "$DEBS"
  (cd "$DEBS" && apt-get download libcjson1 libcjson-dev)
  ls -l "$DEBS"
  exit 0
fi
BUILD=${1:-$ROOT/build-device}
DEP=${LSW_DEPS:-/tmp/lsw-devdeps}
ENVF=$BUILD/device-env.sh
mkdir -p "$BUILD"
: >"$ENVF"
if [ "${LSW_FORCE_DEBS:-0}" = 1 ] || ! pkg-config --exists libcjson 2>/dev/null; then
  shopt -s nullglob
  debs=("$DEBS"/libcjson*.deb)
  shopt -u nullglob
  [ ${#debs[@]} -ge 2 ] || { echo "device_build.sh: no libcjson found and no .debs in $DEBS (run --fetch-debs where apt works)" >&2; exit 1; }
  rm -rf "$DEP"
  mkdir -p "$DEP"
  for d in "${debs[@]}"; do dpkg -x "$d" "$DEP"; done
  lib=$(dirname "$(find "$DEP" -name 'libcjson.so.1*' -type f | head -1)")
  pc=$(find "$DEP" -name libcjson.pc | head -1)
  [ -n "$pc" ] && [ -d "$lib" ] || { echo "device_build.sh: unexpected .deb contents under $DEP" >&2; exit 1; }
  sed -i -e "s|^prefix=.*|prefix=$DEP/usr|" -e "s|^libdir=.*|libdir=$lib|" -e "s|^includedir=.*|includedir=$DEP/usr/include|" "$pc"
  export PKG_CONFIG_PATH=$(dirname "$pc")${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
  export LD_LIBRARY_PATH=$lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  echo "export LD_LIBRARY_PATH=$LD_LIBRARY_PATH" >"$ENVF"
  echo "device_build.sh: cJSON $(pkg-config --modversion libcjson) from the .debs, unpacked under $DEP" >&2
fi
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSW_BUILD_TESTS=OFF \
  -DLSW_REQUIRE_PARALLEL_HDF5=OFF >"$BUILD/configure.log" 2>&1 || { tail -30 "$BUILD/configure.log" >&2; exit 1; }
cmake --build "$BUILD" -j"$(nproc)" >"$BUILD/build.log" 2>&1 || { tail -30 "$BUILD/build.log" >&2; exit 1; }
"$BUILD/engine/layerswap" --version >&2
cat "$ENVF"
