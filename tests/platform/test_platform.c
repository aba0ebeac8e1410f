// SPDX-License-Identifier: MIT
/* Suite `platform`: the OS layer's contract (hak_platform.h). */
#include "common/hak_test.h"

#include <errno.h>
#include <pthread.h>
#include <sys/mman.h>

#include "hak_platform.h"
#include "hak_tcache_registry.h"

static void test_page_size(void **state)
{
    (void)state;
    size_t ps = hak_os_page_size();
    assert_int_equal(ps, (size_t)sysconf(_SC_PAGESIZE));
    assert_true(ps && (ps & (ps - 1)) == 0);
}

static void test_map_aligned_zeroed_errno(void **state)
{
    (void)state;
    size_t aligns[] = {4096, 65536, (size_t)1 << 21, (size_t)1 << 22};
    for (size_t i = 0; i < sizeof aligns / sizeof aligns[0]; i++) {
        size_t before = hak_os_mapped_bytes();
        errno = 1234;
        uint8_t *p = hak_os_map(3 * 4096 + 1, aligns[i]);
        assert_non_null(p);
        assert_int_equal(errno, 1234);
        assert_true(HT_ALIGNED(p, aligns[i]));
        assert_int_equal(hak_os_mapped_bytes() - before, 4 * 4096);
        for (size_t j = 0; j < 4 * 4096; j++)
            assert_int_equal(p[j], 0);
        memset(p, 0xAB, 4 * 4096);
        assert_int_equal(hak_os_decommit(p, 4096), 0);
        assert_int_equal(errno, 1234);
        assert_int_equal(p[0], 0);   /* decommitted pages read back as zero */
        assert_int_equal(p[4096], 0xAB);
        hak_os_note_recommit(4096);
        assert_int_equal(hak_os_purge_lazy(p + 4096, 4096), 0);
        assert_int_equal(hak_os_unmap(p, 4 * 4096), 0);
        assert_int_equal(errno, 1234);
        assert_int_equal(hak_os_mapped_bytes(), before);
    }
    errno = 0;
    assert_null(hak_os_map((size_t)1 << 62, 4096));
    assert_int_equal(errno, ENOMEM);
}

static void test_remap(void **state)
{
    (void)state;
    uint8_t *p = hak_os_map(8192, 4096);
    assert_non_null(p);
    memset(p, 7, 8192);
    uint8_t *q = hak_os_remap(p, 8192, 1 << 20, true);
    assert_non_null(q);
    assert_int_equal(q[8191], 7);
    q = hak_os_remap(q, 1 << 20, 4096, true);
    assert_non_null(q);
    assert_int_equal(q[4095], 7);
    assert_int_equal(hak_os_unmap(q, 4096), 0);
}

/* The readability check at page offsets 0, 1, 15, 16 and 4095 of mapped,
 * PROT_NONE and unmapped pages. docs/design.md promises:
 *  - hak_is_memory_readable(p): true for mapped and PROT_NONE pages (mincore
 *    says mapped, not readable), false for unmapped pages;
 *  - hak_header_readable(p, 16): true without a system call when the page
 *    offset is >= 16 (p's own page is assumed mapped); below 16 it asks
 *    about the previous page. */
