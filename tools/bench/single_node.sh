#!/usr/bin/env bash
# single_node.sh: the numbers cellar reports for one node, measured on this
# machine in one run, next to the references:
#   - put/get, 50 connections, 1 request in flight each: cellar-bench against
#     a cellard vs redis-benchmark against a redis-server (no persistence);
#   - put/get, 50 connections, 16 in flight each (pipelined): cellar-bench vs
#     db_bench fillrandom/readrandom (RocksDB embedded, no network: the
#     ceiling of what cellar's storage can do);
#   - cellard's RSS right after start and after loading RSS_ROWS rows.
# Prints a Markdown table on stdout; logs and raw outputs go to $RESULTS_DIR.
#
# Usage: tools/bench/single_node.sh      (from anywhere; about 2-3 minutes)
# Settings (environment):
#   BUILD=build              build directory holding cellard and cellar-bench
#   CELLARD, CELLAR_BENCH    binaries (default $BUILD/cellard, $BUILD/cellar-bench)
#   DURATION=10              seconds of each cellar-bench run
#   KEYS=100000              key space of the put/get runs (redis -r too)
#   CONNECTIONS=50  PIPELINE=16  KEY_SIZE=16  VALUE_SIZE=100
#   REDIS_REQUESTS=1000000   requests per redis-benchmark test
#   DB_BENCH_NUM=1000000     db_bench --num
#   DB_BENCH_THREADS=1       db_bench --threads
#   RSS_ROWS=1000000         rows loaded before the second RSS reading
#   REDIS_PIPELINED=1        also run redis-benchmark -P $PIPELINE (extra rows)
#   RESULTS_DIR=(temp dir)   where logs, JSON and results.md are kept
#   CELLARD_FLAGS=""         extra flags for cellard (e.g. "--workers 2")
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
# shellcheck source=lib.sh
. "$HERE/lib.sh"

BUILD=${BUILD:-$ROOT/build}
CELLARD=${CELLARD:-$BUILD/cellard}
CELLAR_BENCH=${CELLAR_BENCH:-$BUILD/cellar-bench}
REDIS_SERVER=${REDIS_SERVER:-redis-server}
REDIS_BENCHMARK=${REDIS_BENCHMARK:-redis-benchmark}
DB_BENCH=${DB_BENCH:-db_bench}
DURATION=${DURATION:-10}
KEYS=${KEYS:-100000}
CONNECTIONS=${CONNECTIONS:-50}
PIPELINE=${PIPELINE:-16}
KEY_SIZE=${KEY_SIZE:-16}
VALUE_SIZE=${VALUE_SIZE:-100}
REDIS_REQUESTS=${REDIS_REQUESTS:-1000000}
DB_BENCH_NUM=${DB_BENCH_NUM:-1000000}
DB_BENCH_THREADS=${DB_BENCH_THREADS:-1}
RSS_ROWS=${RSS_ROWS:-1000000}
REDIS_PIPELINED=${REDIS_PIPELINED:-1}
CELLARD_FLAGS=${CELLARD_FLAGS:-}

for b in "$CELLARD" "$CELLAR_BENCH"; do
  [ -x "$b" ] || bench_die "$b not found or not executable (build first, or set CELLARD/CELLAR_BENCH)"
done
for b in "$REDIS_SERVER" "$REDIS_BENCHMARK" "$DB_BENCH" python3; do
  command -v "$b" >/dev/null || bench_die "$b not found (tools/install-deps.sh installs it)"
done

WORK=$(mktemp -d "${TMPDIR:-/tmp}/cellar-single-node.XXXXXX")
RESULTS_DIR=${RESULTS_DIR:-$WORK/results}
mkdir -p "$RESULTS_DIR"
trap 'bench_cleanup; rm -rf "$WORK/cellar-data" "$WORK/redis" "$WORK/db_bench"; rmdir "$WORK" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
bench_log "work dir $WORK, results in $RESULTS_DIR"
START=$(date +%s)

# ------------------------------------------------------------- cellard
CPORT=$(bench_free_port)
mkdir -p "$WORK/cellar-data"
# shellcheck disable=SC2086
"$CELLARD" --listen "127.0.0.1:$CPORT" --data-dir "$WORK/cellar-data" \
  --log-level warn $CELLARD_FLAGS >"$RESULTS_DIR/cellard.log" 2>&1 &
CPID=$!
bench_track "$CPID"
bench_wait_port 127.0.0.1 "$CPORT" 30 "$CPID" ||
  bench_die "cellard did not start on 127.0.0.1:$CPORT (see $RESULTS_DIR/cellard.log)"
