// SPDX-License-Identifier: MIT
/* hak_list.h - intrusive doubly linked lists, for the tiers' bookkeeping
 * (SuperSlabs, slabs, chunks, spans, thread-cache registries).
 *
 * A node is any struct with `next` and `prev` pointers to its own type; a
 * list is a head pointer the caller owns, plus a tail pointer where the
 * list needs its oldest node. HAK_LIST_DEFINE(name, type) generates typed
 * helpers for one node type (typed so that a slab never lands on a span
 * list):
 *
 *   name_push_front(&head, &tail, n)  n becomes the first node
 *   name_remove(&head, &tail, n)      n leaves the list
 *
 * `tail` may be NULL for a list that keeps no tail (the test folds away:
 * the helpers are always inlined). name_remove leaves n's own links as
 * they were: callers that test them afterwards clear them. No locking
 * here: every list is guarded by its owner's lock.
 */
#ifndef HAK_LIST_H
#define HAK_LIST_H

#include <stddef.h>

#include "hak_platform.h"

/* `unused`: a file may need only some of one type's helpers. */
#define HAK_LIST_DEFINE(name, type)                                                      \
    HAK_INLINE __attribute__((unused)) void name##_push_front(type **head, type **tail,  \
                                                              type *n)                   \
    {                                                                                    \
        n->prev = NULL;                                                                  \
        n->next = *head;                                                                 \
        if (*head)                                                                       \
            (*head)->prev = n;                                                           \
        else if (tail)                                                                   \
            *tail = n;                                                                   \
        *head = n;                                                                       \
    }                                                                                    \
    HAK_INLINE __attribute__((unused)) void name##_remove(type **head, type **tail,      \
                                                          type *n)                       \
    {                                                                                    \
        if (n->prev)                                                                     \
            n->prev->next = n->next;                                                     \
        else                                                                             \
            *head = n->next;                                                             \
        if (n->next)                                                                     \
            n->next->prev = n->prev;                                                     \
        else if (tail)                                                                   \
            *tail = n->prev;                                                             \
    }

#endif
