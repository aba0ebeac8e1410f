// SPDX-License-Identifier: MIT
/* tiny.c - the tiny tier: SuperSlabs, slabs, central free lists, thread
 * caches, and everything rare (the slow paths of tiny_inline.h).
 *
 * Design and lock order: see tiny_internal.h. Policy for giving memory
 * back (docs/design.md, "Memory return"; the policy itself is hak_purge.h):
 *   - a slab whose last block comes home goes back to its SuperSlab at once
 *     (unless it is its class's only partial slab), onto the dirty list:
 *     free, pages still committed, reused first (the most recent first).
 *     The list is in the order slabs became free; tiny_purge, called by the
 *     purge policy, decommits (MADV_DONTNEED) from its old end the slabs
 *     that stayed free for the purge delay, or as many as the budget asks;
 *   - a SuperSlab whose slabs are all free and decommitted is unmapped,
 *     except one kept as a spare against map/unmap churn;
 *   - central lists (hak_central.h, shared with the pools) hold at most
 *     HAK_TINY_CENTRAL_MAX batches per class; beyond that, blocks go home
 *     to their slabs.
 */
#include "tiny_inline.h"

#include <errno.h>
#include <string.h>

#include "hak_central.h"
#include "hak_list.h"
#include "hak_purge.h"
#include "hakmem/tiny.h"

/* Used by the thread caches and the SuperSlab cache of the posix backend
 * only: the arena build has neither. */
#if HAK_PLATFORM_ARENA
#define POSIX_ONLY __attribute__((unused))
#else
#define POSIX_ONLY
#endif

#define HAK_TINY_CENTRAL_MAX 16  /* batches per class in the central list */
#define HAK_TINY_CACHE_BYTES 8192
#define HAK_TINY_CACHE_MIN   16
#define HAK_TINY_CACHE_MAX   128
/* Bins grow under contention (hak_bound_grow) and where they swing between
 * empty and full, bursts included (hak_swing_event, up to HAK_GROW_MAX
 * times their start) while the thread's bounds stay within
 * HAK_TINY_TC_BUDGET bytes. A thread that never meets another and whose
 * bins never swing keeps the small bounds; trim and the shrinker
 * (tiny_shrink: a purge pass that gave back memory by age, an allocation
 * that found none) put them back to their start. */
#define HAK_TINY_TC_BUDGET   ((size_t)512 << 10)

const uint16_t hak_tiny_stride_[HAK_TINY_NCLASSES] = HAK_TINY_STRIDES;

#define U(u) HAK_TINY_CLASS_OF_UNITS(u)
#define U8(b) U(b), U(b + 1), U(b + 2), U(b + 3), U(b + 4), U(b + 5), U(b + 6), U(b + 7)
const uint8_t hak_tiny_lut_[HAK_TINY_LUT_CAP] = {U8(0), U8(8), U8(16), U8(24), U8(32), U8(40), U8(48), U8(56), U8(64)};
#undef U8
#undef U
_Static_assert(HAK_TINY_LUT_SIZE <= HAK_TINY_LUT_CAP, "size-class table too short");
_Static_assert(offsetof(tiny_slab_t, u) == 0 && ((size_t)1 << HAK_TINY_SLAB_SHIFT) / 16 <= UINT16_MAX,
               "a slab is its unit (hak_central.h), whose counts hold a slab's blocks");
/* Every posix SuperSlab has all its slabs (hak_tiny_slab_of relies on it):
 * the header, with headerless full validation's live bits, fits slab 0. */
_Static_assert(sizeof(tiny_ss_t) + HAK_TINY_MAX_SLABS * (((size_t)1 << HAK_TINY_SLAB_SHIFT) / 128) + 2048 <=
                   ((size_t)1 << HAK_TINY_SLAB_SHIFT),
               "SuperSlab header too large for slab 0");

/* --------------------------------------------------------------- state */

/* The central lists park up to 16 batches (hak_central.h). */
#define TINY_CENTRAL_POLICY {.max_batches = HAK_TINY_CENTRAL_MAX}
static hak_central_t g_central[HAK_TINY_NCLASSES] = {[0 ... HAK_TINY_NCLASSES - 1] = TINY_CENTRAL_POLICY};
_Static_assert(HAK_TINY_CENTRAL_MAX <= HAK_CENTRAL_MAX, "tiny's parked batches fit a central list");
static hak_lock_t g_ss_lock = HAK_LOCK_INIT;
/* Free slabs whose pages are still committed, most recently freed first
 * (g_ss_lock), linked through their units. */
static hak_unit_t *g_dirty, *g_dirty_tail;
static size_t g_dirty_bytes;
static tiny_ss_t *g_ss_list;     /* every SuperSlab */
static tiny_ss_t *g_ss_spare POSIX_ONLY; /* one empty SuperSlab kept mapped (posix) */
#if !HAK_PLATFORM_ARENA
static hak_tcreg_t g_tcreg; /* every thread's cache */
#endif
static int g_init_done;

static struct {
    size_t superslabs, slabs_in_use, bytes_mapped, bytes_decommitted;
    size_t slab_releases, ss_unmaps;
} g_st;
#define ST_ADD(f, v) __atomic_fetch_add(&g_st.f, (v), __ATOMIC_RELAXED)
#define ST_SUB(f, v) __atomic_fetch_sub(&g_st.f, (v), __ATOMIC_RELAXED)

/* The peak of the tier's committed bytes (HAKMEM_STATS), noted before
 * they fall (a slab decommitted, a SuperSlab unmapped) and when read. */
static size_t g_committed_peak;

static void note_committed_peak(void)
{
    size_t m = __atomic_load_n(&g_st.bytes_mapped, __ATOMIC_RELAXED);
    size_t d = __atomic_load_n(&g_st.bytes_decommitted, __ATOMIC_RELAXED);
    hak_peak_note(&g_committed_peak, m > d ? m - d : 0);
}

