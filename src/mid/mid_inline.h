// SPDX-License-Identifier: MIT
/* mid_inline.h - the mid pool's fast paths, for dispatch and for the
 * pool's own entry points (mid.c). One predicted branch each into the
 * out-of-line slow paths (pool.c).
 *
 *   malloc:  class = lut[(n + 63) >> 6]; pop the thread's bin
 *   free:    span = chunk header's page table; block start by a multiply;
 *            push on the thread's bin; over the bound -> drain (slow)
 *
 * Size classes (strides, bytes; docs/mid.md has the waste of each):
 *   1024, then 64-byte steps up to 1984          (16 per doubling: the hot
 *                                                 1032 and 1094 waste < 6%)
 *   2048 .. 32768, 8 per doubling                (at most 12.5% waste)
 *   65536, only for alignments of 64 KiB
 * Every power of two is a class (no rounding up), and a class whose stride
 * is a power of two has its blocks aligned to it.
 */
#ifndef HAK_MID_INLINE_H
#define HAK_MID_INLINE_H

#include <errno.h>

#include "hak_mid.h"
#include "pool_internal.h"

#define HAK_MID_NSIZED   49 /* classes served by size: 1024 .. 32768 */
#define HAK_MID_NCLASSES 50 /* + 65536 for alignment */
#define HAK_MID_LUT_SHIFT 6
#define HAK_MID_LUT_SIZE ((HAK_MID_MAX_SIZE >> HAK_MID_LUT_SHIFT) + 1)

/* Class of a request of 64*u bytes (u = (n + 63) >> 6, 0 <= u <= 512). */
#define HAK_MID_CLASS_OF_UNITS(u)                                             \
    ((u) <= 16 ? 0 : (u) <= 32 ? (u) - 16                                     \
     : (u) <= 64 ? 16 + ((u) - 32 + 3) / 4 : (u) <= 128 ? 24 + ((u) - 64 + 7) / 8 \
     : (u) <= 256 ? 32 + ((u) - 128 + 15) / 16 : 40 + ((u) - 256 + 31) / 32)

extern const uint8_t hak_mid_lut_[HAK_MID_LUT_SIZE] HAK_INTERNAL;
extern hak_pool_t hak_mid_pool_ HAK_INTERNAL;
#if !HAK_PLATFORM_ARENA
extern __thread hak_pool_tcache_t hak_mid_tc_ HAK_INTERNAL;
#endif

HAK_INLINE bool hak_mid_owns_inline(const void *p) { return hak_chunk_tag(p) == HAK_TAG_MID; }

/* The class of a request of n <= HAK_MID_MAX_SIZE bytes. */
HAK_INLINE unsigned hak_mid_class_of(size_t n) { return hak_mid_lut_[(n + 63) >> HAK_MID_LUT_SHIFT]; }

/* Allocate n <= HAK_MID_MAX_SIZE bytes (16-byte aligned). */
HAK_INLINE void *hak_mid_alloc_inline(size_t n)
{
#if HAK_PLATFORM_ARENA
    (void)n;
    errno = ENOMEM;
    return NULL;
#else
    return hak_pool_pop_(&hak_mid_pool_, &hak_mid_tc_, hak_mid_class_of(n));
#endif
}

/* Free an owned pointer (hak_mid_owns_inline(p) is true). */
HAK_INLINE void hak_mid_free_owned(void *p)
{
#if HAK_PLATFORM_ARENA
    (void)p;
#else
    hak_pool_free_owned_(&hak_mid_pool_, &hak_mid_tc_, p);
#endif
}

/* Bytes from an owned p to the end of its block. */
HAK_INLINE size_t hak_mid_usable_owned(const void *p) { return hak_pool_usable_owned_(p); }

/* true if p passes the pool's checks at the build's level (full: a live
 * block; magic: what free takes), else reported as `op`. */
HAK_INLINE bool hak_mid_check_live(const void *p, const char *op)
{
#if HAK_PLATFORM_ARENA
    (void)p;
    (void)op;
    return false;
#else
    return hak_pool_check_live_(&hak_mid_pool_, p, op);
#endif
}

#endif
