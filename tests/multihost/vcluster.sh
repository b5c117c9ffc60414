#!/usr/bin/env bash
# vcluster.sh: a virtual cluster of N "nodes" on one Linux machine, built from
# namespaces, for the multi-host tests (tests/multihost.cmake) and for trying a
# site's configuration by hand (docs/cluster.md).
#
#   vcluster.sh probe                    exit 0 if this machine can build one; else
#                                        print why and exit 77 (ctest: skipped), or 1
#                                        when LSW_MULTIHOST_REQUIRED=1
#   vcluster.sh up STATE [N]             build N nodes (default 3): node1 .. nodeN
#   vcluster.sh down STATE               stop every process of every node, remove the
#                                        namespaces; exit 1 if anything is left
#   vcluster.sh exec STATE NODE CMD...   run CMD on NODE (its namespaces, same cwd and
#                                        environment), e.g. mpirun on node1
#   vcluster.sh kill-node STATE NODE     SIGKILL every process of NODE (a power cut:
#                                        the node itself stays, its /tmp is emptied)
#   vcluster.sh ps STATE [NODE]          PID, node and command of the nodes' processes
#
# What a node is:
#   - a network namespace with one interface, eth0 = 10.77.0.<i>/24 (VCLUSTER_SUBNET,
#     default 10.77.0), joined to the others by a bridge that lives in a namespace of its
#     own (the "switch"), and lo; no address, route or interface is ever added to the
#     machine's own network namespace, and nothing routes out of the subnet;
#   - a UTS namespace: its hostname is node<i>;
#   - a mount namespace (private propagation: nothing leaks back to the machine) with
#     its own /tmp, /var/tmp (bind mounts of STATE/node<i>/tmp, vartmp) and /dev/shm
#     (an empty tmpfs: shared memory only within a node), and /etc/hosts = STATE/hosts,
#     which names every node; everything else, the build tree and the work folders
#     included, is the shared "parallel file system".
#   - the PID space is the machine's: nodes do not have PID namespaces, because a
#     process in one PID namespace cannot enter a sibling's (the rsh agent must
#     start orted on another node from inside a node).
# Each node's namespaces are held open by a holder process (named
# lsw-vnode:<node>:<STATE> in ps), recorded with its start time in STATE/<node>/holder
# so that a reused PID is never mistaken for it.  A process
# belongs to a node when its network, mount and UTS namespaces are the node's (the
# namespace ids are recorded in STATE/<node>/ns).  `down` signals exactly those
# processes (TERM, then KILL after 5 s), then the holders; the namespaces, the veth
# pairs and the bridge go away with their last process.  `up` runs `down` first, so
# a cluster left over by a killed run in the same STATE is cleared, and an `up`
# that fails half-way tears down what it built.  A holder ends its node by itself when
# STATE/<node> is removed, or after VCLUSTER_TTL seconds when that is set.
#
# Files: STATE/hosts (the nodes' /etc/hosts), STATE/hostfile (Open MPI: one line
# per node, slots = CPUs of the machine), STATE/nodes (the node names), STATE/subnet.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
me=$here/vcluster.sh
SUBNET=${VCLUSTER_SUBNET:-10.77.0}

die() { echo "vcluster: FAILED: $*" >&2; exit 1; }

