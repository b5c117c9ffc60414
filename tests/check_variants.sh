#!/usr/bin/env bash
# check_variants.sh LAYERSWAP PYTHON WORKDIR
# Tied embeddings (no lm_head) with Qwen2-style biases, and F32 / F16 inputs
# (with dtype conversion to bfloat16 / float16 / float32 outputs): merged and
# compared bit for bit with the oracle.
set -euo pipefail
bin=$1 py=$2 work=$3
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$py" "$here/make_variants.py" "$here/data/llama-bf16-sharded" .
fail=0
run() { # kind outdtype transition_weights
  cat > $1-$2.json <<JSON
{"models": {"base": "$1/base", "math": "$1/math1", "lang": "$1/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": 1, "lower_transition": 1,
   "upper_transition": 2, "transition_weights": "$3", "non_layer": "average", "non_layer_weights": "$3"},
 "output": {"path": "out-$1-$2", "dtype": "$2"}}
JSON
  "$bin" merge $1-$2.json --quiet
  if "$py" "$here/ref/lsw_ref.py" merge $1-$2.json --compare out-$1-$2 > $1-$2.log; then
    echo "ok $1 -> $2 ($3): $(tail -1 $1-$2.log)"
  else
    echo "FAIL $1 -> $2"; tail -5 $1-$2.log; fail=1
  fi
}
run qwen2-tied input magnitude
run qwen2-tied float32 uniform
run f32 input magnitude
run f32 bfloat16 uniform
run f16 input uniform
run f16 float32 magnitude
run f32 float16 uniform
grep -q '"lm_head.weight"' out-qwen2-tied-input/model.safetensors && { echo "FAIL: lm_head appeared"; fail=1; }
grep -q 'q_proj.bias' out-qwen2-tied-input/model.safetensors || { echo "FAIL: biases missing"; fail=1; }
grep -q '"dtype": "float16"' out-f32-float16/config.json || { echo "FAIL: config.json dtype not rewritten"; fail=1; }
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
