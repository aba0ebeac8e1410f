// SPDX-License-Identifier: MIT
/* hak_l25.h - the L25 pool alone (libhakmem-l25): requests above 32 KiB
 * up to 1 MiB (HAK_L25_MAX_SIZE).
 *
 * Sizes from 0 bytes work when it is called directly (the smallest class
 * is 36 KiB); dispatch sends it only what mid does not serve. Every
 * pointer is 16-byte aligned and has no header: ownership is proven by
 * address (the chunk map says HAK_TAG_L25). Thread-safe (posix backend;
 * the arena backend has no L25 pool: allocations fail with ENOMEM).
 *
 * Threads: each thread caches freed blocks. The pool registers
 * hak_l25_thread_exit() with the platform's thread-exit hook
 * (hak_thread_exit_register) when it is first used, built alone or in
 * libhakmem, so a thread's cache goes back when the thread ends; calls
 * after it work, without a cache. It registers its own fork participant
 * the same way.
 */
#ifndef HAKMEM_L25_H
#define HAKMEM_L25_H

#include <stdbool.h>
#include <stddef.h>

#include "hak_pool_stats.h"
#include "hak_tier.h"

#ifdef __cplusplus
extern "C" {
#endif

#ifndef HAK_API
#define HAK_API __attribute__((visibility("default")))
#endif

#define HAK_L25_MAX_SIZE ((size_t)1 << 20)

/* A block of at least `size` bytes (size <= HAK_L25_MAX_SIZE) aligned to
 * `align` (0 or a power of two; at most hak_l25_max_align(size), 1 MiB
 * for every size). NULL with ENOMEM if the size or alignment cannot be
 * served or memory is exhausted, EINVAL if align is not a power of two.
 * An over-aligned pointer may lie inside its block. */
HAK_API void *hak_l25_alloc(size_t size, size_t align);

/* Free a block of this pool (its start, or the pointer an aligned
 * allocation returned); NULL is ignored. validation=magic reports a
 * pointer in no in-use span; full also reports double frees and pointers
 * that are not what an allocation returned. */
HAK_API void hak_l25_free(void *p);

/* Bytes from p to the end of its block (>= the size asked for); 0 for
 * NULL or a pointer not in an L25 block. */
HAK_API size_t hak_l25_usable_size(const void *p);

/* true if p lies in memory of the L25 pool (a few instructions; reads
 * only the chunk map). */
HAK_API bool hak_l25_owns(const void *p);

/* The largest alignment hak_l25_alloc places for `size` bytes. */
HAK_API size_t hak_l25_max_align(size_t size);

/* Return the calling thread's cached blocks, the central lists' blocks,
 * every free page and every empty chunk to the OS. */
HAK_API void hak_l25_trim(void);

/* The calling thread is ending: give its cache back; later calls of the
 * thread take the cacheless path. Runs from the thread-exit hook; a
 * thread may call it earlier itself. */
HAK_API void hak_l25_thread_exit(void);

HAK_API void hak_l25_get_stats(hak_pool_stats_t *out);

/* The tier's descriptor (hak_tier.h), for dispatch's whole-heap jobs. */
extern HAK_API const hak_tier_vtable_t hak_l25_vtable;

#ifdef __cplusplus
}
#endif

#endif
