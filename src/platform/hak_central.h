// SPDX-License-Identifier: MIT
/* hak_central.h - the middle of the tiers of small blocks (tiny, mid, L25):
 * one central list per size class between the threads' bins (hak_front.h)
 * and the back end's units (tiny slabs, pool spans), written once, with
 * the units' own bookkeeping (their partial lists, a block out of a unit,
 * a block home to it).
 *
 * A central list holds up to its max_batches parked batches: a drained
 * bin's older half is parked whole (O(1)), and the next refill of the
 * class takes a parked batch whole before it asks the units. A full list,
 * a list whose back end parks nothing (max_batches 0: blocks so large that
 * a parked one costs more memory than its refill costs time), or a shrinking
 * class (spills released HAK_CENTRAL_SHRINK units with none
 * taken in between: parked batches would pin one unit each), sends the
 * blocks home to their units instead. Everything here runs under the
 * class's lock, which the functions below take.
 *
 * A unit begins with a hak_unit_t (its first member, so that a pointer to
 * one is a pointer to the other): its free list, its carving, its counts
 * and its links in the class's partial list, which the functions here
 * keep. The back end supplies what differs (hak_central_ops_t: how a unit
 * is found, made and released, how a link is checked), passed as a
 * constant so that each call is inlined and the operations are direct
 * calls, and sets each list's max_batches before the list's first use.
 */
#ifndef HAK_CENTRAL_H
#define HAK_CENTRAL_H

#include "hak_front.h"
#include "hak_link.h"
#include "hak_list.h"
#include "hak_purge.h"
#include "hak_platform.h"

#define HAK_CENTRAL_MAX    16 /* parked batches per class, at most (max_batches) */
#define HAK_CENTRAL_SHRINK 4 /* releases that say a class is shrinking */
#define HAK_CARVE_BYTES    4096 /* new blocks a refill carves at most: a page's worth (at least one) */

/* The head of a unit (a tiny slab, a pool span): blocks base + i * stride,
 * i < capacity, handed out from its free list first, else carved in
 * order. Counts fit 16 bits: a unit holds at most 4096 blocks (a 64 KiB
 * slab of 16-byte blocks; a span, 64). */
typedef struct hak_unit {
    void *free;              /* blocks given back to the unit (linked through p[0], hak_link.h) */
    struct hak_unit *next;   /* in the class's partial list (a free tiny slab: the dirty list) */
    struct hak_unit *prev;
    uint8_t *base;           /* block 0 */
    uint32_t stride;
    uint16_t used;           /* blocks out of the unit: in caches or with the user */
    uint16_t carved;         /* blocks carved so far (bump pointer; read without the lock) */
    uint16_t capacity;       /* blocks the unit holds */
    uint8_t in_partial;      /* on the class's partial list */
} hak_unit_t;

HAK_LIST_DEFINE(hak_unit_list, hak_unit_t) /* the partial lists (and tiny's dirty list) */

typedef struct hak_batch {
    void *head; /* linked through p[0] (hak_link.h) */
    uint32_t n;
} hak_batch_t;

typedef struct hak_central {
    hak_lock_t lock;
    uint32_t nbatch;
    uint32_t shrinking;    /* spills released HAK_CENTRAL_SHRINK units with none taken in
                              between: park no batches, send them home */
    uint32_t net_releases; /* units released by spills since one was last taken */
    uint32_t max_batches;  /* parked batches at most (<= HAK_CENTRAL_MAX; 0: every put goes home),
                              set by the back end before the list's first use */
    hak_unit_t *partial;   /* the back end's units of this class with a free or uncarved block */
    /* Event counters (statistics), written under the lock: they share its
     * cache line, so counting costs no line of its own (process-wide
     * atomic counters were one line bounced between every core on each
     * refill and drain). */
    size_t refills, drains, spills;
    hak_batch_t batch[HAK_CENTRAL_MAX];
} __attribute__((aligned(64))) hak_central_t;

