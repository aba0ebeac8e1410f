// SPDX-License-Identifier: MIT
/* bench_short_threads: threads that live for a moment, one batch after
 * another, each using blocks of a few KiB (a server that spawns a thread
 * per request, a thread pool that is torn down and made again): each
 * thread's cache is set up, filled and given back, and the next thread
 * starts again from nothing. Issue 16's "3,000 short-lived threads using
 * 1-16 KiB blocks" row (docs/reliability.md); not a runner job.
 *
 * usage: bench_short_threads [ROUNDS [THREADS [OPS [MINSIZE [MAXSIZE]]]]]
 *   defaults 1000 rounds of 3 threads at a time (3,000 threads), each
 *   doing 500 allocations of MINSIZE..MAXSIZE (default 1024..16384,
 *   uniform) into 64 slots (a slot's old block freed first), writing every
 *   byte; then it frees what it holds and ends, and the round joins it.
 *
 * Output: RESULT bench=short_threads rounds=R threads=T ops=N seconds=S
 *         (run it under /usr/bin/time -f '%e %S %R %M' for faults and RSS)
 */
#include <pthread.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_short_threads [ROUNDS [THREADS [OPS [MINSIZE [MAXSIZE]]]]]\n";

static uint64_t g_ops, g_lo, g_hi;

static void *worker(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg;
    unsigned char *slot[64] = {0};
    uintptr_t bad = 0;
    for (uint64_t i = 0; i < g_ops; i++) {
        unsigned k = (unsigned)bench_rng_range(&rng, 0, 63);
        if (slot[k]) {
            bad |= slot[k][0] != (unsigned char)(k + 1);
            free(slot[k]);
        }
        size_t n = (size_t)bench_rng_range(&rng, g_lo, g_hi);
        if ((slot[k] = malloc(n)) == NULL)
            return (void *)1;
        memset(slot[k], (int)(k + 1), n);
    }
    for (unsigned k = 0; k < 64; k++)
        free(slot[k]);
    return (void *)bad;
}

int main(int argc, char **argv)
{
    uint64_t rounds = 1000, threads = 3;
    g_ops = 500;
    g_lo = 1024;
    g_hi = 16384;
    if (argc > 6 || (argc > 1 && !bench_parse_u64(argv[1], "ROUNDS", 1, 100000000, &rounds)) ||
        (argc > 2 && !bench_parse_u64(argv[2], "THREADS", 1, 256, &threads)) ||
        (argc > 3 && !bench_parse_u64(argv[3], "OPS", 1, 100000000, &g_ops)) ||
        (argc > 4 && !bench_parse_u64(argv[4], "MINSIZE", 1, (uint64_t)1 << 30, &g_lo)) ||
        (argc > 5 && !bench_parse_u64(argv[5], "MAXSIZE", g_lo, (uint64_t)1 << 30, &g_hi)))
        bench_usage_exit(usage);
    pthread_t t[256];
    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < threads; i++)
            if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(r * threads + i + 1)) != 0) {
                fprintf(stderr, "bench_short_threads: pthread_create failed\n");
                return 1;
            }
        for (uint64_t i = 0; i < threads; i++) {
            void *ret;
            pthread_join(t[i], &ret);
            if (ret != NULL) {
                fprintf(stderr, "bench_short_threads: a thread failed (%s)\n",
                        ret == (void *)1 ? "out of memory" : "a block lost its contents");
                return 1;
            }
        }
    }
    double dt = bench_now() - t0;
    printf("RESULT bench=short_threads rounds=%" PRIu64 " threads=%" PRIu64 " ops=%" PRIu64 " seconds=%.4f\n", rounds,
           threads, g_ops, dt);
    return 0;
}
