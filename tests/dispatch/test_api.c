// SPDX-License-Identifier: MIT
/* Suite `dispatch`: the drop-in API with glibc 2.36's semantics, through
 * the real names (this program links libhakmem.so, so malloc is hakmem's). */
#include "common/hak_test.h"

#include <errno.h>
#include <stddef.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sched.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hakmem/hakmem.h"

/* realloc through a pointer the compiler cannot see through: the tests use
 * a block after a realloc that failed, which gcc's -Wuse-after-free cannot
 * know is legitimate. */
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;
static void *(*volatile calloc_v)(size_t, size_t) = calloc;
/* An opaque copy of x: the compiler cannot check or assume an alignment
 * passed through it (the tests pass invalid ones on purpose). */
static size_t opaque(size_t x)
{
    volatile size_t v = x;
    return v;
}

/* One size of each tier and its boundaries. */
static const size_t k_sizes[] = {0, 1, 15, 16, 17, 100, 1000, 1023, 1024, 1025, 1032, 1094, 4096, 8000,
                                 32767, 32768, 32769, 100000, 1 << 19, (1 << 20) - 1, 1 << 20,
                                 (1 << 20) + 1, 3 << 20};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

static void test_malloc_every_tier(void **state)
{
    (void)state;
    void *p[NSIZES];
    for (size_t i = 0; i < NSIZES; i++) {
        p[i] = malloc(k_sizes[i]);
        assert_non_null(p[i]);
        assert_true(HT_ALIGNED(p[i], 16));
        size_t u = malloc_usable_size(p[i]);
        assert_true(u >= k_sizes[i]);
        assert_true(hak_owner(p[i]) != HAK_TIER_NONE);
        memset(p[i], (int)i, u); /* usable bytes are writable */
    }
    for (size_t i = 0; i < NSIZES; i++) {
        size_t u = malloc_usable_size(p[i]);
        for (size_t k = 0; k < u; k += 97)
            assert_int_equal(((uint8_t *)p[i])[k], (uint8_t)i);
        free(p[i]);
    }
    /* every block is owned by the tier its size goes to */
    for (size_t i = 0; i < NSIZES; i++) {
        void *q = malloc(k_sizes[i]);
        assert_int_equal(hak_owner(q), hak_tier_for(k_sizes[i]));
        free(q);
    }
    /* tier routing as documented, in a build with every tier */
    if (strstr(hak_build_options(), "tiers=tiny,mid,l25,large")) {
        assert_int_equal(hak_tier_for(1), HAK_TIER_TINY);
        assert_int_equal(hak_tier_for(1040), HAK_TIER_MID);
        assert_int_equal(hak_tier_for(32768), HAK_TIER_MID);
        assert_int_equal(hak_tier_for(32769), HAK_TIER_L25);
        assert_int_equal(hak_tier_for(1 << 20), HAK_TIER_L25);
        assert_int_equal(hak_tier_for((1 << 20) + 1), HAK_TIER_LARGE);
    }
}

static void test_sizes_beyond_ptrdiff(void **state)
{
    (void)state;
    size_t huge[] = {(size_t)PTRDIFF_MAX + 1, SIZE_MAX, SIZE_MAX - 15, (size_t)PTRDIFF_MAX - 8};
    for (int i = 0; i < 4; i++) {
        errno = 0;
        assert_null(malloc(huge[i]));
        assert_int_equal(errno, ENOMEM);
        errno = 0;
        assert_null(memalign(64, huge[i]));
        assert_int_equal(errno, ENOMEM);
        void *p = malloc(10);
        errno = 0;
        assert_null(realloc_v(p, huge[i]));
        assert_int_equal(errno, ENOMEM);
        free(p);
    }
}

