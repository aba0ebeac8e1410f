// SPDX-License-Identifier: MIT
/* Suite `large`, hardening: deliberate misuse. Invalid pointers and forged
 * or corrupted AllocHeaders never change what is unmapped (the registry
 * decides); the validation level decides what is reported. Failures
 * reported through an injected handler are counted; the death tests check
 * the default handler's message on stderr. Out-of-memory paths run in
 * children under RLIMIT_AS. */
#include "common/hak_test.h"

#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "hak_alloc_header.h"
#include "hak_large.h"
#include "hak_platform.h"
#include "hak_purge.h"
#include "large_inline.h"
#include "large_internal.h"

#define MiB ((size_t)1 << 20)
#define FULL (HAK_VALIDATION >= HAK_VALIDATION_FULL)
#define MAGIC (HAK_VALIDATION >= HAK_VALIDATION_MAGIC)

static size_t page(void) { return (size_t)sysconf(_SC_PAGESIZE); }

static int g_reports;
static char g_op[32], g_reason[160];
static const void *g_addr;

static void counting_handler(const char *op, const char *reason, const void *p)
{
    g_reports++;
    snprintf(g_op, sizeof g_op, "%s", op);
    snprintf(g_reason, sizeof g_reason, "%s", reason);
    g_addr = p;
    errno = 999; /* the allocator must restore errno after a report */
}

static int setup(void **state)
{
    (void)state;
    hak_set_failure_handler(counting_handler);
    hak_large_free(hak_large_alloc(MiB + 1, 16));
    hak_large_trim();
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    hak_set_failure_handler(NULL);
    return 0;
}

static void expect_report(int before, const char *op, const char *reason_prefix, const void *p)
{
    assert_int_equal(g_reports, before + 1);
    assert_string_equal(g_op, op);
    assert_true(strncmp(g_reason, reason_prefix, strlen(reason_prefix)) == 0);
    assert_ptr_equal(g_addr, p);
}

/* Every page of [lo, hi) is mapped (mapped = true) or none is. */
static bool pages_are(const void *lo, const void *hi, bool mapped)
{
    for (const char *a = lo; a < (const char *)hi; a += page())
        if (hak_is_memory_readable(a) != mapped)
            return false;
    return true;
}

/* A private mapping at exactly `at`, or NULL if something is there. */
static uint8_t *map_at(void *at, size_t len)
{
    void *m = mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    if (m != at) {
        munmap(m, len);
        return NULL;
    }
    return m;
}

/* ------------------------------------------------------ invalid pointers */

static void test_invalid_pointers(void **state)
{
    (void)state;
    uint8_t *p = hak_large_alloc(2 * MiB, 16);
    assert_non_null(p);
    ht_fill(p, 4096, 1);
    int local;
    void *foreign = mmap(NULL, 2 * page(), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(foreign != MAP_FAILED);
    memset(foreign, 0x33, 2 * page());
    void *bad[] = {p + 16, p + MiB, p - 16, &local, foreign, (char *)foreign + 16, (void *)(uintptr_t)16};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int n = g_reports;
        errno = 4321;
        hak_large_free(bad[i]);
        assert_int_equal(errno, 4321);
        expect_report(n, "free", "invalid pointer", bad[i]);
        n = g_reports;
        errno = 0;
        assert_null(hak_large_realloc(bad[i], 3 * MiB));
        assert_int_equal(errno, EINVAL);
        expect_report(n, "realloc", "invalid pointer", bad[i]);
    }
    /* nothing was unmapped */
    assert_true(hak_large_owns(p));
    assert_true(ht_check(p, 4096, 1));
    assert_true(pages_are(foreign, (char *)foreign + 2 * page(), true));
    assert_int_equal(((uint8_t *)foreign)[page() + 5], 0x33);
    /* double free: the mapping is cached, so the second free is named */
    hak_large_free(p);
    int n = g_reports;
    hak_large_free(p);
    expect_report(n, "free", "double free", p);
    hak_large_trim(); /* unmapped: now only an invalid pointer */
    n = g_reports;
    hak_large_free(p);
    expect_report(n, "free", "invalid pointer", p);
    munmap(foreign, 2 * page());
}

/* A valid-looking header written in front of a foreign mapping: the
 * registry does not know the pointer, so nothing is unmapped. */
