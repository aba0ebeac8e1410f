// SPDX-License-Identifier: MIT
/* pool.c - the engine of the mid and L25 pools: chunks, spans, class
 * lists, thread caches, validation, fork, trim (the slow paths of the
 * inline functions in pool_internal.h).
 *
 * Design, layout and lock order: pool_internal.h. Memory return policy
 * (docs/mid.md, "Memory return"), all decided on the free path:
 *   - a thread cache over its bound parks its older half as one batch in
 *     the class's central list (hak_central.h, shared with the tiny tier:
 *     up to HAK_POOL_CENTRAL_MAX), or sends it home to the spans when the
 *     pool parks nothing (params->park false: L25), the list is full or
 *     the class is shrinking (spills released
 *     HAK_CENTRAL_SHRINK spans with none taken since:
 *     then every parked batch goes home too, since each pins its spans);
 *   - a span whose last block comes home goes back to its chunk at once;
 *     its pages stay committed ("dirty"), each stamped with the time it
 *     became free, so that a span re-formed soon after does not fault them
 *     in again;
 *   - the purge policy (hak_purge.h, one for every tier) decides when
 *     dirty pages are decommitted (MADV_DONTNEED): hak_pool_purge_ takes
 *     those free for the purge delay, or, over the budget, as many as it
 *     asks, oldest chunks first;
 *   - a chunk with no span stays mapped while it has dirty pages; once
 *     purged it is unmapped unless the pool keeps fewer than
 *     params->keep_empty empty chunks (against map/unmap churn);
 *   - hak_*_trim() decommits every dirty page and unmaps every empty chunk.
 */
#include "pool_internal.h"

#include <limits.h>

#include <errno.h>
#include <string.h>

#include "hak_list.h"

#if !HAK_PLATFORM_ARENA

#define ST_ADD(pool, f, v) __atomic_fetch_add(&(pool)->st.f, (v), __ATOMIC_RELAXED)
#define ST_SUB(pool, f, v) __atomic_fetch_sub(&(pool)->st.f, (v), __ATOMIC_RELAXED)

/* The pool's committed bytes, noted in its peak before they fall (a
 * chunk unmapped, pages decommitted) and when read (HAKMEM_STATS). */
static void note_committed_peak(hak_pool_t *pool)
{
    size_t m = __atomic_load_n(&pool->st.bytes_mapped, __ATOMIC_RELAXED);
    size_t d = __atomic_load_n(&pool->st.bytes_decommitted, __ATOMIC_RELAXED);
    hak_peak_note(&pool->committed_peak, m > d ? m - d : 0);
}

size_t hak_pool_committed_peak_(hak_pool_t *pool)
{
    note_committed_peak(pool);
    return __atomic_load_n(&pool->committed_peak, __ATOMIC_RELAXED);
}

#define USABLE_PAGES_MASK (((uint32_t)0xFFFFFFFFu) & ~(uint32_t)1) /* pages 1..31 */

/* ----------------------------------------------------- free-list links
 *
 * Every list of free blocks (a thread cache's bin, a parked batch, a
 * span's free list) links them through their first word (hak_link.h).
 * The list heads are pool metadata; the links are in memory the user had
 * and may write after freeing it. So at validation=full every link is
 * checked before it is followed: the decoded next must be NULL or a free
 * block start (live bit clear) of the list's class -- for a span's list,
 * of that span -- in this pool. One that is not is reported "corrupted
 * free list" (as the tiny tier words it) through hak_report_failure, and
 * cut: the block's link is set to NULL and the rest of that list dropped
 * (never handed out nor followed; its blocks stay counted in their spans,
 * leaked). The check reads only the chunk map and the pool's page
 * descriptors, so no value in a link makes it fault. When a block leaves
 * for the user its live bit is set, and a block that was not free (or is
 * no block of the class) is reported the same way and not handed out.
 * Below full a link is the pointer itself: class_next is one load. */

#if HAK_VALIDATION >= 2
static const char g_bad_link[] = "corrupted free list (a write after free?)";

/* n (a decoded link) ends the list, or is the start of a free block (live
 * bit clear) of class cls that its span has carved -- of span `home` when
 * not NULL. Any n may be asked about: only the chunk map and the pool's
 * page descriptors are read. */
HAK_INLINE bool link_ok(const hak_pool_t *pool, const void *n, unsigned cls, const hak_pool_span_t *home)
{
    if (n == NULL)
        return true;
    if (((uintptr_t)n & 15) != 0 || hak_chunk_tag(n) != pool->pr->tag)
        return false;
    const hak_pool_span_t *s = hak_pool_span_of(n);
    if (s == NULL || s->cls != cls || (home != NULL && s != home))
        return false;
    size_t i = hak_pool_index(s, n);
    return i < __atomic_load_n(&s->u.carved, __ATOMIC_RELAXED) && (const uint8_t *)n == s->u.base + i * s->u.stride &&
           !(__atomic_load_n(&s->live, __ATOMIC_RELAXED) & ((uint64_t)1 << i));
}

/* b's link is corrupted: report it and cut the list after b. */
static HAK_COLD void *bad_link(void *b, const char *op)
{
    hak_report_failure(op, g_bad_link, b);
    hak_link_set(b, NULL);
    return NULL;
}

/* The next block after b on a list of class cls: a bin or a parked batch
 * (home NULL), or span home's free list; NULL at the end, or after a
 * corrupted link. `op` names the caller's entry point in a report. */
static void *class_next(hak_pool_t *pool, void *b, unsigned cls, const char *op, const hak_pool_span_t *home)
{
    void *n = hak_link_get(b);
    return HAK_LIKELY(link_ok(pool, n, cls, home)) ? n : bad_link(b, op);
}

/* b, a list's head, leaves for the user: set its live bit. False,
 * reported, if b's span is not of class cls or the block was not free
 * (then it is not handed out). A head was proven a block start of the
 * pool when it became the head (a checked link, a free, the pool's own
 * lists), so the chunk map is not asked again. */
static bool mark_live(void *b, unsigned cls)
{
    hak_pool_span_t *s = hak_pool_span_of(b);
    if (HAK_LIKELY(s != NULL && s->cls == cls)) {
        size_t i = hak_pool_index(s, b);
        uint64_t bit = (uint64_t)1 << (i & (HAK_POOL_MAX_BLOCKS - 1));
        if (HAK_LIKELY(i < s->u.capacity && !(__atomic_fetch_or(&s->live, bit, __ATOMIC_RELAXED) & bit))) {
            s->align_off[i] = 0;
            return true;
        }
    }
    hak_report_failure("malloc", g_bad_link, b);
    return false;
}
#else
HAK_INLINE void *class_next(hak_pool_t *pool, void *b, unsigned cls, const char *op, const hak_pool_span_t *home)
{
    (void)pool;
    (void)cls;
    (void)op;
    (void)home;
    return hak_link_get(b);
}
#endif

/* Pop the head of a non-empty bin of class cls (the count stays the
 * list's length when a corrupted link cut it). */
static void *bin_pop(hak_pool_t *pool, hak_bin_t *bin, unsigned cls)
{
    void *b = bin->head;
    bin->head = class_next(pool, b, cls, "malloc", NULL);
#if HAK_VALIDATION >= 2
    bin->room = bin->head ? bin->room + 1 : (int32_t)bin->max;
#else
    bin->room++;
#endif
    return b;
}


/* pool->dirty and the policy's sum change together (pool lock held). */
static void dirty_add(hak_pool_t *pool, size_t b)
{
    pool->dirty += b;
    hak_purge_dirty_add(b);
}

static void dirty_sub(hak_pool_t *pool, size_t b)
{
    pool->dirty -= b;
    hak_purge_dirty_sub(b);
}

static size_t chunk_header_bytes(void)
{
    return (sizeof(hak_pool_chunk_t) + 4095) & ~(size_t)4095;
}
_Static_assert(sizeof(hak_pool_chunk_t) <= HAK_POOL_PAGE_SIZE, "chunk header must fit page 0");
_Static_assert(offsetof(hak_pool_span_t, u) == 0 && HAK_POOL_MAX_BLOCKS <= UINT16_MAX,
               "a span is its unit (hak_central.h), whose counts hold a span's blocks");

