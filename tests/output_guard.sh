#!/usr/bin/env bash
# output_guard.sh LAYERSWAP WORKDIR
# An output folder that holds an input model is refused (exit 1) before
# anything is written, with and without --overwrite, by merge and by stats; a
# sweep (whose merge folders are <path>/<K>-<name>, checked the same way)
# still runs beside the inputs; the input stays byte for byte as it was.
# A folder holding another tool's checkpoint (weight files no manifest of ours
# lists) is refused without --overwrite; with it, every weight file goes and
# the result passes `verify`.
set -euo pipefail
bin=$1 work=$2
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
cp -r "$here/data/llama-bf16-sharded/"{base,math1,lang1} .
sed 's#../tests/data/llama-bf16-sharded#.#g' "$here/../configs/layer-swap-paper.json" > c.json
cat > s.json <<'JSON'
{"models": {"base": "base", "math1": "math1", "lang1": "lang1"}, "base": "base",
 "grid": {"task_expert": ["math1"], "language_expert": ["lang1"], "bottom": [2]},
 "output": {"path": "math1/..", "shard_by": "layer"}}
JSON
before=$(cat math1/* | md5sum)
fail=0
for args in "merge c.json -o math1" "merge c.json -o math1 --overwrite" "merge c.json -o ./math1/ --overwrite"; do
  rc=0; "$bin" $args 2>err.log || rc=$?
  if [ $rc -ne 1 ] || ! grep -q "holds model 'math'" err.log; then echo "FAIL: $args: exit $rc"; cat err.log; fail=1; fi
done
for who in base math1; do
  rc=0; "$bin" stats --base base math1 -o $who --overwrite >/dev/null 2>err.log || rc=$?
  if [ $rc -ne 1 ] || ! grep -q "holds .*(an input)" err.log; then echo "FAIL: stats -o $who: exit $rc"; cat err.log; fail=1; fi
done
# another tool's checkpoint in the output folder (here lang1's five shards and index)
cp -r lang1 foreign
rc=0; "$bin" merge c.json -o foreign --quiet 2>err.log || rc=$?
if [ $rc -ne 1 ] || ! grep -q "did not write" err.log; then echo "FAIL: merge into a foreign checkpoint: exit $rc"; cat err.log; fail=1; fi
rc=0; "$bin" merge c.json -o foreign --overwrite --quiet 2>err.log || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: merge --overwrite into a foreign checkpoint: exit $rc"; cat err.log; fail=1; }
rc=0; "$bin" verify foreign >/dev/null 2>err.log || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: verify after --overwrite of a foreign checkpoint: exit $rc"; cat err.log; fail=1; }
# stats writes no weights: --overwrite into a folder that holds a model (not an input
# of this run) must not remove its weight files
mkdir -p statsdir && cp lang1/model-00001-of-00005.safetensors statsdir/
rc=0; "$bin" stats --base base math1 -o statsdir --overwrite --quiet >/dev/null 2>err.log || rc=$?
[ $rc -eq 0 ] && [ -f statsdir/model-00001-of-00005.safetensors ] && [ -f statsdir/summary.json ] ||
  { echo "FAIL: stats --overwrite beside a model's shard: exit $rc, shard kept? $(ls statsdir)"; cat err.log; fail=1; }
rc=0; "$bin" sweep s.json -o . --quiet 2>/dev/null || rc=$?
[ $rc -eq 0 ] || { echo "FAIL: sweep into a fresh folder: exit $rc"; fail=1; }
[ "$(cat math1/* | md5sum)" = "$before" ] || { echo "FAIL: the input changed"; fail=1; }
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