typedef struct hak_central_ops {
    /* A new unit of class cls (a slab, a span), or NULL with ENOMEM. */
    hak_unit_t *(*acquire)(void *be, unsigned cls);
    /* The unit that holds block b. */
    hak_unit_t *(*unit_of)(const void *b);
    /* Block b of class cls was just carved (NULL: nothing to do). */
    void (*carved)(void *b, unsigned cls);
    /* u's last block came home and u left the partial list: it goes back
     * to the back end. */
    void (*release)(void *be, hak_unit_t *u);
    /* The next block after b on a list of class cls: a bin or a parked
     * batch (home NULL), or unit home's free list. Its link checked at
     * full: a corrupted one reported as a failure of `op`, and NULL. */
    void *(*next)(void *be, void *b, unsigned cls, const char *op, const hak_unit_t *home);
    bool keep_last; /* an emptied unit alone on its partial list stays (not released) */
} hak_central_ops_t;

/* ------------------------------------------------------------ the units */

/* u onto / off its class's partial list. */
HAK_INLINE void hak_unit_partial_add(hak_central_t *c, hak_unit_t *u)
{
    hak_unit_list_push_front(&c->partial, NULL, u);
    u->in_partial = 1;
}

HAK_INLINE void hak_unit_partial_remove(hak_central_t *c, hak_unit_t *u)
{
    hak_unit_list_remove(&c->partial, NULL, u);
    u->next = u->prev = NULL;
    u->in_partial = 0;
}

/* u has no free and no uncarved block left. */
HAK_INLINE bool hak_unit_spent(const hak_unit_t *u) { return u->free == NULL && u->carved == u->capacity; }

/* One block of class cls out of unit u (its free list, else carved), or
 * NULL if it has none. */
HAK_INLINE void *hak_unit_pop(const hak_central_ops_t *ops, void *be, hak_unit_t *u, unsigned cls)
{
    void *b = u->free;
    if (b) {
        u->free = ops->next(be, b, cls, "malloc", u);
    } else if (u->carved < u->capacity) {
        b = u->base + (size_t)u->carved * u->stride;
        __atomic_store_n(&u->carved, (uint16_t)(u->carved + 1), __ATOMIC_RELAXED);
        if (ops->carved)
            ops->carved(b, cls);
    } else {
        return NULL;
    }
    u->used++;
    return b;
}

/* Block b home to its unit; true if that emptied and released the unit
 * (unless ops->keep_last keeps it: the class's only partial unit). From
 * magic up, a block whose unit has none in use (kept empty, or released:
 * unit_of answers NULL) was freed twice: reported and left alone, never
 * counted twice (a released unit's memory is not touched). */
HAK_INLINE bool hak_unit_spill(const hak_central_ops_t *ops, void *be, hak_central_t *c, void *b)
{
    hak_unit_t *u = ops->unit_of(b);
    if (HAK_VALIDATION >= 1 && HAK_UNLIKELY(u == NULL || u->used == 0)) {
        hak_report_failure("free", "double free (its unit holds no block in use)", b);
        return false;
    }
    hak_link_set(b, u->free);
    u->free = b;
    u->used--;
    if (!u->in_partial)
        hak_unit_partial_add(c, u);
    if (u->used == 0 && !(ops->keep_last && c->partial == u && u->next == NULL)) {
        hak_unit_partial_remove(c, u);
        ops->release(be, u);
        return true;
    }
    return false;
}

/* The free slow paths' first look at the block the fast path has just
 * pushed: linked to itself, it was the bin's head already (free(p);
 * free(p), nothing between them), and the bin's list is now a loop that
 * would hand p out, and send it home, again and again. From magic up:
 * reported, and the bin emptied (the blocks behind p are lost to the
 * thread's cache: they stay counted in use, never handed out twice).
 * A double free the fast path takes without a slow path, or with other
 * frees between, is caught only at validation=full (docs/reliability.md). */
HAK_INLINE bool hak_front_pushed_twice(hak_bin_t *bin, void *p)
{
    if (HAK_VALIDATION < 1 || HAK_LIKELY(hak_link_get(p) != p))
        return false;
    hak_report_failure("free", "double free", p);
    bin->head = NULL;
    bin->room = (int32_t)bin->max;
    return true;
}

