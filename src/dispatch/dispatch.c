// SPDX-License-Identifier: MIT
/* dispatch.c - the public entry points: tier selection by size, the free
 * chain by address, realloc, aligned allocation, and the glibc-compatible
 * names (exported as aliases of the hak_ functions).
 *
 * The free chain: ownership by address first, then trust metadata; no
 * byte in front of a pointer decides its tier.
 *   1. chunk map says TINY        -> tiny (header byte or slab metadata)
 *   2. chunk map says MID or L25  -> the pool (interior aligned pointers
 *                                    are resolved by the pool)
 *   3. the large registry         -> munmap
 *   4. a system-fallback block     -> glibc's free of its mapping
 *   5. anything else: at validation=full reported as an invalid pointer;
 *      below full handed to glibc's real free.
 * Every tier is called directly here (inline fast paths, then its
 * functions), never through its descriptor (tiers.h).
 */
#include "tiers.h"

#include <dlfcn.h>
#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if HAK_HAVE_LARGE
#include "large_inline.h"
#endif

#define HAK_EXPORT __attribute__((visibility("default")))
#define HAK_ALIAS(name) __attribute__((alias(#name), visibility("default")))

/* -Dvalgrind=true: memcheck sees each block as a heap block (MALLOCLIKE at
 * allocation, FREELIKE at free), so it reports a use after free or a read
 * of a freed block; hakmem's own accesses to free blocks (the free-list
 * links) run with error reporting off. docs/reliability.md says how to run
 * a hakmem program under valgrind. */
#if HAK_VALGRIND
#include <valgrind/memcheck.h>
#define VG_ALLOC(p, n)                                                                                     \
    do {                                                                                                   \
        if (p)                                                                                             \
            VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, 0);                                                         \
    } while (0)
#define VG_ALLOC_ZEROED(p, n)                                                                              \
    do {                                                                                                   \
        if (p)                                                                                             \
            VALGRIND_MALLOCLIKE_BLOCK(p, n, 0, 1);                                                         \
    } while (0)
#define VG_FREE(p) VALGRIND_FREELIKE_BLOCK(p, 0)
#define VG_QUIET_BEGIN() VALGRIND_DISABLE_ERROR_REPORTING
#define VG_QUIET_END() VALGRIND_ENABLE_ERROR_REPORTING
#else
#define VG_ALLOC(p, n) ((void)0)
#define VG_ALLOC_ZEROED(p, n) ((void)0)
#define VG_FREE(p) ((void)0)
#define VG_QUIET_BEGIN() ((void)0)
#define VG_QUIET_END() ((void)0)
#endif

/* --------------------------------------------------------- tier choice */

/* Allocate `size` bytes (<= PTRDIFF_MAX) aligned to `align` (a power of
 * two > 16) from the first tier that serves the size and can place the
 * alignment, or from the next one up, or from the system allocator. */
static HAK_NOINLINE void *alloc_aligned_tiers(size_t size, size_t align)
{
#if HAK_HAVE_TINY
    if (size <= HAK_TINY_MAX_SIZE) {
        int c = hak_tiny_class_aligned_(size, align);
        if (c >= 0)
            return hak_tiny_alloc_class((unsigned)c);
    }
#endif
#if HAK_HAVE_MID
    if (size <= HAK_MID_MAX && align <= hak_mid_max_align(size))
        return hak_mid_alloc(size, align);
#endif
#if HAK_HAVE_L25
    if (size <= HAK_L25_MAX && align <= hak_l25_max_align(size))
        return hak_l25_alloc(size, align);
#endif
#if HAK_HAVE_LARGE
    return hak_large_alloc(size, align);
#else
    return hak_sys_alloc_(size, align);
#endif
}

/* ------------------------------------------------------------ front end
 *
 * One bin array for every class of tiny, mid and L25 (hak_front.h): malloc
 * maps the size to its kind with one table and pops that bin; free reads
 * the page kind from the page map and pushes on that bin. Only an empty or
 * a full bin goes to the tier that owns the class. At validation=full
 * every call goes through the tiers' checked paths instead. */
#define FRONT_FAST (HAK_VALIDATION < 2 && HAK_SMALL_BUILT)

#if FRONT_FAST
/* The kind of a request of 16 * u - HDR bytes and fewer (u = (n + HDR +
 * 15) >> 4, HDR the tiny header bytes): the smallest class that holds the
 * largest request of the unit, of the first built tier that serves it. */
