// SPDX-License-Identifier: MIT
/* fuzz_alloc.c - a differential fuzzer of hakmem's hak_ API against a model.
 *
 * The input's bytes decode into operations on 32 slots: allocate (malloc,
 * memalign, posix_memalign, aligned_alloc, calloc, valloc, pvalloc) with a
 * size and an alignment, realloc / reallocarray, free (also free_sized),
 * usable size, write a new pattern, verify the pattern, and requests that
 * must fail (sizes above PTRDIFF_MAX, overflowing calloc, bad alignments).
 * Every result is checked against the model: contents (a pattern derived
 * from a tag per slot, kept across realloc up to the smaller size),
 * alignment, usable size >= size (and stable while the block lives), the
 * tier owns the block, no overlap of live blocks, errno on failure.
 *
 * Built two ways (tests/fuzz/meson.build, docs/reliability.md):
 *   fuzz_alloc   clang -fsanitize=fuzzer: libFuzzer drives LLVMFuzzerTestOneInput;
 *   fuzz_replay  any compiler: fuzz_replay.c feeds a corpus and generated inputs.
 * A failed check prints what went wrong and aborts (a crash to libFuzzer).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hakmem/hakmem.h"

#include "fuzz_alloc.h"

const char *fuzz_current_input = "(libFuzzer input)";

/* ------------------------------------------------------------ the input */

typedef struct {
    const uint8_t *d;
    size_t n, at;
} cursor_t;

static unsigned u8(cursor_t *c) { return c->at < c->n ? c->d[c->at++] : 0; }
static unsigned u16(cursor_t *c) { return u8(c) | (u8(c) << 8); }
static uint64_t u64(cursor_t *c)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)u8(c) << (8 * i);
    return v;
}

static const size_t k_edges[] = {0,      1,      8,      15,     16,      17,      24,      31,
                                 32,     33,     48,     64,     96,      127,     128,     255,
                                 256,    511,    512,    768,    1000,    1023,    1024,    1025,
                                 1032,   1094,   2048,   4095,   4096,    4097,    8191,    8192,
                                 16384,  32767,  32768,  32769,  65535,   65536,   131072,  262144,
                                 524288, 1048575, 1048576, 1048577, 2097152, 2097153, 3145728};
#define NEDGES (sizeof k_edges / sizeof k_edges[0])

/* A size of any tier, skewed small (at most about 3 MiB). */
static size_t dec_size(cursor_t *c)
{
    unsigned b = u8(c);
    switch (b >> 5) {
    case 0:
        return b & 31;
    case 1:
        return u16(c) % 1100;
    case 2:
        return u16(c) % 33000;
    case 3:
        return 32000 + ((size_t)u16(c) << 4); /* up to about 1.08 MiB */
    case 4:
        return k_edges[u8(c) % NEDGES];
    case 5:
        return ((size_t)1 << 20) - 4096 + ((size_t)u16(c) << 5); /* 1 MiB .. 3 MiB */
    case 6:
        return u8(c);
    default: {
        size_t e = k_edges[u8(c) % NEDGES];
        int delta = (int)(u8(c) % 33) - 16;
        return (delta < 0 && (size_t)-delta > e) ? 0 : e + (size_t)(ptrdiff_t)delta;
    }
    }
}

/* 1 .. 65536, a power of two. */
static size_t dec_align(cursor_t *c) { return (size_t)1 << (u8(c) % 17); }

/* ------------------------------------------------------------ the model */

#define NSLOT 32
typedef struct {
    uint8_t *p;
    size_t size, usable, align;
    uint64_t tag;
    const char *how;
} slot_t;
static slot_t g_slot[NSLOT];
static size_t g_opno;

static void die(const char *what, const slot_t *s, size_t off)
{
    fprintf(stderr, "fuzz_alloc: FAIL in %s, operation %zu: %s", fuzz_current_input, g_opno, what);
    if (s && s->p)
        fprintf(stderr, " [block %p size %zu usable %zu align %zu from %s, tier %d]", (void *)s->p, s->size,
                s->usable, s->align, s->how, hak_owner(s->p));
    if (off != SIZE_MAX)
        fprintf(stderr, " at offset %zu", off);
    fputc('\n', stderr);
    abort();
}

