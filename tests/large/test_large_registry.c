// SPDX-License-Identifier: MIT
/* Suite `large`, unit: the registry of live blocks (hak_large_registry.h),
 * on private instances, as dispatch would use a second one. */
#include "common/hak_test.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>

#include "hak_alloc_header.h"
#include "hak_large_registry.h"

static hak_large_registry_t *new_reg(void)
{
    hak_large_registry_t *r = calloc(1, sizeof(*r));
    assert_non_null(r);
    return r;
}

static void test_empty(void **state)
{
    (void)state;
    hak_large_registry_t r = HAK_LARGE_REGISTRY_INIT;
    hak_large_reg_entry_t e;
    int x = 0;
    assert_false(hak_large_registry_lookup_(&r, &x, &e));
    assert_false(hak_large_registry_lookup_(&r, NULL, &e));
    assert_int_equal(hak_large_registry_remove_(&r, &x, NULL, NULL, &e), HAK_LREG_ABSENT);
    assert_int_equal(hak_large_registry_count_(&r), 0);
    assert_int_equal(hak_large_registry_table_bytes_(&r), 0);
    assert_true(hak_large_registry_validate_(&r, NULL, NULL));
    assert_false(hak_large_registry_may_hold_(&r, &x));
}

/* A pool of distinct 16-aligned keys spread like heap addresses. */
#define POOL 4096
static uintptr_t g_keys[POOL];

static void make_keys(uint64_t seed)
{
    ht_rng_t rng = {seed};
    for (size_t i = 0; i < POOL; i++) {
        uintptr_t k;
        bool dup;
        do {
            /* half clustered (like a heap), half spread */
            k = (i & 1) ? (0x7f0000000000u + (ht_rand(&rng) % (1u << 24)) * 16)
                        : (0x550000000000u + (ht_rand(&rng) % ((uint64_t)1 << 36)) * 16);
            dup = false;
            for (size_t j = 0; j < i && !dup; j++)
                dup = g_keys[j] == k;
        } while (dup);
        g_keys[i] = k;
    }
}

static bool check_refuse_odd_len(const hak_large_reg_entry_t *e, void *ctx)
{
    (*(int *)ctx)++;
    return (e->len & 1) == 0;
}

static void test_grow_shrink_and_checks(void **state)
{
    (void)state;
    make_keys(42);
    hak_large_registry_t *r = new_reg();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < POOL; i++) {
        assert_int_equal(hak_large_registry_insert_(r, (void *)g_keys[i], (void *)(g_keys[i] - 16), i,
                                                     HAK_METHOD_MALLOC), 0);
        if (i % 512 == 0)
            assert_true(hak_large_registry_validate_(r, NULL, NULL));
    }
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    assert_int_equal(hak_large_registry_count_(r), POOL);
    size_t big = hak_large_registry_table_bytes_(r);
    assert_true(big >= POOL * 4 / 3 * sizeof(hak_large_reg_entry_t));
    assert_true(big <= POOL * 4 * sizeof(hak_large_reg_entry_t));
    /* a duplicate is refused */
    errno = 0;
    assert_int_equal(hak_large_registry_insert_(r, (void *)g_keys[7], NULL, 1, HAK_METHOD_MALLOC), -1);
    assert_int_equal(errno, EEXIST);
    for (size_t i = 0; i < POOL; i++) {
        hak_large_reg_entry_t e;
        assert_true(hak_large_registry_lookup_(r, (void *)g_keys[i], &e));
        assert_int_equal(e.key, g_keys[i]);
        assert_int_equal(e.base, g_keys[i] - 16);
        assert_int_equal(e.len, i);
        assert_int_equal(e.method, HAK_METHOD_MALLOC);
        assert_false(hak_large_registry_lookup_(r, (void *)(g_keys[i] + 8), NULL));
    }
    /* the check refuses odd lengths: those stay */
    int calls = 0;
    for (size_t i = 0; i < POOL; i++) {
        hak_large_reg_entry_t e;
        int rc = hak_large_registry_remove_(r, (void *)g_keys[i], check_refuse_odd_len, &calls, &e);
        assert_int_equal(rc, (i & 1) ? HAK_LREG_REJECTED : HAK_LREG_REMOVED);
        assert_int_equal(e.len, i);
    }
    assert_int_equal(calls, POOL);
    assert_int_equal(hak_large_registry_count_(r), POOL / 2);
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    for (size_t i = 0; i < POOL; i++)
        assert_int_equal(hak_large_registry_lookup_(r, (void *)g_keys[i], NULL), (i & 1) != 0);
    for (size_t i = 1; i < POOL; i += 2)
        assert_int_equal(hak_large_registry_remove_(r, (void *)g_keys[i], NULL, NULL, NULL), HAK_LREG_REMOVED);
    assert_int_equal(hak_large_registry_remove_(r, (void *)g_keys[1], NULL, NULL, NULL), HAK_LREG_ABSENT);
    assert_int_equal(hak_large_registry_count_(r), 0);
    /* the array shrank back to one page */
    assert_int_equal(hak_large_registry_table_bytes_(r), page);
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    free(r);
}

