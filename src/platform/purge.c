// SPDX-License-Identifier: MIT
/* purge.c - the memory-return policy shared by every tier (hak_purge.h).
 *
 * Invariants:
 *   - hak_purge_.dirty and .used are the sums of what the tiers reported;
 *     each tier keeps its own exact counters under its locks and reports
 *     every change, so these are exact once no tier is mid-update;
 *   - one thread purges at a time (g_run_lock); a poll that finds another
 *     one purging returns (that one will do the work), a trim waits;
 *   - purgers and shrinkers are called with no lock held but g_run_lock
 *     (a try-lock for the polls, which never wait on it); a tier's purger
 *     and shrinker take their own locks, so any slow path with no hakmem
 *     lock held may poll.
 */
#include "hak_purge.h"

#include <stdint.h>

#define HAK_PURGE_MAX 8

hak_purge_state_t hak_purge_ = {
    .delay_ms = HAK_PURGE_DELAY_DEFAULT_MS,
    .budget_pct = HAK_PURGE_BUDGET_DEFAULT_PCT,
    .floor = HAK_PURGE_FLOOR_DEFAULT,
    .cache_max = SIZE_MAX,
};

static hak_purger_fn g_purgers[HAK_PURGE_MAX];
static hak_shrink_fn g_shrinkers[HAK_PURGE_MAX];
static unsigned g_npurgers;
static hak_lock_t g_reg_lock = HAK_LOCK_INIT;
static uint32_t (*g_clock)(void);
static hak_lock_t g_run_lock = HAK_LOCK_INIT;

int hak_purge_register(hak_purger_fn fn, hak_shrink_fn shrink)
{
    int rc = 0;
    unsigned seen = __atomic_load_n(&g_npurgers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < seen; i++) /* the common case: registered already */
        if (__atomic_load_n(&g_purgers[i], __ATOMIC_RELAXED) == fn)
            return 0;
    hak_lock(&g_reg_lock);
    unsigned n = __atomic_load_n(&g_npurgers, __ATOMIC_RELAXED), i;
    for (i = 0; i < n && g_purgers[i] != fn; i++)
        ;
    if (i == n) {
        if (n == HAK_PURGE_MAX) {
            rc = -1;
        } else {
            __atomic_store_n(&g_purgers[n], fn, __ATOMIC_RELAXED);
            __atomic_store_n(&g_shrinkers[n], shrink, __ATOMIC_RELAXED);
            __atomic_store_n(&g_npurgers, n + 1, __ATOMIC_RELEASE);
        }
    }
    hak_unlock(&g_reg_lock);
    return rc;
}

int hak_purge_configure(int64_t delay_ms, long budget_pct)
{
    if (delay_ms < -1 || delay_ms > INT32_MAX || budget_pct < 0 || budget_pct > 10000)
        return -1;
    __atomic_store_n(&hak_purge_.delay_ms, delay_ms, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.budget_pct, (uint32_t)budget_pct, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.next_tick, hak_purge_stamp(), __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.budget_seen, 0, __ATOMIC_RELAXED); /* the next poll looks again */
    return 0;
}

void hak_purge_set_floor(size_t bytes) { __atomic_store_n(&hak_purge_.floor, bytes, __ATOMIC_RELAXED); }

void hak_purge_set_cache_max(size_t bytes) { __atomic_store_n(&hak_purge_.cache_max, bytes, __ATOMIC_RELAXED); }

/* While a pass by age runs the shrinkers (g_run_lock held, in this
 * thread), the units their blocks free are stamped with the pass's cutoff
 * (hak_purge_run_): see there. */
static __thread bool t_backdating;
static __thread uint32_t t_backdate;

uint32_t hak_purge_stamp(void)
{
    if (HAK_UNLIKELY(t_backdating))
        return t_backdate;
    uint32_t (*clock)(void) = __atomic_load_n(&g_clock, __ATOMIC_RELAXED);
    return clock ? clock() : (uint32_t)hak_os_clock_ms();
}

