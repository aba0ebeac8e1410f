// SPDX-License-Identifier: MIT
/* embedded_example.c - a firmware-style program on libhakmem-tiny built with
 * -Dplatform=arena (docs/embedded.md): no mmap, no threads, one static
 * buffer carved by the tiny tier. Built and run by CI as a test. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "hakmem/tiny.h"

/* The whole heap: 256 KiB in .bss (any size >= 4 KiB and any alignment). */
static uint8_t heap[256 * 1024];

struct message {
    uint32_t id;
    uint16_t len;
    char payload[50];
};

int main(void)
{
    if (hak_tiny_init_arena(heap, sizeof heap) != 0) {
        perror("hak_tiny_init_arena");
        return 1;
    }
    /* a queue of messages, allocated and released as they come and go */
    struct message *queue[64];
    unsigned sent = 0, dropped = 0;
    for (uint32_t tick = 0; tick < 100000; tick++) {
        unsigned slot = tick % 64;
        if (queue[slot] && tick >= 64) {
            if (queue[slot]->id != tick - 64)
                return 2; /* corrupted */
            hak_tiny_free(queue[slot]);
            queue[slot] = NULL;
        }
        struct message *m = hak_tiny_alloc(sizeof *m);
        if (m == NULL) { /* exhaustion is NULL + ENOMEM, never a crash */
            if (errno != ENOMEM)
                return 3;
            dropped++;
            continue;
        }
        m->id = tick;
        m->len = (uint16_t)snprintf(m->payload, sizeof m->payload, "tick %u", (unsigned)tick);
        queue[slot] = m;
        sent++;
    }
    /* fill the heap to the brim, then give it all back */
    void *blocks[8192];
    unsigned n = 0;
    while (n < 8192 && (blocks[n] = hak_tiny_alloc(100)) != NULL)
        n++;
    for (unsigned i = 0; i < n; i++)
        hak_tiny_free(blocks[i]);
    printf("sent %u, dropped %u, %u blocks of 100 B fit the rest of a %zu-byte heap\n", sent, dropped, n,
           sizeof heap);
    return dropped == 0 && n > 1000 ? 0 : 4;
}