size_t hak_tiny_committed_peak_(void)
{
    note_committed_peak();
    return __atomic_load_n(&g_committed_peak, __ATOMIC_RELAXED);
}

#if HAK_PLATFORM_ARENA
tiny_ss_t *hak_tiny_arena_ss_;
static uint8_t *g_arena_next;  /* next SuperSlab to set up */
static uint8_t *g_arena_end;
#else
__thread tiny_tcache_t hak_tiny_tc_;
#endif
#if HAK_STATS
uint64_t hak_tiny_count_[4];
#endif

static void tiny_global_init(void);

HAK_LIST_DEFINE(ss_list, tiny_ss_t) /* g_ss_list */

/* ------------------------------------------------------------- helpers */

/* A slab's class, in its descriptor and as its page's kind in the page
 * map (posix: a slab is one 64 KiB page), which free reads. */
static void slab_set_class(tiny_slab_t *s, unsigned cls)
{
    s->cls = (uint8_t)cls;
#if !HAK_PLATFORM_ARENA
    tiny_ss_t *ss = hak_tiny_ss_of(s);
    _Static_assert(HAK_TINY_SLAB_SHIFT == HAK_PAGE_SHIFT, "a tiny slab is one page of the page map");
    hak_page_set_kind((uint8_t *)ss + ((size_t)s->index << HAK_TINY_SLAB_SHIFT), 1,
                      cls == HAK_TINY_NO_CLASS ? HAK_KIND_OWNED(HAK_TAG_TINY) : HAK_KIND_TINY0 + cls);
#endif
}

#define next_of tiny_link_get

#if HAK_VALIDATION >= 2
void *hak_tiny_bad_link_(void *b)
{
    hak_report_failure("malloc", "corrupted free list (a write after free?)", b);
    return NULL; /* the rest of the list is lost, never handed out */
}
#endif

#if HAK_VALIDATION >= 2 && !HAK_HEADER_CLASSIDX
/* Headerless full validation keeps a live bit per block in a side table
 * after the slab headers: 1 bit per 16 bytes of slab. */
#define LIVE_BYTES_PER_SLAB(shift) (((size_t)1 << (shift)) / 16 / 8)
#else
#define LIVE_BYTES_PER_SLAB(shift) ((size_t)0)
#endif

static size_t ss_header_size(uint32_t nslabs, uint32_t shift)
{
    size_t sz = offsetof(tiny_ss_t, slabs) + (size_t)nslabs * sizeof(tiny_slab_t);
    (void)shift;
    sz += (size_t)nslabs * LIVE_BYTES_PER_SLAB(shift);
    return (sz + 63) & ~(size_t)63;
}

/* First byte of slab i's memory that blocks may use. */
static uint8_t *slab_data_start(tiny_ss_t *ss, uint32_t i)
{
    uint8_t *start = ss->slab0 + ((size_t)i << ss->slab_shift);
    if (i == 0)
        start = (uint8_t *)ss + ss_header_size(ss->nslabs, ss->slab_shift);
    return start;
}

/* A block just carved: its header (headerless builds: nothing). */
static void write_header(void *b, unsigned cls)
{
#if HAK_HEADER_CLASSIDX
    uint8_t *p = b;
    p[-1] = (uint8_t)((HAK_VALIDATION >= 2 ? HAK_TINY_MAGIC_FREE : HAK_TINY_MAGIC_LIVE) | cls);
    if (hak_tiny_hdr_of(cls) == 2)
        p[-2] = HAK_TINY_CHECK_BYTE;
#else
    (void)b;
    (void)cls;
#endif
}

#if HAK_VALIDATION >= 2 && !HAK_HEADER_CLASSIDX
static inline size_t block_index(const tiny_slab_t *s, const void *p)
{
    return (size_t)((const uint8_t *)p - s->u.base) / s->u.stride;
}
#endif

/* ------------------------------------------------------------ SuperSlabs */

static void slab_page_range(tiny_ss_t *ss, tiny_slab_t *s, uint8_t **lo, uint8_t **hi);
static void dirty_remove(tiny_ss_t *ss, tiny_slab_t *s);
static size_t tiny_purge(uint32_t cutoff, bool all, size_t want);
static void tiny_shrink(void);

static void ss_link(tiny_ss_t *ss)
{
    ss_list_push_front(&g_ss_list, NULL, ss);
}

POSIX_ONLY static void ss_unlink(tiny_ss_t *ss)
{
    ss_list_remove(&g_ss_list, NULL, ss);
}

/* Lay out a SuperSlab header over [mem, mem+size). */
static void ss_format(tiny_ss_t *ss, size_t size, uint32_t shift)
{
    uint32_t n = (uint32_t)(size >> shift);
    if (n > HAK_TINY_MAX_SLABS)
        n = HAK_TINY_MAX_SLABS;
    /* the header must leave room in slab 0 */
    while (n > 1 && ss_header_size(n, shift) + 2048 > ((size_t)1 << shift))
        n--;
    ss->magic = HAK_TINY_SS_MAGIC;
    ss->nslabs = n;
    ss->nfree = n;
    ss->slab_shift = shift;
    ss->slab0 = (uint8_t *)ss;
    ss->size = size;
    for (uint32_t i = 0; i < n; i++) {
        tiny_slab_t *s = &ss->slabs[i];
        memset(s, 0, sizeof(*s));
        s->index = (uint8_t)i;
        slab_set_class(s, HAK_TINY_NO_CLASS);
#if HAK_VALIDATION >= 2 && !HAK_HEADER_CLASSIDX
        s->live = (uint8_t *)&ss->slabs[n] + (size_t)i * LIVE_BYTES_PER_SLAB(shift);
#endif
    }
}

