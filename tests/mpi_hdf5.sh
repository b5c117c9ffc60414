#!/usr/bin/env bash
# mpi_hdf5.sh LAYERSWAP MPIEXEC PYTHON PLUGIN_DIR WORKDIR
# --format hdf5: model.h5 byte-identical at 1, 2, 3 and 4 ranks; h5py with
# the project's plugin reads every tensor bit-exactly equal to the
# safetensors output of the same merge; model.h5 chains into a later merge
# as an input (same bytes as from the safetensors input); a read fault on one
# rank ends every rank with exit 2 and leaves no model.h5.
set -euo pipefail
bin=$1 mpiexec=$2 py=$3 plugins=$4 work=$5
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail=0
"$bin" synth --layers 4 --hidden 256 --intermediate 704 --vocab 12000 --experts 2 --shard-size 8MB -o syn --quiet
cat > m.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 1, "top": 1, "lower_transition": 1,
   "upper_transition": 0, "transition_weights": "magnitude", "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "unused", "format": "hdf5", "compression": {"codec": "zstd", "level": 1, "shuffle": true}}}
JSON
"$bin" merge m.json --format safetensors -o st --quiet
for n in 1 2 3 4; do
  "$mpiexec" -n $n "$bin" merge m.json -o h$n --mem 1M --quiet
  "$bin" verify h$n >/dev/null || { echo "FAIL verify h$n"; fail=1; }
  if [ $n -gt 1 ] && ! cmp -s h1/model.h5 h$n/model.h5; then echo "FAIL model.h5 differs at $n ranks"; fail=1; fi
done
echo "ok model.h5 identical at 1-4 ranks"
# a task-vector merge in HDF5 at 2 ranks equals its safetensors output
cat > tv.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "dare_ties",
 "dare_ties": {"models": ["t", "g"], "density": [0.4, 0.6], "seed": 3}, "output": {"path": "unused"}}
JSON
"$bin" merge tv.json -o tv-st --quiet
"$mpiexec" -n 2 "$bin" merge tv.json --format hdf5 -o tv-h5 --mem 1M --quiet
HDF5_PLUGIN_PATH=$plugins "$py" "$here/h5_vs_safetensors.py" tv-h5/model.h5 tv-st || fail=1
HDF5_PLUGIN_PATH=$plugins "$py" "$here/h5_vs_safetensors.py" h1/model.h5 st || fail=1
# Chaining: the h5 output as an input gives the same bytes as the safetensors output.
for src in st h1; do
  cat > chain-$src.json <<JSON
{"models": {"merged": "$src", "g": "syn/lang1"}, "method": "linear",
 "linear": {"models": ["merged", "g"], "weights": [3, 1]}, "output": {"path": "chain-$src-out"}}
JSON
  "$bin" merge chain-$src.json --quiet
done
for f in chain-st-out/model*.safetensors; do
  cmp -s "$f" "chain-h1-out/$(basename "$f")" || { echo "FAIL chained merge from model.h5 differs: $f"; fail=1; }
done
echo "ok model.h5 as an input"
# A read fault on rank 2 of 3: everyone exits 2, nothing under a final name.
rc=0
LSW_FAULT_READ_AFTER=3000000 LSW_FAULT_RANK=2 timeout 120 "$mpiexec" -n 3 "$bin" merge m.json -o hf --mem 1M --quiet \
  >hf.log 2>&1 || rc=$?
[ $rc -eq 2 ] || { echo "FAIL fault: exit $rc, want 2"; cat hf.log; fail=1; }
[ ! -e hf/model.h5 ] && [ ! -e hf/layerswap-manifest.json ] || { echo "FAIL fault: final files written"; fail=1; }
ls -a hf 2>/dev/null | grep -q lsw-tmp && { echo "FAIL fault: temporaries left"; fail=1; }
echo "ok read fault on one rank: exit 2 everywhere"
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
