#!/usr/bin/env bash
# slurm-down.sh STATE_DIR [--quiet]
# Stops the private cluster that slurm-up.sh STATE_DIR started: cancels its
# jobs, then stops slurmd, slurmctld and munged by the PIDs recorded in
# STATE_DIR/run/*.pid (each checked to still be that daemon before it is
# signalled: TERM, then KILL after 10 s).  Keeps config and logs for a
# post-mortem; removes the short run folder in /tmp if one was used.
# Exit 0 when nothing of the cluster is left running (also when none was).
set -uo pipefail
[ $# -ge 1 ] || { echo "usage: $0 STATE_DIR [--quiet]" >&2; exit 1; }
S=$1 quiet=${2:-}
say() { [ "$quiet" = --quiet ] || echo "slurm-down: $*"; }
[ -d "$S" ] || { say "no state folder $S: nothing to stop"; exit 0; }
S=$(cd "$S" && pwd)

pid_of() { # NAME -> PID if STATE/run/NAME.pid names a live process whose command is NAME
  local f=$S/run/$1.pid pid
  [ -f "$f" ] || return 1
  pid=$(tr -dc 0-9 < "$f")
  [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 1
  local cmd
  cmd=$(tr '\0' ' ' < "/proc/$pid/cmdline")
  case "$cmd" in *"$1"*"$S/"*) ;; *) return 1 ;; esac
  echo "$pid"
}

# Jobs first, so that no slurmstepd of ours outlives slurmd.
if pid_of slurmctld >/dev/null && [ -f "$S/slurm.conf" ]; then
  export SLURM_CONF=$S/slurm.conf
  timeout 10 scancel --full --quiet --partition=debug 2>/dev/null
  for i in $(seq 1 100); do
    [ -z "$(timeout 5 squeue -h -t R,CG,S,PD,CF -o %i 2>/dev/null)" ] && break
    timeout 5 scancel --quiet --partition=debug 2>/dev/null
    sleep 0.1
  done
fi

# stop NAME...: TERM to each (together), wait up to 10 s, then KILL what is left
rc=0
stop() {
  local d pid pids=() names=()
  for d in "$@"; do
    pid=$(pid_of "$d") || { rm -f "$S/run/$d.pid"; continue; }
    kill -TERM "$pid" 2>/dev/null
    pids+=("$pid") names+=("$d")
  done
  local i k
  for k in "${!pids[@]}"; do
    pid=${pids[$k]} d=${names[$k]}
    for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    if kill -0 "$pid" 2>/dev/null; then
      say "$d ($pid) still running after 10 s: KILL"
      kill -KILL "$pid" 2>/dev/null
      sleep 0.2
    fi
    if kill -0 "$pid" 2>/dev/null; then echo "slurm-down: could not stop $d ($pid)" >&2; rc=1; continue; fi
    say "stopped $d ($pid)"
    rm -f "$S/run/$d.pid"
  done
}
stop slurmd slurmctld   # both at once (each takes 1-2 s to shut down)
stop munged             # last: the Slurm daemons authenticate through it until they end
if [ -f "$S/rundir" ]; then
  r=$(cat "$S/rundir")
  case "$r" in /tmp/lsw-slurm.*) rm -rf "$r" ;; esac
  rm -f "$S/rundir"
fi
exit $rc
