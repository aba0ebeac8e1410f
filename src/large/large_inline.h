// SPDX-License-Identifier: MIT
/* large_inline.h - the large tier's lock-free lookup, for dispatch's
 * realloc keep test and for the tier's own entry points (large.c).
 *
 *   usable size of p: the registry's bounds, then one seqlock read of its
 *   table (hak_large_registry_try_); a read that met a writer goes out of
 *   line (hak_large_usable_size, which tries again and then takes the lock)
 */
#ifndef HAK_LARGE_INLINE_H
#define HAK_LARGE_INLINE_H

#include "hak_alloc_header.h"
#include "hak_large.h"
#include "hak_large_registry.h"

extern hak_large_registry_t hak_large_reg_ HAK_INTERNAL;

#define HAK_LARGE_RACED ((size_t)-1)

/* The usable bytes of the live large block that starts at p; 0 if none
 * does (NULL, foreign, interior, freed); HAK_LARGE_RACED if the read met a
 * writer (ask hak_large_usable_size). Reads nothing at p, so it answers
 * for a mapping kept registered in a thread's stash too (large.c: a freed
 * sampled block of at most HAK_LARGE_STASH_PAGES pages; dispatch's keep
 * test asks only about sizes the large tier serves, above 1 MiB with every
 * tier built). */
HAK_INLINE size_t hak_large_usable_try_(const void *p)
{
    hak_large_reg_entry_t e;
    if (!hak_large_registry_may_hold_(&hak_large_reg_, p)) /* NULL too: lo is above it */
        return 0;
    int res = hak_large_registry_try_(&hak_large_reg_, (uintptr_t)p, &e);
    if (HAK_UNLIKELY(res < 0))
        return HAK_LARGE_RACED;
    return res && e.method == HAK_METHOD_MMAP ? e.base + e.len - e.key : 0;
}

#endif /* HAK_LARGE_INLINE_H */
