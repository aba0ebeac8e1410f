// SPDX-License-Identifier: MIT
/* stress.c - suite `stress`: threads doing random allocations of every tier
 * through every entry point, with a pattern in every block verified before
 * the block is freed or reallocated, blocks handed to other threads to
 * free, and threads ending and new ones starting (all joined).
 *
 * Built twice (tests/stress/meson.build):
 *   hakmem_stress      links libhakmem.so: malloc, free, ... are hakmem's;
 *   hakmem_stress_hak  -DSTRESS_USE_HAK_API, links libhakmem.a and calls the
 *                      hak_ entry points, so it can run under a sanitizer
 *                      that replaces malloc itself (ASan, TSan).
 *
 *   hakmem_stress [--threads N] [--seconds S | --minutes M] [--seed X]
 *
 * Exits 0 when every check passed, 1 on the first mismatch (what and where
 * printed on stderr), 2 on a usage error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hakmem/hakmem.h"

#ifdef STRESS_USE_HAK_API
#define S_MALLOC hak_malloc
#define S_FREE hak_free
#define S_CALLOC hak_calloc
#define S_REALLOC hak_realloc
#define S_REALLOCARRAY hak_reallocarray
#define S_MEMALIGN hak_memalign
#define S_POSIX_MEMALIGN hak_posix_memalign
#define S_ALIGNED_ALLOC hak_aligned_alloc
#define S_VALLOC hak_valloc
#define S_USABLE hak_usable_size
#define S_NAME "hakmem_stress_hak"
#else
#define S_MALLOC malloc
#define S_FREE free
#define S_CALLOC calloc
#define S_REALLOC realloc
#define S_REALLOCARRAY reallocarray
#define S_MEMALIGN memalign
#define S_POSIX_MEMALIGN posix_memalign
#define S_ALIGNED_ALLOC aligned_alloc
#define S_VALLOC valloc
#define S_USABLE malloc_usable_size
#define S_NAME "hakmem_stress"
#endif

/* realloc through a pointer the compiler cannot see through: the old block
 * is read after a realloc that failed (gcc's -Wuse-after-free cannot know
 * that this is legitimate). */
static void *(*volatile realloc_v)(void *, size_t) = S_REALLOC;

/* ------------------------------------------------------------------ rng */

typedef struct { uint64_t s; } rng_t;
static inline uint64_t rnd(rng_t *r)
{
    uint64_t x = r->s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    r->s = x;
    return x * 0x2545F4914F6CDD1DULL;
}
static inline uint64_t rnd_range(rng_t *r, uint64_t lo, uint64_t hi) /* [lo, hi] */
{
    return lo + rnd(r) % (hi - lo + 1);
}
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x ? x : 1;
}

/* -------------------------------------------------------------- blocks */

typedef struct {
    uint8_t *p;
    size_t size;   /* bytes requested */
    size_t usable; /* malloc_usable_size at allocation */
    size_t align;  /* alignment checked (16 at least) */
    uint64_t tag;  /* seeds the pattern */
} blk_t;

/* The pattern byte at offset i of a block tagged `tag`. */
static inline uint8_t pat(uint64_t tag, size_t i)
{
    return (uint8_t)((tag + (i >> 8) * 29u) ^ (i * 131u) ^ (tag >> 17));
}

/* Blocks up to FULL bytes get the pattern over all their usable bytes;
 * bigger ones over HEAD bytes at each end and NMID runs of MIDRUN bytes
 * spread over the middle. */
#define FULL 65536
#define HEAD 1024
#define NMID 32
#define MIDRUN 16

enum { V_FILL, V_CHECK, V_ZERO };

/* Visit the pattern positions of a block of `len` bytes that lie below
 * `limit`: fill them, check them, or check that they are zero. Returns the
 * offset of the first mismatch, or SIZE_MAX. */
