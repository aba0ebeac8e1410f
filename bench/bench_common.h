// SPDX-License-Identifier: MIT
/* bench_common.h: helpers shared by the benchmark programs of bench/.
 *
 * Header only, so that every benchmark is one C file that links nothing but
 * libc and pthread and therefore runs under LD_PRELOAD of any allocator.
 *
 * Every program reports its measurements as lines of the form
 *
 *     RESULT bench=NAME key=value key=value ...
 *
 * one per measured configuration, on stdout (see docs/bench-programs.md).
 * Diagnostics go to stderr.
 */
#ifndef HAKMEM_BENCH_COMMON_H
#define HAKMEM_BENCH_COMMON_H

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__x86_64__) || defined(__i386__)
#include <x86intrin.h>
#define BENCH_CLOCK_NAME "rdtsc"
#else
#define BENCH_CLOCK_NAME "ns"
#endif

/* Wall-clock time in seconds (CLOCK_MONOTONIC). */
static inline double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The cycle counter: rdtsc ticks on x86, nanoseconds elsewhere. */
static inline uint64_t bench_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __rdtsc();
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* Make the compiler believe `p` (and all memory) is used, so that a
 * malloc/free pair or the stores into a block cannot be elided. */
static inline void bench_escape(const void *p)
{
    __asm__ volatile("" : : "r"(p) : "memory");
}

/* Write the first bytes of a fresh block (at most 8) so that the
 * allocation is touched as a program would touch it. */
static inline void bench_touch(void *p, size_t size, uint64_t value)
{
    size_t n = size < sizeof value ? size : sizeof value;
    memcpy(p, &value, n);
    bench_escape(p);
}

/* splitmix64: a small, fast, seedable generator (one per thread). */
static inline uint64_t bench_rng_next(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A uniform value in [lo, hi] (inclusive; the modulo bias is negligible
 * for the small ranges used here). */
static inline uint64_t bench_rng_range(uint64_t *state, uint64_t lo, uint64_t hi)
{
    return lo + bench_rng_next(state) % (hi - lo + 1);
}

/* Parse an unsigned decimal argument in [min, max]. On error print which
 * argument is wrong to stderr and return false. */
static inline bool bench_parse_u64(const char *text, const char *name,
                                   uint64_t min, uint64_t max, uint64_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' ||
        v < min || v > max) {
        fprintf(stderr, "bad %s '%s': expected an integer in [%" PRIu64 ", %" PRIu64 "]\n",
                name, text, min, max);
        return false;
    }
    *out = (uint64_t)v;
    return true;
}

/* Parse a positive decimal number (seconds, possibly fractional). */
static inline bool bench_parse_seconds(const char *text, const char *name, double *out)
{
    char *end = NULL;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !(v > 0.0) || v > 86400.0) {
        fprintf(stderr, "bad %s '%s': expected seconds in (0, 86400]\n", name, text);
        return false;
    }
    *out = v;
    return true;
}

/* Print the usage text and exit with status 2 (bad arguments). */
static inline __attribute__((noreturn)) void bench_usage_exit(const char *usage)
{
    fputs(usage, stderr);
    exit(2);
}

/* Report an allocation failure and exit with status 1. */
static inline __attribute__((noreturn)) void bench_oom_exit(const char *bench, size_t size)
{
    fprintf(stderr, "%s: malloc(%zu) failed\n", bench, size);
    exit(1);
}

/* Sort helper and median of a small array of doubles (sorts in place). */
static inline int bench_cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static inline double bench_median(double *v, size_t n)
{
    qsort(v, n, sizeof *v, bench_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#endif /* HAKMEM_BENCH_COMMON_H */
