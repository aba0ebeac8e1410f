// SPDX-License-Identifier: MIT
/* pool_suite.h - the tests shared by the suites `mid` and `l25`: both
 * pools are instances of one engine (src/mid/pool.c), so one body of
 * tests runs against each, through the tier's public entry points plus
 * its internal pool (class table, validator).
 *
 * A suite defines `static const pool_tier_t TIER = {...}` and includes
 * this file, then lists POOL_SUITE_TESTS in its main. Nothing is timed.
 */
#ifndef POOL_SUITE_H
#define POOL_SUITE_H

#include "common/hak_test.h"
#include "common/ht_purge.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>

#include "hak_pool_stats.h"
#include "pool_internal.h"

typedef struct pool_tier {
    const char *name;
    void *(*alloc)(size_t size, size_t align);
    void (*free)(void *p);
    size_t (*usable)(const void *p);
    bool (*owns)(const void *p);
    size_t (*max_align)(size_t size);
    void (*trim)(void);
    void (*thread_exit)(void);
    void (*stats)(hak_pool_stats_t *out);
    const hak_tier_vtable_t *vt; /* the tier's descriptor (hak_tier.h) */
    hak_pool_t *pool;
    hak_pool_tcache_t *(*tc)(void); /* the calling thread's cache */
    size_t lo;           /* smallest size dispatch sends (above the tier below) */
    size_t hi;           /* largest size served */
    size_t min_align;    /* every size must get at least this alignment */
    double max_waste;    /* of a block, for sizes >= lo */
    size_t churn_live;   /* blocks live in test_churn_footprint */
    size_t model_live;   /* live blocks in the model test */
    size_t model_ops;
    size_t churn_threads;
    size_t churn_blocks; /* per thread */
    size_t trim_bytes;   /* bytes allocated by the trim test */
    size_t xt_blocks;
    size_t interior_size, interior_align; /* a request the API places inside a block (0: none) */    /* blocks per thread and round in the cross-thread test */
} pool_tier_t;

static const pool_tier_t TIER;

#define MIB ((size_t)1 << 20)

/* --------------------------------------------------------------- helpers */

/* A stamp: 32 bytes derived from the block's tag at both ends and 8 every
 * STAMP_STEP in between, so that big blocks are checked without touching
 * every page (the overlap tests also compare the sorted block ranges). */
#define STAMP_STEP 8192
static void stamp(void *p, size_t n, uint64_t tag)
{
    uint8_t *b = p;
    if (n < 64) {
        ht_fill(b, n, tag);
        return;
    }
    ht_fill(b, 32, tag);
    for (size_t off = STAMP_STEP; off + 32 < n; off += STAMP_STEP)
        ht_fill(b + off, 8, tag + off);
    ht_fill(b + n - 32, 32, tag ^ 0x5555);
}

static int stamp_ok(const void *p, size_t n, uint64_t tag)
{
    const uint8_t *b = p;
    if (n < 64)
        return ht_check(b, n, tag);
    if (!ht_check(b, 32, tag) || !ht_check(b + n - 32, 32, tag ^ 0x5555))
        return 0;
    for (size_t off = STAMP_STEP; off + 32 < n; off += STAMP_STEP)
        if (!ht_check(b + off, 8, tag + off))
            return 0;
    return 1;
}

static size_t rand_size(ht_rng_t *r)
{
    /* mostly in the tier's own range, some from 1 byte, some exact powers
     * of two and the hot sizes of recorded programs (1032, 1094) */
    uint64_t k = ht_range(r, 0, 15);
    if (k == 0)
        return (size_t)ht_range(r, 1, TIER.lo);
    if (k == 1) {
        size_t p = TIER.hi;
        while (p / 2 >= TIER.lo && ht_range(r, 0, 1))
            p /= 2;
        return p;
    }
    if (k == 2 && TIER.lo <= 1094)
        return ht_range(r, 0, 1) ? 1032 : 1094;
    return (size_t)ht_range(r, TIER.lo, TIER.hi);
}

/* An aligned block placed through an interior pointer (the engine's
 * forced path; the public API takes it where it wastes less). */
static void *alloc_interior(size_t size, size_t align)
{
    return hak_pool_alloc_aligned_ex_(TIER.pool, TIER.tc(), size, align, true);
}

/* The start of the block that holds p. */
static uint8_t *block_start(const void *p)
{
    hak_pool_span_t *s = hak_pool_span_of(p);
    assert_non_null(s);
    return s->u.base + hak_pool_index(s, p) * s->u.stride;
}

static void assert_valid_pool(void) { assert_int_equal(hak_pool_validate_(TIER.pool), 0); }

#define assert_committed_within(before, slack)                                   \
    do {                                                                      \
        size_t now_ = committed();                                            \
        if (now_ > (before) + (slack))                                        \
            fail_msg("committed %zu KiB, started at %zu KiB", now_ >> 10, (size_t)(before) >> 10); \
    } while (0)

static size_t committed(void)
{
    hak_pool_stats_t st;
    TIER.stats(&st);
    assert_true(st.bytes_committed <= st.bytes_mapped);
    return st.bytes_committed;
}

/* ---------------------------------------------------- classes and sizes */

/* Every size maps to the smallest class that holds it; exact powers of
 * two are a class; waste is bounded; the block index multiply is exact
 * at every 16-byte offset of every class's span. */
static void test_classes(void **state)
{
    (void)state;
    void *warm = TIER.alloc(TIER.lo, 0); /* initialise the pool */
    assert_non_null(warm);
    TIER.free(warm);
    hak_pool_t *pool = TIER.pool;
    const hak_pool_params_t *pr = pool->pr;
    for (unsigned c = 1; c < pr->nclasses; c++)
        assert_true(pool->t->cls[c].stride > pool->t->cls[c - 1].stride);
    assert_int_equal(pool->t->cls[pr->nsized - 1].stride, TIER.hi);
    unsigned c = 0;
    for (size_t n = 0; n <= TIER.hi; n++) {
        while (pool->t->cls[c].stride < n)
            c++;
        if ((n & 1023) == 0 || n == TIER.hi || n == 1032 || n == 1094) {
            void *p = TIER.alloc(n, 0);
            assert_non_null(p);
            assert_int_equal(TIER.usable(p), pool->t->cls[c].stride);
            TIER.free(p);
        }
        if (n >= TIER.lo && n > 0)
            assert_true((double)(pool->t->cls[c].stride - n) <= TIER.max_waste * (double)n);
        if (n && (n & (n - 1)) == 0 && n >= pool->t->cls[0].stride)
            assert_int_equal(pool->t->cls[c].stride, n);
    }
    for (c = 0; c < pr->nclasses; c++) {
        const hak_pool_class_t *k = &pool->t->cls[c];
        assert_true(k->capacity >= 1 && k->capacity <= HAK_POOL_MAX_BLOCKS);
        assert_true((size_t)k->capacity * k->stride <= (size_t)k->npages * HAK_POOL_PAGE_SIZE);
        assert_true(k->stride % 16 == 0);
        hak_pool_span_t s = {.u = {.base = 0, .stride = k->stride}, .inv = k->inv};
        for (size_t off = 0; off < (size_t)k->npages * HAK_POOL_PAGE_SIZE; off += 16)
            if (hak_pool_index(&s, (const void *)(uintptr_t)off) != off / k->stride)
                fail_msg("class %u: index of offset %zu", c, off);
    }
}

