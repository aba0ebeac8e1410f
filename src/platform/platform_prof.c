// SPDX-License-Identifier: MIT
/* platform_prof.c - what the heap profiler (src/dispatch/prof.c) needs of
 * the OS, posix backend only: the calling thread's stack, and a copy of
 * /proc/self/maps into a profile. Its own file, so that a program linking
 * libhakmem-tiny.a alone never pulls the unwinder in.
 *
 * The reference walk is libgcc's _Unwind_Backtrace, linked directly (gcc
 * and clang link libgcc_s for every C program that references it):
 * nothing is loaded on the first call, unlike glibc's backtrace(), which
 * dlopens libgcc_s then and allocates. The unwinder reads .eh_frame
 * through dl_iterate_phdr (the loader's recursive lock, never one of
 * hakmem's) and allocates nothing for code the loader knows; only frames
 * registered at run time with __register_frame_info (JIT compilers) make
 * it sort them with malloc once, which the profiler survives: its caller
 * marks the thread busy, so an allocation made there is served, never
 * sampled. That walk interprets DWARF for every frame (13-16k
 * instructions a stack).
 *
 * The cached walk (x86-64 only; elsewhere libgcc's is the only one). Every
 * libgcc walk also teaches a small process-wide cache, keyed by a frame's
 * return address (PC), how to get from that frame to its caller's; the
 * next walk through the same PCs follows those rules itself, a few
 * instructions a frame, and goes back to a whole libgcc walk at the first
 * PC the cache does not hold (libunwind's "fast trace" idea, learnt here
 * from libgcc's results instead of from the DWARF itself). A rule is one
 * of: the frame is the last one (libgcc stopped after it); CFA = rbp + 16,
 * the caller's rbp at CFA-16 (a frame-pointer frame, of any size: alloca,
 * VLAs); CFA = rsp + K with the caller's rbp unchanged, or saved at CFA-J.
 * The return address is always at CFA-8 and the caller's rsp is the CFA.
 *
 * A rule is learnt only from two adjacent frames of a libgcc walk, neither
 * of them a signal frame nor the frame of a signal trampoline, and only
 * when the stack agrees with it: the word at CFA-8 is the caller's PC, and
 * for a frame-pointer rule rbp + 16 = CFA and the word at CFA-16 is the
 * caller's rbp. Every later libgcc walk (a miss, and one walk in 256 that
 * is done by libgcc on purpose) checks the rules it meets again and
 * poisons, for good, one that disagrees.
 *
 * Safety. The cached walk reads only the calling thread's stack: every
 * read lies in [the walk's own rsp, hi), where [lo, hi) is a range of this
 * thread's stack (TLS) that an earlier signal-free libgcc walk of the
 * thread covered, and the walk starts only if its own rsp is inside it;
 * each step must move the CFA up. A thread on another stack (a signal
 * handler on sigaltstack, a coroutine) finds its rsp outside the range and
 * walks with libgcc, which resets the range. So a wrong rule (say a
 * library unloaded and another loaded at its addresses) gives wrong
 * frames at worst, never a fault. The walk calls nothing, allocates
 * nothing and takes no lock. The cache is an array in .bss: each slot's
 * key is claimed once with a compare-and-swap and its rule published
 * after it with a release store; a rule is written once, then at most
 * poisoned (one atomic store), and a reader that sees a key without its
 * rule treats it as a miss: no entry can be seen torn. A full probe
 * window means the PC is not cached (its walks stay libgcc's).
 */
#include "hak_platform.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <unwind.h>
#if HAK_VALGRIND
#include <valgrind/valgrind.h>
#endif

#define UW_MAX_CTX 80 /* libgcc contexts kept per walk: skip + 2 + max + 1 */

typedef struct {
    uintptr_t ip, sp, bp; /* PC, rsp (the callee's CFA), rbp in the frame */
    int signal;           /* a signal frame: ip is the interrupted insn */
} uw_frame_t;

typedef struct {
    uw_frame_t *f;
    int cap, n;
    bool zero; /* stopped at a PC of 0 (libgcc's end of stack) */
} uw_walk_t;

/* This thread's stack range [lo, hi) that libgcc walks covered (and so is
 * mapped; x86-64 only), its walks (counted for the audits), how many of
 * them were libgcc's, and how many are running (a walk in a signal handler
 * that interrupted one neither takes the cached walk nor learns: the
 * range's two words are never written half by one walk, half by another). */
static __thread struct {
    uintptr_t lo, hi;
    unsigned walks, slow, inside;
} t_uw;

