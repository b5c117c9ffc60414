# lib.sh: helpers the multi-host test scripts share; sourced, not run.
# The caller sets: case_ (the case name), bin (layerswap), state (the cluster's STATE
# folder), work (the case's work folder, on the shared file system).
MH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VC=$MH_DIR/vcluster.sh
fail=0
t_start=$(date +%s)
bad() { echo "FAIL $case_: $*"; fail=1; }
ok() { echo "ok: $*"; }
finish() {
  echo "$case_: $(( $(date +%s) - t_start )) s"
  if [ $fail -ne 0 ]; then echo "0 passed, 1 failed"; exit 1; fi
  echo "1 passed, 0 failed"; exit 0
}

# The references run as MPI singletons on the machine itself.  Open MPI 4 gives every
# singleton the same session folder, /tmp/ompi.<host>.<uid>/jf.0, and one that ends
# removes it under another that starts ("mkdir .../jf.0/1: No such file or directory",
# seen when other test runs share the machine): ours get a folder of their own.
MH_OMPI_TMP=$(mktemp -d /tmp/lsw-mh-ompi.XXXXXX) || exit 1
export OMPI_MCA_orte_tmpdir_base=$MH_OMPI_TMP
trap 'rm -rf "$MH_OMPI_TMP"' EXIT

# The cluster must be up; where namespaces are not permitted, the case is skipped.
mh_require_cluster() {
  local rc=0
  "$VC" probe || rc=$?
  [ $rc -eq 0 ] || exit $rc
  if [ ! -f "$state/nodes" ] || ! "$VC" exec "$state" node1 true 2>/dev/null; then
    echo "FAIL $case_: no virtual cluster in $state: its setup test failed (see its output)"; exit 1
  fi
  SUBNET=$(cat "$state/subnet")
  NODES=$(cat "$state/nodes")
}

# on NODE CMD...: run CMD on a node of the cluster
on() { local n=$1; shift; "$VC" exec "$state" "$n" "$@"; }

# node_procs NODE [PATTERN]: "PID CMDLINE" of the node's processes (holder excluded)
# whose command line matches the extended regular expression PATTERN
node_procs() {
  "$VC" ps "$state" "$1" | awk -v p="${2:-.}" '$3 !~ /^lsw-vnode:/ && $0 ~ p {$2 = ""; print}'
}

# run_pids PROGRAM WORD: PIDs (as the machine sees them, on every node) of the processes
# whose argv[0] is PROGRAM and one of whose arguments is WORD; one awk over /proc, fast
# enough to catch a short run's ranks as they start
run_pids() {
  awk -v prog="$1" -v word="$2" 'BEGIN {RS = "\0"}
    FNR == 1 {ok = ($0 == prog); hit = 0; f = FILENAME}
    FNR > 1 && ok && $0 == word && !hit {hit = 1; sub("^/proc/", "", f); sub("/cmdline$", "", f); print f}' \
    /proc/[0-9]*/cmdline 2>/dev/null
}

# same_dirs A B: the same file names (hidden ones too) and identical bytes in every file,
# recursively (a sweep's output is a folder of folders)
same_dirs() {
  local a=$1 b=$2 f n=0 rc=0
  if [ ! -d "$a" ] || [ ! -d "$b" ]; then bad "missing folder $a or $b"; return 1; fi
  if [ "$(cd "$a" && find . | sort)" != "$(cd "$b" && find . | sort)" ]; then
    bad "$b holds [$(cd "$b" && find . -mindepth 1 | sort | tr '\n' ' ')], $a holds [$(cd "$a" && find . -mindepth 1 | sort | tr '\n' ' ')]"
    rc=1
  fi
  while IFS= read -r f; do
    n=$((n + 1))
    cmp -s "$a/$f" "$b/$f" || { bad "$f differs between $a and $b"; rc=1; }
  done < <(cd "$a" && find . -type f | sort)
  [ $rc -eq 0 ] && ok "$b equals $a ($n files, cmp byte for byte)"
  return $rc
}

# Open MPI across the nodes: mpirun on node1 (MH_LAUNCH=nodeK: on that node, which then
# holds rank 0) with the nodes' hostfile, orted started on the other nodes through the
# rsh agent, TCP between nodes on the cluster's subnet only, shared memory (vader)
# within a node.  Nothing of a Slurm allocation the test itself might run in is passed on.
mh_mpirun() { # TIMEOUT MPIRUN-ARGS...
  local t=$1 launch=${MH_LAUNCH:-node1}
  shift
  env -u OMPI_MCA_orte_tmpdir_base -u SLURM_JOB_ID -u SLURM_JOBID -u SLURM_NODELIST -u SLURM_JOB_NODELIST \
      OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 \
      OMPI_MCA_plm=rsh OMPI_MCA_plm_rsh_agent="$MH_DIR/rsh-agent.sh" LSW_VCLUSTER="$state" \
      OMPI_MCA_btl="${MH_BTL:-tcp,self,vader}" OMPI_MCA_btl_tcp_if_include="$SUBNET.0/24" \
      OMPI_MCA_oob_tcp_if_include="$SUBNET.0/24" OMPI_MCA_btl_vader_single_copy_mechanism=none \
      OMPI_MCA_mpi_yield_when_idle=1 \
      timeout --verbose -k 10 "$t" "$VC" exec "$state" "$launch" mpirun --hostfile "$state/hostfile" "$@"
}

# Nothing of layerswap or Open MPI is left on any node (after a run ended).
mh_no_leftovers() { # WHAT SECS
  local n i left=""
  for i in $(seq 1 $(( $2 * 10 ))); do
    left=""
    for n in $NODES; do left+=$(node_procs "$n" 'layerswap|orted|mpirun'); done
    [ -z "$left" ] && return 0
    sleep 0.1
  done
  bad "$1: processes left $2 s later: $left"
  return 1
}
