// SPDX-License-Identifier: MIT
/* Suite `dispatch`: the purge policy as a program sees it through the
 * glibc API (libhakmem.so is malloc): malloc_trim gives back the large
 * tier's cached mappings, mallopt's knobs take effect, a forked child uses
 * and frees the mappings its parent had cached, and cached memory goes
 * back before an allocation fails under RLIMIT_AS. The purge options read
 * from the environment are tested by test_env.py.
 *
 * Large blocks are measured in VmRSS: their cached mappings are resident
 * until unmapped. Nothing is timed. */
#include "common/hak_test.h"

#include <malloc.h>
#include <sys/resource.h>
#include <sys/wait.h>

#include "hakmem/hakmem.h"

#define MiB ((size_t)1 << 20)

static void *(*volatile malloc_v)(size_t) = malloc;

/* n blocks of `size` bytes, written whole, then freed. */
static void churn_large(size_t n, size_t size)
{
    void *b[64];
    for (size_t i = 0; i < n; i++) {
        b[i] = malloc_v(size);
        assert_non_null(b[i]);
        memset(b[i], (int)i + 1, size);
    }
    for (size_t i = 0; i < n; i++)
        free(b[i]);
}

/* The case: 8 blocks of 4 MiB freed, then malloc_trim(0). Before
 * the trim their mappings are cached (resident, reused by the next large
 * block); after it they are gone and malloc_trim says it released memory;
 * a second trim has nothing left to give and says so. */
static void test_trim_releases_large_cache(void **state)
{
    (void)state;
    malloc_trim(0);
    size_t before = ht_rss();
    churn_large(8, 4 * MiB);
    size_t cached = ht_rss();
    assert_true(cached >= before + 24 * MiB);
    assert_int_equal(malloc_trim(0), 1);
    assert_int_equal(malloc_trim(0), 0); /* nothing left to give */
    size_t after = ht_rss();
    print_message("8 x 4 MiB: RSS %zu KiB before, %zu KiB cached, %zu KiB after malloc_trim(0)\n", before >> 10,
                  cached >> 10, after >> 10);
    assert_true(after <= before + 2 * MiB);
}

/* mallopt(M_MMAP_THRESHOLD, n): a freed large block above n is unmapped at
 * once, one below is still cached. */
static void test_mallopt_mmap_threshold(void **state)
{
    (void)state;
    malloc_trim(0);
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, (int)(4 * MiB)), 1);
    size_t before = ht_rss();
    churn_large(4, 6 * MiB);
    assert_true(ht_rss() <= before + 2 * MiB); /* above: unmapped */
    churn_large(4, 3 * MiB);
    assert_true(ht_rss() >= before + 8 * MiB); /* below: cached */
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, INT32_MAX), 1);
    assert_int_equal(mallopt(M_MMAP_THRESHOLD, -1), 0);
    malloc_trim(0);
}

/* mallopt(M_TRIM_THRESHOLD, n) is the budget's floor (the free committed
 * bytes kept whatever the heap's size). Run in a child started with
 * HAKMEM_PURGE_BUDGET=0, where the floor is the whole budget: with the
 * floor at 0 a freed large block is unmapped at once, with a floor of
 * 1 GiB it stays cached. */
static int floor_child(void)
{
    if (mallopt(M_TRIM_THRESHOLD, 0) != 1)
        return 2;
    size_t before = ht_rss();
    churn_large(4, 4 * MiB);
    if (ht_rss() > before + 2 * MiB)
        return 3; /* kept above a budget of 0 */
    if (mallopt(M_TRIM_THRESHOLD, 1 << 30) != 1)
        return 4;
    churn_large(4, 4 * MiB);
    if (ht_rss() < before + 12 * MiB)
        return 5; /* not kept under a floor of 1 GiB */
    if (mallopt(M_TRIM_THRESHOLD, -1) != 0)
        return 6;
    return 0;
}

