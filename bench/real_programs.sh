#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# real_programs.sh - time real programs under glibc malloc and under hakmem.
#
# What it measures: a set of everyday programs (node, python3, perl, sqlite3,
# sort, xz, gcc, git, jq), each given a short workload (0.5-5 s under glibc)
# with a realistic allocation pattern, is run under glibc (no preload), under
# hakmem (LD_PRELOAD exported to the whole command, so every child process -
# cc1/as/ld under gcc, git's helpers, bash itself - uses it too) and under any
# extra preloads given with -p. Rounds are interleaved (round 1 runs every
# program under every allocator, then round 2, ...; the allocator order
# rotates from round to round), so slow drift of a shared machine hits all
# allocators alike. Each run goes through
#     /usr/bin/time -f '%e %S %R %M'
# i.e. elapsed wall seconds, system CPU seconds, minor page faults, and peak
# resident set in KiB. Faults and system time are summed over the waited-for
# children; peak RSS is the largest single process's peak among them (not a
# sum), so for multi-process workloads it is the biggest process's peak.
#
# How to read the table: one line per program and allocator, with the median
# over the rounds of each figure, then the ratio of that median to glibc's
# (time = elapsed, flt = minor faults, rss = peak RSS). Below 1.00 is better
# than glibc, above is worse. Elapsed time on a shared machine is noisy:
# compare ratios well away from 1.00, or rerun with more rounds (-n). The
# last column says whether the program's output (sha256 of its stdout) was
# the same in every round under every allocator ("ok"), or MISMATCH; a run
# that exited non-zero shows FAIL(rc) and its stderr tail is printed.
#
# The workloads (sized for a busy 2-core machine; scale them in the gen_*
# functions): node - Maps of 60k objects built and dropped, 300 Buffers of
# 1-64 KiB concatenated, zlib deflate/inflate, JSON round trip; python3 -
# (PYTHONMALLOC=malloc) a list of 100k dicts built and dropped 40 times, json
# dumps/loads of a 5 MB document; perl - a 100k-key hash built and sorted;
# sqlite3 - 100k INSERTs in one transaction into :memory:, two indexes,
# aggregate queries; sort - sort -S 50M of a 20 MB file; xz - xz -T2 -6
# (2 MiB blocks) of 4 MiB and back; gcc - gcc -O2 of a generated 2,000-line
# C file, linked and run; git - init, commit 1,000 small files in 10 commits,
# 3 commits changing 100 files, git log --stat/-p, gc, fsck; jq - group_by
# and select over a 40k-object (6 MB) JSON array.
#
# Inputs are generated deterministically (seeded) in a temporary directory
# that is removed on exit (keep it with -k).
set -euo pipefail

usage() {
    cat <<'EOF'
usage: bench/real_programs.sh [-n N] [-l LIB] [-p NAME=PATH]... [-w LIST] [-k] [-h]
  -n N          rounds per program and allocator, interleaved (default 3)
  -l LIB        hakmem library to preload (default build/libhakmem.so
                relative to the repository root)
  -p NAME=PATH  another allocator to compare, preloaded the same way; may be
                repeated, e.g. -p tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc_minimal.so.4
                               -p mimalloc=/usr/lib/x86_64-linux-gnu/libmimalloc.so.2
  -w LIST       only these workloads, comma-separated
                (default: node,python3,perl,sqlite3,sort,xz,gcc,git,jq)
  -k            keep the temporary directory (its path is printed)
  -h            this text
Environment: TMPDIR picks where the temporary directory goes (it holds
about 150 MB); PYTHON3 the python interpreter to use (default /usr/bin/python3
when present, else python3 from PATH).
Table: median elapsed s, system s, minor faults, peak RSS (MiB), then each
allocator's ratios to glibc (time, faults, RSS) and the output check.
EOF
}

die() { echo "real_programs.sh: $*" >&2; exit 1; }
note() { echo "real_programs.sh: $*" >&2; }

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
ROUNDS=3
LIB=$REPO/build/libhakmem.so
KEEP=0
ALL_WORKLOADS=node,python3,perl,sqlite3,sort,xz,gcc,git,jq
WORKLOADS=$ALL_WORKLOADS
EXTRA=()

