// SPDX-License-Identifier: MIT
/* Suite `dispatch`: misuse of the allocation API, at the build's validation
 * level (the free chain at the top of src/dispatch/dispatch.c; the
 * validation option in meson_options.txt and docs/options.md).
 * This program links libhakmem.so, so malloc, free, realloc and
 * malloc_usable_size are hakmem's.
 *
 * validation=full: every misuse below is reported, never a fault, in every
 *   tier (tiny 100 B, mid 4000 B, L25 100 KiB, large 3 MiB): double frees,
 *   interior pointers, pointers into hakmem's own metadata, the stack,
 *   static data, foreign mappings (readable, PROT_NONE, unmapped), wild
 *   addresses; realloc of a freed or foreign pointer; malloc_usable_size of
 *   a foreign pointer; a write after free into a freed block's free-list
 *   link (the address of a live block, junk, static data). A counting handler checks each report (entry point,
 *   reason, address); death tests check the default handler's message and
 *   SIGABRT in a child.
 * validation=magic/none: what is not caught is shown only in forked
 *   children (a tiny double free hands one block out twice), what magic
 *   catches (pool interior pointers, a tiny header byte overwritten) is
 *   checked in children too, and a foreign pointer, handed to glibc's free,
 *   kills the child.
 * Nothing here is timed.
 */
#include "common/hak_test.h"

#include <errno.h>
#include <malloc.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/mman.h>

#include "hakmem/hakmem.h"

/* Called through pointers the compiler cannot see through: gcc's
 * -Wuse-after-free and -Wfree-nonheap-object would (rightly) object to the
 * misuse this file commits on purpose. */
static void (*volatile free_v)(void *) = free;
static void *(*volatile malloc_v)(size_t) = malloc;
static void *(*volatile realloc_v)(void *, size_t) = realloc;
static size_t (*volatile usable_v)(void *) = malloc_usable_size;

/* ------------------------------------------------------ build options */

static int validation_level(void)
{
    const char *o = hak_build_options();
    if (strstr(o, "validation=2"))
        return 2;
    if (strstr(o, "validation=1"))
        return 1;
    return 0;
}
static bool has_header(void) { return strstr(hak_build_options(), "header_classidx=1") != NULL; }

/* Under a sanitizer that replaces malloc (ASan, TSan), malloc is not
 * hakmem's and this misuse would be the sanitizer's to report: skip. */
static void skip_unless_hakmem_malloc(void)
{
    void *p = malloc_v(100);
    int owner = hak_owner(p);
    free(p);
    if (owner == HAK_TIER_NONE)
        skip();
}

/* --------------------------------------------------- counting handler */

static int g_reports;
static char g_op[64];
static char g_reason[256];
static const void *g_addr;

static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t i = 0;
    for (; src && src[i] && i + 1 < cap; i++)
        dst[i] = src[i];
    dst[i] = 0;
}

/* Counts, remembers the last report, returns (the call becomes a no-op).
 * Allocates nothing. */
static void counting_handler(const char *op, const char *reason, const void *p)
{
    g_reports++;
    copy_str(g_op, sizeof g_op, op);
    copy_str(g_reason, sizeof g_reason, reason);
    g_addr = p;
}

static void watch(void)
{
    g_reports = 0;
    g_op[0] = g_reason[0] = 0;
    g_addr = NULL;
    hak_set_failure_handler(counting_handler);
}
static void unwatch(void) { hak_set_failure_handler(NULL); }

/* Exactly one report since watch(), from `op`, about `p`, with a reason
 * containing w1 (or w2 when not NULL). */
static void expect_one_report(const char *what, const char *op, const void *p, const char *w1, const char *w2)
{
    if (g_reports != 1 || strcmp(g_op, op) != 0 || g_addr != p ||
        !(strstr(g_reason, w1) || (w2 && strstr(g_reason, w2))))
        print_error("%s: expected one %s() report about %p (\"%s\"%s%s%s); got %d, last %s(): \"%s\" at %p\n",
                    what, op, p, w1, w2 ? " or \"" : "", w2 ? w2 : "", w2 ? "\"" : "", g_reports, g_op,
                    g_reason, g_addr);
    assert_int_equal(g_reports, 1);
    assert_string_equal(g_op, op);
    assert_ptr_equal(g_addr, p);
    assert_true(strstr(g_reason, w1) != NULL || (w2 && strstr(g_reason, w2) != NULL));
}

