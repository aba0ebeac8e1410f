#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Suite `preload`: real programs under LD_PRELOAD=libhakmem.so behave as
# they do on glibc: same output, same exit code. One program per call:
#   programs.sh LIBHAKMEM PROGRAM
# Exit 77 (skipped) when the program is not installed (.ci/run installs
# them: python3 perl coreutils sqlite3 git gcc nginx-light curl wrk).
set -u
LIB=$(readlink -f "$1")
WHAT=$2
WORK=$(mktemp -d /tmp/hakmem-preload.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
cd "$WORK" || exit 1

need() { for c in "$@"; do command -v "$c" >/dev/null || { echo "SKIP: $c not installed"; exit 77; }; done; }

# compare NAME CMD...: run CMD with glibc, then under hakmem; outputs and
# exit codes must match.
compare() {
    local name=$1; shift
    "$@" >"$WORK/$name.glibc" 2>&1; local rc1=$?
    LD_PRELOAD=$LIB "$@" >"$WORK/$name.hakmem" 2>&1; local rc2=$?
    if [ $rc1 -ne $rc2 ] || ! cmp -s "$WORK/$name.glibc" "$WORK/$name.hakmem"; then
        echo "FAIL: $name: exit $rc1 (glibc) vs $rc2 (hakmem)"
        diff "$WORK/$name.glibc" "$WORK/$name.hakmem" | head -20
        exit 1
    fi
    echo "ok: $name (exit $rc1, $(wc -c <"$WORK/$name.glibc") bytes of output)"
}

case $WHAT in
python3)
    need python3
    cat >dicts.py <<'PY'
import json, pickle, threading, hashlib
d = {("k%d" % i): [i, str(i) * (i % 50), {"x": i * 1.5}] for i in range(200000)}
s = json.dumps(d, sort_keys=True)
d2 = json.loads(s)
assert d2 == json.loads(json.dumps(d2, sort_keys=True))
blob = pickle.dumps(d2)
strs = ["".join(chr(65 + (i * j) % 26) for j in range(i % 300)) for i in range(20000)]
print(len(s), hashlib.sha256(s.encode()).hexdigest(), len(blob) > 0, sum(map(len, strs)))
PY
    cat >threads.py <<'PY'
import threading, hashlib
out = [None] * 8
def work(k):
    acc = []
    for i in range(30000):
        acc.append({"i": i, "s": ("%d-%d" % (k, i)) * (i % 7)})
        if len(acc) > 1000:
            acc = acc[500:]
    out[k] = hashlib.md5(repr(acc[-100:]).encode()).hexdigest()
ts = [threading.Thread(target=work, args=(k,)) for k in range(8)]
[t.start() for t in ts]; [t.join() for t in ts]
print(out)
PY
    compare python-dicts env PYTHONMALLOC=malloc python3 dicts.py
    compare python-threads env PYTHONMALLOC=malloc python3 threads.py
    ;;
perl)
    need perl
    compare perl-hash perl -e 'my %h; for my $i (1..300000) { $h{"k$i"} = "v" x ($i % 100); } my $s = 0; for (keys %h) { $s += length $h{$_}; delete $h{$_} if $_ =~ /7$/; } my $j = join(",", sort keys %h); print "$s ", scalar(keys %h), " ", length($j), "\n";'
    ;;
sort)
    need sort seq shuf
    seq 1 6000000 | shuf --random-source=<(yes) >big.txt   # about 50 MB
    compare sort-50MB sort -n big.txt
    ;;
sqlite3)
    need sqlite3
    cat >db.sql <<'SQL'
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, v REAL, blob BLOB);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 60000)
INSERT INTO t(name, v, blob) SELECT 'name-' || x, x * 1.25, randomblob(x % 500) FROM c;
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(v), sum(length(blob)) FROM t;
UPDATE t SET v = v * 2 WHERE id % 3 = 0;
SELECT count(*), sum(v) FROM t WHERE name LIKE 'name-1%';
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
SELECT count(*), max(id), min(name) FROM t;
SQL
    compare sqlite3 sh -c 'rm -f test.db; sqlite3 test.db < db.sql | sed "s/[0-9]*\.[0-9]*e+[0-9]*//"'
    ;;
git)
    need git
    mkdir tree && for d in $(seq 1 20); do mkdir tree/d$d; for f in $(seq 1 50); do seq $((d * f)) $((d * f + 200)) >tree/d$d/f$f.txt; done; done
    compare git sh -c 'rm -rf repo && cp -r tree repo && cd repo && git init -q && git add -A && GIT_AUTHOR_DATE=2026-01-01T00:00:00 GIT_COMMITTER_DATE=2026-01-01T00:00:00 git -c user.name=t -c user.email=t@t commit -q -m init && git log --format=%H%n%s && git gc -q && git count-objects -v | grep -v size'
    ;;
gcc)
    need gcc
    for i in 1 2 3 4; do printf '#include <stdio.h>\nint f%d(int x) { int a[64]; for (int i = 0; i < 64; i++) a[i] = x * i; return a[x %% 64]; }\n' $i >m$i.c; done
    printf 'int f1(int);int f2(int);int f3(int);int f4(int);\n#include <stdio.h>\nint main(void){printf("%%d\\n", f1(3)+f2(5)+f3(7)+f4(9));return 0;}\n' >main.c
    compare gcc sh -c 'gcc -O2 -o prog main.c m1.c m2.c m3.c m4.c && ./prog'
    ;;
nginx)
    need nginx curl wrk
    mkdir -p www logs
    head -c 1000000 /dev/urandom >www/big.bin; echo hello >www/index.html
    chmod 755 "$WORK"; chmod -R a+rX www       # workers drop to an unprivileged user
    cat >nginx.conf <<NGX
worker_processes 2;
daemon off;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $WORK/logs; proxy_temp_path $WORK/logs; fastcgi_temp_path $WORK/logs;
  uwsgi_temp_path $WORK/logs; scgi_temp_path $WORK/logs;
  server { listen 127.0.0.1:18089; root $WORK/www; }
}
NGX
    LD_PRELOAD=$LIB nginx -c "$WORK/nginx.conf" -p "$WORK" &
    NGX_PID=$!
    for i in $(seq 1 50); do curl -s -o /dev/null http://127.0.0.1:18089/ && break; sleep 0.1; done
    curl -s http://127.0.0.1:18089/big.bin | cmp - www/big.bin || { echo "FAIL: nginx served a different file"; kill $NGX_PID; exit 1; }
    out=$(wrk -t2 -c16 -d10s http://127.0.0.1:18089/index.html 2>&1)
    echo "$out" | tail -4
    curl -s http://127.0.0.1:18089/big.bin | cmp - www/big.bin || { echo "FAIL: nginx after load"; kill $NGX_PID; exit 1; }
    kill $NGX_PID; wait $NGX_PID 2>/dev/null
    if echo "$out" | grep -q "Socket errors\|Non-2xx"; then echo "FAIL: wrk saw errors"; exit 1; fi
    grep -q "hakmem" logs/error.log && { echo "FAIL: hakmem reported in nginx's log"; exit 1; }
    echo "ok: nginx (wrk: $(echo "$out" | grep Requests/sec))"
    ;;
*)
    echo "unknown program $WHAT"; exit 2 ;;
esac
