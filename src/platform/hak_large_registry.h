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
 * 1/8 (never below one page), so its memory follows the live count. One
 * hak_lock_t per instance guards everything; large blocks cost a system
 * call each, so the lock is never the bottleneck (see docs/large.md).
 * `lo`/`hi` bound every key ever inserted: a cheap, lock-free reject for
 * pointers far from any block (stack, data, other heaps).
 *
 * A zero-filled instance is a valid empty registry (static storage needs
 * no initialiser). Lock order: the registry lock is a leaf; hak_os_map and
 * hak_os_unmap of the slot array run under it, nothing else does.
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

typedef struct hak_large_registry {
    hak_lock_t lock;
    uint32_t shift;                 /* log2(cap); 0 while no array is mapped */
    hak_large_reg_entry_t *slots;   /* cap slots, mapped with hak_os_map */
    size_t cap, count;
    uintptr_t lo, hi;               /* [lo, hi) holds every key ever inserted (hi 0: none) */
    uintptr_t fork_holder;          /* thread that took the lock in fork prepare */
} hak_large_registry_t;

#define HAK_LARGE_REGISTRY_INIT {HAK_LOCK_INIT, 0, NULL, 0, 0, 0, 0, 0}

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

/* true if a live block starts at user; then *out (if not NULL) is its entry. */
HAK_INTERNAL bool hak_large_registry_lookup_(hak_large_registry_t *r, const void *user,
                                             hak_large_reg_entry_t *out);

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

/* Live blocks, and the bytes of the slot array (metadata overhead). */
HAK_INTERNAL size_t hak_large_registry_count_(hak_large_registry_t *r);
HAK_INTERNAL size_t hak_large_registry_table_bytes_(hak_large_registry_t *r);

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
