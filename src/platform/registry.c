// SPDX-License-Identifier: MIT
/* registry.c - the table of live blocks (design and invariants in
 * hak_large_registry.h).
 *
 * Invariants, checked by hak_large_registry_validate_:
 *   - cap is 0 (no array) or a power of two >= one page of slots;
 *   - every live key sits in the run that starts at its home slot: no empty
 *     slot between home(key) and the key's slot (linear probing);
 *   - keys are unique, count is the number of non-empty slots, and
 *     count <= 3/4 cap, so a probe always meets an empty slot;
 *   - lo <= key < hi for every key;
 *   - table is slots | (64 - shift) (0 with no array), seq is even outside a
 *     writer's change, and no retired array has the current array's size.
 *
 * The writers' side of the seqlock (readers: hak_large_registry_try_):
 * seq goes odd, then the slot or table stores, each a release store (a
 * reader whose acquire load sees one sees seq odd when it reads seq
 * again), then seq goes even with a release store. No fence: TSan does not
 * support them (gcc -Wtsan), and on x86-64 release stores and acquire
 * loads are plain moves. Everything here runs under the lock; reads under
 * it are plain (only lock holders write).
 */
#include "hak_large_registry.h"

#include <errno.h>
#include <string.h>

#include "hak_alloc_header.h"

/* Grow when the load would pass 3/4, shrink below 1/8 (halving leaves < 1/4). */
#define LREG_GROW_NUM   3
#define LREG_GROW_DEN   4
#define LREG_SHRINK_DEN 8
#define LREG_TRIES      8  /* lock-free tries before a lookup takes the lock */

#define lreg_home hak_large_registry_home_

static void lreg_write_begin(hak_large_registry_t *r)
{
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELAXED); /* ordered by the release stores after it */
}

static void lreg_write_end(hak_large_registry_t *r)
{
    __atomic_store_n(&r->seq, r->seq + 1, __ATOMIC_RELEASE);
}

/* Slot stores: a reader may be reading the slot (the key last). */
static void lreg_store(hak_large_reg_entry_t *d, const hak_large_reg_entry_t *e)
{
    __atomic_store_n(&d->base, e->base, __ATOMIC_RELEASE);
    __atomic_store_n(&d->len, e->len, __ATOMIC_RELEASE);
    __atomic_store_n(&d->method, e->method, __ATOMIC_RELEASE);
    __atomic_store_n(&d->spare, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&d->key, e->key, __ATOMIC_RELEASE);
}

static void lreg_clear(hak_large_reg_entry_t *d)
{
    static const hak_large_reg_entry_t empty;
    lreg_store(d, &empty);
}

static uint32_t lreg_min_shift(void)
{
    size_t slots = hak_os_page_size() / sizeof(hak_large_reg_entry_t);
    uint32_t shift = 1;
    while (((size_t)1 << shift) < slots)
        shift++;
    return shift;
}

static hak_large_reg_entry_t *lreg_find(const hak_large_registry_t *r, uintptr_t key)
{
    if (r->slots == NULL)
        return NULL;
    size_t mask = r->cap - 1;
    for (size_t i = lreg_home(key, r->shift);; i = (i + 1) & mask) {
        hak_large_reg_entry_t *e = &r->slots[i];
        if (e->key == key)
            return e;
        if (e->key == 0)
            return NULL;
    }
}

/* Store e in the first empty slot of its run (the caller knows one exists). */
static void lreg_place(hak_large_reg_entry_t *slots, uint32_t shift, const hak_large_reg_entry_t *e)
{
    size_t mask = ((size_t)1 << shift) - 1;
    size_t i = lreg_home(e->key, shift);
    while (slots[i].key != 0)
        i = (i + 1) & mask;
    lreg_store(&slots[i], e);
}

/* Empty slot i and shift back the entries of the run after it that may
 * move (those whose home is not cyclically in (i, j]). */
static void lreg_erase_at(hak_large_registry_t *r, size_t i)
{
    size_t mask = r->cap - 1;
    for (size_t j = (i + 1) & mask; r->slots[j].key != 0; j = (j + 1) & mask) {
        size_t k = lreg_home(r->slots[j].key, r->shift);
        bool stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (stays)
            continue;
        hak_large_reg_entry_t moved = r->slots[j];
        lreg_store(&r->slots[i], &moved);
        i = j;
    }
    lreg_clear(&r->slots[i]);
}

/* Rehash into an array of 2^shift slots: the one kept from an earlier
 * resize to that size, or a fresh mapping. The old array is published as
 * gone before it is decommitted and kept: a reader still probing it reads
 * zeroes or stale slots, and seq, which moved, makes it try again. Returns
 * 0, or -1 with ENOMEM and the old array untouched. */
