// SPDX-License-Identifier: MIT
/* platform_common.c - the parts of the platform layer shared by both
 * backends: locks, allocation-free formatting and error output, the
 * mapped/committed byte counters, the free-list secret. The only OS call here is write(2)
 * (posix; the arena backend compiles it out); the lock's sleep and wake
 * are the backend's (futex in platform_posix.c). */
#include "hak_platform.h"
#include "hak_link.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#if !HAK_PLATFORM_ARENA
#include <unistd.h>
#endif

uintptr_t hak_lock_fork_owner_;

/* ------------------------------------------------------------- page kinds */

const uint8_t hak_kind_tier_[256] = {
    [HAK_KIND_TINY0 ... HAK_KIND_MID0 - 1] = HAK_TAG_TINY,
    [HAK_KIND_MID0 ... HAK_KIND_L250 - 1] = HAK_TAG_MID,
    [HAK_KIND_L250 ... HAK_KIND_NSMALL - 1] = HAK_TAG_L25,
    [HAK_KIND_SLOW(HAK_TAG_TINY)] = HAK_TAG_TINY,
    [HAK_KIND_SLOW(HAK_TAG_MID)] = HAK_TAG_MID,
    [HAK_KIND_SLOW(HAK_TAG_L25)] = HAK_TAG_L25,
    [HAK_KIND_OWNED(HAK_TAG_TINY)] = HAK_TAG_TINY,
    [HAK_KIND_OWNED(HAK_TAG_MID)] = HAK_TAG_MID,
    [HAK_KIND_OWNED(HAK_TAG_L25)] = HAK_TAG_L25,
};
size_t hak_platform_page_mask_ = 4095;

/* --------------------------------------------------------------- locks */

HAK_INTERNAL void hak_os_lock_wait_(int *v, int val);
HAK_INTERNAL void hak_os_lock_wake_(int *v);

void hak_lock_slow_(hak_lock_t *l)
{
    /* Spin first (4096 pauses: tens of microseconds or more, by CPU):
     * most holders are out soon, and a sleep costs two system calls and
     * the wake-up latency (producer-consumer hand-offs feel it). */
    for (unsigned spins = 0; spins < 4096; spins++) {
        __builtin_ia32_pause();
        if (__atomic_load_n(&l->v, __ATOMIC_RELAXED) == 0 && hak_lock_try0_(l))
            return;
    }
#if HAK_PLATFORM_ARENA
    while (!hak_lock_try0_(l))
        __builtin_ia32_pause();
#else
    /* Then sleep: mark the lock 2 ("held, waited for"), so that its
     * holder's unlock wakes one sleeper; whoever takes it from here takes
     * it as 2 (it cannot know whether others still sleep). */
    while (__atomic_exchange_n(&l->v, 2, __ATOMIC_ACQUIRE) != 0)
        hak_os_lock_wait_(&l->v, 2);
#endif
}

void hak_lock_wake_(hak_lock_t *l)
{
#if HAK_PLATFORM_ARENA
    (void)l;
#else
    hak_os_lock_wake_(&l->v);
#endif
}

void hak_lock_fork_begin(void)
{
    __atomic_store_n(&hak_lock_fork_owner_, hak_thread_id(), __ATOMIC_RELEASE);
}

void hak_lock_fork_end(void)
{
    __atomic_store_n(&hak_lock_fork_owner_, 0, __ATOMIC_RELEASE);
}

/* ------------------------------------------------------------- output */

size_t hak_fmt_u64(char *buf, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    for (size_t i = 0; i < n; i++)
        buf[i] = tmp[n - 1 - i];
    buf[n] = 0;
    return n;
}

size_t hak_fmt_hex(char *buf, uint64_t v)
{
    static const char digits[] = "0123456789abcdef";
    char tmp[24];
    size_t n = 0;
    do {
        tmp[n++] = digits[v & 15];
        v >>= 4;
    } while (v);
    buf[0] = '0';
    buf[1] = 'x';
    for (size_t i = 0; i < n; i++)
        buf[2 + i] = tmp[n - 1 - i];
    buf[n + 2] = 0;
    return n + 2;
}