# ---- probe ----------------------------------------------------------------------------
# Every kernel feature `up` uses, tried in throwaway namespaces that vanish on exit.
probe() {
  local why=""
  if [ "$(id -u)" != 0 ]; then
    why="not root (namespaces, veth pairs, slurmd and munged need root)"
  elif ! command -v unshare >/dev/null || ! command -v nsenter >/dev/null; then
    why="unshare/nsenter (util-linux) not found"
  elif ! command -v ip >/dev/null; then
    why="ip (iproute2) not found: apt-get install iproute2"
  elif ! unshare --net --uts --mount true 2>/dev/null; then
    why="unshare --net --uts --mount is not permitted here ($(unshare --net --uts --mount true 2>&1 | head -n1))"
  elif ! out=$(unshare --net sh -c 'ip link add lswp0 type bridge && ip link add lswp1 type veth peer name lswp2 &&
                                   ip link set lswp1 master lswp0' 2>&1); then
    why="no bridge or veth in this kernel/container: $out"
  elif ! unshare --mount sh -c 'mount -t tmpfs tmpfs /dev/shm' 2>/dev/null; then
    why="mounts inside a mount namespace are not permitted"
  fi
  [ -z "$why" ] && return 0
  if [ "${LSW_MULTIHOST_REQUIRED:-0}" = 1 ]; then
    echo "FAILED: cannot build a virtual cluster here: $why (and LSW_MULTIHOST_REQUIRED=1)"; return 1
  fi
  echo "SKIP: cannot build a virtual cluster here: $why"
  return 77
}

install_ip() { # as root, with apt, when `ip` is missing (idempotent)
  command -v ip >/dev/null && return 0
  [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null || return 0
  echo "vcluster: installing iproute2"
  DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends iproute2 \
    >/dev/null 2>&1 \
    || { apt-get -o DPkg::Lock::Timeout=300 update -qq && DEBIAN_FRONTEND=noninteractive \
         apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends iproute2; } \
    || echo "vcluster: apt-get install iproute2 failed" >&2
}

# ---- state -----------------------------------------------------------------------------
# The shared folders a node must see although they lie under /tmp or /var/tmp, which
# are its own: the first folder there of STATE, of this script's tree and of each
# path in VCLUSTER_SHARED (colon-separated), one per line.
tmp_roots() { # STATE
  local p r
  { echo "$1"; echo "$here"; tr ':' '\n' <<<"${VCLUSTER_SHARED:-}"; } | while IFS= read -r p; do
    case "$p/" in
      /tmp/?*) r=${p#/tmp/}; echo "/tmp/${r%%/*}" ;;
      /var/tmp/?*) r=${p#/var/tmp/}; echo "/var/tmp/${r%%/*}" ;;
    esac
  done | sort -u
}
node_tmp_path() { # STATE NODE ROOT -> where ROOT is bound in the node's tmp folders
  case "$3" in
    /tmp/*) echo "$1/$2/tmp/${3#/tmp/}" ;;
    *) echo "$1/$2/vartmp/${3#/var/tmp/}" ;;
  esac
}

state_dir() { # STATE -> absolute path (created)
  mkdir -p "$1" && (cd "$1" && pwd)
}
starttime() { # PID -> field 22 of /proc/PID/stat (clock ticks after boot)
  local s
  s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  s=${s##*) }
  set -- $s
  echo "${20}"
}
holder_pid() { # S NODE -> the live holder's PID, or fail
  local f=$1/$2/holder pid st
  [ -f "$f" ] || return 1
  read -r pid st < "$f" || return 1
  [ -n "$pid" ] && [ "$(starttime "$pid")" = "$st" ] || return 1
  case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in "lsw-vnode:$2:$1 "*) echo "$pid" ;; *) return 1 ;; esac
}
ns_ids() { # PID -> "net:[..] mnt:[..] uts:[..]"
  local n m u
  n=$(readlink "/proc/$1/ns/net") && m=$(readlink "/proc/$1/ns/mnt") && u=$(readlink "/proc/$1/ns/uts") \
    && echo "$n $m $u"
}
ns_table() { # every process: "PID net:[..] mnt:[..] uts:[..]" (one find for all)
  find /proc/[0-9]*/ns -maxdepth 1 \( -name net -o -name mnt -o -name uts \) -printf '%h %f %l\n' 2>/dev/null |
    awk '{split($1, a, "/"); v[a[3], $2] = $3; p[a[3]] = 1}
         END {for (k in p) if (v[k, "net"] != "" && v[k, "mnt"] != "" && v[k, "uts"] != "")
                             print k, v[k, "net"], v[k, "mnt"], v[k, "uts"]}'
}
all_units() { # S -> every unit with recorded namespaces: the nodes and the switch (also
  local f      #      those of an `up` that failed half-way)
  for f in "$1"/*/ns; do [ -f "$f" ] && basename "$(dirname "$f")"; done
}

# members S NODE: PIDs whose three namespaces are NODE's (the holder included)
members() {
  local want
  want=$(cat "$1/$2/ns" 2>/dev/null) || return 0
  [ -n "$want" ] || return 0
  ns_table | awk -v w="$want" '$2 " " $3 " " $4 == w {print $1}' | sort -n
}

# procs S NODE: the node's processes but its holder and the holder's own `sleep`
procs() {
  local hp p
  hp=$(holder_pid "$1" "$2") || hp=none
  for p in $(members "$1" "$2"); do
    [ "$p" = "$hp" ] && continue
    [ "$(ppid "$p")" = "$hp" ] && continue
    echo "$p"
  done
}
ppid() { local s; s=$(cat "/proc/$1/stat" 2>/dev/null) || return 1; s=${s##*) }; set -- $s; echo "$2"; }

# ---- up ------------------------------------------------------------------------------
# Runs inside the new namespaces (unshare execs it): the node's own view of the world,
# then it becomes the holder.
node_init() { # S NODE
  local S=$1 node=$2
  [ "$node" = switch ] && exec -a "lsw-vnode:switch:$S" bash "$me" __hold "$S" switch "${VCLUSTER_TTL:-0}"
  hostname "$node" || exit 1
  # shared folders that live under /tmp or /var/tmp (a checkout in /tmp/x) stay the
  # machine's: each is bound into the node's own /tmp (/var/tmp) at its own name, and
  # that /tmp is bound with its submounts
  local r
  while IFS= read -r r; do
    [ -n "$r" ] || continue
    mkdir -p "$(node_tmp_path "$S" "$node" "$r")" && mount --bind "$r" "$(node_tmp_path "$S" "$node" "$r")" || exit 1
  done < <(tmp_roots "$S")
  mount --rbind "$S/$node/tmp" /tmp || exit 1
  mount --rbind "$S/$node/vartmp" /var/tmp || exit 1
  mount -t tmpfs -o mode=1777,size=2g "lsw-shm-$node" /dev/shm || exit 1
  mount --bind "$S/hosts" /etc/hosts || exit 1
  ip link set lo up || exit 1
  exec -a "lsw-vnode:$node:$S" bash "$me" __hold "$S" "$node" "${VCLUSTER_TTL:-0}"
}

# The holder: keeps the namespaces open.  It ends the unit by itself (SIGKILL to every
# other process of its namespaces, then exit) when STATE/UNIT is removed, so that a
# cluster whose state folder was deleted cannot outlive it, and after VCLUSTER_TTL
# seconds when that is set (a safety net for a test run that was killed before its
# teardown).
hold() { # S UNIT TTL
  local S=$1 u=$2 ttl=$3 mine
  while [ -d "$S/$u" ] && { [ "$ttl" = 0 ] || [ "$SECONDS" -lt "$ttl" ]; }; do sleep 2; done
  mine=$(ns_ids $$)
  for i in 1 2 3 4 5; do
    ns_table | awk -v w="$mine" -v me=$$ '$1 != me && $2 " " $3 " " $4 == w {print $1}' | xargs -r kill -KILL 2>/dev/null
    sleep 0.2
  done
  exit 0
}

start_holder() { # S UNIT UNSHARE-OPTIONS... -> records STATE/UNIT/holder and ns
  local S=$1 u=$2 pid i
  shift 2
  mkdir -p "$S/$u"
  rm -f "$S/$u/holder" "$S/$u/ns"
  # stdio away from the caller's pipes: ctest waits for every writer of its pipe
  unshare "$@" -- bash "$me" __init "$S" "$u" </dev/null >"$S/$u/init.log" 2>&1 &
  pid=$!
  for i in $(seq 1 100); do
    case "$(tr '\0' ' ' < "/proc/$pid/cmdline" 2>/dev/null)" in "lsw-vnode:$u:$S "*) break ;; esac
    kill -0 "$pid" 2>/dev/null || { cat "$S/$u/init.log" >&2; die "$u: the namespace holder exited"; }
    sleep 0.05
  done
  echo "$pid $(starttime "$pid")" > "$S/$u/holder"
  ns_ids "$pid" > "$S/$u/ns"
  [ "$(holder_pid "$S" "$u")" = "$pid" ] || die "$u: holder $pid did not start (see $S/$u/init.log)"
  echo "$pid"
}

up() { # S N
  local S=$1 n=$2 i node hp sw ncpu
  [ "$n" -ge 1 ] && [ "$n" -le 200 ] || die "N must be 1..200"
  [[ $SUBNET =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || die "VCLUSTER_SUBNET=$SUBNET: three numbers, e.g. 10.77.0"
  case "$S/" in /tmp/|/var/tmp/|/dev/shm/*)
    die "STATE ($S) must be a folder on the shared file system: not /tmp or /var/tmp themselves, nor under /dev/shm (each node has its own)" ;;
  esac
  down "$S" --quiet || die "a cluster left over in $S could not be stopped"
  trap 'down "$S" --quiet' EXIT     # whatever fails below: nothing of it is left
  rm -rf "$S"/node[0-9]* "$S/switch" "$S/hosts" "$S/hostfile" "$S/nodes"
  ip -o link show > "$S/root-links.before"     # checked by `down`: the machine's own links
  ncpu=$(nproc)
  { echo "127.0.0.1 localhost"
    for i in $(seq 1 "$n"); do echo "$SUBNET.$i node$i"; done; } > "$S/hosts"
  echo "$SUBNET" > "$S/subnet"
  : > "$S/hostfile"
  sw=$(start_holder "$S" switch --net) || exit 1
  nsenter -t "$sw" -n sh -c 'ip link add br0 type bridge && ip link set br0 up && ip link set lo up' \
    || die "switch: cannot create the bridge"
  for i in $(seq 1 "$n"); do
    node=node$i
    mkdir -p "$S/$node/tmp" "$S/$node/vartmp"
    chmod 1777 "$S/$node/tmp" "$S/$node/vartmp"
    hp=$(start_holder "$S" "$node" --net --uts --mount --propagation private) || exit 1
    # the veth pair is made in the switch's namespace with its peer directly in the
    # node's: neither end ever exists in the machine's own namespace
    nsenter -t "$sw" -n sh -c "ip link add vn$i type veth peer name eth0 netns $hp &&
                               ip link set vn$i master br0 && ip link set vn$i up" \
      || die "$node: cannot create its veth pair"
    nsenter -t "$hp" -n sh -c "echo 1 > /proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null;
                               ip addr add $SUBNET.$i/24 dev eth0 && ip link set eth0 up" \
      || die "$node: cannot configure eth0"
    [ "$(nsenter -t "$hp" -u hostname)" = "$node" ] || die "$node: hostname not set (see $S/$node/init.log)"
    echo "$node" >> "$S/nodes"
    echo "$node slots=$ncpu" >> "$S/hostfile"
  done
  check_links "$S" || die "the machine's own network interfaces changed while building the cluster"
  # every node reaches every other over the bridge: a TCP connect to a closed port is
  # refused (reachable) rather than timing out
  for i in $(seq 1 "$n"); do
    local j=$(( i % n + 1 )) out
    out=$(nsenter -t "$(holder_pid "$S" node$i)" -n timeout 5 bash -c "echo > /dev/tcp/$SUBNET.$j/9" 2>&1)
    case "$out" in *refused*) ;; *) die "node$i cannot reach node$j ($SUBNET.$j): ${out:-connected?}" ;; esac
  done
  trap - EXIT
  echo "vcluster: $n node(s) up in $S: $(tr '\n' ' ' < "$S/nodes")on $SUBNET.0/24 (bridge in a namespace of its own)"
}

check_links() { # S: the machine's own interfaces are those recorded before `up`
  [ -f "$1/root-links.before" ] || return 0
  diff <(ip -o link show | awk -F': ' '{print $2}' | sort) \
       <(awk -F': ' '{print $2}' "$1/root-links.before" | sort) >&2
}

# ---- down ----------------------------------------------------------------------------
signal_all() { # S SIG: to every process of every node and the switch, holders too
  local u p
  for u in $(all_units "$1"); do
    for p in $(members "$1" "$u"); do kill "-$2" "$p" 2>/dev/null; done
  done
}
count_all() {
  local u n=0
  for u in $(all_units "$1"); do n=$(( n + $(members "$1" "$u" | wc -l) )); done
  echo $n
}
down() { # S [--quiet]
  local S=$1 q=${2:-} i left
  [ -d "$S" ] || return 0
  [ -n "$(all_units "$S")" ] || return 0
  # TERM first (daemons shut down cleanly), KILL what is left after 5 s
  signal_all "$S" TERM
  for i in $(seq 1 50); do [ "$(count_all "$S")" = 0 ] && break; sleep 0.1; done
  for i in 1 2 3 4 5; do
    [ "$(count_all "$S")" = 0 ] && break
    signal_all "$S" KILL
    sleep 0.2
  done
  left=$(count_all "$S")
  if [ "$left" != 0 ]; then
    echo "vcluster: $left process(es) of the cluster still running:" >&2
    ps_nodes "$S" >&2
    return 1
  fi
  check_links "$S" || { echo "vcluster: the machine's own network interfaces differ from before 'up'" >&2; return 1; }
  for i in $(all_units "$S"); do rm -f "$S/$i/holder" "$S/$i/ns"; done
  rm -f "$S/nodes"
  [ "$q" = --quiet ] || echo "vcluster: down: no process of the cluster is left in $S"
  return 0
}

# ---- exec, kill-node, ps -------------------------------------------------------------
node_exec() { # S NODE CMD...
  local S=$1 node=$2 hp
  shift 2
  hp=$(holder_pid "$S" "$node") || die "no node $node in $S (is the cluster up?)"
  exec nsenter -t "$hp" --net --uts --mount --wd="$PWD" -- "$@"
}

kill_node() { # S NODE
  local S=$1 node=$2 i pids
  holder_pid "$S" "$node" >/dev/null || die "no node $node in $S"
  for i in $(seq 1 50); do
    pids=$(procs "$S" "$node")
    [ -z "$pids" ] && break
    kill -KILL $pids 2>/dev/null
    sleep 0.1
  done
  [ -z "$(procs "$S" "$node")" ] || die "$node: processes survive SIGKILL"
  # a rebooted node comes back with an empty /tmp; the shared folders bound into it
  # stay (here they are empty folders: removing one would detach the node's mount)
  local keep e
  keep=$(tmp_roots "$S" | while IFS= read -r e; do node_tmp_path "$S" "$node" "$e"; done)
  for e in "$S/$node/tmp"/* "$S/$node/tmp"/.[!.]* "$S/$node/vartmp"/* "$S/$node/vartmp"/.[!.]*; do
    [ -e "$e" ] || [ -L "$e" ] || continue
    grep -qxF -- "$e" <<<"$keep" || rm -rf -- "$e"
  done
  echo "vcluster: $node: every process killed, /tmp emptied"
}

ps_nodes() { # S [NODE]: the holders (lsw-vnode:...) and every other process
  local u p
  for u in ${2:-$(all_units "$1")}; do
    for p in $(holder_pid "$1" "$u") $(procs "$1" "$u"); do
      printf '%7s %-8s %s\n' "$p" "$u" "$(tr '\0' ' ' < "/proc/$p/cmdline" 2>/dev/null | cut -c1-150)"
    done
  done
}

# ---- main ------------------------------------------------------------------------------
cmd=${1:-}
case "$cmd" in
  probe) probe; exit $? ;;
  __init) node_init "$2" "$3" ;;
  __hold) hold "$2" "$3" "$4" ;;
  up|down|exec|kill-node|ps)
    [ $# -ge 2 ] || die "usage: $0 $cmd STATE ..."
    # iproute2 is the one package this needs beyond util-linux (a minimal Debian image
    # lacks it); then, where no cluster can be built, `up` is a skip, before it touches
    # anything
    [ "$cmd" = up ] && { install_ip; probe || exit $?; }
    S=$(state_dir "$2") || die "cannot create $2"
    shift 2 ;;
  *) sed -n '2,/^set /p' "$0" | sed '$d; s/^# \{0,1\}//' >&2; exit 1 ;;
esac
case "$cmd" in
  up) up "$S" "${1:-3}" ;;
  down) down "$S" "${1:-}" ;;
  exec) [ $# -ge 2 ] || die "usage: $0 exec STATE NODE CMD..."; node_exec "$S" "$@" ;;
  kill-node) [ $# -eq 1 ] || die "usage: $0 kill-node STATE NODE"; kill_node "$S" "$1" ;;
  ps) ps_nodes "$S" "${1:-}" ;;
esac