while getopts ":n:l:p:w:kh" opt; do
    case $opt in
    n) ROUNDS=$OPTARG ;;
    l) LIB=$OPTARG ;;
    p) EXTRA+=("$OPTARG") ;;
    w) WORKLOADS=$OPTARG ;;
    k) KEEP=1 ;;
    h) usage; exit 0 ;;
    :) usage >&2; die "option -$OPTARG needs an argument" ;;
    *) usage >&2; die "unknown option -$OPTARG" ;;
    esac
done
shift $((OPTIND - 1))
[ $# -eq 0 ] || { usage >&2; die "unexpected argument: $1"; }
[[ $ROUNDS =~ ^[1-9][0-9]*$ ]] || die "-n wants a positive integer, not '$ROUNDS'"

[ -x /usr/bin/time ] || die "/usr/bin/time is missing (Debian: apt-get install time)"
for c in sha256sum awk sort; do
    command -v "$c" >/dev/null || die "$c is missing (coreutils/gawk)"
done
if [ -n "${PYTHON3:-}" ]; then
    PY=$PYTHON3
elif [ -x /usr/bin/python3 ]; then
    PY=/usr/bin/python3   # not a pyenv shim: no wrapper scripts in the timing
else
    PY=$(command -v python3 || true)
fi
[ -n "$PY" ] && "$PY" -c 'pass' 2>/dev/null ||
    die "python3 is needed to generate the inputs (Debian: apt-get install python3)"

# check_preload NAME PATH: the library exists and the dynamic loader really
# maps it (ld.so only warns and goes on when a preload cannot be loaded)
check_preload() {
    local name=$1 path=$2 real
    [ -e "$path" ] || { note "$name: $path does not exist"; return 1; }
    real=$(readlink -f "$path")
    if ! env LD_PRELOAD="$real" cat /proc/self/maps 2>/dev/null | grep -qF "$real"; then
        note "$name: $path cannot be preloaded:"
        env LD_PRELOAD="$real" /bin/true 2>&1 | head -3 >&2
        return 1
    fi
}

ALLOC_NAMES=(glibc)
ALLOC_LIBS=("")
LIB_REAL=$(readlink -f "$LIB" 2>/dev/null || true)
check_preload hakmem "$LIB" ||
    die "hakmem library unusable: $LIB (build it: meson setup build && ninja -C build, or pick one with -l)"
ALLOC_NAMES+=(hakmem); ALLOC_LIBS+=("$LIB_REAL")
for e in "${EXTRA[@]}"; do
    [[ $e == ?*=?* ]] || die "-p wants NAME=PATH, not '$e'"
    n=${e%%=*}; p=${e#*=}
    [[ $n =~ ^[A-Za-z0-9_.+-]+$ ]] || die "-p: bad name '$n'"
    for have in "${ALLOC_NAMES[@]}"; do [ "$have" != "$n" ] || die "-p: name '$n' used twice"; done
    if check_preload "$n" "$p"; then
        ALLOC_NAMES+=("$n"); ALLOC_LIBS+=("$(readlink -f "$p")")
    else
        note "skipping allocator $n"
    fi
done
NA=${#ALLOC_NAMES[@]}

WORK=$(mktemp -d "${TMPDIR:-/tmp}/real_programs.XXXXXX") || die "cannot create a temporary directory"
cleanup() {
    if [ "$KEEP" = 1 ]; then note "kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$WORK/in" "$WORK/wl" "$WORK/res" "$WORK/run" "$WORK/home"

# ---------------------------------------------------------------- workloads
# Each workload is a bash script $WORK/wl/NAME.sh run with the work directory
# $WORK/run/NAME as its cwd; its stdout is the output that must match.
SKIPPED=()
have() { command -v "$1" >/dev/null 2>&1; }

gen_node() {
    cat >"$WORK/in/node.js" <<'JS'
'use strict';
const zlib = require('zlib');
const crypto = require('crypto');
let s = 12345;                       // mulberry32: deterministic
function rnd() {
  s = (s + 0x6D2B79F5) | 0;
  let t = Math.imul(s ^ (s >>> 15), 1 | s);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
}
const h = crypto.createHash('sha256');
let total = 0;
for (let round = 0; round < 2; round++) {
  // Maps of objects, built and dropped
  const m = new Map();
  for (let i = 0; i < 60000; i++) {
    m.set('k' + i + '-' + round, { id: i, name: 'item' + (i * 7 % 1000),
      tags: ['a' + (i % 13), 'b' + (i % 17)], v: rnd() });
  }
  let acc = 0;
  for (const [k, o] of m) if (o.id % 97 === 0) acc += o.tags.length + k.length;
  // Buffers of 1-64 KiB, concatenated, deflated and inflated
  const bufs = [];
  for (let i = 0; i < 300; i++) {
    const n = 1024 + Math.floor(rnd() * 63 * 1024);
    const b = Buffer.allocUnsafe(n);
    const c = 97 + (i % 26);
    for (let j = 0; j < n; j += 64) b.fill(j & 256 ? c : c + 1, j, Math.min(n, j + 64));
    bufs.push(b);
  }
  const big = Buffer.concat(bufs);
  for (let i = 0; i < bufs.length; i += 10) {
    const z = zlib.deflateSync(bufs[i]);
    const back = zlib.inflateSync(z);
    if (!back.equals(bufs[i])) throw new Error('zlib round trip');
    total += z.length;
  }
  const zb = zlib.gzipSync(big, { level: 6 });
  total += zlib.gunzipSync(zb).length;
  // JSON round trip
  const arr = [];
  for (const o of m.values()) if (o.id % 3 === 0) arr.push(o);
  const txt = JSON.stringify(arr);
  const back = JSON.parse(txt);
  h.update(txt.slice(0, 4096));
  total += back.length + acc + big.length;
}
console.log(total, h.digest('hex'));
JS
    cat >"$WORK/wl/node.sh" <<EOF
exec "$(command -v node)" "$WORK/in/node.js"
EOF
}

gen_python3() {
    cat >"$WORK/in/py.py" <<'PY'
import json, hashlib, random
r = random.Random(7)
n = 0
for rep in range(40):
    l = [{"id": i, "rep": rep} for i in range(100000)]
    n += len(l) + l[-1]["id"]
    del l
doc = [{"id": i, "key": "k%07d" % r.randrange(10**7), "vals": [r.random() for _ in range(8)],
        "tags": ["t%d" % (i % 50), "u%d" % (i % 7)], "sub": {"a": i, "b": str(i) * 3}}
       for i in range(20000)]
s = json.dumps(doc)
for _ in range(1):
    d = json.loads(s)
    s = json.dumps(d)
print(n, len(s), hashlib.sha256(s.encode()).hexdigest())
PY
    cat >"$WORK/wl/python3.sh" <<EOF
export PYTHONMALLOC=malloc PYTHONHASHSEED=0 PYTHONDONTWRITEBYTECODE=1
exec "$PY" "$WORK/in/py.py"
EOF
}

gen_perl() {
    cat >"$WORK/in/hash.pl" <<'PL'
use strict; use warnings;
my %h; my $x = 42;
for my $i (1 .. 100000) {
    $x = ($x * 1103515245 + 12345) % 2147483648;
    $h{"key$x"} = [$i, "v" x ($i % 40), $x % 1000];
}
my @k = sort { $h{$a}[2] <=> $h{$b}[2] or $a cmp $b } keys %h;
my %inv; push @{ $inv{ $h{$_}[2] } }, $_ for @k[0 .. 49999];
my $s = 0; $s += length($_) for @k;
print scalar(@k), " $s $k[0] $k[-1] ", scalar(keys %inv), "\n";
PL
    cat >"$WORK/wl/perl.sh" <<EOF
export PERL_HASH_SEED=0 PERL_PERTURB_KEYS=0
exec perl "$WORK/in/hash.pl"
EOF
}

gen_sqlite3() {
    "$PY" - "$WORK/in/sqlite.sql" <<'PY'
import random, sys
r = random.Random(3)
words = ["alpha", "beta", "gamma", "delta", "omega", "sigma", "kappa", "zeta"]
with open(sys.argv[1], "w") as f:
    f.write("CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, score REAL, note TEXT);\nBEGIN;\n")
    for i in range(100000):
        f.write("INSERT INTO t VALUES(%d,%d,'%s%d',%.3f,'%s');\n" % (
            i, r.randrange(500), r.choice(words), r.randrange(10**6), r.random() * 100,
            " ".join(r.choice(words) for _ in range(r.randrange(1, 8)))))
    f.write("COMMIT;\nCREATE INDEX t_grp ON t(grp, score);\nCREATE INDEX t_name ON t(name);\n")
    f.write("SELECT grp, count(*), printf('%.3f', avg(score)), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 20;\n")
    f.write("SELECT count(DISTINCT name), printf('%.2f', sum(score)) FROM t;\n")
    f.write("SELECT substr(name,1,4) AS p, count(*), group_concat(id % 10, '') FROM t WHERE grp < 50 GROUP BY p ORDER BY p;\n")
    f.write("SELECT note, count(*) FROM t GROUP BY note ORDER BY 2 DESC, 1 LIMIT 5;\n")
PY
    cat >"$WORK/wl/sqlite3.sh" <<EOF
exec sqlite3 :memory: <"$WORK/in/sqlite.sql"
EOF
}

gen_text() {   # 20 MB of lines for sort; its first 4 MiB for xz
    [ -f "$WORK/in/text" ] && return 0
    "$PY" - "$WORK/in/text" <<'PY'
import random, sys
r = random.Random(11)
words = ["the", "allocator", "page", "span", "thread", "cache", "free", "list", "slab",
         "arena", "segment", "heap", "lock", "batch", "remote", "size", "class", "block"]
out, size = [], 0
while size < 20 * 1024 * 1024:
    line = "%08d %s %d\n" % (r.randrange(10**8), " ".join(r.choice(words) for _ in range(r.randrange(2, 12))),
                            r.randrange(1000))
    out.append(line); size += len(line)
with open(sys.argv[1], "w") as f:
    f.write("".join(out))
PY
    head -c $((4 * 1024 * 1024)) "$WORK/in/text" >"$WORK/in/text4"
}

gen_sort() {
    gen_text
    cat >"$WORK/wl/sort.sh" <<EOF
export LC_ALL=C TMPDIR="\$PWD"
sort -S 50M -k2,2 -k1,1n "$WORK/in/text" | sha256sum
EOF
}

gen_xz() {
    gen_text
    cat >"$WORK/wl/xz.sh" <<EOF
xz -T2 -6 --block-size=2MiB -c "$WORK/in/text4" >text.xz
xz -T2 -dc text.xz | sha256sum
rm -f text.xz
EOF
}

gen_gcc() {
    "$PY" - "$WORK/in/gen.c" <<'PY'
import sys
out = ["#include <stdio.h>\n#include <string.h>\n#include <stdlib.h>\n"]
nf = 0
lines = 3
while lines < 2000:
    i = nf
    out.append(f"""struct s{i} {{ int a[{8 + i % 8}]; double d; char name[16]; }};
static int cmp{i}(const void *x, const void *y) {{ return *(const int *)x - *(const int *)y; }}
int f{i}(int n, struct s{i} *p) {{
    int acc = {i};
    for (int k = 0; k < n; k++) {{
        for (int j = 0; j < {8 + i % 8}; j++) p->a[j] += (k * j) ^ acc;
        switch ((k + {i}) % 5) {{
        case 0: acc += p->a[k % {8 + i % 8}] * 3; break;
        case 1: acc ^= (int)(p->d * k); break;
        case 2: acc -= (int)strlen(p->name) + k; break;
        case 3: p->d = p->d * 0.5 + acc; break;
        default: acc = acc * 31 + {i};
        }}
    }}
    qsort(p->a, {8 + i % 8}, sizeof(int), cmp{i});
    if (acc % 7 == 0) snprintf(p->name, sizeof p->name, "f%d-%d", {i}, acc & 255);
    return acc + p->a[0];
}}
""")
    nf += 1
    lines += 21
out.append("int main(int argc, char **argv) {\n    (void)argv; long t = 0;\n")
for i in range(nf):
    out.append(f"    {{ struct s{i} v; memset(&v, 0, sizeof v); t += f{i}(argc + {i % 9}, &v); }}\n")
out.append('    printf("%ld\\n", t);\n    return 0;\n}\n')
open(sys.argv[1], "w").write("".join(out))
PY
    cat >"$WORK/wl/gcc.sh" <<EOF
cp "$WORK/in/gen.c" gen.c
gcc -O2 -o gen gen.c
./gen
rm -f gen gen.c
EOF
}

gen_git() {
    "$PY" - "$WORK/in/files" <<'PY'
import os, random, sys
r = random.Random(5)
base = sys.argv[1]
for i in range(1000):
    d = os.path.join(base, "d%02d" % (i // 100))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "f%04d.txt" % i), "w") as f:
        for j in range(r.randrange(5, 60)):
            f.write("line %d of file %d: %x\n" % (j, i, r.getrandbits(64)))
PY
    cat >"$WORK/wl/git.sh" <<EOF
set -e
export HOME="$WORK/home" GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.invalid
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.invalid
export GIT_AUTHOR_DATE='2024-01-01T00:00:00Z' GIT_COMMITTER_DATE='2024-01-01T00:00:00Z'
export LC_ALL=C
rm -rf repo
cp -r "$WORK/in/files" repo
cd repo
git init -q -b main .
for d in d*; do git add "\$d"; git commit -q -m "add \$d"; done
for i in \$(seq 1 3); do
    sed -i "\\\$a change \$i" d0\$((i % 10))/*.txt
    git commit -q -a -m "change \$i"
done
git log --stat --format='%H %s' | sha256sum
git log -p | sha256sum
git gc -q
git fsck --no-progress 2>&1 | sha256sum
git log --format='%H %T' | sha256sum
git ls-files -s | sha256sum
cd ..
rm -rf repo
EOF
}

gen_jq() {
    "$PY" - "$WORK/in/doc.json" <<'PY'
import json, random, sys
r = random.Random(9)
doc = [{"id": i, "grp": "g%03d" % r.randrange(300), "v": r.randrange(10**6),
        "tags": ["t%d" % r.randrange(40) for _ in range(r.randrange(1, 6))],
        "meta": {"name": "n%d" % i, "score": round(r.random() * 100, 3)}}
       for i in range(40000)]
json.dump(doc, open(sys.argv[1], "w"))
PY
    cat >"$WORK/wl/jq.sh" <<EOF
jq -c 'group_by(.grp) | map({g: .[0].grp, n: length, s: (map(.v) | add), t: (map(.tags[]) | unique)})' "$WORK/in/doc.json" | sha256sum
jq -S '[.[] | select(.v % 3 == 0) | .meta + {id, tags}]' "$WORK/in/doc.json" | sha256sum
EOF
}

RUN=()
IFS=, read -r -a WANT <<<"$WORKLOADS"
for w in "${WANT[@]}"; do
    case ",$ALL_WORKLOADS," in *",$w,"*) ;; *) die "unknown workload '$w' (known: $ALL_WORKLOADS)" ;; esac
    case $w in
    sort) need=sort ;; python3) need=$PY ;; *) need=$w ;;
    esac
    if ! have "$need"; then
        SKIPPED+=("$w (not installed)"); note "skipping $w: $need is not installed"; continue
    fi
    if [ "$w" = xz ] && ! xz --help 2>/dev/null | grep -q -- '--threads'; then
        SKIPPED+=("xz (no -T support)"); note "skipping xz: this xz has no -T"; continue
    fi
    "gen_$w" || die "could not generate the input of $w"
    mkdir -p "$WORK/run/$w"
    RUN+=("$w")
done
[ ${#RUN[@]} -gt 0 ] || die "no workload to run"

# ---------------------------------------------------------------- runs
# run_one WORKLOAD ALLOC_INDEX ROUND: one timed run; appends
# "e s r m sha rc" to res/WORKLOAD.ALLOC
run_one() {
    local w=$1 a=$2 r=$3 name=${ALLOC_NAMES[$2]} lib=${ALLOC_LIBS[$2]}
    local tf=$WORK/res/$w.$name.time.$r out=$WORK/res/$w.$name.out.$r err=$WORK/res/$w.$name.err.$r rc=0
    local envp=(env -u LD_PRELOAD)
    [ -n "$lib" ] && envp=(env LD_PRELOAD="$lib")
    (cd "$WORK/run/$w" && /usr/bin/time -o "$tf" -f '%e %S %R %M' \
        "${envp[@]}" bash -e -o pipefail "$WORK/wl/$w.sh" >"$out" 2>"$err") || rc=$?
    local t; t=$(grep -E '^[0-9.]+ [0-9.]+ [0-9]+ [0-9]+$' "$tf" | tail -1 || true)
    [ -n "$t" ] || t="0 0 0 0"
    echo "$t $(sha256sum <"$out" | cut -c1-16) $rc" >>"$WORK/res/$w.$name"
    if [ "$rc" -ne 0 ]; then
        note "$w under $name, round $r: exit $rc; stderr tail:"
        tail -5 "$err" | sed 's/^/    /' >&2
    fi
    rm -f "$out"
}

note "rounds: $ROUNDS; allocators: ${ALLOC_NAMES[*]}; workloads: ${RUN[*]}"
for ((r = 1; r <= ROUNDS; r++)); do
    note "round $r/$ROUNDS"
    for w in "${RUN[@]}"; do
        for ((k = 0; k < NA; k++)); do
            run_one "$w" $(((k + r - 1) % NA)) "$r"
        done
    done
done

# ---------------------------------------------------------------- table
median() {   # median of the numbers on stdin
    sort -g | awk '{v[NR] = $1} END {if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'
}

echo
echo "real programs, median of $ROUNDS round(s); ratios are to glibc (time = elapsed)"
printf '%-8s %-10s %9s %7s %10s %9s %6s %6s %6s  %s\n' \
    program alloc elapsed_s sys_s minflt rss_MiB time flt rss output
for w in "${RUN[@]}"; do
    # the reference output: glibc's first round
    ref=$(awk 'NR == 1 {print $5}' "$WORK/res/$w.glibc")
    ge=0 gr=0 gm=0
    for ((a = 0; a < NA; a++)); do
        name=${ALLOC_NAMES[$a]} f=$WORK/res/$w.${ALLOC_NAMES[$a]}
        e=$(awk '{print $1}' "$f" | median)
        s=$(awk '{print $2}' "$f" | median)
        fl=$(awk '{print $3}' "$f" | median)
        m=$(awk '{print $4}' "$f" | median)
        bad=$(awk '$6 != 0 {print $6; exit}' "$f")
        if [ -n "$bad" ]; then
            status="FAIL(rc=$bad)"
        elif awk -v ref="$ref" '$5 != ref {x = 1} END {exit !x}' "$f"; then
            status=MISMATCH
        else
            status=ok
        fi
        if [ "$a" -eq 0 ]; then ge=$e gr=$fl gm=$m; fi
        awk -v w="$w" -v n="$name" -v e="$e" -v s="$s" -v fl="$fl" -v m="$m" \
            -v ge="$ge" -v gr="$gr" -v gm="$gm" -v st="$status" 'BEGIN {
            printf "%-8s %-10s %9.2f %7.2f %10d %9.1f %6s %6s %6s  %s\n", w, n, e, s, fl, m / 1024,
                (ge > 0 ? sprintf("%.2f", e / ge) : "-"), (gr > 0 ? sprintf("%.2f", fl / gr) : "-"),
                (gm > 0 ? sprintf("%.2f", m / gm) : "-"), st }'
    done
done
for s in "${SKIPPED[@]}"; do echo "skipped: $s"; done
echo "hakmem: $LIB_REAL"
