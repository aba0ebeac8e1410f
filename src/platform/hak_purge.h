// SPDX-License-Identifier: MIT
/* hak_purge.h - when freed pages go back to the OS: one policy for every
 * tier (docs/design.md, "Memory return").
 *
 * A tier keeps the pages its free blocks leave behind ("dirty": free but
 * still committed: tiny's free slabs, the pools' free pages, the large
 * tier's cached mappings) on lists in the order they became free, each
 * unit stamped with hak_purge_stamp(). The policy decides when they go
 * back:
 *   - by age: a unit that stayed dirty for the purge delay
 *     (HAKMEM_PURGE_DELAY_MS, default 1000 ms) is given back on the next
 *     poll; delay 0 gives every unit back at the next poll (at once, since
 *     the slow path that made it dirty polls before it returns); delay -1
 *     never gives back by age;
 *   - by bound: the dirty bytes of all tiers together never stay above the
 *     budget, floor + fraction x the peak bytes in use of the last two
 *     epochs (HAKMEM_PURGE_BUDGET, percent, default 100; the floor is
 *     8 MiB, or mallopt(M_TRIM_THRESHOLD): the slack that layout and
 *     caches add to a burst's pages); past it, the oldest units go back
 *     until the dirty bytes are 1/16 under it. An epoch is the delay,
 *     or 1 s when the delay is 0 or -1. Measured against the recent peak,
 *     a burst freed and allocated again keeps its pages; a heap that
 *     shrank for good is back within the bound two epochs later;
 *   - a pass that gave back memory by age also shrinks the calling
 *     thread's caches (hak_shrink_fn): the bounds the growth rules gave its
 *     bins were for a heap that is gone;
 *   - hak_purge_trim() (malloc_trim, after its tiers' trims sent the
 *     caller's caches home) gives back every dirty unit of every tier now;
 *     hak_purge_oom() does the same, the caller's caches sent home first,
 *     before an allocation that found no memory tries again.
 *
 * Polls run on slow paths only (refills, drains, span and slab releases,
 * the large tier, thread exit), with no lock held: they read two counters
 * and, when there are dirty pages, the coarse clock (vDSO). Nothing is
 * added to the malloc/free fast paths. Tiers register a purger: a function
 * that gives back, oldest first, the units stamped at or before a cutoff,
 * and takes its own locks.
 */
#ifndef HAK_PURGE_H
#define HAK_PURGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hak_platform.h"

#define HAK_PURGE_DELAY_DEFAULT_MS 1000
#define HAK_PURGE_BUDGET_DEFAULT_PCT 100
#define HAK_PURGE_FLOOR_DEFAULT ((size_t)8 << 20)
#define HAK_PURGE_EPOCH_IDLE_MS 1000 /* the epoch when the delay is 0 or -1 */

/* A tier's purger: give back dirty units stamped at or before `cutoff`
 * (every unit when `all`), oldest first, until at least `want` bytes went
 * back or none is left; return the bytes given back. Called with no
 * hakmem lock held; takes the tier's own. */
typedef size_t (*hak_purger_fn)(uint32_t cutoff, bool all, size_t want);

/* A tier's shrinker, or NULL: the calling thread's cache back to its
 * starting bounds, its blocks and the blocks parked in the tier's central
 * lists sent home, so that the pages they kept in use can become free and
 * age. Run by a pass that gave back memory by age with a delay over 0 (the
 * heap shrank: bins that grew hold blocks of pages nobody uses), on the
 * thread that ran it, and ahead of hak_purge_oom's purge of everything
 * (malloc_trim's tier trims do the same themselves); no hakmem lock held
 * but the pass's own. */
typedef void (*hak_shrink_fn)(void);

/* Register a purger and its tier's shrinker (at most 8; a second
 * registration is a no-op). Returns 0 or -1. */
int hak_purge_register(hak_purger_fn fn, hak_shrink_fn shrink);

