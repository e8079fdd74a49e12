#!/usr/bin/env bash
# Faults for the docker cluster.
#   docker/fault.sh kill NODE        SIGKILL the node (docker kill); data stays
#   docker/fault.sh stop NODE        SIGTERM, a clean drain (docker stop)
#   docker/fault.sh start NODE       start it again (same data, host id and
#                                    tokens) and wait until it is normal
#   docker/fault.sh pause NODE       freeze every process (docker pause: the
#                                    cgroup freezer, like SIGSTOP)
#   docker/fault.sh unpause NODE     thaw it
#   docker/fault.sh partition GROUP  cut GROUP off from the other nodes; GROUP
#                                    is dc1, dc2 or nodes: n2 or n1,n5
#   docker/fault.sh heal             remove the partition
# NODE is n1..n6. Partitions: see partition_apply in docker/lib.sh
# (CELLAR_PARTITION=nft, the default as root, or route).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
cmd=${1:-}; arg=${2:-}
case "$cmd" in
kill|stop|start|pause|unpause)
  [ -n "$arg" ] || usage
  c=$(node_container "$arg")
  case "$cmd" in
    kill) docker kill "$c" >/dev/null ;;
    stop) docker stop -t 10 "$c" >/dev/null ;;
    pause) docker pause "$c" >/dev/null ;;
    unpause) docker unpause "$c" >/dev/null ;;
    start) start_node "$arg" "${UP_TIMEOUT:-60}" ;;
  esac
  echo "$cmd $arg ($(node_addr "$arg")): $(node_state "$arg")"
  ;;
partition)
  [ -n "$arg" ] || usage
  case "$arg" in dc1|dc2) side=$(dc_nodes "$arg") ;; *) side=${arg//,/ } ;; esac
  for n in $side; do node_ip "$n" >/dev/null; done
  rest=$(for n in "${CELLAR_NODES[@]}"; do case " $side " in *" $n "*) ;; *) echo "$n" ;; esac; done | paste -sd' ' -)
  [ -n "$rest" ] || die "partition: nothing left on the other side"
  partition_apply "$side" "$rest"
  echo "partitioned [$side] from [$rest] ($(partition_mode))"
  ;;
heal)
  partition_heal
  echo "healed"
  ;;
*) usage ;;
esac
