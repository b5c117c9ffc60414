#!/usr/bin/env bash
# check_man.sh LAYERSWAP MANPAGE
# The generated man page (man/gen-man.sh) renders with `man -l` without a single groff
# or man warning, and lists every command of `layerswap --help` and every option of
# every `layerswap COMMAND --help` (the page is made from those texts: a command or
# option the generator dropped would be missing here).
set -uo pipefail
bin=$1 page=$2
fail=0
bad() { echo "FAIL: $*"; fail=1; }
command -v man >/dev/null || { echo "FAIL: no man command: install man-db (.ci/install-test-deps)"; exit 1; }
[ -s "$page" ] || { echo "FAIL: $page missing or empty (LSW_BUILD_MAN, target man)"; exit 1; }
tmp=$(mktemp -d) && trap 'rm -rf "$tmp"' EXIT
# MANWIDTH: fixed layout; --warnings: groff reports bad requests, escapes, fonts
MANWIDTH=100 MAN_KEEP_FORMATTING=0 man --warnings -l "$page" >"$tmp/page.txt" 2>"$tmp/err.txt"
rc=$?
[ $rc -eq 0 ] || bad "man -l exited with $rc"
if [ -s "$tmp/err.txt" ]; then bad "man -l warned:"; cat "$tmp/err.txt"; fi
# plain text: no overstrike (bold/underline) sequences
sed -e 's/.\x08//g' "$tmp/page.txt" >"$tmp/plain.txt"
grep -q '^LAYERSWAP(1)' "$tmp/plain.txt" || bad "no LAYERSWAP(1) header line"
version=$("$bin" --version | sed -n 's/^layerswap //p')
grep -q "layerswap $version" "$tmp/plain.txt" || bad "the page does not name version $version"
for sec in NAME SYNOPSIS DESCRIPTION COMMANDS "EXIT STATUS" ENVIRONMENT FILES EXAMPLES "SEE ALSO"; do
  grep -q "^$sec\$" "$tmp/plain.txt" || bad "no section $sec"
done
"$bin" --help >"$tmp/top.txt"
cmds=$(awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {if ($1 != "help") print $1}' "$tmp/top.txt")
n=0
for c in $cmds; do
  grep -q "^   layerswap $c\$" "$tmp/plain.txt" || bad "no subsection 'layerswap $c'"
  "$bin" "$c" --help >"$tmp/help.txt"
  # options: synopsis words and option lines of the help text
  opts=$(awk '/^Usage:/ {syn = 1} syn && !/^Usage:/ && !/^ +[^ -]/ {syn = 0} syn {print; next}
              /^ +-/ {match($0, /^ +/); if (RLENGTH > 4) next; l = substr($0, RLENGTH + 1)
                      p = index(l, "  "); print (p ? substr(l, 1, p - 1) : l)}' "$tmp/help.txt" |
         grep -oE -- '(^|[][ ,|])--?[a-zA-Z][a-zA-Z0-9-]*' | tr -d '[] ,|' | sort -u)
  # the subsection of this command in the rendered page
  awk -v h="   layerswap $c" '$0 == h {on = 1; next} on && /^   layerswap / {exit} on && /^[A-Z]/ {exit} on' \
      "$tmp/plain.txt" >"$tmp/sub.txt"
  for o in $opts; do
    n=$((n + 1))
    grep -qE -- "(^|[^a-zA-Z0-9-])$o([^a-zA-Z0-9-]|\$)" "$tmp/sub.txt" || bad "option $o of 'layerswap $c' is not in its subsection"
  done
done
echo "man -l: $(wc -l <"$tmp/plain.txt") lines; $(echo $cmds | wc -w) commands, $n options checked"
[ $fail -eq 0 ] && echo ok
exit $fail
