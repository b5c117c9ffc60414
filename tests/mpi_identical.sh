#!/usr/bin/env bash
# mpi_identical.sh LAYERSWAP MPIEXEC PYTHON WORKDIR
# The same merges at 1, 2, 3 and 4 ranks (oversubscribed) give identical
# bytes in every output file, manifest included, and match the oracle.
# Covers the real fixtures and a synthetic model whose embeddings are split
# into row blocks across ranks; also the fault paths: a read fault or a write
# fault on one rank makes every rank exit with the same code, without hanging
# and without any file under a final name that is incomplete.
set -euo pipefail
bin=$1 mpiexec=$2 py=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fx=$here/data/llama-bf16-sharded
fail=0
cat > fixtures.json <<JSON
{"models": {"base": "$fx/base", "math": "$fx/math2", "lang": "$fx/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": 2, "lower_transition": 1,
   "upper_transition": 1, "transition_weights": "magnitude", "non_layer": "average", "non_layer_weights": "magnitude"},
 "output": {"path": "unused", "shard_size": "200KB"}}
JSON
"$bin" synth --layers 4 --hidden 256 --intermediate 704 --vocab 12000 --experts 2 --shard-size 8MB -o syn --quiet
cat > syn.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 1, "top": 1, "lower_transition": 1,
   "upper_transition": 0, "transition_weights": "uniform", "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "unused", "shard_size": "3MB", "dtype": "float16"}}
JSON
cat > tv.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "ties",
 "ties": {"models": ["t", "g"], "weights": [1.0, 0.6], "density": [0.3, 0.5], "lambda": 1.2},
 "output": {"path": "unused", "shard_size": "3MB"}}
JSON
sed 's/"lambda": 1.2}/"lambda": 1.2, "trim": "global"}/' tv.json > tvg.json
for cfg in fixtures syn tv tvg; do
  for n in 1 2 3 4; do
    "$mpiexec" -n $n "$bin" merge $cfg.json -o $cfg-n$n --mem 1M --quiet
    if [ $n -gt 1 ]; then
      for f in $cfg-n1/*; do
        if ! cmp -s "$f" "$cfg-n$n/$(basename "$f")"; then echo "FAIL $cfg: $(basename "$f") differs at $n ranks"; fail=1; fi
      done
      [ "$(ls $cfg-n1 | wc -l)" = "$(ls $cfg-n$n | wc -l)" ] || { echo "FAIL $cfg: file lists differ at $n ranks"; fail=1; }
    fi
  done
  "$py" "$here/ref/lsw_ref.py" merge $cfg.json --compare $cfg-n1 >/dev/null || { echo "FAIL $cfg: differs from the oracle"; fail=1; }
  echo "ok $cfg: identical at 1-4 ranks and equal to the oracle"
done
# ties' threshold scans on 1 and 3 threads a rank (LSW_THREADS): the same
# bytes, and --summary shows that the threads ran
for cfg in tv tvg; do
  for t in 1 3; do
    LSW_THREADS=$t "$mpiexec" -n 2 "$bin" merge $cfg.json -o $cfg-t$t --mem 1M --quiet --summary $cfg-t$t.json
    for f in $cfg-n1/*; do
      cmp -s "$f" "$cfg-t$t/$(basename "$f")" || { echo "FAIL $cfg: $(basename "$f") differs with $t scan threads"; fail=1; }
    done
    got=$("$py" -c 'import json, sys; print(json.load(open(sys.argv[1]))["scan_threads"])' $cfg-t$t.json)
    [ "$got" = "$t" ] || { echo "FAIL $cfg: scan_threads $got in --summary, want $t"; fail=1; }
  done
  echo "ok $cfg: 1 and 3 scan threads a rank give the same bytes"
done
# --progress prints flushed lines from rank 0 only; --summary writes JSON.
"$mpiexec" -n 3 "$bin" merge syn.json -o prog --mem 1M --progress 0.000001 --summary prog-summary.json 2>prog.log
lines=$(grep -c '^layerswap merge: .* tensors, .* GB (.*%), .* GB/s, ETA' prog.log || true)
[ "$lines" -ge 1 ] || { echo "FAIL progress: no progress line"; cat prog.log; fail=1; }
grep -q 'on 3 rank(s)' prog.log || { echo "FAIL progress: no summary line"; fail=1; }
[ "$(grep -c 'on 3 rank' prog.log)" = 1 ] || { echo "FAIL progress: summary printed by more than one rank"; fail=1; }
"$py" - prog-summary.json <<'PY' || fail=1
import json, sys
s = json.load(open(sys.argv[1]))
assert s["ranks"] == 3 and s["tensors"] > 0, s
assert set(s["phases_s"]) >= {"tensors", "commit", "total"}, s
assert s["per_rank"]["bytes_written"]["min"] <= s["per_rank"]["bytes_written"]["max"], s
assert s["bytes_written"] == s["output_bytes"], s
print("ok summary json")
PY
# One rank fails, all ranks exit with the same code.
check_fault() { # name var bytes rank n expected
  local name=$1 var=$2 bytes=$3 r=$4 n=$5 want=$6 got=0
  env "$var=$bytes" LSW_FAULT_RANK=$r timeout 120 "$mpiexec" -n $n "$bin" merge syn.json -o $name --mem 1M --quiet \
      >$name.log 2>&1 || got=$?
  if [ $got -ne $want ]; then echo "FAIL $name: exit $got, want $want"; cat $name.log; fail=1; return; fi
  grep -q "exit $want\]" $name.log || { echo "FAIL $name: no error line"; fail=1; }
  [ ! -e $name/layerswap-manifest.json ] || { echo "FAIL $name: manifest written"; fail=1; }
  for f in $name/model*.safetensors; do
    [ -e "$f" ] || continue
    "$bin" inspect "$f" >/dev/null || { echo "FAIL $name: incomplete final file $f"; fail=1; }
  done
  ls -a $name 2>/dev/null | grep -q 'lsw-tmp' && { echo "FAIL $name: temporaries left"; fail=1; }
  echo "ok $name: exit $want on all ranks"
}
check_fault readfault LSW_FAULT_READ_AFTER 4000000 2 3 2
check_fault writefault LSW_FAULT_WRITE_AFTER 1500000 1 4 4
check_fault writefault0 LSW_FAULT_WRITE_AFTER 9000000 0 2 4
# After a write fault, the same command resumes and ends identical.
"$mpiexec" -n 4 "$bin" merge syn.json -o writefault --mem 1M --quiet
for f in syn-n1/*; do cmp -s "$f" "writefault/$(basename "$f")" || { echo "FAIL resume: $(basename "$f") differs"; fail=1; }; done
echo "ok resume after a write fault at 4 ranks"
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
