#!/usr/bin/env bash
# bad_h5.sh LAYERSWAP WORKDIR        (MPIEXEC in the environment: also a 2-rank case)
# Crafted model.h5 inputs (tests/data/bad-h5/README.md) are bad inputs: exit 2
# with the file and tensor named, from `inspect` (the storage is checked at
# open) or, for a frame without checksum, from the merge that reads it; never
# exit 0 with data out of a filter that could not be checked.
set -uo pipefail
bin=$1 work=$2
data=$(cd "$(dirname "$0")" && pwd)/data/bad-h5
rm -rf "$work" && mkdir -p "$work"
fail=0
expect() { # what rc pattern command...
  local what=$1 rc=$2 pat=$3; shift 3
  "$@" >"$work/out.txt" 2>"$work/err.txt"; local got=$?
  if [ "$got" != "$rc" ] || ! grep -q -- "$pat" "$work/err.txt"; then
    echo "FAIL: $what: exit $got (want $rc), stderr: $(head -c 300 "$work/err.txt")"; fail=1
  fi
}
expect "cd_values[1] below the chunk" 2 "zstd filter parameters do not match" "$bin" inspect "$data/h5-cdv-short.h5"
expect "no cd_values[1]" 2 "zstd filter parameters lack" "$bin" inspect "$data/h5-cdv-none.h5"
expect "a 256 MiB chunk for 16 bytes" 2 "tensor 't'" "$bin" inspect "$data/h5-chunk-huge.h5"
# a crash inside libhdf5 (a corrupt dense group): the probe process takes it, every
# rank exits 2; MALLOC_PERTURB_ makes this process crash too if it ever opened the file
MALLOC_PERTURB_=190 expect "libhdf5 crash on a corrupt group" 2 "crashed reading this file" \
  "$bin" inspect "$data/h5-dense-group-badfree.h5"
if [ -n "${MPIEXEC:-}" ]; then
  LSW_REPORT_EXIT=1 MALLOC_PERTURB_=190 expect "libhdf5 crash at 2 ranks" 2 "rank 1 exit 2" \
    "$MPIEXEC" -n 2 "$bin" inspect "$data/h5-dense-group-badfree.h5"
fi
cat > "$work/nock.json" <<JSON
{"models": {"a": "$data/h5-nochecksum.h5"}, "method": "rules", "rules": [{"action": "take", "model": "a"}],
 "output": {"path": "$work/out", "format": "safetensors"}}
JSON
expect "frame without checksum" 2 "h5-nochecksum.h5: tensor 't'" "$bin" merge "$work/nock.json"
[ -e "$work/out/layerswap-manifest.json" ] && { echo "FAIL: a manifest after a failed read"; fail=1; }
if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
echo "1 passed, 0 failed"
