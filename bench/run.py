#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Run hakmem's benchmarks side by side with glibc, mimalloc, jemalloc and tcmalloc.

    python3 bench/run.py                 quick mode (about 13 minutes on 2 cores)
    python3 bench/run.py --full          the full-length parameters
    python3 bench/run.py --smoke         every program once under glibc and hakmem (CI)

Every benchmark program (bench/*.c) links only libc and pthread; the runner
chooses the allocator with LD_PRELOAD (<builddir>/libhakmem.so for hakmem,
nothing for glibc, the Debian libraries for the peers), so an allocator is
just a library path. The runs are interleaved (A B C D E A B C D E ...), the
peak RSS of each run comes from os.wait4()'s rusage, and each benchmark gets
a table of medians, ratios to glibc and to the best peer, spread and RSS.
hakmem is AHEAD when its median ratio against every peer is >= 1.05, and its
RSS is ok when its median RSS ratio to glibc is <= 1/0.95. The launcher also
reports each run's minor faults; the tables show their median and hakmem's
ratio to the fewest of any peer, and the jobs with memory targets (burst,
large_churn) get a second mark: faults at most 1.5x the fewest, peak RSS at
most 1.10x glibc's. Instruction counts per malloc+free pair come from
callgrind (two runs, N1 and N2 pairs).

Results go to --out (default results/): raw.csv, summary.csv,
instructions.csv, results.json and ratios.png (matplotlib, else gnuplot,
else skipped). See docs/bench-programs.md.

Python standard library only; matplotlib is optional.
"""

from __future__ import annotations

import argparse
import atexit
import csv
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
PEER_LIBDIR = Path('/usr/lib/x86_64-linux-gnu')

AHEAD_RATIO = 1.05      # "ahead": a median ratio of at least 1.05 against every peer
RSS_NOT_BEHIND = 0.95   # RSS "ok": glibc_rss / hakmem_rss >= 0.95
# The memory targets of the jobs that have them (Job.memory_targets: burst and
# large_churn): hakmem's median minor faults at most 1.5x the fewest median of
# any peer, and its peak RSS at most 1.10x glibc's (median paired ratio).
FAULTS_TARGET = 1.5
RSS_TARGET = 1.10
HAKMEM = 'hakmem'
GLIBC = 'glibc'

# Keys of a RESULT line that are measurements, not part of what was measured.
MEASURED_KEYS = frozenset({'ops', 'seconds', 'mops', 'ticks', 'spawned'})

# The metric each benchmark reports: unit and whether higher is better.
METRICS = {
    'mops': ('Mops/s', True),
    'ticks': ('ticks', False),
}

PROGRAMS = ('larson', 'bench_random_mixed', 'bench_producer_consumer',
            'bench_burst', 'bench_large_churn', 'micro_fastpath_bench', 'micro_mincore_bench', 'peak_rss')
LAUNCHER = 'peak_rss'   # runs each benchmark and reports its peak RSS (see peak_rss.c)


# --------------------------------------------------------------- allocators

@dataclass(frozen=True)
class Allocator:
    """An allocator is a library to preload (None: glibc, no preload), and
    the variables it runs with (a variant such as hakmem-prof)."""
    name: str
    library: str | None
    package: str | None = None
    extra_env: tuple[tuple[str, str], ...] = ()

    def available(self) -> bool:
        return self.library is None or Path(self.library).is_file()

    def run_env(self) -> dict[str, str]:
        """Our environment with this allocator's variables (no preload)."""
        return {**clean_env(), **dict(self.extra_env)}

    def env(self) -> dict[str, str]:
        """Our environment with LD_PRELOAD set to this allocator (or unset)."""
        env = self.run_env()
        if self.library is not None:
            env['LD_PRELOAD'] = self.library
        return env

    def launch_argv(self, bindir: Path, argv: list[str]) -> list[str]:
        """argv wrapped in the peak_rss launcher, which preloads the library
        for the benchmark only."""
        preload = ['-p', self.library] if self.library is not None else []
        return [str(bindir / LAUNCHER), *preload, *argv]


def clean_env() -> dict[str, str]:
    """Our environment less LD_PRELOAD and glibc's MALLOC_PERTURB_ (which
    `meson test` sets and which would slow glibc alone)."""
    return {k: v for k, v in os.environ.items() if k not in ('LD_PRELOAD', 'MALLOC_PERTURB_')}


def all_allocators(builddir: Path) -> list[Allocator]:
    """hakmem, glibc and the three peers, in the interleaving order."""
    return [
        Allocator(HAKMEM, str((builddir / 'libhakmem.so').resolve())),
        Allocator(GLIBC, None),
        Allocator('mimalloc', str(PEER_LIBDIR / 'libmimalloc.so.2'), 'libmimalloc2.0'),
        Allocator('jemalloc', str(PEER_LIBDIR / 'libjemalloc.so.2'), 'libjemalloc2'),
        Allocator('tcmalloc', str(PEER_LIBDIR / 'libtcmalloc_minimal.so.4'), 'libtcmalloc-minimal4'),
    ]


# --------------------------------------------------------------------- jobs

@dataclass(frozen=True)
class Job:
    """One program invocation; it prints one RESULT line per case."""
    label: str                     # what the tables call it
    program: str                   # executable in <builddir>/bench
    args: tuple[str, ...]
    metric: str                    # key of METRICS
    case_keys: tuple[str, ...] = ()  # RESULT keys that tell its cases apart
    compact: bool = False          # one matrix for all cases instead of a table each
    verdict: bool = True           # judge hakmem against the peers (not where the
                                   # allocator plays no part, as in micro_mincore)
    memory_targets: bool = False   # also mark hakmem's faults and RSS against
                                   # FAULTS_TARGET and RSS_TARGET
    timeout: float = 300.0

    def argv(self, bindir: Path) -> list[str]:
        return [str(bindir / self.program), *self.args]

    def case_name(self, result: dict[str, str]) -> str:
        """The name of the case a RESULT line belongs to."""
        if not self.case_keys:
            return self.label
        return self.label + ' ' + ' '.join(f'{k}={result.get(k, "?")}' for k in self.case_keys)


@dataclass(frozen=True)
class Plan:
    """The parameters of a mode: the jobs and the callgrind cases."""
    mode: str
    jobs: list[Job]
    callgrind_cases: list[tuple[str, int]]   # (mode, size) of micro_fastpath --exact
    callgrind_pairs: tuple[int, int] = (10000, 60000)
    note: str = ''


FASTPATH_SIZES = (8, 16, 24, 32, 48, 64, 96, 128, 256, 512, 1024, 1032, 2048, 4096)

KIB, MIB = 1024, 1024 * 1024
# bench_burst: the size ranges of its bursts, the small blocks live beside
# them, and the bytes a burst may hold at most (NBUF = min(1500, this / the
# range's mean size)).
BURST_RANGES = ((1 * KIB, 4 * KIB), (4 * KIB, 16 * KIB), (16 * KIB, 32 * KIB),
                (32 * KIB, 64 * KIB), (128 * KIB, 256 * KIB), (256 * KIB, 1 * MIB))
BURST_LIVE = 20000
BURST_MAX_NBUF = 1500
BURST_MAX_BYTES = 256 * MIB


def burst_nbuf(lo: int, hi: int) -> int:
    """Buffers per burst: 1500, fewer where 1500 of the range's mean size
    would pass 256 MiB."""
    return min(BURST_MAX_NBUF, BURST_MAX_BYTES // ((lo + hi) // 2))


def cmd_job(short: str, program: str, args, metric: str = 'mops', **kw) -> Job:
    """A job labelled like its command line, with the program's short name."""
    args = tuple(str(a) for a in args)
    return Job(f'{short} {" ".join(args)}', program, args, metric, **kw)


def make_plan(mode: str, threads: list[int]) -> Plan:
    """The jobs of quick, full or smoke mode for the given thread counts."""
    if mode == 'smoke':
        jobs = [
            Job('larson headline', 'larson', ('0.2', '8', '1000', '500', '10', '4141', '2'), 'mops'),
            Job('larson churn', 'larson', ('0.2', '8', '128', '1024', '1', '12345', '2'), 'mops'),
            Job('random_mixed', 'bench_random_mixed', ('100000', '1024', '42', '2'), 'mops'),
            Job('producer_consumer', 'bench_producer_consumer', ('1', '1', '50000', '1024'), 'mops'),
            Job('micro_fastpath', 'micro_fastpath_bench', ('2000',), 'ticks', ('mode', 'size')),
            Job('micro_fastpath exact', 'micro_fastpath_bench', ('--exact', 'live', '64', '1000'),
                'pairs', ('mode', 'size')),
            Job('micro_mincore', 'micro_mincore_bench', ('1000',), 'ticks', ('check', 'where')),
            Job('burst', 'bench_burst', ('2', '100', str(4 * KIB), str(16 * KIB)), 'mops',
                memory_targets=True),
            Job('large_churn', 'bench_large_churn', ('20', '4', str(MIB), str(4 * MIB)), 'mops',
                memory_targets=True),
        ]
        return Plan('smoke', jobs, [])

    full = mode == 'full'
    headline_s = 5 if full else 1
    churn1_s, churn4_s = (1, 10) if full else (0.5, 0.5)
    mixed_iters = 20000000 if full else 2000000
    pc_items = 10000000 if full else 1000000
    fast_pairs = 1000000 if full else 100000
    mincore_calls = 200000 if full else 20000
    burst_rounds = 60 if full else 20
    huge_churn_iters = 500 if full else 200       # 20 live blocks of 5-25 MiB
    large_churn_iters = 20000 if full else 4000   # 16 live blocks of 1-4 MiB

    jobs = [cmd_job('larson', 'larson', (headline_s, 8, 1000, 5000, 100, 4141, t)) for t in threads]
    jobs.append(cmd_job('larson', 'larson', (churn1_s, 8, 128, 1024, 1, 12345, 1)))
    jobs.append(cmd_job('larson', 'larson', (churn4_s, 8, 128, 1024, 1, 12345, 4)))
    jobs += [cmd_job('random_mixed', 'bench_random_mixed', (mixed_iters, maxsize, 42, t))
             for maxsize in (1024, 4096, 32768) for t in threads]
    jobs += [cmd_job('producer_consumer', 'bench_producer_consumer', (t, t, pc_items, 1024))
             for t in threads]
    jobs += [cmd_job('burst', 'bench_burst', (burst_rounds, burst_nbuf(lo, hi), lo, hi, BURST_LIVE),
                     memory_targets=True) for lo, hi in BURST_RANGES]
    jobs += [cmd_job('large_churn', 'bench_large_churn', (iters, live, lo, hi, t),
                     memory_targets=True)
             for iters, live, lo, hi, t in ((huge_churn_iters, 20, 5 * MIB, 25 * MIB, 1),
                                            (large_churn_iters, 16, MIB, 4 * MIB, 1),
                                            (large_churn_iters, 16, MIB, 4 * MIB, 2))]
    jobs.append(Job('micro_fastpath', 'micro_fastpath_bench', (str(fast_pairs),), 'ticks',
                    ('mode', 'size'), compact=True))
    jobs.append(Job('micro_mincore', 'micro_mincore_bench', (str(mincore_calls),), 'ticks',
                    ('check', 'where'), compact=True, verdict=False))

    if full:
        cases = [(m, s) for m in ('alone', 'live') for s in FASTPATH_SIZES] + [('batch', 1024)]
        note = 'full mode: the full-length parameters'
    else:
        cases = [(m, s) for m in ('alone', 'live') for s in (16, 64, 256, 1024)] + [('batch', 1024)]
        note = ('quick mode: durations and iterations scaled down (larson headline 1 s '
                'instead of 5, churn 0.5 s instead of 1 and 10, random_mixed 2M iterations '
                'instead of 20M, producer_consumer 1M items instead of 10M, burst 20 rounds '
                'instead of 60, large_churn 200 iterations instead of 500 (5-25 MiB) and '
                '4000 instead of 20000 (1-4 MiB), micro benchmarks 10x fewer pairs, '
                'callgrind on 9 cases); --full for the real thing')
    return Plan(mode, jobs, cases, note=note)


# ----------------------------------------------------------------- parsing

def parse_results(text: str) -> list[dict[str, str]]:
    """The RESULT lines of a program's output, each as a dict of its key=value pairs."""
    results = []
    for line in text.splitlines():
        if not line.startswith('RESULT '):
            continue
        fields = {}
        for token in line.split()[1:]:
            key, sep, value = token.partition('=')
            if sep:
                fields[key] = value
        if 'bench' in fields:
            results.append(fields)
    return results


def parse_launcher(stderr: str) -> dict[str, str]:
    """The key=value fields of the launcher's last PEAK_RSS line ({} if none)."""
    found = re.findall(r'^PEAK_RSS (.*)$', stderr, re.MULTILINE)
    if not found:
        return {}
    return dict(tok.partition('=')[::2] for tok in found[-1].split() if '=' in tok)


def launcher_int(stderr: str, key: str) -> int | None:
    """One integer field of the launcher's last PEAK_RSS line (None when the
    line or the field is missing: an older launcher prints no faults)."""
    value = parse_launcher(stderr).get(key, '')
    return int(value) if value.isdigit() else None


def parse_peak_rss(stderr: str) -> int | None:
    """The peak RSS in KiB from the launcher's last 'PEAK_RSS maxrss_kib=N' line."""
    return launcher_int(stderr, 'maxrss_kib')


def parse_minflt(stderr: str) -> int | None:
    """The minor faults from the launcher's last PEAK_RSS line ('minflt=N')."""
    return launcher_int(stderr, 'minflt')


def parse_callgrind_total(stderr: str) -> int | None:
    """The instruction count callgrind prints at exit ('Collected : N')."""
    m = re.search(r'Collected\s*:\s*([\d,]+)', stderr)
    return int(m.group(1).replace(',', '')) if m else None


# --------------------------------------------------------------- statistics

def speed_ratio(value: float, reference: float, higher_is_better: bool) -> float:
    """How many times better `value` is than `reference` (> 1: better)."""
    return value / reference if higher_is_better else reference / value


def paired_ratios(a: dict[int, float], b: dict[int, float], higher_is_better: bool) -> list[float]:
    """Ratios of a's runs to b's runs of the same round (interleaved runs pair up)."""
    return [speed_ratio(a[r], b[r], higher_is_better)
            for r in sorted(a.keys() & b.keys()) if a[r] > 0 and b[r] > 0]


def median_or_none(values) -> float | None:
    values = list(values)
    return statistics.median(values) if values else None


def is_ahead(ratios_vs_peers: dict[str, float | None]) -> bool:
    """AHEAD: a median ratio >= 1.05 against every peer."""
    present = [r for r in ratios_vs_peers.values() if r is not None]
    return bool(present) and len(present) == len(ratios_vs_peers) and min(present) >= AHEAD_RATIO


def rss_ok(rss_ratio_to_glibc: float | None) -> bool:
    """RSS not behind glibc: rss/glibc_rss <= 1/0.95."""
    return rss_ratio_to_glibc is not None and rss_ratio_to_glibc <= 1.0 / RSS_NOT_BEHIND


def within(ratio: float | None, limit: float) -> bool | None:
    """ratio <= limit (None when there is no ratio)."""
    return None if ratio is None else ratio <= limit


def fewest_faults(medians: dict[str, float], mine: str) -> tuple[str | None, float | None]:
    """The peer (not hakmem nor a hakmem variant, nor `mine`) with the fewest
    median minor faults, and that median."""
    peers = {a: v for a, v in medians.items() if a != mine and not a.startswith(HAKMEM)}
    if not peers:
        return None, None
    best = min(peers, key=peers.get)
    return best, peers[best]


@dataclass
class Row:
    """One allocator's summary of one case."""
    case: str
    allocator: str
    runs: int
    median: float
    vmin: float
    vmax: float
    ratio_glibc: float | None = None
    best_peer: str | None = None
    ratio_best_peer: float | None = None
    rss_median_kib: float | None = None
    rss_ratio_glibc: float | None = None
    ratios_vs_peers: dict[str, float | None] = field(default_factory=dict)
    ahead: bool | None = None     # hakmem only
    rss_ok: bool | None = None    # hakmem only
    minflt_median: float | None = None      # median minor faults per run
    faults_fewest_peer: str | None = None   # hakmem and its variants: the peer with
    faults_ratio_fewest: float | None = None  # the fewest, and median / its median
    faults_ok: bool | None = None      # hakmem, memory-target jobs: ratio <= FAULTS_TARGET
    rss_target_ok: bool | None = None  # hakmem, memory-target jobs: RSS/glibc <= RSS_TARGET


def summarize_case(case: str, values: dict[str, dict[int, float]],
                   rss: dict[str, dict[int, float]], higher_is_better: bool,
                   faults: dict[str, dict[int, float]] | None = None,
                   memory_targets: bool = False) -> list[Row]:
    """Rows for one case from {allocator: {round: value}} and the same for RSS
    (KiB) and minor faults.

    The order of the rows follows `values`. Ratios are medians of per-round
    paired ratios; the best peer is the non-hakmem allocator other than the
    row's own with the best median. The faults ratio is a ratio of medians:
    hakmem's median over the fewest median of any peer. With
    `memory_targets`, hakmem's row also says whether its faults and RSS
    meet FAULTS_TARGET and RSS_TARGET."""
    medians = {a: statistics.median(v.values()) for a, v in values.items() if v}
    fault_medians = {}
    for a, per_round in (faults or {}).items():
        present = [v for v in per_round.values() if v is not None]
        if present:
            fault_medians[a] = statistics.median(present)
    pick = max if higher_is_better else min
    rows = []
    for alloc, per_round in values.items():
        if not per_round:
            continue
        vals = list(per_round.values())
        row = Row(case, alloc, len(vals), medians[alloc], min(vals), max(vals))
        peers = [p for p in medians if p != alloc and not p.startswith(HAKMEM)]
        row.ratios_vs_peers = {p: median_or_none(paired_ratios(per_round, values[p], higher_is_better))
                               for p in peers}
        if GLIBC in values and alloc != GLIBC:
            row.ratio_glibc = row.ratios_vs_peers.get(GLIBC)
        elif alloc == GLIBC:
            row.ratio_glibc = 1.0
        if peers:
            row.best_peer = pick(peers, key=lambda p: medians[p])
            row.ratio_best_peer = row.ratios_vs_peers[row.best_peer]
        my_rss = {r: v for r, v in rss.get(alloc, {}).items() if v is not None}
        if my_rss:
            row.rss_median_kib = statistics.median(my_rss.values())
            glibc_rss = {r: v for r, v in rss.get(GLIBC, {}).items() if v is not None}
            if glibc_rss:
                row.rss_ratio_glibc = median_or_none(paired_ratios(my_rss, glibc_rss, True))
        row.minflt_median = fault_medians.get(alloc)
        if row.minflt_median is not None and alloc.startswith(HAKMEM):
            row.faults_fewest_peer, fewest = fewest_faults(fault_medians, alloc)
            if fewest:
                row.faults_ratio_fewest = row.minflt_median / fewest
        if alloc == HAKMEM:
            row.ahead = is_ahead(row.ratios_vs_peers)
            row.rss_ok = rss_ok(row.rss_ratio_glibc) if my_rss else None
            if memory_targets:
                row.faults_ok = within(row.faults_ratio_fewest, FAULTS_TARGET)
                row.rss_target_ok = within(row.rss_ratio_glibc, RSS_TARGET)
        rows.append(row)
    return rows


# --------------------------------------------------------------- formatting

def fmt_num(x: float | None, digits: int = 4) -> str:
    """A number with about `digits` significant digits ('-' for none); below 1
    the digits count from the first non-zero one (0.0002240, not 0.0002)."""
    if x is None:
        return '-'
    if x == 0:
        return '0'
    mag = len(str(int(abs(x)))) if abs(x) >= 1 else math.floor(math.log10(abs(x))) + 1
    return f'{x:.{max(0, digits - mag)}f}'


def fmt_ratio(x: float | None) -> str:
    return '-' if x is None else f'{x:.2f}x'


def fmt_count(x: float | None) -> str:
    """A count with 3 significant digits and a k/M/G suffix: 850, 12.3k, 1.15M."""
    if x is None:
        return '-'
    x = float(f'{x:.3g}')       # round first: 999960 is 1.00M, not 1000k
    if abs(x) < 1000:
        return f'{x:.0f}'
    for div, suffix in ((1e3, 'k'), (1e6, 'M'), (1e9, 'G')):
        if abs(x) < 1000 * div or suffix == 'G':
            return fmt_num(x / div, 3) + suffix
    raise AssertionError('unreachable')


def render_table(headers: list[str], rows: list[list[str]], indent: str = '  ') -> str:
    """Left-aligned first column, right-aligned others, widths from content."""
    widths = [max(len(r[i]) for r in [headers, *rows]) for i in range(len(headers))]

    def line(cells):
        out = [cells[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])]
        return (indent + '  '.join(out)).rstrip()
    return '\n'.join([line(headers), line(['-' * w for w in widths])] + [line(r) for r in rows])


def hakmem_verdict(row: Row) -> str:
    """'AHEAD', or the worst ratio against a peer and which."""
    if row.ahead:
        return 'AHEAD'
    present = {p: r for p, r in row.ratios_vs_peers.items() if r is not None}
    if not present:
        return ''
    worst = min(present, key=present.get)
    return f'not ahead ({present[worst]:.3f}x vs {worst})'   # 3 digits: 1.049 is not 1.05


def memory_verdict(row: Row) -> str:
    """The memory-target mark: 'faults ok|HIGH  RSS ok|HIGH' ('-' where unmeasured)."""
    def mark(ok: bool | None) -> str:
        return '-' if ok is None else 'ok' if ok else 'HIGH'
    return f'faults {mark(row.faults_ok)}  RSS {mark(row.rss_target_ok)}'


def format_case_table(title: str, rows: list[Row], metric: str, runs: int,
                      memory_targets: bool = False) -> str:
    """The table of one case: one line per allocator. With `memory_targets`
    hakmem's line gets the memory-target mark after its speed verdict, and
    its RSS/glibc cell no ok/HIGH of its own (the mark judges RSS against
    RSS_TARGET instead)."""
    unit, hib = METRICS[metric]
    headers = ['allocator', f'median {unit}', 'vs glibc', 'vs best peer', 'min-max',
               'RSS MiB', 'RSS/glibc', 'faults', 'faults/fewest', ''] + \
        ([''] if memory_targets else [])
    body = []
    for r in rows:
        best = f'{fmt_ratio(r.ratio_best_peer)} {r.best_peer}' if r.best_peer else '-'
        rss_mib = None if r.rss_median_kib is None else r.rss_median_kib / 1024
        rss_ratio = fmt_ratio(r.rss_ratio_glibc)
        fewest = (f'{fmt_ratio(r.faults_ratio_fewest)} {r.faults_fewest_peer}'
                  if r.faults_ratio_fewest is not None else '-')
        marks = ['']
        if r.allocator == HAKMEM:
            marks = [hakmem_verdict(r)]
            if memory_targets:
                marks.append(memory_verdict(r))
            elif r.rss_ok is not None:
                rss_ratio += ' ok' if r.rss_ok else ' HIGH'
        elif memory_targets:
            marks.append('')
        body.append([r.allocator, fmt_num(r.median), fmt_ratio(r.ratio_glibc), best,
                     f'{fmt_num(r.vmin)}-{fmt_num(r.vmax)}', fmt_num(rss_mib, 3), rss_ratio,
                     fmt_count(r.minflt_median), fewest, *marks])
    better = 'higher' if hib else 'lower'
    targets = (f'; targets: faults <= {FAULTS_TARGET:g}x the fewest, RSS <= {RSS_TARGET:.2f}x glibc'
               if memory_targets else '')
    return f'{title}  ({unit}, {better} is better; ratios > 1 are better; {runs} runs{targets})\n' + \
        render_table(headers, body)


def format_matrix(title: str, cases: list[str], rows_by_case: dict[str, list[Row]],
                  allocators: list[str], unit: str, prefix: str = '', verdict: bool = True) -> str:
    """A compact table: one line per case, one column per allocator's median,
    and (with `verdict`) hakmem's ratio to the best peer and its verdict."""
    headers = ['case', *allocators] + (['hakmem vs best peer', ''] if verdict else [])
    body = []
    for case in cases:
        by_alloc = {r.allocator: r for r in rows_by_case.get(case, [])}
        cells = [case[len(prefix):].strip() or case]
        cells += [fmt_num(by_alloc[a].median) if a in by_alloc else '-' for a in allocators]
        hk = by_alloc.get(HAKMEM)
        if verdict and hk and hk.best_peer:
            cells += [f'{fmt_ratio(hk.ratio_best_peer)} {hk.best_peer}', hakmem_verdict(hk)]
        elif verdict:
            cells += ['-', '']
        body.append(cells)
    return f'{title}  ({unit}, medians; ratios > 1 are better)\n' + render_table(headers, body)


def format_instructions(table: dict[str, dict[str, float | None]], allocators: list[str]) -> str:
    """Instructions per malloc+free pair per case, and whether hakmem is fewest."""
    headers = ['case', *allocators, '']
    body = []
    for case, per_alloc in table.items():
        cells = [case] + [fmt_num(per_alloc.get(a), 4) for a in allocators]
        hk = per_alloc.get(HAKMEM)
        peers = [v for a, v in per_alloc.items() if a != HAKMEM and v is not None]
        cells.append('fewest' if hk is not None and peers and hk < min(peers) else '')
        body.append(cells)
    return ('micro_fastpath instructions per malloc+free pair (callgrind, (Ir2-Ir1)/(N2-N1))\n'
            + render_table(headers, body))


# ------------------------------------------------------------------ running

@dataclass
class RunOutcome:
    """What one run of one job under one allocator produced."""
    rc: int
    results: list[dict[str, str]]
    maxrss_kib: int | None
    wall_s: float
    stderr_tail: str
    minflt: int | None = None


def run_measured(argv: list[str], env: dict[str, str], timeout: float) -> RunOutcome:
    """Run the launcher with a benchmark in its own process group, capture the
    output, wait for it with os.wait4(), and take the benchmark's peak RSS
    and minor faults from the launcher's PEAK_RSS line (the launcher got
    them from wait4's rusage; ours would include Python's own peak, see
    peak_rss.c)."""
    with tempfile.TemporaryDirectory(prefix='hakbench-') as tmp:
        out_path, err_path = os.path.join(tmp, 'out'), os.path.join(tmp, 'err')
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
        actions = [(os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
                   (os.POSIX_SPAWN_OPEN, 1, out_path, flags, 0o600),
                   (os.POSIX_SPAWN_OPEN, 2, err_path, flags, 0o600)]
        start = time.monotonic()
        try:
            pid = os.posix_spawn(argv[0], argv, env, file_actions=actions, setpgroup=0)
        except OSError as exc:
            return RunOutcome(127, [], None, 0.0, f'cannot start {argv[0]}: {exc}')
        deadline = start + timeout
        while True:
            wpid, status, _ = os.wait4(pid, os.WNOHANG)
            if wpid == pid:
                break
            if time.monotonic() > deadline:
                os.killpg(pid, 9)
                _, status, _ = os.wait4(pid, 0)
                break
            time.sleep(0.01)
        wall = time.monotonic() - start
        rc = os.waitstatus_to_exitcode(status)
        out = Path(out_path).read_text(errors='replace')
        err = Path(err_path).read_text(errors='replace')
    return RunOutcome(rc, parse_results(out), parse_peak_rss(err), wall, err[-2000:],
                      parse_minflt(err))


class Progress:
    """A progress line on stderr: rewritten in place on a terminal (with the
    detail), else printed once per new step text (without it)."""

    def __init__(self, total: int, quiet: bool = False):
        self.total, self.done, self.quiet = total, 0, quiet
        self.start = time.monotonic()
        self.tty = sys.stderr.isatty()
        self.last_text = ''

    def update(self, text: str, detail: str = '', step_done: bool = False) -> None:
        if step_done:
            self.done += 1
        if self.quiet:
            return
        elapsed = time.monotonic() - self.start
        eta = elapsed / self.done * (self.total - self.done) if self.done else 0
        head = f'[{self.done:4d}/{self.total} eta {int(eta) // 60}m{int(eta) % 60:02d}s] '
        if self.tty:
            sys.stderr.write('\r\033[K' + (head + text + '  ' + detail)[:150])
            sys.stderr.flush()
        elif text != self.last_text:
            print(head + text, file=sys.stderr, flush=True)
        self.last_text = text

    def finish(self) -> None:
        if self.tty and not self.quiet:
            sys.stderr.write('\r\033[K')
            sys.stderr.flush()


def run_interleaved(plan: Plan, allocators: list[Allocator], bindir: Path, runs: int,
                    progress: Progress):
    """Run every job `runs` times under every allocator, in the order
    round > job > allocator, so each allocator's runs of a job alternate with
    the others' (A B C D E A B C D E ...). Returns (records, failures)."""
    records, failures = [], []
    for rnd in range(runs):
        for job in plan.jobs:
            step = f'round {rnd + 1}/{runs}  {job.label}'
            for alloc in allocators:
                progress.update(step, f'[{alloc.name}]')
                out = run_measured(alloc.launch_argv(bindir, job.argv(bindir)), alloc.run_env(),
                                   job.timeout)
                progress.update(step, f'[{alloc.name}]', step_done=True)
                metric_ok = [r for r in out.results if job.metric in r]
                if out.rc != 0 or not metric_ok:
                    failures.append({'round': rnd, 'job': job.label, 'allocator': alloc.name,
                                     'rc': out.rc, 'results': len(out.results),
                                     'stderr': out.stderr_tail})
                    continue
                for res in metric_ok:
                    records.append({'round': rnd, 'job': job.label, 'case': job.case_name(res),
                                    'allocator': alloc.name, 'metric': job.metric,
                                    'value': float(res[job.metric]), 'rss_kib': out.maxrss_kib,
                                    'minflt': out.minflt, 'wall_s': round(out.wall_s, 4),
                                    'result': res})
    return records, failures


def callgrind_count(valgrind: str, exe: Path, alloc: Allocator, mode: str, size: int,
                    pairs: int, tmpdir: str) -> int | None:
    """Instructions of one `micro_fastpath_bench --exact` run under callgrind."""
    out_file = os.path.join(tmpdir, f'cg.{alloc.name}.{mode}.{size}.{pairs}')
    argv = [valgrind, '--tool=callgrind', f'--callgrind-out-file={out_file}',
            str(exe), '--exact', mode, str(size), str(pairs)]
    try:
        proc = subprocess.run(argv, env=alloc.env(), capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.SubprocessError):
        return None
    if proc.returncode != 0 or 'RESULT bench=micro_fastpath_exact' not in proc.stdout:
        return None
    return parse_callgrind_total(proc.stderr)


def instructions_per_pair(ir1: int | None, ir2: int | None, n1: int, n2: int) -> float | None:
    """(Ir2 - Ir1) / (N2 - N1): the start-up costs cancel."""
    if ir1 is None or ir2 is None or n2 == n1:
        return None
    return (ir2 - ir1) / (n2 - n1)


def measure_instructions(plan: Plan, allocators: list[Allocator], bindir: Path,
                         progress: Progress) -> dict[str, dict[str, float | None]]:
    """{case: {allocator: instructions per pair}} for the plan's callgrind cases.
    Instruction counts do not depend on timing, so runs go in parallel."""
    valgrind = shutil.which('valgrind')
    if not valgrind or not plan.callgrind_cases:
        return {}
    n1, n2 = plan.callgrind_pairs
    exe = bindir / 'micro_fastpath_bench'
    tasks = [(a, m, s, n) for m, s in plan.callgrind_cases for a in allocators for n in (n1, n2)]
    counts = {}
    with tempfile.TemporaryDirectory(prefix='hakbench-cg-') as tmp, \
            ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:
        futures = {t: pool.submit(callgrind_count, valgrind, exe, *t, tmp) for t in tasks}
        for t, fut in futures.items():
            counts[t] = fut.result()
            progress.update('callgrind instruction counts',
                            f'{t[1]} size={t[2]} pairs={t[3]} [{t[0].name}]', step_done=True)
    table = {}
    for m, s in plan.callgrind_cases:
        case = f'{m} size={s}' if m != 'batch' else f'batch 16..{s}'
        table[case] = {a.name: instructions_per_pair(counts[(a, m, s, n1)], counts[(a, m, s, n2)],
                                                     n1, n2) for a in allocators}
    return table


# ------------------------------------------------------------------- report

def summarize(plan: Plan, records: list[dict], allocators: list[str]) -> dict[str, list[Row]]:
    """{case: rows} for every case seen, in the order the jobs produced them."""
    targets = {j.label for j in plan.jobs if j.memory_targets}
    grouped: dict[str, tuple[str, bool, dict, dict, dict]] = {}
    for rec in records:
        metric, _, values, rss, faults = grouped.setdefault(
            rec['case'], (rec['metric'], rec['job'] in targets,
                          *({a: {} for a in allocators} for _ in range(3))))
        values[rec['allocator']][rec['round']] = rec['value']
        rss[rec['allocator']][rec['round']] = rec['rss_kib']
        faults[rec['allocator']][rec['round']] = rec.get('minflt')
    return {case: summarize_case(case, {a: v for a, v in values.items() if v},
                                 {a: r for a, r in rss.items() if r}, METRICS[metric][1],
                                 {a: f for a, f in faults.items() if f}, memory_targets)
            for case, (metric, memory_targets, values, rss, faults) in grouped.items()}


def report_text(plan: Plan, summary: dict[str, list[Row]], records: list[dict],
                allocators: list[str], runs: int) -> str:
    """All the tables, in job order."""
    cases_by_job: dict[str, list[str]] = {}
    for rec in records:
        lst = cases_by_job.setdefault(rec['job'], [])
        if rec['case'] not in lst:
            lst.append(rec['case'])
    parts = []
    for job in plan.jobs:
        cases = cases_by_job.get(job.label, [])
        if not cases:
            parts.append(f'{job.label}: no results')
        elif job.compact:
            unit = METRICS[job.metric][0]
            parts.append(format_matrix(job.label, cases, summary, allocators, unit, job.label,
                                       job.verdict))
        else:
            parts.extend(format_case_table(c, summary[c], job.metric, runs, job.memory_targets)
                         for c in cases)
    return '\n\n'.join(parts)


def write_outputs(outdir: Path, meta: dict, records: list[dict], summary: dict[str, list[Row]],
                  instructions: dict, failures: list[dict]) -> list[Path]:
    """raw.csv, summary.csv, instructions.csv and results.json in `outdir`."""
    outdir.mkdir(parents=True, exist_ok=True)
    raw = outdir / 'raw.csv'
    with raw.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['round', 'job', 'case', 'allocator', 'metric', 'value', 'rss_kib', 'wall_s',
                    'minflt'])
        for r in records:
            w.writerow([r['round'], r['job'], r['case'], r['allocator'], r['metric'], r['value'],
                        r['rss_kib'], r['wall_s'], r.get('minflt')])
    summ = outdir / 'summary.csv'
    with summ.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['case', 'allocator', 'runs', 'median', 'min', 'max', 'ratio_glibc',
                    'best_peer', 'ratio_best_peer', 'rss_median_kib', 'rss_ratio_glibc',
                    'ahead', 'rss_ok', 'minflt_median', 'faults_fewest_peer',
                    'faults_ratio_fewest', 'faults_ok', 'rss_target_ok'])
        for rows in summary.values():
            for r in rows:
                w.writerow([r.case, r.allocator, r.runs, r.median, r.vmin, r.vmax, r.ratio_glibc,
                            r.best_peer, r.ratio_best_peer, r.rss_median_kib, r.rss_ratio_glibc,
                            r.ahead, r.rss_ok, r.minflt_median, r.faults_fewest_peer,
                            r.faults_ratio_fewest, r.faults_ok, r.rss_target_ok])
    instr = outdir / 'instructions.csv'
    with instr.open('w', newline='') as f:
        w = csv.writer(f)
        w.writerow(['case', 'allocator', 'instructions_per_pair'])
        for case, per_alloc in instructions.items():
            for a, v in per_alloc.items():
                w.writerow([case, a, v])
    js = outdir / 'results.json'
    js.write_text(json.dumps({
        'meta': meta,
        'summary': {c: [asdict(r) for r in rows] for c, rows in summary.items()},
        'instructions_per_pair': instructions,
        'runs': records,
        'failures': failures,
    }, indent=1))
    return [raw, summ, instr, js]


def short_label(case: str) -> str:
    """A chart label for a case: what, size range, threads ('larson 2T',
    'mixed <=4K 1T', 'burst 16-32K', 'large 1-4M 2T', 'p/c 2+2')."""
    def size(v: str) -> str:
        n = int(v)
        for unit, div in (('M', 1 << 20), ('K', 1 << 10)):
            if n >= div and n % div == 0:
                return f'{n // div}{unit}'
        return str(n)
    w = case.split()
    try:
        if w[0] == 'larson' and len(w) >= 8:
            kind = 'larson' if w[3] == '1000' else 'larson churn'
            return f'{kind} {w[7]}T'
        if w[0] == 'random_mixed' and len(w) >= 5:
            return f'mixed <={size(w[2])} {w[4]}T'
        if w[0] == 'producer_consumer' and len(w) >= 3:
            return f'p/c {w[1]}+{w[2]}'
        if w[0] == 'burst' and len(w) >= 5:
            return f'burst {size(w[3])}-{size(w[4])}'
        if w[0] == 'large_churn' and len(w) >= 6:
            return f'large {size(w[3])}-{size(w[4])} {w[5]}T'
    except ValueError:
        pass
    return case


@dataclass
class ChartData:
    cases: list[str]
    labels: list[str]
    vs_best: list[tuple[float, float, float]]   # hakmem's median ratio to its best peer, min, max
    best_peer: list[str]
    rss: dict[str, list[float]]                 # every allocator's median peak RSS / glibc's


def chart_data(summary: dict[str, list[Row]], records: list[dict], plan: Plan) -> ChartData:
    """What ratios.png shows, for the non-compact jobs: hakmem's speed
    against the best peer of each case (median of the per-round paired
    ratios, and their min and max: the spread of the runs), and peak RSS
    against glibc's."""
    wanted = {j.label for j in plan.jobs if not j.compact}
    cases = [c for c in summary if c in wanted and any(r.allocator == HAKMEM for r in summary[c])]
    allocs: list[str] = []
    for c in cases:
        allocs += [r.allocator for r in summary[c] if r.allocator not in allocs and r.allocator != GLIBC]
    per: dict[tuple[str, str], dict[int, float]] = {}
    for rec in records:
        per.setdefault((rec['case'], rec['allocator']), {})[rec['round']] = rec['value']
    vs_best, peers, rss = [], [], {a: [] for a in allocs}
    for c in cases:
        hk = next(r for r in summary[c] if r.allocator == HAKMEM)
        hib = METRICS[next(rr['metric'] for rr in records if rr['case'] == c)][1]
        ratios = paired_ratios(per.get((c, HAKMEM), {}), per.get((c, hk.best_peer), {}), hib) if hk.best_peer else []
        med = hk.ratio_best_peer or 0.0
        vs_best.append((med, min(ratios, default=med), max(ratios, default=med)))
        peers.append(hk.best_peer or '-')
        for a in allocs:
            row = next((r for r in summary[c] if r.allocator == a), None)
            rss[a].append(row.rss_ratio_glibc or 0.0 if row else 0.0)
    return ChartData(cases, [short_label(c) for c in cases], vs_best, peers, rss)


def chart_series(summary: dict[str, list[Row]], plan: Plan) -> tuple[list[str], dict[str, list[float]]]:
    """Case names of the non-compact jobs and each allocator's median ratio to glibc (results.json)."""
    wanted = {j.label for j in plan.jobs if not j.compact}
    cases = [c for c in summary if c in wanted]
    allocs: list[str] = []
    for c in cases:
        allocs += [r.allocator for r in summary[c] if r.allocator not in allocs]
    series = {a: [next((r.ratio_glibc or 0.0 for r in summary[c] if r.allocator == a), 0.0)
                  for c in cases] for a in allocs}
    return cases, series


def draw_chart(path: Path, data: ChartData, title: str) -> str:
    """ratios.png with gnuplot: top, hakmem's throughput against the best
    peer of each case with the spread of the runs (1.0 = parity, dashed
    1.05 = "ahead"); bottom, each allocator's peak RSS against glibc's.
    Returns a line saying what happened."""
    if not data.cases:
        return 'chart: nothing to draw'
    gnuplot = shutil.which('gnuplot')
    if gnuplot is None:
        return 'chart: skipped (gnuplot is not installed: ./hakmem.sh deps installs it)'
    top = path.with_suffix('.dat')
    with top.open('w') as f:
        f.write('case median lo hi\n')
        for i, lab in enumerate(data.labels):
            med, lo, hi = data.vs_best[i]
            f.write(f'"{lab} (vs {data.best_peer[i]})" {med:.4f} {lo:.4f} {hi:.4f}\n')
    bottom = path.with_name(path.stem + '_rss.dat')
    allocs = list(data.rss)
    with bottom.open('w') as f:
        f.write('case ' + ' '.join(allocs) + '\n')
        for i, lab in enumerate(data.labels):
            f.write(f'"{lab}" ' + ' '.join(f'{data.rss[a][i]:.4f}' for a in allocs) + '\n')
    esc = title.replace('"', "'")
    script = '\n'.join([
        'set terminal pngcairo size 1400,900 noenhanced font ",9"',
        f'set output "{path}"',
        f'set multiplot layout 2,1 title "{esc}"',
        'set style fill solid 0.6 border -1', 'set boxwidth 0.6', 'set grid ytics',
        'set xtics rotate by -35 scale 0', 'set yrange [0:*]', 'set key off', 'set rmargin 12',
        'set ylabel "hakmem throughput / best peer\\n(median of paired runs, bar: min-max)"',
        f'plot "{top}" using 0:2:xtic(1) with boxes lc "#3060a0", '
        f'"" using 0:2:3:4 with yerrorbars lc "black" pt 0, '
        f'1 lc "grey" lw 1, {AHEAD_RATIO} lc "grey" dt 2',
        'set key top left autotitle columnhead', 'unset boxwidth',
        'set style data histograms', 'set style histogram clustered gap 1',
        'set ylabel "peak RSS / glibc peak RSS"',
        f'plot for [i=2:{len(allocs) + 1}] "{bottom}" using i:xtic(1), 1 notitle lc "grey"',
        'unset multiplot',
    ])
    proc = subprocess.run([gnuplot], input=script, text=True, capture_output=True)
    if proc.returncode != 0 or not path.exists():
        return f'chart: skipped (gnuplot failed: {proc.stderr.strip()[:200]})'
    return f'chart: {path} (gnuplot)'


# -------------------------------------------------------------------- build

def ensure_built(builddir: Path, no_build: bool, log) -> bool:
    """Configure and build if needed; True when every benchmark program exists.
    A failing full build (someone's src/ in flux) falls back to the bench targets."""
    bindir = builddir / 'bench'
    if not no_build:
        if not (builddir / 'build.ninja').exists():
            log(f'configuring {builddir} (meson setup)')
            subprocess.run(['meson', 'setup', str(builddir), str(REPO_ROOT)], check=False,
                           stdout=subprocess.DEVNULL)
        if subprocess.run(['ninja', '-C', str(builddir)], stdout=subprocess.DEVNULL).returncode:
            log('full build failed; building the benchmark programs alone')
            subprocess.run(['ninja', '-C', str(builddir), *[f'bench/{p}' for p in PROGRAMS]],
                           stdout=subprocess.DEVNULL, check=False)
    missing = [p for p in PROGRAMS if not (bindir / p).is_file()]
    if missing:
        log(f'missing benchmark programs in {bindir}: {" ".join(missing)}')
    return not missing


# --------------------------------------------------------------------- main

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    mode = ap.add_mutually_exclusive_group()
    mode.add_argument('--full', action='store_true', help='the full-length parameters (larson 5 s and 10 s, 20M iterations, ...)')
    mode.add_argument('--smoke', action='store_true',
                      help='each program once under glibc and hakmem; non-zero exit on a missing RESULT')
    ap.add_argument('--runs', type=int, default=5, help='interleaved runs of each benchmark (default 5)')
    ap.add_argument('--threads', default='1,2', help='thread counts, comma-separated (default 1,2)')
    ap.add_argument('--builddir', default='build', help='Meson build directory (default build)')
    ap.add_argument('--out', default='results', help='results directory (default results)')
    ap.add_argument('--allocators', default='hakmem,glibc,mimalloc,jemalloc,tcmalloc',
                    help='which allocators, comma-separated, in interleaving order')
    ap.add_argument('--variant', action='append', default=[], metavar='NAME=LIB',
                    help='also run another hakmem build (NAME must start with "hakmem-", e.g. '
                         'hakmem-headerless=build-hl/libhakmem.so); variants are measured '
                         'like the others but never count as peers')
    ap.add_argument('--profiled', action='store_true',
                    help='also run hakmem with its heap profiler on at the default rate (variant '
                         'hakmem-prof: HAKMEM_PROF, profiles written to a temporary directory)')
    ap.add_argument('--allocator', action='append', default=[], metavar='NAME=LIB',
                    help='also run another allocator, preloaded from LIB (counts as a peer)')
    ap.add_argument('--list', action='store_true', help='print the jobs of the selected mode and exit')
    ap.add_argument('--only', default='',
                    help='run only jobs whose label contains one of these comma-separated words')
    ap.add_argument('--no-build', action='store_true', help='do not run meson/ninja')
    ap.add_argument('--no-callgrind', action='store_true', help='skip the instruction counts')
    ap.add_argument('--quiet', action='store_true', help='no progress line')
    args = ap.parse_args(argv)
    try:
        args.thread_list = [int(t) for t in args.threads.split(',') if t.strip()]
    except ValueError:
        ap.error(f'--threads: expected comma-separated integers, got {args.threads!r}')
    if not args.thread_list or min(args.thread_list) < 1:
        ap.error('--threads: at least one positive count')
    if args.runs < 1:
        ap.error('--runs must be at least 1')
    return args


class SelectionError(ValueError):
    """An allocator name or a NAME=PATH that names nothing the runner can run."""


def select_allocators(args, builddir: Path, log) -> list[Allocator]:
    """The requested allocators that are present, with a line for each one
    skipped. The runner installs nothing (./hakmem.sh deps does): a peer
    whose library is missing is skipped with a note. Unknown names and
    malformed NAME=PATH arguments raise SelectionError."""
    wanted = [w.strip() for w in args.allocators.split(',') if w.strip()]
    known = {a.name: a for a in all_allocators(builddir)}
    unknown = [w for w in wanted if w not in known]
    if unknown:
        raise SelectionError(f'unknown allocators: {" ".join(unknown)} (known: {" ".join(known)}; '
                             f'--allocator NAME=PATH adds another)')
    chosen = [known[w] for w in wanted]
    for v in args.variant:
        name, _, lib = v.partition('=')
        if not name.startswith(HAKMEM + '-') or not lib:
            raise SelectionError(f'--variant {v}: want hakmem-NAME=path/to/libhakmem.so')
        chosen.append(Allocator(name, str(Path(lib).resolve())))
    if args.profiled:
        chosen.append(profiled_variant(builddir))
    for v in args.allocator:
        name, _, lib = v.partition('=')
        if not name or not lib or name in known or any(a.name == name for a in chosen):
            raise SelectionError(f'--allocator {v}: want a new NAME=path/to/library.so')
        chosen.append(Allocator(name, str(Path(lib).resolve())))
    if args.smoke:
        chosen = [a for a in chosen if a.name in (GLIBC, HAKMEM)]
    present = []
    for a in chosen:
        if a.available():
            present.append(a)
        elif a.name == HAKMEM:
            log(f'skipping hakmem: {a.library} is not built')
        elif a.package:
            log(f'skipping {a.name}: {a.library} not found (Debian package {a.package}; ./hakmem.sh deps installs it)')
        else:
            log(f'skipping {a.name}: {a.library} not found')
    return present


def profiled_variant(builddir: Path) -> Allocator:
    """hakmem with HAKMEM_PROF on (the default rate), each run's exit
    profile in a temporary directory removed when the runner exits."""
    profdir = tempfile.mkdtemp(prefix='hakmem-prof-')
    atexit.register(shutil.rmtree, profdir, True)
    return Allocator(HAKMEM + '-prof', str((builddir / 'libhakmem.so').resolve()),
                     extra_env=(('HAKMEM_PROF', os.path.join(profdir, 'run-%p.heap')),))


def smoke_report(plan: Plan, allocators: list[Allocator], records, failures) -> int:
    """One line per job and allocator; the exit status of --smoke (1 if any
    run failed or printed no RESULT line)."""
    status = 0
    for job in plan.jobs:
        for a in allocators:
            n = sum(1 for r in records if r['job'] == job.label and r['allocator'] == a.name)
            bad = [f for f in failures if f['job'] == job.label and f['allocator'] == a.name]
            ok = n > 0 and not bad
            status |= not ok
            print(f'smoke {"ok" if ok else "FAIL":4s} {job.label:22s} {a.name:9s} {n} RESULT lines')
            for f in bad:
                print(f'      rc={f["rc"]} results={f["results"]} stderr: {f["stderr"].strip()[-300:]}')
    return int(status)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)

    def log(msg: str) -> None:
        print(f'run.py: {msg}', file=sys.stderr, flush=True)

    builddir = Path(args.builddir)
    bindir = builddir / 'bench'
    mode = 'smoke' if args.smoke else 'full' if args.full else 'quick'
    plan = make_plan(mode, args.thread_list)
    if args.only:
        words = [w for w in args.only.split(',') if w]
        jobs = [j for j in plan.jobs if any(w in j.label for w in words)]
        if not jobs:
            log(f'--only {args.only!r} matches no job of {mode} mode (--list names them)')
            return 2
        fastpath = any(j.program == 'micro_fastpath_bench' for j in jobs)
        plan = Plan(plan.mode, jobs, plan.callgrind_cases if fastpath else [],
                    plan.callgrind_pairs, plan.note)
    if args.list:
        for j in plan.jobs:
            print(j.label)
        return 0
    if not ensure_built(builddir, args.no_build, log):
        return 2
    runs = 1 if args.smoke else args.runs
    try:
        allocators = select_allocators(args, builddir, log)
    except SelectionError as exc:
        log(str(exc))
        return 2
    if not any(a.name == GLIBC for a in allocators) and not args.smoke:
        log('glibc is not among the allocators: ratios to glibc will be missing')
    if not allocators:
        log('no allocator to run')
        return 2
    if plan.note:
        print(plan.note)
    names = [a.name for a in allocators]
    callgrind = [] if args.no_callgrind or not shutil.which('valgrind') else plan.callgrind_cases
    if plan.callgrind_cases and not callgrind and not args.no_callgrind:
        log('valgrind not found: no instruction counts')
    total = runs * len(plan.jobs) * len(allocators) + 2 * len(callgrind) * len(allocators)
    progress = Progress(total, args.quiet)
    started = datetime.datetime.now().astimezone()
    records, failures = run_interleaved(plan, allocators, bindir, runs, progress)
    instructions = measure_instructions(
        Plan(plan.mode, plan.jobs, callgrind, plan.callgrind_pairs), allocators, bindir, progress)
    progress.finish()

    if args.smoke:
        return smoke_report(plan, allocators, records, failures)

    summary = summarize(plan, records, names)
    print(f'allocators: {" ".join(names)}; {runs} interleaved runs; threads {args.threads}; '
          f'{os.cpu_count()} CPUs\n')
    print(report_text(plan, summary, records, names, runs))
    if instructions:
        print()
        print(format_instructions(instructions, names))
    for f in failures:
        print(f'\nFAILED: {f["job"]} under {f["allocator"]} (round {f["round"] + 1}): rc={f["rc"]}, '
              f'{f["results"]} RESULT lines; stderr: {f["stderr"].strip()[-300:]}')

    meta = {'date': started.isoformat(timespec='seconds'), 'mode': mode, 'runs': runs,
            'threads': args.thread_list, 'host': platform.node(), 'cpus': os.cpu_count(),
            'kernel': platform.release(), 'note': plan.note,
            'allocators': [{'name': a.name, 'library': a.library} for a in allocators],
            'jobs': [{'label': j.label, 'argv': [j.program, *j.args], 'metric': j.metric,
                      'memory_targets': j.memory_targets} for j in plan.jobs],
            'callgrind_pairs': list(plan.callgrind_pairs),
            'ahead_ratio': AHEAD_RATIO, 'rss_not_behind': RSS_NOT_BEHIND,
            'faults_target': FAULTS_TARGET, 'rss_target': RSS_TARGET}
    outdir = Path(args.out)
    written = write_outputs(outdir, meta, records, summary, instructions, failures)
    print()
    print('wrote ' + ' '.join(str(p) for p in written))
    commit = subprocess.run(['git', '-C', str(REPO_ROOT), 'rev-parse', '--short', 'HEAD'],
                            capture_output=True, text=True).stdout.strip() or 'unknown commit'
    title = (f'hakmem against mimalloc, jemalloc, tcmalloc and glibc: {mode} mode, {runs} runs, '
             f'{started:%Y-%m-%d %H:%M}, commit {commit}, {os.cpu_count()} CPUs')
    print(draw_chart(outdir / 'ratios.png', chart_data(summary, records, plan), title))
    return 1 if failures else 0


if __name__ == '__main__':
    sys.exit(main())