static void test_calloc_zero(void **state)
{
    (void)state;
    errno = 0;
    assert_null(calloc_v(SIZE_MAX / 2, 3));
    assert_int_equal(errno, ENOMEM);
    errno = 0;
    assert_null(calloc_v((size_t)1 << 32, (size_t)1 << 32));
    assert_int_equal(errno, ENOMEM);
    for (size_t i = 0; i < NSIZES; i++) {
        /* dirty a block of the size, free it, calloc it back: zeroed */
        void *d = malloc(k_sizes[i]);
        memset(d, 0xFF, malloc_usable_size(d));
        free(d);
        uint8_t *p = calloc(1, k_sizes[i]);
        assert_non_null(p);
        for (size_t k = 0; k < k_sizes[i]; k++)
            assert_int_equal(p[k], 0);
        free(p);
    }
    void *z = calloc(0, 10);
    assert_non_null(z);
    free(z);
}

/* Pages of [p, p + n) resident (mincore). */
static size_t resident_pages(const void *p, size_t n)
{
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)p & ~(ps - 1), hi = ((uintptr_t)p + n + ps - 1) & ~(ps - 1);
    unsigned char vec[1024];
    assert_true((hi - lo) / ps <= sizeof vec);
    assert_int_equal(mincore((void *)lo, hi - lo, vec), 0);
    size_t r = 0;
    for (size_t i = 0; i < (hi - lo) / ps; i++)
        r += vec[i] & 1;
    return r;
}

/* calloc from a page up: a block never carved before, from a span formed
 * on decommitted pages, is zero already and is not written
 * (hak_pool_alloc_zero_), so its pages stay out of the RSS until the
 * program writes them, as glibc's fresh chunks do; one written before is
 * cleared (test_calloc_zero, and below). Fails when calloc clears every
 * block of the mid and L25 sizes (every page of it made resident). */
static void test_calloc_fresh_untouched(void **state)
{
    (void)state;
    static const size_t sizes[] = {24000, 700000}; /* mid, L25 */
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        malloc_trim(0); /* every free page decommitted: the next span is formed on zero pages */
        uint8_t *p = calloc(1, sizes[i]);
        assert_non_null(p);
        /* a large block (a build without the pools) has its header on its first page */
        assert_true(resident_pages(p, sizes[i]) <= (hak_owner(p) == HAK_TIER_LARGE ? 1u : 0u));
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(p[k], 0);
        memset(p, 0xA5, sizes[i]);
        free(p);
        uint8_t *q = calloc(1, sizes[i]); /* a written block back: cleared */
        assert_non_null(q);
        for (size_t k = 0; k < sizes[i]; k++)
            assert_int_equal(q[k], 0);
        free(q);
    }
}

static void test_realloc_tiers(void **state)
{
    (void)state;
    /* grow through every tier, then shrink back, contents kept */
    uint8_t *p = malloc(1);
    p[0] = 0x5A;
    size_t have = 1;
    for (size_t i = 1; i < NSIZES; i++) {
        size_t n = k_sizes[i];
        if (n < have)
            continue;
        p = realloc(p, n);
        assert_non_null(p);
        assert_true(HT_ALIGNED(p, 16));
        for (size_t k = 1; k < have; k++)
            assert_int_equal(p[k], (uint8_t)(k * 7));
        for (size_t k = have; k < n; k++)
            p[k] = (uint8_t)(k * 7);
        if (have == 1)
            assert_int_equal(p[0], 0x5A);
        have = n > 1 ? n : have;
    }
    for (size_t i = NSIZES; i-- > 1;) {
        p = realloc(p, k_sizes[i]);
        assert_non_null(p);
        for (size_t k = 1; k < k_sizes[i]; k += 13)
            assert_int_equal(p[k], (uint8_t)(k * 7));
    }
    free(p);
    /* realloc(NULL, 0) returns a pointer; realloc(p, 0) frees, returns NULL */
    void *q = realloc(NULL, 0);
    assert_non_null(q);
    assert_null(realloc(q, 0));
    /* a realloc that cannot grow leaves the block intact */
    uint8_t *r = malloc(100);
    memset(r, 0x33, 100);
    errno = 0;
    assert_null(realloc_v(r, (size_t)1 << 50));
    assert_int_equal(errno, ENOMEM);
    for (int k = 0; k < 100; k++)
        assert_int_equal(r[k], 0x33);
    free(r);
    /* reallocarray overflow */
    void *a = malloc(8);
    errno = 0;
    assert_null(reallocarray_v(a, SIZE_MAX / 2, 4));
    assert_int_equal(errno, ENOMEM);
    a = reallocarray_v(a, 10, 10);
    assert_non_null(a);
    assert_true(malloc_usable_size(a) >= 100);
    free(a);
}

