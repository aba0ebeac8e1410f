#!/usr/bin/env python3
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

    def test_instructions_per_pair(self):
        self.assertEqual(run.instructions_per_pair(1_000_000, 8_600_000, 10000, 110000), 76.0)
        self.assertIsNone(run.instructions_per_pair(None, 5, 1, 2))
        self.assertIsNone(run.instructions_per_pair(1, 5, 2, 2))


class FormattingTest(unittest.TestCase):
    def test_numbers(self):
        self.assertEqual(run.fmt_num(51.234567), '51.23')
        self.assertEqual(run.fmt_num(2345.6), '2346')
        self.assertEqual(run.fmt_num(0.5), '0.5000')
        self.assertEqual(run.fmt_num(None), '-')
        self.assertEqual(run.fmt_ratio(1.234), '1.23x')

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

    def test_full_mode_uses_the_brief_parameters(self):
        labels = self.labels('full')
        for wanted in ('larson 5 8 1000 5000 100 4141 2', 'larson 1 8 128 1024 1 12345 1',
                       'larson 10 8 128 1024 1 12345 4'):
            self.assertIn(wanted, labels)

    def test_quick_mode_is_scaled_and_says_so(self):
        plan = run.make_plan('quick', [1, 2, 4])
        self.assertIn('quick mode', plan.note)
        self.assertIn('larson 1 8 1000 5000 100 4141 4', [j.label for j in plan.jobs])
        self.assertLess(len(plan.callgrind_cases), len(run.make_plan('full', [1]).callgrind_cases))

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
