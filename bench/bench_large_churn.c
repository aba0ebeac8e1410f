// SPDX-License-Identifier: MIT
/* bench_large_churn: large blocks replaced at random, each written whole
 * (as a program filling a fresh buffer does; mimalloc-bench's malloc-large
 * shape: 20 live buffers of 5..25 MiB). Each iteration frees a random live
 * block and allocates one of a new random size in its place. An allocator
 * that unmaps at free and maps at malloc pays a page fault per page.
 *
 * usage: bench_large_churn ITERS LIVE MINSIZE MAXSIZE [THREADS [SEED]]
 *   THREADS threads (default 1), each with LIVE blocks of its own and
 *   ITERS iterations.
 *
 * Output: RESULT bench=large_churn range=MIN-MAX live=L threads=T
 *         mops=M (replacements per second, in millions) seconds=S
 */
#include <pthread.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_large_churn ITERS LIVE MINSIZE MAXSIZE [THREADS [SEED]]\n";

static uint64_t g_iters, g_live, g_lo, g_hi, g_seed;

static void *worker(void *arg)
{
    uint64_t rng = g_seed + (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull;
    void **blk = calloc(g_live, sizeof *blk);
    if (!blk)
        bench_oom_exit("bench_large_churn", g_live * sizeof *blk);
    for (uint64_t i = 0; i < g_iters; i++) {
        uint64_t k = bench_rng_range(&rng, 0, g_live - 1);
        free(blk[k]);
        size_t s = (size_t)bench_rng_range(&rng, g_lo, g_hi);
        char *p = malloc(s);
        if (!p)
            bench_oom_exit("bench_large_churn", s);
        memset(p, 0, s);
        bench_escape(p);
        blk[k] = p;
    }
    for (uint64_t k = 0; k < g_live; k++)
        free(blk[k]);
    free(blk);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 1;
    g_seed = 42;
    if (argc < 5 || argc > 7 || !bench_parse_u64(argv[1], "ITERS", 1, 100000000, &g_iters) ||
        !bench_parse_u64(argv[2], "LIVE", 1, 100000, &g_live) ||
        !bench_parse_u64(argv[3], "MINSIZE", 1, (uint64_t)1 << 36, &g_lo) ||
        !bench_parse_u64(argv[4], "MAXSIZE", g_lo, (uint64_t)1 << 36, &g_hi) ||
        (argc > 5 && !bench_parse_u64(argv[5], "THREADS", 1, 1024, &threads)) ||
        (argc > 6 && !bench_parse_u64(argv[6], "SEED", 0, UINT64_MAX, &g_seed)))
        bench_usage_exit(usage);
    pthread_t *th = malloc(threads * sizeof *th);
    if (!th)
        bench_oom_exit("bench_large_churn", threads * sizeof *th);
    double t0 = bench_now();
    for (uint64_t t = 0; t < threads; t++)
        if (pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)t) != 0) {
            fprintf(stderr, "bench_large_churn: pthread_create failed\n");
            return 1;
        }
    for (uint64_t t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double dt = bench_now() - t0;
    printf("RESULT bench=large_churn range=%" PRIu64 "-%" PRIu64 " live=%" PRIu64 " threads=%" PRIu64
           " mops=%.8f seconds=%.4f\n",
           g_lo, g_hi, g_live, threads, (double)(g_iters * threads) / dt / 1e6, dt);
    free(th);
    return 0;
}
