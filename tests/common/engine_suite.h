// SPDX-License-Identifier: MIT
/* engine_suite.h - the tests of the thread caches' engine (the front end's
 * bins, src/platform/hak_front.h; the central lists and their rules,
 * hak_central.h and hak_platform.h), run against each back end that uses
 * it: the tiny tier (suite tiny), the mid and L25 pools (suites mid, l25).
 * Every test goes through the tier's own entry points and looks only at
 * the calling thread's bin of one class and the tier's refill and drain
 * counters, so that one body of tests holds for every back end.
 *
 * A suite defines `static const engine_tier_t ENGINE = {...}` and includes
 * this file, then lists ENGINE_SUITE_TESTS in its main; it installs the
 * test clock (ht_purge_install) before they run. Nothing is timed.
 */
#ifndef ENGINE_SUITE_H
#define ENGINE_SUITE_H

#include "common/hak_test.h"
#include "common/ht_purge.h"

#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "hak_front.h"

typedef struct engine_tier {
    const char *name;
    size_t size;                   /* a request of one class of the tier */
    size_t (*stride)(void);        /* that class's block size (the tier set up) */
    void *(*alloc)(size_t size);
    void (*free)(void *p);
    void (*trim)(void);            /* the caller's cache home, every bound back to its start */
    hak_bin_t *(*bin)(void);       /* the calling thread's bin of that class */
    uint32_t (*cap)(uint32_t start); /* the most a bin that starts at `start` grows to */
    bool capped;                   /* the bins borrow their bounds from a cap per thread and
                                      grow by no other rule (the L25 pool: pool.c, tc_cap_grant) */
    void (*counts)(size_t *refills, size_t *drains); /* the tier's, since start */
} engine_tier_t;

static const engine_tier_t ENGINE;

enum { ENGINE_CAP = 4096 };

/* want blocks, or fewer for big blocks (at most `bytes` of them). */
static size_t engine_n(size_t want, size_t bytes)
{
    size_t n = bytes / ENGINE.size;
    return n < want ? (n ? n : 1) : want;
}

/* The calling thread's bin of the class, after a trim (every bound back
 * to its start) and one block allocated and freed (the cache set up). */
static hak_bin_t *engine_fresh_bin(void)
{
    ENGINE.trim();
    void *p = ENGINE.alloc(ENGINE.size);
    assert_non_null(p);
    hak_bin_t *bin = ENGINE.bin();
    ENGINE.free(p);
    return bin;
}

/* Allocate until the bin is empty and one more (a refill), then free
 * until it is full and one more (a drain): one swing. v holds *n live
 * blocks before and after. */
static void engine_swing_once(void **v, size_t *n, hak_bin_t *bin)
{
    while (hak_bin_count(bin) > 0) {
        assert_true(*n < ENGINE_CAP);
        assert_non_null(v[(*n)++] = ENGINE.alloc(ENGINE.size));
    }
    assert_true(*n < ENGINE_CAP);
    assert_non_null(v[(*n)++] = ENGINE.alloc(ENGINE.size));
    while (*n > 0 && hak_bin_count(bin) < bin->max)
        ENGINE.free(v[--*n]);
    while (*n == 0) /* blocks to free past full */
        assert_non_null(v[(*n)++] = ENGINE.alloc(ENGINE.size));
    ENGINE.free(v[--*n]);
}

/* The swing rule (hak_swing_event; design.md "Bins that swing grow"): a
 * bin that goes from empty to full and back grows, and then goes to its
 * central list less often for the same walk; a bin filled by bursts and
 * emptied by their frees grows too while its bound is under
 * HAK_SWING_BURST_BYTES, and keeps its bound from there on; trim puts the
 * bound back. */
