// SPDX-License-Identifier: MIT
/* sysalloc.c - glibc's own allocator, for two cases:
 *   - foreign pointers (memory hakmem did not allocate: libraries opened
 *     with RTLD_DEEPBIND, blocks from before interposition) are handed to
 *     glibc's real free/realloc/malloc_usable_size below validation=full;
 *   - in builds that leave a tier out (and have no large tier above it),
 *     requests of its sizes are served by glibc's malloc behind a 16-byte
 *     AllocHeader with method = malloc (hak_alloc_header.h). Below full
 *     they are recognised by probing p-16 for the magic, guarded by the
 *     hybrid readability check; at full they are also kept in a registry,
 *     so no unowned memory is ever read.
 * The real functions are resolved with dlsym(RTLD_NEXT) at load, behind a
 * recursion guard (dlsym itself allocates, and lands in hakmem's malloc,
 * which does not need them).
 */
#include "dispatch.h"

#include <dlfcn.h>
#include <errno.h>
#include <string.h>

#include "hak_alloc_header.h"
#include "hak_large_registry.h"

typedef void *(*malloc_fn)(size_t);
typedef void (*free_fn)(void *);
typedef void *(*realloc_fn)(void *, size_t);
typedef size_t (*usable_fn)(void *);

static malloc_fn g_real_malloc;
static free_fn g_real_free;
static realloc_fn g_real_realloc;
static usable_fn g_real_usable;
static int g_resolving, g_resolved;

void hak_resolve_real_(void)
{
    if (__atomic_load_n(&g_resolved, __ATOMIC_ACQUIRE) || __atomic_exchange_n(&g_resolving, 1, __ATOMIC_ACQ_REL))
        return;
    int saved = errno;
    /* RTLD_NEXT from libhakmem.so (or from the executable that links
     * libhakmem.a) finds the C library's definitions, not ours. */
    void *m = dlsym(RTLD_NEXT, "malloc");
    void *f = dlsym(RTLD_NEXT, "free");
    void *r = dlsym(RTLD_NEXT, "realloc");
    void *u = dlsym(RTLD_NEXT, "malloc_usable_size");
    /* Never take our own functions for glibc's. */
    if (m == (void *)hak_malloc || f == (void *)hak_free)
        m = f = r = u = NULL;
    __atomic_store_n(&g_real_malloc, (malloc_fn)m, __ATOMIC_RELEASE);
    __atomic_store_n(&g_real_free, (free_fn)f, __ATOMIC_RELEASE);
    __atomic_store_n(&g_real_realloc, (realloc_fn)r, __ATOMIC_RELEASE);
    __atomic_store_n(&g_real_usable, (usable_fn)u, __ATOMIC_RELEASE);
    __atomic_store_n(&g_resolved, 1, __ATOMIC_RELEASE);
    errno = saved;
}

static void no_system_allocator(const char *op, void *p)
{
    hak_report_failure(op, "invalid pointer (not allocated by hakmem; no system allocator to pass it to)", p);
}

void hak_real_free_(void *p)
{
    hak_resolve_real_();
    free_fn f = __atomic_load_n(&g_real_free, __ATOMIC_ACQUIRE);
    if (f)
        f(p);
    else
        no_system_allocator("free", p);
}

void *hak_real_realloc_(void *p, size_t size)
{
    hak_resolve_real_();
    realloc_fn f = __atomic_load_n(&g_real_realloc, __ATOMIC_ACQUIRE);
    if (f)
        return f(p, size);
    no_system_allocator("realloc", p);
    errno = EINVAL;
    return NULL;
}

size_t hak_real_usable_(void *p)
{
    hak_resolve_real_();
    usable_fn f = __atomic_load_n(&g_real_usable, __ATOMIC_ACQUIRE);
    if (f)
        return f(p);
    no_system_allocator("malloc_usable_size", p);
    return 0;
}

void *hak_real_malloc_(size_t size)
{
    hak_resolve_real_();
    malloc_fn f = __atomic_load_n(&g_real_malloc, __ATOMIC_ACQUIRE);
    if (f)
        return f(size);
    errno = ENOMEM;
    return NULL;
}

/* ------------------------------------------------ the fallback blocks */

#if HAK_HAVE_LARGE
/* The large tier serves every size above the ones built in: no fallback
 * block ever exists. */
void *hak_sys_alloc_(size_t size, size_t align)
{
    (void)size;
    (void)align;
    errno = ENOMEM;
    return NULL;
}
int hak_sys_owns_(const void *p)
{
    (void)p;
    return 0;
}
void hak_sys_free_(void *p) { (void)p; }
size_t hak_sys_usable_(const void *p)
{
    (void)p;
    return 0;
}
#else

#if HAK_VALIDATION >= 2
static hak_large_registry_t g_sys_reg;
#endif

void *hak_sys_alloc_(size_t size, size_t align)
{
    if (align < HAK_AH_SIZE)
        align = HAK_AH_SIZE;
    size_t total;
    if (__builtin_add_overflow(size, align + HAK_AH_SIZE, &total) || total > PTRDIFF_MAX) {
        errno = ENOMEM;
        return NULL;
    }
    char *raw = hak_real_malloc_(total);
    if (raw == NULL) {
        errno = ENOMEM;
        return NULL;
    }
    uintptr_t user = ((uintptr_t)raw + HAK_AH_SIZE + align - 1) & ~(uintptr_t)(align - 1);
    size_t offset = user - (uintptr_t)raw, usable = total - offset;
    if (!hak_ah_fits(usable, offset, HAK_METHOD_MALLOC)) {
        hak_real_free_(raw);
        errno = ENOMEM;
        return NULL;
    }
    hak_ah_write((void *)user, usable, offset, HAK_METHOD_MALLOC);
#if HAK_VALIDATION >= 2
    if (hak_large_registry_insert_(&g_sys_reg, (void *)user, raw, total, HAK_METHOD_MALLOC) != 0) {
        hak_real_free_(raw);
        errno = ENOMEM;
        return NULL;
    }
#endif
    return (void *)user;
}

int hak_sys_owns_(const void *p)
{
#if HAK_VALIDATION >= 2
    return hak_large_registry_lookup_(&g_sys_reg, p, NULL);
#else
    if (((uintptr_t)p & 15) != 0 || !hak_header_readable(p, HAK_AH_SIZE))
        return 0;
    const hak_alloc_header_t *h = hak_ah_of_const(p);
    return h->magic == HAK_AH_MAGIC && hak_ah_method(h->info) == HAK_METHOD_MALLOC;
#endif
}

void hak_sys_free_(void *p)
{
#if HAK_VALIDATION >= 2
    hak_large_reg_entry_t e;
    if (hak_large_registry_remove_(&g_sys_reg, p, NULL, NULL, &e) != HAK_LREG_REMOVED) {
        hak_report_failure("free", "invalid pointer (not a live fallback block)", p);
        return;
    }
    hak_ah_of(p)->magic = 0;
    hak_real_free_((void *)e.base);
#else
    hak_alloc_header_t *h = hak_ah_of(p);
    uint64_t info = h->info;
    h->magic = 0; /* a second free no longer finds the magic */
    hak_real_free_((char *)p - hak_ah_offset(info));
#endif
}

size_t hak_sys_usable_(const void *p) { return hak_ah_size(hak_ah_of_const(p)->info); }
#endif
