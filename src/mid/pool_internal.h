// SPDX-License-Identifier: MIT
/* pool_internal.h - the engine shared by the mid pool and the L25 pool:
 * chunks, spans, class lists, thread caches. Each tier (mid.c, l25.c) is
 * one instance (hak_pool_t) with its own class table, chunk tag, locks and
 * thread cache; the code here and in pool.c is written once for both.
 *
 * Memory: chunks of HAK_CHUNK_SIZE (2 MiB), aligned to their size, tagged
 * in the platform chunk map (HAK_TAG_MID or HAK_TAG_L25). A chunk is 32
 * pages of 64 KiB; page 0 holds the chunk header (this file's
 * hak_pool_chunk_t), the rest are handed out as spans: runs of pages that
 * serve one size class each. No block has a header.
 *
 *   chunk (2 MiB, aligned)
 *   +-----------+----------+----------+----------+-- ... --+----------+
 *   | page 0    | page 1   | page 2   | page 3   |         | page 31  |
 *   | header    | span A (class c, 1 page)       |         |          |
 *   |           |          | span B (class d, 2 pages)     |         |
 *   +-----------+----------+----------+----------+-- ... --+----------+
 *   header: magic, page bitmaps, pages[32] (one descriptor per page)
 *
 *   span:    [block 0][block 1] ... [block n-1][tail]
 *            block i = base + i * stride (base = the span's first byte)
 *
 * From any address p of the pool the span is found in O(1):
 *   chunk = p & ~(2 MiB - 1);  span = chunk->pages[(p >> 16) & 31].head
 * (every page descriptor of a span points at the span's first one; free
 * pages and page 0 hold NULL), and the block index without a division:
 *   i = ((p - base) * inv) >> 42   (inv = 2^42 / stride + 1: exact for
 *   offsets below 2^21 and strides below 2^21, see docs/mid.md)
 * so a pointer inside a block (an over-aligned allocation) resolves to it.
 *
 * Where blocks live (the tcmalloc design, as in the tiny tier):
 *   thread cache (TLS, one free list per class, no lock)
 *     <-> spans (per span free list + bump carving, under the class lock)
 *     <-> chunks (free page runs, under the pool lock)
 * A block freed by any thread goes into that thread's cache; above its
 * bound the older half is parked as one batch in the class's central list
 * (hak_central.h, shared with the tiny tier; up to HAK_POOL_CENTRAL_MAX),
 * which the next refill
 * takes whole; a full list, or a shrinking class (spills released
 * HAK_CENTRAL_SHRINK spans with none taken since), sends the blocks
 * home to their spans instead. Thread exit, trim and the fork child send
 * parked batches home. An emptied span goes back to
 * its chunk at once; free pages stay committed ("dirty") until the purge
 * policy (hak_purge.h) has the pool's purger decommit them, by age or
 * past the budget; an emptied chunk, once purged, is unmapped unless the
 * pool keeps fewer than params->keep_empty empty chunks (docs/mid.md,
 * "Memory return").
 *
 * Every free list (a bin, a parked batch, a span's free list) links its
 * blocks through their first word (hak_link.h): at validation=full encoded
 * with the process's secret and checked before it is followed (pool.c,
 * "free-list links").
 *
 * Lock order: class lock (central[c].lock) -> pool lock (pool->lock). The
 * registry of thread caches (tcs, hak_tcache_registry.h) has its own lock,
 * never held with the others except by the fork handlers, which take the
 * init lock, the registry's, then every class lock, then the pool lock.
 */
#ifndef HAK_POOL_INTERNAL_H
#define HAK_POOL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "hak_central.h"
#include "hak_front.h"
#include "hak_link.h"
#include "hak_platform.h"
#include "hak_pool_stats.h"
#include "hak_purge.h"
#include "hak_tcache_registry.h"
#include "hak_tier.h"

