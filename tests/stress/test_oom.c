// SPDX-License-Identifier: MIT
/* Suite `stress`: out of memory. Under RLIMIT_AS (the usage at start plus
 * 256 MiB), allocations of every tier (16 B tiny, 2 KiB mid, 100 KiB L25,
 * 8 MiB large) through every entry point fail with NULL and ENOMEM
 * (posix_memalign: returns ENOMEM) once memory runs out, never crash or
 * abort, leave a block that realloc could not grow intact, and the
 * allocator works normally again once the memory is freed.
 *
 * This program links libhakmem.so: malloc and the others are hakmem's. Not
 * built under sanitizers (they cannot start under a small RLIMIT_AS). */
#include "common/hak_test.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/resource.h>

#include "hakmem/hakmem.h"

/* Through pointers the compiler cannot see through: the tests read blocks
 * after a realloc that failed (legitimate, but gcc's -Wuse-after-free cannot
 * know), and must not let the optimizer drop allocations it can prove
 * unused. */
static void *(*volatile malloc_v)(size_t) = malloc;
static void *(*volatile calloc_v)(size_t, size_t) = calloc;
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static void *(*volatile reallocarray_v)(void *, size_t, size_t) = reallocarray;
static void *(*volatile memalign_v)(size_t, size_t) = memalign;
static int (*volatile posix_memalign_v)(void **, size_t, size_t) = posix_memalign;
static void *(*volatile aligned_alloc_v)(size_t, size_t) = aligned_alloc;
static void *(*volatile valloc_v)(size_t) = valloc;
static void *(*volatile pvalloc_v)(size_t) = pvalloc;

#define LIMIT_ABOVE_START ((size_t)256 << 20)

/* Every block held while memory is exhausted (static: counted in the
 * address space before the limit is set). */
#define CAP (1u << 22)
static void *g_v[CAP];
static size_t g_n;

enum ep {
    EP_MALLOC,
    EP_CALLOC,
    EP_REALLOC_NULL,
    EP_REALLOC_GROW,
    EP_MEMALIGN,
    EP_POSIX_MEMALIGN,
    EP_ALIGNED_ALLOC,
    EP_VALLOC,
    EP_PVALLOC,
    EP_REALLOCARRAY,
    EP_COUNT
};
static const char *const k_ep_name[EP_COUNT] = {"malloc", "calloc", "realloc(NULL)", "realloc(grow)",
                                                "memalign", "posix_memalign", "aligned_alloc",
                                                "valloc", "pvalloc", "reallocarray"};

static const size_t k_sizes[] = {(size_t)8 << 20, 100 << 10, 2 << 10, 16};
#define NSIZES (sizeof k_sizes / sizeof k_sizes[0])

/* Small blocks that realloc(grow) tries to grow, allocated before the
 * limit is reached; each holds a pattern that a failed grow must keep. */
#define NGROW 256
static uint8_t *g_grow[NGROW];
#define GROW_SIZE 24

/* One allocation through entry point e; *rc gets posix_memalign's result. */
static void *alloc_ep(enum ep e, size_t size, int *rc, int *grow_idx)
{
    void *p = NULL;
    *rc = 0;
    *grow_idx = -1;
    switch (e) {
    case EP_MALLOC:
        return malloc_v(size);
    case EP_CALLOC:
        return calloc_v(1, size);
    case EP_REALLOC_NULL:
        return realloc_v(NULL, size);
    case EP_REALLOC_GROW:
        for (int i = 0; i < NGROW; i++)
            if (g_grow[i]) {
                *grow_idx = i;
                return realloc_v(g_grow[i], size);
            }
        *grow_idx = NGROW; /* none left */
        return NULL;
    case EP_MEMALIGN:
        return memalign_v(64, size);
    case EP_POSIX_MEMALIGN:
        *rc = posix_memalign_v(&p, 64, size);
        return *rc == 0 ? p : NULL;
    case EP_ALIGNED_ALLOC:
        return aligned_alloc_v(256, size);
    case EP_VALLOC:
        return valloc_v(size);
    case EP_PVALLOC:
        return pvalloc_v(size);
    case EP_REALLOCARRAY:
        return reallocarray_v(NULL, size, 1);
    default:
        return NULL;
    }
}

