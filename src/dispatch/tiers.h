// SPDX-License-Identifier: MIT
/* tiers.h - the tiers built into this library, as their descriptors
 * (hak_tier.h) indexed by hak_tier_id, for the jobs that go to every tier:
 * statistics and reports (stats.c), trim and glibc's introspection API
 * (glibc_api.c). A job loops over hak_tiers, so a tier that is built
 * cannot be left out of it. The malloc/free paths (dispatch.c) include
 * this for the tiers' headers and call the tiers directly, never through
 * a descriptor. */
#ifndef HAK_DISPATCH_TIERS_H
#define HAK_DISPATCH_TIERS_H

#include "dispatch.h"
#include "hak_tier.h"

/* The tiers' headers, inline fast paths included (for dispatch.c). */
#if HAK_HAVE_TINY
#include "tiny_inline.h"
#endif
#if HAK_HAVE_MID
#include "mid_inline.h"
#endif
#if HAK_HAVE_L25
#include "l25_inline.h"
#endif
#if HAK_HAVE_LARGE
#include "hak_large.h"
#endif

/* One slot per hak_tier_id, as hak_stats_t's per-tier arrays; NULL for
 * a tier left out of the build (and for none and system). */
#define HAK_TIER_SLOTS (HAK_TIER_SYSTEM + 1)
_Static_assert(sizeof(((hak_stats_t *)0)->mapped) / sizeof(size_t) == HAK_TIER_SLOTS, "hak_stats_t per-tier arrays");

static const hak_tier_vtable_t *const hak_tiers[HAK_TIER_SLOTS] = {
#if HAK_HAVE_TINY
    [HAK_TIER_TINY] = &hak_tiny_vtable,
#endif
#if HAK_HAVE_MID
    [HAK_TIER_MID] = &hak_mid_vtable,
#endif
#if HAK_HAVE_L25
    [HAK_TIER_L25] = &hak_l25_vtable,
#endif
#if HAK_HAVE_LARGE
    [HAK_TIER_LARGE] = &hak_large_vtable,
#endif
};

/* The mapped and committed figures of every tier and of the platform,
 * and the tiny tier's thread caches (cheap: counters). */
void hak_stats_base_(hak_stats_t *out) HAK_INTERNAL;
/* Per tier: the bytes of live blocks (as mallinfo2's uordblks counts
 * them: other threads' caches count as in use, the caller's as free; the
 * large tier's blocks) and the most bytes committed since load, at least
 * st's. Takes every lock of the tiers. */
void hak_tier_figures_(const hak_stats_t *st, size_t live[HAK_TIER_SLOTS], size_t peak[HAK_TIER_SLOTS]) HAK_INTERNAL;

#endif
