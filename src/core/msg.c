/* Messages, each in its own buffer (see msg.h). */
#include "core/msg.h"

#include <assert.h>
#include <stdalign.h>

_Static_assert(alignof(tt_msg_t) <= 16, "the struct fits the buffer's aligned start");

tt_msg_t *tt_msg_new(tt_buf_t *buf) {
    assert(buf->off >= TT_MSG_RESERVE);
    tt_msg_t *m = (tt_msg_t *)(void *)buf->data;
    m->refs = 1;
    m->payload_off = buf->off;
    m->payload_len = buf->len;
    m->binary = false;
    m->buf = buf;
    m->deflated = NULL;
    m->id = 0;
    return m;
}

void tt_msg_unref(tt_msg_t *m) {
    if (m == NULL || --m->refs > 0)
        return;
    /* m lives in m->buf: release the other encoding first, the buffer last
     * (recipients' queues may still hold it, and with it this memory). */
    tt_buf_unref(m->deflated);
    tt_buf_unref(m->buf);
}