#define HAK_POOL_PAGE_SHIFT  16
#define HAK_POOL_PAGE_SIZE   ((size_t)1 << HAK_POOL_PAGE_SHIFT)        /* 64 KiB */
#define HAK_POOL_PAGES       (HAK_CHUNK_SIZE >> HAK_POOL_PAGE_SHIFT)  /* 32 */
#define HAK_POOL_WIDE_PAGES  15  /* a wide span's pages at most (pool.c, span geometry) */
#define HAK_POOL_MAX_CLASSES 50    /* mid: 49 by size + 1 for alignment */
#define HAK_POOL_MAX_BLOCKS  64    /* blocks per span (a 64-bit state word) */
#define HAK_POOL_INV_SHIFT   42
#define HAK_POOL_NO_CLASS    0xFFu
#define HAK_POOL_CHUNK_MAGIC 0x4C4F4F50u /* "POOL" */

/* A page descriptor; the first page's descriptor of a span is the span. */
typedef struct hak_pool_span {
    hak_unit_t u;                /* first: its free list (blocks home), carving, counts and
                                    partial-list links, which the central lists keep
                                    (hak_central.h); block 0 = u.base, the span's first byte */
    uint64_t inv;                /* 2^42 / stride + 1 */
    uint8_t cls;                 /* HAK_POOL_NO_CLASS when the page is not a span head */
    uint8_t npages;
    uint8_t has_aligned;         /* an interior (over-aligned) pointer was handed out */
    uint8_t zero;                /* formed on decommitted pages: its blocks not carved yet read as zero */
    uint32_t freed_at;           /* page free and dirty: when it became free (hak_purge_stamp) */
    struct hak_pool_span *head;  /* the span holding this page; NULL: page free or header */
#if HAK_VALIDATION >= 2
    uint64_t live;                              /* bit i: block i is with the user */
    uint16_t align_off[HAK_POOL_MAX_BLOCKS];    /* interior offset / 16 of block i, 0 = none */
#endif
} hak_pool_span_t;

typedef struct hak_pool_chunk {
    uint32_t magic;
    uint32_t slot;               /* its entry in the pool's directory */
    struct hak_pool *pool;
    size_t hdr_dec;              /* bytes of page 0 decommitted at creation */
    hak_pool_span_t pages[HAK_POOL_PAGES];
} hak_pool_chunk_t;

/* A chunk's page bitmaps, in the pool's directory (one dense array for
 * every chunk) rather than in its header: span placement compares many
 * chunks, and reading their headers was a cache miss each (a 32-64 KiB
 * burst spent three quarters of its last-level read misses there). */
typedef struct hak_pool_dirent {
    uint32_t free_mask;          /* bit i: page i free (bit 0, the header, never) */
    uint32_t dec_mask;           /* bit i: page i decommitted */
    uint32_t nfree;              /* free pages: the bits of free_mask */
} hak_pool_dirent_t;

/* The chunk and the span that hold p (p owned by the pool). */
HAK_INLINE hak_pool_chunk_t *hak_pool_chunk_of(const void *p)
{
    return (hak_pool_chunk_t *)((uintptr_t)p & ~(uintptr_t)(HAK_CHUNK_SIZE - 1));
}
HAK_INLINE hak_pool_span_t *hak_pool_span_of(const void *p)
{
    return hak_pool_chunk_of(p)->pages[((uintptr_t)p >> HAK_POOL_PAGE_SHIFT) & (HAK_POOL_PAGES - 1)].head;
}
/* Index of the block of span s that holds p (p inside the span). */
HAK_INLINE size_t hak_pool_index(const hak_pool_span_t *s, const void *p)
{
    return (size_t)(((uint64_t)((const uint8_t *)p - s->u.base) * s->inv) >> HAK_POOL_INV_SHIFT);
}

/* ------------------------------------------------------- thread caches */

enum { HAK_POOL_TC_NEW = 0, HAK_POOL_TC_LIVE = 1, HAK_POOL_TC_DEAD = 2 };

