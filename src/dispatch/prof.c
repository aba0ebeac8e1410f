// SPDX-License-Identifier: MIT
/* prof.c - the sampling heap profiler (HAKMEM_PROF; docs/design.md,
 * "Heap profiler"; the options in docs/options.md).
 *
 * Sampling. Every thread counts down the bytes it requests (the malloc
 * gate, dispatch.h, decremented on malloc's slow path, which every request
 * takes while profiling is on; hak_prof_left_ while tracing is on too);
 * when the count runs out the request is sampled and the next count is
 * drawn from an exponential distribution of mean `rate` bytes. A sampled
 * request is served by the large tier (or the system fallback), so that
 * its free reaches free_slow's last branch, where the profiler looks: the
 * free of every other block keeps its fast path. The sample points are
 * then a Poisson process over the bytes requested, so a request of s
 * bytes is sampled with probability 1 - exp(-s/rate), and weighting each sample by the inverse of that
 * (as tcmalloc and gperftools unsample) makes the estimates unbiased.
 *
 * Records. A sample's stack (up to 64 frames, captured before any lock is
 * taken) names a bucket: the allocation site, with the weighted objects and
 * bytes allocated there since the start. Buckets are found without a lock
 * (hash chains that only grow, published with release stores); a new one
 * is made under g.lock. The live samples sit in PROF_STRIPES open hash
 * tables keyed by address, each under a lock of its own, the stripe named
 * by the top bits of the address's filter hash: two threads that sample
 * and free meet on a lock only when their blocks hash to the same stripe.
 * A bitmap of hashed addresses (hak_prof_filter_) lets free skip the
 * tables for every block that was not sampled; a bitmap word and the
 * counts behind its bits belong to one stripe. A bucket's allocated
 * figures are added under the stripe's lock with atomic adds (two stripes
 * may add to one bucket), so a dump, which takes g.lock and then every
 * stripe, sees each sample in both its live and allocated figures or in
 * neither. All tables live in pages of their own (hak_os_map), never in
 * malloc'd memory, under locks that no allocator path holds.
 *
 * Output: gperftools' heap profile (text), the figures already unsampled
 * ("@ heapprofile", which pprof takes as they are), then /proc/self/maps.
 */
#include "dispatch.h"

#if HAK_HAVE_LARGE
#include "hak_large.h"
#endif

#include <errno.h>
#include <string.h>

#define HAK_EXPORT __attribute__((visibility("default")))

#define PROF_DEPTH 64                /* frames kept per sample */
#define PROF_CHAIN_BITS 14           /* buckets' hash chains */
#define PROF_LIVE_MIN ((size_t)1 << 9) /* first capacity of a stripe's live table */
#define PROF_STRIPE_BITS 5
#define PROF_STRIPES (1u << PROF_STRIPE_BITS) /* live tables, each with its lock */
#define PROF_ARENA_CHUNK ((size_t)1 << 20)
#define PROF_FILTER_N ((size_t)1 << HAK_PROF_FILTER_BITS)

__thread int64_t hak_prof_left_;
uint64_t hak_prof_filter_[PROF_FILTER_N / 64];

typedef struct bucket {
    struct bucket *chain; /* same hash chain */
    struct bucket *next;  /* every bucket, newest first */
    uint64_t hash;
    double alloc_n, alloc_b; /* weighted, since the start (atomic adds) */
    double live_n, live_b;   /* weighted, filled when dumping */
    uint32_t depth;
    void *frames[];
} bucket_t;

typedef hak_prof_sample_t live_t; /* ptr 0: an empty slot */

/* Per thread: the sampler's random state (0: not seeded) and whether the
 * thread is inside the sampler (its nested allocations are not sampled). */
static __thread uint64_t t_rng;
static __thread int t_busy;

/* One stripe of the live samples: the addresses whose filter hash has
 * these top PROF_STRIPE_BITS bits. */
typedef struct {
    hak_lock_t lock;
    size_t live_cap, live_n;
    live_t *live;
} __attribute__((aligned(64))) stripe_t;