static inline uint8_t pat(uint64_t tag, size_t i) { return (uint8_t)((tag ^ (i * 0x9Du) ^ (i >> 9)) + (tag >> 32)); }

#define FULL 16384
#define HEAD 512
#define NMID 16
#define MIDRUN 8
enum { M_FILL, M_CHECK, M_ZERO };

static size_t range_op(uint8_t *p, size_t from, size_t to, size_t limit, uint64_t tag, int mode)
{
    if (to > limit)
        to = limit;
    for (size_t i = from; i < to; i++) {
        if (mode == M_FILL)
            p[i] = pat(tag, i);
        else if (p[i] != (mode == M_CHECK ? pat(tag, i) : 0))
            return i;
    }
    return SIZE_MAX;
}

/* The pattern positions of a block of len bytes, below limit. */
static size_t pattern_op(uint8_t *p, size_t len, size_t limit, uint64_t tag, int mode)
{
    size_t bad;
    if (len <= FULL)
        return range_op(p, 0, len, limit, tag, mode);
    if ((bad = range_op(p, 0, HEAD, limit, tag, mode)) != SIZE_MAX)
        return bad;
    for (size_t k = 1; k <= NMID; k++) {
        size_t at = len / (NMID + 1) * k;
        if ((bad = range_op(p, at, at + MIDRUN, limit, tag, mode)) != SIZE_MAX)
            return bad;
    }
    return range_op(p, len - HEAD, len, limit, tag, mode);
}

static void verify(const slot_t *s)
{
    if (!s->p)
        return;
    size_t u = hak_usable_size(s->p);
    if (u != s->usable)
        die("usable size changed while the block was live", s, SIZE_MAX);
    size_t off = pattern_op(s->p, s->usable, s->usable, s->tag, M_CHECK);
    if (off != SIZE_MAX)
        die("contents differ from the model", s, off);
}

/* A new block in slot s: every property the model knows. */
static void accept_block(slot_t *s, int zeroed)
{
    if (((uintptr_t)s->p & 15) != 0 || ((uintptr_t)s->p & (s->align - 1)) != 0)
        die("misaligned block", s, SIZE_MAX);
    s->usable = hak_usable_size(s->p);
    if (s->usable < s->size)
        die("usable size below the request", s, SIZE_MAX);
    int owner = hak_owner(s->p);
    if (owner == HAK_TIER_NONE)
        die("no tier owns the block", s, SIZE_MAX);
    if (owner < hak_tier_for(s->size) && owner != HAK_TIER_SYSTEM)
        die("the block comes from a tier below the one for its size", s, SIZE_MAX);
    const uint8_t *a = s->p, *ae = a + s->usable;
    for (int i = 0; i < NSLOT; i++) {
        const slot_t *o = &g_slot[i];
        if (o == s || !o->p)
            continue;
        const uint8_t *b = o->p, *be = b + o->usable;
        if (a < be && b < ae) {
            fprintf(stderr, "fuzz_alloc: overlaps slot %d: %p + %zu (from %s)\n", i, (void *)o->p, o->usable,
                    o->how);
            die("overlaps another live block", s, SIZE_MAX);
        }
    }
    if (zeroed) {
        size_t off = pattern_op(s->p, s->size, s->size, 0, M_ZERO);
        if (off != SIZE_MAX)
            die("calloc block not zero", s, off);
    }
    pattern_op(s->p, s->usable, s->usable, s->tag, M_FILL);
}

static void release(slot_t *s, int sized)
{
    if (!s->p)
        return;
    verify(s);
    if (sized == 1)
        free_sized(s->p, s->size);
    else if (sized == 2)
        free_aligned_sized(s->p, s->align, s->size);
    else
        hak_free(s->p);
    s->p = NULL;
}

