// SPDX-License-Identifier: MIT
/* The programs of suite `prof` (test_prof.py runs them under HAKMEM_PROF
 * and reads their profiles with google-pprof). Each allocation site is a
 * function of its own, kept out of line, so that pprof names it:
 *
 *   accuracy D1 D2     ~100 MB through alloc_big, ~10 MB through alloc_small,
 *                      both live: hak_prof_dump(D1); then the big ones are
 *                      freed: hak_prof_dump(D2); exit (the small ones live)
 *   big-blocks D       100 blocks of 1 MiB through alloc_big: hak_prof_dump(D)
 *   threads D          8 threads allocate and free; half stay live; prints
 *                      "live=N allocated=M" (requested bytes): hak_prof_dump(D)
 *   xthreads D         8 threads allocate through xthread_site, then each
 *                      frees half of the next thread's blocks while it
 *                      allocates (and frees) more (at rate 1: every block a
 *                      sample); prints "live=N,B allocated=N,B" (objects,
 *                      requested bytes): hak_prof_dump(D)
 *   fork               20 MB through parent_site, then fork: the child adds
 *                      30 MB through child_site and exits normally
 *   dump-then-_exit D  20 MB through alloc_big, hak_prof_dump(D), _exit(0)
 *   interval           110 MB through alloc_big, kept live
 *   plugin LIB D       dlopen(LIB), 20 MB through its plugin_alloc: hak_prof_dump(D)
 *   plain [D]          a few allocations; prints "dump=RC errno=E" of
 *                      hak_prof_dump(D) (D: /dev/null by default)
 *   deep D             4 threads, each 16 MB through deep_site at the bottom
 *                      of deep_plain -> deep_vla (recursive, with a
 *                      variable-length array: frames of changing size) and
 *                      4 MB through sig_site in a SIGUSR1 handler (on a
 *                      sigaltstack in two of them), all freed at once:
 *                      hak_prof_dump(D) (the stack walk's cached path)
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem/hakmem.h"

#define MB 1000000
#define NOINLINE __attribute__((noinline))

/* One allocation site per function, each a frame of its own: the empty
 * asm after the call keeps it from being a tail call, and a counter of
 * its own keeps the compiler from folding the identical functions into
 * one (gcc's -fipa-icf). */
#define SITE(name)                                                                                         \
    static volatile unsigned name##_calls;                                                                 \
    static NOINLINE void *name(size_t n)                                                                   \
    {                                                                                                      \
        void *p = malloc(n);                                                                               \
        name##_calls++;                                                                                    \
        __asm__ volatile("" ::: "memory");                                                                 \
        return p;                                                                                          \
    }
SITE(alloc_big)
SITE(alloc_small)
SITE(parent_site)
SITE(child_site)
SITE(thread_site)
SITE(xthread_site)
SITE(deep_site)
SITE(sig_site)

/* n bytes through site() in blocks of `block`, touched; the blocks. */
static void **fill(void *(*site)(size_t), size_t n, size_t block, size_t *count)
{
    size_t k = n / block;
    void **v = calloc(k, sizeof *v);
    if (v == NULL)
        exit(2);
    for (size_t i = 0; i < k; i++) {
        v[i] = site(block);
        if (v[i] == NULL)
            exit(2);
        memset(v[i], (int)i, 16);
    }
    *count = k;
    return v;
}

static void dump_or_die(const char *path)
{
    if (hak_prof_dump(path) != 0) {
        fprintf(stderr, "prof_child: hak_prof_dump(%s): %s\n", path, strerror(errno));
        exit(3);
    }
}

#define THREADS 8
#define PER_THREAD 20000
static size_t g_live[THREADS], g_alloc[THREADS];
static void *g_keep[THREADS][PER_THREAD / 2];

static void *worker(void *arg)
{
    size_t t = (size_t)arg, live = 0, total = 0, kept = 0;
    void *pending = NULL;
    for (size_t i = 0; i < PER_THREAD; i++) {
        size_t n = (i * 37 + t * 101) % 1009 + 16; /* tiny or mid in every build */
        void *p = thread_site(n);
        if (p == NULL)
            exit(2);
        memset(p, 1, 16);
        total += n;
        if (i % 2) {
            g_keep[t][kept++] = p;
            live += n;
        } else {
            free(pending); /* freed one step later: frees interleave with mallocs */
            pending = p;
        }
    }
    free(pending);
    g_live[t] = live;
    g_alloc[t] = total;
    return NULL;
}

