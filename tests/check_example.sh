#!/usr/bin/env bash
# check_example.sh LAYERSWAP PYTHON CONFIG WORKDIR
# Runs one example config from configs/, compares every output tensor bit for
# bit with the numpy oracle (tests/ref/lsw_ref.py) and verifies the manifest.
set -euo pipefail
bin=$1 py=$2 cfg=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
rm -rf "$work" && mkdir -p "$work"
"$bin" merge "$cfg" -o "$work/out" --quiet
"$py" "$here/ref/lsw_ref.py" merge "$cfg" --compare "$work/out" --rules-normalize --check-layout
"$bin" verify "$work/out" >/dev/null
echo "example $(basename "$cfg"): identical to the reference and verified"
