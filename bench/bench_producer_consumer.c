// SPDX-License-Identifier: MIT
/* bench_producer_consumer: threads that allocate, other threads that free.
 *
 * PRODUCERS threads allocate ITEMS blocks in all (random sizes in
 * [16, MAXSIZE]), write a check word at the start and a check byte at the
 * end of each, and push them through one bounded queue (a ring of 4096
 * pointers under a mutex, with condition variables). Pointers move in
 * batches of up to 32 per lock acquisition so that the queue's locking does
 * not hide the allocator. CONSUMERS threads pop the blocks, verify both
 * checks and free them: every free is of memory another thread allocated.
 * The rate is ITEMS over the wall time from the start until the last block
 * is freed (one op = one item: its malloc, transfer and free).
 *
 * Output: RESULT bench=producer_consumer producers=P consumers=C items=N
 *         maxsize=M batch=32 ops=N seconds=X mops=Y
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <pthread.h>
#include <stdatomic.h>

#define QUEUE_CAP 4096
#define BATCH 32
#define MIN_SIZE 16
#define CHECK_KEY 0x5A17C0DEF00DBEEFull

static const char usage[] =
    "usage: bench_producer_consumer [PRODUCERS CONSUMERS ITEMS MAXSIZE]\n"
    "  PRODUCERS  allocating threads (default 1)\n"
    "  CONSUMERS  freeing threads (default 1)\n"
    "  ITEMS      blocks passed from producers to consumers in all (default 1000000)\n"
    "  MAXSIZE    largest block, >= 16; sizes uniform in [16, MAXSIZE] (default 1024)\n";

struct queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty, not_full;
    void *ring[QUEUE_CAP];
    size_t head, count;
    unsigned producers_left;
};

static struct queue q = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .not_empty = PTHREAD_COND_INITIALIZER,
    .not_full = PTHREAD_COND_INITIALIZER,
};
static atomic_uint_fast64_t bad_items;

static void queue_push(void *const *items, size_t n)
{
    pthread_mutex_lock(&q.lock);
    while (QUEUE_CAP - q.count < n)
        pthread_cond_wait(&q.not_full, &q.lock);
    for (size_t i = 0; i < n; i++)
        q.ring[(q.head + q.count + i) % QUEUE_CAP] = items[i];
    q.count += n;
    pthread_cond_signal(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

/* Pop up to `max` items; 0 means the queue is drained and no producer is left. */
static size_t queue_pop(void **items, size_t max)
{
    pthread_mutex_lock(&q.lock);
    while (q.count == 0 && q.producers_left > 0)
        pthread_cond_wait(&q.not_empty, &q.lock);
    size_t n = q.count < max ? q.count : max;
    for (size_t i = 0; i < n; i++)
        items[i] = q.ring[(q.head + i) % QUEUE_CAP];
    q.head = (q.head + n) % QUEUE_CAP;
    q.count -= n;
    if (n > 0)
        pthread_cond_broadcast(&q.not_full);
    pthread_mutex_unlock(&q.lock);
    return n;
}

static void producer_done(void)
{
    pthread_mutex_lock(&q.lock);
    if (--q.producers_left == 0)
        pthread_cond_broadcast(&q.not_empty);
    pthread_mutex_unlock(&q.lock);
}

struct producer {
    uint64_t items, maxsize, seed;
    pthread_barrier_t *start;
};

static void *producer_main(void *arg)
{
    const struct producer *p = arg;
    uint64_t rng = p->seed;
    void *batch[BATCH];
    size_t n = 0;

    pthread_barrier_wait(p->start);
    for (uint64_t i = 0; i < p->items; i++) {
        size_t size = (size_t)bench_rng_range(&rng, MIN_SIZE, p->maxsize);
        unsigned char *b = malloc(size);
        if (b == NULL)
            bench_oom_exit("bench_producer_consumer", size);
        uint64_t word = size ^ CHECK_KEY;
        memcpy(b, &word, sizeof word);
        b[size - 1] = (unsigned char)(size * 31u);
        batch[n++] = b;
        if (n == BATCH) {
            queue_push(batch, n);
            n = 0;
        }
    }
    if (n > 0)
        queue_push(batch, n);
    producer_done();
    return NULL;
}

