// SPDX-License-Identifier: MIT
/* The large tier registers its fork participant before it publishes its
 * init (common/ht_fork_init.h; linked with --wrap=hak_fork_register). */
#include "hak_large.h"

static void use_tier(void) { hak_large_free(hak_large_alloc((size_t)2 << 20, 16)); }

#include "common/ht_fork_init.h"
