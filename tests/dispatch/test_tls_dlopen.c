// SPDX-License-Identifier: MIT
/* Suite `dispatch` (global-dynamic builds): a program dlopen()s a plugin
 * that links libhakmem.a; the plugin allocates from several threads. */
#include <dlfcn.h>
#include <stdio.h>

int main(int argc, char **argv)
{
    if (argc < 2)
        return 2;
    void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (h == NULL) {
        fprintf(stderr, "dlopen: %s\n", dlerror());
        return 1;
    }
    int (*run)(int) = (int (*)(int))dlsym(h, "plugin_run");
    if (run == NULL)
        return 1;
    int failures = run(4);
    failures += run(8);
    printf("plugin failures: %d\n", failures);
    return failures != 0;
}
