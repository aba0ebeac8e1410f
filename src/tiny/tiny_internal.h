// SPDX-License-Identifier: MIT
/* tiny_internal.h - the tiny tier's data structures, shared by its files
 * and by the inline fast paths (tiny_inline.h).
 *
 * Memory: SuperSlabs of HAK_CHUNK_SIZE (2 MiB) aligned to their size, each
 * tagged HAK_TAG_TINY in the platform chunk map, cut into slabs of
 * 2^slab_shift bytes (64 KiB; smaller in a small arena). Each slab serves
 * one class while it has blocks out. The SuperSlab header (this struct)
 * sits at the start of slab 0.
 *
 *   SuperSlab (2 MiB, aligned)
 *   +--------------+-----------------+-----------------+-- ... --+
 *   | tiny_ss_t    | slab 0 blocks   | slab 1          |         |
 *   | (header)     |                 |                 |         |
 *   +--------------+-----------------+-----------------+-- ... --+
 *   ^ss            ^ss->slabs[0].base                   (32 slabs)
 *
 *   a slab:  [pad][h|block 0    ][h|block 1    ] ... [h|block n-1 ]
 *            block i's user pointer = base + i * stride, 16-aligned and
 *            aligned to the largest power of two dividing the stride; its
 *            header byte(s) just before it.
 *
 * Where blocks live (the tcmalloc design):
 *   thread cache (TLS, one free list per class, no lock)
 *     <-> central free lists (per class: an array of batches, one lock each)
 *     <-> slabs (per slab free list + bump carving, under the class lock)
 *     <-> SuperSlabs (free slabs, under g_ss_lock)
 * A block freed by any thread goes into that thread's cache; when a cache
 * holds more than its bound, half of it moves to the central list as one
 * batch (O(1) under the class lock), and a full central list spills blocks
 * home to their slabs. So a thread that only frees never piles memory up,
 * and a producer's blocks reach the consumer through the central lists.
 *
 * Lock order: class lock (g_central[c].lock) -> g_ss_lock. The registry of
 * thread caches (hak_tcache_registry.h) has its own lock, never held with
 * the others but by the fork handlers, which take it first.
 */
#ifndef HAK_TINY_INTERNAL_H
#define HAK_TINY_INTERNAL_H

#include "hak_central.h"
#include "hak_front.h"
#include "hak_link.h"
#include "hak_tcache_registry.h"
#include "hak_tier.h"
#include "tiny_classes.h"

#define HAK_TINY_SS_SIZE     HAK_CHUNK_SIZE
#define HAK_TINY_SLAB_SHIFT  16
#define HAK_TINY_MAX_SLABS   (HAK_TINY_SS_SIZE >> HAK_TINY_SLAB_SHIFT) /* 32 */
#define HAK_TINY_SS_MAGIC    0x54494E59u                              /* "TINY" */
#define HAK_TINY_NO_CLASS    0xFFu

typedef struct tiny_slab {
    hak_unit_t u;            /* first: its free list, carving, counts and partial-list links,
                                which the central lists keep (hak_central.h) */
    uint8_t *end;            /* end of the slab's memory */
    uint32_t freed_at;       /* on the dirty list: when it went there (hak_purge_stamp) */
    uint8_t cls;             /* HAK_TINY_NO_CLASS when the slab is free */
    uint8_t decommitted;     /* pages handed back to the OS */
    uint8_t dirty;           /* free, pages still committed: on the dirty list */
    uint8_t index;
#if HAK_VALIDATION >= 2 && !HAK_HEADER_CLASSIDX
    uint8_t *live;           /* one bit per block: allocated (headerless full validation) */
#endif
} tiny_slab_t;

typedef struct tiny_ss {
    uint32_t magic;
    uint32_t nslabs;         /* slabs in this SuperSlab */
    uint32_t nfree;          /* slabs with no class */
    uint32_t ndirty;         /* of which on the dirty list */
    uint32_t slab_shift;
    uint8_t *slab0;          /* address of slab 0's first byte (slab i at slab0 + i << shift) */
    size_t size;             /* bytes mapped */
    struct tiny_ss *next;    /* all SuperSlabs */
    struct tiny_ss *prev;
    tiny_slab_t slabs[HAK_TINY_MAX_SLABS];
} tiny_ss_t;

enum { TINY_TC_NEW = 0, TINY_TC_LIVE = 1, TINY_TC_DEAD = 2 };

/* Per-thread cache: the tiny classes' bins of the shared front end
 * (hak_front.h), and what the tier keeps beside them. */
typedef struct tiny_tcache {
    hak_bin_t *bins;          /* the thread's hak_bins_ + HAK_KIND_TINY0, set with the cache
                                 (registry walkers and the fork child reach them through it) */
    hak_tcreg_node_t reg;     /* in the registry of caches (fork adoption, stats) */
    uint32_t state;
    /* Bins grow under contention (hak_bound_grow): refills and
     * drains that found their class lock taken, per class since the last
     * growth, and the sum of the bins' bounds in bytes; and where a bin
     * swings between empty and full (hak_swing_event): per class the
     * direction of its last refill or drain and a count of changes. */
    size_t bound_bytes;
    uint8_t contended[HAK_TINY_NCLASSES];
    uint8_t swing[HAK_TINY_NCLASSES];
    uint8_t ramp[HAK_TINY_NCLASSES];      /* refills so far, up to HAK_FRONT_RAMP_STEPS:
                                             a thread's first take few blocks (slow start) */
} tiny_tcache_t;

