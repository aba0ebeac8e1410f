// SPDX-License-Identifier: MIT
/* report.c - runtime options (environment), statistics, the exit reports
 * and glibc's introspection API (mallinfo, mallinfo2, malloc_stats,
 * malloc_info, mallopt, malloc_trim).
 *
 * Environment variables are read once, at load (constructor), without
 * allocating, and ignored for setuid/setgid programs (hak_getenv checks
 * AT_SECURE). Reports go to stderr with write(2), never through malloc,
 * once per process: a forked child does not repeat its parent's.
 * Formats: docs/options.md.
 */
#include "dispatch.h"
#include "hak_purge.h"

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <string.h>

#if HAK_HAVE_TINY
#include "tiny_inline.h"
#endif
#if HAK_HAVE_MID
#include "mid_inline.h"
#endif
#if HAK_HAVE_L25
#include "l25_inline.h"
#endif
#if HAK_HAVE_LARGE
#include "hak_large.h"
#endif

#define HAK_EXPORT __attribute__((visibility("default")))
#define HAK_STR_(x) #x
#define HAK_STR(x) HAK_STR_(x)
#ifndef HAK_TIERS_STR
#define HAK_TIERS_STR "?"
#endif

hak_env_t hak_env_;
int hak_trace_on_;
#define HAK_NO_TAG 0x100u
hak_fast_t hak_fast_ = {
#if HAK_HAVE_TINY
    .tiny_limit = HAK_TINY_MAX_SIZE + 1,
    .tiny_tag = HAK_TAG_TINY,
#else
    .tiny_tag = HAK_NO_TAG,
#endif
#if HAK_HAVE_MID
    .mid_limit = HAK_MID_MAX + 1,
    .mid_tag = HAK_TAG_MID,
#else
    .mid_tag = HAK_NO_TAG,
#endif
};
static uint64_t g_report_pid;
static uint64_t g_err_id; /* stderr at load (reports are written only to it) */

/* ------------------------------------------------------------- output */

/* A line being built, and where it goes when emitted: the callback of
 * hak_stats_print, else fd (2: stderr at load; or the HAKMEM_STATS_FILE). */
typedef struct {
    char buf[512];
    size_t n;
    void (*cb)(void *arg, const char *text);
    void *arg;
    int fd;
} line_t;
#define LINE_ERR {.n = 0, .fd = 2}

static void put(line_t *l, const char *s)
{
    while (*s && l->n < sizeof l->buf - 2)
        l->buf[l->n++] = *s++;
}

/* v right-aligned in `width` columns */
static void put_u(line_t *l, uint64_t v, int width)
{
    char num[24];
    int len = (int)hak_fmt_u64(num, v);
    for (int i = len; i < width; i++)
        put(l, " ");
    put(l, num);
}

static void put_pad(line_t *l, const char *s, int width)
{
    int len = (int)strlen(s);
    put(l, s);
    for (int i = len; i < width; i++)
        put(l, " ");
}

static void put_right(line_t *l, const char *s, int width)
{
    for (int i = (int)strlen(s); i < width; i++)
        put(l, " ");
    put(l, s);
}

/* percentage with one decimal of num/den */
static void put_pct(line_t *l, uint64_t num, uint64_t den, int width)
{
    uint64_t tenths = den ? (num * 1000 + den / 2) / den : 0;
    char a[24], b[24];
    hak_fmt_u64(a, tenths / 10);
    hak_fmt_u64(b, tenths % 10);
    int len = (int)(strlen(a) + 3);
    for (int i = len; i < width; i++)
        put(l, " ");
    put(l, a);
    put(l, ".");
    put(l, b);
    put(l, "%");
}

static void emit(line_t *l)
{
    l->buf[l->n++] = '\n';
    l->buf[l->n] = 0;
    if (l->cb)
        l->cb(l->arg, l->buf);
    else if (l->fd == 2)
        hak_write_err(l->buf);
    else
        hak_os_write_fd(l->fd, l->buf);
    l->n = 0;
}

/* A byte count in human units, one decimal, right-aligned in `width`
 * columns: KiB below 1 MiB, MiB below 1 GiB, then GiB ("132.0 KiB"). */
static void put_size(line_t *l, uint64_t bytes, int width)
{
    static const char *const units[] = {" KiB", " MiB", " GiB"};
    unsigned u = bytes < ((uint64_t)1 << 20) ? 0 : bytes < ((uint64_t)1 << 30) ? 1 : 2;
    uint64_t unit = (uint64_t)1 << (10 * (u + 1));
    uint64_t tenths = (bytes / unit) * 10 + ((bytes % unit) * 10 + unit / 2) / unit;
    char a[24], b[24];
    hak_fmt_u64(a, tenths / 10);
    hak_fmt_u64(b, tenths % 10);
    int len = (int)(strlen(a) + 2 + 4);
    for (int i = len; i < width; i++)
        put(l, " ");
    put(l, a);
    put(l, ".");
    put(l, b);
    put(l, units[u]);
}

/* ---------------------------------------------------------- statistics */

static const char *const tier_names[6] = {"none", "tiny", "mid", "l25", "large", "system"};

static void tier_figures(const hak_stats_t *st, size_t live[6], size_t peak[6]);

/* The mapped and committed figures (cheap: counters); hak_get_stats adds
 * the live and peak ones. */
