#!/usr/bin/env bash
# Removes the cluster: heals any partition, removes the containers, the
# network and (unless --keep-data) the data volumes. The image stays.
#   docker/down.sh [--keep-data]
set -euo pipefail
source "$(dirname "$0")/lib.sh"
vols=(-v)
[ "${1:-}" = "--keep-data" ] && vols=()
docker info >/dev/null 2>&1 || die "down: no Docker daemon (docker info fails)"
partition_heal || true
# paused containers cannot be stopped: resume them first
for n in "${CELLAR_NODES[@]}"; do
  [ "$(node_state "$n")" = paused ] && docker unpause "$(node_container "$n")" >/dev/null 2>&1 || true
done
compose down "${vols[@]}" --remove-orphans --timeout 5 2>&1 | grep -v '^$\|not found' || true