/* A new SuperSlab, called with g_ss_lock held. */
static tiny_ss_t *ss_new(void)
{
    hak_link_init(); /* before the first block exists: every link is encoded with it */
#if HAK_PLATFORM_ARENA
    if (g_arena_next == NULL || g_arena_next >= g_arena_end) {
        errno = ENOMEM;
        return NULL;
    }
    size_t size = (size_t)(g_arena_end - g_arena_next);
    if (size > HAK_TINY_SS_SIZE)
        size = HAK_TINY_SS_SIZE;
    if (size < 4096) {
        errno = ENOMEM;
        return NULL;
    }
    tiny_ss_t *ss = (tiny_ss_t *)g_arena_next;
    g_arena_next += HAK_TINY_SS_SIZE;
    /* Slabs of 64 KiB where at least four fit, smaller in a small buffer
     * (down to 4 KiB). */
    uint32_t shift = HAK_TINY_SLAB_SHIFT;
    while (shift > 12 && (size >> shift) < 4)
        shift--;
    ss_format(ss, size, shift);
    if (ss->nslabs == 0 || slab_data_start(ss, 0) >= ss->slab0 + ((size_t)1 << shift)) {
        errno = ENOMEM;
        return NULL;
    }
    ST_ADD(superslabs, 1);
#else
    tiny_ss_t *ss;
    if (g_ss_spare) {
        ss = g_ss_spare;
        g_ss_spare = NULL;
    } else {
        hak_purge_register(tiny_purge, tiny_shrink); /* before the first slab can be dirty */
        ss = hak_os_map(HAK_TINY_SS_SIZE, HAK_TINY_SS_SIZE);
        if (ss == NULL)
            return NULL;
        if (hak_chunk_set_tag(ss, HAK_TINY_SS_SIZE, HAK_TAG_TINY) != 0) {
            hak_os_unmap(ss, HAK_TINY_SS_SIZE);
            errno = ENOMEM;
            return NULL;
        }
        ss_format(ss, HAK_TINY_SS_SIZE, HAK_TINY_SLAB_SHIFT);
        ST_ADD(superslabs, 1);
        ST_ADD(bytes_mapped, HAK_TINY_SS_SIZE);
        /* Fresh pages are untouched: count them as not committed until a
         * slab is formatted over them. */
        for (uint32_t i = 0; i < ss->nslabs; i++) {
            uint8_t *lo, *hi;
            slab_page_range(ss, &ss->slabs[i], &lo, &hi);
            ss->slabs[i].decommitted = 1;
            ST_ADD(bytes_decommitted, (size_t)(hi - lo));
            hak_os_note_decommit((size_t)(hi - lo));
        }
    }
#endif
    ss_link(ss);
    return ss;
}

#if !HAK_PLATFORM_ARENA
/* Unmap an unlinked SuperSlab whose slabs are all free (g_ss_lock held). */
static void ss_unmap(tiny_ss_t *ss)
{
    size_t dec = 0;
    for (uint32_t i = 0; i < ss->nslabs; i++) {
        if (ss->slabs[i].dirty)
            dirty_remove(ss, &ss->slabs[i]);
        if (ss->slabs[i].decommitted) {
            uint8_t *lo, *hi;
            slab_page_range(ss, &ss->slabs[i], &lo, &hi);
            dec += (size_t)(hi - lo);
        }
    }
    hak_chunk_set_tag(ss, HAK_TINY_SS_SIZE, HAK_TAG_NONE);
    note_committed_peak();
    hak_os_note_recommit(dec);
    ST_SUB(bytes_decommitted, dec);
    hak_os_unmap(ss, HAK_TINY_SS_SIZE);
    ST_SUB(superslabs, 1);
    ST_SUB(bytes_mapped, HAK_TINY_SS_SIZE);
    ST_ADD(ss_unmaps, 1);
}
#endif

/* The SuperSlab has no slab in use (g_ss_lock held): unmap it or keep it as
 * the spare (its dirty slabs stay on the dirty list). */
POSIX_ONLY static void ss_retire(tiny_ss_t *ss)
{
#if HAK_PLATFORM_ARENA
    (void)ss; /* arena SuperSlabs stay formatted and linked */
#else
    ss_unlink(ss);
    if (g_ss_spare == NULL)
        g_ss_spare = ss;
    else
        ss_unmap(ss);
#endif
}

/* Page-aligned range of slab s that can be decommitted. */
static void slab_page_range(tiny_ss_t *ss, tiny_slab_t *s, uint8_t **lo, uint8_t **hi)
{
    uintptr_t start = (uintptr_t)slab_data_start(ss, s->index);
    uintptr_t end = (uintptr_t)ss->slab0 + ((uintptr_t)(s->index + 1) << ss->slab_shift);
    start = (start + 4095) & ~(uintptr_t)4095;
    end &= ~(uintptr_t)4095;
    *lo = (uint8_t *)start;
    *hi = (uint8_t *)(end > start ? end : start);
}

/* ----------------------------------------------------- the dirty list */

static size_t slab_bytes(tiny_ss_t *ss, tiny_slab_t *s)
{
    uint8_t *lo, *hi;
    slab_page_range(ss, s, &lo, &hi);
    return (size_t)(hi - lo);
}

static void dirty_push(tiny_ss_t *ss, tiny_slab_t *s)
{
    hak_unit_list_push_front(&g_dirty, &g_dirty_tail, &s->u);
    s->dirty = 1;
    s->freed_at = hak_purge_stamp();
    ss->ndirty++;
    size_t b = slab_bytes(ss, s);
    g_dirty_bytes += b;
    hak_purge_dirty_add(b);
}

static void dirty_remove(tiny_ss_t *ss, tiny_slab_t *s)
{
    hak_unit_list_remove(&g_dirty, &g_dirty_tail, &s->u);
    s->u.next = s->u.prev = NULL;
    s->dirty = 0;
    ss->ndirty--;
    size_t b = slab_bytes(ss, s);
    g_dirty_bytes -= b;
    hak_purge_dirty_sub(b);
}

