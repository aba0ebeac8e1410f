#!/usr/bin/env bash
# hakmem.sh - the README's quick start.
#   ./hakmem.sh bench        build, then run the benchmark comparison (the main job)
#   ./hakmem.sh bench --full the same with the full-length durations
#   ./hakmem.sh test         build and run every test (the configurations CI runs)
#   ./hakmem.sh matrix       every header_classidx x class7_header_width x validation
#                            combination, and the arena backend of the standalone tiny build
#   ./hakmem.sh deps         only install what the others need (root, Debian 12)
#   ./hakmem.sh run [--builddir DIR] PROGRAM ARGS...
#                            build (DIR, default build) if needed, then run PROGRAM
#                            with LD_PRELOAD=DIR/libhakmem.so (bin/hakmem is the
#                            installed form, with --stats and --verbose)
set -euo pipefail
CALLER_PWD=$PWD
cd "$(dirname "$0")"

BUILD_DEPS=(gcc meson ninja-build pkg-config libcmocka-dev python3 binutils valgrind)
BENCH_DEPS=(libmimalloc2.0 libjemalloc2 libtcmalloc-minimal4 valgrind gnuplot-nox)
PRELOAD_DEPS=(perl sqlite3 git nginx-light curl wrk coreutils)
PROF_DEPS=(google-perftools)   # google-pprof, which suite prof reads the heap profiles with

install_deps() {
    local missing=()
    for p in "$@"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        echo "hakmem: missing Debian packages: ${missing[*]} (run as root, or: sudo apt-get install ${missing[*]})" >&2
        return 1
    fi
    echo "hakmem: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq "${missing[@]}" >/dev/null
}

# The project's own options at their defaults (-Dname=value each), read
# from the sources: a build directory configured by hand earlier (say with
# -Dheader_classidx=true) is put back to what its name promises.
defaults_of() {
    meson introspect "$1/meson.build" --buildoptions | python3 -c '
import json, sys
def text(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return ",".join(v) if isinstance(v, list) else str(v)
for o in json.load(sys.stdin):
    if o["section"] == "user" and ":" not in o["name"]:
        print("-D%s=%s" % (o["name"], text(o["value"])))
'
}

# setup DIR SRCDIR [meson options...]: configure once, then on every later
# call reset the options to the defaults plus those given
setup() {
    local dir=$1 src=$2; shift 2
    if [ -f "$dir/build.ninja" ]; then
        local defaults
        mapfile -t defaults < <(defaults_of "$src")
        meson configure "$dir" -Dbuildtype=release -Db_ndebug=if-release "${defaults[@]}" "$@" >/dev/null
    else
        meson setup "$dir" "$src" "$@" >/dev/null
    fi
    ninja -C "$dir" >/dev/null
}

# check NAME DIR SRC [options...]: build and run the tests of one
# configuration (all of them, or those TEST_ARGS selects: --suite, --setup)
check() {
    local name=$1 dir=$2 src=$3; shift 3
    echo "== $name ($src $* ${TEST_ARGS:-})"
    setup "$dir" "$src" -Dwerror=true "$@"
    # shellcheck disable=SC2086
    meson test -C "$dir" --print-errorlogs --num-processes 2 ${TEST_ARGS:-} |
        grep -E "^ *[0-9]+/[0-9]+ |^Ok:|^Fail:|^Skipped:|^Timeout:"
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "hakmem: $name failed" >&2; exit 1; }
}

TIER_SUITES="--suite platform --suite tiny --suite mid --suite l25 --suite large"

case "${1:-}" in
deps)
    install_deps "${BUILD_DEPS[@]}" "${BENCH_DEPS[@]}" "${PRELOAD_DEPS[@]}" "${PROF_DEPS[@]}" clang g++
    ;;