static void test_aligned(void **state)
{
    (void)state;
    /* posix_memalign: EINVAL for non-powers of two and < sizeof(void *),
     * *memptr untouched */
    size_t bad[] = {0, 1, 2, 4, 3, 24, 48, 100};
    for (int i = 0; i < 8; i++) {
        void *sentinel = (void *)0x1234;
        assert_int_equal(posix_memalign(&sentinel, bad[i], 16), EINVAL);
        assert_ptr_equal(sentinel, (void *)0x1234);
    }
    void *sentinel = (void *)0x1234;
    assert_int_equal(posix_memalign(&sentinel, 64, SIZE_MAX - 100), ENOMEM);
    assert_ptr_equal(sentinel, (void *)0x1234);
    for (size_t a = 8; a <= ((size_t)4 << 20); a <<= 1) { /* 4 MiB: also a fallback block's limit */
        for (size_t i = 0; i < NSIZES; i++) {
            void *p = NULL;
            int saved = errno = 77;
            assert_int_equal(posix_memalign(&p, a, k_sizes[i]), 0);
            assert_int_equal(errno, saved);
            assert_true(HT_ALIGNED(p, a));
            assert_true(HT_ALIGNED(p, 16));
            assert_true(malloc_usable_size(p) >= k_sizes[i]);
            memset(p, 1, k_sizes[i]);
            free(p);
        }
    }
    /* memalign / aligned_alloc: glibc 2.36 rounds a non-power-of-two up
     * (the alignments go through opaque(): a compiler that knows these
     * functions would otherwise reject or assume the invalid ones) */
    void *p = memalign(opaque(24), 10);
    assert_true(HT_ALIGNED(p, 32));
    free(p);
    p = aligned_alloc(opaque(48), 100);
    assert_true(HT_ALIGNED(p, 64));
    free(p);
    p = aligned_alloc(opaque(3000), 5000);
    assert_true(HT_ALIGNED(p, 4096));
    free(p);
    errno = 0;
    assert_null(memalign(opaque(SIZE_MAX / 2 + 2), 16));
    assert_int_equal(errno, EINVAL);
    errno = 0;
    assert_null(aligned_alloc(opaque(SIZE_MAX), 16));
    assert_int_equal(errno, EINVAL);
    /* aligned_alloc(64, 64) is served by tiny (when it is built) */
    p = aligned_alloc(64, 64);
    assert_true(HT_ALIGNED(p, 64));
    assert_int_equal(hak_owner(p), hak_tier_for(64));
    free(p);
    /* valloc / pvalloc */
    size_t ps = (size_t)sysconf(_SC_PAGESIZE);
    p = valloc(100);
    assert_true(HT_ALIGNED(p, ps));
    assert_true(malloc_usable_size(p) >= 100);
    free(p);
    p = pvalloc(100);
    assert_true(HT_ALIGNED(p, ps));
    assert_true(malloc_usable_size(p) >= ps);
    memset(p, 2, ps);
    free(p);
    p = pvalloc(0);
    assert_non_null(p);
    assert_true(malloc_usable_size(p) >= ps);
    free(p);
    errno = 0;
    assert_null(pvalloc(SIZE_MAX - 10));
    assert_int_equal(errno, ENOMEM);
}

static void test_free_keeps_errno(void **state)
{
    (void)state;
    for (size_t i = 0; i < NSIZES; i++) {
        void *p = malloc(k_sizes[i]);
        errno = 4321;
        free(p);
        assert_int_equal(errno, 4321);
    }
    errno = 99;
    free(NULL);
    assert_int_equal(errno, 99);
    /* C23 sized frees and glibc's cfree */
    free_sized(malloc(100), 100);
    free_aligned_sized(aligned_alloc(256, 512), 256, 512);
}

