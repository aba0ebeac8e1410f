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

#include "hak_front.h"
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
/* The per-request hooks that are on: HAK_HOOK_TRACE (requested-size
 * tracing: HAKMEM_SIZE_HIST, HAKMEM_MEM_TRACE) and HAK_HOOK_PROF (the
 * heap profiler: HAKMEM_PROF). Tested once per slow-path call; while any
 * is on, hak_fast_ sends every request to the slow path. */
#define HAK_HOOK_TRACE 1
#define HAK_HOOK_PROF  2
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
/* Move the fast paths' thresholds out of reach and turn hook `bit` on. */
void hak_hooks_enable_(int bit) HAK_INTERNAL;

/* ------------------------------------------------ the malloc gate
 * A per-thread signed count (hak_front.h, HAK_FRONT_GATE) that malloc's
 * slow path decrements by every request: at zero or below, the request
 * goes to the hooks (malloc_hooked). While profiling alone is on it is
 * the profiler's count (the bytes left to the next sample); at any other
 * time it stays at or below zero: with no hook on, the requests that take
 * the slow path (those past the front end's sizes) test the hook word once
 * more; while tracing is on, every request is the hooks', and the
 * profiler, if on too, counts in hak_prof_left_ instead. A new thread's
 * gate is 0, so its first slow-path request goes to the hooks. */
/* Take req from the gate; true if it ran out. The gate holds the count
 * negated, below zero while bytes are left: it runs out when it reaches
 * zero or above, so that a new thread's 0 runs out at once, whatever the
 * size. Two's complement: a request past PTRDIFF_MAX wraps it, and the
 * caller's ENOMEM path puts it back with hak_gate_add_. */
HAK_INLINE bool hak_gate_take_(size_t req)
{
    hak_front_bin_t g = hak_front_bin(HAK_FRONT_GATE);
    int64_t v = (int64_t)((uint64_t)g->gate + (uint64_t)req);
    g->gate = v;
    return v >= 0;
}
HAK_INLINE void hak_gate_add_(size_t req) { (void)hak_gate_take_((size_t)0 - req); }
/* The bytes left (the count), and set it. */
HAK_INLINE int64_t hak_gate_get_(void) { return -hak_front_bin(HAK_FRONT_GATE)->gate; }
HAK_INLINE void hak_gate_set_(int64_t left) { hak_front_bin(HAK_FRONT_GATE)->gate = -left; }
#define HAK_GATE_CLOSED 0 /* no bytes left: every slow-path request to the hooks */

/* ------------------------------------------------ heap profiler (prof.c)
 * Sampling: while profiling is on, every malloc takes the slow path (the
 * fast paths' size limits are moved out of reach), which counts down the
 * bytes each thread requests (the gate above, or hak_prof_left_ while
 * tracing is on too); when the count runs out the request is sampled:
 * hak_prof_alloc_ serves it from the large tier (or the system fallback),
 * records its stack and draws the next count from an exponential
 * distribution of mean HAKMEM_PROF_RATE. A sampled block is
 * never in a tiny or mid chunk, so free's fast path stays as it is: only
 * frees that reach free_slow's last branch (large, system, foreign) ask a
 * bitmap of hashed sampled addresses (hak_prof_maybe_, one load), and on a
 * hit the table of live samples. */
extern __thread int64_t hak_prof_left_ HAK_INTERNAL;
#define HAK_PROF_FILTER_BITS 16
extern uint64_t hak_prof_filter_[((size_t)1 << HAK_PROF_FILTER_BITS) / 64] HAK_INTERNAL;
HAK_INLINE unsigned hak_prof_hash_(const void *p)
{
    return (unsigned)((((uintptr_t)p >> 4) * 0x9E3779B97F4A7C15ull) >> (64 - HAK_PROF_FILTER_BITS));
}
HAK_INLINE bool hak_prof_maybe_(const void *p)
{
    unsigned h = hak_prof_hash_(p);
    return (__atomic_load_n(&hak_prof_filter_[h >> 6], __ATOMIC_RELAXED) >> (h & 63)) & 1;
}
/* The thread's count ran out (at zero or below): true if this request of
 * req bytes is to be sampled (false for the thread's first count, which
 * starts at this request, and inside the sampler itself). Redraws the
 * count. */
bool hak_prof_decide_(size_t req) HAK_INTERNAL;
/* Is this request (any hook on, or none) to be sampled? Counts it. */
HAK_INLINE bool hak_prof_due_(size_t req)
{
    int on = hak_trace_on_;
    if (!(on & HAK_HOOK_PROF))
        return false;
    bool out;
    if (on & HAK_HOOK_TRACE)
        out = (hak_prof_left_ -= (int64_t)req) <= 0;
    else
        out = hak_gate_take_(req);
    return HAK_UNLIKELY(out) && hak_prof_decide_(req);
}
/* A sampled request: served by the large tier (or the system fallback),
 * its stack recorded. NULL if that memory cannot be had (the caller then
 * serves the request as usual, unsampled). */
void *hak_prof_alloc_(size_t req, size_t align) HAK_INTERNAL;
/* Record a sampled request already served from memory whose free reaches
 * free_slow's last branch (a large block). */
void hak_prof_record_(size_t req, void *p) HAK_INTERNAL;
/* p is being freed: out of the live samples (if it is one: true). */
bool hak_prof_free_(void *p) HAK_INTERNAL;
/* For a block that realloc moves in the large tier: its sample taken out
 * before (true if it had one), and put back if the realloc failed. */
typedef struct hak_prof_sample {
    uintptr_t ptr;
    size_t size;
    struct bucket *bucket;
} hak_prof_sample_t;
bool hak_prof_take_(void *p, hak_prof_sample_t *out) HAK_INTERNAL;
void hak_prof_put_back_(const hak_prof_sample_t *s) HAK_INTERNAL;
/* Start profiling (at load, from the options): 0, or -1 if the profiler's
 * tables could not be mapped. */
int hak_prof_start_(const char *path, uint64_t rate, uint64_t interval, bool leaks) HAK_INTERNAL;
/* The exit profile (the report destructor). */
void hak_prof_exit_(void) HAK_INTERNAL;

/* The functions on the stack between the program and the sampler (the
 * allocation entry points, their slow paths, the sampler): one section,
 * whose bounds tell the sampler which leading frames are hakmem's own. */
#define HAK_ALLOC_SECTION __attribute__((section("hak_alloc")))
extern const char __start_hak_alloc[] HAK_INTERNAL;
extern const char __stop_hak_alloc[] HAK_INTERNAL;

#endif
