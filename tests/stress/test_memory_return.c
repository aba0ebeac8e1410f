// SPDX-License-Identifier: MIT
/* Suite `stress`: memory goes back to the OS. The suite runs with
 * HAKMEM_PURGE_DELAY_MS=200 (meson.build); "settled" below means: the
 * program went on calling malloc and free for a little more than the
 * purge delay (settle()), which is when the purge policy gives back what
 * stayed free.
 *  - a peak of 1 GiB of mixed small and mid blocks (16 B .. 32 KiB), all
 *    freed in allocation order, in reverse and in random order (three
 *    rounds): VmRSS, settled, within 64 MiB of where the round started;
 *    after a fourth round, malloc_trim(0) brings it there at once;
 *  - 10,000 short-lived threads that allocate, free, hand blocks on to the
 *    next thread and end: VmRSS, settled, within 64 MiB of the start;
 *  - producer-consumer, 10 million small blocks (2 producers, 2 consumers):
 *    VmRSS, settled, within 64 MiB of the start.
 * "RSS" is VmRSS, what users see (pages released with MADV_FREE still count
 * until the kernel takes them).
 *
 * Links libhakmem.so: malloc is hakmem's. Not built under sanitizers (their
 * shadow memory and quarantine make RSS meaningless). */
#include "common/hak_test.h"

#include <malloc.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <time.h>

#include "hakmem/hakmem.h"

#define MiB ((size_t)1 << 20)
#define BOUND (64 * MiB)

static void *(*volatile malloc_v)(size_t) = malloc;

static void report(const char *what, size_t before, size_t peak, size_t after)
{
    if (peak)
        print_message("%-44s RSS before %6zu MiB, peak %6zu MiB, after %6zu MiB (%+ld MiB)\n", what,
                      before / MiB, peak / MiB, after / MiB, ((long)after - (long)before) / (long)MiB);
    else
        print_message("%-44s RSS before %6zu MiB, after %6zu MiB (%+ld MiB)\n", what, before / MiB,
                      after / MiB, ((long)after - (long)before) / (long)MiB);
}

/* Go on calling malloc and free (small and mid blocks, so that thread
 * caches refill and drain: the slow paths that poll the purge policy) for
 * twice the purge delay. */
static void settle(void)
{
    const char *v = getenv("HAKMEM_PURGE_DELAY_MS");
    long delay = v ? atol(v) : 1000;
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* a program that goes on working: more blocks of a size than a
     * thread cache holds, so that refills and drains (the slow paths,
     * where the purge policy looks at the clock) keep happening; blocks
     * that only cycle inside the caches reach no slow path (design.md,
     * "Idle processes") */
    enum { NB = 2048 };
    static void *b[NB];
    do {
        for (int i = 0; i < NB; i++) {
            b[i] = malloc_v(i % 8 == 0 ? 4096 + (size_t)(i % 512) * 8 : 16 + (size_t)(i % 64) * 16);
            assert_non_null(b[i]);
        }
        for (int i = 0; i < NB; i++)
            free(b[i]);
        struct timespec nap = {0, 5 * 1000 * 1000};
        nanosleep(&nap, NULL);
        clock_gettime(CLOCK_MONOTONIC, &t);
    } while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < 2 * delay + 50);
}

/* ---------------------------------------------------- 1 GiB, three orders */

#define NBLK (1u << 18)
static void *g_blk[NBLK];
static uint32_t g_size[NBLK];
static uint32_t g_order[NBLK];

/* Half small (16 .. 1023 B), half mid (1 KiB .. 32 KiB). */
static size_t mixed_size(ht_rng_t *r)
{
    if (ht_rand(r) & 1)
        return (size_t)ht_range(r, 16, 1023);
    return (size_t)ht_range(r, 1024, 32768);
}

static void test_peak_1g_three_orders(void **state)
{
    (void)state;
    ht_rng_t r = {0x1A2B3C4D};
    /* commit the bookkeeping before the first measurement */
    memset(g_blk, 0, sizeof g_blk);
    memset(g_size, 0, sizeof g_size);
    memset(g_order, 0, sizeof g_order);
    static const char *const names[4] = {"1 GiB, allocation order, settled", "1 GiB, reverse order, settled",
                                         "1 GiB, random order, settled", "1 GiB, random order, malloc_trim(0)"};
    size_t worst = 0;
    for (int round = 0; round < 4; round++) {
        size_t before = ht_rss();
        size_t total = 0, n = 0;
        while (total < ((size_t)1 << 30) && n < NBLK) {
            size_t s = mixed_size(&r);
            uint8_t *p = malloc_v(s);
            assert_non_null(p);
            memset(p, (int)(n & 0xFF) | 1, s); /* touch: resident */
            g_blk[n] = p;
            g_size[n] = (uint32_t)s;
            total += s;
            n++;
        }
        assert_true(total >= ((size_t)1 << 30));
        size_t peak = ht_rss();
        for (size_t i = 0; i < n; i++)
            g_order[i] = (uint32_t)(round == 1 ? n - 1 - i : i);
        if (round >= 2)
            for (size_t i = n - 1; i > 0; i--) {
                size_t j = (size_t)ht_range(&r, 0, i);
                uint32_t t = g_order[i];
                g_order[i] = g_order[j];
                g_order[j] = t;
            }
        for (size_t i = 0; i < n; i++) {
            uint8_t *p = g_blk[g_order[i]];
            if (p[0] != (uint8_t)((g_order[i] & 0xFF) | 1) ||
                p[g_size[g_order[i]] - 1] != (uint8_t)((g_order[i] & 0xFF) | 1))
                fail_msg("block %u corrupted", g_order[i]);
            free(p);
            g_blk[g_order[i]] = NULL;
        }
        if (round < 3)
            settle();
        else
            assert_int_equal(malloc_trim(0), 1);
        size_t after = ht_rss();
        report(names[round], before, peak, after);
        if (after > before && after - before > worst)
            worst = after - before;
    }
    assert_true(worst <= BOUND);
}

