// SPDX-License-Identifier: MIT
/* l25.c - the L25 pool: its class table and parameters; its instance of
 * the pool engine (pool.c), thread cache, public entry points (hak_l25.h)
 * and tier descriptor come from pool_instance.h, written once for both.
 *
 * Parameters (docs/mid.md): 40 classes, 8 per doubling; 64 KiB pages,
 * spans of one block (more where one would leave over 1/8 of the span
 * unused), thread cache 256 KiB per class (1..4 blocks), four empty chunks
 * kept mapped. A drain goes home to the spans at once (nothing is parked
 * centrally); free pages as in the mid pool (mid.c, pool.c).
 */
#include "l25_inline.h"

#define K(x) ((uint32_t)(x) << 10)
static const uint32_t g_strides[HAK_L25_NCLASSES] __attribute__((unused)) = {
    K(36), K(40), K(44), K(48), K(52), K(56), K(60), K(64),
    K(72), K(80), K(88), K(96), K(104), K(112), K(120), K(128),
    K(144), K(160), K(176), K(192), K(208), K(224), K(240), K(256),
    K(288), K(320), K(352), K(384), K(416), K(448), K(480), K(512),
    K(576), K(640), K(704), K(768), K(832), K(896), K(960), K(1024),
};
#undef K

#define U(u) HAK_L25_CLASS_OF_UNITS(u)
#define U8(b) U(b), U(b + 1), U(b + 2), U(b + 3), U(b + 4), U(b + 5), U(b + 6), U(b + 7)
#define U64(b) U8(b), U8(b + 8), U8(b + 16), U8(b + 24), U8(b + 32), U8(b + 40), U8(b + 48), U8(b + 56)
const uint8_t hak_l25_lut_[HAK_L25_LUT_SIZE] = {U64(0), U64(64), U64(128), U64(192), U(256)};
#undef U64
#undef U8
#undef U
_Static_assert(HAK_L25_LUT_SIZE == 257, "L25 size-class table");
_Static_assert(HAK_L25_NCLASSES <= HAK_KIND_NSMALL - HAK_KIND_L250, "L25 classes fit their page kinds");
_Static_assert(HAK_L25_CLASS_OF_UNITS(256) == HAK_L25_NCLASSES - 1, "L25 size-class table");

#if !HAK_PLATFORM_ARENA
static const hak_pool_params_t g_params = {
    HAK_POOL_IDENTITY(L25, "L25", g_strides),
    .cache_bytes = 256u << 10, /* a bin holds 1..4 blocks, */
    .cache_min = 1,
    .cache_max = 4,
    .tc_cap = (size_t)1 << 20, /* ... and a thread's bins 1 MiB in all (pool.c, tc_cap_grant) */
    .wide_below = 256u << 10,  /* busy classes under 256 KiB take wide spans (pool.c) */
    .span_min_blocks = 1,      /* spans of one block (more where one would waste over 1/8), */
    .span_max_bytes = (size_t)1 << 20, /* up to 1 MiB */
    .keep_empty = 4,           /* empty chunks kept mapped */
    .park = false, /* a parked block of 36 KiB-1 MiB costs more memory than its refill costs time */
    .fit_below = 0, /* no larger block instead of a new one: a span of these is released when it
                       empties and its pages serve any class (mid.md) */
    .msg_no_span = "invalid pointer (not in an in-use L25 span)",
    .msg_not_block = "invalid pointer (past the last block of its L25 span)",
    .msg_not_start = "invalid pointer (not the start of an L25 block)",
};
#endif

#define POOL_NAME     l25
#define POOL_MAX      HAK_L25_MAX_SIZE
#define POOL_NOT_OURS "invalid pointer (not an L25 block)"
#define POOL_PARAMS   g_params
#include "pool_instance.h"
