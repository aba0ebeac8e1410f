// SPDX-License-Identifier: MIT
/* Suite `large`, stress: churn with patterns and an overlap check, a
 * random model test, cross-thread frees, thread churn, concurrent moving
 * reallocs, fork while other threads allocate. Seeded; nothing is timed. */
#include "common/hak_test.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>

#include "hak_large.h"
#include "hak_platform.h"
#include "large_internal.h"

#define MiB ((size_t)1 << 20)
#define STRIDE 65536

/* Marks: the first 256 bytes, one word every 64 KiB (both independent of
 * the block's size, so they survive a realloc up to the smaller size), and
 * the last 256 bytes. Cheap enough for blocks of many MiB. */
static size_t words_end(size_t n) { return n > 512 ? n - 256 : n; }

static void mark(uint8_t *p, size_t n, uint64_t tag)
{
    ht_fill(p, n < 256 ? n : 256, tag);
    for (size_t off = STRIDE; off + 8 <= words_end(n); off += STRIDE) {
        uint64_t w = tag ^ off;
        memcpy(p + off, &w, 8);
    }
    if (n > 512)
        ht_fill(p + n - 256, 256, ~tag);
}

/* Check the marks of a block marked over `marked` bytes, of which the first
 * `valid` are still there (valid < marked after a shrink: no tail). */
static int marks_ok(const uint8_t *p, size_t valid, size_t marked, uint64_t tag)
{
    if (!ht_check(p, valid < 256 ? valid : 256, tag))
        return 0;
    for (size_t off = STRIDE; off + 8 <= valid && off + 8 <= words_end(marked); off += STRIDE) {
        uint64_t w = tag ^ off;
        if (memcmp(p + off, &w, 8) != 0)
            return 0;
    }
    if (valid >= marked && marked > 512 && !ht_check(p + marked - 256, 256, ~tag))
        return 0;
    return 1;
}

static size_t pick_align(ht_rng_t *rng)
{
    static const size_t aligns[] = {16, 16, 16, 64, 4096, 65536, (size_t)1 << 21};
    return aligns[ht_rand(rng) % (sizeof aligns / sizeof aligns[0])];
}

static int setup_warm(void **state)
{
    (void)state;
    hak_large_free(hak_large_alloc(MiB + 1, 16));
    hak_large_trim();
    return 0;
}

/* ------------------------------------------------------------- churn */

typedef struct slot {
    uint8_t *p;
    size_t size;   /* bytes marked */
    uint64_t tag;
} slot_t;

static void test_churn_no_overlap(void **state)
{
    (void)state;
    enum { LIVE = 24, OPS = 600 };
    slot_t s[LIVE];
    memset(s, 0, sizeof s);
    ht_rng_t rng = {2024};
    for (int op = 0; op < OPS; op++) {
        int i = (int)(ht_rand(&rng) % LIVE);
        if (s[i].p) {
            assert_true(marks_ok(s[i].p, s[i].size, s[i].size, s[i].tag));
            hak_large_free(s[i].p);
            s[i].p = NULL;
            continue;
        }
        size_t size = (size_t)ht_range(&rng, 1, 4 * MiB), align = pick_align(&rng);
        uint8_t *p = hak_large_alloc(size, align);
        assert_non_null(p);
        assert_true(HT_ALIGNED(p, align));
        size_t usable = hak_large_usable_size(p);
        /* no live block overlaps the new one, headers included */
        for (int j = 0; j < LIVE; j++) {
            if (!s[j].p)
                continue;
            uintptr_t a0 = (uintptr_t)p - 16, a1 = (uintptr_t)p + usable;
            uintptr_t b0 = (uintptr_t)s[j].p - 16, b1 = (uintptr_t)s[j].p + hak_large_usable_size(s[j].p);
            assert_true(a1 <= b0 || b1 <= a0);
        }
        s[i] = (slot_t){p, usable, (uint64_t)op * 7919};
        mark(p, usable, s[i].tag);
        if (op % 100 == 0) {
            assert_true(hak_large_validate_(true));
            for (int j = 0; j < LIVE; j++)
                if (s[j].p)
                    assert_true(marks_ok(s[j].p, s[j].size, s[j].size, s[j].tag));
        }
    }
    for (int j = 0; j < LIVE; j++)
        if (s[j].p) {
            assert_true(marks_ok(s[j].p, s[j].size, s[j].size, s[j].tag));
            hak_large_free(s[j].p);
        }
}