/* usable size is exact: blocks packed by usable size never overlap */
static void test_usable_no_overlap(void **state)
{
    (void)state;
    enum { N = 3000 };
    static uint8_t *p[N];
    static size_t u[N];
    ht_rng_t r = {99};
    for (int i = 0; i < N; i++) {
        size_t n = (ht_rand(&r) & 7) ? ht_range(&r, 0, 2048) : ht_range(&r, 0, 200000);
        p[i] = malloc(n);
        u[i] = malloc_usable_size(p[i]);
        ht_fill(p[i], u[i], (uint64_t)i);
    }
    for (int i = 0; i < N; i++) {
        assert_true(ht_check(p[i], u[i], (uint64_t)i));
        free(p[i]);
    }
}

/* ------------------------------------------------------------ threads */

static void *only_frees(void *arg)
{
    void **v = arg;
    for (int i = 0; i < 1000; i++)
        free(v[i]);
    return NULL;
}

static void *first_call_realloc(void *arg)
{
    (void)arg;
    char *p = realloc(NULL, 50);
    memset(p, 1, 50);
    p = realloc(p, 5000);
    assert_int_equal(p[49], 1);
    free(p);
    return NULL;
}

static pthread_key_t g_late_key;
static void late_destructor(void *arg)
{
    /* runs after hakmem's exit hook (its key was created first) */
    free(arg);
    void *p = malloc(64);
    free(p);
}

static void *frees_late(void *arg)
{
    (void)arg;
    void *keep = malloc(40);
    pthread_setspecific(g_late_key, malloc(100));
    free(keep);
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    void *v[1000];
    for (int i = 0; i < 1000; i++)
        v[i] = malloc((size_t)(i % 300) * 16 + 8);
    pthread_t t;
    pthread_create(&t, NULL, only_frees, v);
    pthread_join(t, NULL);
    pthread_create(&t, NULL, first_call_realloc, NULL);
    pthread_join(t, NULL);
    pthread_key_create(&g_late_key, late_destructor);
    hak_trim(0);
    hak_stats_t before, after;
    hak_get_stats(&before);
    for (int i = 0; i < 300; i++) {
        pthread_create(&t, NULL, frees_late, NULL);
        pthread_join(t, NULL);
    }
    hak_trim(0);
    hak_get_stats(&after);
    assert_true(after.committed[HAK_TIER_TINY] <= before.committed[HAK_TIER_TINY] + ((size_t)1 << 20));
}

/* Large blocks through the real names while other threads map and unmap:
 * owners grow their buffers by a few bytes (realloc's lock-free keep
 * test), sometimes by pages (mremap), ask malloc_usable_size, free and
 * allocate again; mappers hold up to 150 blocks each, so the large
 * registry resizes under the owners' reads. Contents survive, and nothing
 * is reported (at validation=full a report would abort). */
enum { LR_OWNERS = 2, LR_MAPPERS = 2, LR_OPS = 3000, LR_MAP = 150, LR_WAVES = 4 };

static void *lr_owner(void *arg)
{
    uint64_t seed = (uint64_t)(uintptr_t)arg;
    size_t size = ((size_t)1 << 20) + 1;
    unsigned char *p = malloc(size);
    if (p == NULL)
        return (void *)1;
    memset(p, 0x5a, 64);
    p[size - 1] = (unsigned char)size;
    for (int op = 0; op < LR_OPS; op++) {
        seed = seed * 6364136223846793005u + 1442695040888963407u;
        size_t step = (seed >> 60) == 0 ? 8192 + (size_t)(seed >> 40) % 65536 : 1 + (size_t)(seed >> 50) % 64;
        size_t ns = size + step > ((size_t)3 << 20) ? ((size_t)1 << 20) + step : size + step;
        unsigned char *q = realloc_v(p, ns);
        if (q == NULL)
            return (void *)2;
        for (int i = 0; i < 64; i++)
            if (q[i] != 0x5a)
                return (void *)3;
        if (ns >= size && q[size - 1] != (unsigned char)size)
            return (void *)4; /* the last byte written before the realloc */
        p = q;
        size = ns;
        p[size - 1] = (unsigned char)size;
        if (malloc_usable_size(p) < size)
            return (void *)5;
        if ((seed >> 56) == 7) {
            free(p);
            size = ((size_t)1 << 20) + 1;
            p = malloc(size);
            if (p == NULL)
                return (void *)6;
            memset(p, 0x5a, 64);
            p[size - 1] = (unsigned char)size;
        }
    }
    free(p);
    return NULL;
}

