// SPDX-License-Identifier: MIT
/* stats.c - statistics and reports: hak_get_stats, the HAKMEM_STATS table
 * (hak_print_stats, hak_stats_print, malloc_stats, the exit report), and
 * the per-request traces of HAKMEM_SIZE_HIST and HAKMEM_MEM_TRACE with
 * their exit reports. Every tier's figures come from its descriptor
 * (tiers.h).
 *
 * Reports go to stderr with write(2), never through malloc, once per
 * process: a forked child does not repeat its parent's. Formats:
 * docs/options.md.
 */
#include "tiers.h"

#include "hak_purge.h"
#include "report_line.h"

#define HAK_EXPORT __attribute__((visibility("default")))

/* ---------------------------------------------------------- statistics */

static const char *const tier_names[HAK_TIER_SLOTS] = {"none", "tiny", "mid", "l25", "large", "system"};

void hak_stats_base_(hak_stats_t *out)
{
    memset(out, 0, sizeof *out);
    out->size = sizeof *out;
    for (int t = 0; t < HAK_TIER_SLOTS; t++) {
        const hak_tier_vtable_t *vt = hak_tiers[t];
        if (vt == NULL)
            continue;
        hak_tier_stats_t s;
        vt->stats(&s);
        out->mapped[t] = s.bytes_mapped;
        out->committed[t] = s.bytes_committed;
        out->thread_caches += s.thread_caches;
    }
    out->os_mapped = hak_os_mapped_bytes();
    out->os_committed = hak_os_committed_bytes();
}

void hak_tier_figures_(const hak_stats_t *st, size_t live[HAK_TIER_SLOTS], size_t peak[HAK_TIER_SLOTS])
{
    for (int t = 0; t < HAK_TIER_SLOTS; t++) {
        const hak_tier_vtable_t *vt = hak_tiers[t];
        live[t] = vt ? vt->bytes_in_use() : 0;
        peak[t] = vt ? vt->committed_peak() : 0;
        if (peak[t] < st->committed[t])
            peak[t] = st->committed[t];
    }
}

HAK_EXPORT void hak_get_stats(hak_stats_t *out)
{
    hak_stats_base_(out);
    hak_tier_figures_(out, out->live, out->peak_committed);
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

uint64_t hak_trace_live_usable_(void) { return __atomic_load_n(&g_live_usable, __ATOMIC_RELAXED); }

/* ----------------------------------------------------------- reports */

/* A tier's own counters, one line: "  mid: chunks 3, spans in use 12, ...". */
static void put_tier_counters(line_t *l, const hak_tier_vtable_t *vt)
{
    hak_tier_counter_t c[HAK_TIER_COUNTERS_MAX];
    int n = vt->counters(c);
    put(l, "  ");
    put(l, vt->name);
    put(l, ": ");
    for (int i = 0; i < n; i++) {
        if (i > 0)
            put(l, ", ");
        put(l, c[i].label);
        put(l, " ");
        put_u(l, c[i].value, 0);
    }
    emit(l);
}

#if HAK_HAVE_TINY
/* The hit rate of the tiny fast paths inlined into dispatch. */
static void put_tiny_fast_path(line_t *l)
{
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
}
#endif

static void stats_report(line_t *l)
{
    hak_stats_t st;
    hak_stats_base_(&st);
    size_t live[HAK_TIER_SLOTS], peak[HAK_TIER_SLOTS], live_all = 0;
    hak_tier_figures_(&st, live, peak);
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
    for (int t = 0; t < HAK_TIER_SLOTS; t++) {
        const hak_tier_vtable_t *vt = hak_tiers[t];
        if (vt == NULL)
            continue;
        if (vt->counters)
            put_tier_counters(l, vt);
#if HAK_HAVE_TINY
        if (t == HAK_TIER_TINY)
            put_tiny_fast_path(l);
#endif
    }
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
    hak_stats_base_(&st);
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

__attribute__((destructor)) static void hak_exit_reports(void)
{
    hak_prof_exit_(); /* its own file, and its own rule for forked children */
    if (hak_os_pid() != hak_env_.pid)
        return; /* a forked child does not repeat its parent's report */
    if (!hak_env_.stats && !hak_env_.size_hist && !hak_env_.mem_trace)
        return;
    line_t l = LINE_ERR;
    if (hak_env_.stats_file[0]) {
        l.fd = hak_os_open_report(hak_env_.stats_file);
        if (l.fd < 0) {
            hak_env_warn_("HAKMEM_STATS_FILE", "cannot be opened for writing (reports go to stderr)");
            l.fd = 2;
        }
    }
    /* A program that closed stderr may have opened a file of its own on fd
     * 2 since (coreutils close it at exit): write nothing into that. */
    if (l.fd == 2 && (hak_env_.err_id == 0 || hak_os_err_id() != hak_env_.err_id))
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
