# SPDX-License-Identifier: MIT
"""Suite `prof`: the heap profiler (HAKMEM_PROF) through google-pprof.

Each test runs prof_child (linked with libhakmem.so; the accuracy test
also with libhakmem.a) with the HAKMEM_PROF variables and reads the
profiles it writes with google-pprof, as a user would. No test times
anything; the accuracy bounds are at least four standard deviations of
the sampling at the rates used. Skipped (exit 77) without google-pprof.

usage: test_prof.py PROF_CHILD PROF_CHILD_STATIC PROF_PLUGIN"""
import glob
import os
import re
import signal
import shutil
import subprocess
import sys
import tempfile
import unittest

CHILD, CHILD_STATIC, PLUGIN = sys.argv[1:4]
del sys.argv[1:4]
PPROF = shutil.which("google-pprof") or shutil.which("pprof")
MB = 1000000
MIB = 1 << 20
# The rate of the tests that check an estimate against assertNear's 20%:
# 20 MB in blocks of 20 KB at 16 KiB gives estimates with a standard
# deviation of 2.4% (30 runs of "fork"), 20% is 8 of them; at 64 KiB it was
# 5.2%, and one CI run fell 3.8 away (24.0 MB for 20).
ACCURATE_RATE = "16384"


def run(env, *args, child=CHILD, check=True):
    e = {k: v for k, v in os.environ.items() if not k.startswith("HAKMEM_")}
    e.update(env)
    p = subprocess.run([child, *args], env=e, capture_output=True, text=True, timeout=120)
    if check:
        assert p.returncode == 0, "rc=%d stderr=%s" % (p.returncode, p.stderr)
    return p