static void *lr_mapper(void *arg)
{
    (void)arg;
    unsigned char *p[LR_MAP];
    for (int wave = 0; wave < LR_WAVES; wave++) {
        for (int i = 0; i < LR_MAP; i++) {
            p[i] = malloc(((size_t)1 << 20) + 1 + (size_t)i * 4096);
            if (p[i] == NULL)
                return (void *)1;
            p[i][0] = (unsigned char)i;
        }
        for (int i = 0; i < LR_MAP; i++) {
            if (p[i][0] != (unsigned char)i || malloc_usable_size(p[i]) < ((size_t)1 << 20) + 1 + (size_t)i * 4096)
                return (void *)2;
            free(p[i]);
        }
    }
    return NULL;
}

static void test_large_lookups_race(void **state)
{
    (void)state;
    pthread_t th[LR_OWNERS + LR_MAPPERS];
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        assert_int_equal(pthread_create(&th[t], NULL, t < LR_OWNERS ? lr_owner : lr_mapper,
                                        (void *)(uintptr_t)(t * 104729 + 11)), 0);
    void *rv[LR_OWNERS + LR_MAPPERS];
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        pthread_join(th[t], &rv[t]);
    for (int t = 0; t < LR_OWNERS + LR_MAPPERS; t++)
        assert_int_equal((uintptr_t)rv[t], 0);
}

static void *short_lived(void *arg)
{
    (void)arg;
    void *p[8];
    for (int i = 0; i < 8; i++)
        p[i] = malloc((size_t)16 << i);
    for (int i = 0; i < 8; i++)
        free(p[i]);
    return NULL;
}

static void test_ten_thousand_threads(void **state)
{
    (void)state;
    size_t rss0 = ht_rss();
    for (int i = 0; i < 10000; i += 8) {
        pthread_t t[8];
        for (int k = 0; k < 8; k++)
            assert_int_equal(pthread_create(&t[k], NULL, short_lived, NULL), 0);
        for (int k = 0; k < 8; k++)
            pthread_join(t[k], NULL);
    }
    size_t rss1 = ht_rss();
    assert_true(rss1 <= rss0 + ((size_t)16 << 20));
}

/* --------------------------------------------------------------- fork */

static volatile int g_stop;
static int g_started;
static void *allocator_thread(void *arg)
{
    (void)arg;
    ht_rng_t r = {(uint64_t)(uintptr_t)&r};
    void *slot[64] = {0};
    free(malloc(16)); /* this thread now has a tiny cache */
    __atomic_fetch_add(&g_started, 1, __ATOMIC_RELEASE);
    while (!g_stop) {
        int i = (int)(ht_rand(&r) % 64);
        free(slot[i]);
        slot[i] = malloc(ht_range(&r, 1, 70000));
    }
    for (int i = 0; i < 64; i++)
        free(slot[i]);
    return NULL;
}

static int g_prepare_mallocs;
static void prepare_mallocs(void)
{
    void *p = malloc(100);
    void *q = malloc(50000);
    free(p);
    free(q);
    g_prepare_mallocs++;
}

