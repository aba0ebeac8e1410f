// SPDX-License-Identifier: MIT
/* Suite `tiny` (arena backend): the tier carves one caller buffer of any
 * size and alignment; exhaustion gives NULL and ENOMEM; freed blocks are
 * reused; no OS call is made (test_arena_symbols checks the library). */
#include "common/hak_test.h"

#include <errno.h>

#include "hakmem/tiny.h"
#include "tiny_internal.h"

static uint8_t g_buf[(8 << 20) + 64] __attribute__((aligned(4096)));

/* Fill the arena with blocks of `size` until exhaustion; returns how many. */
static size_t fill(void **v, size_t cap, size_t size)
{
    size_t n = 0;
    while (n < cap) {
        errno = 0;
        void *p = hak_tiny_alloc(size);
        if (p == NULL) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        assert_true(HT_ALIGNED(p, 16));
        ht_fill(p, size, n);
        v[n++] = p;
    }
    return n;
}

static void exhaust_and_reuse(uint8_t *buf, size_t len, size_t size, size_t expect_min)
{
    static void *v[1 << 20];
    assert_int_equal(hak_tiny_init_arena(buf, len), 0);
    size_t n = fill(v, 1 << 20, size);
    assert_true(n >= expect_min);
    for (size_t i = 0; i < n; i++) {
        assert_true((uint8_t *)v[i] >= buf && (uint8_t *)v[i] + size <= buf + len);
        assert_true(ht_check(v[i], size, i));
    }
    /* free every other block: exactly those come back */
    for (size_t i = 0; i < n; i += 2)
        hak_tiny_free(v[i]);
    size_t again = 0;
    for (;;) {
        void *p = hak_tiny_alloc(size);
        if (p == NULL)
            break;
        again++;
    }
    assert_int_equal(again, (n + 1) / 2);
    for (size_t i = 1; i < n; i += 2)
        assert_true(ht_check(v[i], size, i));
}

static void test_exhaustion_and_reuse(void **state)
{
    (void)state;
    /* 8 MiB: several SuperSlabs */
    exhaust_and_reuse(g_buf, 8 << 20, 100, (7 << 20) / 112);
    /* smaller than one SuperSlab, and than one 64 KiB slab */
    exhaust_and_reuse(g_buf, 1 << 20, 24, (900 << 10) / 32);
    exhaust_and_reuse(g_buf, 48 << 10, 24, 1000);
    exhaust_and_reuse(g_buf, 16 << 10, 500, 10);
    exhaust_and_reuse(g_buf, 5000, 16, 50);
    /* a misaligned buffer */
    exhaust_and_reuse(g_buf + 3, (1 << 20) - 3, 64, 10000);
    exhaust_and_reuse(g_buf + 17, 20000, 200, 40);
}

static void test_every_class(void **state)
{
    (void)state;
    assert_int_equal(hak_tiny_init_arena(g_buf + 5, (4 << 20) - 5), 0);
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        size_t n = hak_tiny_usable_of(c);
        void *p[20];
        for (int i = 0; i < 20; i++) {
            p[i] = hak_tiny_alloc(n);
            assert_non_null(p[i]);
            assert_int_equal(hak_tiny_usable_size(p[i]), n);
            assert_true(hak_tiny_owns(p[i]));
            memset(p[i], (int)c, n);
        }
        for (int i = 0; i < 20; i++)
            hak_tiny_free(p[i]);
    }
    int local;
    assert_false(hak_tiny_owns(&local));
    assert_false(hak_tiny_owns(g_buf + sizeof g_buf - 1));
    void *a = hak_tiny_alloc_aligned(100, 128);
    assert_true(HT_ALIGNED(a, 128));
    hak_tiny_free(a);
}

static void test_bad_buffers(void **state)
{
    (void)state;
    errno = 0;
    assert_int_equal(hak_tiny_init_arena(NULL, 1 << 20), -1);
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_int_equal(hak_tiny_init_arena(g_buf, 100), -1);
    assert_int_equal(errno, EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exhaustion_and_reuse),
        cmocka_unit_test(test_every_class),
        cmocka_unit_test(test_bad_buffers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