static stripe_t g_stripe[PROF_STRIPES];

/* g.lock: new buckets (chains, list, arena), the dumps and the interval
 * marks. Taken before a stripe's lock, never after one. */
static struct {
    hak_lock_t lock;
    int on;
    bool leaks;
    double rate;
    uint64_t interval;  /* 0: no interval dumps */
    uint64_t next_mark; /* interval dump when the live estimate passes it */
    unsigned seq;       /* interval dumps written */
    uint64_t start_pid;
    char path[4096];
    bucket_t **chains;
    bucket_t *buckets;
    uint32_t *filter_count; /* live samples per filter bit (under its stripe's lock) */
    int64_t live_bytes;     /* weighted, atomic; kept for the interval dumps only */
    char *arena;
    size_t arena_left;
} g = {.lock = HAK_LOCK_INIT};

/* ------------------------------------------------------------ arithmetic
 * Without libm (libhakmem links none): ln(u) for u in (0, 1], and
 * 1 - exp(-x) for x >= 0, each to about 1e-12. */

static double ln_unit(double u)
{
    uint64_t bits;
    memcpy(&bits, &u, sizeof bits);
    int e = (int)((bits >> 52) & 0x7ff) - 1023;
    bits = (bits & ~((uint64_t)0x7ff << 52)) | ((uint64_t)1023 << 52);
    double m;
    memcpy(&m, &bits, sizeof m); /* u = m * 2^e, m in [1, 2) */
    if (m > 1.4142135623730951) {
        m /= 2;
        e++;
    }
    /* ln m = 2 atanh z = 2 (z + z^3/3 + z^5/5 ...), |z| < 0.172: twelve
     * terms (z^24 < 1e-18), by Horner in z^2 */
    double z = (m - 1) / (m + 1), z2 = z * z;
    double p = 1.0 / 23;
    p = p * z2 + 1.0 / 21;
    p = p * z2 + 1.0 / 19;
    p = p * z2 + 1.0 / 17;
    p = p * z2 + 1.0 / 15;
    p = p * z2 + 1.0 / 13;
    p = p * z2 + 1.0 / 11;
    p = p * z2 + 1.0 / 9;
    p = p * z2 + 1.0 / 7;
    p = p * z2 + 1.0 / 5;
    p = p * z2 + 1.0 / 3;
    p = p * z2 + 1;
    return 2 * z * p + e * 0.6931471805599453;
}

/* 1/2!, 1/3!, ...: the series' terms' factors */
static const double inv_int[31] = {
    0,        1.0 / 1,  1.0 / 2,  1.0 / 3,  1.0 / 4,  1.0 / 5,  1.0 / 6,  1.0 / 7,  1.0 / 8,  1.0 / 9,  1.0 / 10,
    1.0 / 11, 1.0 / 12, 1.0 / 13, 1.0 / 14, 1.0 / 15, 1.0 / 16, 1.0 / 17, 1.0 / 18, 1.0 / 19, 1.0 / 20, 1.0 / 21,
    1.0 / 22, 1.0 / 23, 1.0 / 24, 1.0 / 25, 1.0 / 26, 1.0 / 27, 1.0 / 28, 1.0 / 29, 1.0 / 30,
};

static double one_minus_exp_neg(double x)
{
    if (x < 0.5) { /* x - x^2/2! + x^3/3! ...: no cancellation for small x */
        double term = x, sum = 0;
        for (int k = 1; k < 30; k++) {
            double next = sum + term;
            if (next == sum) /* the terms no longer count */
                break;
            sum = next;
            term *= -x * inv_int[k + 1];
        }
        return sum;
    }
    if (x > 700)
        return 1;
    /* exp(-x) = 2^-k exp(-r), r = x - k ln 2 in [0, ln 2) */
    int k = (int)(x / 0.6931471805599453);
    double r = x - k * 0.6931471805599453, term = 1, e = 0;
    for (int i = 1; i < 30; i++) {
        double next = e + term;
        if (next == e)
            break;
        e = next;
        term *= -r * inv_int[i];
    }
    while (k-- > 0)
        e /= 2;
    return 1 - e;
}

