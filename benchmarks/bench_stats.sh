#!/usr/bin/env bash
# bench_stats.sh — how close `layerswap stats` runs to reading its inputs.
#
# Synthesises a base and 4 experts (~300 MB each, bf16, Llama names), then for
# E = 1, 2, 4 experts runs `stats` and prints a table:
#   read_s    seconds to read the 1 + E models from the page cache (cat > /dev/null, warm)
#   stats_s   seconds of the whole `stats` command (same warm cache), best of REPS
#   ratio     stats_s / read_s
#   pass_s    seconds from stats' own summary line (after MPI start-up: the pass over the
#             data, the summary and every output file), best of REPS; ratio2 = pass_s / read_s
#   kernel    the MAV kernel's throughput (bytes of base + experts per second of kernel
#             time, from stats' summary line) and that as a fraction of the memory
#             bandwidth measured in the same run (numpy copy of 1 GiB, read + write bytes).
#
# Environment: BUILD (default ./build), OUT (default ./bench-out/stats, git-ignored),
# NP (MPI ranks, default 1), REPS (default 3), LAYERS/HIDDEN/INTER/VOCAB (model size),
# MPIEXEC (default mpiexec).  Uses `layerswap stats` when the binary dispatches it, else
# the test driver build/tests/stats_driver.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${BUILD:-$ROOT/build}
OUT=${OUT:-$ROOT/bench-out/stats}
NP=${NP:-1}
REPS=${REPS:-3}
LAYERS=${LAYERS:-10}
HIDDEN=${HIDDEN:-1024}
INTER=${INTER:-2816}
VOCAB=${VOCAB:-16000}
MPIEXEC=${MPIEXEC:-mpiexec}
PY=/usr/bin/python3
LSW=$BUILD/engine/layerswap
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

if "$LSW" stats --help >/dev/null 2>&1; then
  STATS=("$LSW" stats)
else
  STATS=("$BUILD/tests/stats_driver" stats)
fi
if [ "$NP" -gt 1 ]; then
  STATS=("$MPIEXEC" -n "$NP" "${STATS[@]}")
fi

mkdir -p "$OUT"
SYN=$OUT/models
"$LSW" synth --layers "$LAYERS" --hidden "$HIDDEN" --intermediate "$INTER" --vocab "$VOCAB" \
  --experts 4 --seed 11 -o "$SYN" --quiet
echo "# models: $(du -sh "$SYN/base" | cut -f1) each (base + task1 lang1 task2 lang2) in $SYN"
echo "# stats command: ${STATS[*]}"
echo "# cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(nproc) cores"

# memory bandwidth: numpy copy of 1 GiB (read 1 GiB + write 1 GiB), best of 5
MEMBW=$("$PY" - <<'EOF'
import time, numpy as np
a = np.ones(1 << 27)            # 1 GiB of float64
b = np.empty_like(a)
np.copyto(b, a)
best = 1e9
for _ in range(5):
    t = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t)
print("%.3f" % (2 * a.nbytes / best / 1e9))
EOF
)
echo "# memory bandwidth (numpy copy of 1 GiB, read+write bytes): $MEMBW GB/s"

files_of() { # safetensors files of the named models
  for m in "$@"; do ls "$SYN/$m"/*.safetensors; done
}

best_of() { # best wall time in seconds of REPS runs of "$@" (output discarded)
  local best="" t0 t1 dt
  for _ in $(seq "$REPS"); do
    t0=$(date +%s.%N); "$@" >/dev/null 2>&1; t1=$(date +%s.%N)
    dt=$(echo "$t1 - $t0" | bc -l)
    if [ -z "$best" ] || [ "$(echo "$dt < $best" | bc -l)" = 1 ]; then best=$dt; fi
  done
  printf '%.3f' "$best"
}

catfiles() { cat "$@" >/dev/null; }

printf '\n%-3s %-8s %-7s %-8s %-6s %-7s %-6s %-9s %-11s %-8s\n' E GB_read read_s stats_s ratio pass_s ratio2 kernel_s "kernel_GB/s" of_membw
for E in 1 2 4; do
  case $E in
    1) EX=(task1) ;;
    2) EX=(task1 lang1) ;;
    4) EX=(task1 lang1 task2 lang2) ;;
  esac
  mapfile -t FILES < <(files_of base "${EX[@]}")
  catfiles "${FILES[@]}"; catfiles "${FILES[@]}"   # warm the page cache
  BYTES=$(cat "${FILES[@]}" | wc -c)
  READ_S=$(best_of catfiles "${FILES[@]}")
  ARGS=(--base "$SYN/base")
  for m in "${EX[@]}"; do ARGS+=("$SYN/$m"); done
  ARGS+=(-o "$OUT/stats-E$E" --overwrite)
  STATS_S=$(best_of "${STATS[@]}" "${ARGS[@]}")
  # the summary line of the best of REPS more runs: in-process time (after MPI start-up)
  # and rank 0's kernel time
  BEST_LINE="" BEST_T=""
  for _ in $(seq "$REPS"); do
    LINE=$("${STATS[@]}" "${ARGS[@]}" 2>&1 >/dev/null | grep 'MAV kernel' | tail -1)
    T=$(echo "$LINE" | sed -n 's/.* in \([0-9.]*\) s (.*/\1/p')
    if [ -z "$BEST_T" ] || [ "$(echo "$T < $BEST_T" | bc -l)" = 1 ]; then BEST_T=$T; BEST_LINE=$LINE; fi
  done
  KS=$(echo "$BEST_LINE" | sed -n 's/.*MAV kernel \([0-9.]*\) s (\([0-9.]*\) GB\/s[,)].*/\1/p')
  KR=$(echo "$BEST_LINE" | sed -n 's/.*MAV kernel \([0-9.]*\) s (\([0-9.]*\) GB\/s[,)].*/\2/p')
  printf '%-3s %-8.3f %-7s %-8s %-6.2f %-7s %-6.2f %-9s %-11s %-8.3f\n' "$E" "$(echo "$BYTES / 1000000000" | bc -l)" \
    "$READ_S" "$STATS_S" "$(echo "$STATS_S / $READ_S" | bc -l)" "$BEST_T" "$(echo "$BEST_T / $READ_S" | bc -l)" \
    "$KS" "$KR" "$(echo "$KR / $MEMBW" | bc -l)"
done
echo
echo "# ratio  = stats_s (whole command, MPI start-up included) / read_s (cat of the same files, warm cache)."
echo "# ratio2 = pass_s (stats' own summary line: the pass, summary and output files) / read_s."
echo "# kernel_GB/s counts base + expert bytes per second of MAV kernel time (rank 0; NP=$NP)."