#if HAK_HAVE_TINY
#define FRONT_HDR HAK_TINY_HDR
#else
#define FRONT_HDR 0
#endif
#define FRONT_N(u) (16 * (size_t)(u) - FRONT_HDR)
#if HAK_HAVE_TINY
#define FRONT_TINY(u) (FRONT_N(u) <= HAK_TINY_MAX_SIZE ? HAK_KIND_TINY0 + HAK_TINY_CLASS_OF_UNITS(u) :
#define FRONT_TINY_END )
#else
#define FRONT_TINY(u)
#define FRONT_TINY_END
#endif
#if HAK_HAVE_MID
#define FRONT_MID(u) (FRONT_N(u) <= HAK_MID_MAX ? HAK_KIND_MID0 + HAK_MID_CLASS_OF_UNITS((FRONT_N(u) + 63) >> 6) : 0)
#else
#define FRONT_MID(u) 0
#endif
#define K1(u) (FRONT_TINY(u) FRONT_MID(u) FRONT_TINY_END)
#define K4(u) K1(u), K1((u) + 1), K1((u) + 2), K1((u) + 3)
#define K16(u) K4(u), K4((u) + 4), K4((u) + 8), K4((u) + 12)
#define K64(u) K16(u), K16((u) + 16), K16((u) + 32), K16((u) + 48)
#define K256(u) K64(u), K64((u) + 64), K64((u) + 128), K64((u) + 192)
#define K1024(u) K256(u), K256((u) + 256), K256((u) + 512), K256((u) + 768)
#define FRONT_UNITS ((HAK_SMALL_MAX + FRONT_HDR + 15) / 16 + 1)
static const uint8_t g_small_kind[2056] = {K1024(0), K1024(1024), K4(2048), K4(2052)};
_Static_assert(FRONT_UNITS <= sizeof g_small_kind, "the front end's size table covers its sizes");

/* The kind of a request of n < hak_fast_.small_limit bytes. With a tiny
 * header byte the tiny and mid units do not line up (a mid class holds no
 * header): two tables. */
HAK_INLINE size_t small_kind_of(size_t n)
{
#if HAK_HEADER_CLASSIDX && HAK_HAVE_TINY && HAK_HAVE_MID
    return n <= HAK_TINY_MAX_SIZE ? HAK_KIND_TINY0 + hak_tiny_class_of(n) : HAK_KIND_MID0 + hak_mid_class_of(n);
#else
    return g_small_kind[(n + FRONT_HDR + 15) >> 4];
#endif
}

/* -Dstats=true: the tiny tier's per-request counters (hak_tiny_count_). */
#if HAK_STATS && HAK_HAVE_TINY
#define FRONT_COUNT(kind, i)                                                                              \
    do {                                                                                                   \
        if ((kind) < HAK_KIND_MID0)                                                                        \
            HAK_TINY_COUNT(i);                                                                             \
    } while (0)
#else
#define FRONT_COUNT(kind, i) ((void)0)
#endif

/* An empty bin: the tier that owns the class refills it. (The fast path
 * passes the bin, which it holds in a register, rather than the kind.) */
static HAK_NOINLINE void *front_alloc_slow(hak_front_bin_t bin)
{
    size_t kind = hak_front_bin_kind(bin);
    FRONT_COUNT(kind, 1);
#if HAK_HAVE_TINY
    if (kind < HAK_KIND_MID0)
        return hak_tiny_alloc_slow_(kind - HAK_KIND_TINY0);
#endif
#if HAK_HAVE_MID
    return hak_pool_alloc_slow_(&hak_mid_pool_, &hak_mid_tc_, kind - HAK_KIND_MID0);
#else
    return NULL;
#endif
}

/* A bin over its bound after a push of p: the tier that owns the class
 * drains it. */
static HAK_NOINLINE void front_free_slow(void *p, hak_front_bin_t bin)
{
    size_t kind = hak_front_bin_kind(bin);
    FRONT_COUNT(kind, 3);
#if HAK_HAVE_TINY
    if (kind < HAK_KIND_MID0) {
        hak_tiny_free_slow_(p, kind - HAK_KIND_TINY0);
        return;
    }
#endif
#if HAK_HAVE_MID
    if (kind < HAK_KIND_L250) {
        hak_pool_free_slow_(&hak_mid_pool_, &hak_mid_tc_, p, kind - HAK_KIND_MID0);
        return;
    }
#endif
#if HAK_HAVE_L25
    hak_pool_free_slow_(&hak_l25_pool_, &hak_l25_tc_, p, kind - HAK_KIND_L250);
#endif
}
/* The front end's pop for n < hak_fast_.small_limit bytes (n <=
 * HAK_SMALL_MAX): NULL when the bin is empty (*binp: the bin); its malloc
 * is the pop, else the tier's refill. */
HAK_INLINE void *front_pop(size_t n, hak_front_bin_t *binp)
{
    size_t kind = small_kind_of(n);
    hak_front_bin_t bin = hak_front_bin(kind);
    void *b = bin->head;
    *binp = bin;
    if (HAK_UNLIKELY(b == NULL))
        return NULL;
    bin->head = hak_link_get(b);
    bin->room++;
    FRONT_COUNT(kind, 0);
    return b;
}

HAK_INLINE void *front_alloc(size_t n)
{
    hak_front_bin_t bin;
    void *b = front_pop(n, &bin);
    return HAK_LIKELY(b != NULL) ? b : front_alloc_slow(bin);
}
#endif

/* Allocate `size` bytes (<= PTRDIFF_MAX; the front end's sizes when a hook is on),
 * 16-byte aligned, from the tier that serves the size, or the next one up,
 * or the system allocator. */
