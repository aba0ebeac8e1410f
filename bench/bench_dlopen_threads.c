// SPDX-License-Identifier: MIT
/* bench_dlopen_threads: a host that loads a plugin, runs it, unloads it,
 * over and over (issue 16's "dlopen/dlclose x1,000 with 3 threads each").
 * Each cycle: dlopen(PLUGIN, RTLD_NOW | RTLD_LOCAL) (the loader allocates
 * its link map, the plugin's constructor a table), plugin_run(THREADS)
 * (the plugin starts THREADS threads that allocate and free 16 B-16 KiB
 * blocks, keeping up to 64 live, and joins them), dlclose. Under 10 MB is
 * ever live: what costs is threads that come and go with the plugin.
 *
 * usage: bench_dlopen_threads PLUGIN [CYCLES [THREADS]]   (default 1000, 3)
 *   PLUGIN: the path of libbench_dlopen_plugin.so (built beside this)
 *
 * Output: RESULT bench=dlopen_threads cycles=C threads=T seconds=X
 */
#include <dlfcn.h>

#include "bench_common.h"

static const char usage[] = "usage: bench_dlopen_threads PLUGIN [CYCLES [THREADS]]\n";

int main(int argc, char **argv)
{
    uint64_t cycles = 1000, threads = 3;
    if (argc < 2 || argc > 4 || (argc > 2 && !bench_parse_u64(argv[2], "CYCLES", 1, 10000000, &cycles)) ||
        (argc > 3 && !bench_parse_u64(argv[3], "THREADS", 1, 64, &threads)))
        bench_usage_exit(usage);
    double t0 = bench_now();
    for (uint64_t c = 0; c < cycles; c++) {
        void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
        if (h == NULL) {
            fprintf(stderr, "bench_dlopen_threads: dlopen: %s\n", dlerror());
            return 1;
        }
        int (*run)(int) = (int (*)(int))dlsym(h, "plugin_run");
        if (run == NULL || run((int)threads) != 0) {
            fprintf(stderr, "bench_dlopen_threads: plugin_run failed\n");
            return 1;
        }
        dlclose(h);
    }
    double dt = bench_now() - t0;
    printf("RESULT bench=dlopen_threads cycles=%" PRIu64 " threads=%" PRIu64 " seconds=%.4f\n", cycles,
           threads, dt);
    return 0;
}
