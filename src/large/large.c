// SPDX-License-Identifier: MIT
/* large.c - the large tier: one private mapping per block, a registry of
 * live mappings, mremap for realloc.
 *
 * Invariants (block layout in hak_large.h):
 *   - every live block is one registry entry {user, base, len, mmap}, with
 *     base page-aligned, len a multiple of the page, and
 *     base + 16 <= user < base + len, user aligned as asked;
 *   - [base, base + len) is mapped exactly while the entry is live: free
 *     removes the entry under the registry lock, then unmaps (so no other
 *     thread can find a block that is going away), and a moving realloc
 *     remaps under the lock (so no block mapped meanwhile at the old address
 *     can be registered before the old entry is gone);
 *   - the AllocHeader at user - 16 mirrors the entry (size = base + len -
 *     user, offset = user - base, method mmap). Nothing trusts it: free
 *     compares it with the entry (magic at validation=magic, every field at
 *     full) and unmaps what the entry says.
 *
 * The cache of freed mappings (docs/large.md, "Large: the mapping cache"):
 * re-faulting the pages of a fresh mapping is what a large block costs
 * (about 2 us a page: 1 ms to allocate, fill and free 2 MiB). So free keeps
 * the mapping, stamped with the time it was freed, in a cache of up to
 * LARGE_CACHE_SLOTS mappings (oldest first); the purge policy (hak_purge.h,
 * the same for every tier) unmaps those that stayed there for the purge
 * delay, or the oldest when the dirty bytes of all tiers pass its budget.
 * An allocation takes the smallest cached mapping that fits: cut to the
 * length when the tail is 1 MiB or more and half the length or more, the
 * tail staying cached (its pages are resident: unmapping it would fault
 * them in again for the next larger block); else whole when at most twice
 * the length (no page lost), else cut with the short tail unmapped; or,
 * when none fits, grows the largest one with mremap (its pages move, they
 * are not faulted again). A freed block joins the cached pieces cut from
 * the same mapping (g_cache.join), so cutting does not leave the cache in
 * pieces too small for the next large block. calloc takes cached mappings
 * too and zeroes what the mapping
 * held. Cached mappings are not in the registry (not owned, not live);
 * a free of a pointer into one is a double free. hak_large_trim empties
 * the cache.
 *
 * The stash (hak_large_alloc_sampled): the heap profiler serves each
 * sampled request here, most of them a page or two, one every 512 KiB a
 * thread requests; through the cache each paid its lock, scan, oldest-first
 * shift and the purge clock. A thread keeps two mappings of each length
 * from 1 to HAK_LARGE_STASH_PAGES pages that its sampled frees leave
 * (the newest two: the one they replace goes to the cache), without a
 * lock, for its next sampled block that fits (the cache's rule: the
 * smallest, taken whole when at most twice the length; a bitmap of the
 * lengths held finds it). Their pages stay counted in use
 * (hak_purge_used_*), like a thread cache's blocks; the whole stash goes
 * to the cache at thread exit and on trim. A stashed mapping stays in the
 * registry under the key of a block at offset 16, its header's method
 * HAK_METHOD_STASHED: a sample that reuses it (alignment 16) takes no
 * registry lock, nor does the free that stashes it (two threads sampling
 * at a high rate met on that lock at every sample). So the registry
 * holds freed blocks too: its lookups answer "registered", and what acts
 * on a block checks the header first (large_check, under the lock on
 * free: "double free"); a mapping leaves the registry when it leaves the
 * stash (stash_spill). A stash operation interrupted by a signal whose
 * handler frees or samples leaves the handler's block to the cache
 * (t_stash.busy).
 *
 * Lock order: the registry lock and the cache lock are leaves, never held
 * together; system calls run outside the cache lock.
 */
#include "hak_large.h"

#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "hak_alloc_header.h"
#include "hak_large_registry.h"
#include "hak_platform.h"
#include "hak_purge.h"
#include "large_inline.h"
#include "large_internal.h"

#define LARGE_MIN_ALIGN HAK_AH_SIZE  /* every pointer is 16-byte aligned */

#define REASON_INVALID  "invalid pointer (not a live large block)"
#define REASON_METHOD   "invalid pointer (not a large block)"
#define REASON_MAGIC    "corrupted header (bad magic)"
#define REASON_MISMATCH "corrupted header (size, offset or method differ from the registry)"

#define REASON_DOUBLE   "double free (a freed large block)"

#define LARGE_CACHE_SLOTS 64
#define LARGE_SPLIT_MIN   ((size_t)1 << 20) /* a tail this large (and half the length) is cut off */
#define LARGE_JOINS       256               /* cuts remembered (g_cache.join) */

