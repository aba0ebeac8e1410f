// SPDX-License-Identifier: MIT
/* test_unwind.c - hak_os_backtrace (platform_prof.c) against libgcc's own
 * walk, taken at the same point: the cached walk must give exactly the
 * frames libgcc gives, from deep call chains whose frames change size
 * between calls (a recursive function with a variable-length array, one
 * with alloca: frame-pointer frames), in several threads at once (the
 * cache is shared), from a signal handler on the thread's stack and on a
 * sigaltstack, from signals sent at random moments (so some land inside
 * a walk: the handler's walk is then a nested one), and with the depth cut
 * short. On x86-64 most walks must be cached ones. Never timed. Suite
 * `prof`. */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unwind.h>

#include "hak_platform.h"

#if HAK_VALGRIND
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND RUNNING_ON_VALGRIND /* the cache learns nothing there */
#else
#define UNDER_VALGRIND 0
#endif

#define NOINLINE __attribute__((noinline))
#define THREADS 4
#define ROUNDS 1500

static int g_failed;

#define CHECK(cond, ...)                                                                                   \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            fprintf(stderr, "test_unwind: %s:%d: ", __FILE__, __LINE__);                                   \
            fprintf(stderr, __VA_ARGS__);                                                                  \
            fprintf(stderr, "\n");                                                                         \
            __atomic_store_n(&g_failed, 1, __ATOMIC_RELAXED);                                              \
        }                                                                                                  \
    } while (0)

typedef struct {
    void **frames;
    int n, max;
} ref_t;

