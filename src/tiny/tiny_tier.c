// SPDX-License-Identifier: MIT
/* tiny_tier.c - the tiny tier's descriptor (hak_tier.h): what dispatch
 * calls for trim, statistics, the reports and the thread flush, over the
 * functions of tiny.c. */
#include "tiny_internal.h"

#include "hakmem/tiny.h"

static void *tiny_alloc(size_t size, size_t align)
{
    return align <= 16 ? hak_tiny_alloc(size) : hak_tiny_alloc_aligned(size, align);
}

static void tiny_stats(hak_tier_stats_t *out)
{
    hak_tiny_stats_t ts;
    hak_tiny_get_stats(&ts);
    *out = (hak_tier_stats_t){
        .bytes_mapped = ts.bytes_mapped,
        .bytes_committed = ts.bytes_committed,
        .allocs = ts.refills,
        .frees = ts.drains + ts.spills,
        .thread_caches = ts.thread_caches,
    };
}

static int tiny_counters(hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX])
{
    hak_tiny_stats_t ts;
    hak_tiny_get_stats(&ts);
    hak_tier_counter_t *o = out;
    *o++ = (hak_tier_counter_t){"superslabs", ts.superslabs};
    *o++ = (hak_tier_counter_t){"slabs in use", ts.slabs_in_use};
    *o++ = (hak_tier_counter_t){"refills", ts.refills};
    *o++ = (hak_tier_counter_t){"drains", ts.drains};
    *o++ = (hak_tier_counter_t){"spills", ts.spills};
    *o++ = (hak_tier_counter_t){"slab releases", ts.slab_releases};
    *o++ = (hak_tier_counter_t){"superslab unmaps", ts.ss_unmaps};
    return (int)(o - out);
}

const hak_tier_vtable_t hak_tiny_vtable = {
    .name = "tiny",
    .max_size = HAK_TINY_MAX_SIZE,
    .alloc = tiny_alloc,
    .free = hak_tiny_free,
    .usable_size = hak_tiny_usable_size,
    .owns = hak_tiny_owns,
    .trim = hak_tiny_trim,
    .flush = hak_tiny_flush_,
    .stats = tiny_stats,
    .bytes_in_use = hak_tiny_bytes_in_use_,
    .committed_peak = hak_tiny_committed_peak_,
    .counters = tiny_counters,
};
