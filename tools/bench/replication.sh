#!/usr/bin/env bash
# replication.sh: the replication figures of issue 4, measured on this machine
# in one run:
#   (a) one cellard, keyspace SimpleStrategy:1, writes at ONE: the reference;
#   (b) three cellards on 127.0.0.1-3, keyspace SimpleStrategy:3, writes at
#       QUORUM, same bench settings: throughput as a ratio of (a);
#   (c) YCSB A and B at QUORUM on the three nodes (zipfian keys, loaded
#       first): ops/s and p50/p99/p99.9 at full speed, then paced at half the
#       measured peak (cellar-bench --rate);
#   (d) kill -9 of one node in the middle of a YCSB A QUORUM run: failed
#       requests, and latency after the kill (cellar-bench's SIGUSR1 mark
#       splits the run at the kill; per-second p99 from --progress-json).
# cellar-bench is given the three nodes and connects to node 1 (the first
# reachable host of --hosts); (d) kills another node, so that the node the
# client connected to stays up. With RF 3 on three nodes every node is a
# replica of every key, so libcellar's default token-aware routing keeps
# every request on node 1; the YCSB runs of (c) use cellar-bench --spread
# (YCSB_ROUTING) so that the three nodes share the coordination, as many
# clients would. (b) and (d) keep the default routing.
# Prints a Markdown table on stdout. Stops only the processes it started (by
# PID) and removes its temp dir (data dirs and, unless RESULTS_DIR is given,
# the raw outputs).
#
# Usage: tools/bench/replication.sh      (from anywhere; about 2-3 minutes)
# Settings (environment):
#   BUILD=build              build directory holding cellard and cellar-bench
#   CELLARD, CELLAR_BENCH    binaries (default $BUILD/cellard, $BUILD/cellar-bench)
#   DURATION=10              seconds of each run of (a), (b), (c)
#   KILL_DURATION=20         seconds of the run of (d); the kill is at half
#   KILL_NODE=3              node killed in (d) (2 or 3: node 1 coordinates)
#   KILL_RATE=half           (d) paced at half the YCSB A peak, or "peak"
#                            (closed loop), or a number of ops/s
#   KEYS=100000  CONNECTIONS=50  PIPELINE=1  KEY_SIZE=16  VALUE_SIZE=100
#   RESULTS_DIR=DIR          keep logs, JSON and results.md there (default: a
#                            temp dir, removed at the end like the data dirs
#                            unless the script fails)
#   CELLARD_FLAGS=""         extra flags for every cellard
#   YCSB_ROUTING=spread      cellar-bench --routing of the (c) runs
#                            (token-aware: all through node 1)
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${BUILD:-$ROOT/build}
CELLARD=${CELLARD:-$BUILD/cellard}
CELLAR_BENCH=${CELLAR_BENCH:-$BUILD/cellar-bench}
DURATION=${DURATION:-10}
KILL_DURATION=${KILL_DURATION:-20}
KILL_NODE=${KILL_NODE:-3}
KILL_RATE=${KILL_RATE:-half}
KEYS=${KEYS:-100000}
CONNECTIONS=${CONNECTIONS:-50}
PIPELINE=${PIPELINE:-1}
KEY_SIZE=${KEY_SIZE:-16}
VALUE_SIZE=${VALUE_SIZE:-100}
CELLARD_FLAGS=${CELLARD_FLAGS:-}
YCSB_ROUTING=${YCSB_ROUTING:-spread}

for b in "$CELLARD" "$CELLAR_BENCH"; do
  [ -x "$b" ] || bench_die "$b not found or not executable (build first, or set CELLARD/CELLAR_BENCH)"
done
command -v python3 >/dev/null || bench_die "python3 not found"
case "$KILL_NODE" in 2 | 3) ;; *) bench_die "KILL_NODE must be 2 or 3 (the client connects to node 1)" ;; esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cellar-replication.XXXXXX")
# Raw outputs are kept only when RESULTS_DIR is given; the temp dir goes.
KEEP_RESULTS=${RESULTS_DIR:+1}
RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
mkdir -p "$RESULTS_DIR"
on_exit() {
  bench_cleanup
  if [ -n "$KEEP_RESULTS" ] || [ "$1" = 0 ]; then
    rm -rf "$WORK"             # the results are elsewhere, or not wanted
  else
    rm -rf "$WORK/single" "$WORK/node1" "$WORK/node2" "$WORK/node3"
    bench_log "failed: outputs kept in $RESULTS_DIR"
  fi
}
trap 'on_exit $?' EXIT
trap 'exit 130' INT TERM
bench_log "work dir $WORK, results in $RESULTS_DIR"
START=$(date +%s)

