/* The WebSocket encodings of an outgoing message (core/msg.h): built once
 * per message, cached in it, shared by every recipient that needs them.
 * Pure: no I/O. The plain frame is written in place, into the headroom the
 * payload was serialized behind, so framing copies nothing. */
#ifndef TT_WS_WS_MSG_H
#define TT_WS_WS_MSG_H

#include "core/msg.h"

/* True once ws_msg_frame has framed m. */
static inline int ws_msg_is_framed(const tt_msg_t *m) {
    return m->buf->off != m->payload_off;
}

/* Writes m's frame header in place (ws_msg_frame's first call). */
tt_buf_t *ws__msg_frame_now(tt_msg_t *m);

/* The plain encoding: one unmasked text frame (FIN, no RSV bits) holding
 * the payload. The first call writes the header into m->buf's headroom;
 * afterwards tt_buf_ptr(m->buf)[0 .. m->buf->len) is the frame. Returns
 * m->buf (borrowed: take a reference to keep it). Idempotent, and inline
 * for every recipient after the first. */
static inline tt_buf_t *ws_msg_frame(tt_msg_t *m) {
    return ws_msg_is_framed(m) ? m->buf : ws__msg_frame_now(m);
}

#endif
