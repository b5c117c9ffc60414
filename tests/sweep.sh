#!/usr/bin/env bash
# sweep.sh LAYERSWAP MPIEXEC PYTHON WORKDIR
# layerswap sweep over a 2 x 2 x 2 grid: every output folder byte-identical
# (manifest included) to `merge --sweep --index K` run alone, equal to the
# oracle, verified; with shard_by layer and dedup hardlink, shared shards are
# hard links and the sweep reads less than separate merges would; copy and
# reflink (falls back to copy on ext4) give the same bytes; --emit-array;
# a write fault mid-sweep resumes to identical bytes; a 2-rank run equals the
# 1-rank run; an unknown grid key is a config error; --emit-array refuses a
# grid with an impossible merge or a missing model path; a value listed twice
# on an axis, and a grid whose expanded configs would exceed 256 MB, are
# config errors.
set -euo pipefail
bin=$1 mpiexec=$2 py=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work" && cd "$work"
fail=0
ck() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
"$bin" synth --layers 6 --hidden 256 --intermediate 704 --vocab 4000 --experts 4 -o m --quiet
mk() { # name dedup shard_by
  cat > $1.json <<JSON
{"models": {"base": "m/base", "math1": "m/task1", "math2": "m/task2", "swh1": "m/lang1", "swh2": "m/lang2"}, "base": "base",
 "grid": {"task_expert": ["math1", "math2"], "language_expert": ["swh1", "swh2"], "bottom": [1, 2], "top": [1],
          "upper_transition": [1], "transition_weights": ["magnitude"]},
 "output": {"path": "$1-out", "format": "safetensors", "shard_by": "$3", "dedup": "$2"}}
JSON
}
mk hl hardlink layer; mk cp copy layer; mk rl reflink layer; mk sz hardlink size
ck '[ "$("$bin" sweep hl.json --emit-array | wc -l)" = 8 ]' "--emit-array prints 8 lines"
"$bin" sweep hl.json --quiet
# rerunning a finished sweep does nothing, not even the magnitude pre-pass
"$bin" sweep hl.json 2>rerun.log
ck 'grep -q "(8 already complete)" rerun.log && ! grep -q "model MAV" rerun.log' "rerun of a finished sweep did work"
for k in 0 1 2 3 4 5 6 7; do "$bin" merge --sweep hl.json --index $k -o single --quiet; done
for d in hl-out/*-*/; do
  n=$(basename "$d")
  for f in "$d"*; do ck 'cmp -s "$f" "single/$n/$(basename "$f")"' "sweep output $n/$(basename "$f") differs from merge --index"; done
  ck '"$bin" verify "$d" >/dev/null' "verify $n"
done
cat > ref5.json <<JSON
{"models": {"base": "m/base", "math": "m/task2", "swh": "m/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "swh", "bottom": 2, "top": 1, "upper_transition": 1,
   "transition_weights": "magnitude"}, "output": {"path": "hl-out/5-math2-swh1-b2"}}
JSON
ck '"$py" "$here/ref/lsw_ref.py" merge ref5.json --compare hl-out/5-math2-swh1-b2 >/dev/null' "merge 5 differs from the oracle"
links=$(find hl-out -name 'model-*.safetensors' -links +1 | wc -l)
ck '[ "$links" -gt 8 ]' "shared shards are hard links ($links)"
ck '[ "$(du -s hl-out | cut -f1)" -lt "$(du -s single | cut -f1)" ]' "deduplicated sweep smaller than separate merges"
"$py" - hl-out/sweep.json <<'PY' || fail=1
import json, sys
s = json.load(open(sys.argv[1]))
assert [m["index"] for m in s["merges"]] == list(range(8)), s
assert s["merges"][5]["name"] == "math2-swh1-b2" and s["merges"][5]["config"]["layer_swap"]["bottom"] == 2
# the configs keep the sweep file's relative paths; sweep.json says where they start
import os
rel = s["paths_relative_to"]
assert os.path.isabs(rel) and os.path.isdir(os.path.join(rel, s["merges"][5]["config"]["models"]["math2"])), rel
print("ok sweep.json")
PY
for v in cp rl sz; do
  "$bin" sweep $v.json --quiet
  for d in hl-out/*-*/; do
    n=$(basename "$d")
    for f in "$d"model*; do
      [ "$v" = sz ] && break
      ck 'cmp -s "$f" "$v-out/$n/$(basename "$f")"' "dedup $v: $n/$(basename "$f") differs"
    done
  done
