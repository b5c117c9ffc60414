#!/usr/bin/env bash
# slurm-up.sh STATE_DIR
# Starts a private single-node Slurm cluster on this machine, for the tests:
# munged (as user munge), slurmctld and slurmd, started by hand (no systemd),
# everything (config, munge key and socket, spool, state, logs, PID files)
# under STATE_DIR, so that two test runs with different STATE_DIRs do not
# collide (each gets its own ports and its own munge socket).
#
# Installs slurmctld slurmd slurm-client munge with apt if any is missing
# (idempotent).  The only system changes are that install (whose postinst
# writes /etc/munge/munge.key; this script never reads or changes it: its
# munged uses a key of its own under STATE_DIR).
#
# Afterwards:  export SLURM_CONF=STATE_DIR/slurm.conf  (sbatch, srun, squeue...)
# Stop with:   slurm-down.sh STATE_DIR
# Exit 0 once sinfo shows the node idle; otherwise exit 1 with the reason and
# the daemons' logs (a cluster that cannot start is a loud failure, never a skip).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: $0 STATE_DIR" >&2; exit 1; }
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
S=$(cd "$1" && pwd)
die() { echo "slurm-up: FAILED: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "must run as root (slurmd starts jobs as any user; munged is started as user munge)"

# ---- 1. packages ---------------------------------------------------------------
pkgs=(slurmctld slurmd slurm-client munge)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "slurm-up: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Another apt/dpkg (a parallel test run) may hold the lock: wait for it.
  apt-get -o DPkg::Lock::Timeout=300 update -qq || die "apt-get update failed"
  apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}" \
    || die "apt-get install ${missing[*]} failed"
fi
for b in munged slurmctld slurmd sinfo sbatch srun scontrol; do
  command -v $b >/dev/null || die "$b not found after installing ${pkgs[*]}"
done
id munge >/dev/null 2>&1 || die "user munge does not exist (the munge package creates it)"

# ---- 2. stop a cluster left over in the same STATE_DIR ---------------------------
"$here/slurm-down.sh" "$S" --quiet || true

