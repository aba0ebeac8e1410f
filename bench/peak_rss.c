// SPDX-License-Identifier: MIT
/* peak_rss: run a program and report its peak RSS from wait4()'s rusage.
 *
 * Why a launcher: on exec the kernel records the peak RSS of the process's
 * old address space in its ru_maxrss. A child that Python spawns directly
 * (vfork or fork) starts in Python's address space, so wait4() in the runner
 * would report at least Python's own peak (13 MiB and more) for every run.
 * This launcher is small: the child it forks carries only its few pages into
 * exec, and the ru_maxrss that wait4() returns here is the benchmark's own.
 *
 * usage: peak_rss [-p LIBRARY] PROGRAM [ARGS...]
 *   -p LIBRARY  run PROGRAM with LD_PRELOAD=LIBRARY (the launcher itself never
 *               runs under the allocator being measured)
 * After PROGRAM ends, the last line on stderr is
 *   PEAK_RSS maxrss_kib=N utime_s=U stime_s=S minflt=F majflt=J
 * (F and J: PROGRAM's minor and major page faults, ru_minflt and
 * ru_majflt; they come last so that a parser of the older line without
 * them still reads the first three fields) and the exit status is
 * PROGRAM's (128+signal if a signal killed it).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

static const char usage[] = "usage: peak_rss [-p LIBRARY] PROGRAM [ARGS...]\n";

static double seconds(struct timeval tv)
{
    return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
    int first = 1;
    const char *preload = NULL;
    if (argc >= 3 && strcmp(argv[1], "-p") == 0) {
        preload = argv[2];
        first = 3;
    }
    if (first >= argc || argv[first][0] == '-') {
        fputs(usage, stderr);
        return 2;
    }

    pid_t pid = fork();
    if (pid < 0) {
        perror("peak_rss: fork");
        return 127;
    }
    if (pid == 0) {
        if (preload != NULL)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        execvp(argv[first], &argv[first]);
        fprintf(stderr, "peak_rss: cannot run %s: %s\n", argv[first], strerror(errno));
        _exit(127);
    }

    int status;
    struct rusage ru;
    while (wait4(pid, &status, 0, &ru) < 0) {
        if (errno != EINTR) {
            perror("peak_rss: wait4");
            return 127;
        }
    }
    fprintf(stderr, "PEAK_RSS maxrss_kib=%ld utime_s=%.3f stime_s=%.3f minflt=%ld majflt=%ld\n",
            ru.ru_maxrss, seconds(ru.ru_utime), seconds(ru.ru_stime), ru.ru_minflt, ru.ru_majflt);
    if (WIFSIGNALED(status))
        return 128 + WTERMSIG(status);
    return WEXITSTATUS(status);
}
