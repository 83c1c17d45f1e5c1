/* One outgoing message and the encodings made of it: the unit the chat
 * hands to delivery. A message is serialized once (its payload, the JSON
 * text, with headroom for a frame header before it) and each encoding the
 * recipients need is built once and cached here (src/ws builds them: the
 * plain WebSocket frame and the permessage-deflate frame), so a
 * broadcast costs one serialization and one framing per encoding, and each
 * recipient's queue takes a reference on the encoding it needs.
 *
 * Reference counted; owned by the one loop thread that made it (counts are
 * not atomic). The struct lives in its own buffer, before the payload's
 * headroom, so a message costs no allocation beyond its buffer. */
#ifndef TT_CORE_MSG_H
#define TT_CORE_MSG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"

/* Bytes of headroom before a payload: the longest server frame header. */
#define TT_MSG_HEADROOM 10

typedef struct tt_msg_s {
    uint32_t refs;
    uint32_t payload_off; /* the payload is buf->data[payload_off .. + payload_len) */
    uint32_t payload_len;
    bool binary; /* a binary message (the echo endpoint's), not text */
    /* The payload with TT_MSG_HEADROOM bytes before it. Once framed
     * (ws_msg_frame), buf's valid bytes (tt_buf_ptr, len) are the plain
     * frame: header then payload, in this one buffer. */
    tt_buf_t *buf;
    /* The permessage-deflate frame (ws_msg_frame_deflate): NULL until a
     * recipient that negotiated the extension asks for it; then a buffer of
     * its own (header with RSV1, then the compressed payload), or a second
     * reference on buf when compressing would not save bytes. */
    tt_buf_t *deflated;
    uint64_t id; /* the chat message id, or 0 for replies and events */
} tt_msg_t;

/* Bytes a buffer must have before a message's payload: the message struct
 * itself, then the headroom for a frame header. */
#define TT_MSG_RESERVE (sizeof(tt_msg_t) + TT_MSG_HEADROOM)

/* A message taking over buf (one reference), whose payload is buf's valid
 * bytes; buf->off must be at least TT_MSG_RESERVE (the struct is written
 * at the start of buf->data). refs = 1. */
tt_msg_t *tt_msg_new(tt_buf_t *buf);

static inline tt_msg_t *tt_msg_ref(tt_msg_t *m) {
    m->refs++;
    return m;
}

/* Drops a reference; the last releases the buffers. NULL is a no-op. */
void tt_msg_unref(tt_msg_t *m);

/* The payload bytes. */
static inline const uint8_t *tt_msg_payload(const tt_msg_t *m) {
    return m->buf->data + m->payload_off;
}

#endif
