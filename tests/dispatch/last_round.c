// SPDX-License-Identifier: MIT
/* last_round.c - threads whose first allocation comes in the last round of
 * pthread key destructors. glibc runs PTHREAD_DESTRUCTOR_ITERATIONS (4)
 * rounds and none after, so the exit hook such a thread arms never runs:
 * its thread cache stays registered, and the next thread, which gets the
 * same stack and TLS, registers it again. The registries were intrusive
 * lists through the TLS and came to point at themselves: mallinfo2,
 * malloc_stats, the HAKMEM_STATS exit report and fork (its child) looped
 * for ever. A hang is the test runner's timeout.
 *
 *   last_round SIZE [CALLS [EARLY]]
 *
 * SIZE is the first allocation of each thread (24: tiny, 2000: mid,
 * 100000: L25). THREADS threads run one after the other; each sets a key
 * whose destructor asks for another round three times (pthread_setspecific
 * again) and allocates and frees SIZE bytes in the fourth. Then, for each
 * letter of CALLS (default "mfs"; "-": none, for the exit report of
 * HAKMEM_STATS=1): m mallinfo2, f fork (the child must have adopted the
 * intact cache of the last thread and allocate normally), s malloc_stats.
 * Checked after: blocks of SIZE are distinct and keep their contents, and
 * at most one cache per TLS address stays registered (a stale cache is
 * taken over by the next thread at its address).
 *
 * With EARLY, each thread first allocates and frees EARLY bytes in its own
 * body, which arms the exit hook: the hooks then run in the first round,
 * and the last round's SIZE must be served without a cache (the tiny tier
 * left a cache it had never used NEW, not DEAD, so that call set up and
 * registered a cache no hook gave back): checked, no tiny cache of these
 * threads stays registered and nothing stays in use (mallinfo2). Skipped
 * (exit status 77) in a build where EARLY's tier keeps no thread cache.
 * Exit status 0 when every check passed.
 */
#include <limits.h>
#include <malloc.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hakmem/hakmem.h"

#define THREADS 8
#define BLOCKS 64

static pthread_key_t g_key;
static size_t g_size, g_early;
static __thread char t_anchor; /* where this thread's TLS is */
static uintptr_t g_tls[THREADS];

static void destructor(void *v)
{
    uintptr_t round = (uintptr_t)v;
    if (round < PTHREAD_DESTRUCTOR_ITERATIONS) { /* ask for one more round */
        pthread_setspecific(g_key, (void *)(round + 1));
        return;
    }
    char *p = malloc(g_size); /* the thread's first allocation, in the last round */
    if (p)
        memset(p, 0x5a, g_size);
    free(p);
}

static void *idle_main(void *arg) { return arg; }

static void *thread_main(void *arg)
{
    g_tls[(uintptr_t)arg] = (uintptr_t)&t_anchor;
    if (g_early)
        free(malloc(g_early));
    pthread_setspecific(g_key, (void *)1);
    return NULL;
}

/* BLOCKS blocks of g_size: non-NULL, distinct, their contents kept. */
static int blocks_sound(void)
{
    char *v[BLOCKS];
    int bad = 0;
    for (int i = 0; i < BLOCKS; i++) {
        v[i] = malloc(g_size);
        if (v[i] == NULL)
            return 1;
        memset(v[i], i, g_size);
    }
    for (int i = 0; i < BLOCKS; i++)
        for (size_t k = 0; k < g_size; k += 61)
            bad |= v[i][k] != (char)i;
    for (int i = 0; i < BLOCKS; i++)
        free(v[i]);
    if (bad)
        fprintf(stderr, "last_round: blocks of %zu B overlap\n", g_size);
    return bad;
}

/* The tier of n keeps thread caches (the large tier and glibc do not). */
static bool cached(size_t n)
{
    int t = hak_tier_for(n);
    return t == HAK_TIER_TINY || t == HAK_TIER_MID || t == HAK_TIER_L25;
}

static size_t tiny_caches(void)
{
    hak_stats_t st;
    hak_get_stats(&st);
    return st.thread_caches;
}

static int fork_check(size_t parent_in_use)
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* The last thread's cache was intact: adopted, so less is in use
         * than the parent saw (where it counts as another thread's); with
         * EARLY, or no cache for SIZE in this build, no more. */
        size_t in_use = mallinfo2().uordblks;
        if (cached(g_size) && !g_early ? in_use >= parent_in_use : in_use > parent_in_use) {
            fprintf(stderr, "last_round: child: %zu B in use, parent %zu: the cache was not adopted\n", in_use,
                    parent_in_use);
            _exit(1);
        }
        if (hak_tier_for(24) == HAK_TIER_TINY && tiny_caches() != 1) {
            fprintf(stderr, "last_round: child: %zu tiny caches registered, not 1\n", tiny_caches());
            _exit(1);
        }
        _exit(blocks_sound());
    }
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        fprintf(stderr, "last_round: fork child failed (status 0x%x)\n", pid < 0 ? -1 : st);
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    g_size = strtoul(argv[1], NULL, 0);
    const char *calls = argc > 2 ? argv[2] : "mfs";
    g_early = argc > 3 ? strtoul(argv[3], NULL, 0) : 0;
    if (g_early && !cached(g_early))
        return 77; /* meson's "skipped": EARLY would not arm the exit hook */
    /* hakmem's exit key first, so that it has a lower index than ours:
     * ours, iterated after it, then arms it in the last round too late. */
    free(malloc(24));
    if (pthread_key_create(&g_key, destructor) != 0)
        return 2;
    /* What a thread costs glibc (its stack cached, with its DTV) is in
     * use from the first thread on: counted in the base. */
    pthread_t idle;
    if (pthread_create(&idle, NULL, idle_main, NULL) != 0 || pthread_join(idle, NULL) != 0)
        return 2;
    size_t base = mallinfo2().uordblks;
    for (uintptr_t i = 0; i < THREADS; i++) {
        pthread_t t;
        if (pthread_create(&t, NULL, thread_main, (void *)i) != 0 || pthread_join(t, NULL) != 0)
            return 2;
    }
    int bad = 0;
    size_t addresses = 0;
    for (int i = 0; i < THREADS; i++) {
        int seen = 0;
        for (int k = 0; k < i; k++)
            seen |= g_tls[k] == g_tls[i];
        addresses += !seen;
    }
    if (hak_tier_for(g_size) == HAK_TIER_TINY && tiny_caches() > 1 + addresses) {
        fprintf(stderr, "last_round: %zu tiny caches registered for 1 + %zu TLS addresses\n", tiny_caches(),
                addresses);
        bad = 1;
    }
    if (g_early && hak_tier_for(g_size) == HAK_TIER_TINY && tiny_caches() != 1) {
        fprintf(stderr, "last_round: %zu tiny caches registered after the hooks ran, not 1\n", tiny_caches());
        bad = 1;
    }
    if (g_early && mallinfo2().uordblks > base) {
        fprintf(stderr, "last_round: %zu B in use after the threads, %zu before\n", mallinfo2().uordblks, base);
        bad = 1;
    }
    size_t in_use = 0;
    for (const char *c = calls; *c; c++) {
        if (*c == 'm')
            in_use = mallinfo2().uordblks;
        else if (*c == 'f')
            bad |= fork_check(in_use ? in_use : mallinfo2().uordblks);
        else if (*c == 's')
            malloc_stats();
    }
    bad |= blocks_sound();
    return bad;
}
