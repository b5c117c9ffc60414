#!/usr/bin/env bash
# derived.sh LAYERSWAP MPIEXEC PYTHON WORKDIR
# Derived models (docs/config.md): for configs using every kind and chains of
# them (soups, revert_layers, revert_rows below/keep) under layer_swap,
# linear, ties and rules:
#   - 1 and 3 ranks give identical folders;
#   - the numpy oracle (tests/ref/lsw_ref_derived.py) gives the same tensors;
#   - writing each derived model to disk first (the oracle, "dtype": "input")
#     and merging from the files gives identical model files;
#   - the revert_rows report in --summary equals the oracle's, exactly;
# a merge whose tensors use two derived models of the same input reads that
# input once per block (bytes_read); the sweep example over derived models
# runs at 1 and 2 ranks to identical bytes and equals merge --index;
# every rule of the config is refused with exit 1 (2 for checkpoints that
# disagree), before anything is written.
set -uo pipefail
bin=$1 mpiexec=$2 py=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
data=$here/data
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail=0
ck() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
fx=$data/llama-bf16-sharded t6=$data/table6
models='"base": "'$fx'/base", "m1": "'$fx'/math1", "m2": "'$fx'/math2", "m3": "'$t6'/math3",
  "l1": "'$fx'/lang1", "l2": "'$fx'/lang2", "l3": "'$t6'/lang3"'
cfg() { # NAME DERIVED-MODELS METHOD-PART
  printf '{"models": {%s, %s}, "base": "base", %s, "output": {"path": "%s-out"}}\n' "$models" "$2" "$3" "$1" > "$1.json"
}
cfg table6 '"ms": {"soup": ["m1", "m2", "m3"]}, "ls": {"soup": ["l1", "l2", "l3"], "weights": [2, 1, 1]}' \
  '"method": "layer_swap", "layer_swap": {"task_expert": "ms", "language_expert": "ls", "bottom": 2, "top": 1, "lower_transition": 1}'
cfg chain '"ms": {"soup": ["m1", "m2"], "weights": [3, 1], "normalize": false}, "mk": {"from": "ms", "revert_rows": {"keep": 0.7}},
  "lr": {"from": "l1", "revert_layers": [[0, 1], [6, 8]]}, "lb": {"from": "lr", "revert_rows": {"below": 0.0003}}' \
  '"method": "layer_swap", "layer_swap": {"task_expert": "mk", "language_expert": "lb", "bottom": 2, "top": 2, "non_layer": "average"}'
cfg linear '"a": {"from": "m1", "revert_rows": {"below": 0.0001}}, "b": {"from": "m2", "revert_layers": [[0, 4]]}' \
  '"method": "linear", "linear": {"models": ["a", "b", "l1"], "weights": [1, 2, 1]}'
cfg ties '"s": {"soup": ["l1", "l2"]}, "k": {"from": "m1", "revert_rows": {"keep": 0.5}}' \
  '"method": "ties", "ties": {"models": ["k", "s"], "density": [0.5, 0.5]}'
cfg rules '"k": {"from": "m2", "revert_rows": {"keep": 0.9}}' \
  '"method": "rules", "rules": [{"match": "self_attn", "action": "take", "model": "k"}, {"action": "average", "models": ["k", "l2"]}]'