/* The purger (hak_purge.h): decommit dirty slabs from the old end of the
 * list, those freed at or before `cutoff` (every one when `all`), until
 * `want` bytes went back; a SuperSlab left with every slab free and
 * decommitted is retired. `all` also unmaps the spare. */
static size_t tiny_purge(uint32_t cutoff, bool all, size_t want)
{
    size_t got = 0;
    hak_lock(&g_ss_lock);
    while (got < want && g_dirty_tail) {
        tiny_slab_t *s = (tiny_slab_t *)g_dirty_tail;
        if (!all && !hak_purge_expired(s->freed_at, cutoff))
            break;
        tiny_ss_t *ss = hak_tiny_ss_of(s);
        dirty_remove(ss, s);
#if !HAK_PLATFORM_ARENA
        uint8_t *lo, *hi;
        slab_page_range(ss, s, &lo, &hi);
        if (hi > lo && hak_os_decommit(lo, (size_t)(hi - lo)) == 0) {
            s->decommitted = 1;
            note_committed_peak();
            ST_ADD(bytes_decommitted, (size_t)(hi - lo));
            got += (size_t)(hi - lo);
        }
        if (ss->nfree == ss->nslabs && ss->ndirty == 0 && ss != g_ss_spare)
            ss_retire(ss);
#endif
    }
#if !HAK_PLATFORM_ARENA
    if (all && g_ss_spare) {
        ss_unmap(g_ss_spare);
        g_ss_spare = NULL;
    }
#endif
    hak_unlock(&g_ss_lock);
    return got;
}

/* Bind a free slab to class cls (g_ss_lock held). */
static void slab_format(tiny_ss_t *ss, tiny_slab_t *s, unsigned cls)
{
    if (s->dirty)
        dirty_remove(ss, s);
    unsigned stride = hak_tiny_stride_[cls], hdr = hak_tiny_hdr_of(cls);
    uintptr_t align = stride & -stride;
    uintptr_t start = (uintptr_t)slab_data_start(ss, s->index);
    uintptr_t end = (uintptr_t)ss->slab0 + ((uintptr_t)(s->index + 1) << ss->slab_shift);
    if (end > (uintptr_t)ss + ss->size)
        end = (uintptr_t)ss + ss->size;
    uintptr_t p0 = (start + hdr + align - 1) & ~(align - 1);
    if (p0 < start + hdr)
        p0 += align;
    s->u.base = (uint8_t *)p0;
    s->end = (uint8_t *)end;
    s->u.stride = stride;
    s->u.capacity = (end > p0 - hdr) ? (uint16_t)((end - (p0 - hdr)) / stride) : 0;
    s->u.carved = 0;
    s->u.used = 0;
    s->u.free = NULL;
    slab_set_class(s, (uint8_t)cls);
    s->u.next = s->u.prev = NULL;
    s->u.in_partial = 0;
    if (s->decommitted) {
        uint8_t *lo, *hi;
        slab_page_range(ss, s, &lo, &hi);
        hak_os_note_recommit((size_t)(hi - lo));
        ST_SUB(bytes_decommitted, (size_t)(hi - lo));
        s->decommitted = 0;
    }
#if HAK_VALIDATION >= 2 && !HAK_HEADER_CLASSIDX
    memset(s->live, 0, LIVE_BYTES_PER_SLAB(ss->slab_shift));
#endif
    ss->nfree--;
    ST_ADD(slabs_in_use, 1);
    hak_purge_used_add(slab_bytes(ss, s));
}

/* A free slab for class cls, or NULL (ENOMEM). Called with the class lock
 * held; takes g_ss_lock. */
static tiny_slab_t *slab_acquire(unsigned cls)
{
    hak_lock(&g_ss_lock);
    tiny_slab_t *found = NULL;
    /* warm pages first: the most recently freed slab */
    tiny_slab_t *d = (tiny_slab_t *)g_dirty;
    if (d) {
        tiny_ss_t *ss = hak_tiny_ss_of(d);
#if !HAK_PLATFORM_ARENA
        if (ss == g_ss_spare) { /* the spare keeps its dirty slabs: in use again */
            g_ss_spare = NULL;
            ss_link(ss);
        }
#endif
        slab_format(ss, d, cls);
        if (d->u.capacity == 0) { /* too small for this class (small arena) */
            slab_set_class(d, HAK_TINY_NO_CLASS);
            ss->nfree++;
            ST_SUB(slabs_in_use, 1);
            hak_purge_used_sub(slab_bytes(ss, d));
            dirty_push(ss, d);
        } else {
            found = d;
        }
    }
    for (tiny_ss_t *ss = g_ss_list; ss && !found; ss = ss->next) {
        if (ss->nfree == 0)
            continue;
        for (uint32_t i = 0; i < ss->nslabs; i++) {
            tiny_slab_t *s = &ss->slabs[i];
            if (s->cls == HAK_TINY_NO_CLASS) {
                slab_format(ss, s, cls);
                if (s->u.capacity == 0) { /* too small for this class (small arena) */
                    slab_set_class(s, HAK_TINY_NO_CLASS);
                    ss->nfree++;
                    ST_SUB(slabs_in_use, 1);
                    hak_purge_used_sub(slab_bytes(ss, s));
                    continue;
                }
                found = s;
                break;
            }
        }
    }
    if (!found) {
        tiny_ss_t *ss = ss_new();
        if (ss) {
            for (uint32_t i = 0; i < ss->nslabs && !found; i++) {
                tiny_slab_t *s = &ss->slabs[i];
                if (s->cls != HAK_TINY_NO_CLASS)
                    continue;
                slab_format(ss, s, cls);
                if (s->u.capacity == 0) {
                    slab_set_class(s, HAK_TINY_NO_CLASS);
                    ss->nfree++;
                    ST_SUB(slabs_in_use, 1);
                    hak_purge_used_sub(slab_bytes(ss, s));
                    continue;
                }
                found = s;
            }
            if (!found)
                errno = ENOMEM;
        }
    }
    hak_unlock(&g_ss_lock);
    return found;
}

