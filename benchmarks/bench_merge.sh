#!/usr/bin/env bash
# bench_merge.sh — how close does `layerswap merge` come to the physical floor?
#
# A layer swap with transition zones (bottom L/4, top L/8, L/8 transition layers on each
# side, uniform weights, non-layer tensors averaged) of two synthetic bf16 models
# (task1, lang1; 1.47 GB each at --size full). In the same interleaved rounds:
#   merge at each --mem value (what a larger budget buys),
#   cp + fsync of one model's files into a fresh folder (the floor to beat),
#   dd oflag=direct of the output's size (the disk's direct-write bandwidth),
#   cat of the two input models, memcpy of the output's size.
# Then, in rounds of their own, the same merge against the naive state-dict peers
# (numpy: naive_merge.py; torch: naive_merge_torch.py), whose times are printed beside
# the ratios (those ratios depend on the machine's page-fault cost and Python).
# The merge output is checked once with `layerswap verify`, and the peers' tensors are
# compared with it (same formula: the bytes should be identical).
set -euo pipefail
BENCH_NAME=bench_merge
. "$(dirname "$0")/lib.sh"
MEMS="64M 512M 2G" PEER_PAIRS=
usage() {
  cat <<EOF
Usage: bench_merge.sh [--size S] [--pairs N] [--out DIR] [--mem "64M 512M 2G"] [--peers "numpy torch"]
                      [--peer-pairs N]
Layer swap of two models against cp + fsync, dd oflag=direct, cat and memcpy (paired and
interleaved), peak RSS per --mem value, and the naive numpy / torch state-dict merges.
$BENCH_COMMON_HELP
  --mem LIST       --mem values to measure, the first one is the reference (default "64M 512M 2G")
  --peers LIST     naive peers to run: numpy, torch, both or "" (default "numpy torch")
  --peer-pairs N   interleaved rounds of merge vs the peers (default: --pairs; at --size full a
                   round of both peers takes 20 s to 3 minutes, depending on page-fault costs)
Disk: --size full needs about 14 GB free under --out.
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --mem) MEMS=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --peer-pairs) PEER_PAIRS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
PEER_PAIRS=${PEER_PAIRS:-$BENCH_PAIRS}
bench_setup
[ "$BENCH_SIZE" = full ] && bench_need_gb 14
bench_models "$BENCH_SIZE"
swap_geometry "$LAYERS"
CFG=$W/merge.json
swap_config "$CFG" "$M/base" "$M/task1" "$M/lang1" uniform "$W/merged" '"format": "safetensors", "dtype": "input"'
mapfile -t IN < <(model_files "$M/task1" "$M/lang1")
mapfile -t ONE < <(model_files "$M/task1")
"$LAYERSWAP" merge "$CFG" --dry-run >"$W/plan.txt" || die "layerswap merge --dry-run failed"
warm_cache "${IN[@]}"

MEM0=${MEMS%% *}
SIDES=()
for m in $MEMS; do
  side "merge-$m" --prep "$PREP_SCRATCH" -- "$LAYERSWAP" merge "$CFG" -o "$W/run/merge-$m" --mem "$m" --quiet
  SIDES+=("merge-$m")
done
peer_sides "" layer_swap "task=$M/task1" "lang=$M/lang1" "bottom=$SW_BOTTOM" "top=$SW_TOP" \
  "lower=$SW_LOWER" "upper=$SW_UPPER" non_layer=average
# checks, once (these runs are also the warm-up): the merge verifies, the peers' tensors
# are compared with it
bench_keep "merge-$MEM0" "${PSIDES[@]}"
"$LAYERSWAP" verify "$W/check/merge-$MEM0" >/dev/null || die "layerswap verify of the merge output failed"
OUT_BYTES=$(bytes_of $(model_files "$W/check/merge-$MEM0"))
declare -A SAME
for p in "${PSIDES[@]}"; do SAME[$p]=$("$PY" "$BENCH_LIB/benchlib.py" same "$W/check/merge-$MEM0" "$W/check/$p"); done
bench_checks_done

floor_cp cp "${ONE[@]}"
floor_dd dd "$OUT_BYTES"
floor_cat cat "${IN[@]}"
floor_mem memcpy "$OUT_BYTES"
FLOORS=(cp dd cat memcpy)
bench_warmup "${SIDES[@]:1}" "${FLOORS[@]}"
bench_rounds "$BENCH_PAIRS" "${SIDES[@]}" "${FLOORS[@]}"

table_begin "Layer swap of two $(gb "$(bytes_of "${ONE[@]}")") models (L = $LAYERS: bottom $SW_BOTTOM, top $SW_TOP, transitions $SW_LOWER + $SW_UPPER), output $(gb "$OUT_BYTES")" \
  "measure|value [min–max]|target|note"
row "merge --mem $MEM0, wall|$(t_fmt "merge-$MEM0")||CPU user + sys $(cpu_fmt "merge-$MEM0")"
row "merge / (cp + fsync of one model)|$(r_fmt "merge-$MEM0" cp)|≤ 1.0|$(verdict "$(r_med "merge-$MEM0" cp)" '<=' 1.0)"
row "merge / (dd oflag=direct of the output's bytes)|$(r_fmt "merge-$MEM0" dd "$(div "$OUT_BYTES" "${_S_BYTES[dd]}" 6)")||1.0 = the disk's direct-write speed"
row "merge / (cat of both inputs)|$(r_fmt "merge-$MEM0" cat)||"
row "peak RSS, merge --mem $MEM0|$(rss_mb "merge-$MEM0")||largest process"
for m in $MEMS; do
  [ "$m" = "$MEM0" ] && continue
  row "merge --mem $m / merge --mem $MEM0|$(r_fmt "merge-$m" "merge-$MEM0")||peak RSS $(rss_mb "merge-$m"); / (cp + fsync) $(r_fmt "merge-$m" cp)"
done
table_end
floors_table "${FLOORS[@]}"

# --- the naive peers, in rounds of their own --------------------------------------------
if [ ${#PSIDES[@]} -gt 0 ]; then
  BENCH_SET=peers
  bench_warmup "${PSIDES[@]}"
  bench_rounds "$PEER_PAIRS" "merge-$MEM0" "${PSIDES[@]}"
  table_begin "Naive state-dict peers of the same merge (rounds of their own)" \
    "command|time [min–max]|its time / merge's [min–max]|peak RSS|tensors vs layerswap's"
  row "layerswap merge --mem $MEM0|$(t_fmt "merge-$MEM0")|1|$(rss_mb "merge-$MEM0")|—"
  for p in "${PSIDES[@]}"; do
    row "$p state-dict merge|$(t_fmt "$p")|$(r_fmt "$p" "merge-$MEM0")|$(rss_mb "$p")|${SAME[$p]}"
  done
  table_end
  echo "- the peers' times depend on the machine (page faults, Python, BLAS threads): compare them only within one run"
fi
bench_footer