/* What happened when an entry point was driven to exhaustion. */
typedef struct {
    size_t served;    /* allocations that succeeded first */
    int errno_seen;   /* errno (posix_memalign: its result) at the NULL */
    int errno_kept;   /* posix_memalign left errno alone */
    int grow_intact;  /* realloc(grow): the block kept its pattern */
    int grow_none;    /* realloc(grow): ran out of small blocks to grow */
    int cap_hit;      /* never failed before CAP blocks */
    int misaligned;
} outcome_t;

static void exhaust(enum ep e, size_t size, outcome_t *o)
{
    memset(o, 0, sizeof *o);
    o->grow_intact = 1;
    o->errno_kept = 1;
    for (;;) {
        if (g_n == CAP) {
            o->cap_hit = 1;
            return;
        }
        int rc, gi;
        errno = 12345;
        void *p = alloc_ep(e, size, &rc, &gi);
        int err = errno;
        if (p == NULL) {
            if (e == EP_POSIX_MEMALIGN) {
                o->errno_seen = rc;
                o->errno_kept = err == 12345;
            } else {
                o->errno_seen = err;
            }
            if (e == EP_REALLOC_GROW) {
                if (gi == NGROW) {
                    o->grow_none = 1;
                } else {
                    for (int k = 0; k < GROW_SIZE; k++)
                        if (g_grow[gi][k] != (uint8_t)(gi + k))
                            o->grow_intact = 0;
                }
            }
            return;
        }
        if (e == EP_REALLOC_GROW)
            g_grow[gi] = NULL; /* moved into p */
        uintptr_t a = e == EP_MEMALIGN || e == EP_POSIX_MEMALIGN ? 64
                      : e == EP_ALIGNED_ALLOC                    ? 256
                      : e == EP_VALLOC || e == EP_PVALLOC        ? 4096
                                                                 : 16;
        if ((uintptr_t)p & (a - 1))
            o->misaligned = 1;
        ((volatile uint8_t *)p)[0] = 1; /* usable */
        g_v[g_n++] = p;
        o->served++;
    }
}

static void free_all(void)
{
    for (size_t i = 0; i < g_n; i++)
        free(g_v[i]);
    g_n = 0;
}

static void make_grow_blocks(void)
{
    for (int i = 0; i < NGROW; i++) {
        if (g_grow[i])
            continue;
        g_grow[i] = malloc_v(GROW_SIZE);
        assert_non_null(g_grow[i]);
        for (int k = 0; k < GROW_SIZE; k++)
            g_grow[i][k] = (uint8_t)(i + k);
    }
}

static void free_grow_blocks(void)
{
    for (int i = 0; i < NGROW; i++) {
        free(g_grow[i]);
        g_grow[i] = NULL;
    }
}

/* Works: one allocation of every size through every entry point. */
static void check_works(const char *when)
{
    for (size_t s = 0; s < NSIZES; s++)
        for (int e = 0; e < EP_COUNT; e++) {
            int rc, gi;
            void *p = alloc_ep((enum ep)e, k_sizes[s], &rc, &gi);
            if (p == NULL)
                print_error("%s: %s(%zu) failed (errno %d, rc %d)\n", when, k_ep_name[e], k_sizes[s],
                            errno, rc);
            assert_non_null(p);
            if (e == EP_REALLOC_GROW) {
                g_grow[gi] = NULL;
                for (size_t k = 0; k < GROW_SIZE && k < k_sizes[s]; k++)
                    assert_int_equal(((uint8_t *)p)[k], (uint8_t)(gi + k));
            }
            memset(p, 0xA5, k_sizes[s] < 4096 ? k_sizes[s] : 4096);
            free(p);
        }
}

