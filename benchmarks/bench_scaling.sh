#!/usr/bin/env bash
# bench_scaling.sh — one layer swap (transition zones, magnitude weights) from 1 to N MPI
# ranks, safetensors and HDF5 output, paired and interleaved with cp + fsync of one
# model, dd oflag=direct of the output's bytes and cat of the inputs. Prints wall time,
# speed-up and parallel efficiency t1 / (n * tn) per format and rank count (target
# >= 0.8 at 16 ranks on a 16-core machine, for safetensors, where the disk allows: the
# dd column says how close to the disk's direct-write speed each run is). Checked once:
# every output byte-identical at every rank count. On a 2-core machine use --ranks "1 2".
set -euo pipefail
BENCH_NAME=bench_scaling
. "$(dirname "$0")/lib.sh"
RANKS="1 2" FORMATS="safetensors hdf5" EXPERTS=6
usage() {
  cat <<EOF
Usage: bench_scaling.sh [--size S] [--pairs N] [--out DIR] [--ranks "1 2"] [--formats "safetensors hdf5"]
$BENCH_COMMON_HELP
  --ranks LIST     MPI rank counts (default "1 2"; the first is the reference)
  --formats LIST   output formats (default "safetensors hdf5")
  --experts K      experts in the synthetic model set (default 6, shared with the other scripts)
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --ranks) RANKS=$2; shift 2 ;;
    --formats) FORMATS=$2; shift 2 ;;
    --experts) EXPERTS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
bench_setup
bench_models "$BENCH_SIZE" "$EXPERTS"
swap_geometry "$LAYERS"
swap_config "$W/merge.json" "$M/base" "$M/task1" "$M/lang1" magnitude \
  "$W/run/out" '"compression": {"codec": "zstd", "level": 1, "shuffle": true}'
mapfile -t IN < <(model_files "$M/base" "$M/task1" "$M/lang1")
mapfile -t ONE < <(model_files "$M/task1")
warm_cache "${IN[@]}"
R0=${RANKS%% *}
SIDES=()
for fmt in $FORMATS; do
  for n in $RANKS; do
    side "$fmt-n$n" --prep "$PREP_SCRATCH" -- mpirun -n "$n" "$LAYERSWAP" merge "$W/merge.json" --format "$fmt" \
      -o "$W/run/$fmt-n$n" --quiet
    SIDES+=("$fmt-n$n")
  done
done
# checks, once (also the warm-up): identical bytes at every rank count
IDENT=yes
declare -A OUTB
for fmt in $FORMATS; do
  bench_keep $(for n in $RANKS; do echo "$fmt-n$n"; done)
  OUTB[$fmt]=$(bytes_of $(model_files "$W/check/$fmt-n$R0"))
  for n in $RANKS; do
    for f in $(model_files "$W/check/$fmt-n$R0"); do
      cmp -s "$f" "$W/check/$fmt-n$n/$(basename "$f")" || { IDENT="no: $fmt $(basename "$f") differs at $n ranks"; break; }
    done
  done
  bench_checks_done
done
STB=${OUTB[safetensors]:-$(bytes_of "${ONE[@]}")}
floor_cp cp "${ONE[@]}"
floor_dd dd "$STB"
floor_cat cat "${IN[@]}"
FLOORS=(cp dd cat)
bench_warmup "${FLOORS[@]}"
bench_rounds "$BENCH_PAIRS" "${SIDES[@]}" "${FLOORS[@]}"

table_begin "One layer swap of $(gb "$(bytes_of "${ONE[@]}")") models (magnitude weights) at $RANKS ranks" \
  "format|ranks|wall [min–max]|speed-up [min–max]|efficiency [min–max]|wall / dd oflag=direct of the output|/ (cp + fsync)|peak RSS"
for fmt in $FORMATS; do
  for n in $RANKS; do
    row "$fmt|$n|$(t_fmt "$fmt-n$n")|$(r_fmt "$fmt-n$R0" "$fmt-n$n")|$(r_fmt "$fmt-n$R0" "$fmt-n$n" "$(div "$R0" "$n" 6)")|$(r_fmt "$fmt-n$n" dd "$(div "${OUTB[$fmt]}" "${_S_BYTES[dd]}" 6)")|$(r_fmt "$fmt-n$n" cp)|$(rss_mb "$fmt-n$n")"
  done
done
table_end
echo "- outputs byte-identical at ranks $RANKS: $IDENT; output bytes:$(for f in $FORMATS; do printf ' %s %s' "$f" "$(gb "${OUTB[$f]}")"; done)"
echo "- efficiency = t($R0) · $R0 / (n · t(n)), per round; the dd column uses each format's own output bytes (1.0 = the disk's direct-write speed)"
echo
floors_table "${FLOORS[@]}"
bench_footer
