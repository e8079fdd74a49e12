#!/usr/bin/env bash
# What a node thinks of the cluster, through build/cellar-admin on the host.
#   docker/status.sh [NODE] [ARGS...]   cellar-admin -h NODE status ARGS (default n1)
#                                       e.g. docker/status.sh n4 --json
#   docker/status.sh --matrix           one line per node: how it sees each
#                                       member (U up, D down, . absent,
#                                       ? no answer), next to its container state
set -euo pipefail
source "$(dirname "$0")/lib.sh"
if [ "${1:-}" = "--matrix" ]; then
  printf '%-4s %-8s' node state
  for t in "${CELLAR_NODES[@]}"; do printf ' %s' "$t"; done
  echo
  for n in "${CELLAR_NODES[@]}"; do
    s=$(node_state "$n")
    printf '%-4s %-8s' "$n" "$s"
    if [ "$s" = running ] && v=$(node_view "$n"); then
      for t in "${CELLAR_NODES[@]}"; do
        l=$(awk -v t="$t" '$1 == t { print ($2 == "up" ? "U" : "D") toupper(substr($3, 1, 1)) }' <<<"$v")
        printf ' %-2s' "${l:-.}"
      done
    else
      for t in "${CELLAR_NODES[@]}"; do printf ' %-2s' "?"; done
    fi
    echo
  done
  exit 0
fi
node=n1
case "${1:-}" in n[1-6]) node=$1; shift ;; esac
exec "$CELLAR_ADMIN" -h "$(node_addr "$node")" --timeout 5000 status "$@"