test)
    install_deps "${BUILD_DEPS[@]}"
    install_deps "${PRELOAD_DEPS[@]}" || echo "hakmem: preload tests of missing programs will be skipped" >&2
    install_deps clang || echo "hakmem: no clang, its configuration will be skipped" >&2
    install_deps g++ || echo "hakmem: no g++, the C++ operator new test will be skipped" >&2
    install_deps "${PROF_DEPS[@]}" || echo "hakmem: no google-pprof, suite prof will be skipped" >&2
    check default build .
    # the real programs (preload) run in the default configuration only
    TEST_ARGS="--no-suite preload" \
        check header-w1-gd build-header . -Dheader_classidx=true -Dclass7_header_width=1 -Dtls_model=global-dynamic -Dbenchmarks=false
    TEST_ARGS="--no-suite preload" \
        check header-width2-full build-width2-full . -Dheader_classidx=true -Dclass7_header_width=2 -Dvalidation=full -Dbenchmarks=false
    TEST_ARGS="--no-suite preload" check headerless-full build-headerless-full . -Dvalidation=full -Dbenchmarks=false
    TEST_ARGS="--no-suite preload --no-suite stress" check tiers-tiny-large build-tiny-large . -Dtiers=tiny,large -Dbenchmarks=false
    TEST_ARGS="--no-suite preload --no-suite stress" \
        check tiers-mid-l25-large build-mid-l25-large . -Dtiers=mid,l25,large -Dbenchmarks=false
    # a second compiler: clang folds and assumes more of malloc than gcc
    if command -v clang >/dev/null; then
        CC=clang TEST_ARGS="--no-suite preload --no-suite slow" check clang build-clang . -Dbenchmarks=false
    fi
    check tiny-standalone build-tiny src/tiny
    check tiny-standalone-header build-tiny-header src/tiny -Dheader_classidx=true
    check arena build-embedded src/tiny -Dplatform=arena
    # Sanitizers replace malloc itself: they run the tier suites and the
    # stress test through the hak_ entry points (docs/reliability.md).
    TEST_ARGS="$TIER_SUITES --suite fuzz --suite stress" \
        check asan-ubsan build-asan . -Db_sanitize=address,undefined -Db_lundef=false -Dbenchmarks=false
    TEST_ARGS="--suite tiny --suite mid --suite l25 --suite large --suite stress" \
        check tsan build-tsan . -Db_sanitize=thread -Db_lundef=false -Dbenchmarks=false
    TEST_ARGS="$TIER_SUITES --no-suite slow --setup valgrind" check valgrind build .
    echo "hakmem: all test configurations passed"
    ;;
matrix)
    install_deps "${BUILD_DEPS[@]}"
    for h in true false; do for w in 1 2; do for v in none magic full; do
        check "tiny h=$h w=$w v=$v" "build-matrix/tiny-$h-$w-$v" src/tiny \
            -Dheader_classidx=$h -Dclass7_header_width=$w -Dvalidation=$v
        check "arena h=$h w=$w v=$v" "build-matrix/arena-$h-$w-$v" src/tiny \
            -Dheader_classidx=$h -Dclass7_header_width=$w -Dvalidation=$v -Dplatform=arena
        TEST_ARGS="--no-suite preload --no-suite stress" check "all h=$h w=$w v=$v" "build-matrix/all-$h-$w-$v" . \
            -Dheader_classidx=$h -Dclass7_header_width=$w -Dvalidation=$v -Dbenchmarks=false
    done; done; done
    echo "hakmem: every combination passed"
    ;;
run)
    shift
    dir=build
    if [ "${1:-}" = --builddir ]; then
        [ $# -ge 2 ] || { echo "hakmem: run --builddir needs a directory" >&2; exit 2; }
        dir=$(cd "$CALLER_PWD" && cd "$2" && pwd)
        shift 2
    fi
    [ $# -ge 1 ] || { echo "usage: ./hakmem.sh run [--builddir DIR] PROGRAM ARGS..." >&2; exit 2; }
    # build only what is missing or stale; a directory never configured gets
    # the default build (quiet: the build's output is shown only if it fails)
    if [ ! -f "$dir/build.ninja" ]; then
        out=$(meson setup "$dir" . 2>&1) || { echo "$out" >&2; exit 1; }
    fi
    out=$(ninja -C "$dir" 2>&1) || { echo "$out" >&2; echo "hakmem: the build in $dir failed" >&2; exit 1; }
    lib=$(cd "$dir" && pwd)/libhakmem.so
    cd "$CALLER_PWD"
    LD_PRELOAD="$lib${LD_PRELOAD:+:$LD_PRELOAD}" exec "$@"
    ;;
bench)
    shift
    install_deps "${BUILD_DEPS[@]}"
    install_deps "${BENCH_DEPS[@]}" || echo "hakmem: peers that are not installed will be skipped" >&2
    setup build .
    python3 bench/run.py --builddir build "$@"
    ;;
*)
    sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
    ;;
esac
