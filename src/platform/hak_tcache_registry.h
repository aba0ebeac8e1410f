// SPDX-License-Identifier: MIT
/* hak_tcache_registry.h - the registry of a tier's thread caches (the tiny
 * tier's, each pool's): which caches exist, for the statistics and for the
 * fork child, which adopts the caches of the threads it does not have.
 *
 * A cache lives in its thread's TLS; the registry's links do not. A thread
 * can exit without running its exit hook: glibc runs at most
 * PTHREAD_DESTRUCTOR_ITERATIONS (4) rounds of key destructors, so a thread
 * whose first allocation comes in the last round arms the hook
 * (hak_thread_exit_arm) when no round is left to run it. Its cache stays
 * registered, and glibc then reinitialises that TLS for the next thread
 * that gets the same stack, or unmaps it. Links kept in the TLS were
 * rewritten under the list that way (the next thread registered the same
 * node again and the list pointed at itself: fork, mallinfo2 and
 * malloc_stats looped for ever). So a cache embeds only a node {entry,
 * stamp}, and the registry keeps its entries in pages it maps itself and
 * never gives back:
 *   - adding is idempotent: a node whose entry names it with its stamp is
 *     registered already. An entry that names the node's address with
 *     another stamp is stale: a thread that exited without its hook had
 *     this TLS before; the node takes it over (the blocks that cache held
 *     went with its TLS);
 *   - a walk covers the pages, a finite list in hakmem's own memory: no
 *     walk can loop, whatever happened to a thread's TLS;
 *   - the fork child flushes a foreign cache only if its node can still be
 *     read (hak_os_read) and holds its entry's stamp; otherwise the cache
 *     is gone with its thread and the entry is dropped.
 * A hak_tcreg_t is zero-initialised (static storage). Adding and removing
 * take its lock; hak_tcreg_count reads without it; hak_tcreg_adopt is the
 * fork child's (one thread, the lock reset); fork handlers take and
 * release `lock` around the fork. The lock is a leaf: the registry maps
 * its pages under it and calls nothing else.
 */
#ifndef HAK_TCACHE_REGISTRY_H
#define HAK_TCACHE_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "hak_platform.h"

struct hak_tcreg_node;

typedef struct hak_tcreg_entry {
    struct hak_tcreg_node *node; /* NULL: free */
    uint64_t stamp;
} hak_tcreg_entry_t;

/* Embedded in each thread cache (TLS). Zero, as a new thread's TLS is:
 * not registered. */
typedef struct hak_tcreg_node {
    hak_tcreg_entry_t *entry;
    uint64_t stamp;
} hak_tcreg_node_t;

typedef struct hak_tcreg_page hak_tcreg_page_t;

typedef struct hak_tcreg {
    hak_lock_t lock;
    size_t count;             /* entries in use (written under the lock) */
    uint64_t serial;          /* the last stamp given (random start, never 0) */
    hak_tcreg_page_t *pages;  /* newest first */
} hak_tcreg_t;

/* Register n (the caller's own cache). Returns 0, or -1 with ENOMEM when
 * no entry could be mapped (the caller then runs without a cache). */
int hak_tcreg_add(hak_tcreg_t *r, hak_tcreg_node_t *n) HAK_INTERNAL;
/* Unregister n (the caller's own cache); a no-op if it is not registered. */
void hak_tcreg_remove(hak_tcreg_t *r, hak_tcreg_node_t *n) HAK_INTERNAL;
/* Registered caches (the stale ones of threads gone without their hook
 * included, until another thread takes their entry over). */
size_t hak_tcreg_count(hak_tcreg_t *r) HAK_INTERNAL;
/* Fork child: reset the lock, hand every registered cache but self's that
 * is still intact to flush(node, arg), and unregister them all. */
void hak_tcreg_adopt(hak_tcreg_t *r, hak_tcreg_node_t *self, void (*flush)(hak_tcreg_node_t *n, void *arg),
                     void *arg) HAK_INTERNAL;

#endif
