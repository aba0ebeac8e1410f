// SPDX-License-Identifier: MIT
/* ht_purge.h - a test clock for the purge policy (hak_purge.h), for the
 * tests that link a tier's static library (the policy's internals are
 * hidden in libhakmem.so).
 *
 * ht_purge_install() makes the policy read ht_clock_ms instead of the OS
 * clock, so that a test decides when the purge delay has passed:
 * ht_purge_later() moves the clock past the delay (and past the next age
 * check) and runs what the next poll that reads the clock runs. */
#ifndef HT_PURGE_H
#define HT_PURGE_H

#include "hak_purge.h"

/* The policy's clock, replaced (src/platform/purge.c; NULL: the OS clock
 * again). A test hook: no production header declares it. */
HAK_INTERNAL void hak_purge_set_clock_(uint32_t (*clock)(void));

static uint32_t ht_clock_ms = 1;
static uint32_t ht_clock(void) { return __atomic_load_n(&ht_clock_ms, __ATOMIC_RELAXED); }

static inline void ht_purge_install(void) { hak_purge_set_clock_(ht_clock); }

static inline void ht_clock_advance(uint32_t ms) { __atomic_fetch_add(&ht_clock_ms, ms, __ATOMIC_RELAXED); }

static inline void ht_purge_later(void)
{
    int64_t d = hak_purge_.delay_ms;
    ht_clock_advance((uint32_t)(d > 0 ? 2 * d + 1 : 2 * HAK_PURGE_EPOCH_IDLE_MS + 1));
    /* what a poll runs once it reads the clock (a thread's polls read it
     * every HAK_PURGE_POLL_EVERY slow paths) */
    if (__atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED) != 0)
        hak_purge_run_();
}

#endif