static size_t run_range(uint8_t *p, size_t from, size_t to, size_t limit, uint64_t tag, int mode)
{
    if (to > limit)
        to = limit;
    for (size_t i = from; i < to; i++) {
        switch (mode) {
        case V_FILL:
            p[i] = pat(tag, i);
            break;
        case V_CHECK:
            if (p[i] != pat(tag, i))
                return i;
            break;
        default:
            if (p[i] != 0)
                return i;
            break;
        }
    }
    return SIZE_MAX;
}

static size_t visit(uint8_t *p, size_t len, size_t limit, uint64_t tag, int mode)
{
    size_t bad;
    if (len <= FULL)
        return run_range(p, 0, len, limit, tag, mode);
    if ((bad = run_range(p, 0, HEAD, limit, tag, mode)) != SIZE_MAX)
        return bad;
    for (size_t k = 1; k <= NMID; k++) {
        size_t at = len / (NMID + 1) * k;
        if ((bad = run_range(p, at, at + MIDRUN, limit, tag, mode)) != SIZE_MAX)
            return bad;
    }
    return run_range(p, len - HEAD, len, limit, tag, mode);
}

/* ------------------------------------------------------------ failures */

static atomic_int g_failed;
static atomic_int g_stop;

static void fail_at(const char *what, const blk_t *b, const char *op, size_t off, int zero)
{
    atomic_store(&g_failed, 1);
    atomic_store(&g_stop, 1);
    if (off != SIZE_MAX && b && b->p)
        fprintf(stderr,
                S_NAME ": FAIL %s (%s): block %p size %zu usable %zu align %zu tag %#" PRIx64
                ": offset %zu holds 0x%02x, expected 0x%02x\n",
                what, op, (void *)b->p, b->size, b->usable, b->align, b->tag, off, b->p[off],
                zero ? 0 : pat(b->tag, off));
    else if (b)
        fprintf(stderr, S_NAME ": FAIL %s (%s): block %p size %zu usable %zu align %zu\n", what, op,
                (void *)b->p, b->size, b->usable, b->align);
    else
        fprintf(stderr, S_NAME ": FAIL %s (%s)\n", what, op);
}

static void fail(const char *what, const blk_t *b, const char *op, size_t off)
{
    fail_at(what, b, op, off, 0);
}

/* A freshly allocated block: alignment, usable size, then the pattern. */
static int accept_block(blk_t *b, const char *op, int zeroed)
{
    if (b->p == NULL) {
        fail("allocation returned NULL", b, op, SIZE_MAX);
        return 0;
    }
    if (((uintptr_t)b->p & (b->align - 1)) != 0 || ((uintptr_t)b->p & 15) != 0) {
        fail("misaligned block", b, op, SIZE_MAX);
        return 0;
    }
    b->usable = S_USABLE(b->p);
    if (b->usable < b->size) {
        fail("usable size below the request", b, op, SIZE_MAX);
        return 0;
    }
    if (zeroed) {
        size_t off = visit(b->p, b->size, b->size, 0, V_ZERO);
        if (off != SIZE_MAX) {
            fail_at("calloc block not zero", b, "calloc", off, 1);
            return 0;
        }
    }
    visit(b->p, b->usable, b->usable, b->tag, V_FILL);
    return 1;
}

/* Before a free: the pattern is intact and the usable size unchanged. */
static int check_block(const blk_t *b, const char *op)
{
    size_t u = S_USABLE(b->p);
    if (u != b->usable) {
        fail("usable size changed while the block was live", b, op, SIZE_MAX);
        return 0;
    }
    size_t off = visit(b->p, b->usable, b->usable, b->tag, V_CHECK);
    if (off != SIZE_MAX) {
        fail("pattern corrupted", b, op, off);
        return 0;
    }
    return 1;
}

static void release(blk_t *b, rng_t *r, const char *op)
{
    if (b->p == NULL)
        return;
    if (check_block(b, op)) {
        if (rnd(r) % 16 == 0)
            free_sized(b->p, b->size);
        else
            S_FREE(b->p);
    }
    b->p = NULL;
}