/* Random operations against a model (a presence bit per pool key). */
static void test_model(void **state)
{
    (void)state;
    make_keys(7);
    hak_large_registry_t *r = new_reg();
    static uint8_t live[POOL];
    memset(live, 0, sizeof live);
    size_t n = 0;
    ht_rng_t rng = {99};
    /* bias the pool towards a small subset so runs and wrap-around occur */
    for (int op = 0; op < 60000; op++) {
        size_t i = ht_rand(&rng) % ((op / 10000 % 2) ? POOL : 300);
        uint64_t what = ht_rand(&rng) % 3;
        void *k = (void *)g_keys[i];
        if (what == 0) {
            int rc = hak_large_registry_insert_(r, k, k, i, HAK_METHOD_MMAP);
            assert_int_equal(rc, live[i] ? -1 : 0);
            if (!live[i])
                n++;
            live[i] = 1;
        } else if (what == 1) {
            int rc = hak_large_registry_remove_(r, k, NULL, NULL, NULL);
            assert_int_equal(rc, live[i] ? HAK_LREG_REMOVED : HAK_LREG_ABSENT);
            if (live[i])
                n--;
            live[i] = 0;
        } else {
            hak_large_reg_entry_t e;
            bool found = hak_large_registry_lookup_(r, k, &e);
            assert_int_equal(found, live[i]);
            if (found)
                assert_int_equal(e.len, i);
        }
        if (op % 1000 == 0) {
            assert_true(hak_large_registry_validate_(r, NULL, NULL));
            assert_int_equal(hak_large_registry_count_(r), n);
        }
    }
    for (size_t i = 0; i < POOL; i++)
        if (live[i])
            assert_int_equal(hak_large_registry_remove_(r, (void *)g_keys[i], NULL, NULL, NULL), HAK_LREG_REMOVED);
    assert_int_equal(hak_large_registry_count_(r), 0);
    free(r);
}

static void test_update_locked(void **state)
{
    (void)state;
    hak_large_registry_t *r = new_reg();
    make_keys(3);
    for (size_t i = 0; i < 90; i++) /* just below a growth */
        assert_int_equal(hak_large_registry_insert_(r, (void *)g_keys[i], (void *)g_keys[i], 1, HAK_METHOD_MMAP), 0);
    size_t bytes = hak_large_registry_table_bytes_(r);
    for (size_t i = 0; i < 90; i++) {
        void *from = (void *)g_keys[i], *to = (void *)g_keys[1000 + i];
        hak_large_registry_lock_(r);
        assert_true(hak_large_registry_update_locked_(r, from, to, (char *)to - 16, 4096));
        assert_false(hak_large_registry_update_locked_(r, from, to, NULL, 0));
        hak_large_registry_unlock_(r);
        hak_large_reg_entry_t e;
        assert_false(hak_large_registry_lookup_(r, from, NULL));
        assert_true(hak_large_registry_lookup_(r, to, &e));
        assert_int_equal(e.base, g_keys[1000 + i] - 16);
        assert_int_equal(e.len, 4096);
        /* in place: same key, new length */
        hak_large_registry_lock_(r);
        assert_true(hak_large_registry_update_locked_(r, to, to, (char *)to - 16, 8192));
        hak_large_registry_unlock_(r);
        assert_true(hak_large_registry_lookup_(r, to, &e));
        assert_int_equal(e.len, 8192);
    }
    assert_int_equal(hak_large_registry_table_bytes_(r), bytes);
    assert_int_equal(hak_large_registry_count_(r), 90);
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    free(r);
}

