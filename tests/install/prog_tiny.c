// SPDX-License-Identifier: MIT
/* A program built against the installed libhakmem-tiny.a (pkg-config
 * hakmem-tiny, header hakmem/tiny.h alone). */
#include <stdio.h>

#include <hakmem/tiny.h>

int main(void)
{
    void *p = hak_tiny_alloc(64);
    if (p == NULL || !hak_tiny_owns(p) || hak_tiny_usable_size(p) < 64 || hak_tiny_max_size() < 1000) {
        fprintf(stderr, "hak_tiny_alloc(64) = %p\n", p);
        return 1;
    }
    hak_tiny_free(p);
    puts("hakmem-tiny ok");
    return 0;
}
