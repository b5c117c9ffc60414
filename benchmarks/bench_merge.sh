#!/bin/bash
# bench_merge.sh — how close does `layerswap merge` come to the physical floor?
#
# Synthesises a Llama-shaped base + task1 + lang1 (once; reused while their
# manifests and synth arguments match), writes a layer_swap config with
# transition zones, then measures in the same run:
#   (a) cp + fsync of one model's shard files into a fresh folder (the floor),
#   (b) memory copy bandwidth (numpy np.copyto of 1 GiB, best of 3),
#   (c) disk sequential write (dd 2 GiB, conv=fsync),
#   (d) layerswap merge --mem 64M --overwrite --quiet under /usr/bin/time -v,
#   (e) a naive in-memory numpy merge (naive_merge.py) under /usr/bin/time -v,
# checks the merge output once with `layerswap verify`, prints one table and
# writes the same numbers to DIR/bench_merge.json.
#
# All timed runs read their inputs from the page cache (a warm-up `cat` first;
# fincore reports the cached fraction before and after). Outputs go to fresh
# folders on the disk of DIR and are fsynced, so writes are physical.
#
# Needs: /usr/bin/time (Debian package `time`: apt-get install -y time),
#        Debian's /usr/bin/python3 with numpy (python3-numpy), coreutils,
#        fincore (util-linux, optional), a built layerswap
#        (cmake -S . -B build && cmake --build build; or set LAYERSWAP=path).
# Disk: --size full needs about 12 GB free in DIR (checked); --size small about 3 GB.
set -euo pipefail

PY=/usr/bin/python3
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(dirname "$HERE")
LAYERSWAP=${LAYERSWAP:-$ROOT/build/engine/layerswap}

OUT=./bench-out
SIZE=small
RUNS=3
RUNS_SET=0
NAIVE_RUNS=
MEM=64M

usage() {
    cat <<EOF
Usage: bench_merge.sh [--out DIR] [--size small|full] [--runs N] [--naive-runs N] [--mem BYTES]
Benchmark 'layerswap merge' (layer swap with transition zones) against cp+fsync,
disk write and memory copy bandwidth, and a naive numpy merge.
  --out DIR        work folder on the disk to measure (default ./bench-out)
  --size S         small (~100 MB per model, quick check) or full (~1.5 GB per model)
  --runs N         timed runs of cp+fsync, dd and merge; the median is reported (default 3)
  --naive-runs N   runs of the naive numpy merge (default 1, or N when --runs is given)
  --mem BYTES      --mem passed to layerswap merge (default 64M)
Writes DIR/bench_merge.json. Environment: LAYERSWAP=path to the binary.
EOF
}

die() { echo "bench_merge.sh: error: $*" >&2; exit 1; }

while [ $# -gt 0 ]; do
    case "$1" in
        --out) OUT=${2:?--out needs a value}; shift 2 ;;
        --size) SIZE=${2:?--size needs a value}; shift 2 ;;
        --runs) RUNS=${2:?--runs needs a value}; RUNS_SET=1; shift 2 ;;
        --naive-runs) NAIVE_RUNS=${2:?--naive-runs needs a value}; shift 2 ;;
        --mem) MEM=${2:?--mem needs a value}; shift 2 ;;
        -h|--help) usage; exit 0 ;;
        *) usage >&2; die "unknown argument '$1'" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "--runs must be a positive integer, got '$RUNS'"
if [ -z "$NAIVE_RUNS" ]; then
    if [ $RUNS_SET = 1 ]; then NAIVE_RUNS=$RUNS; else NAIVE_RUNS=1; fi
fi
[[ $NAIVE_RUNS =~ ^[0-9]+$ ]] || die "--naive-runs must be a non-negative integer"

case "$SIZE" in
    # 16 layers, GQA (kv = heads/2): 16*(3*H^2 + 3*H*I) + 2*V*H + ... = 735 M params = 1.47 GB bf16
    full)  SYNTH_ARGS=(--layers 16 --hidden 2048 --intermediate 4096 --vocab 32000 --experts 2 --dtype bf16) ;;
    # 12 layers: 45.9 M params = 92 MB bf16
    small) SYNTH_ARGS=(--layers 12 --hidden 512 --intermediate 1536 --vocab 8000 --experts 2 --dtype bf16) ;;
    *) die "--size must be small or full, got '$SIZE'" ;;
esac