/* The slab's last block came home: the slab goes back to its SuperSlab,
 * onto the dirty list (the purge policy decides when its pages go back:
 * the slow path that got here polls it once its locks are released).
 * Called with the class lock held. */
static void slab_release(tiny_slab_t *s)
{
    tiny_ss_t *ss = hak_tiny_ss_of(s->u.base);
    hak_lock(&g_ss_lock);
    slab_set_class(s, HAK_TINY_NO_CLASS);
    s->u.free = NULL;
    ss->nfree++;
    ST_SUB(slabs_in_use, 1);
    hak_purge_used_sub(slab_bytes(ss, s));
    ST_ADD(slab_releases, 1);
    dirty_push(ss, s);
    hak_unlock(&g_ss_lock);
}

/* ----------------------------------------------------- class structures */

/* The back end of the central lists (hak_central_ops_t, `be` unused): a
 * new slab, the slab of a block, a carved block's header, an emptied slab
 * back to its SuperSlab (the class's only partial slab stays: keep_last),
 * the next block of a list. Class lock held. */
static hak_unit_t *unit_acquire(void *be, unsigned cls)
{
    (void)be;
    tiny_slab_t *s = slab_acquire(cls);
    return s ? &s->u : NULL;
}

static hak_unit_t *unit_of(const void *b) { return &hak_tiny_slab_of(b)->u; }

static void unit_release(void *be, hak_unit_t *u)
{
    (void)be;
    slab_release((tiny_slab_t *)u);
}

static void *list_next(void *be, void *b, unsigned cls, const char *op, const hak_unit_t *home)
{
    (void)be;
    (void)cls;
    (void)op; /* tiny's reports name malloc (hak_tiny_bad_link_) */
    (void)home;
    return next_of(b);
}

static const hak_central_ops_t g_ops = {
    .acquire = unit_acquire,
    .unit_of = unit_of,
    .carved = write_header,
    .release = unit_release,
    .next = list_next,
    .keep_last = true, /* the class's only partial slab stays when it empties */
};

/* Hand a linked list of n blocks to the central list of cls (`drain`: a
 * thread cache's overflow, counted as one drain); true if the lock was
 * contended. */
POSIX_ONLY static bool central_put(unsigned cls, void *head, uint32_t n, bool drain)
{
    return hak_central_put(&g_ops, NULL, &g_central[cls], cls, head, n, drain);
}

/* ------------------------------------------------------- thread caches */

POSIX_ONLY static uint32_t cache_max(unsigned cls)
{
    uint32_t m = HAK_TINY_CACHE_BYTES / hak_tiny_stride_[cls];
    if (m < HAK_TINY_CACHE_MIN)
        m = HAK_TINY_CACHE_MIN;
    if (m > HAK_TINY_CACHE_MAX)
        m = HAK_TINY_CACHE_MAX;
    return m;
}

#if !HAK_PLATFORM_ARENA
/* Every bin of tc at its starting bound (a new cache, and after a trim). */
static void tc_reset_bounds(tiny_tcache_t *tc)
{
    tc->bound_bytes = 0;
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        hak_bin_set_max(&tc->bins[c], cache_max(c));
        tc->bound_bytes += (size_t)cache_max(c) * hak_tiny_stride_[c];
        tc->contended[c] = tc->swing[c] = 0; /* not tc->ramp: a thread's slow start is once */
    }
}

/* A refill or drain of cls waited for the class lock: other threads use
 * the class too; the bin may grow (and so the batches it moves, half the
 * bound each), so that a class shared by many threads takes its lock less
 * often. */
static void tc_contended(tiny_tcache_t *tc, unsigned cls)
{
    hak_bin_t *bin = &tc->bins[cls];
    hak_bin_set_max(bin, hak_bound_grow(&tc->contended[cls], bin->max, cache_max(cls), hak_tiny_stride_[cls],
                                         &tc->bound_bytes, HAK_TINY_TC_BUDGET));
}

/* A refill (dir 0) or drain (dir 1) of cls: a bin that swings between
 * empty and full grows, so that a steady working set goes to the central
 * list less often (hak_swing_event). */
HAK_INLINE void tc_swing(tiny_tcache_t *tc, unsigned cls, unsigned dir)
{
    hak_bin_t *bin = &tc->bins[cls];
    if (HAK_LIKELY(!hak_swing_event(&tc->swing[cls], dir, (size_t)bin->max * hak_tiny_stride_[cls])))
        return;
    hak_bin_set_max(bin, hak_swing_grow(bin->max, cache_max(cls) * HAK_GROW_MAX, hak_tiny_stride_[cls],
                                        &tc->bound_bytes, HAK_TINY_TC_BUDGET));
}

/* Give every block of a cache back to the central lists. */
static void tcache_flush(tiny_tcache_t *tc)
{
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        hak_bin_t *bin = &tc->bins[c];
        void *head = bin->head;
        if (head == NULL)
            continue;
        uint32_t n = 0;
        for (void *b = head; b; b = next_of(b))
            n++; /* count by walking: a fork may have caught count mid-update */
        bin->head = NULL;
        bin->room = (int32_t)bin->max;
        central_put(c, head, n, false);
    }
}

static void tc_retire(tiny_tcache_t *tc)
{
    tc->state = TINY_TC_DEAD;
    tcache_flush(tc);
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
        tc->bins[c].max = tc->bins[c].room = 0;
}

/* Thread-exit hook: the thread is exiting. A cache it never used is dead
 * too (as the pools'): a call after the hooks (another key's destructor,
 * glibc's frees after the last round) then runs cacheless instead of
 * setting up a cache that no hook would give back. */
