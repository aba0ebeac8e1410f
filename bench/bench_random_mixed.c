// SPDX-License-Identifier: MIT
/* bench_random_mixed: random sizes, random free order, a working set.
 *
 * Each of THREADS threads keeps SLOTS (1000) slots of live blocks, empty at
 * the start. One iteration (= one op) picks a random slot, frees its block
 * if it holds one, and puts there a new block of a random size in
 * [16, MAXSIZE], writing its first bytes. ITERS iterations per thread; the
 * threads start together and the rate is all threads' iterations over the
 * wall time until the last one has freed its working set and finished.
 *
 * Output: RESULT bench=random_mixed threads=T maxsize=M iters=I seed=S
 *         slots=1000 ops=N seconds=X mops=Y
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>

#define SLOTS 1000
#define MIN_SIZE 16

static const char usage[] =
    "usage: bench_random_mixed ITERS MAXSIZE SEED [THREADS]\n"
    "  ITERS    iterations per thread (one iteration = free the block of a\n"
    "           random slot if any, then malloc a new one)\n"
    "  MAXSIZE  largest request, >= 16 (sizes are uniform in [16, MAXSIZE])\n"
    "  SEED     random seed\n"
    "  THREADS  independent threads, default 1 (1000 slots each)\n"
    "example: bench_random_mixed 10000000 1024 42 2\n";

struct worker {
    uint64_t iters, maxsize, seed;
    pthread_barrier_t *start;
};

static void *worker_main(void *arg)
{
    const struct worker *w = arg;
    void *slots[SLOTS] = {0};
    uint64_t rng = w->seed;

    pthread_barrier_wait(w->start);
    for (uint64_t i = 0; i < w->iters; i++) {
        size_t s = (size_t)(bench_rng_next(&rng) % SLOTS);
        size_t size = (size_t)bench_rng_range(&rng, MIN_SIZE, w->maxsize);
        free(slots[s]);
        slots[s] = malloc(size);
        if (slots[s] == NULL)
            bench_oom_exit("bench_random_mixed", size);
        bench_touch(slots[s], size, i);
    }
    for (size_t s = 0; s < SLOTS; s++)
        free(slots[s]);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t iters, maxsize, seed, threads = 1;
    if (argc < 4 || argc > 5 ||
        !bench_parse_u64(argv[1], "ITERS", 1, UINT64_MAX / 4096, &iters) ||
        !bench_parse_u64(argv[2], "MAXSIZE", MIN_SIZE, 1ull << 30, &maxsize) ||
        !bench_parse_u64(argv[3], "SEED", 0, UINT64_MAX, &seed) ||
        (argc == 5 && !bench_parse_u64(argv[4], "THREADS", 1, 4096, &threads)))
        bench_usage_exit(usage);

    pthread_t *tids = calloc(threads, sizeof *tids);
    struct worker *ws = calloc(threads, sizeof *ws);
    if (tids == NULL || ws == NULL)
        bench_oom_exit("bench_random_mixed", threads * sizeof *ws);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)threads + 1);
    for (uint64_t t = 0; t < threads; t++) {
        ws[t] = (struct worker){.iters = iters, .maxsize = maxsize,
                                .seed = seed * 0x100000001B3ull + t, .start = &start};
        if (pthread_create(&tids[t], NULL, worker_main, &ws[t]) != 0) {
            fprintf(stderr, "bench_random_mixed: cannot create thread %" PRIu64 "\n", t);
            return 1;
        }
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    for (uint64_t t = 0; t < threads; t++)
        pthread_join(tids[t], NULL);
    double secs = bench_now() - t0;

    uint64_t ops = iters * threads;
    printf("RESULT bench=random_mixed threads=%" PRIu64 " maxsize=%" PRIu64 " iters=%" PRIu64
           " seed=%" PRIu64 " slots=%d ops=%" PRIu64 " seconds=%.6f mops=%.4f\n",
           threads, maxsize, iters, seed, SLOTS, ops, secs, (double)ops / secs / 1e6);
    pthread_barrier_destroy(&start);
    free(ws);
    free(tids);
    return 0;
}