/* ----------------------------------------------------------------- init */

static void class_setup(hak_pool_t *pool, unsigned c)
{
    const hak_pool_params_t *pr = pool->pr;
    hak_pool_class_t *k = &pool->t->cls[c];
    uint32_t stride = pr->strides[c];
    bool pow2 = (stride & (stride - 1)) == 0;
    k->stride = stride;
    k->inv = ((uint64_t)1 << HAK_POOL_INV_SHIFT) / stride + 1;
    /* Pages: at least one block, span_min_blocks blocks unless that passes
     * span_max_bytes, then more pages while the tail wastes over 1/8. */
    size_t want = (size_t)stride * pr->span_min_blocks;
    if (want > pr->span_max_bytes)
        want = pr->span_max_bytes;
    if (want < stride)
        want = stride;
    size_t n = (want + HAK_POOL_PAGE_SIZE - 1) >> HAK_POOL_PAGE_SHIFT;
    while (n < HAK_POOL_PAGES / 2 && ((n << HAK_POOL_PAGE_SHIFT) % stride) * 8 > (n << HAK_POOL_PAGE_SHIFT))
        n++;
    size_t cap = (n << HAK_POOL_PAGE_SHIFT) / stride;
    while (cap > HAK_POOL_MAX_BLOCKS) { /* not reached with the tables of mid.c and l25.c */
        n--;
        cap = (n << HAK_POOL_PAGE_SHIFT) / stride;
    }
    k->npages = (uint8_t)n;
    k->capacity = (uint32_t)cap;
    /* The wide geometry of a busy class (span_acquire), for strides below
     * params->wide_below: up to HAK_POOL_WIDE_PAGES pages, the fewest
     * whose tail is at most 1/64 of the span, else the smallest tail. */
    size_t wn = n, tail = (n << HAK_POOL_PAGE_SHIFT) % stride;
    for (size_t m = n + 1; stride < pr->wide_below && m <= HAK_POOL_WIDE_PAGES && tail * 64 > (wn << HAK_POOL_PAGE_SHIFT);
         m++) {
        size_t t = (m << HAK_POOL_PAGE_SHIFT) % stride;
        if ((m << HAK_POOL_PAGE_SHIFT) / stride <= HAK_POOL_MAX_BLOCKS && t * wn < tail * m) {
            wn = m;
            tail = t;
        }
    }
    k->wide_pages = (uint8_t)wn;
    k->wide_capacity = (uint16_t)((wn << HAK_POOL_PAGE_SHIFT) / stride);
    /* Power-of-two strides above a page get spans aligned to the stride,
     * so their blocks are naturally aligned (aligned_alloc(256K, 256K)
     * takes one block of 256 KiB). */
    k->align_pages = (uint8_t)((pow2 && stride > HAK_POOL_PAGE_SIZE) ? stride >> HAK_POOL_PAGE_SHIFT : 1);
    uint32_t low = stride & -stride;
    k->nat_align = pow2 ? stride : (low < HAK_POOL_PAGE_SIZE ? low : (uint32_t)HAK_POOL_PAGE_SIZE);
    size_t m = pr->cache_bytes / stride;
    if (m < pr->cache_min)
        m = pr->cache_min;
    if (m > pr->cache_max)
        m = pr->cache_max;
    k->bin_max = (uint32_t)m;
    /* the swing rule's cap: cache_max blocks, or for small blocks as many
     * as a bin that bursts fill grows to (HAK_SWING_BURST_BYTES) */
    size_t sm = HAK_SWING_BURST_BYTES / stride;
    k->swing_max = sm > pr->cache_max ? (uint32_t)sm : pr->cache_max;
    _Static_assert(HAK_POOL_CENTRAL_MAX <= HAK_CENTRAL_MAX, "the pools' parked batches fit a central list");
    pool->t->central[c].max_batches = pr->park ? HAK_POOL_CENTRAL_MAX : 0;
    /* the classes that may lend this one a block (hak_front_refill_fit):
     * the sized ones after it, for strides below params->fit_below */
    k->fit_reach = stride < pr->fit_below && c + 1 < pr->nsized
                       ? (uint8_t)hak_fit_reach(stride, &pr->strides[c + 1], pr->nsized - c - 1)
                       : 0;
}

/* The fork participant and the exit hook are registered before the init
 * is published: a thread that sees the pool initialised takes its locks,
 * and a fork from then on must take them too (hak_fork_register returns
 * only once it would; the prepare handler takes init_lock, so a fork waits
 * out a class setup in progress). Both are idempotent; registering may
 * allocate (pthread_atfork), and an allocation that re-enters here
 * registers again, a no-op, and goes on to the setup. */