/* The estimate a sample of `size` bytes stands for: 1/P(sampled) objects. */
static double weight(size_t size)
{
    double x = (double)size / g.rate;
    if (x < 0.25) {
        /* 1/(1 - e^-x) = 1/x + 1/2 + x/12 - x^3/720 + x^5/30240 - x^7/1209600
         * + x^9/47900160 - ... (Bernoulli numbers): the next term is below
         * 1e-14 of the sum here, and no series loop is paid per sample */
        double x2 = x * x;
        double p = 1.0 / 47900160;
        p = p * x2 - 1.0 / 1209600;
        p = p * x2 + 1.0 / 30240;
        p = p * x2 - 1.0 / 720;
        p = p * x2 + 1.0 / 12;
        return 1 / x + 0.5 + x * p;
    }
    return 1 / one_minus_exp_neg(x);
}

/* The bytes to the next sample: exponential, mean g.rate. */
static int64_t next_interval(void)
{
    uint64_t x = t_rng; /* xorshift64* */
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    t_rng = x;
    double u = (double)(((x * 0x2545F4914F6CDD1DULL) >> 11) + 1) * (1.0 / 9007199254740992.0);
    double d = -ln_unit(u) * g.rate;
    if (d < 1)
        return 1;
    return d > 4e18 ? (int64_t)4e18 : (int64_t)d;
}

/* ------------------------------------------------------------- memory */

/* Bump allocation from pages of the profiler's own (kept for the
 * process's life); NULL if a page cannot be mapped. Under g.lock. */
static void *arena_take(size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (n > g.arena_left) {
        size_t len = n > PROF_ARENA_CHUNK ? n : PROF_ARENA_CHUNK;
        char *m = hak_os_map(len, hak_os_page_size());
        if (m == NULL)
            return NULL;
        g.arena = m;
        g.arena_left = len;
    }
    void *p = g.arena;
    g.arena += n;
    g.arena_left -= n;
    return p;
}

static size_t live_slot(uintptr_t p, size_t cap)
{
    return (size_t)(((p >> 4) * 0x9E3779B97F4A7C15ull) >> 20) & (cap - 1);
}

static stripe_t *stripe_of(uintptr_t p)
{
    return &g_stripe[hak_prof_hash_((void *)p) >> (HAK_PROF_FILTER_BITS - PROF_STRIPE_BITS)];
}

/* Twice the room, rehashed (under the stripe's lock); -1 if it cannot be
 * mapped. */
static int live_grow(stripe_t *st)
{
    size_t cap = st->live_cap ? st->live_cap * 2 : PROF_LIVE_MIN;
    live_t *t = hak_os_map(cap * sizeof *t, hak_os_page_size());
    if (t == NULL)
        return -1;
    for (size_t i = 0; i < st->live_cap; i++) {
        if (st->live[i].ptr == 0)
            continue;
        size_t j = live_slot(st->live[i].ptr, cap);
        while (t[j].ptr)
            j = (j + 1) & (cap - 1);
        t[j] = st->live[i];
    }
    if (st->live)
        hak_os_unmap(st->live, st->live_cap * sizeof *st->live);
    st->live = t;
    st->live_cap = cap;
    return 0;
}

/* *d += v: two stripes may add to one bucket at once. */
static void add_double(double *d, double v)
{
    double old, sum;
    __atomic_load(d, &old, __ATOMIC_RELAXED);
    do
        sum = old + v;
    while (!__atomic_compare_exchange(d, &old, &sum, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED));
}

static double load_double(const double *d)
{
    double v;
    __atomic_load(d, &v, __ATOMIC_RELAXED);
    return v;
}

/* The weighted bytes of a live sample, as the interval dumps count them. */
static int64_t live_weight_bytes(double w, size_t size) { return (int64_t)(w * (double)size); }

