#!/usr/bin/env bash
# mpi-test.sh CASE LAYERSWAP STATE WORK_DIR
# layerswap under Open MPI across the nodes of the virtual cluster that
# `vcluster.sh up STATE` built (ctest fixture "multihost_mpi").  mpirun runs on node1
# with the nodes' hostfile (2 slots each) and starts orted on node2 and node3 through
# rsh-agent.sh; ranks talk TCP between nodes and shared memory only within one.  Every
# reference ("1 rank") runs as one plain process on the machine itself, outside the
# cluster.  CASE is one of:
#   cluster  the cluster is what the tests assume: own hostnames, node-private /tmp and
#            /dev/shm, one shared work folder, every node reaches every other and
#            nothing else (no default route), the machine's own interfaces untouched;
#            mpirun places 6 ranks 2 per node and 3 ranks (--map-by node) 1 per node;
#            without the TCP transport (btl self,vader) a 6-rank merge cannot start:
#            shared memory does not cross nodes, so the other cases' ranks on different
#            nodes talk TCP
#   merge    the real fixtures (magnitude weights: an allreduce of the MAVs) and a
#            synthetic float16 merge at 3 ranks (1 per node) and 6 ranks (2 per node):
#            every output file byte-identical to the 1-rank result; verify passes
#   hdf5     --format hdf5 (parallel HDF5 through MPI-IO on the shared folder) at 6
#            ranks: model.h5 and the manifest identical to the 1-rank result
#            (registered only in a build with HDF5)
#   sweep    `layerswap sweep` of a 2 x 2 grid at 6 ranks: every folder and sweep.json
#            identical to the 1-rank sweep and to `merge --sweep --index K`
#   stats    `layerswap stats` of two experts at 6 ranks: every file identical to the
#            1-rank result
#   kill     a node killed mid-run (SIGKILL to every process on it: its orted and
#            ranks), first node2, then node1 (the one running mpirun): mpirun and every
#            rank on the other nodes end, none is left, within the time limit; the output
#            folder has no manifest; the same command then resumes on all three nodes
#            to the bytes of the 1-rank merge (after node1's death, launched from node2:
#            rank 0 on another host than the dead run's)
# Exit 0 pass, 1 fail, 77 skipped (no namespaces here).
set -uo pipefail
[ $# -eq 4 ] || { echo "usage: $0 CASE LAYERSWAP STATE WORK_DIR" >&2; exit 1; }
case_=$1 bin=$2 state=$3 work=$4
. "$(dirname "$0")/lib.sh"
repo=$(cd "$MH_DIR/../.." && pwd)
fx=$repo/tests/data/llama-bf16-sharded
mh_require_cluster
rm -rf "$work" && mkdir -p "$work" && cd "$work" || exit 1

layer_swap_config() { # FILE BASE TASK LANG WEIGHTS SHARD [DTYPE] [FORMAT]
  cat > "$1" <<JSON
{"models": {"base": "$2", "t": "$3", "g": "$4"}, "base": "base", "method": "layer_swap",
 "layer_swap": {"task_expert": "t", "language_expert": "g", "bottom": 2, "top": 1, "lower_transition": 1,
   "upper_transition": 1, "transition_weights": "$5", "non_layer": "average", "non_layer_weights": "$5"},
 "output": {"path": "unused", "shard_size": "$6", "dtype": "${7:-input}", "format": "${8:-safetensors}"}}
JSON
}

# run_ranks N NAME MPIRUN-OPTIONS -- LAYERSWAP-ARGS...: layerswap on N ranks across the
# nodes; its log in NAME.log
run_ranks() {
  local n=$1 name=$2 opts=() rc
  shift 2
  while [ $# -gt 0 ] && [ "$1" != -- ]; do opts+=("$1"); shift; done
  shift
  mh_mpirun 300 -n "$n" "${opts[@]}" "$bin" "$@" >"$name.log" 2>&1
  rc=$?
  [ $rc -eq 0 ] || { bad "$n ranks across the nodes: layerswap $* exited with $rc"; tail -n 30 "$name.log"; }
  return $rc
}

case "$case_" in
# -------------------------------------------------------------------------------------------
cluster)
  f0=$fail
  for n in $NODES; do
    [ "$(on "$n" hostname)" = "$n" ] || bad "$n: hostname is '$(on "$n" hostname)'"
    on "$n" sh -c "echo $n > /tmp/lsw-mh-mark && echo $n > /dev/shm/lsw-mh-mark && echo $n > '$work/from-$n'" \
      || bad "$n: cannot write /tmp, /dev/shm or the work folder"
  done
  for n in $NODES; do
    [ "$(on "$n" cat /tmp/lsw-mh-mark 2>/dev/null)" = "$n" ] || bad "$n's /tmp is not its own"
    [ "$(on "$n" cat /dev/shm/lsw-mh-mark 2>/dev/null)" = "$n" ] || bad "$n's /dev/shm is not its own"
    [ "$(cat /tmp/lsw-mh-mark 2>/dev/null)" = "$n" ] && bad "$n's /tmp is the machine's"
    for m in $NODES; do
      [ "$(on "$m" cat "$work/from-$n" 2>/dev/null)" = "$n" ] || bad "$m does not see $n's file in the shared work folder"
      [ "$n" = "$m" ] && continue
      out=$(on "$n" timeout 5 bash -c "echo > /dev/tcp/$m/9" 2>&1)
      case "$out" in *refused*) ;; *) bad "$n does not reach $m over TCP: ${out:-connected?}" ;; esac
    done
    routes=$(on "$n" ip -4 route show | grep -v "^$SUBNET.0/24 ")
    [ -z "$routes" ] || bad "$n has routes beyond $SUBNET.0/24: $routes"
  done
  for n in $NODES; do on "$n" rm -f /tmp/lsw-mh-mark /dev/shm/lsw-mh-mark; done
  [ $fail = "$f0" ] && ok "hostnames, private /tmp and /dev/shm, shared work folder, TCP between every pair, no other route"
  if diff <(ip -o link show | awk -F': ' '{print $2}' | sort) \
          <(awk -F': ' '{print $2}' "$state/root-links.before" | sort) >/dev/null; then
    ok "the machine's own network interfaces are those it had before the cluster"
  else
    bad "the machine's own network interfaces changed: $(ip -o link show | awk -F': ' '{print $2}' | tr '\n' ' ')"
  fi
  placement() { mh_mpirun 60 "$@" hostname 2>>placement.err | sort | uniq -c | awk '{print $2 ":" $1}' | paste -sd' '; }
  p6=$(placement -n 6)
  [ "$p6" = "node1:2 node2:2 node3:2" ] || bad "mpirun -n 6 placed the ranks as '$p6', expected 2 per node"
  p3=$(placement -n 3 --map-by node)
  [ "$p3" = "node1:1 node2:1 node3:1" ] || bad "mpirun -n 3 --map-by node placed the ranks as '$p3', expected 1 per node"
  echo "mpirun placements: -n 6 -> $p6; -n 3 --map-by node -> $p3"
  layer_swap_config fx.json "$fx/base" "$fx/math2" "$fx/lang1" magnitude 200KB
  rc=0
  MH_BTL=self,vader mh_mpirun 120 -n 6 "$bin" merge fx.json -o noshm --quiet >noshm.log 2>&1 || rc=$?
  if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
    bad "6 ranks on 3 nodes without TCP (btl self,vader) exited with $rc: shared memory must not cross nodes"
    tail -n 20 noshm.log
  elif ! grep -q 'BTLs attempted: .*vader' noshm.log; then
    bad "without TCP: exit $rc but not Open MPI's 'unreachable' error"; tail -n 20 noshm.log
  else
    ok "without TCP, ranks on different nodes cannot reach each other (exit $rc, Open MPI: unreachable)"
  fi
  [ -e noshm/layerswap-manifest.json ] && bad "without TCP: a manifest was written"
  mh_no_leftovers "without TCP" 30
  ;;