/* The tests' clock (NULL: the OS clock again). A test hook: declared only
 * in tests/common/ht_purge.h. */
HAK_INTERNAL void hak_purge_set_clock_(uint32_t (*clock)(void));
HAK_INTERNAL void hak_purge_set_clock_(uint32_t (*clock)(void))
{
    __atomic_store_n(&g_clock, clock, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.next_tick, hak_purge_stamp(), __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.epoch_start, hak_purge_stamp(), __ATOMIC_RELAXED);
}

size_t hak_purge_budget(void)
{
    size_t ref = __atomic_load_n(&hak_purge_.used, __ATOMIC_RELAXED);
    size_t a = __atomic_load_n(&hak_purge_.peak_cur, __ATOMIC_RELAXED);
    size_t b = __atomic_load_n(&hak_purge_.peak_prev, __ATOMIC_RELAXED);
    if (a > ref)
        ref = a;
    if (b > ref)
        ref = b;
    uint32_t pct = __atomic_load_n(&hak_purge_.budget_pct, __ATOMIC_RELAXED);
    size_t budget = ref / 100 * pct + ref % 100 * pct / 100; /* ref < 2^47: no overflow */
    return budget + __atomic_load_n(&hak_purge_.floor, __ATOMIC_RELAXED);
}

/* Every purger once with (cutoff, all), until `want` bytes went back. */
static size_t purge_each(uint32_t cutoff, bool all, size_t want)
{
    size_t got = 0;
    unsigned n = __atomic_load_n(&g_npurgers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n && got < want; i++)
        got += g_purgers[i](cutoff, all, want - got);
    return got;
}

/* Every tier's shrinker, for the calling thread. */
static void shrink_each(void)
{
    unsigned n = __atomic_load_n(&g_npurgers, __ATOMIC_ACQUIRE);
    for (unsigned i = 0; i < n; i++) {
        hak_shrink_fn f = __atomic_load_n(&g_shrinkers[i], __ATOMIC_RELAXED);
        if (f)
            f();
    }
}

static uint32_t epoch_ms(int64_t delay)
{
    return delay > 0 ? (uint32_t)delay : HAK_PURGE_EPOCH_IDLE_MS;
}

/* Start a new epoch of the budget's peaks if the current one is over; a
 * gap of two epochs or more forgets both peaks. Racy by design (relaxed
 * stores from any thread): a lost update only moves the budget a little. */
static void epoch_roll(uint32_t now)
{
    uint32_t e = epoch_ms(__atomic_load_n(&hak_purge_.delay_ms, __ATOMIC_RELAXED));
    uint32_t start = __atomic_load_n(&hak_purge_.epoch_start, __ATOMIC_RELAXED);
    if (!hak_purge_expired(start + e, now))
        return;
    size_t used = __atomic_load_n(&hak_purge_.used, __ATOMIC_RELAXED);
    size_t prev = hak_purge_expired(start + 2 * e, now) ? used : __atomic_load_n(&hak_purge_.peak_cur, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.epoch_start, now, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.peak_prev, prev, __ATOMIC_RELAXED);
    __atomic_store_n(&hak_purge_.peak_cur, used, __ATOMIC_RELAXED);
}

void hak_purge_used_add(size_t b)
{
    epoch_roll(hak_purge_stamp());
    size_t u = __atomic_add_fetch(&hak_purge_.used, b, __ATOMIC_RELAXED);
    if (u > __atomic_load_n(&hak_purge_.peak_cur, __ATOMIC_RELAXED))
        __atomic_store_n(&hak_purge_.peak_cur, u, __ATOMIC_RELAXED);
    if (u > __atomic_load_n(&hak_purge_.peak_all, __ATOMIC_RELAXED))
        __atomic_store_n(&hak_purge_.peak_all, u, __ATOMIC_RELAXED);
}