# A port P such that P (clients) and P+1 (peers) are free on 127.0.0.1..N.
free_port_pair() {
  "$PYTHON" - "$1" <<'PY'
import random, socket, sys
n = int(sys.argv[1])
for _ in range(200):
    p = random.randint(20000, 60000)
    socks = []
    try:
        for i in range(1, n + 1):
            for q in (p, p + 1):
                s = socket.socket()
                socks.append(s)
                s.bind(("127.0.0.%d" % i, q))
        print(p)
        sys.exit(0)
    except OSError:
        pass
    finally:
        for s in socks:
            s.close()
sys.exit("no free port pair found")
PY
}

# untrack PID: forget a process that is already dead and reaped, so that
# bench_cleanup never signals a PID the system may have given to another.
untrack() {
  local keep=() p
  for p in "${BENCH_PIDS[@]}"; do [ "$p" = "$1" ] || keep+=("$p"); done
  BENCH_PIDS=("${keep[@]}")
}

# start_node NAME ADDR PORT [SEEDS]: starts a cellard, waits until its log says
# the node is normal (or is the first of a new ring), sets NODE_PID.
start_node() {
  local name=$1 addr=$2 port=$3 seeds=${4:-} i
  local log="$RESULTS_DIR/$name.log"
  mkdir -p "$WORK/$name"
  local args=(--listen "$addr:$port" --peer-listen "$addr:$((port + 1))"
    --data-dir "$WORK/$name")
  [ -n "$seeds" ] && args+=(--seeds "$seeds")
  # shellcheck disable=SC2086
  "$CELLARD" "${args[@]}" $CELLARD_FLAGS >"$log" 2>&1 &
  NODE_PID=$!
  bench_track "$NODE_PID"
  for ((i = 0; i < 600; i++)); do
    grep -qsE 'cluster: (normal|first node)' "$log" && break
    kill -0 "$NODE_PID" 2>/dev/null || bench_die "$name exited (see $log)"
    sleep 0.1
  done
  grep -qsE 'cluster: (normal|first node)' "$log" ||
    bench_die "$name not normal after 60 s (see $log)"
  bench_wait_port "$addr" "$port" 30 "$NODE_PID" ||
    bench_die "$name does not accept clients on $addr:$port (see $log)"
  bench_log "$name pid $NODE_PID on $addr:$port is up"
}

# cellar_bench NAME HOSTS ARGS...: one cellar-bench run, JSON kept as NAME.json,
# progress lines as NAME.log.
cellar_bench() {
  local name=$1 hosts=$2
  shift 2
  bench_log "cellar-bench $name: $*"
  "$CELLAR_BENCH" --hosts "$hosts" --key-size "$KEY_SIZE" \
    --value-size "$VALUE_SIZE" --connections "$CONNECTIONS" \
    --pipeline "$PIPELINE" --keys "$KEYS" --json "$@" \
    >"$RESULTS_DIR/$name.json" 2>"$RESULTS_DIR/$name.log" ||
    bench_die "cellar-bench $name failed (see $RESULTS_DIR/$name.log)"
  local errs
  errs=$(bench_json "$RESULTS_DIR/$name.json" total.errors)
  [ "$errs" = 0 ] || bench_log "warning: $name had $errs errors"
}

# "node n, ..." requests of run NAME per node, from its JSON
ycsb_spread() {
  "$PYTHON" -c 'import json, sys
d = json.load(open(sys.argv[1]))
print(", ".join("%s %d" % kv for kv in sorted(d.get("requests_by_node", {}).items())))' "$RESULTS_DIR/$1.json"
}

half() { "$PYTHON" -c 'import sys; print("%.0f" % (float(sys.argv[1]) / 2))' "$1"; }

# ------------------------------------------- (a) one node, RF 1, ONE
PORT1=$(free_port_pair 1)
start_node single 127.0.0.1 "$PORT1"
cellar_bench a_single_one "127.0.0.1:$PORT1" --replication SimpleStrategy:1 \
  --workload write --consistency ONE --duration "$DURATION"
bench_cleanup

# ---------------------------------- (b) three nodes, RF 3, QUORUM writes
PORT=$(free_port_pair 3)
SEED="127.0.0.1:$((PORT + 1))"
declare -A PID
for i in 1 2 3; do
  start_node "node$i" "127.0.0.$i" "$PORT" "$SEED"
  PID[$i]=$NODE_PID
done
HOSTS="127.0.0.1:$PORT,127.0.0.2:$PORT,127.0.0.3:$PORT"
cellar_bench b_three_quorum "$HOSTS" --replication SimpleStrategy:3 \
  --workload write --consistency QUORUM --duration "$DURATION"

