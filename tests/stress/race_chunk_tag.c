// SPDX-License-Identifier: MIT
/* race_chunk_tag.c - suite `stress`, TSan builds only: the chunk map's tag
 * byte is written atomically (hak_chunk_set_tag, src/platform/
 * platform_posix.c) but read with a plain load (hak_chunk_tag,
 * src/platform/hak_platform.h). When a mid/L25 chunk is unmapped
 * (chunk_unmap, src/mid/pool.c: tag := NONE, then munmap) and another
 * thread's next mapping (a large block) lands at the same address, that
 * thread's free / usable-size reads the tag byte the first thread wrote,
 * with no happens-before that C11 knows of (only the kernel's ordering of
 * munmap and mmap): a data race by the language's rules, which TSan
 * reports ("data race ... in hak_chunk_tag"). The fix is a relaxed atomic
 * load in hak_chunk_tag (the same instruction on x86-64).
 *
 * Thread A fills L25 chunks and frees them (the pool unmaps the chunks it
 * does not keep); thread B maps and frees large blocks of the same size and
 * asks their usable size. Runs a fixed number of rounds; exits 0. Under
 * TSan a report makes the exit status 66. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "hakmem/hakmem.h"

#define ROUNDS 300
#define PER 24 /* 24 x 256 KiB: a few 2 MiB chunks */

static void *churn_l25(void *arg)
{
    (void)arg;
    void *v[PER];
    for (int r = 0; r < ROUNDS; r++) {
        for (int i = 0; i < PER; i++) {
            v[i] = hak_malloc(256 << 10);
            if (!v[i])
                abort();
            ((volatile char *)v[i])[0] = 1;
        }
        for (int i = 0; i < PER; i++)
            hak_free(v[i]);
    }
    return NULL;
}

static void *churn_large(void *arg)
{
    (void)arg;
    size_t sum = 0;
    for (int r = 0; r < ROUNDS * 8; r++) {
        void *p = hak_malloc((2 << 20) + 4096);
        if (!p)
            abort();
        sum += hak_usable_size(p);
        hak_free(p);
    }
    return (void *)(uintptr_t)(sum == 0);
}

int main(void)
{
    pthread_t a, b;
    void *rb = NULL;
    if (pthread_create(&a, NULL, churn_l25, NULL) || pthread_create(&b, NULL, churn_large, NULL))
        return 1;
    pthread_join(a, NULL);
    pthread_join(b, &rb);
    printf("race_chunk_tag: done\n");
    return rb != NULL;
}