static void test_engine_swing(void **state)
{
    (void)state;
    static void *v[ENGINE_CAP];
    size_t n = 0, r0, d0, r1, d1, r2, d2;
    hak_bin_t *bin = engine_fresh_bin();
    uint32_t start = bin->max;
    assert_true(start >= 1);
    if (ENGINE.capped) {
        /* neither bursts nor swings take a capped bin past its class's
         * bound, and a walk over the blocks it holds stays off the central
         * list */
        for (int round = 0; round < 8; round++) {
            for (n = 0; n < 4 * (size_t)ENGINE.cap(start) + 1; n++)
                assert_non_null(v[n] = ENGINE.alloc(ENGINE.size));
            while (n > 0)
                ENGINE.free(v[--n]);
            assert_true(bin->max <= ENGINE.cap(start));
            assert_true(hak_bin_count(bin) >= 1 && hak_bin_count(bin) <= bin->max);
        }
        for (int round = 0; round < 64; round++)
            engine_swing_once(v, &n, bin);
        assert_true(bin->max <= ENGINE.cap(start));
        while (n > 0)
            ENGINE.free(v[--n]);
        ENGINE.counts(&r0, &d0);
        uint32_t held = hak_bin_count(bin);
        assert_true(held >= 1);
        for (int round = 0; round < 64; round++) {
            for (uint32_t i = 0; i < held; i++)
                assert_non_null(v[n++] = ENGINE.alloc(ENGINE.size));
            while (n > 0)
                ENGINE.free(v[--n]);
        }
        ENGINE.counts(&r1, &d1);
        assert_int_equal(r1 + d1, r0 + d0);
        ENGINE.trim();
        return;
    }
    /* bursts: every block allocated, then every one freed */
    bool burst_grows = (size_t)start * ENGINE.stride() < HAK_SWING_BURST_BYTES;
    for (int round = 0; round < 8; round++) {
        for (n = 0; n < 4 * (size_t)start + 1; n++)
            assert_non_null(v[n] = ENGINE.alloc(ENGINE.size));
        while (n > 0)
            ENGINE.free(v[--n]);
        assert_true(bin->max <= ENGINE.cap(start));
        if (!burst_grows)
            assert_int_equal(bin->max, start);
    }
    if (burst_grows) {
        /* grown (a round after the first is two direction changes),
         * not past the burst size but by the last doubling */
        assert_true(bin->max > start);
        assert_true((size_t)bin->max * ENGINE.stride() < 2 * HAK_SWING_BURST_BYTES);
    }
    bin = engine_fresh_bin();
    assert_int_equal(bin->max, start);
    /* walks of the starting bound's amplitude, before and after growing */
    ENGINE.counts(&r0, &d0);
    for (int round = 0; round < 64; round++) {
        engine_swing_once(v, &n, bin);
        assert_true(bin->max <= ENGINE.cap(start));
    }
    assert_true(bin->max > start);
    uint32_t grown = bin->max;
    ENGINE.counts(&r1, &d1);
    size_t keep = n; /* walk between keep - start and keep + start live blocks */
    for (int round = 0; round < 64; round++) {
        for (uint32_t i = 0; i < start; i++)
            assert_non_null(v[n++] = ENGINE.alloc(ENGINE.size));
        for (uint32_t i = 0; i < start; i++)
            ENGINE.free(v[--n]);
    }
    assert_int_equal(n, keep);
    ENGINE.counts(&r2, &d2);
    /* growing took trips to the central list; the walks within the grown
     * bound take (almost) none */
    assert_true((r1 - r0) + (d1 - d0) > 0);
    assert_true((r2 - r1) + (d2 - d1) <= 4);
    assert_int_equal(bin->max, grown);
    while (n > 0)
        ENGINE.free(v[--n]);
    ENGINE.trim();
    assert_int_equal(bin->max, start);
}

/* A drain sends the older half of a full bin on and keeps the newer half
 * (hak_front_drain): the blocks freed last come back first. */
static void test_engine_drain_keeps_recent(void **state)
{
    (void)state;
    static void *v[ENGINE_CAP];
    hak_bin_t *bin = engine_fresh_bin();
    uint32_t max = bin->max;
    size_t n = 2 * (size_t)max + 2;
    assert_true(n <= ENGINE_CAP);
    for (size_t i = 0; i < n; i++)
        assert_non_null(v[i] = ENGINE.alloc(ENGINE.size));
    size_t r0, d0, r1, d1;
    ENGINE.counts(&r0, &d0);
    for (size_t i = 0; i < n; i++)
        ENGINE.free(v[i]);
    ENGINE.counts(&r1, &d1);
    assert_true(d1 > d0);                           /* the bin overflowed: drains */
    assert_true(hak_bin_count(bin) <= bin->max);
    assert_true(hak_bin_count(bin) >= bin->max / 2); /* a drain keeps half */
    /* LIFO: the next mallocs return the last frees, newest first */
    uint32_t k = hak_bin_count(bin) < 4 ? hak_bin_count(bin) : 4;
    for (uint32_t i = 0; i < k; i++)
        assert_ptr_equal(ENGINE.alloc(ENGINE.size), v[n - 1 - i]);
    for (uint32_t i = k; i > 0; i--)
        ENGINE.free(v[n - i]);
    ENGINE.trim();
    assert_int_equal(hak_bin_count(bin), 0);
}

typedef struct {
    void **v;
    size_t n;
    uint64_t tag;
    int bad;
} engine_job_t;

static void *engine_free_all(void *arg)
{
    engine_job_t *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        j->bad |= !ht_check(j->v[i], ENGINE.size, j->tag + i);
        ENGINE.free(j->v[i]);
    }
    return NULL;
}

