#!/usr/bin/env bash
# mergekit.sh LAYERSWAP MPIEXEC PYTHON WORKDIR
# Every mergekit YAML of configs/mergekit/ runs unchanged: at 1 and 3 ranks
# (--mem 1M) with identical bytes in every file, equal to the numpy oracle
# (which reads the YAML itself), verified; its JSON twin is exactly what
# --dry-run prints and gives identical bytes in every file, manifest included.
# Also: a layer swap written as three passthrough slices equals the native
# layer_swap; a YAML TIES equals the native ties-four-experts.json; della and
# breadcrumbs on a synthetic model whose rows straddle blocks at 1 and 3 ranks.
set -euo pipefail
bin=$1 mpiexec=$2 py=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
cfgs=$here/../configs/mergekit
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail=0
for y in "$cfgs"/*.yml; do
  n=$(basename "$y" .yml)
  "$mpiexec" -n 1 "$bin" merge "$y" -o "$n-1" --mem 1M --quiet
  "$mpiexec" -n 3 "$bin" merge "$y" -o "$n-3" --mem 1M --quiet
  for f in "$n-1"/*; do
    cmp -s "$f" "$n-3/$(basename "$f")" || { echo "FAIL $n: $(basename "$f") differs at 3 ranks"; fail=1; }
  done
  "$py" "$here/ref/lsw_ref.py" merge "$y" --compare "$n-1" --check-layout -q >"$n.ref" 2>&1 ||
    { echo "FAIL $n: differs from the oracle"; cat "$n.ref"; fail=1; }
  "$bin" verify "$n-1" >/dev/null || { echo "FAIL $n: verify"; fail=1; }
  # the JSON twin: what --dry-run prints, and the same bytes
  "$bin" merge "$y" --dry-run | awk '/^# the native JSON config/{f=1;next} /^# layerswap plan/{f=0} f' >"$n.native.json"
  cmp -s "$n.native.json" "$cfgs/$n.json" || { echo "FAIL $n: configs/mergekit/$n.json is not the --dry-run translation"; diff "$n.native.json" "$cfgs/$n.json" | head; fail=1; }
  "$bin" merge "$cfgs/$n.json" -o "$n-json" --quiet
  for f in "$n-1"/*; do
    cmp -s "$f" "$n-json/$(basename "$f")" || { echo "FAIL $n: $(basename "$f") differs between the YAML and its JSON twin"; fail=1; }
  done
  [ "$(ls "$n-1" | wc -l)" = "$(ls "$n-json" | wc -l)" ] || { echo "FAIL $n: file lists differ"; fail=1; }
  echo "ok $n: 1 = 3 ranks = oracle = JSON twin"
done
# a layer swap as three passthrough slices = the native layer_swap (weights and config.json)
"$bin" merge "$cfgs/layer-swap-native.json" -o ls-native --quiet
for f in model.safetensors config.json generation_config.json tokenizer.json tokenizer_config.json; do
  cmp -s "ls-native/$f" "passthrough-layer-swap-1/$f" || { echo "FAIL layer swap: $f differs from the native layer_swap"; fail=1; }
done
echo "ok passthrough slices = native layer_swap"
# a YAML ties = the native ties section (configs/ties-four-experts.json)
"$bin" merge "$here/configs/mergekit/ties-four-experts.yml" -o ties-yaml --quiet
"$bin" merge "$here/../configs/ties-four-experts.json" -o ties-native --quiet
cmp -s ties-yaml/model.safetensors ties-native/model.safetensors || { echo "FAIL ties: YAML and native ties differ"; fail=1; }
echo "ok YAML ties = native ties"
# della / breadcrumbs / model_stock / slerp on rows that straddle blocks, 1 and 3 ranks
"$bin" synth --layers 2 --hidden 256 --intermediate 704 --vocab 12000 --experts 2 -o syn --quiet
cat > syn-della.yml <<YAML
models:
  - model: syn/task1
    parameters: {weight: 0.7, density: 0.4, epsilon: 0.2}
  - model: syn/lang1
    parameters: {weight: 0.5, density: [0.3, 0.6]}
merge_method: della
base_model: syn/base
parameters: {lambda: 0.9}
YAML
sed 's/merge_method: della/merge_method: breadcrumbs_ties/; s/epsilon: 0.2/gamma: 0.05/' syn-della.yml >syn-bc.yml
printf 'models:\n  - model: syn/task1\n  - model: syn/lang1\nmerge_method: model_stock\nbase_model: syn/base\n' >syn-ms.yml
printf 'models:\n  - model: syn/lang1\nmerge_method: slerp\nbase_model: syn/base\nparameters: {t: [0.2, 0.9]}\ndtype: float16\n' >syn-slerp.yml
for m in syn-della syn-bc syn-ms syn-slerp; do
  "$mpiexec" -n 1 "$bin" merge $m.yml -o $m-1 --mem 1M --quiet
  "$mpiexec" -n 3 "$bin" merge $m.yml -o $m-3 --mem 1M --quiet
  for f in $m-1/*; do cmp -s "$f" "$m-3/$(basename "$f")" || { echo "FAIL $m: $(basename "$f") differs at 3 ranks"; fail=1; }; done
  "$py" "$here/ref/lsw_ref.py" merge $m.yml --compare $m-1 -q >$m.ref 2>&1 || { echo "FAIL $m: oracle"; cat $m.ref; fail=1; }
  echo "ok $m: 1 = 3 ranks = oracle"
done
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
