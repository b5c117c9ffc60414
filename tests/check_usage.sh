#!/usr/bin/env bash
# check_usage.sh CASE LAYERSWAP SOURCE_DIR WORK_DIR
# The small things a new user meets first.  CASE:
#   help_command  `layerswap help CMD` prints exactly `layerswap CMD --help` (stdout, exit 0)
#                 for every command of the top-level help; `help` alone is --help;
#                 `help nope` and `help a b` are usage errors (exit 1)
#   version       `-V` and `--version` print "layerswap <project version>"; the top-level
#                 help lists --version, -V and help
#   methods       the top-level help lists exactly the merge methods the config parser
#                 knows (the list in its unknown-method error), and each listed one is
#                 accepted as a method
#   merge_usage   the synopsis of `merge --help` is one line per form, each ending in
#                 [OPTIONS] (no wrapped continuation that makes --progress and the rest
#                 look like options of the --sweep form), its options are listed once for
#                 both forms, and no line is wider than 100 columns
#   demo_next     the demo's "Next:" line runs as printed: started by path from a folder
#                 whose name has a space and a quote, and started from PATH
#   slurm_docs    README, slurm/README.md and the templates say how to size #SBATCH --mem
#                 against ranks x --mem and that automatic requeue needs a site that allows
#                 `scontrol requeue`; and when `scontrol requeue` fails, lsw-job.sh says so
#                 and exits 3
#   completion    completion/layerswap.bash, sourced into a plain bash: commands, every
#                 option of every command's --help, option values, config files
#   example_sweep configs/sweeps/paper-grid.json: --emit-array lists 16 merges; the sweep
#                 writes 16 verified folders whose shared shards are hard links; merge 5
#                 alone (--sweep --index 5) gives the bytes of folder 5
# Exit 0 pass, 1 fail.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 CASE LAYERSWAP SOURCE_DIR WORK_DIR" >&2; exit 1; }
case_=$1 bin=$2 src=$(cd "$3" && pwd) work=$4
fail=0
bad() { echo "FAIL $case_: $*"; fail=1; }
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
W=$(pwd)
export TMPDIR=$(mktemp -d /tmp/lsw-usage-XXXXXX) && trap 'rm -rf "$TMPDIR"' EXIT
version=$(sed -n 's/^project(layerswap VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
"$bin" --help > top.txt || bad "layerswap --help exited with $?"
commands=$(awk '/^Commands:/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z]/ {if ($1 != "help") print $1}' top.txt)
[ -n "$commands" ] || bad "no Commands: list in layerswap --help"

case "$case_" in
# -------------------------------------------------------------------------------------------
help_command)
  for c in $commands; do
    "$bin" help "$c" > a.txt 2> a.err; ra=$?
    "$bin" "$c" --help > b.txt 2> b.err; rb=$?
    [ $ra -eq 0 ] && [ $rb -eq 0 ] || bad "help $c exited $ra, $c --help exited $rb"
    cmp -s a.txt b.txt || { bad "'layerswap help $c' differs from 'layerswap $c --help'"; diff a.txt b.txt | head; }
    grep -q "^Usage: layerswap $c" a.txt || bad "'layerswap help $c' has no 'Usage: layerswap $c' line"
    [ -s a.err ] && bad "'layerswap help $c' wrote on stderr: $(cat a.err)"
  done
  "$bin" help > h.txt; [ $? -eq 0 ] || bad "'layerswap help' exited non-zero"
  cmp -s h.txt top.txt || bad "'layerswap help' differs from 'layerswap --help'"
  "$bin" help --help > h2.txt && cmp -s h2.txt top.txt || bad "'layerswap help --help' differs from --help"
  "$bin" help nope > /dev/null 2> e.txt; rc=$?
  [ $rc -eq 1 ] || bad "'layerswap help nope' exited $rc, expected 1"
  grep -q "unknown command 'nope'" e.txt || bad "'layerswap help nope' does not name the unknown command: $(cat e.txt)"
  "$bin" help merge sweep > /dev/null 2>&1; rc=$?
  [ $rc -eq 1 ] || bad "'layerswap help merge sweep' exited $rc, expected 1"
  echo "help_command: $(echo $commands | wc -w) commands"
  ;;
