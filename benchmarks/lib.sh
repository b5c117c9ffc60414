# benchmarks/lib.sh — the one runner every benchmark script uses (sourced; bash 5).
#
# How every figure is made, so that no script can flatter:
#   * each measured command, floors included, is a "side":
#       side NAME [--prep CODE] [--bytes N] [--self-timed] [--warmup CODE|none] -- CMD ARG...
#     CODE is shell code run untimed before each run (remove an old output, sync);
#   * bench_warmup NAME...  runs each side once, untimed (page cache, first touches);
#   * bench_rounds N NAME... runs N rounds of all the sides, forward in odd rounds and
#     reversed in even ones (A B, B A, ...), so a machine that drifts hits every side
#     alike; N >= 5 unless --pairs says otherwise (the header then says "not for
#     publishing");
#   * a ratio is the median of the per-round ratios, printed with its min and max
#     (r_fmt A B); a time is the median with min and max (t_fmt NAME);
#   * peak RSS comes from /usr/bin/time (the largest process of the command);
#   * the floors (cp + fsync, cat, dd oflag=direct, memory copy) are sides in the
#     same rounds as the command they are compared with (floor_* helpers below).
# Everything is written under $BENCH_OUT (default ${TMPDIR:-/tmp}/layerswap-bench),
# never into the checkout. Tables are printed as Markdown, after a block naming the
# date, the machine, the disk and the source tree, so the output pastes as it is.
#
# Needs: bash 5, coreutils, awk, util-linux (findmnt, lsblk; fincore optional),
# /usr/bin/time (Debian package `time`; without it RSS is "n/a"), cc (for membw.c),
# Debian's /usr/bin/python3 (numpy only where a script says so).

export LC_ALL=C
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 \
       OMPI_MCA_btl_vader_single_copy_mechanism=none
BENCH_LIB=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
BENCH_SRC=$(dirname "$BENCH_LIB")
LAYERSWAP=${LAYERSWAP:-$BENCH_SRC/build/engine/layerswap}
PY=${PY:-/usr/bin/python3}
BENCH_OUT=${BENCH_OUT:-${TMPDIR:-/tmp}/layerswap-bench}
BENCH_SIZE=small
BENCH_PAIRS=5
BENCH_START=$EPOCHREALTIME
BENCH_SET=main

log() { echo "[$BENCH_NAME] $*" >&2; }
die() { echo "$BENCH_NAME: error: $*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------
# options shared by every script: --size, --out, --pairs, --layerswap
# usage: while [ $# -gt 0 ]; do if bench_common_opt "$@"; then shift "$BENCH_SHIFT"; continue; fi; ...
bench_common_opt() {
  BENCH_SHIFT=2
  case $1 in
    --size) BENCH_SIZE=${2:?--size needs a value} ;;
    --out) BENCH_OUT=${2:?--out needs a value} ;;
    --pairs) BENCH_PAIRS=${2:?--pairs needs a value} ;;
    --layerswap) LAYERSWAP=${2:?--layerswap needs a value} ;;
    *) return 1 ;;
  esac
}
BENCH_COMMON_HELP="  --size S         model size: tiny (~10 MB, the test suite's smoke run), small (~92 MB),
                   medium (~288 MB), full (~1.47 GB), large (~8.3 GB)
  --pairs N        interleaved rounds after the warm-up (default 5; fewer is not for publishing)
  --out DIR        work folder (default \${TMPDIR:-/tmp}/layerswap-bench; models are cached
                   under DIR/models and reused while their synth arguments match)
  --layerswap P    the binary (default build/engine/layerswap of this checkout; or \$LAYERSWAP)"

# bench_shape SIZE: SYN (synth arguments) and LAYERS for a named model size (bf16).
bench_shape() {
  case $1 in
    tiny)   SYN=(--layers 8 --hidden 256 --intermediate 512 --vocab 1000) ;;        # 10.4 MB
    small)  SYN=(--layers 12 --hidden 512 --intermediate 1536 --vocab 8000) ;;     # 92 MB
    medium) SYN=(--layers 10 --hidden 1024 --intermediate 2816 --vocab 16000) ;;   # 288 MB
    full)   SYN=(--layers 16 --hidden 2048 --intermediate 4096 --vocab 32000) ;;   # 1.47 GB
    large)  SYN=(--layers 21 --hidden 4096 --intermediate 11008 --vocab 32000) ;;  # 8.3 GB
    *) die "unknown size '$1' (tiny, small, medium, full, large)" ;;
  esac
  LAYERS=${SYN[1]}
}