static size_t round_align(size_t a) /* what memalign serves: >= 16, a power of two */
{
    if (a <= 16)
        return 16;
    if (a & (a - 1))
        a = (size_t)1 << (64 - __builtin_clzl(a));
    return a;
}

/* Requests that must fail, and leave the block in slot s as it was. */
static void must_fail(cursor_t *c, slot_t *s)
{
    size_t huge = (size_t)PTRDIFF_MAX + 1 + (u64(c) % ((size_t)PTRDIFF_MAX));
    unsigned which = u8(c) % 8;
    void *p = (void *)1;
    int rc;
    errno = 0;
    switch (which) {
    case 0:
        p = hak_malloc(huge);
        break;
    case 1:
        p = hak_calloc(((size_t)1 << 33) + u8(c), ((size_t)1 << 31) + u8(c)); /* overflows */
        break;
    case 2:
        p = hak_memalign(dec_align(c), huge);
        break;
    case 3: { /* not a power of two, or below sizeof(void *): EINVAL, *memptr untouched */
        static const size_t bad[] = {0, 1, 2, 4, 12, 24, 40, 48, 96, 4095, 65537};
        void *out = (void *)0x1234;
        int saved = errno = 4321;
        rc = hak_posix_memalign(&out, bad[u8(c) % (sizeof bad / sizeof bad[0])], 64);
        if (rc != EINVAL || out != (void *)0x1234 || errno != saved)
            die("posix_memalign with a bad alignment: not EINVAL, errno changed, or *memptr written", NULL,
                SIZE_MAX);
        return;
    }
    case 4:
        p = hak_aligned_alloc((size_t)SIZE_MAX / 2 + 2 + u8(c), 16); /* EINVAL */
        if (p || errno != EINVAL)
            die("memalign above SIZE_MAX/2+1: not EINVAL", NULL, SIZE_MAX);
        return;
    case 5:
        p = hak_reallocarray(NULL, ((size_t)1 << 40) + u8(c), (size_t)1 << 30);
        break;
    case 6:
        if (!s->p)
            return;
        p = hak_realloc(s->p, huge);
        if (p == NULL && errno == ENOMEM)
            verify(s); /* the block is untouched */
        break;
    default:
        p = hak_pvalloc(SIZE_MAX - u8(c));
        break;
    }
    if (p != NULL || errno != ENOMEM) {
        fprintf(stderr, "fuzz_alloc: request %u gave %p, errno %d\n", which, p, errno);
        die("an impossible request did not fail with ENOMEM", NULL, SIZE_MAX);
    }
}

static void allocate(cursor_t *c, slot_t *s, unsigned how)
{
    release(s, 0);
    slot_t n = {0};
    n.size = dec_size(c);
    n.align = 16;
    n.tag = u64(c) | 1;
    int zeroed = 0;
    errno = 0;
    switch (how) {
    case 0:
        n.how = "malloc";
        n.p = hak_malloc(n.size);
        break;
    case 1: {
        n.how = "memalign";
        size_t a = dec_align(c);
        if (u8(c) & 1)
            a += a / 2; /* not a power of two: rounded up */
        n.align = round_align(a);
        n.p = hak_memalign(a, n.size);
        break;
    }
    case 2: {
        n.how = "posix_memalign";
        size_t a = dec_align(c);
        if (a < sizeof(void *))
            a = sizeof(void *);
        n.align = round_align(a);
        void *out = NULL;
        int rc = hak_posix_memalign(&out, a, n.size);
        if (rc != 0) {
            fprintf(stderr, "fuzz_alloc: posix_memalign(%zu, %zu) = %d\n", a, n.size, rc);
            die("posix_memalign failed", NULL, SIZE_MAX);
        }
        n.p = out;
        break;
    }
    case 3: {
        n.how = "aligned_alloc";
        size_t a = dec_align(c);
        n.align = round_align(a);
        n.p = hak_aligned_alloc(a, n.size);
        break;
    }
    case 4: {
        n.how = "calloc";
        size_t k = 1 + u8(c) % 8;
        n.size = n.size / k * k;
        n.p = hak_calloc(k, n.size / k);
        zeroed = 1;
        break;
    }
    default:
        if (u8(c) & 1) {
            n.how = "valloc";
            n.p = hak_valloc(n.size);
        } else {
            n.how = "pvalloc";
            n.p = hak_pvalloc(n.size);
            size_t rounded = (n.size + 4095) & ~(size_t)4095;
            n.size = rounded ? rounded : 4096; /* pvalloc serves whole pages */
        }
        n.align = 4096;
        break;
    }
    if (n.p == NULL) {
        fprintf(stderr, "fuzz_alloc: %s(%zu, align %zu) returned NULL, errno %d\n", n.how, n.size, n.align, errno);
        die("allocation failed", NULL, SIZE_MAX);
    }
    *s = n;
    accept_block(s, zeroed);
}

