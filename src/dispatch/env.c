// SPDX-License-Identifier: MIT
/* env.c - the runtime options: the HAKMEM_ environment variables, read
 * once at load (a constructor) without allocating and ignored for
 * setuid/setgid programs (hak_getenv checks AT_SECURE); the one numeric
 * parser they share; a warning for each HAKMEM_ variable hakmem does not
 * read and each glibc malloc tunable (which do nothing here); and the
 * HAKMEM_VERBOSE lines with the build options. The variables and their
 * values: docs/options.md.
 */
#include "dispatch.h"

#include <limits.h>
#include <string.h>

#include "hak_purge.h"
#include "report_line.h"

#if HAK_HAVE_TINY
#include "tiny_classes.h"
#endif

#define HAK_EXPORT __attribute__((visibility("default")))
#define HAK_STR_(x) #x
#define HAK_STR(x) HAK_STR_(x)
#ifndef HAK_TIERS_STR
#define HAK_TIERS_STR "?"
#endif

hak_env_t hak_env_;
int hak_trace_on_;
hak_fast_t hak_fast_ = {
#if HAK_SMALL_BUILT
    .small_limit = HAK_SMALL_MAX + 1,
    .nkinds = HAK_KIND_NSMALL - 1,
#endif
};

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
    put(&l, hak_env_.stats_file[0] ? hak_env_.stats_file : "(stderr)");
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

void hak_env_warn_(const char *name, const char *why)
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
    hak_env_warn_(name, why);
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
    if (strlen(v) >= sizeof hak_env_.stats_file) {
        hak_env_warn_("HAKMEM_STATS_FILE", "longer than 4095 bytes (reports go to stderr)");
        return;
    }
    strcpy(hak_env_.stats_file, v);
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
        hak_env_warn_("HAKMEM_PROF", "longer than 4095 bytes (profiling off)");
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
        hak_env_warn_("HAKMEM_PROF", "the profiler's tables cannot be mapped (profiling off)");
        g_prof_path[0] = 0;
    }
}

/* Every malloc to the slow path; with tracing, every free too (the
 * profiler needs only the frees of large and system blocks, which leave
 * the front end anyway). */
void hak_hooks_enable_(int bit)
{
    __atomic_fetch_or(&hak_trace_on_, bit, __ATOMIC_RELEASE);
    __atomic_store_n(&hak_fast_.small_limit, 0, __ATOMIC_RELEASE);
    if (bit & HAK_HOOK_TRACE)
        __atomic_store_n(&hak_fast_.nkinds, 0, __ATOMIC_RELEASE);
}

/* Runs at load, before main (and before most other constructors). */
__attribute__((constructor(102))) void hak_env_init_(void)
{
    env_stats_file();
    hak_env_.stats = env_flag("HAKMEM_STATS", hak_env_.stats_file[0] != 0);
    hak_env_.size_hist = env_flag("HAKMEM_SIZE_HIST", 0);
    hak_env_.mem_trace = env_flag("HAKMEM_MEM_TRACE", 0);
    hak_env_.verbose = env_flag("HAKMEM_VERBOSE", 0);
    env_purge();
    env_check_unknown();
    hak_env_.pid = hak_os_pid();
    hak_env_.err_id = hak_os_err_id();
    if (hak_env_.size_hist || hak_env_.mem_trace)
        hak_hooks_enable_(HAK_HOOK_TRACE);
    env_prof();
    if (hak_env_.verbose)
        print_verbose();
    hak_resolve_real_();
}