#if !HAK_PLATFORM_ARENA
extern __thread tiny_tcache_t hak_tiny_tc_ HAK_INTERNAL;
/* The calling thread's bin of class cls. */
HAK_INLINE hak_bin_t *tiny_bin(unsigned cls) { return &hak_bins_[HAK_KIND_TINY0 + cls]; }
#endif
_Static_assert(HAK_TINY_NCLASSES <= HAK_KIND_MID0 - HAK_KIND_TINY0, "tiny classes fit their page kinds");

#if HAK_PLATFORM_ARENA
/* The arena's SuperSlabs lie at 2 MiB steps from its (64-byte aligned) base. */
extern tiny_ss_t *hak_tiny_arena_ss_ HAK_INTERNAL;
#endif

/* The SuperSlab that holds p (p must be tiny: hak_chunk_tag(p) == TINY). */
HAK_INLINE tiny_ss_t *hak_tiny_ss_of(const void *p)
{
#if HAK_PLATFORM_ARENA
    uintptr_t base = (uintptr_t)hak_tiny_arena_ss_;
    return (tiny_ss_t *)(base + (((uintptr_t)p - base) & ~(uintptr_t)(HAK_TINY_SS_SIZE - 1)));
#else
    return (tiny_ss_t *)((uintptr_t)p & ~(uintptr_t)(HAK_TINY_SS_SIZE - 1));
#endif
}

/* The slab that holds p (p must be tiny), or NULL if p lies past the last
 * slab (arena only). A pointer into the SuperSlab header maps to slab 0:
 * validation=full tells it from a block (hak_tiny_class_checked_). In the
 * posix backend every SuperSlab has 32 slabs of 64 KiB, so the index is
 * two bit operations on p and nothing is loaded for it. */
HAK_INLINE tiny_slab_t *hak_tiny_slab_of(const void *p)
{
    tiny_ss_t *ss = hak_tiny_ss_of(p);
#if HAK_PLATFORM_ARENA
    uintptr_t off = (uintptr_t)p - (uintptr_t)ss->slab0;
    size_t i = off >> ss->slab_shift;
    return HAK_LIKELY(i < ss->nslabs) ? &ss->slabs[i] : NULL;
#else
    return &ss->slabs[((uintptr_t)p >> HAK_TINY_SLAB_SHIFT) & (HAK_TINY_MAX_SLABS - 1)];
#endif
}

/* ------------------------------------------------------ free-list links
 *
 * A free block's first word links it to the next free block, encoded at
 * validation=full with the per-process secret (hak_link.h, shared with the
 * pools). A decoded link that is not NULL or a 16-aligned tiny address is
 * reported: a write after free cannot steer a later malloc to an address of
 * its choosing. Other levels store the pointer itself. */
HAK_INLINE void tiny_link_set(void *b, void *next) { hak_link_set(b, next); }
#if HAK_VALIDATION >= 2
void *hak_tiny_bad_link_(void *b) HAK_INTERNAL;
HAK_INLINE void *tiny_link_get(void *b)
{
    uintptr_t n = (uintptr_t)hak_link_get(b);
    if (HAK_UNLIKELY(n != 0 && ((n & 15) != 0 || hak_chunk_tag((void *)n) != HAK_TAG_TINY)))
        return hak_tiny_bad_link_(b);
    return (void *)n;
}
#else
HAK_INLINE void *tiny_link_get(void *b) { return hak_link_get(b); }
#endif

/* The class of the slab holding p (posix: the page map's kind of its page,
 * hak_platform.h; HAK_TINY_NO_CLASS for a free slab or a header page). */
HAK_INLINE unsigned hak_tiny_slab_class(const void *p)
{
#if HAK_PLATFORM_ARENA
    const tiny_slab_t *s = hak_tiny_slab_of(p);
    return s ? s->cls : HAK_TINY_NO_CLASS;
#else
    unsigned c = hak_page_kind(p) - HAK_KIND_TINY0;
    return c < HAK_TINY_NCLASSES ? c : HAK_TINY_NO_CLASS;
#endif
}

/* The tier's descriptor (tiny_tier.c), for dispatch's whole-heap jobs. */
extern const hak_tier_vtable_t hak_tiny_vtable HAK_INTERNAL;

/* Slow paths (tiny.c). */
void *hak_tiny_alloc_slow_(unsigned cls) HAK_INTERNAL;
/* Bytes of blocks with the user (the descriptor's bytes_in_use: mallinfo;
 * takes every lock of the tier). */
size_t hak_tiny_bytes_in_use_(void) HAK_INTERNAL;
/* The calling thread's cache to the central lists (the descriptor's
 * flush: hak_thread_flush). */
void hak_tiny_flush_(void) HAK_INTERNAL;
/* The highest committed bytes of the tier since load (the descriptor's
 * committed_peak: HAKMEM_STATS). */
size_t hak_tiny_committed_peak_(void) HAK_INTERNAL;
void hak_tiny_free_slow_(void *p, unsigned cls) HAK_INTERNAL;
void hak_tiny_bad_free_(void *p, const char *reason) HAK_INTERNAL;
unsigned hak_tiny_class_checked_(void *p) HAK_INTERNAL;
/* validation=full: true if p is exactly a live tiny block (else reported as
 * a failure of `op`); always true below full. */
bool hak_tiny_check_live_(const void *p, const char *op) HAK_INTERNAL;
/* validation=full: record that block b of class cls is with the user. */
void hak_tiny_mark_live_(void *b, unsigned cls) HAK_INTERNAL;
/* The smallest class that holds `size` bytes at alignment `align` (a power
 * of two), or -1 if none can place it. */
int hak_tiny_class_aligned_(size_t size, size_t align) HAK_INTERNAL;

#endif