# -------------------------------------------------------------------------------------------
version)
  a=$("$bin" --version); b=$("$bin" -V)
  [ "$a" = "layerswap $version" ] || bad "--version printed '$a', expected 'layerswap $version'"
  [ "$b" = "$a" ] || bad "-V printed '$b', --version '$a'"
  grep -qE '^  -V, --version ' top.txt || bad "the top-level help does not list '-V, --version'"
  grep -qE '^  -h, --help ' top.txt || bad "the top-level help does not list '-h, --help'"
  grep -qE '^  help COMMAND ' top.txt || bad "the top-level help does not list 'help COMMAND'"
  grep -qE '^Usage: .*|^ +layerswap help COMMAND \| --help \| --version' top.txt || bad "no synopsis with help and --version"
  ;;
# -------------------------------------------------------------------------------------------
methods)
  listed=$(awk '/^Merge methods/ {on = 1; next} on && /^$/ {exit} on && /^  [a-z_]+ / {print $1}' top.txt | sort)
  [ -n "$listed" ] || bad "the top-level help has no 'Merge methods' list"
  mkdir -p m && printf '{"models": {"a": "a"}, "method": "no_such_method"}\n' > m/c.json
  "$bin" merge m/c.json --dry-run > /dev/null 2> m/err.txt
  known=$(sed -n 's/.*is unknown (\([^)]*\)).*/\1/p' m/err.txt | tr -d ' ' | tr ',' '\n' | sort)
  [ -n "$known" ] || bad "no method list in the unknown-method error: $(cat m/err.txt)"
  [ "$listed" = "$known" ] || bad "the help lists [$(echo $listed)], the config parser knows [$(echo $known)]"
  for meth in $listed; do
    printf '{"models": {"a": "a"}, "method": "%s"}\n' "$meth" > m/c.json
    "$bin" merge m/c.json --dry-run > /dev/null 2> m/err.txt
    grep -q "is unknown" m/err.txt && bad "method $meth of the help is unknown to the parser: $(cat m/err.txt)"
  done
  echo "methods: $(echo $listed)"
  ;;
# -------------------------------------------------------------------------------------------
merge_usage)
  "$bin" merge --help > u.txt
  awk '/^Usage:/ {on = 1} on && !/^(Usage: |       )layerswap / {exit} on' u.txt > syn.txt
  n=$(wc -l < syn.txt)
  [ "$n" -eq 2 ] || bad "the merge synopsis has $n lines, expected 2 (CONFIG.json and --sweep forms): $(cat syn.txt)"
  while IFS= read -r l; do
    [[ $l =~ ^(Usage:\ |\ {7})layerswap\ merge\ .*\[OPTIONS\]$ ]] || bad "synopsis line does not end in [OPTIONS]: '$l'"
  done < syn.txt
  next=$(sed -n "$((n + 1))p" u.txt)
  [[ $next =~ ^[[:space:]]+\[ ]] && bad "a wrapped synopsis line follows: '$next'"
  for o in -o --output --format --mem --progress --summary --dry-run --overwrite --quiet --sweep --index --help; do
    grep -qE -- "^  (-[a-z], )?$o[ ,]|^  --sweep SWEEP.json $o" u.txt || bad "option $o is not in the option list"
  done
  grep -q '^Options (both forms):$' u.txt || bad "no 'Options (both forms):' heading"
  awk 'length > 100 {print "line " NR " has " length " columns: " $0; bad = 1} END {exit bad}' u.txt || bad "merge --help is wider than 100 columns"
  ;;
# -------------------------------------------------------------------------------------------
demo_next)
  d="$W/with space"
  mkdir -p "$d" && cd "$d" || exit 1
  "$bin" demo "it's a demo" > out.txt 2> err.txt || { bad "demo exited $?: $(cat err.txt)"; }
  line=$(sed -n 's/^Next: //p' out.txt)
  echo "printed: Next: $line"
  [ -n "$line" ] || bad "no 'Next:' line"
  bash -c "$line" > next.txt 2> next.err; rc=$?
  [ $rc -eq 0 ] || bad "the Next: command exited $rc: $(cat next.err)"
  grep -q '^# layerswap plan' next.txt || bad "the Next: command did not print a plan"
  # started from PATH, the printed command names `layerswap`, which PATH finds
  cd "$W" && mkdir -p p && cd p || exit 1
  PATH="$(dirname "$bin"):$PATH" layerswap demo d > out.txt 2> err.txt || bad "demo from PATH exited $?"
  line=$(sed -n 's/^Next: //p' out.txt)
  [ "${line%% *}" = layerswap ] || bad "started from PATH, Next: does not start with 'layerswap': $line"
  PATH="$(dirname "$bin"):$PATH" bash -c "$line" > next.txt 2>&1 || bad "the Next: command (from PATH) failed: $(cat next.txt)"
  ;;