/* -------------------------------------------------------- model test */

static void test_random_model(void **state)
{
    (void)state;
    enum { SLOTS = 32, OPS = 3000 };
    slot_t s[SLOTS];
    memset(s, 0, sizeof s);
    hak_tier_stats_t base;
    hak_large_trim();
    hak_large_stats(&base);
    size_t mapped0 = hak_os_mapped_bytes();
    ht_rng_t rng = {31337};
    for (int op = 0; op < OPS; op++) {
        int i = (int)(ht_rand(&rng) % SLOTS);
        uint64_t what = ht_rand(&rng) % 10;
        size_t size = (size_t)ht_range(&rng, MiB, 8 * MiB);
        if (!s[i].p) {
            if (what < 7) {
                size_t align = pick_align(&rng);
                uint8_t *p = hak_large_alloc(size, align);
                assert_non_null(p);
                assert_true(HT_ALIGNED(p, align));
                assert_true(hak_large_usable_size(p) >= size);
                s[i] = (slot_t){p, size, (uint64_t)op * 104729 + 1};
                mark(p, size, s[i].tag);
            } else {
                assert_false(hak_large_owns((uint8_t *)&s[i] + 16));
            }
        } else if (what < 4) {
            assert_true(marks_ok(s[i].p, s[i].size, s[i].size, s[i].tag));
            hak_large_free(s[i].p);
            assert_false(hak_large_owns(s[i].p));
            s[i].p = NULL;
        } else if (what < 8) {
            uint8_t *q = hak_large_realloc(s[i].p, size);
            assert_non_null(q);
            if (q != s[i].p)
                assert_false(hak_large_owns(s[i].p));
            assert_true(hak_large_usable_size(q) >= size);
            size_t keep = size < s[i].size ? size : s[i].size;
            assert_true(marks_ok(q, keep, s[i].size, s[i].tag));
            s[i].p = q;
            s[i].size = size;
            s[i].tag += 2;
            mark(q, size, s[i].tag);
        } else {
            assert_true(hak_large_owns(s[i].p));
            assert_false(hak_large_owns(s[i].p + 16));
            assert_true(hak_large_usable_size(s[i].p) >= s[i].size);
            assert_true(marks_ok(s[i].p, s[i].size, s[i].size, s[i].tag));
        }
        if (op % 250 == 0) {
            assert_true(hak_large_validate_(true));
            hak_tier_stats_t st;
            hak_large_stats(&st);
            size_t n = 0, bytes = 0;
            for (int j = 0; j < SLOTS; j++)
                if (s[j].p) {
                    n++;
                    bytes += hak_large_usable_size(s[j].p);
                }
            assert_int_equal(st.blocks_in_use - base.blocks_in_use, n);
            assert_int_equal(st.bytes_in_use - base.bytes_in_use, bytes);
        }
    }
    for (int j = 0; j < SLOTS; j++)
        if (s[j].p) {
            assert_true(marks_ok(s[j].p, s[j].size, s[j].size, s[j].tag));
            hak_large_free(s[j].p);
        }
    hak_large_trim();
    assert_int_equal(hak_os_mapped_bytes(), mapped0);
}

/* ------------------------------------------------ cross-thread frees */

enum { XT_THREADS = 4, XT_BLOCKS = 8, XT_ROUNDS = 25 };
static slot_t g_xt[XT_THREADS][XT_BLOCKS];
static pthread_barrier_t g_bar;
static int g_xt_errors;

