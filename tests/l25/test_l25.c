// SPDX-License-Identifier: MIT
/* Suite `l25`: the L25 pool (src/mid, hak_l25.h) through its entry points,
 * with the engine's tests shared with suite `mid` (pool_suite.h). */
#include "hak_l25.h"
#include "l25_inline.h"

#define POOL_ENGINE_SIZE 100000 /* the engine suite's blocks (pool_suite.h) */
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_l25_pow2),
        POOL_SUITE_TESTS,
        ENGINE_SUITE_TESTS,
    };
    ht_purge_install(); /* the purge delay passes when a test says so */
    const char *filter = getenv("HT_FILTER"); /* run some tests only */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("l25", tests, NULL, NULL);
}
