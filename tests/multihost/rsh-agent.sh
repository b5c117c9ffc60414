#!/usr/bin/env bash
# rsh-agent.sh HOST COMMAND...: the virtual cluster's "ssh", for Open MPI's launcher
#   OMPI_MCA_plm_rsh_agent=tests/multihost/rsh-agent.sh  (with LSW_VCLUSTER=STATE)
# mpirun (or an orted, when Open MPI spreads the launch as a tree) calls it as it calls
# ssh: the host name, then the remote command as words that a shell on HOST joins and
# runs.  The agent runs that command on HOST: in the node's network, UTS and mount
# namespaces (vcluster.sh exec), through /bin/sh -c, with the environment a
# non-interactive ssh login gives (PATH, HOME, USER, LOGNAME, SHELL) and nothing of the
# caller's, so that a test cannot pass only because the launching shell's variables
# leaked to the other node.  LSW_VCLUSTER is the one exception: it is this
# "site's ssh configuration", needed again when an orted launches further nodes.
# Like ssh, it exits 255 when it cannot reach HOST, and otherwise with the command's
# exit code.
set -u
if [ $# -lt 2 ]; then echo "usage: $0 HOST COMMAND..." >&2; exit 255; fi
host=$1
shift
state=${LSW_VCLUSTER:-}
if [ -z "$state" ] || [ ! -f "$state/nodes" ]; then
  echo "rsh-agent: LSW_VCLUSTER is not set to a running virtual cluster's state folder" >&2; exit 255
fi
# ssh accepts user@host; Open MPI passes the bare name (or an address from the hostfile)
host=${host#*@}
node=$(awk -v h="$host" '$2 == h || $1 == h {print $2; exit}' "$state/hosts")
if [ -z "$node" ] || ! grep -qx "$node" "$state/nodes"; then
  echo "rsh-agent: $host: no such node in $state" >&2; exit 255
fi
user=$(id -un)
home=$(getent passwd "$user" | cut -d: -f6)
exec env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME="${home:-/}" USER="$user" \
     LOGNAME="$user" SHELL=/bin/sh LSW_VCLUSTER="$state" \
     "$(dirname "$0")/vcluster.sh" exec "$state" "$node" /bin/sh -c "$*"