static void stats_base(hak_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
#if HAK_HAVE_TINY
    hak_tiny_stats_t ts;
    hak_tiny_get_stats(&ts);
    out->mapped[HAK_TIER_TINY] = ts.bytes_mapped;
    out->committed[HAK_TIER_TINY] = ts.bytes_committed;
    out->thread_caches = ts.thread_caches;
#endif
#if HAK_HAVE_MID
    hak_tier_stats_t ms;
    hak_mid_vtable.stats(&ms);
    out->mapped[HAK_TIER_MID] = ms.bytes_mapped;
    out->committed[HAK_TIER_MID] = ms.bytes_committed;
#endif
#if HAK_HAVE_L25
    hak_tier_stats_t ls;
    hak_l25_vtable.stats(&ls);
    out->mapped[HAK_TIER_L25] = ls.bytes_mapped;
    out->committed[HAK_TIER_L25] = ls.bytes_committed;
#endif
#if HAK_HAVE_LARGE
    hak_tier_stats_t gs;
    hak_large_stats(&gs);
    out->mapped[HAK_TIER_LARGE] = gs.bytes_mapped;
    out->committed[HAK_TIER_LARGE] = gs.bytes_committed;
#endif
    out->os_mapped = hak_os_mapped_bytes();
    out->os_committed = hak_os_committed_bytes();
}

HAK_EXPORT void hak_get_stats(hak_stats_t *out)
{
    stats_base(out);
    tier_figures(out, out->live, out->peak_committed);
    out->os_peak_committed = hak_os_committed_peak_bytes();
    if (out->os_peak_committed < out->os_committed)
        out->os_peak_committed = out->os_committed;
    out->peak_in_use = __atomic_load_n(&hak_purge_.peak_all, __ATOMIC_RELAXED);
}

HAK_EXPORT void hak_get_stats_sized(hak_stats_t *out, size_t size)
{
    hak_stats_t st;
    hak_get_stats(&st);
    if (size > sizeof st)
        size = sizeof st;
    st.size = size;
    memcpy(out, &st, size);
}

/* ------------------------------------------------- per-request tracing */

/* Size buckets: <=16, <=32, ... powers of two up to 2^40, then beyond. */
#define HIST_BUCKETS 42
static uint64_t g_size_hist[HIST_BUCKETS];
/* What served them: tiny classes, then mid, l25, large, system. */
#define SERVED_SLOTS (HAK_TINY_NCLASSES_OR_0 + 4)
#if HAK_HAVE_TINY
#define HAK_TINY_NCLASSES_OR_0 HAK_TINY_NCLASSES
#else
#define HAK_TINY_NCLASSES_OR_0 0
#endif
static uint64_t g_served[SERVED_SLOTS];
static uint64_t g_req_bytes, g_req_count, g_live_usable, g_peak_usable, g_frees;

static unsigned bucket_of(size_t n)
{
    if (n <= 16)
        return 0;
    unsigned b = (unsigned)(64 - __builtin_clzl(n - 1)) - 4;
    return b < HIST_BUCKETS ? b : HIST_BUCKETS - 1;
}