void hak_pool_init_(hak_pool_t *pool)
{
    if (__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return;
    hak_os_page_size();
    hak_fork_register(pool->fork_ops);
    if (pool->thread_exit)
        hak_thread_exit_register(pool->thread_exit);
    hak_lock(&pool->init_lock);
    if (!pool->init_done) {
        hak_link_init(); /* before the pool's first link */
        for (unsigned c = 0; c < pool->pr->nclasses; c++)
            class_setup(pool, c);
        __atomic_store_n(&pool->init_done, 1, __ATOMIC_RELEASE);
    }
    hak_unlock(&pool->init_lock);
}

/* --------------------------------------------------------------- chunks */

/* A chunk's entry in the directory (pool lock held). */
static hak_pool_dirent_t *dirent(hak_pool_t *pool, const hak_pool_chunk_t *ch) { return &pool->dir[ch->slot]; }

/* No span in the chunk. */
static bool dirent_empty(const hak_pool_dirent_t *d) { return d->free_mask == USABLE_PAGES_MASK; }

/* Room in the directory for one more chunk (pool lock held): doubles it
 * when full; false with ENOMEM. */
static bool dir_reserve(hak_pool_t *pool)
{
    if (pool->ndir < pool->dir_cap)
        return true;
    uint32_t cap = pool->dir_cap ? pool->dir_cap * 2 : 256;
    size_t each = sizeof(hak_pool_dirent_t) + sizeof(hak_pool_chunk_t *);
    uint8_t *m = hak_os_map((size_t)cap * each, hak_os_page_size());
    if (m == NULL)
        return false;
    hak_pool_dirent_t *dir = (hak_pool_dirent_t *)m;
    hak_pool_chunk_t **chunks = (hak_pool_chunk_t **)(m + (size_t)cap * sizeof(hak_pool_dirent_t));
    if (pool->ndir) {
        memcpy(dir, pool->dir, pool->ndir * sizeof *dir);
        memcpy(chunks, pool->dir_chunk, pool->ndir * sizeof *chunks);
    }
    if (pool->dir_cap)
        hak_os_unmap(pool->dir, (size_t)pool->dir_cap * each);
    pool->dir = dir;
    pool->dir_chunk = chunks;
    pool->dir_cap = cap;
    return true;
}

/* ch into the directory's last entry (room reserved). */
static void chunk_link(hak_pool_t *pool, hak_pool_chunk_t *ch, uint32_t free_mask, uint32_t dec_mask)
{
    ch->slot = pool->ndir++;
    pool->dir[ch->slot] = (hak_pool_dirent_t){free_mask, dec_mask, (uint32_t)__builtin_popcount(free_mask)};
    pool->dir_chunk[ch->slot] = ch;
}

/* ch out of the directory: the last entry takes its place. */
static void chunk_unlink(hak_pool_t *pool, hak_pool_chunk_t *ch)
{
    uint32_t last = --pool->ndir;
    if (ch->slot != last) {
        pool->dir[ch->slot] = pool->dir[last];
        pool->dir_chunk[ch->slot] = pool->dir_chunk[last];
        pool->dir_chunk[ch->slot]->slot = ch->slot;
    }
}

/* A new, empty chunk (pool lock held), or NULL with ENOMEM. */
static hak_pool_chunk_t *chunk_new(hak_pool_t *pool)
{
    hak_purge_register(pool->purger, pool->shrink); /* before the first page can be dirty */
    if (!dir_reserve(pool))
        return NULL;
    hak_pool_chunk_t *ch = hak_os_map(HAK_CHUNK_SIZE, HAK_CHUNK_SIZE);
    if (ch == NULL)
        return NULL;
    if (hak_chunk_set_tag(ch, HAK_CHUNK_SIZE, pool->pr->tag) != 0) {
        hak_os_unmap(ch, HAK_CHUNK_SIZE);
        errno = ENOMEM;
        return NULL;
    }
    ch->magic = HAK_POOL_CHUNK_MAGIC;
    ch->pool = pool;
    for (unsigned i = 0; i < HAK_POOL_PAGES; i++)
        ch->pages[i].cls = HAK_POOL_NO_CLASS;
    /* Fresh pages are not resident; say so in the accounting (committed
     * = mapped - decommitted), so that only pages in use count. */
    size_t hdr = chunk_header_bytes();
    uint32_t dec_mask = 0;
    if (hak_os_decommit((uint8_t *)ch + hdr, HAK_CHUNK_SIZE - hdr) == 0) {
        dec_mask = USABLE_PAGES_MASK;
        ch->hdr_dec = HAK_POOL_PAGE_SIZE - hdr;
        ST_ADD(pool, bytes_decommitted, HAK_CHUNK_SIZE - hdr);
    } else {
        ch->hdr_dec = 0;
        dirty_add(pool, (HAK_POOL_PAGES - 1) * HAK_POOL_PAGE_SIZE);
        uint32_t now = hak_purge_stamp();
        for (unsigned i = 1; i < HAK_POOL_PAGES; i++)
            ch->pages[i].freed_at = now;
    }
    chunk_link(pool, ch, USABLE_PAGES_MASK, dec_mask);
    pool->nempty++;
    ST_ADD(pool, chunks, 1);
    ST_ADD(pool, bytes_mapped, HAK_CHUNK_SIZE);
    return ch;
}

static void chunk_unmap(hak_pool_t *pool, hak_pool_chunk_t *ch)
{
    const hak_pool_dirent_t *d = dirent(pool, ch);
    size_t dec = (size_t)__builtin_popcount(d->dec_mask) * HAK_POOL_PAGE_SIZE + ch->hdr_dec;
    size_t dirty = (size_t)__builtin_popcount(d->free_mask & ~d->dec_mask) * HAK_POOL_PAGE_SIZE;
    chunk_unlink(pool, ch);
    dirty_sub(pool, dirty);
    hak_chunk_set_tag(ch, HAK_CHUNK_SIZE, HAK_TAG_NONE);
    note_committed_peak(pool);
    hak_os_note_recommit(dec); /* the decommitted part leaves with the mapping */
    ST_SUB(pool, bytes_decommitted, dec);
    ch->magic = 0;
    hak_os_unmap(ch, HAK_CHUNK_SIZE);
    ST_SUB(pool, chunks, 1);
    ST_SUB(pool, bytes_mapped, HAK_CHUNK_SIZE);
    ST_ADD(pool, chunk_unmaps, 1);
}

/* Decommit the dirty pages of ch that `dirty` selects (pool lock held);
 * the bytes decommitted. */
static size_t chunk_purge(hak_pool_t *pool, hak_pool_chunk_t *ch, uint32_t dirty)
{
    size_t got = 0;
    hak_pool_dirent_t *d = dirent(pool, ch);
    dirty &= d->free_mask & ~d->dec_mask;
    while (dirty) {
        unsigned lo = (unsigned)__builtin_ctz(dirty);
        unsigned hi = lo;
        while (hi < HAK_POOL_PAGES && (dirty >> hi) & 1u)
            hi++;
        uint32_t run = (uint32_t)((((uint64_t)1 << (hi - lo)) - 1) << lo);
        size_t bytes = (size_t)(hi - lo) * HAK_POOL_PAGE_SIZE;
        if (hak_os_decommit((uint8_t *)ch + ((size_t)lo << HAK_POOL_PAGE_SHIFT), bytes) == 0) {
            d->dec_mask |= run;
            dirty_sub(pool, bytes);
            note_committed_peak(pool);
            ST_ADD(pool, bytes_decommitted, bytes);
            ST_ADD(pool, bytes_purged, bytes);
            got += bytes;
        }
        dirty &= ~run;
    }
    return got;
}

size_t hak_pool_purge_(hak_pool_t *pool, uint32_t cutoff, bool all, size_t want)
{
    size_t got = 0;
    if (!__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return 0;
    hak_lock(&pool->lock);
    /* Oldest first: an unmapped chunk's slot takes the last entry, looked
     * at next. */
    for (uint32_t slot = 0; slot < pool->ndir && got < want && pool->dirty + pool->nempty > 0;) {
        hak_pool_dirent_t *d = &pool->dir[slot];
        hak_pool_chunk_t *ch = pool->dir_chunk[slot];
        uint32_t dirty = d->free_mask & ~d->dec_mask, sel = 0;
        for (uint32_t m = dirty; m; m &= m - 1) {
            unsigned i = (unsigned)__builtin_ctz(m);
            if (all || hak_purge_expired(ch->pages[i].freed_at, cutoff))
                sel |= 1u << i;
        }
        if (sel)
            got += chunk_purge(pool, ch, sel);
        if (dirent_empty(d) && (d->free_mask & ~d->dec_mask) == 0 && (all || pool->nempty > pool->pr->keep_empty)) {
            chunk_unmap(pool, ch);
            pool->nempty--;
            continue;
        }
        slot++;
    }
    hak_unlock(&pool->lock);
    return got;
}

/* ---------------------------------------------------------------- spans */

/* The weight of a page a span would refault, in run_try's cost: more than
 * any leftover (below HAK_POOL_PAGES + 1) and an empty chunk's penalty
 * (span_acquire: HAK_POOL_PAGES + 1) together. */
#define RUN_REFAULT (2 * (HAK_POOL_PAGES + 1))

/* A span of n pages at `start` in the free hole of `len` pages that holds
 * it: its cost, lowest best: the decommitted pages it would refault first
 * (a 1 MiB span is 256 page faults), then the pages left over in the hole
 * (best fit: a tight hole keeps the long ones for long spans, so that
 * spans of mixed lengths do not leave committed pages nobody can use);
 * below HAK_POOL_PAGES + 1 it refaults nothing. Into *best / *best_cost if
 * it beats them. */
static void run_try(const hak_pool_dirent_t *d, unsigned n, unsigned start, unsigned len, int *best,
                    unsigned *best_cost)
{
    uint32_t run = (uint32_t)((((uint64_t)1 << n) - 1) << start);
    unsigned c = (unsigned)__builtin_popcount(d->dec_mask & run) * RUN_REFAULT + (len - n);
    if (c < *best_cost) {
        *best = (int)start;
        *best_cost = c;
    }
}

/* Where n free pages aligned to `align` pages go in ch, or -1; *cost is
 * run_try's (0: an exact fit with nothing to refault). The starts looked
 * at, in each free hole: its two ends, and the two ends of each committed
 * stretch inside it (the purger decommits by age, so a hole can hold
 * committed pages between decommitted ones, which a span at the hole's
 * ends would miss); every aligned start for aligned spans. */
static int find_run(const hak_pool_dirent_t *d, unsigned n, unsigned align, unsigned *cost)
{
    int best = -1;
    unsigned best_cost = UINT_MAX;
    uint64_t m = d->free_mask;
    while (m) {
        unsigned h = (unsigned)__builtin_ctzll(m);
        unsigned len = (unsigned)__builtin_ctzll(~(m >> h)); /* the hole [h, h + len) */
        uint64_t hole = (((uint64_t)1 << len) - 1) << h;
        m &= ~hole;
        unsigned first = (h + align - 1) / align * align;
        if (first + n > h + len)
            continue;
        unsigned last = (h + len - n) / align * align;
        if (align > 1) {
            for (unsigned start = first; start <= last; start += align)
                run_try(d, n, start, len, &best, &best_cost);
            continue;
        }
        run_try(d, n, first, len, &best, &best_cost);
        run_try(d, n, last, len, &best, &best_cost);
        uint64_t dec = (uint64_t)d->dec_mask & hole;
        if (dec == 0 || dec == hole)
            continue;
        /* each committed stretch [a, b): a span starting at a, or ending
         * at b, kept within [first, last] */
        for (uint64_t com = hole & ~dec; com;) {
            unsigned a = (unsigned)__builtin_ctzll(com);
            unsigned b = a + (unsigned)__builtin_ctzll(~(com >> a));
            com &= ~((((uint64_t)1 << (b - a)) - 1) << a);
            unsigned s1 = b >= first + n ? b - n : first;
            run_try(d, n, a < last ? a : last, len, &best, &best_cost);
            run_try(d, n, s1 < last ? s1 : last, len, &best, &best_cost);
        }
    }
    *cost = best_cost;
    return best;
}

/* Make pages [start, start+n) of ch a span of class cls (pool lock held). */
static hak_pool_span_t *span_format(hak_pool_t *pool, hak_pool_chunk_t *ch, unsigned start, unsigned cls,
                                    unsigned n, unsigned capacity)
{
    const hak_pool_class_t *k = &pool->t->cls[cls];
    uint32_t run = (uint32_t)((((uint64_t)1 << n) - 1) << start);
    hak_pool_dirent_t *d = dirent(pool, ch);
    if (dirent_empty(d))
        pool->nempty--;
    size_t dec = (size_t)__builtin_popcount(d->dec_mask & run) * HAK_POOL_PAGE_SIZE;
    size_t dirty = (size_t)n * HAK_POOL_PAGE_SIZE - dec;
    if (dec) {
        hak_os_note_recommit(dec);
        ST_SUB(pool, bytes_decommitted, dec);
    }
    dirty_sub(pool, dirty);
    pool->span_bytes += (size_t)n * HAK_POOL_PAGE_SIZE;
    hak_purge_used_add((size_t)n * HAK_POOL_PAGE_SIZE);
    d->dec_mask &= ~run;
    d->free_mask &= ~run;
    d->nfree -= n;
    hak_pool_span_t *s = &ch->pages[start];
    s->u.base = (uint8_t *)ch + ((size_t)start << HAK_POOL_PAGE_SHIFT);
    s->inv = k->inv;
    s->u.stride = k->stride;
    s->u.capacity = (uint16_t)capacity;
    s->cls = (uint8_t)cls;
    s->u.in_partial = 0;
    s->npages = (uint8_t)n;
    s->has_aligned = 0;
    s->zero = !HAK_PLATFORM_ARENA && dec == (size_t)n * HAK_POOL_PAGE_SIZE; /* MADV_DONTNEED'd or never touched */
    s->u.used = 0;
    s->u.carved = 0;
    s->u.free = NULL;
    s->u.next = s->u.prev = NULL;
#if HAK_VALIDATION >= 2
    s->live = 0;
    memset(s->align_off, 0, sizeof(s->align_off));
#endif
    for (unsigned i = 0; i < n; i++)
        __atomic_store_n(&ch->pages[start + i].head, s, __ATOMIC_RELEASE);
    hak_page_set_kind(s->u.base, n, pool->pr->kind0 + cls);
    pool->t->spans[cls]++;
    ST_ADD(pool, spans_in_use, 1);
    return s;
}

/* Where the last span of cls was released (hak_pool_hint_t), recorded
 * and taken back under the pool lock. */
static void hint_push(hak_pool_t *pool, unsigned cls, hak_pool_chunk_t *ch, unsigned start, unsigned n)
{
    hak_pool_tables_t *t = pool->t;
    unsigned top = t->hint_top[cls];
    t->hint[cls][top] = (hak_pool_hint_t){ch, ch->slot, (uint16_t)start, (uint16_t)n};
    t->hint_top[cls] = (uint8_t)((top + 1) % HAK_POOL_HINTS);
    if (t->nhint[cls] < HAK_POOL_HINTS)
        t->nhint[cls]++;
}

/* The newest hint of cls whose pages are all still free and committed
 * (stale ones are dropped on the way); false if none. */
static bool hint_pop(hak_pool_t *pool, unsigned cls, uint32_t n, hak_pool_chunk_t **ch, unsigned *start)
{
    hak_pool_tables_t *t = pool->t;
    while (t->nhint[cls] > 0) {
        t->nhint[cls]--;
        t->hint_top[cls] = (uint8_t)((t->hint_top[cls] + HAK_POOL_HINTS - 1) % HAK_POOL_HINTS);
        const hak_pool_hint_t *h = &t->hint[cls][t->hint_top[cls]];
        if (h->slot >= pool->ndir || pool->dir_chunk[h->slot] != h->ch)
            continue; /* the chunk went (or moved in the directory) */
        if (h->npages != n)
            continue; /* a span of the other geometry: its pages fit this one badly */
        const hak_pool_dirent_t *d = &pool->dir[h->slot];
        uint32_t run = (uint32_t)((((uint64_t)1 << n) - 1) << h->start);
        if ((d->free_mask & run) == run && (d->dec_mask & run) == 0) {
            *ch = h->ch;
            *start = h->start;
            return true;
        }
    }
    return false;
}

/* Chunks with room that span_acquire compares in full before it looks
 * only at chunks with enough committed free pages, so that committed pages
 * anywhere in the pool are found before pages are refaulted; and the
 * chunks whose holes it searches at most (the search stops sooner at an
 * exact fit). The rest of the scan reads a directory entry a chunk (12
 * bytes): in a big pool one search of every chunk's holes per span would
 * cost more than the span's blocks. */
#define POOL_FIT_CANDIDATES 16
#define POOL_FIT_LOOKS      128

/* Span geometry. A class's spans are as few pages as hold its blocks
 * with a tail of at most 1/8 (class_setup): a span goes back to its chunk
 * only when its last block comes home, so spans of one or a few blocks
 * keep what a churn of few blocks per class pins down. The tail, never
 * written by the span's blocks, is written by the blocks of the spans
 * that take those pages later, and a heap whose spans come and go ends
 * up resident over all of their pages: for blocks of 128-256 KiB the
 * tails are 6% of the spans. So once a class has HAK_POOL_WIDE_AFTER
 * spans in use (bursts: hundreds of blocks of a class live at once), its
 * new spans take the wide geometry: several blocks in up to
 * HAK_POOL_WIDE_PAGES pages with a tail of at most 1/64 (a 224 KiB block
 * takes 4 pages, two of them 7). */
#define HAK_POOL_WIDE_AFTER 16u

/* A new span of class cls, or NULL with ENOMEM. Called with the class
 * lock held; takes the pool lock. Placement: where the class's last span
 * was released, if those pages are still free and committed (hint_pop);
 * else (find_run) the run with the fewest decommitted pages, then in a
 * chunk that has spans before an empty one (so that empty chunks can go
 * back to the OS), then the tightest hole; among the first
 * POOL_FIT_CANDIDATES chunks with room (newest first) and every other
 * chunk with committed free pages enough; a new chunk last. The search
 * reads the directory only, not the chunks. */
static hak_pool_span_t *span_acquire(hak_pool_t *pool, unsigned cls)
{
    const hak_pool_class_t *k = &pool->t->cls[cls];
    hak_pool_span_t *s = NULL;
    hak_lock(&pool->lock);
    hak_pool_chunk_t *ch;
    unsigned start;
    bool wide = pool->t->spans[cls] >= HAK_POOL_WIDE_AFTER;
    unsigned n = wide ? k->wide_pages : k->npages, capacity = wide ? k->wide_capacity : k->capacity;
    if (hint_pop(pool, cls, n, &ch, &start)) {
        s = span_format(pool, ch, start, cls, n, capacity);
        hak_unlock(&pool->lock);
        return s;
    }
    hak_pool_chunk_t *best = NULL;
    int best_start = -1;
    unsigned best_key = UINT_MAX;
    unsigned candidates = 0, looks = 0;
    for (uint32_t slot = pool->ndir; slot-- > 0 && looks < POOL_FIT_LOOKS;) {
        const hak_pool_dirent_t *d = &pool->dir[slot];
        if (d->nfree < n)
            continue;
        /* past the candidates, only a chunk with committed free pages
         * enough for a span that refaults nothing */
        if (candidates >= POOL_FIT_CANDIDATES &&
            (unsigned)__builtin_popcount(d->free_mask & ~d->dec_mask) < n)
            continue;
        looks++;
        unsigned cost;
        int start = find_run(d, n, k->align_pages, &cost);
        if (start < 0)
            continue;
        bool empty = dirent_empty(d);
        candidates += !empty;
        /* refaults first, then a chunk that has spans before an empty one
         * (which can go back to the OS), then the fit */
        unsigned key = cost + (empty ? HAK_POOL_PAGES + 1 : 0);
        if (key < best_key) {
            best = pool->dir_chunk[slot];
            best_start = start;
            best_key = key;
            if (key == 0)
                break;
        }
    }
    if (best == NULL && (best = chunk_new(pool)) != NULL) {
        unsigned cost;
        best_start = find_run(dirent(pool, best), n, k->align_pages, &cost);
    }
    if (best)
        s = span_format(pool, best, (unsigned)best_start, cls, n, capacity);
    hak_unlock(&pool->lock);
    return s;
}

/* The span's last block came home: give its pages back to the chunk.
 * Called with the class lock held; takes the pool lock. */
static void span_release(hak_pool_t *pool, hak_pool_span_t *s)
{
    hak_pool_chunk_t *ch = hak_pool_chunk_of(s->u.base);
    unsigned start = (unsigned)(s - ch->pages), n = s->npages;
    uint32_t run = (uint32_t)((((uint64_t)1 << n) - 1) << start);
    hak_lock(&pool->lock);
    for (unsigned i = 0; i < n; i++)
        __atomic_store_n(&ch->pages[start + i].head, NULL, __ATOMIC_RELAXED);
    hak_page_set_kind(s->u.base, n, HAK_KIND_OWNED(pool->pr->tag));
    hint_push(pool, s->cls, ch, start, n);
    pool->t->spans[s->cls]--;
    s->cls = HAK_POOL_NO_CLASS;
    s->u.free = NULL;
    uint32_t now = hak_purge_stamp();
    for (unsigned i = 0; i < n; i++)
        ch->pages[start + i].freed_at = now;
    hak_pool_dirent_t *d = dirent(pool, ch);
    d->free_mask |= run;
    d->nfree += n;
    dirty_add(pool, (size_t)n * HAK_POOL_PAGE_SIZE);
    pool->span_bytes -= (size_t)n * HAK_POOL_PAGE_SIZE;
    hak_purge_used_sub((size_t)n * HAK_POOL_PAGE_SIZE);
    ST_SUB(pool, spans_in_use, 1);
    ST_ADD(pool, span_releases, 1);
    if (dirent_empty(d))
        pool->nempty++; /* stays mapped: the purge policy unmaps it once purged */
    hak_unlock(&pool->lock);
}

/* ----------------------------------------------------- class structures */

/* The back end of the central lists (hak_central_ops_t; `be` is the
 * pool): a new span, the span of a block, an emptied span back to its
 * chunk, the next block of a list (checked at full). Class lock held. */
static hak_unit_t *unit_acquire(void *be, unsigned cls)
{
    hak_pool_span_t *s = span_acquire(be, cls);
    return s ? &s->u : NULL;
}

static hak_unit_t *unit_of(const void *b) { return &hak_pool_span_of(b)->u; }

static void unit_release(void *be, hak_unit_t *u) { span_release(be, (hak_pool_span_t *)u); }

static void *list_next(void *be, void *b, unsigned cls, const char *op, const hak_unit_t *home)
{
    return class_next(be, b, cls, op, (const hak_pool_span_t *)home);
}

static const hak_central_ops_t g_ops = {
    .acquire = unit_acquire,
    .unit_of = unit_of,
    .release = unit_release,
    .next = list_next,
};

/* Every parked batch of every class home (thread exit, trim, fork child). */
static void central_flush_all(hak_pool_t *pool)
{
    for (unsigned cls = 0; cls < pool->pr->nclasses; cls++)
        hak_central_flush(&g_ops, pool, &pool->t->central[cls], cls);
}

/* Send a linked list of blocks of cls home to their spans. */
static void class_put(hak_pool_t *pool, unsigned cls, void *head)
{
    hak_central_home(&g_ops, pool, &pool->t->central[cls], cls, head);
}

static void *alloc_nocache(hak_pool_t *pool, unsigned cls)
{
    return hak_central_alloc_one(&g_ops, pool, &pool->t->central[cls], cls);
}

static void free_nocache(hak_pool_t *pool, void *b, unsigned cls)
{
    hak_central_free_one(&g_ops, pool, &pool->t->central[cls], b);
}

/* ------------------------------------------------------- thread caches */

/* Under contention bins grow (hak_bound_grow, the tiny tier's rule) while
 * the thread's bounds stay within HAK_POOL_TC_BUDGET bytes. */
#define HAK_POOL_TC_BUDGET   ((size_t)4 << 20)

/* Every bin of tc at its starting bound: the class's bin_max, or 0 in a
 * capped pool, whose bins borrow their bounds (tc_cap_grant). Keeps the
 * blocks the bins hold, which every caller has sent home before (setup:
 * the block the fast path just pushed, which the slow path then grants),
 * so a capped pool's bins and cap_bytes start at nothing together. */
static void tc_reset_bounds(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    tc->bound_bytes = tc->swing_bytes = tc->cap_bytes = 0;
    for (unsigned c = 0; c < pool->pr->nclasses; c++) {
        uint32_t start = pool->pr->tc_cap ? 0 : pool->t->cls[c].bin_max;
        hak_bin_set_max(&tc->bins[c], start);
        tc->bound_bytes += (size_t)start * pool->t->cls[c].stride;
        tc->contended[c] = tc->swing[c] = 0;
    }
}

/* A bin that swings between empty and full grows (hak_swing_event; docs/mid.md,
 * "Thread caches"), up to the class's swing_max blocks, while the bounds so
 * grown stay within params->swing_budget bytes per thread. Trim and the
 * shrinker (hak_pool_shrink_) put the bounds back to their start; thread
 * exit zeroes them. */
HAK_INLINE void tc_swing(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls, unsigned dir)
{
    hak_bin_t *bin = &tc->bins[cls];
    const hak_pool_class_t *k = &pool->t->cls[cls];
    if (HAK_LIKELY(!hak_swing_event(&tc->swing[cls], dir, (size_t)bin->max * k->stride)))
        return;
    hak_bin_set_max(bin, hak_swing_grow(bin->max, k->swing_max, k->stride, &tc->swing_bytes, pool->pr->swing_budget));
}

static void tc_contended(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    hak_bin_t *bin = &tc->bins[cls];
    const hak_pool_class_t *k = &pool->t->cls[cls];
    hak_bin_set_max(bin, hak_bound_grow(&tc->contended[cls], bin->max, k->bin_max, k->stride, &tc->bound_bytes,
                                        HAK_POOL_TC_BUDGET));
}

/* Every block of bin (class cls) home to its span; the bin keeps its bound. */
static void bin_home(hak_pool_t *pool, hak_bin_t *bin, unsigned cls)
{
    void *head = bin->head;
    if (head == NULL)
        return;
    bin->head = NULL;
    bin->room = (int32_t)bin->max;
    class_put(pool, cls, head);
}

/* A capped pool (params->tc_cap: L25, whose blocks are 36 KiB-1 MiB):
 * its bins start with no room and a bin that a free finds full borrows
 * one block of bound more, up to the class's bin_max, from what the
 * thread's bins hold in all; past the cap, other classes' bins give their
 * bounds back in turn (round robin), their blocks sent home. So a loop on
 * one size keeps its block in the bin, while a thread that frees blocks of
 * many classes keeps at most tc_cap bytes of them, where a bound per class
 * let every class it ever freed hold its blocks (40 classes, up to 14 MiB).
 * False if cls's bin cannot grow (at its bin_max, or its own bound alone
 * fills the cap). */
static bool tc_cap_grant(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    const hak_pool_class_t *k = &pool->t->cls[cls];
    hak_bin_t *bin = &tc->bins[cls];
    size_t cap = pool->pr->tc_cap;
    if (bin->max >= k->bin_max || ((size_t)bin->max + 1) * k->stride > cap)
        return false;
    /* the other bins hold cap_bytes - bin->max * stride > 0 while over */
    while (tc->cap_bytes + k->stride > cap) {
        unsigned v = tc->cap_next;
        tc->cap_next = v + 1 < pool->pr->nclasses ? v + 1 : 0;
        hak_bin_t *o = &tc->bins[v];
        if (v == cls || o->max == 0)
            continue;
        tc->cap_bytes -= (size_t)o->max * pool->t->cls[v].stride;
        bin_home(pool, o, v);
        hak_bin_set_max(o, 0);
    }
    hak_bin_set_max(bin, bin->max + 1);
    tc->cap_bytes += k->stride;
    return true;
}

/* Send every block of a cache home to its span (an exiting thread's
 * blocks are not likely to be wanted soon; trim wants them home too). */
static void tcache_flush(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    for (unsigned cls = 0; cls < pool->pr->nclasses; cls++)
        bin_home(pool, &tc->bins[cls], cls);
}

static void tcache_setup(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    hak_pool_init_(pool);
    tc->bins = hak_pool_bin_(pool, 0);
    tc_reset_bounds(pool, tc);
    if (hak_tcreg_add(&pool->tcs, &tc->reg) != 0) {
        hak_pool_thread_exit_(pool, tc); /* no entry: run cacheless */
        return;
    }
    tc->state = HAK_POOL_TC_LIVE;
    /* Give the cache back when the thread exits (may allocate: the cache
     * is live already). Without the hook the thread runs cacheless. */
    if (pool->thread_exit && hak_thread_exit_arm() != 0)
        hak_pool_thread_exit_(pool, tc);
}

/* The fork child's adoption of another thread's cache. */
static void tcache_adopt(hak_tcreg_node_t *n, void *pool)
{
    tcache_flush(pool, (hak_pool_tcache_t *)((char *)n - offsetof(hak_pool_tcache_t, reg)));
}

void hak_pool_thread_exit_(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    uint32_t was = tc->state;
    tc->state = HAK_POOL_TC_DEAD;
    if (was != HAK_POOL_TC_LIVE)
        return;
    tcache_flush(pool, tc);
    for (unsigned c = 0; c < pool->pr->nclasses; c++)
        tc->bins[c].max = tc->bins[c].room = 0;
    tc->cap_bytes = 0;
    central_flush_all(pool);
    hak_tcreg_remove(&pool->tcs, &tc->reg);
}

/* --------------------------------------------------------- alloc / free */

#if HAK_VALIDATION >= 2
void *hak_pool_pop_checked_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    void *b = bin_pop(pool, hak_pool_bin_(pool, cls), cls);
    if (HAK_UNLIKELY(!mark_live(b, cls)))
        return hak_pool_pop_(pool, tc, cls); /* reported; the next one */
    return b;
}
#endif

static void *alloc_slow(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls, bool fit)
{
    void *b;
    if (HAK_UNLIKELY(tc->state != HAK_POOL_TC_LIVE)) {
        if (tc->state == HAK_POOL_TC_NEW)
            tcache_setup(pool, tc);
        if (tc->state != HAK_POOL_TC_LIVE) {
            hak_pool_init_(pool);
            b = alloc_nocache(pool, cls);
            goto out;
        }
    }
    hak_bin_t *bin = hak_pool_bin_(pool, cls);
    if (bin->head) { /* a nested call during setup filled it */
        b = bin_pop(pool, bin, cls);
        goto out;
    }
    bool contended;
    hak_central_t *c = &pool->t->central[cls];
    uint32_t want = hak_front_ramp(&tc->ramp[cls], bin->max / 2 ? bin->max / 2 : 1);
    /* a larger block before a new one (hak_central.h), for malloc's sizes
     * only: an aligned request needs its class */
    bool fitted;
    b = hak_front_refill_fit(&g_ops, pool, c, cls, bin, want, &contended, fit ? pool->t->cls[cls].fit_reach : 0,
                             &tc->fit[cls], &fitted);
    if (fitted)
        goto out;
    if (pool->pr->tc_cap == 0) { /* a capped pool's bins grow by tc_cap_grant alone */
        if (HAK_UNLIKELY(contended))
            tc_contended(pool, tc, cls);
        tc_swing(pool, tc, cls, 0);
    }
out:
    hak_purge_poll();
    if (b == NULL) {
        errno = ENOMEM;
        return NULL;
    }
#if HAK_VALIDATION >= 2
    if (HAK_UNLIKELY(!mark_live(b, cls)))
        return hak_pool_pop_(pool, tc, cls); /* reported; the next one */
#endif
    return b;
}

void *hak_pool_alloc_slow_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    return alloc_slow(pool, tc, cls, true);
}

