// SPDX-License-Identifier: MIT
/* hak_tier.h - the descriptor each tier exposes (hak_tiny_vtable,
 * hak_mid_vtable, hak_l25_vtable, hak_large_vtable) and dispatch loops
 * over for its whole-heap jobs: trim, statistics, the reports, the thread
 * flush. Declared in the layer every tier depends on, so that dispatch can
 * be built over any subset of tiers. The malloc/free paths never go
 * through it: dispatch calls the tiers' inline fast paths and functions
 * directly. What each operation means and who calls it: docs/design.md,
 * "The tier interface". Below it, the public free and usable size that
 * the tiers of small blocks write alike.
 */
#ifndef HAK_TIER_H
#define HAK_TIER_H

#include <stdbool.h>
#include <stddef.h>

#include "hak_platform.h"

typedef struct hak_tier_stats {
    size_t bytes_mapped;     /* bytes of address space the tier holds */
    size_t bytes_committed;  /* of which not decommitted */
    size_t bytes_in_use;     /* bytes of live blocks, where a counter keeps them (large); else 0 */
    size_t blocks_in_use;    /* live blocks, where counted (large); else 0 */
    size_t allocs, frees;    /* slow-path or total counts, as the tier keeps them */
    size_t thread_caches;    /* threads with a live cache, where counted (tiny); else 0 */
} hak_tier_stats_t;

/* One labelled counter of a tier's line in the HAKMEM_STATS report. */
typedef struct hak_tier_counter {
    const char *label;
    size_t value;
} hak_tier_counter_t;
#define HAK_TIER_COUNTERS_MAX 8

/* flags */
#define HAK_TIER_MMAPPED 1u /* each block is a mapping of its own: glibc's API counts it as
                               its mmapped chunks (mallinfo's hblkhd, malloc_info's "mmap") */

typedef struct hak_tier_vtable {
    const char *name;                            /* as the `tiers` option spells it */
    unsigned flags;
    size_t max_size;                             /* largest request served */

    /* Per block: the tier's own entry points, for composing a tier by
     * hand and for tests. Dispatch calls the functions directly. */
    void *(*alloc)(size_t size, size_t align);   /* align: power of two; NULL + errno */
    void (*free)(void *p);                       /* p owned by the tier */
    size_t (*usable_size)(const void *p);        /* p owned */
    bool (*owns)(const void *p);                 /* by address only */

    /* Whole heap: dispatch calls each for every tier built. Slow paths:
     * they may take every lock of the tier. Those marked optional are
     * NULL in a tier that has nothing to do. */
    void (*trim)(void);                          /* the caller's cache and the shared lists home,
                                                    every free page back to the OS */
    void (*flush)(void);                         /* optional: the caller's cache to the shared
                                                    lists, nothing to the OS */
    void (*stats)(hak_tier_stats_t *out);        /* counters only: no walk */
    size_t (*bytes_in_use)(void);                /* bytes of live blocks (mallinfo's uordblks):
                                                    other threads' caches count as in use */
    size_t (*committed_peak)(void);              /* the most bytes_committed has been */
    int (*counters)(hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX]); /* optional: the tier's
                                                    own counters for the report; returns how many */
    bool (*validate)(void);                      /* optional: walk the tier's structures,
                                                    true if every invariant holds */
} hak_tier_vtable_t;

/* The public free and usable size of a tier that tells its blocks by
 * address (tiny, mid, L25), over its inline ownership test and its paths
 * for an owned block (passed as constants: inlined, direct calls): NULL
 * is nothing; a pointer the tier does not own is reported (free:
 * bad_free(p, not_ours)) or has no size. */
HAK_INLINE void hak_tier_free(void *p, bool (*owns)(const void *), void (*free_owned)(void *),
                              void (*bad_free)(void *p, const char *why), const char *not_ours)
{
    if (p == NULL)
        return;
    if (HAK_UNLIKELY(!owns(p))) {
        bad_free(p, not_ours);
        return;
    }
    free_owned(p);
}

HAK_INLINE size_t hak_tier_usable_size(const void *p, bool (*owns)(const void *),
                                       size_t (*usable_owned)(const void *))
{
    return p != NULL && owns(p) ? usable_owned(p) : 0;
}

#endif
