// SPDX-License-Identifier: MIT
/* A plugin that links libhakmem.a (built with -Dtls_model=global-dynamic)
 * and allocates through the hak_ API from several threads; loaded with
 * dlopen() by test_tls_dlopen. */
#include <pthread.h>
#include <stdint.h>
#include <string.h>

#include "hakmem/hakmem.h"

__attribute__((visibility("default"))) int plugin_run(int nthreads);

static void *worker(void *arg)
{
    uintptr_t k = (uintptr_t)arg, bad = 0;
    void *v[256] = {0};
    for (int round = 0; round < 200; round++) {
        for (int i = 0; i < 256; i++) {
            size_t n = (size_t)((i * 37 + round) % 3000) + 1;
            v[i] = hak_malloc(n);
            if (v[i] == NULL)
                return (void *)1;
            memset(v[i], (int)(k + (uintptr_t)i), n < 64 ? n : 64);
        }
        for (int i = 0; i < 256; i++) {
            if (((unsigned char *)v[i])[0] != (unsigned char)(k + (uintptr_t)i))
                bad = 1;
            hak_free(v[i]);
        }
    }
    return (void *)bad;
}

int plugin_run(int nthreads)
{
    pthread_t t[16];
    int failures = 0;
    for (int i = 0; i < nthreads && i < 16; i++)
        pthread_create(&t[i], NULL, worker, (void *)(uintptr_t)i);
    for (int i = 0; i < nthreads && i < 16; i++) {
        void *r;
        pthread_join(t[i], &r);
        failures += r != NULL;
    }
    return failures;
}
