#!/bin/bash
# SPDX-License-Identifier: MIT
# A/B of hakmem builds on a many-core machine: 5 interleaved rounds at 1, 4, 16
# threads, tcmalloc and mimalloc as yardsticks. Put the builds in lib/ under
# the names in $libs (edit it), with the benchmarks beside this script; OUT=dir.
cd "$(dirname "$0")"
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"; R="$OUT/results4.txt"
libs="cnt:lib/libhakmem_cnt.so grow:lib/libhakmem_grow.so c32:lib/libhakmem_c32.so tcmalloc:lib/libtcmalloc_minimal.so.4 mimalloc:lib/libmimalloc.so.2"
run() { local name=$1 lib=$2; shift 2
  local line; line=$(LD_PRELOAD=$PWD/$lib /usr/bin/time -f maxrss_kb=%M timeout 60 "$@" 2>&1 | grep -E "RESULT|maxrss" | tr '\n' ' ')
  echo "alloc=$name $line" >> "$R"; }
for rep in 1 2 3 4 5; do
  for t in 1 4 16; do
    for l in $libs; do n=${l%%:*}; f=${l#*:}
      run $n "$f" ./larson 1 8 1000 5000 100 4141 $t
      run $n "$f" ./bench_random_mixed $((10000000)) 1024 42 $t
    done
  done
done
wc -l "$R"
