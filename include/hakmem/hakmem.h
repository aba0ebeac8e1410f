// SPDX-License-Identifier: MIT
/* hakmem/hakmem.h - the whole public API of hakmem.
 *
 * libhakmem.so and libhakmem.a export the C allocation functions with
 * glibc 2.36's semantics (malloc, free, calloc, realloc, reallocarray,
 * posix_memalign, aligned_alloc, memalign, valloc, pvalloc,
 * malloc_usable_size, malloc_trim, mallinfo, mallinfo2, mallopt,
 * malloc_stats, malloc_info, cfree and the __libc_* aliases), C23's
 * free_sized and free_aligned_sized (declared here: glibc 2.36 lacks them),
 * and the hak_ functions below. Link it, or load it with
 * LD_PRELOAD=libhakmem.so.
 */
#ifndef HAKMEM_H
#define HAKMEM_H

#include <stdbool.h>
#include <stddef.h>

#include "hakmem/tiny.h"
#include "hakmem/version.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The allocation entry points, callable under any name: malloc and
 * hak_malloc are the same function. */
HAK_API void *hak_malloc(size_t size);
HAK_API void hak_free(void *p);
HAK_API void *hak_calloc(size_t n, size_t size);
HAK_API void *hak_realloc(void *p, size_t size);
HAK_API void *hak_memalign(size_t align, size_t size);
HAK_API int hak_posix_memalign(void **out, size_t align, size_t size);
HAK_API void *hak_aligned_alloc(size_t align, size_t size);
HAK_API void *hak_reallocarray(void *p, size_t n, size_t size);
HAK_API void *hak_valloc(size_t size);
HAK_API void *hak_pvalloc(size_t size);
HAK_API size_t hak_usable_size(const void *p);
/* Give every empty page back to the OS; 1 if memory was released. */
HAK_API int hak_trim(size_t pad);

/* C23 (not in glibc 2.36). */
HAK_API void free_sized(void *p, size_t size);
HAK_API void free_aligned_sized(void *p, size_t align, size_t size);

/* Which tier serves (or owns) what. */
enum hak_tier_id { HAK_TIER_NONE = 0, HAK_TIER_TINY, HAK_TIER_MID, HAK_TIER_L25, HAK_TIER_LARGE, HAK_TIER_SYSTEM };
/* The tier that owns p (HAK_TIER_NONE for memory of none). */
HAK_API int hak_owner(const void *p);
/* The tier a request of `size` bytes goes to in this build. */
HAK_API int hak_tier_for(size_t size);

/* Statistics: what the allocator holds, by tier. New fields are only ever
 * added at the end; `size` says how much of the structure was filled. */
typedef struct hak_stats {
    size_t size;          /* bytes of this structure that were filled */
    size_t mapped[6];     /* bytes of address space per tier (index: hak_tier_id) */
    size_t committed[6];  /* of which committed (not decommitted) */
    size_t os_mapped;     /* everything the platform layer has mapped */
    size_t os_committed;
    size_t thread_caches; /* threads with a live tiny cache (0 without the tiny tier) */
    size_t live[6];       /* bytes of live blocks per tier, as mallinfo2's uordblks counts them */
    size_t peak_committed[6]; /* the most committed[t] has been */
    size_t os_peak_committed; /* the most os_committed has been */
    size_t peak_in_use;   /* the most bytes of slabs, spans and large blocks holding live
                             blocks (an upper bound of the peak of live bytes) */
} hak_stats_t;
/* Fill *out (all of it; it takes the tiers' locks for a moment). */
HAK_API void hak_get_stats(hak_stats_t *out);
/* The same for a caller built against another version of this header:
 * fills the first min(size, sizeof(hak_stats_t)) bytes, out->size says
 * how many (pass sizeof *out). */
HAK_API void hak_get_stats_sized(hak_stats_t *out, size_t size);
/* The HAKMEM_STATS table, on stderr, now. */
HAK_API void hak_print_stats(void);
/* The same report through a callback (as mimalloc's mi_stats_print_out or
 * jemalloc's malloc_stats_print): write_cb(arg, text) once per line, text
 * a NUL-terminated line ending in '\n', in a buffer of hakmem's (copy it
 * to keep it). The callback may call malloc. */
HAK_API void hak_stats_print(void (*write_cb)(void *arg, const char *text), void *arg);
/* Give the calling thread's cached free blocks back to the shared lists of
 * every tier, where other threads can take them (a thread that goes idle
 * for long, or before measuring). Nothing goes back to the OS: that is
 * hak_trim / malloc_trim. */
HAK_API void hak_thread_flush(void);

/* The heap profiler (HAKMEM_PROF=path turns it on at start; the options
 * in docs/options.md): write the profile now, in gperftools' heap-profile
 * format (google-pprof --text PROGRAM FILE), to `path` ("%p": the process
 * id). 0; or -1 with errno ENOTSUP if profiling is off, EINVAL for an
 * empty path, or open(2)'s errno if the file cannot be written. */
HAK_API int hak_prof_dump(const char *path);

/* hak_set_failure_handler(): declared in hakmem/tiny.h, included above. */

/* The build options as numbers ("header_classidx=0 class7_header_width=2
 * validation=1 platform=0 stats=0 tls_global_dynamic=0 tiers=..."), for
 * programs that parse them; HAKMEM_VERBOSE=1 prints them in words. */
HAK_API const char *hak_build_options(void);

/* The version of the library loaded ("0.1.0"); HAKMEM_VERSION_STRING is
 * the one the program was compiled against. */
HAK_API const char *hak_version(void);

#ifdef __cplusplus
}
#endif

#endif
