#!/usr/bin/env bash
# handoff.sh: hint replay rate against the configured throttle (issue 6).
# For each throttle of THROTTLES (KiB/s, 0 = unthrottled): three cellards on
# 127.0.0.1 with --hinted-handoff-throttle T, keyspace SimpleStrategy:3;
# node 3 is killed (kill -9), cellar-bench writes ROWS rows at QUORUM through
# node 1 alone (--routing none: node 1 coordinates every write and keeps a
# hint per write for node 3), node 3 is restarted, and node 1's backlog
# (cellar-admin hints --json) is polled every 0.1 s until it is 0. The rate
# is measured from the first poll that shows the backlog going down to the
# one that shows 0 (so it leaves out the failure detector's time to see node
# 3 up), in hints (rows) per second and MB/s of hint bytes (key + value as
# stored, what the throttle counts); the time from node 3's restart to an
# empty backlog is shown too. Unthrottled, the replay is over within a few
# polls: that row is only a rough figure.
# Prints a Markdown table on stdout. Stops only the processes it started (by
# PID) and removes its temp dir unless it fails.
#
# Usage: tools/bench/handoff.sh            (about 1-2 minutes)
# Settings (environment):
#   BUILD=build                 directory holding cellard, cellar-bench, cellar-admin
#   THROTTLES="1024 4096 0"     hinted_handoff_throttle values to measure
#   ROWS=50000  VALUE_SIZE=100  writes while node 3 is down
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${BUILD:-$ROOT/build}
CELLARD=${CELLARD:-$BUILD/cellard}
CELLAR_BENCH=${CELLAR_BENCH:-$BUILD/cellar-bench}
CELLAR_ADMIN=${CELLAR_ADMIN:-$BUILD/cellar-admin}
THROTTLES=${THROTTLES:-1024 4096 0}
ROWS=${ROWS:-50000}
VALUE_SIZE=${VALUE_SIZE:-100}

for b in "$CELLARD" "$CELLAR_BENCH" "$CELLAR_ADMIN"; do
  [ -x "$b" ] || bench_die "$b not found or not executable (build first)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cellar-handoff.XXXXXX")
trap 'rc=$?; bench_cleanup; if [ $rc = 0 ]; then rm -rf "$WORK"; else bench_log "failed: logs in $WORK"; fi' EXIT
trap 'exit 130' INT TERM

now() { "$PYTHON" -c 'import time; print(time.time())'; }

# json_hints ADDR: "total bytes" of the node's backlog.
json_hints() {
  "$CELLAR_ADMIN" -h "$1" --json hints | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)
print(v["total"], sum(t["bytes"] for t in v["targets"]))'
}

# node_up FROM_ADDR HOST_ID: 1 when FROM sees HOST_ID up.
node_up() {
  "$CELLAR_ADMIN" -h "$1" --json status | "$PYTHON" -c '
import json, sys
v = json.load(sys.stdin)
print(sum(1 for m in v["members"] if m["host_id"] == sys.argv[1] and m["up"]))' "$2"
}

declare -A PID PORT PPORT
start() {   # start I THROTTLE SEEDS
  local i=$1 log="$WORK/node$1.log"
  mkdir -p "$WORK/node$i"
  "$CELLARD" --listen "127.0.0.1:${PORT[$i]}" --peer-listen "127.0.0.1:${PPORT[$i]}" \
    --data-dir "$WORK/node$i" --seeds "$3" --gossip-interval 200 \
    --hinted-handoff-throttle "$2" >>"$log" 2>&1 &
  PID[$i]=$!
  bench_track "${PID[$i]}"
  bench_wait_port 127.0.0.1 "${PORT[$i]}" 30 "${PID[$i]}" || bench_die "node $i did not start ($log)"
}

echo "| hinted_handoff_throttle | hints | hint bytes | restart to backlog 0 | replay time | rows/s | MB/s | MB/s / throttle |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for T in $THROTTLES; do
  rm -rf "$WORK"/node*
  for i in 1 2 3; do PORT[$i]=$(bench_free_port); PPORT[$i]=$(bench_free_port); done
  SEEDS="127.0.0.1:${PPORT[1]}"
  for i in 1 2 3; do start "$i" "$T" "$SEEDS"; sleep 1; done
  N1="127.0.0.1:${PORT[1]}"
  "$CELLAR_BENCH" --hosts "$N1" --routing none --keyspace hb --replication SimpleStrategy:3 \
    --workload write --ops 1 --consistency ALL >/dev/null 2>&1 || true
  H3=$("$CELLAR_ADMIN" -h "127.0.0.1:${PORT[3]}" --json info | "$PYTHON" -c \
    'import json,sys; print(json.load(sys.stdin)["info"]["node.id"])')
  kill -KILL "${PID[3]}"; wait "${PID[3]}" 2>/dev/null || true
  for ((k = 0; k < 300; k++)); do [ "$(node_up "$N1" "$H3")" = 0 ] && break; sleep 0.2; done
  bench_log "throttle $T KiB/s: writing $ROWS rows at QUORUM with node 3 down"
  "$CELLAR_BENCH" --hosts "$N1" --routing none --keyspace hb --workload write --ops "$ROWS" \
    --keys "$ROWS" --value-size "$VALUE_SIZE" --consistency QUORUM --connections 16 \
    --pipeline 8 >"$WORK/bench-$T.txt" 2>&1
  read -r HINTS BYTES < <(json_hints "$N1")
  start 3 "$T" "$SEEDS"
  TR=$(now)
  T0=
  for ((k = 0; k < 3000; k++)); do
    read -r LEFT _ < <(json_hints "$N1")
    if [ -z "$T0" ] && [ "$LEFT" -lt "$HINTS" ]; then T0=$(now); FIRST=$LEFT; fi
    [ "$LEFT" = 0 ] && break
    sleep 0.1
  done
  T1=$(now)
  [ "$LEFT" = 0 ] || bench_die "backlog not 0 after 600 s at throttle $T"
  "$PYTHON" - "$T" "$HINTS" "$BYTES" "$FIRST" "$T0" "$T1" "$TR" <<'PY'
import sys
t, hints, nbytes, first, t0, t1, tr = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5]), float(sys.argv[6]), float(sys.argv[7])
# from the first poll that saw the backlog shrink: `first` hints were left
secs = max(t1 - t0, 0.2)
per = nbytes / hints if hints else 0
rows = first / secs
mb = first * per / secs / 1e6
lim = int(t) * 1024 / 1e6
print(f"| {t + ' KiB/s' if lim else 'unthrottled (rough)'} | {hints} | {nbytes / 1e6:.1f} MB | "
      f"{t1 - tr:.1f} s | {secs:.1f} s | {rows:,.0f} | {mb:.2f} | "
      f"{f'{mb / lim:.2f}' if lim else '-'} |")
PY
  bench_cleanup
done