def pprof(program, profile, *opts, cum=False):
    """{function: flat bytes} ({function: cumulative bytes} with cum) and
    the total, from `google-pprof --text` (objects with --*_objects)."""
    p = subprocess.run([PPROF, "--text", "--show_bytes", *opts, program, profile],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr
    total = re.search(r"^Total: (\d+) (B|objects)", p.stdout, re.M)
    assert total, p.stdout + p.stderr
    flat = {}
    for line in p.stdout.splitlines():
        m = re.match(r"\s*(\d+)\s+[\d.]+%\s+[\d.]+%\s+(\d+)\s+[\d.]+%\s+(\S+)", line)
        if m:
            flat[m.group(3)] = int(m.group(2) if cum else m.group(1))
    return flat, int(total.group(1))


class ProfTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="hakmem-prof-test-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def assertNear(self, got, want, tol=0.2, what=""):
        self.assertLess(abs(got - want), tol * want, "%s: %d, want %d within %d%%" % (what, got, want, tol * 100))

    def check_accuracy(self, child):
        d1, d2, out = self.path("d1.heap"), self.path("d2.heap"), self.path("exit-%p.heap")
        run({"HAKMEM_PROF": out, "HAKMEM_PROF_RATE": "16384"}, "accuracy", d1, d2, child=child)
        flat, total = pprof(child, d1)
        big, small = flat.get("alloc_big", 0), flat.get("alloc_small", 0)
        self.assertNear(big, 100 * MB, what="alloc_big live")
        self.assertNear(small, 10 * MB, what="alloc_small live")
        self.assertGreater(big, small)
        self.assertGreaterEqual(total, big + small)
        # the big blocks freed: gone from what is live, still in what was allocated
        flat, _ = pprof(child, d2)
        self.assertNotIn("alloc_big", flat)
        self.assertNear(flat.get("alloc_small", 0), 10 * MB, what="alloc_small live after the free")
        flat, _ = pprof(child, d2, "--alloc_space")
        self.assertNear(flat.get("alloc_big", 0), 100 * MB, what="alloc_big allocated")
        # the exit profile, named with the pid
        exits = glob.glob(self.path("exit-*.heap"))
        self.assertEqual(len(exits), 1, exits)
        flat, _ = pprof(child, exits[0])
        self.assertNotIn("alloc_big", flat)
        self.assertNear(flat.get("alloc_small", 0), 10 * MB, what="alloc_small at exit")

    def test_accuracy(self):
        self.check_accuracy(CHILD)

    def test_accuracy_static(self):
        self.check_accuracy(CHILD_STATIC)

    def test_header_and_maps(self):
        d1, d2 = self.path("d1.heap"), self.path("d2.heap")
        run({"HAKMEM_PROF": self.path("x.heap")}, "accuracy", d1, d2)
        with open(d1) as f:
            text = f.read()
        self.assertRegex(text.splitlines()[0],
                         r"^heap profile: +\d+: +\d+ \[ *\d+: +\d+\] @ heapprofile$")
        self.assertRegex(text, r"\n *\d+: +\d+ \[ *\d+: +\d+\] @( 0x[0-9a-f]+)+\n")
        self.assertIn("\nMAPPED_LIBRARIES:\n", text)
        self.assertIn(os.path.basename(CHILD), text.split("MAPPED_LIBRARIES:")[1])

    def test_default_rate(self):
        # 100 blocks of 1 MiB at 512 KiB: pprof's figure is the unsampled estimate
        d = self.path("d.heap")
        run({"HAKMEM_PROF": self.path("x.heap")}, "big-blocks", d)
        flat, _ = pprof(CHILD, d)
        self.assertNear(flat.get("alloc_big", 0), 100 * MIB, what="alloc_big at the default rate")

    def test_threads(self):
        d = self.path("d.heap")
        p = run({"HAKMEM_PROF": self.path("x.heap"), "HAKMEM_PROF_RATE": ACCURATE_RATE}, "threads", d)
        live, allocated = (int(v) for v in re.match(r"live=(\d+) allocated=(\d+)", p.stdout).groups())
        flat, _ = pprof(CHILD, d)
        self.assertNear(flat.get("thread_site", 0), live, what="thread_site live")
        flat, _ = pprof(CHILD, d, "--alloc_space")
        self.assertNear(flat.get("thread_site", 0), allocated, what="thread_site allocated")

    def test_threads_exact(self):
        # at rate 1 every block is a sample of weight 1: the profile's
        # figures are exact counts, so a sample lost or counted twice
        # while 8 threads sample and free each other's blocks shows
        d = self.path("d.heap")
        p = run({"HAKMEM_PROF": self.path("x.heap"), "HAKMEM_PROF_RATE": "1"}, "xthreads", d)
        m = re.match(r"live=(\d+),(\d+) allocated=(\d+),(\d+)", p.stdout)
        want = dict(zip(("inuse_objects", "inuse_space", "alloc_objects", "alloc_space"), map(int, m.groups())))
        for what, n in want.items():
            flat, _ = pprof(CHILD, d, "--" + what)
            self.assertEqual(flat.get("xthread_site", 0), n, what)

    def test_double_free_of_a_sample(self):
        # a sampled block's mapping stays registered while its thread's
        # stash keeps it: a second free is still reported and aborts
        p = run({"HAKMEM_PROF": self.path("x.heap"), "HAKMEM_PROF_RATE": "1"}, "double-free", check=False)
        self.assertEqual(p.stdout, "freed\n")
        self.assertEqual(p.returncode, -signal.SIGABRT, p.stderr)
        self.assertIn("free(): double free", p.stderr)

    def test_fork_child_writes_its_own(self):
        run({"HAKMEM_PROF": self.path("f-%p.heap"), "HAKMEM_PROF_RATE": ACCURATE_RATE}, "fork")
        files = sorted(glob.glob(self.path("f-*.heap")))
        self.assertEqual(len(files), 2, files)
        profiles = [pprof(CHILD, f)[0] for f in files]
        parent = [f for f in profiles if "child_site" not in f]
        child = [f for f in profiles if "child_site" in f]
        self.assertEqual((len(parent), len(child)), (1, 1), profiles)
        self.assertNear(parent[0].get("parent_site", 0), 20 * MB, what="parent's parent_site")
        # the child holds what it inherited and what it allocated
        self.assertNear(child[0].get("parent_site", 0), 20 * MB, what="child's parent_site")
        self.assertNear(child[0].get("child_site", 0), 30 * MB, what="child's child_site")

    def test_fork_child_without_pid_writes_none(self):
        out = self.path("f.heap")
        run({"HAKMEM_PROF": out, "HAKMEM_PROF_RATE": ACCURATE_RATE}, "fork")
        self.assertEqual(os.listdir(self.dir), ["f.heap"])
        flat, _ = pprof(CHILD, out)
        self.assertNotIn("child_site", flat)  # the parent's, not overwritten by the child
        self.assertNear(flat.get("parent_site", 0), 20 * MB, what="parent_site")

    def test_dump_then__exit(self):
        d, out = self.path("d.heap"), self.path("exit.heap")
        run({"HAKMEM_PROF": out, "HAKMEM_PROF_RATE": ACCURATE_RATE}, "dump-then-_exit", d)
        self.assertFalse(os.path.exists(out))  # _exit runs no exit profile
        flat, _ = pprof(CHILD, d)
        self.assertNear(flat.get("alloc_big", 0), 20 * MB, what="alloc_big")

    def test_interval(self):
        out = self.path("i.heap")
        run({"HAKMEM_PROF": out, "HAKMEM_PROF_RATE": "65536", "HAKMEM_PROF_INTERVAL": "20000000"}, "interval")
        dumps = sorted(glob.glob(out + ".*"))
        # 110 MB live in the end: the estimate passed 20, 40, ... 100 MB
        self.assertGreaterEqual(len(dumps), 4, dumps)
        self.assertLessEqual(len(dumps), 6, dumps)
        self.assertEqual(dumps[0], out + ".0001")
        last = 0
        for dump in dumps:
            flat, _ = pprof(CHILD, dump)
            self.assertGreater(flat.get("alloc_big", 0), last)  # each holds more than the one before
            last = flat["alloc_big"]
        self.assertTrue(os.path.exists(out))

    def test_leaks(self):
        d1, d2, out = self.path("d1.heap"), self.path("d2.heap"), self.path("exit.heap")
        run({"HAKMEM_PROF": out, "HAKMEM_PROF_RATE": "16384", "HAKMEM_PROF_LEAKS": "1"}, "accuracy", d1, d2)
        # the exit profile holds only what was never freed, allocated figures included
        for opts in ((), ("--alloc_space",)):
            flat, _ = pprof(CHILD, out, *opts)
            self.assertNotIn("alloc_big", flat)
            self.assertNear(flat.get("alloc_small", 0), 10 * MB, what="alloc_small %s" % (opts,))
        # hak_prof_dump's profiles are whole
        flat, _ = pprof(CHILD, d2, "--alloc_space")
        self.assertIn("alloc_big", flat)

    def test_dlopened_code(self):
        # 20 MB in blocks of 1000 B at 16 KiB: about 1,200 samples, so the
        # estimate's spread (3%) is far inside the 20% asked (at 64 KiB,
        # 300 samples and 6%, one run in a few thousand missed it)
        d = self.path("d.heap")
        run({"HAKMEM_PROF": self.path("x.heap"), "HAKMEM_PROF_RATE": "16384"}, "plugin", PLUGIN, d)
        flat, _ = pprof(CHILD, d)
        self.assertNear(flat.get("plugin_alloc", 0), 20 * MB, what="plugin_alloc")

    def test_deep_stacks(self):
        # many samples from the same deep sites in 4 threads (the stack
        # walk's cached path), through frames of changing size and from a
        # signal handler: the bytes still land on the right functions
        d = self.path("d.heap")
        run({"HAKMEM_PROF": self.path("x.heap"), "HAKMEM_PROF_RATE": "32768"}, "deep", d)
        flat, total = pprof(CHILD, d, "--alloc_space")
        self.assertNear(flat.get("deep_site", 0), 64 * MB, what="deep_site allocated")
        self.assertNear(flat.get("sig_site", 0), 16 * MB, what="sig_site allocated")
        self.assertLess(total, 1.2 * 80 * MB + 2 * MB)  # nothing much anywhere else
        cum, _ = pprof(CHILD, d, "--alloc_space", cum=True)
        # every deep_site call is under deep_vla and deep_plain, the handler's
        # under on_usr1; all of it under deep_worker
        for fn in ("deep_vla", "deep_plain"):
            self.assertNear(cum.get(fn, 0), flat.get("deep_site", 0), tol=0.02, what="%s cumulative" % fn)
        self.assertNear(cum.get("on_usr1", 0), flat.get("sig_site", 0), tol=0.02, what="on_usr1 cumulative")
        self.assertNear(cum.get("deep_worker", 0), flat.get("deep_site", 0) + flat.get("sig_site", 0), tol=0.02,
                        what="deep_worker cumulative")

    def test_off(self):
        # no HAKMEM_PROF: nothing written, hak_prof_dump says so
        p = run({}, "plain", self.path("d.heap"))
        self.assertEqual(p.stdout, "dump=-1 errno=%d\n" % 95)  # ENOTSUP
        self.assertEqual(p.stderr, "")
        self.assertEqual(os.listdir(self.dir), [])

    def test_bad_values(self):
        out = self.path("p.heap")
        bad = [("HAKMEM_PROF_RATE", v) for v in ("0", "-5", "abc", "1.5", "", "2000000000000")]
        bad += [("HAKMEM_PROF_INTERVAL", v) for v in ("-1", "x", "1e9", "")]
        bad += [("HAKMEM_PROF_LEAKS", v) for v in ("maybe", "2")]
        bad += [("HAKMEM_PROF", "/" + "x" * 5000)]
        for var, value in bad:
            env = {"HAKMEM_PROF": out}
            env[var] = value
            p = run(env, "plain", self.path("d.heap"))
            lines = p.stderr.splitlines()
            self.assertEqual(len(lines), 1, (var, value, p.stderr))
            self.assertTrue(lines[0].startswith("hakmem: ignoring %s" % var), lines)
            self.assertIn("profiling off", lines[0])
            self.assertEqual(p.stdout, "dump=-1 errno=95\n", (var, value))  # off: ENOTSUP
            self.assertEqual(os.listdir(self.dir), [], (var, value))
        # an exit profile that cannot be written: the program still runs
        p = run({"HAKMEM_PROF": self.path("no/such/dir/p.heap")}, "plain", self.path("d.heap"))
        self.assertEqual(p.stdout, "dump=0 errno=0\n")
        self.assertTrue(os.path.exists(self.path("d.heap")))
        p = run({"HAKMEM_PROF": out}, "plain", self.path("no/such/dir/d.heap"))
        self.assertEqual(p.stdout, "dump=-1 errno=2\n")  # ENOENT

    def test_verbose(self):
        p = run({"HAKMEM_VERBOSE": "1", "HAKMEM_PROF": self.path("v-%p.heap"), "HAKMEM_PROF_RATE": "4096",
                 "HAKMEM_PROF_INTERVAL": "1000000", "HAKMEM_PROF_LEAKS": "yes"}, "plain")
        self.assertIn("hakmem: HAKMEM_PROF=%s HAKMEM_PROF_RATE=4096 HAKMEM_PROF_INTERVAL=1000000 "
                      "HAKMEM_PROF_LEAKS=on\n" % self.path("v-%p.heap"), p.stderr)
        p = run({"HAKMEM_VERBOSE": "1"}, "plain")
        self.assertIn("hakmem: HAKMEM_PROF=(off) HAKMEM_PROF_RATE=524288 HAKMEM_PROF_INTERVAL=0 "
                      "HAKMEM_PROF_LEAKS=off\n", p.stderr)


if __name__ == "__main__":
    if PPROF is None:
        print("google-pprof not found (Debian: apt-get install google-perftools): suite prof skipped")
        sys.exit(77)
    unittest.main()
