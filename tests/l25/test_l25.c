// SPDX-License-Identifier: MIT
/* Suite `l25`: the L25 pool (src/mid, hak_l25.h) through its entry points,
 * with the engine's tests shared with suite `mid` (pool_suite.h). */
#include "hak_l25.h"
#include "l25_inline.h"

#define POOL_ENGINE_SIZE 98304 /* the engine suite's blocks (pool_suite.h): a class whose spans
                                  have no tail, so one geometry (test_l25_wide_spans has both) */
#define POOL_ENGINE_CAPPED true /* its bins borrow their bounds from a cap per thread */
#include "pool_suite.h"

static hak_pool_tcache_t *tier_tc(void) { return &hak_l25_tc_; }

static const pool_tier_t TIER = {
    .name = "l25",
    .alloc = hak_l25_alloc,
    .free = hak_l25_free,
    .usable = hak_l25_usable_size,
    .owns = hak_l25_owns,
    .max_align = hak_l25_max_align,
    .trim = hak_l25_trim,
    .thread_exit = hak_l25_thread_exit,
    .stats = hak_l25_get_stats,
    .vt = &hak_l25_vtable,
    .pool = &hak_l25_pool_,
    .tc = tier_tc,
    .lo = (32u << 10) + 1,
    .hi = HAK_L25_MAX_SIZE,
    .min_align = 36u << 10,
    .max_waste = 0.125,
    .churn_live = 200,
    .model_live = 128,
    .model_ops = 200000,
    .churn_threads = 200,
    .churn_blocks = 16,
    .xt_blocks = 48,
    .interior_size = 1,
    .interior_align = 16384,
    .trim_bytes = 256 * MIB,
};

/* Powers of two are a class and naturally aligned up to 1 MiB. */
static void test_l25_pow2(void **state)
{
    (void)state;
    for (size_t n = 64u << 10; n <= HAK_L25_MAX_SIZE; n <<= 1) {
        void *p = hak_l25_alloc(n, 0);
        assert_non_null(p);
        assert_int_equal(hak_l25_usable_size(p), n);
        assert_true(HT_ALIGNED(p, n));
        hak_l25_free(p);
        p = hak_l25_alloc(n / 2, n);
        assert_non_null(p);
        assert_true(HT_ALIGNED(p, n));
        hak_l25_free(p);
    }
    assert_true(hak_l25_max_align(HAK_L25_MAX_SIZE) >= (1u << 20));
    void *p = hak_l25_alloc(1, 0);
    assert_int_equal(hak_l25_usable_size(p), 36u << 10);
    hak_l25_free(p);
    assert_int_equal(hak_l25_vtable.max_size, HAK_L25_MAX_SIZE);
}

/* The bytes the thread's L25 bins hold, checked against what they were
 * lent: the bounds add up to cap_bytes, within the cap, each within its
 * class's bin_max, and no bin over its bound. */
static size_t thread_cap_held(const hak_pool_t *pool, const hak_pool_tcache_t *tc)
{
    size_t held = 0, lent = 0;
    for (unsigned c = 0; c < pool->pr->nclasses; c++) {
        const hak_bin_t *bin = &tc->bins[c];
        assert_true(bin->max <= pool->t->cls[c].bin_max);
        assert_true(bin->room >= 0);
        held += (size_t)hak_bin_count(bin) * pool->t->cls[c].stride;
        lent += (size_t)bin->max * pool->t->cls[c].stride;
    }
    assert_int_equal(lent, tc->cap_bytes);
    assert_true(lent <= pool->pr->tc_cap);
    return held;
}

/* The thread's bins hold at most the pool's cap in all (pool.c,
 * tc_cap_grant): a loop on one size keeps its block in its bin (no trip to
 * the central lists), while a thread that frees a block of every class
 * keeps at most the cap of them after every free, the block freed last
 * among them, and the others go home. Fails with a bound per class alone
 * (every class kept its block: 12 MiB of them). */