static void test_fork(void **state)
{
    (void)state;
    pthread_atfork(prepare_mallocs, NULL, NULL); /* registered before any hakmem fork use here */
    pthread_t t[2];
    g_stop = 0;
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, allocator_thread, NULL);
    void *parent_blocks[4] = {malloc(10), malloc(2000), malloc(100000), malloc(2 << 20)};
    while (__atomic_load_n(&g_started, __ATOMIC_ACQUIRE) < 2)
        sched_yield();
    int has_tiny = hak_tier_for(1) == HAK_TIER_TINY;
    hak_stats_t ts;
    hak_get_stats(&ts);
    int caches_ok = !has_tiny || ts.thread_caches >= 3; /* this thread and the two allocating ones */
    for (int round = 0; round < 100; round++) {
        if (round == 50)
            pthread_atfork(prepare_mallocs, NULL, NULL); /* and one after */
        pid_t pid = fork();
        if (pid == 0) {
            /* the caches of the parent's other threads were adopted */
            hak_stats_t cs;
            hak_get_stats(&cs);
            if (has_tiny && cs.thread_caches != 1)
                _exit(3);
            for (int i = 0; i < 4; i++)
                free(parent_blocks[i]);
            void *v[100];
            for (int i = 0; i < 100; i++)
                v[i] = malloc((size_t)i * 700);
            for (int i = 0; i < 100; i++)
                free(v[i]);
            _exit(0);
        }
        assert_true(pid > 0);
        int st;
        waitpid(pid, &st, 0);
        assert_true(WIFEXITED(st));
        assert_int_equal(WEXITSTATUS(st), 0);
    }
    g_stop = 1;
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 4; i++)
        free(parent_blocks[i]);
    assert_true(caches_ok);
    assert_true(g_prepare_mallocs >= 100);
}

/* ------------------------------------------------------ introspection */

/* malloc_trim reaches every tier built (dispatch loops over the tiers'
 * descriptors): the freed blocks of each, in the thread's cache, the
 * central lists, free slabs and spans or the large tier's cache of
 * mappings, go back to the OS, and the tier's committed bytes fall. */
static void test_trim_reaches_every_tier(void **state)
{
    (void)state;
    static const size_t sizes[] = {100, 8000, 200000, (size_t)3 << 20};
    static void *v[20000];
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t size = sizes[k], n = ((size_t)4 << 20) / size;
        int tier = hak_tier_for(size);
        if (tier == HAK_TIER_SYSTEM)
            continue;
        if (n > 20000)
            n = 20000;
        if (n < 4)
            n = 4;
        for (size_t i = 0; i < n; i++) {
            v[i] = malloc(size);
            assert_non_null(v[i]);
            memset(v[i], 1, size);
        }
        for (size_t i = 0; i < n; i++)
            free(v[i]);
        hak_stats_t before, after;
        hak_get_stats(&before);
        malloc_trim(0);
        hak_get_stats(&after);
        print_message("%zu B (tier %d): committed %zu KiB before malloc_trim, %zu KiB after\n", size, tier,
                      before.committed[tier] >> 10, after.committed[tier] >> 10);
        assert_true(after.committed[tier] < before.committed[tier]);
    }
}

static void test_trim_and_info(void **state)
{
    (void)state;
    hak_trim(0);
    hak_stats_t s0, s1;
    hak_get_stats(&s0);
    enum { N = 20000 };
    static void *v[N];
    for (int i = 0; i < N; i++)
        v[i] = malloc((size_t)(i % 64) * 500 + 1);
    struct mallinfo2 mi = mallinfo2();
    assert_true(mi.arena + mi.hblkhd > (size_t)100 << 20);
    /* in use: at least the bytes of the blocks in mi.arena (the tiny, mid
     * and L25 tiers'; large blocks are mmapped, counted in hblkhd) */
    size_t small = 0;
    for (int i = 0; i < N; i++) {
        size_t n = (size_t)(i % 64) * 500 + 1;
        int tier = hak_tier_for(n);
        small += tier == HAK_TIER_TINY || tier == HAK_TIER_MID || tier == HAK_TIER_L25 ? n : 0;
    }
    assert_true(mi.uordblks >= small);
    assert_true(mi.uordblks <= mi.arena);
    assert_true(mi.fordblks == mi.arena - mi.uordblks);
    for (int i = 0; i < N; i++)
        free(v[i]);
    struct mallinfo2 after = mallinfo2();
    assert_true(after.uordblks + small <= mi.uordblks); /* all of it came back */
    malloc_trim(0);
    hak_get_stats(&s1);
    size_t c0 = 0, c1 = 0;
    for (int t = 0; t < 6; t++) {
        c0 += s0.committed[t];
        c1 += s1.committed[t];
    }
    assert_true(c1 <= c0 + ((size_t)4 << 20));
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, 1 << 20), 1);
    assert_int_equal(mallopt(-1000, 1), 0);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    /* options other than 0: glibc 2.36 returns EINVAL (not -1 with errno
     * set: its errno is left alone) and writes nothing */
    errno = 1234;
    assert_int_equal(malloc_info(1, f), EINVAL);
    assert_int_equal(errno, 1234);
    void *big = malloc((size_t)3 << 20); /* a live large block: "mmap" count 1 or more */
    assert_non_null(big);
    assert_int_equal(malloc_info(0, f), 0);
    fclose(f);
    free(big);
    /* glibc 2.36's layout: heaps, their totals, system and aspace lines,
     * then the process totals with the mmapped blocks */
    assert_memory_equal(buf, "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n</sizes>\n", 48);
    for (const char *e = buf; (e = strstr(e, "<heap nr=")) != NULL; e++) {
        const char *end = strstr(e, "</heap>");
        assert_non_null(end);
        static const char *const want[] = {"<total type=\"fast\"", "<total type=\"rest\"", "<system type=\"current\"",
                                           "<system type=\"max\"", "<aspace type=\"total\"", "<aspace type=\"mprotect\""};
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++) {
            const char *w = strstr(e, want[k]);
            assert_true(w != NULL && w < end);
        }
    }
    const char *mm = strstr(buf, "<total type=\"mmap\" count=\"");
    assert_non_null(mm);
    assert_true(strtoul(mm + strlen("<total type=\"mmap\" count=\""), NULL, 10) >= 1);
    assert_non_null(strstr(mm, "<system type=\"current\" size=\""));
    assert_non_null(strstr(buf, "</malloc>\n"));
    free(buf);
}