# --------------------------------------------- (c) YCSB A and B, QUORUM
# A's run first loads keys 0..KEYS-1 (at QUORUM) so that reads hit.
cellar_bench c_a_peak "$HOSTS" --workload a --consistency QUORUM --load \
  --duration "$DURATION" --routing "$YCSB_ROUTING"
cellar_bench c_b_peak "$HOSTS" --workload b --consistency QUORUM \
  --duration "$DURATION" --routing "$YCSB_ROUTING"
RATE_A=$(half "$(bench_json "$RESULTS_DIR/c_a_peak.json" total.ops_per_sec)")
RATE_B=$(half "$(bench_json "$RESULTS_DIR/c_b_peak.json" total.ops_per_sec)")
cellar_bench c_a_half "$HOSTS" --workload a --consistency QUORUM \
  --duration "$DURATION" --rate "$RATE_A" --routing "$YCSB_ROUTING"
cellar_bench c_b_half "$HOSTS" --workload b --consistency QUORUM \
  --duration "$DURATION" --rate "$RATE_B" --routing "$YCSB_ROUTING"

# ------------------------------ (d) kill -9 of a node during YCSB A, QUORUM
case "$KILL_RATE" in
  half) KILL_ARGS=(--rate "$RATE_A"); KILL_LOAD="$RATE_A ops/s (half the A peak)" ;;
  peak) KILL_ARGS=(); KILL_LOAD="full speed (closed loop)" ;;
  *) KILL_ARGS=(--rate "$KILL_RATE"); KILL_LOAD="$KILL_RATE ops/s" ;;
esac
KILL_AT=$(( KILL_DURATION / 2 ))
bench_log "cellar-bench d_kill: --workload a --consistency QUORUM --duration $KILL_DURATION ${KILL_ARGS[*]} (kill -9 node$KILL_NODE at ${KILL_AT} s)"
"$CELLAR_BENCH" --hosts "$HOSTS" --key-size "$KEY_SIZE" --value-size "$VALUE_SIZE" \
  --connections "$CONNECTIONS" --pipeline "$PIPELINE" --keys "$KEYS" --json \
  --progress-json --workload a --consistency QUORUM --duration "$KILL_DURATION" \
  "${KILL_ARGS[@]}" >"$RESULTS_DIR/d_kill.json" 2>"$RESULTS_DIR/d_kill.log" &
BENCH_PID=$!
bench_track "$BENCH_PID"
# one progress line per second of the run: kill after KILL_AT of them
for ((i = 0; i < (KILL_AT + 30) * 10; i++)); do
  n=$(grep -c '"phase":"run"' "$RESULTS_DIR/d_kill.log" || true)
  [ "$n" -ge "$KILL_AT" ] && break
  kill -0 "$BENCH_PID" 2>/dev/null || break
  sleep 0.1
done
kill -0 "$BENCH_PID" 2>/dev/null || bench_die "cellar-bench d_kill ended early (see $RESULTS_DIR/d_kill.log)"
VICTIM=${PID[$KILL_NODE]}
kill -KILL "$VICTIM"
kill -USR1 "$BENCH_PID"
wait "$VICTIM" 2>/dev/null || true
untrack "$VICTIM"
bench_log "killed node$KILL_NODE (pid $VICTIM) with SIGKILL"
BENCH_RC=0
wait "$BENCH_PID" || BENCH_RC=$?
untrack "$BENCH_PID"
[ "$BENCH_RC" = 0 ] || bench_log "warning: cellar-bench d_kill exited with $BENCH_RC (see $RESULTS_DIR/d_kill.log)"
bench_cleanup

