#!/bin/sh
# SPDX-License-Identifier: MIT
# Suite `tiny` (arena backend): libhakmem-tiny.a references no OS memory or
# thread call: no mmap, munmap, madvise, mincore, mremap or pthread symbol.
lib=$1
undef=$(nm -u "$lib" 2>/dev/null | awk '{print $2}' | sort -u)
bad=$(printf '%s\n' "$undef" | grep -E '^(mmap|mmap64|munmap|madvise|mincore|mremap|sched_yield|pthread_.*)$')
if [ -n "$bad" ]; then
    echo "FAIL: the arena build references: $bad"
    exit 1
fi
echo "ok: undefined symbols of $lib: $(printf '%s ' $undef)"