/* Every block 16-aligned (and aligned to its class where promised),
 * usable >= asked and writable to its end, owned, in its span. */
static void test_alignment_usable(void **state)
{
    (void)state;
    ht_rng_t r = {0x1234};
    enum { N = 512 };
    void *ps[N];
    size_t ns[N];
    for (int i = 0; i < N; i++) {
        size_t n = i < 40 ? (size_t)1 << (i % 21) : rand_size(&r);
        if (n > TIER.hi)
            n = TIER.hi;
        ns[i] = n;
        ps[i] = TIER.alloc(n, 0);
        assert_non_null(ps[i]);
        assert_true(HT_ALIGNED(ps[i], 16));
        assert_true(TIER.owns(ps[i]));
        assert_true(TIER.owns((char *)ps[i] + ns[i] - (ns[i] > 0)));
        size_t u = TIER.usable(ps[i]);
        assert_true(u >= n);
        assert_true(u >= TIER.min_align || n == 0);
        stamp(ps[i], u, (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        assert_true(stamp_ok(ps[i], TIER.usable(ps[i]), (uint64_t)i));
        TIER.free(ps[i]);
    }
    errno = 0;
    assert_null(TIER.alloc(TIER.hi + 1, 0));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(TIER.alloc(100, 48));
    assert_int_equal(errno, EINVAL);
    int x;
    assert_false(TIER.owns(&x));
    assert_false(TIER.owns(NULL));
    assert_int_equal(TIER.usable(NULL), 0);
    TIER.free(NULL);
    assert_valid_pool();
}

/* ------------------------------------------------------------- overlap */

typedef struct live {
    uint8_t *p;
    size_t n;
    uint64_t tag;
} live_t;

static int cmp_live(const void *a, const void *b)
{
    const live_t *x = a, *y = b;
    return x->p < y->p ? -1 : x->p > y->p;
}

static void assert_disjoint(live_t *set, size_t n)
{
    live_t *sorted = malloc(n * sizeof *sorted);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (set[i].p)
            sorted[m++] = set[i];
    qsort(sorted, m, sizeof *sorted, cmp_live);
    for (size_t i = 1; i < m; i++)
        assert_true(sorted[i - 1].p + TIER.usable(sorted[i - 1].p) <= sorted[i].p);
    free(sorted);
}

/* Fill every block with its own pattern, churn, verify. */
static void test_no_overlap_churn(void **state)
{
    (void)state;
    ht_rng_t r = {0xfeed};
    size_t n = TIER.model_live;
    live_t *set = calloc(n, sizeof *set);
    uint64_t tag = 1;
    for (size_t round = 0; round < 8; round++) {
        for (size_t k = 0; k < n * 2; k++) {
            live_t *l = &set[ht_range(&r, 0, n - 1)];
            if (l->p) {
                assert_true(stamp_ok(l->p, l->n, l->tag));
                TIER.free(l->p);
                l->p = NULL;
            } else {
                l->n = rand_size(&r);
                l->p = TIER.alloc(l->n, 0);
                assert_non_null(l->p);
                l->n = TIER.usable(l->p);
                l->tag = tag++;
                stamp(l->p, l->n, l->tag);
            }
        }
        assert_disjoint(set, n);
        for (size_t i = 0; i < n; i++)
            if (set[i].p)
                assert_true(stamp_ok(set[i].p, set[i].n, set[i].tag));
        assert_valid_pool();
    }
    for (size_t i = 0; i < n; i++)
        TIER.free(set[i].p);
    free(set);
    assert_valid_pool();
}

/* ~200k random operations checked against a model: allocations of random
 * sizes and alignments, frees, usable sizes, ownership. */
static void test_random_model(void **state)
{
    (void)state;
    ht_rng_t r = {0xabcdef};
    size_t n = TIER.model_live;
    live_t *set = calloc(n, sizeof *set);
    size_t *asked = calloc(n, sizeof *asked);
    size_t *aligned = calloc(n, sizeof *aligned);
    uint64_t tag = 1;
    for (size_t op = 0; op < TIER.model_ops; op++) {
        size_t i = ht_range(&r, 0, n - 1);
        live_t *l = &set[i];
        if (l->p) {
            assert_true(TIER.owns(l->p));
            assert_int_equal(TIER.usable(l->p), l->n);
            assert_true(stamp_ok(l->p, l->n, l->tag));
            TIER.free(l->p);
            l->p = NULL;
            continue;
        }
        size_t sz = rand_size(&r);
        size_t al = 0;
        if (ht_range(&r, 0, 7) == 0) {
            size_t maxa = TIER.max_align(sz);
            al = (size_t)1 << ht_range(&r, 5, 18);
            if (al > maxa)
                al = maxa;
        }
        l->p = TIER.alloc(sz, al);
        assert_non_null(l->p);
        assert_true(HT_ALIGNED(l->p, al > 16 ? al : 16));
        l->n = TIER.usable(l->p);
        assert_true(l->n >= sz);
        asked[i] = sz;
        aligned[i] = al;
        l->tag = tag++;
        stamp(l->p, l->n, l->tag);
        if (op % 50000 == 0) {
            assert_disjoint(set, n);
            assert_valid_pool();
        }
    }
    assert_disjoint(set, n);
    for (size_t i = 0; i < n; i++) {
        if (set[i].p) {
            assert_true(stamp_ok(set[i].p, set[i].n, set[i].tag));
            TIER.free(set[i].p);
        }
    }
    free(set);
    free(asked);
    free(aligned);
    assert_valid_pool();
}

/* ------------------------------------------------------------- threads */

#define XT_THREADS 4
#define XT_BLOCKS  512 /* at most; TIER.xt_blocks used */

typedef struct xt_shared {
    void *blocks[XT_THREADS][XT_BLOCKS];
    size_t sizes[XT_THREADS][XT_BLOCKS];
    pthread_barrier_t go;
    size_t reused;
} xt_shared_t;

typedef struct xt_arg {
    xt_shared_t *sh;
    int id;
} xt_arg_t;

static int in_set(void *const *set, size_t n, const void *p)
{
    for (size_t i = 0; i < n; i++)
        if (set[i] == p)
            return 1;
    return 0;
}

/* Thread id frees the blocks that thread (id+1)%4 allocated, then
 * allocates as many again: they come from the freed ones. */
static void *xt_worker(void *argp)
{
    xt_arg_t *a = argp;
    xt_shared_t *sh = a->sh;
    int victim = (a->id + 1) % XT_THREADS;
    const int nb = (int)TIER.xt_blocks;
    for (int round = 0; round < 4; round++) {
        for (int i = 0; i < nb; i++) {
            size_t n = TIER.lo + (size_t)((i * 7919 + round) % 8) * (TIER.hi - TIER.lo) / 8;
            sh->sizes[a->id][i] = TIER.usable(sh->blocks[a->id][i] = TIER.alloc(n, 0));
            stamp(sh->blocks[a->id][i], sh->sizes[a->id][i], (uint64_t)(a->id * 100000 + i));
        }
        pthread_barrier_wait(&sh->go);
        void *freed[XT_BLOCKS];
        for (int i = 0; i < nb; i++) {
            void *p = sh->blocks[victim][i];
            if (!stamp_ok(p, sh->sizes[victim][i], (uint64_t)(victim * 100000 + i)))
                abort();
            freed[i] = p;
            TIER.free(p);
        }
        pthread_barrier_wait(&sh->go);
        /* the freeing thread's cache now holds some of them: reuse */
        size_t reused = 0;
        void *again[XT_BLOCKS];
        for (int i = 0; i < nb; i++) {
            size_t n = TIER.lo + (size_t)((i * 7919 + round) % 8) * (TIER.hi - TIER.lo) / 8;
            again[i] = TIER.alloc(n, 0);
            reused += in_set(freed, (size_t)nb, again[i]);
        }
        for (int i = 0; i < nb; i++)
            TIER.free(again[i]);
        __atomic_fetch_add(&sh->reused, reused, __ATOMIC_RELAXED);
        pthread_barrier_wait(&sh->go);
    }
    TIER.thread_exit();
    return NULL;
}

static void test_cross_thread_free(void **state)
{
    (void)state;
    xt_shared_t *sh = calloc(1, sizeof *sh);
    pthread_barrier_init(&sh->go, NULL, XT_THREADS);
    pthread_t t[XT_THREADS];
    xt_arg_t args[XT_THREADS];
    TIER.trim();
    size_t before = committed();
    for (int i = 0; i < XT_THREADS; i++) {
        args[i] = (xt_arg_t){sh, i};
        assert_int_equal(pthread_create(&t[i], NULL, xt_worker, &args[i]), 0);
    }
    for (int i = 0; i < XT_THREADS; i++)
        pthread_join(t[i], NULL);
    assert_true(sh->reused > 0);
    pthread_barrier_destroy(&sh->go);
    free(sh);
    assert_valid_pool();
    TIER.trim();
    assert_committed_within(before, 4 * MIB);
}

/* Hundreds of short threads: each allocates, frees some of its own and
 * some of the previous thread's blocks, gives its cache back, and uses
 * the cacheless path after that; memory comes back by itself. */
typedef struct churn_arg {
    void **handoff;       /* blocks left by the previous thread */
    size_t n;
    uint64_t seed;
} churn_arg_t;

static void *churn_worker(void *argp)
{
    churn_arg_t *a = argp;
    ht_rng_t r = {a->seed};
    size_t n = TIER.churn_blocks;
    void **mine = malloc(n * sizeof *mine);
    for (size_t i = 0; i < n; i++) {
        size_t sz = rand_size(&r);
        mine[i] = TIER.alloc(sz, 0);
        if (!mine[i])
            abort();
        memset(mine[i], 0x5A, sz < 64 ? sz : 64);
    }
    for (size_t i = 0; i < a->n; i++)
        TIER.free(a->handoff[i]); /* the previous thread's */
    for (size_t i = 0; i < n / 2; i++)
        TIER.free(mine[i]);
    for (size_t i = 0; i < n / 2; i++) /* hand half on */
        a->handoff[i] = mine[n / 2 + i];
    a->n = n / 2;
    TIER.thread_exit();
    /* after the exit call: no cache */
    void *late = TIER.alloc(TIER.lo, 0);
    if (!late)
        abort();
    TIER.free(late);
    free(mine);
    return NULL;
}

static void *reap_worker(void *argp)
{
    churn_arg_t *a = argp;
    for (size_t i = 0; i < a->n; i++)
        TIER.free(a->handoff[i]);
    TIER.thread_exit();
    return NULL;
}

static void test_thread_churn(void **state)
{
    (void)state;
    TIER.trim();
    size_t before = committed();
    size_t before_os = hak_os_committed_bytes();
    churn_arg_t a = {.handoff = malloc(TIER.churn_blocks * sizeof(void *)), .n = 0};
    for (size_t t = 0; t < TIER.churn_threads; t++) {
        pthread_t th;
        a.seed = 0x9e3779b97f4a7c15ULL * (t + 1);
        assert_int_equal(pthread_create(&th, NULL, churn_worker, &a), 0);
        pthread_join(th, NULL);
    }
    /* a last thread frees the last hand-off */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, reap_worker, &a), 0);
    pthread_join(th, NULL);
    free(a.handoff);
    assert_valid_pool();
    ht_purge_later(); /* what the threads sent home goes back after the purge delay */
    assert_valid_pool();
    assert_committed_within(before, 4 * MIB);
    assert_true(hak_os_committed_bytes() <= before_os + 4 * MIB);
}

