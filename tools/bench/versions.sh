#!/usr/bin/env bash
# versions.sh: the cost of versioning on one node (issue 5, docs/versions.md).
# Two single cellards side by side on 127.0.0.1, one holding siblings
# tables, one lww tables, so each table's storage starts fresh; the runs
# alternate between them (the order flipped every round) so that the noise
# of a shared machine falls on both. Per round, on new tables:
#   put   --ratio 0:0:1, a first write of new keys
#   get   --workload read on 100,000 keys loaded once
#   rmw   --ratio 0:0:0:1 (a read, then a put with the read's context)
# 50 connections, depth 1, 16 B keys, 100 B values, RUN_S seconds a run.
# Prints one line per run and the mean ops/s per test and policy.
# Stops only the processes it started (by PID), removes its temp dir.
#
# Usage: tools/bench/versions.sh          (about 2 minutes)
# Settings (environment): BUILD=build  ROUNDS=6  RUN_S=3
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=${BUILD:-$ROOT/build}
ROUNDS=${ROUNDS:-6}
RUN_S=${RUN_S:-3}
TMP=$(mktemp -d /tmp/cellar-versions-bench.XXXXXX)
PORT_S=17800
PORT_L=17810
PIDS=()

cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT

"$BUILD/cellard" --listen 127.0.0.1:$PORT_S --data-dir "$TMP/s" >"$TMP/s.log" 2>&1 &
PIDS+=($!)
"$BUILD/cellard" --listen 127.0.0.1:$PORT_L --data-dir "$TMP/l" >"$TMP/l.log" 2>&1 &
PIDS+=($!)
sleep 1.5
cli() { "$BUILD/cellar-cli" -h "127.0.0.1:$1" "${@:2}" >/dev/null; }
cli $PORT_S create-keyspace bench
cli $PORT_L create-keyspace bench

# run LABEL PORT ARGS...: prints "LABEL ops/s" and appends it to $TMP/results
run() {
  local label=$1 port=$2
  shift 2
  local ops
  ops=$("$BUILD/cellar-bench" --hosts "127.0.0.1:$port" --keyspace bench \
        --duration "$RUN_S" "$@" 2>&1 | awk '/^total/ {print $2}')
  echo "$label $ops" | tee -a "$TMP/results"
}

table() {   # table PORT NAME POLICY
  cli "$1" create-table "bench.$2" --policy "$3"
}

for kind in get rmw; do
  table $PORT_S "s$kind" siblings
  table $PORT_L "l$kind" lww
  "$BUILD/cellar-bench" --hosts 127.0.0.1:$PORT_S --keyspace bench --table "s$kind" \
    --workload read --keys 100000 --load --duration 1 >/dev/null 2>&1
  "$BUILD/cellar-bench" --hosts 127.0.0.1:$PORT_L --keyspace bench --table "l$kind" \
    --workload read --keys 100000 --load --duration 1 >/dev/null 2>&1
done

for r in $(seq 1 "$ROUNDS"); do
  table $PORT_S "sput$r" siblings
  table $PORT_L "lput$r" lww
  first=(siblings $PORT_S s) second=(lww $PORT_L l)
  if (( r % 2 == 0 )); then first=(lww $PORT_L l) second=(siblings $PORT_S s); fi
  for side in first second; do
    declare -n x=$side
    run "put ${x[0]}" "${x[1]}" --table "${x[2]}put$r" --ratio 0:0:1 --keys 100000000 --seed "$r"
  done
  for side in first second; do
    declare -n x=$side
    run "get ${x[0]}" "${x[1]}" --table "${x[2]}get" --workload read --keys 100000 --seed "$r"
  done
  for side in first second; do
    declare -n x=$side
    run "rmw ${x[0]}" "${x[1]}" --table "${x[2]}rmw" --ratio 0:0:0:1 --keys 100000 --seed "$r"
  done
done

echo
echo "| test | siblings ops/s | lww ops/s | siblings / lww |"
echo "|---|---:|---:|---:|"
for t in put get rmw; do
  awk -v t="$t" '$1 == t && $2 == "siblings" {s += $3; ns++}
                 $1 == t && $2 == "lww" {l += $3; nl++}
                 END {printf "| %s | %.0f | %.0f | %.2f |\n", t, s / ns, l / nl, (s / ns) / (l / nl)}' \
    "$TMP/results"
done
