// SPDX-License-Identifier: MIT
/* The plugin bench_dlopen_threads loads and unloads: a table allocated by
 * its constructor and freed by its destructor, and plugin_run(T), which
 * starts T threads that each do 2,000 allocations of 16 B-16 KiB (up to 64
 * live, every block written) and joins them. Links only libc and pthread:
 * the allocator is whatever the host runs under. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__attribute__((visibility("default"))) int plugin_run(int nthreads);

static void **g_table;

__attribute__((constructor)) static void plugin_load(void)
{
    g_table = calloc(4096, sizeof *g_table);
    for (int i = 0; g_table && i < 4096; i += 64)
        g_table[i] = malloc((size_t)(i + 1) * 8);
}

__attribute__((destructor)) static void plugin_unload(void)
{
    for (int i = 0; g_table && i < 4096; i += 64)
        free(g_table[i]);
    free(g_table);
    g_table = NULL;
}

static void *worker(void *arg)
{
    uint64_t rng = (uint64_t)(uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
    unsigned char *live[64] = {0};
    uintptr_t bad = 0;
    for (int i = 0; i < 2000; i++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        int k = (int)(rng % 64);
        if (live[k]) {
            bad |= live[k][0] != (unsigned char)k;
            free(live[k]);
        }
        size_t n = 16 + (size_t)(rng >> 20) % (16384 - 16 + 1);
        live[k] = malloc(n);
        if (live[k] == NULL)
            return (void *)1;
        memset(live[k], k, n < 256 ? n : 256);
    }
    for (int k = 0; k < 64; k++)
        free(live[k]);
    return (void *)bad;
}

int plugin_run(int nthreads)
{
    pthread_t t[64];
    int failures = 0;
    if (g_table == NULL || nthreads > 64)
        return 1;
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)(i + 1)) != 0)
            return 1;
    for (int i = 0; i < nthreads; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += r != NULL;
    }
    return failures;
}
