#!/usr/bin/env bash
# slurm-test.sh CASE LAYERSWAP STATE WORK_DIR
# The slurm/ batch templates, unchanged, on the 3-node Slurm cluster that
# `vslurm.sh up STATE` started on the virtual cluster (ctest fixture "multihost_slurm").
# Jobs are submitted from node1 (the login node); work folders are on the shared file
# system; every reference runs as one plain process on the machine, outside Slurm.
# CASE is one of:
#   merge    merge.sbatch on 2 nodes, 2 tasks each, with srun --mpi=pmix (PMIx across
#            slurmstepds, TCP between the nodes) and with LAUNCHER=mpirun (sites without
#            PMIx): the job ran on two nodes, 4 ranks, and every output file equals the
#            1-rank merge's
#   array    sweep-array.sbatch, 4 elements, each holding a whole node (--exclusive), so
#            that they spread over the nodes: element K equals `merge --sweep S --index K`
#            and folder K of `layerswap sweep S`, whichever node ran it
#   preempt  merge.sbatch (partition batch, one node) is preempted by a job of partition
#            urgent that takes its node (PreemptMode=REQUEUE): Slurm requeues it, it
#            starts again on another node, resumes from the shards the first node
#            finished, and ends COMPLETED with the bytes of an uninterrupted merge
# Exit 0 pass, 1 fail, 77 skipped (no namespaces here).
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 CASE LAYERSWAP STATE WORK_DIR" >&2; exit 1; }
case_=$1 bin=$2 state=$3 work=$4
. "$(dirname "$0")/lib.sh"
repo=$(cd "$MH_DIR/../.." && pwd)
tpl=$repo/slurm
mh_require_cluster
[ -f "$state/slurm/slurm.conf" ] || { echo "FAIL $case_: no Slurm on the cluster in $state: its setup test failed"; exit 1; }
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

# Slurm commands run on node1 with the cluster's slurm.conf; sbatch passes this
# environment on to the jobs (Open MPI as root, TCP on the cluster's subnet)
sl() {
  env -u OMPI_MCA_orte_tmpdir_base -u LSW_SLURM_DIR -u LAUNCHER -u SRUN_ARGS -u MPIRUN_ARGS -u REQUEUE \
      SLURM_CONF="$state/slurm/slurm.conf" LAYERSWAP="$bin" PROGRESS=1 \
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl=tcp,self,vader \
      OMPI_MCA_btl_tcp_if_include="$SUBNET.0/24" OMPI_MCA_oob_tcp_if_include="$SUBNET.0/24" \
      OMPI_MCA_btl_vader_single_copy_mechanism=none OMPI_MCA_mpi_yield_when_idle=1 \
      "$VC" exec "$state" node1 "$@"
}
job_field() { sl timeout 10 scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n1; }
wait_state() { # ID SECS STATE-REGEX: until JobState matches; echoes it
  local deadline=$(( $(date +%s) + $2 )) s=""
  while [ "$(date +%s)" -lt $deadline ]; do
    s=$(job_field "$1" JobState)
    [[ "$s" =~ ^($3)$ ]] && { echo "$s"; return 0; }
    sleep 0.2
  done
  echo "${s:-UNKNOWN}(timeout)"; return 1
}
final_states='COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE'
show_log() { echo "----- $1"; cat "$1" 2>/dev/null; echo "-----"; }

case "$case_" in
# -------------------------------------------------------------------------------------------
merge)
  "$bin" synth --layers 6 --hidden 256 --intermediate 704 --vocab 8000 --experts 2 --shard-size 4MB -o syn --quiet \
    || { bad "synth failed"; finish; }
  cat > m.json <<JSON
{"models": {"base": "syn/base", "t": "syn/task1", "g": "syn/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 1, "top": 1, "lower_transition": 1,
   "upper_transition": 1, "transition_weights": "magnitude", "non_layer": "average", "non_layer_weights": "magnitude"},
 "output": {"path": "unused", "shard_size": "2MB"}}