static void test_fork_helpers(void **state)
{
    (void)state;
    hak_large_registry_t r = HAK_LARGE_REGISTRY_INIT;
    hak_large_registry_fork_prepare_(&r);
    hak_large_registry_fork_prepare_(&r); /* idempotent within one fork */
    assert_false(hak_trylock(&r.lock));
    hak_large_registry_fork_parent_(&r);
    hak_large_registry_fork_parent_(&r);
    assert_true(hak_trylock(&r.lock));
    hak_unlock(&r.lock);
    hak_large_registry_fork_prepare_(&r);
    hak_large_registry_fork_child_(&r);
    assert_true(hak_trylock(&r.lock));
    hak_unlock(&r.lock);
    assert_int_equal(hak_large_registry_insert_(&r, (void *)0x1000, (void *)0x1000, 1, HAK_METHOD_MMAP), 0);
    assert_int_equal(hak_large_registry_remove_(&r, (void *)0x1000, NULL, NULL, NULL), HAK_LREG_REMOVED);
}

/* Four threads insert and remove their own keys in one shared instance. */
typedef struct {
    hak_large_registry_t *r;
    int id;
} worker_arg_t;

static void *worker(void *arg)
{
    worker_arg_t *w = arg;
    uintptr_t base = ((uintptr_t)(w->id + 1) << 40);
    for (int round = 0; round < 20; round++) {
        for (uintptr_t i = 1; i <= 500; i++)
            if (hak_large_registry_insert_(w->r, (void *)(base + i * 4096 + 16), (void *)(base + i * 4096), 4096,
                                           HAK_METHOD_MMAP) != 0)
                return (void *)1;
        for (uintptr_t i = 1; i <= 500; i++) {
            hak_large_reg_entry_t e;
            if (!hak_large_registry_lookup_(w->r, (void *)(base + i * 4096 + 16), &e) || e.base != base + i * 4096)
                return (void *)2;
        }
        for (uintptr_t i = 1; i <= 500; i++)
            if (hak_large_registry_remove_(w->r, (void *)(base + i * 4096 + 16), NULL, NULL, NULL) != HAK_LREG_REMOVED)
                return (void *)3;
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    hak_large_registry_t *r = new_reg();
    pthread_t th[4];
    worker_arg_t args[4];
    for (int i = 0; i < 4; i++) {
        args[i] = (worker_arg_t){r, i};
        assert_int_equal(pthread_create(&th[i], NULL, worker, &args[i]), 0);
    }
    void *rv[4];
    for (int i = 0; i < 4; i++)
        pthread_join(th[i], &rv[i]);
    for (int i = 0; i < 4; i++)
        assert_null(rv[i]);
    assert_int_equal(hak_large_registry_count_(r), 0);
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    free(r);
}

/* Lock-free lookups racing writers: two readers look up 24 stable keys
 * (each must be found with its entry, whose length a writer flips between
 * two values in place) and keys never inserted (never found), while the
 * main thread inserts and removes 1,500 others again and again, so the
 * array grows from one page to 64 KiB and shrinks back: readers probe
 * arrays that are being retired, decommitted and reused. */
enum { RACE_STABLE = 24, RACE_CHURN = 1500, RACE_ROUNDS = 12 };

typedef struct {
    hak_large_registry_t *r;
    int started, stop;
    long lookups, errors;
} race_arg_t;

static void *race_reader(void *arg)
{
    race_arg_t *a = arg;
    long n = 0, errors = 0;
    __atomic_fetch_add(&a->started, 1, __ATOMIC_RELEASE);
    do {
        for (size_t i = 0; i < RACE_STABLE; i++) {
            hak_large_reg_entry_t e;
            uintptr_t k = g_keys[i];
            if (!hak_large_registry_lookup_(a->r, (void *)k, &e) || e.key != k || e.base != k - 16 ||
                (e.len != i && e.len != i + 4096) || e.method != HAK_METHOD_MMAP)
                errors++;
            if (hak_large_registry_lookup_(a->r, (void *)g_keys[POOL - 1 - i], NULL))
                errors++; /* never inserted */
            n += 2;
        }
    } while (!__atomic_load_n(&a->stop, __ATOMIC_ACQUIRE));
    __atomic_fetch_add(&a->lookups, n, __ATOMIC_RELAXED);
    __atomic_fetch_add(&a->errors, errors, __ATOMIC_RELAXED);
    return NULL;
}

static void test_lookups_race_resizes(void **state)
{
    (void)state;
    make_keys(1234);
    hak_large_registry_t *r = new_reg();
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    for (size_t i = 0; i < RACE_STABLE; i++)
        assert_int_equal(hak_large_registry_insert_(r, (void *)g_keys[i], (void *)(g_keys[i] - 16), i,
                                                     HAK_METHOD_MMAP), 0);
    race_arg_t a = {r, 0, 0, 0, 0};
    pthread_t th[2];
    for (int t = 0; t < 2; t++)
        assert_int_equal(pthread_create(&th[t], NULL, race_reader, &a), 0);
    while (__atomic_load_n(&a.started, __ATOMIC_ACQUIRE) < 2) /* both read while the array changes */
        sched_yield();
    size_t biggest = 0;
    for (int round = 0; round < RACE_ROUNDS; round++) {
        for (size_t i = 0; i < RACE_CHURN; i++) {
            uintptr_t k = g_keys[RACE_STABLE + i];
            assert_int_equal(hak_large_registry_insert_(r, (void *)k, (void *)k, 1, HAK_METHOD_MMAP), 0);
            if (i % 64 == 0) { /* flip a stable entry's length in place */
                uintptr_t s = g_keys[i % RACE_STABLE];
                hak_large_reg_entry_t e;
                hak_large_registry_lock_(r);
                assert_true(hak_large_registry_lookup_(r, (void *)s, &e));
                assert_true(hak_large_registry_update_locked_(r, (void *)s, (void *)s, (void *)e.base,
                                                              e.len ^ 4096));
                hak_large_registry_unlock_(r);
            }
        }
        size_t bytes = hak_large_registry_table_bytes_(r);
        biggest = bytes > biggest ? bytes : biggest;
        for (size_t i = 0; i < RACE_CHURN; i++)
            assert_int_equal(hak_large_registry_remove_(r, (void *)g_keys[RACE_STABLE + i], NULL, NULL, NULL),
                             HAK_LREG_REMOVED);
        assert_int_equal(hak_large_registry_table_bytes_(r), page);
    }
    __atomic_store_n(&a.stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    assert_int_equal(a.errors, 0);
    assert_true(a.lookups > 0);
    assert_int_equal(hak_large_registry_count_(r), RACE_STABLE);
    assert_true(hak_large_registry_validate_(r, NULL, NULL));
    /* every size above one page was left once, and is kept (decommitted) */
    assert_true(biggest >= 16 * page);
    assert_int_equal(hak_large_registry_retired_bytes_(r), 2 * biggest - 2 * page);
    free(r);
}

static void test_header_pack(void **state)
{
    (void)state;
    size_t sizes[] = {0, 1, 4080, ((size_t)1 << 20) + 4080, HAK_AH_SIZE_MAX};
    size_t offs[] = {16, 32, 4096, HAK_AH_OFFSET_MAX};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        for (size_t j = 0; j < sizeof offs / sizeof offs[0]; j++)
            for (unsigned m = HAK_METHOD_MMAP; m <= HAK_METHOD_MALLOC; m++) {
                assert_true(hak_ah_fits(sizes[i], offs[j], m));
                hak_ah_fields_t f = hak_ah_unpack(hak_ah_pack(sizes[i], offs[j], m));
                assert_int_equal(f.size, sizes[i]);
                assert_int_equal(f.offset, offs[j]);
                assert_int_equal(f.method, m);
            }
    assert_false(hak_ah_fits(HAK_AH_SIZE_MAX + 1, 16, HAK_METHOD_MMAP));
    assert_false(hak_ah_fits(16, HAK_AH_OFFSET_MAX + 16, HAK_METHOD_MMAP));
    assert_false(hak_ah_fits(16, 8, HAK_METHOD_MMAP));
    assert_false(hak_ah_fits(16, 24, HAK_METHOD_MMAP));
    assert_false(hak_ah_fits(16, 16, HAK_METHOD_NONE));
    _Alignas(16) unsigned char buf[64];
    hak_ah_write(buf + 32, 1000, 32, HAK_METHOD_MALLOC);
    assert_true(hak_ah_magic_ok(buf + 32));
    assert_int_equal(hak_ah_size(hak_ah_of(buf + 32)->info), 1000);
    buf[16] ^= 1;
    assert_false(hak_ah_magic_ok(buf + 32));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_empty),
        cmocka_unit_test(test_header_pack),
        cmocka_unit_test(test_grow_shrink_and_checks),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_update_locked),
        cmocka_unit_test(test_fork_helpers),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_lookups_race_resizes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