/* A block of class cls itself (an aligned request). */
static void *pop_exact(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls)
{
    if (hak_pool_bin_(pool, cls)->head == NULL)
        return alloc_slow(pool, tc, cls, false);
    return hak_pool_pop_(pool, tc, cls);
}

void *hak_pool_alloc_zero_(hak_pool_t *pool, hak_pool_tcache_t *tc, unsigned cls, size_t size)
{
    hak_bin_t *bin = hak_pool_bin_(pool, cls);
    if (bin->head == NULL && tc->state == HAK_POOL_TC_LIVE) {
        /* An empty bin: a new block straight from the class's first
         * partial span (or a new one) if it has no free list to use first,
         * as a refill would. */
        hak_central_t *c = &pool->t->central[cls];
        void *b = NULL;
        bool zero = false;
        hak_lock(&c->lock);
        hak_unit_t *u = c->nbatch == 0 ? hak_central_unit(&g_ops, pool, c, cls) : NULL;
        if (u != NULL && u->free == NULL && u->carved < u->capacity) {
            zero = ((hak_pool_span_t *)u)->zero;
            b = hak_unit_pop(&g_ops, pool, u, cls);
            if (hak_unit_spent(u))
                hak_unit_partial_remove(c, u);
        }
        hak_unlock(&c->lock);
        if (b != NULL) {
#if HAK_VALIDATION >= 2
            mark_live(b, cls); /* a block never handed out: its live bit is clear */
#endif
            hak_purge_poll();
            return zero ? b : memset(b, 0, size);
        }
    }
    void *p = hak_pool_pop_(pool, tc, cls);
    return p ? memset(p, 0, size) : NULL;
}

