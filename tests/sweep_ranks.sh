#!/usr/bin/env bash
# sweep_ranks.sh LAYERSWAP MPIEXEC PYTHON WORKDIR
# A sweep runs on every rank, through the same executor as a merge
# (docs/sweep.md): for safetensors (shard_by layer, hard links) and HDF5
# outputs, every merge folder is byte-identical (manifests included) at 1, 2
# and 3 ranks, and model.h5 of merge K equals `merge --sweep --index K`;
# --summary reports every rank's busy/wait seconds and bytes as integers, and
# the HDF5 summary one file per output and compressed_over_raw; a sweep
# stopped on one rank (a stop request injected after N bytes read) exits 3
# on every rank and resumes under another number of ranks to identical
# bytes; a write fault on one rank exits 4 on every rank, leaves no file
# under a final name that differs from the reference, and resumes; a
# damaged input is exit 2 on every rank without a hang; merge --summary has
# the same fields for both formats.
set -uo pipefail
bin=$1 mpiexec=$2 py=$3 work=$4
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
fail=0
ck() { if ! eval "$1"; then echo "FAIL: $2"; fail=1; fi; }
"$bin" synth --layers 6 --hidden 256 --intermediate 704 --vocab 4000 --experts 4 -o m --quiet || exit 1
mk() { # name format extra-output-keys
  cat > "$1.json" <<JSON
{"models": {"base": "m/base", "math1": "m/task1", "math2": "m/task2", "swh1": "m/lang1", "swh2": "m/lang2"}, "base": "base",
 "grid": {"task_expert": ["math1", "math2"], "language_expert": ["swh1", "swh2"], "bottom": [1, 2], "top": [1],
          "upper_transition": [1], "transition_weights": ["magnitude"]},
 "output": {"path": "$1-out", "format": "$2"$3}}
JSON
}
mk st safetensors ', "shard_by": "layer", "dedup": "hardlink"'
mk h5 hdf5 ''
same_tree() { # REF OTHER LABEL: every file of every merge folder of REF equal in OTHER
  local d n f other=$2
  for d in "$1"/*-*/; do
    n=$(basename "$d")
    for f in "$d"*; do ck 'cmp -s "$f" "$other/$n/$(basename "$f")"' "$3: $n/$(basename "$f") differs"; done
  done
}
for fmt in st h5; do
  "$bin" sweep $fmt.json -o $fmt-1 --quiet --summary $fmt-1.json || fail=1
  for n in 2 3; do
    "$mpiexec" -n $n "$bin" sweep $fmt.json -o $fmt-$n --quiet --summary $fmt-$n.json || { echo "FAIL: $fmt at $n ranks"; fail=1; }
    same_tree $fmt-1 $fmt-$n "$fmt sweep at $n ranks"
  done
  ck '[ -f $fmt-3/sweep.json ]' "$fmt sweep writes sweep.json"
  "$bin" verify $fmt-3/5-math2-swh1-b2 >/dev/null || { echo "FAIL: verify $fmt-3/5"; fail=1; }
done
for k in 0 5; do "$bin" merge --sweep h5.json --index $k -o single --quiet; done
for k in 0 5; do d=$(ls -d single/$k-*); ck 'cmp -s "$d/model.h5" "h5-1/$(basename "$d")/model.h5"' "HDF5 merge $k differs from merge --index"; done
"$py" - st-3.json h5-3.json <<'PY' || fail=1
import json, sys
for path in sys.argv[1:]:
    s = json.load(open(path))
    h5 = s["format"] == "hdf5"
    assert s["command"] == "sweep" and s["ranks"] == 3 and s["outputs"] == 8, s
    pr = s["per_rank"]
    for k in ("bytes_read", "bytes_written"):
        assert all(isinstance(pr[k][m], int) for m in ("min", "max")), (path, pr)
    assert pr["busy_s"]["max"] > 0, (path, pr)
    assert isinstance(s["bytes_read"], int) and s["bytes_read"] < s["bytes_read_separately"], (path, s)
    if h5:
        assert s["files_per_output"] == 1 and s["files_written"] == 8, s
        assert 0 < s["hdf5"]["compressed_over_raw"] < 1, s
        assert s["hdf5"]["raw_bytes"] == s["output_bytes"], s
    else:
        assert pr["bytes_read"]["min"] > 0, ("every rank reads", pr)
        assert s["files_shared"] > 0 and s["shared_as"] == "hardlink", s