#define XBLOCKS 2000
static void *g_x[THREADS][XBLOCKS];
static size_t g_xn[THREADS][2], g_xb[THREADS][2]; /* [0] allocated, [1] freed */
static pthread_barrier_t g_xbar;

static void *xworker(void *arg)
{
    size_t t = (size_t)arg, *n = g_xn[t], *b = g_xb[t];
    for (size_t i = 0; i < XBLOCKS; i++) {
        size_t sz = (i * 53 + t * 7) % 3000 + 16;
        if ((g_x[t][i] = xthread_site(sz)) == NULL)
            exit(2);
        n[0]++;
        b[0] += sz;
    }
    pthread_barrier_wait(&g_xbar);
    /* the next thread's odd blocks freed here, while this one samples */
    size_t next = (t + 1) % THREADS;
    for (size_t i = 1; i < XBLOCKS; i += 2) {
        size_t sz = (i * 53 + next * 7) % 3000 + 16;
        free(g_x[next][i]);
        n[1]++;
        b[1] += sz;
        size_t more = (i * 31 + t) % 2000 + 16;
        void *p = xthread_site(more);
        if (p == NULL)
            exit(2);
        n[0]++;
        b[0] += more;
        if (i % 4 == 1) { /* every other one freed at once, by its own thread */
            free(p);
            n[1]++;
            b[1] += more;
        }
        for (size_t k = 0; k < 4; k++) { /* and churn: samples made and freed */
            void *q = xthread_site(more + k);
            if (q == NULL)
                exit(2);
            free(q);
            n[0]++, n[1]++;
            b[0] += more + k, b[1] += more + k;
        }
    }
    return NULL;
}

#define DEEP_BYTES (16 * MB)
#define SIG_BYTES (4 * MB)
#define SIG_RAISES 20
static volatile int g_sink;
static volatile size_t g_block = 1000; /* not a constant: no constprop clone of the sites */

/* Frame-pointer frames whose size changes from call to call. */
static NOINLINE void deep_vla(int depth, int size)
{
    char buf[size];
    memset(buf, depth, (size_t)size);
    g_sink += buf[size / 2];
    if (depth > 0)
        deep_vla(depth - 1, size % 300 + 16);
    else
        free(deep_site(g_block));
    __asm__ volatile("" ::: "memory");
}

static NOINLINE void deep_plain(int depth, int size)
{
    volatile int local = depth;
    if (depth > 0)
        deep_plain(depth - 1, size);
    else
        deep_vla(size % 7 + 1, size % 500 + 1);
    g_sink += local;
    __asm__ volatile("" ::: "memory");
}

static void on_usr1(int sig)
{
    (void)sig;
    for (size_t i = 0; i < SIG_BYTES / SIG_RAISES / 1000; i++)
        free(sig_site(g_block));
}

