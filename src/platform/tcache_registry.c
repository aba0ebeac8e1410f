// SPDX-License-Identifier: MIT
/* tcache_registry.c - the registries of thread caches (design and why the
 * links stay out of the TLS: hak_tcache_registry.h).
 *
 * Invariants (under the lock):
 *   - an entry names at most one node, and a node names its entry: for a
 *     registered node n, n->entry->node == n and n->entry->stamp ==
 *     n->stamp != 0;
 *   - two entries never name the same node address (adding takes over the
 *     entry that names it already), so at most one stale entry per TLS
 *     address, and count is the number of entries that name a node.
 */
#include "hak_tcache_registry.h"

struct hak_tcreg_page {
    struct hak_tcreg_page *next;
    size_t n;                       /* entries on this page */
    hak_tcreg_entry_t e[];
};

static bool node_registered(const hak_tcreg_node_t *n)
{
    const hak_tcreg_entry_t *e = n->entry;
    return n->stamp != 0 && e != NULL && e->node == n && e->stamp == n->stamp;
}

/* The entry for n: the stale one that names it, else a free one, else the
 * first of a new page; NULL with ENOMEM. */
static hak_tcreg_entry_t *entry_for(hak_tcreg_t *r, const hak_tcreg_node_t *n)
{
    hak_tcreg_entry_t *hole = NULL;
    for (hak_tcreg_page_t *p = r->pages; p; p = p->next)
        for (size_t i = 0; i < p->n; i++) {
            if (p->e[i].node == n)
                return &p->e[i];
            if (p->e[i].node == NULL && hole == NULL)
                hole = &p->e[i];
        }
    if (hole)
        return hole;
    size_t ps = hak_os_page_size();
    hak_tcreg_page_t *p = hak_os_map(ps, ps); /* zeroed: every entry free */
    if (p == NULL)
        return NULL;
    p->n = (ps - offsetof(hak_tcreg_page_t, e)) / sizeof(hak_tcreg_entry_t);
    p->next = r->pages;
    r->pages = p;
    return &p->e[0];
}

int hak_tcreg_add(hak_tcreg_t *r, hak_tcreg_node_t *n)
{
    int rc = 0;
    hak_lock(&r->lock);
    if (!node_registered(n)) {
        hak_tcreg_entry_t *e = entry_for(r, n);
        if (e == NULL) {
            rc = -1;
        } else {
            if (e->node != n)
                HAK_COUNT_LOCKED(r->count, 1);
            if (r->serial == 0) /* a random start: a foreign page rarely holds a live stamp */
                r->serial = hak_random_word();
            if (++r->serial == 0)
                r->serial++;
            e->node = n;
            e->stamp = r->serial;
            n->entry = e;
            n->stamp = e->stamp;
        }
    }
    hak_unlock(&r->lock);
    return rc;
}

void hak_tcreg_remove(hak_tcreg_t *r, hak_tcreg_node_t *n)
{
    hak_lock(&r->lock);
    if (node_registered(n)) {
        n->entry->node = NULL;
        n->entry->stamp = 0;
        HAK_COUNT_LOCKED(r->count, -1);
    }
    n->entry = NULL;
    n->stamp = 0;
    hak_unlock(&r->lock);
}

size_t hak_tcreg_count(hak_tcreg_t *r) { return __atomic_load_n(&r->count, __ATOMIC_RELAXED); }

void hak_tcreg_adopt(hak_tcreg_t *r, hak_tcreg_node_t *self, void (*flush)(hak_tcreg_node_t *n, void *arg),
                     void *arg)
{
    r->lock.v = 0;
    for (hak_tcreg_page_t *p = r->pages; p; p = p->next)
        for (size_t i = 0; i < p->n; i++) {
            hak_tcreg_entry_t *e = &p->e[i];
            if (e->node == NULL || e->node == self)
                continue;
            /* The node's own copy, read without faulting: its thread may
             * have exited without its hook, its TLS reinitialised for
             * another thread or unmapped. The cache around the node lies
             * in the same static TLS block, one mapping. */
            hak_tcreg_node_t seen;
            if (hak_os_read(&seen, e->node, sizeof seen) && seen.entry == e && seen.stamp == e->stamp)
                flush(e->node, arg);
            e->node = NULL;
            e->stamp = 0;
            HAK_COUNT_LOCKED(r->count, -1);
        }
}