static void expect_no_report(const char *what)
{
    if (g_reports != 0)
        print_error("%s: unexpected report %s(): \"%s\" at %p\n", what, g_op, g_reason, g_addr);
    assert_int_equal(g_reports, 0);
}

/* ------------------------------------------------------------- tiers */

typedef struct tier_case {
    const char *name;
    size_t size;
    int tier;       /* the tier this size goes to in a build with all four */
    bool big;       /* p + 4096 lies inside the block */
} tier_case_t;

static const tier_case_t k_tiers[] = {
    {"tiny", 100, HAK_TIER_TINY, false},
    {"mid", 4000, HAK_TIER_MID, false},
    {"L25", 100 * 1024, HAK_TIER_L25, true},
    {"large", 3 << 20, HAK_TIER_LARGE, true},
};
#define NTIERS (sizeof k_tiers / sizeof k_tiers[0])

/* The size goes where the case says (builds that leave a tier out send it
 * elsewhere: the case is still run, its tier-specific reason relaxed). */
static bool tier_as_named(const tier_case_t *t) { return hak_tier_for(t->size) == t->tier; }

/* The reason expected for a double free: tiny, mid and L25 keep per-block
 * state and say "double free"; the large tier's registry no longer knows a
 * freed mapping, so it is an invalid pointer there. */
static const char *double_free_alt(const tier_case_t *t)
{
    return !tier_as_named(t) ? "invalid pointer" : NULL;
}

/* ---------------------------------------------------- foreign memory */

static char g_bss[256] __attribute__((aligned(64)));
static char g_data[256] __attribute__((aligned(64))) = {1};
static const char g_rodata[256] __attribute__((aligned(64))) = {2};

typedef struct foreign {
    size_t ps;
    char *rw;       /* two read-write pages, zeroed */
    char *none;     /* two PROT_NONE pages */
    char *gone;     /* two pages, unmapped */
} foreign_t;