for c in table6 chain linear ties rules; do
  "$bin" merge $c.json -o $c-1 --quiet --summary $c-1.sum.json || { echo "FAIL: $c at 1 rank"; fail=1; continue; }
  "$mpiexec" -n 3 "$bin" merge $c.json -o $c-3 --quiet --mem 1M || { echo "FAIL: $c at 3 ranks"; fail=1; }
  for f in $c-1/*; do ck 'cmp -s "$f" "$c-3/$(basename "$f")"' "$c: 3 ranks differ in $(basename "$f")"; done
  ck '"$py" "$here/ref/lsw_ref.py" merge $c.json --compare $c-1 -q >/dev/null' "$c: differs from the oracle"
  # two steps: the derived models written to disk first, then merged from the files
  "$py" "$here/ref/lsw_ref.py" derived $c.json --materialise $c-mat $c-2step.json > $c-oracle.json || { echo "FAIL: $c materialise"; fail=1; continue; }
  "$bin" merge $c-2step.json -o $c-2 --quiet || { echo "FAIL: $c two-step merge"; fail=1; continue; }
  for f in $c-1/*; do
    [ "$(basename "$f")" = layerswap-manifest.json ] && continue
    ck 'cmp -s "$f" "$c-2/$(basename "$f")"' "$c: one config and two steps differ in $(basename "$f")"
  done
  "$py" - $c-1.sum.json $c-oracle.json <<'PY' || fail=1
import json, math, sys
got = json.load(open(sys.argv[1])).get("derived", {})
want = json.load(open(sys.argv[2]))
def same(a, b):
    return (a is None and (b is None or math.isnan(b))) or a == b
for n, w in want.items():
    g = got.get(n)
    assert g is not None, ("no derived report for", n, got)
    assert same(g["threshold"], w["threshold"]) and g["kept_fraction"] == w["kept_fraction"], (n, g, w)
assert set(got) == set(want), (set(got), set(want))
PY
done
# two derived models of one input: the input is read once per block
cat > shared.json <<JSON
{"models": {$models, "a": {"from": "m1", "revert_rows": {"below": 0.0001}}, "b": {"from": "m1", "revert_rows": {"keep": 0.5}}},
 "base": "base", "method": "linear", "linear": {"models": ["a", "b"]}, "output": {"path": "shared-out"}}
JSON
"$bin" merge shared.json -o shared --quiet --summary shared.sum.json || fail=1
want=$(( 2 * $("$bin" inspect "$fx/math1" | awk -F'\t' 'NF == 4 {s += $4} END {print s}') ))
got=$("$py" -c "import json,sys; print(json.load(open(sys.argv[1]))['bytes_read'])" shared.sum.json)
ck '[ "$got" = "$want" ]' "two derived models of math1: read $got bytes, want $want (math1 and the base once)"
# the sweep example over derived models
sw=$here/../configs/sweeps/derived-thresholds.json
"$bin" sweep "$sw" -o sw1 --quiet || fail=1
"$mpiexec" -n 2 "$bin" sweep "$sw" -o sw2 --quiet || fail=1
for d in sw1/*-*/; do n=$(basename "$d"); for f in "$d"*; do
  ck 'cmp -s "$f" "sw2/$n/$(basename "$f")"' "derived sweep at 2 ranks: $n/$(basename "$f")"; done; done
"$bin" merge --sweep "$sw" --index 5 -o single --quiet || fail=1
d5=$(basename "$(ls -d single/5-*)")
for f in sw1/$d5/*; do ck 'cmp -s "$f" "single/$d5/$(basename "$f")"' "derived sweep merge 5 differs from merge --index"; done
# refusals
bad() { # NAME EXPECTED-EXIT MESSAGE-PART DERIVED-MODELS [BASE]
  printf '{"models": {%s, %s}, %s "method": "layer_swap", "layer_swap": {"task_expert": "x", "language_expert": "l1", "bottom": 1, "top": 1}, "output": {"path": "bad-%s"}}\n' \
    "$models" "$4" "${5-\"base\": \"base\",}" "$1" > bad-$1.json
  local name=$1 want=$2 msg=$3
  rc=0; "$bin" merge bad-$name.json --quiet 2>bad-$name.log || rc=$?
  ck '[ $rc = $want ] && grep -q -- "$msg" bad-$name.log && [ ! -e bad-$name ]' "$name: exit $rc (want $want), $(cat bad-$name.log)"
}
bad negative 1 "below must be a threshold >= 0" '"x": {"from": "m1", "revert_rows": {"below": -1}}'
bad keep 1 "keep must be a fraction in \[0, 1\]" '"x": {"from": "m1", "revert_rows": {"keep": 1.5}}'
bad reversed 1 "must have 0 <= lo < hi" '"x": {"from": "m1", "revert_layers": [[4, 2]]}'
bad outside 1 "outside the model" '"x": {"from": "m1", "revert_layers": [[6, 9]]}'
bad cycle 1 "cycle" '"x": {"soup": ["m1", "y"]}, "y": {"from": "x", "revert_layers": [[0, 1]]}'
bad unknown 1 "does not define" '"x": {"soup": ["m1", "nope"]}'
bad nobase 1 "needs \"base\"" '"x": {"from": "m1", "revert_rows": {"keep": 0.5}}' ''
bad twokinds 1 "exactly one of" '"x": {"soup": ["m1"], "from": "m2"}'
bad mismatch 2 "soup member" '"x": {"soup": ["m1", "sub"]}, "sub": "'$fx'/math1/model-00001-of-00005.safetensors"'
exit $fail