# -------------------------------------------------------------- report
J=$RESULTS_DIR
jv() { bench_json "$J/$1.json" "$2"; }
lat3() { printf '%s / %s / %s' "$(jv "$1" "$2.latency_us.p50")" "$(jv "$1" "$2.latency_us.p99")" "$(jv "$1" "$2.latency_us.p999")"; }
# ycsb_row LABEL NAME TARGET
ycsb_row() {
  local late=""
  if [ "$(jv "$2" rate)" != "0.0" ]; then
    late="$(jv "$2" pacing.late_starts) late starts"
  fi
  printf '| %s | %s | %s | %s | %s | %s | %s | %s |\n' "$1" "$(bench_int "$(jv "$2" total.ops_per_sec)")" \
    "$(lat3 "$2" total)" "$(lat3 "$2" read)" "$(lat3 "$2" write)" \
    "$(jv "$2" total.errors)" "${late:-}" "$3"
}
# the kill run's figures, from its JSON and its per-second progress lines
KILL_REPORT=$("$PYTHON" - "$J/d_kill.json" "$J/d_kill.log" "$KILL_DURATION" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
duration = float(sys.argv[3])
secs = []
for line in open(sys.argv[2]):
    line = line.strip()
    if line.startswith("{"):
        try:
            p = json.loads(line)
        except ValueError:
            continue
        if p.get("phase") == "run":
            secs.append(p)
mark = d.get("mark_at")
def codes(e):
    return ", ".join("%s %d" % (k, v) for k, v in sorted(e.items())) or "none"
if mark is None:
    print("| mark | the kill was not marked (see d_kill.log) |")
    sys.exit(0)
b, a = d["before_mark"], d["after_mark"]
after = [p for p in secs if p["t"] > mark]
print("| failed requests, whole run | %d (%s) |" % (d["total"]["errors"], codes(d["errors"])))
print("| failed requests after the kill | %d (%s) |" % (a["total"]["errors"], codes(a["errors"])))
print("| ops/s before / after the kill | %.0f / %.0f |" % (b["total"]["ops_per_sec"], a["total"]["ops_per_sec"]))
print("| p50 / p99 / p99.9 before the kill (µs) | %d / %d / %d |" % tuple(b["total"]["latency_us"][k] for k in ("p50", "p99", "p999")))
print("| p50 / p99 / p99.9 after the kill (µs) | %d / %d / %d |" % tuple(a["total"]["latency_us"][k] for k in ("p50", "p99", "p999")))
print("| p99 of each second after the kill, ms (ops done that second) | %s |" % ", ".join(
    ("%.1f (%d)" % (p["total"]["p99"] / 1000.0, p["total"]["ops"]) if p["total"]["ops"]
     else "- (0)") + (" [drain]" if p["t"] > duration + 0.5 else "")
    for p in after))
PY
)

{
  echo "## cellar, replication ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d))"
  echo
  echo "Keys $KEY_SIZE B, values $VALUE_SIZE B, key space $KEYS, $CONNECTIONS connections x $PIPELINE in flight,"
  echo "cellar-bench runs $DURATION s each. Three nodes on 127.0.0.1-3 (one datacenter, one rack),"
  echo "keyspace SimpleStrategy:3; cellar-bench --hosts lists the three nodes and connects to node 1;"
  echo "the YCSB runs use --routing $YCSB_ROUTING (requests per node: $(ycsb_spread c_a_peak))."
  echo "Latencies in µs, seen by the client."
  echo
  A_OPS=$(jv a_single_one total.ops_per_sec)
  B_OPS=$(jv b_three_quorum total.ops_per_sec)
  echo "| writes | ops/s | p50 / p99 / p99.9 | errors | ratio to (a) | target |"
  echo "|---|---:|---:|---:|---:|---:|"
  echo "| (a) 1 node, RF 1, ONE | $(bench_int "$A_OPS") | $(lat3 a_single_one write) | $(jv a_single_one total.errors) | 1.00 | reference |"
  echo "| (b) 3 nodes, RF 3, QUORUM | $(bench_int "$B_OPS") | $(lat3 b_three_quorum write) | $(jv b_three_quorum total.errors) | **$(bench_ratio "$B_OPS" "$A_OPS")** | ≥ 0.30 |"
  echo
  echo "| YCSB at QUORUM, 3 nodes, zipfian | ops/s | all p50 / p99 / p99.9 | read p50 / p99 / p99.9 | update p50 / p99 / p99.9 | errors | pacing | target |"
  echo "|---|---:|---:|---:|---:|---:|---:|---:|"
  ycsb_row "A (50/50), peak" c_a_peak "stated"
  ycsb_row "A, $RATE_A ops/s (half)" c_a_half "p99 ≤ 2000"
  ycsb_row "B (95/5), peak" c_b_peak "stated"
  ycsb_row "B, $RATE_B ops/s (half)" c_b_half "p99 ≤ 2000"
  echo
  echo "kill -9 of node $KILL_NODE (not the node the client connected to) at $(jv d_kill mark_at 2>/dev/null || echo '?') s of a $KILL_DURATION s YCSB A run at QUORUM, $KILL_LOAD; target: 0 failed requests."
  echo
  echo "| after kill -9 | |"
  echo "|---|---|"
  echo "$KILL_REPORT"
} | tee "$RESULTS_DIR/results.md"

if [ -n "$KEEP_RESULTS" ]; then
  bench_log "done in $(( $(date +%s) - START )) s; raw outputs in $RESULTS_DIR"
else
  bench_log "done in $(( $(date +%s) - START )) s (RESULTS_DIR=... keeps the raw outputs)"
fi
