"""Suite `dispatch`: the run wrappers. bin/hakmem (the installed
`hakmem [--stats] [--verbose] PROGRAM ARGS...`, run here from the source
tree against the built library) and `./hakmem.sh run PROGRAM ARGS...`
preload libhakmem.so into a program that is not linked with it, pass its
arguments, exit status and output through, and set the flags' variables.
Usage: test_wrapper.py SOURCE_ROOT BUILD_ROOT LIBHAKMEM."""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SRC, BUILD, LIB = (os.path.abspath(a) for a in sys.argv[1:4])
del sys.argv[1:4]
WRAPPER = os.path.join(SRC, "bin", "hakmem")
SHOW = ["sh", "-c", 'printf "%s|" "$LD_PRELOAD" "$HAKMEM_STATS" "$HAKMEM_VERBOSE" "$@"', "sh"]


def run(cmd, env=None, cwd=None):
    # meson test sets MALLOC_PERTURB_, which hakmem's verbose lines name
    e = {k: v for k, v in os.environ.items()
         if not k.startswith(("HAKMEM_", "MALLOC_", "GLIBC_TUNABLES")) and k != "LD_PRELOAD"}
    e.update(env or {})
    return subprocess.run(cmd, env=e, cwd=cwd, capture_output=True, text=True, timeout=120)


class WrapperTest(unittest.TestCase):
    def test_preloads_and_passes_arguments(self):
        p = run([WRAPPER, "--library", LIB, *SHOW, "a b", "c"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "%s|||a b|c|" % LIB)
        self.assertEqual(p.stderr, "")

    def test_flags(self):
        p = run([WRAPPER, "--library", LIB, "--stats", "--verbose", *SHOW])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stdout, "%s|1|1|" % LIB)
        # sh itself ran on hakmem: its load-time lines name the library
        self.assertIn("hakmem: library %s\n" % LIB, p.stderr)
        # (dash leaves by _exit, without destructors: the report of a program that exits)
        p = run([WRAPPER, "--library", LIB, "--stats", "true"])
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(p.stderr.startswith("hakmem stats (pid "), p.stderr)
        with tempfile.TemporaryDirectory() as d:
            p = run([WRAPPER, "--library", LIB, "--stats-file", os.path.join(d, "s.%p"), "true"])
            self.assertEqual((p.returncode, p.stderr), (0, ""))
            files = os.listdir(d)
            self.assertEqual(len(files), 1, files)
            self.assertRegex(files[0], r"^s\.\d+$")
            with open(os.path.join(d, files[0])) as f:
                self.assertTrue(f.read().startswith("hakmem stats (pid "))

    def test_exit_status_and_usage(self):
        self.assertEqual(run([WRAPPER, "--library", LIB, "sh", "-c", "exit 3"]).returncode, 3)
        p = run([WRAPPER])
        self.assertEqual(p.returncode, 2)
        self.assertIn("hakmem [--stats] [--verbose]", p.stderr)
        self.assertEqual(run([WRAPPER, "--bogus", "true"]).returncode, 2)
        p = run([WRAPPER, "--library", "/nonexistent/libhakmem.so", "true"])
        self.assertEqual(p.returncode, 127)
        self.assertIn("no libhakmem.so found at /nonexistent/libhakmem.so", p.stderr)

    def test_finds_the_library_beside_it(self):
        # an installed tree: PREFIX/bin/hakmem and PREFIX/lib/libhakmem.so
        with tempfile.TemporaryDirectory() as d:
            os.makedirs(os.path.join(d, "bin"))
            os.makedirs(os.path.join(d, "lib"))
            shutil.copy(WRAPPER, os.path.join(d, "bin", "hakmem"))
            os.symlink(LIB, os.path.join(d, "lib", "libhakmem.so"))
            p = run([os.path.join(d, "bin", "hakmem"), *SHOW])
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout.split("|")[0], os.path.join(d, "lib", "libhakmem.so"))

    def test_install_form(self):
        # meson's copy for installation has the library directory filled in
        with open(os.path.join(BUILD, "hakmem")) as f:
            text = f.read()
        self.assertNotIn("@HAKMEM_LIBDIR@", text)
        self.assertRegex(text, r"installed_lib='/\S+/libhakmem\.so'")
        self.assertTrue(os.access(os.path.join(BUILD, "hakmem"), os.X_OK))

    def test_hakmem_sh_run(self):
        with tempfile.TemporaryDirectory() as d:
            # relative paths are the caller's: run from another directory
            p = run([os.path.join(SRC, "hakmem.sh"), "run", "--builddir", BUILD, *SHOW, "x y"], cwd=d)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertEqual(p.stdout, "%s/libhakmem.so|||x y|" % os.path.realpath(BUILD))
            self.assertEqual(p.stderr, "")
            p = run([os.path.join(SRC, "hakmem.sh"), "run", "--builddir", BUILD, "sh", "-c", "pwd; exit 5"], cwd=d)
            self.assertEqual(p.returncode, 5)
            self.assertEqual(p.stdout.strip(), os.path.realpath(d))
            p = run([os.path.join(SRC, "hakmem.sh"), "run", "--builddir", BUILD, "true"], env={"HAKMEM_STATS": "1"})
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(p.stderr.startswith("hakmem stats (pid "), p.stderr)
        p = run([os.path.join(SRC, "hakmem.sh"), "run"])
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
