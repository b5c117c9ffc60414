#!/usr/bin/env bash
# bench_stats.sh — how close `layerswap stats` runs to reading its inputs.
#
# For each model size (--size full: 1.47 GB and 288 MB models) and each number of
# experts E (default 1 and 4), `layerswap stats --base base E experts` is paired and
# interleaved with `cat` of the same 1 + E models from the page cache (and a memcpy of
# the same bytes). The ratio stats / cat is the figure (targets: <= 1.2 on 1.47 GB
# models, <= 1.5 on 288 MB models: the fixed costs of MPI start-up and the output files
# weigh more on small models). The whole command is timed, as a user runs it.
set -euo pipefail
BENCH_NAME=bench_stats
. "$(dirname "$0")/lib.sh"
EXPERT_COUNTS="1 4" SIZES= NP=1
usage() {
  cat <<EOF
Usage: bench_stats.sh [--size S] [--pairs N] [--out DIR] [--sizes "full medium"] [--experts "1 4"] [--np N]
$BENCH_COMMON_HELP
  --sizes LIST     model sizes to measure (default: "full medium" for --size full, else --size)
  --experts LIST   numbers of experts E (default "1 4"; at most 6)
  --np N           MPI ranks (default 1: layerswap alone, as a user runs it; N > 1: mpirun -n N)
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --sizes) SIZES=$2; shift 2 ;;
    --experts) EXPERT_COUNTS=$2; shift 2 ;;
    --np) NP=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
[ -n "$SIZES" ] || { [ "$BENCH_SIZE" = full ] && SIZES="full medium" || SIZES=$BENCH_SIZE; }
bench_setup
EXPERT_NAMES=(task1 lang1 task2 lang2 task3 lang3)
LAUNCH=()
[ "$NP" -gt 1 ] && LAUNCH=(mpirun -n "$NP")
target() { case $1 in full) echo 1.2 ;; medium) echo 1.5 ;; *) echo "" ;; esac; }
for sz in $SIZES; do
  bench_models "$sz"
  SIDES=()
  declare -A BYTES=()
  for e in $EXPERT_COUNTS; do
    [ "$e" -ge 1 ] && [ "$e" -le 6 ] || die "--experts values must be 1..6"
    args=(--base "$M/base") files=($(model_files "$M/base"))
    for ((i = 0; i < e; i++)); do
      args+=("${EXPERT_NAMES[i]}=$M/${EXPERT_NAMES[i]}")
      files+=($(model_files "$M/${EXPERT_NAMES[i]}"))
    done
    warm_cache "${files[@]}"
    side "stats-$sz-E$e" --prep "$PREP_SCRATCH" -- "${LAUNCH[@]}" "$LAYERSWAP" stats "${args[@]}" \
      -o "$W/run/stats-$sz-E$e" --quiet
    floor_cat "cat-$sz-E$e" "${files[@]}"
    floor_mem "memcpy-$sz-E$e" "${_S_BYTES[cat-$sz-E$e]}"
    BYTES[$e]=${_S_BYTES[cat-$sz-E$e]}
    SIDES+=("stats-$sz-E$e" "cat-$sz-E$e" "memcpy-$sz-E$e")
  done
  BENCH_SET=$sz
  bench_warmup "${SIDES[@]}"
  bench_rounds "$BENCH_PAIRS" "${SIDES[@]}"
  t=$(target "$sz")
  table_begin "stats on $(gb "$(bytes_of $(model_files "$M/base"))") models ($sz), $NP rank(s), against cat of the same 1 + E models" \
    "E|read|stats wall [min–max]|cat [min–max]|stats / cat [min–max]|target|memcpy of the same bytes|peak RSS"
  for e in $EXPERT_COUNTS; do
    row "$e|$(gb "${BYTES[$e]}")|$(t_fmt "stats-$sz-E$e")|$(t_fmt "cat-$sz-E$e")|$(r_fmt "stats-$sz-E$e" "cat-$sz-E$e")|${t:+≤ $t: $(verdict "$(r_med "stats-$sz-E$e" "cat-$sz-E$e")" '<=' "$t")}|$(bw_fmt "memcpy-$sz-E$e" "${BYTES[$e]}")|$(rss_mb "stats-$sz-E$e")"
  done
  table_end
done
echo "- the stats time is the whole command (MPI start-up, the pass, summary.json, stats.h5, heatmaps, report); cat reads the same files from the page cache"
bench_footer