static void lock_all(void)
{
    hak_lock(&g.lock);
    for (unsigned i = 0; i < PROF_STRIPES; i++)
        hak_lock(&g_stripe[i].lock);
}

static void unlock_all(void)
{
    for (unsigned i = PROF_STRIPES; i-- > 0;)
        hak_unlock(&g_stripe[i].lock);
    hak_unlock(&g.lock);
}

static void filter_add(uintptr_t p)
{
    unsigned h = hak_prof_hash_((void *)p);
    if (g.filter_count[h]++ == 0)
        __atomic_fetch_or(&hak_prof_filter_[h >> 6], (uint64_t)1 << (h & 63), __ATOMIC_RELAXED);
}

static void filter_remove(uintptr_t p)
{
    unsigned h = hak_prof_hash_((void *)p);
    if (--g.filter_count[h] == 0)
        __atomic_fetch_and(&hak_prof_filter_[h >> 6], ~((uint64_t)1 << (h & 63)), __ATOMIC_RELAXED);
}

/* --------------------------------------------------------------- stacks */

static uint64_t stack_hash(void *const *frames, int n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i];
        h *= 0x100000001b3ull;
        h ^= h >> 29;
    }
    return h;
}

/* The bucket of stack h on the chain that starts at `first`; NULL if none. */
static bucket_t *chain_find(bucket_t *first, uint64_t h, void *const *frames, int n)
{
    for (bucket_t *b = first; b; b = __atomic_load_n(&b->chain, __ATOMIC_ACQUIRE))
        if (b->hash == h && b->depth == (uint32_t)n && memcmp(b->frames, frames, (size_t)n * sizeof *frames) == 0)
            return b;
    return NULL;
}

/* The bucket of a stack, made if new; NULL if no memory. Found without a
 * lock: a bucket is published whole (release store of the chain's head)
 * and never changes but for its figures. */
static bucket_t *bucket_of(void *const *frames, int n)
{
    uint64_t h = stack_hash(frames, n);
    bucket_t **head = &g.chains[h & (((size_t)1 << PROF_CHAIN_BITS) - 1)];
    bucket_t *b = chain_find(__atomic_load_n(head, __ATOMIC_ACQUIRE), h, frames, n);
    if (b)
        return b;
    hak_lock(&g.lock);
    b = chain_find(*head, h, frames, n); /* made meanwhile by another thread? */
    if (b == NULL && (b = arena_take(sizeof *b + (size_t)n * sizeof *frames)) != NULL) {
        memset(b, 0, sizeof *b);
        b->hash = h;
        b->depth = (uint32_t)n;
        memcpy(b->frames, frames, (size_t)n * sizeof *frames);
        b->chain = *head;
        b->next = g.buckets;
        g.buckets = b;
        __atomic_store_n(head, b, __ATOMIC_RELEASE);
    }
    hak_unlock(&g.lock);
    return b;
}

/* ---------------------------------------------------------------- dumps */

typedef struct {
    int fd;
    size_t n;
    char buf[4096];
} out_t;

static void out_flush(out_t *o)
{
    o->buf[o->n] = 0;
    hak_os_write_fd(o->fd, o->buf);
    o->n = 0;
}

static void out_str(out_t *o, const char *s)
{
    for (; *s; s++) {
        if (o->n == sizeof o->buf - 1)
            out_flush(o);
        o->buf[o->n++] = *s;
    }
}

/* v right-aligned in `width` columns (rounded to a whole number) */
static void out_num(out_t *o, double v, int width)
{
    char num[24];
    size_t len = hak_fmt_u64(num, v > 0 ? (uint64_t)(v + 0.5) : 0);
    for (int i = (int)len; i < width; i++)
        out_str(o, " ");
    out_str(o, num);
}

/* One "in-use objects: bytes [allocated objects: bytes]" group. */
static void out_counts(out_t *o, double ln, double lb, double an, double ab)
{
    out_num(o, ln, 6);
    out_str(o, ": ");
    out_num(o, lb, 8);
    out_str(o, " [");
    out_num(o, an, 6);
    out_str(o, ": ");
    out_num(o, ab, 8);
    out_str(o, "]");
}

