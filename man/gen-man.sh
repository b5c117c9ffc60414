#!/bin/sh
# gen-man.sh LAYERSWAP TEMPLATE OUTPUT
# Writes the man page OUTPUT from TEMPLATE (hand-written roff) with
#   @VERSION@   replaced by the version `LAYERSWAP --version` prints, and
#   @COMMANDS@  (a line of its own) replaced by one subsection per command of
#               `LAYERSWAP --help`, made from `LAYERSWAP CMD --help` by help2roff.awk,
# so that the page lists exactly the commands and options of the binary it is
# installed with.  Run by the build (target `man`); needs only sh and awk.
set -eu
[ $# -eq 3 ] || { echo "usage: $0 LAYERSWAP TEMPLATE OUTPUT" >&2; exit 1; }
bin=$1 tpl=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$out.tmp.$$
trap 'rm -f "$tmp" "$tmp.cmds" "$tmp.help"' EXIT
"$bin" --help > "$tmp.help" || { echo "gen-man: '$bin --help' failed" >&2; exit 1; }
# the commands: the first word of each line of the "Commands:" list, except help
cmds=$(awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {if ($1 != "help") print $1}' "$tmp.help")
[ -n "$cmds" ] || { echo "gen-man: no Commands: list in '$bin --help'" >&2; exit 1; }
version=$("$bin" --version | sed -n 's/^layerswap //p')
: > "$tmp.cmds"
for c in $cmds; do
  "$bin" "$c" --help > "$tmp.help" || { echo "gen-man: '$bin $c --help' failed" >&2; exit 1; }
  awk -v cmd="$c" -f "$here/help2roff.awk" "$tmp.help" >> "$tmp.cmds"
done
awk -v f="$tmp.cmds" -v v="$version" '
  $0 == "@COMMANDS@" { while ((getline l < f) > 0) print l; next }
  { gsub(/@VERSION@/, v); print }' "$tpl" > "$tmp"
mv "$tmp" "$out"