static void test_l25_thread_cap(void **state)
{
    (void)state;
    const hak_pool_t *pool = &hak_l25_pool_;
    hak_l25_trim();
    void *warm = hak_l25_alloc(36u << 10, 0); /* the cache set up */
    hak_l25_free(warm);
    const size_t cap = pool->pr->tc_cap;
    assert_true(cap >= HAK_L25_MAX_SIZE);
    hak_pool_tcache_t *tc = tier_tc();
    const unsigned n = pool->pr->nsized;
    hak_pool_stats_t a, b;
    /* one size, over and over */
    for (unsigned c = 0; c < n; c += 7) {
        size_t size = pool->t->cls[c].stride;
        void *p = hak_l25_alloc(size, 0);
        assert_non_null(p);
        hak_l25_free(p);
        hak_l25_get_stats(&a);
        for (int i = 0; i < 100; i++) {
            void *q = hak_l25_alloc(size, 0);
            assert_ptr_equal(q, p);
            memset(q, i, size);
            hak_l25_free(q);
        }
        hak_l25_get_stats(&b);
        assert_int_equal(b.refills, a.refills);
        assert_int_equal(b.drains, a.drains);
    }
    /* one block of every class, freed smallest first */
    void *v[64];
    assert_true(n <= 64);
    for (unsigned c = 0; c < n; c++) {
        assert_non_null(v[c] = hak_l25_alloc(pool->t->cls[c].stride, 0));
        memset(v[c], (int)c, pool->t->cls[c].stride);
    }
    size_t held = 0;
    for (unsigned c = 0; c < n; c++) {
        hak_l25_free(v[c]);
        held = thread_cap_held(pool, tc);
        assert_true(held <= cap);
        assert_true(held >= pool->t->cls[c].stride); /* the block just freed stays */
    }
    assert_true(held >= pool->t->cls[n - 1].stride);
    assert_int_equal(hak_bin_count(&tc->bins[n - 1]), 1);
    assert_ptr_equal(tc->bins[n - 1].head, v[n - 1]);
    /* trim: every bin empty, every bound given back */
    hak_l25_trim();
    for (unsigned c = 0; c < n; c++) {
        assert_int_equal(hak_bin_count(&tc->bins[c]), 0);
        assert_int_equal(tc->bins[c].max, 0);
    }
    assert_int_equal(tc->cap_bytes, 0);
}

/* A class with HAK_POOL_WIDE_AFTER spans in use forms its next spans in
 * the wide geometry (pool.c, "Span geometry"): two 224 KiB blocks in 7
 * pages instead of one in 4, with no tail. Spans of both geometries come
 * and go together, their pages reused by each other (a narrow span's
 * released pages near a chunk's end are no place for a wide one), and
 * the pool stays valid. Fails if a busy class keeps its narrow spans. */
static void test_l25_wide_spans(void **state)
{
    (void)state;
    hak_l25_free(hak_l25_alloc(1, 0)); /* the pool set up */
    hak_l25_trim();
    const hak_pool_t *pool = &hak_l25_pool_;
    unsigned c = 0;
    while (pool->t->cls[c].stride < (224u << 10))
        c++;
    const hak_pool_class_t *k = &pool->t->cls[c];
    assert_int_equal(k->stride, 224u << 10);
    assert_int_equal(k->npages, 4);
    assert_int_equal(k->capacity, 1);
    assert_int_equal(k->wide_pages, 7);
    assert_int_equal(k->wide_capacity, 2);
    enum { N = 96 };
    static void *v[N];
    uint64_t rng = 7;
    size_t after_first = 0;
    for (int round = 0; round < 6; round++) {
        unsigned narrow = 0, wide = 0;
        for (int i = 0; i < N; i++) {
            assert_non_null(v[i] = hak_l25_alloc(k->stride - (size_t)(i % 7) * 1000, 0));
            memset(v[i], i, k->stride - (size_t)(i % 7) * 1000);
            const hak_pool_span_t *sp = hak_pool_span_of(v[i]);
            assert_int_equal(sp->cls, c);
            if (sp->npages == k->wide_pages) {
                assert_int_equal(sp->u.capacity, k->wide_capacity);
                wide++;
            } else {
                assert_int_equal(sp->npages, k->npages);
                narrow++;
            }
        }
        assert_true(wide >= N / 2);
        assert_true(narrow >= 1);
        for (int i = 0; i < N; i++) /* contents survived */
            assert_int_equal(((unsigned char *)v[i])[k->stride - 7000 - 1], (unsigned char)i);
        assert_valid_pool();
        for (int i = N - 1; i > 0; i--) { /* freed in random order */
            rng = rng * 6364136223846793005ull + 1442695040888963407ull;
            int j = (int)((rng >> 33) % (uint64_t)(i + 1));
            void *t = v[i];
            v[i] = v[j];
            v[j] = t;
        }
        for (int i = 0; i < N; i++)
            hak_l25_free(v[i]);
        assert_valid_pool();
        /* the rounds after the first reuse its pages */
        if (round == 0)
            after_first = committed();
        else
            assert_committed_within(after_first, (size_t)1 << 20);
    }
    hak_l25_trim();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l25_pow2),
        cmocka_unit_test(test_l25_thread_cap),
        cmocka_unit_test(test_l25_wide_spans),
        POOL_SUITE_TESTS,
        ENGINE_SUITE_TESTS,
    };
    ht_purge_install(); /* the purge delay passes when a test says so */
    const char *filter = getenv("HT_FILTER"); /* run some tests only */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("l25", tests, NULL, NULL);
}
