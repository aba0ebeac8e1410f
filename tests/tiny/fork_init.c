// SPDX-License-Identifier: MIT
/* The tiny tier registers its fork participant before it publishes its
 * init (common/ht_fork_init.h; linked with --wrap=hak_fork_register). */
#include "hakmem/tiny.h"

static void use_tier(void) { hak_tiny_free(hak_tiny_alloc(24)); }

#include "common/ht_fork_init.h"