/* Per-thread cache: the pool's classes' bins of the shared front end
 * (hak_front.h), and what the pool keeps beside them. */
typedef struct hak_pool_tcache {
    hak_bin_t *bins;             /* the thread's hak_bins_ + params->kind0, set with the cache
                                    (registry walkers and the fork child reach them through it) */
    hak_tcreg_node_t reg;        /* in the pool's registry of caches (fork adoption) */
    uint32_t state;
    /* Bins grow under contention (hak_bound_grow): contended refills and
     * drains per class since the last growth, and the sum of the bins'
     * bounds in bytes. */
    size_t bound_bytes;
    uint8_t contended[HAK_POOL_MAX_CLASSES];
    /* ... and where a class's bin swings between empty and full
     * (tc_swing): per class the direction of its last refill (0) or drain
     * (1) in the top bit, a count of direction changes below; and the
     * bytes the bounds grew by that rule. */
    size_t swing_bytes;
    uint8_t swing[HAK_POOL_MAX_CLASSES];
    uint8_t ramp[HAK_POOL_MAX_CLASSES]; /* refills so far (slow start, hak_front_ramp) */
    uint8_t fit[HAK_POOL_MAX_CLASSES];  /* larger blocks taken in a row (hak_front_refill_fit) */
    /* A capped pool's (params->tc_cap): the bytes of bound lent to the
     * bins, and the class whose bound goes back first when they pass the
     * cap (round robin). */
    size_t cap_bytes;
    unsigned cap_next;
} hak_pool_tcache_t;


/* --------------------------------------------------------- the instance */

/* What a tier says about itself (constant). */
typedef struct hak_pool_params {
    const char *name;            /* "mid", "L25" */
    unsigned tag;                /* HAK_TAG_MID / HAK_TAG_L25 */
    unsigned kind0;              /* page kind (and front-end bin) of class 0: HAK_KIND_MID0 / L250 */
    unsigned nclasses;           /* classes, including those only for alignment */
    unsigned nsized;             /* classes served by size (the first ones) */
    const uint32_t *strides;     /* nclasses strides, increasing */
    size_t max_size;             /* largest request served */
    size_t cache_bytes;          /* thread cache bound per class, in bytes */
    unsigned cache_min, cache_max; /* ... and in blocks */
    unsigned span_min_blocks;    /* a span holds at least this many blocks ... */
    size_t span_max_bytes;       /* ... unless it would pass this size */
    size_t keep_empty;           /* empty, purged chunks kept mapped (against map/unmap churn) */
    size_t swing_budget;         /* bytes of bound the swing rule (pool.c, tc_swing) may add
                                    per thread, a bin growing so up to cache_max blocks
                                    (more for blocks under 4 KiB: class_setup) */
    size_t tc_cap;               /* the bytes a thread's bins of this pool may hold in all
                                    (0: no cap; pool.c, tc_cap_grant) */
    uint32_t wide_below;         /* classes of smaller strides take wide spans when busy
                                    (pool.c, span geometry; 0: none) */
    bool park;                   /* drains park batches in the central lists (else home at once) */
    uint32_t fit_below;          /* a class of a smaller stride takes a larger class's free
                                    block before it carves a new one (hak_front_refill_fit) */
    const char *msg_no_span;     /* failure reasons */
    const char *msg_not_block;
    const char *msg_not_start;
} hak_pool_params_t;

/* The parameters a pool's names give, for its g_params: NAME as its macros
 * spell it (MID: HAK_TAG_MID, HAK_KIND_MID0, HAK_MID_NCLASSES, HAK_MID_NSIZED,
 * HAK_MID_MAX_SIZE), `label` as its reports do, beside its class table. */
#define HAK_POOL_IDENTITY(NAME, label, table)                                                           \
    .name = label, .tag = HAK_TAG_##NAME, .kind0 = HAK_KIND_##NAME##0, .nclasses = HAK_##NAME##_NCLASSES, \
    .nsized = HAK_##NAME##_NSIZED, .strides = table, .max_size = HAK_##NAME##_MAX_SIZE