static void test_readability(void **state)
{
    (void)state;
    size_t ps = hak_os_page_size();
    uint8_t *m = mmap(NULL, 4 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    /* layout: [unmapped][mapped][PROT_NONE][mapped] */
    assert_int_equal(munmap(m, ps), 0);
    assert_int_equal(mprotect(m + 2 * ps, ps, PROT_NONE), 0);
    uint8_t *unmapped = m, *mapped = m + ps, *none = m + 2 * ps, *after_none = m + 3 * ps;
    size_t offs[] = {0, 1, 15, 16, 4095};
    for (size_t i = 0; i < 5; i++) {
        size_t o = offs[i];
        assert_true(hak_is_memory_readable(mapped + o));
        assert_true(hak_is_memory_readable(none + o));
        assert_false(hak_is_memory_readable(unmapped + o));
        /* hybrid: offset >= 16 -> own page, no syscall, true */
        if (o >= 16) {
            assert_true(hak_header_readable(mapped + o, 16));
            assert_true(hak_header_readable(after_none + o, 16));
        } else {
            /* the 16 bytes before lie on the previous page */
            assert_false(hak_header_readable(mapped + o, 16));  /* previous is unmapped */
            assert_true(hak_header_readable(none + o, 16));      /* previous is mapped */
            assert_true(hak_header_readable(after_none + o, 16)); /* PROT_NONE counts as mapped */
        }
    }
    munmap(m + ps, 3 * ps);
}

/* hak_os_read copies what can be read and never faults: mapped bytes are
 * copied, a range that touches a PROT_NONE or an unmapped page is not
 * (and the destination is left alone), errno is kept. */
static void test_safe_read(void **state)
{
    (void)state;
    size_t ps = hak_os_page_size();
    uint8_t *m = mmap(NULL, 3 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(m != MAP_FAILED);
    /* layout: [mapped][PROT_NONE][unmapped] */
    memset(m, 0x42, ps);
    assert_int_equal(mprotect(m + ps, ps, PROT_NONE), 0);
    assert_int_equal(munmap(m + 2 * ps, ps), 0);
    uint8_t buf[32];
    errno = 1234;
    memset(buf, 0, sizeof buf);
    assert_true(hak_os_read(buf, m + ps - sizeof buf, sizeof buf));
    for (size_t i = 0; i < sizeof buf; i++)
        assert_int_equal(buf[i], 0x42);
    memset(buf, 0, sizeof buf);
    assert_false(hak_os_read(buf, m + ps - 8, sizeof buf)); /* runs into PROT_NONE */
    assert_false(hak_os_read(buf, m + ps + 64, sizeof buf));
    assert_false(hak_os_read(buf, m + 2 * ps + 64, sizeof buf));
    assert_int_equal(errno, 1234);
    munmap(m, 2 * ps);
}

/* The registry of thread caches (hak_tcache_registry.h): adding is
 * idempotent, a node at an address whose entry went stale (its memory
 * zeroed, as glibc reinitialises a reused TLS) takes that entry over, and
 * the fork child's adoption flushes only the nodes that are intact. */
static int g_flushed[4];
static hak_tcreg_node_t *g_nodes;
static void count_flush(hak_tcreg_node_t *n, void *arg)
{
    assert_ptr_equal(arg, g_flushed);
    g_flushed[n - g_nodes]++;
}

static void test_tcache_registry(void **state)
{
    (void)state;
    static hak_tcreg_t r;
    size_t ps = hak_os_page_size();
    hak_tcreg_node_t *n = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(n != MAP_FAILED);
    g_nodes = n;
    for (int i = 0; i < 4; i++)
        assert_int_equal(hak_tcreg_add(&r, &n[i]), 0);
    assert_int_equal(hak_tcreg_add(&r, &n[0]), 0); /* registered already */
    assert_int_equal(hak_tcreg_count(&r), 4);
    memset(&n[1], 0, sizeof n[1]); /* a thread gone without its hook, its TLS reused */
    assert_int_equal(hak_tcreg_add(&r, &n[1]), 0);
    assert_int_equal(hak_tcreg_count(&r), 4);
    hak_tcreg_remove(&r, &n[3]);
    hak_tcreg_remove(&r, &n[3]); /* a no-op */
    assert_int_equal(hak_tcreg_count(&r), 3);
    assert_int_equal(hak_tcreg_add(&r, &n[3]), 0);
    /* Fork child: self is n[0]; n[1] intact; n[2] gone without its hook,
     * its TLS reinitialised; n[3] gone, unmapped. */
    memset(&n[2], 0, sizeof n[2]);
    hak_tcreg_node_t *far = mmap(NULL, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    assert_true(far != MAP_FAILED);
    hak_tcreg_remove(&r, &n[3]);
    assert_int_equal(hak_tcreg_add(&r, far), 0);
    assert_int_equal(munmap(far, ps), 0);
    assert_int_equal(hak_tcreg_count(&r), 4);
    hak_tcreg_adopt(&r, &n[0], count_flush, g_flushed);
    assert_int_equal(g_flushed[0], 0);
    assert_int_equal(g_flushed[1], 1);
    assert_int_equal(g_flushed[2], 0);
    assert_int_equal(g_flushed[3], 0);
    assert_int_equal(hak_tcreg_count(&r), 1);
    hak_tcreg_remove(&r, &n[0]);
    assert_int_equal(hak_tcreg_count(&r), 0);
    munmap(n, ps);
}

static void test_cycles(void **state)
{
    (void)state;
    uint64_t a = hak_cycles();
    volatile unsigned x = 0;
    for (unsigned i = 0; i < 100000; i++)
        x += i;
    assert_int_equal(x, 100000u * 99999u / 2u);
    uint64_t b = hak_cycles();
    assert_true(b > a);
}

static int g_hook_a, g_hook_b;
static __thread int t_armed;
static void hook_a(void)
{
    if (t_armed)
        __atomic_fetch_add(&g_hook_a, 1, __ATOMIC_RELAXED);
}
static void hook_b(void) { __atomic_fetch_add(&g_hook_b, 1, __ATOMIC_RELAXED); }
static void *hook_thread(void *arg)
{
    t_armed = 1;
    if (arg)
        assert_int_equal(hak_thread_exit_arm(), 0);
    return NULL;
}

static void test_thread_hook(void **state)
{
    (void)state;
    assert_int_equal(hak_thread_exit_register(hook_a), 0);
    assert_int_equal(hak_thread_exit_register(hook_a), 0); /* idempotent */
    assert_int_equal(hak_thread_exit_register(hook_b), 0);
    pthread_t t;
    pthread_create(&t, NULL, hook_thread, (void *)1);
    pthread_join(t, NULL);
    assert_int_equal(g_hook_a, 1); /* once, though registered twice */
    assert_int_equal(g_hook_b, 1);
    pthread_create(&t, NULL, hook_thread, NULL); /* not armed: no call */
    pthread_join(t, NULL);
    assert_int_equal(g_hook_a, 1);
    assert_int_equal(g_hook_b, 1);
}

static void test_chunk_map(void **state)
{
    (void)state;
    uint8_t *p = hak_os_map(2 * HAK_CHUNK_SIZE, HAK_CHUNK_SIZE);
    assert_non_null(p);
    assert_int_equal(hak_chunk_tag(p), HAK_TAG_NONE);
    assert_int_equal(hak_chunk_set_tag(p, 2 * HAK_CHUNK_SIZE, HAK_TAG_MID), 0);
    assert_int_equal(hak_chunk_tag(p), HAK_TAG_MID);
    assert_int_equal(hak_chunk_tag(p + 2 * HAK_CHUNK_SIZE - 1), HAK_TAG_MID);
    assert_int_equal(hak_chunk_tag(p - 1), HAK_TAG_NONE);
    assert_int_equal(hak_chunk_tag(p + 2 * HAK_CHUNK_SIZE), HAK_TAG_NONE);
    volatile uintptr_t kernel = 0xffff800000000000ull; /* opaque: gcc -O0 would warn on the constant */
    assert_int_equal(hak_chunk_tag((void *)kernel), HAK_TAG_NONE);
    assert_int_equal(hak_chunk_tag(NULL), HAK_TAG_NONE);
    int on_stack;
    assert_int_equal(hak_chunk_tag(&on_stack), HAK_TAG_NONE);
    assert_int_equal(hak_chunk_set_tag(p, 2 * HAK_CHUNK_SIZE, HAK_TAG_NONE), 0);
    assert_int_equal(hak_chunk_tag(p), HAK_TAG_NONE);
    hak_os_unmap(p, 2 * HAK_CHUNK_SIZE);
}

static hak_lock_t g_lock = HAK_LOCK_INIT;
static long g_counter;
static void *lock_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < 200000; i++) {
        hak_lock(&g_lock);
        g_counter++;
        hak_unlock(&g_lock);
    }
    return NULL;
}

static void test_lock(void **state)
{
    (void)state;
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, lock_thread, NULL);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(g_counter, 800000);
    assert_true(hak_trylock(&g_lock));
    assert_false(hak_trylock(&g_lock));
    hak_unlock(&g_lock);
}