void hak_pool_free_slow_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p, unsigned cls)
{
    hak_bin_t *bin = hak_pool_bin_(pool, cls);
    if (HAK_UNLIKELY(hak_front_pushed_twice(bin, p)))
        return;
    if (HAK_UNLIKELY(tc->state != HAK_POOL_TC_LIVE)) {
        if (tc->state == HAK_POOL_TC_NEW)
            tcache_setup(pool, tc);
        if (tc->state != HAK_POOL_TC_LIVE) {
            /* Dead: p was pushed by the fast path; take it back out. */
            if (bin->head == p) {
                bin->head = class_next(pool, p, cls, "free", NULL);
                bin->room++;
            }
            free_nocache(pool, p, cls);
            return;
        }
    }
    if (bin->room >= 0)
        return;
    if (pool->pr->tc_cap) {
        if (!tc_cap_grant(pool, tc, cls))
            hak_front_drain(&g_ops, pool, &pool->t->central[cls], cls, bin);
        hak_purge_poll();
        return;
    }
    if (HAK_UNLIKELY(hak_front_drain(&g_ops, pool, &pool->t->central[cls], cls, bin)))
        tc_contended(pool, tc, cls);
    tc_swing(pool, tc, cls, 1);
    hak_purge_poll();
}

void hak_pool_bad_free_(void *p, const char *reason) { hak_report_failure("free", reason, p); }

