#!/usr/bin/env bash
# vslurm.sh: a Slurm cluster on the virtual cluster of vcluster.sh, for the multi-host
# tests and for trying a site's Slurm configuration by hand (docs/cluster.md).
#
#   vslurm.sh up STATE [N]       vcluster.sh up STATE N (default 3), then on every node
#                                its own munged (one shared key) and slurmd, and
#                                slurmctld on node1; exit 0 once every node is idle
#   vslurm.sh down STATE         cancel every job, stop the daemons, then vcluster.sh down
#   vslurm.sh run STATE CMD...   CMD on node1 (the login node) with SLURM_CONF set:
#                                sbatch, squeue, scontrol, sinfo ...
#
# Slurm (Debian's slurm-wlm 22.05) as a site runs it, on N hosts:
#   - NodeName=node<i> NodeAddr=10.77.0.<i> per node: slurmctld reaches each slurmd over
#     the virtual network, srun and slurmstepd talk across nodes, PMIx exchanges its
#     addresses between the steps of different nodes;
#   - node-local state where a site has it: munged's socket (/tmp/munge), slurmd's spool
#     (/tmp/slurmd, also PMIx's socket folder) and PID files in the node's own /tmp;
#     shared: slurm.conf, StateSaveLocation, logs and the work folders, under STATE/slurm;
#   - one munge key for all nodes (STATE/slurm/munge/munge.key), one munged per node;
#   - two partitions over all nodes: `batch` (default, PriorityTier=1, PreemptMode=REQUEUE)
#     and `urgent` (PriorityTier=10): a job in `urgent` preempts `batch` jobs
#     (PreemptType=preempt/partition_prio), which Slurm requeues;
#   - each node has the machine's CPU count (config_overrides: the nodes share the CPUs);
#   - VSLURM_EXTRA=FILE: lines of a site's own slurm.conf settings, appended after these
#     (before the node and partition lines), so that they win.
# The daemons are started by hand (no systemd); `down` stops them by PID (each checked to
# be that daemon), and vcluster.sh down then ends whatever is left on the nodes.
# Installs slurmctld slurmd slurm-client munge with apt when missing (as slurm-up.sh).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
vc=$here/vcluster.sh
die() { echo "vslurm: FAILED: $*" >&2; exit 1; }

