// SPDX-License-Identifier: MIT
/* A small workload for the environment-variable tests: allocates over
 * every tier, frees, optionally forks a child (argv[1] = "fork"), or
 * closes stderr and writes argv[2]'s file through the fd 2 it gets back
 * (argv[1] = "reuse-stderr": the exit reports must not land in it), or
 * grows a large block by realloc and shrinks it again (argv[1] =
 * "realloc-large", under HAKMEM_MEM_TRACE=1: mallinfo2's bytes in use
 * follow the block and come back to where they were; exit status 1 and a
 * line on stderr if not), or calls mallopt with parameters hakmem ignores,
 * one it takes and one unknown (argv[1] = "mallopt"), or exits with a
 * 3 MiB block still allocated (argv[1] = "keep"), or holds 16 MiB of
 * 8000-byte blocks and an 8 MiB block, frees them and trims (argv[1] =
 * "peak": the peaks stay, the committed bytes fall), or runs a thread
 * whose first two requests are malloc(0) and malloc(24), kept until
 * main has looked (argv[1] = "thread-zero", under HAKMEM_MEM_TRACE=1: a
 * new thread's first request is traced whatever its size; exit status 1
 * and a line on stderr if the bytes in use do not follow). */
#include <fcntl.h>
#include <pthread.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* The traced bytes in use are within [lo, lo + slack): 1 if not. */
static int in_use_near(const char *when, size_t lo, size_t slack)
{
    size_t u = mallinfo2().uordblks;
    if (u >= lo && u - lo < slack)
        return 0;
    fprintf(stderr, "env_child: %s: %zu bytes in use, expected %zu .. %zu\n", when, u, lo, lo + slack);
    return 1;
}

static int realloc_large(void)
{
    const size_t mib = (size_t)1 << 20;
    size_t base = mallinfo2().uordblks;
    int bad = 0;
    char *p = malloc(2 * mib);
    if (p == NULL)
        return 1;
    memset(p, 1, 2 * mib);
    bad |= in_use_near("2 MiB", base + 2 * mib, mib);
    char *q = realloc(p, 64 * mib); /* grows: mremap */
    if (q == NULL)
        return 1;
    bad |= in_use_near("grown to 64 MiB", base + 64 * mib, mib);
    p = realloc(q, 3 * mib); /* shrinks in place */
    if (p == NULL)
        return 1;
    bad |= in_use_near("shrunk to 3 MiB", base + 3 * mib, mib);
    free(p);
    bad |= in_use_near("freed", base, 1);
    return bad;
}

static void *first_requests(void *arg)
{
    void **out = arg;
    out[0] = malloc(0);
    out[1] = malloc(24);
    return NULL;
}

static void *nothing(void *arg) { return arg; }

static int thread_zero(void)
{
    /* a first thread, which leaves what glibc keeps of a thread (its
     * descriptor's blocks, reused by the next one) */
    pthread_t t;
    if (pthread_create(&t, NULL, nothing, NULL) != 0 || pthread_join(t, NULL) != 0)
        return 1;
    size_t base = mallinfo2().uordblks;
    void *got[2] = {NULL, NULL};
    if (pthread_create(&t, NULL, first_requests, got) != 0 || pthread_join(t, NULL) != 0 || !got[0] || !got[1])
        return 1;
    /* both traced: their usable sizes are in use */
    size_t both = malloc_usable_size(got[0]) + malloc_usable_size(got[1]);
    int bad = in_use_near("a thread's malloc(0) and malloc(24)", base + both, 1);
    free(got[0]);
    free(got[1]);
    return bad | in_use_near("both freed", base, 1);
}

int main(int argc, char **argv)
{
    void *v[400];
    for (int i = 0; i < 400; i++) {
        v[i] = malloc((size_t)(i % 40) * 97 + (i == 399 ? (2 << 20) : 1));
        memset(v[i], 1, 8);
    }
    for (int i = 0; i < 400; i += 2)
        free(v[i]);
    if (argc > 1 && strcmp(argv[1], "fork") == 0) {
        pid_t pid = fork();
        if (pid == 0) {
            free(malloc(10));
            exit(0);
        }
        waitpid(pid, NULL, 0);
    }
    for (int i = 1; i < 400; i += 2)
        free(v[i]);
    if (argc > 1 && strcmp(argv[1], "realloc-large") == 0 && realloc_large() != 0)
        return 1;
    if (argc > 1 && strcmp(argv[1], "thread-zero") == 0 && thread_zero() != 0)
        return 1;
    if (argc > 1 && strcmp(argv[1], "mallopt") == 0) {
        if (mallopt(M_ARENA_MAX, 2) != 1 || mallopt(M_MXFAST, 0) != 1 || mallopt(M_TRIM_THRESHOLD, 1 << 24) != 1 ||
            mallopt(12345, 1) != 0)
            return 1;
    }
    if (argc > 1 && strcmp(argv[1], "keep") == 0) {
        char *keep = malloc(3 << 20);
        memset(keep, 1, 3 << 20);
    }
    if (argc > 1 && strcmp(argv[1], "peak") == 0) {
        static void *mids[2048];
        for (int i = 0; i < 2048; i++) {
            mids[i] = malloc(8000);
            memset(mids[i], 1, 8000);
        }
        char *big = malloc(8 << 20);
        memset(big, 1, 8 << 20);
        free(big);
        for (int i = 0; i < 2048; i++)
            free(mids[i]);
        malloc_trim(0);
    }
    if (argc > 2 && strcmp(argv[1], "reuse-stderr") == 0) {
        close(2);
        int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (fd != 2 || write(fd, "PAYLOAD\n", 8) != 8)
            return 1;
    }
    return 0;
}
