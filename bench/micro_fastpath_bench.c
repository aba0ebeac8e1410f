// SPDX-License-Identifier: MIT
/* micro_fastpath_bench: the cost of one malloc+free pair through the public
 * malloc/free, per size.
 *
 * Modes:
 *   alone  p = malloc(size); free(p) with no other block of that size live
 *          (some allocators retire a page on every such free);
 *   live   the same loop with 100 blocks of the same size kept allocated
 *          around it;
 *   batch  1000 blocks of random sizes in [16, SIZE] are allocated, then
 *          freed in a shuffled order (sizes and order are fixed up front);
 *          one pair is one of those mallocs and its free.
 *
 * Timed mode (default): for each size and mode, REPS repetitions of PAIRS
 * pairs after a warm-up; prints the median ticks per pair:
 *   RESULT bench=micro_fastpath mode=M size=S pairs=P reps=7 clock=rdtsc ticks=T
 *
 * Exact mode (--exact MODE SIZE N): runs exactly N pairs and nothing else
 * of note, for `valgrind --tool=callgrind`: running it for N1 and N2 pairs
 * and taking (Ir2 - Ir1) / (N2 - N1) cancels the start-up costs.
 *   RESULT bench=micro_fastpath_exact mode=M size=S pairs=N
 *
 * Ticks and instructions include the loop's own few instructions, the same
 * under every allocator.
 */
#define _GNU_SOURCE
#include "bench_common.h"

#define LIVE_BLOCKS 100
#define BATCH_BLOCKS 1000
#define BATCH_MIN 16
#define BATCH_MAX_DEFAULT 1024
#define REPS 7
#define WARMUP_PAIRS 20000

static const size_t timed_sizes[] = {8, 16, 24, 32, 48, 64, 96, 128, 256,
                                     512, 1024, 1032, 2048, 4096};

static const char usage[] =
    "usage: micro_fastpath_bench [PAIRS]\n"
    "         median rdtsc ticks per malloc+free pair, every size, modes\n"
    "         alone, live and batch (PAIRS per repetition, default 200000)\n"
    "       micro_fastpath_bench --exact MODE SIZE N\n"
    "         exactly N pairs of one size and mode, for callgrind\n"
    "         MODE: alone | live | batch (batch: SIZE is the largest random\n"
    "         size, N a multiple of 1000)\n";

enum mode { MODE_ALONE, MODE_LIVE, MODE_BATCH };
static const char *const mode_names[] = {"alone", "live", "batch"};

/* What a mode keeps allocated around its loop. */
struct fixture {
    enum mode mode;
    size_t size;
    void *live[LIVE_BLOCKS];
    size_t *sizes;     /* batch: the request sizes, in allocation order */
    unsigned *order;   /* batch: the order of the frees */
    void **ptrs;       /* batch: the live blocks of one round */
};

static void *xmalloc(size_t size)
{
    void *p = malloc(size);
    if (p == NULL)
        bench_oom_exit("micro_fastpath_bench", size);
    return p;
}

static void fixture_setup(struct fixture *f, enum mode mode, size_t size)
{
    memset(f, 0, sizeof *f);
    f->mode = mode;
    f->size = size;
    if (mode == MODE_LIVE) {
        for (size_t i = 0; i < LIVE_BLOCKS; i++)
            bench_escape(f->live[i] = xmalloc(size));
    } else if (mode == MODE_BATCH) {
        uint64_t rng = 12345;
        f->sizes = xmalloc(BATCH_BLOCKS * sizeof *f->sizes);
        f->order = xmalloc(BATCH_BLOCKS * sizeof *f->order);
        f->ptrs = xmalloc(BATCH_BLOCKS * sizeof *f->ptrs);
        for (unsigned i = 0; i < BATCH_BLOCKS; i++) {
            f->sizes[i] = (size_t)bench_rng_range(&rng, BATCH_MIN, size);
            f->order[i] = i;
        }
        for (unsigned i = BATCH_BLOCKS - 1; i > 0; i--) { /* Fisher-Yates */
            unsigned j = (unsigned)(bench_rng_next(&rng) % (i + 1));
            unsigned t = f->order[i];
            f->order[i] = f->order[j];
            f->order[j] = t;
        }
    }
}