static void *engine_alloc_all(void *arg)
{
    engine_job_t *j = arg;
    for (size_t i = 0; i < j->n; i++) {
        j->v[i] = ENGINE.alloc(ENGINE.size);
        if (j->v[i] == NULL)
            j->bad = 1;
        else
            ht_fill(j->v[i], ENGINE.size, j->tag + i);
    }
    return NULL;
}

static int engine_cmp_ptr(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return (x > y) - (x < y);
}

/* How many of b[0..n) are in a[0..n) (a sorted). */
static size_t engine_common(void **a, void **b, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += bsearch(&b[i], a, n, sizeof *a, engine_cmp_ptr) != NULL;
    return c;
}

/* Blocks freed by another thread that then ends come back to this one
 * (through that thread's exit, its bins to the central lists, and this
 * thread's refills), with nothing lost or handed out twice. */
static void test_engine_cross_thread(void **state)
{
    (void)state;
    static void *a[600], *b[600];
    const size_t N = engine_n(600, (size_t)16 << 20);
    ENGINE.trim();
    engine_job_t job = {a, N, 0xE1, 0};
    assert_int_equal(engine_alloc_all(&job), NULL);
    assert_false(job.bad);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, engine_free_all, &job), 0);
    assert_int_equal(pthread_join(t, NULL), 0);
    assert_false(job.bad); /* contents intact until the other thread freed them */
    engine_job_t again = {b, N, 0xE2, 0};
    engine_alloc_all(&again);
    assert_false(again.bad);
    qsort(a, N, sizeof *a, engine_cmp_ptr);
    assert_true(engine_common(a, b, N) >= N / 2);
    qsort(b, N, sizeof *b, engine_cmp_ptr);
    for (size_t i = 1; i < N; i++) /* no block handed out twice */
        assert_true((uintptr_t)b[i - 1] + ENGINE.size <= (uintptr_t)b[i]);
    for (size_t i = 0; i < N; i++)
        ENGINE.free(b[i]);
    ENGINE.trim();
}

/* A thread's cached blocks go home when it ends: the next thread gets
 * them, whatever the bins held at the end. */
