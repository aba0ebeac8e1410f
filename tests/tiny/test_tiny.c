// SPDX-License-Identifier: MIT
/* Suite `tiny`: the tiny tier alone, through its public API (hakmem/tiny.h)
 * plus the class table (tiny_classes.h) for the expected header bytes. */
#include "common/hak_test.h"
#include "common/ht_purge.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#include "hakmem/tiny.h"
#include "tiny_internal.h"

static size_t committed(void)
{
    hak_tiny_stats_t st;
    hak_tiny_get_stats(&st);
    return st.bytes_committed;
}

/* Every class: alignment, usable size, header byte(s), class boundaries. */
static void test_classes(void **state)
{
    (void)state;
    assert_true(hak_tiny_max_size() == HAK_TINY_MAX_SIZE);
#if HAK_HEADER_CLASSIDX && HAK_CLASS7_HEADER_WIDTH == 1
    assert_int_equal(hak_tiny_max_size(), 1023);
#else
    assert_true(hak_tiny_max_size() >= 1024);
#endif
    size_t prev_usable = 0;
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        size_t usable = hak_tiny_usable_of(c);
        unsigned stride = hak_tiny_stride_[c];
        assert_int_equal(stride % 16, 0);
        assert_true(usable > prev_usable);
        /* spacing: at most 25% above the previous class (beyond 16-byte steps) */
        if (c > 0 && stride > 256)
            assert_true(stride * 4 <= hak_tiny_stride_[c - 1] * 5);
        /* the largest request of this class and the smallest maps to it */
        assert_int_equal(hak_tiny_class_of(usable), c);
        assert_int_equal(hak_tiny_class_of(prev_usable + 1), c);
        for (int k = 0; k < 300; k++) {
            size_t n = prev_usable + 1 + (size_t)k % (usable - prev_usable);
            uint8_t *p = hak_tiny_alloc(n);
            assert_non_null(p);
            assert_true(HT_ALIGNED(p, 16));
            assert_true(hak_tiny_owns(p));
            assert_int_equal(hak_tiny_usable_size(p), usable);
            memset(p, 0xEE, usable); /* writable to its end */
#if HAK_HEADER_CLASSIDX
            uint8_t h = p[-1];
            assert_int_equal(h & HAK_TINY_CLASS_MASK, c);
            assert_int_equal(h & HAK_TINY_MAGIC_MASK, HAK_TINY_MAGIC_LIVE);
            if (hak_tiny_hdr_of(c) == 2)
                assert_int_equal(p[-2], HAK_TINY_CHECK_BYTE);
#endif
            hak_tiny_free(p);
        }
        prev_usable = usable;
    }
    errno = 0;
    assert_null(hak_tiny_alloc(hak_tiny_max_size() + 1));
    assert_int_equal(errno, ENOMEM);
    hak_tiny_free(NULL);
    assert_int_equal(hak_tiny_usable_size(NULL), 0);
}

static int cmp_addr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* No two live blocks overlap; patterns survive churn. */
#define NLIVE 20000
static void test_no_overlap_churn(void **state)
{
    (void)state;
    static uint8_t *ptr[NLIVE];
    static size_t len[NLIVE];
    ht_rng_t r = {0x1234567};
    for (int i = 0; i < NLIVE; i++) {
        len[i] = ht_range(&r, 0, hak_tiny_max_size());
        ptr[i] = hak_tiny_alloc(len[i]);
        assert_non_null(ptr[i]);
        ht_fill(ptr[i], len[i], (uint64_t)i);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = round & 1; i < NLIVE; i += 2) {
            assert_true(ht_check(ptr[i], len[i], (uint64_t)i));
            hak_tiny_free(ptr[i]);
            len[i] = ht_range(&r, 0, hak_tiny_max_size());
            ptr[i] = hak_tiny_alloc(len[i]);
            assert_non_null(ptr[i]);
            ht_fill(ptr[i], len[i], (uint64_t)i);
        }
    }
    /* overlap check: sort by address and compare against usable extents */
    for (int i = 0; i < NLIVE; i++)
        assert_true(ht_check(ptr[i], len[i], (uint64_t)i));
    static uintptr_t addr[NLIVE];
    for (int i = 0; i < NLIVE; i++)
        addr[i] = (uintptr_t)ptr[i];
    qsort(addr, NLIVE, sizeof addr[0], cmp_addr);
    for (int i = 1; i < NLIVE; i++)
        assert_true(addr[i - 1] + hak_tiny_usable_size((void *)addr[i - 1]) + HAK_TINY_HDR <= addr[i]);
    for (int i = 0; i < NLIVE; i++)
        hak_tiny_free(ptr[i]);
}

