// SPDX-License-Identifier: MIT
/* mid.c - the mid pool: its class table, its instance of the pool engine
 * (pool.c), its thread cache and its public entry points (hak_mid.h).
 *
 * Parameters (docs/mid.md): 64 KiB pages, spans of at least 8 blocks up to
 * 256 KiB, thread cache 32 KiB per class (8..32 blocks; a bin that swings
 * between empty and full grows to 32, pool.c's tc_swing), one empty chunk
 * kept mapped. A drain parks its batch in the class's central list, or
 * sends it home to the spans when the list is full or the class is
 * shrinking (pool.c); free pages go back under the purge policy. A class
 * below 16 KiB with nothing free takes a free block of a class up to 1.25x
 * larger from the thread's bins before it carves a new one.
 */
#include "mid_inline.h"

#include <errno.h>

#define MID_CACHE_BYTES    (32u << 10)
#define MID_CACHE_MIN      8
#define MID_CACHE_MAX      32
#define MID_SPAN_MIN_BLOCKS 8
#define MID_SPAN_MAX_BYTES ((size_t)256 << 10)
#define MID_KEEP_EMPTY     1
#define MID_FIT_BELOW      (16u << 10)

static const uint32_t g_strides[HAK_MID_NCLASSES] __attribute__((unused)) = {
    1024, 1088, 1152, 1216, 1280, 1344, 1408, 1472,
    1536, 1600, 1664, 1728, 1792, 1856, 1920, 1984,
    2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840,
    4096, 4608, 5120, 5632, 6144, 6656, 7168, 7680,
    8192, 9216, 10240, 11264, 12288, 13312, 14336, 15360,
    16384, 18432, 20480, 22528, 24576, 26624, 28672, 30720,
    32768,
    65536, /* alignment only */
};

#define U(u) ((uint8_t)HAK_MID_CLASS_OF_UNITS(u)) /* explicit: clang checks the untaken arms too */
#define U8(b) U(b), U(b + 1), U(b + 2), U(b + 3), U(b + 4), U(b + 5), U(b + 6), U(b + 7)
#define U64(b) U8(b), U8(b + 8), U8(b + 16), U8(b + 24), U8(b + 32), U8(b + 40), U8(b + 48), U8(b + 56)
const uint8_t hak_mid_lut_[HAK_MID_LUT_SIZE] = {
    U64(0), U64(64), U64(128), U64(192), U64(256), U64(320), U64(384), U64(448), U(512),
};
#undef U64
#undef U8
#undef U
_Static_assert(HAK_MID_LUT_SIZE == 513, "mid size-class table");
_Static_assert(HAK_MID_CLASS_OF_UNITS(512) == HAK_MID_NSIZED - 1, "mid size-class table");
_Static_assert(HAK_MID_NCLASSES <= HAK_KIND_L250 - HAK_KIND_MID0, "mid classes fit their page kinds");

#if !HAK_PLATFORM_ARENA

static void mid_fork_prepare(void) { hak_pool_fork_prepare_(&hak_mid_pool_); }
static void mid_fork_parent(void) { hak_pool_fork_parent_(&hak_mid_pool_); }
static void mid_fork_child(void) { hak_pool_fork_child_(&hak_mid_pool_, &hak_mid_tc_); }
static const hak_fork_ops_t g_fork_ops = {mid_fork_prepare, mid_fork_parent, mid_fork_child};
static size_t mid_purge(uint32_t cutoff, bool all, size_t want) { return hak_pool_purge_(&hak_mid_pool_, cutoff, all, want); }

static const hak_pool_params_t g_params = {
    .name = "mid",
    .tag = HAK_TAG_MID,
    .kind0 = HAK_KIND_MID0,
    .nclasses = HAK_MID_NCLASSES,
    .nsized = HAK_MID_NSIZED,
    .strides = g_strides,
    .max_size = HAK_MID_MAX_SIZE,
    .fit_below = MID_FIT_BELOW,
    .cache_bytes = MID_CACHE_BYTES,
    .cache_min = MID_CACHE_MIN,
    .cache_max = MID_CACHE_MAX,
    .span_min_blocks = MID_SPAN_MIN_BLOCKS,
    .span_max_bytes = MID_SPAN_MAX_BYTES,
    .keep_empty = MID_KEEP_EMPTY,
    .park = true,
    .msg_no_span = "invalid pointer (not in an in-use mid span)",
    .msg_not_block = "invalid pointer (past the last block of its mid span)",
    .msg_not_start = "invalid pointer (not the start of a mid block)",
};

