// SPDX-License-Identifier: MIT
/* report_line.h - the lines of hakmem's reports (HAKMEM_STATS and the
 * other exit reports, HAKMEM_VERBOSE, the option warnings), built in a
 * buffer on the stack and written without allocating: to stderr with
 * write(2), to the HAKMEM_STATS_FILE, or to hak_stats_print's callback. */
#ifndef HAK_REPORT_LINE_H
#define HAK_REPORT_LINE_H

#include <string.h>

#include "dispatch.h"

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

static inline void put(line_t *l, const char *s)
{
    while (*s && l->n < sizeof l->buf - 2)
        l->buf[l->n++] = *s++;
}

/* v right-aligned in `width` columns */
static inline void put_u(line_t *l, uint64_t v, int width)
{
    char num[24];
    int len = (int)hak_fmt_u64(num, v);
    for (int i = len; i < width; i++)
        put(l, " ");
    put(l, num);
}

static inline void put_pad(line_t *l, const char *s, int width)
{
    int len = (int)strlen(s);
    put(l, s);
    for (int i = len; i < width; i++)
        put(l, " ");
}

static inline void put_right(line_t *l, const char *s, int width)
{
    for (int i = (int)strlen(s); i < width; i++)
        put(l, " ");
    put(l, s);
}

/* percentage with one decimal of num/den */
static inline void put_pct(line_t *l, uint64_t num, uint64_t den, int width)
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

static inline void emit(line_t *l)
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
static inline void put_size(line_t *l, uint64_t bytes, int width)
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

#endif