# bench_models SIZE [K]: base + K synthetic experts (task1 lang1 task2 lang2 ...) of that
# size, synthesised once under $BENCH_OUT/models and reused; sets M (the folder), SYN
# and LAYERS.
bench_models() {
  local size=$1 k=${2:-6}
  bench_shape "$size"
  M=$BENCH_OUT/models/$size-e$k
  log "models: base + $k experts, ${SYN[*]} -> $M"
  if ! "$LAYERSWAP" synth "${SYN[@]}" --dtype bf16 --experts "$k" -o "$M" --quiet >&2; then
    die "layerswap synth ${SYN[*]} --experts $k -o $M failed (remove $M if it holds other models)"
  fi
}

# swap_geometry L: the layer swap every script uses (bottom L/4, top L/8, transitions L/8 each)
swap_geometry() {
  local l=$1
  SW_BOTTOM=$((l / 4)) SW_TOP=$((l / 8 > 0 ? l / 8 : 1)) SW_LOWER=$((l / 8)) SW_UPPER=$((l / 8))
}

# swap_config FILE BASE TASK LANG TRANSITION_WEIGHTS OUT [OUTPUT_KEYS]: that layer swap of
# the TASK and LANG experts of BASE into OUT; OUTPUT_KEYS, more keys of its "output"
swap_config() {
  cat >"$1" <<EOF
{"models": {"base": "$2", "task": "$3", "lang": "$4"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "task", "language_expert": "lang", "bottom": $SW_BOTTOM, "top": $SW_TOP,
   "lower_transition": $SW_LOWER, "upper_transition": $SW_UPPER, "transition_weights": "$5",
   "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "$6"${7:+, $7}}}
EOF
}

# ---------------------------------------------------------------------------------------
# setup and the pasteable header
bench_setup() {
  [[ $BENCH_PAIRS =~ ^[1-9][0-9]*$ ]] || die "--pairs must be a positive integer"
  [ -x "$LAYERSWAP" ] || die "$LAYERSWAP not found: cmake -S . -B build && cmake --build build (or --layerswap PATH)"
  BENCH_HAVE_TIME=0
  [ -x /usr/bin/time ] && BENCH_HAVE_TIME=1
  [ $BENCH_HAVE_TIME = 1 ] || log "no /usr/bin/time (Debian package 'time'): peak RSS will read n/a"
  mkdir -p "$BENCH_OUT"
  BENCH_OUT=$(cd "$BENCH_OUT" && pwd)
  W=$BENCH_OUT/$BENCH_NAME-$BENCH_SIZE
  mkdir -p "$W/logs"
  BENCH_RAW=$W/raw.tsv
  # every side that writes an output writes it under $W/run, which its preparation
  # empties: one output on the disk at a time, whatever the number of sides
  PREP_SCRATCH="rm -rf '$W/run' && mkdir -p '$W/run' && sync"
  rm -rf "$W/run" "$W/check"
  : >"$BENCH_RAW"
  BENCH_LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
  bench_header
}

bench_need_gb() { # bench_need_gb GB: refuse to start without that much free space in $BENCH_OUT
  local avail
  avail=$(df -P -BG "$BENCH_OUT" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
  [ "${avail:-0}" -ge "$1" ] || die "$BENCH_OUT has ${avail}G free; this run needs about $1G"
}

bench_header() {
  local cpu isa mem disk dev src fs commit
  cpu=$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)
  mem=$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)
  read -r src fs < <(findmnt -n -o SOURCE,FSTYPE -T "$BENCH_OUT" 2>/dev/null || echo "? ?")
  dev=$(lsblk -n -d -o PKNAME "$src" 2>/dev/null | head -1)
  [ -n "$dev" ] || dev=$(basename "$src")
  disk=$(lsblk -n -d -o NAME,TRAN,MODEL,SIZE,ROTA "/dev/$dev" 2>/dev/null |
         awk '{ r = $NF; $NF = ""; sub(/ +$/, ""); print $0 (r == 1 ? " (reported rotational)" : " (non-rotational)") }')
  commit=$(git -C "$BENCH_SRC" rev-parse --short HEAD 2>/dev/null || echo "no git")
  [ "$commit" != "no git" ] && ! git -C "$BENCH_SRC" diff --quiet HEAD 2>/dev/null && commit="$commit + local changes"
  echo "#### $BENCH_NAME --size $BENCH_SIZE — $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo
  isa=$(awk '/^flags/ { for (i = 3; i <= NF; i++) f[$i] = 1; exit }
             END { s = ""; if ("avx2" in f) s = s " AVX2"; if ("avx512f" in f) s = s " AVX-512";
                   if ("avx512_bf16" in f) s = s " AVX512-BF16"; if ("sse4_2" in f) s = s " SSE4.2"; print s }' /proc/cpuinfo)
  echo "- machine: ${cpu:-unknown CPU} (${isa# }), $(nproc) cores, $mem, kernel $(uname -r)"
  echo "- disk: $src ($fs) on ${disk:-$dev}, holding $BENCH_OUT"
  echo "- source: $("$LAYERSWAP" --version 2>/dev/null | head -1), commit $commit; $(mpirun --version 2>/dev/null | head -1)"
  echo "- method: ${BENCH_WARMUP_NOTE:-a warm-up run of every command}, then $BENCH_PAIRS interleaved round(s)" \
       "(forward, then reversed); ratios are medians of per-round ratios [min–max]; inputs in the page cache;" \
       "outputs fsynced to the disk above"
  [ "$BENCH_PAIRS" -ge 5 ] || echo "- **$BENCH_PAIRS round(s) only: fewer than 5, not for publishing**"
  echo "- load average at start: $BENCH_LOAD0 ($(nproc) CPUs)"
  echo
}

bench_footer() { # the closing line; the last output is removed (models, raw times and logs stay)
  rm -rf "${W:?}/run" "$W/check"
  echo "- load average at end: $(cut -d' ' -f1-3 /proc/loadavg); whole script" \
       "$(awk -v a="$BENCH_START" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }') s;" \
       "raw times: $BENCH_RAW"
}

# ---------------------------------------------------------------------------------------
# sides, warm-up, rounds
declare -A _S_CMD _S_PREP _S_BYTES _S_SELF _S_WARM
side() {
  local name=$1
  shift
  _S_PREP[$name]=: _S_BYTES[$name]=0 _S_SELF[$name]=0 _S_WARM[$name]=run
  while [ $# -gt 0 ] && [ "$1" != -- ]; do
    case $1 in
      --prep) _S_PREP[$name]=$2; shift 2 ;;
      --bytes) _S_BYTES[$name]=$2; shift 2 ;;
      --self-timed) _S_SELF[$name]=1; shift ;;
      --warmup) _S_WARM[$name]=$2; shift 2 ;;
      *) die "side $name: unknown option $1" ;;
    esac
  done
  [ "${1:-}" = -- ] || die "side $name: missing -- before the command"
  shift
  _S_CMD[$name]=$(printf '%q ' "$@")
}

