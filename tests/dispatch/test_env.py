# SPDX-License-Identifier: MIT
"""Suite `dispatch`: HAKMEM_STATS, HAKMEM_SIZE_HIST, HAKMEM_MEM_TRACE and
HAKMEM_VERBOSE print their tables on stderr (or HAKMEM_STATS_FILE), once
per process (a forked child does not repeat its parent's), and nothing
without them; flags take 1/true/yes/on and 0/false/no/off in any case and
warn about anything else; an unknown HAKMEM_ variable gets a warning;
HAKMEM_PURGE_DELAY_MS and HAKMEM_PURGE_BUDGET are taken, or refused with
a one-line warning that keeps the default.
Usage: test_env.py CHILD_PROGRAM  (linked with libhakmem)."""
import os
import re
import subprocess
import sys
import unittest

CHILD = sys.argv.pop(1)


GLIBC_VARS = ("GLIBC_TUNABLES", "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_TOP_PAD_",
              "MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_PERTURB_",
              "MALLOC_CHECK_")
SIZE = r"\d+\.\d (?:KiB|MiB|GiB)"


def run(env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_") and k not in GLIBC_VARS}
    e.update(env)
    p = subprocess.run([CHILD, *args], env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stderr


UNITS = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30}


def table_row(err, tier):
    """A row of HAKMEM_STATS's table, in bytes (to the report's rounding)."""
    m = re.search(r"\n  %s((?:\s+\d+\.\d [KMG]iB){4})\n" % tier, err)
    vals = re.findall(r"(\d+\.\d) ([KMG]iB)", m.group(1))
    return dict(zip(("live", "committed", "peak committed", "mapped"),
                    (float(v) * UNITS[u] for v, u in vals)))


def tiers():
    """The tiers of this build, from HAKMEM_VERBOSE's line."""
    err = run({"HAKMEM_VERBOSE": "1"})
    return err.split("tiers=")[1].split()[0].split(",")


class EnvTest(unittest.TestCase):
    def test_quiet_by_default(self):
        self.assertEqual(run({}), "")
        self.assertEqual(run({"HAKMEM_STATS": "0"}), "")

    def test_stats(self):
        err = run({"HAKMEM_STATS": "1"}, "fork")
        self.assertEqual(err.count("hakmem stats (pid"), 1, err)  # once: not the child
        self.assertRegex(err, r"\n  tier\s+live\s+committed\s+peak committed\s+mapped\n")
        for tier in ("tiny", "mid", "l25", "large", "all"):
            self.assertRegex(err, r"\n  %s\s+%s\s+%s\s+%s\s+%s\n" % (tier, SIZE, SIZE, SIZE, SIZE))
        self.assertRegex(err, r"\n  peak live %s \(counted in whole slabs, spans and large blocks: %s now\)\n"
                         % (SIZE, SIZE))
        if "tiny" in tiers():
            self.assertRegex(err, r"tiny: superslabs \d+, slabs in use \d+, refills \d+")
        # no raw byte counts in the table: every figure of its rows has a unit
        table = err.split("  tier")[1].split("  peak live")[0]
        self.assertNotRegex(table, r"\d\s*\n")
        # the hit-rate note of builds without -Dstats=true only with HAKMEM_VERBOSE
        self.assertNotIn("hit rate needs", err)
        verbose = run({"HAKMEM_STATS": "1", "HAKMEM_VERBOSE": "1"})
        if "stats=false" in verbose and "tiny" in tiers():
            self.assertIn("tiny fast path: hit rate needs a -Dstats=true build", verbose)

    def test_stats_live_and_peak(self):
        # a 3 MiB block alive at exit: the large row's live column shows it,
        # and both peaks are at least that
        err = run({"HAKMEM_STATS": "1"}, "keep")
        if "large" not in tiers():
            return
        row = table_row(err, "large")
        self.assertGreaterEqual(row["live"], 3 << 20)
        self.assertGreaterEqual(row["peak committed"], 3 << 20)
        self.assertGreaterEqual(table_row(err, "all")["peak committed"], 3 << 20)
        m = re.search(r"peak live (\d+\.\d) (KiB|MiB|GiB)", err)
        self.assertEqual(m.group(2), "MiB", err)
        self.assertGreaterEqual(float(m.group(1)), 3.0)

    def test_stats_peaks_per_tier(self):
        # 16 MiB of mid blocks and an 8 MiB large block, freed and trimmed:
        # committed falls, each tier's peak stays
        err = run({"HAKMEM_STATS": "1"}, "peak")
        built = tiers()
        if "mid" in built:
            mid = table_row(err, "mid")
            self.assertGreaterEqual(mid["peak committed"], 15 << 20, err)
            self.assertLess(mid["committed"], mid["peak committed"] - (8 << 20), err)
        if "large" in built:
            large = table_row(err, "large")
            self.assertGreaterEqual(large["peak committed"], 8 << 20, err)
            self.assertLess(large["committed"], 1 << 20, err)
        total = table_row(err, "all")
        self.assertGreaterEqual(total["peak committed"], 23 << 20, err)
        self.assertLess(total["committed"], total["peak committed"])

    def test_flag_spellings(self):
        for on in ("1", "true", "TRUE", "True", "yes", "YES", "on", "On"):
            err = run({"HAKMEM_STATS": on})
            self.assertIn("hakmem stats (pid", err, on)
            self.assertNotIn("ignoring", err, on)
        for off in ("0", "false", "FALSE", "no", "No", "off", "OFF", ""):
            self.assertEqual(run({"HAKMEM_STATS": off}), "", off)
        for bad in ("maybe", "2", "yes please", "on ", " 1", "01", "y", "enable"):
            err = run({"HAKMEM_STATS": bad})
            self.assertEqual(err, "hakmem: ignoring HAKMEM_STATS=%s: not 1/true/yes/on or 0/false/no/off\n" % bad)
        # every flag follows the same rules; a refused one keeps its default (off)
        for var in ("HAKMEM_SIZE_HIST", "HAKMEM_MEM_TRACE", "HAKMEM_VERBOSE"):
            err = run({var: "nope"})
            self.assertEqual(err, "hakmem: ignoring %s=nope: not 1/true/yes/on or 0/false/no/off\n" % var)
        err = run({"HAKMEM_VERBOSE": "Yes", "HAKMEM_SIZE_HIST": "off", "HAKMEM_MEM_TRACE": "2"})
        self.assertIn("HAKMEM_SIZE_HIST=off HAKMEM_MEM_TRACE=off HAKMEM_VERBOSE=on", err)
        self.assertEqual(err.count("ignoring HAKMEM_MEM_TRACE=2"), 1)
        self.assertNotIn("hakmem memory trace", err)

    def test_unknown_variable(self):
        # one line naming it, with the known name it is close to
        err = run({"HAKMEM_STAT": "1"})
        self.assertEqual(err, "hakmem: ignoring unknown variable HAKMEM_STAT (did you mean HAKMEM_STATS?)\n")
        err = run({"HAKMEM_PURGE_DELAY": "5", "HAKMEM_XYZZY": "1", "HAKMEM_STATS": "0"})
        self.assertEqual(sorted(err.splitlines()), [
            "hakmem: ignoring unknown variable HAKMEM_PURGE_DELAY (did you mean HAKMEM_PURGE_DELAY_MS?)",
            "hakmem: ignoring unknown variable HAKMEM_XYZZY (docs/options.md lists the HAKMEM_ variables)"])
        err = run({"HAKMEM_PROF_RATES": "5"})
        self.assertEqual(err, "hakmem: ignoring unknown variable HAKMEM_PROF_RATES (did you mean HAKMEM_PROF_RATE?)\n")
        # the variables hakmem reads are not warned about
        known = {"HAKMEM_STATS": "0", "HAKMEM_SIZE_HIST": "0", "HAKMEM_MEM_TRACE": "0", "HAKMEM_VERBOSE": "0",
                 "HAKMEM_PURGE_DELAY_MS": "1000", "HAKMEM_PURGE_BUDGET": "100", "HAKMEM_STATS_FILE": "",
                 "HAKMEM_PROF": "", "HAKMEM_PROF_RATE": "4096", "HAKMEM_PROF_INTERVAL": "0", "HAKMEM_PROF_LEAKS": "0"}
        self.assertEqual(run(known), "")

    def test_stats_file(self):
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            pattern = os.path.join(d, "stats-%p.txt")
            err = run({"HAKMEM_STATS": "1", "HAKMEM_STATS_FILE": pattern}, "fork")
            self.assertEqual(err, "")
            files = os.listdir(d)
            self.assertEqual(len(files), 1, files)  # the forked child writes none
            pid = re.fullmatch(r"stats-(\d+)\.txt", files[0]).group(1)
            with open(os.path.join(d, files[0])) as f:
                text = f.read()
            self.assertTrue(text.startswith("hakmem stats (pid %s)\n" % pid), text)
            self.assertRegex(text, r"\n  all\s+%s" % SIZE)
            # the other exit reports go there too; the file alone turns stats on
            os.unlink(os.path.join(d, files[0]))
            err = run({"HAKMEM_SIZE_HIST": "1", "HAKMEM_STATS_FILE": os.path.join(d, "r%%-%p")})
            self.assertEqual(err, "")
            files = os.listdir(d)
            self.assertEqual(len(files), 1, files)
            self.assertRegex(files[0], r"^r%-\d+$")
            with open(os.path.join(d, files[0])) as f:
                text = f.read()
            self.assertIn("hakmem stats (pid", text)
            self.assertIn("hakmem size histogram (pid", text)
            os.unlink(os.path.join(d, files[0]))
            # HAKMEM_STATS=0 stays off: no file
            self.assertEqual(run({"HAKMEM_STATS": "0", "HAKMEM_STATS_FILE": pattern}), "")
            self.assertEqual(os.listdir(d), [])
            # a file that cannot be opened: one warning, the report on stderr
            err = run({"HAKMEM_STATS": "1", "HAKMEM_STATS_FILE": os.path.join(d, "none", "x")})
            self.assertTrue(err.startswith("hakmem: ignoring HAKMEM_STATS_FILE: cannot be opened"), err)
            self.assertIn("hakmem stats (pid", err)

    def test_reports_skip_a_reused_stderr(self):
        # a program that closed stderr and opened a file that got fd 2:
        # the exit reports must not be written into that file
        import tempfile
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "data")
            run({"HAKMEM_STATS": "1", "HAKMEM_SIZE_HIST": "1"}, "reuse-stderr", path)
            with open(path) as f:
                self.assertEqual(f.read(), "PAYLOAD\n")

    def test_size_hist(self):
        err = run({"HAKMEM_SIZE_HIST": "1"})
        self.assertRegex(err, r"hakmem size histogram \(pid \d+\): \d+ requests")
        self.assertIn("size <=          count   share", err)
        self.assertIn("served by             count   share", err)
        built = tiers()
        if "tiny" in built:
            self.assertRegex(err, r"\n  tiny/\d+\s+\d+\s+[\d.]+%")
        if "mid" in built:
            self.assertRegex(err, r"\n  mid\s+\d+\s+[\d.]+%")
        if "large" in built:
            self.assertRegex(err, r"\n  large\s+\d+\s+[\d.]+%")
        total = int(err.split("): ")[1].split(" requests")[0])
        self.assertEqual(total, 400)

    def test_mem_trace(self):
        err = run({"HAKMEM_MEM_TRACE": "1"})
        self.assertIn("hakmem memory trace (pid", err)
        for key in ("requests", "frees", "requested bytes (total)", "live usable bytes",
                    "peak live usable bytes", "committed bytes (tiers)", "resident bytes (VmRSS)"):
            self.assertRegex(err, r"\n  %s\s+\d+\n" % key.replace("(", r"\(").replace(")", r"\)"))
        self.assertRegex(err, r"requests\s+400\n")
        self.assertRegex(err, r"frees\s+400\n")
        self.assertRegex(err, r"live usable bytes\s+0\n")

    def test_mem_trace_large_realloc(self):
        # a large block grown by mremap and shrunk in place: the trace
        # follows it (the child checks mallinfo2 at each step), and nothing
        # wraps below zero (live 0 and a peak near 64 MiB, not near 2^64)
        err = run({"HAKMEM_MEM_TRACE": "1"}, "realloc-large")
        self.assertRegex(err, r"live usable bytes\s+0\n")
        peak = int(err.split("peak live usable bytes")[1].split()[0])
        self.assertGreaterEqual(peak, 64 << 20)
        self.assertLess(peak, 80 << 20)

    def test_mem_trace_thread_first_requests(self):
        # a new thread's first requests, malloc(0) among them, are traced:
        # the child checks mallinfo2 (exit status 0), alone and with the
        # profiler on
        for env in ({}, {"HAKMEM_PROF": "/dev/null"}):
            env["HAKMEM_MEM_TRACE"] = "1"
            self.assertIn("hakmem memory trace (pid", run(env, "thread-zero"))

    def test_verbose(self):
        err = run({"HAKMEM_VERBOSE": "1"})
        self.assertRegex(err, r"hakmem: library /\S*libhakmem\S*\n")
        self.assertRegex(err, r"hakmem: build header_classidx=(true|false) class7_header_width=[12] "
                              r"validation=(none|magic|full) platform=posix stats=(true|false) "
                              r"tls_model=(initial-exec|global-dynamic) tiers=[a-z25,]+\n")
        self.assertIn("HAKMEM_STATS=off HAKMEM_SIZE_HIST=off HAKMEM_MEM_TRACE=off HAKMEM_VERBOSE=on "
                      "HAKMEM_STATS_FILE=(stderr)", err)
        self.assertIn("HAKMEM_PURGE_DELAY_MS=1000 HAKMEM_PURGE_BUDGET=100", err)
        self.assertEqual(err.count("hakmem: build "), 1)
        self.assertNotIn("glibc malloc tunable", err)
        err = run({"HAKMEM_VERBOSE": "1", "HAKMEM_STATS": "yes", "HAKMEM_STATS_FILE": "/dev/null"})
        self.assertIn("HAKMEM_STATS=on ", err)
        self.assertIn("HAKMEM_STATS_FILE=/dev/null", err)

    def test_verbose_ignored_tunables(self):
        env = {"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.elision.enable=1:glibc.malloc.tcache_count=0"}
        for var in GLIBC_VARS[1:]:
            env[var] = "3"
        self.assertEqual(run(env), "")  # said only under HAKMEM_VERBOSE
        env["HAKMEM_VERBOSE"] = "1"
        lines = [l for l in run(env).splitlines() if "glibc malloc tunable" in l]
        self.assertEqual(len(lines), 2 + len(GLIBC_VARS) - 1, lines)
        self.assertTrue(lines[0].startswith("hakmem: ignoring glibc.malloc.arena_max=2 "), lines)
        self.assertTrue(lines[1].startswith("hakmem: ignoring glibc.malloc.tcache_count=0 "), lines)
        for var, line in zip(GLIBC_VARS[1:], lines[2:]):
            self.assertTrue(line.startswith("hakmem: ignoring %s=3 " % var), line)

    def test_verbose_mallopt(self):
        self.assertEqual(run({}, "mallopt"), "")
        err = run({"HAKMEM_VERBOSE": "1"}, "mallopt")
        lines = [l for l in err.splitlines() if l.startswith("hakmem: mallopt(")]
        self.assertEqual(lines, ["hakmem: mallopt(M_ARENA_MAX, 2) ignored: no meaning in hakmem",
                                 "hakmem: mallopt(M_MXFAST, 0) ignored: no meaning in hakmem",
                                 "hakmem: mallopt(12345, 1) ignored: unknown parameter"])

    def test_purge_options(self):
        # read once at start; HAKMEM_VERBOSE shows what was taken
        err = run({"HAKMEM_VERBOSE": "1"})
        self.assertIn("HAKMEM_PURGE_DELAY_MS=1000 HAKMEM_PURGE_BUDGET=100", err)
        err = run({"HAKMEM_VERBOSE": "1", "HAKMEM_PURGE_DELAY_MS": "-1", "HAKMEM_PURGE_BUDGET": "25"})
        self.assertIn("HAKMEM_PURGE_DELAY_MS=-1 HAKMEM_PURGE_BUDGET=25", err)
        err = run({"HAKMEM_VERBOSE": "1", "HAKMEM_PURGE_DELAY_MS": "0"})
        self.assertIn("HAKMEM_PURGE_DELAY_MS=0 ", err)

    def test_purge_options_bad_values(self):
        # a bad value: one line naming the variable, and the default stays
        for var, bad in (("HAKMEM_PURGE_DELAY_MS", "abc"), ("HAKMEM_PURGE_DELAY_MS", "-2"),
                         ("HAKMEM_PURGE_DELAY_MS", "10ms"), ("HAKMEM_PURGE_DELAY_MS", ""),
                         ("HAKMEM_PURGE_BUDGET", "-5"), ("HAKMEM_PURGE_BUDGET", "1e3"),
                         ("HAKMEM_PURGE_BUDGET", "99999999999999999999")):
            err = run({var: bad})
            lines = err.splitlines()
            self.assertEqual(len(lines), 1, (var, bad, err))
            self.assertTrue(lines[0].startswith("hakmem: ignoring %s: " % var), err)
            self.assertIn("default", lines[0])
            err = run({var: bad, "HAKMEM_VERBOSE": "1"})
            self.assertIn("HAKMEM_PURGE_DELAY_MS=1000 HAKMEM_PURGE_BUDGET=100", err)


if __name__ == "__main__":
    unittest.main()
