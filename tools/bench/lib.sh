# lib.sh: helpers shared by the benchmark scripts (sourced, not run).
# Every process a script starts is recorded with bench_track and stopped by
# bench_cleanup, by its PID only.

BENCH_PIDS=()

# The real interpreter, resolved once (version-manager shims cost ~0.2 s a call).
PYTHON=${PYTHON:-$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)}

bench_log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
bench_die() { bench_log "error: $*"; exit 1; }

# A TCP port free on 127.0.0.1 right now.
bench_free_port() {
  "$PYTHON" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# bench_wait_port HOST PORT SECONDS PID: waits until HOST:PORT accepts a
# connection; fails early if PID exits.
bench_wait_port() {
  local host=$1 port=$2 secs=$3 pid=$4 i
  for ((i = 0; i < secs * 10; i++)); do
    if ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    if (exec 3<>"/dev/tcp/$host/$port") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  return 1
}

bench_track() { BENCH_PIDS+=("$1"); }

# Stops the tracked processes (TERM, then KILL after 10 s).
bench_cleanup() {
  local pid i
  for pid in "${BENCH_PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || continue
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  BENCH_PIDS=()
}

# Resident set size of PID in KiB (VmRSS from /proc/PID/status).
bench_rss_kib() {
  awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"
}

# bench_json FILE PATH: one value of a JSON file, PATH like "total.ops_per_sec".
bench_json() {
  "$PYTHON" - "$1" "$2" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for k in sys.argv[2].split("."):
    v = v[k]
print(v)
PY
}

# bench_redis_csv FILE TEST FIELD: from redis-benchmark --csv output, the
# FIELD (rps, p50_latency_ms, p99_latency_ms, ...) of TEST (SET, GET).
bench_redis_csv() {
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import csv, sys
rows = list(csv.reader(open(sys.argv[1])))
head = rows[0]
for r in rows[1:]:
    if r and r[0] == sys.argv[2]:
        print(r[head.index(sys.argv[3])])
        sys.exit(0)
sys.exit("no %s in %s" % (sys.argv[2], sys.argv[1]))
PY
}

# bench_db_bench FILE NAME FIELD: from db_bench --histogram=1 output, the
# ops/sec ("ops"), P50 or P99 (micros) of benchmark NAME.
bench_db_bench() {
  "$PYTHON" - "$1" "$2" "$3" <<'PY'
import re, sys
text = open(sys.argv[1]).read()
name, field = sys.argv[2], sys.argv[3]
m = re.search(r"^%s\s*:\s*[\d.]+ micros/op (\d+) ops/sec" % re.escape(name), text, re.M)
if not m:
    sys.exit("no %s in %s" % (name, sys.argv[1]))
if field == "ops":
    print(m.group(1)); sys.exit(0)
p = re.search(r"^Percentiles:.*\b%s: ([\d.]+)" % re.escape(field), text[m.end():], re.M)
print(p.group(1) if p else "n/a")
PY
}

# Formatting: bench_int 12345.6 -> 12,346 ; bench_ratio A B -> A/B, 2 decimals.
bench_int() { "$PYTHON" -c 'import sys; print("{:,.0f}".format(float(sys.argv[1])))' "$1"; }
bench_ratio() {
  "$PYTHON" -c 'import sys; a,b=map(float,sys.argv[1:3]); print("%.2f" % (a/b) if b else "n/a")' "$1" "$2"
}
bench_ms_to_us() { "$PYTHON" -c 'import sys; print("%.0f" % (float(sys.argv[1])*1000))' "$1"; }
bench_mib() { "$PYTHON" -c 'import sys; print("%.1f" % (float(sys.argv[1])/1024))' "$1"; }