# -------------------------------------------------------------------------------------------
merge)
  "$bin" synth --layers 6 --hidden 256 --intermediate 704 --vocab 8000 --experts 2 --shard-size 4MB -o syn --quiet \
    || { bad "synth failed"; finish; }
  layer_swap_config fx.json "$fx/base" "$fx/math2" "$fx/lang1" magnitude 200KB
  layer_swap_config syn.json syn/base syn/task1 syn/lang1 uniform 2MB float16
  for cfg in fx syn; do
    "$bin" merge $cfg.json -o $cfg-n1 --mem 1M --quiet || { bad "$cfg: 1-rank merge (outside the cluster) exited with $?"; continue; }
    run_ranks 3 $cfg-n3 --map-by node -- merge $cfg.json -o $cfg-n3 --mem 1M \
      && { grep -q 'on 3 rank(s)' $cfg-n3.log || bad "$cfg: the 3-rank run does not say 'on 3 rank(s)'"; }
    run_ranks 6 $cfg-n6 -- merge $cfg.json -o $cfg-n6 --mem 1M \
      && { grep -q 'on 6 rank(s)' $cfg-n6.log || bad "$cfg: the 6-rank run does not say 'on 6 rank(s)'"; }
    for n in 3 6; do
      same_dirs $cfg-n1 $cfg-n$n
      "$bin" verify $cfg-n$n >/dev/null || bad "layerswap verify $cfg-n$n failed"
    done
  done
  ;;
