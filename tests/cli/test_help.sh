#!/bin/bash
# `layerswap [COMMAND] --help` prints a line starting "Usage:" on stdout and exits 0 (docs/cli.md).
#   test_help.sh LAYERSWAP WORKDIR [COMMAND]     (no COMMAND: `layerswap --help`)
set -u
bin=$1 work=$2 cmd=${3:-}
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
# private TMPDIR (Open MPI session directories; see tests/cli/lswtest.py)
TMPDIR=$(mktemp -d /tmp/lsw-cli-XXXXXX) && export TMPDIR || exit 1
trap 'rm -rf "$TMPDIR"' EXIT
fail=0
for flag in --help; do
    if [ -n "$cmd" ]; then args=("$cmd" "$flag"); else args=("$flag"); fi
    "$bin" "${args[@]}" >out.txt 2>err.txt
    rc=$?
    echo "\$ layerswap ${args[*]}  -> exit $rc"
    cat out.txt err.txt
    if [ "$rc" -ne 0 ]; then echo "FAIL: exit $rc, expected 0"; fail=1; fi
    if ! grep -q '^Usage:' out.txt; then echo "FAIL: no line starting with 'Usage:' on stdout"; fail=1; fi
    if [ -n "$cmd" ] && ! grep -q "^Usage: layerswap $cmd" out.txt; then
        echo "FAIL: the Usage: line does not name 'layerswap $cmd'"; fail=1
    fi
    # --help must not do anything else (e.g. demo must not create ./layerswap-demo)
    extra=$(ls -A | grep -v -x -e out.txt -e err.txt)
    if [ -n "$extra" ]; then echo "FAIL: --help created: $extra"; fail=1; fi
done
[ $fail -eq 0 ] && echo "ok"
exit $fail