void hak_trace_alloc_(size_t req, void *p)
{
    size_t usable = hak_usable_size(p);
    __atomic_fetch_add(&g_req_count, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_req_bytes, req, __ATOMIC_RELAXED);
    __atomic_fetch_add(&g_size_hist[bucket_of(req)], 1, __ATOMIC_RELAXED);
    int tier = hak_owner(p);
    unsigned slot;
#if HAK_HAVE_TINY
    if (tier == HAK_TIER_TINY) {
        slot = hak_tiny_class_of(usable);
    } else
#endif
    {
        slot = HAK_TINY_NCLASSES_OR_0 + (unsigned)(tier >= HAK_TIER_MID ? tier - HAK_TIER_MID : 3);
        if (slot >= SERVED_SLOTS)
            slot = SERVED_SLOTS - 1;
    }
    __atomic_fetch_add(&g_served[slot], 1, __ATOMIC_RELAXED);
    uint64_t live = __atomic_add_fetch(&g_live_usable, usable, __ATOMIC_RELAXED);
    uint64_t peak = __atomic_load_n(&g_peak_usable, __ATOMIC_RELAXED);
    while (live > peak && !__atomic_compare_exchange_n(&g_peak_usable, &peak, live, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        ;
}

static void trace_gone(size_t usable)
{
    __atomic_fetch_add(&g_frees, 1, __ATOMIC_RELAXED);
    __atomic_fetch_sub(&g_live_usable, usable, __ATOMIC_RELAXED);
}

void hak_trace_free_(void *p) { trace_gone(hak_usable_size(p)); }

void hak_trace_realloc_(size_t old_usable, size_t req, void *q)
{
    trace_gone(old_usable);
    hak_trace_alloc_(req, q);
}

/* ----------------------------------------------------------- reports */


/* One line of counters: "<head><v0><names[1]><v1>...", emitted. */
static void put_counters(line_t *l, const char *head, const char *const *names, const size_t *v, int n)
{
    put(l, head);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            put(l, names[i]);
        put_u(l, v[i], 0);
    }
    emit(l);
}

#if HAK_HAVE_MID || HAK_HAVE_L25
/* One line of a pool's counters (mid, L25). */
static void put_pool_line(line_t *l, const char *head, const hak_pool_stats_t *s)
{
    static const char *const names[] = {"", ", spans in use ", ", refills ", ", drains ", ", spills ",
                                        ", span releases ", ", chunk unmaps ", ", KiB purged "};
    const size_t v[] = {s->chunks, s->spans_in_use, s->refills, s->drains, s->spills,
                        s->span_releases, s->chunk_unmaps, s->bytes_purged >> 10};
    put_counters(l, head, names, v, 8);
}
#endif

/* Per tier (index: hak_tier_id): the bytes of live blocks, mallinfo2's
 * in-use computation (the small tiers' blocks with the user, in class
 * sizes; other threads' caches count as in use, the caller's as free) and
 * the large tier's blocks; and the highest committed bytes since load, at
 * least the current ones. Takes every lock of the tiers. */
/* The tier is part of this build. */
static bool tier_built(int t)
{
    switch (t) {
    case HAK_TIER_TINY:
        return HAK_HAVE_TINY;
    case HAK_TIER_MID:
        return HAK_HAVE_MID;
    case HAK_TIER_L25:
        return HAK_HAVE_L25;
    case HAK_TIER_LARGE:
        return HAK_HAVE_LARGE;
    default:
        return false;
    }
}

static void tier_figures(const hak_stats_t *st, size_t live[6], size_t peak[6])
{
    memset(live, 0, 6 * sizeof live[0]);
    memset(peak, 0, 6 * sizeof peak[0]);
#if HAK_HAVE_TINY
    live[HAK_TIER_TINY] = hak_tiny_bytes_in_use_();
    peak[HAK_TIER_TINY] = hak_tiny_committed_peak_();
#endif
#if HAK_HAVE_MID
    live[HAK_TIER_MID] = hak_mid_bytes_in_use_();
    peak[HAK_TIER_MID] = hak_mid_committed_peak_();
#endif
#if HAK_HAVE_L25
    live[HAK_TIER_L25] = hak_l25_bytes_in_use_();
    peak[HAK_TIER_L25] = hak_l25_committed_peak_();
#endif
#if HAK_HAVE_LARGE
    hak_tier_stats_t gs;
    hak_large_stats(&gs);
    live[HAK_TIER_LARGE] = gs.bytes_in_use;
    peak[HAK_TIER_LARGE] = hak_large_committed_peak_();
#endif
    for (int t = 0; t < 6; t++)
        if (peak[t] < st->committed[t])
            peak[t] = st->committed[t];
}

static void stats_report(line_t *l)
{
    hak_stats_t st;
    stats_base(&st);
    size_t live[6], peak[6], live_all = 0;
    tier_figures(&st, live, peak);
    put(l, "hakmem stats (pid ");
    put_u(l, (uint64_t)hak_os_pid(), 0);
    put(l, ")");
    emit(l);
    put(l, "  tier  ");
    put_right(l, "live", 14);
    put_right(l, "committed", 16);
    put_right(l, "peak committed", 16);
    put_right(l, "mapped", 16);
    emit(l);
    for (int t = HAK_TIER_TINY; t <= HAK_TIER_LARGE; t++) {
        put(l, "  ");
        put_pad(l, tier_names[t], 6);
        put_size(l, live[t], 14);
        put_size(l, st.committed[t], 16);
        put_size(l, peak[t], 16);
        put_size(l, st.mapped[t], 16);
        emit(l);
        live_all += live[t];
    }
    put(l, "  ");
    put_pad(l, "all", 6); /* committed and mapped: with the allocator's own metadata */
    put_size(l, live_all, 14);
    put_size(l, st.os_committed, 16);
    put_size(l, hak_os_committed_peak_bytes(), 16);
    put_size(l, st.os_mapped, 16);
    emit(l);
    /* The peak of live blocks is kept at the granularity the purge
     * policy counts them in (hak_purge_.used): whole slabs, spans and
     * large blocks in use, an upper bound of the live bytes. */
    put(l, "  peak live ");
    put_size(l, __atomic_load_n(&hak_purge_.peak_all, __ATOMIC_RELAXED), 0);
    put(l, " (counted in whole slabs, spans and large blocks: ");
    put_size(l, __atomic_load_n(&hak_purge_.used, __ATOMIC_RELAXED), 0);
    put(l, " now)");
    emit(l);
#if HAK_HAVE_TINY
    hak_tiny_stats_t ts;
    hak_tiny_get_stats(&ts);
    static const char *const tiny_names[] = {"", ", slabs in use ", ", refills ", ", drains ", ", spills ",
                                             ", slab releases ", ", superslab unmaps "};
    const size_t tv[] = {ts.superslabs, ts.slabs_in_use, ts.refills, ts.drains,
                         ts.spills, ts.slab_releases, ts.ss_unmaps};
    put_counters(l, "  tiny: superslabs ", tiny_names, tv, 7);
#if HAK_STATS
    uint64_t fa = __atomic_load_n(&hak_tiny_count_[0], __ATOMIC_RELAXED);
    uint64_t sa = __atomic_load_n(&hak_tiny_count_[1], __ATOMIC_RELAXED);
    uint64_t ff = __atomic_load_n(&hak_tiny_count_[2], __ATOMIC_RELAXED);
    uint64_t sf = __atomic_load_n(&hak_tiny_count_[3], __ATOMIC_RELAXED);
    put(l, "  tiny fast path: malloc hits ");
    put_pct(l, fa, fa + sa, 0);
    put(l, " (");
    put_u(l, fa, 0);
    put(l, " of ");
    put_u(l, fa + sa, 0);
    put(l, "), free hits ");
    put_pct(l, ff - sf, ff, 0);
    put(l, " (");
    put_u(l, ff - sf, 0);
    put(l, " of ");
    put_u(l, ff, 0);
    put(l, ")");
    emit(l);
#else
    if (hak_env_.verbose) {
        put(l, "  tiny fast path: hit rate needs a -Dstats=true build");
        emit(l);
    }
#endif
#endif
#if HAK_HAVE_MID
    hak_pool_stats_t ms;
    hak_mid_get_stats(&ms);
    put_pool_line(l, "  mid: chunks ", &ms);
#endif
#if HAK_HAVE_L25
    hak_pool_stats_t ls;
    hak_l25_get_stats(&ls);
    put_pool_line(l, "  l25: chunks ", &ls);
#endif
}

HAK_EXPORT void hak_print_stats(void)
{
    line_t l = LINE_ERR;
    stats_report(&l);
}

HAK_EXPORT void hak_stats_print(void (*write_cb)(void *arg, const char *text), void *arg)
{
    line_t l = LINE_ERR;
    l.cb = write_cb;
    l.arg = arg;
    stats_report(&l);
}

/* The calling thread's cached blocks back to the shared lists of every
 * tier (the central lists, or their spans): what the tiers' trims do
 * first, without their releases and purges. */
HAK_EXPORT void hak_thread_flush(void)
{
#if HAK_HAVE_TINY
    hak_tiny_flush_();
#endif
#if HAK_HAVE_MID
    hak_mid_flush_();
#endif
#if HAK_HAVE_L25
    hak_l25_flush_();
#endif
}


static void print_size_hist(line_t *l)
{
    uint64_t total = __atomic_load_n(&g_req_count, __ATOMIC_RELAXED);
    put(l, "hakmem size histogram (pid ");
    put_u(l, (uint64_t)hak_os_pid(), 0);
    put(l, "): ");
    put_u(l, total, 0);
    put(l, " requests");
    emit(l);
    put(l, "  size <=          count   share");
    emit(l);
    for (unsigned b = 0; b < HIST_BUCKETS; b++) {
        uint64_t c = __atomic_load_n(&g_size_hist[b], __ATOMIC_RELAXED);
        if (!c)
            continue;
        put(l, "  ");
        if (b == HIST_BUCKETS - 1)
            put(l, "     more");
        else
            put_u(l, (uint64_t)1 << (b + 4), 9);
        put_u(l, c, 15);
        put_pct(l, c, total, 8);
        emit(l);
    }
    put(l, "  served by             count   share");
    emit(l);
    for (unsigned s = 0; s < SERVED_SLOTS; s++) {
        uint64_t c = __atomic_load_n(&g_served[s], __ATOMIC_RELAXED);
        if (!c)
            continue;
        put(l, "  ");
        char name[32];
        unsigned other = s - HAK_TINY_NCLASSES_OR_0; /* wraps for tiny classes */
        if (other < 4) {
            strcpy(name, tier_names[HAK_TIER_MID + other]);
        } else {
#if HAK_HAVE_TINY
            char num[24];
            hak_fmt_u64(num, hak_tiny_stride_[s]);
            strcpy(name, "tiny/");
            strcat(name, num);
#endif
        }
        put_pad(l, name, 14);
        put_u(l, c, 15);
        put_pct(l, c, total, 8);
        emit(l);
    }
}

static void print_mem_trace(line_t *l)
{
    hak_stats_t st;
    stats_base(&st);
    size_t committed = 0;
    for (int t = 0; t < 6; t++)
        committed += st.committed[t];
    uint64_t live = __atomic_load_n(&g_live_usable, __ATOMIC_RELAXED);
    put(l, "hakmem memory trace (pid ");
    put_u(l, (uint64_t)hak_os_pid(), 0);
    put(l, ")");
    emit(l);
    static const char *const names[] = {
        "requests", "frees", "requested bytes (total)", "live usable bytes", "peak live usable bytes",
        "committed bytes (tiers)", "committed bytes (os)", "resident bytes (VmRSS)", "overhead (committed-live)",
    };
    const uint64_t v[] = {
        __atomic_load_n(&g_req_count, __ATOMIC_RELAXED), __atomic_load_n(&g_frees, __ATOMIC_RELAXED),
        __atomic_load_n(&g_req_bytes, __ATOMIC_RELAXED), live, __atomic_load_n(&g_peak_usable, __ATOMIC_RELAXED),
        committed, st.os_committed, hak_os_rss_bytes(), committed > live ? committed - live : 0,
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        put(l, "  ");
        put_pad(l, names[i], 26);
        put_u(l, v[i], 14);
        emit(l);
    }
}

HAK_EXPORT const char *hak_build_options(void)
{
    return "header_classidx=" HAK_STR(HAK_HEADER_CLASSIDX)
           " class7_header_width=" HAK_STR(HAK_CLASS7_HEADER_WIDTH)
           " validation=" HAK_STR(HAK_VALIDATION)
           " platform=" HAK_STR(HAK_PLATFORM_ARENA)
           " stats=" HAK_STR(HAK_STATS)
           " tls_global_dynamic=" HAK_STR(HAK_TLS_GLOBAL_DYNAMIC)
           " tiers=" HAK_TIERS_STR;
}

static const char *on_off(int v) { return v ? "on" : "off"; }

/* The build options in words (hak_build_options has them as numbers). */
static void put_build_options(line_t *l)
{
    static const char *const validation[] = {"none", "magic", "full"};
    put(l, "hakmem: build header_classidx=");
    put(l, HAK_HEADER_CLASSIDX ? "true" : "false");
    put(l, " class7_header_width=" HAK_STR(HAK_CLASS7_HEADER_WIDTH) " validation=");
    put(l, validation[HAK_VALIDATION]);
    put(l, " platform=");
    put(l, HAK_PLATFORM_ARENA ? "arena" : "posix");
    put(l, " stats=");
    put(l, HAK_STATS ? "true" : "false");
    put(l, " tls_model=");
    put(l, HAK_TLS_GLOBAL_DYNAMIC ? "global-dynamic" : "initial-exec");
    put(l, " tiers=" HAK_TIERS_STR);
    emit(l);
}

/* glibc's malloc tunables: hakmem replaces that malloc, so none acts. */
static const char *const glibc_malloc_vars[] = {
    "MALLOC_ARENA_MAX", "MALLOC_ARENA_TEST", "MALLOC_TOP_PAD_", "MALLOC_TRIM_THRESHOLD_",
    "MALLOC_MMAP_THRESHOLD_", "MALLOC_MMAP_MAX_", "MALLOC_PERTURB_", "MALLOC_CHECK_",
};

static void put_ignored(line_t *l, const char *what, size_t len)
{
    put(l, "hakmem: ignoring ");
    size_t room = sizeof l->buf - 2 - l->n;
    if (len > room)
        len = room;
    memcpy(l->buf + l->n, what, len);
    l->n += len;
    put(l, " (a glibc malloc tunable; hakmem replaces glibc's malloc)");
    emit(l);
}

static void print_ignored_tunables(line_t *l)
{
    const char *t = hak_getenv("GLIBC_TUNABLES");
    /* "glibc.malloc.arena_max=2:glibc.elision.enable=1": one line per malloc entry */
    while (t && *t) {
        const char *end = strchr(t, ':');
        size_t len = end ? (size_t)(end - t) : strlen(t);
        if (strncmp(t, "glibc.malloc.", 13) == 0)
            put_ignored(l, t, len);
        t = end ? end + 1 : NULL;
    }
    for (size_t i = 0; i < sizeof glibc_malloc_vars / sizeof glibc_malloc_vars[0]; i++) {
        const char *v = hak_getenv(glibc_malloc_vars[i]);
        if (v == NULL)
            continue;
        /* the whole NAME=VALUE string of the environment */
        const char *entry = v - strlen(glibc_malloc_vars[i]) - 1;
        put_ignored(l, entry, strlen(entry));
    }
}

static char g_stats_file[4096]; /* HAKMEM_STATS_FILE, copied at load */
/* The heap profiler's options, as taken at load (env_prof). */
#define PROF_RATE_DEFAULT ((long)512 << 10)
static char g_prof_path[4096];
static long g_prof_rate = PROF_RATE_DEFAULT, g_prof_interval;
static int g_prof_leaks;

static void print_verbose(void)
{
    line_t l = LINE_ERR;
#ifdef HAKMEM_VERSION_MAJOR
    put(&l, "hakmem: version " HAK_STR(HAKMEM_VERSION_MAJOR) "." HAK_STR(HAKMEM_VERSION_MINOR) "." HAK_STR(
                HAKMEM_VERSION_PATCH));
    emit(&l);
#endif
    const char *self = hak_os_self_path();
    put(&l, "hakmem: library ");
    put(&l, self ? self : "(unknown)");
    emit(&l);
    put_build_options(&l);
    put(&l, "hakmem: HAKMEM_STATS=");
    put(&l, on_off(hak_env_.stats));
    put(&l, " HAKMEM_SIZE_HIST=");
    put(&l, on_off(hak_env_.size_hist));
    put(&l, " HAKMEM_MEM_TRACE=");
    put(&l, on_off(hak_env_.mem_trace));
    put(&l, " HAKMEM_VERBOSE=");
    put(&l, on_off(hak_env_.verbose));
    put(&l, " HAKMEM_STATS_FILE=");
    put(&l, g_stats_file[0] ? g_stats_file : "(stderr)");
    emit(&l);
    put(&l, "hakmem: HAKMEM_PURGE_DELAY_MS=");
    if (hak_purge_.delay_ms < 0)
        put(&l, "-1");
    else
        put_u(&l, (uint64_t)hak_purge_.delay_ms, 0);
    put(&l, " HAKMEM_PURGE_BUDGET=");
    put_u(&l, hak_purge_.budget_pct, 0);
    emit(&l);
    put(&l, "hakmem: HAKMEM_PROF=");
    put(&l, g_prof_path[0] ? g_prof_path : "(off)");
    put(&l, " HAKMEM_PROF_RATE=");
    put_u(&l, (uint64_t)g_prof_rate, 0);
    put(&l, " HAKMEM_PROF_INTERVAL=");
    put_u(&l, (uint64_t)g_prof_interval, 0);
    put(&l, " HAKMEM_PROF_LEAKS=");
    put(&l, on_off(g_prof_leaks));
    emit(&l);
    print_ignored_tunables(&l);
}

/* Case-insensitive equality with a lower-case word. */
static bool word_is(const char *v, const char *word)
{
    for (; *word; v++, word++) {
        char c = *v >= 'A' && *v <= 'Z' ? (char)(*v - 'A' + 'a') : *v;
        if (c != *word)
            return false;
    }
    return *v == 0;
}

/* A flag as mimalloc reads its options: 1/true/yes/on (any case) on,
 * 0/false/no/off or empty off, unset the default; anything else gets a
 * one-line warning and keeps the default. */
static int env_flag_or(const char *name, int dflt, const char *then, bool *bad)
{
    const char *v = hak_getenv(name);
    if (v == NULL)
        return dflt;
    if (*v == 0 || word_is(v, "0") || word_is(v, "false") || word_is(v, "no") || word_is(v, "off"))
        return 0;
    if (word_is(v, "1") || word_is(v, "true") || word_is(v, "yes") || word_is(v, "on"))
        return 1;
    hak_write_err("hakmem: ignoring ");
    hak_write_err(name);
    hak_write_err("=");
    hak_write_err(v);
    hak_write_err(": not 1/true/yes/on or 0/false/no/off");
    hak_write_err(then);
    hak_write_err("\n");
    *bad = true;
    return dflt;
}

static int env_flag(const char *name, int dflt)
{
    bool bad = false;
    return env_flag_or(name, dflt, "", &bad);
}

/* The variables hakmem reads: any other HAKMEM_* is a misspelling. */
static const char *const known_vars[] = {
    "HAKMEM_STATS", "HAKMEM_STATS_FILE", "HAKMEM_SIZE_HIST", "HAKMEM_MEM_TRACE",
    "HAKMEM_VERBOSE", "HAKMEM_PURGE_DELAY_MS", "HAKMEM_PURGE_BUDGET",
    "HAKMEM_PROF", "HAKMEM_PROF_RATE", "HAKMEM_PROF_INTERVAL", "HAKMEM_PROF_LEAKS",
};

/* The edit distance of a[0..n) and b (insertions, deletions,
 * substitutions; names of up to 47 characters, else a large value). */
static size_t edit_distance(const char *a, size_t n, const char *b)
{
    size_t m = strlen(b), row[48];
    if (n >= 48 || m >= 48)
        return 99;
    for (size_t j = 0; j <= m; j++)
        row[j] = j;
    for (size_t i = 1; i <= n; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= m; j++) {
            size_t up = row[j];
            size_t best = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < best)
                best = up + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[m];
}

/* One line for each HAKMEM_ variable of the environment that hakmem does
 * not read, with the known name it is within three edits of, if any. */
static void env_check_unknown(void)
{
    const char *e;
    for (size_t i = 0; (e = hak_env_at(i)) != NULL; i++) {
        if (strncmp(e, "HAKMEM_", 7) != 0)
            continue;
        const char *eq = strchr(e, '=');
        size_t len = eq ? (size_t)(eq - e) : strlen(e);
        const char *near = NULL;
        size_t best = 4;
        for (size_t k = 0; k < sizeof known_vars / sizeof known_vars[0]; k++) {
            size_t d = edit_distance(e, len, known_vars[k]);
            if (d < best) {
                best = d;
                near = known_vars[k];
            }
        }
        if (best == 0)
            continue;
        line_t l = LINE_ERR;
        put(&l, "hakmem: ignoring unknown variable ");
        size_t room = sizeof l.buf - 2 - l.n - 64;
        memcpy(l.buf + l.n, e, len < room ? len : room);
        l.n += len < room ? len : room;
        if (near) {
            put(&l, " (did you mean ");
            put(&l, near);
            put(&l, "?)");
        } else {
            put(&l, " (docs/options.md lists the HAKMEM_ variables)");
        }
        emit(&l);
    }
}

/* A whole decimal integer (optional sign) of the variable, or false. */
static bool env_long(const char *v, long *out)
{
    bool neg = *v == '-';
    long x = 0;
    const char *c = v + (neg || *v == '+');
    if (*c == 0)
        return false;
    for (; *c; c++) {
        if (*c < '0' || *c > '9' || x > (LONG_MAX - 9) / 10)
            return false;
        x = x * 10 + (*c - '0');
    }
    *out = neg ? -x : x;
    return true;
}

static void env_warn(const char *name, const char *why)
{
    hak_write_err("hakmem: ignoring ");
    hak_write_err(name);
    hak_write_err(": ");
    hak_write_err(why);
    hak_write_err("\n");
}

/* The variable as a whole number in [lo, hi], or dflt (with a warning
 * when it is set to anything else, and *bad set). */
static long env_number_or(const char *name, long lo, long hi, long dflt, const char *why, bool *bad)
{
    const char *v = hak_getenv(name);
    long x;
    if (v == NULL)
        return dflt;
    if (env_long(v, &x) && x >= lo && x <= hi)
        return x;
    env_warn(name, why);
    *bad = true;
    return dflt;
}

static long env_number(const char *name, long lo, long hi, long dflt, const char *why)
{
    bool bad = false;
    return env_number_or(name, lo, hi, dflt, why, &bad);
}

/* HAKMEM_PURGE_DELAY_MS (-1, 0 or a delay in ms) and HAKMEM_PURGE_BUDGET
 * (percent of the recent peak in use): the purge policy's options. A bad
 * value gets a one-line warning and the default stays. */

static void env_purge(void)
{
    long delay = env_number("HAKMEM_PURGE_DELAY_MS", -1, INT32_MAX, HAK_PURGE_DELAY_DEFAULT_MS,
                            "not -1, 0 or a delay in ms (default 1000 kept)");
    long pct = env_number("HAKMEM_PURGE_BUDGET", 0, 10000, HAK_PURGE_BUDGET_DEFAULT_PCT,
                          "not a percentage from 0 to 10000 (default 100 kept)");
    hak_purge_configure(delay, pct);
}

/* HAKMEM_STATS_FILE: where the exit reports go. Set (non-empty), it turns
 * HAKMEM_STATS on unless HAKMEM_STATS says off. */
static void env_stats_file(void)
{
    const char *v = hak_getenv("HAKMEM_STATS_FILE");
    if (v == NULL || *v == 0)
        return;
    if (strlen(v) >= sizeof g_stats_file) {
        env_warn("HAKMEM_STATS_FILE", "longer than 4095 bytes (reports go to stderr)");
        return;
    }
    strcpy(g_stats_file, v);
}

/* HAKMEM_PROF=path turns the heap profiler on, with HAKMEM_PROF_RATE,
 * HAKMEM_PROF_INTERVAL and HAKMEM_PROF_LEAKS. Any of them set to a value
 * that is refused: one line each, and no profiling (a profile made with
 * other settings than asked would mislead). */

static void env_prof(void)
{
    bool bad = false;
    const char *path = hak_getenv("HAKMEM_PROF");
    if (path && strlen(path) >= sizeof g_prof_path) {
        env_warn("HAKMEM_PROF", "longer than 4095 bytes (profiling off)");
        bad = true;
    }
    g_prof_rate = env_number_or("HAKMEM_PROF_RATE", 1, (long)1 << 40, PROF_RATE_DEFAULT,
                                "not a whole number of bytes from 1 to 2^40 (profiling off)", &bad);
    g_prof_interval = env_number_or("HAKMEM_PROF_INTERVAL", 0, (long)1 << 50, 0,
                                    "not 0 or a whole number of bytes up to 2^50 (profiling off)", &bad);
    g_prof_leaks = env_flag_or("HAKMEM_PROF_LEAKS", 0, " (profiling off)", &bad);
    if (bad || path == NULL || *path == 0)
        return;
    strcpy(g_prof_path, path);
    if (hak_prof_start_(g_prof_path, (uint64_t)g_prof_rate, (uint64_t)g_prof_interval, g_prof_leaks) != 0) {
        env_warn("HAKMEM_PROF", "the profiler's tables cannot be mapped (profiling off)");
        g_prof_path[0] = 0;
    }
}

/* Every malloc to the slow path; with tracing, every free too (the
 * profiler needs only the frees of large and system blocks, which take the
 * slow path anyway). */
void hak_hooks_enable_(int bit)
{
    __atomic_fetch_or(&hak_trace_on_, bit, __ATOMIC_RELEASE);
    __atomic_store_n(&hak_fast_.tiny_limit, 0, __ATOMIC_RELEASE);
    __atomic_store_n(&hak_fast_.mid_limit, 0, __ATOMIC_RELEASE);
    if (bit & HAK_HOOK_TRACE) {
        __atomic_store_n(&hak_fast_.tiny_tag, HAK_NO_TAG, __ATOMIC_RELEASE);
        __atomic_store_n(&hak_fast_.mid_tag, HAK_NO_TAG, __ATOMIC_RELEASE);
    }
}

/* Runs at load, before main (and before most other constructors). */
__attribute__((constructor(102))) void hak_env_init_(void)
{
    env_stats_file();
    hak_env_.stats = env_flag("HAKMEM_STATS", g_stats_file[0] != 0);
    hak_env_.size_hist = env_flag("HAKMEM_SIZE_HIST", 0);
    hak_env_.mem_trace = env_flag("HAKMEM_MEM_TRACE", 0);
    hak_env_.verbose = env_flag("HAKMEM_VERBOSE", 0);
    env_purge();
    env_check_unknown();
    g_report_pid = hak_os_pid();
    g_err_id = hak_os_err_id();
    if (hak_env_.size_hist || hak_env_.mem_trace)
        hak_hooks_enable_(HAK_HOOK_TRACE);
    env_prof();
    if (hak_env_.verbose)
        print_verbose();
    hak_resolve_real_();
}

__attribute__((destructor)) static void hak_exit_reports(void)
{
    hak_prof_exit_(); /* its own file, and its own rule for forked children */
    if (hak_os_pid() != g_report_pid)
        return; /* a forked child does not repeat its parent's report */
    if (!hak_env_.stats && !hak_env_.size_hist && !hak_env_.mem_trace)
        return;
    line_t l = LINE_ERR;
    if (g_stats_file[0]) {
        l.fd = hak_os_open_report(g_stats_file);
        if (l.fd < 0) {
            env_warn("HAKMEM_STATS_FILE", "cannot be opened for writing (reports go to stderr)");
            l.fd = 2;
        }
    }
    /* A program that closed stderr may have opened a file of its own on fd
     * 2 since (coreutils close it at exit): write nothing into that. */
    if (l.fd == 2 && (g_err_id == 0 || hak_os_err_id() != g_err_id))
        return;
    if (hak_env_.stats)
        stats_report(&l);
    if (hak_env_.size_hist)
        print_size_hist(&l);
    if (hak_env_.mem_trace)
        print_mem_trace(&l);
    if (l.fd != 2)
        hak_os_close_fd(l.fd);
}

/* ----------------------------------------------- glibc introspection API */

/* Every page that can go back: the caller's caches and the central lists
 * go home (each tier's trim), then every dirty unit of every tier (the
 * purge policy's trim, which also empties the large tier's cache). 1 if
 * the committed bytes fell. */
HAK_EXPORT int hak_trim(size_t pad)
{
    (void)pad;
    hak_stats_t before, after;
    stats_base(&before);
#if HAK_HAVE_TINY
    hak_tiny_trim();
#endif
#if HAK_HAVE_MID
    hak_mid_trim();
#endif
#if HAK_HAVE_L25
    hak_l25_trim();
#endif
#if HAK_HAVE_LARGE
    hak_large_trim();
#endif
    hak_purge_trim();
    stats_base(&after);
    return after.os_committed < before.os_committed;
}

HAK_EXPORT int malloc_trim(size_t pad) { return hak_trim(pad); }

HAK_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    hak_stats_t st;
    stats_base(&st);
    size_t committed = 0, mapped_large = st.mapped[HAK_TIER_LARGE];
    for (int t = 0; t < 6; t++)
        committed += st.committed[t];
    mi.arena = committed - st.committed[HAK_TIER_LARGE]; /* non-mmapped space */
    mi.hblks = 0;
    mi.hblkhd = mapped_large;                           /* space in mmapped regions */
    /* In use: blocks with the user (their class sizes) in the tiers of
     * small blocks, whose space is mi.arena; large blocks are mmapped
     * (hblkhd), as glibc counts its mmapped chunks. The calling thread's
     * cache and the central lists count as free, other threads' caches
     * as in use. With HAKMEM_MEM_TRACE the exact requested bytes of live
     * blocks of every tier are known instead. */
    size_t in_use = 0;
    if (hak_env_.mem_trace) {
        in_use = __atomic_load_n(&g_live_usable, __ATOMIC_RELAXED);
    } else {
#if HAK_HAVE_TINY
        in_use += hak_tiny_bytes_in_use_();
#endif
#if HAK_HAVE_MID
        in_use += hak_mid_bytes_in_use_();
#endif
#if HAK_HAVE_L25
        in_use += hak_l25_bytes_in_use_();
#endif
    }
    mi.uordblks = in_use;
    mi.fordblks = mi.arena > mi.uordblks ? mi.arena - mi.uordblks : 0;
    mi.keepcost = 0;
    return mi;
}

