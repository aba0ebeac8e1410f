// SPDX-License-Identifier: MIT
/* dispatch.h - the internal interface of src/dispatch, shared by its
 * files: dispatch.c (the entry points, the free chain), sysalloc.c (the
 * system-allocator fallback), env.c (the runtime options), stats.c
 * (statistics, traces and reports) and glibc_api.c (glibc's
 * introspection API); tiers.h has the tiers' descriptors. */
#ifndef HAK_DISPATCH_H
#define HAK_DISPATCH_H

#include <stddef.h>
#include <stdint.h>

#include "hak_platform.h"
#include "hakmem/hakmem.h"

#ifndef HAK_HAVE_TINY
#define HAK_HAVE_TINY 0
#endif
#ifndef HAK_HAVE_MID
#define HAK_HAVE_MID 0
#endif
#ifndef HAK_HAVE_L25
#define HAK_HAVE_L25 0
#endif
#ifndef HAK_HAVE_LARGE
#define HAK_HAVE_LARGE 0
#endif

#define HAK_MID_MAX ((size_t)32 << 10) /* mid: above tiny, up to 32 KiB */
#define HAK_L25_MAX ((size_t)1 << 20)  /* L25: above 32 KiB, up to 1 MiB */

/* ------------------------------------------------ system fallback (sysalloc.c)
 * Blocks of sizes whose tier is left out of the build come from the system
 * allocator (glibc's malloc, found with dlsym(RTLD_NEXT)) behind a 16-byte
 * AllocHeader with method = malloc. */
void *hak_sys_alloc_(size_t size, size_t align) HAK_INTERNAL;
/* true if p is a live fallback block (registry at full, header probe
 * guarded by the hybrid readability check below full). */
int hak_sys_owns_(const void *p) HAK_INTERNAL;
void hak_sys_free_(void *p) HAK_INTERNAL;
size_t hak_sys_usable_(const void *p) HAK_INTERNAL;

/* glibc's own functions, for foreign pointers (validation below full). */
void hak_real_free_(void *p) HAK_INTERNAL;
void *hak_real_realloc_(void *p, size_t size) HAK_INTERNAL;
size_t hak_real_usable_(void *p) HAK_INTERNAL;
void *hak_real_malloc_(size_t size) HAK_INTERNAL;
void hak_resolve_real_(void) HAK_INTERNAL;

/* ------------------------------------------------------ options (env.c) */
typedef struct hak_env {
    int stats, size_hist, mem_trace, verbose;
    char stats_file[4096]; /* HAKMEM_STATS_FILE, copied at load ("": stderr) */
    uint64_t pid;          /* the process that read them (a forked child reports nothing) */
    uint64_t err_id;       /* stderr at load: reports are written only to it */
} hak_env_t;
extern hak_env_t hak_env_ HAK_INTERNAL;
/* "hakmem: ignoring NAME: WHY" on stderr. */
void hak_env_warn_(const char *name, const char *why) HAK_INTERNAL;
/* Requested-size tracing (HAKMEM_SIZE_HIST / HAKMEM_MEM_TRACE): nonzero
 * when any per-request hook is on; tested once per call. */
extern int hak_trace_on_ HAK_INTERNAL;
/* The front end's thresholds, moved out of reach while tracing is on (one
 * cache line): malloc serves size < small_limit from the thread's bins
 * (the size's kind from one table), free serves a pointer whose page kind
 * k has k - 1 < nkinds (a class of a tier that shares the front end).
 * 0 and 0 send every call to the slow paths. */
typedef struct hak_fast {
    size_t small_limit;
    size_t nkinds;
} __attribute__((aligned(64))) hak_fast_t;
extern hak_fast_t hak_fast_ HAK_INTERNAL;
/* The largest request the front end serves (0: neither tiny nor mid is
 * built, HAK_SMALL_BUILT 0). */
#define HAK_SMALL_BUILT (HAK_HAVE_TINY || HAK_HAVE_MID)
#if HAK_HAVE_MID
#define HAK_SMALL_MAX HAK_MID_MAX
#elif HAK_HAVE_TINY
#define HAK_SMALL_MAX HAK_TINY_MAX_SIZE
#else
#define HAK_SMALL_MAX 0
#endif
/* The per-request traces (stats.c). */
void hak_trace_alloc_(size_t req, void *p) HAK_INTERNAL;
void hak_trace_free_(void *p) HAK_INTERNAL;
/* A block of `old_usable` bytes was resized where it lies (realloc within
 * the large tier): one free of the old block, one request of req bytes at q. */
void hak_trace_realloc_(size_t old_usable, size_t req, void *q) HAK_INTERNAL;
/* The usable bytes of the live blocks the trace has seen. */
uint64_t hak_trace_live_usable_(void) HAK_INTERNAL;
void hak_env_init_(void) HAK_INTERNAL;

#endif
