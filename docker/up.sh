#!/usr/bin/env bash
# Starts the two-datacenter cluster of docker/docker-compose.yml: builds the
# image (docker/build-image.sh), then starts n1..n6 one at a time, each once
# the previous one is normal (tokens are chosen from the ring a node sees), and
# prints cellar-admin status. Nodes already running are left alone; stopped
# ones are started again with their data. Safe to run again.
#   docker/up.sh [--no-build] [NODE ...]       (default: all six)
# Environment: see docker/lib.sh (CELLAR_PROJECT, CELLAR_NET, CELLAR_IMAGE,
# CELLAR_GOSSIP_MS, CELLAR_LOG_LEVEL); UP_TIMEOUT seconds per node (60).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
build=1
nodes=()
for a in "$@"; do
  case "$a" in
    --no-build) build=0 ;;
    n[1-6]) nodes+=("$a") ;;
    *) die "usage: $0 [--no-build] [n1 ... n6]" ;;
  esac
done
[ ${#nodes[@]} -gt 0 ] || nodes=("${CELLAR_NODES[@]}")
command -v docker-compose >/dev/null || die "up: docker-compose not found"
docker info >/dev/null 2>&1 || die "up: no Docker daemon (docker info fails)"
if [ "$build" = 1 ]; then bash "$CELLAR_DOCKER_DIR/build-image.sh"; fi
[ -x "$CELLAR_ADMIN" ] || die "up: $CELLAR_ADMIN missing (run docker/build-image.sh)"

t0=$(date +%s.%N)
# one compose call creates the network, the volumes and the containers that
# are missing (compose is slow to start: ~1 s per call); then docker start
missing=()
for n in "${nodes[@]}"; do [ "$(node_state "$n")" = absent ] && missing+=("$n"); done
if [ ${#missing[@]} -gt 0 ]; then
  compose up --no-start --no-recreate "${missing[@]}" 2>&1 | grep -v '^Creating\|is up-to-date' >&2 || true
fi
for n in "${nodes[@]}"; do
  s=$(node_state "$n")
  if [ "$s" = running ] && node_is_normal "$n"; then
    echo "$n already running ($(node_addr "$n"))"
    continue
  fi
  start_node "$n" "${UP_TIMEOUT:-60}" || exit 1
  printf '%s up   %-18s %s/%s  %ss\n' "$n" "$(node_addr "$n")" "$(node_dc "$n")" \
    "$(node_view "$n" | awk -v t="$n" '$1 == t { print $7 }')" "$WAITED"
done
echo "cluster up in $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }') s" \
  "(project $CELLAR_PROJECT, network $CELLAR_NET.0/24, gossip ${CELLAR_GOSSIP_MS} ms)"
"$CELLAR_ADMIN" -h "$(node_addr n1)" --timeout 3000 status || true
