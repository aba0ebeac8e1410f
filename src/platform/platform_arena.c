// SPDX-License-Identifier: MIT
/* platform_arena.c - the embedded backend: no mmap, no pthread, no mincore,
 * no system call at all. The caller hands one buffer to
 * hak_platform_arena_init(); hak_os_map carves it front to back, aligned as
 * asked where the buffer allows, and fails with ENOMEM when it is used up.
 * Unmapping and decommitting are no-ops (the memory stays the caller's);
 * the tiers above reuse what they carved. One thread, unless the tier
 * serialises its calls with a hak_lock_t (a spin lock on atomics only).
 *
 * Ownership: the chunk map degenerates to one range, [lo, hi), the part of
 * the buffer handed out, tagged with the tier that asked for it. */
#include "hak_platform.h"

#include <errno.h>
#include <string.h>

HAK_INTERNAL void hak_os_count_map_(size_t size);

#define ARENA_PAGE 4096u

uintptr_t hak_arena_lo_, hak_arena_hi_;
uint8_t hak_arena_tag_;
static uintptr_t g_cur, g_end;

size_t hak_os_page_size(void) { return ARENA_PAGE; }

int hak_platform_arena_init(void *buf, size_t len)
{
    if (buf == NULL || len < ARENA_PAGE || (uintptr_t)buf + len < (uintptr_t)buf) {
        errno = EINVAL;
        return -1;
    }
    g_cur = (uintptr_t)buf;
    g_end = (uintptr_t)buf + len;
    hak_arena_lo_ = hak_arena_hi_ = 0;
    hak_arena_tag_ = HAK_TAG_NONE;
    return 0;
}

void *hak_os_map(size_t size, size_t align)
{
    if (align < 16)
        align = 16;
    uintptr_t p = (g_cur + align - 1) & ~(uintptr_t)(align - 1);
    if (g_cur == 0 || p < g_cur || p >= g_end || size == 0) {
        errno = ENOMEM;
        return NULL;
    }
    size_t avail = g_end - p;
    if (size > avail) {
        errno = ENOMEM;
        return NULL;
    }
    g_cur = p + size;
    hak_os_count_map_(size);
    return (void *)p;
}

int hak_os_unmap(void *p, size_t size)
{
    (void)p;
    (void)size;
    return 0;
}

int hak_os_decommit(void *p, size_t size)
{
    (void)p;
    (void)size;
    return 0;
}

int hak_os_purge_lazy(void *p, size_t size)
{
    (void)p;
    (void)size;
    return 0;
}

void *hak_os_remap(void *p, size_t old_size, size_t new_size, bool may_move)
{
    (void)p;
    (void)old_size;
    (void)new_size;
    (void)may_move;
    errno = ENOMEM;
    return NULL;
}

/* Without mincore nothing can be probed: only the arena itself is known. */
bool hak_is_memory_readable(const void *p)
{
    uintptr_t a = (uintptr_t)p;
    return a >= hak_arena_lo_ && a < hak_arena_hi_;
}

bool hak_os_read(void *dst, const void *src, size_t n)
{
    uintptr_t a = (uintptr_t)src;
    if (a < hak_arena_lo_ || a > hak_arena_hi_ || n > hak_arena_hi_ - a)
        return false;
    memcpy(dst, src, n);
    return true;
}

/* The arena's one tier keeps its pages' classes itself. */
void hak_page_set_kind(const void *p, unsigned n, unsigned kind)
{
    (void)p;
    (void)n;
    (void)kind;
}

int hak_chunk_set_tag(void *base, size_t size, unsigned tag)
{
    uintptr_t lo = (uintptr_t)base, hi = lo + size;
    if (tag == HAK_TAG_NONE) {
        return 0;
    }
    if (hak_arena_hi_ == 0) {
        hak_arena_lo_ = lo;
        hak_arena_hi_ = hi;
    } else {
        if (lo < hak_arena_lo_)
            hak_arena_lo_ = lo;
        if (hi > hak_arena_hi_)
            hak_arena_hi_ = hi;
    }
    hak_arena_tag_ = (uint8_t)tag;
    return 0;
}

uint64_t hak_random_word(void)
{
    uint64_t w = (uint64_t)(uintptr_t)&w ^ ((uint64_t)hak_arena_lo_ << 17) ^ 0x9E3779B97F4A7C15ULL;
    w ^= w >> 33;
    w *= 0xff51afd7ed558ccdULL;
    w ^= w >> 33;
    return w;
}

uint64_t hak_os_clock_ms(void) { return 0; }

uint64_t hak_cycles(void)
{
    static uint64_t ticks;
    return ++ticks; /* no clock in the embedded backend: a monotonic counter */
}

int hak_thread_exit_register(void (*fn)(void))
{
    (void)fn;
    return 0;
}

int hak_thread_exit_arm(void) { return 0; }

uintptr_t hak_thread_id(void) { return 1; }

int hak_os_atfork_(void);
HAK_INTERNAL int hak_os_atfork_(void) { return 0; }

const char *hak_getenv(const char *name)
{
    (void)name;
    return NULL;
}

const char *hak_env_at(size_t i)
{
    (void)i;
    return NULL;
}

const char *hak_os_self_path(void) { return NULL; }

int hak_os_open_report(const char *pattern)
{
    (void)pattern;
    return -ENOSYS;
}

void hak_os_write_fd(int fd, const char *s)
{
    (void)fd;
    (void)s;
}

void hak_os_close_fd(int fd) { (void)fd; }

uint64_t hak_os_err_id(void) { return 0; }
uint64_t hak_os_pid(void) { return 0; }
size_t hak_os_rss_bytes(void) { return 0; }
