// SPDX-License-Identifier: MIT
/* bench_burst: bursts of buffers allocated, written once and all freed,
 * round after round, beside a steady set of small live blocks: what a
 * program that builds and drops a batch of buffers (a request, a frame, a
 * compilation unit) does to its allocator. Freed pages given back to the
 * OS at once are faulted in again by the next burst: the runner's launcher
 * counts minor faults and peak RSS beside the time.
 *
 * usage: bench_burst ROUNDS NBUF MINSIZE MAXSIZE [LIVE [SEED]]
 *   each round allocates NBUF buffers of MINSIZE..MAXSIZE bytes (uniform),
 *   writes every byte of each once, then frees them all (in a shuffled
 *   order), and replaces 1/16 of the LIVE small blocks (16..256 B;
 *   default 20000), which stay allocated throughout.
 *
 * Output: RESULT bench=burst range=MIN-MAX rounds=R nbuf=N live=L
 *         mops=M (buffer mallocs + frees per second, in millions)
 *         seconds=S
 */
#include <pthread.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_burst ROUNDS NBUF MINSIZE MAXSIZE [LIVE [SEED]]\n";

int main(int argc, char **argv)
{
    uint64_t rounds, nbuf, lo, hi, live = 20000, seed = 42;
    if (argc < 5 || argc > 7 || !bench_parse_u64(argv[1], "ROUNDS", 1, 1000000, &rounds) ||
        !bench_parse_u64(argv[2], "NBUF", 1, 10000000, &nbuf) ||
        !bench_parse_u64(argv[3], "MINSIZE", 1, (uint64_t)1 << 32, &lo) ||
        !bench_parse_u64(argv[4], "MAXSIZE", lo, (uint64_t)1 << 32, &hi) ||
        (argc > 5 && !bench_parse_u64(argv[5], "LIVE", 0, 100000000, &live)) ||
        (argc > 6 && !bench_parse_u64(argv[6], "SEED", 0, UINT64_MAX, &seed)))
        bench_usage_exit(usage);
    uint64_t rng = seed;
    void **small = malloc((live ? live : 1) * sizeof *small);
    void **buf = malloc(nbuf * sizeof *buf);
    uint32_t *order = malloc(nbuf * sizeof *order);
    if (!small || !buf || !order)
        bench_oom_exit("bench_burst", nbuf * sizeof *buf);
    for (uint64_t i = 0; i < live; i++) {
        size_t s = (size_t)bench_rng_range(&rng, 16, 256);
        if (!(small[i] = malloc(s)))
            bench_oom_exit("bench_burst", s);
        bench_touch(small[i], s, i);
    }
    double t0 = bench_now();
    for (uint64_t r = 0; r < rounds; r++) {
        for (uint64_t i = 0; i < nbuf; i++) {
            size_t s = (size_t)bench_rng_range(&rng, lo, hi);
            char *p = malloc(s);
            if (!p)
                bench_oom_exit("bench_burst", s);
            memset(p, (int)(i & 0x7F) | 1, s);
            bench_escape(p);
            buf[i] = p;
            order[i] = (uint32_t)i;
        }
        for (uint64_t i = nbuf - 1; i > 0; i--) {
            uint64_t j = bench_rng_range(&rng, 0, i);
            uint32_t t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        for (uint64_t i = 0; i < nbuf; i++)
            free(buf[order[i]]);
        for (uint64_t k = 0; k < live / 16; k++) {
            uint64_t i = bench_rng_range(&rng, 0, live - 1);
            free(small[i]);
            size_t s = (size_t)bench_rng_range(&rng, 16, 256);
            if (!(small[i] = malloc(s)))
                bench_oom_exit("bench_burst", s);
            bench_touch(small[i], s, i);
        }
    }
    double dt = bench_now() - t0;
    for (uint64_t i = 0; i < live; i++)
        free(small[i]);
    printf("RESULT bench=burst range=%" PRIu64 "-%" PRIu64 " rounds=%" PRIu64 " nbuf=%" PRIu64 " live=%" PRIu64
           " mops=%.6f seconds=%.4f\n",
           lo, hi, rounds, nbuf, live, (double)(rounds * nbuf * 2) / dt / 1e6, dt);
    free(small);
    free(buf);
    free(order);
    return 0;
}
