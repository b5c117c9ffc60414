#!/usr/bin/env bash
# bench_sweep.sh [--size full|small] [--out DIR] [--runs N]
# A 2 x 2 x 2 layer-swap sweep (task1/task2 x lang1/lang2 x bottom 4/5, top 2,
# shard_by layer) over ~1.5 GB experts (full) or ~100 MB (small), measured in
# one run: wall time of the sweep / one single merge; bytes on disk / the
# sweep's distinct content (hard links; target <= 1.05 on ext4, which cannot
# reflink); the same sweep with "dedup": "copy" for comparison; bytes read
# against what 8 separate merges read.  Inputs are read from the page cache.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
SIZE=small OUT=./bench-out RUNS=1
while [ $# -gt 0 ]; do
  case $1 in
    --size) SIZE=$2; shift 2 ;; --out) OUT=$2; shift 2 ;; --runs) RUNS=$2; shift 2 ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;; *) die "unknown option $1" ;;
  esac
done
case $SIZE in
  full) SYN=(--layers 16 --hidden 2048 --intermediate 4096 --vocab 32000) ;;
  small) SYN=(--layers 12 --hidden 512 --intermediate 1536 --vocab 8000) ;;
  *) die "--size full|small" ;;
esac
W=$OUT/sweep-$SIZE
mkdir -p "$W"
log "synth base + 4 experts (${SYN[*]}) -> $W/models"
synth "${SYN[@]}" --experts 4 -o "$W/models"
for mode in hardlink copy; do
  cat > "$W/sweep-$mode.json" <<JSON
{"models": {"base": "models/base", "math1": "models/task1", "math2": "models/task2", "swh1": "models/lang1", "swh2": "models/lang2"},
 "base": "base",
 "grid": {"task_expert": ["math1", "math2"], "language_expert": ["swh1", "swh2"], "bottom": [4, 5], "top": [2],
          "lower_transition": [0], "upper_transition": [0], "transition_weights": ["uniform"],
          "non_layer": ["average"], "non_layer_weights": ["uniform"]},
 "output": {"path": "out-$mode", "format": "safetensors", "shard_by": "layer", "dedup": "$mode"}}
JSON
done
warm "$W/models"
BW=$(membw)
single=() hl=() cp=()
for ((r = 0; r < RUNS; r++)); do
  log "run $((r + 1))/$RUNS: one merge (index 0), sweep with hard links, sweep with copies"
  rm -rf "$W/single" "$W/out-hardlink" "$W/out-copy"; sync
  single+=("$(wall "$LAYERSWAP" merge --sweep "$W/sweep-hardlink.json" --index 0 -o "$W/single" --quiet)")
  sync
  hl+=("$(wall "$LAYERSWAP" sweep "$W/sweep-hardlink.json" --quiet --summary "$W/summary-hardlink.json")")
  sync
  cp+=("$(wall "$LAYERSWAP" sweep "$W/sweep-copy.json" --quiet --summary "$W/summary-copy.json")")
  sync
done
for d in "$W"/out-hardlink/*-*/; do "$LAYERSWAP" verify "$d" >/dev/null || die "verify $d"; done
T1=$(median "${single[@]}") THL=$(median "${hl[@]}") TCP=$(median "${cp[@]}")
DISK_HL=$(du -sb "$W/out-hardlink" | cut -f1) DISK_CP=$(du -sb "$W/out-copy" | cut -f1)
read -r DIST READ SEP WR <<<"$("$PY" -c "import json,sys; s=json.load(open(sys.argv[1])); print(s['distinct_bytes'], s['bytes_read'], s['bytes_read_separately'], s['bytes_written'])" "$W/summary-hardlink.json")"
ONE=$(du -sb "$W/single" | cut -f1)
{
  echo "metric|value|target / note"
  echo "one single merge (median of $RUNS)|$T1 s|$(ratio "$ONE" 1e9) GB output"
  echo "sweep of 8 merges, hard links|$THL s|$(ratio "$THL" "$T1") x one merge"
  echo "sweep of 8 merges, copies (no dedup)|$TCP s|$(ratio "$TCP" "$T1") x one merge"
  echo "distinct content of the sweep|$(ratio "$DIST" 1e9) GB|bytes of its distinct shards"
  echo "bytes on disk / distinct content, hard links|$(ratio "$DISK_HL" "$DIST")|<= 1.05 $(awk -v r="$(ratio "$DISK_HL" "$DIST")" 'BEGIN { print (r <= 1.05) ? "PASS" : "MISS" }')"
  echo "bytes on disk / distinct content, copies|$(ratio "$DISK_CP" "$DIST")|for comparison"
  echo "bytes read by the sweep / by 8 separate merges|$(ratio "$READ" "$SEP")|$(ratio "$READ" 1e9) GB vs $(ratio "$SEP" 1e9) GB"
  echo "bytes written by the sweep|$(ratio "$WR" 1e9) GB|the rest are links"
  echo "memory copy bandwidth|$BW GB/s|numpy, same run"
  echo "load average at end|$(cut -d' ' -f1 /proc/loadavg)|2 CPUs"
} | table