static inline void *alloc_tiers(size_t size)
{
#if FRONT_FAST
    if (size <= HAK_SMALL_MAX)
        return front_alloc(size); /* the slow path's small requests (traced, profiled) */
#endif
#if HAK_HAVE_TINY
    if (size <= HAK_TINY_MAX_SIZE)
        return hak_tiny_alloc_inline(size);
#endif
#if HAK_HAVE_MID
    if (size <= HAK_MID_MAX)
        return hak_mid_alloc_inline(size);
#endif
#if HAK_HAVE_L25
    if (size <= HAK_L25_MAX)
        return hak_l25_alloc_inline(size);
#endif
#if HAK_HAVE_LARGE
    return hak_large_alloc(size, 16);
#else
    return hak_sys_alloc_(size, 16);
#endif
}

/* The tier that serves `size` (inlined here: the exported hak_tier_for is
 * called through the GOT, which realloc's keep test paid on every call). */
static inline int tier_for(size_t size)
{
#if HAK_HAVE_TINY
    if (size <= HAK_TINY_MAX_SIZE)
        return HAK_TIER_TINY;
#endif
#if HAK_HAVE_MID
    if (size <= HAK_MID_MAX)
        return HAK_TIER_MID;
#endif
#if HAK_HAVE_L25
    if (size <= HAK_L25_MAX)
        return HAK_TIER_L25;
#endif
    return HAK_HAVE_LARGE ? HAK_TIER_LARGE : HAK_TIER_SYSTEM;
}

int hak_tier_for(size_t size) { return tier_for(size); }

HAK_EXPORT const char *hak_version(void) { return HAKMEM_VERSION_STRING; }

int hak_owner(const void *p)
{
    if (p == NULL)
        return HAK_TIER_NONE;
    switch (hak_chunk_tag(p)) {
    case HAK_TAG_TINY:
        return HAK_TIER_TINY;
    case HAK_TAG_MID:
        return HAK_TIER_MID;
    case HAK_TAG_L25:
        return HAK_TIER_L25;
    default:
        break;
    }
#if HAK_HAVE_LARGE
    if (hak_large_owns(p))
        return HAK_TIER_LARGE;
#endif
    if (hak_sys_owns_(p))
        return HAK_TIER_SYSTEM;
    return HAK_TIER_NONE;
}

/* ---------------------------------------------------------------- malloc */

/* malloc with a hook on: tracing, or profiling alone with the thread's
 * count run out (a sample due, or the thread's first count). */
static HAK_ALLOC_SECTION HAK_NOINLINE void *malloc_hooked(size_t size)
{
    int on = hak_trace_on_;
    if (HAK_UNLIKELY(size > PTRDIFF_MAX)) {
        if (!(on & HAK_HOOK_TRACE))
            hak_gate_add_(size); /* not a request: the count as it was */
        errno = ENOMEM;
        return NULL;
    }
    bool due;
    if (on & HAK_HOOK_TRACE) {
        hak_gate_set_(HAK_GATE_CLOSED); /* every request of the thread comes here */
        due = hak_prof_due_(size);
    } else {
        due = hak_prof_decide_(size);
    }
    void *p = due ? hak_prof_alloc_(size, 16) : NULL;
    if (p == NULL)
        p = alloc_tiers(size);
    if ((on & HAK_HOOK_TRACE) && p)
        hak_trace_alloc_(size, p);
    return p;
}

/* malloc past the front end with no sample due. */
static HAK_ALLOC_SECTION HAK_NOINLINE void *malloc_plain(size_t size)
{
    if (HAK_UNLIKELY(size > PTRDIFF_MAX)) {
        hak_gate_add_(size); /* not a request: the count as it was */
        errno = ENOMEM;
        return NULL;
    }
    return alloc_tiers(size);
}

static HAK_ALLOC_SECTION HAK_NOINLINE void *malloc_slow(size_t size)
{
    /* The gate (dispatch.h): with profiling alone every malloc comes here
     * and counts, only the one that runs the count out goes to the hooks,
     * and a small request goes straight on to the front end (its size
     * needs no other check). Otherwise the gate has run out, and the hook
     * word tells tracing (the hooks) from no hook at all (a size past the
     * front end's). Every path but the front end's leaves by a call, so
     * that the pop's block follows the gate's alone and shares its TLS
     * address. */
    if (HAK_UNLIKELY(hak_gate_take_(size)))
        return hak_trace_on_ ? malloc_hooked(size) : malloc_plain(size);
#if FRONT_FAST
    if (HAK_LIKELY(size <= HAK_SMALL_MAX))
        return front_alloc(size);
#endif
    return malloc_plain(size);
}

