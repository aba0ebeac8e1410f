// SPDX-License-Identifier: MIT
/* hak_test.h - helpers shared by the cmocka suites: a seeded PRNG, block
 * patterns, VmRSS, death tests (fork, run the misuse in the child, read its
 * stderr through a pipe). Header-only so each suite links only the
 * component it tests. */
#ifndef HAK_TEST_H
#define HAK_TEST_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* xorshift64*: deterministic, seeded per test. */
typedef struct { uint64_t s; } ht_rng_t;
static inline uint64_t ht_rand(ht_rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t ht_range(ht_rng_t *r, uint64_t lo, uint64_t hi) /* [lo, hi] */
{
    return lo + ht_rand(r) % (hi - lo + 1);
}

/* A pattern derived from the block's identity, written over n bytes. */
static inline void ht_fill(void *p, size_t n, uint64_t tag)
{
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        b[i] = (uint8_t)((tag * 131 + i * 7) ^ (tag >> 8));
}
static inline int ht_check(const void *p, size_t n, uint64_t tag)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i] != (uint8_t)((tag * 131 + i * 7) ^ (tag >> 8)))
            return 0;
    return 1;
}

/* A "Name: N kB" field of /proc/self/status, in bytes (0 if absent). */
static inline size_t ht_status_bytes(const char *name)
{
    char buf[4096];
    FILE *f = fopen("/proc/self/status", "r");
    size_t kb = 0, len = strlen(name);
    if (!f)
        return 0;
    while (fgets(buf, sizeof buf, f))
        if (strncmp(buf, name, len) == 0 && buf[len] == ':' && sscanf(buf + len + 1, "%zu", &kb) == 1)
            break;
    fclose(f);
    return kb * 1024;
}
static inline size_t ht_rss(void) { return ht_status_bytes("VmRSS"); }
static inline size_t ht_vm_size(void) { return ht_status_bytes("VmSize"); }

/* Run fn() in a child with stderr piped; returns the child's wait status
 * and copies up to cap-1 bytes of its stderr into out. */
static inline int ht_run_child(void (*fn)(void *), void *arg, char *out, size_t cap)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(arg);
        _exit(0);
    }
    close(fds[1]);
    size_t len = 0;
    ssize_t r;
    while (len + 1 < cap && (r = read(fds[0], out + len, cap - 1 - len)) > 0)
        len += (size_t)r;
    out[len] = 0;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    return status;
}

#define HT_ALIGNED(p, a) ((((uintptr_t)(p)) & ((a) - 1)) == 0)

#endif