/* A million random operations checked against a model of the live set. */
#define MODEL_SLOTS 4096
static void test_random_model(void **state)
{
    (void)state;
    static uint8_t *ptr[MODEL_SLOTS];
    static size_t len[MODEL_SLOTS];
    static uint64_t tag[MODEL_SLOTS];
    ht_rng_t r = {42};
    size_t live = 0;
    for (long op = 0; op < 1000000; op++) {
        int i = (int)(ht_rand(&r) % MODEL_SLOTS);
        if (ptr[i]) {
            /* partial check keeps a million ops fast; full at the end */
            size_t n = len[i] < 16 ? len[i] : 16;
            assert_true(ht_check(ptr[i], n, tag[i]));
            hak_tiny_free(ptr[i]);
            ptr[i] = NULL;
            live--;
        } else {
            len[i] = (ht_rand(&r) & 3) ? ht_range(&r, 0, 128) : ht_range(&r, 0, hak_tiny_max_size());
            ptr[i] = hak_tiny_alloc(len[i]);
            assert_non_null(ptr[i]);
            assert_true(hak_tiny_usable_size(ptr[i]) >= len[i]);
            tag[i] = (uint64_t)op;
            ht_fill(ptr[i], len[i], tag[i]);
            live++;
        }
    }
    for (int i = 0; i < MODEL_SLOTS; i++) {
        if (ptr[i]) {
            assert_true(ht_check(ptr[i], len[i], tag[i]));
            hak_tiny_free(ptr[i]);
            live--;
        }
    }
    assert_int_equal(live, 0);
}

/* Aligned allocations: placed only by classes whose stride allows. */
static void test_aligned(void **state)
{
    (void)state;
    size_t aligns[] = {16, 32, 64, 128, 256, 512, 1024};
    for (size_t a = 0; a < 7; a++) {
        for (size_t n = 1; n <= hak_tiny_max_size(); n = n * 2 + 1) {
            void *p = hak_tiny_alloc_aligned(n, aligns[a]);
            if (p == NULL) {
                assert_int_equal(errno, ENOMEM);
                assert_true(n > 512 || aligns[a] > 256);
                continue;
            }
            assert_true(HT_ALIGNED(p, aligns[a]));
            assert_true(hak_tiny_usable_size(p) >= n);
            memset(p, 1, n);
            hak_tiny_free(p);
        }
    }
    void *p = hak_tiny_alloc_aligned(64, 64); /* aligned_alloc(64, 64) fits tiny */
    assert_non_null(p);
    assert_true(HT_ALIGNED(p, 64));
    hak_tiny_free(p);
    errno = 0;
    assert_null(hak_tiny_alloc_aligned(16, 48));
    assert_int_equal(errno, EINVAL);
}

/* Producer threads allocate, consumers free; memory is reused. */
#define XT_BLOCKS 20000
typedef struct {
    void **slots;
    int n;
} xt_arg_t;

static void *xt_free_all(void *arg)
{
    xt_arg_t *a = arg;
    for (int i = 0; i < a->n; i++) {
        assert_true(ht_check(a->slots[i], 8, (uint64_t)i));
        hak_tiny_free(a->slots[i]);
    }
    return NULL;
}

static void test_cross_thread(void **state)
{
    (void)state;
    static void *slots[4][XT_BLOCKS];
    size_t high = 0;
    for (int round = 0; round < 8; round++) {
        for (int t = 0; t < 4; t++)
            for (int i = 0; i < XT_BLOCKS; i++) {
                slots[t][i] = hak_tiny_alloc(8 + (size_t)(i % 100));
                assert_non_null(slots[t][i]);
                ht_fill(slots[t][i], 8, (uint64_t)i);
            }
        pthread_t th[4];
        xt_arg_t args[4];
        for (int t = 0; t < 4; t++) {
            args[t] = (xt_arg_t){slots[t], XT_BLOCKS};
            pthread_create(&th[t], NULL, xt_free_all, &args[t]);
        }
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
        size_t c = committed();
        if (round == 1)
            high = c;
        if (round > 1) /* blocks freed by other threads come back: no growth */
            assert_true(c <= high + ((size_t)2 << 20));
    }
}

/* 1,000 threads, each allocating and exiting: committed memory returns. */
static void *churn_thread(void *arg)
{
    (void)arg;
    void *p[200];
    for (int i = 0; i < 200; i++) {
        p[i] = hak_tiny_alloc((size_t)(i * 5) % 1000);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 200; i += 2)
        hak_tiny_free(p[i]);
    for (int i = 1; i < 200; i += 2)
        hak_tiny_free(p[i]);
    return NULL;
}

