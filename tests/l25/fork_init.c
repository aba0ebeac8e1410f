// SPDX-License-Identifier: MIT
/* The L25 pool registers its fork participant before it publishes its
 * init (common/ht_fork_init.h; linked with --wrap=hak_fork_register). */
#include "hak_l25.h"

static void use_tier(void) { hak_l25_free(hak_l25_alloc(100000, 16)); }

#include "common/ht_fork_init.h"