/* hak_get_stats: the live and peak figures beside the mapped and
 * committed ones, and hak_get_stats_sized fills no more than it is told. */
static void test_stats_fields(void **state)
{
    (void)state;
    void *big = malloc((size_t)3 << 20), *small = malloc(100);
    assert_non_null(big);
    assert_non_null(small);
    hak_stats_t st;
    memset(&st, 0xAB, sizeof st);
    hak_get_stats(&st);
    assert_int_equal(st.size, sizeof st);
    if (hak_tier_for((size_t)3 << 20) == HAK_TIER_LARGE)
        assert_true(st.live[HAK_TIER_LARGE] >= ((size_t)3 << 20));
    for (int t = 0; t < 6; t++) {
        assert_true(st.peak_committed[t] >= st.committed[t]);
        assert_true(st.live[t] <= st.committed[t] || t == HAK_TIER_LARGE);
    }
    assert_true(st.os_peak_committed >= st.os_committed);
    assert_true(st.peak_in_use >= ((size_t)3 << 20));
    /* an older caller's smaller structure: nothing past its end is written */
    unsigned char buf[sizeof(hak_stats_t) + 16];
    memset(buf, 0x5A, sizeof buf);
    size_t old_size = offsetof(hak_stats_t, live);
    hak_get_stats_sized((hak_stats_t *)(void *)buf, old_size);
    hak_stats_t part;
    memcpy(&part, buf, old_size);
    assert_int_equal(part.size, old_size);
    assert_true(part.os_mapped > 0);
    for (size_t i = old_size; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0x5A);
    free(big);
    free(small);
}

/* hak_version() is the MAJOR.MINOR.PATCH of hakmem/version.h (generated
 * from meson.build's project version), and the build options name it. */
static void test_version(void **state)
{
    (void)state;
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", HAKMEM_VERSION_MAJOR, HAKMEM_VERSION_MINOR, HAKMEM_VERSION_PATCH);
    assert_string_equal(hak_version(), want);
    assert_string_equal(hak_version(), HAKMEM_VERSION_STRING);
    assert_int_equal(HAKMEM_VERSION,
                     HAKMEM_VERSION_MAJOR * 10000 + HAKMEM_VERSION_MINOR * 100 + HAKMEM_VERSION_PATCH);
    assert_true(HAKMEM_VERSION_MAJOR >= 0 && HAKMEM_VERSION_MINOR >= 0 && HAKMEM_VERSION_PATCH >= 0);
}

