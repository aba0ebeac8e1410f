// SPDX-License-Identifier: MIT
/* hak_large.h - the large tier (libhakmem-large): blocks mapped one by one
 * with hak_os_map, each preceded by a 16-byte AllocHeader
 * (hak_alloc_header.h), tracked in a registry of live mappings
 * (hak_large_registry.h) that proves ownership and is what free trusts.
 *
 * Serves requests above 1 MiB in the full library, and any size when
 * called directly (dispatch's fallback for tiers left out of a build).
 * Thread-safe. Every pointer is at least 16-byte aligned.
 *
 * Block layout (align <= 16; the header is right before the user pointer):
 *
 *   base (page-aligned)                                        base + len
 *   +--------+----------------------------------------------+-----------+
 *   | header | user block (size bytes)                      | slack     |
 *   +--------+----------------------------------------------+-----------+
 *            ^user = base + lead         usable = base + len - user
 *
 *   lead = 16 for align <= 16, align for 16 < align <= page, one page for
 *   align > page (the mapping then starts one page before an aligned user
 *   pointer; the over-mapped excess on both sides is unmapped).
 */
#ifndef HAK_LARGE_H
#define HAK_LARGE_H

#include <stdbool.h>
#include <stddef.h>

#include "hak_tier.h"

#ifndef HAK_API
#define HAK_API __attribute__((visibility("default")))
#endif

/* The size above which the full library sends requests here. */
#define HAK_LARGE_THRESHOLD ((size_t)1 << 20)

/* The largest request: the header's size field (1 TiB - 1) less the most
 * a block's lead can take (one page, at most 64 KiB). */
#define HAK_LARGE_MAX_SIZE (((size_t)1 << 44) - 1 - ((size_t)1 << 16))

/* A block of at least `size` bytes aligned to `align` (0 means 16; else a
 * power of two; any alignment the address space allows). Returns NULL with
 * EINVAL for a bad alignment, ENOMEM if size > PTRDIFF_MAX, if size plus
 * header plus alignment overflows or exceeds HAK_LARGE_MAX_SIZE, or if the
 * OS refuses the mapping. Contents are unspecified: a block may reuse a
 * cached mapping (see hak_large_trim). */
HAK_API void *hak_large_alloc(size_t size, size_t align);

/* hak_large_alloc, zero-filled (calloc's path): a fresh mapping, whose
 * pages the kernel zeroes lazily, or a cached one, zeroed with memset where
 * it held data (cheaper than faulting fresh pages in). */
HAK_API void *hak_large_alloc_zeroed(size_t size, size_t align);

/* Release the block at p (NULL is ignored). Keeps errno. Releases exactly
 * the mapping the registry holds for p: kept in the cache of freed
 * mappings (up to 64), which the purge policy (hak_purge.h) empties, or
 * unmapped at once with a purge delay of 0 or when larger than the
 * policy's cache_max. A pointer that is not a live block's
 * start is reported ("invalid pointer"; "double free" if it lies in a
 * cached mapping); a header that disagrees with the
 * registry is reported at validation=magic (bad magic) and full (any
 * field) as "corrupted header"; when a test's failure handler returns,
 * the block is left alone. */
HAK_API void hak_large_free(void *p);

/* The bytes writable at p, to the end of its mapping (>= the size asked
 * for); 0 if p is not a live block. */
HAK_API size_t hak_large_usable_size(const void *p);

/* true if p is exactly the start of a live large block. */
HAK_API bool hak_large_owns(const void *p);

/* Resize the block at p to at least `size` bytes with mremap (in place when
 * the address space allows, else by moving the pages: no copy), keeping the
 * contents up to the smaller size. p NULL: hak_large_alloc(size, 16).
 * Returns the block (maybe moved), or NULL with ENOMEM (EINVAL for a
 * pointer that is not a live block, which is also reported) and the block
 * unchanged. size 0 keeps a minimal block: dispatch implements
 * realloc(p, 0) as free. An over-aligned block keeps its alignment only
 * when it is resized in place. */
HAK_API void *hak_large_realloc(void *p, size_t size);

/* Unmap every cached mapping (and those of the calling thread's stash). */
HAK_API void hak_large_trim(void);

/* The heap profiler's sampled blocks (most of them a page or two): as
 * hak_large_alloc and hak_large_free, but a mapping of up to
 * HAK_LARGE_STASH_PAGES pages freed here stays in the freeing thread's
 * stash (one of each length; no lock, no purge clock, its pages still
 * counted in use as a thread cache's blocks are) for the thread's next
 * sampled block that fits it. A block of either kind may be freed by
 * either free. */
#define HAK_LARGE_STASH_PAGES 8
__attribute__((visibility("hidden"))) void *hak_large_alloc_sampled(size_t size, size_t align);
__attribute__((visibility("hidden"))) void hak_large_free_sampled(void *p);

/* true if p lies in a cached (freed, not yet unmapped) mapping, or in one
 * of the calling thread's stash: a free of p is a double free. */
__attribute__((visibility("hidden"))) bool hak_large_freed_(const void *p);

/* Bytes mapped (blocks, cached mappings and registry), committed (the same: the tier never
 * decommits, it unmaps), in use (usable bytes of live blocks), live blocks, and the
 * counts of allocations and frees. */
HAK_API void hak_large_stats(hak_tier_stats_t *out);
/* The highest mapped bytes of the tier since load (HAKMEM_STATS). */
__attribute__((visibility("hidden"))) size_t hak_large_committed_peak_(void);

/* The tier's descriptor (hak_tier.h), for dispatch's whole-heap jobs:
 * trim is hak_large_trim, stats hak_large_stats; no flush (the stash of
 * sampled mappings goes to the cache at thread exit). The tier registers
 * its fork participant with hak_fork_register on its first allocation. */
HAK_API extern const hak_tier_vtable_t hak_large_vtable;

#endif /* HAK_LARGE_H */