static void test_thread_churn(void **state)
{
    (void)state;
    hak_tiny_trim();
    size_t before = committed();
    for (int i = 0; i < 1000; i += 4) {
        pthread_t t[4];
        for (int k = 0; k < 4; k++)
            assert_int_equal(pthread_create(&t[k], NULL, churn_thread, NULL), 0);
        for (int k = 0; k < 4; k++)
            pthread_join(t[k], NULL);
    }
    ht_purge_later(); /* what the threads sent home goes back after the purge delay */
    size_t after = committed();
    assert_true(after <= before + ((size_t)4 << 20));
}

/* A thread that uses one block of a class takes one block, not a batch
 * (the slow start of refills, design.md "The front end"): 128 live threads
 * holding one 1000-byte block each hold 128 blocks of the 1024-byte class,
 * two slabs, not eight (a first refill of 4 took 16 KB of RSS per thread
 * that used 8 classes, bench 3,000 live threads). */
#define FR_THREADS 128
static pthread_barrier_t fr_barrier;
static void *fr_thread(void *arg)
{
    void *p = hak_tiny_alloc(1000);
    *(void **)arg = p;
    if (p)
        memset(p, 0x5a, 1000);
    pthread_barrier_wait(&fr_barrier); /* all hold their block */
    pthread_barrier_wait(&fr_barrier); /* main has counted */
    hak_tiny_free(p);
    return NULL;
}

static void test_first_refill(void **state)
{
    (void)state;
    hak_tiny_trim();
    hak_tiny_stats_t st;
    hak_tiny_get_stats(&st);
    size_t before = st.slabs_in_use;
    pthread_t t[FR_THREADS];
    void *blocks[FR_THREADS];
    pthread_barrier_init(&fr_barrier, NULL, FR_THREADS + 1);
    for (int i = 0; i < FR_THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, fr_thread, &blocks[i]), 0);
    pthread_barrier_wait(&fr_barrier);
    hak_tiny_get_stats(&st);
    size_t slab_blocks = ((size_t)1 << HAK_TINY_SLAB_SHIFT) / 1024;
    for (int i = 0; i < FR_THREADS; i++)
        assert_non_null(blocks[i]);
    /* one more slab for a partial one the class already had */
    assert_true(st.slabs_in_use - before <= FR_THREADS / slab_blocks + 1);
    pthread_barrier_wait(&fr_barrier);
    for (int i = 0; i < FR_THREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&fr_barrier);
}

/* Regression: a SuperSlab kept as the spare keeps its warm (dirty) slabs on
 * the dirty list; a slab taken from there, then the spare taken whole for
 * new slabs, must not be formatted twice (found by the producer-consumer
 * benchmark as a crash in the central list's take (hak_central_take)). */
static void test_spare_reuse(void **state)
{
    (void)state;
    enum { N = 6000, M = 20000 };
    static uint8_t *big[N], *small[M];
    for (int round = 0; round < 3; round++) {
        for (int i = 0; i < N; i++)
            big[i] = hak_tiny_alloc(1000); /* about 6 MiB: three SuperSlabs */
        for (int i = 0; i < N; i++)
            hak_tiny_free(big[i]);
        for (int i = 0; i < M; i++) { /* other classes, over the spare's warm slabs */
            small[i] = hak_tiny_alloc((size_t)(i % 7) * 64 + 16);
            ht_fill(small[i], 16, (uint64_t)i);
        }
        for (int i = 0; i < N; i++) {
            big[i] = hak_tiny_alloc(500);
            ht_fill(big[i], 500, (uint64_t)i + 7);
        }
        for (int i = 0; i < M; i++) {
            assert_true(ht_check(small[i], 16, (uint64_t)i));
            hak_tiny_free(small[i]);
        }
        for (int i = 0; i < N; i++) {
            assert_true(ht_check(big[i], 500, (uint64_t)i + 7));
            hak_tiny_free(big[i]);
        }
    }
}