/* The profile into fd (under g.lock and every stripe's). `leaks`: only the
 * sites of live samples, their allocated figures equal to the live ones. */
static void write_profile(int fd, bool leaks)
{
    for (bucket_t *b = g.buckets; b; b = b->next)
        b->live_n = b->live_b = 0;
    for (unsigned k = 0; k < PROF_STRIPES; k++)
        for (size_t i = 0; i < g_stripe[k].live_cap; i++) {
            const live_t *s = &g_stripe[k].live[i];
            if (s->ptr == 0)
                continue;
            double w = weight(s->size);
            s->bucket->live_n += w;
            s->bucket->live_b += w * (double)s->size;
        }
    double tln = 0, tlb = 0, tan = 0, tab = 0;
    for (bucket_t *b = g.buckets; b; b = b->next) {
        if (leaks) {
            b->alloc_n = b->live_n;
            b->alloc_b = b->live_b;
        }
        tln += b->live_n;
        tlb += b->live_b;
        tan += load_double(&b->alloc_n);
        tab += load_double(&b->alloc_b);
    }
    out_t o = {.fd = fd};
    out_str(&o, "heap profile: ");
    out_counts(&o, tln, tlb, tan, tab);
    out_str(&o, " @ heapprofile\n");
    for (bucket_t *b = g.buckets; b; b = b->next) {
        if (leaks && b->live_n == 0)
            continue;
        out_counts(&o, b->live_n, b->live_b, b->alloc_n, b->alloc_b);
        out_str(&o, " @");
        for (uint32_t i = 0; i < b->depth; i++) {
            char hex[24];
            hak_fmt_hex(hex, (uint64_t)(uintptr_t)b->frames[i]);
            out_str(&o, " ");
            out_str(&o, hex);
        }
        out_str(&o, "\n");
    }
    out_str(&o, "\nMAPPED_LIBRARIES:\n");
    out_flush(&o);
    hak_os_copy_maps(fd);
}

/* Write the profile to the file `pattern` names (%p: the pid), under
 * every lock (lock_all): 0, or minus the errno of the failure (errno itself is kept). */
static int dump_to(const char *pattern, bool leaks)
{
    int fd = hak_os_open_report(pattern);
    if (fd < 0)
        return fd;
    write_profile(fd, leaks);
    hak_os_close_fd(fd);
    return 0;
}

/* The n-th interval dump: "<path>.NNNN" (under every lock). */
static void dump_interval(void)
{
    char name[sizeof g.path + 24], num[24];
    size_t len = strlen(g.path), dn = hak_fmt_u64(num, ++g.seq);
    memcpy(name, g.path, len);
    name[len++] = '.';
    for (size_t i = dn; i < 4; i++)
        name[len++] = '0';
    memcpy(name + len, num, dn + 1);
    dump_to(name, false);
}

/* ------------------------------------------------------------- sampling */

/* A live sample, standing for w objects, into its stripe's table (under
 * the stripe's lock): 0, or -1 if the table is full and cannot grow. */
static int live_put(stripe_t *st, const live_t *s, double w)
{
    if (2 * (st->live_n + 1) > st->live_cap && live_grow(st) != 0)
        return -1;
    size_t j = live_slot(s->ptr, st->live_cap);
    while (st->live[j].ptr)
        j = (j + 1) & (st->live_cap - 1);
    st->live[j] = *s;
    st->live_n++;
    filter_add(s->ptr);
    if (g.interval)
        __atomic_fetch_add(&g.live_bytes, live_weight_bytes(w, s->size), __ATOMIC_RELAXED);
    return 0;
}

/* The interval dump, if the live estimate passed the next mark (no lock
 * held). */