void hak_write_err(const char *s)
{
    /* the arena backend writes nothing: embedded builds route reports
     * through the failure handler */
    hak_os_write_fd(2, s);
}

void hak_abort(void)
{
#if HAK_PLATFORM_ARENA
    __builtin_trap();
#else
    raise(SIGABRT);
    /* SIGABRT blocked or handled and returned: make sure we die. */
    signal(SIGABRT, SIG_DFL);
    raise(SIGABRT);
    __builtin_trap();
#endif
}

/* ------------------------------------------------------------ counters */

static size_t g_mapped, g_decommitted;

size_t hak_os_mapped_bytes(void) { return __atomic_load_n(&g_mapped, __ATOMIC_RELAXED); }

size_t hak_os_committed_bytes(void)
{
    size_t m = __atomic_load_n(&g_mapped, __ATOMIC_RELAXED);
    size_t d = __atomic_load_n(&g_decommitted, __ATOMIC_RELAXED);
    return m > d ? m - d : 0;
}

void hak_os_note_recommit(size_t size) { __atomic_fetch_sub(&g_decommitted, size, __ATOMIC_RELAXED); }
void hak_os_note_decommit(size_t size) { __atomic_fetch_add(&g_decommitted, size, __ATOMIC_RELAXED); }

/* The committed bytes only fall at an unmap or a decommit: their highest
 * value is the one just before one of those, or the current one. Racy by
 * design (relaxed): a statistic, as the counters themselves. */
static size_t g_committed_peak;

static void record_peak(void) { hak_peak_note(&g_committed_peak, hak_os_committed_bytes()); }

size_t hak_os_committed_peak_bytes(void)
{
    record_peak();
    return __atomic_load_n(&g_committed_peak, __ATOMIC_RELAXED);
}

