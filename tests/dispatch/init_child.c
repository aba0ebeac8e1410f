// SPDX-License-Identifier: MIT
/* Suite `dispatch`: the first allocator calls of a process come from many
 * threads at once (released together by a barrier), and every entry point
 * works for each; no recursion, no deadlock (meson's timeout catches a
 * hang). Nothing here depends on hakmem's constructors having run. */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define THREADS 16
static pthread_barrier_t g_start;

static void *first_calls(void *arg)
{
    uintptr_t k = (uintptr_t)arg;
    pthread_barrier_wait(&g_start);
    void *v[6] = {malloc(k * 8 + 1), calloc(3, 100), realloc(NULL, 3000), aligned_alloc(64, 256),
                  malloc(100000), malloc(2u << 20)};
    for (int i = 0; i < 6; i++) {
        if (v[i] == NULL || ((uintptr_t)v[i] & 15) != 0)
            return (void *)1;
        memset(v[i], (int)k, 8);
    }
    for (int i = 0; i < 6; i++)
        free(v[i]);
    return NULL;
}

int main(void)
{
    pthread_t t[THREADS];
    pthread_barrier_init(&g_start, NULL, THREADS);
    for (uintptr_t i = 0; i < THREADS; i++)
        if (pthread_create(&t[i], NULL, first_calls, (void *)i) != 0)
            return 2;
    int bad = 0;
    for (int i = 0; i < THREADS; i++) {
        void *r;
        pthread_join(t[i], &r);
        bad += r != NULL;
    }
    return bad;
}
