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
 * (about 2 us a page on the reference machine: 1 ms to allocate, fill and
 * free 2 MiB, against 23 us for glibc, which reuses its heap once its
 * dynamic mmap threshold has risen). So free keeps up to
 * LARGE_CACHE_SLOTS mappings of at most LARGE_CACHE_ONE_MAX bytes each,
 * LARGE_CACHE_BYTES in all (glibc keeps up to twice its 32 MiB threshold
 * at the top of its heap), evicting the oldest; an allocation takes the
 * smallest cached mapping that fits and unmaps its excess tail. Cached
 * mappings are not in the registry (not owned, not live). hak_large_trim
 * empties the cache.
 *
 * Lock order: the registry lock and the cache lock are leaves, never held
 * together; system calls run outside the cache lock.
 */
#include "hak_large.h"

#include <errno.h>
#include <stdint.h>

#include "hak_alloc_header.h"
#include "hak_large_registry.h"
#include "hak_platform.h"
#include "large_internal.h"

#define LARGE_MIN_ALIGN HAK_AH_SIZE  /* every pointer is 16-byte aligned */

#define REASON_INVALID  "invalid pointer (not a live large block)"
#define REASON_METHOD   "invalid pointer (not a large block)"
#define REASON_MAGIC    "corrupted header (bad magic)"
#define REASON_MISMATCH "corrupted header (size, offset or method differ from the registry)"

#define LARGE_CACHE_SLOTS   8
#define LARGE_CACHE_BYTES   ((size_t)32 << 20)
#define LARGE_CACHE_ONE_MAX (LARGE_CACHE_BYTES / 2)

static hak_large_registry_t g_reg = HAK_LARGE_REGISTRY_INIT;
static int g_init_done;

typedef struct large_mapping {
    uintptr_t base;
    size_t len;
} large_mapping_t;

static struct {
    hak_lock_t lock;
    uintptr_t fork_holder;
    size_t n, bytes;                       /* slots used, bytes cached */
    large_mapping_t slot[LARGE_CACHE_SLOTS]; /* oldest first */
} g_cache;

static struct {
    size_t bytes_mapped;  /* blocks only; the registry's array is added by stats */
    size_t bytes_in_use;  /* usable bytes of live blocks */
    size_t blocks, allocs, frees;
} g_st;
#define ST_ADD(f, v) __atomic_fetch_add(&g_st.f, (v), __ATOMIC_RELAXED)
#define ST_SUB(f, v) __atomic_fetch_sub(&g_st.f, (v), __ATOMIC_RELAXED)
#define ST_GET(f)    __atomic_load_n(&g_st.f, __ATOMIC_RELAXED)

/* ------------------------------------------------------------- fork */

/* Idempotent within one fork, like the registry's: the tier is both a
 * fork participant and a vtable with fork hooks. */
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
     * use takes the tier's locks (hak_fork_register returns once it would).
     * Idempotent: racing threads and a call re-entering from the
     * registration's own allocation (pthread_atfork) register again. */
    hak_fork_register(&large_fork_ops);
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

