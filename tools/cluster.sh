#!/usr/bin/env bash
# Starts, stops and shows a local cellar cluster of cellard processes on
# loopback addresses, data and logs under .cluster/ in the repository.
#   tools/cluster.sh start   install, build, start (default)
#   tools/cluster.sh stop    SIGTERM every node and wait for a clean drain
#   tools/cluster.sh status
# NODES (default 6), PORT (default 7400). Node i listens on 127.0.0.i:PORT for
# clients and 127.0.0.i:PORT+1 for peers. The first half of the nodes are in
# datacenter dc1, the rest in dc2, racks alternating rack1/rack2; the first
# node of each datacenter is a seed. Nodes start one after the other, each
# once the previous one is normal (tokens are chosen from the ring it sees).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/.cluster"
nodes=${NODES:-6}
port=${PORT:-7400}
cmd=${1:-start}

pidfile() { echo "$dir/node$1/cellard.pid"; }
alive() { [ -f "$(pidfile "$1")" ] && kill -0 "$(cat "$(pidfile "$1")")" 2>/dev/null; }

case "$cmd" in
start)
  bash "$root/tools/build.sh" build
  mkdir -p "$dir"
  half=$(( (nodes + 1) / 2 ))
  seeds="127.0.0.1:$((port + 1))"
  [ "$nodes" -gt 1 ] && seeds="$seeds,127.0.0.$((half + 1)):$((port + 1))"
  for i in $(seq 1 "$nodes"); do
    if alive "$i"; then echo "node$i already running (pid $(cat "$(pidfile "$i")"))"; continue; fi
    dc=dc1; [ "$i" -gt "$half" ] && dc=dc2
    rack=rack$(( (i - 1) % 2 + 1 ))
    mkdir -p "$dir/node$i"
    nohup "$root/build/cellard" --listen "127.0.0.$i:$port" --peer-listen "127.0.0.$i:$((port + 1))" \
      --data-dir "$dir/node$i/data" --node-name "node$i" --seeds "$seeds" --dc "$dc" \
      --rack "$rack" >>"$dir/node$i/cellard.log" 2>&1 &
    echo $! >"$(pidfile "$i")"
    for _ in $(seq 1 300); do
      grep -qE "cluster: (normal|first node|restarting)" "$dir/node$i/cellard.log" && break
      alive "$i" || { echo "node$i failed to start:"; tail -5 "$dir/node$i/cellard.log"; exit 1; }
      sleep 0.1
    done
    echo "node$i up: 127.0.0.$i:$port ($dc/$rack)  data $dir/node$i/data  log $dir/node$i/cellard.log"
  done
  sleep 2
  "$root/build/cellar-admin" -h "127.0.0.1:$port" status || true
  echo
  echo "try:  build/cellar-admin status"
  echo "      build/cellar-cli -h 127.0.0.1:$port create-keyspace shop SimpleStrategy:1"
  echo "      build/cellar-cli -h 127.0.0.1:$port create-table shop.items"
  echo "      build/cellar-cli -h 127.0.0.1:$port put shop.items sku42 '' price=12.50 name=teapot"
  echo "      build/cellar-cli -h 127.0.0.1:$port get shop.items sku42"
  echo "stop: tools/cluster.sh stop"
  ;;
stop)
  for d in "$dir"/node*; do
    [ -d "$d" ] || continue
    i=${d##*/node}
    if alive "$i"; then
      pid=$(cat "$(pidfile "$i")")
      kill -TERM "$pid"
      for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      echo "node$i stopped"
    fi
    rm -f "$(pidfile "$i")"
  done
  ;;
status)
  for d in "$dir"/node*; do
    [ -d "$d" ] || continue
    i=${d##*/node}
    if alive "$i"; then echo "node$i up (pid $(cat "$(pidfile "$i")"))"; else echo "node$i down"; fi
  done
  ;;
*) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