#if HAK_VALGRIND
static HAK_ALLOC_SECTION void *malloc_impl(size_t size);
HAK_EXPORT HAK_ALLOC_SECTION void *hak_malloc(size_t size)
{
    VG_QUIET_BEGIN();
    void *p = malloc_impl(size);
    VG_QUIET_END();
    VG_ALLOC(p, size);
    return p;
}
static HAK_ALLOC_SECTION void *malloc_impl(size_t size)
#else
HAK_EXPORT HAK_ALLOC_SECTION void *hak_malloc(size_t size)
#endif
{
#if FRONT_FAST
    /* The limit is the front end's largest size + 1, or 0 while a
     * per-request trace is on: one compare covers both. */
    if (HAK_LIKELY(size < hak_fast_.small_limit))
        return front_alloc(size);
#elif HAK_SMALL_BUILT
    /* validation=full: the tiers' checked paths, inline */
    if (HAK_LIKELY(size < hak_fast_.small_limit))
        return alloc_tiers(size);
#endif
    return malloc_slow(size);
}

/* ------------------------------------------------------------------ free */

static HAK_NOINLINE void free_slow(void *p, unsigned tag)
{
    if (p == NULL)
        return;
    if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_TRACE))
        hak_trace_free_(p);
    switch (tag) {
#if HAK_HAVE_TINY
    case HAK_TAG_TINY:
        hak_tiny_free_owned(p);
        return;
#endif
#if HAK_HAVE_MID
    case HAK_TAG_MID:
        hak_mid_free_owned(p);
        return;
#endif
#if HAK_HAVE_L25
    case HAK_TAG_L25:
        hak_l25_free_owned(p);
        return;
#endif
    default:
        break;
    }
    /* a sampled block is a large or system one (hak_prof_alloc_) */
#if HAK_HAVE_LARGE
    if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_PROF) && hak_prof_maybe_(p) && hak_prof_free_(p)) {
        hak_large_free_sampled(p); /* a large block: its mapping may stay in the thread's stash */
        return;
    }
    if (hak_large_owns(p)) {
        hak_large_free(p);
        return;
    }
    if (hak_large_freed_(p)) { /* its mapping is cached: freed before */
        hak_report_failure("free", "double free (a freed large block)", p);
        return;
    }
#else
    if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_PROF) && hak_prof_maybe_(p))
        hak_prof_free_(p);
#endif
    if (hak_sys_owns_(p)) {
        hak_sys_free_(p);
        return;
    }
#if HAK_VALIDATION >= 2
    hak_report_failure("free", "invalid pointer (not allocated by hakmem)", p);
#else
    hak_real_free_(p);
#endif
}

#if HAK_VALGRIND
static void free_impl(void *p);
HAK_EXPORT void hak_free(void *p)
{
    if (p)
        VG_FREE(p);
    VG_QUIET_BEGIN();
    free_impl(p);
    VG_QUIET_END();
}
static void free_impl(void *p)
#else
HAK_EXPORT void hak_free(void *p)
#endif
{
    size_t kind = hak_page_kind(p);
#if FRONT_FAST
    /* A class of the front end, unless tracing made nkinds 0. */
    if (HAK_LIKELY(kind - 1u < hak_fast_.nkinds)) {
#if HAK_HEADER_CLASSIDX && HAK_VALIDATION >= 1 && HAK_HAVE_TINY
        if (kind < HAK_KIND_MID0 &&
            HAK_UNLIKELY(((const uint8_t *)p)[-1] != (HAK_TINY_MAGIC_LIVE | (kind - HAK_KIND_TINY0)))) {
            hak_tiny_bad_free_(p, "invalid pointer (bad tiny header)");
            return;
        }
#endif
        hak_front_bin_t bin = hak_front_bin(kind);
        hak_link_set(p, bin->head);
        bin->head = p;
        FRONT_COUNT(kind, 2);
        if (HAK_UNLIKELY(--bin->room < 0))
            front_free_slow(p, bin);
        return;
    }
#elif HAK_SMALL_BUILT
    /* validation=full: the tiers' checked paths */
    if (HAK_LIKELY(kind - 1u < hak_fast_.nkinds)) {
#if HAK_HAVE_TINY
        if (kind < HAK_KIND_MID0) {
            hak_tiny_free_owned(p);
            return;
        }
#endif
#if HAK_HAVE_MID
        if (kind < HAK_KIND_L250) {
            hak_mid_free_owned(p);
            return;
        }
#endif
#if HAK_HAVE_L25
        hak_l25_free_owned(p);
        return;
#endif
    }
#endif
    free_slow(p, hak_kind_tier_[kind]);
}

/* ------------------------------------------------------------ usable size */

/* Usable bytes of p, and its tier (HAK_TIER_NONE: foreign). At
 * validation=full a pointer in a tier that is not exactly a live block is
 * reported as a failure of `op` and *tier is HAK_TIER_NONE with *reported
 * set; with `pool_magic`, at magic too a mid or L25 pointer that free
 * would refuse (realloc must not copy from it). */