/* ------------------------------------------------------ the central lists */

/* The class's first partial unit, or a new one put on the partial list;
 * NULL with ENOMEM. Lock held. */
HAK_INLINE hak_unit_t *hak_central_unit(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls)
{
    hak_unit_t *u = c->partial;
    if (u == NULL && (u = ops->acquire(be, cls)) != NULL) {
        hak_unit_partial_add(c, u);
        c->net_releases = 0;
    }
    return u;
}

/* Up to `want` blocks of class cls from the units, linked in *out; how
 * many (0 with ENOMEM). Partial units first, then new ones; of blocks
 * not carved yet, at most a HAK_CARVE_BYTES page's worth (at least one:
 * each one carved is written, docs/design.md "Refills start small").
 * With `carve` false, only blocks on the partial units' free lists (none
 * carved, no unit made): 0 when the class has none. */
HAK_INLINE uint32_t hak_central_take(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                     uint32_t want, void **out, bool carve)
{
    void *head = NULL;
    uint32_t n = 0, fresh = 0, carve_max = 0;
    while (n < want) {
        hak_unit_t *u = carve ? hak_central_unit(ops, be, c, cls) : c->partial;
        if (u == NULL || (!carve && u->free == NULL))
            break;
        if (carve_max == 0)
            carve_max = u->stride < HAK_CARVE_BYTES ? HAK_CARVE_BYTES / u->stride : 1;
        void *b;
        bool capped = false;
        while (n < want) {
            if (u->free == NULL && (!carve || (n > 0 && (capped = fresh >= carve_max))))
                break; /* carved what one refill may: the rest stays unwritten */
            fresh += u->free == NULL && u->carved < u->capacity;
            if ((b = hak_unit_pop(ops, be, u, cls)) == NULL)
                break;
            hak_link_set(b, head);
            head = b;
            n++;
        }
        if (hak_unit_spent(u))
            hak_unit_partial_remove(c, u);
        if (capped)
            break;
    }
    *out = head;
    return n;
}

/* A list home to its units; true if a unit was released on the way. */
HAK_INLINE bool hak_central_spill_list(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                       void *head)
{
    size_t n = 0;
    bool released = false;
    while (head) {
        void *next = ops->next(be, head, cls, "free", NULL);
        released |= hak_unit_spill(ops, be, c, head);
        head = next;
        n++;
    }
    HAK_COUNT_LOCKED(c->spills, n);
    return released;
}

/* Every parked batch home (lock held). */
HAK_INLINE void hak_central_flush_locked(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls)
{
    while (c->nbatch > 0) {
        c->nbatch--;
        hak_central_spill_list(ops, be, c, cls, c->batch[c->nbatch].head);
    }
}

/* A refill: a whole parked batch, else at most `want` blocks from the
 * units (none carved unless `carve`: hak_central_take), linked in *out;
 * returns its length (0 with ENOMEM). *contended: the lock was held by
 * another thread. */
HAK_INLINE uint32_t hak_central_get(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                    uint32_t want, void **out, bool *contended, bool carve)
{
    uint32_t n;
    *contended = hak_lock_contended(&c->lock);
    if (c->nbatch > 0) {
        c->nbatch--;
        *out = c->batch[c->nbatch].head;
        n = c->batch[c->nbatch].n;
    } else {
        c->shrinking = 0;
        n = hak_central_take(ops, be, c, cls, want, out, carve);
    }
    if (n)
        HAK_COUNT_LOCKED(c->refills, 1);
    hak_unlock(&c->lock);
    return n;
}

/* A list of n blocks to the central list (`drain`: a bin's overflow,
 * counted as one drain): parked as one batch, or home when the list is
 * full or the class shrinking. Returns whether the lock was contended. */
