#!/usr/bin/env bash
# bench_table6.sh — the paper's Table 6 (a soup of three math experts layer-swapped with
# a soup of three language experts) in one config with derived models ({"soup": [...]},
# docs/config.md "Derived models"), against the two-step way a user has without them:
# write the two soups with `linear` merges, then layer-swap the two written soups.
# Paired and interleaved with cat of the six experts and cp + fsync of one model.
# Prints time and bytes read of both ways (target: one config <= 0.6x the two-step
# time, each input read once) and checks that both give the same bytes. A build without
# derived models runs the two-step way alone and says so.
set -euo pipefail
BENCH_NAME=bench_table6
. "$(dirname "$0")/lib.sh"
usage() {
  cat <<EOF
Usage: bench_table6.sh [--size S] [--pairs N] [--out DIR]
$BENCH_COMMON_HELP
Disk: --size full needs about 18 GB free under --out (7 models, two soups, outputs).
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
bench_setup
[ "$BENCH_SIZE" = full ] && bench_need_gb 18
bench_models "$BENCH_SIZE" 6
swap_geometry "$LAYERS"
MODELS='"base": "'$M'/base", "m1": "'$M'/task1", "m2": "'$M'/task2", "m3": "'$M'/task3",
           "l1": "'$M'/lang1", "l2": "'$M'/lang2", "l3": "'$M'/lang3"'
SWAP='"bottom": '$SW_BOTTOM', "top": '$SW_TOP', "lower_transition": 0, "upper_transition": 0,
   "transition_weights": "uniform", "non_layer": "average", "non_layer_weights": "uniform"'
cat >"$W/one.json" <<EOF
{"models": {$MODELS,
            "math": {"soup": ["m1", "m2", "m3"], "weights": [1, 1, 1]},
            "lang": {"soup": ["l1", "l2", "l3"], "weights": [1, 1, 1]}},
 "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", $SWAP},
 "output": {"path": "$W/run/one-config", "format": "safetensors", "dtype": "input"}}
EOF
for s in math:m lang:l; do
  cat >"$W/soup-${s%%:*}.json" <<EOF
{"models": {$MODELS}, "base": "base", "method": "linear",
 "linear": {"models": ["${s#*:}1", "${s#*:}2", "${s#*:}3"], "weights": [1, 1, 1]},
 "output": {"path": "$W/run/two-step/${s%%:*}", "format": "safetensors", "dtype": "input"}}
EOF
done
cat >"$W/swap.json" <<EOF
{"models": {"math": "$W/run/two-step/math", "lang": "$W/run/two-step/lang"}, "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", $SWAP},
 "output": {"path": "$W/run/two-step/out", "format": "safetensors", "dtype": "input"}}
EOF
mapfile -t IN < <(model_files "$M"/task{1,2,3} "$M"/lang{1,2,3})
mapfile -t ONE < <(model_files "$M/task1")
warm_cache "${IN[@]}"

ONE_OK=1
if ! "$LAYERSWAP" merge "$W/one.json" --dry-run >"$W/logs/one-dry-run.txt" 2>&1; then
  ONE_OK=0
  ONE_WHY=$(grep -m1 -v '^$' "$W/logs/one-dry-run.txt" | cut -c1-160)
fi
side two-step --prep "$PREP_SCRATCH" -- bash -c 'set -e; L=$1 W=$2
  "$L" merge "$W/soup-math.json" --quiet --summary "$W/logs/two-math.json"
  "$L" merge "$W/soup-lang.json" --quiet --summary "$W/logs/two-lang.json"
  "$L" merge "$W/swap.json" --quiet --summary "$W/logs/two-swap.json"' two-step "$LAYERSWAP" "$W"
SIDES=(two-step)
if [ $ONE_OK = 1 ]; then
  side one-config --prep "$PREP_SCRATCH" -- "$LAYERSWAP" merge "$W/one.json" --quiet --summary "$W/logs/one.json"
  SIDES=(one-config two-step)
fi

# checks, once (also the warm-up): both ways give the same output bytes
mkdir -p "$W/check"
bench_keep "${SIDES[@]}"
"$LAYERSWAP" verify "$W/check/two-step/out" >/dev/null || die "layerswap verify of the two-step output failed"
OUT_BYTES=$(bytes_of $(model_files "$W/check/two-step/out"))
SAME="n/a (no derived models in this build)"
if [ $ONE_OK = 1 ]; then
  "$LAYERSWAP" verify "$W/check/one-config" >/dev/null || die "layerswap verify of the one-config output failed"
  SAME=identical
  for f in $(model_files "$W/check/two-step/out"); do
    cmp -s "$f" "$W/check/one-config/$(basename "$f")" || SAME="DIFFERENT: $(basename "$f")"
  done
fi
bench_checks_done
js() { "$PY" "$BENCH_LIB/benchlib.py" json "$W/logs/$1.json" bytes_read 0; }
READ_TWO=$(($(js two-math) + $(js two-lang) + $(js two-swap)))
READ_ONE=$([ $ONE_OK = 1 ] && js one || echo 0)
INB=$(bytes_of "${IN[@]}")

floor_cat cat "${IN[@]}"
floor_cp cp "${ONE[@]}"
floor_dd dd "$OUT_BYTES"
FLOORS=(cat cp dd)
bench_warmup "${FLOORS[@]}"
bench_rounds "$BENCH_PAIRS" "${SIDES[@]}" "${FLOORS[@]}"

table_begin "Table 6: soup of 3 math experts ⨉ soup of 3 language experts, layer-swapped ($(gb "$(bytes_of "${ONE[@]}")") models, bottom $SW_BOTTOM, top $SW_TOP)" \
  "way|wall [min–max]|bytes read|bytes read / the six experts' bytes|peak RSS"
if [ $ONE_OK = 1 ]; then
  row "one config (derived soups)|$(t_fmt one-config)|$(gb "$READ_ONE")|$(div "$READ_ONE" "$INB")|$(rss_mb one-config)"
fi
row "two steps (two linear merges written, then the swap)|$(t_fmt two-step)|$(gb "$READ_TWO")|$(div "$READ_TWO" "$INB")|$(rss_mb two-step)"
table_end
if [ $ONE_OK = 1 ]; then
  echo "- one config / two steps: $(r_fmt one-config two-step) (target ≤ 0.6: $(verdict "$(r_med one-config two-step)" '<=' 0.6)); one config / cat of the six experts: $(r_fmt one-config cat)"
  echo "- each input read once: bytes read / the six experts' bytes ≤ 1.0: $(verdict "$(div "$READ_ONE" "$INB")" '<=' 1.0)"
else
  echo "- one config: not run, this build does not accept the derived-model config ($ONE_WHY)"
fi
echo "- two steps / cat of the six experts: $(r_fmt two-step cat); output bytes of the two ways: $SAME"
echo
floors_table "${FLOORS[@]}"
bench_footer
