#!/usr/bin/env bash
# Installs, builds and runs every test of cellar:
#   1. the normal build: every CUnit suite and every loopback test (ctest);
#   2. the same suites built with AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. the libFuzzer targets over every decoder (client frames and messages,
#      gossip and schema sync), bounded in time;
#   4. the two-datacenter Docker topology with kill, pause and partition
#      faults (tests/docker/run.sh; skipped when no Docker daemon runs).
# Environment: FUZZ_SECONDS (default 60, per target), SKIP_SANITIZE=1, SKIP_FUZZ=1,
# SKIP_DOCKER=1.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
jobs=$(nproc)
status=0

echo "== build (RelWithDebInfo)"
bash tools/build.sh build
echo "== tests"
ctest --test-dir build --output-on-failure -j1 || status=1

if [ "${SKIP_SANITIZE:-0}" != 1 ]; then
  echo "== build (ASan + UBSan)"
  bash tools/build.sh build-asan -DCELLAR_SANITIZE=ON
  echo "== tests under ASan + UBSan"
  ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    ctest --test-dir build-asan --output-on-failure -j1 || status=1
fi

if [ "${SKIP_FUZZ:-0}" != 1 ]; then
  secs=${FUZZ_SECONDS:-60}
  echo "== fuzz (libFuzzer, ${secs}s per target)"
  CC=clang cmake -S . -B build-fuzz -DCELLAR_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  cmake --build build-fuzz --target fuzz_frame fuzz_peer fuzz_dvv fuzz_hints -j"$jobs"
  # fuzz_frame: client frames and messages; fuzz_peer: gossip and schema sync;
  # fuzz_dvv: version sets and client contexts (decode, re-encode, merge laws);
  # fuzz_hints: hint keys and values as read back from RocksDB, and replay
  for t in frame:corpus peer:corpus-peer dvv:corpus-dvv hints:corpus-hints; do
    name=${t%%:*}
    seeds=${t#*:}
    run=build-fuzz/corpus-run-$name
    rm -rf "$run" && mkdir -p "$run"
    cp tests/fuzz/"$seeds"/* "$run"/ 2>/dev/null || true
    if build-fuzz/fuzz_"$name" -max_total_time="$secs" -rss_limit_mb=2048 \
         -artifact_prefix=build-fuzz/"$name"- "$run" 2>build-fuzz/fuzz-"$name".log; then
      grep -E '^Done' build-fuzz/fuzz-"$name".log | tail -1 || true
      echo "fuzz_$name: no crash, leak or sanitizer report"
    else
      tail -40 build-fuzz/fuzz-"$name".log
      echo "fuzz_$name: FAILED (artifact in build-fuzz/)"
      status=1
    fi
  done
fi

if [ "${SKIP_DOCKER:-0}" != 1 ]; then
  echo "== docker topology fault test (skips itself without a Docker daemon)"
  if bash tests/docker/run.sh; then :; else status=1; fi
fi

if [ $status -eq 0 ]; then echo "== all tests passed"; else echo "== SOME TESTS FAILED"; fi
exit $status