typedef struct large_verdict {
    const char *reason;  /* why the check refused */
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

/* The smallest cached mapping of at least len bytes, cut to len (its
 * excess tail unmapped), or 0. */
static uintptr_t cache_take(size_t len)
{
    if (__atomic_load_n(&g_cache.n, __ATOMIC_RELAXED) == 0)
        return 0;
    hak_lock(&g_cache.lock);
    size_t best = LARGE_CACHE_SLOTS;
    for (size_t i = 0; i < g_cache.n; i++)
        if (g_cache.slot[i].len >= len && (best == LARGE_CACHE_SLOTS || g_cache.slot[i].len < g_cache.slot[best].len))
            best = i;
    if (best == LARGE_CACHE_SLOTS) {
        hak_unlock(&g_cache.lock);
        return 0;
    }
    large_mapping_t m = g_cache.slot[best];
    for (size_t i = best; i + 1 < g_cache.n; i++)
        g_cache.slot[i] = g_cache.slot[i + 1];
    __atomic_store_n(&g_cache.n, g_cache.n - 1, __ATOMIC_RELAXED);
    g_cache.bytes -= m.len;
    hak_unlock(&g_cache.lock);
    if (m.len > len) {
        hak_os_unmap((void *)(m.base + len), m.len - len);
        ST_SUB(bytes_mapped, m.len - len);
    }
    return m.base;
}

/* Keep a freed mapping, evicting the oldest as the bounds require; what
 * does not fit is unmapped. */
static void cache_put(uintptr_t base, size_t len)
{
    large_mapping_t evict[LARGE_CACHE_SLOTS + 1];
    size_t ne = 0;
    if (len > LARGE_CACHE_ONE_MAX) {
        evict[ne++] = (large_mapping_t){base, len};
    } else {
        hak_lock(&g_cache.lock);
        size_t drop = 0;
        while (g_cache.n - drop == LARGE_CACHE_SLOTS || g_cache.bytes + len > LARGE_CACHE_BYTES) {
            evict[ne++] = g_cache.slot[drop];
            g_cache.bytes -= g_cache.slot[drop].len;
            drop++;
        }
        for (size_t i = drop; i < g_cache.n; i++)
            g_cache.slot[i - drop] = g_cache.slot[i];
        g_cache.slot[g_cache.n - drop] = (large_mapping_t){base, len};
        __atomic_store_n(&g_cache.n, g_cache.n - drop + 1, __ATOMIC_RELAXED);
        g_cache.bytes += len;
        hak_unlock(&g_cache.lock);
    }
    for (size_t i = 0; i < ne; i++) {
        hak_os_unmap((void *)evict[i].base, evict[i].len);
        ST_SUB(bytes_mapped, evict[i].len);
    }
}

void hak_large_trim(void)
{
    for (;;) {
        large_mapping_t m;
        hak_lock(&g_cache.lock);
        if (g_cache.n == 0) {
            hak_unlock(&g_cache.lock);
            return;
        }
        m = g_cache.slot[--g_cache.n];
        g_cache.bytes -= m.len;
        hak_unlock(&g_cache.lock);
        hak_os_unmap((void *)m.base, m.len);
        ST_SUB(bytes_mapped, m.len);
    }
}

/* ---------------------------------------------------------- public API */

static void *large_alloc(size_t size, size_t align, bool zeroed)
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
    char *raw = extra == 0 && !zeroed ? (char *)cache_take(len) : NULL;
    bool cached = raw != NULL;
    if (!cached) {
        raw = hak_os_map(total, ps);
        if (raw == NULL)
            return NULL; /* ENOMEM set by the platform */
        ST_ADD(bytes_mapped, len);
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
    if (hak_large_registry_insert_(&g_reg, user, base, len, HAK_METHOD_MMAP) != 0) {
        hak_os_unmap(base, len);
        ST_SUB(bytes_mapped, len);
        errno = ENOMEM;
        return NULL;
    }
    ST_ADD(bytes_in_use, len - lead);
    ST_ADD(blocks, 1);
    ST_ADD(allocs, 1);
    return user;
}

void *hak_large_alloc(size_t size, size_t align) { return large_alloc(size, align, false); }

void *hak_large_alloc_zeroed(size_t size, size_t align) { return large_alloc(size, align, true); }

void hak_large_free(void *p)
{
    if (p == NULL)
        return;
    int saved = errno;
    large_verdict_t v = {REASON_INVALID};
    hak_large_reg_entry_t e;
    if (hak_large_registry_remove_(&g_reg, p, large_check, &v, &e) != HAK_LREG_REMOVED) {
        hak_report_failure("free", v.reason, p); /* a test's handler returns: leave it */
        errno = saved;
        return;
    }
    cache_put(e.base, e.len);
    ST_SUB(bytes_in_use, e.base + e.len - e.key);
    ST_SUB(blocks, 1);
    ST_ADD(frees, 1);
    errno = saved;
}

size_t hak_large_usable_size(const void *p)
{
    hak_large_reg_entry_t e;
    if (p == NULL || !hak_large_registry_lookup_(&g_reg, p, &e) || e.method != HAK_METHOD_MMAP)
        return 0;
    return e.base + e.len - e.key;
}

bool hak_large_owns(const void *p)
{
    hak_large_reg_entry_t e;
    return p != NULL && hak_large_registry_lookup_(&g_reg, p, &e) && e.method == HAK_METHOD_MMAP;
}

void *hak_large_realloc(void *p, size_t size)
{
    if (p == NULL)
        return hak_large_alloc(size, LARGE_MIN_ALIGN);
    hak_large_reg_entry_t e;
    large_verdict_t v = {REASON_INVALID};
    /* The caller owns p: nobody frees it meanwhile, so the header may be
     * read outside the lock. */
    if (!hak_large_registry_lookup_(&g_reg, p, &e) || !large_check(&e, &v)) {
        hak_report_failure("realloc", v.reason, p);
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
            hak_large_registry_unlock_(&g_reg);
            errno = ENOMEM;
            return NULL;
        }
    }
    char *q = nb + off;
    hak_large_registry_update_locked_(&g_reg, p, q, nb, len);
    hak_ah_write(q, len - off, off, HAK_METHOD_MMAP);
    hak_large_registry_unlock_(&g_reg);
    if (len < e.len) {
        ST_SUB(bytes_mapped, e.len - len);
        ST_SUB(bytes_in_use, e.len - len);
    } else {
        ST_ADD(bytes_mapped, len - e.len);
        ST_ADD(bytes_in_use, len - e.len);
    }
    errno = saved;
    return q;
}