# _run NAME ROUND: prep (untimed), then the command, timed; appends a row to $BENCH_RAW
_run() {
  local name=$1 round=$2 t0 t1 secs rss=0 usr=0 sys=0 set lg=$W/logs/$1.log tf=$W/logs/$1.time
  [ -n "${_S_CMD[$name]+x}" ] || die "no side named $name"
  eval "${_S_PREP[$name]}" || die "$name: preparation failed"
  t0=$EPOCHREALTIME
  if [ $BENCH_HAVE_TIME = 1 ]; then
    eval "/usr/bin/time -f '%M %U %S' -o \"\$tf\" ${_S_CMD[$name]}" >/dev/null 2>"$lg" ||
      die "$name (round $round) failed: $(tail -5 "$lg")"
  else
    eval "${_S_CMD[$name]}" >/dev/null 2>"$lg" || die "$name (round $round) failed: $(tail -5 "$lg")"
  fi
  t1=$EPOCHREALTIME
  secs=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.6f", b - a }')
  if [ "${_S_SELF[$name]}" = 1 ]; then
    secs=$(awk '/^bench-seconds: / { s = $2 } END { print s }' "$lg")
    [ -n "$secs" ] || die "$name printed no 'bench-seconds:' line"
  fi
  [ $BENCH_HAVE_TIME = 1 ] && read -r rss usr sys < <(tail -1 "$tf")
  [ "$round" = 0 ] && set=warm-up || set=$BENCH_SET
  printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$round" "$name" "$secs" "$rss" "$usr" "$sys" "$set" >>"$BENCH_RAW"
}