/* Internal to the backends. */
HAK_INTERNAL void hak_os_count_map_(size_t size) { __atomic_fetch_add(&g_mapped, size, __ATOMIC_RELAXED); }
HAK_INTERNAL void hak_os_count_unmap_(size_t size)
{
    record_peak();
    __atomic_fetch_sub(&g_mapped, size, __ATOMIC_RELAXED);
}
HAK_INTERNAL void hak_os_count_decommit_(size_t size)
{
    record_peak();
    __atomic_fetch_add(&g_decommitted, size, __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- fork */

#define HAK_FORK_MAX 8
static const hak_fork_ops_t *g_fork_ops[HAK_FORK_MAX];
static int g_fork_n;
/* The atfork handler: not installed, being installed by g_fork_installer
 * of process g_fork_pid (who holds g_install_lock meanwhile), installed. */
enum { FORK_NONE, FORK_INSTALLING, FORK_INSTALLED };
static int g_fork_state;
static uintptr_t g_fork_installer;
static uint64_t g_fork_pid;
static hak_lock_t g_fork_lock = HAK_LOCK_INIT;
static hak_lock_t g_install_lock = HAK_LOCK_INIT;
HAK_INTERNAL int hak_os_atfork_(void);

/* A component registers before it publishes its init (a thread that sees
 * it initialised may take its locks), so this returns only once a fork
 * would run the participant: after the atfork handler is installed. The
 * installation may allocate (pthread_atfork), and the allocation may
 * initialise a tier, which registers here again on the installing thread:
 * that call returns at once (a fork waits for glibc's atfork lock, which
 * the installer holds until its handler is in). */
int hak_fork_register(const hak_fork_ops_t *ops)
{
    int rc = 0, install = 0, wait = 0;
    hak_lock(&g_fork_lock);
    int i;
    for (i = 0; i < g_fork_n; i++)
        if (g_fork_ops[i] == ops)
            break;
    if (i == g_fork_n) {
        if (g_fork_n == HAK_FORK_MAX)
            rc = -1;
        else
            __atomic_store_n(&g_fork_ops[g_fork_n++], ops, __ATOMIC_RELEASE);
    }
    if (g_fork_state == FORK_INSTALLING && g_fork_pid != hak_os_pid()) {
        /* a fork copied an installation in progress, before the handler
         * was in (else its child handler said installed): the installer
         * is not in this process, and neither is the handler */
        g_fork_state = FORK_NONE;
        g_install_lock.v = 0;
    }
    if (g_fork_state == FORK_NONE) {
        g_fork_state = FORK_INSTALLING;
        g_fork_installer = hak_thread_id();
        g_fork_pid = hak_os_pid();
        hak_lock(&g_install_lock);
        install = 1;
    } else if (g_fork_state == FORK_INSTALLING && g_fork_installer != hak_thread_id()) {
        wait = 1;
    }
    hak_unlock(&g_fork_lock);
    if (install) {
        if (hak_os_atfork_() != 0)
            rc = -1;
        hak_lock(&g_fork_lock);
        g_fork_state = FORK_INSTALLED;
        hak_unlock(&g_fork_lock);
        hak_unlock(&g_install_lock);
    } else if (wait) {
        hak_lock(&g_install_lock); /* until the installer is done */
        hak_unlock(&g_install_lock);
    }
    return rc;
}

HAK_INTERNAL void hak_fork_prepare_(void)
{
    hak_lock(&g_fork_lock);
    for (int i = 0; i < g_fork_n; i++)
        g_fork_ops[i]->prepare();
    hak_lock_fork_begin();
}

HAK_INTERNAL void hak_fork_parent_(void)
{
    hak_lock_fork_end();
    for (int i = g_fork_n - 1; i >= 0; i--)
        g_fork_ops[i]->parent();
    hak_unlock(&g_fork_lock);
}

HAK_INTERNAL void hak_purge_fork_child_(void);

HAK_INTERNAL void hak_fork_child_(void)
{
    hak_lock_fork_end();
    hak_purge_fork_child_();
    for (int i = g_fork_n - 1; i >= 0; i--)
        g_fork_ops[i]->child();
    /* the handler runs, so it is installed here, even if the parent's
     * installer had not said so yet */
    g_fork_state = FORK_INSTALLED;
    g_install_lock.v = 0;
    g_fork_lock.v = 0;
}

/* ------------------------------------------------------ free-list links */

#if HAK_VALIDATION >= 2
uintptr_t hak_link_secret_;

/* Once per process (hak_link.h): the first caller's word wins, a racing
 * one's is dropped, so no link is ever encoded with two secrets. Odd, so
 * never 0 (0 means "not set yet"). */
void hak_link_init(void)
{
    if (__atomic_load_n(&hak_link_secret_, __ATOMIC_ACQUIRE) != 0)
        return;
    uintptr_t unset = 0;
    __atomic_compare_exchange_n(&hak_link_secret_, &unset, (uintptr_t)hak_random_word() | 1, false,
                                __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}
#endif

/* ----------------------------------------------------------- failures */

static void default_failure(const char *op, const char *reason, const void *p)
{
    char addr[24];
    hak_fmt_hex(addr, (uint64_t)(uintptr_t)p);
    hak_write_err("hakmem: ");
    hak_write_err(op);
    hak_write_err("(): ");
    hak_write_err(reason);
    hak_write_err(" at ");
    hak_write_err(addr);
    hak_write_err("\n");
    hak_abort();
}

static hak_failure_handler_t g_failure = default_failure;

void hak_report_failure(const char *op, const char *reason, const void *p)
{
    __atomic_load_n(&g_failure, __ATOMIC_ACQUIRE)(op, reason, p);
}

hak_failure_handler_t hak_set_failure_handler(hak_failure_handler_t fn)
{
    return __atomic_exchange_n(&g_failure, fn ? fn : default_failure, __ATOMIC_ACQ_REL);
}