static void tiny_thread_exit(void)
{
    tiny_tcache_t *tc = &hak_tiny_tc_;
    if (tc->state != TINY_TC_LIVE) {
        tc->state = TINY_TC_DEAD;
        return;
    }
    tc_retire(tc);
    hak_tcreg_remove(&g_tcreg, &tc->reg);
}

/* First call of a thread into the slow path. */
static void tcache_setup(tiny_tcache_t *tc)
{
    tiny_global_init();
    tc->bins = tiny_bin(0);
    tc->state = TINY_TC_LIVE;
    tc_reset_bounds(tc); /* keeps a block the first free pushed */
    /* Arming may allocate (pthread_setspecific of a high key): the cache is
     * live. Without an entry or an exit hook, run cacheless so nothing is
     * stranded at exit. */
    if (hak_tcreg_add(&g_tcreg, &tc->reg) != 0 || hak_thread_exit_arm() != 0) {
        hak_tcreg_remove(&g_tcreg, &tc->reg);
        tc_retire(tc);
    }
}

/* The fork child's adoption of another thread's cache. */
static void tcache_adopt(hak_tcreg_node_t *n, void *arg)
{
    (void)arg;
    tcache_flush((tiny_tcache_t *)((char *)n - offsetof(tiny_tcache_t, reg)));
}
#endif

/* One block of cls with no thread cache, and one home. */
static void *alloc_nocache(unsigned cls) { return hak_central_alloc_one(&g_ops, NULL, &g_central[cls], cls); }

static void free_nocache(void *p, unsigned cls) { hak_central_free_one(&g_ops, NULL, &g_central[cls], p); }

