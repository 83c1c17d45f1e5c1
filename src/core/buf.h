/* Reference-counted byte buffers: the unit of fan-out.
 * A broadcast is serialized and framed once into one tt_buf_t; every
 * recipient's write queue takes a reference. Buffers are owned by the one
 * loop thread that made them (counts are not atomic). Small sizes come from
 * per-thread free lists, so steady-state traffic does not call malloc. */
#ifndef TT_CORE_BUF_H
#define TT_CORE_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct tt_buf_s {
    uint32_t refs;
    uint32_t off; /* first byte of valid data (room before it is headroom) */
    uint32_t len; /* bytes of valid data, starting at off */
    uint32_t cap; /* bytes in data[] */
    uint8_t data[];
} tt_buf_t;

/* A buffer with room for at least cap bytes, refs = 1, off = len = 0.
 * Aborts on out-of-memory (our own bookkeeping, not a peer-controlled size:
 * callers check peer sizes against limits first). */
tt_buf_t *tt_buf_new(size_t cap);

/* Takes one more reference; returns b. */
static inline tt_buf_t *tt_buf_ref(tt_buf_t *b) {
    b->refs++;
    return b;
}

/* Drops one reference; the last one returns the buffer to its pool. NULL is a no-op. */
void tt_buf_unref(tt_buf_t *b);

/* The valid bytes: data + off. */
static inline uint8_t *tt_buf_ptr(const tt_buf_t *b) {
    return (uint8_t *)b->data + b->off;
}

/* Releases the calling thread's pooled buffers (for leak checkers at exit). */
void tt_buf_pool_drain(void);
/* Frees the calling thread's pooled buffers beyond keep_bytes of them per
 * size class: a burst of fan-out fills the pools (up to 1024 buffers per
 * class, 21 MiB in all at the most), and a loop that went quiet gives that
 * back instead of holding it for the next burst. Returns the bytes freed. */
size_t tt_buf_pool_trim(size_t keep_bytes);

#endif
