// SPDX-License-Identifier: MIT
/* sampler.c - a sampling profiler for machines without perf (this one:
 * no hardware counters; the 16-core device: no perf binary). Preload it
 * beside an allocator:
 *
 *   SAMPLER_OUT=/tmp/s LD_PRELOAD="build/libhakmem.so build/bench/libsampler.so" \
 *       build/bench/bench_random_mixed 100000000 4096 42 1
 *   python3 bench/sampler_report.py /tmp/s.<pid> [TOP] [LIBRARY]
 *
 * Every 100 us of CPU time (ITIMER_PROF; the kernel's tick may make it
 * coarser: a few seconds of run give a few hundred samples) the signal
 * handler records the interrupted instruction pointer; at exit the process
 * writes its /proc/self/maps and the samples to SAMPLER_OUT.<pid>. The
 * report maps them to functions (nm) and, for one library, to addresses to
 * read beside objdump -d. Samples land on the instruction after a stall
 * (skid): read a hot address as "waiting on what came just before".
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <ucontext.h>
#include <unistd.h>

#define MAX_SAMPLES (1 << 22)
static unsigned long g_samples[MAX_SAMPLES];
static int g_n;

static void on_prof(int sig, siginfo_t *si, void *ctx)
{
    (void)sig;
    (void)si;
    int i = __atomic_fetch_add(&g_n, 1, __ATOMIC_RELAXED);
    if (i < MAX_SAMPLES)
        g_samples[i] = (unsigned long)((ucontext_t *)ctx)->uc_mcontext.gregs[REG_RIP];
}

static void write_all(int fd, const char *buf, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, buf, n);
        if (w <= 0)
            return;
        buf += w;
        n -= (size_t)w;
    }
}

static void finish(void)
{
    struct itimerval off = {{0, 0}, {0, 0}};
    setitimer(ITIMER_PROF, &off, NULL);
    const char *base = getenv("SAMPLER_OUT");
    char path[512];
    snprintf(path, sizeof path, "%s.%d", base ? base : "/tmp/sampler", (int)getpid());
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return;
    int maps = open("/proc/self/maps", O_RDONLY);
    char buf[65536];
    ssize_t r;
    while (maps >= 0 && (r = read(maps, buf, sizeof buf)) > 0)
        write_all(fd, buf, (size_t)r);
    if (maps >= 0)
        close(maps);
    write_all(fd, "--\n", 3);
    int n = g_n < MAX_SAMPLES ? g_n : MAX_SAMPLES;
    for (int i = 0; i < n; i++) {
        int k = snprintf(buf, sizeof buf, "%lx\n", g_samples[i]);
        write_all(fd, buf, (size_t)k);
    }
    close(fd);
}

__attribute__((constructor)) static void start(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_prof;
    sa.sa_flags = SA_SIGINFO | SA_RESTART;
    sigaction(SIGPROF, &sa, NULL);
    struct itimerval every = {{0, 100}, {0, 100}};
    setitimer(ITIMER_PROF, &every, NULL);
    atexit(finish);
}