static size_t usable_of(const void *p, int *tier, const char *op, bool pool_magic, bool *reported)
{
    (void)pool_magic; /* a build with neither pool */
    *reported = false;
    switch (hak_chunk_tag(p)) {
#if HAK_HAVE_TINY
    case HAK_TAG_TINY:
        if (HAK_VALIDATION >= 2 && !hak_tiny_check_live_(p, op))
            break;
        *tier = HAK_TIER_TINY;
        return hak_tiny_usable_owned(p);
#endif
#if HAK_HAVE_MID
    case HAK_TAG_MID:
        if (HAK_VALIDATION >= (pool_magic ? 1 : 2) && !hak_mid_check_live(p, op))
            break;
        *tier = HAK_TIER_MID;
        return hak_mid_usable_owned(p);
#endif
#if HAK_HAVE_L25
    case HAK_TAG_L25:
        if (HAK_VALIDATION >= (pool_magic ? 1 : 2) && !hak_l25_check_live(p, op))
            break;
        *tier = HAK_TIER_L25;
        return hak_l25_usable_owned(p);
#endif
    default:
#if HAK_HAVE_LARGE
    {
        size_t n = hak_large_usable_size(p); /* 0: not a live large block (one lookup) */
        if (n != 0) {
            *tier = HAK_TIER_LARGE;
            return n;
        }
    }
#endif
        if (hak_sys_owns_(p)) {
            *tier = HAK_TIER_SYSTEM;
            return hak_sys_usable_(p);
        }
        *tier = HAK_TIER_NONE;
        return 0;
    }
    *reported = true; /* a tier's chunk, but not a live block of it */
    *tier = HAK_TIER_NONE;
    return 0;
}

HAK_EXPORT size_t hak_usable_size(const void *p)
{
    if (p == NULL)
        return 0;
    int tier;
    bool reported;
    size_t n = usable_of(p, &tier, "malloc_usable_size", false, &reported);
    if (tier != HAK_TIER_NONE || reported)
        return n;
#if HAK_VALIDATION >= 2
    hak_report_failure("malloc_usable_size", "invalid pointer (not allocated by hakmem)", p);
    return 0;
#else
    return hak_real_usable_((void *)p);
#endif
}

/* ---------------------------------------------------------------- calloc */

#define HAK_CALLOC_FRESH_MIN 4096 /* smaller callocs clear what malloc gives */
#define CALLOC_MID(n) hak_pool_alloc_zero_(&hak_mid_pool_, &hak_mid_tc_, hak_mid_class_of(n), n)
#define CALLOC_L25(n) hak_pool_alloc_zero_(&hak_l25_pool_, &hak_l25_tc_, hak_l25_class_of(n), n)
#if HAK_HAVE_MID && HAK_HAVE_L25
#define CALLOC_POOL(n) ((n) <= HAK_MID_MAX ? CALLOC_MID(n) : CALLOC_L25(n))
#elif HAK_HAVE_MID
#define CALLOC_POOL(n) CALLOC_MID(n)
#elif HAK_HAVE_L25
#define CALLOC_POOL(n) CALLOC_L25(n)
#endif

HAK_EXPORT HAK_ALLOC_SECTION void *hak_calloc(size_t n, size_t size)
{
    size_t total;
    if (HAK_UNLIKELY(__builtin_mul_overflow(n, size, &total))) {
        errno = ENOMEM;
        return NULL;
    }
#if HAK_HAVE_LARGE
    /* A fresh mapping is zero already: do not touch (and commit) its pages,
     * as glibc does for mmapped chunks. */
    if (tier_for(total) == HAK_TIER_LARGE && !(hak_trace_on_ & HAK_HOOK_TRACE)) {
        if (total > PTRDIFF_MAX) {
            errno = ENOMEM;
            return NULL;
        }
        VG_QUIET_BEGIN();
        void *z = hak_large_alloc_zeroed(total, 16);
        VG_QUIET_END();
        VG_ALLOC_ZEROED(z, total);
        if (HAK_UNLIKELY(hak_trace_on_) && z && hak_prof_due_(total))
            hak_prof_record_(total, z);
        return z;
    }
#endif
#if HAK_HAVE_MID || HAK_HAVE_L25
    /* From a page up, a block never carved from a span on decommitted
     * pages is zero already: not written (hak_pool_alloc_zero_). Traced
     * or profiled callocs take malloc's hooks below. */
    if (total >= HAK_CALLOC_FRESH_MIN && !hak_trace_on_ && (tier_for(total) == HAK_TIER_MID || tier_for(total) == HAK_TIER_L25)) {
        VG_QUIET_BEGIN();
        void *z = CALLOC_POOL(total);
        VG_QUIET_END();
        VG_ALLOC_ZEROED(z, total);
        return z;
    }
#endif
    void *p = hak_malloc(total);
    if (HAK_UNLIKELY(p == NULL))
        return NULL;
    memset(p, 0, total);
    return p;
}

/* --------------------------------------------------------------- realloc */

