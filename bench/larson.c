// SPDX-License-Identifier: MIT
/* larson: the server benchmark of Larson and Krishnan ("Memory allocation
 * for long-running server applications", ISMM 1998), written from its
 * description for hakmem.
 *
 * THREADS lanes run side by side. Each lane owns a set of CHUNKS blocks of
 * random sizes in [MIN, MAX], allocated before the clock starts. The lane's
 * current thread does ROUNDS rounds of CHUNKS operations; one operation
 * frees a randomly chosen block of the set and allocates a replacement of a
 * new random size (one op = one free + one malloc). The thread then hands the
 * set to a new thread that it creates, and exits; the new thread first joins
 * it (so no thread is ever left unjoined: the run cannot pile up stacks and
 * stall at the kernel's mapping limit). After SLEEP seconds the threads
 * stop at the end of their current round, the last thread of each lane is
 * joined by main, and the rate is the operations done over the time from
 * the start to the last join.
 *
 * Output: RESULT bench=larson threads=T sleep=S min=MIN max=MAX chunks=C
 *         rounds=R seed=SEED ops=N seconds=X mops=Y spawned=K
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>

static const char usage[] =
    "usage: larson SLEEP MIN MAX CHUNKS ROUNDS SEED THREADS\n"
    "  SLEEP    seconds to run (may be fractional)\n"
    "  MIN MAX  block sizes, uniform in [MIN, MAX] bytes\n"
    "  CHUNKS   blocks owned by each thread\n"
    "  ROUNDS   rounds of CHUNKS free+malloc replacements before a thread\n"
    "           hands its blocks to a new thread and exits\n"
    "  SEED     random seed\n"
    "  THREADS  threads running at a time\n"
    "example (headline): larson 5 8 1000 5000 100 4141 2\n";

struct params {
    double sleep;
    uint64_t min, max, chunks, rounds, seed, threads;
};

/* One lane: the block set handed from each thread to its successor. Only the
 * lane's current thread touches it, except `finished_sem` and `last`. */
struct lane {
    const struct params *prm;
    char **blocks;
    uint64_t rng;
    uint64_t ops;          /* replacements done by this lane's threads */
    uint64_t spawned;      /* threads that have run in this lane */
    pthread_t prev;        /* the thread being replaced, joined by its successor */
    bool has_prev;
    bool create_failed;
    pthread_t last;        /* the lane's final thread, joined by main */
};

static atomic_bool stop_flag;
static sem_t finished_sem; /* posted once by the final thread of each lane */

/* One round: CHUNKS replacements of a random block by a new random size. */
static void lane_round(struct lane *ln)
{
    const struct params *p = ln->prm;
    for (uint64_t i = 0; i < p->chunks; i++) {
        size_t victim = (size_t)(bench_rng_next(&ln->rng) % p->chunks);
        size_t size = (size_t)bench_rng_range(&ln->rng, p->min, p->max);
        free(ln->blocks[victim]);
        char *b = malloc(size);
        if (b == NULL)
            bench_oom_exit("larson", size);
        bench_touch(b, size, size);
        ln->blocks[victim] = b;
    }
    ln->ops += p->chunks;
}

static void *lane_thread(void *arg)
{
    struct lane *ln = arg;
    if (ln->has_prev)
        pthread_join(ln->prev, NULL);
    ln->spawned++;

    for (uint64_t r = 0; r < ln->prm->rounds; r++) {
        if (atomic_load_explicit(&stop_flag, memory_order_relaxed))
            break;
        lane_round(ln);
    }

    if (!atomic_load_explicit(&stop_flag, memory_order_relaxed)) {
        /* Hand the set on: the successor joins this thread. After a
         * successful create this thread must not touch the lane again. */
        pthread_t next;
        ln->prev = pthread_self();
        ln->has_prev = true;
        if (pthread_create(&next, NULL, lane_thread, ln) == 0)
            return NULL;
        ln->has_prev = false;
        ln->create_failed = true;
    }
    ln->last = pthread_self();
    sem_post(&finished_sem);
    return NULL;
}