sleep 1
RSS_IDLE=$(bench_rss_kib "$CPID")
bench_log "cellard pid $CPID on port $CPORT, idle RSS $RSS_IDLE KiB"

# cellar_bench NAME ARGS...: one cellar-bench run, JSON kept as NAME.json.
cellar_bench() {
  local name=$1
  shift
  bench_log "cellar-bench $name: $*"
  "$CELLAR_BENCH" --hosts "127.0.0.1:$CPORT" --key-size "$KEY_SIZE" \
    --value-size "$VALUE_SIZE" --json "$@" \
    >"$RESULTS_DIR/$name.json" 2>"$RESULTS_DIR/$name.log" ||
    bench_die "cellar-bench $name failed (see $RESULTS_DIR/$name.log)"
  local errs
  errs=$(bench_json "$RESULTS_DIR/$name.json" total.errors)
  [ "$errs" = 0 ] || bench_log "warning: $name had $errs errors"
}

cellar_bench put_p1 --connections "$CONNECTIONS" --pipeline 1 --keys "$KEYS" \
  --workload write --duration "$DURATION"
cellar_bench get_p1 --connections "$CONNECTIONS" --pipeline 1 --keys "$KEYS" \
  --workload read --duration "$DURATION" --load
cellar_bench put_pipe --connections "$CONNECTIONS" --pipeline "$PIPELINE" \
  --keys "$KEYS" --workload write --duration "$DURATION"
cellar_bench get_pipe --connections "$CONNECTIONS" --pipeline "$PIPELINE" \
  --keys "$KEYS" --workload read --duration "$DURATION"
# the RSS load goes to its own table; its load phase is timed as well
cellar_bench load_rss --connections "$CONNECTIONS" --pipeline "$PIPELINE" \
  --keys "$RSS_ROWS" --table rss --workload write --load --ops 1
sleep 1
RSS_LOADED=$(bench_rss_kib "$CPID")
bench_log "cellard RSS after $RSS_ROWS rows: $RSS_LOADED KiB"
bench_cleanup

# --------------------------------------------------------------- redis
RPORT=$(bench_free_port)
mkdir -p "$WORK/redis"
"$REDIS_SERVER" --port "$RPORT" --bind 127.0.0.1 --save "" --appendonly no \
  --dir "$WORK/redis" --daemonize no >"$RESULTS_DIR/redis.log" 2>&1 &
RPID=$!
bench_track "$RPID"
bench_wait_port 127.0.0.1 "$RPORT" 30 "$RPID" ||
  bench_die "redis-server did not start (see $RESULTS_DIR/redis.log)"
sleep 1
REDIS_RSS_IDLE=$(bench_rss_kib "$RPID")

redis_bench() {
  local name=$1 depth=$2
  bench_log "redis-benchmark $name: -c $CONNECTIONS -P $depth -n $REDIS_REQUESTS"
  "$REDIS_BENCHMARK" -h 127.0.0.1 -p "$RPORT" -c "$CONNECTIONS" -P "$depth" \
    -t set,get -d "$VALUE_SIZE" -r "$KEYS" -n "$REDIS_REQUESTS" --csv \
    >"$RESULTS_DIR/$name.csv" 2>"$RESULTS_DIR/$name.log" ||
    bench_die "redis-benchmark failed (see $RESULTS_DIR/$name.log)"
}
redis_bench redis_p1 1
[ "$REDIS_PIPELINED" = 1 ] && redis_bench redis_pipe "$PIPELINE"
bench_cleanup

# ------------------------------------------------------------ db_bench
bench_log "db_bench fillrandom,readrandom --num=$DB_BENCH_NUM --threads=$DB_BENCH_THREADS"
"$DB_BENCH" --benchmarks=fillrandom,readrandom --key_size="$KEY_SIZE" \
  --value_size="$VALUE_SIZE" --num="$DB_BENCH_NUM" \
  --threads="$DB_BENCH_THREADS" --histogram=1 --db="$WORK/db_bench" \
  >"$RESULTS_DIR/db_bench.txt" 2>&1 ||
  bench_die "db_bench failed (see $RESULTS_DIR/db_bench.txt)"

# -------------------------------------------------------------- report
J=$RESULTS_DIR
c_ops() { bench_json "$J/$1.json" "$2.ops_per_sec"; }
c_lat() { bench_json "$J/$1.json" "$2.latency_us.$3"; }
r_ops() { bench_redis_csv "$J/$1.csv" "$2" rps; }
r_lat() { bench_ms_to_us "$(bench_redis_csv "$J/$1.csv" "$2" "$3_latency_ms")"; }
d_ops() { bench_db_bench "$J/db_bench.txt" "$1" ops; }
d_lat() { bench_db_bench "$J/db_bench.txt" "$1" "$2"; }

