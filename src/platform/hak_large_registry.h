// SPDX-License-Identifier: MIT
/* hak_large_registry.h - a table of live blocks: user pointer -> (base,
 * length, method). The large tier keeps one instance for its mappings;
 * dispatch can keep a second instance of the same type for the system-
 * allocator fallback blocks it tracks at validation=full (method malloc).
 *
 * What it proves: a pointer is a live block's start exactly when its key is
 * in the table. Free trusts the entry (base, len), never the AllocHeader.
 *
 * Design: open addressing with linear probing over a power-of-two array of
 * 32-byte slots; key 0 marks an empty slot; deletion shifts the following
 * run back (no tombstones), so a lookup stops at the first empty slot. The
 * slot array is mapped with hak_os_map on the first insert (one page, 128
 * slots), doubles when the load passes 3/4 and halves when it falls below
 * 1/8 (never below one page), so its committed memory follows the live
 * count.
 *
 * Writers (insert, remove, update, resize) hold the instance's hak_lock_t.
 * Lookups take no lock: a sequence counter (seqlock) that a writer makes
 * odd while it changes a slot or publishes another array, and `table`, the
 * array's address and (64 - log2 size) in one word, so that a reader never pairs
 * an array with another's size. A reader reads seq, the table word and the
 * slots (every field an atomic load), then seq again, and keeps the answer
 * only if seq did not move and was even; a few failed tries and it looks
 * up under the lock. Writers store slots with atomic stores (readers may
 * read them at any time). An array left by a resize is never unmapped: a
 * racing reader may still be probing it. It is decommitted (its pages read
 * as zero, no RSS) and kept, one per size, for the next resize to that
 * size; at most one array of each size exists, so the address space kept
 * is less than the largest array. `lo`/`hi` bound every key ever inserted:
 * a cheap reject for pointers far from any block (stack, data, other
 * heaps).
 *
 * A zero-filled instance is a valid empty registry (static storage needs
 * no initialiser). Lock order: the registry lock is a leaf; hak_os_map,
 * hak_os_decommit and hak_os_unmap of slot arrays run under it, nothing
 * else does.
 */
#ifndef HAK_LARGE_REGISTRY_H
#define HAK_LARGE_REGISTRY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hak_platform.h"

typedef struct hak_large_reg_entry {
    uintptr_t key;    /* the user pointer; 0 = empty slot */
    uintptr_t base;   /* start of the underlying allocation */
    size_t len;       /* its length in bytes */
    uint32_t method;  /* HAK_METHOD_* (hak_alloc_header.h) */
    uint32_t spare;
} hak_large_reg_entry_t;

#define HAK_LREG_SHIFTS 48 /* an array of 2^48 slots would exceed the address space */

typedef struct hak_large_registry {
    /* What readers read, written only by writers (under the lock). */
    uintptr_t seq;                  /* odd while a writer changes slots or table */
    uintptr_t table;                /* slots | (64 - shift) (the array is page-aligned); 0: none */
    uintptr_t lo, hi;               /* [lo, hi) holds every key ever inserted (hi 0: none) */
    /* The writers'. */
    hak_lock_t lock;
    uint32_t shift;                 /* log2(cap); 0 while no array is mapped */
    hak_large_reg_entry_t *slots;   /* cap slots, mapped with hak_os_map */
    size_t cap, count;
    uintptr_t fork_holder;          /* thread that took the lock in fork prepare */
    size_t retired_bytes;           /* the arrays of retired[] */
    hak_large_reg_entry_t *retired[HAK_LREG_SHIFTS]; /* decommitted arrays, by log2 size */
} hak_large_registry_t;

#define HAK_LARGE_REGISTRY_INIT {.lock = HAK_LOCK_INIT}

/* Results of hak_large_registry_remove_. */
enum {
    HAK_LREG_REMOVED  = 0,   /* found, checked, removed; *out holds the entry */
    HAK_LREG_ABSENT   = -1,  /* no live block starts at this pointer */
    HAK_LREG_REJECTED = 1,   /* found, but the check refused; entry kept, *out filled */
};

/* Called under the registry lock with the entry found for `user`; returns
 * true to let the removal proceed. May read the block's header (the block
 * cannot be freed while the lock is held) but must not call the registry. */
typedef bool (*hak_large_reg_check_t)(const hak_large_reg_entry_t *e, void *ctx);

/* Record a live block. Returns 0, or -1 with errno ENOMEM (the slot array
 * could not grow) or EEXIST (the key is already live: a bug of the caller).
 * user must be non-NULL. */
HAK_INTERNAL int hak_large_registry_insert_(hak_large_registry_t *r, const void *user, void *base,
                                            size_t len, unsigned method);

/* Remove the block at user if `check` (may be NULL) accepts it. Never
 * fails for lack of memory (a failed shrink keeps the larger array). */
HAK_INTERNAL int hak_large_registry_remove_(hak_large_registry_t *r, const void *user,
                                            hak_large_reg_check_t check, void *ctx,
                                            hak_large_reg_entry_t *out);

/* Move or resize a block's entry: the block at old_user now starts at
 * new_user (may be equal) over [base, base+len). The caller holds the lock
 * (hak_large_registry_lock_), so that no other block can be inserted at
 * new_user in between. Cannot fail for lack of memory (the count does not
 * change). Returns false if old_user is not live. */
HAK_INTERNAL bool hak_large_registry_update_locked_(hak_large_registry_t *r, const void *old_user,
                                                    const void *new_user, void *base, size_t len);

HAK_INTERNAL void hak_large_registry_lock_(hak_large_registry_t *r);
HAK_INTERNAL void hak_large_registry_unlock_(hak_large_registry_t *r);

