// SPDX-License-Identifier: MIT
/* hak_link.h - the free-list links of the tiers (tiny, mid, L25): a free
 * block's first word links it to the next free block of its list.
 *
 * At validation=full a link is stored encoded, next ^ &link ^ secret, with
 * one per-process random secret (as mimalloc's secure mode does), so a
 * write after free that puts an address -- or anything else -- into the
 * word decodes to a value that the tier's check refuses (tiny: a 16-aligned
 * tiny address; the pools: a free block start of the list's class or span):
 * it cannot steer a later malloc to an address of its choosing. The
 * encoding lives here, once; the check is the tier's, which knows what its
 * blocks are. Other levels store the pointer itself: a get is one load, a
 * set one store.
 *
 * The secret is set once (hak_link_init) before the first block of any
 * tier exists, whichever tier comes first, and never changes: every link
 * of the process is encoded with the same word. A tier calls hak_link_init
 * in its initialisation, before it makes its first link; a thread that
 * reaches a tier's blocks has passed through that tier's initialisation
 * (a lock or an acquire load after it), so plain loads of the secret see
 * it. */
#ifndef HAK_LINK_H
#define HAK_LINK_H

#include <stdint.h>

#include "hak_platform.h"

#if HAK_VALIDATION >= 2
extern uintptr_t hak_link_secret_ HAK_INTERNAL;
void hak_link_init(void) HAK_INTERNAL;

HAK_INLINE void hak_link_set(void *b, void *next)
{
    *(uintptr_t *)b = (uintptr_t)next ^ (uintptr_t)b ^ hak_link_secret_;
}
/* The decoded link, not checked: the caller checks it. */
HAK_INLINE void *hak_link_get(const void *b)
{
    return (void *)(*(const uintptr_t *)b ^ (uintptr_t)b ^ hak_link_secret_);
}
#else
HAK_INLINE void hak_link_init(void) {}
HAK_INLINE void hak_link_set(void *b, void *next) { *(void **)b = next; }
HAK_INLINE void *hak_link_get(const void *b) { return *(void *const *)b; }
#endif

#endif