# -------------------------------------------------------------------------------------------
slurm_docs)
  readme_cluster=$(sed -n '/^## Running on a cluster/,/^## Benchmarks/p' "$src/README.md")
  for doc in "README.md (Running on a cluster)" slurm/README.md; do
    if [ "$doc" = slurm/README.md ]; then text=$(cat "$src/slurm/README.md"); else text=$readme_cluster; fi
    grep -q 'Sizing `#SBATCH --mem`' <<<"$text" || bad "$doc: no 'Sizing #SBATCH --mem' item"
    grep -q 'per node' <<<"$text" || bad "$doc: does not say that #SBATCH --mem is per node"
    tr '\n' ' ' <<<"$text" | grep -qE '\(tasks per node\) × \(layerswap `--mem` \+ *128M\)' \
      || bad "$doc: no (tasks per node) × (layerswap --mem + 128M) rule"
    tr '\n' ' ' <<<"$text" | grep -qE 'Automatic requeue needs a site that allows `scontrol requeue`' \
      || bad "$doc: does not say that automatic requeue needs a site that allows scontrol requeue"
  done
  for t in "$src"/slurm/*.sbatch; do
    grep -q '#SBATCH --mem is per node: (tasks on the node) x (layerswap --mem' "$t" \
      || bad "$(basename "$t"): the site settings do not say how to size --mem"
  done
  # a site that refuses `scontrol requeue`: the job says so and exits 3
  mkdir -p stub && cd stub || exit 1
  printf '#!/bin/sh\necho "scontrol: error: Access/permission denied" >&2\nexit 1\n' > scontrol
  printf '#!/bin/sh\nexit 3\n' > layerswap && chmod +x scontrol layerswap
  PATH=$PWD:$PATH SLURM_JOB_ID=4242 LAYERSWAP=$PWD/layerswap LAUNCHER=none REQUEUE=1 LSW_SLURM_DIR="$src/slurm" \
    bash -c '. "$LSW_SLURM_DIR/lsw-job.sh"; lsw_job_run merge x.json' > log.txt 2>&1
  rc=$?
  cat log.txt
  [ $rc -eq 3 ] || bad "with scontrol requeue refused, the job exited $rc, expected 3"
  grep -q "'scontrol requeue 4242' failed (does this site let users requeue their jobs?)" log.txt \
    || bad "the log does not say that the site refused the requeue"
  grep -q 'resubmit the same job to resume, or set REQUEUE=0' log.txt || bad "the log does not say what to do"
  ;;
# -------------------------------------------------------------------------------------------
completion)
  mkdir -p comp/sub && cd comp || exit 1
  : > a.json; : > b.yml; : > c.yaml; : > d.txt; : > sub/e.json
  # complete LINE: COMPREPLY of the completion for LINE (the last word is completed)
  complete_line() {
    PATH="$(dirname "$bin"):$PATH" bash -c '
      . "$1"
      read -ra W <<< "$2"; [[ $2 == *" " ]] && W+=("")
      COMP_WORDS=("${W[@]}"); COMP_CWORD=$((${#W[@]} - 1)); _layerswap
      printf "%s\n" "${COMPREPLY[@]}" | sort | tr "\n" " "' _ "$src/completion/layerswap.bash" "$1"
  }
  expect() { # LINE WANT
    local got
    got=$(complete_line "$1")
    [ "$got" = "$2" ] || bad "completing '$1' gave [$got], expected [$2]"
  }
  expect "layerswap me" "merge "
  expect "layerswap help sw" "sweep "
  expect "layerswap -" "--help --version -V "
  expect "layerswap merge x --format " "hdf5 safetensors "
  expect "layerswap synth --dtype f" "f16 f32 "
  expect "layerswap merge " "a.json b.yml c.yaml sub "
  expect "layerswap sweep " "a.json sub "
  expect "layerswap merge --sweep s" "sub "
  expect "layerswap verify " "sub "
  expect "layerswap stats --base . m=s" "m=sub "
  for c in $commands; do
    # every option of the command's --help, and nothing else, offered after '-'
    want=$("$bin" "$c" --help | awk '/^Usage:/ {syn = 1} syn && !/^Usage:/ && !/^ +[^ -]/ {syn = 0} syn {print; next}
             /^ +-/ {match($0, /^ +/); if (RLENGTH > 4) next; l = substr($0, RLENGTH + 1)
                     p = index(l, "  "); print (p ? substr(l, 1, p - 1) : l)} END {print "--help"}' |
           grep -oE -- '(^|[][ ,|])--?[a-zA-Z][a-zA-Z0-9-]*' | tr -d '[] ,|' | sort -u | tr '\n' ' ')
    got=$(complete_line "layerswap $c -")
    [ "$got" = "$want" ] || bad "options of '$c': completion offers [$got], --help lists [$want]"
    echo "$c: $got"
  done
  ;;
# -------------------------------------------------------------------------------------------
example_sweep)
  s=$src/configs/sweeps/paper-grid.json
  "$bin" sweep "$s" -o "$W/grid" --emit-array > emit.txt || bad "--emit-array exited $?"
  n=$(grep -c . emit.txt)
  [ "$n" -eq 16 ] || bad "--emit-array listed $n merges, expected 16 (2 x 2 experts x 2 bottom x 2 top)"
  "$bin" sweep "$s" -o "$W/grid" --quiet || bad "the sweep exited $?"
  links=0
  while IFS=$'\t' read -r k name dir; do
    "$bin" verify "$dir" > /dev/null || bad "merge $k ($name) does not verify"
    for f in "$dir"/model-*.safetensors; do [ "$(stat -c %h "$f")" -gt 1 ] && links=$((links + 1)); done
  done < emit.txt
  [ $links -gt 0 ] || bad "no shard is a hard link (\"dedup\": \"hardlink\" with \"shard_by\": \"layer\")"
  "$bin" merge --sweep "$s" --index 5 -o "$W/single" --quiet || bad "merge --sweep --index 5 exited $?"
  d5=$(awk -F '\t' '$1 == 5 {print $3}' emit.txt)
  for f in "$d5"/*; do
    cmp -s "$f" "$W/single/$(basename "$d5")/$(basename "$f")" || bad "merge 5 alone differs from the sweep's in $(basename "$f")"
  done
  echo "example_sweep: $n merges, $links hard-linked shards"
  ;;
*) echo "unknown case $case_" >&2; exit 1 ;;
esac
[ $fail -eq 0 ] && echo ok
exit $fail
