# SPDX-License-Identifier: MIT
"""Suite `dispatch`: libhakmem.so exports exactly the brief's list (the
glibc names, C23's sized frees, and the hak_ API), nothing else."""
import re
import subprocess
import sys
import unittest

LIB = sys.argv.pop(1)

GLIBC = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo", "mallinfo2",
    "mallopt", "malloc_stats", "malloc_info", "cfree",
    "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
    "__libc_valloc", "__libc_pvalloc",
    "free_sized", "free_aligned_sized",
}


class ExportsTest(unittest.TestCase):
    def test_dynamic_symbols(self):
        out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True, text=True, check=True).stdout
        syms = {line.split()[-1] for line in out.splitlines() if line.strip()}
        syms = {s.split("@")[0] for s in syms}
        missing = GLIBC - syms
        self.assertFalse(missing, "missing exports: %s" % sorted(missing))
        extra = {s for s in syms - GLIBC if not s.startswith("hak_")}
        self.assertFalse(extra, "unexpected exports: %s" % sorted(extra))
        # internal names never leak: they end with '_' by convention
        self.assertFalse({s for s in syms if s.startswith("hak_") and s.endswith("_")})

    def test_soname(self):
        out = subprocess.run(["readelf", "-d", LIB], capture_output=True, text=True, check=True).stdout
        self.assertRegex(out, r"Library soname: \[libhakmem\.so\.0\]")


if __name__ == "__main__":
    unittest.main()
