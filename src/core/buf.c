/* Reference-counted buffers with per-thread free lists for the common sizes.
 * Four size classes cover chat frames and handshake replies; anything larger
 * goes straight to malloc. */
#include "core/buf.h"
#include "core/xmalloc.h"

#include <stdlib.h>

#define POOL_CLASSES 4
#define POOL_KEEP 1024 /* buffers kept per class; more are freed */

static const uint32_t class_cap[POOL_CLASSES] = {256, 1024, 4096, 16384};

typedef struct pool_s {
    tt_buf_t *free[POOL_CLASSES];
    uint32_t count[POOL_CLASSES];
} pool_t;

/* The free list is per thread, so loops on different threads never share. */
static _Thread_local pool_t pool;

static int class_of(size_t cap) {
    for (int i = 0; i < POOL_CLASSES; i++)
        if (cap <= class_cap[i])
            return i;
    return -1;
}

tt_buf_t *tt_buf_new(size_t cap) {
    int c = class_of(cap);
    tt_buf_t *b;
    if (c >= 0 && pool.free[c] != NULL) {
        b = pool.free[c];
        /* A free buffer keeps its next pointer in its first data bytes. */
        pool.free[c] = *(tt_buf_t **)(void *)b->data;
        pool.count[c]--;
    } else {
        size_t real = c >= 0 ? class_cap[c] : cap;
        b = xmalloc(sizeof(*b) + real);
        b->cap = (uint32_t)real;
    }
    b->refs = 1;
    b->off = 0;
    b->len = 0;
    return b;
}

void tt_buf_unref(tt_buf_t *b) {
    if (b == NULL || --b->refs > 0)
        return;
    int c = class_of(b->cap);
    if (c >= 0 && b->cap == class_cap[c] && pool.count[c] < POOL_KEEP) {
        *(tt_buf_t **)(void *)b->data = pool.free[c];
        pool.free[c] = b;
        pool.count[c]++;
        return;
    }
    free(b);
}

size_t tt_buf_pool_trim(size_t keep_bytes) {
    size_t freed = 0;
    for (int c = 0; c < POOL_CLASSES; c++) {
        while (pool.count[c] > 0 && (size_t)pool.count[c] * class_cap[c] > keep_bytes) {
            tt_buf_t *b = pool.free[c];
            pool.free[c] = *(tt_buf_t **)(void *)b->data;
            pool.count[c]--;
            freed += sizeof(*b) + b->cap;
            free(b);
        }
    }
    return freed;
}

void tt_buf_pool_drain(void) {
    for (int c = 0; c < POOL_CLASSES; c++) {
        while (pool.free[c] != NULL) {
            tt_buf_t *b = pool.free[c];
            pool.free[c] = *(tt_buf_t **)(void *)b->data;
            free(b);
        }
        pool.count[c] = 0;
    }
}