#if HAK_VALIDATION >= 2
void hak_tiny_mark_live_(void *b, unsigned cls)
{
#if HAK_HEADER_CLASSIDX
    ((uint8_t *)b)[-1] = (uint8_t)(HAK_TINY_MAGIC_LIVE | cls);
#else
    (void)cls;
    tiny_slab_t *s = hak_tiny_slab_of(b);
    size_t i = block_index(s, b);
    /* blocks of one byte of bits may belong to different threads */
    __atomic_fetch_or(&s->live[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELAXED);
#endif
}
#define mark_live(b, cls) hak_tiny_mark_live_(b, cls)
#else
#define mark_live(b, cls) ((void)0)
#endif

void *hak_tiny_alloc_slow_(unsigned cls)
{
    void *b;
#if HAK_PLATFORM_ARENA
    b = alloc_nocache(cls);
#else
    tiny_tcache_t *tc = &hak_tiny_tc_;
    if (HAK_UNLIKELY(tc->state != TINY_TC_LIVE)) {
        if (tc->state == TINY_TC_NEW)
            tcache_setup(tc);
        if (tc->state != TINY_TC_LIVE) {
            tiny_global_init(); /* a thread whose hooks ran may be the tier's first user */
            b = alloc_nocache(cls);
            goto out;
        }
    }
    hak_bin_t *bin = tiny_bin(cls);
    if (bin->head) { /* a nested call during setup filled it */
        b = bin->head;
        bin->head = next_of(b);
        bin->room++;
        if (HAK_VALIDATION >= 2 && bin->head == NULL)
            bin->room = (int32_t)bin->max; /* its end, or a corrupted link cut it */
        goto out;
    }
    bool contended;
    uint32_t want = hak_front_ramp(&tc->ramp[cls], bin->max / 2 ? bin->max / 2 : 1);
    b = hak_front_refill(&g_ops, NULL, &g_central[cls], cls, bin, want, &contended, true);
    if (HAK_UNLIKELY(contended))
        tc_contended(tc, cls);
    tc_swing(tc, cls, 0);
out:
    hak_purge_poll();
#endif
    if (b == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    mark_live(b, cls);
    return b;
}

void hak_tiny_free_slow_(void *p, unsigned cls)
{
#if HAK_PLATFORM_ARENA
    free_nocache(p, cls);
#else
    tiny_tcache_t *tc = &hak_tiny_tc_;
    hak_bin_t *bin = tiny_bin(cls);
    if (HAK_UNLIKELY(hak_front_pushed_twice(bin, p)))
        return;
    if (HAK_UNLIKELY(tc->state != TINY_TC_LIVE)) {
        if (tc->state == TINY_TC_NEW)
            tcache_setup(tc);
        if (tc->state != TINY_TC_LIVE) {
            /* Dead (or never set up): p was pushed by the fast path, or
             * the bin was flushed since; take it back out if still there. */
            if (bin->head == p) {
                bin->head = next_of(p);
                bin->room++;
            }
            free_nocache(p, cls);
            return;
        }
    }
    if (bin->room >= 0)
        return;
    if (HAK_UNLIKELY(hak_front_drain(&g_ops, NULL, &g_central[cls], cls, bin)))
        tc_contended(tc, cls);
    tc_swing(tc, cls, 1);
    hak_purge_poll();
#endif
}

/* ------------------------------------------------------------ validation */

void hak_tiny_bad_free_(void *p, const char *reason) { hak_report_failure("free", reason, p); }

#if HAK_VALIDATION >= 2
/* Why p is not a live tiny block, or NULL if it is one. */
static const char *tiny_not_live(const void *p)
{
    const tiny_slab_t *s = hak_tiny_slab_of(p);
    if (s == NULL || s->cls >= HAK_TINY_NCLASSES)
        return "invalid pointer (not in a live tiny slab)";
    const uint8_t *b = p;
    if (b < s->u.base || (size_t)(b - s->u.base) % s->u.stride != 0 ||
        (size_t)(b - s->u.base) / s->u.stride >= __atomic_load_n(&s->u.carved, __ATOMIC_RELAXED))
        return "invalid pointer (not the start of a tiny block)";
#if HAK_HEADER_CLASSIDX
    unsigned cls = s->cls, h = b[-1];
    if (h == (HAK_TINY_MAGIC_FREE | cls))
        return "double free";
    if (h != (HAK_TINY_MAGIC_LIVE | cls) || (hak_tiny_hdr_of(cls) == 2 && b[-2] != HAK_TINY_CHECK_BYTE))
        return "corrupted header (header disagrees with its slab: overflow from the block before?)";
#else
    size_t i = block_index(s, b);
    if (!(__atomic_load_n(&s->live[i >> 3], __ATOMIC_RELAXED) & (1u << (i & 7))))
        return "double free";
#endif
    return NULL;
}

unsigned hak_tiny_class_checked_(void *p)
{
    const char *why = tiny_not_live(p);
    if (why) {
        hak_tiny_bad_free_(p, why);
        return HAK_TINY_NCLASSES;
    }
    tiny_slab_t *s = hak_tiny_slab_of(p);
    unsigned cls = s->cls;
#if HAK_HEADER_CLASSIDX
    ((uint8_t *)p)[-1] = (uint8_t)(HAK_TINY_MAGIC_FREE | cls);
#else
    size_t i = block_index(s, p);
    uint8_t bit = (uint8_t)(1u << (i & 7));
    if (!(__atomic_fetch_and(&s->live[i >> 3], (uint8_t)~bit, __ATOMIC_RELAXED) & bit)) {
        hak_tiny_bad_free_(p, "double free"); /* lost a race with another free */
        return HAK_TINY_NCLASSES;
    }
#endif
    return cls;
}

bool hak_tiny_check_live_(const void *p, const char *op)
{
    const char *why = tiny_not_live(p);
    if (why) {
        /* realloc/usable size of a freed block: say so, not "double free" */
        if (strcmp(why, "double free") == 0)
            why = "invalid pointer (a freed block: use after free?)";
        hak_report_failure(op, why, p);
    }
    return why == NULL;
}
#else
unsigned hak_tiny_class_checked_(void *p)
{
    (void)p;
    return HAK_TINY_NCLASSES;
}

bool hak_tiny_check_live_(const void *p, const char *op)
{
    (void)p;
    (void)op;
    return true;
}
#endif

/* --------------------------------------------------------------- fork */

static void tiny_fork_prepare(void)
{
#if !HAK_PLATFORM_ARENA
    hak_lock(&g_tcreg.lock);
#endif
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
        hak_lock(&g_central[c].lock);
    hak_lock(&g_ss_lock);
}

static void tiny_fork_parent(void)
{
    hak_unlock(&g_ss_lock);
    for (unsigned c = HAK_TINY_NCLASSES; c-- > 0;)
        hak_unlock(&g_central[c].lock);
#if !HAK_PLATFORM_ARENA
    hak_unlock(&g_tcreg.lock);
#endif
}

static void tiny_fork_child(void)
{
    g_ss_lock.v = 0;
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
        g_central[c].lock.v = 0;
#if !HAK_PLATFORM_ARENA
    /* Adopt the caches of the threads that do not exist in the child: their
     * TLS blocks are still mapped here (fork copied them). */
    hak_tcreg_adopt(&g_tcreg, &hak_tiny_tc_.reg, tcache_adopt, NULL);
#endif
}

static const hak_fork_ops_t tiny_fork_ops = {tiny_fork_prepare, tiny_fork_parent, tiny_fork_child};

/* The exit hook and the fork participant, registered before the init is
 * published: a thread that sees the tier initialised takes its locks, and
 * a fork from then on must take them too (hak_fork_register returns only
 * once it would). Both are idempotent, so threads that race here all
 * register; registering may allocate (pthread_atfork), and an allocation
 * that re-enters here registers again, a no-op, and goes on. */
POSIX_ONLY static void tiny_global_init(void)
{
    if (__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE))
        return;
#if !HAK_PLATFORM_ARENA
    hak_thread_exit_register(tiny_thread_exit);
#endif
    hak_fork_register(&tiny_fork_ops);
    __atomic_store_n(&g_init_done, 1, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------ public API */

void *hak_tiny_alloc(size_t size)
{
    if (HAK_UNLIKELY(size > HAK_TINY_MAX_SIZE)) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_tiny_alloc_inline(size);
}

int hak_tiny_class_aligned_(size_t size, size_t align)
{
    if (size > HAK_TINY_MAX_SIZE)
        return -1;
    if (align <= 16)
        return (int)hak_tiny_class_of(size);
    for (unsigned c = hak_tiny_class_of(size); c < HAK_TINY_NCLASSES; c++) {
        unsigned stride = hak_tiny_stride_[c];
        if ((stride & -stride) >= align)
            return (int)c;
    }
    return -1;
}

void *hak_tiny_alloc_aligned(size_t size, size_t align)
{
    if (align == 0 || (align & (align - 1))) {
        errno = EINVAL;
        return NULL;
    }
    int c = hak_tiny_class_aligned_(size, align);
    if (c < 0) {
        errno = ENOMEM;
        return NULL;
    }
    return hak_tiny_alloc_class((unsigned)c);
}

void hak_tiny_free(void *p)
{
    hak_tier_free(p, hak_tiny_owns_inline, hak_tiny_free_owned, hak_tiny_bad_free_,
                  "invalid pointer (not a tiny block)");
}

size_t hak_tiny_usable_size(const void *p)
{
    return hak_tier_usable_size(p, hak_tiny_owns_inline, hak_tiny_usable_owned);
}

bool hak_tiny_owns(const void *p) { return hak_tiny_owns_inline(p); }

size_t hak_tiny_max_size(void) { return HAK_TINY_MAX_SIZE; }

/* The calling thread's cached blocks to the central lists, nothing more
 * (hak_thread_flush): no slab is released, no bound reset. */
void hak_tiny_flush_(void)
{
#if !HAK_PLATFORM_ARENA
    if (hak_tiny_tc_.state == TINY_TC_LIVE)
        tcache_flush(&hak_tiny_tc_);
#endif
}

/* The calling thread's cache back to its starting bounds, it and the
 * central lists sent home, and the slabs that emptied released (dirty):
 * malloc_trim's first half, and the shrinker a purge pass runs
 * (hak_purge.h). */
static void tiny_shrink(void)
{
#if !HAK_PLATFORM_ARENA
    if (!__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE))
        return; /* nothing to shrink; and no lock is taken before a fork would take it */
    if (hak_tiny_tc_.state == TINY_TC_LIVE) {
        tcache_flush(&hak_tiny_tc_);
        tc_reset_bounds(&hak_tiny_tc_);
    }
#endif
    for (unsigned cls = 0; cls < HAK_TINY_NCLASSES; cls++) {
        hak_central_t *c = &g_central[cls];
        hak_lock(&c->lock);
        hak_central_flush_locked(&g_ops, NULL, c, cls);
        hak_unit_t *u = c->partial;
        while (u) {
            hak_unit_t *next = u->next;
            if (u->used == 0) {
                hak_unit_partial_remove(c, u);
                slab_release((tiny_slab_t *)u);
            }
            u = next;
        }
        hak_unlock(&c->lock);
    }
}

void hak_tiny_trim(void)
{
#if !HAK_PLATFORM_ARENA
    if (!__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE))
        return; /* nothing to trim */
#endif
    tiny_shrink();
    tiny_purge(0, true, SIZE_MAX);
}

int hak_tiny_init_arena(void *buf, size_t len)
{
#if HAK_PLATFORM_ARENA
    if (hak_platform_arena_init(buf, len) != 0)
        return -1;
    uintptr_t lo = ((uintptr_t)buf + 63) & ~(uintptr_t)63;
    size_t avail = (uintptr_t)buf + len - lo;
    if (lo >= (uintptr_t)buf + len || avail < 4096) {
        errno = EINVAL;
        return -1;
    }
    void *mem = hak_os_map(avail, 64);
    if (mem == NULL)
        return -1;
    hak_chunk_set_tag(mem, avail, HAK_TAG_TINY);
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
        g_central[c] = (hak_central_t)TINY_CENTRAL_POLICY;
    g_ss_list = NULL;
    g_arena_next = mem;
    g_arena_end = (uint8_t *)mem + avail;
    hak_tiny_arena_ss_ = mem;
    ST_ADD(bytes_mapped, avail);
    /* the first SuperSlab now, so that ss_of() has a base */
    hak_lock(&g_ss_lock);
    tiny_ss_t *ss = ss_new();
    hak_unlock(&g_ss_lock);
    if (ss == NULL) {
        errno = EINVAL;
        return -1;
    }
    return 0;
#else
    (void)buf;
    (void)len;
    errno = ENOSYS;
    return -1;
#endif
}

size_t hak_tiny_bytes_in_use_(void)
{
    /* Blocks out of their slabs, less those parked in central batches and
     * in the calling thread's cache (other threads' caches count as in
     * use: they cannot be read safely). Every class lock, then the
     * SuperSlab lock (the documented order). */
    size_t bytes = 0, parked = 0;
#if !HAK_PLATFORM_ARENA
    if (!__atomic_load_n(&g_init_done, __ATOMIC_ACQUIRE))
        return 0; /* as trim */
#endif
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
        hak_lock(&g_central[c].lock);
    hak_lock(&g_ss_lock);
    for (tiny_ss_t *ss = g_ss_list; ss; ss = ss->next)
        for (uint32_t i = 0; i < ss->nslabs; i++)
            if (ss->slabs[i].cls != HAK_TINY_NO_CLASS)
                bytes += (size_t)ss->slabs[i].u.used * hak_tiny_stride_[ss->slabs[i].cls];
    hak_unlock(&g_ss_lock);
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        for (uint32_t b = 0; b < g_central[c].nbatch; b++)
            parked += (size_t)g_central[c].batch[b].n * hak_tiny_stride_[c];
        hak_unlock(&g_central[c].lock);
    }
#if !HAK_PLATFORM_ARENA
    if (hak_tiny_tc_.state == TINY_TC_LIVE)
        for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++)
            parked += (size_t)hak_bin_count(tiny_bin(c)) * hak_tiny_stride_[c];
