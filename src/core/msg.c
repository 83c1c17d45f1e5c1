/* Message structs on a per-thread free list (see msg.h). */
#include "core/msg.h"

#include <assert.h>
#include <stdlib.h>

#include "core/xmalloc.h"

#define MSG_POOL_KEEP 4096

static _Thread_local tt_msg_t *msg_free;
static _Thread_local unsigned msg_free_count;

tt_msg_t *tt_msg_new(tt_buf_t *buf) {
    assert(buf->off >= TT_MSG_HEADROOM);
    tt_msg_t *m = msg_free;
    if (m != NULL) {
        msg_free = (tt_msg_t *)(void *)m->buf;
        msg_free_count--;
    } else {
        m = xmalloc(sizeof(*m));
    }
    m->refs = 1;
    m->payload_off = buf->off;
    m->payload_len = buf->len;
    m->buf = buf;
    m->deflated = NULL;
    m->id = 0;
    return m;
}

void tt_msg_unref(tt_msg_t *m) {
    if (m == NULL || --m->refs > 0)
        return;
    tt_buf_unref(m->buf);
    tt_buf_unref(m->deflated);
    if (msg_free_count >= MSG_POOL_KEEP) {
        free(m);
        return;
    }
    /* A free struct keeps its next pointer in buf. */
    m->buf = (tt_buf_t *)(void *)msg_free;
    msg_free = m;
    msg_free_count++;
}

void tt_msg_pool_drain(void) {
    while (msg_free != NULL) {
        tt_msg_t *m = msg_free;
        msg_free = (tt_msg_t *)(void *)m->buf;
        free(m);
    }
    msg_free_count = 0;
}
