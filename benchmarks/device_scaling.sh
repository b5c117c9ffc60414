#!/usr/bin/env bash
# device_scaling.sh — scaling from 1 to 16 ranks on a 16-core machine, in one call of at
# most ~8 minutes, start to end (the lent machine: Ubuntu 24.04, gcc 13, CMake 4, Open
# MPI 4.1.6, libzstd, serial HDF5, no cJSON, no network; Python with torch and
# transformers).
#
# Before (here, with network):  benchmarks/device_build.sh --fetch-debs
# There:  carry ["benchmarks/.devdeps"], command "bash benchmarks/device_scaling.sh",
#         timeout_s 600; the tables are printed and also written to $OUT/device_scaling.md.
#
# 1. builds layerswap with benchmarks/device_build.sh (cJSON from the carried .debs,
#    serial HDF5), unless --layerswap names a binary;
# 2. runs tests/hf_load_check.py on merged outputs of the fixtures (transformers loads
#    them with every key; the fixtures' logits are exact);
# 3. writes four synthetic models of ~8.3 GB (--size large: 21 layers, hidden 4096)
#    with four `layerswap synth --seed S` processes at once (independent checkpoints of
#    one shape, to spare device time; values do not change what is measured here);
# 4. runs, at 1, 2, 4, 8, 16 ranks: a layer swap to safetensors, the same to HDF5, a
#    sweep of 4 layer swaps (shard_by layer, hard links) and stats of 2 experts, with
#    dd oflag=direct, cp + fsync and cat as floors, in --pairs interleaved rounds
#    (default 1: the budget allows one), and prints wall time, speed-up, efficiency
#    t1 / (n * tn) (target >= 0.8 at 16 ranks for the safetensors merge, where the disk
#    allows) and the wall time over dd oflag=direct of the bytes each run writes.
# Anything not started within --budget-s seconds of the start is skipped and said so.
set -euo pipefail
BENCH_NAME=device_scaling
. "$(dirname "$0")/lib.sh"
BENCH_SIZE=large BENCH_PAIRS=1 BENCH_OUT=${TMPDIR:-/tmp}/lsw-device
RANKS="1 2 4 8 16" WORKLOADS="merge hdf5 sweep stats" BUDGET=420 HF=1 BUILT=0
HF_PY=${HF_PY:-python3}
usage() {
  cat <<EOF
Usage: device_scaling.sh [--size large] [--ranks "1 2 4 8 16"] [--workloads "merge hdf5 sweep stats"]
                         [--budget-s 420] [--no-hf] [--pairs 1] [--out DIR] [--layerswap PATH]
$BENCH_COMMON_HELP
  --ranks LIST       rank counts (default "1 2 4 8 16"; the first is the reference)
  --workloads LIST   merge, hdf5, sweep, stats, in the order they run (default all four)
  --budget-s S       start nothing after S seconds from the start (default 420)
  --no-hf            skip tests/hf_load_check.py
Defaults here: --size large, --pairs 1, --out \${TMPDIR:-/tmp}/lsw-device; the build goes
to build-device/ of the checkout.
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then [ "$1" = --layerswap ] && BUILT=1; shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --ranks) RANKS=$2; shift 2 ;;
    --workloads) WORKLOADS=$2; shift 2 ;;
    --budget-s) BUDGET=$2; shift 2 ;;
    --no-hf) HF=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
BENCH_DEADLINE=$((${BENCH_START%.*} + BUDGET))
BENCH_WARMUP_NOTE="no warm-up runs (time budget): the inputs are read once into the page cache"
REPORT=/dev/null
[ -n "${OUT:-}" ] && mkdir -p "$OUT" && REPORT=$OUT/device_scaling.md
exec > >(tee "$REPORT")
mkdir -p "$BENCH_OUT"

# --- 1. build -----------------------------------------------------------------------------
if [ $BUILT = 0 ]; then
  log "building with benchmarks/device_build.sh"
  bash "$BENCH_LIB/device_build.sh" "$BENCH_SRC/build-device" >"$BENCH_OUT/build.log" 2>&1 ||
    { cat "$BENCH_OUT/build.log" >&2; die "build failed"; }
  . "$BENCH_SRC/build-device/device-env.sh"
  LAYERSWAP=$BENCH_SRC/build-device/engine/layerswap
fi
bench_setup
echo "- $(nproc) cores; $(free -g | awk '/^Mem:/ { print $2 " GiB memory, " $7 " GiB available" }'); $(df -h "$BENCH_OUT" | awk 'NR == 2 { print $4 " free on " $1 }')"
echo "- build: $([ $BUILT = 0 ] && echo "benchmarks/device_build.sh, $(awk -v a="$BENCH_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s after the start" || echo "given: $LAYERSWAP")"
echo

# --- 2. transformers loads merged outputs of the fixtures ----------------------------------
HF_RC=0
if [ $HF = 1 ]; then
  log "tests/hf_load_check.py"
  set +e
  timeout 180 "$HF_PY" "$BENCH_SRC/tests/hf_load_check.py" "$LAYERSWAP" "$BENCH_SRC/tests/data" "$W/hf" >"$W/logs/hf.txt" 2>&1
  HF_RC=$?
  set -e
  echo "**tests/hf_load_check.py** (exit $HF_RC$([ $HF_RC = 77 ] && echo ": skipped, no torch/transformers"))"
  echo
  echo '```'
  grep -E '^(ok|FAIL|hf_load_check)' "$W/logs/hf.txt" | tail -40 || tail -20 "$W/logs/hf.txt"
  echo '```'
  echo
fi

