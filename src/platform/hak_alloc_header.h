// SPDX-License-Identifier: MIT
/* hak_alloc_header.h - the 16-byte AllocHeader in front of a large block
 * (method mmap) and of a system-allocator fallback block (method malloc).
 *
 * It is the seed design's in-band copy of a block's metadata. Nothing that
 * decides what to unmap or free trusts it: the large tier's registry holds
 * the authoritative base and length (hak_large_registry.h); the header is
 * compared with the registry at validation=full, and its magic is checked
 * at validation=magic. Dispatch probes p-16 for the magic to find malloc
 * fallback blocks at none/magic (guarded by hak_header_readable).
 *
 * Layout (little-endian, at user - 16, 16-byte aligned):
 *
 *   user-16                           user-8                           user
 *   +---------------------------------+--------------------------------+----
 *   | magic (64 bits, HAK_AH_MAGIC)   | info (64 bits, below)          | block
 *   +---------------------------------+--------------------------------+----
 *
 *   info:
 *    63                                   24 23                4 3        0
 *   +---------------------------------------+-------------------+----------+
 *   |             size (40 bits)            | offset / 16 (20)  | method(4)|
 *   +---------------------------------------+-------------------+----------+
 *
 *   size    the block's usable bytes from `user` (up to 1 TiB - 1); for a
 *           large block: the mapping's end minus user;
 *   offset  user minus the start of the underlying allocation (the mapping
 *           base, or the pointer the system allocator returned), a multiple
 *           of 16 up to 16 MiB - 16 (so fallback blocks take alignments up to
 *           8 MiB); always >= 16 (the header lies inside);
 *   method  HAK_METHOD_MMAP or HAK_METHOD_MALLOC (HAK_METHOD_STASHED: a
 *           freed large block whose mapping stays registered, below).
 *
 * Header-only, includes only what it uses, so dispatch can include it alone.
 */
#ifndef HAK_ALLOC_HEADER_H
#define HAK_ALLOC_HEADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* "HAKMEMAH" read as a little-endian 64-bit word. */
#define HAK_AH_MAGIC 0x48414D454D4B4148ULL
#define HAK_AH_SIZE  16u  /* sizeof(hak_alloc_header_t); every user pointer is 16-aligned */

enum hak_alloc_method {
    HAK_METHOD_NONE   = 0,  /* never written: marks "no method" in lookups */
    HAK_METHOD_MMAP   = 1,  /* large tier: a private mapping */
    HAK_METHOD_MALLOC = 2,  /* dispatch: the system allocator's block */
    HAK_METHOD_STASHED = 3, /* large tier: a freed sampled block whose mapping a
                             * thread's stash keeps, still registered (large.c) */
};

#define HAK_AH_METHOD_BITS 4
#define HAK_AH_OFFSET_BITS 20
#define HAK_AH_SIZE_BITS   40
#define HAK_AH_OFFSET_SHIFT HAK_AH_METHOD_BITS
#define HAK_AH_SIZE_SHIFT   (HAK_AH_METHOD_BITS + HAK_AH_OFFSET_BITS)
#define HAK_AH_OFFSET_UNIT  16u

#define HAK_AH_METHOD_MASK ((1ULL << HAK_AH_METHOD_BITS) - 1)
#define HAK_AH_OFFSET_MASK ((1ULL << HAK_AH_OFFSET_BITS) - 1)
/* Largest size and offset the header can hold. */
#define HAK_AH_SIZE_MAX    ((size_t)((1ULL << HAK_AH_SIZE_BITS) - 1))
#define HAK_AH_OFFSET_MAX  ((size_t)HAK_AH_OFFSET_MASK * HAK_AH_OFFSET_UNIT)

_Static_assert(HAK_AH_SIZE_SHIFT + HAK_AH_SIZE_BITS == 64, "AllocHeader info must fill 64 bits");

typedef struct hak_alloc_header {
    uint64_t magic;
    uint64_t info;
} hak_alloc_header_t;

_Static_assert(sizeof(hak_alloc_header_t) == HAK_AH_SIZE, "AllocHeader is 16 bytes");

/* The unpacked fields. */
typedef struct hak_ah_fields {
    size_t size;
    size_t offset;
    unsigned method;
} hak_ah_fields_t;

/* true if (size, offset, method) can be packed exactly. */
static inline bool hak_ah_fits(size_t size, size_t offset, unsigned method)
{
    return size <= HAK_AH_SIZE_MAX && offset <= HAK_AH_OFFSET_MAX && offset >= HAK_AH_SIZE &&
           offset % HAK_AH_OFFSET_UNIT == 0 && method != HAK_METHOD_NONE && method <= HAK_AH_METHOD_MASK;
}

/* Pack; the caller has checked hak_ah_fits (out-of-range bits are cut). */
static inline uint64_t hak_ah_pack(size_t size, size_t offset, unsigned method)
{
    return ((uint64_t)size << HAK_AH_SIZE_SHIFT) |
           (((uint64_t)offset / HAK_AH_OFFSET_UNIT & HAK_AH_OFFSET_MASK) << HAK_AH_OFFSET_SHIFT) |
           ((uint64_t)method & HAK_AH_METHOD_MASK);
}

static inline size_t hak_ah_size(uint64_t info) { return (size_t)(info >> HAK_AH_SIZE_SHIFT); }
static inline size_t hak_ah_offset(uint64_t info)
{
    return (size_t)((info >> HAK_AH_OFFSET_SHIFT) & HAK_AH_OFFSET_MASK) * HAK_AH_OFFSET_UNIT;
}
static inline unsigned hak_ah_method(uint64_t info) { return (unsigned)(info & HAK_AH_METHOD_MASK); }

static inline hak_ah_fields_t hak_ah_unpack(uint64_t info)
{
    hak_ah_fields_t f = {hak_ah_size(info), hak_ah_offset(info), hak_ah_method(info)};
    return f;
}

/* The header of the block at `user`. */
static inline hak_alloc_header_t *hak_ah_of(void *user)
{
    return (hak_alloc_header_t *)((char *)user - HAK_AH_SIZE);
}
static inline const hak_alloc_header_t *hak_ah_of_const(const void *user)
{
    return (const hak_alloc_header_t *)((const char *)user - HAK_AH_SIZE);
}

/* Write the header in front of `user`. */
static inline void hak_ah_write(void *user, size_t size, size_t offset, unsigned method)
{
    hak_alloc_header_t *h = hak_ah_of(user);
    h->magic = HAK_AH_MAGIC;
    h->info = hak_ah_pack(size, offset, method);
}

/* true if the magic in front of `user` is intact. The caller knows the 16
 * bytes are readable (hak_header_readable, or a registry entry). */
static inline bool hak_ah_magic_ok(const void *user) { return hak_ah_of_const(user)->magic == HAK_AH_MAGIC; }

#endif /* HAK_ALLOC_HEADER_H */
