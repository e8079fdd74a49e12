#!/usr/bin/env bash
# libcellar.so must export exactly the functions declared in
# include/cellar/cellar.h: no internal module (ring_, gossip_, protobuf
# code) leaks into users' namespace, and no API function goes missing.
#   tests/check_exports.sh LIBCELLAR_SO HEADER
set -euo pipefail
lib=$1 header=$2
declared=$(grep -o 'cellar_[a-z_0-9]*(' "$header" | tr -d '(' | sort -u)
exported=$(nm -D --defined-only "$lib" | awk '$2 ~ /^[TtWw]$/ {print $3}' | sed 's/@.*//' | sort -u)
extra=$(comm -13 <(echo "$declared") <(echo "$exported"))
missing=$(comm -23 <(echo "$declared") <(echo "$exported"))
[ -z "$extra" ] || { echo "exported but not in the header:"; echo "$extra"; exit 1; }
[ -z "$missing" ] || { echo "declared but not exported:"; echo "$missing"; exit 1; }
echo "libcellar exports the $(echo "$declared" | wc -l) functions of $(basename "$header")"