/* ------------------------------------------------------------- aligned */

static void test_aligned(void **state)
{
    (void)state;
    ht_rng_t r = {77};
    size_t maxa = TIER.max_align(TIER.hi);
    assert_true(maxa >= (TIER.hi <= (32u << 10) ? (size_t)65536 : (size_t)256 << 10));
    for (size_t al = 32; al <= maxa; al <<= 1) {
        for (int k = 0; k < 24; k++) {
            size_t n = k < 4 ? (size_t)k * 100 + 1 : rand_size(&r);
            if (TIER.max_align(n) < al)
                continue;
            void *p[3];
            for (int j = 0; j < 3; j++) {
                p[j] = TIER.alloc(n, al);
                assert_non_null(p[j]);
                assert_true(HT_ALIGNED(p[j], al));
                assert_true(TIER.owns(p[j]));
                size_t u = TIER.usable(p[j]);
                assert_true(u >= n);
                stamp(p[j], u, al + (size_t)k * 3 + (size_t)j);
            }
            for (int j = 0; j < 3; j++) {
                assert_true(stamp_ok(p[j], TIER.usable(p[j]), al + (size_t)k * 3 + (size_t)j));
                TIER.free(p[j]);
            }
        }
    }
    /* the same alignment many times: blocks are reused, nothing leaks */
    TIER.trim();
    size_t before = committed();
    for (int i = 0; i < 2000; i++) {
        void *p = TIER.alloc(TIER.lo + 16, 4096);
        assert_non_null(p);
        assert_true(HT_ALIGNED(p, 4096));
        TIER.free(p);
    }
    TIER.trim();
    assert_committed_within(before, 4 * MIB);
    assert_valid_pool();
}

/* Interior (over-aligned) pointers: usable_size counts to the block's end,
 * free resolves them to their block, which is reused. */
