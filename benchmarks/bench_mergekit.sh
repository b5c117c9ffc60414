#!/usr/bin/env bash
# bench_mergekit.sh — the methods mergekit users run (default: TIES and slerp) on two
# synthetic bf16 models (1.47 GB each at --size full): layerswap against a plain layer
# swap of the same two models (target: within 1.2x; the extra pre-pass must be cheap),
# paired and interleaved with cp + fsync, dd oflag=direct and cat of the inputs; then,
# in rounds of their own, against the naive numpy and torch state-dict merges of the
# same formula (targets against numpy, the honest stand-in for mergekit, which cannot
# be installed here: >= 10x faster and >= 50x less peak RSS).
# Each method's config is written in mergekit's YAML and, where the native language has
# the method, as native JSON; the first one this build accepts (--dry-run) is measured.
# A method that this build does not have is reported as such, not measured.
set -euo pipefail
BENCH_NAME=bench_mergekit
. "$(dirname "$0")/lib.sh"
METHODS="ties slerp" SYNTAX="yaml json" PEER_PAIRS= T=0.5 DENSITY=0.5
usage() {
  cat <<EOF
Usage: bench_mergekit.sh [--size S] [--pairs N] [--out DIR] [--methods "ties slerp"] [--syntax "yaml json"]
                         [--peers "numpy torch"] [--peer-pairs N]
$BENCH_COMMON_HELP
  --methods LIST   methods to measure: ties, slerp (default "ties slerp")
  --syntax LIST    config languages to try, in order (default "yaml json")
  --peers LIST     naive peers: numpy, torch, both or "" (default "numpy torch")
  --peer-pairs N   interleaved rounds of layerswap vs the peers (default: --pairs; at --size full
                   one round of TIES with both peers takes about 5 minutes on a 2-core VM)
EOF
}
while [ $# -gt 0 ]; do
  if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi
  case $1 in
    --methods) METHODS=$2; shift 2 ;;
    --syntax) SYNTAX=$2; shift 2 ;;
    --peers) PEERS=$2; shift 2 ;;
    --peer-pairs) PEER_PAIRS=$2; shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) usage >&2; die "unknown option $1" ;;
  esac
done
PEER_PAIRS=${PEER_PAIRS:-$BENCH_PAIRS}
bench_setup
[ "$BENCH_SIZE" = full ] && bench_need_gb 16
bench_models "$BENCH_SIZE"
swap_geometry "$LAYERS"

# configs: mergekit YAML for every method; native JSON where the method has one
write_configs() { # write_configs METHOD: $W/METHOD.yml and, if known, $W/METHOD.json
  local m=$1
  case $m in
    ties)
      cat >"$W/ties.yml" <<EOF
merge_method: ties
base_model: $M/base
models:
  - model: $M/task1
    parameters: {weight: 1.0, density: $DENSITY}
  - model: $M/lang1
    parameters: {weight: 1.0, density: $DENSITY}
parameters:
  normalize: true
EOF
      cat >"$W/ties.json" <<EOF
{"models": {"base": "$M/base", "task": "$M/task1", "lang": "$M/lang1"}, "base": "base", "method": "ties",
 "ties": {"models": ["task", "lang"], "weights": [1.0, 1.0], "density": [$DENSITY, $DENSITY], "lambda": 1.0,
          "normalize": true, "trim": "tensor"},
 "output": {"path": "$W/run/out", "format": "safetensors", "dtype": "input"}}
EOF
      PEER_ARGS=(ties "base=$M/base" "models=$M/task1,$M/lang1" weights=1,1 "density=$DENSITY,$DENSITY" lambda=1 normalize=1)
      INPUTS=(base task1 lang1) ;;
    slerp)
      cat >"$W/slerp.yml" <<EOF
merge_method: slerp
base_model: $M/task1
models:
  - model: $M/task1
  - model: $M/lang1
parameters:
  t: $T
EOF
      rm -f "$W/slerp.json"
      PEER_ARGS=(slerp "a=$M/task1" "b=$M/lang1" "t=$T")
      INPUTS=(task1 lang1) ;;
    *) die "unknown method '$m' (ties, slerp)" ;;
  esac
}
# the plain layer swap, without transitions
SW_LOWER=0 SW_UPPER=0
swap_config "$W/swap.json" "$M/base" "$M/task1" "$M/lang1" uniform "$W/run/out" '"format": "safetensors", "dtype": "input"'
mapfile -t ONE < <(model_files "$M/task1")
side swap --prep "$PREP_SCRATCH" -- "$LAYERSWAP" merge "$W/swap.json" -o "$W/run/swap" --quiet
floor_cp cp "${ONE[@]}"
floor_dd dd "$(bytes_of "${ONE[@]}")"
FLOORS=(cp dd)

