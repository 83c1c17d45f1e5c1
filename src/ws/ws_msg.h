/* The WebSocket encodings of an outgoing message (core/msg.h): built once
 * per message, cached in it, shared by every recipient that needs them.
 * Pure: no I/O. The plain frame is written in place, into the headroom the
 * payload was serialized behind, so framing copies nothing; the
 * permessage-deflate frame is compressed once, into a buffer of its own, by
 * the first recipient that negotiated the extension, and every other such
 * recipient takes a reference on it. */
#ifndef TT_WS_WS_MSG_H
#define TT_WS_WS_MSG_H

#include "core/msg.h"
#include "ws/ws_deflate.h"

/* True once ws_msg_frame has framed m. */
static inline int ws_msg_is_framed(const tt_msg_t *m) {
    return m->buf->off != m->payload_off;
}

/* Writes m's frame header in place (ws_msg_frame's first call). */
tt_buf_t *ws__msg_frame_now(tt_msg_t *m);

/* The plain encoding: one unmasked text frame (binary when m->binary; FIN,
 * no RSV bits) holding
 * the payload. The first call writes the header into m->buf's headroom;
 * afterwards tt_buf_ptr(m->buf)[0 .. m->buf->len) is the frame. Returns
 * m->buf (borrowed: take a reference to keep it). Idempotent, and inline
 * for every recipient after the first. */
static inline tt_buf_t *ws_msg_frame(tt_msg_t *m) {
    return ws_msg_is_framed(m) ? m->buf : ws__msg_frame_now(m);
}

/* What a recipient that negotiated permessage-deflate gets. */
typedef struct ws_msg_deflate_s {
    ws_deflater_t *deflater; /* the loop's compressor */
    size_t min;              /* payloads shorter than this go plain */
} ws_msg_deflate_t;

/* The frame for a recipient that negotiated permessage-deflate with
 * server_max_window_bits = bits (15 when it asked for none): the plain
 * frame for a payload under cfg->min bytes or, when bits < 15, over 2^bits (the one
 * compressed encoding, made with a 15-bit window, is valid for an N-bit
 * window only when the payload is at most 2^N bytes: no back-reference
 * leaves the message), else the compressed frame (FIN, RSV1), compressed
 * on the first call and cached in m->deflated. When compressing would
 * not make the frame smaller, that is the plain frame too. Borrowed, as
 * ws_msg_frame. */
tt_buf_t *ws_msg_frame_deflate(tt_msg_t *m, const ws_msg_deflate_t *cfg, unsigned bits);

#endif