static void test_forged_header_foreign(void **state)
{
    (void)state;
    size_t ps = page();
    uint8_t *foreign = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(foreign != MAP_FAILED);
    memset(foreign, 0x44, 4 * ps);
    uint8_t *q = foreign + ps;
    hak_ah_write(q, 3 * ps, ps, HAK_METHOD_MMAP);
    assert_false(hak_large_owns(q));
    assert_int_equal(hak_large_usable_size(q), 0);
    int n = g_reports;
    hak_large_free(q);
    expect_report(n, "free", "invalid pointer", q);
    assert_true(pages_are(foreign, foreign + 4 * ps, true));
    assert_int_equal(foreign[0], 0x44);
    assert_int_equal(q[2 * ps], 0x44);
    munmap(foreign, 4 * ps);
}

/* The header of a real block claims a larger size and an offset reaching
 * into the mapping before it. Free unmaps exactly the registered range:
 * the neighbours on both sides stay. At full the mismatch is reported and
 * the block left alone. */
static void test_forged_header_real_block(void **state)
{
    (void)state;
    size_t ps = page();
    hak_large_trim(); /* so that trimming below unmaps this block only */
    uint8_t *p = hak_large_alloc(4 * MiB, 16);
    assert_non_null(p);
    uint8_t *base = p - 16, *end = p + hak_large_usable_size(p);
    size_t usable = (size_t)(end - p);
    uint8_t *before = map_at(base - MiB, MiB), *after = map_at(end, MiB);
    if (before)
        memset(before, 0xB1, MiB);
    if (after)
        memset(after, 0xA1, MiB);
    bool before_mapped = hak_is_memory_readable(base - ps), after_mapped = hak_is_memory_readable(end);
    hak_ah_write(p, usable + 2 * MiB, HAK_AH_OFFSET_MAX, HAK_METHOD_MMAP);

    int n = g_reports;
    hak_large_free(p);
    if (FULL) {
        expect_report(n, "free", "corrupted header", p);
        assert_true(hak_large_owns(p));
        assert_true(pages_are(base, end, true));
        hak_ah_write(p, usable, 16, HAK_METHOD_MMAP); /* repair, then free */
        hak_large_free(p);
    }
    assert_int_equal(g_reports, n + (FULL ? 1 : 0));
    assert_false(hak_large_owns(p));
    hak_large_trim(); /* the mapping may wait in the cache: its exact range */
    assert_true(pages_are(base, end, false));
    assert_int_equal(hak_is_memory_readable(base - ps), before_mapped);
    assert_int_equal(hak_is_memory_readable(end), after_mapped);
    if (before) {
        assert_true(pages_are(before, before + MiB, true));
        assert_int_equal(before[MiB - 1], 0xB1);
        munmap(before, MiB);
    }
    if (after) {
        assert_true(pages_are(after, after + MiB, true));
        assert_int_equal(after[0], 0xA1);
        munmap(after, MiB);
    }
}

/* A header that claims a smaller mapping (a different method, a smaller
 * size): the whole registered range goes all the same (no leak). */
static void test_forged_header_smaller(void **state)
{
    (void)state;
    hak_large_trim();
    uint8_t *p = hak_large_alloc(3 * MiB, 1 << 21);
    assert_non_null(p);
    uint8_t *base = p - page(), *end = p + hak_large_usable_size(p);
    hak_ah_write(p, 4096, 16, HAK_METHOD_MALLOC);
    int n = g_reports;
    hak_large_free(p);
    if (FULL) {
        expect_report(n, "free", "corrupted header", p);
        assert_true(pages_are(base, end, true));
        hak_ah_write(p, (size_t)(end - p), page(), HAK_METHOD_MMAP);
        hak_large_free(p);
    }
    assert_int_equal(g_reports, n + (FULL ? 1 : 0));
    hak_large_trim();
    assert_true(pages_are(base, end, false));
}

