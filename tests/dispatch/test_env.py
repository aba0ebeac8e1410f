# SPDX-License-Identifier: MIT
"""Suite `dispatch`: HAKMEM_STATS, HAKMEM_SIZE_HIST, HAKMEM_MEM_TRACE and
HAKMEM_VERBOSE print their tables on stderr, once per process (a forked
child does not repeat its parent's), and nothing without them;
HAKMEM_PURGE_DELAY_MS and HAKMEM_PURGE_BUDGET are taken, or refused with
a one-line warning that keeps the default.
Usage: test_env.py CHILD_PROGRAM  (linked with libhakmem)."""
import os
import subprocess
import sys
import unittest

CHILD = sys.argv.pop(1)


def run(env, *args):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_")}
    e.update(env)
    p = subprocess.run([CHILD, *args], env=e, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stderr


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
        self.assertIn("tier         mapped KiB   committed KiB", err)
        for tier in ("tiny", "mid", "l25", "large", "os"):
            self.assertRegex(err, r"\n  %s\s+\d+\s+\d+\n" % tier)
        if "tiny" in tiers():
            self.assertRegex(err, r"tiny: superslabs \d+, slabs in use \d+, refills \d+")
            self.assertIn("tiny fast path:", err)

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

    def test_verbose(self):
        err = run({"HAKMEM_VERBOSE": "1"})
        self.assertRegex(err, r"hakmem: header_classidx=\d class7_header_width=\d validation=\d")
        self.assertIn("HAKMEM_VERBOSE=1", err)
        self.assertEqual(err.count("hakmem: header_classidx"), 1)

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
