#!/usr/bin/env bash
# bench_hdf5.sh — what HDF5 output costs: the layer swap of bench_merge.sh written as
# model.h5 (shuffle + zstd level 1) against the same merge written as safetensors,
# paired and interleaved with cp + fsync and dd oflag=direct (target: HDF5 <= 2.0x the
# safetensors merge at 1 rank). Then, in a run of its own, the disk space the HDF5 merge
# uses while it runs (bytes allocated under the output folder and TMPDIR, sampled every
# 20 ms; and the file system's used bytes, which other writers on the disk also move)
# against the final model.h5 (target <= 1.15x), and model.h5's size against the order-0
# entropy bound of the bf16 byte planes (target <= 1.05x).
set -euo pipefail
BENCH_NAME=bench_hdf5
. "$(dirname "$0")/lib.sh"
NP=1
usage() {
  cat <<EOF
Usage: bench_hdf5.sh [--size S] [--pairs N] [--out DIR] [--np N]
$BENCH_COMMON_HELP
  --np N           MPI ranks of both merges (default 1)
Needs numpy (the entropy bound).
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --np) NP=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
bench_setup
"$PY" -c 'import numpy' 2>/dev/null || die "$PY has no numpy (apt-get install python3-numpy)"
bench_models "$BENCH_SIZE"
swap_geometry "$LAYERS"
swap_config "$W/merge.json" "$M/base" "$M/task1" "$M/lang1" uniform \
  "$W/run/out" '"dtype": "input", "compression": {"codec": "zstd", "level": 1, "shuffle": true}'
mapfile -t IN < <(model_files "$M/task1" "$M/lang1")
mapfile -t ONE < <(model_files "$M/task1")
warm_cache "${IN[@]}"
LAUNCH=()
[ "$NP" -gt 1 ] && LAUNCH=(mpirun -n "$NP")   # one rank: layerswap alone, as a user runs it
for fmt in hdf5 safetensors; do
  side "$fmt" --prep "$PREP_SCRATCH && mkdir -p '$W/run/tmp'" -- env TMPDIR="$W/run/tmp" "${LAUNCH[@]}" "$LAYERSWAP" merge \
    "$W/merge.json" --format "$fmt" -o "$W/run/$fmt" --quiet
done

# checks, once (also the warm-up): both outputs verify; raw bytes and entropy bound
bench_keep safetensors hdf5
for fmt in safetensors hdf5; do "$LAYERSWAP" verify "$W/check/$fmt" >/dev/null || die "layerswap verify of the $fmt output failed"; done
RAW=$("$PY" "$BENCH_LIB/benchlib.py" tensor-bytes "$W/check/safetensors")
BOUND=$("$PY" "$BENCH_LIB/benchlib.py" entropy "$W/check/safetensors")
H5=$(stat -c %s "$W/check/hdf5/model.h5")
STB=$(bytes_of $(model_files "$W/check/safetensors"))
bench_checks_done

# disk use while the HDF5 merge runs: a run of its own, sampled, not timed
log "HDF5 merge with the disk sampler"
eval "$PREP_SCRATCH" && mkdir -p "$W/run/tmp"
rm -f "$W/sampler.stop"
"$PY" "$BENCH_LIB/benchlib.py" disk-peak "$W/sampler.stop" "$W/sampler.out" "$W/run" &
SAMPLER=$!
sleep 0.2
TMPDIR="$W/run/tmp" "${LAUNCH[@]}" "$LAYERSWAP" merge "$W/merge.json" --format hdf5 -o "$W/run/hdf5" --quiet ||
  { touch "$W/sampler.stop"; wait "$SAMPLER"; die "HDF5 merge (sampled run) failed"; }
touch "$W/sampler.stop"
wait "$SAMPLER"
read -r PEAK_PATHS PEAK_FS SAMPLES <"$W/sampler.out"
FINAL=$(du -sB1 "$W/run/hdf5/model.h5" | cut -f1)

floor_cp cp "${ONE[@]}"
floor_dd dd "$STB"
FLOORS=(cp dd)
bench_warmup "${FLOORS[@]}"
bench_rounds "$BENCH_PAIRS" hdf5 safetensors "${FLOORS[@]}"

RATIO=$(div "$H5" "$RAW" 4)
table_begin "HDF5 output of a layer swap of two $(gb "$(bytes_of "${ONE[@]}")") models, $NP rank(s)" "measure|value [min–max]|target|note"
row "HDF5 merge, wall|$(t_fmt hdf5)||CPU user + sys $(cpu_fmt hdf5); peak RSS $(rss_mb hdf5)"
row "safetensors merge, wall|$(t_fmt safetensors)||CPU user + sys $(cpu_fmt safetensors); peak RSS $(rss_mb safetensors)"
row "HDF5 / safetensors|$(r_fmt hdf5 safetensors)|≤ 2.0|$(verdict "$(r_med hdf5 safetensors)" '<=' 2.0)"
row "HDF5 / (cp + fsync of one model)|$(r_fmt hdf5 cp)||"
row "safetensors / (cp + fsync of one model)|$(r_fmt safetensors cp)||"
row "HDF5 / (dd oflag=direct of model.h5's bytes)|$(r_fmt hdf5 dd "$(div "$H5" "${_S_BYTES[dd]}" 6)")||1.0 = the disk's direct-write speed"
row "peak disk use during the run / final model.h5|$(div "$PEAK_PATHS" "$FINAL")|≤ 1.15|$(verdict "$(div "$PEAK_PATHS" "$FINAL")" '<=' 1.15): $(gb "$PEAK_PATHS") allocated under the output folder and TMPDIR at the peak ($SAMPLES samples), model.h5 $(gb "$FINAL")"
row "file system's used-bytes growth at the peak / final model.h5|$(div "$PEAK_FS" "$FINAL")||a cross-check only: other writers and deleters on the disk move it"
row "model.h5 / raw tensor bytes (compressed over raw)|$RATIO||$(gb "$H5") for $(gb "$RAW")"
row "order-0 entropy bound of the bf16 byte planes|$BOUND||(H(low bytes) + H(high bytes)) / 16"
row "compressed over raw / entropy bound|$(div "$RATIO" "$BOUND")|≤ 1.05|$(verdict "$(div "$RATIO" "$BOUND")" '<=' 1.05)"
table_end
floors_table "${FLOORS[@]}"
bench_footer
