// SPDX-License-Identifier: MIT
/* ht_fork_init.h - a tier's first use registers its fork participant
 * before it publishes its init. A thread that sees the tier initialised
 * takes its locks; if a fork could still miss the participant, the child
 * could copy one of those locks held. (Each tier marked itself done
 * first, because registering may allocate.)
 *
 * The program is linked with -Wl,--wrap=hak_fork_register. The main
 * thread's use_tier() is the process's first use of the tier: its init
 * calls hak_fork_register, and the wrapper holds that first call while a
 * second thread uses the tier (use_tier() too) and joins it. When the
 * second thread's use returns, the tier's participant must be registered
 * (the second thread, finding the init unpublished, registered it itself).
 * The including file defines use_tier() (one allocation and its free).
 * Exit status 0 if so, 1 with a line on stderr if not. Nothing is timed.
 */
#ifndef HT_FORK_INIT_H
#define HT_FORK_INIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>

#include "hak_platform.h"

int __real_hak_fork_register(const hak_fork_ops_t *ops);
int __wrap_hak_fork_register(const hak_fork_ops_t *ops);

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static const hak_fork_ops_t *g_registered[8]; /* registrations that returned */
static int g_nregistered, g_calls, g_used_unregistered;
static const hak_fork_ops_t *g_held;          /* the first one, held in the wrapper */

static bool registered(const hak_fork_ops_t *ops)
{
    bool found = false;
    pthread_mutex_lock(&g_mu);
    for (int i = 0; i < g_nregistered; i++)
        found |= g_registered[i] == ops;
    pthread_mutex_unlock(&g_mu);
    return found;
}

static void *second_user(void *arg)
{
    (void)arg;
    use_tier();
    if (!registered(g_held))
        g_used_unregistered = 1; /* served while a fork would not take the tier's locks */
    return NULL;
}

int __wrap_hak_fork_register(const hak_fork_ops_t *ops)
{
    if (__atomic_fetch_add(&g_calls, 1, __ATOMIC_SEQ_CST) == 0) {
        g_held = ops;
        pthread_t t;
        if (pthread_create(&t, NULL, second_user, NULL) != 0 || pthread_join(t, NULL) != 0)
            g_used_unregistered = 1;
    }
    int rc = __real_hak_fork_register(ops);
    pthread_mutex_lock(&g_mu);
    if (g_nregistered < 8)
        g_registered[g_nregistered++] = ops;
    pthread_mutex_unlock(&g_mu);
    return rc;
}

int main(void)
{
    use_tier();
    if (g_calls == 0) {
        fprintf(stderr, "fork_init: the tier registered no fork participant\n");
        return 1;
    }
    if (g_used_unregistered) {
        fprintf(stderr, "fork_init: a second thread used the tier before its fork participant was registered\n");
        return 1;
    }
    return 0;
}

#endif