static hak_pool_tables_t g_tables;
hak_pool_t hak_mid_pool_ = {.pr = &g_params, .fork_ops = &g_fork_ops, .thread_exit = hak_mid_thread_exit,
                         .purger = mid_purge, .t = &g_tables};
__thread hak_pool_tcache_t hak_mid_tc_;

static HAK_NOINLINE void *mid_alloc_ex(size_t size, size_t align)
{
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (size > HAK_MID_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= 16)
        return hak_mid_alloc_inline(size);
    return hak_pool_alloc_aligned_(&hak_mid_pool_, &hak_mid_tc_, size, align);
}

void *hak_mid_alloc(size_t size, size_t align)
{
    if (HAK_LIKELY(align <= 16 && size <= HAK_MID_MAX_SIZE))
        return hak_mid_alloc_inline(size);
    return mid_alloc_ex(size, align);
}

void hak_mid_free(void *p)
{
    hak_tier_free(p, hak_mid_owns_inline, hak_mid_free_owned, hak_pool_bad_free_,
                  "invalid pointer (not a mid block)");
}

size_t hak_mid_usable_size(const void *p)
{
    return hak_tier_usable_size(p, hak_mid_owns_inline, hak_mid_usable_owned);
}

size_t hak_mid_max_align(size_t size)
{
    return size <= HAK_MID_MAX_SIZE ? hak_pool_max_align_(&hak_mid_pool_, size) : 0;
}

void hak_mid_trim(void) { hak_pool_trim_(&hak_mid_pool_, &hak_mid_tc_); }
static void mid_flush(void) { hak_pool_flush_(&hak_mid_pool_, &hak_mid_tc_); }
static size_t mid_committed_peak(void) { return hak_pool_committed_peak_(&hak_mid_pool_); }

void hak_mid_thread_exit(void) { hak_pool_thread_exit_(&hak_mid_pool_, &hak_mid_tc_); }

void hak_mid_get_stats(hak_pool_stats_t *out) { hak_pool_stats_(&hak_mid_pool_, out); }
static size_t mid_bytes_in_use(void) { return hak_pool_bytes_in_use_(&hak_mid_pool_, &hak_mid_tc_); }
static bool mid_validate(void) { return hak_pool_validate_(&hak_mid_pool_) == 0; }

#else /* HAK_PLATFORM_ARENA: no mid pool (the arena carves tiny only) */

void *hak_mid_alloc(size_t size, size_t align)
{
    (void)size;
    (void)align;
    errno = ENOMEM;
    return NULL;
}
void hak_mid_free(void *p)
{
    if (p)
        hak_report_failure("free", "invalid pointer (not a mid block)", p);
}
size_t hak_mid_usable_size(const void *p)
{
    (void)p;
    return 0;
}
size_t hak_mid_max_align(size_t size)
{
    (void)size;
    return 0;
}
void hak_mid_trim(void) {}
static void mid_flush(void) {}
static size_t mid_committed_peak(void) { return 0; }
void hak_mid_thread_exit(void) {}
void hak_mid_get_stats(hak_pool_stats_t *out) { *out = (hak_pool_stats_t){0}; }
static size_t mid_bytes_in_use(void) { return 0; }
static bool mid_validate(void) { return true; }

#endif

bool hak_mid_owns(const void *p) { return hak_mid_owns_inline(p); }

/* ----------------------------------------------------------- descriptor */

static void mid_tier_stats(hak_tier_stats_t *out)
{
    hak_pool_stats_t s;
    hak_mid_get_stats(&s);
    hak_pool_tier_stats_(&s, out);
}

static int mid_counters(hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX])
{
    hak_pool_stats_t s;
    hak_mid_get_stats(&s);
    return hak_pool_counters_of(&s, out);
}

/* The pool registers its own fork participant and thread-exit hook with
 * the platform when it is first used (hak_pool_init_): the descriptor
 * carries neither (docs/design.md, "The tier interface"). */
const hak_tier_vtable_t hak_mid_vtable = {
    .name = "mid",
    .max_size = HAK_MID_MAX_SIZE,
    .alloc = hak_mid_alloc,
    .free = hak_mid_free,
    .usable_size = hak_mid_usable_size,
    .owns = hak_mid_owns,
    .trim = hak_mid_trim,
    .flush = mid_flush,
    .stats = mid_tier_stats,
    .bytes_in_use = mid_bytes_in_use,
    .committed_peak = mid_committed_peak,
    .counters = mid_counters,
    .validate = mid_validate,
};
