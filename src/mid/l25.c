// SPDX-License-Identifier: MIT
/* l25.c - the L25 pool: its class table, its instance of the pool engine
 * (pool.c), its thread cache and its public entry points (hak_l25.h).
 *
 * Parameters (docs/mid.md): 40 classes, 8 per doubling; 64 KiB pages,
 * spans of one block (more where one would leave over 1/8 of the span
 * unused), thread cache 256 KiB per class (1..4 blocks), four empty chunks
 * kept mapped. A drain goes home to the spans at once (nothing is parked
 * centrally); free pages as in the mid pool (mid.c, pool.c).
 */
#include "l25_inline.h"

#include <errno.h>

#define L25_CACHE_BYTES    (256u << 10)
#define L25_CACHE_MIN      1
#define L25_CACHE_MAX      4
#define L25_SPAN_MIN_BLOCKS 1
#define L25_SPAN_MAX_BYTES ((size_t)1 << 20)
#define L25_KEEP_EMPTY     4

#define K(x) ((uint32_t)(x) << 10)
static const uint32_t g_strides[HAK_L25_NCLASSES] __attribute__((unused)) = {
    K(36), K(40), K(44), K(48), K(52), K(56), K(60), K(64),
    K(72), K(80), K(88), K(96), K(104), K(112), K(120), K(128),
    K(144), K(160), K(176), K(192), K(208), K(224), K(240), K(256),
    K(288), K(320), K(352), K(384), K(416), K(448), K(480), K(512),
    K(576), K(640), K(704), K(768), K(832), K(896), K(960), K(1024),
};
#undef K

#define U(u) HAK_L25_CLASS_OF_UNITS(u)
#define U8(b) U(b), U(b + 1), U(b + 2), U(b + 3), U(b + 4), U(b + 5), U(b + 6), U(b + 7)
#define U64(b) U8(b), U8(b + 8), U8(b + 16), U8(b + 24), U8(b + 32), U8(b + 40), U8(b + 48), U8(b + 56)
const uint8_t hak_l25_lut_[HAK_L25_LUT_SIZE] = {U64(0), U64(64), U64(128), U64(192), U(256)};
#undef U64
#undef U8
#undef U
_Static_assert(HAK_L25_LUT_SIZE == 257, "L25 size-class table");
_Static_assert(HAK_L25_NCLASSES <= HAK_KIND_NSMALL - HAK_KIND_L250, "L25 classes fit their page kinds");
_Static_assert(HAK_L25_CLASS_OF_UNITS(256) == HAK_L25_NCLASSES - 1, "L25 size-class table");

#if !HAK_PLATFORM_ARENA

static void l25_fork_prepare(void) { hak_pool_fork_prepare_(&hak_l25_pool_); }
static void l25_fork_parent(void) { hak_pool_fork_parent_(&hak_l25_pool_); }
static void l25_fork_child(void) { hak_pool_fork_child_(&hak_l25_pool_, &hak_l25_tc_); }
static const hak_fork_ops_t g_fork_ops = {l25_fork_prepare, l25_fork_parent, l25_fork_child};
static size_t l25_purge(uint32_t cutoff, bool all, size_t want) { return hak_pool_purge_(&hak_l25_pool_, cutoff, all, want); }

static const hak_pool_params_t g_params = {
    .name = "L25",
    .tag = HAK_TAG_L25,
    .kind0 = HAK_KIND_L250,
    .nclasses = HAK_L25_NCLASSES,
    .nsized = HAK_L25_NCLASSES,
    .strides = g_strides,
    .max_size = HAK_L25_MAX_SIZE,
    .cache_bytes = L25_CACHE_BYTES,
    .cache_min = L25_CACHE_MIN,
    .cache_max = L25_CACHE_MAX,
    .span_min_blocks = L25_SPAN_MIN_BLOCKS,
    .span_max_bytes = L25_SPAN_MAX_BYTES,
    .keep_empty = L25_KEEP_EMPTY,
    .park = false, /* a parked block of 36 KiB-1 MiB costs more memory than its refill costs time */
    .fit_below = 0, /* no larger block instead of a new one: a span of these is released when it
                       empties and its pages serve any class (mid.md) */
    .msg_no_span = "invalid pointer (not in an in-use L25 span)",
    .msg_not_block = "invalid pointer (past the last block of its L25 span)",
    .msg_not_start = "invalid pointer (not the start of an L25 block)",
};