static void test_aligned_interior(void **state)
{
    (void)state;
    size_t aligns[] = {128, 1024, 4096, 16384, 65536, 131072, 262144};
    int interior = 0;
    for (size_t k = 0; k < sizeof aligns / sizeof aligns[0]; k++) {
        size_t al = aligns[k];
        void *ps[64] = {0};
        for (int i = 0; i < 64; i++) {
            size_t n = TIER.lo + (size_t)i * 48;
            ps[i] = alloc_interior(n, al);
            if (ps[i] == NULL)
                break;
            assert_true(HT_ALIGNED(ps[i], al));
            uint8_t *start = block_start(ps[i]);
            hak_pool_span_t *s = hak_pool_span_of(ps[i]);
            assert_int_equal(TIER.usable(ps[i]), (size_t)(start + s->u.stride - (uint8_t *)ps[i]));
            assert_true(TIER.usable(ps[i]) >= n);
            stamp(ps[i], TIER.usable(ps[i]), (uint64_t)i + al);
            interior += start != (uint8_t *)ps[i];
        }
        for (int i = 0; i < 64 && ps[i]; i++) {
            assert_true(stamp_ok(ps[i], TIER.usable(ps[i]), (uint64_t)i + al));
            uint8_t *start = block_start(ps[i]);
            const hak_bin_t *bin = &TIER.tc()->bins[hak_pool_span_of(start)->cls];
            TIER.free(ps[i]);
            /* the block itself went to the cache (which keeps the most
             * recent blocks when it drains, unless it holds only one) */
            if (bin->max >= 2)
                assert_ptr_equal(bin->head, start);
        }
    }
    assert_true(interior > 0);
    /* through the public API where it is the cheaper placement */
    if (TIER.interior_size) {
        /* a block that happens to start aligned is returned as it is: of
         * a few consecutive ones, some must be placed inside */
        void *q[4];
        int inside = 0;
        for (int i = 0; i < 4; i++) {
            void *p = q[i] = TIER.alloc(TIER.interior_size, TIER.interior_align);
            assert_non_null(p);
            assert_true(HT_ALIGNED(p, TIER.interior_align));
            assert_true(TIER.usable(p) >= TIER.interior_size);
            inside += block_start(p) != (uint8_t *)p;
        }
        assert_true(inside > 0);
        for (int i = 0; i < 4; i++)
            TIER.free(q[i]);
    }
    assert_valid_pool();
}

/* ---------------------------------------------------------- bin growth */

/* The engine's tests (common/engine_suite.h) against this pool, with
 * blocks of POOL_ENGINE_SIZE bytes (the suite defines it). */
#include "common/engine_suite.h"
static void *engine_alloc(size_t n) { return TIER.alloc(n, 0); }
static void engine_free(void *p) { TIER.free(p); }
static void engine_trim(void) { TIER.trim(); }
static unsigned engine_class(void)
{
    unsigned c = 0;
    while (TIER.pool->t->cls[c].stride < POOL_ENGINE_SIZE)
        c++;
    return c;
}
static hak_bin_t *engine_bin(void) { return &TIER.tc()->bins[engine_class()]; }
static size_t engine_stride(void) { return TIER.pool->t->cls[engine_class()].stride; }
static uint32_t engine_cap(uint32_t start)
{
    const hak_pool_class_t *k = &TIER.pool->t->cls[engine_class()];
    uint32_t cap = TIER.pool->pr->tc_cap ? k->bin_max : k->swing_max;
    return start > cap ? start : cap;
}
static void engine_counts(size_t *refills, size_t *drains)
{
    hak_pool_stats_t s;
    TIER.stats(&s);
    *refills = s.refills;
    *drains = s.drains;
}
static const engine_tier_t ENGINE = {
    .name = "pool",
    .size = POOL_ENGINE_SIZE,
    .stride = engine_stride,
    .alloc = engine_alloc,
    .free = engine_free,
    .trim = engine_trim,
    .bin = engine_bin,
    .cap = engine_cap,
    .capped = POOL_ENGINE_CAPPED,
    .counts = engine_counts,
};

/* Blocks a refill carves at most: a 4 KiB page of them, at least one
 * (the rule, docs/design.md "Refills start small"; HAK_CARVE_BYTES). */
static uint32_t carve_page_blocks(unsigned cls)
{
    uint32_t stride = TIER.pool->t->cls[cls].stride;
    return stride < 4096 ? 4096 / stride : 1;
}

/* Slow start (hak_front_ramp, hak_central.h): a new thread's first
 * refills of a class take 1, 4, 16, 64 blocks (never more than half the
 * bound), then half the bound; its bin holds what each refill took less
 * the block returned, all of it where the blocks come from the spans'
 * free lists, fewer where a refill carves (a page of new blocks at most,
 * test_refill_carves_a_page). No batch is parked when it starts (a refill
 * takes a parked batch whole). Fails when a first refill takes half a
 * bound (the pools before their slow start: 3-4 pages of each mid class a
 * short thread touched). */
static void *ramp_worker(void *arg)
{
    (void)arg;
    enum { CAP = 256 };
    static void *v[CAP];
    size_t n = 0;
    void *p = TIER.alloc(TIER.lo, 0);
    assert_non_null(p);
    unsigned cls = hak_pool_span_of(p)->cls;
    hak_bin_t *bin = &TIER.tc()->bins[cls];
    uint32_t half = bin->max / 2 ? bin->max / 2 : 1;
    v[n++] = p;
    assert_int_equal(hak_bin_count(bin), 0); /* the first refill took one block */
    for (unsigned step = 1; step <= HAK_FRONT_RAMP_STEPS; step++) {
        uint32_t want = step < HAK_FRONT_RAMP_STEPS ? (uint32_t)1 << (2 * step) : half;
        if (want > half)
            want = half;
        assert_true(n < CAP);
        assert_non_null(v[n++] = TIER.alloc(TIER.lo, 0)); /* an empty bin: one refill */
        uint32_t got = hak_bin_count(bin) + 1, page = carve_page_blocks(cls);
        assert_true(got <= want);
        assert_true(got >= (want < page ? want : page));
        while (hak_bin_count(bin) > 0) {
            assert_true(n < CAP);
            assert_non_null(v[n++] = TIER.alloc(TIER.lo, 0));
        }
    }
    while (n > 0)
        TIER.free(v[--n]);
    TIER.thread_exit();
    return NULL;
}

/* A refill that has to carve new blocks carves at most a 4 KiB page of
 * them (at least one block; hak_central_take): a new block is written
 * (its link) when carved, so a thread that asks for a few blocks of a
 * class does not make a bin's worth of pages resident. The slow start
 * would take 4, then 16; a class of blocks of a page or more takes one.
 * Fails when a refill carves what its slow start allows (4, 16 pages of
 * a class of 8 KiB blocks). */
static void *carve_worker(void *arg)
{
    (void)arg;
    enum { N = 24 };
    void *v[N];
    size_t size = TIER.lo > 8192 ? TIER.lo : 8192; /* a class whose bins hold 4 blocks or more */
    unsigned cls = 0;
    int checked = 0;
    for (int i = 0; i < N; i++) {
        bool carves = false;
        if (i > 0) { /* the next malloc refills; will it carve? */
            hak_central_t *c = &TIER.pool->t->central[cls];
            hak_lock(&c->lock);
            carves = hak_bin_count(&TIER.tc()->bins[cls]) == 0 && c->nbatch == 0;
            for (hak_unit_t *u = c->partial; carves && u; u = u->next)
                carves = u->free == NULL;
            hak_unlock(&c->lock);
        }
        assert_non_null(v[i] = TIER.alloc(size, 0));
        memset(v[i], 1, 64);
        cls = hak_pool_span_of(v[i])->cls;
        if (carves) {
            assert_true(hak_bin_count(&TIER.tc()->bins[cls]) + 1 <= carve_page_blocks(cls));
            checked++;
        }
    }
    assert_true(checked > 0);
    for (int i = 0; i < N; i++)
        TIER.free(v[i]);
    TIER.thread_exit();
    return NULL;
}

static void test_refill_carves_a_page(void **state)
{
    (void)state;
    TIER.trim(); /* no parked batch */
    pthread_t th; /* a fresh thread: its slow start asks for 1, 4, 16 */
    assert_int_equal(pthread_create(&th, NULL, carve_worker, NULL), 0);
    pthread_join(th, NULL);
    assert_valid_pool();
}