for m in $METHODS; do
  write_configs "$m"
  CFG= WHY=
  for s in $SYNTAX; do
    f=$W/$m.${s/yaml/yml}
    [ -f "$f" ] || { WHY="$WHY${WHY:+; }$s: no native $m config"; continue; }
    if "$LAYERSWAP" merge "$f" -o "$W/run/out" --dry-run >"$W/logs/$m-$s-dry-run.txt" 2>&1; then CFG=$f; break; fi
    WHY="$WHY${WHY:+; }$s: $(grep -m1 -v '^$' "$W/logs/$m-$s-dry-run.txt" | sed "s#$W/##g" | cut -c1-140)"
  done
  if [ -z "$CFG" ]; then
    echo "**$m**: not measured, this build does not run it ($WHY)"
    echo
    continue
  fi
  mapfile -t IN < <(model_files "${INPUTS[@]/#/$M/}")
  warm_cache "${IN[@]}"
  BENCH_SET=$m
  side "$m" --prep "$PREP_SCRATCH" -- "$LAYERSWAP" merge "$CFG" -o "$W/run/$m" --quiet
  floor_cat "cat-$m" "${IN[@]}"
  peer_sides "$m-" "${PEER_ARGS[@]}"
  bench_keep "$m" "${PSIDES[@]}"
  "$LAYERSWAP" verify "$W/check/$m" >/dev/null || die "layerswap verify of the $m output failed"
  declare -A SAME=()
  for p in "${PSIDES[@]}"; do SAME[$p]=$("$PY" "$BENCH_LIB/benchlib.py" same "$W/check/$m" "$W/check/$p"); done
  bench_checks_done
  bench_warmup swap "cat-$m" "${FLOORS[@]}"
  bench_rounds "$BENCH_PAIRS" "$m" swap "cat-$m" "${FLOORS[@]}"
  table_begin "$m of two $(gb "$(bytes_of "${ONE[@]}")") models ($(basename "$CFG"), inputs ${INPUTS[*]})" "measure|value [min–max]|target|note"
  row "$m, wall|$(t_fmt "$m")||CPU user + sys $(cpu_fmt "$m"); peak RSS $(rss_mb "$m")"
  row "$m / plain layer swap of the same two models|$(r_fmt "$m" swap)|≤ 1.2|$(verdict "$(r_med "$m" swap)" '<=' 1.2); layer swap $(t_fmt swap)"
  row "$m / (cp + fsync of one model)|$(r_fmt "$m" cp)||"
  row "$m / (dd oflag=direct of one model's bytes)|$(r_fmt "$m" dd "$(div "$(bytes_of "${ONE[@]}")" "${_S_BYTES[dd]}" 6)")||1.0 = the disk's direct-write speed"
  row "$m / (cat of its inputs)|$(r_fmt "$m" "cat-$m")||$(gb "${_S_BYTES[cat-$m]}")"
  table_end
  floors_table cp dd "cat-$m"
  if [ ${#PSIDES[@]} -gt 0 ]; then
    BENCH_SET=$m-peers
    bench_warmup "${PSIDES[@]}"
    bench_rounds "$PEER_PAIRS" "$m" "${PSIDES[@]}"
    table_begin "$m: naive state-dict peers of the same formula (rounds of their own)" \
      "command|time [min–max]|its time / layerswap's [min–max]|peak RSS|its RSS / layerswap's|tensors vs layerswap's"
    row "layerswap|$(t_fmt "$m")|1|$(rss_mb "$m")|1|—"
    for p in "${PSIDES[@]}"; do
      row "${p#"$m-"} state-dict merge|$(t_fmt "$p")|$(r_fmt "$p" "$m")|$(rss_mb "$p")|$(div "$(rss_kb "$p")" "$(rss_kb "$m")" 1)|${SAME[$p]}"
    done
    table_end
    if [[ " ${PSIDES[*]} " = *" $m-numpy "* ]]; then
      echo "- against numpy: ≥ 10× faster: $(verdict "$(r_med "$m-numpy" "$m")" '>=' 10); ≥ 50× less peak RSS: $(verdict "$(div "$(rss_kb "$m-numpy")" "$(rss_kb "$m")" 3)" '>=' 50)"
      echo
    fi
  fi
done
echo "- the peers' times depend on the machine (page faults, Python): compare them only within one run"
bench_footer