# row LABEL CELLAR_OPS C_P50 C_P99 REF_NAME REF_OPS R_P50 R_P99
row() {
  printf '| %s | %s | %s / %s | %s | %s | %s / %s | %s |\n' "$1" \
    "$(bench_int "$2")" "$3" "$4" "$5" "$(bench_int "$6")" "$7" "$8" \
    "$(bench_ratio "$2" "$6")"
}

{
  echo "## cellar, single node ($(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ *//'), $(date -u +%Y-%m-%d))"
  echo
  echo "Keys $KEY_SIZE B, values $VALUE_SIZE B, key space $KEYS, $CONNECTIONS connections;"
  echo "cellar-bench runs $DURATION s each; redis-benchmark -n $REDIS_REQUESTS; db_bench --num=$DB_BENCH_NUM --threads=$DB_BENCH_THREADS."
  echo "Latencies in µs (cellar and redis: client-observed round trip; db_bench: one embedded call)."
  echo
  echo "| test | cellar ops/s | cellar p50 / p99 | reference | ref ops/s | ref p50 / p99 | cellar / ref |"
  echo "|---|---:|---:|---|---:|---:|---:|"
  row "put, depth 1" "$(c_ops put_p1 write)" "$(c_lat put_p1 write p50)" "$(c_lat put_p1 write p99)" \
    "redis SET -P 1" "$(r_ops redis_p1 SET)" "$(r_lat redis_p1 SET p50)" "$(r_lat redis_p1 SET p99)"
  row "get, depth 1" "$(c_ops get_p1 read)" "$(c_lat get_p1 read p50)" "$(c_lat get_p1 read p99)" \
    "redis GET -P 1" "$(r_ops redis_p1 GET)" "$(r_lat redis_p1 GET p50)" "$(r_lat redis_p1 GET p99)"
  row "put, depth $PIPELINE" "$(c_ops put_pipe write)" "$(c_lat put_pipe write p50)" "$(c_lat put_pipe write p99)" \
    "RocksDB fillrandom" "$(d_ops fillrandom)" "$(d_lat fillrandom P50)" "$(d_lat fillrandom P99)"
  row "get, depth $PIPELINE" "$(c_ops get_pipe read)" "$(c_lat get_pipe read p50)" "$(c_lat get_pipe read p99)" \
    "RocksDB readrandom" "$(d_ops readrandom)" "$(d_lat readrandom P50)" "$(d_lat readrandom P99)"
  if [ "$REDIS_PIPELINED" = 1 ]; then
    row "put, depth $PIPELINE" "$(c_ops put_pipe write)" "$(c_lat put_pipe write p50)" "$(c_lat put_pipe write p99)" \
      "redis SET -P $PIPELINE" "$(r_ops redis_pipe SET)" "$(r_lat redis_pipe SET p50)" "$(r_lat redis_pipe SET p99)"
    row "get, depth $PIPELINE" "$(c_ops get_pipe read)" "$(c_lat get_pipe read p50)" "$(c_lat get_pipe read p99)" \
      "redis GET -P $PIPELINE" "$(r_ops redis_pipe GET)" "$(r_lat redis_pipe GET p50)" "$(r_lat redis_pipe GET p99)"
  fi
  echo
  LOAD_RATE=$(bench_json "$J/load_rss.json" load.rows_per_sec)
  echo "| memory | cellard | redis-server |"
  echo "|---|---:|---:|"
  echo "| RSS right after start | $(bench_mib "$RSS_IDLE") MiB | $(bench_mib "$REDIS_RSS_IDLE") MiB |"
  echo "| RSS after loading $(bench_int "$RSS_ROWS") rows | $(bench_mib "$RSS_LOADED") MiB | |"
  echo "| loaded / idle | $(bench_ratio "$RSS_LOADED" "$RSS_IDLE") | |"
  echo
  echo "Loading $(bench_int "$RSS_ROWS") rows ($CONNECTIONS x $PIPELINE in flight): $(bench_int "$LOAD_RATE") rows/s."
  MISSES=$(bench_json "$J/get_p1.json" read.misses)
  [ "$MISSES" = 0 ] || echo "Warning: $MISSES reads of the depth-1 get run found no row."
} | tee "$RESULTS_DIR/results.md"

bench_log "done in $(( $(date +%s) - START )) s; raw outputs in $RESULTS_DIR"