static int lreg_resize(hak_large_registry_t *r, uint32_t shift)
{
    size_t cap = (size_t)1 << shift, bytes = cap * sizeof(hak_large_reg_entry_t);
    hak_large_reg_entry_t *slots = r->retired[shift];
    if (slots != NULL) {
        /* Stale readers may read it: cleared with atomic stores (the
         * arena backend's decommit keeps the contents). */
        r->retired[shift] = NULL;
        r->retired_bytes -= bytes;
        hak_os_note_recommit(bytes);
        for (size_t i = 0; i < cap; i++)
            if (slots[i].key != 0)
                lreg_clear(&slots[i]);
    } else {
        slots = hak_os_map(bytes, hak_os_page_size());
        if (slots == NULL)
            return -1;
    }
    for (size_t i = 0; i < r->cap; i++)
        if (r->slots[i].key != 0)
            lreg_place(slots, shift, &r->slots[i]);
    hak_large_reg_entry_t *old = r->slots;
    size_t old_bytes = r->cap * sizeof(hak_large_reg_entry_t);
    lreg_write_begin(r);
    __atomic_store_n(&r->table, hak_large_registry_word_(slots, shift), __ATOMIC_RELEASE);
    lreg_write_end(r);
    if (old != NULL) {
        hak_os_decommit(old, old_bytes);
        r->retired[r->shift] = old;
        r->retired_bytes += old_bytes;
    }
    r->slots = slots;
    r->cap = cap;
    r->shift = shift;
    return 0;
}

static void lreg_widen(hak_large_registry_t *r, uintptr_t key)
{
    if (r->hi == 0 || key < r->lo)
        __atomic_store_n(&r->lo, key, __ATOMIC_RELAXED);
    if (key + 1 > r->hi)
        __atomic_store_n(&r->hi, key + 1, __ATOMIC_RELAXED);
}

HAK_INTERNAL void hak_large_registry_lock_(hak_large_registry_t *r) { hak_lock(&r->lock); }
HAK_INTERNAL void hak_large_registry_unlock_(hak_large_registry_t *r) { hak_unlock(&r->lock); }

HAK_INTERNAL int hak_large_registry_insert_(hak_large_registry_t *r, const void *user, void *base,
                                            size_t len, unsigned method)
{
    uintptr_t key = (uintptr_t)user;
    hak_lock(&r->lock);
    if (lreg_find(r, key) != NULL) {
        hak_unlock(&r->lock);
        errno = EEXIST;
        return -1;
    }
    if (r->cap == 0 || (r->count + 1) * LREG_GROW_DEN > r->cap * LREG_GROW_NUM) {
        uint32_t shift = r->cap == 0 ? lreg_min_shift() : r->shift + 1;
        if (lreg_resize(r, shift) != 0) {
            hak_unlock(&r->lock);
            errno = ENOMEM;
            return -1;
        }
    }
    hak_large_reg_entry_t e = {key, (uintptr_t)base, len, method, 0};
    lreg_widen(r, key); /* before the key is findable: a reader that finds it passed the bounds */
    lreg_write_begin(r);
    lreg_place(r->slots, r->shift, &e);
    lreg_write_end(r);
    r->count++;
    hak_unlock(&r->lock);
    return 0;
}

HAK_INTERNAL bool hak_large_registry_lookup_slow_(hak_large_registry_t *r, const void *user,
                                                  hak_large_reg_entry_t *out)
{
    hak_large_reg_entry_t tmp, *dst = out != NULL ? out : &tmp;
    for (int i = 0; i < LREG_TRIES; i++) {
        __builtin_ia32_pause();
        int res = hak_large_registry_try_(r, (uintptr_t)user, dst);
        if (res >= 0)
            return res != 0;
    }
    /* A writer keeps the table busy (or sleeps with seq odd): wait for it. */
    hak_lock(&r->lock);
    const hak_large_reg_entry_t *e = lreg_find(r, (uintptr_t)user);
    if (e != NULL)
        *dst = *e;
    hak_unlock(&r->lock);
    return e != NULL;
}

HAK_INTERNAL int hak_large_registry_remove_(hak_large_registry_t *r, const void *user,
                                            hak_large_reg_check_t check, void *ctx,
                                            hak_large_reg_entry_t *out)
{
    if (!hak_large_registry_may_hold_(r, user))
        return HAK_LREG_ABSENT;
    hak_lock(&r->lock);
    hak_large_reg_entry_t *e = lreg_find(r, (uintptr_t)user);
    if (e == NULL) {
        hak_unlock(&r->lock);
        return HAK_LREG_ABSENT;
    }
    if (out != NULL)
        *out = *e;
    if (check != NULL && !check(e, ctx)) {
        hak_unlock(&r->lock);
        return HAK_LREG_REJECTED;
    }
    lreg_write_begin(r);
    lreg_erase_at(r, (size_t)(e - r->slots));
    lreg_write_end(r);
    r->count--;
    if (r->count * LREG_SHRINK_DEN < r->cap && r->shift > lreg_min_shift()) { /* the cheap test first */
        int saved = errno;
        (void)lreg_resize(r, r->shift - 1); /* on failure the larger array stays */
        errno = saved;
    }
    hak_unlock(&r->lock);
    return HAK_LREG_REMOVED;
}

