# benchmarks/lib.sh — helpers shared by the benchmark scripts (sourced).
# Needs bash, awk, /usr/bin/time (Debian package `time`), /usr/bin/python3.

LAYERSWAP=${LAYERSWAP:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/build/engine/layerswap}
PY=/usr/bin/python3
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none

log() { echo "[bench] $*" >&2; }
die() { echo "$(basename "$0"): error: $*" >&2; exit 1; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
# median of the numbers given as arguments
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", (b > 0) ? a / b : 0 }'; }
# wall seconds of one run of "$@" (output discarded; exit status checked)
wall() { local t0 t1; t0=$(now); "$@" >/dev/null 2>&1 || die "failed: $*"; t1=$(now); elapsed "$t0" "$t1"; }
# median wall seconds of N runs of "$@"
median_wall() { local n=$1 i ts=(); shift; for ((i = 0; i < n; i++)); do ts+=("$(wall "$@")"); done; median "${ts[@]}"; }
# read every file of the given folders once, so runs start from the page cache
warm() { find "$@" -type f -name '*.safetensors' -exec cat {} + >/dev/null; }
# synthesise (idempotent: synth skips models whose manifest matches)
synth() { "$LAYERSWAP" synth "$@" --quiet || die "layerswap synth $*"; }
# memory copy bandwidth in GB/s (numpy copy of 1 GiB, best of 3)
membw() {
  "$PY" - <<'PY'
import numpy as np, time
a = np.ones(1 << 27); b = np.empty_like(a); best = 1e9
for _ in range(3):
    t = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t)
print("%.2f" % (a.nbytes / best / 1e9))
PY
}
# "label | value | note" rows -> an aligned table (tab-separated without util-linux's column)
table() { if command -v column >/dev/null; then column -t -s '|' -o ' | '; else tr '|' '\t'; fi; }
