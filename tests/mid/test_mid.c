// SPDX-License-Identifier: MIT
/* Suite `mid`: the mid pool (src/mid, hak_mid.h) through its entry points,
 * with the engine's tests shared with suite `l25` (pool_suite.h). */
#include "hak_mid.h"
#include "mid_inline.h"

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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mid_hot_sizes),
        POOL_SUITE_TESTS,
    };
    ht_purge_install(); /* the purge delay passes when a test says so */
    const char *filter = getenv("HT_FILTER"); /* run some tests only */
    if (filter)
        cmocka_set_test_filter(filter);
    return cmocka_run_group_tests_name("mid", tests, NULL, NULL);
}
