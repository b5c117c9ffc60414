#!/usr/bin/env bash
# check_example.sh LAYERSWAP PYTHON CONFIG WORKDIR
# Runs one example config from configs/, compares every output tensor bit for
# bit with the numpy oracle (tests/ref/lsw_ref.py), verifies the manifest, and
# checks that a rerun does nothing at all.
set -euo pipefail
bin=$1 py=$2 cfg=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
"$bin" merge "$cfg" -o "$work/out" --quiet
"$py" "$here/ref/lsw_ref.py" merge "$cfg" --compare "$work/out" --rules-normalize --check-layout
"$bin" verify "$work/out" >/dev/null
# a rerun finds the finished output and does nothing: no model MAV pre-pass either
"$bin" merge "$cfg" -o "$work/out" 2>"$work/rerun.log"
grep -q "nothing to do" "$work/rerun.log" || { echo "FAIL: rerun did not find the finished output"; cat "$work/rerun.log"; exit 1; }
if grep -q "model MAV" "$work/rerun.log"; then echo "FAIL: rerun computed model MAVs"; exit 1; fi
echo "example $(basename "$cfg"): identical to the reference and verified"