/* Hidden, not static: dispatch's realloc reads it (large_inline.h). */
hak_large_registry_t hak_large_reg_ = HAK_LARGE_REGISTRY_INIT;
#define g_reg hak_large_reg_
static int g_init_done;

typedef struct large_mapping {
    uintptr_t base;
    size_t len;
    uint32_t freed_at;  /* hak_purge_stamp() at free */
} large_mapping_t;

static struct {
    hak_lock_t lock;
    uintptr_t fork_holder;
    size_t n, bytes;                       /* slots used, bytes cached */
    large_mapping_t slot[LARGE_CACHE_SLOTS]; /* oldest first */
    /* Joins: the addresses where a cut split one mapping (the kernel's one
     * area of address space) in two pieces that are both still mapped
     * there. Two pieces that meet at a join may become one mapping again
     * (a later mremap of it works: it lies in one area); pieces that merely
     * meet (two mmaps that the kernel placed side by side) may not. An
     * address leaves the set when the pieces join or before either side is
     * unmapped, moved or shrunk away from it. Full: a cut records nothing
     * (its pieces never join). */
    size_t njoins;
    uintptr_t join[LARGE_JOINS];
} g_cache;

static size_t large_purge(uint32_t cutoff, bool all, size_t want);

enum { STASH_UNARMED, STASH_ARMED, STASH_DEAD };
static __thread struct {
    uint8_t busy, state;
    uint32_t full;                          /* bit j: base[j] holds a mapping */
    uintptr_t base[2 * HAK_LARGE_STASH_PAGES]; /* base[2k], base[2k + 1]: of k + 1 pages, newest first */
} t_stash;
static void large_thread_exit(void);

static struct {
    size_t bytes_mapped;  /* blocks only; the registry's array is added by stats */
    size_t bytes_in_use;  /* usable bytes of live blocks */
    size_t blocks, allocs, frees;
} g_st;
#define ST_ADD(f, v) __atomic_fetch_add(&g_st.f, (v), __ATOMIC_RELAXED)
#define ST_SUB(f, v) __atomic_fetch_sub(&g_st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(f)    __atomic_load_n(&g_st.f, __ATOMIC_RELAXED)

/* The peak of the mapped (all committed) bytes of large blocks and cached
 * mappings, noted before they fall and when read (HAKMEM_STATS). */
static size_t g_committed_peak;
#define NOTE_PEAK() hak_peak_note(&g_committed_peak, ST_GET(bytes_mapped))

size_t hak_large_committed_peak_(void)
{
    NOTE_PEAK();
    return __atomic_load_n(&g_committed_peak, __ATOMIC_RELAXED);
}

/* ------------------------------------------------------------- fork */

/* Idempotent within one fork, like the registry's helpers: from when the
 * tier's vtable also had fork hooks, which a caller could run beside the
 * participant. Only the participant calls these now. */
static void large_fork_prepare(void)
{
    hak_large_registry_fork_prepare_(&g_reg);
    if (__atomic_load_n(&g_cache.fork_holder, __ATOMIC_RELAXED) == hak_thread_id())
        return;
    hak_lock(&g_cache.lock);
    __atomic_store_n(&g_cache.fork_holder, hak_thread_id(), __ATOMIC_RELAXED);
}

static void large_fork_parent(void)
{
    if (__atomic_load_n(&g_cache.fork_holder, __ATOMIC_RELAXED) == hak_thread_id()) {
        __atomic_store_n(&g_cache.fork_holder, 0, __ATOMIC_RELAXED);
        hak_unlock(&g_cache.lock);
    }
    hak_large_registry_fork_parent_(&g_reg);
}

static void large_fork_child(void)
{
    __atomic_store_n(&g_cache.fork_holder, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&g_cache.lock.v, 0, __ATOMIC_RELEASE);
    hak_large_registry_fork_child_(&g_reg);
}

static const hak_fork_ops_t large_fork_ops = {large_fork_prepare, large_fork_parent, large_fork_child};