JSON
  "$bin" merge m.json -o ref --mem 1M --quiet || bad "1-rank merge (outside Slurm) exited with $?"
  # LAUNCHER=srun: srun --mpi=pmix (the default); LAUNCHER=mpirun: the sites without PMIx,
  # mpirun inside the allocation (it starts its daemons on the other node through srun)
  for launcher in srun mpirun; do
    sl env LAUNCHER=$launcher timeout 300 sbatch --wait --nodes=2 --ntasks=4 --ntasks-per-node=2 \
       --job-name=lsw-mh-$launcher --output="$work/%x_%j.out" "$tpl/merge.sbatch" m.json -o "$work/out-$launcher" \
       --mem 1M >sbatch-$launcher.txt 2>&1
    rc=$?
    log=$(ls "$work"/lsw-mh-${launcher}_*.out 2>/dev/null | head -n1)
    [ $rc -eq 0 ] || { bad "LAUNCHER=$launcher: sbatch --wait exited with $rc: $(cat sbatch-$launcher.txt)"; show_log "$log"; }
    id=$(sed -n 's/^Submitted batch job //p' sbatch-$launcher.txt)
    nodes=$(job_field "$id" NodeList)
    echo "LAUNCHER=$launcher: job $id ran on $nodes: $(grep -o 'on [0-9]* rank(s)' "$log")"
    case "$nodes" in node\[*-*\]|node\[*,*\]) ;; *) bad "LAUNCHER=$launcher: job $id ran on '$nodes', not on two nodes" ;; esac
    case $launcher in
      srun) want='srun --mpi=pmix .* merge m.json --progress 1' ;;
      mpirun) want='run 1 on .*: mpirun .* merge m.json --progress 1' ;;
    esac
    grep -q "$want" "$log" || bad "LAUNCHER=$launcher: the job log does not show the $launcher command"
    grep -q 'on 4 rank(s)' "$log" || { bad "LAUNCHER=$launcher: the merge did not run on 4 ranks"; show_log "$log"; }
    same_dirs ref out-$launcher
    "$bin" verify out-$launcher >/dev/null || bad "layerswap verify out-$launcher failed"
  done
  ;;
