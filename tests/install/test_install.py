#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Suite `install`: hakmem as a user gets it.

usage: test_install.py BUILD_ROOT SOURCE_ROOT MESON CC... -- CASE

CASE is one of
  pkg-config  `meson install --destdir` into a temporary directory; the
              installed headers are exactly hakmem.h, tiny.h and version.h
              and each compiles alone against that include directory only;
              the man page is share/man/man3/hakmem.3 (mandir);
              `cc prog.c $(pkg-config --cflags --libs hakmem)` builds a
              program that runs on the installed libhakmem.so (hak_version,
              malloc from hakmem); `pkg-config --static` links libhakmem.a
              into a program that needs no libhakmem.so; hakmem-tiny.pc
              links libhakmem-tiny.a
  subproject  tests/install/consumer, with subprojects/hakmem linking to
              the source tree, configured with -Dhakmem:tests=false: no
              cmocka asked for, no benchmark built, and its program links
              hakmem through dependency('hakmem', fallback: ...) and runs.
Exit 77 (skipped) when a tool it needs is missing."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
HERE = os.path.dirname(os.path.abspath(__file__))

sep = sys.argv.index("--")
BUILD, SOURCE, MESON = sys.argv[1:4]
CC = sys.argv[4:sep]
CASE = sys.argv[sep + 1]


def run(cmd, echo=True, **kw):
    print("+", " ".join(cmd), flush=True)
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.stdout and echo:
        print(r.stdout, end="")
    if r.returncode != 0:
        print(r.stderr, end="", file=sys.stderr)
        raise SystemExit("failed (%d): %s" % (r.returncode, " ".join(cmd)))
    return r.stdout


def pkgconfig(root, *args):
    """pkg-config on the installed .pc files, their prefix moved under root."""
    env = dict(os.environ, PKG_CONFIG_PATH="", PKG_CONFIG_LIBDIR=PCDIR[0])
    out = run(["pkg-config", "--define-variable=prefix=" + root + PREFIX[0]] + list(args), env=env)
    return out.split()


PCDIR = [None]
PREFIX = [None]


def needed(prog):
    out = run(["readelf", "-d", prog], echo=False)
    return [l.split("[")[1].rstrip("]") for l in out.splitlines() if "(NEEDED)" in l]


def case_pkgconfig(tmp):
    if shutil.which("pkg-config") is None or shutil.which("readelf") is None:
        print("pkg-config or readelf missing")
        return SKIP
    dest = os.path.join(tmp, "dest")
    run([MESON, "install", "-C", BUILD, "--destdir", dest, "--no-rebuild", "--quiet"])
    opts = {}
    for o in json.loads(run([MESON, "introspect", "--buildoptions", BUILD], echo=False)):
        opts[o["name"]] = o["value"]
    PREFIX[0] = opts["prefix"]
    root = dest
    libdir = os.path.join(opts["prefix"], opts["libdir"])   # (an absolute libdir stays as it is)
    PCDIR[0] = root + os.path.join(libdir, "pkgconfig")
    incdir = root + os.path.join(opts["prefix"], opts["includedir"], "hakmem")

    # the headers: exactly the public ones, each complete alone
    headers = sorted(os.listdir(incdir))
    if headers != ["hakmem.h", "tiny.h", "version.h"]:
        raise SystemExit("installed headers: %s" % headers)
    cflags = pkgconfig(root, "--cflags", "hakmem")
    for h in headers:
        src = os.path.join(tmp, "h.c")
        with open(src, "w") as f:
            f.write("#include <hakmem/%s>\nint main(void) { return 0; }\n" % h)
        run(CC + ["-Werror", "-Wall", "-c", src, "-o", os.path.join(tmp, "h.o")] + cflags)

    # the man page hakmem(3)
    man = root + os.path.join(opts["prefix"], opts["mandir"], "man3", "hakmem.3")
    if not os.path.isfile(man):
        raise SystemExit("man page not installed: %s" % man)

    # shared: cc prog.c $(pkg-config --cflags --libs hakmem)
    prog = os.path.join(tmp, "prog")
    run(CC + [os.path.join(HERE, "prog.c"), "-o", prog] + pkgconfig(root, "--cflags", "--libs", "hakmem") + ["-ldl"])
    if "libhakmem.so.0" not in needed(prog):
        raise SystemExit("prog does not need libhakmem.so.0: %s" % needed(prog))
    run([prog, "libhakmem.so"], env=dict(os.environ, LD_LIBRARY_PATH=root + libdir))

    # static: libhakmem.a and the private libraries of hakmem.pc
    sprog = os.path.join(tmp, "prog-static")
    run(CC + [os.path.join(HERE, "prog.c"), "-o", sprog] + pkgconfig(root, "--cflags", "hakmem")
        + ["-Wl,-Bstatic"] + pkgconfig(root, "--static", "--libs", "hakmem") + ["-Wl,-Bdynamic", "-ldl"])
    if any(n.startswith("libhakmem") for n in needed(sprog)):
        raise SystemExit("prog-static needs %s" % needed(sprog))
    run([sprog, os.path.basename(sprog)])

    # the tiny tier alone, where it is built
    if os.path.exists(os.path.join(PCDIR[0], "hakmem-tiny.pc")):
        tprog = os.path.join(tmp, "prog-tiny")
        run(CC + [os.path.join(HERE, "prog_tiny.c"), "-o", tprog]
            + pkgconfig(root, "--cflags", "--libs", "--static", "hakmem-tiny"))
        run([tprog])
    return 0


def case_subproject(tmp):
    proj = os.path.join(tmp, "consumer")
    shutil.copytree(os.path.join(HERE, "consumer"), proj)
    shutil.copy(os.path.join(HERE, "prog.c"), proj)
    os.mkdir(os.path.join(proj, "subprojects"))
    os.symlink(os.path.abspath(SOURCE), os.path.join(proj, "subprojects", "hakmem"))
    bdir = os.path.join(tmp, "b")
    env = dict(os.environ, CC=" ".join(CC))
    run([MESON, "setup", bdir, proj, "-Dhakmem:tests=false", "--force-fallback-for=hakmem"], env=env)
    with open(os.path.join(bdir, "meson-logs", "meson-log.txt")) as f:
        log = f.read()
    if "cmocka" in log:
        raise SystemExit("configuring with -Dhakmem:tests=false looked for cmocka")
    run(["ninja", "-C", bdir], echo=False)
    for dirpath, _, files in os.walk(bdir):
        if any(f.startswith(("bench_", "larson")) for f in files):
            raise SystemExit("benchmarks built in a consumer's build: %s" % dirpath)
    run([os.path.join(bdir, "consumer"), "libhakmem.so"])
    return 0


def main():
    if not CC or shutil.which(CC[0]) is None:
        print("no C compiler")
        return SKIP
    with tempfile.TemporaryDirectory(prefix="hakmem-install-") as tmp:
        return {"pkg-config": case_pkgconfig, "subproject": case_subproject}[CASE](tmp)


if __name__ == "__main__":
    sys.exit(main())