static void test_mallopt_trim_threshold(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char *argv[] = {"test_purge", "floor-child", NULL};
        char *envp[] = {"HAKMEM_PURGE_BUDGET=0", NULL};
        execve("/proc/self/exe", argv, envp);
        _exit(127);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
}

/* fork with cached mappings: the child takes them (contents are the
 * parent's old bytes, writable), frees and trims; the parent's cache is
 * its own and still serves it. */
static void fork_child_uses_cache(void *arg)
{
    (void)arg;
    size_t before = ht_vm_size();
    char *p[4];
    for (int i = 0; i < 4; i++) {
        p[i] = malloc_v(3 * MiB);
        if (!p[i])
            _exit(2);
        memset(p[i], 0x77, 3 * MiB);
    }
    if (ht_vm_size() > before + MiB) /* served by the cache: nothing new mapped */
        _exit(3);
    for (int i = 0; i < 4; i++)
        free(p[i]);
    void *z = calloc(1, 3 * MiB); /* a cached mapping, zeroed */
    if (!z || ((char *)z)[MiB] != 0)
        _exit(4);
    free(z);
    if (malloc_trim(0) != 1)
        _exit(5);
}

/* A child's exit status, 0 expected (ht_run_child exits 0 after fn). */
static void expect_child_ok(void (*fn)(void *))
{
    char out[512];
    int st = ht_run_child(fn, NULL, out, sizeof out);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child status 0x%x, stderr \"%s\"", st, out);
}

static void test_fork_with_cached_mappings(void **state)
{
    (void)state;
    malloc_trim(0);
    churn_large(4, 3 * MiB);
    expect_child_ok(fork_child_uses_cache);
    size_t before = ht_vm_size();
    churn_large(4, 3 * MiB);
    assert_true(ht_vm_size() <= before + MiB);
    malloc_trim(0);
}

/* calloc of a large block from the cache reads zero, every byte of it. */
static void test_calloc_from_cache(void **state)
{
    (void)state;
    for (int round = 0; round < 3; round++) {
        churn_large(2, 4 * MiB + 4096);
        unsigned char *z = calloc(4, MiB);
        assert_non_null(z);
        for (size_t i = 0; i < 4 * MiB; i++)
            if (z[i] != 0)
                fail_msg("calloc byte %zu is %u", i, z[i]);
        memset(z, 0xAB, 4 * MiB);
        free(z);
    }
    malloc_trim(0);
}

/* Under RLIMIT_AS, memory the policy keeps (large mappings in the cache,
 * free pages of the pools and of tiny) goes back before an allocation
 * fails: 160 MiB of large blocks cached, a limit of 96 MiB above the
 * address space in use without them, then 48 MiB of mid and small blocks
 * (in a build without the mid pool, 8 KiB blocks are large: 12 KiB of
 * address space each): every allocation succeeds. Run in a child (the
 * limit stays there). */
static void rlimit_child(void *arg)
{
    (void)arg;
    malloc_trim(0);
    size_t base = ht_vm_size();
    churn_large(40, 4 * MiB); /* cached: ~160 MiB of address space */
    struct rlimit rl = {base + 96 * MiB, base + 96 * MiB};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        _exit(2);
    static void *v[1 << 16];
    size_t total = 0, n = 0;
    while (total < 48 * MiB && n < (1 << 16)) {
        size_t s = n % 2 ? 8192 : 200;
        v[n] = malloc_v(s);
        if (!v[n])
            _exit(3); /* the cache was not given back */
        memset(v[n], 1, s);
        total += s;
        n++;
    }
    for (size_t i = 0; i < n; i++)
        free(v[i]);
}

static void test_rlimit_gives_back_cache(void **state)
{
    (void)state;
    expect_child_ok(rlimit_child);
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "floor-child") == 0)
        return floor_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_trim_releases_large_cache),
        cmocka_unit_test(test_mallopt_mmap_threshold),
        cmocka_unit_test(test_mallopt_trim_threshold),
        cmocka_unit_test(test_fork_with_cached_mappings),
        cmocka_unit_test(test_calloc_from_cache),
        cmocka_unit_test(test_rlimit_gives_back_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
