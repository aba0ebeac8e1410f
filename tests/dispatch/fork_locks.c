// SPDX-License-Identifier: MIT
/* fork_locks.c - fork() and the allocator's locks (found by running glibc
 * 2.36's malloc tests on hakmem: tst-mallocfork2 and
 * tst-malloc-fork-deadlock hung). A deadlock shows as this test's timeout.
 *
 *   fork_locks signal   a single-threaded process forks from a signal
 *                       handler that interrupts malloc and free: the
 *                       handler must not wait for a lock its own thread
 *                       holds (glibc: fork is async-signal-safe, and malloc
 *                       is consistent in a single-threaded child).
 *   fork_locks stdio    threads that fork, threads that read long lines
 *                       with getline (malloc under a FILE lock) and one in
 *                       fflush(NULL) (stdio's list lock, then every FILE
 *                       lock): the allocator's locks must come after the
 *                       list lock in fork (glibc bug 19431).
 * Exit status 0 when every fork's child exited as expected.
 */
#define _GNU_SOURCE
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t g_forks, g_bad;

static void on_signal(int sig)
{
    (void)sig;
    pid_t pid = fork();
    if (pid == 0)
        _exit(0);
    int st;
    if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
        g_bad = 1;
    g_forks++;
}

/* Sizes up to 70000 cover tiny, mid and L25, whose slow paths take locks. */
static int run_signal(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESTART;
    sigaction(SIGUSR1, &sa, NULL);
    pid_t parent = getpid();
    pid_t sender = fork();
    if (sender == 0) {
        for (;;) {
            if (kill(parent, SIGUSR1) != 0)
                _exit(0);
            usleep(100);
        }
    }
    static void *slots[1009];
    unsigned seed = 1;
    /* 200,000 rounds, and on until the first signal came (a loaded
     * machine may not run the sender before they are done) */
    for (long i = 0; (i < 200000 || (g_forks == 0 && i < 100000000)) && g_forks < 2000; i++) {
        int s = rand_r(&seed) % 1009;
        free(slots[s]);
        size_t size = (size_t)(rand_r(&seed) % 70000);
        slots[s] = malloc(size);
        if (slots[s] == NULL)
            return 1;
        memset(slots[s], (int)i, size < 8 ? size : 8);
    }
    kill(sender, SIGKILL);
    waitpid(sender, NULL, 0);
    for (int s = 0; s < 1009; s++)
        free(slots[s]);
    printf("signal: %d forks from the handler\n", (int)g_forks);
    return g_bad || g_forks == 0;
}

/* The run ends when the readers are done (a count, not a time: how many
 * forks fit in it depends on the machine); the forkers fork until then. */
#define READS_PER_THREAD 300
static volatile int g_stop;
static int g_nforks;
static char g_path[] = "/tmp/hakmem-fork-locks-XXXXXX";

static void *forker(void *arg)
{
    (void)arg;
    while (!g_stop) {
        pid_t pid = fork();
        if (pid == 0)
            _exit(17);
        int st;
        if (pid < 0 || waitpid(pid, &st, 0) != pid || !WIFEXITED(st) || WEXITSTATUS(st) != 17)
            g_bad = 1;
        __atomic_fetch_add(&g_nforks, 1, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void *reader(void *arg)
{
    (void)arg;
    FILE *f = fopen(g_path, "r");
    if (f == NULL) {
        g_bad = 1;
        return NULL;
    }
    for (int i = 0; i < READS_PER_THREAD; i++) {
        rewind(f);
        char *line = NULL;
        size_t n = 0;
        if (getline(&line, &n, f) != 50001)
            g_bad = 1;
        free(line);
    }
    fclose(f);
    return NULL;
}

static void *flusher(void *arg)
{
    (void)arg;
    while (!g_stop)
        fflush(NULL);
    return NULL;
}

static int run_stdio(void)
{
    int fd = mkstemp(g_path);
    FILE *f = fd >= 0 ? fdopen(fd, "w") : NULL;
    if (f == NULL)
        return 1;
    for (int i = 0; i < 50000; i++)
        fputc('x', f);
    fputc('\n', f);
    fclose(f);
    pthread_t forkers[4], readers[8], flush;
    for (int i = 0; i < 4; i++)
        pthread_create(&forkers[i], NULL, forker, NULL);
    for (int i = 0; i < 8; i++)
        pthread_create(&readers[i], NULL, reader, NULL);
    pthread_create(&flush, NULL, flusher, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(readers[i], NULL);
    g_stop = 1;
    pthread_join(flush, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(forkers[i], NULL);
    unlink(g_path);
    printf("stdio: %d forks beside %d getline calls and fflush(NULL)\n", g_nforks, 8 * READS_PER_THREAD);
    return g_bad;
}

int main(int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "signal") == 0)
        return run_signal();
    if (argc == 2 && strcmp(argv[1], "stdio") == 0)
        return run_stdio();
    fprintf(stderr, "usage: fork_locks signal|stdio\n");
    return 2;
}