/* ------------------------------------------------ 10,000 short threads */

#define NTHREADS 10000
#define HAND 64
static pthread_mutex_t g_hand_mu = PTHREAD_MUTEX_INITIALIZER;
static void *g_hand[HAND];
static size_t g_hand_n;

static void *short_lived(void *arg)
{
    ht_rng_t r = {(uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ULL + 1};
    void *mine[96];
    int n = 0;
    for (int i = 0; i < 96; i++) {
        size_t s = i % 24 == 0 ? (size_t)ht_range(&r, 1024, 32768) : (size_t)ht_range(&r, 16, 1023);
        mine[n] = malloc_v(s);
        if (mine[n] == NULL)
            return (void *)1;
        memset(mine[n], 0x5C, s);
        n++;
    }
    /* free two thirds, free what the previous thread handed on, hand on
     * the rest (a thread that only frees, blocks of a thread that ended) */
    for (int i = 0; i < n; i++)
        if (i % 3 != 0)
            free(mine[i]);
    pthread_mutex_lock(&g_hand_mu);
    for (size_t i = 0; i < g_hand_n; i++)
        free(g_hand[i]);
    g_hand_n = 0;
    for (int i = 0; i < n && g_hand_n < HAND; i += 3)
        g_hand[g_hand_n++] = mine[i];
    pthread_mutex_unlock(&g_hand_mu);
    return NULL;
}

static void test_10000_short_threads(void **state)
{
    (void)state;
    size_t before = ht_rss(), peak = before;
    /* two at a time, joined */
    for (int i = 0; i < NTHREADS; i += 2) {
        pthread_t a, b;
        void *ra = NULL, *rb = NULL;
        assert_int_equal(pthread_create(&a, NULL, short_lived, (void *)(uintptr_t)i), 0);
        assert_int_equal(pthread_create(&b, NULL, short_lived, (void *)(uintptr_t)(i + 1)), 0);
        pthread_join(a, &ra);
        pthread_join(b, &rb);
        assert_null(ra);
        assert_null(rb);
        if (i % 1000 == 0) {
            size_t now = ht_rss();
            if (now > peak)
                peak = now;
        }
    }
    for (size_t i = 0; i < g_hand_n; i++)
        free(g_hand[i]);
    g_hand_n = 0;
    settle();
    size_t after = ht_rss();
    report("10,000 short-lived threads, settled", before, peak, after);
    assert_true(after <= before + BOUND);
}

/* -------------------------------------------------- producer-consumer */

#define TOTAL 10000000u
#define RING 4096
typedef struct {
    _Alignas(64) atomic_size_t head; /* written by the consumer */
    _Alignas(64) atomic_size_t tail; /* written by the producer */
    _Alignas(64) void *slot[RING];
} ring_t;
/* ring[p][c]: producer p to consumer c */
static ring_t g_ring[2][2];
static atomic_int g_pc_bad;

static void *producer(void *arg)
{
    int me = (int)(uintptr_t)arg;
    ht_rng_t r = {(uint64_t)me * 7919 + 3};
    for (uint64_t k = 0; k < TOTAL / 2; k++) {
        ring_t *q = &g_ring[me][k & 1];
        size_t s = (size_t)ht_range(&r, 16, 256);
        uint64_t *p = malloc_v(s);
        if (p == NULL) {
            atomic_store(&g_pc_bad, 1);
            return NULL;
        }
        p[0] = k;
        p[1] = ~k;
        size_t t = atomic_load_explicit(&q->tail, memory_order_relaxed);
        while (t - atomic_load_explicit(&q->head, memory_order_acquire) == RING)
            sched_yield();
        q->slot[t % RING] = p;
        atomic_store_explicit(&q->tail, t + 1, memory_order_release);
    }
    return NULL;
}

static void *consumer(void *arg)
{
    int me = (int)(uintptr_t)arg;
    uint64_t got = 0, want = TOTAL / 2;
    uint64_t expect[2] = {0, 0}; /* producer p sends k = 2j + me on ring[p][me] */
    expect[0] = expect[1] = (uint64_t)me;
    while (got < want) {
        int idle = 1;
        for (int p = 0; p < 2; p++) {
            ring_t *q = &g_ring[p][me];
            size_t h = atomic_load_explicit(&q->head, memory_order_relaxed);
            size_t t = atomic_load_explicit(&q->tail, memory_order_acquire);
            for (; h != t; h++) {
                uint64_t *b = q->slot[h % RING];
                if (b[0] != expect[p] || b[1] != ~expect[p])
                    atomic_store(&g_pc_bad, 2);
                expect[p] += 2;
                free(b);
                got++;
                idle = 0;
            }
            atomic_store_explicit(&q->head, h, memory_order_release);
        }
        if (idle)
            sched_yield();
    }
    return NULL;
}

static void test_producer_consumer_10m(void **state)
{
    (void)state;
    memset(g_ring, 0, sizeof g_ring);
    size_t before = ht_rss();
    pthread_t th[4];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, consumer, (void *)(uintptr_t)i), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[2 + i], NULL, producer, (void *)(uintptr_t)i), 0);
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(atomic_load(&g_pc_bad), 0);
    settle();
    size_t after = ht_rss();
    report("producer-consumer, 10 million blocks, settled", before, 0, after);
    assert_true(after <= before + BOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_peak_1g_three_orders),
        cmocka_unit_test(test_10000_short_threads),
        cmocka_unit_test(test_producer_consumer_10m),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