/* Ownership: never claims memory that is not the tier's. */
static void test_ownership(void **state)
{
    (void)state;
    int on_stack = 0;
    assert_false(hak_tiny_owns(&on_stack));
    assert_false(hak_tiny_owns(NULL));
    assert_false(hak_tiny_owns((void *)(uintptr_t)-16));
    void *m = mmap(NULL, 1 << 22, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    for (size_t off = 0; off < (1 << 22); off += 4096)
        assert_false(hak_tiny_owns((char *)m + off));
    munmap(m, 1 << 22);
    static uint8_t in_bss[64];
    assert_false(hak_tiny_owns(in_bss));
    /* just outside each SuperSlab of some live blocks */
    void *p[64];
    for (int i = 0; i < 64; i++) {
        p[i] = hak_tiny_alloc(1000);
        assert_true(hak_tiny_owns(p[i]));
        uintptr_t ss = (uintptr_t)p[i] & ~(uintptr_t)(HAK_CHUNK_SIZE - 1);
        assert_true(hak_tiny_owns((void *)ss));
        assert_true(hak_tiny_owns((void *)(ss + HAK_CHUNK_SIZE - 1)));
        /* neighbours are not tiny unless they are SuperSlabs themselves */
        void *before = (void *)(ss - 1), *after = (void *)(ss + HAK_CHUNK_SIZE);
        if (hak_tiny_owns(before))
            assert_int_equal(((tiny_ss_t *)((uintptr_t)before & ~(uintptr_t)(HAK_CHUNK_SIZE - 1)))->magic, HAK_TINY_SS_MAGIC);
        if (hak_tiny_owns(after))
            assert_int_equal(((tiny_ss_t *)after)->magic, HAK_TINY_SS_MAGIC);
    }
    for (int i = 0; i < 64; i++)
        hak_tiny_free(p[i]);
}

/* 256 MiB of tiny blocks, all freed by one thread: the pages stay
 * committed until the purge delay has passed (a burst allocated again
 * would not fault them in again), then go back. */
static void big_cycle(int order)
{
    hak_tiny_trim();
    size_t before = committed();
    size_t n = ((size_t)256 << 20) / 128;
    void **v = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(v != MAP_FAILED);
    for (size_t i = 0; i < n; i++) {
        v[i] = hak_tiny_alloc(100);
        assert_non_null(v[i]);
        *(volatile char *)v[i] = 1;
    }
    assert_true(committed() >= before + ((size_t)200 << 20));
    if (order == 1) {
        for (size_t i = n; i-- > 0;)
            hak_tiny_free(v[i]);
    } else if (order == 2) {
        ht_rng_t r = {7};
        for (size_t i = n - 1; i > 0; i--) {
            size_t j = ht_rand(&r) % (i + 1);
            void *t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        for (size_t i = 0; i < n; i++)
            hak_tiny_free(v[i]);
    } else {
        for (size_t i = 0; i < n; i++)
            hak_tiny_free(v[i]);
    }
    size_t kept = committed();
    hak_purge_poll();
    assert_int_equal(committed(), kept); /* within the delay and the budget: nothing goes back */
    assert_true(kept >= before + ((size_t)128 << 20));
    ht_purge_later();
    size_t after = committed();
    munmap(v, n * sizeof(void *));
    hak_tiny_stats_t st;
    hak_tiny_get_stats(&st);
    print_message("order %d: committed %zu KiB before, %zu KiB kept, %zu KiB after the delay; %zu superslabs, %zu slabs in use\n",
                  order, before >> 10, kept >> 10, after >> 10, st.superslabs, st.slabs_in_use);
    assert_true(after <= before + ((size_t)4 << 20));
}

/* With the delay at -1 nothing goes back by age, but the budget holds:
 * the dirty bytes stay within HAKMEM_PURGE_BUDGET percent of the recent
 * peak in use, and within the floor once two epochs have passed. */
static void test_budget_without_delay(void **state)
{
    (void)state;
    assert_int_equal(hak_purge_configure(-1, 25), 0);
    hak_tiny_trim();
    size_t before = committed();
    size_t n = ((size_t)128 << 20) / 128;
    void **v = mmap(NULL, n * sizeof(void *), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(v != MAP_FAILED);
    for (size_t i = 0; i < n; i++) {
        v[i] = hak_tiny_alloc(100);
        assert_non_null(v[i]);
        *(volatile char *)v[i] = 1;
    }
    size_t peak = committed() - before;
    for (size_t i = 0; i < n; i++)
        hak_tiny_free(v[i]);
    munmap(v, n * sizeof(void *));
    size_t kept = committed() - before;
    print_message("delay -1, budget 25%%: peak +%zu KiB, kept +%zu KiB, dirty %zu KiB, budget %zu KiB\n", peak >> 10,
                  kept >> 10, hak_purge_.dirty >> 10, hak_purge_budget() >> 10);
    assert_true(hak_purge_.dirty <= hak_purge_budget());
    assert_true(kept <= peak / 4 + HAK_PURGE_FLOOR_DEFAULT + ((size_t)4 << 20));
    assert_true(kept >= ((size_t)16 << 20)); /* the budget, not everything, went back */
    ht_purge_later();                       /* two epochs: the peak is forgotten */
    ht_purge_later();
    assert_true(hak_purge_.dirty <= HAK_PURGE_FLOOR_DEFAULT);
    assert_true(committed() <= before + HAK_PURGE_FLOOR_DEFAULT + ((size_t)4 << 20));
    assert_int_equal(hak_purge_configure(HAK_PURGE_DELAY_DEFAULT_MS, HAK_PURGE_BUDGET_DEFAULT_PCT), 0);
}

/* Delay 0: the pages go back at once (at the poll of the slow path that
 * made them free). */
static void test_delay_zero(void **state)
{
    (void)state;
    assert_int_equal(hak_purge_configure(0, 100), 0);
    hak_tiny_trim();
    size_t before = committed();
    enum { N = 65536 };
    static void *v[N];
    for (size_t i = 0; i < N; i++)
        assert_non_null(v[i] = hak_tiny_alloc(256));
    for (size_t i = 0; i < N; i++)
        hak_tiny_free(v[i]);
    print_message("delay 0: committed %zu KiB before, %zu KiB after; dirty %zu KiB\n", before >> 10, committed() >> 10,
                  hak_purge_.dirty >> 10);
    assert_true(committed() <= before + ((size_t)4 << 20));
    assert_int_equal(hak_purge_configure(HAK_PURGE_DELAY_DEFAULT_MS, HAK_PURGE_BUDGET_DEFAULT_PCT), 0);
}

static void test_memory_returns(void **state)
{
    (void)state;
    big_cycle(0);
    big_cycle(1);
    big_cycle(2);
}

/* The tier's descriptor (hak_tier.h), as dispatch's whole-heap jobs use it. */
static void test_descriptor(void **state)
{
    (void)state;
    const hak_tier_vtable_t *vt = &hak_tiny_vtable;
    assert_string_equal(vt->name, "tiny");
    assert_int_equal(vt->flags, 0);
    assert_int_equal(vt->max_size, hak_tiny_max_size());
    assert_null(vt->validate); /* tiny has no validator */
    void *p = vt->alloc(100, 0), *q = vt->alloc(64, 64);
    assert_non_null(p);
    assert_true(HT_ALIGNED(q, 64));
    assert_true(vt->owns(p));
    assert_true(vt->usable_size(p) >= 100);
    assert_true(vt->bytes_in_use() >= vt->usable_size(p) + vt->usable_size(q)); /* their strides */
    hak_tier_stats_t st;
    vt->stats(&st);
    assert_true(st.thread_caches >= 1);
    assert_true(st.bytes_committed > 0 && st.bytes_committed <= st.bytes_mapped);
    assert_true(vt->committed_peak() >= st.bytes_committed);
    hak_tier_counter_t c[HAK_TIER_COUNTERS_MAX];
    assert_int_equal(vt->counters(c), 7);
    assert_string_equal(c[0].label, "superslabs");
    assert_true(c[0].value >= 1);
    vt->free(p);
    vt->free(q);
    vt->flush();
    vt->trim();
}

#if !HAK_PLATFORM_ARENA
/* The engine's tests (common/engine_suite.h) against the tiny tier, with
 * blocks of 200 B. */
#include "common/engine_suite.h"
static void *engine_alloc(size_t n) { return hak_tiny_alloc(n); }
static hak_bin_t *engine_bin(void) { return tiny_bin(hak_tiny_class_of(200)); }
static uint32_t engine_cap(uint32_t start) { return start * HAK_GROW_MAX; }
static size_t engine_stride(void) { return hak_tiny_stride_[hak_tiny_class_of(200)]; }
static void engine_counts(size_t *refills, size_t *drains)
{
    hak_tiny_stats_t s;
    hak_tiny_get_stats(&s);
    *refills = s.refills;
    *drains = s.drains;
}
static const engine_tier_t ENGINE = {
    .name = "tiny",
    .size = 200,
    .stride = engine_stride,
    .alloc = engine_alloc,
    .free = hak_tiny_free,
    .trim = hak_tiny_trim,
    .bin = engine_bin,
    .cap = engine_cap,
    .counts = engine_counts,
};
#endif

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_classes),
        cmocka_unit_test(test_descriptor),
        cmocka_unit_test(test_no_overlap_churn),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_cross_thread),
        cmocka_unit_test(test_thread_churn),
        cmocka_unit_test(test_first_refill),
        cmocka_unit_test(test_spare_reuse),
        cmocka_unit_test(test_ownership),
        cmocka_unit_test(test_memory_returns),
        cmocka_unit_test(test_budget_without_delay),
        cmocka_unit_test(test_delay_zero),
#if !HAK_PLATFORM_ARENA
        ENGINE_SUITE_TESTS,
#endif
    };
    ht_purge_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
