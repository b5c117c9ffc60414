#!/usr/bin/env bash
# slurm-test.sh CASE LAYERSWAP STATE_DIR WORK_DIR
# The slurm/ batch templates on the private single-node cluster that
# slurm-up.sh STATE_DIR started (ctest fixture "slurm").  CASE is one of:
#   merge    a 2-task merge through slurm/merge.sbatch (sbatch --wait, srun --mpi=pmix):
#            every output file equals a plain single-process merge's
#   array    a 4-element job array through slurm/sweep-array.sbatch (throttle %2):
#            folder K equals `layerswap merge --sweep S --index K` and folder K of
#            `layerswap sweep S`, both run outside Slurm
#            (skipped, exit 77, while `layerswap sweep --help` fails: not implemented)
#   requeue  a 2-task merge sent USR1 (scancel --signal=USR1 --batch) once a shard is
#            finished: layerswap exits 3, the job requeues itself, resumes, and ends
#            COMPLETED with Restarts>=1 and the bytes of an uninterrupted merge
#   stats    `layerswap stats` with 2 tasks through slurm/stats.sbatch: the same files as
#            one process outside Slurm (skipped, exit 77, while `layerswap stats --help`
#            fails: not dispatched by this build)
#   cancel   scancel (TERM) of a running job: stopped, NOT requeued (CANCELLED, Restarts=0)
#   array_requeue  USR1 to one element of a 2-element array (a stand-in binary): only that
#            element requeues (scontrol requeue ARRAYID_TASKID) and both end COMPLETED
#   guard    srun without PMIx (--mpi=none) exits 1 and writes nothing
# Exit 0 pass, 1 fail, 77 skipped.
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 CASE LAYERSWAP STATE_DIR WORK_DIR" >&2; exit 1; }
case_=$1 bin=$2 state=$3 work=$4
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
tpl=$repo/slurm
fx=$repo/tests/data/llama-bf16-sharded
fail=0
t_start=$(date +%s)
bad() { echo "FAIL $case_: $*"; fail=1; }
finish() {
  echo "$case_: $(( $(date +%s) - t_start )) s"
  if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
  echo "1 passed, 0 failed"; exit 0
}

# ---- the cluster must be up: a missing cluster is a failure, never a skip ----------------
export SLURM_CONF=$state/slurm.conf
if [ ! -f "$SLURM_CONF" ]; then
  echo "FAIL $case_: no $SLURM_CONF: the fixture slurm_up did not run or failed (see its output)"; exit 1
