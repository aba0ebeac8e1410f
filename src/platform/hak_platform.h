// SPDX-License-Identifier: MIT
/* hak_platform.h - the only interface between hakmem and the operating system.
 *
 * Contract (every function below):
 *   - sizes are in bytes; `size` arguments of the memory calls are multiples
 *     of hak_os_page_size() unless stated otherwise;
 *   - functions returning int return 0 on success, -1 on failure;
 *   - errno is preserved by every call that succeeds and by the release/
 *     decommit calls even when they fail (free() must keep errno);
 *   - nothing here allocates with malloc, so every call is safe from inside
 *     the allocator, including its failure paths.
 *
 * Two backends implement it (Meson option `platform`):
 *   posix  mmap/munmap/madvise/mincore, pthread keys and atfork, rdtsc;
 *   arena  one caller-supplied buffer (hak_platform_arena_init); no OS call,
 *          no thread support; hak_os_map carves the buffer, unmapping is a
 *          no-op, the thread hooks do nothing.
 *
 * The page map (hak_page_kind, hak_chunk_tag) says which tier owns each
 * aligned 2 MiB chunk of the address space, and which size class each of
 * its 64 KiB pages holds. It is what "ownership proven by address" means
 * for tiny, mid and L25: a tier tags the chunks it maps and clears the tag
 * before it unmaps them. Lookup is a few instructions and never touches
 * memory that is not hakmem's own metadata; free finds a small block's
 * class with that one lookup.
 */
#ifndef HAK_PLATFORM_H
#define HAK_PLATFORM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hak_config.h"

#define HAK_LIKELY(x)   __builtin_expect(!!(x), 1)
#define HAK_UNLIKELY(x) __builtin_expect(!!(x), 0)
#define HAK_NOINLINE    __attribute__((noinline))
#define HAK_COLD        __attribute__((cold, noinline))
#define HAK_INLINE      static inline __attribute__((always_inline))
#define HAK_INTERNAL    __attribute__((visibility("hidden")))

/* ---------------------------------------------------------------- memory */

/* The page size, in bytes (a power of two; 4096 on x86-64 Linux). */
size_t hak_os_page_size(void);

/* Map `size` bytes of zeroed, read-write memory aligned to `align` (a power
 * of two, at least the page size). Returns NULL and sets errno (ENOMEM) on
 * failure. The posix backend over-maps and trims; the arena backend carves
 * its buffer and fails when it is exhausted. */
void *hak_os_map(size_t size, size_t align);

/* Give a mapping (or a page-aligned part of one) back to the OS. */
int hak_os_unmap(void *p, size_t size);

/* Decommit: the pages stay mapped but their contents are dropped now and
 * read back as zero (MADV_DONTNEED): RSS falls immediately. */
int hak_os_decommit(void *p, size_t size);

/* Lazy purge: the kernel may take the pages when it needs memory
 * (MADV_FREE); RSS (VmRSS) still counts them until it does. */
int hak_os_purge_lazy(void *p, size_t size);

/* Grow or shrink a mapping in place or by moving it (mremap). Returns the
 * new address, or NULL with errno set; `may_move` false keeps the address. */
void *hak_os_remap(void *p, size_t old_size, size_t new_size, bool may_move);

/* Total bytes currently mapped through hak_os_map (minus unmapped) and the
 * bytes decommitted inside those mappings: committed = mapped - decommitted.
 * Updated with relaxed atomics; used by stats and tests. */
size_t hak_os_mapped_bytes(void);
size_t hak_os_committed_bytes(void);
/* The highest hak_os_committed_bytes() since load. Recorded before every
 * unmap and decommit (where the committed bytes fall) and compared with
 * the current value when read; hak_os_note_decommit, which follows a
 * fresh mapping's untouched pages, records nothing (the mapping's
 * untouched part was never committed). */
size_t hak_os_committed_peak_bytes(void);
/* *peak = max(*peak, v), racy by design (relaxed): for the tiers' own
 * peaks of committed bytes, noted as the platform's before they fall. */