# ---- 3. folders ----------------------------------------------------------------------
# Unix socket paths are limited to 108 bytes: when STATE_DIR is long, the run
# folder (sockets of munged and slurmd's spool) goes to a short folder in /tmp,
# recorded in STATE_DIR/rundir and removed by slurm-down.sh.
rm -rf "$S/munge" "$S/ctld" "$S/log" "$S/run" "$S/spool" "$S/rundir"
mkdir -p "$S/ctld" "$S/log" "$S/run"
if [ ${#S} -le 60 ]; then R=$S/run; else R=$(mktemp -d /tmp/lsw-slurm.XXXXXX); echo "$R" > "$S/rundir"; fi
chmod 755 "$R"
mkdir -p "$R/spool"
# munged refuses keys, sockets and logs that other users could touch: its own
# folder, owned by munge, mode 0700; the key mode 0400.
M=$S/munge
install -d -o munge -g munge -m 0700 "$M"
install -d -o munge -g munge -m 0755 "$R/munge"
dd if=/dev/urandom of="$M/munge.key" bs=1 count=1024 status=none
chown munge:munge "$M/munge.key"
chmod 0400 "$M/munge.key"

# ---- 4. ports: two free TCP ports, derived from STATE_DIR --------------------------
port_busy() { # PORT -> 0 if something listens on it (IPv4 or IPv6)
  local hex
  hex=$(printf '%04X' "$1")
  awk -v h=":$hex" 'NR>1 && $4=="0A" && substr($2, length($2)-4)==h {f=1} END {exit !f}' \
      /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
seed=$(( 0x$(printf '%s' "$S" | md5sum | cut -c1-6) ))
ports=()
for i in $(seq 0 399); do
  p=$(( 20000 + (seed + 2 * i) % 30000 ))
  if ! port_busy $p && ! port_busy $((p + 1)); then ports=($p $((p + 1))); break; fi
done
[ ${#ports[@]} -eq 2 ] || die "no two free TCP ports found in 20000-50000"

# ---- 5. slurm.conf ------------------------------------------------------------------
host=$(hostname -s)
ncpu=$(nproc)
mem_mb=$(awk '/^MemTotal:/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
[ -r "$here/common.conf" ] || die "$here/common.conf is missing"
cat > "$S/slurm.conf" <<EOF
# Written by tests/slurm/slurm-up.sh: a private single-node cluster for the tests.
ClusterName=lsw$(printf '%s' "$S" | md5sum | cut -c1-8)
$(grep -v '^#' "$here/common.conf")
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=${ports[0]}
SlurmdPort=${ports[1]}
# our own munged; cred_expire is also how long a requeued job waits before it
# may start again (default 120 s)
AuthInfo=socket=$R/munge/munge.socket.2,cred_expire=5
StateSaveLocation=$S/ctld
SlurmdSpoolDir=$R/spool
SlurmctldPidFile=$S/run/slurmctld.pid
SlurmdPidFile=$S/run/slurmd.pid
SlurmctldLogFile=$S/log/slurmctld.log
SlurmdLogFile=$S/log/slurmd.log
KillWait=2
PlugStackConfig=$S/plugstack.conf
NodeName=$host NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem_mb State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
EOF
: > "$S/plugstack.conf"   # not the system's /etc/slurm/plugstack.conf
export SLURM_CONF=$S/slurm.conf

# ---- 6. daemons ----------------------------------------------------------------------
logs() {
  for f in "$S"/log/*.log "$M"/munged.log; do
    [ -f "$f" ] || continue
    echo "----- $f (last 40 lines)" >&2
    tail -n 40 "$f" >&2
  done
}
fail_logs() { echo "slurm-up: FAILED: $*" >&2; logs; "$here/slurm-down.sh" "$S" --quiet || true; exit 1; }
t0=$(date +%s.%N)
# munged forks into the background; its PID is in its pid file.
runuser -u munge -- /usr/sbin/munged --socket="$R/munge/munge.socket.2" --key-file="$M/munge.key" \
  --pid-file="$M/munged.pid" --log-file="$M/munged.log" --seed-file="$M/munged.seed" </dev/null >>"$S/log/start.log" 2>&1 \
  || fail_logs "munged did not start (see munged.log / start.log)"
cp "$M/munged.pid" "$S/run/munged.pid"
# munge round trip through our socket
echo ok | munge --socket="$R/munge/munge.socket.2" 2>>"$S/log/start.log" | unmunge --socket="$R/munge/munge.socket.2" >/dev/null 2>>"$S/log/start.log" \
  || fail_logs "munge/unmunge round trip through $R/munge/munge.socket.2 failed"
# slurmctld and slurmd daemonise; stdio never points at our caller's pipes
# (ctest waits until every writer of its pipe has gone).
/usr/sbin/slurmctld -f "$S/slurm.conf" -i </dev/null >>"$S/log/start.log" 2>&1 \
  || fail_logs "slurmctld exited with $?"
/usr/sbin/slurmd -f "$S/slurm.conf" -N "$host" </dev/null >>"$S/log/start.log" 2>&1 \
  || fail_logs "slurmd exited with $?"

# ---- 7. wait for an idle node -------------------------------------------------------
state=""
for i in $(seq 1 600); do
  state=$(timeout 5 sinfo -h -N -n "$host" -o %t 2>/dev/null | head -n1 || true)
  case "$state" in idle) break ;; esac
  sleep 0.1
done
[ "$state" = idle ] || fail_logs "node $host not idle after 60 s (sinfo says '${state:-no answer}')"
printf 'slurm-up: cluster %s up in %.1f s: node %s idle, %s CPUs, ports %s/%s, SLURM_CONF=%s\n' \
  "$(sed -n 's/^ClusterName=//p' "$S/slurm.conf")" "$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN {print b - a}')" \
  "$host" "$ncpu" "${ports[0]}" "${ports[1]}" "$S/slurm.conf"