# bench_keep NAME...: one untimed run of each side (recorded as the warm-up, round 0),
# its output moved from $W/run/NAME to $W/check/NAME for the script's checks
bench_keep() {
  local n
  mkdir -p "$W/check"
  for n in "$@"; do
    log "run for the checks (and warm-up): $n"
    _run "$n" 0
    rm -rf "${W:?}/check/$n"
    [ -e "$W/run/$n" ] && mv "$W/run/$n" "$W/check/$n"
  done
  return 0
}
bench_checks_done() { rm -rf "${W:?}/check"; }

bench_warmup() {
  local n
  for n in "$@"; do
    case ${_S_WARM[$n]} in
      none) ;;
      run) log "warm-up: $n"; _run "$n" 0 ;;
      *) log "warm-up: $n (${_S_WARM[$n]})"; eval "${_S_WARM[$n]}" >/dev/null 2>&1 || die "$n: warm-up failed" ;;
    esac
  done
}

# bench_rounds N NAME...: N rounds, recorded as the set $BENCH_SET (the results below
# read only that set: give each bench_rounds call its own BENCH_SET). With
# $BENCH_DEADLINE (epoch seconds) set, nothing starts after it: later rounds are dropped
# and, in the first round, the sides not yet run are skipped; the output says which.
bench_rounds() {
  local n=$1 r i names=("${@:2}") order skipped=()
  for ((r = 1; r <= n; r++)); do
    if [ $r -gt 1 ] && _past_deadline; then
      echo "- time budget reached: $((r - 1)) of $n rounds of ${names[*]}"
      return 0
    fi
    order=()
    if ((r % 2)); then order=("${names[@]}"); else for ((i = ${#names[@]} - 1; i >= 0; i--)); do order+=("${names[i]}"); done; fi
    log "round $r/$n: ${order[*]}"
    for i in "${order[@]}"; do
      if _past_deadline; then skipped+=("$i"); continue; fi
      _run "$i" "$r"
    done
    if [ ${#skipped[@]} -gt 0 ]; then
      echo "- time budget reached in round $r: not run: ${skipped[*]}"
      return 0
    fi
  done
}
_past_deadline() { [ -n "${BENCH_DEADLINE:-}" ] && [ "${EPOCHREALTIME%.*}" -ge "$BENCH_DEADLINE" ]; }

# ---------------------------------------------------------------------------------------
# results: the timed rounds of the set $BENCH_SET only (round 0 is the warm-up)
_AWK_STATS='function med(v, n,   i, j, t) { for (i = 2; i <= n; i++) { t = v[i]; for (j = i - 1; j >= 1 && v[j] > t; j--) v[j + 1] = v[j]; v[j + 1] = t }
                                   return (n % 2) ? v[(n + 1) / 2] : (v[n / 2] + v[n / 2 + 1]) / 2 }
            function out(v, n) { if (n == 0) { print "nan nan nan"; return } m = med(v, n); printf "%.6g %.6g %.6g\n", m, v[1], v[n] }'
t_stat() { # median min max of the seconds of NAME
  awk -F'\t' -v s="$1" -v set="$BENCH_SET" "$_AWK_STATS"' $7 == set && $2 == s { v[++n] = $3 } END { out(v, n) }' "$BENCH_RAW"
}
r_stat() { # r_stat A B [F]: median min max over rounds of F * t(A) / t(B)
  awk -F'\t' -v a="$1" -v b="$2" -v f="${3:-1}" -v set="$BENCH_SET" "$_AWK_STATS"'
    $7 == set && $2 == a { ta[$1] = $3 } $7 == set && $2 == b { tb[$1] = $3 }
    END { for (r in ta) if ((r in tb) && tb[r] > 0) v[++n] = f * ta[r] / tb[r]; out(v, n) }' "$BENCH_RAW"
}
bw_stat() { # bw_stat NAME BYTES: GB/s median min max over rounds
  awk -F'\t' -v s="$1" -v by="$2" -v set="$BENCH_SET" "$_AWK_STATS"' $7 == set && $2 == s && $3 > 0 { v[++n] = by / $3 / 1e9 } END { out(v, n) }' "$BENCH_RAW"
}
rss_mb() { # largest peak RSS of NAME over its timed runs, MB
  [ "$BENCH_HAVE_TIME" = 1 ] || { echo n/a; return; }
  awk -F'\t' -v s="$1" -v set="$BENCH_SET" '$7 == set && $2 == s && $4 > m { m = $4 } END { printf "%.1f MB\n", m * 1024 / 1e6 }' "$BENCH_RAW"
}
rss_kb() { awk -F'\t' -v s="$1" -v set="$BENCH_SET" '$7 == set && $2 == s && $4 > m { m = $4 } END { print m + 0 }' "$BENCH_RAW"; }
cpu_fmt() { # median user + sys seconds of NAME
  awk -F'\t' -v s="$1" -v set="$BENCH_SET" "$_AWK_STATS"' $7 == set && $2 == s { u[++n] = $5; k[n] = $6 } END { if (!n) { print "n/a"; exit }
    a = med(u, n); b = med(k, n); printf "%.2f + %.2f s\n", a, b }' "$BENCH_RAW"
}
_fmt3() { awk -v p="$2" -v u="$3" '{ if ($1 == "nan") print "n/a"; else printf "%." p "f%s [%." p "f–%." p "f]\n", $1, u, $2, $3 }' <<<"$1"; }
t_fmt() { _fmt3 "$(t_stat "$1")" 3 " s"; }                # "1.234 s [1.200–1.300]"
r_fmt() { _fmt3 "$(r_stat "$@")" 3 ""; }                  # "1.234 [1.100–1.310]"
bw_fmt() { _fmt3 "$(bw_stat "$1" "$2")" 2 " GB/s"; }      # "1.23 GB/s [1.10–1.31]"
r_med() { r_stat "$@" | cut -d' ' -f1; }
t_med() { t_stat "$1" | cut -d' ' -f1; }
# verdict VALUE OP TARGET -> PASS / MISS (OP is <= or >=)
verdict() {
  awk -v v="$1" -v op="$2" -v t="$3" 'BEGIN { if (v == "nan" || v == "") { print "n/a"; exit }
    ok = (op == "<=") ? (v + 0 <= t + 0) : (v + 0 >= t + 0); print ok ? "PASS" : "MISS" }'
}
gb() { awk -v b="$1" 'BEGIN { printf "%.3f GB", b / 1e9 }'; }
div() { awk -v a="$1" -v b="$2" -v p="${3:-3}" 'BEGIN { if (b == 0) print "n/a"; else printf "%." p "f\n", a / b }'; }

# ---------------------------------------------------------------------------------------
# Markdown tables: table_begin "Title" "col|col|..."; row "v|v|..."; table_end
table_begin() { _T_TITLE=$1; _T_ROWS=("$2"); }
row() { _T_ROWS+=("$1"); }
table_end() {
  [ -n "$_T_TITLE" ] && echo "**$_T_TITLE**" && echo
  # widths in characters, not bytes (UTF-8 continuation bytes do not count; works in mawk)
  printf '%s\n' "${_T_ROWS[@]}" | awk -F'|' '
    function dlen(s,   t) { t = s; gsub(/[\200-\277]/, "", t); return length(t) }
    function pad(s, n,   r) { r = s; while (dlen(r) < n) r = r " "; return r }
    { for (i = 1; i <= NF; i++) { c[NR, i] = $i; if (dlen($i) > w[i]) w[i] = dlen($i) } if (NF > nf) nf = NF }
    END { for (r = 1; r <= NR; r++) {
            line = "|"; for (i = 1; i <= nf; i++) line = line " " pad(c[r, i], w[i]) " |"; print line
            if (r == 1) { line = "|"; for (i = 1; i <= nf; i++) { d = ""; for (j = 0; j < w[i] + 2; j++) d = d "-"; line = line d "|" } print line } } }'
  echo
}

# ---------------------------------------------------------------------------------------
# floors: the physical limits a command is compared with, each a side of the same rounds
bytes_of() { local s=0 f; for f in "$@"; do s=$((s + $(stat -c %s "$f"))); done; echo "$s"; }
model_files() { # the data files of checkpoint folders (safetensors shards and index, or model.h5)
  local d
  for d in "$@"; do find "$d" -maxdepth 1 -type f \( -name '*.safetensors' -o -name '*.safetensors.index.json' -o -name '*.h5' \) | sort; done
}
warm_cache() { cat "$@" >/dev/null; } # read files once so timed runs start from the page cache
cached_pct() { # share of the files' bytes in the page cache (fincore), or n/a
  command -v fincore >/dev/null || { echo n/a; return; }
  fincore --bytes --noheadings --output RES,SIZE "$@" 2>/dev/null | awk '{ r += $1; s += $2 } END { printf "%.0f%%\n", s ? 100 * r / s : 0 }'
}

# floor_cp NAME FILE...: cp of FILEs into a fresh $W/run/NAME, then fsync of each file and the folder
floor_cp() {
  local name=$1
  shift
  side "$name" --bytes "$(bytes_of "$@")" --prep "$PREP_SCRATCH && mkdir -p '$W/run/$name'" -- \
    bash -c 'd=$1; shift; cp -- "$@" "$d"/ && sync -- "$d"/* "$d"' cp-fsync "$W/run/$name" "$@"
  _F_LABEL[$name]="cp + fsync" _F_NOTE[$name]="$(gb "${_S_BYTES[$name]}") into a fresh folder; every file and the folder fsynced"
}
# floor_cat NAME FILE...: cat of FILEs (from the page cache) to /dev/null
floor_cat() {
  local name=$1
  shift
  side "$name" --bytes "$(bytes_of "$@")" -- cat -- "$@"
  _F_LABEL[$name]="cat" _F_NOTE[$name]="$(gb "${_S_BYTES[$name]}") from the page cache to /dev/null"
}
# floor_dd NAME BYTES: dd oflag=direct of BYTES (rounded up to MiB) from /dev/zero into
# $W/run/NAME, fsync at the end
floor_dd() {
  local name=$1 mib=$((($2 + 1048575) / 1048576))
  side "$name" --bytes $((mib * 1048576)) --prep "$PREP_SCRATCH" -- \
    dd if=/dev/zero of="$W/run/$name" bs=1M count="$mib" oflag=direct conv=fsync status=none
  _F_LABEL[$name]="dd oflag=direct" _F_NOTE[$name]="$(gb "${_S_BYTES[$name]}") from /dev/zero, bs=1M, conv=fsync"
}
# floor_mem NAME BYTES: memcpy of BYTES (benchmarks/membw.c, self-timed: copies only)
floor_mem() {
  local bin=$BENCH_OUT/bin/membw
  if [ ! -x "$bin" ] || [ "$BENCH_LIB/membw.c" -nt "$bin" ]; then
    mkdir -p "$BENCH_OUT/bin"
    cc -std=c11 -O2 -o "$bin" "$BENCH_LIB/membw.c" || die "cannot build $BENCH_LIB/membw.c (needs cc)"
  fi
  side "$1" --bytes "$2" --self-timed -- "$bin" "$2"
  _F_LABEL[$1]="memory copy" _F_NOTE[$1]="$(gb "$2") in 64 MiB memcpy calls, buffers touched first (membw.c)"
}
declare -A _F_LABEL _F_NOTE
# floors_table NAME...: the floor sides' medians, spreads and rates, as a table
floors_table() {
  local n
  table_begin "Floors, measured in the same rounds" "floor|time [min–max]|rate [min–max]|what"
  for n in "$@"; do row "${_F_LABEL[$n]}|$(t_fmt "$n")|$(bw_fmt "$n" "${_S_BYTES[$n]}")|${_F_NOTE[$n]}"; done
  table_end
}

# ---------------------------------------------------------------------------------------
# the naive state-dict peers (naive_merge.py: numpy, naive_merge_torch.py: torch)
PEERS=${PEERS-numpy torch}
# peer_sides PREFIX METHOD KEY=VALUE...: one side per peer of $PEERS that can run here,
# named PREFIX<peer> and writing $W/run/PREFIX<peer>/model.safetensors; their names in
# PSIDES (a missing package is said in the output, not an error)
peer_sides() {
  local pre=$1 method=$2 p script
  shift 2
  PSIDES=()
  for p in $PEERS; do
    case $p in
      numpy) script=naive_merge.py ;;
      torch) script=naive_merge_torch.py ;;
      *) die "unknown peer '$p' (numpy, torch)" ;;
    esac
    if ! "$PY" -c "import $p" 2>/dev/null; then
      echo "- $p peer skipped: $PY cannot import $p (apt-get install python3-$p)"
      continue
    fi
    side "$pre$p" --warmup "'$PY' -c 'import $p'" --prep "$PREP_SCRATCH && mkdir -p '$W/run/$pre$p'" -- \
      "$PY" "$BENCH_LIB/$script" "$method" "$W/run/$pre$p/model.safetensors" "$@"
    PSIDES+=("$pre$p")
  done
}
