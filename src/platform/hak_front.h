// SPDX-License-Identifier: MIT
/* hak_front.h - the front end shared by the tiers of small blocks (tiny,
 * mid, L25): one array of per-thread bins, indexed by page kind.
 *
 * A size class of any of these tiers has one global index, its page kind
 * (hak_platform.h: tiny classes from HAK_KIND_TINY0, mid from HAK_KIND_MID0,
 * L25 from HAK_KIND_L250), and each thread one bin per kind: a free list of
 * blocks of that class and how many more it may take. free reads the kind
 * of the block's page from the page map and pushes the block on that bin;
 * malloc maps the size to a kind and pops. Neither asks which tier it is:
 * only the slow paths (an empty bin, a full one) go to the tier that owns
 * the class, which refills or drains the bin in batches. docs/design.md,
 * "The front end", has the picture.
 */
#ifndef HAK_FRONT_H
#define HAK_FRONT_H

#include "hak_platform.h"

/* `room` is how many more blocks the list may take (its bound `max` minus
 * its length), so free's test is one decrement and a sign. Both are 0
 * until the owning tier set up the thread's cache and again after the
 * thread's exit hook ran, so the first free of a class (and every free
 * after the exit hook) takes the tier's slow path; an empty head does the
 * same for malloc. */
typedef struct hak_bin {
    void *head;
    int32_t room;
    uint32_t max;
} hak_bin_t;

/* Blocks on a bin's list. */
HAK_INLINE uint32_t hak_bin_count(const hak_bin_t *bin) { return (uint32_t)((int32_t)bin->max - bin->room); }

/* Set a bin's bound, keeping its list. */
HAK_INLINE void hak_bin_set_max(hak_bin_t *bin, uint32_t max)
{
    uint32_t count = hak_bin_count(bin);
    bin->max = max;
    bin->room = (int32_t)max - (int32_t)count;
}

#if !HAK_PLATFORM_ARENA
/* The calling thread's bins (kind 0 and the kinds of tiers left out of
 * the build stay empty with room 0). */
extern __thread hak_bin_t hak_bins_[HAK_KIND_NSMALL] HAK_INTERNAL;
#endif

#endif