static void test_format_and_env(void **state)
{
    (void)state;
    char buf[24];
    assert_int_equal(hak_fmt_u64(buf, 0), 1);
    assert_string_equal(buf, "0");
    hak_fmt_u64(buf, 18446744073709551615ull);
    assert_string_equal(buf, "18446744073709551615");
    hak_fmt_hex(buf, 0xdeadbeef);
    assert_string_equal(buf, "0xdeadbeef");
    setenv("HAK_TEST_ENV", "42", 1);
    assert_string_equal(hak_getenv("HAK_TEST_ENV"), "42");
    assert_null(hak_getenv("HAK_TEST_ENV_ABSENT"));
}

static const char *g_fail_op, *g_fail_reason;
static const void *g_fail_p;
static void count_failure(const char *op, const char *reason, const void *p)
{
    g_fail_op = op;
    g_fail_reason = reason;
    g_fail_p = p;
}
static void die_with_report(void *arg)
{
    hak_report_failure("free", "double free", arg);
}

static void test_failure_handler(void **state)
{
    (void)state;
    hak_failure_handler_t old = hak_set_failure_handler(count_failure);
    hak_report_failure("free", "invalid pointer", (void *)0x1234);
    assert_string_equal(g_fail_op, "free");
    assert_string_equal(g_fail_reason, "invalid pointer");
    assert_ptr_equal(g_fail_p, (void *)0x1234);
    hak_set_failure_handler(old);
    char out[256];
    int st = ht_run_child(die_with_report, (void *)0xabc0, out, sizeof out);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_string_equal(out, "hakmem: free(): double free at 0xabc0\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_page_size),
        cmocka_unit_test(test_map_aligned_zeroed_errno),
        cmocka_unit_test(test_remap),
        cmocka_unit_test(test_readability),
        cmocka_unit_test(test_safe_read),
        cmocka_unit_test(test_tcache_registry),
        cmocka_unit_test(test_cycles),
        cmocka_unit_test(test_thread_hook),
        cmocka_unit_test(test_chunk_map),
        cmocka_unit_test(test_lock),
        cmocka_unit_test(test_format_and_env),
        cmocka_unit_test(test_failure_handler),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
