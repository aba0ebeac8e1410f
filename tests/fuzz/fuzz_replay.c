// SPDX-License-Identifier: MIT
/* fuzz_replay.c - the plain driver of fuzz_alloc.c, for any compiler (CI
 * runs it with gcc as the test `fuzz-replay`, suite `fuzz`):
 *
 *   fuzz_replay [--random N] [--seed X] [--max-len L] [FILE | DIR]...
 *
 * feeds every FILE, every regular file of every DIR (the corpus, with the
 * regression inputs of crashes found), then N pseudo-random inputs of up
 * to L bytes generated from the seed X. A failed check aborts, naming the
 * input; a generated input that fails can be written out with --save DIR
 * (it becomes a regression input of the corpus).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <dirent.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "fuzz_alloc.h"

static size_t g_inputs;

static int run_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        perror(path);
        return 1;
    }
    static uint8_t buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf, f);
    fclose(f);
    fuzz_current_input = path;
    LLVMFuzzerTestOneInput(buf, n);
    g_inputs++;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int run_path(const char *path)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        perror(path);
        return 1;
    }
    if (!S_ISDIR(st.st_mode))
        return run_file(path);
    DIR *d = opendir(path);
    if (!d) {
        perror(path);
        return 1;
    }
    /* in name order, so a run is the same everywhere */
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            char **nn = realloc(names, cap * sizeof *names);
            if (!nn)
                return 1;
            names = nn;
        }
        size_t len = strlen(path) + strlen(e->d_name) + 2;
        names[n] = malloc(len);
        if (!names[n])
            return 1;
        snprintf(names[n], len, "%s/%s", path, e->d_name);
        n++;
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str);
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        if (stat(names[i], &st) == 0 && S_ISREG(st.st_mode))
            rc |= run_file(names[i]);
        free(names[i]);
    }
    free(names);
    return rc;
}

static uint64_t next(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 0x2545F4914F6CDD1DULL;
}

int main(int argc, char **argv)
{
    unsigned long nrandom = 0, maxlen = 512;
    uint64_t seed = 1;
    const char *save = NULL;
    int rc = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--random") == 0 && i + 1 < argc)
            nrandom = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--seed") == 0 && i + 1 < argc)
            seed = strtoull(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--max-len") == 0 && i + 1 < argc)
            maxlen = strtoul(argv[++i], NULL, 0);
        else if (strcmp(argv[i], "--save") == 0 && i + 1 < argc)
            save = argv[++i];
        else
            rc |= run_path(argv[i]);
    }
    if (maxlen == 0 || maxlen > 65536)
        maxlen = 512;
    static uint8_t buf[65536];
    static char name[4096];
    uint64_t s = seed ? seed : 1;
    for (unsigned long k = 0; k < nrandom; k++) {
        size_t len = 1 + next(&s) % maxlen;
        for (size_t i = 0; i < len; i += 8) {
            uint64_t v = next(&s);
            memcpy(buf + i, &v, len - i < 8 ? len - i : 8);
        }
        snprintf(name, sizeof name, "generated input %lu of seed %" PRIu64 " (%zu bytes)", k, seed, len);
        if (save) { /* write it first: it survives the abort */
            snprintf(name, sizeof name, "%s/gen-%" PRIu64 "-%lu", save, seed, k);
            FILE *f = fopen(name, "wb");
            if (f) {
                fwrite(buf, 1, len, f);
                fclose(f);
            }
        }
        fuzz_current_input = name;
        LLVMFuzzerTestOneInput(buf, len);
        if (save)
            remove(name);
        g_inputs++;
    }
    printf("fuzz_replay: %zu inputs %s\n", g_inputs, rc ? "(some could not be read)" : "passed");
    return rc;
}