static void test_refill_slow_start(void **state)
{
    (void)state;
    TIER.trim(); /* no parked batch */
    pthread_t th; /* a fresh thread: the slow start is once per thread */
    assert_int_equal(pthread_create(&th, NULL, ramp_worker, NULL), 0);
    pthread_join(th, NULL);
    assert_valid_pool();
}

/* A class's next span goes back to the pages of its last released one
 * (span_acquire's hints, hak_pool_hint_t) while they are free and
 * committed, whatever other class asks first: a thread forms a span of
 * class A, then one of class B, and ends (both spans go home and are
 * released); the next thread asks for B first, then A. Each block comes
 * back at its own address: the pages where the first thread wrote it.
 * Fails when placement alone decides (B took A's pages, the lowest free
 * run, and A the next: every round of threads that come and go wrote
 * blocks on pages the round before had not). */
static void *hint_worker(void *arg)
{
    size_t *sizes = arg; /* {first, second}; the blocks' addresses come back in their place */
    void *a = TIER.alloc(sizes[0], 0), *b = TIER.alloc(sizes[1], 0);
    assert_non_null(a);
    assert_non_null(b);
    memset(a, 1, 64);
    memset(b, 2, 64);
    sizes[0] = (size_t)a;
    sizes[1] = (size_t)b;
    TIER.free(a);
    TIER.free(b);
    TIER.thread_exit();
    return NULL;
}

static void test_span_reuse_same_class(void **state)
{
    (void)state;
    TIER.trim(); /* no parked batch, no block of a thread cache left */
    size_t lo = TIER.lo, hi = lo * 2 < TIER.hi ? lo * 2 : TIER.hi;
    size_t first[2] = {lo, hi}, second[2] = {hi, lo};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, hint_worker, first), 0);
    pthread_join(th, NULL);
    assert_null(hak_pool_span_of((void *)first[0])); /* both spans were released */
    assert_null(hak_pool_span_of((void *)first[1]));
    assert_int_equal(pthread_create(&th, NULL, hint_worker, second), 0);
    pthread_join(th, NULL);
    assert_ptr_equal((void *)second[1], (void *)first[0]); /* lo where it was */
    assert_ptr_equal((void *)second[0], (void *)first[1]); /* hi where it was */
    assert_valid_pool();
}

/* ---------------------------------------------------------------- trim */

static void *trim_worker(void *arg)
{
    (void)arg;
    size_t total = 0, n = 0, cap = 1 << 16;
    void **ps = malloc(cap * sizeof *ps);
    ht_rng_t r = {31337};
    while (total < TIER.trim_bytes && n < cap) {
        size_t sz = rand_size(&r);
        ps[n] = TIER.alloc(sz, 0);
        if (!ps[n])
            abort();
        memset(ps[n], 1, 16);
        total += TIER.usable(ps[n]);
        n++;
    }
    for (size_t i = n; i > 1; i--) { /* free in a scattered order */
        size_t j = (size_t)ht_range(&r, 0, i - 1);
        void *t = ps[i - 1];
        ps[i - 1] = ps[j];
        ps[j] = t;
    }
    for (size_t i = 0; i < n; i++)
        TIER.free(ps[i]);
    free(ps);
    TIER.thread_exit();
    return NULL;
}

/* A steady churn of blocks of every size of the tier (each replacement
 * frees a random live block and allocates a new size): the pages
 * committed stay in proportion to the bytes live. Freed spans' pages are
 * reused by the spans of other classes (best fit keeps the long holes
 * for long spans), and a pool that parks nothing centrally (L25) pins no
 * spans with parked blocks. The bound is what the placement and the
 * class spacing give: committed at most 1.3x the most bytes live (sizes
 * as asked, not rounded), plus 4 MiB of thread cache and chunk headers. */
static void test_churn_footprint(void **state)
{
    (void)state;
    TIER.trim();
    size_t before = committed(), nlive = TIER.churn_live, live = 0, max_live = 0, max_committed = 0;
    void **ps = calloc(nlive, sizeof *ps);
    size_t *ns = calloc(nlive, sizeof *ns);
    assert_non_null(ps);
    assert_non_null(ns);
    ht_rng_t r = {271828};
    for (size_t op = 0; op < 30 * nlive; op++) {
        size_t i = op < nlive ? op : (size_t)ht_range(&r, 0, nlive - 1);
        if (ps[i]) {
            TIER.free(ps[i]);
            live -= ns[i];
        }
        ns[i] = (size_t)ht_range(&r, TIER.lo, TIER.hi);
        ps[i] = TIER.alloc(ns[i], 0);
        assert_non_null(ps[i]);
        memset(ps[i], (int)i, 64);
        live += ns[i];
        if (live > max_live)
            max_live = live;
        if ((op & 15) == 0 && committed() - before > max_committed)
            max_committed = committed() - before;
    }
    print_message("%s: %zu blocks live, at most %zu KiB live, %zu KiB committed (%.2fx)\n", TIER.name, nlive,
                  max_live >> 10, max_committed >> 10, (double)max_committed / (double)max_live);
    assert_true((double)max_committed <= 1.3 * (double)max_live + 4.0 * MIB);
    for (size_t i = 0; i < nlive; i++)
        TIER.free(ps[i]);
    free(ps);
    free(ns);
    assert_valid_pool();
    TIER.trim();
}

/* Where the pool parks nothing (params->park false), a bin's overflow goes
 * home at once: no class has a parked batch after a thread freed many
 * more blocks than its bins hold. Where it parks, the overflow is parked. */
static void test_parking(void **state)
{
    (void)state;
    TIER.trim();
    enum { N = 64 };
    void *ps[N];
    size_t n = TIER.lo + 1;
    for (int i = 0; i < N; i++)
        assert_non_null(ps[i] = TIER.alloc(n, 0));
    for (int i = 0; i < N; i++)
        TIER.free(ps[i]);
    uint32_t parked = 0;
    for (unsigned c = 0; c < TIER.pool->pr->nclasses; c++)
        parked += __atomic_load_n(&TIER.pool->t->central[c].nbatch, __ATOMIC_RELAXED);
    if (TIER.pool->pr->park)
        assert_true(parked > 0);
    else
        assert_int_equal(parked, 0);
    TIER.trim();
}

/* Memory comes back without trim once the purge delay has passed (and
 * not before: a burst allocated again reuses the same pages), and all of
 * it with trim. */