static void foreign_map(foreign_t *f)
{
    f->ps = (size_t)sysconf(_SC_PAGESIZE);
    f->rw = mmap(NULL, 2 * f->ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->rw != MAP_FAILED);
    f->none = mmap(NULL, 2 * f->ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(f->none != MAP_FAILED);
    /* The unmapped range sits between two PROT_NONE guards so that nothing
     * else is mapped there while the test runs. */
    char *g = mmap(NULL, 4 * f->ps, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(g != MAP_FAILED);
    f->gone = g + f->ps;
    assert_int_equal(munmap(f->gone, 2 * f->ps), 0);
}

static void foreign_unmap(foreign_t *f)
{
    munmap(f->rw, 2 * f->ps);
    munmap(f->none, 2 * f->ps);
    munmap(f->gone - f->ps, 4 * f->ps);
}

#define MAX_FOREIGN 24
typedef struct fptr {
    const char *name;
    void *p;
} fptr_t;

/* Every kind of pointer hakmem never handed out. `stack` is a zeroed
 * buffer of the caller's frame. */
static size_t foreign_list(foreign_t *f, char *stack, fptr_t *out)
{
    size_t n = 0;
#define ADD(nm, ptr) (out[n].name = (nm), out[n].p = (void *)(ptr), n++)
    ADD("stack", stack + 64);
    ADD("stack (misaligned)", stack + 65);
    ADD(".bss", g_bss + 64);
    ADD(".data", g_data + 64);
    ADD(".rodata", g_rodata + 64);
    ADD("mmap page start", f->rw + f->ps);
    ADD("mmap mid-page", f->rw + f->ps + f->ps / 2);
    ADD("mmap first page start", f->rw);
    ADD("PROT_NONE page start", f->none + f->ps);
    ADD("PROT_NONE mid-page", f->none + f->ps / 2);
    ADD("PROT_NONE first page start", f->none);
    ADD("unmapped page start", f->gone + f->ps);
    ADD("unmapped mid-page", f->gone + f->ps / 2);
    ADD("unmapped first page start", f->gone);
    ADD("low address 0x1000", (uintptr_t)0x1000);
    ADD("low address 0x10", (uintptr_t)0x10);
    ADD("non-canonical 1<<47", (uintptr_t)1 << 47);
    ADD("kernel half", (uintptr_t)0xffffffffff600000ULL);
    ADD("all ones (16-aligned)", ~(uintptr_t)15);
    ADD("function address", (uintptr_t)&foreign_list);
#undef ADD
    assert_true(n <= MAX_FOREIGN);
    return n;
}

/* ========================================================= full level */

static void skip_unless_full(void)
{
    skip_unless_hakmem_malloc();
    if (validation_level() != 2)
        skip();
}

/* A double free of a block not reused in between, in every tier. A
 * neighbour stays live so the block's span/slab stays in use. */
static void test_full_double_free(void **state)
{
    (void)state;
    skip_unless_full();
    for (size_t i = 0; i < NTIERS; i++) {
        const tier_case_t *t = &k_tiers[i];
        void *keep = malloc(t->size);
        char *p = malloc(t->size);
        assert_non_null(keep);
        assert_non_null(p);
        memset(p, 0x5a, t->size);
        free_v(p); /* through the pointer: gcc must not track it */
        watch();
        free_v(p);
        expect_one_report(t->name, "free", p, "double free", double_free_alt(t));
        /* and a third time: still reported, still no fault */
        g_reports = 0;
        free_v(p);
        expect_one_report(t->name, "free", p, "double free", double_free_alt(t));
        g_reports = 0;
        free(keep); /* the neighbour is untouched */
        expect_no_report(t->name);
        unwatch();
    }
}

/* Pointers inside a live block (and into the tier's own metadata) are not
 * block starts: reported, and the block itself is still freed normally. */
static void test_full_interior(void **state)
{
    (void)state;
    skip_unless_full();
    for (size_t i = 0; i < NTIERS; i++) {
        const tier_case_t *t = &k_tiers[i];
        char *p = malloc(t->size);
        assert_non_null(p);
        memset(p, 0, t->size); /* a zero where a header could be read */
        const size_t offs[] = {1, 8, 16, 4096};
        watch();
        for (size_t k = 0; k < sizeof offs / sizeof offs[0]; k++) {
            if (offs[k] == 4096 && !t->big)
                continue;
            g_reports = 0;
            free_v(p + offs[k]);
            expect_one_report(t->name, "free", p + offs[k], "invalid pointer", NULL);
        }
        /* the tier's metadata: the 2 MiB chunk's start for the chunked
         * tiers, the AllocHeader in front of a large block */
        char *meta = t->tier == HAK_TIER_LARGE ? p - 16 : (char *)((uintptr_t)p & ~(uintptr_t)((2u << 20) - 1));
        if (meta != p) {
            g_reports = 0;
            free_v(meta);
            expect_one_report(t->name, "free", meta, "invalid pointer", "corrupted header");
        }
        assert_true(usable_v(p) >= t->size);
        g_reports = 0;
        free(p); /* the block was left alone: its own free is fine */
        expect_no_report(t->name);
        unwatch();
    }
}

/* free, realloc and malloc_usable_size of memory hakmem never handed out:
 * reported, no fault, wherever the pointer points. */
static void test_full_foreign(void **state)
{
    (void)state;
    skip_unless_full();
    foreign_t f;
    foreign_map(&f);
    char stack[256] __attribute__((aligned(64)));
    memset(stack, 0, sizeof stack);
    fptr_t list[MAX_FOREIGN];
    size_t n = foreign_list(&f, stack, list);
    for (size_t i = 0; i < n; i++) {
        watch();
        free_v(list[i].p);
        expect_one_report(list[i].name, "free", list[i].p, "invalid pointer", NULL);

        g_reports = 0;
        errno = 0;
        void *r = realloc_v(list[i].p, 64);
        expect_one_report(list[i].name, "realloc", list[i].p, "invalid pointer", NULL);
        assert_null(r); /* the handler returned: realloc did nothing */

        g_reports = 0;
        size_t u = usable_v(list[i].p);
        expect_one_report(list[i].name, "malloc_usable_size", list[i].p, "invalid pointer", NULL);
        assert_int_equal(u, 0);
        unwatch();
    }
    /* the foreign memory is as it was */
    for (size_t k = 0; k < sizeof stack; k++)
        assert_int_equal(stack[k], 0);
    for (size_t k = 0; k < 2 * f.ps; k++)
        assert_int_equal(f.rw[k], 0);
    foreign_unmap(&f);
}

/* realloc of a freed block (not reused in between): reported by realloc,
 * which does nothing (returns NULL). */
static void test_full_realloc_freed(void **state)
{
    (void)state;
    skip_unless_full();
    int failures = 0;
    for (size_t i = 0; i < NTIERS; i++) {
        const tier_case_t *t = &k_tiers[i];
        const size_t news[] = {t->size, t->size * 2}; /* kept in place, or moved */
        for (size_t k = 0; k < 2; k++) {
            void *keep = malloc(t->size);
            char *p = malloc(t->size);
            assert_non_null(keep);
            assert_non_null(p);
            free_v(p);
            watch();
            void *r = realloc_v(p, news[k]);
            int reports = g_reports;
            char op[64], reason[256];
            copy_str(op, sizeof op, g_op);
            copy_str(reason, sizeof reason, g_reason);
            unwatch();
            if (reports != 1 || strcmp(op, "realloc") != 0 || r != NULL ||
                !(strstr(reason, "double free") || strstr(reason, "invalid pointer"))) {
                print_error("%s: realloc(freed %p, %zu) -> %p with %d report(s), last %s(): \"%s\"\n", t->name,
                            (void *)p, news[k], r, reports, op, reason);
                failures++;
            }
            /* Whatever happened, leave the heap sound for the next case:
             * a new block is the caller's; the freed block handed back
             * as is stays on its free list, untouched. */
            if (r != NULL && r != p)
                free(r);
            free(keep);
        }
    }
    assert_int_equal(failures, 0);
}

/* ------------------------------------------ death tests (full level) */

static void child_defaults(void)
{
    /* cmocka catches these in the parent and longjmps back into its
     * runner: a child must just die. */
    static const int sigs[] = {SIGABRT, SIGSEGV, SIGBUS, SIGILL, SIGFPE, SIGSYS, SIGALRM};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        signal(sigs[i], SIG_DFL);
    alarm(30); /* a hang fails the test instead of stalling the suite */
}

typedef struct death {
    const char *name;
    int kind;     /* 0 free twice, 1 free once, 2 realloc, 3 usable size,
                     4 free, junk in its link, malloc */
    void *p;
    const char *prefix;
    const char *word;
} death_t;

static void death_child(void *arg)
{
    const death_t *d = arg;
    child_defaults();
    hak_set_failure_handler(NULL);
    switch (d->kind) {
    case 0:
        free_v(d->p);
        free_v(d->p);
        break;
    case 1:
        free_v(d->p);
        break;
    case 2:
        (void)realloc_v(d->p, 64);
        break;
    case 4: {
        size_t n = usable_v(d->p); /* the block's own class */
        uint64_t junk = 0xA5A5A5A5A5A5A5A5ULL;
        free_v(d->p);
        memcpy(d->p, &junk, sizeof junk);
        (void)malloc_v(n); /* d->p again: its link is read */
        (void)malloc_v(n);
        break;
    }
    default:
        (void)usable_v(d->p);
        break;
    }
}

static void expect_death(const death_t *d)
{
    char out[1024];
    int st = ht_run_child(death_child, (void *)d, out, sizeof out);
    char addr[32];
    snprintf(addr, sizeof addr, " at %p", d->p);
    bool ok = WIFSIGNALED(st) && WTERMSIG(st) == SIGABRT && strncmp(out, d->prefix, strlen(d->prefix)) == 0 &&
              strstr(out, " at 0x") && strstr(out, addr) && strstr(out, d->word);
    if (!ok)
        print_error("%s: status 0x%x (%s %d), stderr: \"%s\" (want \"%s...%s...%s\")\n", d->name, st,
                    WIFSIGNALED(st) ? "signal" : "exit", WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st), out,
                    d->prefix, d->word, addr);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_memory_equal(out, d->prefix, strlen(d->prefix));
    assert_non_null(strstr(out, " at 0x"));
    assert_non_null(strstr(out, addr));
    assert_non_null(strstr(out, d->word));
}

static void test_full_death(void **state)
{
    (void)state;
    skip_unless_full();
    /* Blocks allocated here, misused in the child: the parent knows the
     * address the report must name. */
    char *b[NTIERS];
    for (size_t i = 0; i < NTIERS; i++) {
        b[i] = malloc(k_tiers[i].size);
        assert_non_null(b[i]);
    }
    foreign_t f;
    foreign_map(&f);
    char stack[128] __attribute__((aligned(16)));
    memset(stack, 0, sizeof stack);
    const death_t cases[] = {
        {"tiny double free", 0, b[0], "hakmem: free(): ", "double free"},
        {"mid double free", 0, b[1], "hakmem: free(): ", "double free"},
        {"L25 double free", 0, b[2], "hakmem: free(): ", "double free"},
        {"large double free", 0, b[3], "hakmem: free(): ", "double free"},
        {"tiny interior", 1, b[0] + 16, "hakmem: free(): ", "invalid pointer"},
        {"mid interior", 1, b[1] + 16, "hakmem: free(): ", "invalid pointer"},
        {"L25 interior", 1, b[2] + 4096, "hakmem: free(): ", "invalid pointer"},
        {"large interior", 1, b[3] + 4096, "hakmem: free(): ", "invalid pointer"},
        {"stack", 1, stack + 16, "hakmem: free(): ", "invalid pointer"},
        {"static", 1, g_bss + 16, "hakmem: free(): ", "invalid pointer"},
        {"mmap mid-page", 1, f.rw + 100 * 16, "hakmem: free(): ", "invalid pointer"},
        {"PROT_NONE", 1, f.none + f.ps, "hakmem: free(): ", "invalid pointer"},
        {"unmapped", 1, f.gone + 64, "hakmem: free(): ", "invalid pointer"},
        {"realloc stack", 2, stack + 16, "hakmem: realloc(): ", "invalid pointer"},
        {"realloc unmapped", 2, f.gone, "hakmem: realloc(): ", "invalid pointer"},
        {"usable size PROT_NONE", 3, f.none + 64, "hakmem: malloc_usable_size(): ", "invalid pointer"},
        {"tiny write after free", 4, b[0], "hakmem: malloc(): ", "corrupted free list"},
        {"mid write after free", 4, b[1], "hakmem: malloc(): ", "corrupted free list"},
        {"L25 write after free", 4, b[2], "hakmem: malloc(): ", "corrupted free list"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        death_t d = cases[i];
        if (d.kind == 0 && i < NTIERS && double_free_alt(&k_tiers[i]))
            d.word = "invalid pointer";
        expect_death(&d);
    }
    /* The parent's blocks were never freed here. */
    for (size_t i = 0; i < NTIERS; i++)
        free(b[i]);
    foreign_unmap(&f);
}

/* ================================================= below full: children */

/* A child that runs a scenario with the counting handler, writes what went
 * wrong on stderr and exits with 0 (as expected) or 1. */
typedef void (*scenario_fn)(const tier_case_t *t);
typedef struct scenario {
    scenario_fn fn;
    const tier_case_t *t;
} scenario_t;

static void fail_child(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void fail_child(const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n > 0)
        (void)!write(2, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    _exit(1);
}

static void scenario_child(void *arg)
{
    const scenario_t *s = arg;
    child_defaults();
    watch();
    s->fn(s->t);
    _exit(0);
}

static void run_scenario(const char *what, scenario_fn fn, const tier_case_t *t)
{
    scenario_t s = {fn, t};
    char out[1024];
    int st = ht_run_child(scenario_child, &s, out, sizeof out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        print_error("%s (%s): status 0x%x: %s\n", what, t ? t->name : "-", st, out);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* A write after free into a freed block's first word, its free-list link:
 * the address of another live block, junk, the address of static data.
 * The malloc that reads the link reports it (about the freed block), and
 * the next one hands out neither the written address nor a live block
 * (issue 16: the mid and L25 pools handed the live block out again and
 * faulted on junk). Tiny, mid and L25; run in a child, which may fault. */
static void sc_write_after_free_reported(const tier_case_t *t)
{
    for (int k = 0; k < 3; k++) {
        char *live = malloc_v(t->size), *q = malloc_v(t->size), *p = malloc_v(t->size);
        memset(live, 0x33, t->size);
        free_v(q);
        free_v(p); /* the free list: p -> q -> ... */
        void *w = k == 0 ? (void *)live : k == 1 ? (void *)(uintptr_t)0xA5A5A5A5A5A5A5A5ULL : (void *)g_bss;
        memcpy(p, &w, sizeof w);
        g_reports = 0;
        void *a = malloc_v(t->size);
        void *b = malloc_v(t->size);
        if (a != p || b == NULL || b == w || b == live)
            fail_child("case %d: wrote %p into freed %p: mallocs gave %p, %p (live %p)\n", k, w, (void *)p, a, b,
                       (void *)live);
        if (g_reports != 1 || strcmp(g_op, "malloc") != 0 || g_addr != p ||
            !strstr(g_reason, "corrupted free list"))
            fail_child("case %d: %d reports, last %s(): \"%s\" at %p (freed block %p)\n", k, g_reports, g_op,
                       g_reason, g_addr, (void *)p);
        for (size_t i = 0; i < t->size; i++)
            if (live[i] != 0x33)
                fail_child("case %d: the live block changed at offset %zu\n", k, i);
        free_v(live);
        free_v(a);
        free_v(b);
        if (g_reports != 1)
            fail_child("case %d: the frees after it reported %s(): \"%s\"\n", k, g_op, g_reason);
    }
}

static void test_full_write_after_free(void **state)
{
    (void)state;
    skip_unless_full();
    for (size_t i = 0; i < 3; i++)
        if (tier_as_named(&k_tiers[i]))
            run_scenario("write after free reported", sc_write_after_free_reported, &k_tiers[i]);
}

/* Below full, a double free with nothing between the two frees is caught
 * only where the second free takes the tier's slow path, at magic
 * (hak_front_pushed_twice: the bin overflows). After malloc_trim an L25
 * bin has no room (its bounds go back to the thread's cap), so every free
 * of an L25 block does: reported, and the block is not handed out twice.
 * Elsewhere (tiny and mid bins with room, or none) it goes on its free
 * list twice, and the next two requests of that size get the same block. */
static void sc_double_free_below_full(const tier_case_t *t)
{
    bool caught = validation_level() == 1 && t->tier == HAK_TIER_L25;
    malloc_trim(0);
    void *keep = malloc_v(t->size);
    char *p = malloc_v(t->size);
    free_v(p);
    free_v(p);
    void *a = malloc_v(t->size);
    void *b = malloc_v(t->size);
    if (caught) {
        if (g_reports != 1 || strcmp(g_op, "free") != 0 || strcmp(g_reason, "double free") != 0)
            fail_child("double free of %p: %d reports, the last %s(): %s\n", (void *)p, g_reports, g_op, g_reason);
        if (a == b)
            fail_child("double free of %p reported, then %p handed out twice\n", (void *)p, a);
    } else {
        if (g_reports != 0)
            fail_child("double free reported: %s(): %s\n", g_op, g_reason);
        if (a != p || b != p)
            fail_child("double free of %p: next mallocs gave %p and %p\n", (void *)p, a, b);
    }
    (void)keep;
}

static void test_below_full_double_free(void **state)
{
    (void)state;
    skip_unless_hakmem_malloc();
    if (validation_level() == 2)
        skip();
    /* tiny, mid and L25: thread-cached, a freed block is the next one
     * handed out (the large tier's double free is reported at every level
     * while its mapping is cached: test_large_double_free_every_level) */
    for (size_t i = 0; i < 3; i++)
        if (tier_as_named(&k_tiers[i]))
            run_scenario("double free below full", sc_double_free_below_full, &k_tiers[i]);
}

/* A large block freed twice is reported at every level, not handed to
 * glibc's free (which died of SIGSEGV with no message): its mapping is in
 * the large tier's cache, which knows it was freed. */
static void test_large_double_free_every_level(void **state)
{
    (void)state;
    skip_unless_hakmem_malloc();
    const tier_case_t *t = &k_tiers[3];
    if (!tier_as_named(t))
        skip();
    char *p = malloc(t->size);
    assert_non_null(p);
    death_t d = {"large double free", 0, p, "hakmem: free(): ", "double free"};
    expect_death(&d);
    free(p);
}

/* The mid and L25 pools at magic: realloc of a pointer that is not a
 * block start is reported (hak_pool_check_live_) unless its span ever
 * handed out an over-aligned (interior) pointer -- none has in this child,
 * which never called memalign -- and the block is left alone. */
static void sc_pool_interior_reported(const tier_case_t *t)
{
    char *p = malloc_v(t->size);
    memset(p, 0, t->size);
    /* realloc of an interior pointer: reported as realloc's and before
     * anything is copied or freed (it returns NULL, EINVAL), whether the
     * new size would keep the block or move it */
    const size_t news[] = {t->size, t->size * 4};
    for (size_t k = 0; k < 2; k++) {
        g_reports = 0;
        errno = 0;
        void *r = realloc_v(p + 16, news[k]);
        if (r != NULL || errno != EINVAL || g_reports != 1 || strcmp(g_op, "realloc") != 0 || g_addr != p + 16 ||
            !strstr(g_reason, "not the start"))
            fail_child("realloc(p + 16, %zu) = %p (errno %d): %d reports, last %s(): \"%s\" at %p\n", news[k], r,
                       errno, g_reports, g_op, g_reason, g_addr);
    }
    for (size_t k = 0; k < t->size; k++)
        if (p[k] != 0)
            fail_child("the block changed at %zu after the rejected calls\n", k);
    /* the block is still live: its own free works, and it comes back */
    g_reports = 0;
    free_v(p);
    void *q = malloc_v(t->size);
    if (g_reports != 0 || q != p)
        fail_child("after the rejected reallocs: free(p) gave %d reports, malloc gave %p for %p\n", g_reports, q,
                   (void *)p);
}

/* Below full, free does not check that a tiny, mid or L25 pointer is a
 * block start (the front end reads the page's class and pushes): an
 * interior pointer goes on the thread's bin as a block and is what the
 * next malloc of the class hands out. Asserted so that a change of it is
 * seen (docs/reliability.md, the misuse table). */
static void sc_interior_free_not_checked(const tier_case_t *t)
{
    void *keep = malloc_v(t->size);
    char *p = malloc_v(t->size);
    free_v(p + 16);
    void *q = malloc_v(t->size);
    if (g_reports != 0)
        fail_child("interior free reported below full: %s(): %s\n", g_op, g_reason);
    if (q != p + 16)
        fail_child("interior free of %p + 16: next malloc gave %p\n", (void *)p, q);
    (void)keep;
}

/* header_classidx: at magic the header byte must hold the live magic and a
 * class in range (hak_tiny_class_of_block); a block whose header was
 * overwritten is reported and left alone. An interior pointer whose "header"
 * (the byte before it, user data) is 0 is reported the same way. */
static void sc_tiny_header_reported(const tier_case_t *t)
{
    unsigned char *p = malloc_v(t->size);
    memset(p, 0, t->size);
    unsigned char *volatile hdr = p - 1;
    unsigned char saved = *hdr;
    *hdr = 0;
    free_v(p);
    if (g_reports != 1 || strcmp(g_op, "free") != 0 || g_addr != p || !strstr(g_reason, "invalid pointer"))
        fail_child("free with header 0: %d reports, last %s(): \"%s\" at %p\n", g_reports, g_op, g_reason, g_addr);
    *hdr = saved;
    g_reports = 0;
    free_v(p + 16);
    if (g_reports != 1 || strcmp(g_op, "free") != 0 || g_addr != p + 16 || !strstr(g_reason, "invalid pointer"))
        fail_child("free(p + 16): %d reports, last %s(): \"%s\" at %p\n", g_reports, g_op, g_reason, g_addr);
    /* the header restored, the block frees normally and comes back */
    g_reports = 0;
    free_v(p);
    void *q = malloc_v(t->size);
    if (g_reports != 0 || q != p)
        fail_child("after the rejected frees: %d reports, malloc gave %p for %p\n", g_reports, q, (void *)p);
}

/* At none the header byte is trusted: 0 reads as class 0, and the block
 * lands on class 0's list (the smallest requests then get it). */
static void sc_tiny_header_trusted(const tier_case_t *t)
{
    unsigned char *p = malloc_v(t->size);
    unsigned char *volatile hdr = p - 1;
    *hdr = 0;
    free_v(p);
    void *q = malloc_v(1);
    if (g_reports != 0)
        fail_child("header 0 reported at none: %s(): %s\n", g_op, g_reason);
    if (q != p)
        fail_child("block %p with header 0 freed: malloc(1) gave %p\n", (void *)p, q);
}

static void test_magic_reports(void **state)
{
    (void)state;
    skip_unless_hakmem_malloc();
    int v = validation_level();
    if (v == 2)
        skip();
    for (size_t i = 1; i <= 2; i++) {
        if (!tier_as_named(&k_tiers[i]))
            continue;
        if (v == 1)
            run_scenario("pool interior pointer reported by realloc at magic", sc_pool_interior_reported,
                         &k_tiers[i]);
        run_scenario("pool interior pointer not checked by free below full", sc_interior_free_not_checked,
                     &k_tiers[i]);
    }
    if (has_header() && tier_as_named(&k_tiers[0])) {
        if (v == 1)
            run_scenario("tiny header overwritten reported at magic", sc_tiny_header_reported, &k_tiers[0]);
        else
            run_scenario("tiny header overwritten trusted at none", sc_tiny_header_trusted, &k_tiers[0]);
    }
}

/* Below full, memory hakmem does not own goes to glibc's real free, which
 * aborts on garbage (or the read of its chunk header faults): the child
 * dies by a signal. Each pointer has zeros (size 0) in front of it, or no
 * readable memory at all. */
static void foreign_free_child(void *arg)
{
    child_defaults();
    free_v(arg);
}

static void test_below_full_foreign_kills(void **state)
{
    (void)state;
    skip_unless_hakmem_malloc();
    if (validation_level() == 2)
        skip();
    foreign_t f;
    foreign_map(&f);
    char stack[128] __attribute__((aligned(16)));
    memset(stack, 0, sizeof stack);
    const fptr_t cases[] = {
        {"stack (zeros in front)", stack + 64},
        {"mmap mid-page (zeros in front)", f.rw + f.ps / 2},
        {"PROT_NONE mid-page", f.none + f.ps / 2},
        {"unmapped mid-page", f.gone + f.ps / 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[1024];
        int st = ht_run_child(foreign_free_child, cases[i].p, out, sizeof out);
        if (!WIFSIGNALED(st) || WTERMSIG(st) == SIGALRM)
            print_error("%s: status 0x%x, stderr \"%s\"\n", cases[i].name, st, out);
        assert_true(WIFSIGNALED(st));
        assert_int_not_equal(WTERMSIG(st), SIGALRM);
    }
    foreign_unmap(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_double_free),
        cmocka_unit_test(test_full_interior),
        cmocka_unit_test(test_full_foreign),
        cmocka_unit_test(test_full_realloc_freed),
        cmocka_unit_test(test_full_write_after_free),
        cmocka_unit_test(test_full_death),
        cmocka_unit_test(test_below_full_double_free),
        cmocka_unit_test(test_large_double_free_every_level),
        cmocka_unit_test(test_magic_reports),
        cmocka_unit_test(test_below_full_foreign_kills),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