static void test_engine_thread_exit(void **state)
{
    (void)state;
    static void *a[300], *b[300];
    const size_t N = engine_n(300, (size_t)8 << 20);
    ENGINE.trim();
    for (int round = 0; round < 3; round++) {
        engine_job_t mk = {a, N, 0xE3, 0};
        pthread_t t;
        /* a thread that allocates and frees its blocks and ends with them
         * in its bin and central lists */
        assert_int_equal(pthread_create(&t, NULL, engine_alloc_all, &mk), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_false(mk.bad);
        assert_int_equal(pthread_create(&t, NULL, engine_free_all, &mk), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_false(mk.bad);
        engine_job_t get = {b, N, 0xE4, 0};
        assert_int_equal(pthread_create(&t, NULL, engine_alloc_all, &get), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_false(get.bad);
        qsort(a, N, sizeof *a, engine_cmp_ptr);
        assert_true(engine_common(a, b, N) >= N / 2);
        assert_int_equal(pthread_create(&t, NULL, engine_free_all, &get), 0);
        assert_int_equal(pthread_join(t, NULL), 0);
        assert_false(get.bad);
    }
    ENGINE.trim();
}

/* A purge pass that gives memory back by age shrinks the cache of the
 * thread that ran it (hak_shrink_fn, hak_purge.h): a bin grown for a heap
 * that is gone goes back to its starting bound, and its blocks go home,
 * where the units they kept in use go back in the same pass (nothing is
 * left dirty: fails if they age a delay more); and so does the purge an
 * allocation that found no memory runs. */
static void test_engine_shrink(void **state)
{
    (void)state;
    static void *v[ENGINE_CAP];
    size_t n = 0;
    hak_bin_t *bin = engine_fresh_bin();
    uint32_t start = bin->max;
    if (ENGINE.capped) {
        /* a capped bin: its blocks go home and it gives its bound back
         * (after a heap that grew and shrank: most of its pages free) */
        start = 0;
        const size_t N = engine_n(ENGINE_CAP, (size_t)16 << 20);
        for (n = 0; n < N; n++)
            assert_non_null(v[n] = ENGINE.alloc(ENGINE.size));
        while (n > 0)
            ENGINE.free(v[--n]);
        assert_true(hak_bin_count(bin) > 0);
        ht_purge_later();
        assert_int_equal(bin->max, start);
        assert_int_equal(hak_bin_count(bin), 0);
        assert_int_equal(__atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED), 0);
        assert_non_null(v[0] = ENGINE.alloc(ENGINE.size));
        ENGINE.free(v[0]);
        assert_true(hak_bin_count(bin) > 0);
        (void)hak_purge_oom();
        assert_int_equal(bin->max, start);
        assert_int_equal(hak_bin_count(bin), 0);
        ENGINE.trim();
        return;
    }
    for (int round = 0; round < 64 && bin->max == start; round++)
        engine_swing_once(v, &n, bin);
    assert_true(bin->max > start);
    while (n > 0)
        ENGINE.free(v[--n]);
    /* a heap that grew and shrank: most of its pages free (dirty) */
    const size_t N = engine_n(ENGINE_CAP, (size_t)16 << 20);
    for (n = 0; n < N; n++)
        assert_non_null(v[n] = ENGINE.alloc(ENGINE.size));
    while (n > 0)
        ENGINE.free(v[--n]);
    assert_true(bin->max > start);
    assert_true(hak_bin_count(bin) > 0);
    ht_purge_later(); /* the delay passes; the next poll's pass gives back by age */
    assert_int_equal(bin->max, start);
    assert_int_equal(hak_bin_count(bin), 0);
    /* and what the bin's blocks kept in use went back in the same pass */
    assert_int_equal(__atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED), 0);
    /* so does what an allocation that found no memory runs before it
     * tries again (and malloc_trim) */
    for (int round = 0; round < 64 && bin->max == start; round++)
        engine_swing_once(v, &n, bin);
    assert_true(bin->max > start);
    while (n > 0)
        ENGINE.free(v[--n]);
    assert_true(hak_bin_count(bin) > 0);
    (void)hak_purge_oom();
    assert_int_equal(bin->max, start);
    assert_int_equal(hak_bin_count(bin), 0);
    ENGINE.trim();
}

/* Double frees the slow paths catch from magic up (hak_central.h,
 * hak_front_pushed_twice and hak_unit_spill): a block freed twice in a
 * row where the second free overflows the bin, and a block freed again
 * after it went home to its unit. Each is reported once ("free"), no block
 * is handed out twice after it, and the cache goes on working. A double
 * free the fast path takes with room in the bin is caught at full only. */
static int g_engine_reports;
static void engine_count_report(const char *op, const char *reason, const void *p)
{
    (void)reason;
    (void)p;
    if (strcmp(op, "free") == 0)
        g_engine_reports++;
}

static void test_engine_double_free(void **state)
{
    (void)state;
    if (HAK_VALIDATION < 1)
        skip(); /* none trusts every free */
    static void *v[ENGINE_CAP];
    size_t n = 0;
    hak_failure_handler_t old = hak_set_failure_handler(engine_count_report);
    g_engine_reports = 0;
    /* after it went home: the unit holds no block in use */
    ENGINE.trim();
    void *q = ENGINE.alloc(ENGINE.size);
    assert_non_null(q);
    ENGINE.free(q);
    ENGINE.trim();
    ENGINE.free(q);
    ENGINE.trim();
    assert_int_equal(g_engine_reports, 1);
    /* twice in a row: one block of room left, then p freed twice */
    hak_bin_t *bin = engine_fresh_bin();
    size_t want = engine_n(2 * (size_t)bin->max + 2, 8u << 20);
    while (n < want)
        assert_non_null(v[n++] = ENGINE.alloc(ENGINE.size));
    while (bin->room > 1 && n > 1)
        ENGINE.free(v[--n]);
    while (bin->room < 1 && hak_bin_count(bin) > 0)
        assert_non_null(v[n++] = ENGINE.alloc(ENGINE.size));
    void *p = v[--n];
    memset(p, 0x5A, ENGINE.size);
    ENGINE.free(p);
    ENGINE.free(p);
    assert_int_equal(g_engine_reports, 2);
    /* nothing handed out twice, p at most once */
    size_t m = n, seen = 0;
    while (m < n + 2 * (size_t)bin->max + 2 && m < ENGINE_CAP)
        assert_non_null(v[m++] = ENGINE.alloc(ENGINE.size));
    for (size_t i = 0; i < m; i++) {
        seen += v[i] == p;
        for (size_t j = i + 1; j < m; j++)
            assert_ptr_not_equal(v[i], v[j]);
    }
    assert_true(seen <= 1);
    while (m > 0)
        ENGINE.free(v[--m]);
    ENGINE.trim();
    assert_int_equal(g_engine_reports, 2);
    hak_set_failure_handler(old);
}

#define ENGINE_SUITE_TESTS                         \
    cmocka_unit_test(test_engine_double_free),     \
    cmocka_unit_test(test_engine_swing),           \
    cmocka_unit_test(test_engine_shrink),          \
    cmocka_unit_test(test_engine_drain_keeps_recent), \
    cmocka_unit_test(test_engine_cross_thread),    \
    cmocka_unit_test(test_engine_thread_exit)

#endif