fi
if ! node=$(timeout 10 sinfo -h -o %t 2>&1) || [ -z "$node" ]; then
  echo "FAIL $case_: sinfo does not answer ($node); daemons' logs:"
  tail -n 20 "$state"/log/*.log; exit 1
fi
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1
export LAYERSWAP=$bin PROGRESS=1
unset LSW_SLURM_DIR LAUNCHER SRUN_ARGS MPIRUN_ARGS REQUEUE   # the templates' defaults

# same_dirs A B: the same file names (hidden ones too) and identical bytes in every file
same_dirs() {
  local a=$1 b=$2 f n=0 ok=0
  if [ ! -d "$a" ] || [ ! -d "$b" ]; then bad "missing folder $a or $b"; return 1; fi
  if [ "$(cd "$a" && ls -A | sort)" != "$(cd "$b" && ls -A | sort)" ]; then
    bad "$b holds [$(cd "$b" && ls -A | tr '\n' ' ')], $a holds [$(cd "$a" && ls -A | tr '\n' ' ')]"; ok=1
  fi
  for f in "$a"/* "$a"/.[!.]*; do
    [ -f "$f" ] || continue
    n=$((n + 1))
    cmp -s "$f" "$b/$(basename "$f")" || { bad "$(basename "$f") differs between $a and $b"; ok=1; }
  done
  [ $ok -eq 0 ] && echo "ok: $b equals $a ($n files, cmp byte for byte)"
  return $ok
}

# job_field ID FIELD: JobState, Restarts, ExitCode... from scontrol (sacct needs accounting)
job_field() { timeout 10 scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }

# wait_done ID SECS: until the job is in a final state; echoes it
wait_done() {
  local id=$1 deadline=$(( $(date +%s) + $2 )) s=""
  while [ "$(date +%s)" -lt $deadline ]; do
    s=$(job_field "$id" JobState)
    case "$s" in COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
      echo "$s"; return 0 ;; esac
    sleep 0.2
  done
  echo "${s:-UNKNOWN}(timeout)"; return 1
}

show_log() { echo "----- $1"; cat "$1" 2>/dev/null; echo "-----"; }

fixture_config() { # FILE OUTPUT-PATH
  cat > "$1" <<JSON
{"models": {"base": "$fx/base", "math": "$fx/math2", "lang": "$fx/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "math", "language_expert": "lang", "bottom": 2, "top": 2, "lower_transition": 1,
   "upper_transition": 1, "transition_weights": "magnitude", "non_layer": "average", "non_layer_weights": "magnitude"},
 "output": {"path": "$2", "shard_size": "200KB"}}
JSON
}

case "$case_" in
# -------------------------------------------------------------------------------------------
merge)
  fixture_config merge.json unused
  "$bin" merge merge.json -o ref --quiet || bad "reference merge (one process, outside Slurm) exited with $?"
  t0=$(date +%s.%N)
  sbatch --wait --ntasks=2 --job-name=lsw-merge --output="$work/%x_%j.out" "$tpl/merge.sbatch" merge.json \
         -o "$work/out" --mem 1M >sbatch.txt 2>&1
  rc=$?
  echo "sbatch --wait took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  log=$(ls "$work"/lsw-merge_*.out 2>/dev/null | head -n1)
  [ $rc -eq 0 ] || { bad "sbatch --wait exited with $rc: $(cat sbatch.txt)"; show_log "$log"; }
  grep -q 'srun --mpi=pmix .* merge .*merge.json --progress 1' "$log" || bad "the job log does not show the srun --mpi=pmix command"
  grep -q 'on 2 rank(s)' "$log" || { bad "the merge did not run on 2 ranks"; show_log "$log"; }
  same_dirs ref out
  "$bin" verify out >/dev/null || bad "layerswap verify out failed"
  ;;
# -------------------------------------------------------------------------------------------
array)
  if ! "$bin" sweep --help >/dev/null 2>&1; then
    echo "SKIP array: 'layerswap sweep --help' fails: sweep is not implemented in this build"
    exit 77
  fi
  "$bin" synth --layers 3 --hidden 64 --intermediate 176 --vocab 512 --experts 4 -o syn --quiet \
    || { bad "synth failed"; finish; }
  # 4 merges (2 task x 2 language experts of syn/) into grid/
  cp "$repo/tests/data/sweep-2x2.json" sweep.json || { bad "no tests/data/sweep-2x2.json"; finish; }
  "$bin" sweep sweep.json --emit-array > emit.txt || bad "sweep --emit-array exited with $?"
  n=$(grep -c . emit.txt)
  [ "$n" -eq 4 ] || bad "--emit-array printed $n lines, the grid has 4 merges: $(cat emit.txt)"
  awk -F '\t' 'NF != 3 || $1 != NR - 1 {exit 1}' emit.txt || bad "--emit-array lines are not K<TAB>NAME<TAB>DIR, K from 0: $(cat emit.txt)"
  # references outside Slurm: each merge alone, and the whole sweep in one process
  for k in $(seq 0 $((n - 1))); do
    "$bin" merge --sweep sweep.json --index "$k" -o single --quiet \
      || bad "reference 'merge --sweep sweep.json --index $k' (outside Slurm) exited with $?"
  done
  sweep_ok=1
  "$bin" sweep sweep.json -o ref --quiet \
    || { bad "reference 'layerswap sweep' (one process, outside Slurm) exited with $? (an engine failure, not Slurm's)"; sweep_ok=0; }
  t0=$(date +%s.%N)
  sbatch --wait --array=0-$((n - 1))%2 --ntasks=1 --job-name=lsw-array --output="$work/%x_%A_%a.out" \
         "$tpl/sweep-array.sbatch" sweep.json >sbatch.txt 2>&1
  rc=$?
  echo "sbatch --wait (array of $n, %2) took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {printf "%.1f", b - a}') s"
  [ $rc -eq 0 ] || { bad "sbatch --wait exited with $rc: $(cat sbatch.txt)"; for l in "$work"/lsw-array_*.out; do show_log "$l"; done; }
  nlogs=$(ls "$work"/lsw-array_*_*.out 2>/dev/null | wc -l)
  [ "$nlogs" -eq "$n" ] || bad "$nlogs array logs (%x_%A_%a.out), expected $n"
  while IFS=$'\t' read -r k name dir; do
    case "$dir" in /*) ;; *) dir=$work/$dir ;; esac
    grep -q -- "--index $k " "$work"/lsw-array_*_"$k".out || bad "element $k's log does not run --index $k"
    same_dirs "single/$(basename "$dir")" "$dir" || echo "  (element $k, $name: vs merge --sweep --index $k)"
    [ $sweep_ok -eq 0 ] || same_dirs "ref/$(basename "$dir")" "$dir" || echo "  (element $k, $name: vs layerswap sweep)"
  done < emit.txt
  ;;
# -------------------------------------------------------------------------------------------
requeue)
  "$bin" synth --layers 8 --hidden 1024 --intermediate 2816 --vocab 16000 --dtype f32 --experts 2 -o syn --quiet \
    || { bad "synth failed"; finish; }
  cat > big.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 2, "top": 1, "lower_transition": 1,
   "upper_transition": 2, "transition_weights": "uniform", "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "unused", "shard_size": "16MB"}}
JSON
  "$bin" merge big.json -o ref --mem 1M || bad "reference merge (uninterrupted, outside Slurm) exited with $?"
  interrupted=0
  for attempt in 1 2 3; do
    rm -rf out "$work"/lsw-requeue_*.out
    id=$(sbatch --parsable --ntasks=2 --job-name=lsw-requeue --output="$work/%x_%j.out" "$tpl/merge.sbatch" big.json \
               -o "$work/out" --mem 1M) || { bad "sbatch failed"; break; }
    log=$work/lsw-requeue_$id.out
    # once a shard is finished (a model-*.safetensors under its final name), signal the
    # batch shell the way --signal=B:USR1@120 does before the time limit
    deadline=$(( $(date +%s) + 120 )) i=0 st=""
    while ! compgen -G "out/model-*.safetensors" >/dev/null; do
      i=$((i + 1))
      if [ $((i % 100)) -eq 0 ]; then   # every ~0.5 s: still queued or running?
        [ "$(date +%s)" -lt $deadline ] || { bad "attempt $attempt: no finished shard after 120 s"; break; }
        st=$(job_field "$id" JobState)
        case "$st" in PENDING|RUNNING|CONFIGURING|"") ;; *) break ;; esac
      fi
      sleep 0.005
    done
    shards=$(compgen -G "out/model-*.safetensors" | wc -l)
    if [ "$shards" -gt 0 ]; then
      scancel --signal=USR1 --batch "$id" || bad "scancel --signal=USR1 --batch $id failed"
      echo "attempt $attempt: job $id: USR1 sent to the batch shell with $shards finished shard(s)"
    else
      bad "attempt $attempt: job $id is $st without a finished shard"; show_log "$log"; break
    fi
    st=$(wait_done "$id" 300)
    restarts=$(job_field "$id" Restarts)
    echo "attempt $attempt: job $id ended $st, Restarts=$restarts"
    if [ "$st" = COMPLETED ] && [ "${restarts:-0}" -eq 0 ]; then
      echo "attempt $attempt: the merge finished before the signal arrived; again"; continue
    fi
    interrupted=1
    [ "$st" = COMPLETED ] || bad "job $id ended $st, expected COMPLETED"
    [ "${restarts:-0}" -ge 1 ] || bad "job $id: Restarts=$restarts, expected >= 1"
    grep -q 'layerswap merge exited with 3 (after SIGUSR1)' "$log" || bad "the log does not show exit 3 after USR1"
    grep -q "requeued job $id" "$log" || bad "the log does not show the requeue"
    grep -q '(resumed)' "$log" || bad "the second run did not resume (no '(resumed)' in the log)"
    grep -q 'layerswap merge exited with 0' "$log" || bad "the log does not show the final exit 0"
    [ $fail -eq 0 ] || show_log "$log"
    same_dirs ref out
    "$bin" verify out >/dev/null || bad "layerswap verify out failed"
    break
  done
  [ $interrupted -eq 1 ] || bad "3 attempts: every merge finished before USR1 reached it (machine too fast or too loaded?)"
  rm -rf syn ref out   # 2.5 GB
  ;;
# -------------------------------------------------------------------------------------------
stats)
  if ! "$bin" stats --help >/dev/null 2>&1; then
    echo "SKIP stats: 'layerswap stats --help' fails: stats is not in this build"
    exit 77
  fi
  args=(--base "$fx/base" "math=$fx/math2" "lang=$fx/lang1" --mem 1M)
  "$bin" stats "${args[@]}" -o ref --quiet || bad "reference stats (one process, outside Slurm) exited with $?"
  sbatch --wait --ntasks=2 --job-name=lsw-stats --output="$work/%x_%j.out" "$tpl/stats.sbatch" "${args[@]}" \
         -o "$work/out" >sbatch.txt 2>&1
  rc=$?
  log=$(ls "$work"/lsw-stats_*.out 2>/dev/null | head -n1)
  [ $rc -eq 0 ] || { bad "sbatch --wait exited with $rc: $(cat sbatch.txt)"; show_log "$log"; }
  grep -q 'srun --mpi=pmix .* stats --progress 1 --base' "$log" || { bad "the job log does not show the srun command"; show_log "$log"; }
  same_dirs ref out
  ;;
# -------------------------------------------------------------------------------------------
cancel)
  # A stand-in for layerswap that runs until signalled (exit 3 on USR1/TERM): scancel
  # must stop the job without the template requeueing it.
  cat > fake-layerswap <<'SH'
#!/bin/bash
[ "${2:-}" = --help ] && exit 0
trap 'echo "fake: stopped"; exit 3' USR1 TERM
echo "fake: running"
for i in $(seq 1 1200); do sleep 0.1; done
SH
  chmod +x fake-layerswap
  id=$(LAYERSWAP=$work/fake-layerswap sbatch --parsable --ntasks=1 --job-name=lsw-cancel --output="$work/%x_%j.out" \
         "$tpl/merge.sbatch" x.json) || { bad "sbatch failed"; finish; }
  log=$work/lsw-cancel_$id.out
  deadline=$(( $(date +%s) + 60 ))
  until grep -q 'fake: running' "$log" 2>/dev/null; do
    [ "$(date +%s)" -lt $deadline ] || { bad "job $id did not start in 60 s"; break; }
    sleep 0.05
  done
  scancel "$id"
  st=$(wait_done "$id" 60)
  sleep 1
  st=$(job_field "$id" JobState)
  restarts=$(job_field "$id" Restarts)
  echo "job $id after scancel: $st, Restarts=$restarts"
  [ "$st" = CANCELLED ] || bad "job $id ended $st, expected CANCELLED"
  [ "${restarts:-0}" -eq 0 ] || bad "scancel requeued the job (Restarts=$restarts)"
  grep -q 'requeued job' "$log" && bad "the template requeued a cancelled job"
  [ $fail -eq 0 ] || show_log "$log"
  ;;
# -------------------------------------------------------------------------------------------
array_requeue)
  # Element 0 finishes at once; element 1 runs until USR1 (exit 3, as layerswap), and
  # exits 0 when run again.
  cat > fake-layerswap <<'SH'
#!/bin/bash
[ "${2:-}" = --help ] && exit 0
k=${SLURM_ARRAY_TASK_ID:?}
[ "$k" = 0 ] || [ -e "done.$k" ] && { echo "fake $k: done"; exit 0; }
trap 'echo "fake $k: stopped"; touch "done.$k"; exit 3' USR1
echo "fake $k: running"
for i in $(seq 1 1200); do sleep 0.1; done
SH
  chmod +x fake-layerswap
  aid=$(LAYERSWAP=$work/fake-layerswap sbatch --parsable --array=0-1 --ntasks=1 --job-name=lsw-areq \
          --output="$work/%x_%A_%a.out" "$tpl/sweep-array.sbatch" sweep.json) || { bad "sbatch failed"; finish; }
  log1=$work/lsw-areq_${aid}_1.out
  deadline=$(( $(date +%s) + 60 ))
  until grep -q 'fake 1: running' "$log1" 2>/dev/null; do
    [ "$(date +%s)" -lt $deadline ] || { bad "element 1 did not start in 60 s"; break; }
    sleep 0.05
  done
  scancel --signal=USR1 --batch "${aid}_1" || bad "scancel --signal=USR1 --batch ${aid}_1 failed"
  for k in 0 1; do
    st=$(wait_done "${aid}_$k" 120)
    restarts=$(job_field "${aid}_$k" Restarts)
    echo "element $k: $st, Restarts=$restarts"
    [ "$st" = COMPLETED ] || bad "element $k ended $st, expected COMPLETED"
    [ "${restarts:-0}" -eq "$k" ] || bad "element $k: Restarts=$restarts, expected $k"
  done
  grep -q "requeued job ${aid}_1" "$log1" || bad "element 1 did not requeue itself as ${aid}_1"
  grep -q 'requeued' "$work/lsw-areq_${aid}_0.out" && bad "element 0 was requeued"
  [ $fail -eq 0 ] || { show_log "$log1"; show_log "$work/lsw-areq_${aid}_0.out"; }
  ;;
# -------------------------------------------------------------------------------------------
guard)
  fixture_config guard.json unused
  # 1. srun --mpi=none: with Debian's Open MPI, MPI_Init itself refuses a direct launch
  #    without PMI; with an MPI that silently starts singletons, layerswap's own guard
  #    refuses.  Either way: exit 1 and nothing written.
  srun --mpi=none --ntasks=2 "$bin" merge guard.json -o "$work/none-out" >none.log 2>&1
  rc=$?
  echo "srun --mpi=none -n 2 layerswap merge: exit $rc"
  [ $rc -eq 1 ] || { bad "srun --mpi=none: exit $rc, expected 1"; cat none.log; }
  [ ! -e none-out ] || bad "srun --mpi=none: the output folder was created"
  if grep -q 'srun started independent copies' none.log; then echo "  refused by layerswap's guard"
  elif grep -q 'direct launched using "srun"' none.log; then echo "  refused by Open MPI's MPI_Init (no PMI)"
  else bad "srun --mpi=none: neither layerswap's guard message nor Open MPI's"; cat none.log; fi
  # 2. the guard itself: hide the step from Open MPI's srun detection (SLURM_STEP_ID), so
  #    that both tasks start as singletons, as with an MPI library that does not look
  #    for srun; the step still has 2 tasks (SLURM_STEP_NUM_TASKS).
  srun --mpi=none --ntasks=2 env -u SLURM_STEP_ID -u SLURM_STEPID "$bin" merge guard.json -o "$work/single-out" \
       >single.log 2>&1
  rc=$?
  echo "srun --mpi=none -n 2 (MPI singletons) layerswap merge: exit $rc"
  [ $rc -eq 1 ] || { bad "singletons under srun: exit $rc, expected 1"; cat single.log; }
  grep -q "layerswap: error: this Slurm step has 2 tasks but MPI sees 1 rank(s): srun started independent copies" single.log \
    || { bad "singletons under srun: no guard message"; cat single.log; }
  [ ! -e single-out ] || bad "singletons under srun: the output folder was created"
  # 3. the same step with PMIx works (2 ranks, exit 0)
  srun --mpi=pmix --ntasks=2 "$bin" merge guard.json -o "$work/pmix-out" >pmix.log 2>&1
  rc=$?
  [ $rc -eq 0 ] && grep -q 'on 2 rank(s)' pmix.log || { bad "srun --mpi=pmix -n 2: exit $rc"; cat pmix.log; }
  ;;
*) echo "unknown case '$case_'" >&2; exit 1 ;;
esac
finish
