// SPDX-License-Identifier: MIT
/* platform_posix.c - the posix backend: mmap, madvise, mincore, pthread
 * keys and atfork, rdtsc, the environment. See hak_platform.h for the
 * contract. Every function preserves errno unless it reports a failure. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "hak_platform.h"
#include "hak_front.h"
#include "hak_purge.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <linux/futex.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

HAK_INTERNAL void hak_os_count_map_(size_t size);
HAK_INTERNAL void hak_os_count_unmap_(size_t size);
HAK_INTERNAL void hak_os_count_decommit_(size_t size);
extern size_t hak_platform_page_mask_;

static size_t g_page_size;

size_t hak_os_page_size(void)
{
    size_t ps = __atomic_load_n(&g_page_size, __ATOMIC_RELAXED);
    if (HAK_UNLIKELY(ps == 0)) {
        long v = sysconf(_SC_PAGESIZE);
        ps = v > 0 ? (size_t)v : 4096;
        __atomic_store_n(&hak_platform_page_mask_, ps - 1, __ATOMIC_RELAXED);
        __atomic_store_n(&g_page_size, ps, __ATOMIC_RELAXED);
    }
    return ps;
}

__attribute__((constructor(101))) static void platform_init(void) { (void)hak_os_page_size(); }

void *hak_os_map(size_t size, size_t align)
{
    size_t ps = hak_os_page_size();
    if (align < ps)
        align = ps;
    if (size == 0 || size > ((size_t)1 << 46) || align > ((size_t)1 << 40)) {
        errno = ENOMEM;
        return NULL;
    }
    size = (size + ps - 1) & ~(ps - 1);
    int saved = errno;
    if (align == ps) {
        void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) {
            errno = ENOMEM;
            return NULL;
        }
        hak_os_count_map_(size);
        return p;
    }
    /* Over-map by align - page and trim both ends. */
    size_t total = size + align - ps;
    if (total < size) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = mmap(NULL, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (raw == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    char *p = (char *)(((uintptr_t)raw + align - 1) & ~(uintptr_t)(align - 1));
    size_t head = (size_t)(p - raw), tail = total - head - size;
    if (head)
        munmap(raw, head);
    if (tail)
        munmap(p + size, tail);
    errno = saved;
    hak_os_count_map_(size);
    return p;
}

int hak_os_unmap(void *p, size_t size)
{
    int saved = errno;
    int rc = munmap(p, size);
    errno = saved;
    if (rc == 0)
        hak_os_count_unmap_(size);
    return rc;
}

int hak_os_decommit(void *p, size_t size)
{
    int saved = errno;
    int rc = madvise(p, size, MADV_DONTNEED);
    errno = saved;
    if (rc == 0)
        hak_os_count_decommit_(size);
    return rc;
}

int hak_os_purge_lazy(void *p, size_t size)
{
    int saved = errno;
    int rc = madvise(p, size, MADV_FREE);
    if (rc != 0)
        rc = madvise(p, size, MADV_DONTNEED);
    errno = saved;
    return rc;
}

void *hak_os_remap(void *p, size_t old_size, size_t new_size, bool may_move)
{
    void *q = mremap(p, old_size, new_size, may_move ? MREMAP_MAYMOVE : 0);
    if (q == MAP_FAILED) {
        errno = ENOMEM;
        return NULL;
    }
    if (new_size > old_size)
        hak_os_count_map_(new_size - old_size);
    else
        hak_os_count_unmap_(old_size - new_size);
    return q;
}

bool hak_is_memory_readable(const void *p)
{
    size_t ps = hak_os_page_size();
    unsigned char vec;
    void *page = (void *)((uintptr_t)p & ~(uintptr_t)(ps - 1));
    int saved = errno;
    int rc = mincore(page, ps, &vec);
    errno = saved;
    return rc == 0;
}

bool hak_os_read(void *dst, const void *src, size_t n)
{
    int saved = errno;
    struct iovec local = {dst, n}, remote = {(void *)src, n};
    ssize_t got = process_vm_readv(getpid(), &local, 1, &remote, 1, 0);
    bool refused = got < 0 && errno != EFAULT; /* ENOSYS, EPERM: a sandbox */
    errno = saved;
    if (!refused)
        return got == (ssize_t)n;
    /* mincore says mapped, not readable (a PROT_NONE page passes) */
    size_t ps = hak_os_page_size();
    for (uintptr_t a = (uintptr_t)src & ~(uintptr_t)(ps - 1); a < (uintptr_t)src + n; a += ps)
        if (!hak_is_memory_readable((const void *)a))
            return false;
    memcpy(dst, src, n);
    return true;
}

/* ----------------------------------------------------------- page map */

uint8_t *hak_pagemap_l1_[HAK_PAGEMAP_L1_SIZE];
static hak_lock_t g_pagemap_lock = HAK_LOCK_INIT;

#define L2_BYTES ((size_t)1 << HAK_PAGEMAP_L2_SHIFT)
#define L2_INDEX(a) (((a) >> HAK_PAGE_SHIFT) & (L2_BYTES - 1))

/* The level-2 table covering address a, mapped if `create`; NULL if absent
 * (or with ENOMEM if it could not be mapped). */
static uint8_t *pagemap_l2(uintptr_t a, bool create)
{
    uint8_t **slot = &hak_pagemap_l1_[a >> HAK_PAGEMAP_L1_SHIFT];
    uint8_t *l2 = __atomic_load_n(slot, __ATOMIC_ACQUIRE);
    if (l2 != NULL || !create)
        return l2;
    hak_lock(&g_pagemap_lock);
    l2 = *slot;
    if (l2 == NULL) {
        int saved = errno;
        void *m = mmap(NULL, L2_BYTES, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
        if (m != MAP_FAILED) {
            errno = saved;
            l2 = m;
            __atomic_store_n(slot, l2, __ATOMIC_RELEASE);
        } else {
            errno = ENOMEM;
        }
    }
    hak_unlock(&g_pagemap_lock);
    return l2;
}

int hak_chunk_set_tag(void *base, size_t size, unsigned tag)
{
    uintptr_t a = (uintptr_t)base, end = a + size;
    unsigned kind = tag == HAK_TAG_NONE ? 0 : HAK_KIND_OWNED(tag);
    for (; a < end; a += HAK_CHUNK_SIZE) {
        if (a >> 47) {
            errno = ENOMEM;
            return -1;
        }
        uint8_t *l2 = pagemap_l2(a, tag != HAK_TAG_NONE);
        if (l2 == NULL) {
            if (tag == HAK_TAG_NONE)
                continue;
            return -1;
        }
        for (size_t i = 0; i < HAK_CHUNK_PAGES; i++)
            __atomic_store_n(&l2[L2_INDEX(a) + i], (uint8_t)kind, __ATOMIC_RELEASE);
    }
    return 0;
}

void hak_page_set_kind(const void *p, unsigned n, unsigned kind)
{
    uintptr_t a = (uintptr_t)p;
    uint8_t *l2 = pagemap_l2(a, false);
    for (unsigned i = 0; i < n; i++)
        __atomic_store_n(&l2[L2_INDEX(a) + i], (uint8_t)kind, __ATOMIC_RELEASE);
}

int hak_platform_arena_init(void *buf, size_t len)
{
    (void)buf;
    (void)len;
    errno = ENOSYS;
    return -1;
}

/* ---------------------------------------------------------------- time */

uint64_t hak_os_clock_ms(void)
{
    struct timespec ts;
    int saved = errno;
    if (clock_gettime(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
        errno = saved;
        return 0;
    }
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

uint64_t hak_cycles(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned lo, hi;
    __asm__ __volatile__("rdtsc" : "=a"(lo), "=d"(hi));
    return ((uint64_t)hi << 32) | lo;
#else
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
#endif
}

/* ------------------------------------------------------------- threads */

#define HAK_EXIT_MAX 8
static pthread_key_t g_exit_key;
static int g_exit_key_ok; /* 1 once the key exists */
static void (*g_exit_fns[HAK_EXIT_MAX])(void);
static int g_exit_n;
static hak_lock_t g_key_lock = HAK_LOCK_INIT;

static void run_exit_hooks(void *arg)
{
    (void)arg;
    int n = __atomic_load_n(&g_exit_n, __ATOMIC_ACQUIRE);
    for (int i = 0; i < n; i++)
        g_exit_fns[i]();
    hak_purge_poll(); /* what the thread sent home is dirty now */
}

int hak_thread_exit_register(void (*fn)(void))
{
    int rc = 0;
    hak_lock(&g_key_lock);
    if (!g_exit_key_ok) {
        int saved = errno;
        if (pthread_key_create(&g_exit_key, run_exit_hooks) == 0)
            __atomic_store_n(&g_exit_key_ok, 1, __ATOMIC_RELEASE);
        else
            rc = -1;
        errno = saved;
    }
    int i;
    for (i = 0; i < g_exit_n; i++)
        if (g_exit_fns[i] == fn)
            break;
    if (rc == 0 && i == g_exit_n) {
        if (g_exit_n == HAK_EXIT_MAX) {
            rc = -1;
        } else {
            g_exit_fns[g_exit_n] = fn;
            __atomic_store_n(&g_exit_n, g_exit_n + 1, __ATOMIC_RELEASE);
        }
    }
    hak_unlock(&g_key_lock);
    return rc;
}

int hak_thread_exit_arm(void)
{
    if (!__atomic_load_n(&g_exit_key_ok, __ATOMIC_ACQUIRE))
        return -1;
    int saved = errno;
    /* Any non-NULL value makes the destructor run; glibc clears it first. */
    int rc = pthread_setspecific(g_exit_key, (void *)1) == 0 ? 0 : -1;
    errno = saved;
    return rc;
}

/* The lock's sleep and wake (hak_lock_slow_, hak_unlock): a private futex
 * on the lock word. The wait returns at once if the word is no longer val,
 * and on a signal; the caller loops. */
HAK_INTERNAL void hak_os_lock_wait_(int *v, int val);
HAK_INTERNAL void hak_os_lock_wait_(int *v, int val)
{
    int saved = errno;
    syscall(SYS_futex, v, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
    errno = saved;
}

HAK_INTERNAL void hak_os_lock_wake_(int *v);
HAK_INTERNAL void hak_os_lock_wake_(int *v)
{
    int saved = errno;
    syscall(SYS_futex, v, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
    errno = saved;
}

uint64_t hak_os_err_id(void)
{
    struct stat st;
    int saved = errno;
    int rc = fstat(2, &st);
    errno = saved;
    if (rc != 0)
        return 0;
    uint64_t id = ((uint64_t)st.st_dev << 32) ^ (uint64_t)st.st_ino ^ ((uint64_t)st.st_rdev << 16);
    return id ? id : 1;
}

uint64_t hak_os_pid(void) { return (uint64_t)getpid(); }

size_t hak_os_rss_bytes(void)
{
    char buf[128];
    int saved = errno;
    int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
    ssize_t n = fd >= 0 ? read(fd, buf, sizeof buf - 1) : -1;
    if (fd >= 0)
        close(fd);
    errno = saved;
    if (n <= 0)
        return 0;
    buf[n] = 0;
    const char *s = buf; /* "size resident shared ...", in pages */
    while (*s && *s != ' ')
        s++;
    while (*s == ' ')
        s++;
    size_t pages = 0;
    while (*s >= '0' && *s <= '9')
        pages = pages * 10 + (size_t)(*s++ - '0');
    return pages * hak_os_page_size();
}

/* The front end's bins (hak_front.h). */
__thread hak_bin_t hak_bins_[HAK_KIND_NSMALL + 1]; /* + the malloc gate (hak_front.h) */

static __thread char t_id_anchor;

uintptr_t hak_thread_id(void) { return (uintptr_t)&t_id_anchor; }

HAK_INTERNAL void hak_fork_prepare_(void);
HAK_INTERNAL void hak_fork_parent_(void);
HAK_INTERNAL void hak_fork_child_(void);

/* fork() and the allocator's locks, as glibc orders its own malloc's:
 *  - A single-threaded process takes no lock: no other thread can be
 *    inside the allocator, and a fork from a signal handler that
 *    interrupted malloc must not wait for the lock its own thread holds
 *    (both processes return into the interrupted call, which finishes).
 *  - Otherwise stdio's list lock comes first, then the allocator's: a
 *    thread inside fflush(NULL) holds the list lock while it waits for a
 *    FILE lock whose owner may be inside malloc; taking the allocator's
 *    locks first would close that cycle (glibc bug 19431's test). glibc's
 *    fork takes the list lock again after the prepare handlers (it is
 *    recursive), releases its own hold in the parent and resets the lock
 *    in the child before the child handlers run.
 * glibc exports the list lock functions; elsewhere they are absent and
 * the weak references stay NULL. */
extern void _IO_list_lock(void) __attribute__((weak));
extern void _IO_list_unlock(void) __attribute__((weak));
extern void _IO_list_resetlock(void) __attribute__((weak));
#if defined(__has_include)
#if __has_include(<sys/single_threaded.h>)
#include <sys/single_threaded.h>
#define HAK_SINGLE_THREADED() (__libc_single_threaded != 0)
#endif
#endif
#ifndef HAK_SINGLE_THREADED
#define HAK_SINGLE_THREADED() 0
#endif

static __thread int t_fork_locked; /* this thread's fork took the locks */

static void os_fork_prepare(void)
{
    t_fork_locked = !HAK_SINGLE_THREADED();
    if (!t_fork_locked)
        return;
    if (_IO_list_lock)
        _IO_list_lock();
    hak_fork_prepare_();
}

static void os_fork_parent(void)
{
    if (!t_fork_locked)
        return;
    t_fork_locked = 0;
    hak_fork_parent_();
    if (_IO_list_unlock)
        _IO_list_unlock();
}

static void os_fork_child(void)
{
    if (!t_fork_locked)
        return;
    t_fork_locked = 0;
    hak_fork_child_();
    if (_IO_list_resetlock)
        _IO_list_resetlock();
}

int hak_os_atfork_(void);
HAK_INTERNAL int hak_os_atfork_(void)
{
    /* pthread_atfork may allocate (glibc keeps its handlers in a dynarray):
     * hak_fork_register lets a registration re-entering from there pass. */
    return pthread_atfork(os_fork_prepare, os_fork_parent, os_fork_child) == 0 ? 0 : -1;
}

uint64_t hak_random_word(void)
{
    uint64_t w = hak_cycles() ^ (uint64_t)(uintptr_t)&w;
    const void *at = (const void *)getauxval(AT_RANDOM); /* 16 bytes, any alignment */
    if (at) {
        uint64_t r[2];
        memcpy(r, at, sizeof r);
        w ^= r[0] ^ (r[1] << 1);
    }
    w ^= w >> 33;
    w *= 0xff51afd7ed558ccdULL;
    w ^= w >> 33;
    return w;
}

/* --------------------------------------------------------- environment */

extern char **environ;

const char *hak_getenv(const char *name)
{
    if (getauxval(AT_SECURE))
        return NULL;
    char **env = environ;
    if (env == NULL)
        return NULL;
    size_t n = strlen(name);
    for (; *env; env++) {
        if (strncmp(*env, name, n) == 0 && (*env)[n] == '=')
            return *env + n + 1;
    }
    return NULL;
}

const char *hak_env_at(size_t i)
{
    if (getauxval(AT_SECURE))
        return NULL;
    char **env = environ;
    if (env == NULL)
        return NULL;
    for (size_t k = 0; k < i; k++)
        if (env[k] == NULL)
            return NULL;
    return env[i];
}

/* ------------------------------------------------------------- files */

const char *hak_os_self_path(void)
{
    Dl_info info;
    int saved = errno;
    int ok = dladdr((const void *)&hak_os_self_path, &info);
    errno = saved;
    return ok && info.dli_fname && info.dli_fname[0] ? info.dli_fname : NULL;
}

int hak_os_open_report(const char *pattern)
{
    char path[4096], pid[24];
    size_t n = 0, plen = hak_fmt_u64(pid, hak_os_pid());
    for (const char *c = pattern; *c; c++) {
        const char *add = c;
        size_t len = 1;
        if (c[0] == '%' && c[1] == 'p') {
            add = pid;
            len = plen;
            c++;
        } else if (c[0] == '%' && c[1] == '%') {
            c++;
        }
        if (n + len >= sizeof path)
            return -ENAMETOOLONG;
        memcpy(path + n, add, len);
        n += len;
    }
    if (n == 0)
        return -ENOENT;
    path[n] = 0;
    int saved = errno;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        fd = -errno;
    errno = saved;
    return fd;
}

void hak_os_write_fd(int fd, const char *s)
{
    int saved = errno;
    size_t len = strlen(s);
    while (len > 0) {
        ssize_t w = write(fd, s, len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        s += w;
        len -= (size_t)w;
    }
    errno = saved;
}

void hak_os_close_fd(int fd)
{
    int saved = errno;
    close(fd);
    errno = saved;
}
