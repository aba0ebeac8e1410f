// SPDX-License-Identifier: MIT
/* glibc_api.c - glibc's introspection API (malloc_trim, mallinfo,
 * mallinfo2, malloc_stats, malloc_info, mallopt) with glibc 2.36's
 * semantics, and hak_trim and hak_thread_flush behind it: each loops over
 * the tiers built (tiers.h).
 */
#include "tiers.h"

#include <errno.h>
#include <malloc.h>
#include <stdio.h>

#include "hak_purge.h"
#include "report_line.h"

#define HAK_EXPORT __attribute__((visibility("default")))

/* Every page that can go back: the caller's caches and the central lists
 * go home (each tier's trim), then every dirty unit of every tier (the
 * purge policy's trim, which also empties the large tier's cache). 1 if
 * the committed bytes fell. */
HAK_EXPORT int hak_trim(size_t pad)
{
    (void)pad;
    hak_stats_t before, after;
    hak_stats_base_(&before);
    for (int t = 0; t < HAK_TIER_SLOTS; t++)
        if (hak_tiers[t])
            hak_tiers[t]->trim();
    hak_purge_trim();
    hak_stats_base_(&after);
    return after.os_committed < before.os_committed;
}

HAK_EXPORT int malloc_trim(size_t pad) { return hak_trim(pad); }

/* The calling thread's cached blocks back to the shared lists of every
 * tier (the central lists, or their spans): what the tiers' trims do
 * first, without their releases and purges. */
HAK_EXPORT void hak_thread_flush(void)
{
    for (int t = 0; t < HAK_TIER_SLOTS; t++)
        if (hak_tiers[t] && hak_tiers[t]->flush)
            hak_tiers[t]->flush();
}

HAK_EXPORT struct mallinfo2 mallinfo2(void)
{
    struct mallinfo2 mi;
    memset(&mi, 0, sizeof mi);
    hak_stats_t st;
    hak_stats_base_(&st);
    size_t committed = 0, committed_mmapped = 0, mapped_mmapped = 0;
    for (int t = 0; t < HAK_TIER_SLOTS; t++) {
        committed += st.committed[t];
        if (hak_tiers[t] && (hak_tiers[t]->flags & HAK_TIER_MMAPPED)) {
            committed_mmapped += st.committed[t];
            mapped_mmapped += st.mapped[t];
        }
    }
    mi.arena = committed - committed_mmapped; /* non-mmapped space */
    mi.hblks = 0;
    mi.hblkhd = mapped_mmapped;               /* space in mmapped regions */
    /* In use: blocks with the user (their class sizes) in the tiers of
     * small blocks, whose space is mi.arena; large blocks are mmapped
     * (hblkhd), as glibc counts its mmapped chunks. The calling thread's
     * cache and the central lists count as free, other threads' caches
     * as in use. With HAKMEM_MEM_TRACE the exact requested bytes of live
     * blocks of every tier are known instead. */
    size_t in_use = 0;
    if (hak_env_.mem_trace) {
        in_use = hak_trace_live_usable_();
    } else {
        for (int t = 0; t < HAK_TIER_SLOTS; t++)
            if (hak_tiers[t] && !(hak_tiers[t]->flags & HAK_TIER_MMAPPED))
                in_use += hak_tiers[t]->bytes_in_use();
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
    hak_stats_base_(&st);
    size_t live[HAK_TIER_SLOTS], peak[HAK_TIER_SLOTS], free_all = 0, mmapped_blocks = 0, mmapped_bytes = 0;
    hak_tier_figures_(&st, live, peak);
    fprintf(fp, "<malloc version=\"1\">\n");
    int nr = 0;
    for (int t = 0; t < HAK_TIER_SLOTS; t++) {
        const hak_tier_vtable_t *vt = hak_tiers[t];
        if (vt == NULL)
            continue;
        if (vt->flags & HAK_TIER_MMAPPED) {
            hak_tier_stats_t s;
            vt->stats(&s);
            mmapped_blocks += s.blocks_in_use;
            mmapped_bytes += st.mapped[t];
            continue;
        }
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
    fprintf(fp,
            "<total type=\"fast\" count=\"0\" size=\"0\"/>\n"
            "<total type=\"rest\" count=\"0\" size=\"%zu\"/>\n"
            "<total type=\"mmap\" count=\"%zu\" size=\"%zu\"/>\n"
            "<system type=\"current\" size=\"%zu\"/>\n<system type=\"max\" size=\"%zu\"/>\n"
            "<aspace type=\"total\" size=\"%zu\"/>\n<aspace type=\"mprotect\" size=\"%zu\"/>\n"
            "</malloc>\n",
            free_all, mmapped_blocks, mmapped_bytes, st.os_committed, hak_os_committed_peak_bytes(),
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