# -------------------------------------------------------------------------------------------
hdf5)
  "$bin" synth --layers 6 --hidden 256 --intermediate 704 --vocab 8000 --experts 2 -o syn --quiet \
    || { bad "synth failed"; finish; }
  layer_swap_config h5.json syn/base syn/task1 syn/lang1 magnitude 5GB input hdf5
  "$bin" merge h5.json -o h1 --mem 1M --quiet || bad "1-rank HDF5 merge (outside the cluster) exited with $?"
  if run_ranks 6 h6 -- merge h5.json -o h6 --mem 1M; then
    [ -s h6/model.h5 ] || bad "no h6/model.h5"
    same_dirs h1 h6
    "$bin" verify h6 >/dev/null || bad "layerswap verify h6 failed"
  fi
  ;;
# -------------------------------------------------------------------------------------------
sweep)
  "$bin" synth --layers 4 --hidden 128 --intermediate 352 --vocab 4000 --experts 4 -o m --quiet \
    || { bad "synth failed"; finish; }
  cat > s.json <<JSON
{"models": {"base": "m/base", "math1": "m/task1", "math2": "m/task2", "swh1": "m/lang1", "swh2": "m/lang2"}, "base": "base",
 "grid": {"task_expert": ["math1", "math2"], "language_expert": ["swh1", "swh2"], "bottom": [1], "top": [1],
          "upper_transition": [1], "transition_weights": ["magnitude"]},
 "output": {"path": "unused", "format": "safetensors", "shard_by": "layer", "dedup": "copy"}}
JSON
  "$bin" sweep s.json -o s1-out --quiet || bad "1-rank sweep (outside the cluster) exited with $?"
  if run_ranks 6 s6 -- sweep s.json -o s6-out; then
    # the same folders and bytes; sweep.json names its output folder: compare the rest
    [ "$(ls s1-out)" = "$(ls s6-out)" ] || bad "s6-out holds [$(ls s6-out | tr '\n' ' ')], s1-out [$(ls s1-out | tr '\n' ' ')]"
    for d in s1-out/*/; do same_dirs "$d" "s6-out/$(basename "$d")"; done
    cmp -s <(sed 's/s1-out/X/g' s1-out/sweep.json) <(sed 's/s6-out/X/g' s6-out/sweep.json) \
      && ok "sweep.json the same at 1 and 6 ranks (but for the folder's name)" \
      || bad "sweep.json differs between 1 and 6 ranks (beyond the output folder's name)"
    for k in 0 1 2 3; do
      "$bin" merge --sweep s.json --index $k -o single --quiet || bad "merge --sweep --index $k exited with $?"
    done
    for d in single/*/; do same_dirs "$d" "s6-out/$(basename "$d")"; done
  fi
  ;;
# -------------------------------------------------------------------------------------------
stats)
  "$bin" synth --layers 4 --hidden 256 --intermediate 704 --vocab 8000 --experts 2 -o syn --quiet \
    || { bad "synth failed"; finish; }
  args=(--base syn/base math=syn/task1 lang=syn/lang1 --mem 1M)
  "$bin" stats "${args[@]}" -o st1 --quiet || bad "1-rank stats (outside the cluster) exited with $?"
  run_ranks 6 st6 -- stats "${args[@]}" -o st6 && same_dirs st1 st6
  fx_args=(--base "$fx/base" "math=$fx/math2" "lang=$fx/lang1" --mem 1M)
  "$bin" stats "${fx_args[@]}" -o fx1 --quiet || bad "1-rank stats of the fixtures exited with $?"
  run_ranks 6 fx6 -- stats "${fx_args[@]}" -o fx6 && same_dirs fx1 fx6
  ;;