HAK_INLINE bool hak_central_put(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls, void *head,
                                uint32_t n, bool drain)
{
    bool contended = hak_lock_contended(&c->lock);
    if (drain)
        HAK_COUNT_LOCKED(c->drains, 1);
    if (c->nbatch < c->max_batches && !c->shrinking) {
        c->batch[c->nbatch].head = head;
        c->batch[c->nbatch].n = n;
        c->nbatch++;
    } else if (hak_central_spill_list(ops, be, c, cls, head) && ++c->net_releases >= HAK_CENTRAL_SHRINK) {
        /* Units keep emptying and none is taken: the class is shrinking.
         * Batches parked here would pin one unit each; send them home too
         * (docs/design.md). A producer-consumer pair empties and takes
         * units in turn and never gets here. */
        c->shrinking = 1;
        hak_central_flush_locked(ops, be, c, cls);
    }
    hak_unlock(&c->lock);
    return contended;
}

/* A list home to its units, under the lock (no parking). */
HAK_INLINE void hak_central_home(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls, void *head)
{
    hak_lock(&c->lock);
    hak_central_spill_list(ops, be, c, cls, head);
    hak_unlock(&c->lock);
}

/* Every parked batch home, under the lock. */
HAK_INLINE void hak_central_flush(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls)
{
    hak_lock(&c->lock);
    hak_central_flush_locked(ops, be, c, cls);
    hak_unlock(&c->lock);
}

/* One block with no thread cache: from a parked batch, else the units. */
HAK_INLINE void *hak_central_alloc_one(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls)
{
    void *b = NULL;
    hak_lock(&c->lock);
    if (c->nbatch > 0) {
        hak_batch_t *bt = &c->batch[c->nbatch - 1];
        b = bt->head;
        bt->head = ops->next(be, b, cls, "malloc", NULL);
        if (--bt->n == 0 || (HAK_VALIDATION >= 2 && bt->head == NULL)) /* NULL: a corrupted link cut it */
            c->nbatch--;
    } else {
        hak_central_take(ops, be, c, cls, 1, &b, true);
    }
    hak_unlock(&c->lock);
    return b;
}

/* One block home with no thread cache. */
HAK_INLINE void hak_central_free_one(const hak_central_ops_t *ops, void *be, hak_central_t *c, void *b)
{
    hak_lock(&c->lock);
    hak_unit_spill(ops, be, c, b);
    HAK_COUNT_LOCKED(c->spills, 1);
    hak_unlock(&c->lock);
}

/* ------------------------------------------------ the bins' slow paths */

/* Slow start: a thread's first refill of a class takes one block, each
 * next one four times as many (1, 4, 16, 64), then `want` (half the bin's
 * bound), never more than `want` (docs/design.md, "Refills start small").
 * *ramp counts the refills so far: 0 in a thread's zeroed cache, so once
 * per thread (a trim resets the bounds, not the slow start). */
#define HAK_FRONT_RAMP_STEPS 4
HAK_INLINE uint32_t hak_front_ramp(uint8_t *ramp, uint32_t want)
{
    if (HAK_UNLIKELY(*ramp < HAK_FRONT_RAMP_STEPS)) {
        uint32_t r = (uint32_t)1 << (2 * (*ramp)++);
        if (r < want)
            want = r;
    }
    return want;
}

/* Refill an empty bin of class cls from its central list, `want` blocks
 * at most (after an ENOMEM, every dirty page given back and one block
 * asked again; with `carve` false, only blocks already carved: NULL when
 * there are none). Returns the block for the caller (NULL: none) and
 * leaves the rest on the bin; *contended as hak_central_get says. */
HAK_INLINE void *hak_front_refill(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                  hak_bin_t *bin, uint32_t want, bool *contended, bool carve)
{
    void *list;
    uint32_t n = hak_central_get(ops, be, c, cls, want, &list, contended, carve);
    if (HAK_UNLIKELY(n == 0) && carve && hak_purge_oom()) { /* cached memory goes back before ENOMEM */
        bool again;
        n = hak_central_get(ops, be, c, cls, 1, &list, &again, true);
    }
    if (n == 0)
        return NULL;
    bin->head = ops->next(be, list, cls, "malloc", NULL);
    bin->room -= (int32_t)(n - 1);
    if (HAK_VALIDATION >= 2 && bin->head == NULL)
        bin->room = (int32_t)bin->max; /* its end, or a corrupted link cut it */
    return list;
}