/* Derived per class at init. */
typedef struct hak_pool_class {
    uint32_t stride;
    uint32_t capacity;           /* blocks per span */
    uint32_t nat_align;          /* every block of the class is aligned to this */
    uint32_t bin_max;            /* thread cache bound */
    uint32_t swing_max;          /* ... and what the swing rule may grow it to (pool.c, class_setup) */
    uint64_t inv;
    uint8_t npages;              /* pages per span */
    uint8_t wide_pages;          /* ... once the class is busy (pool.c, span geometry) */
    uint16_t wide_capacity;      /* blocks per such span */
    uint8_t align_pages;         /* span start aligned to this many pages */
    uint8_t fit_reach;           /* classes after this one that may lend it a block */
} hak_pool_class_t;

#define HAK_POOL_CENTRAL_MAX 8    /* parked batches per class */


typedef struct hak_pool_counters {
    size_t chunks, spans_in_use, bytes_mapped, bytes_decommitted;
    size_t refills, drains, spills, span_releases, chunk_unmaps, bytes_purged;
} hak_pool_counters_t; /* refills, drains and spills: the sums of the classes' counters */

/* Where a class's spans were released last (pool.c, span_acquire): the
 * next span of the class goes back to the same pages while they are free
 * and committed, so that its blocks fall where the blocks before them
 * were written (those 4 KiB pages are resident already), instead of wandering
 * over other free pages. A hint is checked against the directory before
 * use: its chunk may have gone, its pages been taken or purged. */
#define HAK_POOL_HINTS 8
typedef struct hak_pool_hint {
    struct hak_pool_chunk *ch;
    uint32_t slot;   /* ch's directory slot when the hint was made */
    uint16_t start;  /* first page of the span */
    uint16_t npages; /* its pages (a class's spans have two geometries: pool.c) */
} hak_pool_hint_t;

/* The per-class state of a pool, apart from its constant fields: a
 * zero-initialised (bss) object, so that a program that never uses the
 * pool does not carry ~11 KiB of initialised data per pool (resident in
 * every process, counted in its RSS). */
typedef struct hak_pool_tables {
    hak_pool_class_t cls[HAK_POOL_MAX_CLASSES];
    hak_central_t central[HAK_POOL_MAX_CLASSES];
    /* Per class, a stack of the last HAK_POOL_HINTS releases (older ones
     * overwritten); pool lock. */
    hak_pool_hint_t hint[HAK_POOL_MAX_CLASSES][HAK_POOL_HINTS];
    uint8_t nhint[HAK_POOL_MAX_CLASSES], hint_top[HAK_POOL_MAX_CLASSES];
    uint32_t spans[HAK_POOL_MAX_CLASSES]; /* the class's spans in use (pool lock) */
} hak_pool_tables_t;

typedef struct hak_pool {
    const hak_pool_params_t *pr;
    const hak_fork_ops_t *fork_ops;
    void (*thread_exit)(void);   /* registered with hak_thread_exit_register */
    hak_purger_fn purger;        /* registered with hak_purge_register: calls hak_pool_purge_ */
    hak_shrink_fn shrink;        /* ... with it: hak_pool_shrink_ for the calling thread */
    struct hak_pool_tables *t;   /* the per-class state, zero until init */
    hak_lock_t lock;             /* chunks, the directory and page descriptors' head */
    /* The directory: every chunk and its bitmaps, in the order they were
     * mapped (an unmapped chunk's entry takes the last one's place), in
     * one mapping of dir_cap entries of each array. */
    hak_pool_dirent_t *dir;
    hak_pool_chunk_t **dir_chunk;
    uint32_t ndir, dir_cap;
    size_t nempty;               /* chunks with no span */
    size_t dirty;                /* bytes of free pages still committed */
    size_t span_bytes;           /* bytes of pages in spans */
    hak_tcreg_t tcs;             /* every thread's cache */
    hak_lock_t init_lock;
    int init_done;
    hak_pool_counters_t st;
    size_t committed_peak; /* noted before the committed bytes fall (HAKMEM_STATS) */
} hak_pool_t;