HAK_EXPORT struct mallinfo mallinfo(void)
{
    struct mallinfo2 m2 = mallinfo2();
    struct mallinfo mi;
    memset(&mi, 0, sizeof mi);
    mi.arena = (int)m2.arena;
    mi.hblkhd = (int)m2.hblkhd;
    mi.uordblks = (int)m2.uordblks;
    mi.fordblks = (int)m2.fordblks;
    return mi;
}

HAK_EXPORT void malloc_stats(void) { hak_print_stats(); }

/* In glibc 2.36's layout (malloc/malloc.c, __malloc_info), so that tools
 * that parse it find the same elements: one <heap> per tier of small
 * blocks (nr 0 tiny, 1 mid, 2 L25, as present in the build) with an
 * empty <sizes> (hakmem's free blocks are not in size bins a reader could
 * use), "rest" = free committed bytes (committed less live), system
 * current/max = committed now / at its peak, aspace = mapped; then the
 * totals, with the large tier's blocks as "mmap" (count and bytes mapped,
 * as glibc counts its mmapped chunks). */
HAK_EXPORT int malloc_info(int options, FILE *fp)
{
    /* As glibc 2.36: no option is defined, and any is refused by returning
     * EINVAL itself (errno untouched), not -1 as the man page says. */
    if (options != 0)
        return EINVAL;
    hak_stats_t st;
    stats_base(&st);
    size_t live[6], peak[6], free_all = 0;
    tier_figures(&st, live, peak);
    fprintf(fp, "<malloc version=\"1\">\n");
    int nr = 0;
    for (int t = HAK_TIER_TINY; t <= HAK_TIER_L25; t++) {
        if (st.mapped[t] == 0 && !tier_built(t))
            continue;
        size_t fr = st.committed[t] > live[t] ? st.committed[t] - live[t] : 0;
        free_all += fr;
        fprintf(fp,
                "<heap nr=\"%d\">\n<sizes>\n</sizes>\n"
                "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
                "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
                "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
                "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
                "</heap>\n",
                nr++, fr, st.committed[t], peak[t], st.mapped[t], st.mapped[t]);
    }
    size_t large_blocks = 0;
#if HAK_HAVE_LARGE
    hak_tier_stats_t ls;
    hak_large_stats(&ls);
    large_blocks = ls.blocks_in_use;
#endif
    fprintf(fp,
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            free_all, large_blocks, st.mapped[HAK_TIER_LARGE], st.os_committed, hak_os_committed_peak_bytes(),
            st.os_mapped, st.os_mapped);
    return 0;
}

