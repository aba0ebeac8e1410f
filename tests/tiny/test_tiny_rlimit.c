// SPDX-License-Identifier: MIT
/* Suite `tiny`: the tier works under a 1 GiB RLIMIT_AS set before its first
 * allocation (RLIMIT_AS counts every reservation, even PROT_NONE), and
 * fails cleanly (NULL, ENOMEM) when the limit is reached, then recovers;
 * before it fails, the blocks a grown bin holds go home (the shrinker the
 * purge of everything runs first, hak_purge.h). */
#include "common/hak_test.h"

#include <errno.h>
#include <sys/resource.h>

#include "hakmem/tiny.h"
#include "tiny_internal.h"

static void test_under_rlimit(void **state)
{
    (void)state;
    size_t n = 0, cap = 1 << 20;
    static void *v[1 << 20];
    /* fill until the limit: 1 GiB of address space in all */
    for (;;) {
        void *p = hak_tiny_alloc(1000);
        if (p == NULL) {
            assert_int_equal(errno, ENOMEM);
            break;
        }
        v[n++] = p;
        if (n == cap)
            break;
    }
    assert_true(n > 100000); /* hundreds of MiB were served */
    for (size_t i = 0; i < n; i++)
        hak_tiny_free(v[i]);
    hak_tiny_trim();
    /* works again once memory is freed */
    for (int i = 0; i < 1000; i++) {
        void *p = hak_tiny_alloc(64);
        assert_non_null(p);
        hak_tiny_free(p);
    }
}

/* A bin grown by bursts of 200 B blocks, left holding them; then 1000 B
 * blocks until the limit: the allocation that finds no memory first sends
 * the thread's caches home, and the 200 B bin is back at its start,
 * empty, when it fails. */
static void test_oom_sends_grown_bins_home(void **state)
{
    (void)state;
    static void *v[1 << 20];
    hak_tiny_trim();
    hak_bin_t *bin = tiny_bin(hak_tiny_class_of(200));
    void *p = hak_tiny_alloc(200);
    assert_non_null(p);
    hak_tiny_free(p);
    uint32_t start = bin->max;
    for (int round = 0; round < 16; round++) {
        size_t n;
        for (n = 0; n < 4 * (size_t)start + 1; n++)
            assert_non_null(v[n] = hak_tiny_alloc(200));
        while (n > 0)
            hak_tiny_free(v[--n]);
    }
    assert_true(bin->max > start);
    assert_true(hak_bin_count(bin) > 0);
    size_t n = 0;
    while (n < (1u << 20) && (v[n] = hak_tiny_alloc(1000)) != NULL)
        n++;
    assert_true(n < (1u << 20));
    assert_int_equal(errno, ENOMEM);
    assert_int_equal(bin->max, start);
    assert_int_equal(hak_bin_count(bin), 0);
    for (size_t i = 0; i < n; i++)
        hak_tiny_free(v[i]);
    hak_tiny_trim();
}

int main(void)
{
    struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 1;
    void *p = hak_tiny_alloc(16); /* the first allocation, under the limit */
    if (p == NULL)
        return 1;
    hak_tiny_free(p);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_under_rlimit),
        cmocka_unit_test(test_oom_sends_grown_bins_home),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
