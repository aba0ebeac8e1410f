// SPDX-License-Identifier: MIT
/* Suite `mid`: the mid pool (src/mid, hak_mid.h) through its entry points,
 * with the engine's tests shared with suite `l25` (pool_suite.h). */
#include "hak_mid.h"
#include "mid_inline.h"

#define POOL_ENGINE_SIZE 2000 /* the engine suite's blocks (pool_suite.h) */
#define POOL_ENGINE_CAPPED false /* its bins grow by the swing and contention rules */
#include "pool_suite.h"

static hak_pool_tcache_t *tier_tc(void) { return &hak_mid_tc_; }

static const pool_tier_t TIER = {
    .name = "mid",
    .alloc = hak_mid_alloc,
    .free = hak_mid_free,
    .usable = hak_mid_usable_size,
    .owns = hak_mid_owns,
    .max_align = hak_mid_max_align,
    .trim = hak_mid_trim,
    .thread_exit = hak_mid_thread_exit,
    .stats = hak_mid_get_stats,
    .vt = &hak_mid_vtable,
    .pool = &hak_mid_pool_,
    .tc = tier_tc,
    .lo = 1024,
    .hi = HAK_MID_MAX_SIZE,
    .min_align = 1024,
    .max_waste = 0.125,
    .churn_live = 4000,
    .model_live = 2000,
    .model_ops = 200000,
    .churn_threads = 300,
    .churn_blocks = 64,
    .xt_blocks = 512,
    .interior_size = 0,
    .interior_align = 0,
    .trim_bytes = 64 * MIB,
};

/* The hot sizes of recorded programs (sqlite3's 1032-byte page-cache
 * entries, 1094) waste little; powers of two none. */
static void test_mid_hot_sizes(void **state)
{
    (void)state;
    struct { size_t n, usable; } want[] = {
        {1, 1024}, {1024, 1024}, {1025, 1088}, {1032, 1088}, {1094, 1152},
        {2048, 2048}, {4096, 4096}, {8192, 8192}, {16384, 16384}, {32768, 32768},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        void *p = hak_mid_alloc(want[i].n, 0);
        assert_non_null(p);
        assert_int_equal(hak_mid_usable_size(p), want[i].usable);
        hak_mid_free(p);
    }
    /* a power-of-two class is naturally aligned: no interior pointer */
    void *p = hak_mid_alloc(4096, 4096);
    assert_int_equal(hak_mid_usable_size(p), 4096);
    hak_mid_free(p);
    assert_true(hak_mid_max_align(1) >= 65536);
    assert_true(hak_mid_max_align(HAK_MID_MAX_SIZE) >= 65536);
    p = hak_mid_alloc(HAK_MID_MAX_SIZE, 65536);
    assert_non_null(p);
    assert_true(HT_ALIGNED(p, 65536));
    hak_mid_free(p);
    assert_ptr_equal(hak_mid_vtable.alloc, hak_mid_alloc);
    assert_int_equal(hak_mid_vtable.max_size, HAK_MID_MAX_SIZE);
}

/* A class with nothing free takes a free block of a class up to 1.25x
 * larger from the thread's own bins before it carves a new one
 * (hak_front_refill_fit), except for an aligned request, from a class more than
 * 1.25x larger, or at validation=full. */
static void test_mid_fit_larger(void **state)
{
    (void)state;
    const size_t a_size = 3000; /* class 3072 */
    unsigned a = hak_mid_class_of(a_size);
    hak_central_t *c = &hak_mid_pool_.t->central[a];
    hak_bin_t *bin = hak_pool_bin_(&hak_mid_pool_, a);
    static void *held[8192];
    size_t nh = 0;
    hak_mid_trim(); /* the thread's bins empty */
    /* take every block of class a that is free anywhere: the bin, the
     * central list's parked batches, the spans' free lists */
    while (nh < 8192 && (bin->head || c->nbatch > 0 || (c->partial && c->partial->free)))
        held[nh++] = hak_mid_alloc(a_size, 0);
    assert_true(nh < 8192);
    void *p = hak_mid_alloc(3300, 0); /* class 3328 (or larger, taken the same way) */
    assert_non_null(p);
    size_t p_usable = hak_mid_usable_size(p);
    assert_true(p_usable >= 3328 && p_usable <= 3840);
    hak_mid_free(p); /* to the thread's bin of its class */
    void *q = hak_mid_alloc(a_size, 0);
    assert_non_null(q);
#if HAK_VALIDATION >= 2
    assert_ptr_not_equal(q, p);
    assert_int_equal(hak_mid_usable_size(q), 3072);
#else
    assert_ptr_equal(q, p);
    assert_int_equal(hak_mid_usable_size(q), p_usable);
#endif
    memset(q, 0x5A, a_size);
    hak_mid_free(q); /* home to the bin of its own class */
    void *r = hak_mid_alloc(p_usable, 0);
    assert_ptr_equal(r, p);
    hak_mid_free(r);
    held[nh++] = hak_mid_alloc(a_size, 0); /* class a has nothing free again */
    /* an aligned request keeps its class: 4096 aligned to 4096 while the
     * bin of 4608 holds a block */
    void *big = hak_mid_alloc(4500, 0);
    hak_mid_free(big);
    void *al = hak_mid_alloc(4096, 4096);
    assert_non_null(al);
    assert_true(HT_ALIGNED(al, 4096));
    assert_int_equal(hak_mid_usable_size(al), 4096);
    hak_mid_free(al);
    /* a class more than 1.25x larger is not taken: 2048 with a 2816 held */
    void *far = hak_mid_alloc(2816, 0);
    hak_mid_free(far);
    void *near = hak_mid_alloc(2048, 0);
    assert_ptr_not_equal(near, far);
    assert_int_equal(hak_mid_usable_size(near), 2048);
    hak_mid_free(near);
    while (nh > 0)
        hak_mid_free(held[--nh]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mid_hot_sizes),
        cmocka_unit_test(test_mid_fit_larger),
        POOL_SUITE_TESTS,
        ENGINE_SUITE_TESTS,
    };
    ht_purge_install(); /* the purge delay passes when a test says so */
    const char *filter = getenv("HT_FILTER"); /* run some tests only */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("mid", tests, NULL, NULL);
}
