#!/usr/bin/env bash
# check_install.sh CASE SOURCE_DIR BUILD_DIR WORK_DIR
# `cmake --install` into a temporary prefix, and the installation used from there with
# the build tree out of sight (PATH=PREFIX/bin:/usr/bin:/bin).  CASE:
#   install    cmake --install BUILD_DIR --prefix WORK_DIR/prefix (the fixture the other
#              cases use): every file of the documented layout is there
#   run        the installed binary: no RUNPATH into the build or source tree; the demo
#              runs and verifies; an HDF5 output read by h5dump through the installed
#              plugin (and not without it); man finds and renders the installed page;
#              bash-completion loads the installed completion on demand; DESTDIR staging
#   templates  the installed Slurm templates, run with bash outside Slurm (LAUNCHER=none):
#              they run the installed binary and put the installed plugin on
#              HDF5_PLUGIN_PATH with no LAYERSWAP set and no layerswap on PATH, also from
#              a copy elsewhere (LAYERSWAP_SLURM_DIR) and after the prefix is moved
#   lmod       the generated modulefile with Debian's Lmod: module load sets PATH, MANPATH,
#              HDF5_PLUGIN_PATH and LAYERSWAP_SLURM_DIR; layerswap --version, man, and an
#              h5dump read of a model.h5 through the plugin work; module unload undoes it
# Exit 0 pass, 1 fail.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 CASE SOURCE_DIR BUILD_DIR WORK_DIR" >&2; exit 1; }
case_=$1 src=$(cd "$2" && pwd) build=$(cd "$3" && pwd) work=$4
fail=0
bad() { echo "FAIL $case_: $*"; fail=1; }
finish() { [ $fail -eq 0 ] && echo "ok"; exit $fail; }
mkdir -p "$work" && W=$(cd "$work" && pwd)
P=$W/prefix
fx=$src/tests/data/llama-bf16-sharded
version=$(sed -n 's/^project(layerswap VERSION \([0-9.]*\).*/\1/p' "$src/CMakeLists.txt")
# a clean environment: no build tree, no module, no layerswap on PATH
clean_env=(env -i HOME="$W" PATH="/usr/bin:/bin" LANG=C.UTF-8 TMPDIR="${TMPDIR:-/tmp}")
# sanitizer builds (LSW_ASAN/LSW_UBSAN): keep ctest's settings (no leak checks, see tests/CMakeLists.txt)
for v in ASAN_OPTIONS UBSAN_OPTIONS; do [ -n "${!v:-}" ] && clean_env+=("$v=${!v}"); done
# private Open MPI session folders (see tests/cli/lswtest.py)
export TMPDIR=$(mktemp -d /tmp/lsw-inst-XXXXXX) && trap 'rm -rf "$TMPDIR"' EXIT

# h5_has_data FILE [PLUGIN_DIR]: h5dump prints values of /tensors/model.norm.weight
h5_has_data() {
  local out
  out=$("${clean_env[@]}" ${2:+HDF5_PLUGIN_PATH=$2} h5dump -d /tensors/model.norm.weight "$1" 2>&1)
  grep -qE '^ *\(0\): [0-9.-]+' <<<"$out"
}
fixture_config() { # FILE: a layer swap of the fixtures (absolute paths)
  cat > "$1" <<JSON
{"models": {"base": "$fx/base", "math": "$fx/math1", "lang": "$fx/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": 1},
 "output": {"path": "unused"}}
JSON
}

