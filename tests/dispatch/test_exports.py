# SPDX-License-Identifier: MIT
"""Suite `dispatch`: libhakmem.so exports exactly the public API: the glibc
names, C++'s operator new and delete, C23's sized frees, and what include/hakmem/hakmem.h declares with
HAK_API (with tiny.h, which it includes; the tiny names only in builds
with the tiny tier), nothing else: no hak_mid_*, hak_l25_*, hak_large_*,
vtables, platform functions or hak_*_ internals.

usage: test_exports.py LIBHAKMEM_SO HAKMEM_H TINY_H GEN_EXPORTS_PY"""
import importlib.util
import subprocess
import sys
import unittest

LIB, HAKMEM_H, TINY_H, GEN = sys.argv[1:5]
del sys.argv[1:5]

spec = importlib.util.spec_from_file_location("gen_exports", GEN)
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

GLIBC = {
    "malloc", "free", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc",
    "memalign", "valloc", "pvalloc", "malloc_usable_size", "malloc_trim", "mallinfo", "mallinfo2",
    "mallopt", "malloc_stats", "malloc_info", "cfree",
    "__libc_malloc", "__libc_free", "__libc_calloc", "__libc_realloc", "__libc_memalign",
    "__libc_valloc", "__libc_pvalloc",
}
# operator new and delete, every replaceable form of C++17 by its
# Itanium name: new and new[] (_Znwm, _Znam) with an optional alignment
# and an optional nothrow tag; delete and delete[] (_ZdlPv, _ZdaPv) with
# an optional size and an optional alignment, or without a size, an
# optional alignment and the nothrow tag.
ALIGN, NOTHROW = "St11align_val_t", "RKSt9nothrow_t"
CXX = {op + a + nt for op in ("_Znwm", "_Znam") for a in ("", ALIGN) for nt in ("", NOTHROW)}
CXX |= {op + sz + a for op in ("_ZdlPv", "_ZdaPv") for sz in ("", "m") for a in ("", ALIGN)}
CXX |= {op + a + NOTHROW for op in ("_ZdlPv", "_ZdaPv") for a in ("", ALIGN)}
# A few the headers must declare (so that a parser that finds nothing fails).
CORE = {"hak_malloc", "hak_free", "hak_owner", "hak_get_stats", "hak_version", "free_sized",
        "free_aligned_sized"}
# tiny.h's hak_tiny_* functions are defined where the tier is built; the
# rest of it (the failure handler) is the platform layer's, always there.
TINY_DECLS = set(gen.declared(TINY_H))
TINY_API = {n for n in TINY_DECLS if n.startswith("hak_tiny_")}
HAKMEM_API = set(gen.declared(HAKMEM_H)) | (TINY_DECLS - TINY_API)


def exported():
    out = subprocess.run(["nm", "-D", "--defined-only", LIB], capture_output=True, text=True, check=True).stdout
    return {line.split()[-1].split("@")[0] for line in out.splitlines() if line.strip()}


class ExportsTest(unittest.TestCase):
    def test_headers_parsed(self):
        self.assertLessEqual(CORE, HAKMEM_API)
        self.assertIn("hak_tiny_alloc", TINY_API)
        self.assertIn("hak_set_failure_handler", HAKMEM_API)
        self.assertEqual(set(gen.GLIBC), GLIBC)
        self.assertEqual(set(gen.CXX), CXX)

    def test_exact_set(self):
        syms = exported()
        want = GLIBC | CXX | HAKMEM_API
        missing = want - syms
        self.assertFalse(missing, "missing exports: %s" % sorted(missing))
        # the hak_tiny_* functions: all of them where the tier is built, else none
        tiny = syms & TINY_API
        self.assertIn(tiny, (set(), TINY_API))
        extra = syms - want - TINY_API
        self.assertFalse(extra, "unexpected exports: %s" % sorted(extra))

    def test_no_internal(self):
        syms = exported()
        for prefix in ("hak_mid_", "hak_l25_", "hak_large_", "hak_pool_", "hak_chunk_", "hak_purge_",
                       "hak_os_", "hak_fork_"):
            self.assertFalse({s for s in syms if s.startswith(prefix)}, prefix)
        self.assertFalse({s for s in syms if s.endswith("_vtable") or s.endswith("_")})

    def test_soname(self):
        out = subprocess.run(["readelf", "-d", LIB], capture_output=True, text=True, check=True).stdout
        self.assertRegex(out, r"Library soname: \[libhakmem\.so\.0\]")


if __name__ == "__main__":
    unittest.main()