static void *xt_worker(void *arg)
{
    int t = (int)(intptr_t)arg;
    ht_rng_t rng = {(uint64_t)t * 977 + 5};
    for (int round = 0; round < XT_ROUNDS; round++) {
        for (int k = 0; k < XT_BLOCKS; k++) {
            size_t size = (size_t)ht_range(&rng, MiB, 3 * MiB);
            uint8_t *p = hak_large_alloc(size, pick_align(&rng));
            if (p == NULL) {
                __atomic_add_fetch(&g_xt_errors, 1, __ATOMIC_RELAXED);
                continue;
            }
            g_xt[t][k] = (slot_t){p, size, (uint64_t)(round * 100 + t * 10 + k)};
            mark(p, size, g_xt[t][k].tag);
        }
        pthread_barrier_wait(&g_bar);
        /* free the neighbour's blocks */
        int from = (t + 1) % XT_THREADS;
        for (int k = 0; k < XT_BLOCKS; k++) {
            slot_t *s = &g_xt[from][k];
            if (s->p == NULL)
                continue;
            if (!marks_ok(s->p, s->size, s->size, s->tag))
                __atomic_add_fetch(&g_xt_errors, 1, __ATOMIC_RELAXED);
            hak_large_free(s->p);
            s->p = NULL;
        }
        pthread_barrier_wait(&g_bar);
    }
    return NULL;
}

static void test_cross_thread_frees(void **state)
{
    (void)state;
    hak_large_trim();
    size_t mapped0 = hak_os_mapped_bytes();
    pthread_t th[XT_THREADS];
    pthread_barrier_init(&g_bar, NULL, XT_THREADS);
    for (int t = 0; t < XT_THREADS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, xt_worker, (void *)(intptr_t)t), 0);
    for (int t = 0; t < XT_THREADS; t++)
        pthread_join(th[t], NULL);
    pthread_barrier_destroy(&g_bar);
    assert_int_equal(g_xt_errors, 0);
    assert_true(hak_large_validate_(true));
    hak_large_trim();
    assert_int_equal(hak_os_mapped_bytes(), mapped0);
}

/* ------------------------------------------------------ thread churn */

typedef struct churn_res {
    uintptr_t seed;
    uint8_t *keep[4];     /* blocks left for main to free after the thread is gone */
    size_t keep_size[4];
    uint64_t keep_tag[4];
    int error;
} churn_res_t;

static void *churn_worker(void *arg)
{
    churn_res_t *r = arg;
    ht_rng_t rng = {r->seed};
    for (int i = 0; i < 16; i++) {
        size_t size = (size_t)ht_range(&rng, 1, 3 * MiB);
        uint8_t *p = hak_large_alloc(size, pick_align(&rng));
        if (p == NULL) {
            r->error = 1;
            return NULL;
        }
        mark(p, size, (uint64_t)i);
        if (i % 3 == 0) {
            size_t ns = (size_t)ht_range(&rng, 1, 5 * MiB);
            uint8_t *q = hak_large_realloc(p, ns);
            if (q == NULL) {
                r->error = 2;
                return NULL;
            }
            if (!marks_ok(q, ns < size ? ns : size, size, (uint64_t)i))
                r->error = 3;
            p = q;
            size = ns;
            mark(p, size, (uint64_t)i);
        }
        int k = i % 4;
        if (r->keep[k]) {
            if (!marks_ok(r->keep[k], r->keep_size[k], r->keep_size[k], r->keep_tag[k]))
                r->error = 4;
            hak_large_free(r->keep[k]);
        }
        r->keep[k] = p;
        r->keep_size[k] = size;
        r->keep_tag[k] = (uint64_t)i;
    }
    return NULL;
}

/* Threads come and go, each leaving four blocks that the main thread frees
 * after the thread is gone; afterwards the mapped bytes are back. */
