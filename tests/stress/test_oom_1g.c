// SPDX-License-Identifier: MIT
/* Suite `stress`: a program that sets a 1 GiB RLIMIT_AS before its first
 * allocation (RLIMIT_AS counts every reservation, even PROT_NONE) works
 * normally with mixed sizes of every tier, from two threads; then it
 * exhausts the limit (NULL and ENOMEM at every size, no crash) and, once
 * it frees its memory, works normally again.
 *
 * Links libhakmem.so: malloc is hakmem's. Not built under sanitizers. */
#include "common/hak_test.h"

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdint.h>
#include <sys/resource.h>

#include "hakmem/hakmem.h"

static void *(*volatile malloc_v)(size_t) = malloc;
static void *(*volatile realloc_v)(void *, size_t) = realloc;

/* 70% tiny, 20% mid, 9% L25, 1% large up to 8 MiB. */
static size_t mixed_size(ht_rng_t *r)
{
    unsigned d = (unsigned)(ht_rand(r) % 100);
    if (d < 70)
        return (size_t)ht_range(r, 1, 1023);
    if (d < 90)
        return (size_t)ht_range(r, 1024, 32768);
    if (d < 99)
        return (size_t)ht_range(r, 32769, 1 << 20);
    return (size_t)ht_range(r, (1 << 20) + 1, 8 << 20);
}

/* Pattern over the first and last 64 bytes (all of a small block). */
static void mark(uint8_t *p, size_t n, uint64_t tag)
{
    if (n <= 128) {
        ht_fill(p, n, tag);
    } else {
        ht_fill(p, 64, tag);
        ht_fill(p + n - 64, 64, tag + 1);
    }
}
static int marked(const uint8_t *p, size_t n, uint64_t tag)
{
    if (n <= 128)
        return ht_check(p, n, tag);
    return ht_check(p, 64, tag) && ht_check(p + n - 64, 64, tag + 1);
}

#define LIVE 1024
typedef struct {
    uint64_t seed;
    int ok;
    char why[160];
} churn_t;

/* Random malloc / realloc / free with verification; about 100-200 MiB live. */
static void *churn(void *arg)
{
    churn_t *c = arg;
    ht_rng_t r = {c->seed};
    static _Thread_local uint8_t *p[LIVE];
    static _Thread_local size_t n[LIVE];
    static _Thread_local uint64_t t[LIVE];
    c->ok = 1;
    for (int op = 0; op < 60000 && c->ok; op++) {
        int i = (int)(ht_rand(&r) % LIVE);
        if (p[i] == NULL) {
            n[i] = mixed_size(&r);
            t[i] = ht_rand(&r);
            p[i] = malloc_v(n[i]);
            if (p[i] == NULL) {
                snprintf(c->why, sizeof c->why, "malloc(%zu) failed, errno %d", n[i], errno);
                c->ok = 0;
                break;
            }
            mark(p[i], n[i], t[i]);
            continue;
        }
        if (!marked(p[i], n[i], t[i])) {
            snprintf(c->why, sizeof c->why, "block %p of %zu bytes corrupted", (void *)p[i], n[i]);
            c->ok = 0;
            break;
        }
        if (ht_rand(&r) % 4 == 0) {
            size_t m = mixed_size(&r);
            uint8_t *q = realloc_v(p[i], m);
            if (q == NULL) {
                snprintf(c->why, sizeof c->why, "realloc(%zu -> %zu) failed, errno %d", n[i], m, errno);
                c->ok = 0;
                break;
            }
            size_t keep = n[i] < m ? n[i] : m;
            if (!ht_check(q, keep < 64 ? keep : 64, t[i])) {
                snprintf(c->why, sizeof c->why, "realloc(%zu -> %zu) lost the prefix", n[i], m);
                c->ok = 0;
            }
            p[i] = q;
            n[i] = m;
            mark(p[i], n[i], t[i]);
        } else {
            free(p[i]);
            p[i] = NULL;
        }
    }
    for (int i = 0; i < LIVE; i++) {
        free(p[i]);
        p[i] = NULL;
    }
    return NULL;
}

static void run_mixed(uint64_t seed)
{
    pthread_t th[2];
    churn_t c[2] = {{.seed = seed}, {.seed = seed * 31 + 7}};
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, churn, &c[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < 2; i++) {
        if (!c[i].ok)
            print_error("thread %d: %s\n", i, c[i].why);
        assert_true(c[i].ok);
    }
}

static void test_works_under_1g(void **state)
{
    (void)state;
    run_mixed(1);
}

#define CAP (1u << 22)
static void *g_v[CAP];

static void test_exhaust_and_recover(void **state)
{
    (void)state;
    static const size_t sizes[] = {(size_t)8 << 20, 1 << 20, 100 << 10, 2 << 10, 100, 16};
    size_t n = 0, served[6] = {0};
    int err[6] = {0}, cap_hit = 0;
    for (int round = 0; round < 2; round++) {
        for (int s = 0; s < 6 && !cap_hit; s++) {
            for (;;) {
                if (n == CAP) {
                    cap_hit = 1;
                    break;
                }
                errno = 0;
                void *p = malloc_v(sizes[s]);
                if (p == NULL) {
                    err[s] = errno;
                    break;
                }
                ((volatile char *)p)[0] = 1;
                g_v[n++] = p;
                served[s]++;
            }
        }
        size_t held = n;
        for (size_t i = 0; i < n; i++)
            free(g_v[i]);
        n = 0;
        assert_false(cap_hit);
        for (int s = 0; s < 6; s++)
            assert_int_equal(err[s], ENOMEM);
        print_message("round %d: exhausted 1 GiB with %zu blocks (8 MiB x %zu, 1 MiB x %zu, 100 KiB x %zu, "
                      "2 KiB x %zu, 100 B x %zu, 16 B x %zu)\n",
                      round, held, served[0], served[1], served[2], served[3], served[4], served[5]);
        assert_true(served[0] >= 64); /* over half of the 1 GiB came as 8 MiB blocks */
        /* works normally again */
        run_mixed(100 + (uint64_t)round);
        memset(served, 0, sizeof served);
        memset(err, 0, sizeof err);
    }
}

int main(void)
{
    /* The limit comes first, before any allocation of this program. */
    struct rlimit rl = {(rlim_t)1 << 30, (rlim_t)1 << 30};
    if (setrlimit(RLIMIT_AS, &rl) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_works_under_1g),
        cmocka_unit_test(test_exhaust_and_recover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
