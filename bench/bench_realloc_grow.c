// SPDX-License-Identifier: MIT
/* bench_realloc_grow: a buffer grown by realloc one byte at a time, from
 * 1 MiB + 1 to 16 MiB (issue 16's "realloc by +1 byte up to 16 MiB"), its
 * new last byte written after each call. Most calls fit the block already
 * (an allocator answers from its metadata); one in 4,096 crosses a page
 * (glibc and hakmem grow the mapping with mremap). Each thread grows its
 * own buffer.
 *
 * usage: bench_realloc_grow [THREADS [ROUNDS]]   (default 1 thread, 1 round)
 *
 * Output: RESULT bench=realloc_grow threads=T rounds=R ops=N seconds=X mops=Y
 */
#include <pthread.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_realloc_grow [THREADS [ROUNDS]]\n";

#define GROW_FROM (((size_t)1 << 20) + 1)
#define GROW_TO   ((size_t)16 << 20)

static uint64_t g_rounds = 1;

static void *worker(void *arg)
{
    (void)arg;
    for (uint64_t r = 0; r < g_rounds; r++) {
        size_t n = GROW_FROM;
        char *p = malloc(n);
        if (!p)
            bench_oom_exit("bench_realloc_grow", n);
        p[0] = 1;
        for (; n <= GROW_TO; n++) {
            p = realloc(p, n);
            if (!p)
                bench_oom_exit("bench_realloc_grow", n);
            p[n - 1] = (char)n;
        }
        if (p[0] != 1) {
            fprintf(stderr, "bench_realloc_grow: contents lost\n");
            exit(1);
        }
        free(p);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t threads = 1;
    if (argc > 3 || (argc > 1 && !bench_parse_u64(argv[1], "THREADS", 1, 64, &threads)) ||
        (argc > 2 && !bench_parse_u64(argv[2], "ROUNDS", 1, 1000000, &g_rounds)))
        bench_usage_exit(usage);
    pthread_t th[64];
    double t0 = bench_now();
    for (uint64_t t = 0; t < threads; t++)
        if (pthread_create(&th[t], NULL, worker, NULL) != 0) {
            fprintf(stderr, "bench_realloc_grow: pthread_create failed\n");
            return 1;
        }
    for (uint64_t t = 0; t < threads; t++)
        pthread_join(th[t], NULL);
    double dt = bench_now() - t0;
    uint64_t ops = (uint64_t)(GROW_TO - GROW_FROM + 1) * g_rounds * threads;
    printf("RESULT bench=realloc_grow threads=%" PRIu64 " rounds=%" PRIu64 " ops=%" PRIu64
           " seconds=%.4f mops=%.4f\n",
           threads, g_rounds, ops, dt, (double)ops / dt / 1e6);
    return 0;
}