done
ck '[ "$(find cp-out -name "model-*.safetensors" -links +1 | wc -l)" = 0 ]' "copy mode makes no links"
# interrupted sweep resumes to identical bytes
rc=0; LSW_FAULT_WRITE_AFTER=9000000 "$bin" sweep hl.json -o fault-out --quiet 2>/dev/null || rc=$?
ck '[ $rc = 4 ]' "write fault exit $rc, want 4"
"$bin" sweep hl.json -o fault-out --quiet
for d in hl-out/*-*/; do n=$(basename "$d"); for f in "$d"model*; do
  ck 'cmp -s "$f" "fault-out/$n/$(basename "$f")"' "resumed sweep: $n/$(basename "$f") differs"; done; done
# two ranks
"$mpiexec" -n 2 "$bin" sweep hl.json -o mpi-out --quiet
for d in hl-out/*-*/; do n=$(basename "$d"); for f in "$d"model*; do
  ck 'cmp -s "$f" "mpi-out/$n/$(basename "$f")"' "2-rank sweep: $n/$(basename "$f") differs"; done; done
# config error
sed 's/"top": \[1\]/"tops": [1]/' hl.json > bad.json
rc=0; "$bin" sweep bad.json 2>bad.log || rc=$?
ck '[ $rc = 1 ] && grep -q "bad.json" bad.log && grep -q tops bad.log' "unknown grid key: exit $rc"
# a grid with one impossible merge (bottom 6 + top 1 > 6 layers): --emit-array checks every
# merge against the checkpoints and refuses before printing or writing anything, naming the merge
sed 's/"bottom": \[1, 2\]/"bottom": [1, 6]/; s/hl-out/em-out/' hl.json > em.json
rc=0; "$bin" sweep em.json --emit-array >em.txt 2>em.log || rc=$?
ck '[ $rc = 1 ] && [ ! -s em.txt ] && [ ! -e em-out/sweep.json ] && grep -q "merge 1 (math1-swh1-b6" em.log' \
   "emit-array of a grid with an impossible merge: exit $rc, $(cat em.log)"
# a model the grid never reads, with a path that does not exist: a bad input (exit 2)
sed 's#"swh2": "m/lang2"#"swh2": "m/lang2", "spare": "m/nothing-here"#; s/hl-out/sp-out/' hl.json > sp.json
rc=0; "$bin" sweep sp.json --emit-array >/dev/null 2>sp.log || rc=$?
ck '[ $rc = 2 ] && grep -q "nothing-here" sp.log' "unused model with a missing path: exit $rc"
# a value listed twice on an axis (two merges of one name) is a config error
sed 's/"bottom": \[1, 2\]/"bottom": [1, 2, 1]/; s/hl-out/dup-out/' hl.json > dup.json
rc=0; "$bin" sweep dup.json --emit-array >/dev/null 2>dup.log || rc=$?
ck '[ $rc = 1 ] && grep -q "grid.bottom lists 1 twice" dup.log' "duplicate grid value: exit $rc, $(cat dup.log)"
# 100,000 merges whose configs each repeat a 3 kB models section: refused before expanding
"$py" - > amp.json <<'PYEOF'
import json
models = {"m%03d" % i: "m/task1" for i in range(100)}
models["base"] = "m/base"
print(json.dumps({"models": models, "base": "base",
                  "grid": {"task_expert": ["m%03d" % i for i in range(100)],
                           "language_expert": ["m%03d" % i for i in range(10)],
                           "bottom": list(range(10)), "top": list(range(10))},
                  "output": {"path": "amp-out"}}))
PYEOF
rc=0; "$bin" sweep amp.json --emit-array >/dev/null 2>amp.log || rc=$?
ck '[ $rc = 1 ] && grep -q "split the sweep" amp.log && [ ! -e amp-out ]' "sweep amplification: exit $rc, $(cat amp.log)"
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