case "$case_" in
# -------------------------------------------------------------------------------------------
install)
  rm -rf "$P"
  cmake --install "$build" --prefix "$P" > "$W/install.log" 2>&1 || { bad "cmake --install failed:"; cat "$W/install.log"; finish; }
  for f in bin/layerswap lib/hdf5/plugins/libh5zstd.so share/man/man1/layerswap.1 \
           share/bash-completion/completions/layerswap \
           share/layerswap/slurm/merge.sbatch share/layerswap/slurm/sweep.sbatch \
           share/layerswap/slurm/sweep-array.sbatch share/layerswap/slurm/stats.sbatch \
           share/layerswap/slurm/lsw-job.sh share/layerswap/slurm/lsw-install.sh \
           share/layerswap/configs/layer-swap-paper.json share/layerswap/configs/sweeps/paper-grid.json \
           share/doc/layerswap/README.md "share/modulefiles/layerswap/$version.lua"; do
    [ -f "$P/$f" ] || bad "$f is not installed"
  done
  for f in "$src"/docs/*.md; do
    cmp -s "$f" "$P/share/doc/layerswap/$(basename "$f")" || bad "docs/$(basename "$f") is not installed as is"
  done
  for f in "$P"/share/layerswap/slurm/*.sbatch "$P/bin/layerswap"; do
    [ -x "$f" ] || bad "$f is not executable"
  done
  echo "installed $(find "$P" -type f | wc -l) files under $P"
  ;;
# -------------------------------------------------------------------------------------------
run)
  [ -x "$P/bin/layerswap" ] || { bad "no installation in $P (fixture install_prefix)"; finish; }
  for f in "$P/bin/layerswap" "$P/lib/hdf5/plugins/libh5zstd.so"; do
    rp=$(readelf -d "$f" | sed -n 's/.*R\(UN\)\{0,1\}PATH.*\[\(.*\)\]/\2/p')
    echo "$(basename "$f"): RUNPATH [${rp}]"
    case ":$rp:" in *"$build"*|*"$src"*) bad "$f keeps a RUNPATH into the build or source tree: $rp" ;; esac
  done
  run=("${clean_env[@]}" PATH="$P/bin:/usr/bin:/bin")
  [ "$("${run[@]}" sh -c 'command -v layerswap')" = "$P/bin/layerswap" ] || bad "layerswap on PATH is not the installed one"
  [ "$("${run[@]}" layerswap --version)" = "layerswap $version" ] || bad "installed --version is not 'layerswap $version'"
  rm -rf "$W/run" && mkdir -p "$W/run"
  (cd "$W/run" && "${run[@]}" TMPDIR="$TMPDIR" layerswap demo d > demo.log 2>&1) || { bad "the installed demo failed:"; cat "$W/run/demo.log"; }
  "${run[@]}" TMPDIR="$TMPDIR" layerswap verify "$W/run/d/merged" >/dev/null || bad "the demo's output does not verify"
  # HDF5 output, read by h5dump through the installed plugin only
  "${run[@]}" TMPDIR="$TMPDIR" layerswap merge "$W/run/d/merge.json" -o "$W/run/h5" --format hdf5 --quiet \
    || bad "installed merge --format hdf5 failed"
  h5_has_data "$W/run/h5/model.h5" "$P/lib/hdf5/plugins" || bad "h5dump with HDF5_PLUGIN_PATH=PREFIX/lib/hdf5/plugins printed no data"
  h5_has_data "$W/run/h5/model.h5" "" && bad "h5dump printed data without the plugin (so the check above proves nothing)"
  # man: MANPATH of the prefix finds and renders the page
  mp=$("${run[@]}" MANPATH="$P/share/man" man -w layerswap 2>&1)
  [ "$mp" = "$P/share/man/man1/layerswap.1" ] || bad "man -w layerswap gives '$mp'"
  "${run[@]}" MANPATH="$P/share/man" MANWIDTH=80 man layerswap 2>&1 | grep -q 'layerswap merge' \
    || bad "man layerswap does not show the merge command"
  # bash-completion loads PREFIX/share/bash-completion/completions/layerswap on demand,
  # found through XDG_DATA_DIRS (as the modulefile sets it)
  if [ -f /usr/share/bash-completion/bash_completion ]; then
    out=$(cd "$src" && "${run[@]}" TMPDIR="$TMPDIR" XDG_DATA_DIRS="$P/share:/usr/local/share:/usr/share" bash -c '
      . /usr/share/bash-completion/bash_completion
      complete -p layerswap >/dev/null 2>&1 && echo "already loaded"
      __load_completion layerswap || echo "not loaded"
      complete -p layerswap
      COMP_WORDS=(layerswap merge --dr); COMP_CWORD=2; _layerswap; echo "merge --dr: ${COMPREPLY[*]}"
      COMP_WORDS=(layerswap merge configs/sweeps/pa); COMP_CWORD=2; _layerswap; echo "files: ${COMPREPLY[*]}"' 2>&1)
    echo "$out"
    grep -q '^complete -F _layerswap layerswap$' <<<"$out" || bad "bash-completion did not load the installed completion"
    grep -q "already loaded\|not loaded" <<<"$out" && bad "the completion was not loaded on demand"
    grep -q '^merge --dr: --dry-run$' <<<"$out" || bad "completion of 'merge --dr' is not --dry-run"
    grep -q '^files: configs/sweeps/paper-grid.json$' <<<"$out" || bad "completion of a config file is not configs/sweeps/paper-grid.json"
  else
    bad "no /usr/share/bash-completion/bash_completion: install bash-completion (.ci/install-test-deps)"
  fi
  # DESTDIR staging: files under DESTDIR, paths inside them without it
  rm -rf "$W/stage"
  DESTDIR="$W/stage" cmake --install "$build" --prefix /opt/lsw-test > "$W/stage.log" 2>&1 || bad "DESTDIR install failed"
  [ -x "$W/stage/opt/lsw-test/bin/layerswap" ] || bad "DESTDIR install put no bin/layerswap under DESTDIR"
  mf="$W/stage/opt/lsw-test/share/modulefiles/layerswap/$version.lua"
  grep -q '"/opt/lsw-test/bin"' "$mf" 2>/dev/null || bad "the staged modulefile does not name /opt/lsw-test/bin"
  grep -q "$W/stage" "$mf" 2>/dev/null && bad "the staged modulefile names the DESTDIR"
  [ -f "$W/stage/opt/lsw-test/share/layerswap/slurm/lsw-install.sh" ] || bad "DESTDIR install has no lsw-install.sh"
  ;;
# -------------------------------------------------------------------------------------------
templates)
  [ -x "$P/bin/layerswap" ] || { bad "no installation in $P (fixture install_prefix)"; finish; }
  rm -rf "$W/tpl" && mkdir -p "$W/tpl" && cd "$W/tpl" || exit 1
  fixture_config merge.json
  "$P/bin/layerswap" merge merge.json -o ref --quiet || bad "reference merge failed"
  # tpl_run NAME TEMPLATE [ENV...]: the template with bash, outside Slurm, one process
  tpl_run() {
    local name=$1 tpl=$2
    shift 2
    "${clean_env[@]}" TMPDIR="$TMPDIR" LAUNCHER=none PROGRESS=0 "$@" bash "$tpl" merge.json -o "$name" --quiet \
      > "$name.log" 2>&1
    local rc=$?
    [ $rc -eq 0 ] || { bad "$name: the template exited with $rc:"; cat "$name.log"; }
    cmp -s "ref/model.safetensors" "$name/model.safetensors" || bad "$name: output differs from the reference merge"
  }
  tpl_run out "$P/share/layerswap/slurm/merge.sbatch"
  grep -q "none\|): $P/bin/layerswap merge merge.json" out.log || bad "the installed template did not run $P/bin/layerswap"
  grep -q "): $P/bin/layerswap merge merge.json" out.log || { bad "the log does not show $P/bin/layerswap:"; cat out.log; }
  grep -q "HDF5_PLUGIN_PATH=$P/lib/hdf5/plugins\$" out.log || bad "the template did not put $P/lib/hdf5/plugins on HDF5_PLUGIN_PATH"
  # a copy of a template elsewhere finds lsw-job.sh through LAYERSWAP_SLURM_DIR (as the module sets it)
  mkdir -p mine && cp "$P/share/layerswap/slurm/merge.sbatch" mine/
  tpl_run copy mine/merge.sbatch LAYERSWAP_SLURM_DIR="$P/share/layerswap/slurm"
  grep -q "): $P/bin/layerswap merge" copy.log || bad "a copied template did not run the installed binary"
  # the prefix moved elsewhere: the templates follow (lsw-install.sh is relative)
  rm -rf "$W/moved" && cp -a "$P" "$W/moved"
  tpl_run moved "$W/moved/share/layerswap/slurm/merge.sbatch"
  grep -q "): $W/moved/bin/layerswap merge" moved.log || bad "after moving the prefix, the template did not run the moved binary"
  grep -q "HDF5_PLUGIN_PATH=$W/moved/lib/hdf5/plugins\$" moved.log || bad "after moving the prefix, HDF5_PLUGIN_PATH is not the moved plugin's"
  # LAYERSWAP set by the user wins
  printf '#!/bin/sh\necho "stand-in $*"; exec "%s" "$@"\n' "$P/bin/layerswap" > mybin && chmod +x mybin
  tpl_run own "$P/share/layerswap/slurm/merge.sbatch" LAYERSWAP="$W/tpl/mybin"
  grep -q "stand-in merge" own.log || bad "LAYERSWAP=... did not win over the installed binary"
  rm -rf "$W/moved"
  ;;
# -------------------------------------------------------------------------------------------
lmod)
  [ -x "$P/bin/layerswap" ] || { bad "no installation in $P (fixture install_prefix)"; finish; }
  init=/usr/share/lmod/lmod/init/bash
  [ -f "$init" ] || { bad "no Lmod ($init): install lmod (.ci/install-test-deps)"; finish; }
  rm -rf "$W/lmod" && mkdir -p "$W/lmod" && cd "$W/lmod" || exit 1
  fixture_config merge.json
  system_man=$("${clean_env[@]}" man -w man 2>/dev/null)
  "${clean_env[@]}" TMPDIR="$TMPDIR" SYSTEM_MAN="$system_man" P="$P" V="$version" bash -c '
    . '"$init"'
    module use "$P/share/modulefiles" || exit 1
    module load layerswap || exit 1
    echo "PATH=$PATH"; echo "MANPATH=$MANPATH"; echo "HDF5_PLUGIN_PATH=$HDF5_PLUGIN_PATH"
    echo "LAYERSWAP_SLURM_DIR=$LAYERSWAP_SLURM_DIR"
    echo "which=$(command -v layerswap)"
    echo "version=$(layerswap --version)"
    echo "man=$(man -w layerswap)"
    [ -z "$SYSTEM_MAN" ] || echo "system man=$(man -w man 2>/dev/null)"
    layerswap merge merge.json -o h5 --format hdf5 --quiet && echo "merge=0"
    h5dump -d /tensors/model.norm.weight h5/model.h5 | grep -E "^ *\(0\): [0-9.-]+" >/dev/null && echo "h5dump=data"
    echo "XDG_DATA_DIRS=$XDG_DATA_DIRS"
    if [ -f /usr/share/bash-completion/bash_completion ]; then
      . /usr/share/bash-completion/bash_completion
      __load_completion layerswap && complete -p layerswap
    fi
    module unload layerswap
    echo "after PATH=$PATH"; echo "after HDF5_PLUGIN_PATH=${HDF5_PLUGIN_PATH-unset}"
    echo "after LAYERSWAP_SLURM_DIR=${LAYERSWAP_SLURM_DIR-unset}"
  ' > lmod.log 2>&1
  cat lmod.log
  want() { grep -qxF -- "$1" lmod.log || bad "$2 (expected the line '$1')"; }
  grep -q "^PATH=$P/bin:" lmod.log || bad "module load did not put $P/bin first on PATH"
  grep -q "^MANPATH=$P/share/man" lmod.log || bad "module load did not put $P/share/man on MANPATH"
  want "HDF5_PLUGIN_PATH=$P/lib/hdf5/plugins" "module load did not set HDF5_PLUGIN_PATH"
  want "LAYERSWAP_SLURM_DIR=$P/share/layerswap/slurm" "module load did not set LAYERSWAP_SLURM_DIR"
  want "which=$P/bin/layerswap" "layerswap is not the module's"
  want "version=layerswap $version" "layerswap --version"
  want "man=$P/share/man/man1/layerswap.1" "man -w layerswap under the module"
  [ -z "$system_man" ] || want "system man=$system_man" "the module hid the system's man pages (MANPATH)"
  want "merge=0" "a merge to model.h5 under the module"
  want "h5dump=data" "h5dump did not read model.h5 through the plugin under the module"
  want "after PATH=/usr/bin:/bin" "module unload did not restore PATH"
  want "after HDF5_PLUGIN_PATH=unset" "module unload did not unset HDF5_PLUGIN_PATH"
  want "after LAYERSWAP_SLURM_DIR=unset" "module unload did not unset LAYERSWAP_SLURM_DIR"
  want "XDG_DATA_DIRS=$P/share:/usr/local/share:/usr/share" "module load did not set XDG_DATA_DIRS (bash completion)"
  want "complete -F _layerswap layerswap" "bash-completion did not load the completion under the module"
  ;;
*) echo "unknown case $case_" >&2; exit 1 ;;
esac
finish
