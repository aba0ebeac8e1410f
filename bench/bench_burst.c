// SPDX-License-Identifier: MIT
/* bench_burst: bursts of buffers allocated, written once and all freed,
 * round after round, beside a steady set of small live blocks: what a
 * program that builds and drops a batch of buffers (a request, a frame, a
 * compilation unit) does to its allocator. Freed pages given back to the
 * OS at once are faulted in again by the next burst: the runner's launcher
 * counts minor faults and peak RSS beside the time.
 *
 * usage: bench_burst ROUNDS NBUF MINSIZE MAXSIZE [LIVE [SEED [THREADS]]]
 *   each round allocates NBUF buffers of MINSIZE..MAXSIZE bytes (uniform),
 *   writes every byte of each once, then frees them all (in a shuffled
 *   order), and replaces 1/16 of the LIVE small blocks (16..256 B;
 *   default 20000), which stay allocated throughout. THREADS (default 1)
 *   threads do so at once, each with its own blocks (seeds SEED, SEED+1..).
 *
 * Output: RESULT bench=burst range=MIN-MAX rounds=R nbuf=N live=L threads=T
 *         mops=M (buffer mallocs + frees per second, all threads, in millions)
 *         seconds=S
 */
#include <pthread.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_burst ROUNDS NBUF MINSIZE MAXSIZE [LIVE [SEED [THREADS]]]\n";

typedef struct {
    uint64_t rounds, nbuf, lo, hi, live, seed;
    pthread_barrier_t *start; /* NULL: one thread, timed by itself */
    double seconds;
} burst_job_t;

/* One thread's bursts: its own LIVE small blocks and buffers. */
static void *burst_run(void *arg)
{
    burst_job_t *job = arg;
    uint64_t nbuf = job->nbuf, lo = job->lo, hi = job->hi, live = job->live;
    uint64_t rng = job->seed;
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
    if (job->start)
        pthread_barrier_wait(job->start);
    double t0 = bench_now();
    for (uint64_t r = 0; r < job->rounds; r++) {
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
    job->seconds = bench_now() - t0;
    for (uint64_t i = 0; i < live; i++)
        free(small[i]);
    free(small);
    free(buf);
    free(order);
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t rounds, nbuf, lo, hi, live = 20000, seed = 42, threads = 1;
    if (argc < 5 || argc > 8 || !bench_parse_u64(argv[1], "ROUNDS", 1, 1000000, &rounds) ||
        !bench_parse_u64(argv[2], "NBUF", 1, 10000000, &nbuf) ||
        !bench_parse_u64(argv[3], "MINSIZE", 1, (uint64_t)1 << 32, &lo) ||
        !bench_parse_u64(argv[4], "MAXSIZE", lo, (uint64_t)1 << 32, &hi) ||
        (argc > 5 && !bench_parse_u64(argv[5], "LIVE", 0, 100000000, &live)) ||
        (argc > 6 && !bench_parse_u64(argv[6], "SEED", 0, UINT64_MAX, &seed)) ||
        (argc > 7 && !bench_parse_u64(argv[7], "THREADS", 1, 256, &threads)))
        bench_usage_exit(usage);
    burst_job_t jobs[256];
    double dt;
    if (threads == 1) {
        jobs[0] = (burst_job_t){rounds, nbuf, lo, hi, live, seed, NULL, 0};
        burst_run(&jobs[0]);
        dt = jobs[0].seconds;
    } else {
        /* every thread's own bursts at once, timed from when all are set up */
        pthread_barrier_t start;
        pthread_t t[256];
        if (pthread_barrier_init(&start, NULL, (unsigned)threads + 1) != 0)
            bench_oom_exit("bench_burst", sizeof start);
        for (uint64_t k = 0; k < threads; k++) {
            jobs[k] = (burst_job_t){rounds, nbuf, lo, hi, live, seed + k, &start, 0};
            if (pthread_create(&t[k], NULL, burst_run, &jobs[k]) != 0)
                bench_oom_exit("bench_burst", sizeof t[k]);
        }
        pthread_barrier_wait(&start);
        double t0 = bench_now();
        for (uint64_t k = 0; k < threads; k++)
            pthread_join(t[k], NULL);
        dt = bench_now() - t0;
        pthread_barrier_destroy(&start);
    }
    printf("RESULT bench=burst range=%" PRIu64 "-%" PRIu64 " rounds=%" PRIu64 " nbuf=%" PRIu64 " live=%" PRIu64
           " threads=%" PRIu64 " mops=%.6f seconds=%.4f\n",
           lo, hi, rounds, nbuf, live, threads, (double)(threads * rounds * nbuf * 2) / dt / 1e6, dt);
    return 0;
}