# --- tools -------------------------------------------------------------------
if [ ! -x /usr/bin/time ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "installing /usr/bin/time (Debian package 'time')" >&2
        apt-get install -y time >/dev/null || die "apt-get install -y time failed"
    fi
    [ -x /usr/bin/time ] || die "/usr/bin/time is missing: apt-get install -y time"
fi
[ -x "$PY" ] || die "$PY is missing (Debian python3 with python3-numpy)"
"$PY" -c 'import numpy' 2>/dev/null || die "$PY has no numpy: apt-get install -y python3-numpy"
[ -x "$LAYERSWAP" ] || die "$LAYERSWAP not found: build with cmake -S $ROOT -B $ROOT/build && cmake --build $ROOT/build (or set LAYERSWAP)"
HAVE_FINCORE=0; command -v fincore >/dev/null && HAVE_FINCORE=1

mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# free space: 3 inputs + merge output + cp copy + naive output (~6 model sizes) + 2 GiB dd file
NEED_GB=$([ "$SIZE" = full ] && echo 12 || echo 3)
AVAIL_GB=$(df -P -BG "$OUT" | awk 'NR == 2 { sub("G", "", $4); print $4 }')
[ "${AVAIL_GB:-0}" -ge "$NEED_GB" ] || die "$OUT has ${AVAIL_GB}G free; --size $SIZE needs about ${NEED_GB}G"
CK=$OUT/ckpt-$SIZE
CFG=$OUT/merge-$SIZE.json
MERGED=$OUT/merged-$SIZE
CPDST=$OUT/cp-$SIZE
NAIVE=$OUT/naive-$SIZE
RAW=$OUT/raw-$SIZE.tsv
JSON=$OUT/bench_merge.json

now() { date +%s.%N; }
# "max_rss_kB user_s sys_s" from a /usr/bin/time -v report
timev() { awk -F': ' '/Maximum resident set size/ { m = $2 } /User time/ { u = $2 } /System time/ { s = $2 }
                       END { print m + 0, u + 0, s + 0 }' "$1"; }
loadavg() { cut -d' ' -f1 /proc/loadavg; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.4f", b - a }'; }
log() { echo "[bench] $*" >&2; }

# --- 2. synthesise once --------------------------------------------------------
STAMP="${SYNTH_ARGS[*]}"
SYNTH_S=null
if [ -f "$CK/synth-args" ] && [ "$(cat "$CK/synth-args")" = "$STAMP" ] &&
   [ -f "$CK/base/layerswap-manifest.json" ] && [ -f "$CK/task1/layerswap-manifest.json" ] &&
   [ -f "$CK/lang1/layerswap-manifest.json" ]; then
    log "reusing checkpoints in $CK"
else
    rm -rf "$CK"
    log "synth ${SYNTH_ARGS[*]} -> $CK"
    t0=$(now)
    "$LAYERSWAP" synth "${SYNTH_ARGS[@]}" -o "$CK" >&2 || die "layerswap synth failed"
    t1=$(now)
    SYNTH_S=$(elapsed "$t0" "$t1")
    echo "$STAMP" >"$CK/synth-args"
fi

# --- 3. config -------------------------------------------------------------------
cat >"$CFG" <<EOF
{
  "models": {"base": "ckpt-$SIZE/base", "task": "ckpt-$SIZE/task1", "lang": "ckpt-$SIZE/lang1"},
  "base": "base",
  "method": "layer_swap",
  "layer_swap": {
    "task_expert": "task", "language_expert": "lang",
    "bottom": 4, "top": 2, "lower_transition": 2, "upper_transition": 2,
    "transition_weights": "uniform",
    "non_layer": "average", "non_layer_weights": "uniform"
  },
  "output": {"path": "merged-$SIZE", "format": "safetensors", "dtype": "input"}
}
EOF

# Input bytes the plan must read: every output tensor's bytes times its number of sources.
"$LAYERSWAP" inspect "$CK/task1" >"$OUT/inspect-$SIZE.txt" || die "layerswap inspect failed"
"$LAYERSWAP" merge "$CFG" -o "$MERGED" --dry-run >"$OUT/plan-$SIZE.txt" || die "layerswap merge --dry-run failed"
read -r IN_BYTES N_AVG N_TAKE < <(awk -F'\t' '
    FNR == NR { if ($0 !~ /^#/) bytes[$1] = $4; next }
    /^#/ { next }
    { n = split($3, s, ","); tot += bytes[$1] * n; if ($2 == "average") avg++; else take++ }
    END { printf "%.0f %d %d\n", tot, avg, take }' "$OUT/inspect-$SIZE.txt" "$OUT/plan-$SIZE.txt")
[ "${IN_BYTES:-0}" -gt 0 ] || die "could not compute input bytes from the dry-run plan"

shopt -s nullglob
SRC_FILES=("$CK"/task1/*.safetensors "$CK"/task1/*.safetensors.index.json)
IN_FILES=("$CK"/base/*.safetensors "$CK"/task1/*.safetensors "$CK"/lang1/*.safetensors)
shopt -u nullglob
CP_BYTES=$(stat -c %s "${SRC_FILES[@]}" | awk '{ s += $1 } END { printf "%.0f", s }')

cached_fraction() {
    if [ $HAVE_FINCORE = 1 ]; then
        fincore --bytes --noheadings --output RES,SIZE "${IN_FILES[@]}" |
            awk '{ r += $1; s += $2 } END { printf "%.4f", (s > 0 ? r / s : 0) }'
    else
        echo null
    fi
}

# --- warm-up: every input in the page cache ------------------------------------------
CACHED_BEFORE=$(cached_fraction)
LOAD_START=$(loadavg)
log "warm-up read of ${#IN_FILES[@]} input files"
cat "${IN_FILES[@]}" >/dev/null

# --- (b) memory copy bandwidth ----------------------------------------------------------
log "memory copy bandwidth (numpy copyto, 1 GiB, best of 3)"
MEMCPY_GBS=$("$PY" - <<'EOF'
import time, numpy as np
n = 1 << 30
a = np.ones(n, dtype=np.uint8); b = np.empty_like(a); np.copyto(b, a)
best = float("inf")
for _ in range(3):
    t0 = time.perf_counter(); np.copyto(b, a); best = min(best, time.perf_counter() - t0)
print(f"{n / best / 1e9:.3f}")
EOF
)

: >"$RAW"
# --- (c) disk sequential write --------------------------------------------------------
for ((r = 1; r <= RUNS; r++)); do
    log "dd 2 GiB conv=fsync, run $r/$RUNS"
    rm -f "$OUT/dd.tmp"; sync
    t0=$(now)
    dd if=/dev/zero of="$OUT/dd.tmp" bs=1M count=2048 conv=fsync status=none
    t1=$(now)
    echo -e "dd\t$r\t$(elapsed "$t0" "$t1")\t0 0 0" >>"$RAW"
    rm -f "$OUT/dd.tmp"
done
sync

# --- (a) cp + fsync and (d) merge, interleaved ---------------------------------------------
for ((r = 1; r <= RUNS; r++)); do
    log "cp + fsync of task1's shards ($CP_BYTES bytes), run $r/$RUNS"
    rm -rf "$CPDST"; mkdir -p "$CPDST"; sync
    t0=$(now)
    cp "${SRC_FILES[@]}" "$CPDST"/
    sync "$CPDST"/* "$CPDST"        # fsync of every file and of the folder
    t1=$(now)
    echo -e "cp\t$r\t$(elapsed "$t0" "$t1")\t0 0 0" >>"$RAW"
    rm -rf "$CPDST"

    log "layerswap merge --mem $MEM, run $r/$RUNS"
    rm -rf "$MERGED"; sync
    t0=$(now)
    /usr/bin/time -v -o "$OUT/time-merge-$r.txt" \
        "$LAYERSWAP" merge "$CFG" -o "$MERGED" --mem "$MEM" --overwrite --quiet ||
        die "layerswap merge failed (run $r); see $OUT/time-merge-$r.txt"
    t1=$(now)
    echo -e "merge\t$r\t$(elapsed "$t0" "$t1")\t$(timev "$OUT/time-merge-$r.txt")" >>"$RAW"
    if [ $r = 1 ]; then
        # --- 6. correctness, once ---
        log "layerswap verify $MERGED"
        "$LAYERSWAP" verify "$MERGED" >&2 || die "layerswap verify failed on $MERGED: benchmark aborted"
        OUT_BYTES=$(find "$MERGED" -maxdepth 1 -name '*.safetensors' -printf '%s\n' |
                    awk '{ s += $1 } END { printf "%.0f", s }')
    fi
done

CACHED_MERGE=$(cached_fraction)

# --- (e) naive numpy merge --------------------------------------------------------------
for ((r = 1; r <= NAIVE_RUNS; r++)); do
    log "naive numpy merge, run $r/$NAIVE_RUNS (slow)"
    rm -rf "$NAIVE"; mkdir -p "$NAIVE"; sync
    t0=$(now)
    /usr/bin/time -v -o "$OUT/time-naive-$r.txt" \
        "$PY" "$HERE/naive_merge.py" "$CFG" "$NAIVE/model.safetensors" ||
        die "naive_merge.py failed (run $r); see $OUT/time-naive-$r.txt"
    t1=$(now)
    echo -e "naive\t$r\t$(elapsed "$t0" "$t1")\t$(timev "$OUT/time-naive-$r.txt")" >>"$RAW"
    rm -rf "$NAIVE"
done

CACHED_AFTER=$(cached_fraction)
LOAD_END=$(loadavg)

# --- 5. table + JSON --------------------------------------------------------------------
export RAW JSON SIZE RUNS NAIVE_RUNS MEM IN_BYTES OUT_BYTES CP_BYTES MEMCPY_GBS SYNTH_S \
       CACHED_BEFORE CACHED_MERGE CACHED_AFTER N_AVG N_TAKE STAMP OUT LOAD_START LOAD_END
"$PY" - <<'EOF'
import json, os, statistics

E = os.environ
rows = {}
for line in open(E["RAW"]):
    kind, run, wall, rus = line.rstrip("\n").split("\t")
    rss, usr, sys_ = rus.split()
    rows.setdefault(kind, []).append((float(wall), int(rss), float(usr), float(sys_)))

def med(kind, i=0):
    v = [r[i] for r in rows.get(kind, [])]
    return statistics.median(v) if v else None

def num(name):
    v = E.get(name, "null")
    return None if v in ("", "null") else float(v)

in_b, out_b, cp_b = int(E["IN_BYTES"]), int(E["OUT_BYTES"]), int(E["CP_BYTES"])
merge_s, cp_s, dd_s, naive_s = med("merge"), med("cp"), med("dd"), med("naive")
merge_rss_mb = max(r[1] for r in rows["merge"]) * 1024 / 1e6
naive_rss_mb = max(r[1] for r in rows["naive"]) * 1024 / 1e6 if "naive" in rows else None
ratio = merge_s / cp_s
best_ratio = min(r[0] for r in rows["merge"]) / min(r[0] for r in rows["cp"])  # robust to a noisy neighbour
naive_ratio = naive_s / merge_s if naive_s else None
dd_gbs = 2048 * 2**20 / dd_s / 1e9
memcpy = num("MEMCPY_GBS")
cb, cm, ca = num("CACHED_BEFORE"), num("CACHED_MERGE"), num("CACHED_AFTER")

def spread(kind):
    v = [r[0] for r in rows[kind]]
    return "min %.3f, max %.3f s" % (min(v), max(v)) if len(v) > 1 else ""

def cpu(kind):  # median user and sys seconds
    return statistics.median(r[2] for r in rows[kind]), statistics.median(r[3] for r in rows[kind])
T_RATIO, T_RSS, T_NAIVE = 1.1, 100.0, 10.0

def verdict(ok):
    return "PASS" if ok else "MISS"

res = {
    "size": E["SIZE"], "synth_args": E["STAMP"], "runs": int(E["RUNS"]), "naive_runs": int(E["NAIVE_RUNS"]),
    "mem": E["MEM"], "work_dir": E["OUT"],
    "input_bytes_read": in_b, "output_bytes": out_b, "cp_bytes": cp_b,
    "averaged_tensors": int(E["N_AVG"]), "copied_tensors": int(E["N_TAKE"]),
    "inputs_in_page_cache": {"before_warmup": cb, "after_merge_runs": cm, "after_all_runs": ca,
                             "warmup": "cat inputs > /dev/null"},
    "loadavg_1min": {"start": num("LOAD_START"), "end": num("LOAD_END"), "cpus": os.cpu_count()},
    "merge": {"wall_s_median": merge_s, "wall_s": [r[0] for r in rows["merge"]],
              "max_rss_mb": merge_rss_mb, "max_rss_kb": [r[1] for r in rows["merge"]],
              "user_s": [r[2] for r in rows["merge"]], "sys_s": [r[3] for r in rows["merge"]],
              "output_gb_per_s": out_b / merge_s / 1e9, "input_gb_per_s": in_b / merge_s / 1e9},
    "cp_fsync": {"wall_s_median": cp_s, "wall_s": [r[0] for r in rows["cp"]], "gb_per_s": cp_b / cp_s / 1e9},
    "disk_write_dd": {"wall_s_median": dd_s, "wall_s": [r[0] for r in rows["dd"]], "bytes": 2048 * 2**20,
                      "gb_per_s": dd_gbs},
    "memcpy_gb_per_s": memcpy,
    "naive": None if naive_s is None else {"wall_s_median": naive_s, "wall_s": [r[0] for r in rows["naive"]],
                                           "user_s": [r[2] for r in rows["naive"]], "sys_s": [r[3] for r in rows["naive"]],
                                           "max_rss_mb": naive_rss_mb},
    "synth_s": num("SYNTH_S"),
    "targets": {
        "merge_over_cp_fsync": {"value": ratio, "target": "<= %g" % T_RATIO, "pass": ratio <= T_RATIO,
                                "best_over_best": best_ratio},
        "merge_peak_rss_mb": {"value": merge_rss_mb, "target": "<= %g" % T_RSS, "pass": merge_rss_mb <= T_RSS},
        "naive_over_merge": None if naive_ratio is None else
            {"value": naive_ratio, "target": ">= %g" % T_NAIVE, "pass": naive_ratio >= T_NAIVE},
    },
}
with open(E["JSON"], "w") as f:
    json.dump(res, f, indent=2)
    f.write("\n")

def pc(v):
    return "n/a (no fincore)" if v is None else "%.0f%%" % (100 * v)

R = int(E["RUNS"]); NR = int(E["NAIVE_RUNS"])
t = []
t.append(("merge wall time (median of %d)" % R, "%.3f s" % merge_s, "", spread("merge")))
t.append(("merge CPU time, user + sys (median)", "%.2f + %.2f s" % cpu("merge"), "", ""))
t.append(("cp+fsync time (median of %d)" % R, "%.3f s" % cp_s, "",
          "; ".join(x for x in ("%.2f GB/s" % (cp_b / cp_s / 1e9), spread("cp")) if x)))
t.append(("ratio merge / (cp+fsync)", "%.3f" % ratio, "<= %g" % T_RATIO,
          "%s (fastest merge / fastest cp: %.3f)" % (verdict(ratio <= T_RATIO), best_ratio)))
t.append(("peak RSS of merge (--mem %s)" % E["MEM"], "%.1f MB" % merge_rss_mb, "<= %g MB" % T_RSS,
          verdict(merge_rss_mb <= T_RSS)))
if naive_s is not None:
    t.append(("naive numpy merge time (median of %d)" % NR, "%.3f s" % naive_s, "",
              "user %.2f s, sys %.2f s" % cpu("naive")))
    t.append(("naive numpy merge peak RSS", "%.1f MB" % naive_rss_mb, "", ""))
    t.append(("ratio naive / merge", "%.2f" % naive_ratio, ">= %g" % T_NAIVE, verdict(naive_ratio >= T_NAIVE)))
else:
    t.append(("naive numpy merge", "skipped", ">= %g" % T_NAIVE, "n/a"))
t.append(("disk sequential write (dd 2 GiB, fsync)", "%.2f GB/s" % dd_gbs, "", "; ".join(x for x in ("median", spread("dd")) if x)))
t.append(("memory copy (np.copyto 1 GiB, best of 3)", "%.2f GB/s" % memcpy, "", "bytes copied/s"))
t.append(("merge throughput, output written", "%.2f GB/s" % (out_b / merge_s / 1e9), "", "%.3f GB" % (out_b / 1e9)))
t.append(("merge throughput, input read", "%.2f GB/s" % (in_b / merge_s / 1e9), "", "%.3f GB" % (in_b / 1e9)))
t.append(("inputs in page cache (before warm-up / after merges / end)", "%s / %s / %s" % (pc(cb), pc(cm), pc(ca)), "",
          "all timed runs from page cache"))
t.append(("load average, 1 min (start / end)", "%s / %s" % (E["LOAD_START"], E["LOAD_END"]), "",
          "%d CPUs; load above 0.5 at start means other work shares the machine" % os.cpu_count()))
if num("SYNTH_S") is not None:
    t.append(("synth of base+task1+lang1 (once)", "%.2f s" % num("SYNTH_S"), "", ""))

head = ("metric", "value", "target", "result / note")
w = [max(len(r[i]) for r in t + [head]) for i in range(4)]
fmt = "%-{}s  %{}s  %-{}s  %s".format(w[0], w[1], w[2])
print("layerswap merge benchmark: size %s (%s), %d tensors averaged, %d copied" %
      (E["SIZE"], E["STAMP"], int(E["N_AVG"]), int(E["N_TAKE"])))
print(fmt % head)
print(fmt % tuple("-" * x for x in w))
for r in t:
    print((fmt % r).rstrip())
print("JSON: %s" % E["JSON"])
EOF
