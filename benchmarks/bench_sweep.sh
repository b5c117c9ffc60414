#!/usr/bin/env bash
# bench_sweep.sh — a 2 x 2 x 2 layer-swap sweep (task1/task2 x lang1/lang2 x two values
# of bottom; shard_by layer, hard links) at 1 and 2 ranks (--ranks), paired and
# interleaved with one merge of the sweep, dd oflag=direct of the bytes the sweep writes,
# cat of its inputs and memcpy. Prints the ranks column (wall time, speed-up, efficiency)
# and how busy the sweep keeps the disk: its write rate over dd oflag=direct's
# (1.0 = as busy as a direct sequential write). Checked once: the outputs are
# byte-identical at every rank count; disk use with hard links and with copies.
set -euo pipefail
BENCH_NAME=bench_sweep
. "$(dirname "$0")/lib.sh"
RANKS="1 2"
usage() {
  cat <<EOF
Usage: bench_sweep.sh [--size S] [--pairs N] [--out DIR] [--ranks "1 2"]
$BENCH_COMMON_HELP
  --ranks LIST     MPI rank counts (default "1 2"; the first is the reference)
Disk: --size full needs about 30 GB free under --out (6 models, one sweep with copies).
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --ranks) RANKS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
bench_setup
[ "$BENCH_SIZE" = full ] && bench_need_gb 30
bench_models "$BENCH_SIZE"
swap_geometry "$LAYERS"
for mode in hardlink copy; do
  cat >"$W/sweep-$mode.json" <<EOF
{"models": {"base": "$M/base", "math1": "$M/task1", "math2": "$M/task2", "swh1": "$M/lang1", "swh2": "$M/lang2"},
 "base": "base",
 "grid": {"task_expert": ["math1", "math2"], "language_expert": ["swh1", "swh2"],
          "bottom": [$SW_BOTTOM, $((SW_BOTTOM + 1))], "top": [$SW_TOP],
          "lower_transition": [0], "upper_transition": [0], "transition_weights": ["uniform"],
          "non_layer": ["average"], "non_layer_weights": ["uniform"]},
 "output": {"path": "$W/run/sweep", "format": "safetensors", "shard_by": "layer", "dedup": "$mode"}}
EOF
done
mapfile -t IN < <(model_files "$M/task1" "$M/task2" "$M/lang1" "$M/lang2")
warm_cache "${IN[@]}"
R0=${RANKS%% *}
SIDES=()
for n in $RANKS; do
  side "sweep-n$n" --prep "$PREP_SCRATCH" -- mpirun -n "$n" "$LAYERSWAP" sweep "$W/sweep-hardlink.json" \
    -o "$W/run/sweep-n$n" --quiet --summary "$W/logs/summary-n$n.json"
  SIDES+=("sweep-n$n")
done
side sweep-copy --prep "$PREP_SCRATCH" -- mpirun -n "$R0" "$LAYERSWAP" sweep "$W/sweep-copy.json" \
  -o "$W/run/sweep-copy" --quiet --summary "$W/logs/summary-copy.json"
side one --prep "$PREP_SCRATCH" -- mpirun -n "$R0" "$LAYERSWAP" merge --sweep "$W/sweep-hardlink.json" --index 0 \
  -o "$W/run/one" --quiet

# checks, once (also the warm-up): identical bytes at every rank count; disk use
bench_keep "${SIDES[@]}"
IDENT=yes
for n in $RANKS; do
  for f in "$W/check/sweep-n$R0"/*/*; do
    case $f in */layerswap-manifest.json) continue ;; esac
    cmp -s "$f" "$W/check/sweep-n$n/${f#"$W/check/sweep-n$R0/"}" || { IDENT="no: ${f#"$W/check/"} differs at $n ranks"; break 2; }
  done
done
for d in "$W/check/sweep-n$R0"/*/; do "$LAYERSWAP" verify "$d" >/dev/null || die "layerswap verify $d failed"; done
NMERGE=$(find "$W/check/sweep-n$R0" -mindepth 1 -maxdepth 1 -type d | wc -l)
DISK_HL=$(du -sb "$W/check/sweep-n$R0" | cut -f1)
bench_checks_done
bench_keep sweep-copy
DISK_CP=$(du -sb "$W/check/sweep-copy" | cut -f1)
bench_checks_done
S=$W/logs/summary-n$R0.json
js() { "$PY" "$BENCH_LIB/benchlib.py" json "$S" "$1" 0; }
DIST=$(js distinct_bytes) READ=$(js bytes_read) SEP=$(js bytes_read_separately) WRITTEN=$(js bytes_written)
[ "$WRITTEN" -gt 0 ] 2>/dev/null || WRITTEN=$DISK_HL

floor_dd dd "$WRITTEN"
floor_cat cat "${IN[@]}"
floor_mem memcpy "$WRITTEN"
FLOORS=(dd cat memcpy)
bench_warmup one "${FLOORS[@]}"
bench_rounds "$BENCH_PAIRS" "${SIDES[@]}" one "${FLOORS[@]}"

DDF=$(div "$WRITTEN" "${_S_BYTES[dd]}" 6)
table_begin "Sweep of $NMERGE layer swaps of $(gb "$(bytes_of $(model_files "$M/task1"))") models (shard_by layer, hard links): ranks" \
  "ranks|wall [min–max]|speed-up vs $R0 [min–max]|efficiency|write rate / dd oflag=direct's [min–max]|peak RSS"
for n in $RANKS; do
  row "$n|$(t_fmt "sweep-n$n")|$(r_fmt "sweep-n$R0" "sweep-n$n")|$(r_fmt "sweep-n$R0" "sweep-n$n" "$(div "$R0" "$n" 6)")|$(r_fmt dd "sweep-n$n" "$DDF")|$(rss_mb "sweep-n$n")"
done
table_end
N2=$(echo "$RANKS" | awk '{ print $2 }')
if [ -n "$N2" ]; then
  echo "- target at $N2 ranks: speed-up ≥ 1.5 ($(verdict "$(r_med "sweep-n$R0" "sweep-n$N2")" '>=' 1.5)), or, where the disk is the limit, a write rate as high as dd oflag=direct's (1.0 in the column above)"
fi
echo "- outputs byte-identical at ranks $RANKS: $IDENT"
echo
table_begin "Sweep: what one pass saves" "measure|value|target / note"
row "sweep / one merge of it ($R0 rank)|$(r_fmt "sweep-n$R0" one)|one merge: $(t_fmt one)"
row "distinct content of the sweep|$(gb "$DIST")|bytes of its distinct shards"
row "bytes on disk / distinct content, hard links|$(div "$DISK_HL" "$DIST")|≤ 1.05: $(verdict "$(div "$DISK_HL" "$DIST")" '<=' 1.05)"
row "bytes on disk / distinct content, copies|$(div "$DISK_CP" "$DIST")|dedup copy, for comparison"
row "bytes read by the sweep / by $NMERGE separate merges|$(div "$READ" "$SEP")|$(gb "$READ") vs $(gb "$SEP")"
row "bytes written by the sweep|$(gb "$WRITTEN")|the rest are links"
table_end
floors_table "${FLOORS[@]}"
bench_footer