static void large_init(void)
{
    if (HAK_LIKELY(__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE)))
        return;
    /* Registered before the init is published, so that a fork after any
     * use takes the tier's locks (hak_fork_register returns once it would),
     * and the purger before any mapping can be cached. Idempotent: racing
     * threads and a call re-entering from the registration's own
     * allocation (pthread_atfork) register again. */
    hak_fork_register(&large_fork_ops);
    hak_purge_register(large_purge, NULL);
    hak_thread_exit_register(large_thread_exit);
    __atomic_store_n(&g_init_done, 1, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ helpers */

/* Where the user pointer sits in its mapping: right after the header, at
 * an aligned offset, or one page into a mapping placed for a larger
 * alignment. */
static size_t large_lead(size_t align, size_t ps)
{
    if (align <= LARGE_MIN_ALIGN)
        return LARGE_MIN_ALIGN;
    return align <= ps ? align : ps;
}

/* The mapping length for a block of `size` bytes at offset `lead`: page-
 * rounded, its usable part representable in the header. false on overflow. */
static bool large_length(size_t size, size_t lead, size_t ps, size_t *len)
{
    size_t need;
    if (__builtin_add_overflow(size, lead, &need) || __builtin_add_overflow(need, ps - 1, &need))
        return false;
    *len = need & ~(ps - 1);
    return *len - lead <= HAK_AH_SIZE_MAX;
}

/* The entry's mapping is kept in a thread's stash (a freed sampled block,
 * still registered: the stash section above). Its header lies in it. */
static bool large_stashed(const hak_large_reg_entry_t *e)
{
    return hak_ah_method(hak_ah_of_const((const void *)e->key)->info) == HAK_METHOD_STASHED;
}

/* A live block of `usable` bytes out of the statistics. */
static void large_count_free(size_t usable)
{
    ST_SUB(bytes_in_use, usable);
    ST_SUB(blocks, 1);
    ST_ADD(frees, 1);
}

typedef struct large_verdict {
    const char *reason;  /* why the check refused */
    bool stashed;        /* a mapping in a thread's stash: a freed block */
} large_verdict_t;

/* The registry check: is the entry a large block whose header agrees with
 * it, to the extent the validation level asks? Runs under the registry
 * lock on free; the header lies inside the registered mapping (user - 16 >=
 * base), so reading it cannot fault. */
static bool large_check(const hak_large_reg_entry_t *e, void *ctx)
{
    large_verdict_t *v = ctx;
    if (e->method != HAK_METHOD_MMAP) {
        v->reason = REASON_METHOD;
        return false;
    }
    if (HAK_UNLIKELY(large_stashed(e))) {
        /* every level: a stashed mapping freed again would be cached and
         * stashed at once (the stash section above) */
        v->reason = REASON_DOUBLE;
        v->stashed = true;
        return false;
    }
#if HAK_VALIDATION >= HAK_VALIDATION_MAGIC
    const hak_alloc_header_t *h = hak_ah_of_const((const void *)e->key);
    if (h->magic != HAK_AH_MAGIC) {
        v->reason = REASON_MAGIC;
        return false;
    }
#endif
#if HAK_VALIDATION >= HAK_VALIDATION_FULL
    size_t off = e->key - e->base;
    if (h->info != hak_ah_pack(e->len - off, off, HAK_METHOD_MMAP)) {
        v->reason = REASON_MISMATCH;
        return false;
    }
#endif
    return true;
}

/* ------------------------------------------------------------- cache */

/* Remove slot i (cache lock held). */
static large_mapping_t cache_remove_locked(size_t i)
{
    large_mapping_t m = g_cache.slot[i];
    for (; i + 1 < g_cache.n; i++)
        g_cache.slot[i] = g_cache.slot[i + 1];
    __atomic_store_n(&g_cache.n, g_cache.n - 1, __ATOMIC_RELAXED);
    g_cache.bytes -= m.len;
    hak_purge_dirty_sub(m.len);
    return m;
}

/* Take address a out of the joins; whether it was one (cache lock held). */
static bool join_take_locked(uintptr_t a)
{
    for (size_t i = 0; i < g_cache.njoins; i++)
        if (g_cache.join[i] == a) { /* njoins is read without the lock (join_forget) */
            g_cache.join[i] = g_cache.join[g_cache.njoins - 1];
            __atomic_store_n(&g_cache.njoins, g_cache.njoins - 1, __ATOMIC_RELAXED);
            return true;
        }
    return false;
}

/* [base, base + len) is about to be unmapped or moved: its ends are no
 * joins any more (cache lock held; join_forget takes it). */
static void join_forget_locked(uintptr_t base, size_t len)
{
    join_take_locked(base);
    join_take_locked(base + len);
}

static void join_forget(uintptr_t base, size_t len)
{
    if (__atomic_load_n(&g_cache.njoins, __ATOMIC_RELAXED) == 0)
        return;
    hak_lock(&g_cache.lock);
    join_forget_locked(base, len);
    hak_unlock(&g_cache.lock);
}

static void cache_unmap(uintptr_t base, size_t len)
{
    join_forget(base, len);
    NOTE_PEAK();
    hak_os_unmap((void *)base, len);
    ST_SUB(bytes_mapped, len);
}

/* A cached mapping of at least *lenp bytes: the smallest that fits, cut
 * to the length when its tail is LARGE_SPLIT_MIN or more and at least half
 * the length (the tail stays cached), else taken whole (*lenp grows) when
 * at most twice the length, else cut (the short tail unmapped); or the
 * largest, grown with mremap. *held: the bytes at its start that may hold old data (a grown
 * part is fresh). 0 if the cache has nothing. */
static uintptr_t cache_take(size_t *lenp, size_t *held)
{
    size_t len = *lenp;
    if (__atomic_load_n(&g_cache.n, __ATOMIC_RELAXED) == 0)
        return 0;
    hak_lock(&g_cache.lock);
    size_t fit = LARGE_CACHE_SLOTS, big = LARGE_CACHE_SLOTS;
    for (size_t i = 0; i < g_cache.n; i++) {
        size_t l = g_cache.slot[i].len;
        if (l == len) { /* the first exact fit: the best one, as the scan would find */
            fit = i;
            break;
        }
        if (l >= len && (fit == LARGE_CACHE_SLOTS || l < g_cache.slot[fit].len))
            fit = i;
        if (big == LARGE_CACHE_SLOTS || l > g_cache.slot[big].len)
            big = i;
    }
    if (fit == LARGE_CACHE_SLOTS && big == LARGE_CACHE_SLOTS) {
        hak_unlock(&g_cache.lock);
        return 0;
    }
    size_t i = fit != LARGE_CACHE_SLOTS ? fit : big;
    large_mapping_t m = g_cache.slot[i];
    uintptr_t tail = 0;
    if (m.len >= len && m.len - len >= LARGE_SPLIT_MIN && m.len - len >= len / 2) {
        /* the tail keeps its slot (and its age), resident, for the next
         * block that fits it or to join this one again when it is freed */
        g_cache.slot[i].base = m.base + len;
        g_cache.slot[i].len = m.len - len;
        g_cache.bytes -= len;
        hak_purge_dirty_sub(len);
        m.len = len;
        if (g_cache.njoins < LARGE_JOINS) {
            g_cache.join[g_cache.njoins] = m.base + len;
            __atomic_store_n(&g_cache.njoins, g_cache.njoins + 1, __ATOMIC_RELAXED);
        }
    } else {
        cache_remove_locked(i);
        if (m.len >= len && m.len - len <= len) {
            /* a little larger (no tail a large block could use): the block
             * takes it whole, no page lost */
            len = *lenp = m.len;
        } else if (m.len > len) {
            /* over twice the length: cut, the short tail unmapped */
            tail = m.base + len;
        } else { /* the largest, grown below: mremap may move it */
            join_forget_locked(m.base, m.len);
        }
    }
    hak_unlock(&g_cache.lock);
    if (tail)
        cache_unmap(tail, m.len - len);
    if (m.len >= len) {
        *held = len;
        return m.base;
    }
    void *nb = hak_os_remap((void *)m.base, m.len, len, true);
    if (nb == NULL) {
        cache_unmap(m.base, m.len);
        return 0;
    }
    ST_ADD(bytes_mapped, len - m.len);
    *held = m.len;
    return (uintptr_t)nb;
}

/* Keep a freed mapping (evicting the oldest when every slot is taken), or
 * unmap it at once when it is larger than the largest mapping cached
 * (mallopt M_MMAP_THRESHOLD). With a purge delay of 0 the poll that
 * follows the free gives it back. */
static void cache_put(uintptr_t base, size_t len)
{
    large_mapping_t evict = {0, 0, 0};
    if (len > __atomic_load_n(&hak_purge_.cache_max, __ATOMIC_RELAXED)) {
        cache_unmap(base, len);
        return;
    }
    hak_lock(&g_cache.lock);
    /* a cached neighbour cut from the same mapping joins it: the pieces
     * of a cut become one mapping again */
    for (size_t i = 0; i < g_cache.n && g_cache.njoins > 0;) {
        large_mapping_t *c = &g_cache.slot[i];
        if ((c->base + c->len == base && join_take_locked(base)) ||
            (base + len == c->base && join_take_locked(c->base))) {
            large_mapping_t n = cache_remove_locked(i);
            base = n.base < base ? n.base : base;
            len += n.len;
        } else {
            i++;
        }
    }
    if (g_cache.n == LARGE_CACHE_SLOTS)
        evict = cache_remove_locked(0);
    /* stamped under the lock: the slots stay in the order of their stamps */
    g_cache.slot[g_cache.n] = (large_mapping_t){base, len, hak_purge_stamp()};
    __atomic_store_n(&g_cache.n, g_cache.n + 1, __ATOMIC_RELAXED);
    g_cache.bytes += len;
    hak_purge_dirty_add(len);
    hak_unlock(&g_cache.lock);
    if (evict.len)
        cache_unmap(evict.base, evict.len);
}

/* The purger (hak_purge.h): unmap cached mappings freed at or before
 * cutoff (every one when all), oldest first, until want bytes went back. */
static size_t large_purge(uint32_t cutoff, bool all, size_t want)
{
    large_mapping_t out[LARGE_CACHE_SLOTS];
    size_t n = 0, got = 0;
    if (__atomic_load_n(&g_cache.n, __ATOMIC_RELAXED) == 0)
        return 0;
    hak_lock(&g_cache.lock);
    while (g_cache.n > 0 && got < want && (all || hak_purge_expired(g_cache.slot[0].freed_at, cutoff))) {
        out[n] = cache_remove_locked(0);
        got += out[n++].len;
    }
    hak_unlock(&g_cache.lock);
    for (size_t i = 0; i < n; i++)
        cache_unmap(out[i].base, out[i].len);
    return got;
}

/* ------------------------------------------------------------- stash */

#define STASH_ENTER() (t_stash.busy = 1, __atomic_signal_fence(__ATOMIC_SEQ_CST))
#define STASH_LEAVE() (__atomic_signal_fence(__ATOMIC_SEQ_CST), t_stash.busy = 0)

/* A stashed mapping of at least *lenp bytes (a multiple of the page ps),
 * at most twice that (taken whole: *lenp grows), the smallest; 0 if none. */
static uintptr_t stash_take(size_t *lenp, size_t ps)
{
    size_t k = *lenp / ps - 1; /* its slot: k + 1 pages; any up to 2k + 1 fits */
    if (k >= HAK_LARGE_STASH_PAGES || t_stash.busy)
        return 0;
    uint32_t fits = (t_stash.full >> 2 * k) & (((uint32_t)1 << (2 * k + 4)) - 1); /* lengths k + 1 .. 2k + 2 */
    if (fits == 0)
        return 0;
    STASH_ENTER();
    size_t j = 2 * k + (size_t)__builtin_ctz(fits);
    uintptr_t base = t_stash.base[j];
    t_stash.full &= ~((uint32_t)1 << j);
    STASH_LEAVE();
    *lenp = (j / 2 + 1) * ps;
    return base;
}

/* The registry's check for a stashed mapping's entry. */
static bool stash_entry_check(const hak_large_reg_entry_t *e, void *ctx)
{
    (void)ctx;
    return large_stashed(e);
}

/* A stashed mapping out of the registry and to the cache, its pages out
 * of use. */
static void stash_spill(uintptr_t base, size_t len)
{
    hak_large_registry_remove_(&g_reg, (const void *)(base + LARGE_MIN_ALIGN), stash_entry_check, NULL, NULL);
    hak_purge_used_sub(len);
    cache_put(base, len);
}

/* Keep a freed sampled mapping, registered and its header marked
 * stashed, in the thread's stash (the older of two it finds of its length
 * goes to the cache): false if it is not for the stash (too large, the
 * cache would not keep it, a purge delay of 0, the thread exiting, or a
 * stash operation interrupted). */
static bool stash_put(uintptr_t base, size_t len)
{
    size_t ps = hak_os_page_size(), k = len / ps - 1;
    if (k >= HAK_LARGE_STASH_PAGES || t_stash.busy || t_stash.state == STASH_DEAD ||
        len > __atomic_load_n(&hak_purge_.cache_max, __ATOMIC_RELAXED) ||
        __atomic_load_n(&hak_purge_.delay_ms, __ATOMIC_RELAXED) == 0)
        return false;
    if (HAK_UNLIKELY(t_stash.state == STASH_UNARMED)) {
        /* the stash is emptied at thread exit: a thread whose hook cannot
         * be armed keeps none */
        t_stash.state = hak_thread_exit_arm() == 0 ? STASH_ARMED : STASH_DEAD;
        if (t_stash.state == STASH_DEAD)
            return false;
    }
    uintptr_t out = 0;
    uint32_t two = (uint32_t)3 << 2 * k;
    STASH_ENTER();
    if ((t_stash.full & two) == two) /* both taken: the older goes */
        out = t_stash.base[2 * k + 1];
    if (t_stash.full & ((uint32_t)1 << 2 * k)) /* the newest is always first */
        t_stash.base[2 * k + 1] = t_stash.base[2 * k];
    t_stash.base[2 * k] = base;
    t_stash.full |= t_stash.full & ((uint32_t)1 << 2 * k) ? two : (uint32_t)1 << 2 * k;
    STASH_LEAVE();
    if (out)
        stash_spill(out, len);
    return true;
}

/* Every stashed mapping to the cache (trim, thread exit). */
static void stash_flush(void)
{
    uintptr_t out[2 * HAK_LARGE_STASH_PAGES];
    uint32_t full = t_stash.full;
    if (full == 0 || t_stash.busy)
        return;
    STASH_ENTER();
    for (size_t j = 0; j < 2 * HAK_LARGE_STASH_PAGES; j++)
        out[j] = t_stash.base[j];
    t_stash.full = 0;
    STASH_LEAVE();
    size_t ps = hak_os_page_size();
    for (size_t j = 0; j < 2 * HAK_LARGE_STASH_PAGES; j++)
        if (full & ((uint32_t)1 << j))
            stash_spill(out[j], (j / 2 + 1) * ps);
}

static void large_thread_exit(void)
{
    stash_flush();
    t_stash.state = STASH_DEAD; /* later frees (other destructors) go to the cache */
}

void hak_large_trim(void)
{
    stash_flush();
    large_purge(0, true, SIZE_MAX);
}

/* p lies in a cached (freed) mapping, or in one of the thread's stash: a
 * second free of a large block. */
static bool large_in_cache(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    bool found = false;
    for (size_t j = 0; j < 2 * HAK_LARGE_STASH_PAGES; j++)
        if ((t_stash.full & ((uint32_t)1 << j)) && a - t_stash.base[j] < (j / 2 + 1) * hak_os_page_size())
            return true;
    if (__atomic_load_n(&g_cache.n, __ATOMIC_RELAXED) == 0)
        return false;
    hak_lock(&g_cache.lock);
    for (size_t i = 0; i < g_cache.n && !found; i++)
        found = a - g_cache.slot[i].base < g_cache.slot[i].len;
    hak_unlock(&g_cache.lock);
    return found;
}

/* ---------------------------------------------------------- public API */

static void *large_alloc(size_t size, size_t align, bool zeroed, bool sampled)
{
    if (align < LARGE_MIN_ALIGN)
        align = align == 0 || (align & (align - 1)) == 0 ? LARGE_MIN_ALIGN : align;
    if (align & (align - 1)) {
        errno = EINVAL;
        return NULL;
    }
    if (size > PTRDIFF_MAX || size > HAK_LARGE_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    if (size == 0)
        size = 1; /* a block of its own: the pointer must lie inside the mapping */
    large_init();
    size_t ps = hak_os_page_size();
    size_t lead = large_lead(align, ps), len, extra = align > ps ? align - ps : 0, total;
    if (!large_length(size, lead, ps, &len) || __builtin_add_overflow(len, extra, &total)) {
        errno = ENOMEM;
        return NULL;
    }
    size_t held = 0;
    /* a stashed mapping is registered for a block at offset 16 */
    char *raw = sampled && lead == LARGE_MIN_ALIGN ? (char *)stash_take(&len, ps) : NULL;
    bool stashed = raw != NULL; /* its pages stayed counted in use: no clock, no poll */
    if (stashed)
        held = len;
    else if (extra == 0)
        raw = (char *)cache_take(&len, &held);
    if (raw == NULL) {
        raw = hak_os_map(total, ps);
        if (raw == NULL && hak_purge_oom()) /* cached memory goes back before ENOMEM */
            raw = hak_os_map(total, ps);
        if (raw == NULL)
            return NULL; /* ENOMEM set by the platform */
        ST_ADD(bytes_mapped, len);
    } else if (zeroed && held > lead) {
        memset(raw + lead, 0, held - lead); /* a fresh part reads as zero */
    }
    char *base = raw;
    if (extra != 0) {
        /* Over-mapped by align - page: keep the page before an aligned user
         * pointer and len bytes from there; give back both ends. */
        uintptr_t user = ((uintptr_t)raw + lead + align - 1) & ~(uintptr_t)(align - 1);
        base = (char *)(user - lead);
        size_t head = (size_t)(base - raw), tail = extra - head;
        if (head != 0)
            hak_os_unmap(raw, head);
        if (tail != 0)
            hak_os_unmap(base + len, tail);
    }
    char *user = base + lead;
    hak_ah_write(user, len - lead, lead, HAK_METHOD_MMAP);
    if (!stashed && /* a stashed mapping is registered as it is */
        hak_large_registry_insert_(&g_reg, user, base, len, HAK_METHOD_MMAP) != 0 &&
        (!hak_purge_oom() || hak_large_registry_insert_(&g_reg, user, base, len, HAK_METHOD_MMAP) != 0)) {
        NOTE_PEAK();
        hak_os_unmap(base, len);
        ST_SUB(bytes_mapped, len);
        errno = ENOMEM;
        return NULL;
    }
    ST_ADD(bytes_in_use, len - lead);
    ST_ADD(blocks, 1);
    ST_ADD(allocs, 1);
    if (stashed)
        return user;
    hak_purge_used_add(len);
    hak_purge_poll();
    return user;
}

void *hak_large_alloc(size_t size, size_t align) { return large_alloc(size, align, false, false); }

void *hak_large_alloc_zeroed(size_t size, size_t align) { return large_alloc(size, align, true, false); }

void *hak_large_alloc_sampled(size_t size, size_t align) { return large_alloc(size, align, false, true); }

/* A sampled block's free that the stash takes with the registry entry
 * kept (the stash section above): true if it did. The caller owns p, so
 * the entry and the header may be read outside the lock. */
static bool large_stash_keep(void *p)
{
    hak_large_reg_entry_t e;
    large_verdict_t v = {REASON_INVALID, false};
    if (!hak_large_registry_lookup_(&g_reg, p, &e) || e.key != e.base + LARGE_MIN_ALIGN || !large_check(&e, &v))
        return false;
    /* marked before the stash holds it: a signal handler's sample may take
     * it at once */
    hak_ah_write(p, e.len - LARGE_MIN_ALIGN, LARGE_MIN_ALIGN, HAK_METHOD_STASHED);
    if (!stash_put(e.base, e.len)) {
        hak_ah_write(p, e.len - LARGE_MIN_ALIGN, LARGE_MIN_ALIGN, HAK_METHOD_MMAP);
        return false;
    }
    large_count_free(e.len - LARGE_MIN_ALIGN);
    return true;
}

static void large_free(void *p, bool sampled)
{
    if (p == NULL)
        return;
    int saved = errno;
    large_verdict_t v = {REASON_INVALID, false};
    hak_large_reg_entry_t e;
    if (sampled && large_stash_keep(p)) {
        errno = saved;
        return;
    }
    if (hak_large_registry_remove_(&g_reg, p, large_check, &v, &e) != HAK_LREG_REMOVED) {
        hak_report_failure("free", large_in_cache(p) ? REASON_DOUBLE : v.reason, p); /* a test's handler returns: leave it */
        errno = saved;
        return;
    }
    large_count_free(e.base + e.len - e.key);
    hak_purge_used_sub(e.len);
    cache_put(e.base, e.len);
    hak_purge_poll();
    errno = saved;
}

void hak_large_free(void *p) { large_free(p, false); }

void hak_large_free_sampled(void *p) { large_free(p, true); }

bool hak_large_freed_(const void *p) { return p != NULL && large_in_cache(p); }

/* A registered entry that is a live block, not a stashed mapping (whose
 * header lies in it, mapped while it is registered). */
static bool large_live(const hak_large_reg_entry_t *e)
{
    return e->method == HAK_METHOD_MMAP && !large_stashed(e);
}

/* The registry's answer, lock-free where it can be; then whether the entry
 * is a live block. */
size_t hak_large_usable_size(const void *p)
{
    hak_large_reg_entry_t e;
    if (p == NULL || !hak_large_registry_lookup_(&g_reg, p, &e) || !large_live(&e))
        return 0;
    return e.base + e.len - e.key;
}

bool hak_large_owns(const void *p)
{
    hak_large_reg_entry_t e;
    return p != NULL && hak_large_registry_lookup_(&g_reg, p, &e) && large_live(&e);
}

void *hak_large_realloc(void *p, size_t size)
{
    if (p == NULL)
        return hak_large_alloc(size, LARGE_MIN_ALIGN);
    hak_large_reg_entry_t e;
    large_verdict_t v = {REASON_INVALID, false};
    /* The caller owns p: nobody frees it meanwhile, so the header may be
     * read outside the lock. */
    if (!hak_large_registry_lookup_(&g_reg, p, &e) || !large_check(&e, &v)) {
        /* a stashed (freed) mapping's block: not a live one */
        hak_report_failure("realloc", v.stashed ? REASON_INVALID : v.reason, p);
        errno = EINVAL;
        return NULL;
    }
    if (size > PTRDIFF_MAX || size > HAK_LARGE_MAX_SIZE) {
        errno = ENOMEM;
        return NULL;
    }
    size_t ps = hak_os_page_size(), off = e.key - e.base, len;
    if (!large_length(size, off, ps, &len)) {
        errno = ENOMEM;
        return NULL;
    }
    if (len == e.len)
        return p;
    int saved = errno;
    char *base = (char *)e.base, *nb;
    /* A shrink leaves the old end, a move both ends: no joins there any
     * more (taken before the registry lock: the two locks never nest). */
    if (len < e.len)
        join_forget(e.base + e.len, 0);
    else
        join_forget(e.base, e.len);
    /* Remap, registry entry and header change together under the registry
     * lock: a fork (whose prepare takes the lock) sees either the old
     * block or the new one, never a header that disagrees with its entry,
     * and no other thread can map the range a move or shrink gives up and
     * register our old key in between. */
    hak_large_registry_lock_(&g_reg);
    if (len < e.len) {
        nb = hak_os_remap(base, e.len, len, false); /* shrinks in place */
        if (nb == NULL) {
            hak_large_registry_unlock_(&g_reg);
            errno = saved; /* the larger block still serves the request */
            return p;
        }
    } else {
        nb = hak_os_remap(base, e.len, len, false); /* grow in place if the next pages are free */
        if (nb == NULL)
            nb = hak_os_remap(base, e.len, len, true); /* move the pages */
        if (nb == NULL) {
            /* mremap refused (say the range is two of the kernel's areas):
             * a new block and a copy, as any allocator's realloc */
            hak_large_registry_unlock_(&g_reg);
            void *q = hak_large_alloc(size, LARGE_MIN_ALIGN);
            if (q == NULL)
                return NULL; /* ENOMEM set */
            memcpy(q, p, e.base + e.len - e.key);
            hak_large_free(p);
            errno = saved;
            return q;
        }
    }
    char *q = nb + off;
    hak_large_registry_update_locked_(&g_reg, p, q, nb, len);
    hak_ah_write(q, len - off, off, HAK_METHOD_MMAP);
    hak_large_registry_unlock_(&g_reg);
    if (len < e.len) {
        NOTE_PEAK();
        ST_SUB(bytes_mapped, e.len - len);
        ST_SUB(bytes_in_use, e.len - len);
        hak_purge_used_sub(e.len - len);
    } else {
        ST_ADD(bytes_mapped, len - e.len);
        ST_ADD(bytes_in_use, len - e.len);
        hak_purge_used_add(len - e.len);
    }
    errno = saved;
    return q;
}

void hak_large_stats(hak_tier_stats_t *out)
{
    /* the registry's arrays left by resizes stay mapped, decommitted */
    out->bytes_committed = ST_GET(bytes_mapped) + hak_large_registry_table_bytes_(&g_reg);
    out->bytes_mapped = out->bytes_committed + hak_large_registry_retired_bytes_(&g_reg);
    out->bytes_in_use = ST_GET(bytes_in_use);
    out->blocks_in_use = ST_GET(blocks);
    out->allocs = ST_GET(allocs);
    out->frees = ST_GET(frees);
    out->thread_caches = 0;
}

/* ---------------------------------------------------------- validator */

static bool large_entry_valid(const hak_large_reg_entry_t *e, void *ctx)
{
    bool headers = *(const bool *)ctx;
    size_t mask = hak_os_page_size() - 1;
    if (e->method != HAK_METHOD_MMAP || (e->base & mask) != 0 || (e->len & mask) != 0 ||
        e->key < e->base + HAK_AH_SIZE || e->key >= e->base + e->len || e->key % LARGE_MIN_ALIGN != 0)
        return false;
    if (!headers)
        return true;
    const hak_alloc_header_t *h = hak_ah_of_const((const void *)e->key);
    size_t off = e->key - e->base;
    return h->magic == HAK_AH_MAGIC && (h->info == hak_ah_pack(e->len - off, off, HAK_METHOD_MMAP) ||
                                        (off == LARGE_MIN_ALIGN && h->info == hak_ah_pack(e->len - off, off, HAK_METHOD_STASHED)));
}

HAK_INTERNAL bool hak_large_validate_(bool headers)
{
    bool ok = hak_large_registry_validate_(&g_reg, large_entry_valid, &headers);
    size_t mask = hak_os_page_size() - 1, bytes = 0;
    hak_lock(&g_cache.lock);
    for (size_t i = 0; i < g_cache.n; i++) {
        const large_mapping_t *m = &g_cache.slot[i];
        if ((m->base & mask) != 0 || (m->len & mask) != 0 || m->len == 0 ||
            (i > 0 && !hak_purge_expired(m[-1].freed_at, m->freed_at)))
            ok = false;
        bytes += m->len;
    }
    if (g_cache.n > LARGE_CACHE_SLOTS || bytes != g_cache.bytes)
        ok = false;
    hak_unlock(&g_cache.lock);
    return ok;
}

HAK_INTERNAL size_t hak_large_registry_bytes_(void) { return hak_large_registry_table_bytes_(&g_reg); }

/* --------------------------------------------------------- descriptor */

static size_t large_bytes_in_use(void) { return ST_GET(bytes_in_use); }
static bool large_validate(void) { return hak_large_validate_(true); }

/* No per-thread state (no flush); the tier registers its own fork
 * participant on its first allocation (large_init). */
const hak_tier_vtable_t hak_large_vtable = {
    .name = "large",
    .flags = HAK_TIER_MMAPPED,
    .max_size = HAK_LARGE_MAX_SIZE,
    .alloc = hak_large_alloc,
    .free = hak_large_free,
    .usable_size = hak_large_usable_size,
    .owns = hak_large_owns,
    .trim = hak_large_trim,
    .stats = hak_large_stats,
    .bytes_in_use = large_bytes_in_use,
    .committed_peak = hak_large_committed_peak_,
    .validate = large_validate,
};