/* ---------------------------------------------------- slow paths (pool.c) */

void hak_pool_init_(hak_pool_t *pool) HAK_INTERNAL;
/* The pool's purger (hak_purge.h): decommit free pages that became free at
 * or before cutoff (all: every one), oldest chunks first, until `want`
 * bytes went back; unmap empty chunks so purged past keep_empty (all:
 * every one). */
size_t hak_pool_purge_(hak_pool_t *pool, uint32_t cutoff, bool all, size_t want) HAK_INTERNAL;
void *hak_pool_alloc_slow_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls) HAK_INTERNAL;
/* calloc's block of class cls, `size` bytes of it zero: one not carved yet
 * from a span formed on decommitted pages is not written at all (its pages
 * stay untouched until the program writes them); any other is cleared. */
void *hak_pool_alloc_zero_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls, size_t size) HAK_INTERNAL;
void hak_pool_free_slow_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p, unsigned cls) HAK_INTERNAL;
/* p is not the start of a block of its span (or lies past its last block):
 * an over-aligned pointer, or an invalid one (validation none/magic). */
void hak_pool_free_interior_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p) HAK_INTERNAL;
/* validation=full: every check, then the free. */
void hak_pool_free_checked_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p) HAK_INTERNAL;
/* true if p passes the checks of the build's level; otherwise reported as
 * a failure of `op` ("realloc", ...). full: p is exactly a live block's
 * pointer; magic: free would take it (a block start, or a pointer into a
 * carved block of a span that placed an aligned one); none: always. */
bool hak_pool_check_live_(hak_pool_t *pool, const void *p, const char *op) HAK_INTERNAL;
/* validation=full: pop the head of tc's non-empty bin of class cls with
 * every check (its link, that it is a free block of the class), the block
 * marked live; a corrupted link or block is reported and the rest of the
 * bin dropped (pool.c, "free-list links"). */
void *hak_pool_pop_checked_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls) HAK_INTERNAL;
void hak_pool_bad_free_(void *p, const char *reason) HAK_INTERNAL;
/* size and align already checked (align a power of two above 16). */
void *hak_pool_alloc_aligned_(hak_pool_t *pool, hak_pool_tcache_t *tc, size_t size, size_t align) HAK_INTERNAL;
/* The same, always through an interior pointer of a class that is not
 * naturally aligned to `align` (when force_interior; for the tests: the
 * mid pool places every alignment naturally, see docs/mid.md). */
void *hak_pool_alloc_aligned_ex_(hak_pool_t *pool, hak_pool_tcache_t *tc, size_t size, size_t align,
                                 bool force_interior) HAK_INTERNAL;
size_t hak_pool_max_align_(hak_pool_t *pool, size_t size) HAK_INTERNAL;
void hak_pool_thread_exit_(hak_pool_t *pool, hak_pool_tcache_t *tc) HAK_INTERNAL;
void hak_pool_trim_(hak_pool_t *pool, hak_pool_tcache_t *tc) HAK_INTERNAL;
/* malloc_trim's first half (tc's cache and the central lists sent home,
 * tc's bounds back to their start), and the pool's shrinker (hak_purge.h). */