# -------------------------------------------------------------------------------------------
array)
  "$bin" synth --layers 3 --hidden 64 --intermediate 176 --vocab 512 --experts 4 -o syn --quiet \
    || { bad "synth failed"; finish; }
  # 4 merges (2 task x 2 language experts of syn/) into grid/
  cp "$repo/tests/data/sweep-2x2.json" sweep.json || { bad "no tests/data/sweep-2x2.json"; finish; }
  "$bin" sweep sweep.json --emit-array > emit.txt || { bad "sweep --emit-array exited with $?"; finish; }
  n=$(grep -c . emit.txt)
  [ "$n" -eq 4 ] || bad "--emit-array printed $n lines, the grid has 4 merges"
  for k in $(seq 0 $((n - 1))); do
    "$bin" merge --sweep sweep.json --index "$k" -o single --quiet || bad "reference merge --sweep --index $k exited with $?"
  done
  "$bin" sweep sweep.json -o ref --quiet || bad "reference 'layerswap sweep' (one process) exited with $?"
  sl timeout 300 sbatch --wait --array=0-$((n - 1)) --nodes=1 --ntasks=1 --exclusive --job-name=lsw-mh-array \
     --output="$work/%x_%A_%a.out" "$tpl/sweep-array.sbatch" sweep.json >sbatch.txt 2>&1
  rc=$?
  [ $rc -eq 0 ] || { bad "sbatch --wait exited with $rc: $(cat sbatch.txt)"; for l in "$work"/lsw-mh-array_*.out; do show_log "$l"; done; }
  declare -A used=()
  while IFS=$'\t' read -r k name dir; do
    case "$dir" in /*) ;; *) dir=$work/$dir ;; esac
    log=$(ls "$work"/lsw-mh-array_*_"$k".out 2>/dev/null | head -n1)
    node=$(sed -n 's/^lsw-job: .* run 1 on \([^ ]*\) .*/\1/p' "$log" | head -n1)
    echo "element $k ($name) ran on ${node:-?}"
    [ -n "$node" ] && used[$node]=1
    grep -q -- "--index $k " "$log" || bad "element $k's log does not run --index $k"
    same_dirs "single/$(basename "$dir")" "$dir"
    same_dirs "ref/$(basename "$dir")" "$dir"
  done < emit.txt
  [ ${#used[@]} -ge 2 ] && ok "the $n elements ran on ${#used[@]} different nodes (${!used[*]})" \
    || bad "the elements ran on ${#used[@]} node(s) (${!used[*]}), expected them spread over at least 2"
  ;;
# -------------------------------------------------------------------------------------------
preempt)
  # f32, 18 shards of 8 MB in two commit groups: the first run can finish some
  "$bin" synth --layers 8 --hidden 512 --intermediate 1408 --vocab 8000 --experts 2 --dtype f32 -o big --quiet \
    || { bad "synth failed"; finish; }
  cat > big.json <<JSON
{"models": {"base": "big/base", "t": "big/task1", "g": "big/lang1"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 2, "top": 1, "lower_transition": 1,
   "upper_transition": 2, "transition_weights": "uniform", "non_layer": "average", "non_layer_weights": "uniform"},
 "output": {"path": "unused", "shard_size": "8MB"}}
JSON
  "$bin" merge big.json -o ref --mem 1M --quiet || { bad "1-rank merge (outside Slurm) exited with $?"; finish; }
  done_=0
  for attempt in 1 2 3; do
    rm -rf out "$work"/lsw-mh-preempt_*.out
    id=$(sl sbatch --parsable --partition=batch --nodes=1 --ntasks=2 --job-name=lsw-mh-preempt \
           --output="$work/%x_%j.out" "$tpl/merge.sbatch" big.json -o "$work/out" --mem 1M) \
      || { bad "sbatch failed"; break; }
    log=$work/lsw-mh-preempt_$id.out
    st=$(wait_state "$id" 60 "RUNNING|$final_states") || { bad "job $id did not start: $st"; break; }
    first=$(job_field "$id" NodeList)
    # its two ranks, then (but for the last attempt) the first finished shard; then the
    # ranks are frozen so that the job cannot finish before the preemption reaches it
    pids="" i=0
    while [ "$(echo $pids | wc -w)" -lt 2 ] && [ $i -lt 100000 ]; do
      pids=$(run_pids "$bin" "$work/out")
      i=$((i + 1))
      # every ~0.5 s: still running?
      [ $((i % 50)) -ne 0 ] || [ "$(job_field "$id" JobState)" = RUNNING ] || break
    done
    if [ "$(echo $pids | wc -w)" -ne 2 ]; then
      st=$(wait_state "$id" 120 "$final_states")
      echo "attempt $attempt: job $id ended $st before both ranks were seen on $first; again"; continue
    fi
    if [ $attempt -lt 3 ]; then
      i=0
      while ! compgen -G "out/model-*.safetensors" >/dev/null && [ $i -lt 20000 ]; do sleep 0.001; i=$((i + 1)); done
    fi
    kill -STOP $pids 2>/dev/null
    if [ -e out/layerswap-manifest.json ]; then
      kill -CONT $pids 2>/dev/null
      st=$(wait_state "$id" 120 "$final_states")
      echo "attempt $attempt: job $id finished ($st) before it was frozen; again"; continue
    fi
    kept=$(compgen -G "out/model-*.safetensors" | wc -l)
    # the urgent job takes the whole node: Slurm preempts job $id there (SIGCONT, SIGTERM)
    urgent=$(sl sbatch --parsable --partition=urgent --nodelist="$first" --exclusive --job-name=lsw-mh-urgent \
               --output="$work/%x_%j.out" --wrap 'sleep 600') || { bad "sbatch (urgent) failed"; kill -CONT $pids; break; }
    echo "attempt $attempt: job $id on $first with $kept finished shard(s); job $urgent (partition urgent) takes $first"
    st=$(wait_state "$id" 60 "PENDING|REQUEUED|REQUEUE_FED|REQUEUE_HOLD|COMPLETING|PREEMPTED|$final_states")
    kill -CONT $pids 2>/dev/null   # Slurm sends SIGCONT itself; this is in case it does not
    echo "job $id after the preemption: $st"
    st=$(wait_state "$id" 300 "$final_states")
    restarts=$(job_field "$id" Restarts)
    last=$(job_field "$id" NodeList)
    echo "job $id ended $st, Restarts=$restarts, last on $last"
    sl scancel "$urgent"
    done_=1
    [ "$st" = COMPLETED ] || bad "job $id ended $st, expected COMPLETED"
    [ "${restarts:-0}" -ge 1 ] || bad "job $id: Restarts=$restarts, expected >= 1 (was it preempted?)"
    grep -q "run 1 on $first " "$log" || bad "the log does not show run 1 on $first"
    grep -q "run 2 on " "$log" || bad "the log does not show a second run"
    second=$(sed -n 's/^lsw-job: .* run 2 on \([^ ]*\) .*/\1/p' "$log" | head -n1)
    [ -n "$second" ] && [ "$second" != "$first" ] && ok "preempted on $first, requeued by Slurm, run 2 on $second" \
      || bad "run 2 was on '${second:-?}', expected another node than $first"
    [ "$kept" -eq 0 ] || grep -q "(resumed)" "$log" || bad "the second run did not resume (no '(resumed)' in the log)"
    grep -q 'layerswap merge exited with 3 (after SIGTERM)' "$log" \
      || bad "the log does not show layerswap stopping with exit 3 on the preemption's SIGTERM"
    grep -q 'layerswap merge exited with 0' "$log" || bad "the log does not show the final exit 0"
    [ $fail -eq 0 ] || show_log "$log"
    same_dirs ref out
    "$bin" verify out >/dev/null || bad "layerswap verify out failed"
    break
  done
  [ $done_ -eq 1 ] || bad "3 attempts: no job could be preempted while it ran"
  rm -rf big ref out
  ;;
*) echo "unknown case '$case_'" >&2; exit 1 ;;
esac
finish
