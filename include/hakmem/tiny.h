// SPDX-License-Identifier: MIT
/* hakmem/tiny.h - the tiny tier alone (libhakmem-tiny).
 *
 * Serves requests of 0 to hak_tiny_max_size() bytes (1023 with the default
 * header byte, 1024 headerless or with class7_header_width=2). Every
 * pointer is 16-byte aligned. Thread-safe with the posix backend; with the
 * arena backend call hak_tiny_init_arena() first, from one thread.
 */
#ifndef HAKMEM_TINY_H
#define HAKMEM_TINY_H

#include <stdbool.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#define HAK_API __attribute__((visibility("default")))

/* A block of at least `size` bytes, or NULL with errno = ENOMEM (also when
 * size > hak_tiny_max_size()). */
HAK_API void *hak_tiny_alloc(size_t size);

/* A block of at least `size` bytes aligned to `align` (a power of two), or
 * NULL with ENOMEM where no class can place it (the tiny tier serves an
 * alignment above 16 only from a class whose stride is a multiple of it). */
HAK_API void *hak_tiny_alloc_aligned(size_t size, size_t align);

/* Free a block of this tier; NULL is ignored. At validation=full a pointer
 * that is not a live tiny block is reported (see hakmem.h). */
HAK_API void hak_tiny_free(void *p);

/* The bytes usable at p (>= the size asked for); 0 for NULL. */
HAK_API size_t hak_tiny_usable_size(const void *p);

/* true if p lies in memory of the tiny tier (a few instructions, never
 * reads memory that is not hakmem's). */
HAK_API bool hak_tiny_owns(const void *p);

/* The largest request served. */
HAK_API size_t hak_tiny_max_size(void);

/* Return the calling thread's cached blocks and every empty slab and
 * SuperSlab to the OS. */
HAK_API void hak_tiny_trim(void);

/* Arena backend: carve all memory from buf[0..len) (any alignment; at
 * least 4 KiB). Returns 0, or -1 with EINVAL (bad buffer, or not the arena
 * build: ENOSYS). Call once, before the first allocation. */
HAK_API int hak_tiny_init_arena(void *buf, size_t len);

/* Validation reports (validation=full, and magic where it checks): the
 * handler receives the entry point ("free", "realloc", ...), the reason
 * ("double free", "invalid pointer ...") and the address. The default
 * writes "hakmem: free(): double free at 0x..." to stderr without
 * allocating and aborts (the arena build has no stderr: it traps, so
 * an embedded program sets its own). A handler that returns makes the call a no-op
 * (tests count reports this way). Returns the previous handler. */
typedef void (*hak_failure_fn)(const char *op, const char *reason, const void *p);
HAK_API hak_failure_fn hak_set_failure_handler(hak_failure_fn fn);

typedef struct hak_tiny_stats {
    size_t superslabs;       /* SuperSlabs mapped */
    size_t slabs_in_use;     /* slabs bound to a class */
    size_t bytes_mapped;     /* bytes of SuperSlabs mapped */
    size_t bytes_committed;  /* of which not decommitted */
    size_t refills;          /* batches moved central -> thread cache */
    size_t drains;           /* batches moved thread cache -> central */
    size_t spills;           /* blocks returned to their slab */
    size_t slab_releases;    /* slabs emptied and decommitted */
    size_t ss_unmaps;        /* SuperSlabs unmapped */
    size_t thread_caches;    /* threads with a live cache (after a fork: the forking one) */
} hak_tiny_stats_t;

HAK_API void hak_tiny_get_stats(hak_tiny_stats_t *out);

#ifdef __cplusplus
}
#endif

#endif