void hak_pool_shrink_(hak_pool_t *pool, hak_pool_tcache_t *tc) HAK_INTERNAL;
/* The calling thread's cached blocks home to their spans, nothing more. */
void hak_pool_flush_(hak_pool_t *pool, hak_pool_tcache_t *tc) HAK_INTERNAL;
/* The highest committed bytes of the pool since load. */
size_t hak_pool_committed_peak_(hak_pool_t *pool) HAK_INTERNAL;
void hak_pool_fork_prepare_(hak_pool_t *pool) HAK_INTERNAL;
void hak_pool_fork_parent_(hak_pool_t *pool) HAK_INTERNAL;
void hak_pool_fork_child_(hak_pool_t *pool, hak_pool_tcache_t *self) HAK_INTERNAL;
void hak_pool_counters_(hak_pool_t *pool, hak_pool_counters_t *out) HAK_INTERNAL;
/* Bytes of blocks with the user (mallinfo; takes every lock of the pool). */
size_t hak_pool_bytes_in_use_(hak_pool_t *pool, hak_pool_tcache_t *tc) HAK_INTERNAL;
/* The public statistics of a pool, and the tier-vtable view of them. */
void hak_pool_stats_(hak_pool_t *pool, hak_pool_stats_t *out) HAK_INTERNAL;
void hak_pool_tier_stats_(const hak_pool_stats_t *s, hak_tier_stats_t *out) HAK_INTERNAL;
/* Walk every structure of the pool and check its invariants (tests).
 * Returns 0, or the number of violations found. Takes every lock. */
size_t hak_pool_validate_(hak_pool_t *pool) HAK_INTERNAL;

/* ------------------------------------------------- inline building blocks */

/* The calling thread's bin of class cls. */
HAK_INLINE hak_bin_t *hak_pool_bin_(const hak_pool_t *pool, unsigned cls) { return &hak_bins_[pool->pr->kind0 + cls]; }

/* Allocate a block of class cls from the thread cache. */
HAK_INLINE void *hak_pool_pop_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    hak_bin_t *bin = hak_pool_bin_(pool, cls);
    void *b = bin->head;
    if (HAK_UNLIKELY(b == NULL))
        return hak_pool_alloc_slow_(pool, tc, cls);
#if HAK_VALIDATION >= 2
    return hak_pool_pop_checked_(pool, tc, cls);
#else
    bin->head = hak_link_get(b);
    bin->room++;
    return b;
#endif
}

/* Give block b (a block start) of class cls to the thread cache. */
HAK_INLINE void hak_pool_push_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *b, unsigned cls)
{
    hak_bin_t *bin = hak_pool_bin_(pool, cls);
    hak_link_set(b, bin->head);
    bin->head = b;
    if (HAK_UNLIKELY(--bin->room < 0))
        hak_pool_free_slow_(pool, tc, b, cls);
}

/* Free an owned pointer (hak_chunk_tag(p) is the pool's tag). */
HAK_INLINE void hak_pool_free_owned_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p)
{
#if HAK_VALIDATION >= 2
    hak_pool_free_checked_(pool, tc, p);
#else
    hak_pool_span_t *s = hak_pool_span_of(p);
#if HAK_VALIDATION >= 1
    if (HAK_UNLIKELY(s == NULL)) {
        hak_pool_bad_free_(p, pool->pr->msg_no_span);
        return;
    }
#endif
    size_t i = hak_pool_index(s, p);
    uint8_t *b = s->u.base + i * s->u.stride;
    if (HAK_UNLIKELY((b != (uint8_t *)p) | (HAK_VALIDATION >= 1 && i >= s->u.capacity))) {
        hak_pool_free_interior_(pool, tc, p);
        return;
    }
    hak_pool_push_(pool, tc, p, s->cls);
#endif
}

/* Bytes from p to the end of its block; 0 if p is in no block. */
HAK_INLINE size_t hak_pool_usable_owned_(const void *p)
{
    const hak_pool_span_t *s = hak_pool_span_of(p);
    if (HAK_UNLIKELY(s == NULL))
        return 0;
    size_t i = hak_pool_index(s, p);
    if (HAK_UNLIKELY(i >= s->u.capacity))
        return 0;
    return (size_t)(s->u.base + (i + 1) * s->u.stride - (const uint8_t *)p);
}

#endif