static HAK_ALLOC_SECTION HAK_NOINLINE void *realloc_slow(void *p, size_t size)
{
    if (p == NULL)
        return hak_malloc(size);
    if (size == 0) { /* glibc 2.36: frees and returns NULL */
        hak_free(p);
        return NULL;
    }
    if (HAK_UNLIKELY(size > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    int tier;
    bool reported;
    size_t old = usable_of(p, &tier, "realloc", true, &reported);
    if (HAK_UNLIKELY(tier == HAK_TIER_NONE)) {
        if (reported) {
            errno = EINVAL;
            return NULL;
        }
#if HAK_VALIDATION >= 2
        hak_report_failure("realloc", "invalid pointer (not allocated by hakmem)", p);
        errno = EINVAL;
        return NULL;
#else
        return hak_real_realloc_(p, size);
#endif
    }
    /* Fits, in the same tier, and wastes less than half the block: keep it
     * (a block is never shrunk in place; a much smaller request moves). */
    if (size <= old && size >= old / 2 && tier_for(size) == tier)
        return p;
#if HAK_HAVE_LARGE
    if (tier == HAK_TIER_LARGE && tier_for(size) == HAK_TIER_LARGE) {
        /* a sample leaves before its mapping moves (once it has, another
         * thread may be given that address and sample it) */
        hak_prof_sample_t taken = {0};
        if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_PROF) && hak_prof_maybe_(p))
            hak_prof_take_(p, &taken);
        VG_QUIET_BEGIN();
        void *q = hak_large_realloc(p, size);
        VG_QUIET_END();
        if (q) {
            VG_FREE(p);
            VG_ALLOC(q, size);
            /* remapped, moved or in place: the trace counted old usable
             * bytes for p; it now follows q's (as malloc + free would) */
            if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_TRACE))
                hak_trace_realloc_(old, size, q);
            if (HAK_UNLIKELY(hak_trace_on_) && hak_prof_due_(size))
                hak_prof_record_(size, q);
        } else if (taken.ptr) {
            hak_prof_put_back_(&taken);
        }
        return q;
    }
#endif
    void *q = hak_malloc(size);
    if (q == NULL)
        return NULL; /* errno is ENOMEM; p is untouched */
    memcpy(q, p, old < size ? old : size);
    hak_free(p);
    return q;
}

HAK_EXPORT HAK_ALLOC_SECTION void *hak_realloc(void *p, size_t size)
{
#if HAK_HAVE_LARGE
    /* A large block that still fits, with little waste (realloc_slow's
     * keep rule): one lock-free registry read and no frame. A growing
     * buffer's reallocs are mostly this; glibc answers them from the
     * chunk's size word. Anything else, or a read that met a writer, takes
     * the full path. */
    if (hak_chunk_tag(p) == HAK_TAG_NONE && tier_for(size) == HAK_TIER_LARGE) {
        size_t old = hak_large_usable_try_(p); /* 0 for NULL and non-blocks */
        if (size <= old && size >= old / 2 && old != HAK_LARGE_RACED)
            return p;
    }
#endif
    return realloc_slow(p, size);
}