static void test_trim(void **state)
{
    (void)state;
    TIER.trim();
    size_t before = committed();
    hak_pool_stats_t st0, st1;
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, trim_worker, NULL), 0);
    pthread_join(th, NULL);
    size_t kept = committed();
    TIER.stats(&st0);
    assert_true(kept >= before + TIER.trim_bytes / 2); /* within the delay: kept */
    /* the same burst again, twice: served from the kept pages. The first
     * burst filled fresh chunks in order; the next ones place their spans
     * among the holes the first left, so they may take a few more pages,
     * at most 1/32 more. */
    assert_int_equal(pthread_create(&th, NULL, trim_worker, NULL), 0);
    pthread_join(th, NULL);
    TIER.stats(&st1);
    size_t again = committed(), slack = kept / 32 > 2 * MIB ? kept / 32 : 2 * MIB, mapped = st0.bytes_mapped;
    print_message("%s: committed %zu KiB before, %zu KiB kept, %zu KiB after the second burst; mapped %zu -> %zu KiB\n",
                  TIER.name, before >> 10, kept >> 10, again >> 10, st0.bytes_mapped >> 10, st1.bytes_mapped >> 10);
    assert_true(st1.bytes_mapped <= st0.bytes_mapped + slack);
    assert_true(again <= kept + slack);
    assert_int_equal(pthread_create(&th, NULL, trim_worker, NULL), 0);
    pthread_join(th, NULL);
    TIER.stats(&st0);
    assert_true(st0.bytes_mapped <= mapped + slack);
    assert_true(committed() <= kept + slack);
    ht_purge_later();
    assert_valid_pool();
    assert_committed_within(before, 4 * MIB); /* no trim yet */
    /* the main thread: allocate, free, trim */
    enum { N = 256 };
    void *ps[N];
    ht_rng_t r = {5};
    for (int i = 0; i < N; i++) {
        ps[i] = TIER.alloc(rand_size(&r), 0);
        assert_non_null(ps[i]);
        memset(ps[i], 3, 16);
    }
    for (int i = 0; i < N; i++)
        TIER.free(ps[i]);
    TIER.trim();
    assert_committed_within(before, 4 * MIB);
    hak_pool_stats_t st;
    TIER.stats(&st);
    assert_true(st.chunks <= 2 + before / (2 * MIB));
    assert_valid_pool();
}

/* ------------------------------------------- the bytes before a block */

/* Two blocks q, p with q's end == p (q's last bytes are "the bytes
 * before p"). */
static int adjacent_pair(size_t n, void **qout, void **pout, void **all, int cap)
{
    for (int i = 0; i < cap; i++) {
        all[i] = TIER.alloc(n, 0);
        assert_non_null(all[i]);
    }
    for (int i = 0; i < cap; i++)
        for (int j = 0; j < cap; j++)
            if ((uint8_t *)all[i] + TIER.usable(all[i]) == (uint8_t *)all[j]) {
                *qout = all[i];
                *pout = all[j];
                return 1;
            }
    return 0;
}

/* Free routes by address, never by what lies before the block: each of
 * the 256 values of the byte before p, and a forged 16-byte AllocHeader
 * ("HAKMEM10" magic and garbage), leave free(p) correct and the
 * neighbour intact. */
static void test_bytes_before_block(void **state)
{
    (void)state;
    size_t n = TIER.lo + 8;
    void *all[32], *q = NULL, *p = NULL;
    assert_true(adjacent_pair(n, &q, &p, all, 32));
    size_t uq = TIER.usable(q);
    for (unsigned v = 0; v < 256 + 1; v++) {
        stamp(q, uq, 4242);
        if (v < 256) {
            ((uint8_t *)p)[-1] = (uint8_t)v;
        } else {
            uint64_t magic = 0x48414b4d454d3130ULL, garbage = 0xdeadbeefcafef00dULL;
            memcpy((uint8_t *)p - 16, &magic, 8);
            memcpy((uint8_t *)p - 8, &garbage, 8);
        }
        assert_true(TIER.owns(p));
        assert_true(TIER.usable(p) >= n);
        TIER.free(p);
        void *again = TIER.alloc(n, 0);
        assert_ptr_equal(again, p); /* the same block, from the cache */
        /* the neighbour kept everything but the bytes written */
        const uint8_t *b = q;
        assert_true(ht_check(b, 32, 4242));
        assert_true(TIER.owns(q));
    }
    for (int i = 0; i < 32; i++)
        TIER.free(all[i]);
    assert_valid_pool();
}

/* ---------------------------------------------------------------- fork */

static void *fork_holder(void *arg)
{
    pthread_barrier_t *b = arg;
    void *ps[32];
    for (int i = 0; i < 32; i++)
        ps[i] = TIER.alloc(TIER.lo + (size_t)i * 16, 0);
    for (int i = 0; i < 32; i++)
        TIER.free(ps[i]); /* cached by this thread */
    pthread_barrier_wait(b);
    pthread_barrier_wait(b); /* the fork happens in between */
    TIER.thread_exit();
    return NULL;
}

static void test_fork(void **state)
{
    (void)state;
    pthread_barrier_t b;
    pthread_barrier_init(&b, NULL, 2);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, fork_holder, &b), 0);
    pthread_barrier_wait(&b);
    pid_t pid = fork();
    if (pid == 0) {
        /* the child adopted the holder's cache */
        int ok = hak_pool_validate_(TIER.pool) == 0;
        void *x = TIER.alloc(TIER.lo, 0);
        ok &= x != NULL;
        TIER.free(x);
        TIER.trim();
        ok &= hak_pool_validate_(TIER.pool) == 0;
        _exit(ok ? 0 : 1);
    }
    assert_true(pid > 0);
    int st = 0;
    waitpid(pid, &st, 0);
    pthread_barrier_wait(&b);
    pthread_join(th, NULL);
    pthread_barrier_destroy(&b);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_valid_pool();
}

/* ---------------------------------------------------------- validation */

#if HAK_VALIDATION >= 1
static int g_fail_count;
static char g_fail_reason[128];
static const void *g_fail_ptr;

static void record_failure(const char *op, const char *reason, const void *p)
{
    (void)op;
    g_fail_count++;
    snprintf(g_fail_reason, sizeof g_fail_reason, "%s", reason);
    g_fail_ptr = p;
}

static void expect_report(void *p, const char *what)
{
    int before = g_fail_count;
    TIER.free(p);
    assert_int_equal(g_fail_count, before + 1);
    assert_ptr_equal(g_fail_ptr, p);
    if (strstr(g_fail_reason, what) == NULL)
        fail_msg("reason '%s' lacks '%s'", g_fail_reason, what);
}
#endif

/* magic and full: pointers into no in-use span, past a span's last block,
 * and (with no aligned block in the span) inside a block are reported. */
static void test_invalid_pointers(void **state)
{
    (void)state;
#if HAK_VALIDATION >= 1
    hak_failure_handler_t old = hak_set_failure_handler(record_failure);
    void *p = TIER.alloc(TIER.lo, 0);
    assert_non_null(p);
    hak_pool_chunk_t *ch = hak_pool_chunk_of(p);
    expect_report((uint8_t *)ch + 64, "invalid pointer");           /* the header page */
    int x;
    expect_report(&x, "invalid pointer");                            /* not the tier's */
    hak_pool_span_t *s = hak_pool_span_of(p);
    if (!s->has_aligned)
        expect_report((uint8_t *)p + 16, "invalid pointer");         /* inside a block */
    size_t tail = (size_t)s->npages * HAK_POOL_PAGE_SIZE - (size_t)s->u.capacity * s->u.stride;
    if (tail >= 16)
        expect_report(s->u.base + (size_t)s->u.capacity * s->u.stride, "invalid pointer");
    /* a free page of a chunk */
    for (unsigned i = 1; i < HAK_POOL_PAGES; i++)
        if (ch->pages[i].head == NULL && ((TIER.pool->dir[ch->slot].free_mask >> i) & 1u)) {
            expect_report((uint8_t *)ch + ((size_t)i << HAK_POOL_PAGE_SHIFT) + 256, "invalid pointer");
            break;
        }
    TIER.free(p);
    hak_set_failure_handler(old);
    assert_valid_pool();
#else
    skip();
#endif
}

