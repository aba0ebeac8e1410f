// SPDX-License-Identifier: MIT
/* l25_inline.h - the L25 pool's fast paths, for dispatch and for the
 * pool's own entry points (l25.c). Same engine as mid (pool_internal.h).
 *
 * Size classes (strides, KiB; docs/mid.md has the waste of each), 8 per
 * doubling (at most 12.5% waste, about 6% on average):
 *   36 40 44 48 52 56 60 64, 72 80 .. 128 (8 KiB steps), 144 .. 256 (16),
 *   288 .. 512 (32), 576 .. 1024 (64)
 * Power-of-two classes (64 KiB .. 1 MiB) have their spans aligned to the
 * stride, so their blocks are naturally aligned (up to 1 MiB).
 */
#ifndef HAK_L25_INLINE_H
#define HAK_L25_INLINE_H

#include <errno.h>

#include "hak_l25.h"
#include "pool_internal.h"

#define HAK_L25_NCLASSES  40
#define HAK_L25_NSIZED    HAK_L25_NCLASSES /* every class is served by size */
#define HAK_L25_LUT_SHIFT 12 /* 4 KiB units */
#define HAK_L25_LUT_SIZE ((HAK_L25_MAX_SIZE >> HAK_L25_LUT_SHIFT) + 1)

/* Class of a request of 4 KiB * u bytes (0 <= u <= 256). */
#define HAK_L25_CLASS_OF_UNITS(u)                                              \
    ((u) <= 9 ? 0 : (u) <= 16 ? (u) - 9 : (u) <= 32 ? 7 + ((u) - 16 + 1) / 2    \
     : (u) <= 64 ? 15 + ((u) - 32 + 3) / 4 : (u) <= 128 ? 23 + ((u) - 64 + 7) / 8 \
     : 31 + ((u) - 128 + 15) / 16)

extern const uint8_t hak_l25_lut_[HAK_L25_LUT_SIZE] HAK_INTERNAL;
extern hak_pool_t hak_l25_pool_ HAK_INTERNAL;
#if !HAK_PLATFORM_ARENA
extern __thread hak_pool_tcache_t hak_l25_tc_ HAK_INTERNAL;
#endif

HAK_INLINE bool hak_l25_owns_inline(const void *p) { return hak_chunk_tag(p) == HAK_TAG_L25; }

/* The class of a request of n <= HAK_L25_MAX_SIZE bytes. */
HAK_INLINE unsigned hak_l25_class_of(size_t n)
{
    return hak_l25_lut_[(n + ((size_t)1 << HAK_L25_LUT_SHIFT) - 1) >> HAK_L25_LUT_SHIFT];
}

/* Allocate n <= HAK_L25_MAX_SIZE bytes (16-byte aligned). */
HAK_INLINE void *hak_l25_alloc_inline(size_t n)
{
#if HAK_PLATFORM_ARENA
    (void)n;
    errno = ENOMEM;
    return NULL;
#else
    return hak_pool_pop_(&hak_l25_pool_, &hak_l25_tc_, hak_l25_class_of(n));
#endif
}

/* Free an owned pointer (hak_l25_owns_inline(p) is true). */
HAK_INLINE void hak_l25_free_owned(void *p)
{
#if HAK_PLATFORM_ARENA
    (void)p;
#else
    hak_pool_free_owned_(&hak_l25_pool_, &hak_l25_tc_, p);
#endif
}

/* Bytes from an owned p to the end of its block. */
HAK_INLINE size_t hak_l25_usable_owned(const void *p) { return hak_pool_usable_owned_(p); }

/* true if p passes the pool's checks at the build's level (full: a live
 * block; magic: what free takes), else reported as `op`. */
HAK_INLINE bool hak_l25_check_live(const void *p, const char *op)
{
#if HAK_PLATFORM_ARENA
    (void)p;
    (void)op;
    return false;
#else
    return hak_pool_check_live_(&hak_l25_pool_, p, op);
#endif
}

#endif