static void *deep_worker(void *arg)
{
    size_t t = (size_t)arg;
    stack_t ss = {0};
    if (t % 2) {
        ss.ss_sp = malloc(1 << 16);
        ss.ss_size = 1 << 16;
        if (ss.ss_sp == NULL || sigaltstack(&ss, NULL) != 0)
            exit(2);
    }
    for (size_t i = 0; i < DEEP_BYTES / 1000; i++) {
        deep_plain((int)((i * 7 + t) % 12), (int)(i % 1000));
        if (i % (DEEP_BYTES / 1000 / SIG_RAISES) == 0)
            raise(SIGUSR1);
    }
    if (t % 2) {
        void *alt = ss.ss_sp;
        ss.ss_flags = SS_DISABLE;
        sigaltstack(&ss, NULL);
        free(alt);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    const char *mode = argc > 1 ? argv[1] : "plain";
    size_t nb, ns;
    if (strcmp(mode, "accuracy") == 0 && argc > 3) {
        void **big = fill(alloc_big, 100 * MB, 1000, &nb);
        void **small = fill(alloc_small, 10 * MB, 4000, &ns);
        dump_or_die(argv[2]);
        for (size_t i = 0; i < nb; i++)
            free(big[i]);
        dump_or_die(argv[3]);
        (void)small;
        return 0;
    }
    if (strcmp(mode, "big-blocks") == 0 && argc > 2) {
        fill(alloc_big, (size_t)100 << 20, (size_t)1 << 20, &nb);
        dump_or_die(argv[2]);
        return 0;
    }
    if (strcmp(mode, "threads") == 0 && argc > 2) {
        pthread_t th[THREADS];
        for (size_t t = 0; t < THREADS; t++)
            if (pthread_create(&th[t], NULL, worker, (void *)t) != 0)
                return 2;
        size_t live = 0, total = 0;
        for (size_t t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            live += g_live[t];
            total += g_alloc[t];
        }
        printf("live=%zu allocated=%zu\n", live, total);
        dump_or_die(argv[2]);
        return 0;
    }
    if (strcmp(mode, "xthreads") == 0 && argc > 2) {
        pthread_t th[THREADS];
        if (pthread_barrier_init(&g_xbar, NULL, THREADS) != 0)
            return 2;
        for (size_t t = 0; t < THREADS; t++)
            if (pthread_create(&th[t], NULL, xworker, (void *)t) != 0)
                return 2;
        size_t n[2] = {0, 0}, b[2] = {0, 0};
        for (size_t t = 0; t < THREADS; t++) {
            pthread_join(th[t], NULL);
            for (int k = 0; k < 2; k++) {
                n[k] += g_xn[t][k];
                b[k] += g_xb[t][k];
            }
        }
        printf("live=%zu,%zu allocated=%zu,%zu\n", n[0] - n[1], b[0] - b[1], n[0], b[0]);
        dump_or_die(argv[2]);
        return 0;
    }
    if (strcmp(mode, "fork") == 0) {
        fill(parent_site, 20 * MB, 1000, &nb);
        fflush(NULL);
        pid_t pid = fork();
        if (pid < 0)
            return 2;
        if (pid == 0) {
            fill(child_site, 30 * MB, 1000, &ns);
            exit(0);
        }
        int status;
        if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
            return 4;
        return 0;
    }
    if (strcmp(mode, "dump-then-_exit") == 0 && argc > 2) {
        fill(alloc_big, 20 * MB, 1000, &nb);
        dump_or_die(argv[2]);
        _exit(0);
    }
    if (strcmp(mode, "interval") == 0) {
        fill(alloc_big, 110 * MB, 1000, &nb);
        return 0;
    }
    if (strcmp(mode, "plugin") == 0 && argc > 3) {
        void *h = dlopen(argv[2], RTLD_NOW);
        void *(*plugin_alloc)(size_t) = h ? (void *(*)(size_t))dlsym(h, "plugin_alloc") : NULL;
        if (plugin_alloc == NULL) {
            fprintf(stderr, "prof_child: %s\n", dlerror());
            return 2;
        }
        for (size_t i = 0; i < 20 * MB / 1000; i++)
            if (plugin_alloc(1000) == NULL)
                return 2;
        dump_or_die(argv[3]);
        return 0;
    }
    if (strcmp(mode, "deep") == 0 && argc > 2) {
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_usr1;
        sa.sa_flags = SA_ONSTACK;
        sigemptyset(&sa.sa_mask);
        if (sigaction(SIGUSR1, &sa, NULL) != 0)
            return 2;
        pthread_t th[4];
        for (size_t t = 0; t < 4; t++)
            if (pthread_create(&th[t], NULL, deep_worker, (void *)t) != 0)
                return 2;
        for (size_t t = 0; t < 4; t++)
            pthread_join(th[t], NULL);
        dump_or_die(argv[2]);
        return 0;
    }
    if (strcmp(mode, "double-free") == 0) {
        /* at rate 1 every block is sampled: the freed one waits in the
         * thread's stash, and its second free must be named */
        char *p = malloc(100);
        memset(p, 1, 100);
        free(p);
        printf("freed\n");
        fflush(stdout);
        free(p);
        return 0; /* not reached: the report aborts */
    }
    if (strcmp(mode, "plain") == 0) {
        fill(alloc_small, MB, 100, &ns);
        errno = 0;
        int rc = hak_prof_dump(argc > 2 ? argv[2] : "/dev/null");
        printf("dump=%d errno=%d\n", rc, rc ? errno : 0);
        return 0;
    }
    fprintf(stderr, "prof_child: unknown mode %s\n", mode);
    return 2;
}
