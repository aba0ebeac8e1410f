// SPDX-License-Identifier: MIT
/* tiny_classes.h - the tiny tier's size classes and header byte.
 *
 * Every pointer is 16-byte aligned, so a class is a stride S (a multiple of
 * 16) and, with the header byte, a block holds S-1 bytes: its header is the
 * last byte of the 16 before it.
 *
 *   stride:  16 32 48 ... 256 (16-byte steps: 16 classes)
 *            288 320 352 384 416 448 480 512 (32-byte steps: 8 classes)
 *            576 640 704 768 832 896 960 1024 (64-byte steps: 8 classes)
 *   with class7_header_width=2 the last class is 1040 (1038 usable, >= 1024).
 *
 * The 16-byte steps up to 256 match glibc's chunk granularity where most
 * requests fall (81-99% of the requests of the seven programs whose request sizes
 * were recorded, docs/benchmarks.md, are <= 1023 B, and
 * most of those <= 128 B); above, 8 classes per doubling: spacing at most
 * 12.5% (288/256) and at least 6.7% (1024/960). The 32 classes fill the
 * header byte's 5 class bits. docs/design.md has the table with the bytes
 * each class wastes.
 *
 * The header byte (header_classidx=true), at p-1:
 *
 *     7   5 4       0
 *    +-----+---------+
 *    |magic|  class  |      magic 0b101: allocated (or cached)
 *    +-----+---------+      magic 0b010: freed      (validation=full only)
 *
 * Written once when the block is carved; at validation=full malloc and free
 * also flip the magic so that a second free of the same block is seen.
 * With class7_header_width=2 the last class also has a check byte at p-2
 * (HAK_TINY_CHECK_BYTE) that validation verifies; p-1 keeps the common
 * format so free reads every class alike.
 */
#ifndef HAK_TINY_CLASSES_H
#define HAK_TINY_CLASSES_H

#include <stddef.h>
#include <stdint.h>

#include "hak_platform.h"

#define HAK_TINY_NCLASSES   32
#define HAK_TINY_LAST_CLASS (HAK_TINY_NCLASSES - 1)

#define HAK_TINY_MAGIC_MASK  0xE0u
#define HAK_TINY_MAGIC_LIVE  0xA0u /* 0b101 */
#define HAK_TINY_MAGIC_FREE  0x40u /* 0b010 */
#define HAK_TINY_CLASS_MASK  0x1Fu
#define HAK_TINY_CHECK_BYTE  0x5Au

#if HAK_HEADER_CLASSIDX
#define HAK_TINY_HDR 1                                     /* header bytes of every class */
#if HAK_CLASS7_HEADER_WIDTH == 2
#define HAK_TINY_LAST_STRIDE 1040
#define HAK_TINY_LAST_HDR    2
#else
#define HAK_TINY_LAST_STRIDE 1024
#define HAK_TINY_LAST_HDR    1
#endif
#else
#define HAK_TINY_HDR         0
#define HAK_TINY_LAST_STRIDE 1024
#define HAK_TINY_LAST_HDR    0
#endif

/* The largest request the tier serves. */
#define HAK_TINY_MAX_SIZE ((size_t)(HAK_TINY_LAST_STRIDE - HAK_TINY_LAST_HDR))

/* Strides, indexed by class. */
#define HAK_TINY_STRIDES                                                      \
    { 16, 32, 48, 64, 80, 96, 112, 128, 144, 160, 176, 192, 208, 224, 240,   \
      256, 288, 320, 352, 384, 416, 448, 480, 512,                           \
      576, 640, 704, 768, 832, 896, 960, HAK_TINY_LAST_STRIDE }

/* Size -> class: index (n + HAK_TINY_HDR + 15) >> 4 (the number of 16-byte
 * units the block needs) into a byte table. */
#define HAK_TINY_LUT_SIZE (((HAK_TINY_MAX_SIZE + HAK_TINY_HDR + 15) >> 4) + 1)
#define HAK_TINY_CLASS_OF_UNITS(u)                                            \
    ((u) <= 1 ? 0 : (u) <= 16 ? (u) - 1 : (u) <= 32 ? 16 + ((u) - 17) / 2    \
     : (u) <= 64 ? 24 + ((u) - 33) / 4 : 31)

#define HAK_TINY_LUT_CAP 72
extern const uint8_t hak_tiny_lut_[HAK_TINY_LUT_CAP] HAK_INTERNAL;
extern const uint16_t hak_tiny_stride_[HAK_TINY_NCLASSES] HAK_INTERNAL;

/* Header bytes of class c (1 or 2 with headers, 0 headerless). */
HAK_INLINE unsigned hak_tiny_hdr_of(unsigned c)
{
    return c == HAK_TINY_LAST_CLASS ? HAK_TINY_LAST_HDR : HAK_TINY_HDR;
}

/* Usable bytes of a block of class c. */
HAK_INLINE size_t hak_tiny_usable_of(unsigned c)
{
    return (size_t)hak_tiny_stride_[c] - hak_tiny_hdr_of(c);
}

/* Class for a request of n bytes; n must be <= HAK_TINY_MAX_SIZE. */
HAK_INLINE unsigned hak_tiny_class_of(size_t n)
{
    return hak_tiny_lut_[(n + HAK_TINY_HDR + 15) >> 4];
}

#endif
