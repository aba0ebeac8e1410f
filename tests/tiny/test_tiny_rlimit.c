// SPDX-License-Identifier: MIT
/* Suite `tiny`: the tier works under a 1 GiB RLIMIT_AS set before its first
 * allocation (RLIMIT_AS counts every reservation, even PROT_NONE), and
 * fails cleanly (NULL, ENOMEM) when the limit is reached, then recovers. */
#include "common/hak_test.h"

#include <errno.h>
#include <sys/resource.h>

#include "hakmem/tiny.h"

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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
