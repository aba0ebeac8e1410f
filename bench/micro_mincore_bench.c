// SPDX-License-Identifier: MIT
/* micro_mincore_bench: what the hybrid readability check saves.
 *
 * Before reading a 16-byte header at p-16 of a pointer that may not be its
 * own, an allocator must know the header's page is mapped. mincore(2)
 * answers that with a system call. A pointer whose page offset is at least
 * 16 has its header on its own page, mapped if the pointer is valid at all,
 * so the hybrid check makes the system call only for pointers near a page
 * start. This program measures, in ticks per call (median of 5 repetitions):
 *
 *   check=mincore where=page        mincore() of one page
 *   check=align   where=mid         ((p & (page-1)) >= 16) alone
 *   check=hybrid  where=mid         the hybrid check, pointer mid-page
 *   check=hybrid  where=page_start  the hybrid check, pointer at a page
 *                                   start (it calls mincore on p-16)
 *
 * It is standalone (it calls mincore directly) and measures the technique;
 * hakmem's own implementation is hak_header_readable() in
 * src/platform/hak_platform.h.
 *
 * Output: RESULT bench=micro_mincore check=C where=W calls=N reps=5 clock=rdtsc ticks=T
 */
#define _GNU_SOURCE
#include "bench_common.h"

#include <sys/mman.h>
#include <unistd.h>

#define HEADER_WIDTH 16
#define REPS 5
#define CHEAP_FACTOR 50 /* the cheap checks run this many times more calls */

static const char usage[] =
    "usage: micro_mincore_bench [CALLS]\n"
    "  CALLS  mincore calls per repetition (default 50000); the checks that\n"
    "         make no system call run 50 times as many\n";

static uintptr_t page_mask;

/* True if the page holding p is mapped. */
static bool page_mapped(const void *p)
{
    unsigned char vec;
    void *page = (void *)((uintptr_t)p & ~page_mask);
    return mincore(page, 1, &vec) == 0;
}

/* True if the header before p lies on p's own page. */
static inline bool header_on_own_page(const void *p)
{
    return ((uintptr_t)p & page_mask) >= HEADER_WIDTH;
}

/* The hybrid check: alignment first, mincore only near a page start. */
static inline bool hybrid_readable(const void *p)
{
    return header_on_own_page(p) || page_mapped((const char *)p - HEADER_WIDTH);
}

enum check { CHECK_MINCORE, CHECK_ALIGN, CHECK_HYBRID };
static const char *const check_names[] = {"mincore", "align", "hybrid"};

static __attribute__((noinline)) uint64_t run_checks(enum check c, const void *p, uint64_t calls)
{
    uint64_t hits = 0;
    for (uint64_t i = 0; i < calls; i++) {
        __asm__ volatile("" : "+r"(p)); /* the pointer is "new" every call */
        switch (c) {
        case CHECK_MINCORE: hits += page_mapped(p); break;
        case CHECK_ALIGN:   hits += header_on_own_page(p); break;
        case CHECK_HYBRID:  hits += hybrid_readable(p); break;
        }
    }
    return hits;
}

static void measure(enum check c, const char *where, const void *p, uint64_t calls)
{
    double per_call[REPS];
    uint64_t hits = run_checks(c, p, calls / 10 + 1); /* warm-up */
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = bench_ticks();
        hits += run_checks(c, p, calls);
        uint64_t t1 = bench_ticks();
        per_call[r] = (double)(t1 - t0) / (double)calls;
    }
    bench_escape(&hits);
    printf("RESULT bench=micro_mincore check=%s where=%s calls=%" PRIu64
           " reps=%d clock=%s ticks=%.3f\n",
           check_names[c], where, calls, REPS, BENCH_CLOCK_NAME, bench_median(per_call, REPS));
    fflush(stdout);
}

int main(int argc, char **argv)
{
    uint64_t calls = 50000;
    if (argc > 2 || (argc == 2 && !bench_parse_u64(argv[1], "CALLS", 1, 1ull << 32, &calls)))
        bench_usage_exit(usage);

    long page = sysconf(_SC_PAGESIZE);
    page_mask = (uintptr_t)page - 1;
    char *base = mmap(NULL, 2 * (size_t)page, PROT_READ | PROT_WRITE,
                      MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (base == MAP_FAILED) {
        perror("micro_mincore_bench: mmap");
        return 1;
    }
    memset(base, 1, 2 * (size_t)page);
    const char *page_start = base + page;     /* its header is on the first page */
    const char *mid = base + page + page / 2;

    measure(CHECK_MINCORE, "page", page_start, calls);
    measure(CHECK_ALIGN, "mid", mid, calls * CHEAP_FACTOR);
    measure(CHECK_HYBRID, "mid", mid, calls * CHEAP_FACTOR);
    measure(CHECK_HYBRID, "page_start", page_start, calls);
    munmap(base, 2 * (size_t)page);
    return 0;
}
