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
    union {
        void *head;
        int64_t gate; /* the slot HAK_FRONT_GATE only (below) */
    };
    int32_t room;
    uint32_t max;
} hak_bin_t;

/* The slot after the classes' bins (no class has its kind) holds, in its
 * first word, dispatch's malloc gate: a per-thread signed count that
 * malloc's slow path decrements by each request and that sends the request
 * to the hooks when it goes below zero (dispatch.c, malloc_slow). Kept
 * with the bins, it is at their %fs offset: the slow path reaches it and
 * the bin it pops with one TLS address. */
#define HAK_FRONT_GATE HAK_KIND_NSMALL

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
extern __thread hak_bin_t hak_bins_[HAK_KIND_NSMALL + 1] HAK_INTERNAL;

/* The fast paths' view of the calling thread's bin of `kind`. On x86-64
 * with the initial-exec TLS model it is an %fs-relative pointer: the bin
 * is addressed as %fs:(offset + 16 * kind) from the offset the linker put
 * in the GOT (or, linked into an executable, in the instruction), without
 * first computing the address of the thread's TLS block, which the
 * compiler otherwise does on every call (two instructions of a malloc or
 * a free). Elsewhere it is &hak_bins_[kind], and also under the address
 * and thread sanitizers, which would check the offset as an address.
 * hak_front_bin_kind() turns it back into a kind. */
#if defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define HAK_FRONT_SANITIZED 1
#endif
#endif
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define HAK_FRONT_SANITIZED 1
#endif
#if defined(__x86_64__) && defined(__SEG_FS) && !HAK_TLS_GLOBAL_DYNAMIC && !defined(HAK_FRONT_SANITIZED)
typedef __seg_fs hak_bin_t *hak_front_bin_t;
HAK_INLINE uintptr_t hak_front_bins_off_(void)
{
    uintptr_t off;
    __asm__("movq hak_bins_@gottpoff(%%rip), %0" : "=r"(off));
    return off;
}
HAK_INLINE hak_front_bin_t hak_front_bin(size_t kind)
{
    return (hak_front_bin_t)(hak_front_bins_off_() + kind * sizeof(hak_bin_t));
}
HAK_INLINE size_t hak_front_bin_kind(hak_front_bin_t b)
{
    return ((uintptr_t)b - hak_front_bins_off_()) / sizeof(hak_bin_t);
}
#else
typedef hak_bin_t *hak_front_bin_t;
HAK_INLINE hak_front_bin_t hak_front_bin(size_t kind) { return &hak_bins_[kind]; }
HAK_INLINE size_t hak_front_bin_kind(hak_front_bin_t b) { return (size_t)(b - hak_bins_); }
#endif
#endif

#endif
