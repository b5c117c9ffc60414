#!/usr/bin/env bash
# bench_scaling.sh [--size small|full|large] [--ranks "1 2"] [--formats "safetensors hdf5"] [--out DIR] [--runs N]
# Scaling of one layer swap (bottom 4, top 2, transitions 2+2, magnitude
# weights) from 1 to N MPI ranks, inputs in the page cache, both formats:
# wall time, speed-up and parallel efficiency t1 / (n * tn) (target >= 0.8
# at 16 ranks on a 16-core machine); for HDF5 also the compressed size over
# the order-0 entropy bound of the two byte planes (target <= 1.05) and the
# MB/s of input bytes per rank.  On this 2-core machine use --ranks "1 2".
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE=small OUT=./bench-out RUNS=3 RANKS="1 2" FORMATS="safetensors hdf5"
while [ $# -gt 0 ]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --runs) RUNS=$2; shift 2 ;; --ranks) RANKS=$2; shift 2 ;;
    --formats) FORMATS=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0"; exit 0 ;; *) die "unknown option $1" ;;
  esac
done
case $SIZE in
  full) SYN=(--layers 16 --hidden 2048 --intermediate 4096 --vocab 32000) ;;       # ~1.5 GB per model
  large) SYN=(--layers 20 --hidden 4096 --intermediate 11008 --vocab 32000) ;;     # ~8 GB per model
  small) SYN=(--layers 12 --hidden 512 --intermediate 1536 --vocab 8000) ;;
  *) die "--size small|full|large" ;;
esac
W=$OUT/scaling-$SIZE
mkdir -p "$W"
log "synth base + 2 experts (${SYN[*]}) -> $W/models"
synth "${SYN[@]}" --experts 2 -o "$W/models"
cat > "$W/merge.json" <<JSON
{"models": {"base": "models/base", "math": "models/task1", "swh": "models/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "swh", "bottom": 4, "top": 2, "lower_transition": 2,
   "upper_transition": 2, "transition_weights": "magnitude", "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "out", "compression": {"codec": "zstd", "level": 1, "shuffle": true}}}
JSON
warm "$W/models"
OUTB=$("$LAYERSWAP" merge "$W/merge.json" --dry-run | awk '/^# layerswap plan/ { for (i = 1; i <= NF; i++) if ($i == "bytes") print $(i - 1) }')
declare -A T
for fmt in $FORMATS; do
  for n in $RANKS; do
    ts=()
    for ((r = 0; r < RUNS; r++)); do
      rm -rf "$W/out-$fmt-$n"; sync
      log "$fmt at $n rank(s), run $((r + 1))/$RUNS"
      ts+=("$(wall mpirun -n "$n" "$LAYERSWAP" merge "$W/merge.json" --format "$fmt" -o "$W/out-$fmt-$n" --quiet --summary "$W/summary-$fmt-$n.json")")
    done
    T[$fmt,$n]=$(median "${ts[@]}")
  done
done
first=${RANKS%% *}
for fmt in $FORMATS; do
  for n in $RANKS; do
    for f in "$W/out-$fmt-$first"/model*; do
      cmp -s "$f" "$W/out-$fmt-$n/$(basename "$f")" || die "$fmt output $(basename "$f") differs at $n ranks"
    done
  done
done
# order-0 entropy bound of the two byte planes of the BF16 output
BOUND=$("$PY" - "$W/out-safetensors-$first" <<'PY'
import glob, json, struct, sys
import numpy as np
hist = [np.zeros(256), np.zeros(256)]
for f in sorted(glob.glob(sys.argv[1] + "/model*.safetensors")):
    raw = open(f, "rb").read(); n = struct.unpack("<Q", raw[:8])[0]
    for k, v in json.loads(raw[8:8 + n]).items():
        if k == "__metadata__" or v["dtype"] != "BF16": continue
        b, e = v["data_offsets"]; a = np.frombuffer(raw[8 + n + b:8 + n + e], np.uint8)
        hist[0] += np.bincount(a[0::2], minlength=256); hist[1] += np.bincount(a[1::2], minlength=256)
bits = sum(-(h[h > 0] / h.sum() * np.log2(h[h > 0] / h.sum())).sum() for h in hist)
print("%.6f" % (bits / 16))
PY
)
RATIO=null
[ -f "$W/summary-hdf5-$first.json" ] &&
  RATIO=$("$PY" -c "import json,sys; print(json.load(open(sys.argv[1]))['compression_ratio'])" "$W/summary-hdf5-$first.json")
{
  echo "format|ranks|wall s (median of $RUNS)|speed-up|efficiency|MB/s per rank"
  for fmt in $FORMATS; do
    for n in $RANKS; do
      t=${T[$fmt,$n]} t1=${T[$fmt,$first]}
      echo "$fmt|$n|$t|$(ratio "$t1" "$t")|$(awk -v a="$t1" -v b="$t" -v n="$n" -v f="$first" 'BEGIN { printf "%.3f", a * f / (n * b) }')|$(awk -v o="$OUTB" -v t="$t" -v n="$n" 'BEGIN { printf "%.0f", o / t / n / 1e6 }')"
    done
  done
} | table
echo
{
  echo "HDF5 compression|value|note"
  echo "compressed / raw|$RATIO|zstd level 1 + byte shuffle"
  echo "order-0 entropy bound of the byte planes|$BOUND|bits per byte / 8"
  echo "compressed / entropy bound|$(ratio "$RATIO" "$BOUND")|target <= 1.05"
  echo "output bytes|$OUTB|outputs identical at every rank count (checked)"
  echo "cores|$(nproc)|$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//')"
} | table
