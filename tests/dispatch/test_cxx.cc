// SPDX-License-Identifier: MIT
/* Suite `dispatch`, C++: libhakmem.so's operator new and delete (every
 * replaceable form of C++17, dispatch.c) are the ones a C++ program linked
 * with it calls, their blocks are hakmem's, aligned forms are aligned, and
 * failure is C++'s: the new-handler loop, std::bad_alloc from the throwing
 * forms, nullptr from the nothrow forms, also when the handler throws.
 * Built only where a C++ compiler is found. */
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "hakmem/hakmem.h"

static int g_failed;

#define CHECK(cond)                                                                                        \
    do {                                                                                                   \
        if (!(cond)) {                                                                                     \
            std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);                  \
            g_failed++;                                                                                    \
        }                                                                                                  \
    } while (0)

/* Far more than any address space: every allocator refuses it. */
static const std::size_t kHuge = (std::size_t)1 << 62;

static bool from_hakmem(const char *sym)
{
    Dl_info di;
    void *f = dlsym(RTLD_DEFAULT, sym);
    return f != nullptr && dladdr(f, &di) && di.dli_fname != nullptr && std::strstr(di.dli_fname, "libhakmem");
}

struct alignas(64) Line {
    char b[64];
};
struct alignas(4096) Page {
    char b[100];
};

static int g_handler_calls;
static void handler_gives_up_after_3()
{
    if (++g_handler_calls == 3)
        std::set_new_handler(nullptr);
}
static void handler_throws()
{
    g_handler_calls++;
    throw std::bad_alloc();
}

static void test_resolved_here()
{
    const char *syms[] = {"_Znwm", "_Znam", "_ZnwmRKSt9nothrow_t", "_ZnamRKSt9nothrow_t", "_ZnwmSt11align_val_t",
                          "_ZnamSt11align_val_t", "_ZdlPv", "_ZdaPv", "_ZdlPvm", "_ZdaPvm", "_ZdlPvSt11align_val_t",
                          "_ZdlPvmSt11align_val_t"};
    for (const char *s : syms) {
        if (!from_hakmem(s))
            std::fprintf(stderr, "%s does not resolve to libhakmem\n", s);
        CHECK(from_hakmem(s));
    }
}

static void test_blocks_are_hakmems()
{
    for (std::size_t n : {(std::size_t)0, (std::size_t)1, (std::size_t)24, (std::size_t)1000, (std::size_t)5000,
                          (std::size_t)100000, (std::size_t)3 << 20}) {
        char *p = static_cast<char *>(::operator new(n));
        char *q = new char[n + 1];
        CHECK(p != nullptr && q != nullptr && p != q);
        CHECK(hak_owner(p) != HAK_TIER_NONE && hak_owner(q) != HAK_TIER_NONE);
        CHECK(((std::uintptr_t)p & 15) == 0);
        std::memset(p, 0x11, n);
        std::memset(q, 0x22, n + 1);
        CHECK(n == 0 || (p[n - 1] == 0x11 && q[n] == 0x22));
        ::operator delete(p, n); /* sized */
        delete[] q;
    }
    std::vector<std::string> v;
    for (int i = 0; i < 20000; i++)
        v.push_back(std::string(static_cast<std::size_t>(i % 300), static_cast<char>('a' + i % 26)));
    std::size_t total = 0;
    for (const std::string &s : v)
        total += s.size();
    CHECK(total == 20000 / 300 * (299 * 300 / 2) + (20000 % 300) * ((20000 % 300) - 1) / 2);
    CHECK(hak_owner(v.data()) != HAK_TIER_NONE);
}

static void test_aligned()
{
    Line *l = new Line[7];
    Page *g = new Page;
    CHECK(((std::uintptr_t)l & 63) == 0 && ((std::uintptr_t)g & 4095) == 0);
    CHECK(hak_owner(l) != HAK_TIER_NONE && hak_owner(g) != HAK_TIER_NONE);
    std::memset(l, 1, 7 * sizeof *l);
    std::memset(g, 2, sizeof *g);
    delete[] l;
    delete g;
    void *a = ::operator new(100, std::align_val_t(256), std::nothrow);
    CHECK(a != nullptr && ((std::uintptr_t)a & 255) == 0);
    ::operator delete(a, std::align_val_t(256), std::nothrow);
    void *b = ::operator new[](3000, std::align_val_t(128));
    CHECK(((std::uintptr_t)b & 127) == 0);
    ::operator delete[](b, 3000, std::align_val_t(128));
}

static void test_failure()
{
    /* no handler: the throwing forms throw, the nothrow forms give nullptr */
    bool threw = false;
    try {
        void *p = ::operator new(kHuge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);
    threw = false;
    try {
        void *p = ::operator new[](kHuge, std::align_val_t(64));
        ::operator delete[](p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw);
    CHECK(::operator new(kHuge, std::nothrow) == nullptr);
    CHECK(::operator new[](kHuge, std::nothrow) == nullptr);
    CHECK(::operator new(kHuge, std::align_val_t(64), std::nothrow) == nullptr);

    /* the handler loop: called until it gives up, then bad_alloc */
    g_handler_calls = 0;
    std::set_new_handler(handler_gives_up_after_3);
    threw = false;
    try {
        void *p = ::operator new(kHuge);
        ::operator delete(p);
    } catch (const std::bad_alloc &) {
        threw = true;
    }
    CHECK(threw && g_handler_calls == 3);
    CHECK(std::get_new_handler() == nullptr);

    /* nothrow with a handler that throws: nullptr, not an exception */
    g_handler_calls = 0;
    std::set_new_handler(handler_throws);
    void *p = nullptr;
    bool escaped = false;
    try {
        p = ::operator new(kHuge, std::nothrow);
    } catch (...) {
        escaped = true;
    }
    CHECK(!escaped && p == nullptr && g_handler_calls == 1);
    g_handler_calls = 0;
    try {
        p = ::operator new[](kHuge, std::align_val_t(32), std::nothrow);
    } catch (...) {
        escaped = true;
    }
    CHECK(!escaped && p == nullptr && g_handler_calls == 1);
    std::set_new_handler(nullptr);

    /* and the allocator goes on working */
    int *x = new int(42);
    CHECK(*x == 42 && hak_owner(x) != HAK_TIER_NONE);
    delete x;
}

int main()
{
    test_resolved_here();
    test_blocks_are_hakmems();
    test_aligned();
    test_failure();
    if (g_failed)
        std::fprintf(stderr, "%d check(s) failed\n", g_failed);
    else
        std::printf("ok\n");
    return g_failed != 0;
}