HAK_EXPORT HAK_ALLOC_SECTION void *hak_reallocarray(void *p, size_t n, size_t size)
{
    size_t total;
    if (__builtin_mul_overflow(n, size, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_realloc(p, total);
}

/* ------------------------------------------------------------- alignment */

/* memalign with glibc 2.36's rules: align <= 16 is plain malloc; a
 * non-power-of-two alignment is rounded up; above SIZE_MAX/2+1 -> EINVAL. */
HAK_EXPORT HAK_ALLOC_SECTION void *hak_memalign(size_t align, size_t size)
{
    if (align <= 16)
        return hak_malloc(size);
    if (HAK_UNLIKELY(align > SIZE_MAX / 2 + 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (align & (align - 1))
        align = (size_t)1 << (64 - __builtin_clzl(align));
    if (HAK_UNLIKELY(size > PTRDIFF_MAX || align > PTRDIFF_MAX)) {
        errno = ENOMEM;
        return NULL;
    }
    VG_QUIET_BEGIN();
    void *p = HAK_UNLIKELY(hak_trace_on_) && hak_prof_due_(size) ? hak_prof_alloc_(size, align) : NULL;
    if (p == NULL)
        p = alloc_aligned_tiers(size, align);
    VG_QUIET_END();
    VG_ALLOC(p, size);
    if (HAK_UNLIKELY(hak_trace_on_ & HAK_HOOK_TRACE) && p)
        hak_trace_alloc_(size, p);
    return p;
}

HAK_EXPORT HAK_ALLOC_SECTION int hak_posix_memalign(void **out, size_t align, size_t size)
{
    if (align < sizeof(void *) || (align & (align - 1)) != 0)
        return EINVAL;
    int saved = errno;
    void *p = hak_memalign(align, size);
    if (p == NULL) {
        int e = errno;
        errno = saved;
        return e ? e : ENOMEM;
    }
    *out = p;
    return 0;
}

HAK_EXPORT HAK_ALLOC_SECTION void *hak_aligned_alloc(size_t align, size_t size) { return hak_memalign(align, size); }

HAK_EXPORT HAK_ALLOC_SECTION void *hak_valloc(size_t size) { return hak_memalign(hak_os_page_size(), size); }

HAK_EXPORT HAK_ALLOC_SECTION void *hak_pvalloc(size_t size)
{
    size_t ps = hak_os_page_size(), rounded;
    if (__builtin_add_overflow(size, ps - 1, &rounded)) {
        errno = ENOMEM;
        return NULL;
    }
    rounded &= ~(ps - 1);
    return hak_memalign(ps, rounded ? rounded : ps);
}

/* -------------------------------------------------------------- C23 free */

HAK_EXPORT void free_sized(void *p, size_t size)
{
    (void)size;
    hak_free(p);
}

HAK_EXPORT void free_aligned_sized(void *p, size_t align, size_t size)
{
    (void)align;
    (void)size;
    hak_free(p);
}

/* ------------------------------------------------- C++ new and delete */

/* Every replaceable operator new and delete of C++17 (the Itanium ABI's
 * names), over malloc's body and hak_free, as tcmalloc, jemalloc and
 * mimalloc export them: libstdc++'s operator new is one more call in
 * front of malloc (its new-handler loop, then malloc through the PLT), 8
 * to 20 instructions of every C++ allocation. Weak definitions: a
 * program's own operator new wins over these (linked with libhakmem.a as
 * well as preloaded).
 *
 * Failure is C++'s: the new-handler loop (std::get_new_handler, read from
 * libstdc++ when the process has it), then std::bad_alloc, thrown by
 * libstdc++'s std::__throw_bad_alloc; the nothrow forms return NULL when
 * no handler is installed, and with one they ask libstdc++'s own nothrow
 * operator new (RTLD_NEXT), which calls the throwing one here inside its
 * try block, so that a handler that throws ends as NULL, as the standard
 * says. Nothing of libstdc++ is linked: the references are weak, so a C
 * program loads nothing more, and a C++ runtime that the process does not
 * have at its start (loaded later by dlopen, RTLD_LOCAL) is not seen: an
 * operator new that fails then reports and aborts instead of throwing. */
#define CXX_WEAK __attribute__((weak, visibility("default")))

typedef void (*cxx_handler_t)(void);
extern cxx_handler_t _ZSt15get_new_handlerv(void) __attribute__((weak)); /* std::get_new_handler() */
extern void _ZSt17__throw_bad_allocv(void) __attribute__((weak, noreturn)); /* std::__throw_bad_alloc() */

static void *cxx_try(size_t size, size_t align)
{
    return align ? hak_memalign(align, size) : hak_malloc(size);
}

/* After a request failed: the handler loop, then bad_alloc. */
static HAK_ALLOC_SECTION HAK_NOINLINE void *cxx_new_failed(size_t size, size_t align)
{
    for (;;) {
        cxx_handler_t h = _ZSt15get_new_handlerv ? _ZSt15get_new_handlerv() : NULL;
        if (h == NULL) {
            if (_ZSt17__throw_bad_allocv)
                _ZSt17__throw_bad_allocv();
            hak_report_failure("operator new", "out of memory, and no C++ runtime to throw std::bad_alloc", NULL);
            abort();
        }
        h();
        void *p = cxx_try(size, align);
        if (p)
            return p;
    }
}

/* The nothrow forms' failure: NULL without a handler; with one, libstdc++'s
 * own nothrow operator new of that form, which catches what the handler
 * throws. */
static HAK_ALLOC_SECTION HAK_NOINLINE void *cxx_nothrow_failed(size_t size, size_t align, const char *next_name,
                                                               const void *nt)
{
    if (_ZSt15get_new_handlerv == NULL || _ZSt15get_new_handlerv() == NULL)
        return NULL;
    void *next = dlsym(RTLD_NEXT, next_name);
    if (next == NULL)
        return NULL;
    if (align)
        return ((void *(*)(size_t, size_t, const void *))next)(size, align, nt);
    return ((void *(*)(size_t, const void *))next)(size, nt);
}

/* new's whole path, out of line: malloc, then the failure's. */
static HAK_ALLOC_SECTION HAK_NOINLINE void *cxx_new(size_t size)
{
    void *p = hak_malloc(size);
    return HAK_LIKELY(p != NULL) ? p : cxx_new_failed(size, 0);
}

/* new's fast path is malloc's pop (a popped block is never NULL: no test,
 * no register kept for a failure); anything else is cxx_new's. */
#if FRONT_FAST && !HAK_VALGRIND
#define CXX_NEW_BODY(size)                                                                                 \
    do {                                                                                                   \
        if (HAK_LIKELY(size < hak_fast_.small_limit)) {                                                    \
            hak_front_bin_t bin_;                                                                          \
            void *b_ = front_pop(size, &bin_);                                                             \
            if (HAK_LIKELY(b_ != NULL))                                                                    \
                return b_;                                                                                 \
        }                                                                                                  \
        return cxx_new(size);                                                                              \
    } while (0)
#else
#define CXX_NEW_BODY(size) return cxx_new(size)
#endif

HAK_ALLOC_SECTION CXX_WEAK void *_Znwm(size_t size) { CXX_NEW_BODY(size); }  /* new(size_t) */
HAK_ALLOC_SECTION CXX_WEAK void *_Znam(size_t size) { CXX_NEW_BODY(size); }  /* new[](size_t) */

/* The other forms: aligned (align a power of two, the language's) and
 * nothrow. */
static HAK_ALLOC_SECTION void *cxx_new_aligned(size_t size, size_t align)
{
    void *p = cxx_try(size, align);
    return HAK_LIKELY(p != NULL) ? p : cxx_new_failed(size, align);
}

static HAK_ALLOC_SECTION void *cxx_new_nothrow(size_t size, size_t align, const char *name, const void *nt)
{
    void *p = cxx_try(size, align);
    return HAK_LIKELY(p != NULL) ? p : cxx_nothrow_failed(size, align, name, nt);
}

HAK_ALLOC_SECTION CXX_WEAK void *_ZnwmRKSt9nothrow_t(size_t size, const void *nt)
{
    return cxx_new_nothrow(size, 0, "_ZnwmRKSt9nothrow_t", nt);
}
HAK_ALLOC_SECTION CXX_WEAK void *_ZnamRKSt9nothrow_t(size_t size, const void *nt)
{
    return cxx_new_nothrow(size, 0, "_ZnamRKSt9nothrow_t", nt);
}
HAK_ALLOC_SECTION CXX_WEAK void *_ZnwmSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align); }
HAK_ALLOC_SECTION CXX_WEAK void *_ZnamSt11align_val_t(size_t size, size_t align) { return cxx_new_aligned(size, align); }
HAK_ALLOC_SECTION CXX_WEAK void *_ZnwmSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt)
{
    return cxx_new_nothrow(size, align, "_ZnwmSt11align_val_tRKSt9nothrow_t", nt);
}
HAK_ALLOC_SECTION CXX_WEAK void *_ZnamSt11align_val_tRKSt9nothrow_t(size_t size, size_t align, const void *nt)
{
    return cxx_new_nothrow(size, align, "_ZnamSt11align_val_tRKSt9nothrow_t", nt);
}

/* Every delete is free: the sizes and alignments it is given add nothing
 * (free finds both from the pointer). The unsized ones are free itself;
 * the others jump to it directly (hak_free_here: not through the PLT). */
extern void hak_free_here(void *p) __attribute__((alias("hak_free"), visibility("hidden")));
#define CXX_DELETE_ALIAS __attribute__((weak, alias("hak_free"), visibility("default")))
void _ZdlPv(void *p) CXX_DELETE_ALIAS;
void _ZdaPv(void *p) CXX_DELETE_ALIAS;
CXX_WEAK void _ZdlPvm(void *p, size_t size) { (void)size, hak_free_here(p); }
CXX_WEAK void _ZdaPvm(void *p, size_t size) { (void)size, hak_free_here(p); }
CXX_WEAK void _ZdlPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt, hak_free_here(p); }
CXX_WEAK void _ZdaPvRKSt9nothrow_t(void *p, const void *nt) { (void)nt, hak_free_here(p); }
CXX_WEAK void _ZdlPvSt11align_val_t(void *p, size_t align) { (void)align, hak_free_here(p); }
CXX_WEAK void _ZdaPvSt11align_val_t(void *p, size_t align) { (void)align, hak_free_here(p); }
CXX_WEAK void _ZdlPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)size, (void)align, hak_free_here(p); }
CXX_WEAK void _ZdaPvmSt11align_val_t(void *p, size_t size, size_t align) { (void)size, (void)align, hak_free_here(p); }
CXX_WEAK void _ZdlPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt)
{
    (void)align, (void)nt, hak_free_here(p);
}
CXX_WEAK void _ZdaPvSt11align_val_tRKSt9nothrow_t(void *p, size_t align, const void *nt)
{
    (void)align, (void)nt, hak_free_here(p);
}