# -------------------------------------------------------------------------------------------
kill)
  # f32, 18 shards of 8 MB in two commit groups: a run can be stopped with finished shards
  "$bin" synth --layers 8 --hidden 512 --intermediate 1408 --vocab 8000 --experts 2 --dtype f32 -o big --quiet \
    || { bad "synth failed"; finish; }
  layer_swap_config big.json big/base big/task1 big/lang1 uniform 8MB
  "$bin" merge big.json -o ref --mem 1M --quiet || { bad "1-rank merge (outside the cluster) exited with $?"; finish; }
  for victim in node2 node1; do
    out=out-$victim
    kept=0 killed=0
    for attempt in 1 2 3; do
      rm -rf "$out"
      t0=$(date +%s)
      mh_mpirun 120 -n 6 "$bin" merge big.json -o "$out" --mem 1M >"$out.log" 2>&1 &
      mp=$!
      # the six ranks' PIDs (as seen from the machine), then the first finished shard;
      # the last attempt does not wait for a shard: a kill right after the start is
      # mid-run too
      pids=""
      while [ "$(echo $pids | wc -w)" -lt 6 ] && kill -0 $mp 2>/dev/null; do
        pids=$(run_pids "$bin" "$out")
      done
      if [ "$(echo $pids | wc -w)" -ne 6 ]; then
        wait $mp
        rc=$?
        [ $rc -eq 0 ] || { bad "$victim: the 6-rank run ended with $rc before its ranks were seen"; tail -n 20 "$out.log"; break; }
        echo "$victim, attempt $attempt: the merge had finished before its 6 ranks were seen; again"
        continue
      fi
      if [ $attempt -lt 3 ]; then
        i=0
        while ! compgen -G "$out/model-*.safetensors" >/dev/null && [ $i -lt 20000 ]; do sleep 0.001; i=$((i + 1)); done
      fi
      # freeze the run so that nothing more finishes, look, and cut the node's power
      kill -STOP $pids 2>/dev/null
      if [ -e "$out/layerswap-manifest.json" ]; then
        kill -CONT $pids 2>/dev/null; wait $mp
        echo "$victim, attempt $attempt: the merge had finished before it was stopped; again"
        continue
      fi
      kept=$(compgen -G "$out/model-*.safetensors" | wc -l)
      echo "$victim, attempt $attempt: killing every process of $victim with $kept finished shard(s) out of 18"
      "$VC" kill-node "$state" "$victim" || bad "kill-node $victim failed"
      killed=1
      kill -CONT $pids 2>/dev/null
      wait $mp
      rc=$?
      echo "mpirun (on node1) ended with exit $rc after $(( $(date +%s) - t0 )) s"
      # (exit 137 is also how a killed mpirun ends: `timeout --verbose` says when it fired)
      if grep -q '^timeout: sending signal' "$out.log"; then
        bad "$victim killed: the run did not end within 120 s (a hang)"; tail -n 20 "$out.log"
      elif [ $rc -eq 0 ]; then
        bad "$victim killed: the merge exited 0"
      fi
      mh_no_leftovers "$victim killed" 60 && ok "$victim killed: mpirun and every rank on every node ended (exit $rc)"
      [ -e "$out/layerswap-manifest.json" ] && bad "$victim killed: a manifest was written"
      break
    done
    [ $killed -eq 1 ] || { bad "$victim: no attempt was stopped before the merge finished"; continue; }
    # the node is back (empty /tmp): the same command resumes on all three nodes.  After
    # node1's death the rerun starts from node2, so that rank 0 (which takes the output
    # folder's lock) is on another host than the dead run's rank 0, as when a job that
    # lost a node is requeued to other nodes
    launch=node1
    if [ $victim = node1 ]; then
      launch=node2
      r0=$(MH_LAUNCH=$launch mh_mpirun 60 -n 6 sh -c '[ "$OMPI_COMM_WORLD_RANK" = 0 ] && hostname' 2>/dev/null)
      [ "$r0" = node2 ] || bad "mpirun on node2: rank 0 is on '$r0', expected node2"
    fi
    if MH_LAUNCH=$launch run_ranks 6 "$out-rerun" -- merge big.json -o "$out" --mem 1M; then
      echo "rerun (mpirun on $launch) after $victim's death: $(grep -o 'on 6 rank(s).*' "$out-rerun.log")"
      same_dirs ref "$out"
      "$bin" verify "$out" >/dev/null || bad "layerswap verify $out failed"
      if [ "$kept" -gt 0 ]; then
        grep -q '(resumed)' "$out-rerun.log" && ok "the rerun after $victim's death resumed from $kept kept shard(s)" \
          || bad "the rerun after $victim's death did not say '(resumed)' although $kept shard(s) were kept"
      fi
    fi
  done
  rm -rf big ref out-node1 out-node2
  ;;
*) echo "unknown case '$case_'" >&2; exit 1 ;;
esac
finish