typedef struct hak_purge_state {
    size_t dirty;          /* bytes of dirty units, every tier */
    size_t used;           /* bytes of pages holding live blocks, every tier */
    size_t peak_cur;       /* the largest `used` of this epoch ... */
    size_t peak_prev;      /* ... and of the one before */
    uint32_t next_tick;    /* the next poll that looks at ages */
    uint32_t epoch_start;
    size_t budget_seen;    /* the budget as the last run computed it */
    int64_t delay_ms;      /* options, set once at start (hak_purge_configure) */
    uint32_t budget_pct;
    size_t floor;
    size_t cache_max;      /* the large tier caches freed mappings up to this size */
    size_t peak_all;       /* the largest `used` since load (HAKMEM_STATS) */
} hak_purge_state_t;
extern hak_purge_state_t hak_purge_;

/* Options, read once at start by dispatch (docs/options.md); a tier built
 * alone keeps the defaults. delay_ms < -1 or budget_pct > 10000 is refused
 * (returns -1, nothing changes). */
int hak_purge_configure(int64_t delay_ms, long budget_pct);
void hak_purge_set_floor(size_t bytes);     /* mallopt(M_TRIM_THRESHOLD) */
void hak_purge_set_cache_max(size_t bytes); /* mallopt(M_MMAP_THRESHOLD) */

/* The policy clock, in ms (wraps after 49 days: compare with
 * hak_purge_expired). Tests inject their own (tests/common/ht_purge.h). */
uint32_t hak_purge_stamp(void);

/* true if a unit stamped `stamp` is old enough for `cutoff`. */
HAK_INLINE bool hak_purge_expired(uint32_t stamp, uint32_t cutoff)
{
    return (int32_t)(stamp - cutoff) <= 0;
}

/* Accounting, from the tiers' slow paths. */
HAK_INLINE void hak_purge_dirty_add(size_t b) { __atomic_fetch_add(&hak_purge_.dirty, b, __ATOMIC_RELAXED); }
HAK_INLINE void hak_purge_dirty_sub(size_t b) { __atomic_fetch_sub(&hak_purge_.dirty, b, __ATOMIC_RELAXED); }
HAK_INLINE void hak_purge_used_sub(size_t b) { __atomic_fetch_sub(&hak_purge_.used, b, __ATOMIC_RELAXED); }
/* Pages went into use (a slab or span formed, a large block mapped): one
 * clock read per slab, span or large block, to keep the peaks' epochs. */
void hak_purge_used_add(size_t b);

/* The budget now (bytes of dirty units the tiers may keep). */
size_t hak_purge_budget(void);

HAK_INTERNAL void hak_purge_run_(void);
extern __thread uint32_t hak_purge_polls_ HAK_INTERNAL;
#define HAK_PURGE_POLL_EVERY 8 /* slow paths between clock reads, per thread */

/* The poll: call from slow paths with no lock held. Nothing dirty: return.
 * Dirty within the budget: every HAK_PURGE_POLL_EVERY-th poll of a thread
 * looks at the clock (ages need no better grain than a few slow paths). */
HAK_INLINE void hak_purge_poll(void)
{
    size_t d = __atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED);
    if (HAK_LIKELY(d == 0))
        return;
    if (HAK_LIKELY(++hak_purge_polls_ % HAK_PURGE_POLL_EVERY != 0) &&
        d <= __atomic_load_n(&hak_purge_.budget_seen, __ATOMIC_RELAXED))
        return;
    hak_purge_run_();
}

/* Give back every dirty unit of every tier now; the bytes given back. */
size_t hak_purge_trim(void);
/* An allocation found no memory: the calling thread's caches home
 * (hak_shrink_fn), then what hak_purge_trim() does, unless a pass is
 * running (then nothing: it may be the caller's own, interrupted by a
 * signal); true if anything went back (worth one more try). */
bool hak_purge_oom(void);

#endif /* HAK_PURGE_H */