/* glibc's parameters are accepted. Two act on the purge policy
 * (docs/options.md): M_TRIM_THRESHOLD is the floor of its budget (the
 * free committed bytes kept whatever the heap's size), M_MMAP_THRESHOLD
 * the largest freed large block whose mapping is cached (larger ones are
 * unmapped at free, as glibc unmaps its mmapped chunks). The others have
 * no meaning here. */
/* HAKMEM_VERBOSE: one line per mallopt call that does nothing. */
static int mallopt_ignored(int param, int value, int rc)
{
    if (!hak_env_.verbose)
        return rc;
    static const struct { int param; const char *name; } names[] = {
        {M_MXFAST, "M_MXFAST"}, {M_TOP_PAD, "M_TOP_PAD"}, {M_MMAP_MAX, "M_MMAP_MAX"},
        {M_CHECK_ACTION, "M_CHECK_ACTION"}, {M_PERTURB, "M_PERTURB"}, {M_ARENA_TEST, "M_ARENA_TEST"},
        {M_ARENA_MAX, "M_ARENA_MAX"},
    };
    line_t l = LINE_ERR;
    char num[24];
    put(&l, "hakmem: mallopt(");
    const char *name = NULL;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (names[i].param == param)
            name = names[i].name;
    if (name) {
        put(&l, name);
    } else {
        if (param < 0)
            put(&l, "-");
        hak_fmt_u64(num, param < 0 ? -(uint64_t)param : (uint64_t)param);
        put(&l, num);
    }
    put(&l, ", ");
    if (value < 0)
        put(&l, "-");
    hak_fmt_u64(num, value < 0 ? -(uint64_t)value : (uint64_t)value);
    put(&l, num);
    put(&l, name ? ") ignored: no meaning in hakmem" : ") ignored: unknown parameter");
    emit(&l);
    return rc;
}

HAK_EXPORT int mallopt(int param, int value)
{
    switch (param) {
    case M_TRIM_THRESHOLD:
        if (value < 0)
            return 0;
        hak_purge_set_floor((size_t)value);
        return 1;
    case M_MMAP_THRESHOLD:
        if (value < 0)
            return 0;
        hak_purge_set_cache_max((size_t)value);
        return 1;
    case M_MXFAST:
    case M_TOP_PAD:
    case M_MMAP_MAX:
    case M_CHECK_ACTION:
    case M_PERTURB:
    case M_ARENA_TEST:
    case M_ARENA_MAX:
        return mallopt_ignored(param, value, 1);
    default:
        return mallopt_ignored(param, value, 0);
    }
}