HAK_INTERNAL bool hak_large_registry_update_locked_(hak_large_registry_t *r, const void *old_user,
                                                    const void *new_user, void *base, size_t len)
{
    hak_large_reg_entry_t *e = lreg_find(r, (uintptr_t)old_user);
    if (e == NULL)
        return false;
    hak_large_reg_entry_t n = *e;
    n.key = (uintptr_t)new_user;
    n.base = (uintptr_t)base;
    n.len = len;
    if (n.key == e->key) {
        lreg_write_begin(r);
        lreg_store(e, &n);
        lreg_write_end(r);
        return true;
    }
    /* Same count after the swap: the array has room without growing. */
    lreg_widen(r, n.key);
    lreg_write_begin(r);
    lreg_erase_at(r, (size_t)(e - r->slots));
    lreg_place(r->slots, r->shift, &n);
    lreg_write_end(r);
    return true;
}

HAK_INTERNAL size_t hak_large_registry_count_(hak_large_registry_t *r)
{
    hak_lock(&r->lock);
    size_t n = r->count;
    hak_unlock(&r->lock);
    return n;
}

HAK_INTERNAL size_t hak_large_registry_table_bytes_(hak_large_registry_t *r)
{
    hak_lock(&r->lock);
    size_t n = r->cap * sizeof(hak_large_reg_entry_t);
    hak_unlock(&r->lock);
    return n;
}

HAK_INTERNAL size_t hak_large_registry_retired_bytes_(hak_large_registry_t *r)
{
    hak_lock(&r->lock);
    size_t n = r->retired_bytes;
    hak_unlock(&r->lock);
    return n;
}

HAK_INTERNAL bool hak_large_registry_validate_(hak_large_registry_t *r, hak_large_reg_check_t each,
                                               void *ctx)
{
    hak_lock(&r->lock);
    bool ok = (r->seq & 1) == 0;
    size_t retired = 0;
    for (uint32_t s = 0; s < HAK_LREG_SHIFTS; s++)
        if (r->retired[s] != NULL) {
            retired += ((size_t)1 << s) * sizeof(hak_large_reg_entry_t);
            if (s == r->shift && r->cap != 0)
                ok = false;
        }
    if (retired != r->retired_bytes)
        ok = false;
    if (r->cap == 0) {
        ok = ok && r->slots == NULL && r->count == 0 && r->table == 0;
        hak_unlock(&r->lock);
        return ok;
    }
    if (r->table != hak_large_registry_word_(r->slots, r->shift))
        ok = false;
    if (r->cap != (size_t)1 << r->shift || r->shift < lreg_min_shift() ||
        r->count * LREG_GROW_DEN > r->cap * LREG_GROW_NUM)
        ok = false;
    size_t mask = r->cap - 1, n = 0;
    for (size_t i = 0; ok && i < r->cap; i++) {
        const hak_large_reg_entry_t *e = &r->slots[i];
        if (e->key == 0)
            continue;
        n++;
        if (e->key < r->lo || e->key >= r->hi || e->method == HAK_METHOD_NONE)
            ok = false;
        if (each != NULL && !each(e, ctx))
            ok = false;
        for (size_t j = lreg_home(e->key, r->shift); ok && j != i; j = (j + 1) & mask)
            if (r->slots[j].key == 0 || r->slots[j].key == e->key)
                ok = false; /* a gap in the run, or a duplicate before it */
    }
    if (n != r->count)
        ok = false;
    hak_unlock(&r->lock);
    return ok;
}

/* ------------------------------------------------------------- fork */

HAK_INTERNAL void hak_large_registry_fork_prepare_(hak_large_registry_t *r)
{
    if (__atomic_load_n(&r->fork_holder, __ATOMIC_RELAXED) == hak_thread_id())
        return; /* taken already in this fork by this thread */
    hak_lock(&r->lock);
    __atomic_store_n(&r->fork_holder, hak_thread_id(), __ATOMIC_RELAXED);
}

HAK_INTERNAL void hak_large_registry_fork_parent_(hak_large_registry_t *r)
{
    if (__atomic_load_n(&r->fork_holder, __ATOMIC_RELAXED) != hak_thread_id())
        return;
    __atomic_store_n(&r->fork_holder, 0, __ATOMIC_RELAXED);
    hak_unlock(&r->lock);
}

HAK_INTERNAL void hak_large_registry_fork_child_(hak_large_registry_t *r)
{
    __atomic_store_n(&r->fork_holder, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&r->lock.v, 0, __ATOMIC_RELEASE);
    /* prepare held the lock, so no writer was between begin and end */
}
