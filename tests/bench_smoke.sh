#!/usr/bin/env bash
# bench_smoke.sh EXPECT SCRIPT ARG...: runs one benchmarks/ script (at a tiny size, from
# tests/bench.cmake) and passes when it exits 0 and its output holds a Markdown table,
# the closing "load average at end" line and a line matching the extended regex EXPECT
# (the script's main table). No timing is asserted: the figures of a smoke run mean nothing.
set -uo pipefail
expect=$1
shift
out=$(bash "$@")
rc=$?
printf '%s\n' "$out"
[ $rc = 0 ] || { echo "bench_smoke: $1 exited $rc" >&2; exit 1; }
grep -q '^|--*|' <<<"$out" || { echo "bench_smoke: no Markdown table in the output" >&2; exit 1; }
grep -q '^- load average at end' <<<"$out" || { echo "bench_smoke: no closing line" >&2; exit 1; }
grep -qE "$expect" <<<"$out" || { echo "bench_smoke: no line matches '$expect'" >&2; exit 1; }
