// SPDX-License-Identifier: MIT
/* A library that prof_child dlopen()s: its allocations, made through the
 * process's malloc (hakmem), must be attributed to plugin_alloc. */
#include <stdlib.h>

__attribute__((visibility("default"), noinline)) void *plugin_alloc(size_t n)
{
    void *p = malloc(n);
    __asm__ volatile("" ::: "memory");
    return p;
}