/* --------------------------------------------------------------- sizes */

static const size_t k_edges[] = {0, 1, 15, 16, 17, 24, 32, 48, 64, 128, 255, 256, 511, 512, 1000,
                                 1023, 1024, 1025, 1032, 1094, 2048, 4095, 4096, 4097, 8192, 16384,
                                 32767, 32768, 32769, 65536, 131072, 262144, 524288, 1048575,
                                 1048576, 1048577, 2097152, 4194304};
#define NEDGES (sizeof k_edges / sizeof k_edges[0])

/* Sizes of a few L25 classes, just under their strides (36-40, 56-60,
 * 220-224 and 236-240 KiB), that half the L25 requests take: enough
 * blocks of one class live at once that its spans take the wide geometry
 * beside the narrow one (docs/mid.md, "Wide spans for busy L25 classes"),
 * and bins whose bounds together pass the thread's L25 cap (1 MiB), so
 * that frees take bounds from other classes' bins. */
static const size_t k_hot[] = {40000, 61440, 229376, 245000};
#define NHOT (sizeof k_hot / sizeof k_hot[0])

/* 70% <= 256 B, 20% <= 32 KiB, 9% <= 1 MiB (half of it a few hot L25
 * sizes), 1% up to 4 MiB, and one in twenty a tier or class boundary. */
static size_t pick_size(rng_t *r)
{
    unsigned d = (unsigned)(rnd(r) % 1000);
    if (d < 50)
        return k_edges[rnd(r) % NEDGES];
    if (d < 50 + 665)
        return rnd_range(r, 0, 256);
    if (d < 50 + 665 + 190)
        return rnd_range(r, 257, 32768);
    if (d < 50 + 665 + 190 + 85) {
        if (rnd(r) % 2 == 0)
            return rnd_range(r, 32769, 1 << 20);
        size_t hot = k_hot[rnd(r) % NHOT];
        return hot - rnd_range(r, 0, 4000);
    }
    return rnd_range(r, (1 << 20) + 1, 4 << 20);
}

static size_t pick_align(rng_t *r)
{
    unsigned d = (unsigned)(rnd(r) % 100);
    if (d == 0)
        return 65536;
    return (size_t)1 << rnd_range(r, 3, 12); /* 8 .. 4096 */
}

/* ---------------------------------------------------------- exchange */

#define XN 512
static struct xslot {
    pthread_mutex_t mu;
    blk_t b;
} g_x[XN];

/* Put *b into a random slot of the exchange, and take what was there into
 * *b (it was allocated by some other thread, maybe one that has ended). */
static void exchange(blk_t *b, rng_t *r)
{
    struct xslot *s = &g_x[rnd(r) % XN];
    pthread_mutex_lock(&s->mu);
    blk_t t = s->b;
    s->b = *b;
    pthread_mutex_unlock(&s->mu);
    *b = t;
}

/* ------------------------------------------------------------- workers */

#define LIVE 512

typedef struct {
    pthread_t th;
    uint64_t seed;
    atomic_int done;
    int running;
} worker_t;

static atomic_ullong g_ops, g_threads, g_bytes;

static uint64_t next_tag(rng_t *r) { return rnd(r) | 1; }