static void test_thread_churn(void **state)
{
    (void)state;
    hak_large_trim();
    size_t mapped0 = hak_os_mapped_bytes();
    hak_tier_stats_t st0, st1;
    hak_large_stats(&st0);
    for (int wave = 0; wave < 10; wave++) {
        pthread_t th[4];
        churn_res_t res[4];
        memset(res, 0, sizeof res);
        for (int t = 0; t < 4; t++) {
            res[t].seed = (uintptr_t)(wave * 4 + t + 1);
            assert_int_equal(pthread_create(&th[t], NULL, churn_worker, &res[t]), 0);
        }
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], NULL); /* all joined before any assert can leave */
        for (int t = 0; t < 4; t++)
            assert_int_equal(res[t].error, 0);
        hak_large_stats(&st1);
        assert_int_equal(st1.blocks_in_use - st0.blocks_in_use, 16);
        for (int t = 0; t < 4; t++)
            for (int k = 0; k < 4; k++) {
                assert_true(marks_ok(res[t].keep[k], res[t].keep_size[k], res[t].keep_size[k], res[t].keep_tag[k]));
                hak_large_free(res[t].keep[k]);
            }
    }
    hak_large_trim();
    hak_large_stats(&st1);
    assert_int_equal(st1.blocks_in_use, st0.blocks_in_use);
    assert_int_equal(st1.bytes_in_use, st0.bytes_in_use);
    assert_int_equal(hak_os_mapped_bytes(), mapped0);
    assert_true(hak_large_validate_(true));
}

static void *churn_clean_worker(void *arg)
{
    ht_rng_t rng = {(uint64_t)(uintptr_t)arg};
    for (int i = 0; i < 12; i++) {
        size_t size = (size_t)ht_range(&rng, 1, 3 * MiB);
        uint8_t *p = hak_large_alloc(size, pick_align(&rng));
        if (p == NULL)
            return (void *)1;
        mark(p, size, (uint64_t)i);
        if (i % 2) {
            uint8_t *q = hak_large_realloc(p, size * 2);
            if (q == NULL)
                return (void *)2;
            p = q;
        }
        if (!marks_ok(p, size, size, (uint64_t)i))
            return (void *)3;
        hak_large_free(p);
    }
    return NULL;
}

/* Threads come and go; afterwards the mapped bytes are back to the start. */
static void test_thread_churn_returns_memory(void **state)
{
    (void)state;
    hak_tier_stats_t st0, st1;
    hak_large_trim();
    hak_large_stats(&st0);
    size_t mapped0 = hak_os_mapped_bytes();
    for (int wave = 0; wave < 12; wave++) {
        pthread_t th[4];
        for (int t = 0; t < 4; t++)
            assert_int_equal(pthread_create(&th[t], NULL, churn_clean_worker, (void *)(uintptr_t)(wave * 4 + t + 100)), 0);
        void *rv[4];
        for (int t = 0; t < 4; t++)
            pthread_join(th[t], &rv[t]);
        for (int t = 0; t < 4; t++)
            assert_null(rv[t]);
    }
    hak_large_trim();
    assert_int_equal(hak_os_mapped_bytes(), mapped0);
    hak_large_stats(&st1);
    assert_int_equal(st1.blocks_in_use, st0.blocks_in_use);
    assert_int_equal(st1.bytes_in_use, st0.bytes_in_use);
    assert_int_equal(st1.bytes_mapped, st0.bytes_mapped);
    assert_true(hak_large_validate_(true));
}

/* ------------------------------------------- concurrent moving realloc */

static void *realloc_worker(void *arg)
{
    ht_rng_t rng = {(uint64_t)(uintptr_t)arg};
    size_t size = MiB;
    uint8_t *p = hak_large_alloc(size, 16);
    if (p == NULL)
        return (void *)1;
    uint64_t tag = (uint64_t)(uintptr_t)arg;
    mark(p, size, tag);
    for (int i = 0; i < 150; i++) {
        /* neighbours come and go so that growth sometimes has to move */
        void *t = hak_large_alloc((size_t)ht_range(&rng, 1, MiB), 16);
        size_t ns = (size_t)ht_range(&rng, 1, 6 * MiB);
        uint8_t *q = hak_large_realloc(p, ns);
        if (q == NULL || !hak_large_owns(q))
            return (void *)2;
        if (!marks_ok(q, ns < size ? ns : size, size, tag))
            return (void *)3;
        p = q;
        size = ns;
        tag++;
        mark(p, size, tag);
        hak_large_free(t);
    }
    hak_large_free(p);
    return NULL;
}