static hak_pool_tables_t g_tables;
hak_pool_t hak_l25_pool_ = {.pr = &g_params, .fork_ops = &g_fork_ops, .thread_exit = hak_l25_thread_exit,
                         .purger = l25_purge, .t = &g_tables};
__thread hak_pool_tcache_t hak_l25_tc_;

static HAK_NOINLINE void *l25_alloc_ex(size_t size, size_t align)
{
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (size > HAK_L25_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= 16)
        return hak_l25_alloc_inline(size);
    return hak_pool_alloc_aligned_(&hak_l25_pool_, &hak_l25_tc_, size, align);
}

void *hak_l25_alloc(size_t size, size_t align)
{
    if (HAK_LIKELY(align <= 16 && size <= HAK_L25_MAX_SIZE))
        return hak_l25_alloc_inline(size);
    return l25_alloc_ex(size, align);
}

void hak_l25_free(void *p)
{
    hak_tier_free(p, hak_l25_owns_inline, hak_l25_free_owned, hak_pool_bad_free_,
                  "invalid pointer (not an L25 block)");
}

size_t hak_l25_usable_size(const void *p)
{
    return hak_tier_usable_size(p, hak_l25_owns_inline, hak_l25_usable_owned);
}

size_t hak_l25_max_align(size_t size)
{
    return size <= HAK_L25_MAX_SIZE ? hak_pool_max_align_(&hak_l25_pool_, size) : 0;
}

void hak_l25_trim(void) { hak_pool_trim_(&hak_l25_pool_, &hak_l25_tc_); }
static void l25_flush(void) { hak_pool_flush_(&hak_l25_pool_, &hak_l25_tc_); }
static size_t l25_committed_peak(void) { return hak_pool_committed_peak_(&hak_l25_pool_); }

void hak_l25_thread_exit(void) { hak_pool_thread_exit_(&hak_l25_pool_, &hak_l25_tc_); }

void hak_l25_get_stats(hak_pool_stats_t *out) { hak_pool_stats_(&hak_l25_pool_, out); }
static size_t l25_bytes_in_use(void) { return hak_pool_bytes_in_use_(&hak_l25_pool_, &hak_l25_tc_); }
static bool l25_validate(void) { return hak_pool_validate_(&hak_l25_pool_) == 0; }

#else /* HAK_PLATFORM_ARENA: no L25 pool  */

void *hak_l25_alloc(size_t size, size_t align)
{
    (void)size;
    (void)align;
    errno = ENOMEM;
    return NULL;
}
void hak_l25_free(void *p)
{
    if (p)
        hak_report_failure("free", "invalid pointer (not an L25 block)", p);
}
size_t hak_l25_usable_size(const void *p)
{
    (void)p;
    return 0;
}
size_t hak_l25_max_align(size_t size)
{
    (void)size;
    return 0;
}
void hak_l25_trim(void) {}
static void l25_flush(void) {}
static size_t l25_committed_peak(void) { return 0; }
void hak_l25_thread_exit(void) {}
void hak_l25_get_stats(hak_pool_stats_t *out) { *out = (hak_pool_stats_t){0}; }
static size_t l25_bytes_in_use(void) { return 0; }
static bool l25_validate(void) { return true; }

#endif

bool hak_l25_owns(const void *p) { return hak_l25_owns_inline(p); }

/* ----------------------------------------------------------- descriptor */

static void l25_tier_stats(hak_tier_stats_t *out)
{
    hak_pool_stats_t s;
    hak_l25_get_stats(&s);
    hak_pool_tier_stats_(&s, out);
}

static int l25_counters(hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX])
{
    hak_pool_stats_t s;
    hak_l25_get_stats(&s);
    return hak_pool_counters_of(&s, out);
}

/* The pool registers its own fork participant and thread-exit hook with
 * the platform when it is first used (hak_pool_init_): the descriptor
 * carries neither (docs/design.md, "The tier interface"). */
const hak_tier_vtable_t hak_l25_vtable = {
    .name = "l25",
    .max_size = HAK_L25_MAX_SIZE,
    .alloc = hak_l25_alloc,
    .free = hak_l25_free,
    .usable_size = hak_l25_usable_size,
    .owns = hak_l25_owns,
    .trim = hak_l25_trim,
    .flush = l25_flush,
    .stats = l25_tier_stats,
    .bytes_in_use = l25_bytes_in_use,
    .committed_peak = l25_committed_peak,
    .counters = l25_counters,
    .validate = l25_validate,
};