/* Why free refuses p below full, or NULL if it takes it: p in no span or
 * past the carved blocks (checked even at none: trusted, but never crash
 * on it), or, at magic, not a block start in a span that never placed an
 * aligned (interior) pointer. */
static const char *pool_refusal(hak_pool_t *pool, const hak_pool_span_t *s, const void *p)
{
    if (HAK_UNLIKELY(s == NULL))
        return pool->pr->msg_no_span;
    size_t i = hak_pool_index(s, p);
    if (i >= __atomic_load_n(&s->u.carved, __ATOMIC_RELAXED))
        return pool->pr->msg_not_block;
    if (HAK_VALIDATION >= 1 && (const uint8_t *)p != s->u.base + i * s->u.stride &&
        !__atomic_load_n(&s->has_aligned, __ATOMIC_RELAXED))
        return pool->pr->msg_not_start;
    return NULL;
}

void hak_pool_free_interior_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p)
{
    hak_pool_span_t *s = hak_pool_span_of(p);
    const char *why = pool_refusal(pool, s, p);
    if (HAK_UNLIKELY(why != NULL)) {
        hak_pool_bad_free_(p, why);
        return;
    }
    hak_pool_push_(pool, tc, s->u.base + hak_pool_index(s, p) * s->u.stride, s->cls);
}

