// SPDX-License-Identifier: MIT
/* mid.c - the mid pool: its class table and parameters; its instance of
 * the pool engine (pool.c), thread cache, public entry points (hak_mid.h)
 * and tier descriptor come from pool_instance.h, written once for both.
 *
 * Parameters (docs/mid.md): 64 KiB pages, spans of at least 8 blocks up to
 * 256 KiB, thread cache 32 KiB per class (8..32 blocks; a bin that swings
 * between empty and full grows to 32, pool.c's tc_swing), one empty chunk
 * kept mapped. A drain parks its batch in the class's central list, or
 * sends it home to the spans when the list is full or the class is
 * shrinking (pool.c); free pages go back under the purge policy. A class
 * below 16 KiB with nothing free takes a free block of a class up to 1.25x
 * larger from the thread's bins before it carves a new one.
 */
#include "mid_inline.h"

static const uint32_t g_strides[HAK_MID_NCLASSES] __attribute__((unused)) = {
    1024, 1088, 1152, 1216, 1280, 1344, 1408, 1472,
    1536, 1600, 1664, 1728, 1792, 1856, 1920, 1984,
    2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840,
    4096, 4608, 5120, 5632, 6144, 6656, 7168, 7680,
    8192, 9216, 10240, 11264, 12288, 13312, 14336, 15360,
    16384, 18432, 20480, 22528, 24576, 26624, 28672, 30720,
    32768,
    65536, /* alignment only */
};

#define U(u) ((uint8_t)HAK_MID_CLASS_OF_UNITS(u)) /* explicit: clang checks the untaken arms too */
#define U8(b) U(b), U(b + 1), U(b + 2), U(b + 3), U(b + 4), U(b + 5), U(b + 6), U(b + 7)
#define U64(b) U8(b), U8(b + 8), U8(b + 16), U8(b + 24), U8(b + 32), U8(b + 40), U8(b + 48), U8(b + 56)
const uint8_t hak_mid_lut_[HAK_MID_LUT_SIZE] = {
    U64(0), U64(64), U64(128), U64(192), U64(256), U64(320), U64(384), U64(448), U(512),
};
#undef U64
#undef U8
#undef U
_Static_assert(HAK_MID_LUT_SIZE == 513, "mid size-class table");
_Static_assert(HAK_MID_CLASS_OF_UNITS(512) == HAK_MID_NSIZED - 1, "mid size-class table");
_Static_assert(HAK_MID_NCLASSES <= HAK_KIND_L250 - HAK_KIND_MID0, "mid classes fit their page kinds");

#if !HAK_PLATFORM_ARENA
static const hak_pool_params_t g_params = {
    HAK_POOL_IDENTITY(MID, "mid", g_strides),
    .cache_bytes = 32u << 10, /* thread cache per class: 8..32 blocks */
    .cache_min = 8,
    .cache_max = 32,
    .span_min_blocks = 8,     /* spans of at least 8 blocks, */
    .span_max_bytes = (size_t)256 << 10, /* up to 256 KiB */
    .keep_empty = 1,          /* empty chunks kept mapped */
    .swing_budget = (size_t)8 << 20, /* bins that swing grow by up to 8 MiB a thread (mid.md) */
    .park = true,
    .fit_below = 16u << 10,   /* a larger block before a new one below 16 KiB (mid.md) */
    .msg_no_span = "invalid pointer (not in an in-use mid span)",
    .msg_not_block = "invalid pointer (past the last block of its mid span)",
    .msg_not_start = "invalid pointer (not the start of a mid block)",
};
#endif

#define POOL_NAME     mid
#define POOL_MAX      HAK_MID_MAX_SIZE
#define POOL_NOT_OURS "invalid pointer (not a mid block)"
#define POOL_PARAMS   g_params
#include "pool_instance.h"