static void test_corrupted_magic(void **state)
{
    (void)state;
    hak_large_trim();
    uint8_t *p = hak_large_alloc(2 * MiB, 16);
    assert_non_null(p);
    ht_fill(p, 4096, 8);
    uint8_t *end = p + hak_large_usable_size(p);
    hak_alloc_header_t saved = *hak_ah_of(p);
    hak_ah_of(p)->magic ^= 0x100;
    int n = g_reports;
    errno = 0;
    uint8_t *q = hak_large_realloc(p, 5 * MiB);
    if (MAGIC) {
        assert_null(q);
        assert_int_equal(errno, EINVAL);
        expect_report(n, "realloc", "corrupted header", p);
        assert_true(ht_check(p, 4096, 8));
        n = g_reports;
        errno = 55;
        hak_large_free(p);
        assert_int_equal(errno, 55);
        expect_report(n, "free", "corrupted header", p);
        assert_true(hak_large_owns(p));
        assert_true(pages_are(p - 16, end, true));
        *hak_ah_of(p) = saved;
        hak_large_free(p);
    } else {
        /* none trusts the registry: the realloc works, free unmaps */
        assert_non_null(q);
        assert_true(ht_check(q, 4096, 8));
        end = q + hak_large_usable_size(q);
        p = q;
        hak_large_free(p);
        assert_int_equal(g_reports, n);
    }
    assert_false(hak_large_owns(p));
    hak_large_trim();
    assert_true(pages_are(p - 16, end, false));
}

/* --------------------------------------------------------- death tests */

static void child_corrupt_and_free(void *arg)
{
    (void)arg;
    hak_set_failure_handler(NULL); /* the default: print and abort */
    uint8_t *p = hak_large_alloc(2 * MiB, 16);
    if (p == NULL)
        _exit(3);
    if (FULL)
        hak_ah_write(p, 12345, 32, HAK_METHOD_MMAP); /* magic intact, fields wrong */
    else
        hak_ah_of(p)->magic = 0;
    hak_large_free(p);
}

static void test_death_corrupted_header(void **state)
{
    (void)state;
    char out[512];
    int status = ht_run_child(child_corrupt_and_free, NULL, out, sizeof out);
    if (!MAGIC) {
        /* validation=none trusts the registry: freed, no report */
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        assert_string_equal(out, "");
        return;
    }
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "hakmem: free(): corrupted header"));
    assert_non_null(strstr(out, " at 0x"));
}

static void child_free_stack(void *arg)
{
    (void)arg;
    hak_set_failure_handler(NULL);
    int local;
    hak_large_free(&local);
}

static void test_death_invalid_pointer(void **state)
{
    (void)state;
    char out[512];
    int status = ht_run_child(child_free_stack, NULL, out, sizeof out);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGABRT);
    assert_non_null(strstr(out, "hakmem: free(): invalid pointer"));
}

/* ------------------------------------------------------- out of memory */

static int limit_as(size_t bytes)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_AS, &rl) != 0)
        return -1;
    rl.rlim_cur = bytes;
    return setrlimit(RLIMIT_AS, &rl);
}

/* Child: with no address space left, growth fails with ENOMEM and the block
 * is unchanged; shrinking and free still work. */
static int oom_realloc_child(void)
{
    size_t size = 2 * MiB;
    hak_large_trim(); /* no cached mapping may serve the requests below */
    uint8_t *p = hak_large_alloc(size, 16);
    if (p == NULL)
        return 10;
    ht_fill(p, size, 21);
    size_t usable = hak_large_usable_size(p);
    size_t mapped = hak_os_mapped_bytes();
    if (limit_as(ht_vm_size()) != 0)
        return 11;
    errno = 0;
    if (hak_large_realloc(p, 64 * MiB) != NULL || errno != ENOMEM)
        return 12;
    if (!hak_large_owns(p) || hak_large_usable_size(p) != usable || !ht_check(p, size, 21))
        return 13;
    errno = 0;
    if (hak_large_alloc(2 * MiB, 16) != NULL || errno != ENOMEM)
        return 14;
    if (hak_large_alloc(2 * MiB, 1 << 21) != NULL || errno != ENOMEM)
        return 15;
    if (hak_os_mapped_bytes() != mapped || !hak_large_validate_(true))
        return 16;
    uint8_t *q = hak_large_realloc(p, MiB + 1);
    if (q != p || !ht_check(q, MiB + 1, 21))
        return 17;
    hak_large_free(q);
    if (hak_large_owns(q) || !hak_large_validate_(true))
        return 18;
    return 0;
}

/* Child: the block maps but the registry cannot grow: the mapping is given
 * back and the allocation fails cleanly. */