# --- 3. models ------------------------------------------------------------------------------
bench_shape "$BENCH_SIZE"
swap_geometry "$LAYERS"
MD=$BENCH_OUT/models/$BENCH_SIZE-seeds
log "synth: 4 checkpoints ${SYN[*]} at once -> $MD"
pids=()
for s in 1 2 3 4; do
  "$LAYERSWAP" synth "${SYN[@]}" --dtype bf16 --experts 0 --seed "$s" -o "$MD/s$s" --quiet >"$W/logs/synth-$s.log" 2>&1 &
  pids+=($!)
done
for p in "${pids[@]}"; do wait "$p" || die "synth failed: $(cat "$W"/logs/synth-*.log)"; done
sync
BASE=$MD/s1/base T1=$MD/s2/base L1=$MD/s3/base L2=$MD/s4/base
mapfile -t ONE < <(model_files "$T1")
MB=$(bytes_of "${ONE[@]}")
echo "- models: 4 checkpoints of $(gb "$MB") (${SYN[*]}, bf16), written by $(awk -v a="$BENCH_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s from the start"
echo
swap_config "$W/merge.json" "$BASE" "$T1" "$L1" magnitude \
  "$W/run/out" '"compression": {"codec": "zstd", "level": 1, "shuffle": true}'
cat >"$W/sweep.json" <<EOF
{"models": {"base": "$BASE", "math1": "$T1", "swh1": "$L1", "swh2": "$L2"}, "base": "base",
 "grid": {"task_expert": ["math1"], "language_expert": ["swh1", "swh2"], "bottom": [$SW_BOTTOM, $((SW_BOTTOM + 1))],
          "top": [$SW_TOP], "lower_transition": [0], "upper_transition": [0], "transition_weights": ["uniform"],
          "non_layer": ["average"], "non_layer_weights": ["uniform"]},
 "output": {"path": "$W/run/sweep", "format": "safetensors", "shard_by": "layer", "dedup": "hardlink"}}
EOF
mapfile -t IN < <(model_files "$BASE" "$T1" "$L1" "$L2")
warm_cache "${IN[@]}"

# --- 4. the rounds ----------------------------------------------------------------------------
SIDES=()
for wl in $WORKLOADS; do
  for n in $RANKS; do
    case $wl in
      merge) cmd=(merge "$W/merge.json" --format safetensors -o "$W/run/$wl-n$n" --summary "$W/logs/$wl-n$n.json") ;;
      hdf5) cmd=(merge "$W/merge.json" --format hdf5 -o "$W/run/$wl-n$n" --summary "$W/logs/$wl-n$n.json") ;;
      sweep) cmd=(sweep "$W/sweep.json" -o "$W/run/$wl-n$n" --summary "$W/logs/$wl-n$n.json") ;;
      stats) cmd=(stats --base "$BASE" "math1=$T1" "swh1=$L1" -o "$W/run/$wl-n$n") ;;
      *) die "unknown workload '$wl' (merge, hdf5, sweep, stats)" ;;
    esac
    side "$wl-n$n" --prep "$PREP_SCRATCH" -- mpirun -n "$n" "$LAYERSWAP" "${cmd[@]}" --quiet
    SIDES+=("$wl-n$n")
  done
done
floor_dd dd "$MB"
floor_cp cp "${ONE[@]}"
floor_cat cat "${IN[@]:0:3}"
FLOORS=(dd cp cat)
bench_rounds "$BENCH_PAIRS" "${FLOORS[@]}" "${SIDES[@]}"

# bytes each run writes (from its --summary; stats writes little)
written() {
  local f=$W/logs/$1.json
  [ -f "$f" ] || { echo 0; return; }
  case $1 in
    hdf5-*) "$PY" "$BENCH_LIB/benchlib.py" json "$f" compressed_bytes 0 ;;
    *) "$PY" "$BENCH_LIB/benchlib.py" json "$f" bytes_written 0 ;;
  esac
}
R0=${RANKS%% *}
table_begin "Scaling on $(nproc) cores, $(gb "$MB") models (efficiency = t($R0) · $R0 / (n · t(n)))" \
  "workload|ranks|wall|speed-up|efficiency|wall / dd oflag=direct of the bytes it writes|peak RSS (largest rank)"
for wl in $WORKLOADS; do
  for n in $RANKS; do
    wb=$(written "$wl-n$n")
    ddr=—
    [ "${wb%.*}" -gt 0 ] 2>/dev/null && ddr=$(r_fmt "$wl-n$n" dd "$(div "$wb" "${_S_BYTES[dd]}" 6)")
    row "$wl|$n|$(t_fmt "$wl-n$n")|$(r_fmt "$wl-n$R0" "$wl-n$n")|$(r_fmt "$wl-n$R0" "$wl-n$n" "$(div "$R0" "$n" 6)")|$ddr|$(rss_mb "$wl-n$n")"
  done
done
table_end
LAST=${RANKS##* }
echo "- target: safetensors merge efficiency at $LAST ranks ≥ 0.8: $(verdict "$(r_med "merge-n$R0" "merge-n$LAST" "$(div "$R0" "$LAST" 6)")" '>=' 0.8), unless the disk is the limit (the dd column near 1.0)"
echo "- merge: layer swap (bottom $SW_BOTTOM, top $SW_TOP, transitions $SW_LOWER + $SW_UPPER, magnitude weights); sweep: 4 layer swaps; stats: 2 experts against the base"
echo
floors_table "${FLOORS[@]}"
bench_footer
[ "$HF_RC" = 0 ] || [ "$HF_RC" = 77 ] || { echo "- tests/hf_load_check.py FAILED (exit $HF_RC): see above"; exit 1; }
