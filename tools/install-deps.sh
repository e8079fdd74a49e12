#!/usr/bin/env bash
# The one list of Debian packages cellar needs to build, test and benchmark.
# Used by the README's commands and by .ci/run. Safe to run again.
set -euo pipefail

PACKAGES=(
  build-essential cmake pkg-config
  libuv1-dev libprotobuf-c-dev protobuf-c-compiler librocksdb-dev
  libcunit1-dev libmurmurhash-dev libreadline-dev
  clang libclang-rt-14-dev            # libFuzzer and sanitizer runtimes
  rocksdb-tools redis-server redis-tools   # reference runs for benchmarks
  python3 procps
  nftables iproute2                   # docker fault tests: partitions
)

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi
echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
