// SPDX-License-Identifier: MIT
/* fuzz_alloc.h - the fuzz target shared by the libFuzzer build and the
 * plain replay driver (fuzz_replay.c). */
#ifndef FUZZ_ALLOC_H
#define FUZZ_ALLOC_H

#include <stddef.h>
#include <stdint.h>

/* Runs one input; a failed check prints what went wrong and aborts. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The name printed with a failure (the replay driver sets it). */
extern const char *fuzz_current_input;

#endif