static _Unwind_Reason_Code ref_step(struct _Unwind_Context *ctx, void *arg)
{
    ref_t *r = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    r->frames[r->n++] = (void *)ip;
    return r->n < r->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

/* libgcc's walk: [0] this function, [1] its caller, ... */
static NOINLINE int reference(void **frames, int max)
{
    ref_t r = {frames, 0, max};
    _Unwind_Backtrace(ref_step, &r);
    __asm__ volatile("" ::: "memory");
    return r.n;
}

static unsigned g_checks;

/* Both walks from here: hak_os_backtrace's [1..] (the callers of this
 * function) must be reference()'s [2..], cut at the same depth. */
static NOINLINE void check_here(int max)
{
    void *got[64], *ref[100];
    int n = hak_os_backtrace(got, max, 0);
    int m = reference(ref, 100);
    int want = m - 2 < max - 1 ? m - 2 : max - 1;
    CHECK(n >= 1 && n - 1 == want, "depth %d, libgcc's %d (max %d)", n - 1, want, max);
    for (int i = 1; i < n && i - 1 < want; i++)
        CHECK(got[i] == ref[i + 1], "frame %d: %p, libgcc's %p", i, got[i], ref[i + 1]);
    __atomic_fetch_add(&g_checks, 1, __ATOMIC_RELAXED);
    __asm__ volatile("" ::: "memory");
}

static __thread volatile int g_sink; /* per thread: no race for TSan to see */

/* Frame-pointer frames of a size that changes with every call. */
static NOINLINE void vla_rec(int depth, int size, int max)
{
    char buf[size]; /* a variable-length array: rbp-based CFA */
    memset(buf, depth, (size_t)size);
    g_sink += buf[size / 2];
    if (depth > 0)
        vla_rec(depth - 1, size % 200 + 24, max);
    else
        check_here(max);
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void alloca_rec(int depth, int size, int max)
{
    char *buf = __builtin_alloca((size_t)size);
    memset(buf, depth, (size_t)size);
    g_sink += buf[size - 1];
    if (depth > 0)
        alloca_rec(depth - 1, size * 7 % 300 + 8, max);
    else
        check_here(max);
    __asm__ volatile("" ::: "memory");
}

/* Plain (rsp-based, in an optimised build) frames around them. */
static NOINLINE void plain_rec(int depth, int kind, int size, int max)
{
    volatile int local = depth;
    if (depth > 0)
        plain_rec(depth - 1, kind, size, max);
    else if (kind == 0)
        vla_rec(size % 9, size % 300 + 1, max);
    else if (kind == 1)
        alloca_rec(size % 7, size % 500 + 1, max);
    else
        check_here(max);
    g_sink += local;
    __asm__ volatile("" ::: "memory");
}

static void on_signal(int sig)
{
    (void)sig;
    plain_rec(3, 0, 77, 64);
    plain_rec(2, 2, 5, 64);
}

static void raise_inside(int depth)
{
    if (depth > 0) {
        raise_inside(depth - 1);
        __asm__ volatile("" ::: "memory");
        return;
    }
    raise(SIGUSR1);
}

static void rounds(unsigned seed)
{
    for (int i = 0; i < ROUNDS; i++) {
        seed = seed * 1103515245u + 12345u;
        unsigned r = seed >> 8;
        int max = (r % 16 == 0) ? (int)(r % 9) + 2 : 64; /* sometimes cut short */
        plain_rec((int)(r % 11), (int)(r % 3), (int)(r % 1000), max);
        if (i % 100 == 0)
            raise_inside((int)(r % 5));
    }
}

static int g_running = THREADS; /* workers still in their rounds */

static void *thread_main(void *arg)
{
    unsigned t = (unsigned)(uintptr_t)arg;
    stack_t ss = {0};
    char *alt = NULL;
    if (t % 2) { /* half the threads take their signals on an alternate stack */
        alt = malloc(1 << 16);
        if (alt == NULL)
            abort();
        ss.ss_sp = alt;
        ss.ss_size = 1 << 16;
        if (sigaltstack(&ss, NULL) != 0)
            abort();
    }
    unsigned walks0, slow0, walks, slow;
    hak_os_backtrace_counts_(&walks0, &slow0);
    rounds(t * 7919u + 1);
    hak_os_backtrace_counts_(&walks, &slow);
    if (t != 0)
        __atomic_fetch_sub(&g_running, 1, __ATOMIC_RELEASE);
    walks -= walks0;
    slow -= slow0;
    CHECK(walks >= ROUNDS, "thread %u: %u walks", t, walks);
    if (getenv("UNWIND_VERBOSE")) fprintf(stderr, "thread %u: %u walks, %u libgcc\n", t, walks, slow);
#if defined(__x86_64__)
    /* misses: the first walk of each new chain, the signal handler's (its
     * trampoline is never cached), one audit in 256 */
    CHECK(UNDER_VALGRIND || slow * 5 < walks, "thread %u: %u of %u walks were libgcc's", t, slow, walks);
#endif
    if (alt) {
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        free(alt);
    }
    return NULL;
}

/* SIGUSR1 to the workers every 20 us until they have all finished their
 * rounds (none is joined before): some land inside hak_os_backtrace. */
static void *pinger(void *arg)
{
    pthread_t *th = arg;
    struct timespec ts = {0, 20000};
    for (unsigned i = 0; __atomic_load_n(&g_running, __ATOMIC_ACQUIRE) > 0; i++) {
        pthread_kill(th[i % THREADS], SIGUSR1);
        nanosleep(&ts, NULL);
    }
    return NULL;
}

int main(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_ONSTACK;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGUSR1, &sa, NULL) != 0)
        return 2;
    thread_main((void *)(uintptr_t)0); /* the main thread first, alone */
    pthread_t th[THREADS];
    for (unsigned t = 0; t < THREADS; t++)
        if (pthread_create(&th[t], NULL, thread_main, (void *)(uintptr_t)(t + 1)) != 0)
            return 2;
    pthread_t ping;
    if (pthread_create(&ping, NULL, pinger, th) != 0)
        return 2;
    pthread_join(ping, NULL); /* returns once every worker is past its rounds */
    for (unsigned t = 0; t < THREADS; t++)
        pthread_join(th[t], NULL);
    if (g_failed)
        return 1;
    printf("test_unwind: %u walks checked against libgcc's\n", g_checks);
    return 0;
}
