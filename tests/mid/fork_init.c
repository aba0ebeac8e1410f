// SPDX-License-Identifier: MIT
/* The mid pool registers its fork participant before it publishes its
 * init (common/ht_fork_init.h; linked with --wrap=hak_fork_register). */
#include "hak_mid.h"

static void use_tier(void) { hak_mid_free(hak_mid_alloc(2000, 16)); }

#include "common/ht_fork_init.h"
