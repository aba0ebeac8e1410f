#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Report of a bench/sampler.c profile: the share of samples per function,
and with LIBRARY the hottest addresses inside that library (offsets to
read beside `objdump -d`).

    python3 bench/sampler_report.py FILE [TOP] [LIBRARY]

A library the file names that does not exist here (a profile taken on
another machine) is looked up by its base name in $SAMPLER_LIBS (a
colon-separated list of folders).
"""
import bisect
import collections
import os
import subprocess
import sys


def local_path(path):
    if os.path.exists(path):
        return path
    for d in os.environ.get('SAMPLER_LIBS', '').split(':'):
        cand = os.path.join(d, os.path.basename(path))
        if d and os.path.exists(cand):
            return cand
    return None


def symbols(path, cache={}):
    if path not in cache:
        syms = []
        lp = local_path(path)
        if lp:
            for flags in (['--defined-only'], ['-D', '--defined-only']):
                out = subprocess.run(['nm', '-C'] + flags + [lp], capture_output=True, text=True).stdout
                for line in out.splitlines():
                    parts = line.split(maxsplit=2)
                    if len(parts) == 3 and parts[1] in 'tTwW':
                        syms.append((int(parts[0], 16), parts[2]))
        syms.sort()
        cache[path] = ([a for a, _ in syms], [n for _, n in syms])
    return cache[path]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 15
    lib = sys.argv[3] if len(sys.argv) > 3 else None
    head, _, body = open(sys.argv[1]).read().partition('--\n')
    maps = []
    for line in head.splitlines():
        p = line.split()
        if len(p) >= 6 and 'x' in p[1]:
            lo, hi = (int(x, 16) for x in p[0].split('-'))
            maps.append((lo, hi, int(p[2], 16), p[5]))
    load = {}
    for lo, hi, off, path in maps:
        load[path] = min(load.get(path, lo - off), lo - off)
    funcs, addrs = collections.Counter(), collections.Counter()
    samples = [int(x, 16) for x in body.split()]
    for pc in samples:
        for lo, hi, off, path in maps:
            if lo <= pc < hi:
                rel = pc - load[path]
                starts, names = symbols(path)
                i = bisect.bisect_right(starts, rel) - 1
                name = os.path.basename(path)
                funcs[(name, names[i] if i >= 0 else '?')] += 1
                addrs[(name, rel)] += 1
                break
        else:
            funcs[('?', '?')] += 1
    n = max(len(samples), 1)
    print('samples', len(samples))
    for (name, fn), k in funcs.most_common(top):
        print('%6.1f%% %s:%s' % (100 * k / n, name, fn))
    if lib:
        print('-- hottest addresses in', lib)
        for (name, rel), k in addrs.most_common():
            if name == lib and 100 * k / n >= 0.5:
                print('%6.2f%% %#x' % (100 * k / n, rel))


if __name__ == '__main__':
    main()