static void interval_check(void)
{
    if (__atomic_load_n(&g.live_bytes, __ATOMIC_RELAXED) < (int64_t)__atomic_load_n(&g.next_mark, __ATOMIC_RELAXED))
        return;
    lock_all();
    int64_t lb = __atomic_load_n(&g.live_bytes, __ATOMIC_RELAXED);
    if (lb >= (int64_t)g.next_mark) {
        uint64_t mark = g.next_mark;
        while ((int64_t)mark <= lb)
            mark += g.interval;
        __atomic_store_n(&g.next_mark, mark, __ATOMIC_RELAXED);
        dump_interval();
    }
    unlock_all();
}

/* The thread's count: the gate, or hak_prof_left_ while tracing is on
 * (the gate then stays closed, dispatch.h). */
static int64_t count_get(void) { return (hak_trace_on_ & HAK_HOOK_TRACE) ? hak_prof_left_ : hak_gate_get_(); }
static void count_set(int64_t v)
{
    if (hak_trace_on_ & HAK_HOOK_TRACE)
        hak_prof_left_ = v;
    else
        hak_gate_set_(v);
}

bool hak_prof_decide_(size_t req)
{
    if (t_busy) { /* an allocation of the unwinder's, inside a sample */
        count_set(INT64_MAX / 2);
        return false;
    }
    if (HAK_UNLIKELY(t_rng == 0)) {
        /* the thread's first request: its first count starts here */
        t_rng = (hak_random_word() ^ hak_thread_id()) | 1;
        int64_t first = next_interval();
        if (first > (int64_t)req) {
            count_set(first - (int64_t)req);
            return false;
        }
    }
    count_set(next_interval());
    return true;
}

/* The stack of a sampled request of req bytes at p, into the tables.
 * Only allocation-entry frames are above this one: they, and the
 * profiler's own, are in the hak_alloc section, which the stack drops. */
static HAK_ALLOC_SECTION HAK_NOINLINE void record(size_t req, void *p)
{
    int64_t left = count_get();
    t_busy = 1; /* what the unwinder may allocate is served, not sampled */
    count_set(INT64_MAX / 2);
    void *frames[PROF_DEPTH + 8];
    int n = hak_os_backtrace(frames, PROF_DEPTH + 8, 0), skip = 0;
    while (skip < n && (const char *)frames[skip] >= __start_hak_alloc && (const char *)frames[skip] < __stop_hak_alloc)
        skip++;
    n -= skip;
    if (n > PROF_DEPTH)
        n = PROF_DEPTH;
    double w = weight(req);
    bucket_t *b = bucket_of(frames + skip, n);
    if (b) {
        stripe_t *st = stripe_of((uintptr_t)p);
        hak_lock(&st->lock);
        if (live_put(st, &(live_t){(uintptr_t)p, req, b}, w) == 0) {
            add_double(&b->alloc_n, w);
            add_double(&b->alloc_b, w * (double)req);
        }
        hak_unlock(&st->lock);
        if (g.interval)
            interval_check();
    }
    count_set(left);
    t_busy = 0;
}

HAK_ALLOC_SECTION void hak_prof_record_(size_t req, void *p) { record(req, p); }

HAK_ALLOC_SECTION void *hak_prof_alloc_(size_t req, size_t align)
{
#if HAK_HAVE_LARGE
    void *p = hak_large_alloc_sampled(req, align);
#else
    void *p = hak_sys_alloc_(req, align);
#endif
    if (p)
        record(req, p);
    return p;
}

/* The live sample at p out of its stripe's table (under the stripe's
 * lock): true if it was one; *out gets it. Backward-shift deletion: no
 * tombstones. */
static bool live_take(stripe_t *st, uintptr_t p, live_t *out)
{
    if (st->live_cap == 0)
        return false;
    live_t *t = st->live;
    size_t mask = st->live_cap - 1, i = live_slot(p, st->live_cap);
    while (t[i].ptr != p) {
        if (t[i].ptr == 0)
            return false;
        i = (i + 1) & mask;
    }
    *out = t[i];
    for (size_t j = (i + 1) & mask; t[j].ptr; j = (j + 1) & mask) {
        size_t home = live_slot(t[j].ptr, st->live_cap);
        /* j's entry may move into the hole at i if its home is not in (i, j] */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t[i] = t[j];
            i = j;
        }
    }
    t[i].ptr = 0;
    st->live_n--;
    filter_remove(p);
    if (g.interval) /* what the interval dumps read: else not worth a weight() per free */
        __atomic_fetch_sub(&g.live_bytes, live_weight_bytes(weight(out->size), out->size), __ATOMIC_RELAXED);
    return true;
}