/* full: a double free (of a block not reused in between) and a pointer
 * inside a block that is not what an aligned allocation returned are
 * reported; exactly the recorded interior pointers are accepted. */
static void test_full_validation(void **state)
{
    (void)state;
#if HAK_VALIDATION >= 2
    hak_failure_handler_t old = hak_set_failure_handler(record_failure);
    void *p = TIER.alloc(TIER.lo, 0);
    TIER.free(p);
    expect_report(p, "double free");
    p = TIER.alloc(TIER.lo, 0);
    expect_report((uint8_t *)p + 32, "invalid pointer");
    TIER.free(p);
    /* an aligned allocation: its pointer is accepted, its block start and
     * other interior pointers are not */
    uint8_t *q = NULL, *held[16];
    int nheld = 0;
    size_t al = TIER.hi > 65536 ? 131072 : 4096;
    for (int i = 0; i < 16 && (q == NULL || block_start(q) == q); i++) {
        if (q)
            held[nheld++] = q; /* a block that starts aligned: kept, so that the next is another */
        q = alloc_interior(TIER.lo + 16, al);
        assert_non_null(q);
    }
    while (nheld > 0)
        TIER.free(held[--nheld]);
    uint8_t *start = block_start(q);
    assert_true(start != q);
    expect_report(start, "invalid pointer");       /* the block start was not returned */
    expect_report(q + 16, "invalid pointer");       /* nor another interior pointer */
    int before = g_fail_count;
    TIER.free(q);                                   /* exactly the returned one is */
    assert_int_equal(g_fail_count, before);
    expect_report(q, "double free");
    /* the block reused for a plain allocation: its start is valid again */
    void *again = TIER.alloc(hak_pool_span_of(start)->u.stride, 0);
    assert_ptr_equal(again, start);
    TIER.free(again);
    hak_set_failure_handler(old);
    assert_valid_pool();
#else
    skip();
#endif
}

#if HAK_VALIDATION >= 2
static void die_double_free(void *arg)
{
    (void)arg;
    void *p = TIER.alloc(TIER.lo, 0);
    TIER.free(p);
    TIER.free(p);
}
#endif

/* full: the default handler reports on stderr and aborts. */
static void test_death_double_free(void **state)
{
    (void)state;
#if HAK_VALIDATION >= 2
    char out[512];
    int st = ht_run_child(die_double_free, NULL, out, sizeof out);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "hakmem: free(): double free at 0x"));
#else
    skip();
#endif
}

/* ------------------------------------------- write after free (links) */

/* A free block's first word is its free-list link. A write after free
 * into it must not steer a later malloc (docs/reliability.md, "Misuse"):
 * at full the link is encoded with the per-process secret and checked, so
 * a corrupted one is reported "corrupted free list" and the rest of that
 * list is dropped; magic and none store the pointer itself. Each case runs
 * in a child (at magic it may fault), with a handler that returns. */
static int g_waf_reports;
static char g_waf_reason[128], g_waf_op[16];
static uint8_t g_waf_static[64] __attribute__((aligned(64)));

static void waf_handler(const char *op, const char *reason, const void *p)
{
    (void)p;
    g_waf_reports++;
    snprintf(g_waf_reason, sizeof g_waf_reason, "%s", reason);
    snprintf(g_waf_op, sizeof g_waf_op, "%s", op);
}

/* Exactly `n` reports so far, the last "corrupted free list" from `op`. */
static bool waf_reported(int n, const char *op)
{
    return g_waf_reports == n && strstr(g_waf_reason, "corrupted free list") != NULL &&
           strcmp(g_waf_op, op) == 0;
}

/* In a child: a fault kills it (cmocka's handlers, inherited, would
 * longjmp back into the runner), and so does a hang. */
static void waf_child_defaults(void)
{
    static const int sigs[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    alarm(30);
    hak_set_failure_handler(waf_handler);
}

/* After a report the pool goes on: 64 blocks, none of them one of `keep`
 * (blocks still with the user) or each other, all owned and writable. */
static bool waf_still_works(void *const *keep, size_t nkeep)
{
    enum { N = 64 };
    void *v[N];
    bool ok = true;
    for (int i = 0; i < N; i++) {
        v[i] = TIER.alloc(TIER.lo, 0);
        ok &= v[i] != NULL && TIER.owns(v[i]) && !in_set(keep, nkeep, v[i]) && !in_set(v, (size_t)i, v[i]);
        if (v[i])
            memset(v[i], 0x77, TIER.lo);
    }
    for (int i = 0; i < N; i++)
        TIER.free(v[i]);
    return ok;
}

enum { WAF_LIVE, WAF_FORGED, WAF_JUNK, WAF_STATIC };

/* The thread cache's list is p -> q -> ...; the user writes into p's
 * link after freeing it: the address of a live block (WAF_FORGED: encoded
 * as a link would be, i.e. by someone who knows the secret), junk, or the
 * address of static data; then mallocs twice. Exit status: 10 caught (one
 * report from malloc, p handed out, then a block that is neither the live
 * one nor the written address, and the pool goes on), 20 not caught (the
 * second malloc returned the written address), 3x anything else. */
static void waf_bin_child(void *arg)
{
    int kind = *(const int *)arg;
    waf_child_defaults();
    void *live = TIER.alloc(TIER.lo, 0), *q = TIER.alloc(TIER.lo, 0), *p = TIER.alloc(TIER.lo, 0);
    memset(live, 0x11, TIER.lo);
    TIER.free(q);
    TIER.free(p); /* the bin: p -> q -> ... */
    void *target = kind == WAF_JUNK     ? (void *)(uintptr_t)0xA5A5A5A5A5A5A5A5ULL
                   : kind == WAF_STATIC ? (void *)g_waf_static
                                        : live;
    if (kind == WAF_FORGED)
        hak_link_set(p, target);
    else
        memcpy(p, &target, sizeof target); /* the write after free */
    void *a = TIER.alloc(TIER.lo, 0);      /* p again: its link is read */
    void *b = TIER.alloc(TIER.lo, 0);
    if (a != p)
        _exit(30);
    if (b == target)
        _exit(g_waf_reports ? 31 : 20);
    if (!waf_reported(1, "malloc"))
        _exit(32);
    if (b == NULL || b == live || b == a || !TIER.owns(b))
        _exit(33);
    void *keep[] = {live, a, b};
    if (!waf_still_works(keep, 3) || g_waf_reports != 1)
        _exit(34);
    TIER.free(live);
    TIER.free(a);
    TIER.free(b);
    _exit(g_waf_reports == 1 ? 10 : 35);
}

static int waf_run(void (*child)(void *), int kind)
{
    char out[512];
    int st = ht_run_child(child, &kind, out, sizeof out);
    if (HAK_VALIDATION >= 2 && (!WIFEXITED(st) || WEXITSTATUS(st) != 10))
        print_message("%s child (case %d): %s %d; stderr: %s\n", TIER.name, kind,
                      WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st), out);
    return st;
}