#if HAK_VALIDATION >= 2
bool hak_pool_check_live_(hak_pool_t *pool, const void *p, const char *op)
{
    const hak_pool_span_t *s = hak_pool_span_of(p);
    const char *why = NULL;
    if (s == NULL || s->cls >= pool->pr->nclasses) {
        why = pool->pr->msg_no_span;
    } else {
        size_t i = hak_pool_index(s, p);
        if (i >= __atomic_load_n(&s->u.carved, __ATOMIC_RELAXED))
            why = pool->pr->msg_not_block;
        else if ((const uint8_t *)p != s->u.base + i * s->u.stride + (size_t)s->align_off[i] * 16)
            why = pool->pr->msg_not_start;
        else if (!(__atomic_load_n(&s->live, __ATOMIC_RELAXED) & ((uint64_t)1 << i)))
            why = "invalid pointer (a freed block: use after free?)";
    }
    if (why)
        hak_report_failure(op, why, p);
    return why == NULL;
}

void hak_pool_free_checked_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p)
{
    hak_pool_span_t *s = hak_pool_span_of(p);
    if (s == NULL || s->cls >= pool->pr->nclasses) {
        hak_pool_bad_free_(p, pool->pr->msg_no_span);
        return;
    }
    size_t i = hak_pool_index(s, p);
    if (i >= __atomic_load_n(&s->u.carved, __ATOMIC_RELAXED)) {
        hak_pool_bad_free_(p, pool->pr->msg_not_block);
        return;
    }
    uint8_t *b = s->u.base + i * s->u.stride;
    if ((uint8_t *)p != b + (size_t)s->align_off[i] * 16) {
        hak_pool_bad_free_(p, pool->pr->msg_not_start);
        return;
    }
    uint64_t bit = (uint64_t)1 << i;
    if (!(__atomic_fetch_and(&s->live, ~bit, __ATOMIC_RELAXED) & bit)) {
        hak_pool_bad_free_(p, "double free");
        return;
    }
    hak_pool_push_(pool, tc, b, s->cls);
}
#else
void hak_pool_free_checked_(hak_pool_t *pool, hak_pool_tcache_t *tc, void *p)
{
    hak_pool_free_owned_(pool, tc, p);
}

bool hak_pool_check_live_(hak_pool_t *pool, const void *p, const char *op)
{
    /* magic: free's own checks; none: trusted */
    const char *why = HAK_VALIDATION >= 1 ? pool_refusal(pool, hak_pool_span_of(p), p) : NULL;
    if (why)
        hak_report_failure(op, why, p);
    return why == NULL;
}
#endif

/* The cheapest class that places `size` bytes at `align`: either a class
 * whose blocks are all aligned to it, or a class big enough to hold an
 * aligned interior pointer (size + align - 16). -1 if none. `interior`
 * says which. */
static int aligned_class(hak_pool_t *pool, size_t size, size_t align, bool *interior)
{
    const hak_pool_params_t *pr = pool->pr;
    int natural = -1, inner = -1;
    for (unsigned c = 0; c < pr->nclasses; c++) {
        if (pool->t->cls[c].stride >= size && pool->t->cls[c].nat_align >= align) {
            natural = (int)c;
            break;
        }
    }
    if (size <= SIZE_MAX - align) {
        size_t need = size + align - 16;
        for (unsigned c = 0; c < pr->nclasses; c++) {
            if (pool->t->cls[c].stride >= need) {
                inner = (int)c;
                break;
            }
        }
    }
    if (natural >= 0 && (inner < 0 || pool->t->cls[natural].stride <= pool->t->cls[inner].stride)) {
        *interior = false;
        return natural;
    }
    *interior = true;
    return inner;
}

size_t hak_pool_max_align_(hak_pool_t *pool, size_t size)
{
    hak_pool_init_(pool);
    const hak_pool_params_t *pr = pool->pr;
    size_t best = 16;
    if (size == 0)
        size = 1;
    for (unsigned c = 0; c < pr->nclasses; c++) /* a naturally aligned class */
        if (pool->t->cls[c].stride >= size && pool->t->cls[c].nat_align > best)
            best = pool->t->cls[c].nat_align;
    size_t top = pool->t->cls[pr->nclasses - 1].stride;
    if (size <= top) { /* an interior pointer: size + align - 16 <= top */
        size_t room = top - size + 16, a = 16;
        while (a * 2 <= room)
            a *= 2;
        if (a > best)
            best = a;
    }
    return best;
}

void *hak_pool_alloc_aligned_(hak_pool_t *pool, hak_pool_tcache_t *tc, size_t size, size_t align)
{
    return hak_pool_alloc_aligned_ex_(pool, tc, size, align, false);
}

void *hak_pool_alloc_aligned_ex_(hak_pool_t *pool, hak_pool_tcache_t *tc, size_t size, size_t align,
                                 bool force_interior)
{
    hak_pool_init_(pool);
    bool interior;
    int c = aligned_class(pool, size, align, &interior);
    if (force_interior && !interior) {
        c = -1;
        for (unsigned k = 0; k < pool->pr->nclasses && c < 0; k++)
            if (pool->t->cls[k].stride >= size + align - 16 && pool->t->cls[k].nat_align < align)
                c = (int)k;
        interior = true;
    }
    if (c < 0) {
        errno = ENOMEM;
        return NULL;
    }
    uint8_t *b = pop_exact(pool, tc, (unsigned)c);
    if (b == NULL || !interior)
        return b;
    uint8_t *q = (uint8_t *)(((uintptr_t)b + align - 1) & ~(uintptr_t)(align - 1));
    if (q != b) {
        hak_pool_span_t *s = hak_pool_span_of(b);
        if (!__atomic_load_n(&s->has_aligned, __ATOMIC_RELAXED)) {
            /* the span's frees take the pool's own path (which resolves an
             * interior pointer) until the span is released */
            __atomic_store_n(&s->has_aligned, 1, __ATOMIC_RELAXED);
            hak_page_set_kind(s->u.base, s->npages, HAK_KIND_SLOW(pool->pr->tag));
        }
#if HAK_VALIDATION >= 2
        s->align_off[hak_pool_index(s, b)] = (uint16_t)((size_t)(q - b) / 16);
#endif
    }
    return q;
}

/* --------------------------------------------------------------- trim */

void hak_pool_flush_(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    if (tc->state == HAK_POOL_TC_LIVE)
        tcache_flush(pool, tc);
}