void hak_large_stats(hak_tier_stats_t *out)
{
    out->bytes_mapped = ST_GET(bytes_mapped) + hak_large_registry_table_bytes_(&g_reg);
    out->bytes_committed = out->bytes_mapped;
    out->bytes_in_use = ST_GET(bytes_in_use);
    out->blocks_in_use = ST_GET(blocks);
    out->allocs = ST_GET(allocs);
    out->frees = ST_GET(frees);
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
    return h->magic == HAK_AH_MAGIC && h->info == hak_ah_pack(e->len - off, off, HAK_METHOD_MMAP);
}

HAK_INTERNAL bool hak_large_validate_(bool headers)
{
    bool ok = hak_large_registry_validate_(&g_reg, large_entry_valid, &headers);
    size_t mask = hak_os_page_size() - 1, bytes = 0;
    hak_lock(&g_cache.lock);
    for (size_t i = 0; i < g_cache.n; i++) {
        const large_mapping_t *m = &g_cache.slot[i];
        if ((m->base & mask) != 0 || (m->len & mask) != 0 || m->len == 0 || m->len > LARGE_CACHE_ONE_MAX)
            ok = false;
        bytes += m->len;
    }
    if (g_cache.n > LARGE_CACHE_SLOTS || bytes != g_cache.bytes || bytes > LARGE_CACHE_BYTES)
        ok = false;
    hak_unlock(&g_cache.lock);
    return ok;
}

HAK_INTERNAL size_t hak_large_registry_bytes_(void) { return hak_large_registry_table_bytes_(&g_reg); }

/* ------------------------------------------------------------- vtable */

static void large_nothing(void) {}

const hak_tier_vtable_t hak_large_vtable = {
    .name = "large",
    .max_size = HAK_LARGE_MAX_SIZE,
    .alloc = hak_large_alloc,
    .free = hak_large_free,
    .usable_size = hak_large_usable_size,
    .owns = hak_large_owns,
    .thread_exit = large_nothing,
    .fork_prepare = large_fork_prepare,
    .fork_parent = large_fork_parent,
    .fork_child = large_fork_child,
    .trim = hak_large_trim,
    .stats = hak_large_stats,
};
