#!/bin/bash
# SPDX-License-Identifier: MIT
# Thread scaling on a many-core machine: each allocator in turn, 3 rounds.
# Usage: copy larson, bench_random_mixed, bench_producer_consumer (build/bench)
# and lib/ (libhakmem.so and the peers' .so files) beside this script; OUT=dir.
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
R="$OUT/results.txt"
{ nproc; lscpu | grep -E "Model name|L2|L3"; ldd --version | head -1; uname -r; } > "$OUT/machine.txt" 2>&1
libs="hakmem:lib/libhakmem.so glibc: mimalloc:lib/libmimalloc.so.2 jemalloc:lib/libjemalloc.so.2 tcmalloc:lib/libtcmalloc_minimal.so.4"
run() { # name lib cmd...
  local name=$1 lib=$2; shift 2
  local pre=""; [ -n "$lib" ] && pre="$PWD/$lib"
  local T=""; [ -x /usr/bin/time ] && T="/usr/bin/time -f maxrss_kb=%M"
  local line; line=$(LD_PRELOAD=$pre $T timeout 60 "$@" 2>&1 | grep -E "RESULT|maxrss" | tr '\n' ' ')
  echo "alloc=$name $line" >> "$R"
}
for rep in 1 2 3; do
  for t in 1 2 4 8 16; do
    for l in $libs; do n=${l%%:*}; f=${l#*:}
      run $n "$f" ./larson 1 8 1000 5000 100 4141 $t
      run $n "$f" ./bench_random_mixed 10000000 1024 42 $t
      run $n "$f" ./bench_random_mixed 10000000 4096 42 $t
    done
  done
  for p in 1 2 4 8; do
    for l in $libs; do n=${l%%:*}; f=${l#*:}
      run $n "$f" ./bench_producer_consumer $p $p 1000000 1024
    done
  done
done
wc -l "$R"