bool hak_prof_take_(void *p, hak_prof_sample_t *out)
{
    stripe_t *st = stripe_of((uintptr_t)p);
    hak_lock(&st->lock);
    bool found = live_take(st, (uintptr_t)p, out);
    hak_unlock(&st->lock);
    return found;
}

bool hak_prof_free_(void *p)
{
    live_t s;
    return hak_prof_take_(p, &s);
}

void hak_prof_put_back_(const hak_prof_sample_t *s)
{
    stripe_t *st = stripe_of(s->ptr);
    hak_lock(&st->lock);
    live_put(st, s, weight(s->size));
    hak_unlock(&st->lock);
}

/* ------------------------------------------------------------- control */

static void prof_fork_prepare(void) { lock_all(); }
static void prof_fork_parent(void) { unlock_all(); }
static void prof_fork_child(void)
{
    g.lock = (hak_lock_t)HAK_LOCK_INIT;
    for (unsigned i = 0; i < PROF_STRIPES; i++)
        g_stripe[i].lock = (hak_lock_t)HAK_LOCK_INIT;
}
static const hak_fork_ops_t prof_fork_ops = {prof_fork_prepare, prof_fork_parent, prof_fork_child};

int hak_prof_start_(const char *path, uint64_t rate, uint64_t interval, bool leaks)
{
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof g.path)
        return -1;
    g.chains = hak_os_map(sizeof(bucket_t *) << PROF_CHAIN_BITS, hak_os_page_size());
    g.filter_count = hak_os_map(PROF_FILTER_N * sizeof(uint32_t), hak_os_page_size());
    if (g.chains == NULL || g.filter_count == NULL)
        return -1;
    memcpy(g.path, path, len + 1);
    g.rate = (double)rate;
    g.interval = interval;
    g.next_mark = interval;
    g.leaks = leaks;
    g.start_pid = hak_os_pid();
    if (hak_fork_register(&prof_fork_ops) != 0)
        return -1;
    void *warm[4];
    hak_os_backtrace(warm, 4, 0); /* binds the unwinder's symbols now */
    __atomic_store_n(&g.on, 1, __ATOMIC_RELEASE);
    hak_hooks_enable_(HAK_HOOK_PROF);
    return 0;
}

/* A forked child writes its own exit profile only if the path holds its
 * pid (%p): else it would overwrite its parent's. */
static bool path_has_pid(void)
{
    for (const char *c = g.path; *c; c++) {
        if (c[0] == '%' && c[1] == 'p')
            return true;
        if (c[0] == '%' && c[1] == '%')
            c++;
    }
    return false;
}

void hak_prof_exit_(void)
{
    if (!__atomic_load_n(&g.on, __ATOMIC_ACQUIRE))
        return;
    if (hak_os_pid() != g.start_pid && !path_has_pid())
        return;
    lock_all();
    int rc = dump_to(g.path, g.leaks);
    unlock_all();
    if (rc < 0) {
        hak_write_err("hakmem: HAKMEM_PROF=");
        hak_write_err(g.path);
        hak_write_err(": the exit profile cannot be written\n");
    }
}

HAK_EXPORT int hak_prof_dump(const char *path)
{
    if (path == NULL || *path == 0) {
        errno = EINVAL;
        return -1;
    }
    if (!__atomic_load_n(&g.on, __ATOMIC_ACQUIRE)) {
        errno = ENOTSUP;
        return -1;
    }
    lock_all();
    int rc = dump_to(path, false);
    unlock_all();
    if (rc < 0) {
        errno = -rc;
        return -1;
    }
    return 0;
}
