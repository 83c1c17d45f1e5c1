/* Encodings of an outgoing message: the plain text frame, in place. */
#include "ws/ws_msg.h"

#include "ws/ws_frame.h"

_Static_assert(TT_MSG_HEADROOM >= WS_MAX_SERVER_HEADER, "headroom for the longest header");

tt_buf_t *ws__msg_frame_now(tt_msg_t *m) {
    uint8_t hdr[WS_MAX_SERVER_HEADER];
    size_t hlen = ws_frame_header_write(hdr, true, WS_OP_TEXT, m->payload_len);
    tt_buf_t *b = m->buf;
    b->off = (uint32_t)(m->payload_off - hlen);
    for (size_t i = 0; i < hlen; i++)
        b->data[b->off + i] = hdr[i];
    b->len = (uint32_t)(m->payload_len + hlen);
    return b;
}