/* The bin case `kind` ends as the build's level says: exit status 10
 * (caught) at full; below, exit status `below`, or killed by a signal
 * when `below` is -1. */
static void waf_expect(int kind, int below)
{
    int st = waf_run(waf_bin_child, kind);
    if (HAK_VALIDATION < 2 && below < 0) {
        assert_true(WIFSIGNALED(st));
        return;
    }
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), HAK_VALIDATION >= 2 ? 10 : below);
}

/* (a) the address of another live block in a freed block's link: at full
 * reported, and the live block is not handed out a second time (not even
 * through a correctly encoded link: the target must be a free block); at
 * magic and none it is (docs/reliability.md). */
static void test_write_after_free_live(void **state)
{
    (void)state;
    waf_expect(WAF_LIVE, 20);
    if (HAK_VALIDATION >= 2)
        waf_expect(WAF_FORGED, 20);
}

/* (b) junk in the link: at full reported, no fault; at magic and none the
 * second malloc follows it and faults. */
static void test_write_after_free_junk(void **state)
{
    (void)state;
    waf_expect(WAF_JUNK, -1);
}

/* (c) the address of static data in the link: at full reported, never
 * handed out; at magic and none malloc returns it. */
static void test_write_after_free_static(void **state)
{
    (void)state;
    waf_expect(WAF_STATIC, 20);
}

#if HAK_VALIDATION >= 2
static void waf_junk(void *b)
{
    uint64_t junk = 0xA5A5A5A5A5A5A5A5ULL;
    memcpy(b, &junk, sizeof junk);
}

/* The other places a link is followed, at full: a bin's drain (free over
 * the bound walks the bin), the flush at thread exit (every bin home), and
 * a span's own free list (malloc without a cache takes from the spans).
 * Exit status 10: each reported once, from the call that followed it, no
 * fault, no block handed out twice. */
static void waf_lists_child(void *arg)
{
    (void)arg;
    waf_child_defaults();
    enum { N = 2 * 32 + 2 };
    void *v[N];
    TIER.trim(); /* the bounds at their start */
    for (int i = 0; i < N; i++)
        v[i] = TIER.alloc(TIER.lo, 0);
    unsigned cls = hak_pool_span_of(v[0])->cls;
    hak_bin_t *bin = &TIER.tc()->bins[cls];
    if (bin->max > 32)
        _exit(30);
    /* 1. Free until the bin is full (at its class's bound: a capped
     * pool's bin borrows it free by free), corrupt its head's link, free
     * one more: the drain walks into the corrupted link. */
    int i = 0;
    while (i < N - 1 && hak_bin_count(bin) < TIER.pool->t->cls[cls].bin_max)
        TIER.free(v[i++]);
    if (hak_bin_count(bin) != bin->max)
        _exit(31);
    waf_junk(bin->head);
    TIER.free(v[i++]);
    if (!waf_reported(1, "free"))
        _exit(32);
    if (!waf_still_works(v + i, (size_t)(N - i)) || g_waf_reports != 1)
        _exit(33);
    /* 2. A corrupted link in the bin when the thread's cache goes home. */
    TIER.free(v[i++]);
    waf_junk(bin->head);
    TIER.thread_exit();
    if (!waf_reported(2, "free"))
        _exit(34);
    /* 3. Cacheless now: blocks come from the spans' free lists. Two blocks
     * in a row from one span x, y; x freed is its span's first free block
     * and its span the class's first partial one. */
    hak_central_t *c = &TIER.pool->t->central[cls];
    void *x = TIER.alloc(TIER.lo, 0), *y = TIER.alloc(TIER.lo, 0);
    for (int k = 0; k < 256 && hak_pool_span_of(x) != hak_pool_span_of(y); k++) {
        x = y;
        y = TIER.alloc(TIER.lo, 0);
    }
    hak_pool_span_t *s = hak_pool_span_of(x);
    TIER.free(x);
    if (c->partial != &s->u || s->u.free != x)
        _exit(35);
    waf_junk(x);
    void *a = TIER.alloc(TIER.lo, 0); /* x again: its link is read */
    if (a != x || !waf_reported(3, "malloc"))
        _exit(36);
    void *keep[N + 2];
    size_t nkeep = 0;
    for (int k = i; k < N; k++)
        keep[nkeep++] = v[k];
    keep[nkeep++] = y;
    keep[nkeep++] = a;
    if (!waf_still_works(keep, nkeep) || g_waf_reports != 3)
        _exit(37);
    _exit(10);
}
#endif

static void test_write_after_free_lists(void **state)
{
    (void)state;
#if HAK_VALIDATION >= 2
    int st = waf_run(waf_lists_child, 0);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 10);
#else
    skip(); /* magic and none: the three cases above show it */
#endif
}

/* The tier's descriptor, as dispatch's whole-heap jobs use it. */
static void test_descriptor(void **state)
{
    (void)state;
    const hak_tier_vtable_t *vt = TIER.vt;
    assert_string_equal(vt->name, TIER.name);
    assert_int_equal(vt->flags, 0);
    assert_int_equal(vt->max_size, TIER.hi);
    void *p = vt->alloc(TIER.lo, 0);
    assert_non_null(p);
    assert_true(vt->owns(p));
    assert_true(vt->bytes_in_use() >= vt->usable_size(p));
    hak_tier_stats_t st;
    hak_pool_stats_t ps;
    vt->stats(&st);
    TIER.stats(&ps);
    assert_int_equal(st.bytes_mapped, ps.bytes_mapped);
    assert_true(vt->committed_peak() >= st.bytes_committed);
    hak_tier_counter_t c[HAK_TIER_COUNTERS_MAX];
    assert_int_equal(vt->counters(c), 8);
    assert_string_equal(c[0].label, "chunks");
    assert_int_equal(c[0].value, ps.chunks);
    assert_true(vt->validate());
    vt->free(p);
    vt->flush();
    vt->trim();
    assert_true(vt->validate());
}

#define POOL_SUITE_TESTS                                  \
    cmocka_unit_test(test_descriptor),                    \
    cmocka_unit_test(test_classes),                       \
    cmocka_unit_test(test_alignment_usable),              \
    cmocka_unit_test(test_no_overlap_churn),              \
    cmocka_unit_test(test_random_model),                  \
    cmocka_unit_test(test_cross_thread_free),             \
    cmocka_unit_test(test_thread_churn),                  \
    cmocka_unit_test(test_aligned),                       \
    cmocka_unit_test(test_aligned_interior),       \
    cmocka_unit_test(test_refill_slow_start),             \
    cmocka_unit_test(test_refill_carves_a_page),          \
    cmocka_unit_test(test_span_reuse_same_class),         \
    cmocka_unit_test(test_trim),                          \
    cmocka_unit_test(test_churn_footprint),               \
    cmocka_unit_test(test_parking),                       \
    cmocka_unit_test(test_bytes_before_block),            \
    cmocka_unit_test(test_fork),                          \
    cmocka_unit_test(test_invalid_pointers),              \
    cmocka_unit_test(test_full_validation),               \
    cmocka_unit_test(test_death_double_free),             \
    cmocka_unit_test(test_write_after_free_live),         \
    cmocka_unit_test(test_write_after_free_junk),         \
    cmocka_unit_test(test_write_after_free_static),       \
    cmocka_unit_test(test_write_after_free_lists)

#endif
