#!/usr/bin/env bash
# repair.sh: the anti-entropy repair figures of issue 6, measured in one run:
# three cellards on 127.0.0.1, keyspace SimpleStrategy:3, ROWS rows loaded at
# QUORUM; node 3 is killed (-9) and ROWS/1000 updates (DIFF_PERMILLE) are
# written at QUORUM while it is down, with hinted handoff turned off (when
# cellard has it), so that node 3 really misses them; node 3 restarts on its
# data, then `cellar-admin repair` runs on node 1 twice: the first repairs,
# the second shows the cost of comparing replicas that agree.
# Printed (Markdown table on stdout): repair time, bytes streamed, the
# differing data (partitions that differed x their size on a replica) and
# what streaming the whole ranges to one replica would have moved. Then a
# mixed workload (QUORUM, WORKLOAD_SECONDS) alone, and again while repairs
# run back to back: the throughput it keeps.
# Stops only the processes it started (by PID); removes its temp dir.
#
# Usage: tools/bench/repair.sh        (ROWS=1000000: about 3-6 minutes here)
# Settings (environment):
#   BUILD=build                 directory holding cellard, cellar-bench, cellar-admin
#   ROWS=1000000                rows loaded
#   DIFF_PERMILLE=1             updates written while node 3 is down, per 1000 rows
#   VALUE_SIZE=100 KEY_SIZE=16  row shape (cellar-bench)
#   CELLARD_FLAGS=""            extra flags for every cellard (e.g.
#                               "--repair-stream-throughput 64MiB")
#   WORKLOAD_SECONDS=15         each of the two workload runs
#   RESULTS_DIR=DIR             keep logs and JSON there (default: temp, removed)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${BUILD:-$ROOT/build}
CELLARD=${CELLARD:-$BUILD/cellard}
CELLAR_BENCH=${CELLAR_BENCH:-$BUILD/cellar-bench}
CELLAR_ADMIN=${CELLAR_ADMIN:-$BUILD/cellar-admin}
ROWS=${ROWS:-1000000}
DIFF_PERMILLE=${DIFF_PERMILLE:-1}
VALUE_SIZE=${VALUE_SIZE:-100}
KEY_SIZE=${KEY_SIZE:-16}
CELLARD_FLAGS=${CELLARD_FLAGS:-}
WORKLOAD_SECONDS=${WORKLOAD_SECONDS:-15}
DIFF=$((ROWS * DIFF_PERMILLE / 1000))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cellar-repair-bench.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
mkdir -p "$RESULTS_DIR"
finish() {
  bench_cleanup
  # a RESULTS_DIR given is outside $WORK and stays
  rm -rf "$WORK"
}
trap finish EXIT

HINTS_OFF=""
if "$CELLARD" --help 2>&1 | grep -q hinted_handoff_enabled; then
  HINTS_OFF="--hinted-handoff-enabled false"
fi

declare -A PORT PID
SEEDS=""
# start_node N: starts node N (data in $WORK/nodeN), waits until it is in the ring.
start_node() {
  local n=$1 i log="$RESULTS_DIR/node$1.log"
  [ -n "${PORT[$n]:-}" ] || PORT[$n]=$(bench_free_port)
  local peer=$((PORT[$n] + 1))
  mkdir -p "$WORK/node$n"
  local from
  from=$( (wc -c <"$log") 2>/dev/null || echo 0)
  # shellcheck disable=SC2086
  "$CELLARD" --listen "127.0.0.1:${PORT[$n]}" --peer-listen "127.0.0.1:$peer" \
    --data-dir "$WORK/node$n" --gossip-interval 250 ${SEEDS:+--seeds "$SEEDS"} \
    $HINTS_OFF $CELLARD_FLAGS >>"$log" 2>&1 &
  PID[$n]=$!
  bench_track "${PID[$n]}"
  for ((i = 0; i < 600; i++)); do
    tail -c +"$((from + 1))" "$log" 2>/dev/null | grep -qsE 'cluster: (normal|first node)|restarting' && break
    kill -0 "${PID[$n]}" 2>/dev/null || bench_die "node$n exited (see $log)"
    sleep 0.1
  done
  bench_wait_port 127.0.0.1 "${PORT[$n]}" 30 "${PID[$n]}" || bench_die "node$n not up (see $log)"
  [ -n "$SEEDS" ] || SEEDS="127.0.0.1:$peer"
  bench_log "node$n pid ${PID[$n]} on 127.0.0.1:${PORT[$n]}"
}