static bool parse_args(int argc, char **argv, struct params *p)
{
    if (argc != 8)
        return false;
    return bench_parse_seconds(argv[1], "SLEEP", &p->sleep) &&
           bench_parse_u64(argv[2], "MIN", 1, 1ull << 30, &p->min) &&
           bench_parse_u64(argv[3], "MAX", p->min, 1ull << 30, &p->max) &&
           bench_parse_u64(argv[4], "CHUNKS", 1, 1ull << 26, &p->chunks) &&
           bench_parse_u64(argv[5], "ROUNDS", 1, UINT32_MAX, &p->rounds) &&
           bench_parse_u64(argv[6], "SEED", 0, UINT64_MAX, &p->seed) &&
           bench_parse_u64(argv[7], "THREADS", 1, 4096, &p->threads);
}

static void sleep_seconds(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s,
                          .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

int main(int argc, char **argv)
{
    struct params prm;
    if (!parse_args(argc, argv, &prm))
        bench_usage_exit(usage);

    struct lane *lanes = calloc(prm.threads, sizeof *lanes);
    if (lanes == NULL)
        bench_oom_exit("larson", prm.threads * sizeof *lanes);
    for (uint64_t t = 0; t < prm.threads; t++) {
        struct lane *ln = &lanes[t];
        ln->prm = &prm;
        ln->rng = prm.seed * 0x100000001B3ull + t;
        ln->blocks = malloc(prm.chunks * sizeof *ln->blocks);
        if (ln->blocks == NULL)
            bench_oom_exit("larson", prm.chunks * sizeof *ln->blocks);
        for (uint64_t i = 0; i < prm.chunks; i++) {
            size_t size = (size_t)bench_rng_range(&ln->rng, prm.min, prm.max);
            ln->blocks[i] = malloc(size);
            if (ln->blocks[i] == NULL)
                bench_oom_exit("larson", size);
            bench_touch(ln->blocks[i], size, size);
        }
    }
    sem_init(&finished_sem, 0, 0);

    double t0 = bench_now();
    for (uint64_t t = 0; t < prm.threads; t++) {
        pthread_t tid;
        if (pthread_create(&tid, NULL, lane_thread, &lanes[t]) != 0) {
            fprintf(stderr, "larson: cannot create thread %" PRIu64 "\n", t);
            return 1;
        }
    }
    sleep_seconds(prm.sleep);
    atomic_store(&stop_flag, true);
    for (uint64_t t = 0; t < prm.threads; t++)
        while (sem_wait(&finished_sem) != 0 && errno == EINTR) {
        }
    uint64_t ops = 0, spawned = 0;
    bool failed = false;
    for (uint64_t t = 0; t < prm.threads; t++) {
        pthread_join(lanes[t].last, NULL);
        ops += lanes[t].ops;
        spawned += lanes[t].spawned;
        failed |= lanes[t].create_failed;
    }
    double secs = bench_now() - t0;

    if (failed) {
        fprintf(stderr, "larson: a thread could not be created; the result is not valid\n");
        return 1;
    }
    printf("RESULT bench=larson threads=%" PRIu64 " sleep=%g min=%" PRIu64 " max=%" PRIu64
           " chunks=%" PRIu64 " rounds=%" PRIu64 " seed=%" PRIu64 " ops=%" PRIu64
           " seconds=%.6f mops=%.4f spawned=%" PRIu64 "\n",
           prm.threads, prm.sleep, prm.min, prm.max, prm.chunks, prm.rounds, prm.seed,
           ops, secs, (double)ops / secs / 1e6, spawned);
    fflush(stdout);

    for (uint64_t t = 0; t < prm.threads; t++) {
        for (uint64_t i = 0; i < prm.chunks; i++)
            free(lanes[t].blocks[i]);
        free(lanes[t].blocks);
    }
    free(lanes);
    sem_destroy(&finished_sem);
    return 0;
}