/* --------------------------------------------------------- glibc's names */

void *malloc(size_t size) HAK_ALIAS(hak_malloc);
void free(void *p) HAK_ALIAS(hak_free);
void cfree(void *p) HAK_ALIAS(hak_free);
void *calloc(size_t n, size_t size) HAK_ALIAS(hak_calloc);
void *realloc(void *p, size_t size) HAK_ALIAS(hak_realloc);
void *reallocarray(void *p, size_t n, size_t size) HAK_ALIAS(hak_reallocarray);
void *memalign(size_t align, size_t size) HAK_ALIAS(hak_memalign);
void *aligned_alloc(size_t align, size_t size) HAK_ALIAS(hak_aligned_alloc);
int posix_memalign(void **out, size_t align, size_t size) HAK_ALIAS(hak_posix_memalign);
HAK_EXPORT size_t malloc_usable_size(void *p) { return hak_usable_size(p); }

void *__libc_malloc(size_t size) HAK_ALIAS(hak_malloc);
void __libc_free(void *p) HAK_ALIAS(hak_free);
void *__libc_calloc(size_t n, size_t size) HAK_ALIAS(hak_calloc);
void *__libc_realloc(void *p, size_t size) HAK_ALIAS(hak_realloc);
void *__libc_memalign(size_t align, size_t size) HAK_ALIAS(hak_memalign);
void *valloc(size_t size) HAK_ALIAS(hak_valloc);
void *pvalloc(size_t size) HAK_ALIAS(hak_pvalloc);
void *__libc_valloc(size_t size) HAK_ALIAS(hak_valloc);
void *__libc_pvalloc(size_t size) HAK_ALIAS(hak_pvalloc);