static int oom_registry_child(void)
{
    hak_tier_stats_t st;
    hak_large_trim();
    hak_large_stats(&st);
    size_t slots = hak_large_registry_bytes_() / 32;
    size_t grow_at = slots * 3 / 4; /* the insert that would pass 3/4 grows */
    static void *blocks[4096];
    size_t n = 0;
    for (size_t live = st.blocks_in_use; live < grow_at && n < 4096; live++, n++)
        if ((blocks[n] = hak_large_alloc(1, 16)) == NULL)
            return 20;
    size_t mapped = hak_os_mapped_bytes();
    (void)ht_vm_size(); /* the first call sets up stdio */
    /* room for the block's one page, not for a larger slot array */
    if (limit_as(ht_vm_size() + page()) != 0)
        return 21;
    errno = 0;
    if (hak_large_alloc(1, 16) != NULL || errno != ENOMEM)
        return 22;
    if (hak_os_mapped_bytes() != mapped || !hak_large_validate_(true))
        return 23;
    while (n > 0)
        hak_large_free(blocks[--n]);
    return hak_large_validate_(true) ? 0 : 24;
}

static void run_oom_child(int (*fn)(void))
{
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0)
        _exit(fn());
    assert_true(pid > 0);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* A sampled block's mapping that a thread's stash keeps stays registered
 * (its header marked stashed): it is not a live block for any question
 * asked of it, a second free or a realloc of it is reported at every
 * level, and it leaves the registry when it leaves the stash. */
static void test_stashed_block_misuse(void **state)
{
    (void)state;
    if (__atomic_load_n(&hak_purge_.delay_ms, __ATOMIC_RELAXED) == 0)
        skip(); /* no stash without a purge delay */
    hak_large_trim();
    size_t live0 = hak_large_registry_count_(&hak_large_reg_);
    uint8_t *p = hak_large_alloc_sampled(100, 16);
    assert_non_null(p);
    assert_int_equal(hak_large_registry_count_(&hak_large_reg_), live0 + 1);
    hak_large_free_sampled(p);
    /* stashed: the entry stays (no registry lock on the way in or out) */
    assert_int_equal(hak_large_registry_count_(&hak_large_reg_), live0 + 1);
    assert_false(hak_large_owns(p));
    assert_int_equal(hak_large_usable_size(p), 0);
    assert_true(hak_large_freed_(p));
    assert_true(hak_large_validate_(true));
    int n = g_reports;
    hak_large_free(p);
    expect_report(n, "free", "double free", p);
    n = g_reports;
    errno = 0;
    assert_null(hak_large_realloc(p, 3 * MiB));
    assert_int_equal(errno, EINVAL);
    expect_report(n, "realloc", "invalid pointer", p);
    /* neither took it out of the stash: the next sample gets it back */
    assert_int_equal(hak_large_registry_count_(&hak_large_reg_), live0 + 1);
    uint8_t *q = hak_large_alloc_sampled(200, 16);
    assert_ptr_equal(q, p);
    assert_true(hak_large_owns(q));
    assert_int_equal(hak_large_usable_size(q), page() - 16);
    memset(q, 0x5A, 200);
    hak_large_free_sampled(q);
    /* out of the stash: out of the registry, a freed (cached) mapping */
    hak_large_trim();
    assert_int_equal(hak_large_registry_count_(&hak_large_reg_), live0);
    assert_true(hak_large_validate_(true));
    n = g_reports;
    hak_large_free(q);
    expect_report(n, "free", "invalid pointer", q); /* trimmed: unmapped */
}

static void test_oom_realloc_keeps_block(void **state)
{
    (void)state;
    run_oom_child(oom_realloc_child);
}

static void test_oom_registry(void **state)
{
    (void)state;
    run_oom_child(oom_registry_child);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_invalid_pointers),
        cmocka_unit_test(test_forged_header_foreign),
        cmocka_unit_test(test_forged_header_real_block),
        cmocka_unit_test(test_forged_header_smaller),
        cmocka_unit_test(test_corrupted_magic),
        cmocka_unit_test(test_death_corrupted_header),
        cmocka_unit_test(test_death_invalid_pointer),
        cmocka_unit_test(test_stashed_block_misuse),
        cmocka_unit_test(test_oom_realloc_keeps_block),
        cmocka_unit_test(test_oom_registry),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
