#!/usr/bin/env bash
# sanitize.sh SOURCE TREE
# Configure and build SOURCE with -DLSW_ASAN=ON -DLSW_UBSAN=ON into TREE (kept between
# runs, so a rebuild is incremental), then run its unit, fuzz-replay and CLI tests there
# (labels unit and cli, not mpi, slurm or nosanitize).  tests/CMakeLists.txt gives every test of such a
# tree ASAN_OPTIONS with leak detection, LSAN_OPTIONS with tests/lsan.supp, UBSAN_OPTIONS
# that halt on the first finding.  Exit 0 only if all pass.
set -euo pipefail
src=$1 tree=$2
cmake -S "$src" -B "$tree" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLSW_ASAN=ON -DLSW_UBSAN=ON >"$tree.configure.log" 2>&1 ||
  { cat "$tree.configure.log"; exit 1; }
cmake --build "$tree" -j2 >"$tree.build.log" 2>&1 || { tail -50 "$tree.build.log"; exit 1; }
exec ctest --test-dir "$tree" -L 'unit|cli' -LE 'mpi|slurm|nosanitize' -j2 --output-on-failure
