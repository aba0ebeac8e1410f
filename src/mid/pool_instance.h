// SPDX-License-Identifier: MIT
/* pool_instance.h - one pool instance's glue, written once for the mid and
 * the L25 pool: its hak_pool_t and thread cache, its fork participant and
 * purge hook, its public entry points (hak_mid.h, hak_l25.h: alloc, free,
 * usable size, max_align, trim, thread exit, stats, owns) and its tier
 * descriptor (hak_tier.h). Included once, at the end of mid.c and of l25.c,
 * after the pool's inline header, its class table and its parameters:
 *
 *   POOL_NAME     the pool's name in identifiers: mid, l25 (hak_mid_alloc,
 *                 hak_mid_pool_, hak_mid_tc_, hak_mid_vtable, ...)
 *   POOL_MAX      its largest request (HAK_MID_MAX_SIZE)
 *   POOL_NOT_OURS what free reports for a pointer the pool does not own
 *   POOL_PARAMS   its hak_pool_params_t (not in the arena build)
 *
 * What differs between the pools (classes, geometry, cache bounds) is in
 * their parameters; everything here is the same for both.
 */
#ifndef POOL_NAME
#error "define POOL_NAME, POOL_MAX, POOL_NOT_OURS and POOL_PARAMS before including pool_instance.h"
#endif

#include <errno.h>

#define POOL_CAT_(a, b) a##b
#define POOL_CAT(a, b)  POOL_CAT_(a, b)
#define POOL_STR_(a)    #a
#define POOL_STR(a)     POOL_STR_(a)
/* hak_<pool>_<x>: the pool's own symbols. */
#define POOL_(x) POOL_CAT(POOL_CAT(hak_, POOL_NAME), POOL_CAT(_, x))

#if !HAK_PLATFORM_ARENA

static void pool_fork_prepare(void) { hak_pool_fork_prepare_(&POOL_(pool_)); }
static void pool_fork_parent(void) { hak_pool_fork_parent_(&POOL_(pool_)); }
static void pool_fork_child(void) { hak_pool_fork_child_(&POOL_(pool_), &POOL_(tc_)); }
static const hak_fork_ops_t g_fork_ops = {pool_fork_prepare, pool_fork_parent, pool_fork_child};
static size_t pool_purge(uint32_t cutoff, bool all, size_t want)
{
    return hak_pool_purge_(&POOL_(pool_), cutoff, all, want);
}
extern __thread hak_pool_tcache_t POOL_(tc_);
static void pool_shrink(void) { hak_pool_shrink_(&POOL_(pool_), &POOL_(tc_)); }

static hak_pool_tables_t g_tables;
hak_pool_t POOL_(pool_) = {.pr = &POOL_PARAMS, .fork_ops = &g_fork_ops, .thread_exit = POOL_(thread_exit),
                           .purger = pool_purge, .shrink = pool_shrink, .t = &g_tables};
__thread hak_pool_tcache_t POOL_(tc_);

static HAK_NOINLINE void *pool_alloc_ex(size_t size, size_t align)
{
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (size > POOL_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    if (align <= 16)
        return POOL_(alloc_inline)(size);
    return hak_pool_alloc_aligned_(&POOL_(pool_), &POOL_(tc_), size, align);
}

void *POOL_(alloc)(size_t size, size_t align)
{
    if (HAK_LIKELY(align <= 16 && size <= POOL_MAX))
        return POOL_(alloc_inline)(size);
    return pool_alloc_ex(size, align);
}

void POOL_(free)(void *p) { hak_tier_free(p, POOL_(owns_inline), POOL_(free_owned), hak_pool_bad_free_, POOL_NOT_OURS); }

size_t POOL_(usable_size)(const void *p) { return hak_tier_usable_size(p, POOL_(owns_inline), POOL_(usable_owned)); }

size_t POOL_(max_align)(size_t size) { return size <= POOL_MAX ? hak_pool_max_align_(&POOL_(pool_), size) : 0; }

void POOL_(trim)(void) { hak_pool_trim_(&POOL_(pool_), &POOL_(tc_)); }
void POOL_(thread_exit)(void) { hak_pool_thread_exit_(&POOL_(pool_), &POOL_(tc_)); }
void POOL_(get_stats)(hak_pool_stats_t *out) { hak_pool_stats_(&POOL_(pool_), out); }
static void pool_flush(void) { hak_pool_flush_(&POOL_(pool_), &POOL_(tc_)); }
static size_t pool_committed_peak(void) { return hak_pool_committed_peak_(&POOL_(pool_)); }
static size_t pool_bytes_in_use(void) { return hak_pool_bytes_in_use_(&POOL_(pool_), &POOL_(tc_)); }
static bool pool_validate(void) { return hak_pool_validate_(&POOL_(pool_)) == 0; }

#else /* HAK_PLATFORM_ARENA: no pool (the arena carves tiny blocks only) */

void *POOL_(alloc)(size_t size, size_t align)
{
    (void)size;
    (void)align;
    errno = ENOMEM;
    return NULL;
}
void POOL_(free)(void *p)
{
    if (p)
        hak_report_failure("free", POOL_NOT_OURS, p);
}
size_t POOL_(usable_size)(const void *p)
{
    (void)p;
    return 0;
}
size_t POOL_(max_align)(size_t size)
{
    (void)size;
    return 0;
}
void POOL_(trim)(void) {}
void POOL_(thread_exit)(void) {}
void POOL_(get_stats)(hak_pool_stats_t *out) { *out = (hak_pool_stats_t){0}; }
static void pool_flush(void) {}
static size_t pool_committed_peak(void) { return 0; }
static size_t pool_bytes_in_use(void) { return 0; }
static bool pool_validate(void) { return true; }

#endif

bool POOL_(owns)(const void *p) { return POOL_(owns_inline)(p); }

/* ----------------------------------------------------------- descriptor */

static void pool_tier_stats(hak_tier_stats_t *out)
{
    hak_pool_stats_t s;
    POOL_(get_stats)(&s);
    hak_pool_tier_stats_(&s, out);
}

static int pool_counters(hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX])
{
    hak_pool_stats_t s;
    POOL_(get_stats)(&s);
    return hak_pool_counters_of(&s, out);
}

/* The pool registers its own fork participant and thread-exit hook with
 * the platform when it is first used (hak_pool_init_): the descriptor
 * carries neither (docs/design.md, "The tier interface"). */
const hak_tier_vtable_t POOL_(vtable) = {
    .name = POOL_STR(POOL_NAME),
    .max_size = POOL_MAX,
    .alloc = POOL_(alloc),
    .free = POOL_(free),
    .usable_size = POOL_(usable_size),
    .owns = POOL_(owns),
    .trim = POOL_(trim),
    .flush = pool_flush,
    .stats = pool_tier_stats,
    .bytes_in_use = pool_bytes_in_use,
    .committed_peak = pool_committed_peak,
    .counters = pool_counters,
    .validate = pool_validate,
};

#undef POOL_
#undef POOL_STR
#undef POOL_STR_
#undef POOL_CAT
#undef POOL_CAT_