/* Cheap, lock-free: false means no live block can start at p. */
static inline bool hak_large_registry_may_hold_(const hak_large_registry_t *r, const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= __atomic_load_n(&r->lo, __ATOMIC_RELAXED) && a < __atomic_load_n(&r->hi, __ATOMIC_RELAXED);
}

#define HAK_LREG_HASH_MUL 0x9E3779B97F4A7C15ULL /* 2^64 / golden ratio (Fibonacci hashing) */
#define HAK_LREG_SHIFT_MASK ((uintptr_t)63)   /* table: the low bits of the array's address hold 64 - shift */

/* The home slot of a key. Keys are 16-aligned: drop the four zero bits,
 * then multiply so that the high bits of the product, which pick the slot,
 * depend on every bit. */
static inline size_t hak_large_registry_home_(uintptr_t key, uint32_t shift)
{
    return (size_t)((((uint64_t)key >> 4) * HAK_LREG_HASH_MUL) >> (64 - shift));
}

/* The table word of an array of 2^shift slots. */
static inline uintptr_t hak_large_registry_word_(const void *slots, uint32_t shift)
{
    return (uintptr_t)slots | (64 - shift);
}

/* One lock-free read: 1 found (*out filled), 0 absent, -1 a writer was
 * at work (the answer may be wrong: try again). Every load is an acquire
 * load (a plain move on x86-64): one that reads a writer's store makes the
 * last load of seq see that writer's odd count, and no later load moves
 * before it. The array read stays mapped even if a resize retired it
 * meanwhile, and the probe is bounded by its size, whatever a writer does
 * to it. */
static inline int hak_large_registry_try_(const hak_large_registry_t *r, uintptr_t key,
                                          hak_large_reg_entry_t *out)
{
    uintptr_t seq = __atomic_load_n(&r->seq, __ATOMIC_ACQUIRE);
    uintptr_t t = __atomic_load_n(&r->table, __ATOMIC_ACQUIRE);
    int res = 0;
    if (__builtin_expect(seq & 1, 0))
        return -1;
    if (t != 0) {
        const hak_large_reg_entry_t *slots = (const hak_large_reg_entry_t *)(t & ~HAK_LREG_SHIFT_MASK);
        unsigned down = (unsigned)(t & HAK_LREG_SHIFT_MASK); /* 64 - shift */
        size_t mask = ~(size_t)0 >> down, i = (size_t)((((uint64_t)key >> 4) * HAK_LREG_HASH_MUL) >> down);
        res = -1;
        for (size_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
            uintptr_t k = __atomic_load_n(&slots[i].key, __ATOMIC_ACQUIRE);
            if (k == key) {
                out->key = k;
                out->base = __atomic_load_n(&slots[i].base, __ATOMIC_ACQUIRE);
                out->len = __atomic_load_n(&slots[i].len, __ATOMIC_ACQUIRE);
                out->method = __atomic_load_n(&slots[i].method, __ATOMIC_ACQUIRE);
                out->spare = 0;
                res = 1;
                break;
            }
            if (k == 0) {
                res = 0;
                break;
            }
        }
    }
    return __atomic_load_n(&r->seq, __ATOMIC_RELAXED) == seq ? res : -1;
}

/* The lookup after a lock-free try raced with writers: tries again a few
 * times, then looks under the lock. */
HAK_INTERNAL bool hak_large_registry_lookup_slow_(hak_large_registry_t *r, const void *user,
                                                  hak_large_reg_entry_t *out);

/* true if a live block starts at user; then *out (if not NULL) is its
 * entry. Lock-free unless it keeps meeting writers. */
static inline bool hak_large_registry_lookup_(hak_large_registry_t *r, const void *user,
                                              hak_large_reg_entry_t *out)
{
    hak_large_reg_entry_t e;
    if (!hak_large_registry_may_hold_(r, user))
        return false;
    int res = hak_large_registry_try_(r, (uintptr_t)user, out != NULL ? out : &e);
    if (__builtin_expect(res >= 0, 1))
        return res != 0;
    return hak_large_registry_lookup_slow_(r, user, out);
}

/* Live blocks; the bytes of the slot array (metadata overhead, committed);
 * the bytes of the arrays kept decommitted since resizes (mapped, not
 * committed). */
HAK_INTERNAL size_t hak_large_registry_count_(hak_large_registry_t *r);
HAK_INTERNAL size_t hak_large_registry_table_bytes_(hak_large_registry_t *r);
HAK_INTERNAL size_t hak_large_registry_retired_bytes_(hak_large_registry_t *r);

/* The heap validator: walks the array and checks every invariant (each key
 * reachable from its home slot without crossing an empty one, no duplicate,
 * the count, the key bounds), and calls `each` (may be NULL) on every
 * entry under the lock for the owner's own invariants. Returns true if all
 * hold. For tests and debugging. */
HAK_INTERNAL bool hak_large_registry_validate_(hak_large_registry_t *r, hak_large_reg_check_t each,
                                               void *ctx);

/* Fork participant helpers: prepare takes the lock (a no-op if the calling
 * thread already took it in this fork), parent releases it, child
 * reinitialises it. The entries stay valid in the child: it inherits every
 * mapping. */
HAK_INTERNAL void hak_large_registry_fork_prepare_(hak_large_registry_t *r);
HAK_INTERNAL void hak_large_registry_fork_parent_(hak_large_registry_t *r);
HAK_INTERNAL void hak_large_registry_fork_child_(hak_large_registry_t *r);

#endif /* HAK_LARGE_REGISTRY_H */