#endif
    return bytes > parked ? bytes - parked : 0;
}

void hak_tiny_get_stats(hak_tiny_stats_t *out)
{
    out->superslabs = __atomic_load_n(&g_st.superslabs, __ATOMIC_RELAXED);
    out->slabs_in_use = __atomic_load_n(&g_st.slabs_in_use, __ATOMIC_RELAXED);
    out->bytes_mapped = __atomic_load_n(&g_st.bytes_mapped, __ATOMIC_RELAXED);
    size_t dec = __atomic_load_n(&g_st.bytes_decommitted, __ATOMIC_RELAXED);
    out->bytes_committed = out->bytes_mapped > dec ? out->bytes_mapped - dec : 0;
    out->refills = out->drains = out->spills = 0;
    for (unsigned c = 0; c < HAK_TINY_NCLASSES; c++) {
        out->refills += __atomic_load_n(&g_central[c].refills, __ATOMIC_RELAXED);
        out->drains += __atomic_load_n(&g_central[c].drains, __ATOMIC_RELAXED);
        out->spills += __atomic_load_n(&g_central[c].spills, __ATOMIC_RELAXED);
    }
    out->slab_releases = __atomic_load_n(&g_st.slab_releases, __ATOMIC_RELAXED);
    out->ss_unmaps = __atomic_load_n(&g_st.ss_unmaps, __ATOMIC_RELAXED);
    out->thread_caches = 0;
#if !HAK_PLATFORM_ARENA
    out->thread_caches = hak_tcreg_count(&g_tcreg);
#endif
}