# Waits until node 1's status shows `count` nodes up and normal.
wait_up() {
  local want=$1 i
  for ((i = 0; i < 120; i++)); do
    local up
    up=$("$CELLAR_ADMIN" -h "127.0.0.1:${PORT[1]}" status --json 2>/dev/null |
      "$PYTHON" -c 'import json,sys
d=json.load(sys.stdin); print(sum(1 for m in d.get("members",[]) if m.get("up") and m.get("status")=="normal"))' 2>/dev/null || echo 0)
    [ "$up" = "$want" ] && return 0
    sleep 0.5
  done
  bench_die "node 1 does not see $want nodes up"
}

start_node 1
start_node 2
start_node 3
wait_up 3
H1="127.0.0.1:${PORT[1]}"
H2="127.0.0.1:${PORT[2]}"

bench_log "loading $ROWS rows at QUORUM"
t0=$(date +%s.%N)
"$CELLAR_BENCH" --hosts "$H1,$H2" --keys "$ROWS" --key-size "$KEY_SIZE" \
  --value-size "$VALUE_SIZE" --replication SimpleStrategy:3 --consistency QUORUM \
  --load --workload write --ops 1 --json >"$RESULTS_DIR/load.json" 2>"$RESULTS_DIR/load.log" ||
  bench_die "load failed (see $RESULTS_DIR/load.log)"
t1=$(date +%s.%N)
bench_log "loaded in $(echo "$t1 - $t0" | bc) s"

kill -KILL "${PID[3]}"
wait "${PID[3]}" 2>/dev/null || true
wait_up 2
bench_log "node3 down; $DIFF updates at QUORUM"
"$CELLAR_BENCH" --hosts "$H1,$H2" --keys "$ROWS" --key-size "$KEY_SIZE" \
  --value-size "$VALUE_SIZE" --consistency QUORUM --workload write --ops "$DIFF" \
  --seed 7 --connections 8 --json >"$RESULTS_DIR/diff.json" 2>"$RESULTS_DIR/diff.log" ||
  bench_die "updates failed (see $RESULTS_DIR/diff.log)"
start_node 3
wait_up 3

repair() {
  local name=$1
  bench_log "repair ($name)"
  local a b
  a=$(date +%s.%N)
  "$CELLAR_ADMIN" -h "$H1" --timeout 600000 repair bench --json >"$RESULTS_DIR/$name.json" ||
    bench_die "repair failed (see $RESULTS_DIR/$name.json)"
  b=$(date +%s.%N)
  echo "$b - $a" | bc >"$RESULTS_DIR/$name.wall"
}
repair repair1
repair repair2

# the workload alone, then under repairs run back to back
workload() {
  "$CELLAR_BENCH" --hosts "$H1,$H2" --keys "$ROWS" --key-size "$KEY_SIZE" \
    --value-size "$VALUE_SIZE" --consistency QUORUM --workload mixed --spread \
    --duration "$WORKLOAD_SECONDS" --json >"$RESULTS_DIR/$1.json" 2>"$RESULTS_DIR/$1.log" ||
    bench_die "workload $1 failed (see $RESULTS_DIR/$1.log)"
}
bench_log "workload alone"
workload work_alone
bench_log "workload under repairs"
workload work_repair &
WPID=$!
NREP=0
while kill -0 "$WPID" 2>/dev/null; do
  "$CELLAR_ADMIN" -h "$H1" --timeout 600000 repair bench --json >"$RESULTS_DIR/repair_bg.json" ||
    bench_die "background repair failed"
  NREP=$((NREP + 1))
done
wait "$WPID"
echo "$NREP" >"$RESULTS_DIR/nrep"

"$PYTHON" - "$RESULTS_DIR" "$ROWS" "$DIFF" <<'PY'
import json, sys
d, rows, diff = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def info(n):
    return json.load(open("%s/%s.json" % (d, n)))["info"]
r1, r2 = info("repair1"), info("repair2")
w1 = float(open(d + "/repair1.wall").read()); w2 = float(open(d + "/repair2.wall").read())
rb, rp = int(r1["replica_bytes"]), int(r1["replica_partitions"])
per = rb / rp if rp else 0
parts = int(r1["partitions_differing"])
differing = parts * per
streamed = int(r1["bytes_streamed"])
print("| | first repair (node 3 missed %d updates) | second repair (replicas agree) |" % diff)
print("|---|---:|---:|")
for k, label in [("ranges_compared", "ranges compared"), ("mismatches", "mismatching leaves"),
                 ("partitions_differing", "partitions differing"), ("rows_streamed", "rows streamed"),
                 ("bytes_streamed", "bytes streamed"), ("exchange_bytes", "trees + digest lists (bytes)")]:
    print("| %s | %s | %s |" % (label, format(int(r1[k]), ","), format(int(r2[k]), ",")))
print("| time (node's own count) | %.1f s | %.1f s |" % (int(r1["elapsed_ms"]) / 1e3, int(r2["elapsed_ms"]) / 1e3))
print("| time (cellar-admin wall clock) | %.1f s | %.1f s |" % (w1, w2))
print()
print("Rows: %s; one replica holds %s bytes in %s partitions (%.0f bytes each)." %
      (format(rows, ","), format(rb, ","), format(rp, ","), per))
print("Differing data: %s partitions x %.0f bytes = %s bytes; streamed %s bytes = %.2fx the "
      "differing data, %.4f%% of the %s bytes that streaming the whole ranges to one replica "
      "would move." % (format(parts, ","), per, format(int(differing), ","), format(streamed, ","),
                       streamed / differing if differing else 0, 100.0 * streamed / rb if rb else 0,
                       format(rb, ",")))
def ops(n):
    return json.load(open("%s/%s.json" % (d, n)))["total"]["ops_per_sec"]
a, b = ops("work_alone"), ops("work_repair")
print()
print("Mixed workload at QUORUM (cellar-bench --workload mixed --spread): %s ops/s alone, "
      "%s ops/s while %s repairs ran back to back: %.0f%% kept." %
      (format(int(a), ","), format(int(b), ","), open(d + "/nrep").read().strip(), 100.0 * b / a))
PY
