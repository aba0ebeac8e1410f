// SPDX-License-Identifier: MIT
/* tiny_inline.h - the tiny tier's fast paths, inlined into dispatch and
 * into the tier's own entry points. One predicted branch each into the
 * out-of-line slow path (tiny.c).
 *
 *   malloc:  class = lut[(n + hdr + 15) >> 4]; pop the thread's bin
 *   free:    owned by chunk map; class from the header byte (or the slab);
 *            push on the thread's bin; over the bound -> drain (slow)
 */
#ifndef HAK_TINY_INLINE_H
#define HAK_TINY_INLINE_H

#include "tiny_internal.h"

/* -Dstats=true: per-request counters (relaxed atomics, process-wide):
 * [0] mallocs served by the fast path, [1] mallocs that took the slow
 * path, [2] frees, [3] frees that took the slow path. */
#if HAK_STATS
extern uint64_t hak_tiny_count_[4] HAK_INTERNAL;
#define HAK_TINY_COUNT(i) __atomic_fetch_add(&hak_tiny_count_[i], 1, __ATOMIC_RELAXED)
#else
#define HAK_TINY_COUNT(i) ((void)0)
#endif

HAK_INLINE bool hak_tiny_owns_inline(const void *p) { return hak_chunk_tag(p) == HAK_TAG_TINY; }

/* Allocate from class `cls` (the caller picked it). */
HAK_INLINE void *hak_tiny_alloc_class(unsigned cls)
{
#if HAK_PLATFORM_ARENA
    return hak_tiny_alloc_slow_(cls);
#else
    hak_bin_t *bin = tiny_bin(cls);
    void *b = bin->head;
    if (HAK_UNLIKELY(b == NULL)) {
        HAK_TINY_COUNT(1);
        return hak_tiny_alloc_slow_(cls);
    }
    bin->head = tiny_link_get(b);
    bin->room++;
#if HAK_VALIDATION >= 2
    if (HAK_UNLIKELY(bin->head == NULL))
        bin->room = (int32_t)bin->max; /* empty: its end, or a corrupted link cut it */
#endif
#if HAK_VALIDATION >= 2 && HAK_HEADER_CLASSIDX
    ((uint8_t *)b)[-1] = (uint8_t)(HAK_TINY_MAGIC_LIVE | cls);
#elif HAK_VALIDATION >= 2
    hak_tiny_mark_live_(b, cls);
#endif
    HAK_TINY_COUNT(0);
    return b;
#endif
}

/* Allocate n <= HAK_TINY_MAX_SIZE bytes. */
HAK_INLINE void *hak_tiny_alloc_inline(size_t n) { return hak_tiny_alloc_class(hak_tiny_class_of(n)); }

/* The class of an owned block, validated as the build asks: at none the
 * header (or slab) is trusted; at magic the magic and the class range are
 * checked; full goes out of line (state, block start, slab agreement).
 * Returns HAK_TINY_NCLASSES if the block was reported bad. */
HAK_INLINE unsigned hak_tiny_class_of_block(void *p)
{
#if HAK_VALIDATION >= 2
    return hak_tiny_class_checked_(p);
#elif HAK_HEADER_CLASSIDX
    unsigned h = ((const uint8_t *)p)[-1];
#if HAK_VALIDATION >= 1
    /* live magic and a class in range, in one compare: h - 0xA0 < 24 */
    unsigned cls = (uint8_t)(h - HAK_TINY_MAGIC_LIVE);
    if (HAK_UNLIKELY(cls >= HAK_TINY_NCLASSES)) {
        hak_tiny_bad_free_(p, "invalid pointer (bad tiny header)");
        return HAK_TINY_NCLASSES;
    }
    return cls;
#else
    return h & HAK_TINY_CLASS_MASK;
#endif
#else
    unsigned cls = hak_tiny_slab_class(p);
#if HAK_VALIDATION >= 1
    if (HAK_UNLIKELY(cls >= HAK_TINY_NCLASSES)) {
        hak_tiny_bad_free_(p, "invalid pointer (not in a live tiny slab)");
        return HAK_TINY_NCLASSES;
    }
#endif
    return cls;
#endif
}

/* Free an owned block (hak_tiny_owns_inline(p) is true). */
HAK_INLINE void hak_tiny_free_owned(void *p)
{
    unsigned cls = hak_tiny_class_of_block(p);
    if (HAK_UNLIKELY(cls >= HAK_TINY_NCLASSES))
        return;
#if HAK_PLATFORM_ARENA
    hak_tiny_free_slow_(p, cls);
#else
    hak_bin_t *bin = tiny_bin(cls);
    tiny_link_set(p, bin->head);
    bin->head = p;
    HAK_TINY_COUNT(2);
    if (HAK_UNLIKELY(--bin->room < 0)) {
        HAK_TINY_COUNT(3);
        hak_tiny_free_slow_(p, cls);
    }
#endif
}

/* Usable bytes of an owned block. */
HAK_INLINE size_t hak_tiny_usable_owned(const void *p)
{
#if HAK_HEADER_CLASSIDX
    unsigned c = ((const uint8_t *)p)[-1] & HAK_TINY_CLASS_MASK;
    if (HAK_UNLIKELY(c >= HAK_TINY_NCLASSES))
        return 0;
    return hak_tiny_usable_of(c);
#else
    unsigned c = hak_tiny_slab_class(p);
    return c < HAK_TINY_NCLASSES ? hak_tiny_usable_of(c) : 0;
#endif
}

#endif
