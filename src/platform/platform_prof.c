// SPDX-License-Identifier: MIT
/* platform_prof.c - what the heap profiler (src/dispatch/prof.c) needs of
 * the OS, posix backend only: the calling thread's stack, and a copy of
 * /proc/self/maps into a profile. Its own file, so that a program linking
 * libhakmem-tiny.a alone never pulls the unwinder in.
 *
 * The stack comes from libgcc's _Unwind_Backtrace, linked directly (gcc and
 * clang link libgcc_s for every C program that references it): nothing is
 * loaded on the first call, unlike glibc's backtrace(), which dlopens
 * libgcc_s then and allocates. The unwinder reads .eh_frame through
 * dl_iterate_phdr (the loader's recursive lock, never one of hakmem's) and
 * allocates nothing for code the loader knows; only frames registered at
 * run time with __register_frame_info (JIT compilers) make it sort them
 * with malloc once, which the profiler survives: its caller marks the
 * thread busy, so an allocation made there is served, never sampled.
 */
#include "hak_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <unwind.h>

typedef struct {
    void **frames;
    int max, skip, n;
} bt_state_t;

static _Unwind_Reason_Code bt_step(struct _Unwind_Context *ctx, void *arg)
{
    bt_state_t *s = arg;
    uintptr_t ip = _Unwind_GetIP(ctx);
    if (ip == 0)
        return _URC_END_OF_STACK;
    if (s->skip > 0) {
        s->skip--;
        return _URC_NO_REASON;
    }
    s->frames[s->n++] = (void *)ip;
    return s->n < s->max ? _URC_NO_REASON : _URC_END_OF_STACK;
}

HAK_NOINLINE int hak_os_backtrace(void **frames, int max, int skip)
{
    if (max <= 0)
        return 0;
    int saved = errno;
    /* the first frame the unwinder reports is this function's own */
    bt_state_t s = {frames, max, skip + 1, 0};
    _Unwind_Backtrace(bt_step, &s);
    errno = saved;
    return s.n;
}

int hak_os_copy_maps(int fd)
{
    int saved = errno;
    int in = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        errno = saved;
        return -1;
    }
    char buf[4096];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    close(in);
    errno = saved;
    return rc;
}