__thread uint32_t hak_purge_polls_;

void hak_purge_run_(void)
{
    size_t budget = hak_purge_budget();
    size_t dirty = __atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED);
    int64_t delay = __atomic_load_n(&hak_purge_.delay_ms, __ATOMIC_RELAXED);
    /* what the polls compare with before they read the clock; 0 with no
     * delay, so that every poll gives back at once */
    __atomic_store_n(&hak_purge_.budget_seen, delay == 0 ? 0 : budget, __ATOMIC_RELAXED);
    uint32_t now = 0;
    bool aged = false;
    if (delay >= 0) {
        now = hak_purge_stamp();
        aged = delay == 0 || hak_purge_expired(__atomic_load_n(&hak_purge_.next_tick, __ATOMIC_RELAXED), now);
    }
    if (!aged && dirty <= budget) {
        /* with no age to look at (delay -1), the budget's peaks still
         * age: a heap that shrank for good comes within the bound */
        if (delay >= 0)
            return;
        now = hak_purge_stamp();
        uint32_t start = __atomic_load_n(&hak_purge_.epoch_start, __ATOMIC_RELAXED);
        if (!hak_purge_expired(start + HAK_PURGE_EPOCH_IDLE_MS, now))
            return;
    }
    if (!hak_trylock(&g_run_lock))
        return;
    if (delay < 0)
        now = hak_purge_stamp();
    epoch_roll(now);
    if (aged) {
        /* Look at ages a few times per delay: a unit goes back between
         * delay and 1.25 x delay after it became dirty. */
        uint32_t tick = (uint32_t)(delay / 4);
        __atomic_store_n(&hak_purge_.next_tick, now + (tick ? tick : 1), __ATOMIC_RELAXED);
        /* with delay 0 every release goes back at once: the caches stay.
         * The units the shrinkers free held blocks of a heap that shrank
         * (they sat in caches while the pages around them aged): they go
         * back with those pages, in this pass, stamped as old as its
         * cutoff, not one delay later (a 1 GiB peak freed in random order
         * kept 55-64 MiB of them resident for a second delay). */
        uint32_t cutoff = now - (uint32_t)delay;
        if (purge_each(cutoff, false, SIZE_MAX) > 0 && delay > 0) {
            t_backdate = cutoff;
            t_backdating = true;
            shrink_each();
            t_backdating = false;
            purge_each(cutoff, false, SIZE_MAX);
        }
    }
    budget = hak_purge_budget();
    dirty = __atomic_load_n(&hak_purge_.dirty, __ATOMIC_RELAXED);
    if (dirty > budget) {
        purge_each(now, true, dirty - (budget - budget / 16));
    }
    hak_unlock(&g_run_lock);
}

/* Every dirty unit of every tier back, after the calling thread's caches
 * went home when `shrink`; `wait` for a pass in progress, or give up (0)
 * if one runs. */
static size_t purge_everything(bool wait, bool shrink)
{
    if (wait)
        hak_lock(&g_run_lock);
    else if (!hak_trylock(&g_run_lock))
        return 0;
    if (shrink)
        shrink_each(); /* blocks a grown bin held keep pages in use */
    size_t got = purge_each(0, true, SIZE_MAX);
    hak_unlock(&g_run_lock);
    return got;
}

/* trim's caller expects everything back: it waits for a running pass. Its
 * tiers' trims sent the caches home already. */
size_t hak_purge_trim(void) { return purge_everything(true, false); }

/* A try: the pass in progress may be this very thread's, interrupted by a
 * signal whose handler allocates (a blocking wait would hang). */
bool hak_purge_oom(void) { return purge_everything(false, true) != 0; }

/* A fork child is single-threaded: no purge is running in it. */
HAK_INTERNAL void hak_purge_fork_child_(void) { __atomic_store_n(&g_run_lock.v, 0, __ATOMIC_RELAXED); }