print("ok summaries")
PY
# stopped on one rank, resumed under another number of ranks
rc=0; LSW_REPORT_EXIT=1 LSW_FAULT_STOP_AFTER=20000000 LSW_FAULT_RANK=1 "$mpiexec" -n 3 "$bin" sweep st.json -o stop-st --quiet --mem 1M 2>stop-st.log || rc=$?
ck '[ "$(grep -c "exit 3$" stop-st.log)" = 3 ]' "stopped safetensors sweep: every rank exits 3 ($(grep exit stop-st.log | tr '\n' ' '))"
"$mpiexec" -n 2 "$bin" sweep st.json -o stop-st --quiet || fail=1
same_tree st-1 stop-st "safetensors sweep stopped at 3 ranks, resumed at 2"
rc=0; LSW_REPORT_EXIT=1 LSW_FAULT_STOP_AFTER=30000000 LSW_FAULT_RANK=2 "$mpiexec" -n 3 "$bin" sweep h5.json -o stop-h5 --quiet --mem 1M 2>stop-h5.log || rc=$?
ck '[ "$(grep -c "exit 3$" stop-h5.log)" = 3 ]' "stopped HDF5 sweep: every rank exits 3 ($(grep exit stop-h5.log | tr '\n' ' '))"
"$bin" sweep h5.json -o stop-h5 --quiet || fail=1
same_tree h5-1 stop-h5 "HDF5 sweep stopped at 3 ranks, resumed at 1"
# a write fault on one rank
rc=0; LSW_REPORT_EXIT=1 LSW_FAULT_WRITE_AFTER=5000000 LSW_FAULT_RANK=2 "$mpiexec" -n 3 "$bin" sweep st.json -o wf --quiet --mem 1M 2>wf.log || rc=$?
ck '[ "$(grep -c "exit 4$" wf.log)" = 3 ]' "write fault on rank 2: every rank exits 4 ($(grep exit wf.log | tr '\n' ' '))"
for f in wf/*-*/model*.safetensors; do
  [ -e "$f" ] || continue
  ck 'cmp -s "$f" "st-1/${f#wf/}"' "after the write fault, $f is under its final name but differs"
done
ck '[ -z "$(ls wf/*-*/layerswap-manifest.json 2>/dev/null)" ] || [ "$(ls wf/*-*/layerswap-manifest.json | wc -l)" -lt 8 ]' "write fault: not every merge complete"
"$mpiexec" -n 3 "$bin" sweep st.json -o wf --quiet || fail=1
same_tree st-1 wf "safetensors sweep resumed after a write fault"
# a damaged input: exit 2 on every rank
cp -r m bad && truncate -s -100 bad/lang2/model.safetensors 2>/dev/null || truncate -s -100 "$(ls bad/lang2/*.safetensors | head -1)"
sed 's#"m/#"bad/#g' st.json > bad.json
rc=0; LSW_REPORT_EXIT=1 timeout 120 "$mpiexec" -n 3 "$bin" sweep bad.json -o bad-out --quiet 2>bad.log || rc=$?
ck '[ "$(grep -c "exit 2$" bad.log)" = 3 ]' "damaged input: every rank exits 2 ($(grep exit bad.log | tr '\n' ' '))"
# merge --summary: the same fields for both formats
cat > one.json <<'JSON'
{"models": {"base": "m/base", "math": "m/task1", "swh": "m/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "swh", "bottom": 2, "top": 1}, "output": {"path": "one-out"}}
JSON
"$mpiexec" -n 2 "$bin" merge one.json -o one-st --quiet --summary one-st.json || fail=1
"$mpiexec" -n 2 "$bin" merge one.json -o one-h5 --format hdf5 --quiet --summary one-h5.json || fail=1
"$py" - one-st.json one-h5.json <<'PY' || fail=1
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:])
assert a["command"] == b["command"] == "merge" and a["ranks"] == b["ranks"] == 2, (a, b)
assert set(a) | {"hdf5"} == set(b), set(a) ^ set(b)
assert b["files_per_output"] == 1 and b["files_written"] == 1 and a["files_per_output"] >= 1, (a, b)
assert b["per_rank"]["busy_s"]["max"] > 0 and b["per_rank"]["busy_s"]["min"] > 0, b["per_rank"]
for s in (a, b):
    assert all(isinstance(s["per_rank"][k][m], int) for k in ("bytes_read", "bytes_written") for m in ("min", "max"))
assert 0 < b["hdf5"]["compressed_over_raw"] < 1 and "compression_ratio" not in b, b
print("ok merge summaries")
PY
exit $fail