void hak_pool_shrink_(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    if (!__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return;
    if (tc->state == HAK_POOL_TC_LIVE) {
        tcache_flush(pool, tc);
        tc_reset_bounds(pool, tc);
    }
    central_flush_all(pool);
}

void hak_pool_trim_(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    if (!__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return;
    hak_pool_shrink_(pool, tc);
    hak_pool_purge_(pool, 0, true, SIZE_MAX);
}

/* --------------------------------------------------------------- fork */

void hak_pool_fork_prepare_(hak_pool_t *pool)
{
    hak_lock(&pool->init_lock);
    hak_lock(&pool->tcs.lock);
    for (unsigned c = 0; c < pool->pr->nclasses; c++)
        hak_lock(&pool->t->central[c].lock);
    hak_lock(&pool->lock);
}

void hak_pool_fork_parent_(hak_pool_t *pool)
{
    hak_unlock(&pool->lock);
    for (unsigned c = pool->pr->nclasses; c-- > 0;)
        hak_unlock(&pool->t->central[c].lock);
    hak_unlock(&pool->tcs.lock);
    hak_unlock(&pool->init_lock);
}

void hak_pool_fork_child_(hak_pool_t *pool, hak_pool_tcache_t *self)
{
    pool->lock.v = 0;
    for (unsigned c = 0; c < pool->pr->nclasses; c++)
        pool->t->central[c].lock.v = 0;
    pool->init_lock.v = 0;
    /* Adopt the caches of the threads that do not exist in the child: their
     * TLS blocks are still mapped here (fork copied them). */
    hak_tcreg_adopt(&pool->tcs, &self->reg, tcache_adopt, pool);
    central_flush_all(pool);
}

/* -------------------------------------------------------------- stats */

void hak_pool_counters_(hak_pool_t *pool, hak_pool_counters_t *out)
{
    const size_t *src = (const size_t *)&pool->st;
    size_t *dst = (size_t *)out;
    for (size_t i = 0; i < sizeof(*out) / sizeof(size_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
    out->refills = out->drains = out->spills = 0;
    for (unsigned c = 0; c < HAK_POOL_MAX_CLASSES; c++) {
        out->refills += __atomic_load_n(&pool->t->central[c].refills, __ATOMIC_RELAXED);
        out->drains += __atomic_load_n(&pool->t->central[c].drains, __ATOMIC_RELAXED);
        out->spills += __atomic_load_n(&pool->t->central[c].spills, __ATOMIC_RELAXED);
    }
}

size_t hak_pool_bytes_in_use_(hak_pool_t *pool, hak_pool_tcache_t *tc)
{
    if (!__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return 0;
    /* As the tiny tier's: blocks out of their spans, less the parked
     * batches and the calling thread's cache. Class locks, then the pool
     * lock (the documented order). */
    size_t bytes = 0, parked = 0;
    unsigned n = pool->pr->nclasses;
    for (unsigned c = 0; c < n; c++)
        hak_lock(&pool->t->central[c].lock);
    hak_lock(&pool->lock);
    for (uint32_t slot = 0; slot < pool->ndir; slot++) {
        const hak_pool_chunk_t *ch = pool->dir_chunk[slot];
        for (unsigned i = 1; i < HAK_POOL_PAGES; i++)
            if (ch->pages[i].head == &ch->pages[i])
                bytes += (size_t)ch->pages[i].u.used * ch->pages[i].u.stride;
    }
    hak_unlock(&pool->lock);
    for (unsigned c = 0; c < n; c++) {
        for (uint32_t b = 0; b < pool->t->central[c].nbatch; b++)
            parked += (size_t)pool->t->central[c].batch[b].n * pool->t->cls[c].stride;
        hak_unlock(&pool->t->central[c].lock);
    }
    if (tc->state == HAK_POOL_TC_LIVE)
        for (unsigned c = 0; c < n; c++)
            parked += (size_t)hak_bin_count(&tc->bins[c]) * pool->t->cls[c].stride;
    return bytes > parked ? bytes - parked : 0;
}

/* ---------------------------------------------------------- validator */

size_t hak_pool_validate_(hak_pool_t *pool)
{
    size_t bad = 0;
    if (!__atomic_load_n(&pool->init_done, __ATOMIC_ACQUIRE))
        return 0;
    for (unsigned c = 0; c < pool->pr->nclasses; c++)
        hak_lock(&pool->t->central[c].lock);
    hak_lock(&pool->lock);
    size_t dirty = 0, nempty = 0;
    uint32_t spans[HAK_POOL_MAX_CLASSES] = {0}; /* each class's, against pool->t->spans */
    bad += pool->ndir > pool->dir_cap;
    for (uint32_t slot = 0; slot < pool->ndir; slot++) {
        hak_pool_chunk_t *ch = pool->dir_chunk[slot];
        const hak_pool_dirent_t *d = &pool->dir[slot];
        bad += ch->magic != HAK_POOL_CHUNK_MAGIC;
        bad += ch->pool != pool;
        bad += ch->slot != slot;
        bad += hak_chunk_tag(ch) != pool->pr->tag;
        bad += (d->free_mask & 1u) != 0;
        bad += (uint32_t)__builtin_popcount(d->free_mask) != d->nfree;
        bad += ch->pages[0].head != NULL;
        nempty += dirent_empty(d);
        dirty += (size_t)__builtin_popcount(d->free_mask & ~d->dec_mask) * HAK_POOL_PAGE_SIZE;
        for (unsigned i = 1; i < HAK_POOL_PAGES;) {
            hak_pool_span_t *s = ch->pages[i].head;
            if ((d->free_mask >> i) & 1u) {
                bad += s != NULL;
                i++;
                continue;
            }
            if (s != &ch->pages[i] || s->cls >= pool->pr->nclasses) {
                bad++;
                i++;
                continue;
            }
            const hak_pool_class_t *k = &pool->t->cls[s->cls];
            spans[s->cls]++;
            bad += !((s->npages == k->npages && s->u.capacity == k->capacity) ||
                     (s->npages == k->wide_pages && s->u.capacity == k->wide_capacity)) ||
                   s->u.stride != k->stride;
            bad += s->u.base != (uint8_t *)ch + ((size_t)i << HAK_POOL_PAGE_SHIFT);
            bad += ((uintptr_t)s->u.base & (k->nat_align - 1)) != 0 && k->align_pages > 1;
            bad += s->u.used > s->u.carved || s->u.carved > s->u.capacity || s->u.used == 0;
            size_t nfree = 0;
            for (void *b = s->u.free; b && nfree <= s->u.capacity; b = hak_link_get(b)) {
                nfree++;
                if (hak_chunk_tag(b) != pool->pr->tag || hak_pool_span_of(b) != s ||
                    (size_t)((uint8_t *)b - s->u.base) % s->u.stride != 0) {
                    bad++; /* a link not to follow */
                    break;
                }
            }
            bad += nfree != (size_t)(s->u.carved - s->u.used);
            bad += (s->u.free != NULL || s->u.carved < s->u.capacity) != (s->u.in_partial != 0);
            for (unsigned j = 1; j < s->npages; j++)
                bad += ch->pages[i + j].head != s || ((d->free_mask >> (i + j)) & 1u);
            i += s->npages ? s->npages : 1;
        }
    }
    bad += dirty != pool->dirty;
    bad += nempty != pool->nempty;
    for (unsigned c = 0; c < pool->pr->nclasses; c++)
        bad += spans[c] != pool->t->spans[c];
    hak_unlock(&pool->lock);
    for (unsigned c = pool->pr->nclasses; c-- > 0;)
        hak_unlock(&pool->t->central[c].lock);
    return bad;
}

#endif /* !HAK_PLATFORM_ARENA */

/* ------------------------------------------------------------ statistics */

void hak_pool_stats_(hak_pool_t *pool, hak_pool_stats_t *out)
{
    hak_pool_counters_t c;
    hak_pool_counters_(pool, &c);
    out->chunks = c.chunks;
    out->spans_in_use = c.spans_in_use;
    out->bytes_mapped = c.bytes_mapped;
    out->bytes_committed = c.bytes_mapped > c.bytes_decommitted ? c.bytes_mapped - c.bytes_decommitted : 0;
    out->refills = c.refills;
    out->drains = c.drains;
    out->spills = c.spills;
    out->span_releases = c.span_releases;
    out->chunk_unmaps = c.chunk_unmaps;
    out->bytes_purged = c.bytes_purged;
}

void hak_pool_tier_stats_(const hak_pool_stats_t *s, hak_tier_stats_t *out)
{
    *out = (hak_tier_stats_t){
        .bytes_mapped = s->bytes_mapped,
        .bytes_committed = s->bytes_committed,
        .allocs = s->refills,
        .frees = s->drains + s->spills,
    };
}
