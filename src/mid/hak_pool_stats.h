// SPDX-License-Identifier: MIT
/* hak_pool_stats.h - the statistics of the mid and L25 pools (one layout
 * for both; hak_mid_get_stats / hak_l25_get_stats fill it), and their
 * line of the HAKMEM_STATS report. */
#ifndef HAK_POOL_STATS_H
#define HAK_POOL_STATS_H

#include <stddef.h>

#include "hak_tier.h"

typedef struct hak_pool_stats {
    size_t chunks;           /* 2 MiB chunks mapped */
    size_t spans_in_use;     /* spans bound to a class */
    size_t bytes_mapped;     /* bytes of chunks mapped */
    size_t bytes_committed;  /* of which not decommitted */
    size_t refills;          /* batches moved central/spans -> thread cache */
    size_t drains;           /* batches moved thread cache -> central */
    size_t spills;           /* blocks returned to their span */
    size_t span_releases;    /* spans emptied and given back to their chunk */
    size_t chunk_unmaps;     /* chunks unmapped */
    size_t bytes_purged;     /* free pages decommitted (the purge policy, trim) */
} hak_pool_stats_t;

/* The counters of the report's line ("mid: chunks 3, spans in use 12,
 * ..."), for the tiers' descriptors: fills out, returns how many. */
static inline int hak_pool_counters_of(const hak_pool_stats_t *s, hak_tier_counter_t out[HAK_TIER_COUNTERS_MAX])
{
    hak_tier_counter_t *o = out;
    *o++ = (hak_tier_counter_t){"chunks", s->chunks};
    *o++ = (hak_tier_counter_t){"spans in use", s->spans_in_use};
    *o++ = (hak_tier_counter_t){"refills", s->refills};
    *o++ = (hak_tier_counter_t){"drains", s->drains};
    *o++ = (hak_tier_counter_t){"spills", s->spills};
    *o++ = (hak_tier_counter_t){"span releases", s->span_releases};
    *o++ = (hak_tier_counter_t){"chunk unmaps", s->chunk_unmaps};
    *o++ = (hak_tier_counter_t){"KiB purged", s->bytes_purged >> 10};
    return (int)(o - out);
}

#endif