static void reallocate(cursor_t *c, slot_t *s)
{
    unsigned mode = u8(c);
    size_t n = dec_size(c);
    if (mode % 4 == 0 && s->p) /* a small step from the current size */
        n = s->size + (mode >> 2) % 64 - (s->size < 32 ? s->size : 32);
    if (s->p)
        verify(s);
    errno = 0;
    void *q = (mode & 0x80) ? hak_reallocarray(s->p, 1, n) : hak_realloc(s->p, n);
    if (s->p && n == 0) { /* glibc 2.36: frees, returns NULL */
        if (q != NULL)
            die("realloc(p, 0) did not return NULL", s, SIZE_MAX);
        s->p = NULL;
        return;
    }
    if (q == NULL) {
        fprintf(stderr, "fuzz_alloc: realloc to %zu failed, errno %d\n", n, errno);
        die("realloc failed", s, SIZE_MAX);
    }
    slot_t t = *s;
    t.p = q;
    t.how = "realloc";
    t.align = 16;
    if (s->p) {
        size_t keep = s->size < n ? s->size : n;
        size_t off = pattern_op(q, s->usable, keep, s->tag, M_CHECK);
        if (off != SIZE_MAX) {
            t.size = n;
            die("realloc did not keep the contents", &t, off);
        }
    } else {
        t.tag = 0x5EED | 1;
    }
    t.size = n;
    s->p = NULL; /* the old block is gone (or is q) */
    *s = t;
    accept_block(s, 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cursor_t c = {data, size, 0};
    memset(g_slot, 0, sizeof g_slot);
    g_opno = 0;
    while (c.at < c.n) {
        unsigned op = u8(&c);
        slot_t *s = &g_slot[u8(&c) % NSLOT];
        g_opno++;
        switch (op % 16) {
        case 0:
        case 1:
        case 2:
            allocate(&c, s, 0);
            break;
        case 3:
            allocate(&c, s, 1);
            break;
        case 4:
            allocate(&c, s, 2);
            break;
        case 5:
            allocate(&c, s, 3);
            break;
        case 6:
            allocate(&c, s, 4);
            break;
        case 7:
            allocate(&c, s, 5);
            break;
        case 8:
        case 9:
            reallocate(&c, s);
            break;
        case 10:
        case 11:
            release(s, (int)(op >> 4) % 3);
            break;
        case 12: /* usable size: >= size, and stable */
            if (s->p) {
                size_t u = hak_usable_size(s->p);
                if (u < s->size || u != s->usable)
                    die("usable size", s, SIZE_MAX);
            } else if (hak_usable_size(NULL) != 0) {
                die("usable size of NULL is not 0", NULL, SIZE_MAX);
            }
            break;
        case 13: /* a new pattern */
            if (s->p) {
                verify(s);
                s->tag = u64(&c) | 1;
                pattern_op(s->p, s->usable, s->usable, s->tag, M_FILL);
            }
            break;
        case 14:
            verify(s);
            break;
        default:
            must_fail(&c, s);
            break;
        }
    }
    for (int i = 0; i < NSLOT; i++)
        release(&g_slot[i], 0);
    hak_free(NULL);
    return 0;
}
