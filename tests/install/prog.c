// SPDX-License-Identifier: MIT
/* A program built against an installed hakmem (pkg-config, shared or
 * static): hak_version() is the version it was compiled against, and
 * malloc is hakmem's (the block belongs to the tier hakmem serves that
 * size from, and the dynamic linker resolves malloc in the library or,
 * linked statically, in the program itself). Exit 0 when all holds. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hakmem/hakmem.h>

int main(int argc, char **argv)
{
    const char *want_obj = argc > 1 ? argv[1] : "libhakmem.so";
    if (strcmp(hak_version(), HAKMEM_VERSION_STRING) != 0) {
        fprintf(stderr, "hak_version() %s, compiled against %s\n", hak_version(), HAKMEM_VERSION_STRING);
        return 1;
    }
    void *p = malloc(100);
    if (p == NULL || hak_owner(p) == HAK_TIER_NONE || hak_owner(p) != hak_tier_for(100)) {
        fprintf(stderr, "malloc(100) = %p: owner %d, tier for 100 B %d\n", p, p ? hak_owner(p) : -1, hak_tier_for(100));
        return 1;
    }
    free(p);
    Dl_info info;
    void *sym = dlsym(RTLD_DEFAULT, "malloc");
    if (sym == NULL || dladdr(sym, &info) == 0 || info.dli_fname == NULL) {
        fprintf(stderr, "malloc: no symbol information\n");
        return 1;
    }
    const char *obj = strrchr(info.dli_fname, '/') ? strrchr(info.dli_fname, '/') + 1 : info.dli_fname;
    if (strncmp(obj, want_obj, strlen(want_obj)) != 0) {
        fprintf(stderr, "malloc resolves in %s, not %s\n", info.dli_fname, want_obj);
        return 1;
    }
    printf("hakmem %s (%d.%d.%d), malloc from %s\n", hak_version(), HAKMEM_VERSION_MAJOR,
           HAKMEM_VERSION_MINOR, HAKMEM_VERSION_PATCH, info.dli_fname);
    return 0;
}