[ $# -ge 2 ] || { sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 1; }
cmd=$1
# where no cluster can be built, `up` is a skip, before it touches anything
[ "$cmd" = up ] && { "$vc" probe || exit $?; }
mkdir -p "$2" || die "cannot create $2"
S=$(cd "$2" && pwd)
shift 2
SS=$S/slurm
CONF=$SS/slurm.conf

on() { # NODE CMD...: run on a node, stdio away from the caller's pipes for daemons
  local node=$1
  shift
  "$vc" exec "$S" "$node" "$@"
}

logs() {
  local f
  for f in "$SS"/log/*.log "$SS"/munge/*.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 30 lines)" >&2
    tail -n 30 "$f" >&2
  done
}

install_pkgs() {
  local p missing=()
  for p in slurmctld slurmd slurm-client munge; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  echo "vslurm: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
}

write_conf() { # nodes...
  local node i ncpu mem
  ncpu=$(nproc)
  mem=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  [ -r "$here/../slurm/common.conf" ] || die "$here/../slurm/common.conf is missing"
  cat > "$CONF" <<EOF
# Written by tests/multihost/vslurm.sh: a Slurm cluster on the virtual nodes of
# tests/multihost/vcluster.sh ($S).
ClusterName=lswvc$(printf '%s' "$S" | md5sum | cut -c1-8)
$(grep -v '^#' "$here/../slurm/common.conf")
SlurmctldHost=node1($(awk '$2 == "node1" {print $1}' "$S/hosts"))
SlurmctldPort=6817
SlurmdPort=6818
# every node's own munged, at the same node-local path; cred_expire is also how long a
# requeued job waits before it may start again (default 120 s)
AuthInfo=socket=/tmp/munge/munge.socket.2,cred_expire=5
PreemptType=preempt/partition_prio
PreemptMode=REQUEUE
StateSaveLocation=$SS/ctld
SlurmdSpoolDir=/tmp/slurmd
TmpFS=/tmp
SlurmctldPidFile=/tmp/slurmctld.pid
SlurmdPidFile=/tmp/slurmd.pid
SlurmctldLogFile=$SS/log/slurmctld.log
SlurmdLogFile=$SS/log/slurmd-%n.log
KillWait=5
PlugStackConfig=$SS/plugstack.conf
EOF
  for node in "$@"; do
    echo "NodeName=$node NodeAddr=$(awk -v n="$node" '$2 == n {print $1}' "$S/hosts") CPUs=$ncpu RealMemory=$mem State=UNKNOWN"
  done >> "$CONF"
  if [ -n "${VSLURM_EXTRA:-}" ]; then
    # a site's own settings, tried on this cluster: appended, so that they win
    { echo "# from VSLURM_EXTRA=$VSLURM_EXTRA"; cat "$VSLURM_EXTRA"; } >> "$CONF" || die "cannot read VSLURM_EXTRA=$VSLURM_EXTRA"
  fi
  local list
  list=$(echo "$@" | tr ' ' ',')
  cat >> "$CONF" <<EOF
PartitionName=batch Nodes=$list Default=YES MaxTime=INFINITE State=UP PriorityTier=1 PreemptMode=REQUEUE
PartitionName=urgent Nodes=$list MaxTime=INFINITE State=UP PriorityTier=10 PreemptMode=OFF
EOF
  : > "$SS/plugstack.conf"   # not the system's /etc/slurm/plugstack.conf
}

# daemon_pid NODE NAME: the PID in the node's /tmp/NAME.pid if it is that daemon
daemon_pid() {
  local f=$S/$1/tmp/$2.pid pid
  [ -f "$f" ] || return 1
  pid=$(tr -dc 0-9 < "$f")
  [ -n "$pid" ] || return 1
  case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in *"$2"*) echo "$pid" ;; *) return 1 ;; esac
}

up() {
  local n=${1:-3} nodes node i st t0
  install_pkgs
  id munge >/dev/null 2>&1 || die "user munge does not exist (the munge package creates it)"
  [ -f "$CONF" ] && down_slurm --quiet
  "$vc" up "$S" "$n" || exit $?
  nodes=$(cat "$S/nodes")
  rm -rf "$SS" && mkdir -p "$SS/ctld" "$SS/log" || die "cannot create $SS"
  install -d -o munge -g munge -m 0700 "$SS/munge"
  dd if=/dev/urandom of="$SS/munge/munge.key" bs=1 count=1024 status=none
  chown munge:munge "$SS/munge/munge.key" && chmod 0400 "$SS/munge/munge.key"
  write_conf $nodes
  export SLURM_CONF=$CONF
  t0=$(date +%s.%N)
  for node in $nodes; do
    install -d -o munge -g munge -m 0755 "$S/$node/tmp/munge"
    on "$node" runuser -u munge -- /usr/sbin/munged --socket=/tmp/munge/munge.socket.2 \
       --key-file="$SS/munge/munge.key" --pid-file="$SS/munge/$node.pid" --log-file="$SS/munge/$node.log" \
       --seed-file="$SS/munge/$node.seed" </dev/null >>"$SS/log/start.log" 2>&1 \
      || { logs; die "$node: munged did not start"; }
  done
  # a credential made on node1 decodes on every node: one key, shared
  for node in $nodes; do
    on node1 munge --socket=/tmp/munge/munge.socket.2 -s ok </dev/null 2>>"$SS/log/start.log" \
      | on "$node" unmunge --socket=/tmp/munge/munge.socket.2 >/dev/null 2>>"$SS/log/start.log" \
      || { logs; die "a munge credential from node1 does not decode on $node"; }
  done
  on node1 /usr/sbin/slurmctld -f "$CONF" -i </dev/null >>"$SS/log/start.log" 2>&1 || { logs; die "slurmctld exited with $?"; }
  for node in $nodes; do
    on "$node" /usr/sbin/slurmd -f "$CONF" -N "$node" </dev/null >>"$SS/log/start.log" 2>&1 \
      || { logs; die "$node: slurmd exited with $?"; }
  done
  for i in $(seq 1 600); do
    st=$(on node1 timeout 5 sinfo -h -N -o '%N %t' 2>/dev/null | sort -u)
    [ "$(echo "$st" | grep -c ' idle$')" = "$n" ] && break
    sleep 0.1
  done
  [ "$(echo "$st" | grep -c ' idle$')" = "$n" ] || { logs; down_slurm --quiet; "$vc" down "$S" --quiet
    die "not every node idle after 60 s: $(echo $st)"; }
  printf 'vslurm: %s up in %.1f s: %s idle, SLURM_CONF=%s (run commands with: %s run %s CMD)\n' \
    "$(sed -n 's/^ClusterName=//p' "$CONF")" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')" \
    "$(echo $nodes)" "$CONF" "$0" "$S"
}

down_slurm() {
  local q=${1:-} node pid pids=() i
  [ -f "$CONF" ] || return 0
  export SLURM_CONF=$CONF
  if daemon_pid node1 slurmctld >/dev/null; then
    on node1 timeout 10 scancel --full --quiet 2>/dev/null
    for i in $(seq 1 50); do
      [ -z "$(on node1 timeout 5 squeue -h -t R,CG,S,PD,CF -o %i 2>/dev/null)" ] && break
      on node1 timeout 5 scancel --quiet 2>/dev/null
      sleep 0.1
    done
  fi
  for node in $(cat "$S/nodes" 2>/dev/null); do
    pid=$(daemon_pid "$node" slurmd) && pids+=("$pid")
  done
  pid=$(daemon_pid node1 slurmctld) && pids+=("$pid")
  [ ${#pids[@]} -gt 0 ] && kill -TERM "${pids[@]}" 2>/dev/null
  for i in $(seq 1 100); do
    local alive=0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
    [ $alive = 0 ] && break
    sleep 0.1
  done
  for node in $(cat "$S/nodes" 2>/dev/null); do
    pid=$(tr -dc 0-9 < "$SS/munge/$node.pid" 2>/dev/null) && [ -n "$pid" ] \
      && case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in *munged*) kill -TERM "$pid" ;; esac
  done
  [ "$q" = --quiet ] || echo "vslurm: daemons stopped"
  return 0
}

case "$cmd" in
  up) up "${1:-3}" ;;
  down) down_slurm "${1:-}"; "$vc" down "$S" "${1:-}" ;;
  run) [ $# -ge 1 ] || die "usage: $0 run STATE CMD..."; SLURM_CONF=$CONF exec "$vc" exec "$S" node1 "$@" ;;
  *) die "unknown command '$cmd' (up, down, run)" ;;
esac