static void test_exhaust_every_tier_and_entry_point(void **state)
{
    (void)state;
    static outcome_t out[NSIZES][EP_COUNT];
    make_grow_blocks();
    check_works("before the limit is reached");
    make_grow_blocks();
    /* Largest first, so that each smaller size meets memory already nearly
     * gone; every entry point is driven until it fails. Nothing here may
     * allocate outside hakmem's calls: results are checked afterwards. */
    for (size_t s = 0; s < NSIZES; s++)
        for (int e = 0; e < EP_COUNT; e++)
            exhaust((enum ep)e, k_sizes[s], &out[s][e]);
    size_t held = g_n;
    free_all();

    size_t first_served[NSIZES] = {0};
    for (size_t s = 0; s < NSIZES; s++) {
        for (int e = 0; e < EP_COUNT; e++) {
            const outcome_t *o = &out[s][e];
            if (e == 0)
                first_served[s] = o->served;
            if (o->cap_hit || (o->errno_seen != ENOMEM && !o->grow_none) || !o->errno_kept || !o->grow_intact ||
                o->misaligned)
                print_error("%s(%zu): served %zu, then errno %d%s%s%s%s\n", k_ep_name[e], k_sizes[s],
                            o->served, o->errno_seen, o->cap_hit ? ", never failed" : "",
                            o->errno_kept ? "" : ", posix_memalign changed errno",
                            o->grow_intact ? "" : ", failed realloc changed the block",
                            o->misaligned ? ", misaligned block" : "");
            assert_false(o->cap_hit);
            if (o->grow_none) /* nothing was left to grow: not a failure */
                continue;
            assert_int_equal(o->errno_seen, ENOMEM);
            assert_true(o->errno_kept);
            assert_true(o->grow_intact);
            assert_false(o->misaligned);
        }
    }
    print_message("exhausted: %zu blocks held; 8 MiB x %zu, 100 KiB x %zu, 2 KiB x %zu, 16 B x %zu "
                  "by malloc before it failed\n",
                  held, first_served[0], first_served[1], first_served[2], first_served[3]);
    /* 256 MiB of room: most of it was served in 8 MiB blocks */
    assert_true(first_served[0] >= 16);

    /* Recovery: with the memory freed, every tier and entry point works. */
    make_grow_blocks();
    check_works("after the memory was freed");
    free_grow_blocks();
}

/* The same again, twice: exhaustion is not a one-time event. */
static void test_exhaust_again(void **state)
{
    (void)state;
    for (int round = 0; round < 2; round++) {
        outcome_t o[NSIZES];
        for (size_t s = 0; s < NSIZES; s++)
            exhaust(round ? EP_CALLOC : EP_MALLOC, k_sizes[s], &o[s]);
        free_all();
        for (size_t s = 0; s < NSIZES; s++) {
            assert_false(o[s].cap_hit);
            assert_int_equal(o[s].errno_seen, ENOMEM);
        }
        make_grow_blocks();
        check_works("after another exhaustion");
        free_grow_blocks();
    }
}

int main(void)
{
    size_t start = ht_vm_size();
    if (start == 0)
        return 1;
    /* Commit the pointer array now: nothing later should need to. */
    memset(g_v, 0, sizeof g_v);
    struct rlimit rl = {(rlim_t)(start + LIMIT_ABOVE_START), (rlim_t)(start + LIMIT_ABOVE_START)};
    if (setrlimit(RLIMIT_AS, &rl) != 0) {
        perror("setrlimit");
        return 1;
    }
    printf("RLIMIT_AS: %zu MiB (VmSize at start %zu MiB + 256 MiB)\n", (start + LIMIT_ABOVE_START) >> 20,
           start >> 20);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exhaust_every_tier_and_entry_point),
        cmocka_unit_test(test_exhaust_again),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