static void test_concurrent_realloc(void **state)
{
    (void)state;
    hak_large_trim();
    size_t mapped0 = hak_os_mapped_bytes();
    pthread_t th[4];
    for (int t = 0; t < 4; t++)
        assert_int_equal(pthread_create(&th[t], NULL, realloc_worker, (void *)(uintptr_t)(t * 31 + 7)), 0);
    void *rv[4];
    for (int t = 0; t < 4; t++)
        pthread_join(th[t], &rv[t]);
    for (int t = 0; t < 4; t++)
        assert_null(rv[t]);
    assert_true(hak_large_validate_(true));
    hak_large_trim();
    assert_int_equal(hak_os_mapped_bytes(), mapped0);
}

/* ------------------------------- lookups racing mappings and unmappings */

/* Owners realloc (in place, across pages, moving), query and free their
 * own blocks, every lookup lock-free, while mappers map 150 blocks each and
 * free them, over and over, so the registry grows past one page and
 * shrinks back under the owners' reads. Contents survive, every query
 * answers right, and nothing is reported. */
enum { LR_OWNERS = 2, LR_MAPPERS = 2, LR_OWN = 3, LR_OPS = 600, LR_MAP = 150, LR_WAVES = 6 };
static int g_lr_reports;

static void lr_handler(const char *op, const char *reason, const void *p)
{
    (void)op;
    (void)reason;
    (void)p;
    __atomic_add_fetch(&g_lr_reports, 1, __ATOMIC_RELAXED);
}

static void *lr_owner(void *arg)
{
    ht_rng_t rng = {(uint64_t)(uintptr_t)arg};
    slot_t own[LR_OWN];
    for (int k = 0; k < LR_OWN; k++) {
        size_t size = (size_t)ht_range(&rng, MiB, 2 * MiB);
        own[k] = (slot_t){hak_large_alloc(size, 16), size, (uint64_t)(uintptr_t)arg * 1000 + (uint64_t)k};
        if (own[k].p == NULL)
            return (void *)1;
        mark(own[k].p, size, own[k].tag);
    }
    for (int op = 0; op < LR_OPS; op++) {
        slot_t *s = &own[ht_rand(&rng) % LR_OWN];
        if (!hak_large_owns(s->p) || hak_large_owns(s->p + 16) || hak_large_usable_size(s->p + 16) != 0 ||
            hak_large_usable_size(s->p) < s->size)
            return (void *)2;
        if (!marks_ok(s->p, s->size, s->size, s->tag))
            return (void *)3;
        uint64_t what = ht_rand(&rng) % 8;
        if (what == 0) {
            hak_large_free(s->p);
            s->size = (size_t)ht_range(&rng, MiB, 2 * MiB);
            s->p = hak_large_alloc(s->size, 16);
            if (s->p == NULL)
                return (void *)4;
        } else {
            /* a few bytes to 64 KiB either way: mostly within the mapping,
             * sometimes a page or more (mremap, in place or moved) */
            size_t step = what < 5 ? (size_t)ht_range(&rng, 1, 64) : (size_t)ht_range(&rng, 1, 65536);
            size_t ns = (ht_rand(&rng) & 1) && s->size - step > MiB ? s->size - step : s->size + step;
            if (ns > 3 * MiB)
                ns = MiB + step;
            uint8_t *q = hak_large_realloc(s->p, ns);
            if (q == NULL)
                return (void *)5;
            if (!marks_ok(q, ns < s->size ? ns : s->size, s->size, s->tag))
                return (void *)6;
            s->p = q;
            s->size = ns;
        }
        s->tag += 2;
        mark(s->p, s->size, s->tag);
    }
    for (int k = 0; k < LR_OWN; k++)
        hak_large_free(own[k].p);
    return NULL;
}

