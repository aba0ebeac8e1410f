// SPDX-License-Identifier: MIT
/* large_internal.h - names the large tier shares with its tests (and, for
 * debugging, with dispatch). The public API is hak_large.h. */
#ifndef HAK_LARGE_INTERNAL_H
#define HAK_LARGE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "hak_platform.h"

/* The heap validator: the registry's invariants, and for every live block
 * the layout invariants of large.c (page-aligned base and length, user
 * inside the mapping and 16-aligned) and, where `headers` is true, an
 * AllocHeader that matches its entry. true if all hold. */
HAK_INTERNAL bool hak_large_validate_(bool headers);

/* Bytes of the registry's slot array (metadata overhead). */
HAK_INTERNAL size_t hak_large_registry_bytes_(void);

#endif /* HAK_LARGE_INTERNAL_H */
