// SPDX-License-Identifier: MIT
/* Suite `platform`: hak_fork_register returns only once a fork would run
 * the participant. The first registration installs the platform's atfork
 * handler (pthread_atfork, which may allocate); a second one, from another
 * thread while that installation is in progress, used to return at once:
 * its component then published its init, another thread took its locks,
 * and a fork before the handler was in copied them held into the child.
 *
 * Linked with -Wl,--wrap=pthread_atfork: the wrapper (the installation in
 * progress) first registers again from the installing thread itself (as
 * an allocation inside pthread_atfork that initialises a tier does: it must
 * not wait for itself), then starts a second thread that registers other
 * ops, and waits until that thread has either returned (wrong: the handler
 * is not installed yet) or sleeps in the registration (right), before it
 * installs. Nothing is timed: the waits are on states.
 * Exit status 0 if right, 1 with a line on stderr if not.
 */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hak_platform.h"

int __real_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));
int __wrap_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void));

static void nothing(void) {}
static const hak_fork_ops_t g_first = {nothing, nothing, nothing};
static const hak_fork_ops_t g_reentered = {nothing, nothing, nothing};
static const hak_fork_ops_t g_second = {nothing, nothing, nothing};
static int g_installed, g_started, g_returned, g_early;
static pid_t g_tid;
static pthread_t g_thread;

static void *second_registrant(void *arg)
{
    (void)arg;
    __atomic_store_n(&g_tid, gettid(), __ATOMIC_SEQ_CST);
    __atomic_store_n(&g_started, 1, __ATOMIC_SEQ_CST);
    hak_fork_register(&g_second);
    if (!__atomic_load_n(&g_installed, __ATOMIC_SEQ_CST))
        g_early = 1;
    __atomic_store_n(&g_returned, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* The state letter of one of this process's threads (/proc/self/task). */
static char task_state(pid_t tid)
{
    char path[64], buf[256];
    snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return '?';
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    const char *close_paren = strrchr(buf, ')'); /* "tid (comm) S ..." */
    return close_paren && close_paren[1] == ' ' ? close_paren[2] : '?';
}

int __wrap_pthread_atfork(void (*prepare)(void), void (*parent)(void), void (*child)(void))
{
    hak_fork_register(&g_reentered); /* returns: a hang is the test's timeout */
    if (pthread_create(&g_thread, NULL, second_registrant, NULL) != 0)
        return -1;
    while (!__atomic_load_n(&g_started, __ATOMIC_SEQ_CST))
        sched_yield();
    while (!__atomic_load_n(&g_returned, __ATOMIC_SEQ_CST) && task_state(g_tid) != 'S')
        sched_yield();
    int rc = __real_pthread_atfork(prepare, parent, child);
    __atomic_store_n(&g_installed, 1, __ATOMIC_SEQ_CST);
    return rc;
}

int main(void)
{
    if (hak_fork_register(&g_first) != 0)
        return 1;
    pthread_join(g_thread, NULL);
    if (g_early) {
        fprintf(stderr, "fork_install: a registration returned before the atfork handler was installed\n");
        return 1;
    }
    return 0;
}