static _Unwind_Reason_Code uw_collect(struct _Unwind_Context *ctx, void *arg)
{
    uw_walk_t *w = arg;
    int before = 0;
    uw_frame_t *f = &w->f[w->n++];
    f->ip = _Unwind_GetIPInfo(ctx, &before);
    f->signal = before;
    f->sp = _Unwind_GetCFA(ctx);
#if defined(__x86_64__)
    f->bp = _Unwind_GetGR(ctx, 6); /* DWARF register 6: rbp */
#else
    f->bp = 0;
#endif
    if (f->ip == 0) {
        w->zero = true;
        return _URC_END_OF_STACK;
    }
    return w->n < w->cap ? _URC_NO_REASON : _URC_END_OF_STACK;
}

#if defined(__x86_64__)

/* A rule (one 64-bit word): 0 not published yet; bit 0 set: valid (the
 * word non-zero with bit 0 clear: poisoned); bits 1-2 the kind; for
 * UW_SP, bits 3-4 how the caller's rbp is found (UW_BP_*), bits 5-7
 * (J - 16) / 8 for UW_BP_SAVED, bits 8-16 the candidates still open (bit 0
 * unchanged, bit 1 + i saved at CFA - 16 - 8i), bits 20 and up K. */
enum { UW_LAST = 0, UW_FP = 1, UW_SP = 2 };
enum { UW_BP_UNKNOWN = 0, UW_BP_SAME = 1, UW_BP_SAVED = 2 };
#define UW_POISON ((uint64_t)2)
#define UW_K_MAX ((uintptr_t)1 << 20) /* larger frames are not cached */
#define UW_J_SLOTS 8                   /* rbp saved in one of the 8 words under the return address */
#define UW_CAND_SHIFT 8
#define UW_CAND_MASK ((uint64_t)0x1ff << UW_CAND_SHIFT)
#define UW_K_SHIFT 20
#define UW_BITS 12
#define UW_SLOTS ((size_t)1 << UW_BITS)
#define UW_PROBE 8
#define UW_AUDIT 255 /* one walk in 256 is libgcc's, rechecking the rules */

typedef struct {
    uintptr_t pc;
    uint64_t rule;
} uw_slot_t;

static uw_slot_t uw_cache[UW_SLOTS];
static int uw_state; /* 0 unknown, 1 the frame convention checked, -1 off */

/* An UW_SP rule of frame size k with the rbp candidates cand: one saved
 * slot is taken over "unchanged" (a function that saved rbp and has not
 * changed it yet); two saved slots that both hold it leave rbp unknown,
 * until later walks tell them apart. */
static uint64_t uw_rule_sp(uintptr_t k, unsigned cand)
{
    unsigned saved = cand >> 1, how = UW_BP_UNKNOWN, j = 0;
    if (saved != 0 && (saved & (saved - 1)) == 0) {
        how = UW_BP_SAVED;
        j = (unsigned)__builtin_ctz(saved);
    } else if (cand == 1)
        how = UW_BP_SAME;
    return 1 | (uint64_t)UW_SP << 1 | (uint64_t)how << 3 | (uint64_t)j << 5 | (uint64_t)cand << UW_CAND_SHIFT |
           (uint64_t)k << UW_K_SHIFT;
}

static inline uint64_t uw_rule(unsigned kind) { return 1 | (uint64_t)kind << 1; }

static inline size_t uw_home(uintptr_t pc) { return (size_t)((pc * 0x9E3779B97F4A7C15ull) >> (64 - UW_BITS)); }

/* The rule of pc, 0 if none (not cached, not published yet, poisoned). */
static inline uint64_t uw_lookup(uintptr_t pc)
{
    size_t h = uw_home(pc);
    for (int i = 0; i < UW_PROBE; i++) {
        uw_slot_t *s = &uw_cache[(h + (size_t)i) & (UW_SLOTS - 1)];
        uintptr_t key = __atomic_load_n(&s->pc, __ATOMIC_ACQUIRE);
        if (key == pc) {
            uint64_t r = __atomic_load_n(&s->rule, __ATOMIC_ACQUIRE);
            return (r & 1) ? r : 0;
        }
        if (key == 0)
            return 0;
    }
    return 0;
}

/* Teach the cache pc's rule, or check the one it has against it: a
 * different kind or frame size poisons it; an UW_SP rule keeps the rbp
 * candidates both walks allow. */