static void fixture_teardown(struct fixture *f)
{
    for (size_t i = 0; i < LIVE_BLOCKS; i++)
        free(f->live[i]);
    free(f->sizes);
    free(f->order);
    free(f->ptrs);
}

/* The measured loop: `pairs` malloc+free pairs (batch: pairs/1000 rounds). */
static __attribute__((noinline)) void run_pairs(struct fixture *f, uint64_t pairs)
{
    if (f->mode == MODE_BATCH) {
        for (uint64_t r = 0; r < pairs / BATCH_BLOCKS; r++) {
            for (unsigned i = 0; i < BATCH_BLOCKS; i++) {
                f->ptrs[i] = malloc(f->sizes[i]);
                bench_escape(f->ptrs[i]);
            }
            for (unsigned i = 0; i < BATCH_BLOCKS; i++)
                free(f->ptrs[f->order[i]]);
        }
        return;
    }
    const size_t size = f->size;
    for (uint64_t i = 0; i < pairs; i++) {
        void *p = malloc(size);
        bench_escape(p);
        free(p);
    }
}

static bool parse_mode(const char *text, enum mode *out)
{
    for (unsigned m = 0; m < sizeof mode_names / sizeof *mode_names; m++) {
        if (strcmp(text, mode_names[m]) == 0) {
            *out = (enum mode)m;
            return true;
        }
    }
    fprintf(stderr, "bad MODE '%s': expected alone, live or batch\n", text);
    return false;
}

/* Median ticks per pair of one size and mode; prints its RESULT line. */
static void measure(enum mode mode, size_t size, uint64_t pairs)
{
    struct fixture f;
    double per_pair[REPS];
    fixture_setup(&f, mode, size);
    run_pairs(&f, WARMUP_PAIRS);
    for (int r = 0; r < REPS; r++) {
        uint64_t t0 = bench_ticks();
        run_pairs(&f, pairs);
        uint64_t t1 = bench_ticks();
        per_pair[r] = (double)(t1 - t0) / (double)pairs;
    }
    fixture_teardown(&f);
    printf("RESULT bench=micro_fastpath mode=%s size=%zu pairs=%" PRIu64
           " reps=%d clock=%s ticks=%.3f\n",
           mode_names[mode], size, pairs, REPS, BENCH_CLOCK_NAME,
           bench_median(per_pair, REPS));
    fflush(stdout);
}

static int run_exact(int argc, char **argv)
{
    enum mode mode;
    uint64_t size, n;
    if (argc != 5 || !parse_mode(argv[2], &mode) ||
        !bench_parse_u64(argv[3], "SIZE", mode == MODE_BATCH ? BATCH_MIN : 0, 1ull << 30, &size) ||
        !bench_parse_u64(argv[4], "N", 0, UINT64_MAX, &n))
        bench_usage_exit(usage);
    if (mode == MODE_BATCH && n % BATCH_BLOCKS != 0) {
        fprintf(stderr, "bad N %" PRIu64 ": batch mode needs a multiple of %d\n", n, BATCH_BLOCKS);
        bench_usage_exit(usage);
    }
    struct fixture f;
    fixture_setup(&f, mode, (size_t)size);
    run_pairs(&f, n);
    fixture_teardown(&f);
    printf("RESULT bench=micro_fastpath_exact mode=%s size=%" PRIu64 " pairs=%" PRIu64 "\n",
           mode_names[mode], size, n);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "--exact") == 0)
        return run_exact(argc, argv);

    uint64_t pairs = 200000;
    if (argc > 2 || (argc == 2 && !bench_parse_u64(argv[1], "PAIRS", 1, 1ull << 40, &pairs)))
        bench_usage_exit(usage);

    for (enum mode m = MODE_ALONE; m <= MODE_LIVE; m++)
        for (size_t i = 0; i < sizeof timed_sizes / sizeof *timed_sizes; i++)
            measure(m, timed_sizes[i], pairs);
    uint64_t batch_pairs = (pairs + BATCH_BLOCKS - 1) / BATCH_BLOCKS * BATCH_BLOCKS;
    measure(MODE_BATCH, BATCH_MAX_DEFAULT, batch_pairs);
    return 0;
}