/* hak_stats_print: the HAKMEM_STATS report, one line per call of the
 * callback, each ending in a newline. */
typedef struct { char text[8192]; size_t n; int calls, bad; } sink_t;

static void sink_write(void *arg, const char *text)
{
    sink_t *s = arg;
    size_t len = strlen(text);
    s->calls++;
    if (len == 0 || text[len - 1] != '\n' || memchr(text, '\n', len) != text + len - 1)
        s->bad++;
    if (s->n + len < sizeof s->text) {
        memcpy(s->text + s->n, text, len + 1);
        s->n += len;
    }
}

static void test_stats_print_callback(void **state)
{
    (void)state;
    void *p = malloc(100), *q = malloc(3 << 20);
    static sink_t s;
    hak_stats_print(sink_write, &s);
    assert_int_equal(s.bad, 0);
    assert_true(s.calls >= 8);
    assert_non_null(strstr(s.text, "hakmem stats (pid "));
    assert_non_null(strstr(s.text, "committed"));
    assert_non_null(strstr(s.text, "peak committed "));
    /* the large block is live: the large row's live column says MiB */
    const char *large = strstr(s.text, "\n  large ");
    assert_non_null(large);
    assert_non_null(strstr(large, "MiB"));
    free(p);
    free(q);
}

/* hak_thread_flush: a thread's cached blocks go back to the shared lists.
 * Another thread's cache counts as in use in mallinfo2 (docs/options.md),
 * so the main thread sees the worker's cached blocks leave. */
static pthread_barrier_t g_flush_bar;

static void *flush_worker(void *arg)
{
    (void)arg;
    static const size_t sizes[] = {64, 4000};
    void *v[64];
    for (size_t s = 0; s < 2; s++) {
        for (int i = 0; i < 64; i++)
            v[i] = malloc(sizes[s]);
        for (int i = 0; i < 64; i++)
            free(v[i]);
    }
    pthread_barrier_wait(&g_flush_bar); /* 1: cached */
    pthread_barrier_wait(&g_flush_bar); /* 2: measured */
    hak_thread_flush();
    pthread_barrier_wait(&g_flush_bar); /* 3: flushed */
    pthread_barrier_wait(&g_flush_bar); /* 4: measured */
    return NULL;
}

static void test_thread_flush(void **state)
{
    (void)state;
    if (hak_tier_for(64) >= HAK_TIER_LARGE && hak_tier_for(4000) >= HAK_TIER_LARGE)
        skip(); /* no tier with a thread cache */
    pthread_t t;
    pthread_barrier_init(&g_flush_bar, NULL, 2);
    size_t before = mallinfo2().uordblks;
    assert_int_equal(pthread_create(&t, NULL, flush_worker, NULL), 0);
    pthread_barrier_wait(&g_flush_bar);
    size_t cached = mallinfo2().uordblks;
    pthread_barrier_wait(&g_flush_bar);
    pthread_barrier_wait(&g_flush_bar);
    size_t flushed = mallinfo2().uordblks;
    pthread_barrier_wait(&g_flush_bar);
    pthread_join(t, NULL);
    pthread_barrier_destroy(&g_flush_bar);
    print_message("in use: before %zu, worker's cache full %zu, flushed %zu\n", before, cached, flushed);
    assert_true(cached > before);
    assert_true(flushed < cached);
    assert_true(flushed <= before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_malloc_every_tier),
        cmocka_unit_test(test_sizes_beyond_ptrdiff),
        cmocka_unit_test(test_calloc_zero),
        cmocka_unit_test(test_calloc_fresh_untouched),
        cmocka_unit_test(test_realloc_tiers),
        cmocka_unit_test(test_aligned),
        cmocka_unit_test(test_free_keeps_errno),
        cmocka_unit_test(test_usable_no_overlap),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_large_lookups_race),
        cmocka_unit_test(test_ten_thousand_threads),
        cmocka_unit_test(test_fork),
        cmocka_unit_test(test_trim_reaches_every_tier),
        cmocka_unit_test(test_trim_and_info),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_stats_fields),
        cmocka_unit_test(test_stats_print_callback),
        cmocka_unit_test(test_thread_flush),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