/* A larger block before a new one (docs/design.md; used by the pools for
 * the mid classes below 16 KiB, mid.md says where it pays): a class with
 * nothing free takes a free block of one of the next HAK_FIT_STEPS classes, up to
 * 1.25 times its stride, from the thread's own bins instead of carving a
 * new block, HAK_FIT_RUN times in a row at most; then it refills from its
 * own blocks and carves if it must, so a class short for good grows its
 * own instead of taking a slow path per malloc. The block keeps its class
 * (its free goes to its own bin: a bin never holds another class's
 * block), so this serves one malloc per slow path. Not at validation=full,
 * which checks each block against its class's lists. */
#define HAK_FIT_STEPS 3
#define HAK_FIT_RUN   8

/* How many of the classes after one of `stride` may lend it a block:
 * `next` holds the n strides that follow (increasing); of the first
 * HAK_FIT_STEPS of them, those up to 1.25 times `stride`. */
HAK_INLINE unsigned hak_fit_reach(uint32_t stride, const uint32_t *next, unsigned n)
{
    unsigned k = 0;
    while (k < n && k < HAK_FIT_STEPS && next[k] <= stride + stride / 4)
        k++;
    return k;
}

/* Refill bin, the empty bin of class cls, as hak_front_refill does; but
 * when `reach` bins after it (the next classes' bins of this thread) may
 * lend and *run is under HAK_FIT_RUN: blocks of cls already carved first,
 * else the first lender's head (*fitted set, *run counted), and new blocks
 * only when neither has one. */
HAK_INLINE void *hak_front_refill_fit(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                      hak_bin_t *bin, uint32_t want, bool *contended, unsigned reach,
                                      uint8_t *run, bool *fitted)
{
    *fitted = false;
#if HAK_VALIDATION < 2
    hak_bin_t *lender = NULL;
    for (unsigned k = 1; k <= reach && *run < HAK_FIT_RUN && lender == NULL; k++)
        if (bin[k].head)
            lender = &bin[k];
    if (lender) {
        void *b = hak_front_refill(ops, be, c, cls, bin, want, contended, false);
        if (b != NULL) {
            *run = 0;
            return b;
        }
        b = lender->head; /* at validation < full a link is the plain next pointer */
        lender->head = hak_link_get(b);
        lender->room++;
        ++*run;
        *fitted = true;
        return b;
    }
#else
    (void)reach;
#endif
    *run = 0;
    return hak_front_refill(ops, be, c, cls, bin, want, contended, true);
}

/* A bin over its bound: keep its most recent half (hot), hand the older
 * rest to the central list as one drain. Returns whether the central
 * list's lock was contended. At full, a corrupted link met on the way
 * (reported by ops->next) cuts the bin there: the blocks before it stay,
 * the rest is dropped. */
HAK_INLINE bool hak_front_drain(const hak_central_ops_t *ops, void *be, hak_central_t *c, unsigned cls,
                                hak_bin_t *bin)
{
    uint32_t keep = bin->max / 2;
    uint32_t nrest = hak_bin_count(bin) - keep;
    void *last = bin->head;
    for (uint32_t i = 1; i < keep; i++) {
        void *next = ops->next(be, last, cls, "free", NULL);
        if (HAK_VALIDATION >= 2 && HAK_UNLIKELY(next == NULL)) {
            bin->room = (int32_t)(bin->max - i); /* a corrupted link cut the bin after i blocks */
            return false;
        }
        last = next;
    }
    void *rest = keep ? ops->next(be, last, cls, "free", NULL) : bin->head;
    if (HAK_VALIDATION >= 2 && HAK_UNLIKELY(rest == NULL)) {
        bin->room = (int32_t)(bin->max - keep); /* cut right after the blocks kept */
        return false;
    }
    if (keep)
        hak_link_set(last, NULL);
    else
        bin->head = NULL;
    bin->room = (int32_t)(bin->max - keep);
    return hak_central_put(ops, be, c, cls, rest, nrest, true);
}

#endif
