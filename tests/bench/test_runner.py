#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Tests of bench/run.py's parsing, statistics and formatting on canned
outputs (suite 'bench'). Nothing here runs a benchmark or asserts a timing.

    python3 tests/bench/test_runner.py
"""

import contextlib
import csv
import io
import importlib.util
import json
import statistics
import sys
import tempfile
import unittest
from pathlib import Path

RUN_PY = Path(__file__).resolve().parents[2] / 'bench' / 'run.py'
_spec = importlib.util.spec_from_file_location('bench_run', RUN_PY)
run = importlib.util.module_from_spec(_spec)
sys.modules['bench_run'] = run   # dataclasses resolve annotations through sys.modules
_spec.loader.exec_module(run)

LARSON_OUT = """\
some chatter from the program
RESULT bench=larson threads=2 sleep=5 min=8 max=1000 chunks=5000 rounds=100 seed=4141 ops=255000000 seconds=5.000100 mops=50.9990 spawned=1020
"""

FASTPATH_OUT = """\
RESULT bench=micro_fastpath mode=alone size=64 pairs=100000 reps=7 clock=rdtsc ticks=17.250
RESULT bench=micro_fastpath mode=live size=64 pairs=100000 reps=7 clock=rdtsc ticks=7.000
RESULT not-a-result-line
RESULTS bench=micro_fastpath mode=alone size=8 ticks=1
"""

CALLGRIND_ERR = """\
==123== Callgrind, a call-graph generating cache profiler
==123== Events    : Ir
==123== Collected : 1,234,567
==123==
==123== I   refs:      1,234,567
"""

LAUNCHER_ERR = """\
warning: something the program said
PEAK_RSS maxrss_kib=999 utime_s=0.1 stime_s=0.0
PEAK_RSS maxrss_kib=20480 utime_s=1.000 stime_s=0.010
"""

# The launcher's line with the fault counts (bench/peak_rss.c since they were added).
LAUNCHER_FAULTS_ERR = """\
PEAK_RSS maxrss_kib=999 utime_s=0.1 stime_s=0.0 minflt=5 majflt=0
PEAK_RSS maxrss_kib=270008 utime_s=0.255 stime_s=3.770 minflt=1310002 majflt=3
"""


def rounds(*values):
    """{round: value} for consecutive rounds."""
    return dict(enumerate(values))


class ParsingTest(unittest.TestCase):
    def test_result_line(self):
        res = run.parse_results(LARSON_OUT)
        self.assertEqual(len(res), 1)
        self.assertEqual(res[0]['bench'], 'larson')
        self.assertEqual(res[0]['threads'], '2')
        self.assertEqual(float(res[0]['mops']), 50.999)

    def test_only_result_lines_with_a_bench(self):
        res = run.parse_results(FASTPATH_OUT)
        self.assertEqual([(r['mode'], r['size']) for r in res], [('alone', '64'), ('live', '64')])
        self.assertEqual(run.parse_results(''), [])

    def test_callgrind_total(self):
        self.assertEqual(run.parse_callgrind_total(CALLGRIND_ERR), 1234567)
        self.assertIsNone(run.parse_callgrind_total('no totals here'))

    def test_peak_rss_takes_the_last_launcher_line(self):
        self.assertEqual(run.parse_peak_rss(LAUNCHER_ERR), 20480)
        self.assertIsNone(run.parse_peak_rss('nothing'))

    def test_minor_faults_from_the_launcher_line(self):
        self.assertEqual(run.parse_minflt(LAUNCHER_FAULTS_ERR), 1310002)
        self.assertEqual(run.parse_peak_rss(LAUNCHER_FAULTS_ERR), 270008)   # the old fields stay
        self.assertEqual(run.parse_launcher(LAUNCHER_FAULTS_ERR)['majflt'], '3')

    def test_minor_faults_missing_from_an_older_launcher(self):
        self.assertIsNone(run.parse_minflt(LAUNCHER_ERR))       # the line without the new fields
        self.assertIsNone(run.parse_minflt('nothing'))
        self.assertIsNone(run.parse_minflt('PEAK_RSS maxrss_kib=1 minflt=?\n'))
        # only the last line counts: an older line after a newer one has no faults
        self.assertIsNone(run.parse_minflt(LAUNCHER_FAULTS_ERR + LAUNCHER_ERR))

    def test_case_names(self):
        job = run.Job('micro_fastpath', 'micro_fastpath_bench', ('100',), 'ticks', ('mode', 'size'))
        res = run.parse_results(FASTPATH_OUT)
        self.assertEqual(job.case_name(res[1]), 'micro_fastpath mode=live size=64')
        single = run.Job('larson 5 8 1000 5000 100 4141 2', 'larson', (), 'mops')
        self.assertEqual(single.case_name(run.parse_results(LARSON_OUT)[0]), single.label)


class StatisticsTest(unittest.TestCase):
    def test_speed_ratio_direction(self):
        self.assertAlmostEqual(run.speed_ratio(60.0, 50.0, True), 1.2)
        self.assertAlmostEqual(run.speed_ratio(10.0, 15.0, False), 1.5)   # fewer ticks is better

    def test_paired_ratios_use_common_rounds(self):
        a, b = rounds(10, 20, 30), {0: 5.0, 2: 10.0, 7: 1.0}
        self.assertEqual(run.paired_ratios(a, b, True), [2.0, 3.0])
        self.assertEqual(run.paired_ratios(a, {}, True), [])

    def test_ahead_rule(self):
        self.assertTrue(run.is_ahead({'glibc': 1.5, 'tcmalloc': 1.05}))
        self.assertFalse(run.is_ahead({'glibc': 1.5, 'tcmalloc': 1.049}))
        self.assertFalse(run.is_ahead({'glibc': 1.5, 'tcmalloc': None}))
        self.assertFalse(run.is_ahead({}))

    def test_rss_rule(self):
        self.assertTrue(run.rss_ok(1.0))
        self.assertTrue(run.rss_ok(1 / 0.95))
        self.assertFalse(run.rss_ok(1 / 0.95 + 1e-6))
        self.assertFalse(run.rss_ok(None))

    def canned_case(self, hk_values, metric_higher=True):
        values = {
            'hakmem': rounds(*hk_values),
            'glibc': rounds(50, 50.5, 49.5, 51, 49),
            'mimalloc': rounds(70, 72, 71, 73, 74),
            'tcmalloc': rounds(90, 92, 91, 93, 94),
        }
        rss = {
            'hakmem': rounds(100, 100, 100, 100, 100),
            'glibc': rounds(100, 100, 100, 100, 100),
            'mimalloc': rounds(120, 120, 120, 120, 120),
            'tcmalloc': rounds(130, 130, 130, 130, 130),
        }
        return run.summarize_case('larson', values, rss, metric_higher)

    def test_summary_of_a_case(self):
        rows = {r.allocator: r for r in self.canned_case([100, 101, 99, 102, 98])}
        hk, glibc, tc = rows['hakmem'], rows['glibc'], rows['tcmalloc']
        self.assertEqual(hk.median, 100)
        self.assertEqual((hk.vmin, hk.vmax, hk.runs), (98, 102, 5))
        self.assertEqual(glibc.ratio_glibc, 1.0)
        self.assertAlmostEqual(hk.ratio_glibc, 2.0)              # every paired ratio is 2
        self.assertEqual(hk.best_peer, 'tcmalloc')
        self.assertEqual(tc.best_peer, 'mimalloc')               # a peer's best is another peer
        paired = [h / t for h, t in zip([100, 101, 99, 102, 98], [90, 92, 91, 93, 94])]
        self.assertAlmostEqual(hk.ratio_best_peer, statistics.median(paired))
        self.assertTrue(hk.ahead)                                # >= 1.05 against all three
        self.assertEqual(hk.rss_ratio_glibc, 1.0)
        self.assertTrue(hk.rss_ok)
        self.assertAlmostEqual(rows['tcmalloc'].rss_ratio_glibc, 1.3)
        self.assertIsNone(glibc.ahead)                           # the verdict is hakmem's only

    def test_ahead_against_every_peer(self):
        tcmalloc = [90, 92, 91, 93, 94]
        rows = {r.allocator: r for r in self.canned_case([t * 1.06 for t in tcmalloc])}
        self.assertTrue(rows['hakmem'].ahead)
        rows = {r.allocator: r for r in self.canned_case([t * 1.04 for t in tcmalloc])}
        self.assertFalse(rows['hakmem'].ahead)                   # far ahead of glibc is not enough
        self.assertGreater(rows['hakmem'].ratio_glibc, 1.8)

    def test_lower_is_better_metric(self):
        values = {'hakmem': rounds(10, 10, 10), 'glibc': rounds(20, 22, 18), 'jemalloc': rounds(12, 11, 13)}
        rows = {r.allocator: r for r in run.summarize_case('fastpath', values, {}, False)}
        self.assertEqual(rows['hakmem'].best_peer, 'jemalloc')
        self.assertAlmostEqual(rows['hakmem'].ratio_glibc, 2.0)
        self.assertAlmostEqual(rows['hakmem'].ratio_best_peer, 1.2)
        self.assertTrue(rows['hakmem'].ahead)
        self.assertIsNone(rows['hakmem'].rss_ok)                 # no RSS measured

    def test_missing_rss_values_are_left_out(self):
        values = {'hakmem': rounds(1, 1), 'glibc': rounds(1, 1)}
        rss = {'hakmem': {0: None, 1: 300}, 'glibc': {0: 100, 1: 200}}
        rows = {r.allocator: r for r in run.summarize_case('c', values, rss, True)}
        self.assertEqual(rows['hakmem'].rss_median_kib, 300)
        self.assertEqual(rows['hakmem'].rss_ratio_glibc, 1.5)

    def faults_case(self, hk_faults, hk_rss=100, memory_targets=True, variant_faults=None):
        values = {'hakmem': rounds(10, 10, 10), 'glibc': rounds(5, 5, 5),
                  'mimalloc': rounds(8, 8, 8), 'tcmalloc': rounds(9, 9, 9)}
        rss = {'hakmem': rounds(hk_rss, hk_rss, hk_rss), 'glibc': rounds(100, 100, 100)}
        faults = {'hakmem': rounds(*hk_faults), 'glibc': rounds(90000, 100000, 110000),
                  'mimalloc': rounds(3000, 2000, 2500), 'tcmalloc': rounds(4000, 4000, 4000)}
        if variant_faults is not None:
            values['hakmem-x'] = rounds(10, 10, 10)
            faults['hakmem-x'] = rounds(*variant_faults)
        rows = run.summarize_case('burst', values, rss, True, faults, memory_targets)
        return {r.allocator: r for r in rows}

    def test_faults_ratio_to_the_fewest_peer(self):
        rows = self.faults_case([3000, 3500, 3100], variant_faults=[10, 10, 10])
        hk = rows['hakmem']
        self.assertEqual(hk.minflt_median, 3100)
        self.assertEqual(rows['glibc'].minflt_median, 100000)
        self.assertEqual(hk.faults_fewest_peer, 'mimalloc')      # median 2500, a variant is no peer
        self.assertAlmostEqual(hk.faults_ratio_fewest, 3100 / 2500)   # a ratio of medians
        self.assertEqual(rows['hakmem-x'].faults_fewest_peer, 'mimalloc')
        self.assertAlmostEqual(rows['hakmem-x'].faults_ratio_fewest, 10 / 2500)
        self.assertIsNone(rows['mimalloc'].faults_ratio_fewest)  # hakmem's figure only
        self.assertIsNone(rows['hakmem-x'].faults_ok)            # the marks are hakmem's only

    def test_memory_target_marks_at_their_boundaries(self):
        ok = self.faults_case([3750, 3750, 3750], hk_rss=110)    # 1.5x the fewest, 1.10x glibc
        self.assertTrue(ok['hakmem'].faults_ok)
        self.assertTrue(ok['hakmem'].rss_target_ok)
        self.assertFalse(ok['hakmem'].rss_ok)                    # the general rule is stricter
        high = self.faults_case([3751, 3751, 3751], hk_rss=111)
        self.assertFalse(high['hakmem'].faults_ok)
        self.assertFalse(high['hakmem'].rss_target_ok)
        plain = self.faults_case([3751, 3751, 3751], hk_rss=111, memory_targets=False)
        self.assertIsNone(plain['hakmem'].faults_ok)             # a job without memory targets
        self.assertIsNone(plain['hakmem'].rss_target_ok)
        self.assertAlmostEqual(plain['hakmem'].faults_ratio_fewest, 3751 / 2500)

    def test_faults_missing(self):
        values = {'hakmem': rounds(1, 1), 'glibc': rounds(1, 1)}
        rows = {r.allocator: r for r in run.summarize_case('c', values, {}, True, None, True)}
        self.assertIsNone(rows['hakmem'].minflt_median)
        self.assertIsNone(rows['hakmem'].faults_ratio_fewest)
        self.assertIsNone(rows['hakmem'].faults_ok)
        faults = {'hakmem': {0: None, 1: 40}, 'glibc': {0: None, 1: None}}
        rows = {r.allocator: r for r in run.summarize_case('c', values, {}, True, faults, True)}
        self.assertEqual(rows['hakmem'].minflt_median, 40)
        self.assertIsNone(rows['glibc'].minflt_median)
        self.assertIsNone(rows['hakmem'].faults_ratio_fewest)    # no peer has a count

    def test_instructions_per_pair(self):
        self.assertEqual(run.instructions_per_pair(1_000_000, 8_600_000, 10000, 110000), 76.0)
        self.assertIsNone(run.instructions_per_pair(None, 5, 1, 2))
        self.assertIsNone(run.instructions_per_pair(1, 5, 2, 2))


class FormattingTest(unittest.TestCase):
    def test_numbers(self):
        self.assertEqual(run.fmt_num(51.234567), '51.23')
        self.assertEqual(run.fmt_num(2345.6), '2346')
        self.assertEqual(run.fmt_num(0.5), '0.5000')
        self.assertEqual(run.fmt_num(0.000224), '0.0002240')   # significant digits below 1
        self.assertEqual(run.fmt_num(None), '-')
        self.assertEqual(run.fmt_ratio(1.234), '1.23x')

    def test_counts(self):
        for value, text in ((None, '-'), (0, '0'), (850, '850'), (999.6, '1.00k'),
                            (12345, '12.3k'), (123456, '123k'), (999960, '1.00M'),
                            (1154000, '1.15M'), (5e9, '5.00G')):
            self.assertEqual(run.fmt_count(value), text, value)

    def test_render_table_aligns_columns(self):
        text = run.render_table(['name', 'value'], [['a', '1.5'], ['longer', '100.25']])
        lines = text.splitlines()
        self.assertEqual(len(lines), 4)
        self.assertEqual(len({len(line) for line in lines}), 1)
        self.assertTrue(lines[2].endswith('  1.5'))

    def test_case_table_marks(self):
        values = {'hakmem': rounds(100, 100), 'glibc': rounds(50, 50), 'tcmalloc': rounds(90, 90)}
        rss = {'hakmem': rounds(1024, 1024), 'glibc': rounds(1024, 1024), 'tcmalloc': rounds(2048, 2048)}
        rows = run.summarize_case('larson 5 8 1000 5000 100 4141 2', values, rss, True)
        text = run.format_case_table(rows[0].case, rows, 'mops', 2)
        self.assertIn('larson 5 8 1000 5000 100 4141 2', text)
        hk_line = next(line for line in text.splitlines() if line.strip().startswith('hakmem'))
        self.assertIn('AHEAD', hk_line)
        self.assertIn('1.00x ok', hk_line)
        self.assertIn('1.11x tcmalloc', hk_line)
        self.assertIn('2.00x', hk_line)
        tc_line = next(line for line in text.splitlines() if line.strip().startswith('tcmalloc'))
        self.assertNotIn('AHEAD', tc_line)

    def test_case_table_not_ahead_names_the_worst_peer(self):
        values = {'hakmem': rounds(100, 100), 'glibc': rounds(50, 50), 'tcmalloc': rounds(98, 98)}
        rss = {'hakmem': rounds(2048, 2048), 'glibc': rounds(1024, 1024)}
        rows = run.summarize_case('c', values, rss, True)
        text = run.format_case_table('c', rows, 'mops', 2)
        self.assertIn('not ahead (1.020x vs tcmalloc)', text)
        self.assertIn('2.00x HIGH', text)

    def memory_table(self, memory_targets):
        values = {'hakmem': rounds(100, 100), 'glibc': rounds(50, 50), 'tcmalloc': rounds(90, 90)}
        rss = {'hakmem': rounds(1200, 1200), 'glibc': rounds(1024, 1024), 'tcmalloc': rounds(2048, 2048)}
        faults = {'hakmem': rounds(12300, 12300), 'glibc': rounds(1310002, 1310002),
                  'tcmalloc': rounds(7000, 7000)}
        rows = run.summarize_case('burst x', values, rss, True, faults, memory_targets)
        text = run.format_case_table('burst x', rows, 'mops', 2, memory_targets)
        lines = text.splitlines()
        return lines, next(line for line in lines if line.strip().startswith('hakmem'))

    def test_case_table_faults_columns(self):
        lines, hk_line = self.memory_table(False)
        self.assertIn('faults/fewest', lines[1])
        self.assertIn('12.3k', hk_line)
        self.assertIn('1.76x tcmalloc', hk_line)                 # 12300 / 7000
        self.assertIn('1.17x HIGH', hk_line)                     # the general RSS rule
        self.assertNotIn('faults HIGH', hk_line)                 # no memory targets here
        glibc_line = next(line for line in lines if line.strip().startswith('glibc'))
        self.assertIn('1.31M', glibc_line)

    def test_case_table_memory_target_marks(self):
        lines, hk_line = self.memory_table(True)
        self.assertIn('targets: faults <= 1.5x the fewest, RSS <= 1.10x glibc', lines[0])
        self.assertRegex(hk_line, r'AHEAD +faults HIGH  RSS HIGH$')   # after the speed verdict
        self.assertNotIn('1.17x HIGH', hk_line)                  # the mark judges RSS instead

    def test_memory_verdict_text(self):
        row = run.Row('c', 'hakmem', 1, 1.0, 1.0, 1.0, faults_ok=True, rss_target_ok=False)
        self.assertEqual(run.memory_verdict(row), 'faults ok  RSS HIGH')
        row = run.Row('c', 'hakmem', 1, 1.0, 1.0, 1.0, faults_ok=None, rss_target_ok=True)
        self.assertEqual(run.memory_verdict(row), 'faults -  RSS ok')

    def test_matrix_and_instructions(self):
        rows = {
            'micro_fastpath mode=alone size=64':
                run.summarize_case('micro_fastpath mode=alone size=64',
                                   {'hakmem': rounds(5, 5), 'glibc': rounds(17, 17), 'tcmalloc': rounds(8, 8)},
                                   {}, False),
        }
        text = run.format_matrix('micro_fastpath', list(rows), rows, ['hakmem', 'glibc', 'tcmalloc'],
                                 'ticks', 'micro_fastpath')
        self.assertIn('mode=alone size=64', text)
        self.assertIn('1.60x tcmalloc', text)
        self.assertIn('AHEAD', text)
        plain = run.format_matrix('micro_mincore', list(rows), rows, ['hakmem'], 'ticks', verdict=False)
        self.assertNotIn('AHEAD', plain)
        instr = run.format_instructions({'alone size=64': {'hakmem': 40.0, 'glibc': 138.0, 'tcmalloc': 76.0},
                                         'live size=64': {'hakmem': 90.0, 'glibc': 138.0, 'tcmalloc': 76.0}},
                                        ['hakmem', 'glibc', 'tcmalloc'])
        lines = instr.splitlines()
        self.assertTrue(lines[3].endswith('fewest'))
        self.assertFalse(lines[4].endswith('fewest'))


class PlanTest(unittest.TestCase):
    def labels(self, mode, threads=(1, 2)):
        return [j.label for j in run.make_plan(mode, list(threads)).jobs]

    def test_full_mode_uses_the_full_length_parameters(self):
        labels = self.labels('full')
        for wanted in ('larson 5 8 1000 5000 100 4141 2', 'larson 1 8 128 1024 1 12345 1',
                       'larson 10 8 128 1024 1 12345 4'):
            self.assertIn(wanted, labels)

    def test_quick_mode_is_scaled_and_says_so(self):
        plan = run.make_plan('quick', [1, 2, 4])
        self.assertIn('quick mode', plan.note)
        self.assertIn('larson 1 8 1000 5000 100 4141 4', [j.label for j in plan.jobs])
        self.assertLess(len(plan.callgrind_cases), len(run.make_plan('full', [1]).callgrind_cases))

    def test_burst_and_large_churn_jobs(self):
        for mode, rounds_, huge, large in (('quick', 20, 200, 4000), ('full', 60, 500, 20000)):
            jobs = {j.label: j for j in run.make_plan(mode, [1, 2]).jobs}
            for nbuf, lo, hi in ((1500, 1024, 4096), (1500, 4096, 16384), (1500, 16384, 32768),
                                 (1500, 32768, 65536), (1365, 131072, 262144),
                                 (409, 262144, 1048576)):
                job = jobs[f'burst {rounds_} {nbuf} {lo} {hi} 20000']
                self.assertEqual(job.program, 'bench_burst')
                self.assertTrue(job.memory_targets)
            for label in (f'large_churn {huge} 20 5242880 26214400 1',
                          f'large_churn {large} 16 1048576 4194304 1',
                          f'large_churn {large} 16 1048576 4194304 2'):
                self.assertTrue(jobs[label].memory_targets, label)
            others = [j for j in jobs.values() if j.program not in ('bench_burst', 'bench_large_churn')]
            self.assertFalse(any(j.memory_targets for j in others))
        smoke = {j.program: j.args for j in run.make_plan('smoke', [1]).jobs}
        self.assertEqual(smoke['bench_burst'], ('2', '100', '4096', '16384'))
        self.assertEqual(smoke['bench_large_churn'], ('20', '4', '1048576', '4194304'))

    def test_burst_buffers_per_round(self):
        self.assertEqual(run.burst_nbuf(1024, 4096), 1500)
        self.assertEqual(run.burst_nbuf(131072, 262144), 1365)   # 256 MiB / 192 KiB
        self.assertEqual(run.burst_nbuf(262144, 1048576), 409)

    def test_every_program_is_in_every_mode(self):
        for mode in ('smoke', 'quick', 'full'):
            programs = {j.program for j in run.make_plan(mode, [1]).jobs}
            self.assertEqual(programs, set(run.PROGRAMS) - {run.LAUNCHER}, mode)

    def test_arguments(self):
        args = run.parse_args(['--threads', '1,2,8', '--runs', '7'])
        self.assertEqual((args.thread_list, args.runs), ([1, 2, 8], 7))
        for bad in (['--threads', 'x'], ['--full', '--smoke'], ['--runs', '0']):
            with self.assertRaises(SystemExit), contextlib.redirect_stderr(io.StringIO()):
                run.parse_args(bad)

    def test_selection_errors_and_added_allocators(self):
        log = []
        args = run.parse_args(['--allocators', 'hakmem,nosuch'])
        with self.assertRaises(run.SelectionError):
            run.select_allocators(args, Path('nowhere'), log.append)
        for bad in (['--variant', 'other=x.so'], ['--allocator', 'tcmalloc=x.so'], ['--allocator', 'noname']):
            with self.assertRaises(run.SelectionError):
                run.select_allocators(run.parse_args(['--allocators', 'glibc', *bad]), Path('b'), log.append)
        with tempfile.TemporaryDirectory() as d:
            lib = Path(d) / 'libx.so'
            lib.write_bytes(b'')
            got = run.select_allocators(run.parse_args(['--allocators', 'glibc', '--allocator', f'x={lib}']),
                                        Path('b'), log.append)
            self.assertEqual([a.name for a in got], ['glibc', 'x'])
            self.assertEqual(got[1].library, str(lib.resolve()))
        # a missing peer is skipped with a note, never installed
        got = run.select_allocators(run.parse_args(['--allocators', 'glibc', '--allocator', 'y=/no/such.so']),
                                    Path('b'), log.append)
        self.assertEqual([a.name for a in got], ['glibc'])
        self.assertTrue(any('skipping y' in m for m in log))
        self.assertFalse(hasattr(run, 'install_missing_peers'))

    def test_list_and_empty_selection(self):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(run.main(['--list', '--only', 'burst']), 0)
        labels = out.getvalue().splitlines()
        self.assertTrue(labels and all('burst' in l for l in labels), labels)
        with contextlib.redirect_stderr(io.StringIO()) as err:
            self.assertEqual(run.main(['--list', '--only', 'no-such-job']), 2)
        self.assertIn('matches no job', err.getvalue())

    def test_launcher_argv(self):
        glibc = run.Allocator('glibc', None)
        peer = run.Allocator('tcmalloc', '/lib/libtcmalloc.so')
        self.assertEqual(glibc.launch_argv(Path('b'), ['b/larson', '1']), ['b/peak_rss', 'b/larson', '1'])
        self.assertEqual(peer.launch_argv(Path('b'), ['b/larson']), ['b/peak_rss', '-p', '/lib/libtcmalloc.so', 'b/larson'])
        self.assertEqual(peer.env()['LD_PRELOAD'], '/lib/libtcmalloc.so')
        self.assertNotIn('LD_PRELOAD', glibc.env())


class ReportTest(unittest.TestCase):
    def records(self):
        recs = []
        for rnd in range(3):
            for alloc, mops, rss in (('glibc', 50, 1000), ('tcmalloc', 90, 1200)):
                recs.append({'round': rnd, 'job': 'larson x', 'case': 'larson x', 'allocator': alloc,
                             'metric': 'mops', 'value': float(mops + rnd), 'rss_kib': rss, 'wall_s': 1.0})
        return recs

    def test_summary_report_and_files(self):
        plan = run.Plan('quick', [run.Job('larson x', 'larson', (), 'mops')], [])
        recs = self.records()
        summary = run.summarize(plan, recs, ['hakmem', 'glibc', 'tcmalloc'])
        self.assertEqual([r.allocator for r in summary['larson x']], ['glibc', 'tcmalloc'])
        text = run.report_text(plan, summary, recs, ['glibc', 'tcmalloc'], 3)
        self.assertIn('larson x', text)
        self.assertIn('1.78x', text)                             # median of 90/50, 91/51, 92/52
        with tempfile.TemporaryDirectory() as tmp:
            written = run.write_outputs(Path(tmp), {'mode': 'quick'}, recs, summary,
                                        {'alone size=64': {'glibc': 138.0}}, [])
            self.assertEqual({p.name for p in written},
                             {'raw.csv', 'summary.csv', 'instructions.csv', 'results.json'})
            data = json.loads((Path(tmp) / 'results.json').read_text())
            self.assertEqual(data['summary']['larson x'][1]['allocator'], 'tcmalloc')
            with (Path(tmp) / 'raw.csv').open() as f:
                self.assertEqual(len(list(csv.reader(f))), 1 + len(recs))
        cases, series = run.chart_series(summary, plan)
        self.assertEqual(cases, ['larson x'])
        self.assertAlmostEqual(series['tcmalloc'][0], 1.8, places=1)

    def test_chart_labels_and_data(self):
        for case, want in (('larson 1 8 1000 5000 100 4141 2', 'larson 2T'),
                           ('larson 0.5 8 128 1024 1 12345 4', 'larson churn 4T'),
                           ('random_mixed 2000000 4096 42 1', 'mixed <=4K 1T'),
                           ('producer_consumer 2 2 1000000 1024', 'p/c 2+2'),
                           ('burst 20 1500 16384 32768 20000', 'burst 16K-32K'),
                           ('large_churn 200 20 5242880 26214400 1', 'large 5M-25M 1T'),
                           ('something else', 'something else')):
            self.assertEqual(run.short_label(case), want)
        plan = run.Plan('quick', [run.Job('larson x', 'larson', (), 'mops')], [])
        recs = []
        for rnd, (hk, tc) in enumerate(((60, 50), (66, 50), (54, 60))):
            for alloc, mops, rss in (('hakmem', hk, 900), ('glibc', 30, 1000), ('tcmalloc', tc, 1500)):
                recs.append({'round': rnd, 'job': 'larson x', 'case': 'larson x', 'allocator': alloc,
                             'metric': 'mops', 'value': float(mops), 'rss_kib': rss, 'wall_s': 1.0})
        summary = run.summarize(plan, recs, ['hakmem', 'glibc', 'tcmalloc'])
        d = run.chart_data(summary, recs, plan)
        self.assertEqual((d.cases, d.best_peer), (['larson x'], ['tcmalloc']))
        med, lo, hi = d.vs_best[0]
        self.assertAlmostEqual(med, 1.2)                      # median of 1.2, 1.32, 0.9
        self.assertAlmostEqual((lo, hi), (0.9, 1.32))
        self.assertAlmostEqual(d.rss['hakmem'][0], 0.9)
        self.assertAlmostEqual(d.rss['tcmalloc'][0], 1.5)
        self.assertNotIn('glibc', d.rss)

    def test_faults_in_the_summary_and_files(self):
        plan = run.Plan('quick', [run.Job('burst x', 'bench_burst', (), 'mops', memory_targets=True),
                                  run.Job('larson x', 'larson', (), 'mops')], [])
        recs = []
        for rnd in range(3):
            for alloc, mops, faults in (('hakmem', 60, 3000), ('glibc', 50, 90000), ('tcmalloc', 40, 2500)):
                recs.append({'round': rnd, 'job': 'burst x', 'case': 'burst x', 'allocator': alloc,
                             'metric': 'mops', 'value': float(mops), 'rss_kib': 1000,
                             'minflt': faults + rnd, 'wall_s': 1.0})
        old = [dict(r, job='larson x', case='larson x') for r in self.records()]   # no 'minflt'
        summary = run.summarize(plan, recs + old, ['hakmem', 'glibc', 'tcmalloc'])
        hk = next(r for r in summary['burst x'] if r.allocator == 'hakmem')
        self.assertAlmostEqual(hk.faults_ratio_fewest, 3001 / 2501)
        self.assertTrue(hk.faults_ok)
        self.assertTrue(hk.rss_target_ok)
        self.assertTrue(all(r.minflt_median is None for r in summary['larson x']))
        text = run.report_text(plan, summary, recs + old, ['hakmem', 'glibc', 'tcmalloc'], 3)
        self.assertIn('faults ok  RSS ok', text)
        with tempfile.TemporaryDirectory() as tmp:
            run.write_outputs(Path(tmp), {'mode': 'quick'}, recs + old, summary, {}, [])
            with (Path(tmp) / 'raw.csv').open() as f:
                raw = list(csv.DictReader(f))
            self.assertEqual(raw[0]['minflt'], '3000')
            self.assertEqual(raw[-1]['minflt'], '')               # a record without a count
            with (Path(tmp) / 'summary.csv').open() as f:
                summ = {(r['case'], r['allocator']): r for r in csv.DictReader(f)}
            self.assertEqual(summ[('burst x', 'hakmem')]['faults_fewest_peer'], 'tcmalloc')
            self.assertEqual(summ[('burst x', 'hakmem')]['faults_ok'], 'True')
            self.assertEqual(summ[('burst x', 'glibc')]['minflt_median'], '90001')
            data = json.loads((Path(tmp) / 'results.json').read_text())
            self.assertEqual(data['summary']['burst x'][0]['minflt_median'], 3001)
            self.assertEqual(data['runs'][0]['minflt'], 3000)

    def test_smoke_exit_status(self):
        plan = run.Plan('smoke', [run.Job('larson x', 'larson', (), 'mops')], [])
        allocs = [run.Allocator('glibc', None)]
        failure = {'round': 0, 'job': 'larson x', 'allocator': 'glibc', 'rc': -11, 'results': 0,
                   'stderr': 'Segmentation fault'}
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            self.assertEqual(run.smoke_report(plan, allocs, self.records(), []), 0)
            self.assertEqual(run.smoke_report(plan, allocs, self.records(), [failure]), 1)
            self.assertEqual(run.smoke_report(plan, allocs, [], []), 1)   # no RESULT at all
        self.assertIn('smoke ok', out.getvalue())
        self.assertIn('Segmentation fault', out.getvalue())


if __name__ == '__main__':
    unittest.main(verbosity=2)