static void uw_learn(uintptr_t pc, uint64_t rule)
{
    size_t h = uw_home(pc);
    for (int i = 0; i < UW_PROBE; i++) {
        uw_slot_t *s = &uw_cache[(h + (size_t)i) & (UW_SLOTS - 1)];
        uintptr_t key = __atomic_load_n(&s->pc, __ATOMIC_ACQUIRE);
        if (key == 0) {
            if (__atomic_compare_exchange_n(&s->pc, &key, pc, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                __atomic_store_n(&s->rule, rule, __ATOMIC_RELEASE);
                return;
            }
            /* another thread claimed the slot first: key is its pc */
        }
        if (key != pc)
            continue;
        uint64_t r = __atomic_load_n(&s->rule, __ATOMIC_ACQUIRE);
        for (;;) {
            if (r == 0 || r == UW_POISON || r == rule)
                return; /* being published, poisoned, or agreeing */
            uint64_t to = UW_POISON;
            if (((r ^ rule) & 7) == 0 && (r >> UW_K_SHIFT) == (rule >> UW_K_SHIFT) && ((r >> 1) & 3) == UW_SP) {
                unsigned cand = (unsigned)((r & rule & UW_CAND_MASK) >> UW_CAND_SHIFT);
                to = uw_rule_sp(r >> UW_K_SHIFT, cand);
                if (to == r)
                    return;
            }
            if (__atomic_compare_exchange_n(&s->rule, &r, to, false, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
                return;
        }
    }
}

/* The walks read words of other frames: never a sanitizer's business (an
 * ASan build's frames hold poisoned red zones). */
#define UW_NO_SANITIZE __attribute__((no_sanitize("address", "thread")))

static inline UW_NO_SANITIZE uintptr_t uw_word(uintptr_t a) { return *(const uintptr_t *)a; }

/* The rule that takes frame f to its caller c (both from libgcc), or 0 if
 * none fits. Reads [f->sp, c->sp): frame f's own words, which libgcc has
 * just walked. */
static UW_NO_SANITIZE uint64_t uw_derive(const uw_frame_t *f, const uw_frame_t *c)
{
    uintptr_t cfa = c->sp, k = cfa - f->sp;
    if (cfa <= f->sp || k > UW_K_MAX || ((f->sp | cfa) & 7) != 0 || uw_word(cfa - 8) != c->ip)
        return 0;
    if (k >= 16 && f->bp + 16 == cfa && uw_word(cfa - 16) == c->bp)
        return uw_rule(UW_FP);
    unsigned cand = f->bp == c->bp;
    for (unsigned i = 0; i < UW_J_SLOTS && 16 + 8 * i <= k; i++)
        if (uw_word(cfa - 16 - 8 * i) == c->bp)
            cand |= 2u << i;
    return uw_rule_sp(k, cand);
}

/* Learn from a libgcc walk of this thread (w->f[2] is the caller of
 * hak_os_backtrace, whose frame pointer is fa). */
static void uw_learn_walk(const uw_walk_t *w, const uintptr_t *fa, bool ended)
{
    const uw_frame_t *f = w->f;
    int n = w->n;
    if (n < 3)
        return;
#if HAK_VALGRIND
    /* learning compares stack words that may be uninitialised: no rules
     * (and no cached walks) under memcheck, which would report them */
    if (RUNNING_ON_VALGRIND)
        return;
#endif
    /* the convention the cached walk starts from: hak_os_backtrace's own
     * frame is a frame-pointer one (__builtin_frame_address) */
    if (f[2].ip != fa[1] || f[2].sp != (uintptr_t)(fa + 2) || f[2].bp != fa[0]) {
        __atomic_store_n(&uw_state, -1, __ATOMIC_RELAXED);
        return;
    }
    int unknown = 0; /* 0 -> 1 only: a -1 stays */
    __atomic_compare_exchange_n(&uw_state, &unknown, 1, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    /* the signal-free part of the stack, its CFAs going up: f[2..lim) */
    int lim = 3;
    while (lim < n && f[lim].ip != 0 && !f[lim].signal && f[lim].sp > f[lim - 1].sp)
        lim++;
    uintptr_t lo = f[2].sp, hi = f[lim - 1].sp;
    if (lo <= t_uw.hi && hi >= t_uw.lo && t_uw.hi != 0) {
        if (lo < t_uw.lo)
            t_uw.lo = lo;
        if (hi > t_uw.hi)
            t_uw.hi = hi;
    } else {
        t_uw.lo = lo;
        t_uw.hi = hi;
    }
    for (int i = 2; i + 1 < lim; i++) {
        uint64_t r = uw_derive(&f[i], &f[i + 1]);
        if (r)
            uw_learn(f[i].ip, r);
    }
    /* where libgcc stopped by itself: a PC of 0 after f[lim - 1], or no
     * unwind information for it */
    if ((lim < n && f[lim].ip == 0 && !f[lim].signal) || (lim == n && ended))
        uw_learn(f[lim - 1].ip, uw_rule(UW_LAST));
}

/* The cached walk from the caller of the frame at fa: how many frames it
 * stored, or -1 where libgcc must walk. Reads only [fa + 2, t_uw.hi). */
static UW_NO_SANITIZE int uw_fast(const uintptr_t *fa, void **frames, int max, int skip)
{
    uintptr_t sp = (uintptr_t)(fa + 2), ip = fa[1], bp = fa[0], hi = t_uw.hi;
    bool bp_known = true;
    if (sp < t_uw.lo || sp >= hi)
        return -1;
    int n = 0;
    for (int guard = 0; guard < UW_MAX_CTX; guard++) {
        if (ip == 0)
            return n;
        if (skip > 0)
            skip--;
        else {
            frames[n++] = (void *)ip;
            if (n == max)
                return n;
        }
        uint64_t r = uw_lookup(ip);
        if (r == 0)
            return -1;
        unsigned kind = (unsigned)(r >> 1) & 3;
        uintptr_t cfa;
        if (kind == UW_LAST)
            return n;
        if (kind == UW_FP) {
            if (!bp_known || bp < sp || (bp & 7) != 0 || bp > hi - 16)
                return -1;
            cfa = bp + 16;
            bp = uw_word(cfa - 16);
        } else {
            cfa = sp + (uintptr_t)(r >> UW_K_SHIFT);
            if (cfa > hi)
                return -1;
            unsigned how = (unsigned)(r >> 3) & 3;
            if (how == UW_BP_SAVED) {
                bp = uw_word(cfa - 16 - 8 * ((uintptr_t)(r >> 5) & 7));
                bp_known = true;
            } else if (how == UW_BP_UNKNOWN)
                bp_known = false;
        }
        ip = uw_word(cfa - 8);
        sp = cfa;
    }
    return -1;
}
#endif /* __x86_64__ */

/* libgcc's walk (learning from it on x86-64): frame 0 is this function's,
 * 1 hak_os_backtrace's. */
static HAK_NOINLINE int uw_slow(const uintptr_t *fa, void **frames, int max, int skip, bool learn)
{
    int saved = errno;
    t_uw.slow++;
    uw_frame_t f[UW_MAX_CTX];
    int cap = skip + max + 3;
    uw_walk_t w = {f, cap < UW_MAX_CTX ? cap : UW_MAX_CTX, 0, false};
    _Unwind_Reason_Code rc = _Unwind_Backtrace(uw_collect, &w);
    int n = 0;
    for (int i = 2 + skip; i < w.n && f[i].ip != 0 && n < max; i++)
        frames[n++] = (void *)f[i].ip;
#if defined(__x86_64__)
    if (learn && __atomic_load_n(&uw_state, __ATOMIC_RELAXED) >= 0)
        uw_learn_walk(&w, fa, w.zero || rc == _URC_END_OF_STACK);
#else
    (void)fa;
    (void)learn;
    (void)rc;
#endif
    errno = saved;
    return n;
}

HAK_NOINLINE int hak_os_backtrace(void **frames, int max, int skip)
{
    if (max <= 0)
        return 0;
    if (skip < 0)
        skip = 0;
    if (max > UW_MAX_CTX - 3 - skip)
        max = UW_MAX_CTX - 3 - skip;
    if (max <= 0)
        return 0;
    /* a frame-pointer frame, whatever the flags: the cached walk starts
     * from the return address and saved rbp it points at */
    const uintptr_t *fa = __builtin_frame_address(0);
    t_uw.walks++;
    unsigned inside = t_uw.inside++;
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    int n = -1;
#if defined(__x86_64__)
    if (HAK_LIKELY(__atomic_load_n(&uw_state, __ATOMIC_RELAXED) > 0) && (t_uw.walks & UW_AUDIT) != 0 && inside == 0)
        n = uw_fast(fa, frames, max, skip);
#endif
    if (n < 0)
        n = uw_slow(fa, frames, max, skip, inside == 0);
    __atomic_signal_fence(__ATOMIC_SEQ_CST);
    t_uw.inside = inside;
    __asm__ volatile("" : "+r"(n)); /* not a tail call: fa's frame must stay */
    return n;
}

void hak_os_backtrace_counts_(unsigned *walks, unsigned *libgcc)
{
    *walks = t_uw.walks;
    *libgcc = t_uw.slow;
}

int hak_os_copy_maps(int fd)
{
    int saved = errno;
    int in = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
    if (in < 0) {
        errno = saved;
        return -1;
    }
    char buf[4096];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = n < 0 ? -1 : 0;
            break;
        }
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(fd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = -1;
                break;
            }
            off += w;
        }
        if (rc)
            break;
    }
    close(in);
    errno = saved;
    return rc;
}