HAK_INLINE void hak_peak_note(size_t *peak, size_t v)
{
    size_t p = __atomic_load_n(peak, __ATOMIC_RELAXED);
    while (v > p && !__atomic_compare_exchange_n(peak, &p, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}
/* A tier reports pages it recommits (reuses after hak_os_decommit, or
 * touches for the first time after hak_os_note_decommit). */
void hak_os_note_recommit(size_t size);
/* A tier reports mapped pages it has not touched yet (fresh from
 * hak_os_map): they count as not committed until hak_os_note_recommit. */
void hak_os_note_decommit(size_t size);

/* --------------------------------------------------------- readability */

/* true if the page holding `p` is mapped (mincore). Note the limit: mincore
 * says "mapped", not "readable": a PROT_NONE page is reported as mapped.
 * Costs a system call (several hundred cycles). */
bool hak_is_memory_readable(const void *p);

/* Copy n bytes from src to dst if all of them can be read, without ever
 * faulting (PROT_NONE and unmapped pages included): true if copied. A
 * system call (posix: process_vm_readv on the process itself; mincore and
 * a plain copy where that call is refused). For the rare reads of memory
 * that may have gone away under hakmem (a registry's view of another
 * thread's TLS). */
bool hak_os_read(void *dst, const void *src, size_t n);

/* The hybrid check of the seed design: true if the `width` bytes before `p`
 * can be read without faulting, assuming `p` itself points into a mapped
 * page. When p's page offset is at least `width`, the bytes lie on p's own
 * page and no system call is made; otherwise the previous page is asked
 * with mincore. */
HAK_INLINE bool hak_header_readable(const void *p, size_t width)
{
    extern size_t hak_platform_page_mask_;
    if (HAK_LIKELY(((uintptr_t)p & hak_platform_page_mask_) >= width))
        return true;
    return hak_is_memory_readable((const char *)p - width);
}

/* ----------------------------------------------------------- the page map */

#define HAK_CHUNK_SHIFT 21                       /* 2 MiB */
#define HAK_CHUNK_SIZE  ((size_t)1 << HAK_CHUNK_SHIFT)
#define HAK_PAGE_SHIFT  16                       /* 64 KiB: a slab, a pool page */
#define HAK_CHUNK_PAGES (HAK_CHUNK_SIZE >> HAK_PAGE_SHIFT)

enum {
    HAK_TAG_NONE = 0,
    HAK_TAG_TINY = 1,
    HAK_TAG_MID  = 2,
    HAK_TAG_L25  = 3,
};

/* Page kinds: one byte per 64 KiB page of the chunks hakmem maps for small
 * blocks. A page that holds blocks of a size class has that class's global
 * index, one index space for the tiers that share the front end
 * (hak_front.h): tiny classes, then mid, then L25. Other pages of an owned
 * chunk (a header, a free slab or page) say only which tier owns them
 * (HAK_KIND_OWNED), and the pages of a span whose frees must take its
 * tier's slow path (it handed out an over-aligned interior pointer) say
 * HAK_KIND_SLOW. 0: not hakmem's. */
#define HAK_KIND_TINY0   1u                      /* tiny class c: 1 + c (at most 32) */
#define HAK_KIND_MID0    33u                     /* mid class c: 33 + c (at most 50) */
#define HAK_KIND_L250    83u                     /* L25 class c: 83 + c (at most 40) */
#define HAK_KIND_NSMALL  123u                    /* kinds below this are classes (but 0) */
#define HAK_KIND_SLOW(tag)  (0xE0u | (tag))
#define HAK_KIND_OWNED(tag) (0xF0u | (tag))

/* The tier (HAK_TAG_*) of a page kind. */
extern const uint8_t hak_kind_tier_[256] HAK_INTERNAL;

/* Level 1 covers 47-bit user addresses: index = addr >> 33, each level-2
 * table (one byte per 64 KiB page: 128 KiB) covers 8 GiB and is mapped the
 * first time a chunk in its range is tagged; only the pages of it that
 * describe owned chunks are ever written. */
#define HAK_PAGEMAP_L2_SHIFT (33 - HAK_PAGE_SHIFT)
#define HAK_PAGEMAP_L1_SHIFT 33
#define HAK_PAGEMAP_L1_SIZE  ((size_t)1 << (47 - HAK_PAGEMAP_L1_SHIFT))

#if HAK_PLATFORM_ARENA
extern uintptr_t hak_arena_lo_, hak_arena_hi_;
extern uint8_t hak_arena_tag_;
/* The arena backend has one tier in one buffer: a kind per tier only. */
HAK_INLINE unsigned hak_page_kind(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return (a - hak_arena_lo_ < hak_arena_hi_ - hak_arena_lo_) ? HAK_KIND_OWNED(hak_arena_tag_) : 0;
}
#else
extern uint8_t *hak_pagemap_l1_[HAK_PAGEMAP_L1_SIZE];
/* The kind of the 64 KiB page holding `p` (HAK_KIND_*, 0: not hakmem's). */
HAK_INLINE unsigned hak_page_kind(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    uintptr_t i = a >> HAK_PAGEMAP_L1_SHIFT; /* past the table: not a user address */
    if (HAK_UNLIKELY(i >= HAK_PAGEMAP_L1_SIZE))
        return 0;
    const uint8_t *l2 = __atomic_load_n(&hak_pagemap_l1_[i], __ATOMIC_ACQUIRE);
    if (HAK_UNLIKELY(l2 == NULL))
        return 0;
    /* relaxed atomic: a page's kind changes (a span formed, a chunk
     * retagged by another thread) concurrently with lookups (TSan; same
     * movzbl) */
    return __atomic_load_n(&l2[(a >> HAK_PAGE_SHIFT) & (((size_t)1 << HAK_PAGEMAP_L2_SHIFT) - 1)],
                           __ATOMIC_RELAXED);
}
#endif

/* The tier that owns the 2 MiB chunk holding `p` (HAK_TAG_*). */
HAK_INLINE unsigned hak_chunk_tag(const void *p) { return hak_kind_tier_[hak_page_kind(p)]; }

/* Tag every 2 MiB chunk of [base, base+size) (base and size chunk-aligned):
 * each of its pages gets kind HAK_KIND_OWNED(tag) (0 for HAK_TAG_NONE).
 * Returns 0, or -1 with ENOMEM if a level-2 table could not be mapped. */
int hak_chunk_set_tag(void *base, size_t size, unsigned tag);

/* Set the kind of n pages from the page holding p (all in one chunk that
 * hak_chunk_set_tag tagged). */
void hak_page_set_kind(const void *p, unsigned n, unsigned kind);

/* -------------------------------------------------------------- the arena */

/* Arena backend only: hand the platform its one buffer (any alignment and
 * size). Returns 0, or -1 with EINVAL if the buffer is NULL or too small to
 * hold one page. Subsequent hak_os_map calls carve it. */
int hak_platform_arena_init(void *buf, size_t len);

/* A random word, different in every process (the kernel's AT_RANDOM bytes
 * mixed with the cycle counter and an address; the arena backend, with no
 * OS, mixes the counter and addresses only). For hardening keys. */
uint64_t hak_random_word(void);

/* ------------------------------------------------------------------ time */

/* A cycle counter: rdtsc on x86-64, clock_gettime(CLOCK_MONOTONIC) ns
 * elsewhere. Only differences are meaningful. */
uint64_t hak_cycles(void);

/* Milliseconds of a monotonic clock that is cheap to read (posix:
 * CLOCK_MONOTONIC_COARSE, through the vDSO; a few ms of resolution). The
 * arena backend has no clock: always 0. */
uint64_t hak_os_clock_ms(void);

/* ---------------------------------------------------------------- threads */

/* Thread-exit hooks: every component with per-thread state registers one
 * function (at most 8; registering twice is a no-op) with
 * hak_thread_exit_register; a thread that has set such state calls
 * hak_thread_exit_arm() once, and when it exits every registered function
 * runs (in registration order) from a pthread key destructor. The functions
 * use their own TLS, which is still valid then; they must mark their state
 * dead so that allocator calls made after them (other destructors, glibc's
 * frees after the last destructor round) take a path with no cache.
 * A key armed during the last of glibc's PTHREAD_DESTRUCTOR_ITERATIONS
 * rounds (a thread's first allocation made there) runs no destructor: that
 * thread exits with its state live, which the registries of thread caches
 * survive (hak_tcache_registry.h).
 * Both return 0 or -1. No-ops in the arena backend. */
int hak_thread_exit_register(void (*fn)(void));
int hak_thread_exit_arm(void);

/* A small identifier of the calling thread, unique among live threads (the
 * address of its TLS block). */
uintptr_t hak_thread_id(void);

/* Fork participants. Every component that holds locks registers one; the
 * platform installs a single pthread_atfork handler on first registration
 * (so that all hakmem locks are taken together, then the forking thread is
 * made their pass-through owner; see hak_lock_fork_begin). prepare runs in
 * registration order, parent and child in reverse. At most 8 participants;
 * registering the same ops twice is a no-op. Returns once a fork would run
 * the participant (another thread installing the atfork handler is waited
 * for), so a component registers before it publishes its init. Returns 0
 * or -1. */
typedef struct hak_fork_ops {
    void (*prepare)(void); /* take every lock of the component */
    void (*parent)(void);  /* release them */
    void (*child)(void);   /* reinitialise them; adopt state of dead threads */
} hak_fork_ops_t;
int hak_fork_register(const hak_fork_ops_t *ops);

/* --------------------------------------------------------------- failures */

/* Validation reports. `op` names the entry point ("free", "realloc", ...),
 * `reason` the fault ("double free", "invalid pointer", ...). The default
 * handler writes "hakmem: OP(): REASON at 0xADDR" to stderr without
 * allocating and aborts; tests inject their own (which may return, and the
 * caller then leaves the block alone). */
typedef void (*hak_failure_handler_t)(const char *op, const char *reason, const void *p);
void hak_report_failure(const char *op, const char *reason, const void *p);
__attribute__((visibility("default"))) hak_failure_handler_t hak_set_failure_handler(hak_failure_handler_t fn);

/* ------------------------------------------------------------------ locks */

/* A lock that is not a pthread mutex (usable before libpthread is ready, in
 * the arena backend, and from fork handlers). v: 0 free, 1 held, 2 held
 * and maybe waited for. A waiter spins briefly, then sleeps in the kernel
 * (futex, posix backend: a holder may be inside mmap or madvise, or
 * preempted, and spinning or sched_yield would burn the CPU it needs);
 * the arena backend only spins. While a fork is in progress the forking
 * thread, which holds every hakmem lock, passes through all of them (see
 * hak_lock_fork_begin), so that another library's prepare handler that
 * calls malloc after hakmem's cannot deadlock it. */
typedef struct { int v; } hak_lock_t;
#define HAK_LOCK_INIT { 0 }

extern uintptr_t hak_lock_fork_owner_;
void hak_lock_slow_(hak_lock_t *l);
/* Wake one sleeper of a lock whose v was 2 (posix: futex wake). */
void hak_lock_wake_(hak_lock_t *l);

HAK_INLINE bool hak_lock_fork_pass_(void)
{
    return HAK_UNLIKELY(__atomic_load_n(&hak_lock_fork_owner_, __ATOMIC_RELAXED) != 0) &&
           __atomic_load_n(&hak_lock_fork_owner_, __ATOMIC_RELAXED) == hak_thread_id();
}

HAK_INLINE bool hak_lock_try0_(hak_lock_t *l)
{
    int expect = 0;
    return __atomic_compare_exchange_n(&l->v, &expect, 1, false, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED);
}

HAK_INLINE void hak_lock(hak_lock_t *l)
{
    if (hak_lock_fork_pass_())
        return;
    if (HAK_UNLIKELY(!hak_lock_try0_(l)))
        hak_lock_slow_(l);
}

HAK_INLINE bool hak_trylock(hak_lock_t *l)
{
    if (hak_lock_fork_pass_())
        return true;
    return __atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 && hak_lock_try0_(l);
}

HAK_INLINE void hak_unlock(hak_lock_t *l)
{
    if (hak_lock_fork_pass_())
        return;
#if HAK_PLATFORM_ARENA
    __atomic_store_n(&l->v, 0, __ATOMIC_RELEASE); /* nobody sleeps: no 2 */
#else
    if (HAK_UNLIKELY(__atomic_exchange_n(&l->v, 0, __ATOMIC_RELEASE) == 2))
        hak_lock_wake_(l);
#endif
}

/* Take l; true if another thread held it (a thread cache that waited may
 * grow its bound: hak_bound_grow). */
HAK_INLINE bool hak_lock_contended(hak_lock_t *l)
{
    if (hak_trylock(l))
        return false;
    hak_lock(l);
    return true;
}

/* Add v to a statistics counter written only under a lock (kept in that
 * lock's cache line) and read without it. */
#define HAK_COUNT_LOCKED(c, v) __atomic_store_n(&(c), __atomic_load_n(&(c), __ATOMIC_RELAXED) + (v), __ATOMIC_RELAXED)

/* The thread caches' growth rule (tiny tier and pools; docs/design.md):
 * a refill or drain that found its class lock taken counts one event in
 * *events; every HAK_GROW_EVENTS events double the bin's bound `max`, up
 * to HAK_GROW_MAX times its starting bound, while the sum of the thread's
 * bounds (*bound_bytes) stays within `budget`. Returns the new bound. */
#define HAK_GROW_EVENTS 4
#define HAK_GROW_MAX    4
HAK_INLINE uint32_t hak_bound_grow(uint8_t *events, uint32_t max, uint32_t start, size_t stride,
                                   size_t *bound_bytes, size_t budget)
{
    if (++*events < HAK_GROW_EVENTS)
        return max;
    *events = 0;
    uint32_t grown = max * 2;
    size_t more = (size_t)(grown - max) * stride;
    if (grown > start * HAK_GROW_MAX || *bound_bytes + more > budget)
        return max;
    *bound_bytes += more;
    return grown;
}

/* The other growth rule (tiny tier and pools; docs/design.md): a bin that
 * swings between empty and full grows. A refill after a drain, or a drain
 * after a refill, counts one in *swing (dir: 0 refill, 1 drain; the last
 * direction in its top bit); every HAK_SWING_EVENTS the bound `max`
 * doubles, up to `cap` blocks, while the bytes the thread's bounds grew by
 * (*bytes) stay within `budget`. A bin whose frees and mallocs balance (a
 * steady working set) sees its events alternate and grows, so that it goes
 * to its central list less often (a trip there moves the list's line
 * between cores and walks blocks that are cold by then). So does a bin
 * that bursts fill and empty, while its bound is under
 * HAK_SWING_BURST_BYTES: a burst of blocks allocated and freed again is
 * then held by the bin that takes it, as it is in a thread cache that
 * keeps everything. From that size on, two events in the same direction
 * take one off: a bin of large blocks grows only where its refills and
 * drains alternate more often than they repeat, since there a burst is
 * memory traffic more than trips, and blocks held in one class's bin are
 * blocks the other classes cannot have (peak RSS). `bound` is the bin's
 * bound in bytes. hak_swing_event counts the event and says whether the
 * bound should double now; hak_swing_grow returns the doubled bound, or
 * `max` when that would pass `cap` or the budget. */
#define HAK_SWING_EVENTS 4
#define HAK_SWING_BURST_BYTES ((size_t)128 << 10)
HAK_INLINE bool hak_swing_event(uint8_t *swing, unsigned dir, size_t bound)
{
    unsigned s = *swing, n = s & 0x7Fu;
    bool grow = false;
    if ((s >> 7) == dir) {
        n -= n > 0 && bound >= HAK_SWING_BURST_BYTES;
    } else if (++n >= HAK_SWING_EVENTS) {
        n = 0;
        grow = true;
    }
    *swing = (uint8_t)(dir << 7 | n);
    return grow;
}

HAK_INLINE uint32_t hak_swing_grow(uint32_t max, uint32_t cap, size_t stride, size_t *bytes, size_t budget)
{
    size_t more = (size_t)max * stride;
    if (max * 2 > cap || *bytes + more > budget)
        return max;
    *bytes += more;
    return max * 2;
}

/* Fork protocol: the prepare handler takes every lock with hak_lock, then
 * calls hak_lock_fork_begin(); from then on hak_lock/hak_unlock by the
 * forking thread pass through. Parent and child call hak_lock_fork_end()
 * first, then release (parent) or reinitialise (child) the locks. */
void hak_lock_fork_begin(void);
void hak_lock_fork_end(void);

/* --------------------------------------------------------------- output */

/* Write a string to stderr with write(2): no allocation, no stdio. */
void hak_write_err(const char *s);
/* What fd 2 is (device and inode folded into one word), 0 if it is closed
 * (or the arena backend): reports check it has not changed since load. */
uint64_t hak_os_err_id(void);
/* The process id, and its resident bytes (/proc/self/statm; 0 if unknown). */
uint64_t hak_os_pid(void);
size_t hak_os_rss_bytes(void);
/* Format helpers for allocation-free reports (decimal and hex). Return the
 * number of characters written into buf (which must hold 24 bytes). */
size_t hak_fmt_u64(char *buf, uint64_t v);
size_t hak_fmt_hex(char *buf, uint64_t v);

/* Read an environment variable without allocating, before or after libc's
 * constructors (reads /proc/self/environ's copy: environ). NULL if absent
 * or if the process is setuid/setgid (AT_SECURE). */
const char *hak_getenv(const char *name);
/* The i-th "NAME=VALUE" string of the environment (from 0), NULL past the
 * last one, and always NULL where hak_getenv would be (setuid/setgid, the
 * arena backend). Does not allocate. */
const char *hak_env_at(size_t i);

/* The path of the file hakmem's code was loaded from (libhakmem.so, or the
 * program it is linked into), from dladdr: NULL if unknown. Does not
 * allocate (glibc's dladdr reads the loader's tables). */
const char *hak_os_self_path(void);

/* Report files, without malloc or stdio. hak_os_open_report opens
 * `pattern` for writing (created 0644, truncated; O_CLOEXEC) with every
 * "%p" replaced by the process id and "%%" by "%": the fd, or minus the
 * reason (-errno of open(2), -ENAMETOOLONG for a name longer than 4095
 * bytes; errno itself kept) if it cannot be opened.
 * hak_os_write_fd writes a whole string (retrying short writes and
 * EINTR); hak_os_close_fd closes. errno is preserved. The arena backend
 * has no files: -1, and no-ops. */
int hak_os_open_report(const char *pattern);
void hak_os_write_fd(int fd, const char *s);
void hak_os_close_fd(int fd);

/* For the heap profiler (posix backend only; platform_prof.c).
 * hak_os_backtrace stores the return addresses of the calling thread's
 * stack, innermost first, after skipping `skip` frames (its own is never
 * stored), at most `max` (and at most 77 - skip); returns how many.
 * libgcc's unwinder, linked, behind a cache of its results on x86-64
 * (platform_prof.c): no malloc, no dlopen, no lock of hakmem's. hak_os_copy_maps writes
 * /proc/self/maps to fd: 0, or -1 if it cannot be read or written. Both
 * keep errno. */
int hak_os_backtrace(void **frames, int max, int skip);
/* The calling thread's hak_os_backtrace calls so far, and how many of
 * them libgcc walked (the others took the cached walk; for the tests). */
void hak_os_backtrace_counts_(unsigned *walks, unsigned *libgcc);
int hak_os_copy_maps(int fd);

/* Abort the process (raise SIGABRT) without allocating. */
__attribute__((noreturn)) void hak_abort(void);

#endif /* HAK_PLATFORM_H */