static void *lr_mapper(void *arg)
{
    ht_rng_t rng = {(uint64_t)(uintptr_t)arg};
    uint8_t *p[LR_MAP];
    for (int wave = 0; wave < LR_WAVES; wave++) {
        for (int i = 0; i < LR_MAP; i++) {
            p[i] = hak_large_alloc((size_t)ht_range(&rng, MiB + 1, MiB + 65536), 16);
            if (p[i] == NULL)
                return (void *)1;
            p[i][0] = (uint8_t)i;
        }
        for (int i = 0; i < LR_MAP; i++) {
            if (!hak_large_owns(p[i]) || p[i][0] != (uint8_t)i)
                return (void *)2;
            hak_large_free(p[i]);
        }
    }
    return NULL;
}

static void test_lookups_race_mappers(void **state)
{
    (void)state;
    hak_tier_stats_t st0, st1;
    hak_set_failure_handler(lr_handler);
    hak_large_trim();
    hak_large_stats(&st0);
    size_t mapped0 = hak_os_mapped_bytes();
    pthread_t th[LR_OWNERS + LR_MAPPERS];
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, t < LR_OWNERS ? lr_owner : lr_mapper,
                                        (void *)(uintptr_t)(t * 7919 + 3)), 0);
    void *rv[LR_OWNERS + LR_MAPPERS];
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        pthread_join(th[t], &rv[t]);
    hak_set_failure_handler(NULL);
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        assert_null(rv[t]);
    assert_int_equal(g_lr_reports, 0);
    assert_true(hak_large_validate_(true));
    hak_large_trim();
    hak_large_stats(&st1);
    assert_int_equal(st1.blocks_in_use, st0.blocks_in_use);
    /* what stays mapped: the registry's arrays left by resizes (decommitted; one at least) */
    assert_true(st1.bytes_mapped > st1.bytes_committed);
    size_t kept = (st1.bytes_mapped - st1.bytes_committed) - (st0.bytes_mapped - st0.bytes_committed);
    assert_int_equal(hak_os_mapped_bytes(), mapped0 + kept);
    assert_int_equal(st1.bytes_committed, st0.bytes_committed);
}

/* ------------------------------------------ fork while others allocate */

static int g_stop;

static void *busy_worker(void *arg)
{
    ht_rng_t rng = {(uint64_t)(uintptr_t)arg};
    while (!__atomic_load_n(&g_stop, __ATOMIC_ACQUIRE)) {
        void *p = hak_large_alloc((size_t)ht_range(&rng, 1, 2 * MiB), pick_align(&rng));
        if (p)
            p = hak_large_realloc(p, (size_t)ht_range(&rng, 1, 3 * MiB));
        hak_large_free(p);
    }
    return NULL;
}

static void test_fork_with_threads(void **state)
{
    (void)state;
    pthread_t th[3];
    g_stop = 0;
    for (int t = 0; t < 3; t++)
        assert_int_equal(pthread_create(&th[t], NULL, busy_worker, (void *)(uintptr_t)(t + 1)), 0);
    for (int i = 0; i < 20; i++) {
        fflush(NULL);
        pid_t pid = fork();
        if (pid == 0) {
            /* the registry lock was reinitialised: the child allocates */
            void *p = hak_large_alloc(2 * MiB, 1 << 21);
            int code = p == NULL ? 1 : !hak_large_validate_(true) ? 2 : 0;
            hak_large_free(p);
            _exit(code);
        }
        assert_true(pid > 0);
        int status = 0;
        waitpid(pid, &status, 0);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
    }
    __atomic_store_n(&g_stop, 1, __ATOMIC_RELEASE);
    for (int t = 0; t < 3; t++)
        pthread_join(th[t], NULL);
    assert_true(hak_large_validate_(true));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_churn_no_overlap),
        cmocka_unit_test(test_random_model),
        cmocka_unit_test(test_cross_thread_frees),
        cmocka_unit_test(test_thread_churn_returns_memory),
        cmocka_unit_test(test_thread_churn),
        cmocka_unit_test(test_concurrent_realloc),
        cmocka_unit_test(test_lookups_race_mappers),
        cmocka_unit_test(test_fork_with_threads),
    };
    return cmocka_run_group_tests(tests, setup_warm, NULL);
}
