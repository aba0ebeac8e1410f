// SPDX-License-Identifier: MIT
/* hak_tier.h - the narrow interface every tier exposes to dispatch.
 *
 * Declared once here (every tier depends on the platform layer) so that
 * dispatch can be built over any subset of tiers. It is the boundary for
 * composition and slow paths: the malloc/free hot path never goes through
 * it (the tiny fast path is inlined into dispatch from tiny_inline.h, and
 * dispatch calls the other tiers' entry points directly when it knows the
 * tier at compile time).
 */
#ifndef HAK_TIER_H
#define HAK_TIER_H

#include <stdbool.h>
#include <stddef.h>

typedef struct hak_tier_stats {
    size_t bytes_mapped;     /* bytes of address space the tier holds */
    size_t bytes_committed;  /* of which not decommitted */
    size_t bytes_in_use;     /* bytes of live blocks (usable sizes), if tracked */
    size_t blocks_in_use;    /* live blocks, if tracked */
    size_t allocs, frees;    /* slow-path or total counts, as the tier keeps them */
} hak_tier_stats_t;

typedef struct hak_tier_vtable {
    const char *name;
    size_t max_size;                             /* largest request served */
    void *(*alloc)(size_t size, size_t align);   /* align: power of two; NULL + errno */
    void (*free)(void *p);                       /* p owned by the tier */
    size_t (*usable_size)(const void *p);        /* p owned */
    bool (*owns)(const void *p);                 /* by address only */
    void (*thread_exit)(void);                   /* give back the caller's caches */
    void (*fork_prepare)(void);
    void (*fork_parent)(void);
    void (*fork_child)(void);
    void (*trim)(void);                          /* return empty memory to the OS */
    void (*stats)(hak_tier_stats_t *out);
} hak_tier_vtable_t;

#endif