static void allocate(blk_t *b, rng_t *r)
{
    blk_t n = {0};
    n.size = pick_size(r);
    n.align = 16;
    n.tag = next_tag(r);
    const char *op = "malloc";
    int zeroed = 0;
    unsigned d = (unsigned)(rnd(r) % 100);
    if (d < 50) {
        n.p = S_MALLOC(n.size);
    } else if (d < 62) {
        op = "calloc";
        size_t k = rnd_range(r, 1, 16);
        n.size = n.size / k * k;
        n.p = S_CALLOC(k, n.size / k);
        zeroed = 1;
    } else if (d < 70) {
        op = "memalign";
        size_t a = pick_align(r);
        if (rnd(r) % 8 == 0 && a > 16)
            a = a - a / 4; /* not a power of two: rounded up */
        n.p = S_MEMALIGN(a, n.size);
        n.align = a;
        while (n.align & (n.align - 1))
            n.align &= n.align - 1;
        if (n.align != a)
            n.align <<= 1;
    } else if (d < 78) {
        op = "posix_memalign";
        n.align = pick_align(r);
        void *p = NULL;
        int rc = S_POSIX_MEMALIGN(&p, n.align, n.size);
        if (rc != 0) {
            fail("posix_memalign failed", &n, op, SIZE_MAX);
            return;
        }
        n.p = p;
    } else if (d < 86) {
        op = "aligned_alloc";
        n.align = pick_align(r);
        n.p = S_ALIGNED_ALLOC(n.align, n.size);
    } else if (d < 88) {
        op = "valloc";
        n.align = (size_t)sysconf(_SC_PAGESIZE);
        n.p = S_VALLOC(n.size);
    } else {
        op = "realloc(NULL)";
        n.p = S_REALLOC(NULL, n.size);
    }
    if (n.align < 16)
        n.align = 16;
    if (accept_block(&n, op, zeroed)) {
        *b = n;
        atomic_fetch_add_explicit(&g_bytes, n.size, memory_order_relaxed);
    }
}

static void reallocate(blk_t *b, rng_t *r)
{
    size_t n;
    unsigned d = (unsigned)(rnd(r) % 100);
    if (d < 30) /* a small step, in place or nearly */
        n = b->size + rnd_range(r, 0, 64) - (b->size < 32 ? b->size : 32);
    else if (d < 32)
        n = 0;
    else
        n = pick_size(r);
    if (!check_block(b, "before realloc"))
        return;
    const char *op = "realloc";
    void *q;
    if (d == 99) {
        op = "reallocarray";
        q = S_REALLOCARRAY(b->p, 1, n);
    } else {
        q = realloc_v(b->p, n);
    }
    if (n == 0) { /* glibc 2.36: frees the block, returns NULL */
        if (q != NULL) {
            blk_t t = {.p = q, .size = 0, .align = 16, .tag = next_tag(r)};
            if (accept_block(&t, "realloc(p, 0)", 0))
                *b = t;
        } else {
            b->p = NULL;
        }
        return;
    }
    if (q == NULL) {
        fail("realloc returned NULL", b, op, SIZE_MAX);
        return;
    }
    blk_t t = *b;
    t.p = q;
    /* The kept prefix: the pattern of the old block below min(old, new). */
    size_t keep = b->size < n ? b->size : n;
    size_t off = visit(t.p, b->usable, keep, t.tag, V_CHECK);
    if (off != SIZE_MAX) {
        t.size = n;
        fail("realloc lost the kept prefix", &t, op, off);
        b->p = NULL;
        return;
    }
    t.size = n;
    t.align = 16;
    if (accept_block(&t, op, 0))
        *b = t;
    else
        b->p = NULL;
}

static void *worker(void *arg)
{
    worker_t *w = arg;
    rng_t r = {mix64(w->seed)};
    blk_t live[LIVE];
    memset(live, 0, sizeof live);
    unsigned long ops = (unsigned long)rnd_range(&r, 2000, 60000), done = 0;
    for (; done < ops && !atomic_load_explicit(&g_stop, memory_order_relaxed); done++) {
        blk_t *b = &live[rnd(&r) % LIVE];
        if (b->p == NULL && rnd(&r) % 8 != 0) {
            allocate(b, &r);
            continue;
        }
        unsigned d = (unsigned)(rnd(&r) % 100);
        if (d < 55) {
            release(b, &r, "free");
        } else if (d < 80) {
            if (b->p)
                reallocate(b, &r);
        } else if (d < 92) {
            exchange(b, &r); /* gives ours, takes another thread's block */
            if (b->p && rnd(&r) % 2)
                release(b, &r, "free of a block from another thread");
            else if (b->p && !check_block(b, "block taken from another thread"))
                b->p = NULL;
        } else if (b->p) {
            if (!check_block(b, "check"))
                b->p = NULL;
        }
    }
    /* End of this thread: free half its blocks, hand the rest on. */
    for (size_t i = 0; i < LIVE && !atomic_load(&g_failed); i++) {
        if (live[i].p == NULL)
            continue;
        if (rnd(&r) % 2) {
            release(&live[i], &r, "free at thread end");
        } else {
            exchange(&live[i], &r);
            release(&live[i], &r, "free at thread end of a block from another thread");
        }
    }
    atomic_fetch_add(&g_ops, done);
    atomic_store(&w->done, 1);
    return NULL;
}