/* True if a block carries the checks its producer wrote. */
static bool item_ok(const unsigned char *b, uint64_t maxsize)
{
    uint64_t word;
    memcpy(&word, b, sizeof word);
    uint64_t size = word ^ CHECK_KEY;
    return size >= MIN_SIZE && size <= maxsize && b[size - 1] == (unsigned char)(size * 31u);
}

struct consumer {
    uint64_t maxsize;
    pthread_barrier_t *start;
};

static void *consumer_main(void *arg)
{
    const struct consumer *c = arg;
    void *batch[BATCH];
    size_t n;

    pthread_barrier_wait(c->start);
    while ((n = queue_pop(batch, BATCH)) > 0) {
        for (size_t i = 0; i < n; i++) {
            if (!item_ok(batch[i], c->maxsize))
                atomic_fetch_add(&bad_items, 1);
            free(batch[i]);
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    uint64_t producers = 1, consumers = 1, items = 1000000, maxsize = 1024;
    if (argc != 1 && argc != 5)
        bench_usage_exit(usage);
    if (argc == 5 &&
        (!bench_parse_u64(argv[1], "PRODUCERS", 1, 1024, &producers) ||
         !bench_parse_u64(argv[2], "CONSUMERS", 1, 1024, &consumers) ||
         !bench_parse_u64(argv[3], "ITEMS", 1, UINT64_MAX / 2, &items) ||
         !bench_parse_u64(argv[4], "MAXSIZE", MIN_SIZE, 1ull << 30, &maxsize)))
        bench_usage_exit(usage);

    uint64_t nthreads = producers + consumers;
    pthread_t *tids = calloc(nthreads, sizeof *tids);
    struct producer *ps = calloc(producers, sizeof *ps);
    if (tids == NULL || ps == NULL)
        bench_oom_exit("bench_producer_consumer", nthreads * sizeof *tids);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, (unsigned)nthreads + 1);
    struct consumer cons = {.maxsize = maxsize, .start = &start};
    q.producers_left = (unsigned)producers;

    for (uint64_t i = 0; i < nthreads; i++) {
        int rc;
        if (i < producers) {
            ps[i] = (struct producer){
                .items = items / producers + (i < items % producers),
                .maxsize = maxsize, .seed = 0x9E37ull * (i + 1), .start = &start};
            rc = pthread_create(&tids[i], NULL, producer_main, &ps[i]);
        } else {
            rc = pthread_create(&tids[i], NULL, consumer_main, &cons);
        }
        if (rc != 0) {
            fprintf(stderr, "bench_producer_consumer: cannot create thread %" PRIu64 "\n", i);
            return 1;
        }
    }
    pthread_barrier_wait(&start);
    double t0 = bench_now();
    for (uint64_t i = 0; i < nthreads; i++)
        pthread_join(tids[i], NULL);
    double secs = bench_now() - t0;

    uint64_t bad = atomic_load(&bad_items);
    if (bad != 0) {
        fprintf(stderr, "bench_producer_consumer: %" PRIu64 " blocks arrived corrupted\n", bad);
        return 1;
    }
    printf("RESULT bench=producer_consumer producers=%" PRIu64 " consumers=%" PRIu64
           " items=%" PRIu64 " maxsize=%" PRIu64 " batch=%d ops=%" PRIu64
           " seconds=%.6f mops=%.4f\n",
           producers, consumers, items, maxsize, BATCH, items, secs,
           (double)items / secs / 1e6);
    pthread_barrier_destroy(&start);
    free(ps);
    free(tids);
    return 0;
}
