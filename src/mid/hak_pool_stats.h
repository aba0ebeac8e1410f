// SPDX-License-Identifier: MIT
/* hak_pool_stats.h - the statistics of the mid and L25 pools (one layout
 * for both; hak_mid_get_stats / hak_l25_get_stats fill it). */
#ifndef HAK_POOL_STATS_H
#define HAK_POOL_STATS_H

#include <stddef.h>

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

#endif