/* ---------------------------------------------------------------- main */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr, "usage: " S_NAME " [--threads N] [--seconds S | --minutes M] [--seed X]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long nthreads = 4;
    double seconds = 3;
    uint64_t seed = 0x5EED;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (i + 1 >= argc)
            usage();
        char *end = NULL;
        if (strcmp(a, "--threads") == 0)
            nthreads = strtol(argv[++i], &end, 0);
        else if (strcmp(a, "--seconds") == 0)
            seconds = strtod(argv[++i], &end);
        else if (strcmp(a, "--minutes") == 0)
            seconds = 60 * strtod(argv[++i], &end);
        else if (strcmp(a, "--seed") == 0)
            seed = strtoull(argv[++i], &end, 0);
        else
            usage();
        if (*end)
            usage();
    }
    if (nthreads < 1 || nthreads > 1024 || !(seconds >= 0))
        usage();
    for (int i = 0; i < XN; i++)
        pthread_mutex_init(&g_x[i].mu, NULL);
    printf(S_NAME ": %ld threads, %.0f s, seed %#" PRIx64 "\n", nthreads, seconds, seed);
    fflush(stdout);

    worker_t *w = calloc((size_t)nthreads, sizeof *w);
    if (!w)
        return 1;
    uint64_t gen = 0;
    double end = now_s() + seconds;
    for (long i = 0; i < nthreads; i++) {
        w[i].seed = seed * 1000003u + gen++;
        if (pthread_create(&w[i].th, NULL, worker, &w[i]) != 0) {
            fprintf(stderr, S_NAME ": pthread_create failed\n");
            return 1;
        }
        w[i].running = 1;
    }
    /* Threads end after a random number of operations; join each and start
     * a new one in its place until the time is up. */
    while (!atomic_load(&g_failed) && now_s() < end) {
        for (long i = 0; i < nthreads; i++) {
            if (!atomic_load(&w[i].done))
                continue;
            pthread_join(w[i].th, NULL);
            atomic_fetch_add(&g_threads, 1);
            atomic_store(&w[i].done, 0);
            w[i].seed = seed * 1000003u + gen++;
            if (pthread_create(&w[i].th, NULL, worker, &w[i]) != 0) {
                fprintf(stderr, S_NAME ": pthread_create failed\n");
                atomic_store(&g_failed, 1);
                w[i].running = 0;
                break;
            }
        }
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    atomic_store(&g_stop, 1);
    for (long i = 0; i < nthreads; i++)
        if (w[i].running) {
            pthread_join(w[i].th, NULL);
            atomic_fetch_add(&g_threads, 1);
        }
    /* What is left in the exchange: checked and freed by the main thread. */
    rng_t r = {mix64(seed ^ 0xE7C4)};
    for (int i = 0; i < XN && !atomic_load(&g_failed); i++)
        release(&g_x[i].b, &r, "free of a block left in the exchange");
    free(w);

    int failed = atomic_load(&g_failed);
    printf(S_NAME ": %s: %llu operations, %llu threads, %llu MiB allocated\n", failed ? "FAILED" : "ok",
           (unsigned long long)atomic_load(&g_ops), (unsigned long long)atomic_load(&g_threads),
           (unsigned long long)(atomic_load(&g_bytes) >> 20));
    return failed ? 1 : 0;
}
